"""$SYS: broker status topics are published every sys_interval (1 s here) under
$SYS/broker/..., and a leading wildcard (# or +) does not match topics starting with $
(MQTT-4.7.2-1)."""

import time

from helpers import SLOW, V5, V311


def _live_sys(client, timeout):
    """The first periodically published (not retained-store) $SYS message."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no live $SYS/broker/ message within %.1fs" % timeout)
        m = client.get(timeout=left)
        assert m.topic.startswith("$SYS/"), m.topic
        if m.topic.startswith("$SYS/broker/") and not m.retain:
            return m


def test_sys_topics_published_every_interval(clients):
    c = clients.paho(V311)
    c.subscribe("$SYS/#", 0)
    _live_sys(c, 2 + 2 * SLOW)  # the first one within two intervals (plus slack)
    # over the next 2.5 intervals at least one $SYS/broker/ topic is published twice
    seen = {}
    end = time.monotonic() + 2.5
    while time.monotonic() < end:
        for m in c.drain(0.1):
            if m.topic.startswith("$SYS/broker/") and not m.retain:
                seen[m.topic] = seen.get(m.topic, 0) + 1
    assert seen and max(seen.values()) >= 2, "nothing republished every interval: %r" % seen


def test_leading_wildcards_do_not_match_sys(clients, topic):
    wild = clients.paho(V5)
    wild.subscribe("#", 0)
    wild.subscribe("+/broker/#", 0)
    wild.subscribe("+", 0)
    sys_sub = clients.paho(V5)
    sys_sub.subscribe("$SYS/#", 0)
    _live_sys(sys_sub, 2 + 2 * SLOW)
    _live_sys(sys_sub, 1 + 2 * SLOW)  # a full interval has been published since
    pub = clients.paho(V5)
    pub.publish(topic, b"sentinel", qos=1)
    seen = [m.topic for m in wild.drain_until(b"sentinel")]
    assert [t for t in seen if t.startswith("$")] == [], "leading wildcard matched $ topics"

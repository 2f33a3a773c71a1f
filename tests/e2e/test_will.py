"""Will messages: sent when the network connection closes without DISCONNECT, not sent
after a normal DISCONNECT; MQTT 5 DISCONNECT 0x04, will delay, will properties."""

import time

import pytest

import rawmqtt
from helpers import SLOW, V5, VERSION_IDS, VERSIONS


def _willer(clients, version, will, **kw):
    c = clients.raw(version)
    ack = c.connect(clients.client_id("w"), will=will, **kw)
    assert ack.reason == 0, ack
    return c


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
@pytest.mark.parametrize("how", ["fin", "rst"])
def test_will_sent_on_abrupt_close(clients, topic, version, how):
    sub = clients.paho(version)
    sub.subscribe(topic, 2)
    c = _willer(clients, version, {"topic": topic, "payload": b"gone", "qos": 1})
    if how == "rst":
        c.abort()
    else:
        c.close()
    m = sub.get()
    assert (m.topic, m.payload, m.qos) == (topic, b"gone", 1)
    assert not m.retain


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_no_will_after_normal_disconnect(clients, topic, version):
    sub = clients.paho(version)
    sub.subscribe(topic, 1)
    c = _willer(clients, version, {"topic": topic, "payload": b"must-not-arrive", "qos": 1})
    c.disconnect()  # reason 0x00 for v5
    sub.expect_none()


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_retained_will(clients, topic, version):
    live = clients.paho(version)
    live.subscribe(topic, 1)
    c = _willer(clients, version, {"topic": topic, "payload": b"last", "qos": 1, "retain": True})
    c.abort()
    m = live.get()
    assert (m.payload, m.retain) == (b"last", False)  # live delivery: RETAIN 0
    # a subscriber arriving later finds the will as the retained message
    late = clients.paho(version)
    late.subscribe(topic, 1)
    m = late.get()
    assert (m.payload, m.retain) == (b"last", True)


def test_v5_disconnect_with_will_message_reason_sends_will(clients, topic):
    sub = clients.paho(V5)
    sub.subscribe(topic, 1)
    c = _willer(clients, V5, {"topic": topic, "payload": b"asked-for", "qos": 1})
    c.disconnect(reason=rawmqtt.RC_DISCONNECT_WITH_WILL)
    m = sub.get()
    assert (m.topic, m.payload) == (topic, b"asked-for")


def test_v5_will_properties_passed_on(clients, topic):
    sub = clients.paho(V5)
    sub.subscribe(topic, 1)
    will = {"topic": topic, "payload": b"{\"state\":\"offline\"}", "qos": 1, "props": {
        "content_type": "application/json", "payload_format_indicator": 1,
        "user_property": [("k", "v")], "response_topic": topic + "/resp",
        "correlation_data": b"\x01\x02"}}
    c = _willer(clients, V5, will)
    c.abort()
    m = sub.get()
    p = m.properties
    assert m.payload == will["payload"]
    assert p.ContentType == "application/json"
    assert p.PayloadFormatIndicator == 1
    assert ("k", "v") in p.UserProperty
    assert p.ResponseTopic == topic + "/resp"
    assert p.CorrelationData == b"\x01\x02"


def test_v5_will_delay(clients, topic):
    """The will is published when the will delay interval has passed, not before."""
    sub = clients.paho(V5)
    sub.subscribe(topic, 1)
    c = _willer(clients, V5, {"topic": topic, "payload": b"delayed", "qos": 1,
                              "props": {"will_delay_interval": 1}},
                props={"session_expiry_interval": 30})
    c.abort()
    t0 = time.monotonic()
    m = sub.get(timeout=4 * SLOW)
    elapsed = time.monotonic() - t0
    assert m.payload == b"delayed"
    assert elapsed >= 0.9, "will sent after %.2fs, before the 1 s will delay" % elapsed
    assert elapsed <= 1.0 + 2.0 * SLOW, "will sent after %.2fs" % elapsed


def test_v5_will_delay_cancelled_by_reconnect(clients, topic):
    sub = clients.paho(V5)
    sub.subscribe(topic, 1)
    cid = clients.client_id("wd")
    c = clients.raw(V5)
    assert c.connect(cid, clean=False, will={
        "topic": topic, "payload": b"must-not-arrive", "qos": 1, "props": {"will_delay_interval": 1}},
        props={"session_expiry_interval": 30}).reason == 0
    c.abort()
    again = clients.raw(V5)
    ack = again.connect(cid, clean=False, props={"session_expiry_interval": 30})
    assert ack.reason == 0 and ack.session_present
    sub.expect_none(1.8)
    again.disconnect()


def test_v5_will_sent_when_session_ends_before_will_delay(clients, topic):
    """Will delay 10 s but session expiry 1 s: the will goes out when the session ends."""
    sub = clients.paho(V5)
    sub.subscribe(topic, 1)
    c = _willer(clients, V5, {"topic": topic, "payload": b"session-ended", "qos": 1,
                              "props": {"will_delay_interval": 10}},
                props={"session_expiry_interval": 1})
    c.abort()
    t0 = time.monotonic()
    m = sub.get(timeout=4 * SLOW)
    assert m.payload == b"session-ended"
    assert time.monotonic() - t0 <= 1.0 + 2.5 * SLOW

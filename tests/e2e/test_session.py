"""Sessions: persistent (clean session 0 / clean start 0 + session expiry) vs clean,
session present flag, messages queued while offline, redelivery with DUP, takeover,
MQTT 5 session expiry, server-side inflight window and queue limit."""

import time

import pytest

import rawmqtt as r
from helpers import V5, V311, VERSION_IDS, VERSIONS, expect_closed


def _persistent(version, expiry=300):
    """Connect kwargs (raw client) for a session that outlives the connection."""
    if version == V5:
        return {"clean": False, "props": {"session_expiry_interval": expiry}}
    return {"clean": False}


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_persistent_session_gets_messages_published_while_offline(clients, topic, version):
    cid = clients.client_id("p")
    c = clients.raw(version)
    ack = c.connect(cid, **_persistent(version))
    assert ack.reason == 0 and not ack.session_present, "new session: session present 0"
    assert c.subscribe([(topic, 1)]).codes == [1]
    c.disconnect()

    pub = clients.paho(version)
    for i in range(3):
        pub.publish(topic, b"offline-%d" % i, qos=1)

    c = clients.raw(version)
    ack = c.connect(cid, **_persistent(version))
    assert ack.reason == 0 and ack.session_present, "stored session: session present 1"
    got = []
    for _ in range(3):
        p = c.wait_for(r.PUBLISH)
        assert p.qos == 1 and p.topic == topic
        c.ack(p)
        got.append(p.payload)
    assert got == [b"offline-0", b"offline-1", b"offline-2"], "in order, each once"
    # the subscription itself survived too
    pub.publish(topic, b"online", qos=1)
    p = c.wait_for(r.PUBLISH)
    assert p.payload == b"online"
    c.ack(p)
    c.disconnect()

    # clean session / clean start discards it
    c = clients.raw(version)
    ack = c.connect(cid, clean=True)
    assert ack.reason == 0 and not ack.session_present
    c.disconnect()
    c = clients.raw(version)
    ack = c.connect(cid, **_persistent(version))
    assert not ack.session_present, "the clean connection ended the old session"
    c.disconnect()


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_clean_session_subscriptions_do_not_survive(clients, topic, version):
    cid = clients.client_id("c")
    a = clients.paho(version, client_id=cid, clean=True)
    a.subscribe(topic, 1)
    a.disconnect()
    b = clients.paho(version, client_id=cid, clean=True)
    assert not b.session_present
    pub = clients.paho(version)
    pub.publish(topic, b"nobody", qos=1)
    b.subscribe(topic + "/s", 1)
    pub.publish(topic + "/s", b"sentinel", qos=1)
    assert b.get().payload == b"sentinel", "the old subscription must be gone"


def test_v5_session_expiry_zero_ends_with_connection(clients, topic):
    cid = clients.client_id("z")
    c = clients.raw(V5)
    assert c.connect(cid, clean=False).reason == 0  # no Session Expiry Interval = 0
    c.subscribe([(topic, 1)])
    c.disconnect()
    c = clients.raw(V5)
    ack = c.connect(cid, clean=False)
    assert not ack.session_present
    c.disconnect()


def test_v5_session_expires(clients, topic):
    """Session expiry 1 s: after 2 s it is gone, with the messages queued for it."""
    cid = clients.client_id("e")
    c = clients.raw(V5)
    assert c.connect(cid, clean=False, props={"session_expiry_interval": 1}).reason == 0
    c.subscribe([(topic, 1)])
    c.disconnect()
    pub = clients.paho(V5)
    pub.publish(topic, b"queued-for-nobody", qos=1)
    time.sleep(2.0)
    c = clients.raw(V5)
    ack = c.connect(cid, clean=False, props={"session_expiry_interval": 10})
    assert ack.reason == 0
    assert not ack.session_present, "session with expiry 1 s still present after 2 s"
    c.subscribe([(topic + "/s", 1)])
    pub.publish(topic + "/s", b"sentinel", qos=1)
    p = c.wait_for(r.PUBLISH)
    assert p.payload == b"sentinel", "queued message of an expired session delivered: %r" % p


def test_v5_session_expiry_changed_at_disconnect(clients, topic):
    """DISCONNECT may set a new Session Expiry Interval (from non-zero)."""
    cid = clients.client_id("x")
    c = clients.raw(V5)
    assert c.connect(cid, clean=False, props={"session_expiry_interval": 1}).reason == 0
    c.subscribe([(topic, 1)])
    c.disconnect(reason=0, props={"session_expiry_interval": 300})
    pub = clients.paho(V5)
    pub.publish(topic, b"kept", qos=1)
    time.sleep(1.5)
    c = clients.raw(V5)
    ack = c.connect(cid, clean=False, props={"session_expiry_interval": 300})
    assert ack.session_present
    assert c.wait_for(r.PUBLISH).payload == b"kept"
    c.disconnect()
    c = clients.raw(V5)
    c.connect(cid, clean=True)
    c.disconnect()


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_unacked_qos1_redelivered_with_dup_on_reconnect(clients, topic, version):
    cid = clients.client_id("d")
    c = clients.raw(version)
    c.connect(cid, **_persistent(version))
    c.subscribe([(topic, 1)])
    pub = clients.paho(version)
    pub.publish(topic, b"ack-me", qos=1)
    first = c.wait_for(r.PUBLISH)
    assert (first.payload, first.dup) == (b"ack-me", False)
    c.abort()  # no PUBACK

    c = clients.raw(version)
    ack = c.connect(cid, **_persistent(version))
    assert ack.session_present
    again = c.wait_for(r.PUBLISH)
    assert again.payload == b"ack-me"
    assert again.dup, "a re-sent PUBLISH has DUP=1 (MQTT-4.4.0-1 / MQTT-3.3.1-1)"
    assert again.pid == first.pid, "re-sent with its original packet identifier"
    c.ack(again)
    pub.publish(topic, b"next", qos=1)
    assert c.wait_for(r.PUBLISH).payload == b"next", "acked message must not come again"
    c.disconnect()


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_takeover_closes_first_connection(clients, topic, version):
    cid = clients.client_id("t")
    first = clients.raw(version)
    assert first.connect(cid, **_persistent(version)).reason == 0
    first.subscribe([(topic, 1)])
    second = clients.raw(version)
    ack = second.connect(cid, **_persistent(version))
    assert ack.reason == 0
    assert ack.session_present, "the takeover continues the session"
    pkts = expect_closed(first)
    if version == V5:
        # MQTT 5 3.1.4-3: DISCONNECT 0x8E Session taken over (mosquitto just closes)
        assert [(p.type, p.reason) for p in pkts] in (
            [], [(r.DISCONNECT, r.RC_SESSION_TAKEN_OVER)]), pkts
    else:
        assert pkts == []
    # the subscription made on the first connection serves the second
    pub = clients.paho(version)
    pub.publish(topic, b"to-second", qos=1)
    assert second.wait_for(r.PUBLISH).payload == b"to-second"
    second.disconnect()


@pytest.mark.polygate_only
def test_v5_takeover_sends_disconnect_session_taken_over(clients):
    """MQTT 5: the server SHOULD send DISCONNECT 0x8E to the old connection; mosquitto
    2.0.11 closes it without one."""
    cid = clients.client_id("t")
    first = clients.raw(V5)
    assert first.connect(cid).reason == 0
    second = clients.raw(V5)
    assert second.connect(cid).reason == 0
    pkts = expect_closed(first)
    assert [(p.type, p.reason) for p in pkts] == [(r.DISCONNECT, r.RC_SESSION_TAKEN_OVER)], pkts


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_takeover_with_will_sends_the_will(clients, topic, version):
    """MQTT 5 3.1.4-3 / 3.1.1: the old connection is closed as if abnormally: its will goes
    out (v5: a will delay of 0)."""
    sub = clients.paho(version)
    sub.subscribe(topic, 1)
    cid = clients.client_id("tw")
    first = clients.raw(version)
    assert first.connect(cid, will={"topic": topic, "payload": b"taken", "qos": 1}).reason == 0
    second = clients.raw(version)
    assert second.connect(cid).reason == 0
    expect_closed(first)
    assert sub.get().payload == b"taken"


def _no_publish_within(c, timeout):
    try:
        p = c.wait_for(r.PUBLISH, timeout=timeout)
    except TimeoutError:
        return
    raise AssertionError("inflight window exceeded: got %r" % p)


def _window_client(clients, topic, version, receive_maximum):
    c = clients.raw(version)
    props = {"receive_maximum": receive_maximum} if receive_maximum else None
    assert c.connect(clients.client_id("w"), props=props).reason == 0
    c.subscribe([(topic, 1)])
    pub = clients.paho(version)
    for i in range(5):
        pub.publish(topic, b"m%d" % i, qos=1)
    return c


WINDOWS = [pytest.param(V311, None, id="v311-max_inflight"),
           pytest.param(V5, None, id="v5-max_inflight"),
           pytest.param(V5, 2, id="v5-client-receive-maximum")]


@pytest.mark.broker_config(max_inflight=2)
@pytest.mark.parametrize("version,receive_maximum", WINDOWS)
def test_server_inflight_window(clients, topic, version, receive_maximum):
    """At most 2 unacknowledged QoS 1 messages towards a client (broker max_inflight = 2,
    or MQTT 5 Receive Maximum 2 from the client, MQTT-3.3.4-9); acks let the rest through."""
    c = _window_client(clients, topic, version, receive_maximum)
    p0 = c.wait_for(r.PUBLISH)
    p1 = c.wait_for(r.PUBLISH)
    assert [p0.payload, p1.payload] == [b"m0", b"m1"]
    _no_publish_within(c, 0.5)
    got = [p0, p1]
    while len(got) < 5:
        c.ack(got[len(got) - 2])
        got.append(c.wait_for(r.PUBLISH))
        got += c.stash  # whatever else came with it
        c.stash = []
    assert [p.payload for p in got] == [b"m0", b"m1", b"m2", b"m3", b"m4"]


@pytest.mark.polygate_only
@pytest.mark.broker_config(max_inflight=2)
@pytest.mark.parametrize("version,receive_maximum", WINDOWS)
def test_server_inflight_window_refills_one_per_ack(clients, topic, version, receive_maximum):
    """One ack frees one slot, not more. mosquitto 2.0.11 sends two after the first ack,
    holding three unacknowledged (against MQTT-3.3.4-9 for a Receive Maximum)."""
    c = _window_client(clients, topic, version, receive_maximum)
    p0 = c.wait_for(r.PUBLISH)
    c.wait_for(r.PUBLISH)
    _no_publish_within(c, 0.3)
    c.ack(p0)
    assert c.wait_for(r.PUBLISH).payload == b"m2"
    _no_publish_within(c, 0.5)


@pytest.mark.broker_config(max_inflight=2, max_queued_messages=3)
@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_offline_queue_is_bounded(clients, topic, version):
    """max_queued_messages = 3 (+ max_inflight 2): a session offline while 20 QoS 1
    messages arrive gets at least 3 and at most 5 of them, oldest first."""
    cid = clients.client_id("q")
    c = clients.raw(version)
    c.connect(cid, **_persistent(version))
    c.subscribe([(topic, 1)])
    c.disconnect()
    pub = clients.paho(version)
    for i in range(20):
        pub.publish(topic, b"%02d" % i, qos=1)
    c = clients.raw(version)
    assert c.connect(cid, **_persistent(version)).session_present
    got = []
    while True:
        try:
            p = c.wait_for(r.PUBLISH, timeout=0.5)
        except TimeoutError:
            break
        c.ack(p)
        got.append(p.payload)
    assert 3 <= len(got) <= 5, got
    assert got == sorted(got), "queued messages are delivered in order"
    c.disconnect()
    c = clients.raw(version)
    c.connect(cid, clean=True)
    c.disconnect()

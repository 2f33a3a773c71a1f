"""Retained messages: set, replace, clear with an empty payload, wildcard retrieval on
subscribe, the RETAIN flag on retained (1) and live (0) delivery, retain_available."""

import pytest

import rawmqtt
from helpers import V5, VERSION_IDS, VERSIONS, assert_broker_serves, expect_closed


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
@pytest.mark.parametrize("pub_qos,sub_qos", [(1, 0), (1, 2), (2, 1), (0, 2)])
def test_retained_on_subscribe_flag_set_live_flag_cleared(clients, topic, version, pub_qos, sub_qos):
    pub = clients.paho(version)
    pub.publish(topic, b"kept", qos=pub_qos, retain=True)
    sub = clients.paho(version)
    sub.subscribe(topic, sub_qos)
    m = sub.get()
    assert (m.topic, m.payload) == (topic, b"kept")
    assert m.retain, "a retained message sent because of a new subscription has RETAIN=1"
    assert m.qos == min(pub_qos, sub_qos)
    # live delivery to an established subscription: RETAIN=0 even if published retained
    pub.publish(topic, b"live-retained", qos=1, retain=True)
    m = sub.get()
    assert m.payload == b"live-retained"
    assert not m.retain, "live delivery must have RETAIN=0 (no retain-as-published)"
    pub.publish(topic, b"live", qos=1)
    m = sub.get()
    assert m.payload == b"live" and not m.retain


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_retained_replaced_then_cleared_by_empty_payload(clients, topic, version):
    pub = clients.paho(version)
    pub.publish(topic + "/t", b"old", qos=1, retain=True)
    pub.publish(topic + "/t", b"new", qos=1, retain=True)
    pub.publish(topic + "/sentinel", b"s", qos=1, retain=True)

    s1 = clients.paho(version)
    s1.subscribe(topic + "/t", 1)
    m = s1.get()
    assert (m.payload, m.retain) == (b"new", True)

    # clearing: the empty retained message still reaches current subscribers, as normal
    pub.publish(topic + "/t", b"", qos=1, retain=True)
    m = s1.get()
    assert (m.topic, m.payload) == (topic + "/t", b"")

    s2 = clients.paho(version)
    s2.subscribe(topic + "/#", 1)
    m = s2.get()
    assert (m.topic, m.payload) == (topic + "/sentinel", b"s")
    s2.expect_none()  # nothing retained on /t any more


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_wildcard_subscription_gets_all_matching_retained(clients, topic, version):
    pub = clients.paho(version)
    stored = {"/a/x": b"1", "/b/x": b"2", "/a": b"3", "/a/b/c": b"4", "/c/y": b"5"}
    for t, p in stored.items():
        pub.publish(topic + t, p, qos=1, retain=True)

    def retained_for(flt, n):
        s = clients.paho(version)
        s.subscribe(topic + flt, 1)
        msgs = s.get_n(n) + s.drain(0.3)
        assert all(m.retain for m in msgs)
        return {m.topic[len(topic):]: m.payload for m in msgs}, len(msgs)

    got, n = retained_for("/+/x", 2)
    assert (got, n) == ({"/a/x": b"1", "/b/x": b"2"}, 2)
    got, n = retained_for("/#", 5)
    assert (got, n) == (stored, 5)
    got, n = retained_for("/a/#", 3)  # '#' also matches the parent level
    assert (got, n) == ({"/a/x": b"1", "/a": b"3", "/a/b/c": b"4"}, 3)


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_retained_survives_publisher_disconnect(clients, topic, version):
    pub = clients.paho(version)
    pub.publish(topic, b"stays", qos=1, retain=True)
    pub.disconnect()
    sub = clients.paho(version)
    sub.subscribe(topic, 1)
    m = sub.get()
    assert (m.payload, m.retain) == (b"stays", True)


@pytest.mark.broker_config(retain_available=False)
@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_retain_unavailable(clients, topic, version):
    c = clients.raw(version)
    ack = c.connect(clients.client_id())
    assert ack.reason == 0
    if version == V5:
        assert ack.props.get("retain_available") == 0, ack
    c.send(rawmqtt.publish_packet(topic, b"r", qos=1, retain=True, pid=1, version=version))
    pkts = expect_closed(c)
    if version == V5:
        # MQTT-3.3.1-11: DISCONNECT 0x9A Retain not supported (if a DISCONNECT is sent)
        discs = [p for p in pkts if p.type == rawmqtt.DISCONNECT]
        assert all(p.reason == rawmqtt.RC_RETAIN_NOT_SUPPORTED for p in discs), pkts
    assert not any(p.type == rawmqtt.PUBACK and p.reason == 0 for p in pkts), pkts
    assert_broker_serves(clients.broker)

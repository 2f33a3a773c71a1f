"""Publish / subscribe basics: QoS 0/1/2 both ways, QoS capping, wildcards, unsubscribe,
payload integrity, ping; with paho, the raw client and mosquitto_pub/mosquitto_sub."""

import pytest

import rawmqtt
from helpers import V5, V311, VERSION_IDS, VERSIONS, MosquittoSub, mosquitto_pub


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
@pytest.mark.parametrize("sub_qos", [0, 1, 2])
@pytest.mark.parametrize("pub_qos", [0, 1, 2])
def test_qos_delivery_is_capped_by_subscription(clients, topic, version, pub_qos, sub_qos):
    sub = clients.paho(version)
    assert sub.subscribe(topic, sub_qos) == sub_qos
    pub = clients.paho(version)
    payload = ("q%d->%d" % (pub_qos, sub_qos)).encode()
    pub.publish(topic, payload, qos=pub_qos)
    m = sub.get()
    assert (m.topic, m.payload) == (topic, payload)
    assert m.qos == min(pub_qos, sub_qos)
    assert not m.retain
    # no duplicate: the next message on the topic is the following publish
    pub.publish(topic, b"end", qos=pub_qos)
    assert sub.get().payload == b"end"


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_qos2_flow_raw_both_ways(clients, topic, version):
    """Client->server QoS 2 (PUBREC/PUBREL/PUBCOMP) and server->client QoS 2, byte-precise;
    a re-sent PUBLISH (DUP) before PUBREL is not delivered twice."""
    sub = clients.raw(version)
    assert sub.connect(clients.client_id("s")).reason == 0
    assert sub.subscribe([(topic, 2)]).codes == [2]

    pub = clients.raw(version)
    assert pub.connect(clients.client_id("p")).reason == 0
    pub.send(rawmqtt.publish_packet(topic, b"once", qos=2, pid=77, version=version))
    rec = pub.wait_for(rawmqtt.PUBREC)
    assert rec.pid == 77 and rec.flags == 0
    # the same packet again with DUP set: must not cause a second delivery
    pub.send(rawmqtt.publish_packet(topic, b"once", qos=2, pid=77, dup=True, version=version))
    rec2 = pub.wait_for(rawmqtt.PUBREC)
    assert rec2.pid == 77
    pub.send(rawmqtt.ack_packet(rawmqtt.PUBREL, 77, version=version))
    comp = pub.wait_for(rawmqtt.PUBCOMP)
    assert comp.pid == 77

    p = sub.wait_for(rawmqtt.PUBLISH)
    assert (p.topic, p.payload, p.qos, p.dup) == (topic, b"once", 2, False)
    assert p.pid != 0
    sub.send(rawmqtt.ack_packet(rawmqtt.PUBREC, p.pid, version=version))
    rel = sub.wait_for(rawmqtt.PUBREL)
    assert rel.pid == p.pid and rel.flags == 0x02, "PUBREL must have flags 0010"
    sub.send(rawmqtt.ack_packet(rawmqtt.PUBCOMP, p.pid, version=version))
    # a second publish proves the first was delivered exactly once
    pub.publish(topic, b"next", qos=2)
    p2 = sub.wait_for(rawmqtt.PUBLISH)
    assert p2.payload == b"next", "message delivered twice: got %r" % p2


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_wildcards(clients, topic, version):
    sub = clients.paho(version)
    sub.subscribe(topic + "/+/x", 1)
    sub.subscribe(topic + "/a/#", 1)
    pub = clients.paho(version)
    for t in ["/a/x", "/b/x", "/b/y", "/a", "/a/b/c", "/c/d/x"]:
        pub.publish(topic + t, t.encode(), qos=1)
    got = [m.topic[len(topic):] for m in sub.get_n(4)]
    # /a/x matches both filters: the server may deliver it once or once per subscription
    got = sorted(got + [m.topic[len(topic):] for m in sub.drain(0.3)])
    assert got in (sorted(["/a/x", "/b/x", "/a", "/a/b/c"]),
                           sorted(["/a/x", "/a/x", "/b/x", "/a", "/a/b/c"]))


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_unsubscribe_stops_delivery(clients, topic, version):
    sub = clients.paho(version)
    sub.subscribe(topic, 1)
    sub.subscribe(topic + "/other", 1)
    pub = clients.paho(version)
    pub.publish(topic, b"1", qos=1)
    assert sub.get().payload == b"1"
    sub.unsubscribe(topic)
    pub.publish(topic, b"2", qos=1)
    pub.publish(topic + "/other", b"sentinel", qos=1)
    m = sub.get()
    assert (m.topic, m.payload) == (topic + "/other", b"sentinel")


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_binary_payload_kept_byte_for_byte(clients, topic, version):
    sub = clients.paho(version)
    sub.subscribe(topic, 2)
    pub = clients.paho(version)
    payload = bytes(range(256)) * 400 + b"\x00end"  # ~100 KB, every byte value, NULs
    pub.publish(topic, payload, qos=2)
    assert sub.get().payload == payload
    pub.publish(topic, b"", qos=1)  # empty payload is a valid non-retained message
    assert sub.get().payload == b""


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_pingreq_pingresp(clients, version):
    c = clients.raw(version)
    assert c.connect(clients.client_id(), keepalive=10).reason == 0
    for _ in range(3):
        r = c.ping()
        assert r.type == rawmqtt.PINGRESP and r.body == b"" and r.flags == 0


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_connack_v3_and_v5_shape(clients, version):
    c = clients.raw(version)
    ack = c.connect(clients.client_id(), clean=True)
    assert ack.reason == 0
    assert ack.session_present is False
    assert ack.flags == 0
    if version == V311:
        assert len(ack.body) == 2, "v3.1.1 CONNACK has exactly 2 bytes"


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mosquitto_clients(broker, topic, version, qos):
    sub = MosquittoSub(broker, ["-t", topic, "-q", str(qos)], count=1, version=version)
    try:
        r = mosquitto_pub(broker, ["-t", topic, "-q", str(qos), "-m", "hello-cli"], version=version)
        assert r.returncode == 0, r.stdout
        rc, out = sub.finish()
        assert rc == 0, out
        assert b"hello-cli" in out
        assert ("q%d" % qos).encode() in out or ("QoS: %d" % qos).encode() in out, out
    finally:
        sub.kill()


def test_mqtt31_client(clients, topic):
    """MQTT 3.1 (protocol name MQIsdp, level 3) is accepted and works like 3.1.1."""
    c = clients.raw(3)
    c.send(rawmqtt.connect_packet(clients.client_id("o"), version=3, protocol_name="MQIsdp"))
    ack = c.recv_packet()
    assert ack.type == rawmqtt.CONNACK and ack.reason == 0 and len(ack.body) == 2, ack
    c.subscribe([(topic, 1)])
    v5 = clients.paho(V5)
    v5.publish(topic, b"to-3.1", qos=1)
    p = c.wait_for(rawmqtt.PUBLISH)
    assert (p.topic, p.payload, p.qos) == (topic, b"to-3.1", 1)
    c.ack(p)
    c.disconnect()


@pytest.mark.parametrize("pub_v,sub_v", [(V311, V5), (V5, V311)], ids=["v311-to-v5", "v5-to-v311"])
def test_between_protocol_versions(clients, topic, pub_v, sub_v):
    sub = clients.paho(sub_v)
    sub.subscribe(topic, 2)
    pub = clients.paho(pub_v)
    props = {"user_property": [("k", "v")], "content_type": "x/y"} if pub_v == V5 else None
    pub.publish(topic, b"across", qos=2, props=props)
    m = sub.get()
    assert (m.topic, m.payload, m.qos) == (topic, b"across", 2)

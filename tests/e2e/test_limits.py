"""Limits at their edges, each written for a defect an independent review found:
windows on resume, keepalive caps for v3, v3 inbound QoS 2 depth, retained messages
beyond the queue bound, the exact client Maximum Packet Size, large SUBSCRIBEs, a bad
second CONNECT, and $SYS with retain turned off."""

import time

import pytest

import rawmqtt as r
from helpers import V5, V311, TIMEOUT


def drain(c, quiet=0.3):
    out = []
    while True:
        try:
            out.append(c.recv_packet(timeout=quiet))
        except TimeoutError:
            return out


@pytest.mark.polygate_only  # mosquitto 2.0.11 resends every unacknowledged message at once
def test_resend_on_resume_respects_new_receive_maximum(clients, topic):
    """MQTT-3.3.4-9: never more than Receive Maximum unacknowledged, also when resending."""
    cid = clients.client_id("rm")
    c = clients.raw(V5)
    c.connect(cid, props={"session_expiry_interval": 60})
    c.subscribe([(topic, 1)])
    pub = clients.raw(V5)
    pub.connect(clients.client_id("p"))
    for i in range(5):
        pub.publish(topic, b"m%d" % i, qos=1)
    assert len([p for p in drain(c) if p.type == r.PUBLISH]) == 5
    c.abort()
    c = clients.raw(V5)
    assert c.connect(cid, clean=False, props={"session_expiry_interval": 60,
                                              "receive_maximum": 2}).session_present
    got = [p for p in drain(c) if p.type == r.PUBLISH]
    assert [(p.payload, p.dup) for p in got] == [(b"m0", True), (b"m1", True)]
    seen = []
    while got:  # each ack lets exactly one more through
        p = got.pop(0)
        seen.append(p.payload)
        c.ack(p)
        got += [q for q in drain(c) if q.type == r.PUBLISH]
        assert len(got) <= 2
    assert seen == [b"m%d" % i for i in range(5)]


@pytest.mark.polygate_only  # mosquitto refuses max_keepalive below 10 in its config
@pytest.mark.broker_config(max_keepalive=2)
def test_v3_keepalive_above_cap_is_refused(clients):
    """v3 cannot be told a Server Keep Alive, so a larger (or no) keepalive is refused;
    v5 is told the cap."""
    for ka in (10, 0):
        c = clients.raw(V311)
        ack = c.connect(clients.client_id("k"), keepalive=ka)
        assert ack.reason == r.CONNACK_V3_IDENTIFIER_REJECTED
    c = clients.raw(V311)
    assert c.connect(clients.client_id("k"), keepalive=2).reason == 0
    c = clients.raw(V5)
    ack = c.connect(clients.client_id("k"), keepalive=10)
    assert ack.reason == 0 and ack.props.get("server_keep_alive") == 2


@pytest.mark.broker_config(max_inflight=4)
def test_v3_many_pending_qos2_is_not_a_disconnect(clients, topic):
    """Receive Maximum is a v5 promise; a v3 client never heard of it."""
    c = clients.raw(V311)
    c.connect(clients.client_id("q2"))
    for pid in range(1, 11):
        c.send(r.publish_packet(topic, b"x", 2, False, False, pid, None, V311))
    recs = [p for p in drain(c) if p.type == r.PUBREC]
    assert len(recs) == 10
    assert not c.is_closed()


@pytest.mark.broker_config(max_queued_messages=5)
def test_all_retained_messages_arrive_beyond_the_queue_bound(clients, topic):
    pub = clients.raw(V5)
    pub.connect(clients.client_id("rp"))
    for i in range(20):
        pub.publish("%s/%d" % (topic, i), b"r", qos=1, retain=True)
    c = clients.raw(V5)
    c.connect(clients.client_id("rs"))
    c.subscribe([(topic + "/#", 0)])
    got = [p for p in drain(c) if p.type == r.PUBLISH]
    assert len(got) == 20 and all(p.retain for p in got)
    for i in range(20):
        pub.publish("%s/%d" % (topic, i), b"", retain=True)


@pytest.mark.polygate_only  # mosquitto 2.0.11 leaves the fixed header out of the count
def test_packet_exactly_client_maximum_is_delivered(clients, uniq):
    """MQTT-3.1.2-24 discards only packets larger than the client's maximum."""
    topic = "mx/" + uniq
    c = clients.raw(V5)
    c.connect(clients.client_id("mx"), props={"maximum_packet_size": 60})
    c.subscribe([(topic, 0)])
    pub = clients.raw(V5)
    pub.connect(clients.client_id("p"))
    overhead = 2 + 2 + len(topic) + 1  # fixed header, topic, empty property block
    for size in (59, 60, 61):
        pub.publish(topic, b"x" * (size - overhead), qos=1)
    sizes = [p.payload for p in drain(c) if p.type == r.PUBLISH]
    assert [len(s) + overhead for s in sizes][:1] == [59]
    assert len(sizes) == 2, "the 60-byte packet fits; the 61-byte one does not"


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_subscribe_with_many_filters(clients, topic, version):
    c = clients.raw(version)
    c.connect(clients.client_id("mf"))
    filters = [("%s/%d" % (topic, i), 0) for i in range(1500)]
    ack = c.subscribe(filters, timeout=TIMEOUT * 2)
    assert ack.codes == [0] * 1500
    if version == V5:
        assert c.unsubscribe([f for f, _ in filters]).codes == [0] * 1500


@pytest.mark.polygate_only
def test_second_connect_with_bad_protocol_name_is_protocol_error(clients):
    c = clients.raw(V5)
    c.connect(clients.client_id("s"))
    c.send(r.connect_packet("x", V5, protocol_name="XYZ"))
    got = c.read_until_closed()
    assert [p.reason for p in got if p.type == r.DISCONNECT] == [0x82]


@pytest.mark.broker_config(retain_available=False, sys_interval=1)
def test_sys_published_when_retain_is_off(clients):
    c = clients.raw(V5)
    c.connect(clients.client_id("sy"))
    c.subscribe([("$SYS/broker/uptime", 0)])
    p = c.wait_for(r.PUBLISH, timeout=TIMEOUT)
    assert p.topic == "$SYS/broker/uptime"

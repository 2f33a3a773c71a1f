"""Malformed and forbidden input over a raw socket. Each case must close the connection
(MQTT 3.1.1 4.8 / MQTT 5.0 4.13), never deliver anything, and leave the broker serving
fresh clients. For MQTT 5 the server may send a DISCONNECT with a reason code first; if
it does, the code must fit the error. polygate is held to sending it (polygate_only)."""

import pytest

import rawmqtt as r
from helpers import V5, V311, VERSION_IDS, VERSIONS, assert_broker_serves, expect_closed

MALFORMED = r.RC_MALFORMED
PROTOCOL = r.RC_PROTOCOL_ERROR
TOPIC_INVALID = r.RC_TOPIC_NAME_INVALID


# (id, packet builder(version), versions, reason codes a server may use for it,
#  the code polygate must send)
AFTER_CONNECT = [
    ("remaining-length-5-bytes", lambda v: b"\x30\xff\xff\xff\xff\x01", VERSIONS,
     {MALFORMED}, MALFORMED),
    ("subscribe-reserved-flags-0000",
     lambda v: r.subscribe_packet(1, [("a/b", 0)], version=v, flags=0x0), VERSIONS,
     {MALFORMED}, MALFORMED),
    ("unsubscribe-reserved-flags-0000",
     lambda v: r.packet(r.UNSUBSCRIBE, 0x0, r.u16(1) + (b"\x00" if v == V5 else b"") + r.utf8("a/b")),
     VERSIONS, {MALFORMED}, MALFORMED),
    ("publish-qos-3", lambda v: r.publish_packet("a/b", b"x", qos=3, pid=1, version=v), VERSIONS,
     {MALFORMED}, MALFORMED),
    ("publish-topic-with-plus", lambda v: r.publish_packet("a/+/b", b"x", version=v), VERSIONS,
     {TOPIC_INVALID, PROTOCOL}, TOPIC_INVALID),
    ("publish-topic-with-hash", lambda v: r.publish_packet("a/#", b"x", qos=1, pid=2, version=v),
     VERSIONS, {TOPIC_INVALID, PROTOCOL}, TOPIC_INVALID),
    ("publish-topic-bad-utf8", lambda v: r.publish_packet(b"a/\xc3\x28", b"x", version=v), VERSIONS,
     {MALFORMED}, MALFORMED),
    ("publish-topic-nul", lambda v: r.publish_packet(b"a/\x00b", b"x", version=v), VERSIONS,
     {MALFORMED}, MALFORMED),
    ("publish-topic-utf16-surrogate", lambda v: r.publish_packet(b"a/\xed\xa0\x80", b"x", version=v),
     VERSIONS, {MALFORMED}, MALFORMED),
    ("publish-truncated-topic", lambda v: r.packet(r.PUBLISH, 0, r.u16(10) + b"abc"), VERSIONS,
     {MALFORMED}, MALFORMED),
    ("publish-packet-id-0", lambda v: r.publish_packet("a/b", b"x", qos=1, pid=0, version=v),
     VERSIONS, {MALFORMED, PROTOCOL}, None),
    ("publish-property-twice",
     lambda v: r.publish_packet("a/b", b"x", version=v, props=[
         ("payload_format_indicator", 0), ("payload_format_indicator", 0)]),
     [V5], {MALFORMED, PROTOCOL}, PROTOCOL),
    # MQTT 5 3.8.3.1: "It is a Protocol Error if the Maximum QoS field has the value 3"
    # (mosquitto says 0x81); MQTT 3.1.1 3.8.3-4: malformed
    ("subscribe-qos-3", lambda v: r.subscribe_packet(1, [("a/b", 3)], version=v), VERSIONS,
     {MALFORMED, PROTOCOL}, PROTOCOL),
    ("subscribe-reserved-option-bits", lambda v: r.subscribe_packet(1, [("a/b", 0xC1)], version=v),
     [V5], {MALFORMED}, MALFORMED),
    ("subscribe-no-filter", lambda v: r.subscribe_packet(1, [], version=v), VERSIONS,
     {MALFORMED, PROTOCOL}, PROTOCOL),
    ("second-connect", lambda v: r.connect_packet("again", v), VERSIONS, {PROTOCOL}, PROTOCOL),
]


def _cases(table):
    out = []
    for cid, build, versions, allowed, must in table:
        for v in versions:
            out.append(pytest.param(build, v, allowed, must, id="%s-%s" % (cid, VERSION_IDS[VERSIONS.index(v)])))
    return out


def _connected(clients, version):
    c = clients.raw(version)
    ack = c.connect(clients.client_id("m"))
    assert ack.reason == 0
    return c


@pytest.mark.parametrize("build,version,allowed,must", _cases(AFTER_CONNECT))
def test_malformed_packet_closes_connection(clients, topic, build, version, allowed, must):
    watcher = clients.paho(V5)
    watcher.subscribe("a/#", 1)  # nothing of the bad packets may be delivered
    c = _connected(clients, version)
    c.send(build(version))
    pkts = expect_closed(c)
    for p in pkts:
        assert p.type == r.DISCONNECT, "only a DISCONNECT may precede the close: %r" % pkts
        assert version == V5, "an MQTT 3.1.1 server never sends DISCONNECT"
        assert p.reason in allowed, "DISCONNECT reason 0x%02x, expected one of %s" % (
            p.reason, ["0x%02x" % x for x in sorted(allowed)])
    # the server handles a connection's packets in order: had the bad packet been
    # delivered, it would arrive before this sentinel
    watcher.publish("a/" + topic, b"sentinel", qos=1)
    assert [(m.topic, m.payload) for m in watcher.drain_until(b"sentinel")] == []
    assert_broker_serves(clients.broker, version)


@pytest.mark.polygate_only
@pytest.mark.parametrize("build,version,allowed,must",
                         [c for c in _cases(AFTER_CONNECT) if c.values[1] == V5])
def test_malformed_packet_v5_disconnect_reason(clients, build, version, allowed, must):
    """polygate sends DISCONNECT with the fitting reason code before closing (MQTT 5 4.13.1
    'SHOULD'); mosquitto often just closes."""
    c = _connected(clients, version)
    c.send(build(version))
    pkts = expect_closed(c)
    assert len(pkts) == 1 and pkts[0].type == r.DISCONNECT, pkts
    if must is not None:
        assert pkts[0].reason == must, "DISCONNECT 0x%02x, expected 0x%02x" % (pkts[0].reason, must)
    else:
        assert pkts[0].reason in allowed, pkts


@pytest.mark.polygate_only
@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_pingreq_with_reserved_flags_closes(clients, version):
    """Reserved fixed-header flags must be as specified (MQTT-2.2.2-2); mosquitto answers
    a PINGREQ with flags 0001 instead of closing."""
    c = _connected(clients, version)
    c.send(b"\xc1\x00")
    pkts = expect_closed(c)
    assert all(p.type == r.DISCONNECT for p in pkts), pkts
    if version == V5:
        assert [p.reason for p in pkts] == [MALFORMED]
    assert_broker_serves(clients.broker, version)


# ------------------------------------------------------------------ before / at CONNECT


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
@pytest.mark.parametrize("first", [
    pytest.param(r.pingreq_packet(), id="pingreq"),
    pytest.param(r.subscribe_packet(1, [("a/b", 0)]), id="subscribe"),
    pytest.param(r.publish_packet("a/b", b"x"), id="publish"),
    # "GET " reads as a PUBACK header with remaining length 0x45: padded so that the
    # server has the whole (bogus) packet and cannot be waiting for more bytes
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: " + b"e2e" * 20 + b"\r\n\r\n", id="http"),
])
def test_first_packet_not_connect_closes_silently(clients, version, first):
    c = clients.raw(version)
    c.send(first)
    pkts = expect_closed(c)
    # no CONNACK, and no DISCONNECT before a CONNACK (MQTT-3.14.0-1)
    assert pkts == [], pkts
    assert_broker_serves(clients.broker, version)


def _raw_connect(version, flags, tail=b""):
    vh = r.utf8("MQTT") + bytes([version, flags]) + r.u16(30)
    if version == V5:
        vh += b"\x00"
    return r.packet(r.CONNECT, 0, vh + r.utf8("badconnect") + tail)


BAD_CONNECT = [
    ("reserved-flag", lambda v: _raw_connect(v, 0x03), VERSIONS),
    ("will-qos-without-will-flag", lambda v: _raw_connect(v, 0x0A), VERSIONS),
    ("will-retain-without-will-flag", lambda v: _raw_connect(v, 0x22), VERSIONS),
    # MQTT 5 allows a password without a user name, MQTT 3.1.1 does not (MQTT-3.1.2-22)
    ("password-without-username", lambda v: _raw_connect(v, 0x42, r.binary(b"pw")), [V311]),
    ("fixed-header-flags", lambda v: r.packet(r.CONNECT, 0x1, r.connect_packet("x", v)[2:]), VERSIONS),
    ("truncated", lambda v: r.packet(r.CONNECT, 0, r.connect_packet("x", v)[2:-3]), VERSIONS),
]


@pytest.mark.parametrize("build,version", [
    pytest.param(b, v, id="%s-%s" % (cid, VERSION_IDS[VERSIONS.index(v)]))
    for cid, b, vs in BAD_CONNECT for v in vs])
def test_malformed_connect_refused(clients, version, build):
    c = clients.raw(version)
    c.send(build(version))
    pkts = expect_closed(c)
    assert len(pkts) <= 1, pkts
    if pkts:
        # a CONNACK with an error code may come first (v5: 0x80 or above)
        assert pkts[0].type == r.CONNACK and pkts[0].reason != 0, pkts
        if version == V5:
            assert pkts[0].reason >= 0x80
    assert_broker_serves(clients.broker, version)


@pytest.mark.parametrize("level", [2, 6, 7, 0])
@pytest.mark.parametrize("shape", ["v311-body", "v5-body"])
def test_unsupported_protocol_level(clients, level, shape):
    """CONNACK 0x01 (3.1.1 form) or 0x84 Unsupported Protocol Version (5.0 form), then close."""
    body = r.utf8("MQTT") + bytes([level, 0x02]) + r.u16(30)
    if shape == "v5-body":
        body += b"\x00"
    c = clients.raw(V311)
    c.send(r.packet(r.CONNECT, 0, body + r.utf8("lvl%d" % level)))
    pkts = expect_closed(c)
    assert len(pkts) == 1 and pkts[0].type == r.CONNACK, pkts
    ack = pkts[0]
    if len(ack.body) == 2 and ack.body[1] == r.CONNACK_V3_BAD_PROTOCOL_VERSION:
        return
    assert ack.body[1] == r.RC_UNSUPPORTED_PROTOCOL_VERSION, "CONNACK %r" % ack.body


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_packet_after_disconnect_is_not_processed(clients, topic, version):
    """After DISCONNECT the server closes; a PUBLISH sent behind it is not delivered."""
    sub = clients.paho(version)
    sub.subscribe(topic, 1)
    c = _connected(clients, version)
    c.send(r.disconnect_packet(version=version) + r.publish_packet(topic, b"late", version=version))
    expect_closed(c)
    p = clients.paho(version)
    p.publish(topic, b"sentinel", qos=1)
    assert sub.get().payload == b"sentinel"

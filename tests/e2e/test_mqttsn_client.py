"""The MQTT-SN test client itself (tests/e2e/mqttsn.py), without polygate: every message's
encoding against the byte layouts of the MQTT-SN v1.2 specification (section 5.4, the
Length forms of 5.2.1, the Flags of 5.3.4, the Forwarder Encapsulation of 5.5), the
strict decoder (what it refuses), and the client's dialogues against a scripted
gateway on a loopback UDP socket (will dialogue, QoS 2 both ways, REGISTER before
PUBLISH, sleeping, forwarder demultiplexing)."""

import socket
import threading
import time

import pytest

import mqttsn as sn


# ------------------------------------------------------------------ encodings


ENCODINGS = [
    # (id, built, expected octets)
    ("advertise", sn.advertise(5, 900), b"\x05\x00\x05\x03\x84"),
    ("searchgw", sn.searchgw(1), b"\x03\x01\x01"),
    ("gwinfo-from-gateway", sn.gwinfo(7), b"\x03\x02\x07"),
    ("gwinfo-with-gwadd", sn.gwinfo(7, b"\x0a\x00"), b"\x05\x02\x07\x0a\x00"),
    ("connect-clean-will", sn.connect("abc", clean=True, will=True, duration=30),
     b"\x09\x04\x0c\x01\x00\x1eabc"),
    ("connect-persistent", sn.connect("id", clean=False, duration=0xFFFF),
     b"\x08\x04\x00\x01\xff\xffid"),
    ("connack", sn.connack(3), b"\x03\x05\x03"),
    ("willtopicreq", sn.willtopicreq(), b"\x02\x06"),
    ("willtopic-qos1-retain", sn.willtopic("a/b", qos=1, retain=True), b"\x06\x07\x30a/b"),
    ("willtopic-qos2", sn.willtopic("w", qos=2), b"\x04\x07\x40w"),
    ("willtopic-empty", sn.willtopic(None), b"\x02\x07"),
    ("willmsgreq", sn.willmsgreq(), b"\x02\x08"),
    ("willmsg", sn.willmsg(b"bye"), b"\x05\x09bye"),
    ("register-by-client", sn.register(0, 1, "a/b"), b"\x09\x0a\x00\x00\x00\x01a/b"),
    ("register-by-gateway", sn.register(0x1234, 0x0102, "x"), b"\x07\x0a\x12\x34\x01\x02x"),
    ("regack", sn.regack(0x1234, 1, 0), b"\x07\x0b\x12\x34\x00\x01\x00"),
    ("regack-congestion", sn.regack(0, 9, sn.RC_CONGESTION), b"\x07\x0b\x00\x00\x00\x09\x01"),
    ("publish-qos0-normal", sn.publish(0x0102, 0, b"hi"), b"\x09\x0c\x00\x01\x02\x00\x00hi"),
    ("publish-qos1-retain-predefined",
     sn.publish(1, 2, b"hi", qos=1, retain=True, tid_type=sn.TID_PREDEFINED),
     b"\x09\x0c\x31\x00\x01\x00\x02hi"),
    ("publish-qos2-dup", sn.publish(5, 6, b"", qos=2, dup=True), b"\x07\x0c\xc0\x00\x05\x00\x06"),
    ("publish-qos-1-short", sn.publish("ab", 0, b"hi", qos=-1, tid_type=sn.TID_SHORT),
     b"\x09\x0c\x62ab\x00\x00hi"),
    ("puback", sn.puback(0x0A0B, 0x0C0D, sn.RC_INVALID_TOPIC_ID),
     b"\x07\x0d\x0a\x0b\x0c\x0d\x02"),
    ("pubcomp", sn.pubcomp(7), b"\x04\x0e\x00\x07"),
    ("pubrec", sn.pubrec(7), b"\x04\x0f\x00\x07"),
    ("pubrel", sn.pubrel(0x0107), b"\x04\x10\x01\x07"),
    ("subscribe-name-qos2", sn.subscribe(3, "a/#", qos=2), b"\x08\x12\x40\x00\x03a/#"),
    ("subscribe-predefined-qos1", sn.subscribe(3, 5, qos=1, tid_type=sn.TID_PREDEFINED),
     b"\x07\x12\x21\x00\x03\x00\x05"),
    ("subscribe-short-dup", sn.subscribe(3, "ab", tid_type=sn.TID_SHORT, dup=True),
     b"\x07\x12\x82\x00\x03ab"),
    ("suback", sn.suback(3, 5, qos=1), b"\x08\x13\x20\x00\x05\x00\x03\x00"),
    ("unsubscribe-name", sn.unsubscribe(4, "a/b"), b"\x08\x14\x00\x00\x04a/b"),
    ("unsubscribe-predefined", sn.unsubscribe(4, 9, sn.TID_PREDEFINED),
     b"\x07\x14\x01\x00\x04\x00\x09"),
    ("unsuback", sn.unsuback(4), b"\x04\x15\x00\x04"),
    ("pingreq", sn.pingreq(), b"\x02\x16"),
    ("pingreq-client-id", sn.pingreq("cid"), b"\x05\x16cid"),
    ("pingresp", sn.pingresp(), b"\x02\x17"),
    ("disconnect", sn.disconnect(), b"\x02\x18"),
    ("disconnect-sleep", sn.disconnect(60), b"\x04\x18\x00\x3c"),
    ("willtopicupd", sn.willtopicupd("t", qos=1, retain=True), b"\x04\x1a\x30t"),
    ("willtopicupd-empty", sn.willtopicupd(None), b"\x02\x1a"),
    ("willtopicresp", sn.willtopicresp(0), b"\x03\x1b\x00"),
    ("willmsgupd", sn.willmsgupd(b"m"), b"\x03\x1c\x6d"),
    ("willmsgresp", sn.willmsgresp(0), b"\x03\x1d\x00"),
    ("encapsulated-pingreq", sn.encapsulate(sn.pingreq(), b"\xaa\xbb", radius=1),
     b"\x05\xfe\x01\xaa\xbb\x02\x16"),
    ("encapsulated-empty-node-id", sn.encapsulate(sn.searchgw(0), b""),
     b"\x03\xfe\x00\x03\x01\x00"),
    ("long-form-forced", sn.frame(sn.SEARCHGW, b"\x00", long=True), b"\x01\x00\x05\x01\x00"),
]


@pytest.mark.parametrize("built,expected", [(b, e) for _, b, e in ENCODINGS],
                         ids=[i for i, _, _ in ENCODINGS])
def test_encoding(built, expected):
    assert built == expected


def test_length_forms_boundary():
    # 255 octets in all: the 1-octet form; 256: the 3-octet form, whose Length counts
    # its own 3 octets
    m = sn.publish(1, 0, b"x" * (255 - 7))
    assert len(m) == 255 and m[0] == 255
    m = sn.publish(1, 0, b"x" * (256 - 7))
    assert m[:3] == b"\x01\x01\x02" and len(m) == 258 and m[3] == sn.PUBLISH
    d = sn.decode(m)
    assert d.long_form and d.data == b"x" * 249
    m = sn.publish(1, 0, b"y" * 60000)
    assert m[0] == 1 and int.from_bytes(m[1:3], "big") == len(m) == 60009


def test_short_topic_ids():
    assert sn.short_id("ab") == 0x6162
    assert sn.short_name(0x6162) == "ab"
    with pytest.raises(ValueError):
        sn.short_id("abc")


def test_flags_decode():
    m = sn.decode(sn.publish(0x55, 9, b"p", qos=-1, retain=True, dup=True,
                             tid_type=sn.TID_SHORT))
    assert (m.dup, m.qos, m.retain, m.tid_type, m.topic_id, m.msg_id, m.data) == (
        True, -1, True, sn.TID_SHORT, 0x55, 9, b"p")
    c = sn.decode(sn.connect("x", clean=True, will=True, duration=5))
    assert (c.clean, c.will, c.protocol_id, c.duration, c.client_id) == (True, True, 1, 5, "x")


# ------------------------------------------------------------------ decoding


@pytest.mark.parametrize("i,built,expected", [(i, b, e) for i, b, e in ENCODINGS],
                         ids=[i for i, _, _ in ENCODINGS])
def test_decode_round_trip(i, built, expected):
    m = sn.decode(built)
    assert m.raw == expected or m.type == sn.ENCAPSULATED
    if m.type == sn.ENCAPSULATED:
        assert m.inner.raw == m.inner_raw
        assert m.node_id in (b"\xaa\xbb", b"")


def test_decode_fields():
    assert vars_of(sn.decode(sn.advertise(5, 900)), "gw_id", "duration") == (5, 900)
    assert vars_of(sn.decode(sn.gwinfo(7, b"ad")), "gw_id", "gw_add") == (7, b"ad")
    assert vars_of(sn.decode(sn.register(3, 4, "t/x")), "topic_id", "msg_id", "topic_name") == (
        3, 4, "t/x")
    assert vars_of(sn.decode(sn.suback(3, 5, qos=2, rc=1)), "msg_id", "topic_id", "qos", "rc") == (
        3, 5, 2, 1)
    s = sn.decode(sn.subscribe(3, "ab", tid_type=sn.TID_SHORT))
    assert (s.topic_id, s.tid_type) == (0x6162, sn.TID_SHORT)
    assert sn.decode(sn.subscribe(3, "a/+", qos=1)).topic_name == "a/+"
    assert sn.decode(sn.disconnect()).duration is None
    assert sn.decode(sn.disconnect(7)).duration == 7
    assert sn.decode(sn.pingreq()).client_id is None
    assert sn.decode(sn.pingreq("me")).client_id == "me"
    assert sn.decode(sn.willtopic(None)).will_topic is None
    w = sn.decode(sn.willtopicupd("w/t", qos=2, retain=True))
    assert (w.will_topic, w.qos, w.retain) == ("w/t", 2, True)
    e = sn.decode(sn.encapsulate(sn.publish("ab", 0, b"z", qos=-1, tid_type=sn.TID_SHORT),
                                 b"node-1", radius=3))
    assert (e.ctrl, e.radius, e.node_id, e.inner.type, e.inner.data) == (
        3, 3, b"node-1", sn.PUBLISH, b"z")


def vars_of(m, *names):
    return tuple(getattr(m, n) for n in names)


MALFORMED = [
    ("empty", b""),
    ("one-octet", b"\x05"),
    ("length-0", b"\x00\x16"),
    ("length-1-alone", b"\x01"),
    ("long-form-truncated", b"\x01\x00"),
    ("long-form-length-3", b"\x01\x00\x03\x16"),
    ("long-form-lying", b"\x01\x00\x10\x16"),
    ("length-longer-than-datagram", b"\x04\x01\x00"),
    ("length-shorter-than-datagram", b"\x02\x01\x00"),
    ("unknown-type-0x03", b"\x02\x03"),
    ("unknown-type-0x11", b"\x02\x11"),
    ("unknown-type-0x19", b"\x02\x19"),
    ("unknown-type-0x1e", b"\x02\x1e"),
    ("unknown-type-0xff", b"\x02\xff"),
    ("searchgw-no-radius", b"\x02\x01"),
    ("connack-no-code", b"\x02\x05"),
    ("regack-short", b"\x06\x0b\x00\x01\x00\x01"),
    ("publish-truncated", b"\x05\x0c\x20\x00\x01"),
    ("subscribe-topic-id-type-3", b"\x07\x12\x23\x00\x01\x00\x01"),
    ("subscribe-predefined-1-octet", b"\x06\x12\x21\x00\x01\x05"),
    ("disconnect-1-octet-duration", b"\x03\x18\x00"),
    ("pingresp-with-body", b"\x03\x17\x00"),
    ("register-bad-utf8", b"\x07\x0a\x00\x01\x00\x01\xff"),
    ("encapsulation-no-inner", b"\x04\xfe\x00\xaa"),
    ("encapsulation-length-past-end", b"\x09\xfe\x00\xaa"),
    ("encapsulation-inner-truncated", b"\x04\xfe\x00\xaa\x05\x16"),
    ("encapsulation-length-2", b"\x02\xfe\x02\x16"),
    ("encapsulation-nested", sn.encapsulate(sn.encapsulate(sn.pingreq(), b"a"), b"b")),
]


@pytest.mark.parametrize("data", [d for _, d in MALFORMED], ids=[i for i, _ in MALFORMED])
def test_decode_refuses(data):
    with pytest.raises(sn.Malformed):
        sn.decode(data)


# ------------------------------------------------------------------ dialogues


class ScriptedGateway:
    """A fake gateway on a loopback UDP socket following a script of steps:
    ("expect", bytes) - the next datagram must be exactly this (whoever sends it; the
    sender becomes the reply address), ("send", bytes) - send this to the last sender,
    ("sleep", seconds). Mismatches are collected in .errors."""

    def __init__(self, steps):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.steps = steps
        self.errors = []
        self.peer = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(5)
        for kind, arg in self.steps:
            try:
                if kind == "expect":
                    data, self.peer = self.sock.recvfrom(65536)
                    if data != arg:
                        self.errors.append("expected %r, got %r" % (arg, data))
                        return
                elif kind == "send":
                    self.sock.sendto(arg, self.peer)
                elif kind == "sleep":
                    time.sleep(arg)
            except socket.timeout:
                self.errors.append("timed out expecting %r" % (arg,))
                return

    def finish(self):
        self.thread.join(10)
        self.sock.close()
        assert not self.errors, self.errors
        assert not self.thread.is_alive()


def client_for(gw, **kw):
    return sn.Client("127.0.0.1", gw.port, timeout=3, **kw)


def test_connect_with_will_dialogue():
    gw = ScriptedGateway([
        ("expect", sn.connect("c1", clean=True, will=True, duration=10)),
        ("send", sn.willtopicreq()),
        ("expect", sn.willtopic("w/t", qos=1, retain=True)),
        ("send", sn.willmsgreq()),
        ("expect", sn.willmsg(b"gone")),
        ("send", sn.connack(0)),
        ("expect", sn.disconnect()),
        ("send", sn.disconnect()),
    ])
    c = client_for(gw)
    ack = c.connect("c1", duration=10, will={"topic": "w/t", "message": b"gone", "qos": 1,
                                             "retain": True})
    assert ack.rc == 0
    assert c.disconnect().duration is None
    gw.finish()


def test_connect_refused_before_will_dialogue():
    gw = ScriptedGateway([
        ("expect", sn.connect("c1", will=True, duration=60)),
        ("send", sn.connack(sn.RC_NOT_SUPPORTED)),
    ])
    c = client_for(gw)
    assert c.connect("c1", will={"topic": "t", "message": b""}, expect_rc=None).rc == 3
    with pytest.raises(AssertionError):
        gw2 = ScriptedGateway([("expect", sn.connect("c2")), ("send", sn.connack(1))])
        client_for(gw2).connect("c2")
    gw.finish()
    gw2.finish()


def test_register_publish_qos_handshakes():
    gw = ScriptedGateway([
        ("expect", sn.register(0, 1, "a/b")),
        ("send", sn.regack(0x0101, 1, 0)),
        ("expect", sn.publish(0x0101, 2, b"one", qos=1)),
        ("send", sn.puback(0x0101, 2, 0)),
        ("expect", sn.publish(0x0101, 3, b"two", qos=2, retain=True)),
        ("send", sn.pubrec(3)),
        ("expect", sn.pubrel(3)),
        ("send", sn.pubcomp(3)),
        ("expect", sn.publish(7, 0, b"pre", qos=0, tid_type=sn.TID_PREDEFINED)),
        ("expect", sn.publish("xy", 0, b"neg", qos=-1, tid_type=sn.TID_SHORT)),
        ("expect", sn.publish(0x0999, 4, b"bad", qos=2)),
        ("send", sn.puback(0x0999, 4, sn.RC_INVALID_TOPIC_ID)),
    ])
    c = client_for(gw)
    assert c.publish("a/b", b"one", qos=1).rc == 0  # registers first
    assert c.publish("a/b", b"two", qos=2, retain=True).type == sn.PUBCOMP
    assert c.publish(7, b"pre", tid_type=sn.TID_PREDEFINED) is None
    c.publish("xy", b"neg", qos=-1)
    assert c.publish(0x0999, b"bad", qos=2, expect_rc=sn.RC_INVALID_TOPIC_ID).type == sn.PUBACK
    gw.finish()


def test_subscribe_wildcard_register_then_publish_auto_acks():
    gw = ScriptedGateway([
        ("expect", sn.subscribe(1, "s/#", qos=2)),
        ("send", sn.suback(1, 0, qos=2)),
        ("send", sn.register(0x0042, 0x0100, "s/x")),
        ("expect", sn.regack(0x0042, 0x0100, 0)),
        ("send", sn.publish(0x0042, 0x0101, b"q1", qos=1)),
        ("expect", sn.puback(0x0042, 0x0101, 0)),
        ("send", sn.publish(0x0042, 0x0102, b"q2", qos=2)),
        ("expect", sn.pubrec(0x0102)),
        ("send", sn.publish(0x0042, 0x0102, b"q2", qos=2, dup=True)),  # resent
        ("expect", sn.pubrec(0x0102)),
        ("send", sn.pubrel(0x0102)),
        ("expect", sn.pubcomp(0x0102)),
        ("send", sn.publish("zz", 0, b"short", qos=0, tid_type=sn.TID_SHORT)),
        ("send", sn.publish(9, 0, b"pre", qos=0, tid_type=sn.TID_PREDEFINED)),
        ("expect", sn.pingreq()),
        ("send", sn.pingresp()),
    ])
    c = client_for(gw, predefined={9: "p/nine"})
    a = c.subscribe("s/#", qos=2)
    assert (a.rc, a.qos, a.topic_id) == (0, 2, 0)
    d1, d2, d3, d4 = c.get_n(4)
    assert (d1.topic, d1.payload, d1.qos) == ("s/x", b"q1", 1)
    assert (d2.topic, d2.payload, d2.qos) == ("s/x", b"q2", 2)  # once, though resent
    assert (d3.topic, d3.tid_type, d4.topic, d4.tid_type) == (
        "zz", sn.TID_SHORT, "p/nine", sn.TID_PREDEFINED)
    c.ping()
    c.expect_none(0.2)
    assert [n for n, _ in c.log] == ["REGISTER", "PUBLISH", "PUBLISH", "PUBLISH", "PUBREL",
                                     "PUBLISH", "PUBLISH"]
    gw.finish()


def test_manual_acks_and_stash():
    gw = ScriptedGateway([
        ("expect", sn.pingreq()),
        ("send", sn.register(5, 1, "m/t")),
        ("send", sn.publish(5, 2, b"x", qos=1)),
        ("send", sn.pingresp()),
        ("expect", sn.regack(5, 1, 0)),
    ])
    c = client_for(gw, auto_regack=False, auto_ack=False)
    c.ping()
    r = c.wait_for(sn.REGISTER)
    assert (r.topic_id, r.topic_name) == (5, "m/t")
    c.send(sn.regack(5, 1, 0))
    d = c.get()
    assert (d.topic, d.qos, d.msg_id) == ("m/t", 1, 2)
    gw.finish()


def test_sleep_and_wake():
    gw = ScriptedGateway([
        ("expect", sn.disconnect(30)),
        ("send", sn.disconnect()),
        ("expect", sn.pingreq("sleepy")),
        ("send", sn.register(3, 1, "q/a")),
        ("expect", sn.regack(3, 1, 0)),
        ("send", sn.publish(3, 2, b"queued", qos=1)),
        ("expect", sn.puback(3, 2, 0)),
        ("send", sn.pingresp()),
    ])
    c = client_for(gw)
    c.client_id = "sleepy"
    assert c.sleep(30).type == sn.DISCONNECT
    got = c.wake()
    assert [(d.topic, d.payload) for d in got] == [("q/a", b"queued")]
    assert not c.deliveries
    gw.finish()


def test_will_updates():
    gw = ScriptedGateway([
        ("expect", sn.willtopicupd("n/w", qos=2)),
        ("send", sn.willtopicresp(0)),
        ("expect", sn.willmsgupd(b"new")),
        ("send", sn.willmsgresp(0)),
        ("expect", sn.willtopicupd(None)),
        ("send", sn.willtopicresp(0)),
    ])
    c = client_for(gw)
    assert c.willtopicupd("n/w", qos=2).rc == 0
    assert c.willmsgupd(b"new").rc == 0
    assert c.willtopicupd(None).rc == 0
    gw.finish()


def test_forwarder_demultiplexes_nodes():
    gw = ScriptedGateway([
        ("expect", sn.encapsulate(sn.connect("n1"), b"\x01")),
        ("expect", sn.encapsulate(sn.connect("n2"), b"\x02\x02")),
        ("send", sn.encapsulate(sn.connack(0), b"\x02\x02")),
        ("send", sn.encapsulate(sn.connack(0), b"\x01")),
        ("expect", sn.encapsulate(sn.pingreq(), b"\x01")),
        ("send", sn.encapsulate(sn.pingresp(), b"\x01")),
    ])
    fwd = sn.Forwarder("127.0.0.1", gw.port)
    a = sn.Client(transport=fwd.node(b"\x01"), timeout=3)
    b = sn.Client(transport=fwd.node(b"\x02\x02"), timeout=3)
    a.send(sn.connect("n1"))
    b.send(sn.connect("n2"))
    assert b.wait_for(sn.CONNACK).rc == 0
    assert a.wait_for(sn.CONNACK).rc == 0
    a.ping()
    assert a.transport.last_envelope.node_id == b"\x01"
    assert [e.node_id for e in fwd.envelopes] == [b"\x02\x02", b"\x01", b"\x01"]
    fwd.close()
    gw.finish()


def test_malformed_reply_is_a_violation():
    gw = ScriptedGateway([("expect", sn.pingreq()), ("send", b"\x03\x17")])
    c = client_for(gw)
    with pytest.raises(sn.ProtocolViolation):
        c.ping()
    gw.finish()

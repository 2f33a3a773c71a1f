"""mqttsn - a small MQTT-SN v1.2 client over UDP for end-to-end tests.

Written from the MQTT-SN v1.2 specification (Stanford-Clark and Truong, IBM, November
2013), independent of any polygate C code. It encodes every message of the
specification byte by byte (so a test can also send broken ones), decodes what the
gateway sends back strictly (a malformed reply is a ProtocolViolation), and runs the
dialogues of a client: SEARCHGW, CONNECT with the will dialogue, REGISTER, PUBLISH at
QoS -1/0/1/2, SUBSCRIBE/UNSUBSCRIBE by topic name, predefined topic id or short topic
name, PINGREQ, DISCONNECT, sleeping (DISCONNECT with a duration, PINGREQ with the client
id to collect what was queued), WILLTOPICUPD/WILLMSGUPD. REGISTERs from the gateway are
answered with REGACK and its PUBLISHes with PUBACK/PUBREC/PUBCOMP automatically unless
a test turns that off.

The wire format (specification section 5):

    Length (1 octet, 2..255; or 0x01 followed by 2 octets, big-endian, for any length
    up to 65535; the Length counts the whole message including itself), MsgType (1
    octet), then the variable part.

    Flags: DUP (bit 7), QoS (bits 6-5: 00 QoS 0, 01 QoS 1, 10 QoS 2, 11 QoS -1),
    Retain (bit 4), Will (bit 3), CleanSession (bit 2), TopicIdType (bits 1-0:
    00 normal topic id (SUBSCRIBE: topic name), 01 predefined topic id, 10 short topic
    name, 11 reserved).

    Forwarder Encapsulation (5.5): Length (1 octet: the octets up to the end of the
    Wireless Node Id, including the Length itself), MsgType 0xFE, Ctrl (1 octet: bits
    1-0 the broadcast radius, the others reserved), Wireless Node Id (Length - 3
    octets), then the complete encapsulated MQTT-SN message.

    c = Client(host, port)
    c.connect("sensor1", duration=10)
    tid = c.register("home/t1")
    c.publish(tid, b"21.5", qos=1)
    c.subscribe("home/#", qos=1)
    m = c.get()            # a Delivery: topic, payload, qos, retain, ...
    c.disconnect()
"""

import collections
import socket
import struct
import time

# Message types (5.2.2).
ADVERTISE = 0x00
SEARCHGW = 0x01
GWINFO = 0x02
CONNECT = 0x04
CONNACK = 0x05
WILLTOPICREQ = 0x06
WILLTOPIC = 0x07
WILLMSGREQ = 0x08
WILLMSG = 0x09
REGISTER = 0x0A
REGACK = 0x0B
PUBLISH = 0x0C
PUBACK = 0x0D
PUBCOMP = 0x0E
PUBREC = 0x0F
PUBREL = 0x10
SUBSCRIBE = 0x12
SUBACK = 0x13
UNSUBSCRIBE = 0x14
UNSUBACK = 0x15
PINGREQ = 0x16
PINGRESP = 0x17
DISCONNECT = 0x18
WILLTOPICUPD = 0x1A
WILLTOPICRESP = 0x1B
WILLMSGUPD = 0x1C
WILLMSGRESP = 0x1D
ENCAPSULATED = 0xFE

NAMES = {
    ADVERTISE: "ADVERTISE", SEARCHGW: "SEARCHGW", GWINFO: "GWINFO", CONNECT: "CONNECT",
    CONNACK: "CONNACK", WILLTOPICREQ: "WILLTOPICREQ", WILLTOPIC: "WILLTOPIC",
    WILLMSGREQ: "WILLMSGREQ", WILLMSG: "WILLMSG", REGISTER: "REGISTER", REGACK: "REGACK",
    PUBLISH: "PUBLISH", PUBACK: "PUBACK", PUBCOMP: "PUBCOMP", PUBREC: "PUBREC",
    PUBREL: "PUBREL", SUBSCRIBE: "SUBSCRIBE", SUBACK: "SUBACK", UNSUBSCRIBE: "UNSUBSCRIBE",
    UNSUBACK: "UNSUBACK", PINGREQ: "PINGREQ", PINGRESP: "PINGRESP",
    DISCONNECT: "DISCONNECT", WILLTOPICUPD: "WILLTOPICUPD", WILLTOPICRESP: "WILLTOPICRESP",
    WILLMSGUPD: "WILLMSGUPD", WILLMSGRESP: "WILLMSGRESP", ENCAPSULATED: "ENCAPSULATED",
}

# Flags (5.3.4).
FLAG_DUP = 0x80
FLAG_RETAIN = 0x10
FLAG_WILL = 0x08
FLAG_CLEAN = 0x04
QOS_BITS = {0: 0x00, 1: 0x20, 2: 0x40, -1: 0x60}
TID_NORMAL = 0b00      # a topic id from REGISTER (in SUBSCRIBE/UNSUBSCRIBE: a topic name)
TID_PREDEFINED = 0b01
TID_SHORT = 0b10
TID_RESERVED = 0b11

# Return codes (5.3.10).
RC_ACCEPTED = 0x00
RC_CONGESTION = 0x01
RC_INVALID_TOPIC_ID = 0x02
RC_NOT_SUPPORTED = 0x03

PROTOCOL_ID = 0x01


class Malformed(ValueError):
    """Bytes that are not a well-formed MQTT-SN v1.2 message."""


class ProtocolViolation(AssertionError):
    """The gateway sent something the specification does not allow here."""


# ---------------------------------------------------------------- encoders


def u16(n):
    return struct.pack("!H", n)


def _b(s):
    return s.encode("utf-8") if isinstance(s, str) else bytes(s)


def frame(mtype, body=b"", long=None):
    """A message: Length, MsgType, body. The 3-octet Length form is used when the message
    is longer than 255 octets, or always when long=True (never when long=False, which
    then may give an impossible length: for malformed-input tests)."""
    body = bytes(body)
    n = 2 + len(body)
    if long is None:
        long = n > 255
    if long:
        return b"\x01" + u16((n + 2) & 0xFFFF) + bytes([mtype]) + body
    return bytes([n & 0xFF, mtype]) + body


def flags(dup=False, qos=0, retain=False, will=False, clean=False, tid_type=TID_NORMAL):
    return ((FLAG_DUP if dup else 0) | QOS_BITS[qos] | (FLAG_RETAIN if retain else 0)
            | (FLAG_WILL if will else 0) | (FLAG_CLEAN if clean else 0) | (tid_type & 0x03))


def flag_qos(f):
    """The QoS of a Flags octet: 0, 1, 2 or -1."""
    return {0: 0, 1: 1, 2: 2, 3: -1}[(f >> 5) & 0x03]


def short_id(name):
    """The 16-bit topic id field of a short topic name (its two characters)."""
    b = _b(name)
    if len(b) != 2:
        raise ValueError("a short topic name is 2 octets, not %r" % (name,))
    return struct.unpack("!H", b)[0]


def short_name(topic_id):
    return struct.pack("!H", topic_id).decode("utf-8", "replace")


def advertise(gw_id, duration):
    return frame(ADVERTISE, bytes([gw_id]) + u16(duration))


def searchgw(radius=0):
    return frame(SEARCHGW, bytes([radius]))


def gwinfo(gw_id, gw_add=b""):
    return frame(GWINFO, bytes([gw_id]) + _b(gw_add))


def connect(client_id, clean=True, will=False, duration=60, protocol_id=PROTOCOL_ID,
            flag_bits=None):
    f = flags(will=will, clean=clean) if flag_bits is None else flag_bits
    return frame(CONNECT, bytes([f, protocol_id]) + u16(duration) + _b(client_id))


def connack(rc=RC_ACCEPTED):
    return frame(CONNACK, bytes([rc]))


def willtopicreq():
    return frame(WILLTOPICREQ)


def willtopic(topic=None, qos=0, retain=False):
    """WILLTOPIC; topic=None gives the empty WILLTOPIC (no Flags, no topic: 2 octets)."""
    if topic is None:
        return frame(WILLTOPIC)
    return frame(WILLTOPIC, bytes([flags(qos=qos, retain=retain)]) + _b(topic))


def willmsgreq():
    return frame(WILLMSGREQ)


def willmsg(message):
    return frame(WILLMSG, _b(message))


def register(topic_id, msg_id, topic_name):
    return frame(REGISTER, u16(topic_id) + u16(msg_id) + _b(topic_name))


def regack(topic_id, msg_id, rc=RC_ACCEPTED):
    return frame(REGACK, u16(topic_id) + u16(msg_id) + bytes([rc]))


def publish(topic_id, msg_id, data, qos=0, retain=False, dup=False, tid_type=TID_NORMAL,
            long=None):
    """PUBLISH. topic_id: an int, or a short topic name (2 characters) as str/bytes."""
    if not isinstance(topic_id, int):
        topic_id = short_id(topic_id)
    f = flags(dup=dup, qos=qos, retain=retain, tid_type=tid_type)
    return frame(PUBLISH, bytes([f]) + u16(topic_id) + u16(msg_id) + _b(data), long)


def puback(topic_id, msg_id, rc=RC_ACCEPTED):
    return frame(PUBACK, u16(topic_id) + u16(msg_id) + bytes([rc]))


def pubrec(msg_id):
    return frame(PUBREC, u16(msg_id))


def pubrel(msg_id):
    return frame(PUBREL, u16(msg_id))


def pubcomp(msg_id):
    return frame(PUBCOMP, u16(msg_id))


def _topic_field(topic, tid_type):
    if tid_type == TID_NORMAL:
        return _b(topic)  # a topic name (may hold wildcards)
    if tid_type == TID_SHORT and not isinstance(topic, int):
        return _b(topic)
    return u16(topic)


def subscribe(msg_id, topic, qos=0, tid_type=TID_NORMAL, dup=False):
    """SUBSCRIBE: topic is a name (TID_NORMAL), a predefined id (int, TID_PREDEFINED) or
    a short name (2 characters, TID_SHORT)."""
    f = flags(dup=dup, qos=qos, tid_type=tid_type)
    return frame(SUBSCRIBE, bytes([f]) + u16(msg_id) + _topic_field(topic, tid_type))


def suback(msg_id, topic_id, qos=0, rc=RC_ACCEPTED):
    return frame(SUBACK, bytes([flags(qos=qos)]) + u16(topic_id) + u16(msg_id) + bytes([rc]))


def unsubscribe(msg_id, topic, tid_type=TID_NORMAL):
    f = flags(tid_type=tid_type)
    return frame(UNSUBSCRIBE, bytes([f]) + u16(msg_id) + _topic_field(topic, tid_type))


def unsuback(msg_id):
    return frame(UNSUBACK, u16(msg_id))


def pingreq(client_id=None):
    return frame(PINGREQ, b"" if client_id is None else _b(client_id))


def pingresp():
    return frame(PINGRESP)


def disconnect(duration=None):
    return frame(DISCONNECT, b"" if duration is None else u16(duration))


def willtopicupd(topic=None, qos=0, retain=False):
    """WILLTOPICUPD; topic=None gives the empty one (deletes the will)."""
    if topic is None:
        return frame(WILLTOPICUPD)
    return frame(WILLTOPICUPD, bytes([flags(qos=qos, retain=retain)]) + _b(topic))


def willtopicresp(rc=RC_ACCEPTED):
    return frame(WILLTOPICRESP, bytes([rc]))


def willmsgupd(message):
    return frame(WILLMSGUPD, _b(message))


def willmsgresp(rc=RC_ACCEPTED):
    return frame(WILLMSGRESP, bytes([rc]))


def encapsulate(message, node_id, radius=0, ctrl=None):
    """A Forwarder Encapsulation frame around a complete MQTT-SN message."""
    node_id = _b(node_id)
    if 3 + len(node_id) > 255:
        raise ValueError("wireless node id too long")
    c = (radius & 0x03) if ctrl is None else ctrl
    return bytes([3 + len(node_id), ENCAPSULATED, c]) + node_id + bytes(message)


# ---------------------------------------------------------------- decoder


class Message:
    """A decoded MQTT-SN message. Fields by type:
      ADVERTISE gw_id duration; SEARCHGW radius; GWINFO gw_id gw_add;
      CONNECT flags protocol_id duration client_id; CONNACK/WILLTOPICRESP/WILLMSGRESP rc;
      WILLTOPIC/WILLTOPICUPD flags will_topic (None when empty); WILLMSG/WILLMSGUPD will_msg;
      REGISTER topic_id msg_id topic_name; REGACK/PUBACK topic_id msg_id rc;
      PUBLISH flags topic_id msg_id data; PUBREC/PUBREL/PUBCOMP/UNSUBACK msg_id;
      SUBSCRIBE/UNSUBSCRIBE flags msg_id topic_name or topic_id;
      SUBACK flags topic_id msg_id rc; PINGREQ client_id (None when absent);
      DISCONNECT duration (None when absent);
      ENCAPSULATED ctrl radius node_id inner (a Message) inner_raw.
    flags-carrying messages also have dup, qos, retain, will, clean, tid_type."""

    def __init__(self, mtype, raw, long_form):
        self.type = mtype
        self.raw = bytes(raw)
        self.long_form = long_form

    @property
    def name(self):
        return NAMES.get(self.type, "type0x%02x" % self.type)

    def _set_flags(self, f):
        self.flags = f
        self.dup = bool(f & FLAG_DUP)
        self.qos = flag_qos(f)
        self.retain = bool(f & FLAG_RETAIN)
        self.will = bool(f & FLAG_WILL)
        self.clean = bool(f & FLAG_CLEAN)
        self.tid_type = f & 0x03

    def __repr__(self):
        skip = {"type", "raw", "long_form", "flags", "inner_raw"}
        fields = ["%s=%r" % (k, v if not isinstance(v, bytes) or len(v) <= 40 else v[:40] + b"...")
                  for k, v in self.__dict__.items() if k not in skip]
        return "<%s %s>" % (self.name, " ".join(fields))


def split_header(data):
    """(length, header size) of a message's Length field; Malformed if impossible."""
    data = bytes(data)
    if len(data) < 1:
        raise Malformed("empty datagram")
    if data[0] == 0x01:
        if len(data) < 3:
            raise Malformed("3-octet Length field truncated")
        n = struct.unpack("!H", data[1:3])[0]
        if n < 4:
            raise Malformed("3-octet Length %d < 4" % n)
        return n, 3
    if data[0] == 0x00:
        raise Malformed("Length 0")
    if data[0] < 2:
        raise Malformed("Length %d" % data[0])
    return data[0], 1


def decode(data, allow_trailing=False):
    """One MQTT-SN message from a datagram. The Length must match the datagram's size
    (unless allow_trailing, for the message inside an encapsulation, where it must still
    fit). Raises Malformed."""
    data = bytes(data)
    n, hl = split_header(data)
    if hl == 1 and len(data) >= 2 and data[1] == ENCAPSULATED:
        return _decode_encapsulated(data)  # its Length covers only the header
    if n > len(data):
        raise Malformed("Length %d > %d octets" % (n, len(data)))
    if n < len(data) and not allow_trailing:
        raise Malformed("Length %d < datagram of %d octets" % (n, len(data)))
    if len(data) < hl + 1:
        raise Malformed("no MsgType")
    mtype = data[hl]
    if mtype == ENCAPSULATED:
        raise Malformed("an encapsulation's Length is 1 octet")
    msg = data[:n]
    body = msg[hl + 1:]
    m = Message(mtype, msg, hl == 3)
    _decode_body(m, mtype, body)
    return m


def _need(body, size, what, exact=True):
    if (len(body) != size) if exact else (len(body) < size):
        raise Malformed("%s: %d octets of body, %s %d" % (
            what, len(body), "expected" if exact else "at least", size))


def _text(b, what):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("%s: not UTF-8: %r" % (what, b))


def _decode_body(m, t, b):
    if t == ADVERTISE:
        _need(b, 3, "ADVERTISE")
        m.gw_id, m.duration = b[0], struct.unpack("!H", b[1:3])[0]
    elif t == SEARCHGW:
        _need(b, 1, "SEARCHGW")
        m.radius = b[0]
    elif t == GWINFO:
        _need(b, 1, "GWINFO", exact=False)
        m.gw_id, m.gw_add = b[0], b[1:]
    elif t == CONNECT:
        _need(b, 5, "CONNECT", exact=False)  # Flags, ProtocolId, Duration, ClientId 1..
        m._set_flags(b[0])
        m.protocol_id = b[1]
        m.duration = struct.unpack("!H", b[2:4])[0]
        m.client_id = _text(b[4:], "CONNECT client id")
    elif t in (CONNACK, WILLTOPICRESP, WILLMSGRESP):
        _need(b, 1, NAMES[t])
        m.rc = b[0]
    elif t in (WILLTOPICREQ, WILLMSGREQ, PINGRESP):
        _need(b, 0, NAMES[t])
    elif t in (WILLTOPIC, WILLTOPICUPD):
        if not b:
            m.will_topic = None  # the empty message
            m._set_flags(0)
        else:
            _need(b, 2, NAMES[t], exact=False)
            m._set_flags(b[0])
            m.will_topic = _text(b[1:], "will topic")
    elif t in (WILLMSG, WILLMSGUPD):
        m.will_msg = b
    elif t == REGISTER:
        _need(b, 5, "REGISTER", exact=False)
        m.topic_id, m.msg_id = struct.unpack("!HH", b[:4])
        m.topic_name = _text(b[4:], "REGISTER topic name")
    elif t in (REGACK, PUBACK):
        _need(b, 5, NAMES[t])
        m.topic_id, m.msg_id = struct.unpack("!HH", b[:4])
        m.rc = b[4]
    elif t == PUBLISH:
        _need(b, 5, "PUBLISH", exact=False)
        m._set_flags(b[0])
        m.topic_id, m.msg_id = struct.unpack("!HH", b[1:5])
        m.data = b[5:]
    elif t in (PUBREC, PUBREL, PUBCOMP, UNSUBACK):
        _need(b, 2, NAMES[t])
        m.msg_id = struct.unpack("!H", b)[0]
    elif t in (SUBSCRIBE, UNSUBSCRIBE):
        _need(b, 4, NAMES[t], exact=False)
        m._set_flags(b[0])
        m.msg_id = struct.unpack("!H", b[1:3])[0]
        rest = b[3:]
        if m.tid_type == TID_NORMAL:
            m.topic_name = _text(rest, "topic name")
        elif m.tid_type in (TID_PREDEFINED, TID_SHORT):
            _need(rest, 2, NAMES[t] + " topic id")
            m.topic_id = struct.unpack("!H", rest)[0]
        else:
            raise Malformed("%s: topic id type 0b11" % NAMES[t])
    elif t == SUBACK:
        _need(b, 6, "SUBACK")
        m._set_flags(b[0])
        m.topic_id, m.msg_id = struct.unpack("!HH", b[1:5])
        m.rc = b[5]
    elif t == PINGREQ:
        m.client_id = _text(b, "PINGREQ client id") if b else None
    elif t == DISCONNECT:
        if len(b) not in (0, 2):
            raise Malformed("DISCONNECT: %d octets of body" % len(b))
        m.duration = struct.unpack("!H", b)[0] if b else None
    else:
        raise Malformed("unknown MsgType 0x%02x" % t)


def _decode_encapsulated(data):
    if data[0] == 0x01:
        raise Malformed("an encapsulation's Length is 1 octet")
    n = data[0]
    if n < 3:
        raise Malformed("encapsulation Length %d < 3" % n)
    if n > len(data):
        raise Malformed("encapsulation Length %d > %d octets" % (n, len(data)))
    m = Message(ENCAPSULATED, data, False)
    m.ctrl = data[2]
    m.radius = data[2] & 0x03
    m.node_id = data[3:n]
    m.inner_raw = data[n:]
    if not m.inner_raw:
        raise Malformed("encapsulation without a message")
    m.inner = decode(m.inner_raw)
    if m.inner.type == ENCAPSULATED:
        raise Malformed("encapsulation inside an encapsulation")
    return m


# ---------------------------------------------------------------- transports


TIMEOUT = 5.0


def _recv_from(sock, peer, deadline, strict_peer):
    """One datagram from peer before deadline (others are dropped when strict_peer)."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no datagram in time")
        sock.settimeout(left)
        try:
            data, addr = sock.recvfrom(65536)
        except socket.timeout:
            raise TimeoutError("no datagram in time")
        except ConnectionRefusedError:
            continue  # ICMP port unreachable for an earlier datagram
        if strict_peer and addr != peer:
            continue
        return data


class UdpTransport:
    """A UDP socket of its own talking to the gateway."""

    def __init__(self, host, port, bind_host="127.0.0.1"):
        self.peer = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((bind_host, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.address = self.sock.getsockname()
        self.last_envelope = None

    def send(self, data):
        self.sock.sendto(bytes(data), self.peer)

    def recv(self, deadline):
        return _recv_from(self.sock, self.peer, deadline, True)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Forwarder:
    """A forwarder (5.5): one UDP socket relaying for several wireless nodes. Every message
    a node's client sends goes out wrapped in a Forwarder Encapsulation with that node's
    Wireless Node Id; what comes back is unwrapped and handed to the node it names.
    Everything received is kept in .envelopes (decoded ENCAPSULATED messages, or the raw
    bytes of anything that was not one)."""

    def __init__(self, host, port, radius=0):
        self.peer = (host, port)
        self.radius = radius
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.address = self.sock.getsockname()
        self.queues = collections.defaultdict(collections.deque)
        self.envelopes = []
        self.unwrapped = []  # datagrams that came back without an encapsulation

    def node(self, node_id):
        return NodeTransport(self, _b(node_id))

    def _read_one(self, deadline):
        data = _recv_from(self.sock, self.peer, deadline, True)
        try:
            env = decode(data)
        except Malformed as e:
            raise ProtocolViolation("forwarder got a malformed datagram %r: %s" % (data, e))
        if env.type != ENCAPSULATED:
            self.unwrapped.append(env)
            return
        self.envelopes.append(env)
        self.queues[env.node_id].append(env)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class NodeTransport:
    """One wireless node behind a Forwarder."""

    def __init__(self, fwd, node_id):
        self.fwd = fwd
        self.node_id = node_id
        self.address = fwd.address
        self.last_envelope = None

    def send(self, data):
        self.fwd.sock.sendto(encapsulate(data, self.node_id, self.fwd.radius), self.fwd.peer)

    def recv(self, deadline):
        q = self.fwd.queues[self.node_id]
        while not q:
            self.fwd._read_one(deadline)
        env = q.popleft()
        self.last_envelope = env
        return env.inner_raw

    def close(self):
        pass


# ---------------------------------------------------------------- the client


class Delivery:
    """A PUBLISH the gateway sent to this client, with its topic resolved."""

    def __init__(self, m, topic):
        self.topic = topic
        self.payload = m.data
        self.qos = m.qos
        self.retain = m.retain
        self.dup = m.dup
        self.topic_id = m.topic_id
        self.tid_type = m.tid_type
        self.msg_id = m.msg_id
        self.message = m

    def __repr__(self):
        return "<Delivery topic=%r payload=%r qos=%d retain=%d dup=%d tid=%d/%d mid=%d>" % (
            self.topic, self.payload[:40], self.qos, self.retain, self.dup, self.tid_type,
            self.topic_id, self.msg_id)


class Client:
    """One MQTT-SN client. transport: a UdpTransport (made from host/port when None) or a
    Forwarder's node. predefined: {id: topic} as the gateway is configured, to name the
    deliveries on predefined topic ids.

    auto_regack: answer the gateway's REGISTERs with REGACK (regack_rc).
    auto_ack: answer its PUBLISHes (QoS 1 PUBACK, QoS 2 PUBREC then PUBCOMP to PUBREL).
    Everything that is neither consumed by a dialogue nor answered automatically waits in
    .stash for wait_for(); the PUBLISHes are .deliveries (get()), and every REGISTER and
    PUBLISH from the gateway is also kept, in order, in .log."""

    def __init__(self, host=None, port=None, transport=None, timeout=TIMEOUT, predefined=None,
                 auto_regack=True, auto_ack=True):
        self.transport = transport or UdpTransport(host, port)
        self.timeout = timeout
        self.predefined = dict(predefined or {})
        self.auto_regack = auto_regack
        self.regack_rc = RC_ACCEPTED
        self.auto_ack = auto_ack
        self.topics = {}           # normal topic id -> name (REGISTER, REGACK, SUBACK)
        self.stash = []
        self.deliveries = collections.deque()
        self.log = []              # (type name, Message) of REGISTER/PUBLISH/PUBREL received
        self._qos2_in = set()      # msg ids PUBREC'd, waiting for PUBREL
        self._mid = 0
        self.client_id = None

    @property
    def address(self):
        return self.transport.address

    def close(self):
        self.transport.close()

    # -- low level
    def next_mid(self):
        self._mid = self._mid % 65535 + 1
        return self._mid

    def send(self, data):
        """Sends raw bytes (through the forwarder when there is one)."""
        self.transport.send(data)

    def recv_raw(self, timeout=None):
        """The next datagram's bytes, undecoded and not dispatched."""
        return self.transport.recv(time.monotonic() + (self.timeout if timeout is None else timeout))

    def recv(self, timeout=None):
        """The next message from the gateway, decoded, undispatched. TimeoutError if none."""
        data = self.recv_raw(timeout)
        try:
            return decode(data)
        except Malformed as e:
            raise ProtocolViolation("malformed message from the gateway %r: %s" % (data, e))

    def _dispatch(self, m):
        """Automatic answers; returns True when the message was consumed."""
        if m.type == REGISTER:
            self.log.append(("REGISTER", m))
            self.topics[m.topic_id] = m.topic_name
            if self.auto_regack:
                self.send(regack(m.topic_id, m.msg_id, self.regack_rc))
                return True
            return False
        if m.type == PUBLISH:
            self.log.append(("PUBLISH", m))
            if m.qos == 2 and m.msg_id in self._qos2_in:
                if self.auto_ack:
                    self.send(pubrec(m.msg_id))  # a resend: acknowledge, deliver once
                return True
            self.deliveries.append(Delivery(m, self.topic_name(m.tid_type, m.topic_id)))
            if self.auto_ack:
                if m.qos == 1:
                    self.send(puback(m.topic_id, m.msg_id, RC_ACCEPTED))
                elif m.qos == 2:
                    self._qos2_in.add(m.msg_id)
                    self.send(pubrec(m.msg_id))
            return True
        if m.type == PUBREL:
            self.log.append(("PUBREL", m))
            if self.auto_ack:
                self._qos2_in.discard(m.msg_id)
                self.send(pubcomp(m.msg_id))
                return True
        return False

    def topic_name(self, tid_type, topic_id):
        if tid_type == TID_SHORT:
            return short_name(topic_id)
        if tid_type == TID_PREDEFINED:
            return self.predefined.get(topic_id)
        return self.topics.get(topic_id)

    def pump(self, timeout):
        """Reads and dispatches everything arriving within timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                m = self.recv(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return
            if not self._dispatch(m):
                self.stash.append(m)

    def wait_for(self, types, timeout=None, pred=None):
        """The first message of one of types (an int or a collection) for which pred holds,
        from the stash or the socket; the others are stashed or answered automatically.
        Waiting for REGISTER, PUBLISH or PUBREL takes that message out of the automatic
        answers: the caller answers it."""
        if isinstance(types, int):
            types = (types,)
        ok = lambda m: m.type in types and (pred is None or pred(m))
        for i, m in enumerate(self.stash):
            if ok(m):
                del self.stash[i]
                return m
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            try:
                m = self.recv(max(0.0, left))
            except TimeoutError:
                raise TimeoutError("%s: no %s within %.1fs; stash %r" % (
                    self.client_id, "/".join(NAMES.get(t, hex(t)) for t in types),
                    self.timeout if timeout is None else timeout, self.stash[-5:]))
            if ok(m):
                # a REGISTER/PUBLISH/PUBREL waited for is logged (a REGISTER's topic is
                # noted) but neither answered nor delivered: the test does that
                if m.type in (REGISTER, PUBLISH, PUBREL):
                    self.log.append((m.name, m))
                    if m.type == REGISTER:
                        self.topics[m.topic_id] = m.topic_name
                return m
            if not self._dispatch(m):
                self.stash.append(m)

    def expect_silence(self, timeout):
        """Asserts the gateway sends nothing at all within timeout."""
        try:
            data = self.recv_raw(timeout)
        except TimeoutError:
            return
        raise AssertionError("%s: unexpected datagram %r" % (self.client_id, data))

    # -- deliveries
    def get(self, timeout=None):
        """The next PUBLISH delivered to this client (a Delivery)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self.deliveries:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%s: no PUBLISH within %.1fs (stash %r)" % (
                    self.client_id, self.timeout if timeout is None else timeout, self.stash[-5:]))
            try:
                m = self.recv(left)
            except TimeoutError:
                continue
            if not self._dispatch(m):
                self.stash.append(m)
        return self.deliveries.popleft()

    def get_n(self, n, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        out = []
        while len(out) < n:
            try:
                out.append(self.get(max(0.0, deadline - time.monotonic())))
            except AssertionError:
                raise AssertionError("%s: got %d of %d deliveries: %r" % (
                    self.client_id, len(out), n, out))
        return out

    def expect_none(self, timeout=0.5):
        """Asserts no PUBLISH is delivered within timeout (other messages are stashed)."""
        if self.deliveries:
            raise AssertionError("%s: unexpected delivery %r" % (self.client_id, self.deliveries[0]))
        self.pump(timeout)
        if self.deliveries:
            raise AssertionError("%s: unexpected delivery %r" % (self.client_id, self.deliveries[0]))

    # -- dialogues
    def searchgw(self, radius=0, timeout=None):
        self.send(searchgw(radius))
        return self.wait_for(GWINFO, timeout)

    def connect(self, client_id, clean=True, duration=60, will=None, expect_rc=RC_ACCEPTED,
                timeout=None):
        """CONNECT (and the will dialogue when will = dict(topic, message, qos, retain));
        returns the CONNACK, whose code must be expect_rc (None: anything)."""
        self.client_id = client_id
        if clean:
            self.topics = {}
        self.send(connect(client_id, clean=clean, will=will is not None, duration=duration))
        if will is not None:
            m = self.wait_for((WILLTOPICREQ, CONNACK), timeout)
            if m.type == WILLTOPICREQ:
                self.send(willtopic(will["topic"], will.get("qos", 0), will.get("retain", False)))
                m = self.wait_for((WILLMSGREQ, CONNACK), timeout)
                if m.type == WILLMSGREQ:
                    self.send(willmsg(will.get("message", will.get("payload", b""))))
                    m = self.wait_for(CONNACK, timeout)
        else:
            m = self.wait_for(CONNACK, timeout)
        if expect_rc is not None and m.rc != expect_rc:
            raise AssertionError("%s: CONNACK 0x%02x, expected 0x%02x" % (client_id, m.rc, expect_rc))
        return m

    def register_ack(self, topic, timeout=None):
        """REGISTER topic; returns the REGACK (any return code)."""
        mid = self.next_mid()
        self.send(register(0, mid, topic))
        a = self.wait_for(REGACK, timeout, pred=lambda m: m.msg_id == mid)
        if a.rc == RC_ACCEPTED:
            self.topics[a.topic_id] = topic
        return a

    def register(self, topic, timeout=None):
        """REGISTER topic; returns its topic id (the REGACK must accept it)."""
        a = self.register_ack(topic, timeout)
        if a.rc != RC_ACCEPTED:
            raise AssertionError("REGACK for %r: return code 0x%02x" % (topic, a.rc))
        return a.topic_id

    def _topic_for_publish(self, topic, tid_type):
        if tid_type is not None:
            return (short_id(topic) if tid_type == TID_SHORT and not isinstance(topic, int)
                    else topic), tid_type
        if isinstance(topic, int):
            return topic, TID_NORMAL
        if len(_b(topic)) == 2:
            return short_id(topic), TID_SHORT
        for tid, name in self.topics.items():
            if name == topic:
                return tid, TID_NORMAL
        return self.register(topic), TID_NORMAL

    def publish(self, topic, payload=b"", qos=0, retain=False, tid_type=None, dup=False,
                msg_id=None, expect_rc=RC_ACCEPTED, timeout=None):
        """PUBLISH. topic: an int (a normal topic id, or with tid_type=TID_PREDEFINED a
        predefined one), a 2-character str (a short topic name), or a longer topic name
        (registered first unless known). QoS 1 waits for the PUBACK, QoS 2 runs
        PUBREC/PUBREL/PUBCOMP; returns the final ack (PUBACK or PUBCOMP), or None for
        QoS 0/-1. expect_rc: the PUBACK's code must be this (None: anything)."""
        tid, tt = self._topic_for_publish(topic, tid_type)
        mid = (msg_id if msg_id is not None else self.next_mid()) if qos in (1, 2) else (
            msg_id or 0)
        self.send(publish(tid, mid, payload, qos, retain, dup, tt))
        if qos == 1:
            a = self.wait_for(PUBACK, timeout, pred=lambda m: m.msg_id == mid)
            if expect_rc is not None and a.rc != expect_rc:
                raise AssertionError("PUBACK 0x%02x, expected 0x%02x" % (a.rc, expect_rc))
            return a
        if qos == 2:
            a = self.wait_for((PUBREC, PUBACK), timeout, pred=lambda m: m.msg_id == mid)
            if a.type == PUBACK:  # refused (e.g. invalid topic id)
                if expect_rc is not None and a.rc != expect_rc:
                    raise AssertionError("PUBACK 0x%02x to QoS 2, expected 0x%02x" % (
                        a.rc, expect_rc))
                return a
            if expect_rc not in (None, RC_ACCEPTED):
                raise AssertionError("PUBREC for a QoS 2 PUBLISH expected to be refused "
                                     "with 0x%02x" % expect_rc)
            self.send(pubrel(mid))
            return self.wait_for(PUBCOMP, timeout, pred=lambda m: m.msg_id == mid)
        return None

    def subscribe(self, topic, qos=0, tid_type=None, dup=False, msg_id=None, timeout=None):
        """SUBSCRIBE by topic name (a str; may hold wildcards), predefined id (an int) or
        short name (a 2-character str with tid_type=TID_SHORT). Returns the SUBACK."""
        if tid_type is None:
            tid_type = TID_PREDEFINED if isinstance(topic, int) else TID_NORMAL
        mid = self.next_mid() if msg_id is None else msg_id
        self.send(subscribe(mid, topic, qos, tid_type, dup))
        a = self.wait_for(SUBACK, timeout, pred=lambda m: m.msg_id == mid)
        if (a.rc == RC_ACCEPTED and tid_type == TID_NORMAL and a.topic_id not in (0, 0xFFFF)
                and "+" not in topic and "#" not in topic):
            self.topics[a.topic_id] = topic
        return a

    def unsubscribe(self, topic, tid_type=None, timeout=None):
        if tid_type is None:
            tid_type = TID_PREDEFINED if isinstance(topic, int) else TID_NORMAL
        mid = self.next_mid()
        self.send(unsubscribe(mid, topic, tid_type))
        return self.wait_for(UNSUBACK, timeout, pred=lambda m: m.msg_id == mid)

    def ping(self, client_id=None, timeout=None):
        self.send(pingreq(client_id))
        return self.wait_for(PINGRESP, timeout)

    def disconnect(self, duration=None, timeout=None):
        """DISCONNECT (with a duration: go to sleep); returns the gateway's DISCONNECT."""
        self.send(disconnect(duration))
        return self.wait_for(DISCONNECT, timeout)

    def sleep(self, duration, timeout=None):
        return self.disconnect(duration, timeout)

    def wake(self, client_id=None, timeout=None):
        """An asleep client's PINGREQ with its client id: answers what the gateway sends
        (REGISTER, PUBLISH, PUBREL) until PINGRESP; returns the deliveries received."""
        before = len(self.deliveries)
        self.send(pingreq(client_id or self.client_id))
        self.wait_for(PINGRESP, timeout)
        got = list(self.deliveries)[before:]
        for _ in got:
            self.deliveries.pop()
        return got

    def willtopicupd(self, topic, qos=0, retain=False, timeout=None):
        """WILLTOPICUPD (topic None: the empty one, deleting the will); returns WILLTOPICRESP."""
        self.send(willtopicupd(topic, qos, retain))
        return self.wait_for(WILLTOPICRESP, timeout)

    def willmsgupd(self, message, timeout=None):
        self.send(willmsgupd(message))
        return self.wait_for(WILLMSGRESP, timeout)

"""rawmqtt - a small raw-socket MQTT 3.1.1 / 5.0 client for precise and malformed tests.

Written from the OASIS specifications (MQTT 3.1.1 and MQTT 5.0), independent of any
polygate C code. It encodes packets byte by byte, so a test can send exactly what it
wants (including broken packets), and it decodes what the server sends back:
CONNACK (session present, return/reason code, properties), PUBLISH, acks, SUBACK,
UNSUBACK, DISCONNECT (reason code, properties).

    c = Conn(host, port, version=5)
    ack = c.connect("id", props={"session_expiry_interval": 10})
    c.subscribe([("a/#", 1)])
    p = c.wait_for(PUBLISH)
    c.close()
"""

import socket
import ssl
import struct
import time

# Control packet types (MQTT 3.1.1 2.2.1 / MQTT 5.0 2.1.2).
CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14
AUTH = 15

PACKET_NAMES = {
    1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
    7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
    12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH",
}

# Reason codes used by the tests (MQTT 5.0 2.4).
RC_SUCCESS = 0x00
RC_DISCONNECT_WITH_WILL = 0x04
RC_UNSPECIFIED = 0x80
RC_MALFORMED = 0x81
RC_PROTOCOL_ERROR = 0x82
RC_UNSUPPORTED_PROTOCOL_VERSION = 0x84
RC_CLIENT_ID_NOT_VALID = 0x85
RC_KEEP_ALIVE_TIMEOUT = 0x8D
RC_SESSION_TAKEN_OVER = 0x8E
RC_TOPIC_NAME_INVALID = 0x90
RC_RECEIVE_MAXIMUM_EXCEEDED = 0x93
RC_TOPIC_ALIAS_INVALID = 0x94
RC_PACKET_TOO_LARGE = 0x95
RC_RETAIN_NOT_SUPPORTED = 0x9A

# MQTT 3.1.1 CONNACK return codes (3.2.2.3).
CONNACK_V3_ACCEPTED = 0
CONNACK_V3_BAD_PROTOCOL_VERSION = 1
CONNACK_V3_IDENTIFIER_REJECTED = 2

# Property identifiers and their data types (MQTT 5.0 2.2.2.2).
BYTE, INT2, INT4, VARINT, UTF8, BINARY, PAIR = "byte", "int2", "int4", "varint", "utf8", "bin", "pair"
PROPERTIES = {
    0x01: ("payload_format_indicator", BYTE),
    0x02: ("message_expiry_interval", INT4),
    0x03: ("content_type", UTF8),
    0x08: ("response_topic", UTF8),
    0x09: ("correlation_data", BINARY),
    0x0B: ("subscription_identifier", VARINT),
    0x11: ("session_expiry_interval", INT4),
    0x12: ("assigned_client_identifier", UTF8),
    0x13: ("server_keep_alive", INT2),
    0x15: ("authentication_method", UTF8),
    0x16: ("authentication_data", BINARY),
    0x17: ("request_problem_information", BYTE),
    0x18: ("will_delay_interval", INT4),
    0x19: ("request_response_information", BYTE),
    0x1A: ("response_information", UTF8),
    0x1C: ("server_reference", UTF8),
    0x1F: ("reason_string", UTF8),
    0x21: ("receive_maximum", INT2),
    0x22: ("topic_alias_maximum", INT2),
    0x23: ("topic_alias", INT2),
    0x24: ("maximum_qos", BYTE),
    0x25: ("retain_available", BYTE),
    0x26: ("user_property", PAIR),
    0x27: ("maximum_packet_size", INT4),
    0x28: ("wildcard_subscription_available", BYTE),
    0x29: ("subscription_identifier_available", BYTE),
    0x2A: ("shared_subscription_available", BYTE),
}
PROPERTY_IDS = {name: pid for pid, (name, _) in PROPERTIES.items()}
MULTI = {"user_property", "subscription_identifier"}  # may appear more than once


class Closed(Exception):
    """The server closed the connection (EOF or reset)."""


class ProtocolViolation(Exception):
    """The server sent something the specification does not allow."""


# ---------------------------------------------------------------- encoders


def varint(n):
    """Variable Byte Integer (MQTT 5.0 1.5.5 / 3.1.1 2.2.3)."""
    if n < 0 or n > 268435455:
        raise ValueError("varint out of range: %d" % n)
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            b |= 0x80
        out.append(b)
        if not n:
            return bytes(out)


def u16(n):
    return struct.pack("!H", n)


def u32(n):
    return struct.pack("!I", n)


def utf8(s):
    """UTF-8 Encoded String: 2-byte length then bytes. Bytes are sent as given."""
    b = s if isinstance(s, (bytes, bytearray)) else s.encode("utf-8")
    return u16(len(b)) + bytes(b)


def binary(b):
    b = b if isinstance(b, (bytes, bytearray)) else b.encode("utf-8")
    return u16(len(b)) + bytes(b)


def _prop_items(props):
    """props: None, a dict name->value (lists for multi-valued), or a list of
    (name_or_id, value) pairs (which may repeat a property on purpose)."""
    if not props:
        return []
    if isinstance(props, dict):
        items = []
        for k, v in props.items():
            if k in MULTI and isinstance(v, list):
                items.extend((k, x) for x in v)
            else:
                items.append((k, v))
        return items
    return list(props)


def encode_props(props):
    """Property Length + properties (MQTT 5.0 2.2.2)."""
    body = bytearray()
    for key, value in _prop_items(props):
        pid = key if isinstance(key, int) else PROPERTY_IDS[key]
        ptype = PROPERTIES[pid][1]
        body += varint(pid)
        if ptype == BYTE:
            body += bytes([value])
        elif ptype == INT2:
            body += u16(value)
        elif ptype == INT4:
            body += u32(value)
        elif ptype == VARINT:
            body += varint(value)
        elif ptype == UTF8:
            body += utf8(value)
        elif ptype == BINARY:
            body += binary(value)
        elif ptype == PAIR:
            body += utf8(value[0]) + utf8(value[1])
    return varint(len(body)) + bytes(body)


def packet(ptype, flags, body, remaining_length=None):
    """Fixed header + body. remaining_length overrides the computed one (for lies)."""
    rl = len(body) if remaining_length is None else remaining_length
    return bytes([(ptype << 4) | (flags & 0x0F)]) + varint(rl) + bytes(body)


def connect_packet(client_id, version=4, clean=True, keepalive=60, will=None, username=None,
                   password=None, props=None, protocol_name="MQTT", reserved_flag=False):
    """CONNECT. will: dict(topic, payload, qos=0, retain=False, props=None)."""
    flags = 0
    if clean:
        flags |= 0x02
    if reserved_flag:
        flags |= 0x01
    if will:
        flags |= 0x04 | ((will.get("qos", 0) & 3) << 3)
        if will.get("retain"):
            flags |= 0x20
    if password is not None:
        flags |= 0x40
    if username is not None:
        flags |= 0x80
    vh = utf8(protocol_name) + bytes([version, flags]) + u16(keepalive)
    if version == 5:
        vh += encode_props(props)
    pl = utf8(client_id)
    if will:
        if version == 5:
            pl += encode_props(will.get("props"))
        pl += utf8(will["topic"]) + binary(will.get("payload", b""))
    if username is not None:
        pl += utf8(username)
    if password is not None:
        pl += binary(password)
    return packet(CONNECT, 0, vh + pl)


def publish_packet(topic, payload=b"", qos=0, retain=False, dup=False, pid=None, props=None,
                   version=4):
    flags = (0x08 if dup else 0) | ((qos & 3) << 1) | (0x01 if retain else 0)
    body = utf8(topic)
    if qos > 0:
        body += u16(pid if pid is not None else 1)
    if version == 5:
        body += encode_props(props)
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return packet(PUBLISH, flags, body + payload)


def ack_packet(ptype, pid, reason=None, props=None, version=4):
    """PUBACK/PUBREC/PUBREL/PUBCOMP (PUBREL carries flags 0b0010)."""
    body = u16(pid)
    if version == 5 and (reason not in (None, 0) or props):
        body += bytes([reason or 0])
        if props:
            body += encode_props(props)
    return packet(ptype, 0x02 if ptype == PUBREL else 0, body)


def sub_options(qos=0, no_local=False, rap=False, retain_handling=0):
    """MQTT 5.0 Subscription Options byte (3.8.3.1)."""
    return (qos & 3) | (0x04 if no_local else 0) | (0x08 if rap else 0) | ((retain_handling & 3) << 4)


def subscribe_packet(pid, filters, props=None, version=4, flags=0x02):
    """filters: list of (filter, options byte) (for v3.1.1 the byte is the QoS)."""
    body = u16(pid)
    if version == 5:
        body += encode_props(props)
    for f, opts in filters:
        body += utf8(f) + bytes([opts])
    return packet(SUBSCRIBE, flags, body)


def unsubscribe_packet(pid, filters, props=None, version=4):
    body = u16(pid)
    if version == 5:
        body += encode_props(props)
    for f in filters:
        body += utf8(f)
    return packet(UNSUBSCRIBE, 0x02, body)


def pingreq_packet():
    return packet(PINGREQ, 0, b"")


def disconnect_packet(reason=None, props=None, version=4):
    body = b""
    if version == 5 and (reason not in (None, 0) or props):
        body = bytes([reason or 0])
        if props:
            body += encode_props(props)
    return packet(DISCONNECT, 0, body)


# ---------------------------------------------------------------- decoders


def decode_varint(buf, pos):
    mult, value = 1, 0
    for i in range(4):
        if pos >= len(buf):
            raise ProtocolViolation("truncated variable byte integer")
        b = buf[pos]
        pos += 1
        value += (b & 0x7F) * mult
        if not b & 0x80:
            return value, pos
        mult *= 128
    raise ProtocolViolation("variable byte integer longer than 4 bytes")


def _read_u16(buf, pos):
    if pos + 2 > len(buf):
        raise ProtocolViolation("truncated two byte integer")
    return struct.unpack_from("!H", buf, pos)[0], pos + 2


def _read_bin(buf, pos):
    n, pos = _read_u16(buf, pos)
    if pos + n > len(buf):
        raise ProtocolViolation("truncated string")
    return bytes(buf[pos:pos + n]), pos + n


def _read_str(buf, pos):
    b, pos = _read_bin(buf, pos)
    try:
        return b.decode("utf-8"), pos
    except UnicodeDecodeError:
        raise ProtocolViolation("ill-formed UTF-8 from server: %r" % b)


def decode_props(buf, pos):
    """Returns (dict, raw list of (name, value), new pos). Multi-valued ones are lists."""
    length, pos = decode_varint(buf, pos)
    end = pos + length
    if end > len(buf):
        raise ProtocolViolation("property length past end of packet")
    props, raw = {}, []
    while pos < end:
        pid, pos = decode_varint(buf, pos)
        if pid not in PROPERTIES:
            raise ProtocolViolation("unknown property id 0x%02x" % pid)
        name, ptype = PROPERTIES[pid]
        if ptype == BYTE:
            value = buf[pos]
            pos += 1
        elif ptype == INT2:
            value, pos = _read_u16(buf, pos)
        elif ptype == INT4:
            value = struct.unpack_from("!I", buf, pos)[0]
            pos += 4
        elif ptype == VARINT:
            value, pos = decode_varint(buf, pos)
        elif ptype == UTF8:
            value, pos = _read_str(buf, pos)
        elif ptype == BINARY:
            value, pos = _read_bin(buf, pos)
        else:
            k, pos = _read_str(buf, pos)
            v, pos = _read_str(buf, pos)
            value = (k, v)
        raw.append((name, value))
        if name in MULTI:
            props.setdefault(name, []).append(value)
        else:
            if name in props:
                raise ProtocolViolation("server sent property %s twice" % name)
            props[name] = value
    if pos != end:
        raise ProtocolViolation("property length mismatch")
    return props, raw, end


class Packet:
    """A received control packet, decoded according to the connection's version."""

    def __init__(self, ptype, flags, body, version):
        self.type = ptype
        self.flags = flags
        self.body = bytes(body)
        self.version = version
        self.props = {}
        self.raw_props = []
        self.reason = None
        self.pid = None
        self._decode()

    @property
    def name(self):
        return PACKET_NAMES.get(self.type, "type%d" % self.type)

    def __repr__(self):
        extra = ""
        if self.type == PUBLISH:
            extra = " topic=%r qos=%d retain=%d dup=%d pid=%r payload=%r" % (
                self.topic, self.qos, self.retain, self.dup, self.pid, self.payload[:40])
        elif self.reason is not None:
            extra = " reason=0x%02x" % self.reason
        if self.props:
            extra += " props=%r" % (self.props,)
        return "<%s%s>" % (self.name, extra)

    def _decode(self):
        b, v = self.body, self.version
        t = self.type
        if t == CONNACK:
            if len(b) < 2:
                raise ProtocolViolation("short CONNACK")
            self.session_present = bool(b[0] & 0x01)
            self.reason = b[1]
            if v == 5 and len(b) > 2:
                self.props, self.raw_props, _ = decode_props(b, 2)
        elif t == PUBLISH:
            self.qos = (self.flags >> 1) & 3
            self.retain = bool(self.flags & 1)
            self.dup = bool(self.flags & 8)
            tb, pos = _read_bin(b, 0)
            self.topic_bytes = tb
            self.topic = tb.decode("utf-8", "replace")
            if self.qos:
                self.pid, pos = _read_u16(b, pos)
            if v == 5:
                self.props, self.raw_props, pos = decode_props(b, pos)
            self.payload = b[pos:]
        elif t in (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK, SUBACK):
            self.pid, pos = _read_u16(b, 0)
            if t in (SUBACK, UNSUBACK):
                if v == 5:
                    self.props, self.raw_props, pos = decode_props(b, pos)
                self.codes = list(b[pos:])
            else:
                self.reason = b[2] if (v == 5 and len(b) > 2) else 0
                if v == 5 and len(b) > 3:
                    self.props, self.raw_props, _ = decode_props(b, 3)
        elif t == DISCONNECT:
            self.reason = b[0] if len(b) >= 1 else 0
            if len(b) > 1:
                self.props, self.raw_props, _ = decode_props(b, 1)


# ---------------------------------------------------------------- connection


def tls_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    return ctx


class Conn:
    """One TCP (or TLS) connection speaking MQTT byte by byte."""

    def __init__(self, host, port, version=4, timeout=5.0, ssl_context=None, server_hostname=None):
        self.version = version
        self.timeout = timeout
        s = socket.create_connection((host, port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_context is not None:
            s = ssl_context.wrap_socket(s, server_hostname=server_hostname or host)
        self.sock = s
        self.buf = bytearray()
        self.stash = []
        self.eof = False
        self._pid = 0

    # -- low level
    def send(self, data):
        self.sock.sendall(data)

    def next_pid(self):
        self._pid = self._pid % 65535 + 1
        return self._pid

    def _fill(self, deadline):
        if self.eof:
            raise Closed("connection closed")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data from server in time")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no data from server in time")
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError) as e:
            self.eof = True
            raise Closed("connection reset: %s" % e)
        if not data:
            self.eof = True
            raise Closed("connection closed")
        self.buf += data

    def recv_packet(self, timeout=None):
        """The next packet. Raises Closed at EOF, TimeoutError when nothing came."""
        if self.stash:
            return self.stash.pop(0)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if len(self.buf) >= 2:
                try:
                    rl, pos = decode_varint(self.buf, 1)
                except ProtocolViolation:
                    if len(self.buf) < 5:
                        rl = None
                    else:
                        raise
                if rl is not None and len(self.buf) >= pos + rl:
                    first = self.buf[0]
                    body = self.buf[pos:pos + rl]
                    del self.buf[:pos + rl]
                    return Packet(first >> 4, first & 0x0F, body, self.version)
            self._fill(deadline)

    def wait_for(self, ptype, timeout=None):
        """The first packet of type ptype; other packets are kept for recv_packet."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        kept = []
        try:
            for i, p in enumerate(self.stash):
                if p.type == ptype:
                    del self.stash[i]
                    return p
            kept = self.stash
            self.stash = []
            while True:
                p = self.recv_packet(timeout=max(0.0, deadline - time.monotonic()))
                if p.type == ptype:
                    return p
                kept.append(p)
        finally:
            self.stash = kept + self.stash

    def read_until_closed(self, timeout=None):
        """All packets the server sends until it closes the connection.
        Raises TimeoutError if the connection is still open after timeout."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        out = list(self.stash)
        self.stash = []
        while True:
            try:
                out.append(self.recv_packet(timeout=max(0.0, deadline - time.monotonic())))
            except Closed:
                return out
            except TimeoutError:
                raise TimeoutError("connection still open after %.1fs; got %r" % (
                    timeout if timeout is not None else self.timeout, out))

    def is_closed(self, timeout=0.2):
        try:
            self.recv_packet(timeout=timeout)
        except Closed:
            return True
        except TimeoutError:
            return False
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """Close abruptly with a TCP RST (no DISCONNECT, no FIN handshake)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    # -- high level
    def connect(self, client_id, clean=True, keepalive=60, will=None, props=None, username=None,
                password=None, timeout=None):
        self.send(connect_packet(client_id, self.version, clean, keepalive, will, username,
                                 password, props))
        p = self.recv_packet(timeout)
        if p.type != CONNACK:
            raise ProtocolViolation("expected CONNACK, got %r" % p)
        return p

    def subscribe(self, filters, props=None, timeout=None):
        """filters: list of (filter, options) or of filter strings (QoS 0). Returns SUBACK."""
        fl = [(f, 0) if isinstance(f, str) else f for f in filters]
        pid = self.next_pid()
        self.send(subscribe_packet(pid, fl, props, self.version))
        p = self.wait_for(SUBACK, timeout)
        if p.pid != pid:
            raise ProtocolViolation("SUBACK for packet id %d, expected %d" % (p.pid, pid))
        return p

    def unsubscribe(self, filters, timeout=None):
        pid = self.next_pid()
        self.send(unsubscribe_packet(pid, filters, None, self.version))
        return self.wait_for(UNSUBACK, timeout)

    def publish(self, topic, payload=b"", qos=0, retain=False, props=None, timeout=None):
        """Publishes and completes the QoS 1/2 flow. Returns the final ack (or None)."""
        pid = self.next_pid() if qos else None
        self.send(publish_packet(topic, payload, qos, retain, False, pid, props, self.version))
        if qos == 1:
            a = self.wait_for(PUBACK, timeout)
            assert a.pid == pid, "PUBACK %r for packet id %d" % (a, pid)
            return a
        if qos == 2:
            a = self.wait_for(PUBREC, timeout)
            assert a.pid == pid, "PUBREC %r for packet id %d" % (a, pid)
            if a.reason is not None and a.reason >= 0x80:
                return a
            self.send(ack_packet(PUBREL, pid, version=self.version))
            c = self.wait_for(PUBCOMP, timeout)
            assert c.pid == pid
            return c
        return None

    def ack(self, p):
        """Acknowledges a received QoS 1/2 PUBLISH (QoS 2: PUBREC, then PUBREL->PUBCOMP)."""
        if p.qos == 1:
            self.send(ack_packet(PUBACK, p.pid, version=self.version))
        elif p.qos == 2:
            self.send(ack_packet(PUBREC, p.pid, version=self.version))
            r = self.wait_for(PUBREL)
            assert r.pid == p.pid
            self.send(ack_packet(PUBCOMP, p.pid, version=self.version))

    def ping(self, timeout=None):
        self.send(pingreq_packet())
        return self.wait_for(PINGRESP, timeout)

    def disconnect(self, reason=None, props=None):
        try:
            self.send(disconnect_packet(reason, props, self.version))
        except OSError:
            pass
        self.close()

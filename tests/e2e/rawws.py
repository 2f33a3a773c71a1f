"""rawws - a small raw-socket WebSocket (RFC 6455) client for MQTT-over-WebSocket tests.

Written from RFC 6455, independent of any polygate C code. The client does the HTTP
upgrade itself (so a test chooses every header: subprotocols, Origin, X-Forwarded-For,
or none), sends masked frames of any opcode, size and fragmentation, and reads the
server's frames (pings are answered, pongs and the close code are recorded).

    ws = WSConn(host, port, subprotocols=["mqtt"])       # raises Refused if no 101
    ws.send_frame(OP_BINARY, b"...", fin=False); ws.send_frame(OP_CONT, b"...")
    op, payload = ws.recv_message()

`MqttWS` is rawmqtt.Conn over such a connection: every rawmqtt helper (connect,
subscribe, publish, wait_for, read_until_closed, ...) works the same, each MQTT write
going out as one binary frame unless a test sends frames itself.

`http_get` makes a plain HTTP/1.1 request (for static files on the WebSocket port).
"""

import base64
import hashlib
import os
import socket
import ssl
import struct
import time

import rawmqtt

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

# Close status codes (RFC 6455 7.4.1).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009


class Refused(Exception):
    """The server did not upgrade the connection (no 101)."""

    def __init__(self, msg, status=None, headers=None, body=b""):
        super().__init__(msg)
        self.status = status
        self.headers = headers or {}
        self.body = body


class Response:
    """An HTTP response: status code, headers (lower-case names), body."""

    def __init__(self, status, reason, headers, body, raw_headers):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.raw_headers = raw_headers

    def __repr__(self):
        return "<HTTP %s %s %r body=%r>" % (self.status, self.reason, self.headers, self.body[:80])


def _connect(host, port, timeout, ssl_context, server_hostname):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if ssl_context is not None:
        s = ssl_context.wrap_socket(s, server_hostname=server_hostname or host)
    return s


def _read_head(sock, deadline):
    """Reads an HTTP response head; returns (head bytes, bytes after it) or raises
    EOFError if the server closed first (with what it sent)."""
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no HTTP response head in time; got %r" % bytes(buf))
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no HTTP response head in time; got %r" % bytes(buf))
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            data = b""
        if not data:
            raise EOFError(bytes(buf))
        buf += data
    i = buf.index(b"\r\n\r\n")
    return bytes(buf[:i]), bytes(buf[i + 4:])


def _parse_head(head):
    lines = head.decode("iso-8859-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError("not an HTTP status line: %r" % lines[0])
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers, raw = {}, []
    for line in lines[1:]:
        if ":" not in line:
            continue
        k, v = line.split(":", 1)
        raw.append((k.strip(), v.strip()))
        k = k.strip().lower()
        headers[k] = headers[k] + ", " + v.strip() if k in headers else v.strip()
    return status, reason, headers, raw


def http_get(host, port, path, headers=None, timeout=5.0, ssl_context=None):
    """GET path (HTTP/1.1, Connection: close); returns a Response. The body is read by
    Content-Length, chunked encoding, or until the server closes."""
    s = _connect(host, port, timeout, ssl_context, None)
    try:
        h = {"Host": "%s:%d" % (host, port), "Connection": "close", "User-Agent": "rawws"}
        h.update(headers or {})
        req = "GET %s HTTP/1.1\r\n%s\r\n" % (path, "".join("%s: %s\r\n" % kv for kv in h.items()))
        s.sendall(req.encode("iso-8859-1"))
        deadline = time.monotonic() + timeout
        try:
            head, rest = _read_head(s, deadline)
        except EOFError as e:
            raise ConnectionError("server closed without an HTTP response; got %r" % e.args[0])
        status, reason, headers_in, raw = _parse_head(head)
        body = bytearray(rest)

        def more():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("HTTP body not complete in time; got %r" % bytes(body[:200]))
            s.settimeout(left)
            try:
                return s.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                return b""

        if "content-length" in headers_in:
            n = int(headers_in["content-length"])
            while len(body) < n:
                d = more()
                if not d:
                    break
                body += d
            body = body[:n]
        elif "chunked" in headers_in.get("transfer-encoding", "").lower():
            raw_body = body
            out = bytearray()
            while True:
                while b"\r\n" not in raw_body:
                    d = more()
                    if not d:
                        raise ConnectionError("chunked body cut short")
                    raw_body += d
                i = raw_body.index(b"\r\n")
                size = int(raw_body[:i].split(b";")[0], 16)
                del raw_body[:i + 2]
                while len(raw_body) < size + 2:
                    d = more()
                    if not d:
                        raise ConnectionError("chunked body cut short")
                    raw_body += d
                out += raw_body[:size]
                del raw_body[:size + 2]
                if size == 0:
                    break
            body = out
        elif status not in (204, 304) and not 100 <= status < 200:
            while True:
                d = more()
                if not d:
                    break
                body += d
        return Response(status, reason, headers_in, bytes(body), raw)
    finally:
        s.close()


def frame(opcode, payload=b"", fin=True, mask=True, rsv=0):
    """One WebSocket frame (client frames are masked, RFC 6455 5.3)."""
    payload = bytes(payload)
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, mbit | n])
    elif n < 65536:
        head = bytes([b0, mbit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + mask_bytes(key, payload)


def mask_bytes(key, data):
    """data XOR the 4-byte key repeated (RFC 6455 5.3)."""
    n = len(data)
    if not n:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


class WSConn:
    """A client WebSocket connection. The upgrade happens in the constructor; Refused
    is raised when the answer is not 101 (or the server just closes)."""

    def __init__(self, host, port, path="/mqtt", subprotocols=("mqtt",), origin=None,
                 headers=None, timeout=5.0, ssl_context=None, server_hostname=None):
        self.timeout = timeout
        self.sock = _connect(host, port, timeout, ssl_context, server_hostname)
        self.rbuf = bytearray()
        self.close_code = None     # the code of the server's close frame (None: none yet)
        self.close_reason = None
        self.closed = False        # the server sent a close frame or the TCP stream ended
        self.close_frame_seen = False
        self.close_sent = False
        self.pongs = []
        self.pings = []
        self.auto_pong = True
        key = base64.b64encode(os.urandom(16)).decode()
        h = [("Host", "%s:%d" % (host, port)), ("Upgrade", "websocket"),
             ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key),
             ("Sec-WebSocket-Version", "13")]
        if subprotocols:
            h.append(("Sec-WebSocket-Protocol", ", ".join(subprotocols)))
        if origin is not None:
            h.append(("Origin", origin))
        for k, v in (headers or {}).items():
            h.append((k, v))
        req = "GET %s HTTP/1.1\r\n%s\r\n" % (path, "".join("%s: %s\r\n" % kv for kv in h))
        try:
            self.sock.sendall(req.encode("iso-8859-1"))
            head, rest = _read_head(self.sock, time.monotonic() + timeout)
        except EOFError as e:
            self.close_socket()
            raise Refused("server closed the connection without a 101 (sent %r)" % e.args[0])
        except (ConnectionResetError, BrokenPipeError) as e:
            self.close_socket()
            raise Refused("connection reset during the upgrade: %s" % e)
        except Exception:
            self.close_socket()
            raise
        status, reason, hdrs, raw = _parse_head(head)
        self.status, self.headers, self.raw_headers = status, hdrs, raw
        if status != 101:
            self.close_socket()
            raise Refused("upgrade refused: HTTP %d %s" % (status, reason), status, hdrs, rest)
        want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        if hdrs.get("sec-websocket-accept") != want:
            self.close_socket()
            raise AssertionError("bad Sec-WebSocket-Accept %r (want %r)" % (
                hdrs.get("sec-websocket-accept"), want))
        if hdrs.get("upgrade", "").lower() != "websocket" or \
                "upgrade" not in hdrs.get("connection", "").lower():
            self.close_socket()
            raise AssertionError("101 without Upgrade/Connection headers: %r" % hdrs)
        self.protocol = hdrs.get("sec-websocket-protocol")
        self.rbuf += rest

    # -- sending
    def send_raw(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", fin=True, rsv=0):
        self.sock.sendall(frame(opcode, payload, fin, True, rsv))

    def send_binary(self, data):
        self.send_frame(OP_BINARY, data)

    def send_text(self, text):
        self.send_frame(OP_TEXT, text.encode("utf-8") if isinstance(text, str) else text)

    def send_fragmented(self, data, pieces, opcode=OP_BINARY):
        """One message as len(pieces) frames; pieces = the sizes (the last takes the rest)."""
        pos = 0
        for i, n in enumerate(pieces):
            last = i == len(pieces) - 1
            chunk = data[pos:] if last else data[pos:pos + n]
            pos += len(chunk)
            self.send_frame(opcode if i == 0 else OP_CONT, chunk, fin=last)

    def ping(self, payload=b""):
        self.send_frame(OP_PING, payload)

    def send_close(self, code=CLOSE_NORMAL, reason=b""):
        self.close_sent = True
        try:
            self.send_frame(OP_CLOSE, struct.pack("!H", code) + reason if code else b"")
        except OSError:
            pass

    # -- receiving
    def _need(self, n, deadline):
        while len(self.rbuf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no WebSocket data from server in time")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError("no WebSocket data from server in time")
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError) as e:
                self.closed = True
                raise rawmqtt.Closed("connection reset: %s" % e)
            if not data:
                self.closed = True
                raise rawmqtt.Closed("TCP connection closed")
            self.rbuf += data

    def recv_frame(self, timeout=None):
        """The next frame as (fin, opcode, payload). Server frames must not be masked."""
        if self.closed and not self.rbuf:
            raise rawmqtt.Closed("connection closed (close code %r)" % self.close_code)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self._need(2, deadline)
        b0, b1 = self.rbuf[0], self.rbuf[1]
        if b1 & 0x80:
            raise rawmqtt.ProtocolViolation("server sent a masked frame")
        if b0 & 0x70:
            raise rawmqtt.ProtocolViolation("server frame with RSV bits 0x%02x" % b0)
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack_from("!H", self.rbuf, 2)[0]
            pos = 4
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack_from("!Q", self.rbuf, 2)[0]
            pos = 10
        self._need(pos + n, deadline)
        payload = bytes(self.rbuf[pos:pos + n])
        del self.rbuf[:pos + n]
        opcode = b0 & 0x0F
        if opcode >= 0x8:
            if not b0 & 0x80 or n > 125:
                raise rawmqtt.ProtocolViolation("fragmented or long control frame from server")
        return bool(b0 & 0x80), opcode, payload

    def _control(self, opcode, payload):
        """Handles a control frame; True if it was one."""
        if opcode == OP_PING:
            self.pings.append(payload)
            if self.auto_pong and not self.close_frame_seen:
                try:
                    self.send_frame(OP_PONG, payload)
                except OSError:
                    pass
            return True
        if opcode == OP_PONG:
            self.pongs.append(payload)
            return True
        if opcode == OP_CLOSE:
            self.close_frame_seen = True
            self.closed = True
            if len(payload) >= 2:
                self.close_code = struct.unpack("!H", payload[:2])[0]
                self.close_reason = payload[2:]
            else:
                self.close_code = CLOSE_NO_STATUS
                self.close_reason = b""
            # answer the close (RFC 6455 5.5.1) unless we started it; the server then
            # ends the TCP connection
            if not self.close_sent:
                self.close_sent = True
                try:
                    self.sock.sendall(frame(OP_CLOSE, payload[:2]))
                except OSError:
                    pass
            return True
        return False

    def recv_message(self, timeout=None):
        """The next data message as (opcode, payload), fragments joined. Control frames
        are handled on the way; a close frame raises rawmqtt.Closed."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        opcode, data = None, bytearray()
        while True:
            fin, op, payload = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if op >= 0x8:
                self._control(op, payload)
                if op == OP_CLOSE:
                    raise rawmqtt.Closed("close frame, code %r" % self.close_code)
                continue
            if opcode is None:
                if op == OP_CONT:
                    raise rawmqtt.ProtocolViolation("continuation frame without a start")
                opcode = op
            elif op != OP_CONT:
                raise rawmqtt.ProtocolViolation("new data frame inside a fragmented message")
            data += payload
            if fin:
                return opcode, bytes(data)

    def wait_pong(self, timeout=None):
        """The payload of the next pong (data messages read meanwhile are returned too)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        seen = []
        while not self.pongs:
            fin, op, payload = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if not self._control(op, payload):
                seen.append((op, payload))
            elif op == OP_CLOSE:
                raise rawmqtt.Closed("close frame (code %r) instead of a pong" % self.close_code)
        return self.pongs.pop(0), seen

    def wait_close(self, timeout=None):
        """Reads until the server's close frame and the end of the TCP stream; returns
        (close code or None if the TCP connection ended without a close frame,
        data messages received before)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        msgs = []
        while True:
            try:
                msgs.append(self.recv_message(max(0.0, deadline - time.monotonic())))
            except rawmqtt.Closed:
                break
        return self.close_code, msgs

    def wait_eof(self, timeout=None):
        """After a close frame: True once the server has ended the TCP connection."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                self._need(len(self.rbuf) + 1, deadline)
            except rawmqtt.Closed:
                return True
            except TimeoutError:
                return False

    def close_socket(self):
        try:
            self.sock.close()
        except OSError:
            pass

    close = close_socket


class MqttWS(rawmqtt.Conn):
    """rawmqtt.Conn carried in binary WebSocket frames (one frame per send)."""

    def __init__(self, host, port, version=4, timeout=5.0, path="/mqtt", subprotocols=("mqtt",),
                 origin=None, headers=None, ssl_context=None, server_hostname=None):
        self.ws = WSConn(host, port, path, subprotocols, origin, headers, timeout, ssl_context,
                         server_hostname)
        self.version = version
        self.timeout = timeout
        self.sock = self.ws.sock
        self.buf = bytearray()
        self.stash = []
        self.eof = False
        self._pid = 0
        self.messages = []  # (opcode, payload) of every data message received

    @property
    def close_code(self):
        return self.ws.close_code

    @property
    def protocol(self):
        return self.ws.protocol

    def send(self, data):
        self.ws.send_binary(data)

    def _fill(self, deadline):
        if self.eof:
            raise rawmqtt.Closed("connection closed (close code %r)" % self.ws.close_code)
        try:
            op, payload = self.ws.recv_message(max(0.0, deadline - time.monotonic()))
        except rawmqtt.Closed:
            self.eof = True
            raise
        self.messages.append((op, payload))
        if op != OP_BINARY:
            raise rawmqtt.ProtocolViolation("server sent a non-binary message: %r" % ((op, payload),))
        self.buf += payload

    def close(self):
        self.ws.close_socket()

    def disconnect(self, reason=None, props=None):
        """Sends DISCONNECT and closes the socket (as rawmqtt.Conn.disconnect)."""
        try:
            self.send(rawmqtt.disconnect_packet(reason, props, self.version))
        except OSError:
            pass
        self.close()

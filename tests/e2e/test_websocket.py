"""MQTT over WebSocket (SPEC "MQTT (TCP, TLS, WebSocket)", the `websocket = { ... }` group).

paho-mqtt over `transport="websockets"` (v3.1.1 and v5) for the MQTT behaviour, which is
the same adapter as TCP: QoS 0/1/2 both ways, retained, wills, sessions, and TCP and
WebSocket clients sharing one topic space. rawws (a WebSocket client written from
RFC 6455) for the transport itself: an MQTT packet split over frames and messages,
several packets in one frame, subprotocol negotiation, close codes (1000 after
DISCONNECT, 1002 protocol error, 1003 text frame, 1009 frame over max_frame_size),
ping/pong, the Origin check, X-Forwarded-For, static files from www_dir, the
group's allow_anonymous and mountpoint, and wss.

Where mosquitto 2.0.11 (its websockets listener, also on libwebsockets) behaves
differently the test is polygate_only, with the difference noted.
"""

import ssl
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import paho.mqtt.client as mqtt
import pytest

import rawmqtt as r
import rawws
from conftest import ARTIFACTS, HOST, free_port
from helpers import QUIET, SLOW, TIMEOUT, V5, V311, VERSION_IDS, VERSIONS

pytestmark = pytest.mark.broker_config(ws=True)

WS = {"transport": "websockets"}
SUBPROTOCOLS = ["mqtt", "mqttv3.1"]
EMQX_SUBPROTOCOLS = ["mqtt-v3", "mqtt-v3.1.1", "mqtt-v5"]

# files for the static-file and auth tests, under .artifacts (made before each test if
# missing: another pytest run started meanwhile wipes .artifacts)
FILES = ARTIFACTS / "websocket"
WWW = FILES / "www"
PASSWD = str(FILES / "passwd")
INDEX_HTML = b"<!doctype html>\n<html><body>polygate websocket e2e index</body></html>\n"
PAGE_TXT = b"plain text in a subdirectory\n"
STYLE_CSS = b"body { color: black; }\n"
APP_JS = b"console.log('e2e');\n"
SECRET = b"this file is outside www_dir\n"


@pytest.fixture(autouse=True)
def _files():
    if (FILES / "passwd").exists():
        return
    (WWW / "sub").mkdir(parents=True, exist_ok=True)
    (WWW / "index.html").write_bytes(INDEX_HTML)
    (WWW / "sub" / "page.txt").write_bytes(PAGE_TXT)
    (WWW / "style.css").write_bytes(STYLE_CSS)
    (WWW / "app.js").write_bytes(APP_JS)
    (FILES / "secret.txt").write_bytes(SECRET)
    for p in (FILES, WWW, WWW / "sub"):
        p.chmod(0o755)
    subprocess.run(["mosquitto_passwd", "-c", "-b", PASSWD + ".new", "alice", "secret"],
                   check=True)
    (FILES / "passwd.new").chmod(0o644)
    (FILES / "passwd.new").rename(PASSWD)


GOOD_ORIGINS = ["http://good.example", "https://also.example:8443"]
ORIGIN_LIST = ", ".join(GOOD_ORIGINS)  # with a space, as config/polygate.conf's example


def ws_conn(clients, version=V5, cid=None, **kw):
    """A raw MQTT-over-WebSocket client, connected (CONNACK 0)."""
    c = clients.raw_ws(version, **kw)
    ack = c.connect(cid or clients.client_id("w"))
    assert ack.reason == 0, ack
    return c


def tcp_conn(clients, version=V5, cid=None):
    c = clients.raw(version)
    ack = c.connect(cid or clients.client_id("t"))
    assert ack.reason == 0, ack
    return c


def assert_ws_serves(clients, **kw):
    """A fresh WebSocket client can connect, subscribe and get its own message."""
    c = ws_conn(clients, V5, **kw)
    t = "e2e/ws-alive/" + clients.client_id("a")
    c.subscribe([(t, 1)])
    c.publish(t, b"ws still here", qos=1)
    p = c.wait_for(r.PUBLISH)
    assert (p.topic, p.payload) == (t, b"ws still here")
    c.disconnect()


def log_text(broker, offset=0):
    """The broker's log from offset, read through the harness's open handle (so a
    concurrent pytest run wiping .artifacts does not hide it), else by path."""
    try:
        with open("/proc/self/fd/%d" % broker.log.fileno(), "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except (OSError, ValueError, AttributeError):
        return broker.log_text(offset)


def wait_log(broker, pred, what, offset=0):
    """Waits until some log line satisfies pred; returns the lines seen."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        lines = log_text(broker, offset).splitlines()
        if any(pred(line) for line in lines):
            return lines
        assert time.monotonic() < deadline, "log never showed %s:\n%s" % (
            what, "\n".join(lines[-40:]))
        time.sleep(0.05)


# ------------------------------------------------------------------ MQTT behaviour (paho)


@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_paho_qos_both_ways(clients, topic, version, qos):
    sub = clients.paho(version, **WS)
    assert sub.subscribe(topic + "/#", qos) == qos
    pub = clients.paho(version, **WS)
    pub.publish(topic + "/x", b"over websocket q%d" % qos, qos=qos)
    m = sub.get()
    assert (m.topic, m.payload, m.qos) == (topic + "/x", b"over websocket q%d" % qos, qos)
    pub.disconnect()
    sub.disconnect()


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_cross_transport(clients, topic, version):
    ws_sub = clients.paho(version, **WS)
    ws_sub.subscribe(topic, 2)
    tcp_sub = clients.paho(version)
    tcp_sub.subscribe(topic, 2)
    tcp_pub = clients.paho(version)
    tcp_pub.publish(topic, b"tcp to all", qos=1)
    assert (ws_sub.get().payload, tcp_sub.get().payload) == (b"tcp to all", b"tcp to all")
    ws_pub = clients.paho(version, **WS)
    ws_pub.publish(topic, b"ws to all", qos=2)
    m1, m2 = ws_sub.get(), tcp_sub.get()
    assert (m1.payload, m1.qos, m2.payload, m2.qos) == (b"ws to all", 2, b"ws to all", 2)


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_retained(clients, topic, version):
    ws_pub = clients.paho(version, **WS)
    ws_pub.publish(topic, b"kept by ws", qos=1, retain=True)
    tcp_sub = clients.paho(version)
    tcp_sub.subscribe(topic, 1)
    m = tcp_sub.get()
    assert (m.payload, m.retain) == (b"kept by ws", True)
    tcp_pub = clients.paho(version)
    tcp_pub.publish(topic, b"kept by tcp", qos=1, retain=True)
    assert tcp_sub.get().payload == b"kept by tcp"
    ws_sub = clients.paho(version, **WS)
    ws_sub.subscribe(topic, 1)
    m = ws_sub.get()
    assert (m.payload, m.retain) == (b"kept by tcp", True)
    ws_pub.publish(topic, b"", qos=1, retain=True)  # clears it
    late = clients.paho(version, **WS)
    late.subscribe(topic, 1)
    late.expect_none(QUIET)


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_will_of_a_dropped_ws_client(clients, topic, version):
    watcher = clients.paho(version)
    watcher.subscribe(topic + "/will", 1)
    c = clients.raw_ws(version)
    assert c.connect(clients.client_id("w"), will={"topic": topic + "/will", "payload": b"gone",
                                                    "qos": 1}).reason == 0
    c.abort()  # TCP ends without DISCONNECT or a close frame
    m = watcher.get()
    assert (m.topic, m.payload) == (topic + "/will", b"gone")


def test_ws_close_frame_without_disconnect_sends_will(clients, topic, broker):
    """A WebSocket close frame is the end of the network connection for MQTT, not a
    DISCONNECT: the will is published; the server answers the close."""
    watcher = clients.paho(V5)
    watcher.subscribe(topic, 1)
    c = clients.raw_ws(V5)
    assert c.connect(clients.client_id("w"), will={"topic": topic, "payload": b"closed"}).reason == 0
    c.ws.send_close(rawws.CLOSE_NORMAL)
    code, msgs = c.ws.wait_close()
    assert msgs == []
    if broker.target == "polygate":  # mosquitto 2.0.11 ends the TCP connection without one
        assert code == rawws.CLOSE_NORMAL, "the server echoes the close frame"
    assert watcher.get().payload == b"closed"


def test_disconnect_ends_connection_without_will(clients, topic, broker):
    """After DISCONNECT the server closes: with close code 1000 (polygate; mosquitto
    2.0.11 just ends the TCP connection), and the will is discarded."""
    watcher = clients.paho(V5)
    watcher.subscribe(topic, 1)
    c = clients.raw_ws(V5)
    assert c.connect(clients.client_id("w"), will={"topic": topic, "payload": b"no"}).reason == 0
    c.send(r.disconnect_packet(0, version=V5))
    assert c.read_until_closed() == []
    if broker.target == "polygate":
        assert c.close_code == rawws.CLOSE_NORMAL
        assert c.ws.wait_eof(), "the TCP connection ends after the close handshake"
    watcher.expect_none(QUIET)


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_persistent_session_across_transports(clients, topic, version):
    """A session made over WebSocket is resumed over TCP and back: it is one adapter."""
    cid = clients.client_id("s")
    props = {"SessionExpiryInterval": 60} if version == V5 else None
    ws1 = clients.paho(version, client_id=cid, clean=False, props=props, **WS)
    ws1.subscribe(topic, 1)
    ws1.disconnect()
    pub = clients.paho(version)
    pub.publish(topic, b"queued while away", qos=1)
    tcp = clients.paho(version, client_id=cid, clean=False, props=props)
    assert tcp.session_present
    assert tcp.get().payload == b"queued while away"
    tcp.disconnect()
    pub.publish(topic, b"queued again", qos=1)
    ws2 = clients.paho(version, client_id=cid, clean=False, props=props, **WS)
    assert ws2.session_present
    assert ws2.get().payload == b"queued again"


def test_takeover_across_transports(clients, broker):
    """The same client id over WebSocket takes the session over from a TCP connection,
    and the other way round (v5: DISCONNECT 0x8E first; mosquitto 2.0.11 just closes)."""
    taken = [(r.DISCONNECT, r.RC_SESSION_TAKEN_OVER)]
    allowed = [taken] if broker.target == "polygate" else [taken, []]
    cid = clients.client_id("k")
    tcp = tcp_conn(clients, V5, cid)
    ws = ws_conn(clients, V5, cid)
    pkts = tcp.read_until_closed()
    assert [(p.type, p.reason) for p in pkts] in allowed, pkts
    tcp_conn(clients, V5, cid)
    pkts = ws.read_until_closed()
    assert [(p.type, p.reason) for p in pkts] in allowed, pkts


@pytest.mark.parametrize("path", ["/", "/mqtt", "/some/other/path?x=1"])
def test_any_path_is_accepted(clients, topic, path):
    c = clients.paho(V311, ws_path=path, **WS)
    c.subscribe(topic, 1)
    c.publish(topic, path.encode(), qos=1)
    assert c.get().payload == path.encode()


@pytest.mark.parametrize("size", [70000, pytest.param(1000000, marks=pytest.mark.polygate_only)],
                         ids=["70k", "1M"])
def test_large_messages_both_ways(clients, topic, size):
    """A big PUBLISH in one frame (64-bit frame length) each way (max_frame_size 0 = no
    limit); the server may frame its copy as it likes. (mosquitto 2.0.11 stalls
    part way through sending a frame of a few hundred kB.)"""
    payload = (bytes(range(256)) * (size // 256 + 1))[:size]
    ws_sub = ws_conn(clients, V5)
    ws_sub.subscribe([(topic, 1)])
    tcp_sub = tcp_conn(clients, V311)
    tcp_sub.subscribe([(topic, 0)])
    ws_pub = ws_conn(clients, V311)
    ws_pub.publish(topic, payload, qos=1)
    p = ws_sub.wait_for(r.PUBLISH)
    assert (p.topic, len(p.payload), p.payload == payload) == (topic, len(payload), True)
    ws_sub.ack(p)
    p = tcp_sub.wait_for(r.PUBLISH)
    assert p.payload == payload


@pytest.mark.polygate_only  # mosquitto 2.0.11 stalls (as with big frames) and drops both
def test_slow_ws_reader_gets_everything_in_order(clients, topic):
    """5 MB for a WebSocket subscriber that reads nothing until all of it is published:
    the server's writes to it block and resume; nothing is lost, cut or reordered."""
    n, size = 80, 60000
    ws_sub = ws_conn(clients, V311)
    ws_sub.subscribe([(topic, 0)])
    pub = tcp_conn(clients, V311)
    for i in range(n):
        pub.publish(topic, b"%05d" % i + bytes([i]) * (size - 5), qos=0)
    pub.publish(topic, b"end", qos=1)  # all are in the broker
    got = [ws_sub.wait_for(r.PUBLISH).payload for _ in range(n + 1)]
    assert [g[:5] for g in got[:-1]] == [b"%05d" % i for i in range(n)]
    assert all(g == b"%05d" % i + bytes([i]) * (size - 5) for i, g in enumerate(got[:-1]))
    assert got[-1] == b"end"


def test_keepalive_enforced_over_ws(clients, topic, broker):
    """Two WebSocket clients with keepalive 1 send no MQTT packet, one of them sending
    WebSocket pings meanwhile: both are dropped after 1.5 s and their wills go out
    (WebSocket pings are not MQTT Control Packets, MQTT 3.1.1 / 5.0 3.1.2.10)."""
    # mosquitto 2.0 looks at keepalives only every ~5 s (as test_keepalive.py)
    limit = 1.5 + (6.5 if broker.target == "mosquitto" else 1.0 * SLOW)
    watcher = clients.paho(V5)
    watcher.subscribe(topic + "/#", 1)
    conns = {}
    for name in ("silent", "ws-pings"):
        c = clients.raw_ws(V5)
        assert c.connect(clients.client_id("k"), keepalive=1,
                         will={"topic": topic + "/" + name, "payload": b"timed out"}).reason == 0
        conns[name] = [c, time.monotonic(), None, []]
    while any(v[2] is None for v in conns.values()):
        for name, v in conns.items():
            c, t0, took, pkts = v
            if took is not None:
                continue
            if name == "ws-pings":
                try:
                    c.ws.ping(b"k")
                except OSError:
                    pass
            try:
                pkts.append(c.recv_packet(timeout=0.1))
            except TimeoutError:
                assert time.monotonic() - t0 < limit + 1, "%s: still connected after %.1fs" % (
                    name, time.monotonic() - t0)
            except r.Closed:
                v[2] = time.monotonic() - t0
    for name, (c, t0, took, pkts) in conns.items():
        assert [(p.type, p.reason) for p in pkts] in (
            [], [(r.DISCONNECT, r.RC_KEEP_ALIVE_TIMEOUT)]), (name, pkts)
        assert 1.0 <= took <= limit, (name, took)
    got = sorted((m.topic, m.payload) for m in watcher.get_n(2))
    assert got == [(topic + "/silent", b"timed out"), (topic + "/ws-pings", b"timed out")]


# ------------------------------------------------------------------ framing (rawws)


def test_packet_split_over_frames_and_messages(clients, topic):
    tcp_sub = tcp_conn(clients, V5)
    tcp_sub.subscribe([(topic + "/#", 2)])
    c = clients.raw_ws(V5)
    ws = c.ws
    # CONNECT as one message of three frames (a 1-byte one, a 5-byte one, the rest)
    ws.send_fragmented(r.connect_packet(clients.client_id("f"), V5), [1, 5, 0])
    ack = c.recv_packet()
    assert (ack.type, ack.reason) == (r.CONNACK, 0)
    # SUBSCRIBE one byte per message
    for b in r.subscribe_packet(7, [(topic + "/#", 1)], version=V5):
        ws.send_binary(bytes([b]))
    sa = c.recv_packet()
    assert (sa.type, sa.pid, sa.codes) == (r.SUBACK, 7, [1])
    # two PUBLISHes cut at odd places into three messages of two frames each, so that
    # one message ends inside the first packet and another holds the end of the first
    # and the start of the second
    stream = (r.publish_packet(topic + "/one", b"A" * 300, qos=1, pid=11, version=V5) +
              r.publish_packet(topic + "/two", b"B" * 40, qos=2, pid=12, version=V5))
    cuts = [0, 100, 320, len(stream)]
    for a, b in zip(cuts, cuts[1:]):
        piece = stream[a:b]
        ws.send_fragmented(piece, [len(piece) // 3, 0])
    assert c.wait_for(r.PUBACK).pid == 11
    assert c.wait_for(r.PUBREC).pid == 12
    # a ping between the two frames of a message (RFC 6455 5.4: control frames may be
    # injected in the middle of a fragmented message)
    pubrel = r.ack_packet(r.PUBREL, 12, version=V5)
    ws.send_frame(rawws.OP_BINARY, pubrel[:2], fin=False)
    ws.ping(b"between fragments")
    ws.send_frame(rawws.OP_CONT, pubrel[2:], fin=True)
    assert c.wait_for(r.PUBCOMP).pid == 12
    assert ws.pongs == [b"between fragments"]
    got = sorted((p.topic, p.payload) for p in (tcp_sub.wait_for(r.PUBLISH), tcp_sub.wait_for(r.PUBLISH)))
    assert got == [(topic + "/one", b"A" * 300), (topic + "/two", b"B" * 40)]
    own = sorted((p.topic, p.payload) for p in (c.wait_for(r.PUBLISH), c.wait_for(r.PUBLISH)))
    assert own == got


def test_several_packets_in_one_frame(clients, topic):
    c = clients.raw_ws(V311)
    c.ws.send_binary(r.connect_packet(clients.client_id("m"), V311) +
                     r.subscribe_packet(1, [(topic, 1)]) +
                     r.publish_packet(topic, b"one frame", qos=1, pid=2) +
                     r.pingreq_packet())
    assert c.recv_packet().type == r.CONNACK
    assert c.wait_for(r.SUBACK).codes == [1]
    assert c.wait_for(r.PUBACK).pid == 2
    assert c.wait_for(r.PUBLISH).payload == b"one frame"
    assert c.wait_for(r.PINGRESP)


def test_ping_answered_with_pong(clients):
    c = clients.raw_ws(V5)
    c.ws.ping(b"before connect")
    assert c.ws.wait_pong() == (b"before connect", [])
    assert c.connect(clients.client_id("p")).reason == 0
    c.ws.ping(b"")
    assert c.ws.wait_pong() == (b"", [])
    c.ws.ping(bytes(range(125)))  # the largest control frame
    assert c.ws.wait_pong() == (bytes(range(125)), [])
    assert c.ping().type == r.PINGRESP  # and MQTT's own ping still works


@pytest.mark.parametrize("name", SUBPROTOCOLS + [
    pytest.param(n, marks=pytest.mark.polygate_only) for n in EMQX_SUBPROTOCOLS])
def test_subprotocol_negotiated(clients, topic, name):
    """Each known name is accepted and echoed (EMQX's aliases: polygate only)."""
    version = V5 if name == "mqtt-v5" else V311
    c = clients.raw_ws(version, subprotocols=[name])
    assert c.protocol == name
    assert c.connect(clients.client_id("n")).reason == 0
    c.subscribe([(topic, 1)])
    c.publish(topic, name.encode(), qos=1)
    assert c.wait_for(r.PUBLISH).payload == name.encode()


@pytest.mark.parametrize("offer,chosen", [
    (["chat", "mqttv3.1", "mqtt"], "mqttv3.1"),
    (["mqtt", "mqttv3.1"], "mqtt"),
    (["x-unknown", "mqtt"], "mqtt"),
])
def test_first_known_subprotocol_chosen(clients, offer, chosen):
    c = clients.raw_ws(V5, subprotocols=offer)
    assert c.protocol == chosen
    assert c.connect(clients.client_id("o")).reason == 0


@pytest.mark.polygate_only
@pytest.mark.parametrize("offer,chosen", [(["chat", "mqtt-v5", "mqtt"], "mqtt-v5"),
                                          (["mqtt-v3.1.1", "mqttv3.1"], "mqtt-v3.1.1")])
def test_first_known_subprotocol_chosen_emqx_aliases(clients, offer, chosen):
    c = clients.raw_ws(V5, subprotocols=offer)
    assert c.protocol == chosen
    assert c.connect(clients.client_id("o")).reason == 0


@pytest.mark.polygate_only  # mosquitto 2.0.11 upgrades, then hands it to its HTTP protocol
def test_no_subprotocol_is_mqtt(clients, topic):
    c = clients.raw_ws(V5, subprotocols=None)
    assert "sec-websocket-protocol" not in c.ws.headers, c.ws.headers
    assert c.connect(clients.client_id("z")).reason == 0
    c.subscribe([(topic, 0)])
    c.publish(topic, b"no subprotocol")
    assert c.wait_for(r.PUBLISH).payload == b"no subprotocol"


@pytest.mark.parametrize("offer", [["chat"], ["x-unknown", "superchat"], ["MQTT-wrong"]])
def test_unknown_subprotocols_refused(clients, offer):
    with pytest.raises(rawws.Refused) as e:
        clients.raw_ws(V5, subprotocols=offer)
    assert e.value.status != 101
    assert_ws_serves(clients)


@pytest.mark.polygate_only  # mosquitto 2.0.11 ignores text frames
@pytest.mark.parametrize("how", ["one-frame", "fragmented", "after-binary-fragment"])
def test_text_frame_closes_1003(clients, topic, how):
    watcher = clients.paho(V5)
    watcher.subscribe(topic, 0)
    c = ws_conn(clients, V311)
    # a valid PUBLISH (ASCII only), but in a text message: refused as such, never delivered
    pkt = r.publish_packet(topic, b"as text")
    if how == "one-frame":
        c.ws.send_frame(rawws.OP_TEXT, pkt)
    elif how == "fragmented":
        c.ws.send_fragmented(pkt, [3, 0], opcode=rawws.OP_TEXT)
    else:  # the start of a packet in binary, the rest in text
        c.ws.send_binary(pkt[:3])
        c.ws.send_frame(rawws.OP_TEXT, pkt[3:])
    code, msgs = c.ws.wait_close()
    assert (code, msgs) == (rawws.CLOSE_UNSUPPORTED_DATA, [])
    assert c.ws.wait_eof()
    watcher.expect_none(QUIET)
    assert_ws_serves(clients)


FRAMING_ERRORS = {
    "rsv-bit": [rawws.frame(rawws.OP_BINARY, r.pingreq_packet(), rsv=4)],
    "reserved-opcode": [rawws.frame(0x3, r.pingreq_packet())],
    "continuation-without-start": [rawws.frame(rawws.OP_CONT, r.pingreq_packet())],
    "fragmented-ping": [rawws.frame(rawws.OP_PING, b"x", fin=False)],
    "new-message-inside-fragmented": [rawws.frame(rawws.OP_BINARY, b"\xc0", fin=False),
                                      rawws.frame(rawws.OP_BINARY, b"\x00")],
    "ping-over-125-bytes": [rawws.frame(rawws.OP_PING, b"p" * 126)],
}


@pytest.mark.parametrize("name", sorted(FRAMING_ERRORS))
def test_websocket_framing_error_closes(clients, name):
    """RFC 6455 5.2/5.4/5.5: the connection is failed (close 1002 where the server sends
    a close frame at all), the MQTT inside is not acted on, the server keeps serving."""
    c = ws_conn(clients, V311)
    for f in FRAMING_ERRORS[name]:
        c.ws.send_raw(f)
    pkts = c.read_until_closed()
    assert pkts == [], "a PINGREQ in a bad frame was answered: %r" % pkts
    assert c.close_code in (None, rawws.CLOSE_PROTOCOL_ERROR), c.close_code
    assert_ws_serves(clients)


@pytest.mark.polygate_only  # mosquitto 2.0.11 ends the TCP connection, no close frame
@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_mqtt_protocol_error_closes_1002(clients, version):
    c = ws_conn(clients, version)
    c.send(b"\x30\xff\xff\xff\xff\x01")  # remaining length of 5 bytes: malformed
    pkts = c.read_until_closed()
    assert c.close_code == rawws.CLOSE_PROTOCOL_ERROR
    if version == V5:
        assert [(p.type, p.reason) for p in pkts] == [(r.DISCONNECT, r.RC_MALFORMED)], pkts
    else:
        assert pkts == []
    assert c.ws.wait_eof()
    assert_ws_serves(clients)


@pytest.mark.polygate_only
def test_garbage_before_connect_closes_1002(clients):
    c = clients.raw_ws(V5)
    c.ws.send_binary(b"GET / HTTP/1.1\r\n\r\n")  # not MQTT at all
    assert c.read_until_closed() == []
    assert c.close_code == rawws.CLOSE_PROTOCOL_ERROR
    assert_ws_serves(clients)


@pytest.mark.polygate_only
@pytest.mark.broker_config(ws_max_frame_size=1024)
def test_max_frame_size_closes_1009(clients, topic):
    sub = tcp_conn(clients, V5)
    sub.subscribe([(topic, 0)])
    c = ws_conn(clients, V311)
    n = 1024 - 3 - 2 - len(topic.encode())  # type, 2-byte remaining length, topic length
    fits = r.publish_packet(topic, b"f" * n, version=V311)
    assert len(fits) == 1024, len(fits)
    c.send(fits)  # a frame of exactly max_frame_size: fine
    assert sub.wait_for(r.PUBLISH).payload == b"f" * n
    assert c.ping().type == r.PINGRESP
    c.send(r.publish_packet(topic, b"g" * 1100, version=V311))
    assert c.read_until_closed() == []
    assert c.close_code == rawws.CLOSE_TOO_BIG
    try:
        p = sub.recv_packet(timeout=QUIET)
    except TimeoutError:
        p = None
    assert p is None, "the oversized frame was delivered: %r" % p
    # many small frames of one big MQTT packet are fine: the limit is per frame, both
    # for separate messages and for the frames of one fragmented message
    c2 = ws_conn(clients, V311)
    big = r.publish_packet(topic, b"h" * 5000, version=V311)
    for i in range(0, len(big), 1000):
        c2.ws.send_binary(big[i:i + 1000])
    assert sub.wait_for(r.PUBLISH).payload == b"h" * 5000
    c2.ws.send_fragmented(r.publish_packet(topic, b"i" * 5000, version=V311), [1000] * 5 + [0])
    assert sub.wait_for(r.PUBLISH).payload == b"i" * 5000


@pytest.mark.polygate_only
@pytest.mark.broker_config(ws_max_frame_size=1024)
@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_oversized_frame_is_not_acted_on(clients, topic, version):
    """A 200 kB frame (the server reads it in pieces) whose first bytes are a complete,
    valid PUBLISH: the frame is refused as a whole (1009), nothing of it delivered."""
    sub = tcp_conn(clients, V5)
    sub.subscribe([(topic, 0)])
    c = ws_conn(clients, version)
    c.send(r.publish_packet(topic, b"small, but in a big frame", version=version) +
           r.publish_packet(topic + "/big", b"x" * 200000, version=version))
    pkts = c.read_until_closed()
    assert c.close_code == rawws.CLOSE_TOO_BIG
    if version == V5:  # a DISCONNECT first is allowed: packet too large
        assert [(p.type, p.reason) for p in pkts] in ([], [(r.DISCONNECT, r.RC_PACKET_TOO_LARGE)])
    else:
        assert pkts == []
    try:
        p = sub.recv_packet(timeout=QUIET)
    except TimeoutError:
        p = None
    assert p is None, "part of the refused frame was delivered: %r" % p


# ------------------------------------------------------------------ HTTP side


@pytest.mark.polygate_only
@pytest.mark.broker_config(ws_allowed_origins=ORIGIN_LIST)
def test_origin_allowed_and_refused(clients):
    for origin in GOOD_ORIGINS:
        c = ws_conn(clients, V5, origin=origin)
        assert c.ping().type == r.PINGRESP
    for origin in ["http://evil.example", "http://good.example.evil", "http://good.example:81",
                   "https://good.example", "null"]:
        with pytest.raises(rawws.Refused) as e:
            clients.raw_ws(V5, origin=origin)
        assert e.value.status != 101, origin
    # paho sends Origin: https://HOST:PORT, not in the list
    with pytest.raises((mqtt.WebsocketConnectionError, OSError)):
        clients.paho(V5, **WS)
    c = clients.paho(V5, ws_headers={"Origin": GOOD_ORIGINS[0]}, **WS)
    c.disconnect()


@pytest.mark.polygate_only
@pytest.mark.broker_config(ws_allowed_origins=ORIGIN_LIST)
def test_origin_missing_accepted_when_list_set(clients):
    """Documented (config/polygate.conf): clients that send no Origin (not browsers) are
    always let in; the list only keeps pages of other sites out (a non-browser client
    could send any Origin it likes anyway)."""
    c = ws_conn(clients, V5, origin=None)
    assert c.ping().type == r.PINGRESP


def test_any_origin_without_list(clients):
    for origin in ["http://evil.example", "null", None]:
        ws_conn(clients, V5, origin=origin).disconnect()


@pytest.mark.polygate_only
@pytest.mark.broker_config(ws_trust_xff=True)
def test_x_forwarded_for_trusted(clients, broker):
    """The address the proxy added (the last one) counts: earlier ones came from the
    client. Something that is not an address is ignored."""
    offset = broker.log_size()
    cid = clients.client_id("x")
    ws_conn(clients, V5, cid, headers={"X-Forwarded-For": "192.0.2.1, 10.9.8.7"}).disconnect()
    lines = wait_log(broker, lambda l: cid in l and "mqtt-ws 10.9.8.7:" in l,
                     "the client at 10.9.8.7", offset)
    mine = [l for l in lines if cid in l]
    assert not [l for l in mine if "127.0.0.1" in l or "192.0.2.1" in l], mine
    cid6 = clients.client_id("v6")
    ws_conn(clients, V5, cid6, headers={"X-Forwarded-For": "2001:db8::7"}).disconnect()
    wait_log(broker, lambda l: cid6 in l and "mqtt-ws [2001:db8::7]:" in l,
             "the client at [2001:db8::7]", offset)
    cidg = clients.client_id("g")
    ws_conn(clients, V5, cidg, headers={"X-Forwarded-For": "10.0.0.1:1234"}).disconnect()
    wait_log(broker, lambda l: cidg in l and "mqtt-ws 127.0.0.1:" in l,
             "a bad header ignored: the client at 127.0.0.1", offset)
    # without the header: the real peer
    cid2 = clients.client_id("y")
    ws_conn(clients, V5, cid2).disconnect()
    wait_log(broker, lambda l: cid2 in l and "mqtt-ws 127.0.0.1:" in l, "the client at 127.0.0.1",
             offset)


@pytest.mark.polygate_only
def test_x_forwarded_for_ignored_by_default(clients, broker):
    offset = broker.log_size()
    cid = clients.client_id("x")
    ws_conn(clients, V5, cid, headers={"X-Forwarded-For": "10.9.8.7"}).disconnect()
    lines = wait_log(broker, lambda l: cid in l and "mqtt-ws 127.0.0.1:" in l,
                     "the client at its real address", offset)
    assert not [l for l in lines if "10.9.8.7" in l]


@pytest.mark.broker_config(ws_www_dir=str(WWW))
def test_static_files(clients, broker):
    get = lambda path: rawws.http_get(broker.host, broker.ws_port, path, timeout=TIMEOUT)
    res = get("/")
    assert (res.status, res.body) == (200, INDEX_HTML), res
    if broker.target == "polygate":  # mosquitto 2.0.11 sends no Content-Type for files
        assert res.headers.get("content-type", "").startswith("text/html"), res
    res = get("/index.html")
    assert (res.status, res.body) == (200, INDEX_HTML), res
    res = get("/sub/page.txt")
    assert (res.status, res.body) == (200, PAGE_TXT), res
    for path, body, ctype in [("/style.css", STYLE_CSS, "text/css"),
                              ("/app.js", APP_JS, "javascript")]:
        res = get(path)
        assert (res.status, res.body) == (200, body), res
        if broker.target == "polygate":  # browsers refuse styles/scripts of another type
            assert ctype in res.headers.get("content-type", ""), res
    for path in ["/missing.html", "/sub/missing.txt"]:
        assert get(path).status == 404, path
    for path in ["/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt"]:
        res = get(path)
        assert res.status != 200 and SECRET not in res.body, (path, res)
    # MQTT still upgrades on the same port
    assert_ws_serves(clients)


def test_no_static_files_without_www_dir(clients, broker):
    """www_dir = "": every plain GET is 404 (mosquitto 2.0.11 without http_dir closes the
    connection without an answer)."""
    for path in ["/", "/index.html", "/mqtt"]:
        try:
            res = rawws.http_get(broker.host, broker.ws_port, path, timeout=TIMEOUT)
        except ConnectionError:
            assert broker.target == "mosquitto", "no HTTP answer to GET %s" % path
            continue
        assert res.status == 404, (path, res)
    assert_ws_serves(clients)


# ------------------------------------------------------------------ group settings, wss


@pytest.mark.polygate_only
@pytest.mark.broker_config(ws_allow_anonymous=False, password_file=PASSWD)
@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_group_refuses_anonymous_over_ws_only(clients, broker, version):
    offset = broker.log_size()
    c = clients.raw_ws(version)
    cid = clients.client_id("anon")
    assert c.connect(cid).reason == (0x87 if version == V5 else 5)
    c = clients.raw_ws(version)
    assert c.connect(clients.client_id("bad"), username="alice",
                     password=b"wrong").reason == (0x86 if version == V5 else 4)
    c = clients.raw_ws(version)
    assert c.connect(clients.client_id("alice"), username="alice", password=b"secret").reason == 0
    tcp_conn(clients, version)  # anonymous over TCP: auth.allow_anonymous = true
    wait_log(broker, lambda l: cid in l and "mqtt-ws " in l, "the refused WebSocket client", offset)


class _AuthHandler(BaseHTTPRequestHandler):
    """A minimal auth service: records the form fields, 200 for password "good"."""
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fields = dict(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        with self.server.lock:
            self.server.records.append(fields)
        self.send_response(200 if fields.get("password") == "good" else 403)
        self.send_header("Content-Length", "0")
        self.end_headers()


AUTH_PORT = free_port()


@pytest.fixture(scope="module")
def auth_service():
    srv = ThreadingHTTPServer((HOST, AUTH_PORT), _AuthHandler)
    srv.daemon_threads = True
    srv.records, srv.lock = [], threading.Lock()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.mark.polygate_only  # mosquitto has neither an HTTP auth service nor X-Forwarded-For
@pytest.mark.broker_config(ws_trust_xff=True, auth_http_url="http://%s:%d/auth" % (HOST, AUTH_PORT))
def test_auth_service_sees_protocol_and_forwarded_address(auth_service, clients, uniq):
    """The auth service is told protocol "mqtt-ws" and, behind a trusted proxy, the
    address from X-Forwarded-For as peerhost."""
    def fields_of(user):
        with auth_service.lock:
            return [f for f in auth_service.records if f.get("username") == user]

    u1, u2, u3 = "fwd" + uniq, "direct" + uniq, "tcp" + uniq
    c = clients.raw_ws(V5, headers={"X-Forwarded-For": "192.0.2.1, 10.9.8.7"})
    assert c.connect(clients.client_id("a"), username=u1, password=b"good").reason == 0
    c = clients.raw_ws(V5)
    assert c.connect(clients.client_id("b"), username=u2, password=b"bad").reason == 0x86
    port = c.sock.getsockname()[1]
    c = clients.raw(V5)
    assert c.connect(clients.client_id("c"), username=u3, password=b"good").reason == 0
    f1, f2, f3 = fields_of(u1), fields_of(u2), fields_of(u3)
    assert len(f1) == len(f2) == len(f3) == 1, (f1, f2, f3)
    assert (f1[0].get("protocol"), f1[0].get("peerhost")) == ("mqtt-ws", "10.9.8.7"), f1
    assert (f2[0].get("protocol"), f2[0].get("peerhost"), f2[0].get("peerport")) == \
        ("mqtt-ws", "127.0.0.1", str(port)), f2
    assert (f3[0].get("protocol"), f3[0].get("peerhost")) == ("mqtt", "127.0.0.1"), f3


@pytest.mark.polygate_only
@pytest.mark.broker_config(allow_anonymous=False, ws_allow_anonymous=True)
def test_group_allows_anonymous_over_ws_only(clients):
    c = clients.raw_ws(V311)
    assert c.connect(clients.client_id("anon")).reason == 0
    c = clients.raw(V311)
    assert c.connect(clients.client_id("anon")).reason == 5


@pytest.mark.polygate_only
@pytest.mark.broker_config(ws_mountpoint="wsmp/")
def test_mountpoint(clients, topic):
    tcp = tcp_conn(clients, V5)
    tcp.subscribe([("wsmp/" + topic + "/#", 1)])
    ws = ws_conn(clients, V5)
    ws.subscribe([(topic + "/#", 1)])
    ws.publish(topic + "/up", b"from ws", qos=1)
    p = tcp.wait_for(r.PUBLISH)
    assert (p.topic, p.payload) == ("wsmp/" + topic + "/up", b"from ws")
    p = ws.wait_for(r.PUBLISH)
    assert (p.topic, p.payload) == (topic + "/up", b"from ws")
    tcp.publish("wsmp/" + topic + "/down", b"from tcp", qos=1)
    p = ws.wait_for(r.PUBLISH)
    assert (p.topic, p.payload) == (topic + "/down", b"from tcp")


@pytest.mark.broker_config(ws_tls=True)
@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_wss(clients, topic, broker, version):
    sub = clients.paho(version, tls=True, **WS)
    sub.subscribe(topic, 1)
    c = clients.raw_ws(version, tls=True)
    der = c.sock.getpeercert(binary_form=True)
    with open(broker.cafile) as f:
        assert der == ssl.PEM_cert_to_DER_cert(f.read())
    assert c.connect(clients.client_id("s")).reason == 0
    c.publish(topic, b"over wss", qos=1)
    assert sub.get().payload == b"over wss"
    tcp = tcp_conn(clients, version)
    tcp.publish(topic, b"tcp to wss", qos=1)
    assert sub.get().payload == b"tcp to wss"

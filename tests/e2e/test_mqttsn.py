"""The MQTT-SN v1.2 gateway (SPEC "MQTT-SN v1.2 (UDP)", the `mqttsn = { ... }` group).

MQTT-SN clients are tests/e2e/mqttsn.py (written from the MQTT-SN v1.2 specification,
checked on its own by test_mqttsn_client.py); the MQTT side is rawmqtt and the
mosquitto_sub / mosquitto_pub command line clients. Covered: SEARCHGW/GWINFO and
ADVERTISE, CONNECT (will dialogue, allowed_clients, authentication with the group's
credentials, ACLs, max_connections), clean and persistent sessions, takeover by a new
address, REGISTER (same topic same id, wildcards refused, max_registrations), PUBLISH
at QoS -1/0/1/2 by normal, predefined and short topic ids (invalid ids refused),
retained messages, SUBSCRIBE by name, wildcard (REGISTER before the first PUBLISH of a
topic), predefined id and short name, QoS min(publish, granted) both ways, resends with
DUP after retry_interval and loss after max_retries, keepalive and wills (and their
updates), sleeping clients (queue, wake with PINGREQ, expiry), the Forwarder
Encapsulation, the DISCONNECT to unknown addresses, the mountpoint, the MQTT-side
identity (protocol "mqtt-sn" at the HTTP auth service), and malformed datagrams
(dropped silently, nobody else affected).

All MQTT-SN tests are polygate_only: mosquitto has no MQTT-SN. Durations, the retry
interval and the sleep times are 1-2 s so the module stays fast.
"""

import socket
import subprocess
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import mqttsn as sn
import rawmqtt as r
from conftest import ARTIFACTS, HOST
from helpers import QUIET, SLOW, TIMEOUT, V5, MosquittoSub, mosquitto_pub

GW_ID = 7
PREDEFINED = {
    1: "sensors/t1/temp",
    2: "e2e-sn/pre/two",
    3: "e2e-sn/pre/three",
    4: "e2e-sn/pre/four",
    5: "e2e-sn/pre/five",
    6: "e2e-sn/pre/six",
    7: "e2e-sn/pre/seven",
    8: "e2e-sn/pre/eight",
    300: "e2e-sn/pre/three-hundred",
}
RETRY = 1        # mqttsn.retry_interval of the module's gateway
MAX_RETRIES = 2  # mqttsn.max_retries
BASE = dict(mqttsn=True, mqttsn_gateway_id=GW_ID,
            mqttsn_predefined_topics=tuple(sorted(PREDEFINED.items())),
            mqttsn_retry_interval=RETRY, mqttsn_max_retries=MAX_RETRIES)

pytestmark = [pytest.mark.polygate_only, pytest.mark.broker_config(**BASE)]

# A UDP socket of the tests' own that ADVERTISE is pointed at (the port must be known
# when the marks are made); read by the advertise tests only.
ADV_SOCK = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ADV_SOCK.bind((HOST, 0))
ADV_PORT = ADV_SOCK.getsockname()[1]
ADVERTISE_CFG = dict(mqttsn_advertise_interval=1,
                     mqttsn_advertise_address="%s:%d" % (HOST, ADV_PORT))

# Authentication material (made before each test if missing: another pytest run
# started meanwhile wipes .artifacts).
FILES = ARTIFACTS / "mqttsn"
PASSWD = str(FILES / "passwd")
ACL = str(FILES / "acl")
ACL_TEXT = ("user snuser\n"
            "topic readwrite e2e-sn/acl/rw/#\n"
            "topic read e2e-sn/acl/ro/#\n"
            "\n"
            "user admin\n"
            "topic readwrite #\n")
AUTH_OK = dict(password_file=PASSWD, acl_file=ACL, allow_anonymous=False,
               mqttsn_username="snuser", mqttsn_password="snpass")
AUTH_BAD = dict(password_file=PASSWD, acl_file=ACL, allow_anonymous=False,
                mqttsn_username="snuser", mqttsn_password="wrong")
AUTH_ANON = dict(password_file=PASSWD, acl_file=ACL, allow_anonymous=False)


@pytest.fixture(autouse=True)
def _files():
    if (FILES / "acl").exists():
        return
    FILES.mkdir(parents=True, exist_ok=True)
    FILES.chmod(0o755)
    subprocess.run(["mosquitto_passwd", "-c", "-b", PASSWD + ".new", "snuser", "snpass"],
                   check=True)
    subprocess.run(["mosquitto_passwd", "-b", PASSWD + ".new", "admin", "adminpw"], check=True)
    (FILES / "passwd.new").chmod(0o644)
    (FILES / "passwd.new").rename(PASSWD)
    (FILES / "acl.new").write_text(ACL_TEXT)
    (FILES / "acl.new").chmod(0o644)
    (FILES / "acl.new").rename(ACL)


# ------------------------------------------------------------------ fixtures and helpers


class SNFactory:
    """MQTT-SN clients for one test, closed at teardown."""

    def __init__(self, broker, uniq):
        self.broker = broker
        self.uniq = uniq
        self.n = 0
        self.made = []

    def client_id(self, tag="sn"):
        self.n += 1
        return "%s%s%d" % (tag[:8], self.uniq, self.n)

    def client(self, connect=True, client_id=None, clean=True, duration=60, will=None,
               transport=None, expect_rc=sn.RC_ACCEPTED, **kw):
        c = sn.Client(self.broker.host, self.broker.sn_port, transport=transport,
                      timeout=TIMEOUT, predefined=PREDEFINED, **kw)
        self.made.append(c)
        c.client_id = client_id or self.client_id()
        if connect:
            c.connect(c.client_id, clean=clean, duration=duration, will=will,
                      expect_rc=expect_rc)
        return c

    def forwarder(self):
        f = sn.Forwarder(self.broker.host, self.broker.sn_port)
        self.made.append(f)
        return f

    def close_all(self):
        for c in self.made:
            c.close()


@pytest.fixture
def sn_clients(broker, uniq):
    f = SNFactory(broker, uniq)
    yield f
    f.close_all()


@pytest.fixture
def base(topic):
    """A topic prefix of this test's own (no wildcards, MQTT-SN safe)."""
    return topic.replace("e2e/", "e2e-sn/", 1)


def mqtt_conn(clients, version=V5, user=None, password=None):
    c = clients.raw(version)
    ack = c.connect(clients.client_id("m"), username=user, password=password)
    assert ack.reason == 0, ack
    return c


def mqtt_sub(clients, flt, qos=2, version=V5, **kw):
    c = mqtt_conn(clients, version, **kw)
    s = c.subscribe([(flt, qos)])
    assert s.codes == [qos], s.codes
    return c


def mqtt_get(c, timeout=None):
    """The next PUBLISH on an MQTT connection, acknowledged (QoS 2: the whole handshake)."""
    p = c.wait_for(r.PUBLISH, timeout)
    if p.qos:
        c.ack(p)
    return p


def mqtt_expect_none(c, timeout=QUIET):
    try:
        p = c.wait_for(r.PUBLISH, timeout)
    except TimeoutError:
        return
    raise AssertionError("unexpected MQTT delivery %r" % p)


def mosq_sub(broker, flt, count=1, qos=2):
    """mosquitto_sub printing each message as SNMSG|qos|retain|hex payload|topic."""
    return MosquittoSub(broker, ["-t", flt, "-q", str(qos), "-F", "SNMSG|%q|%r|%x|%t"],
                        count=count)


def mosq_results(sub):
    rc, out = sub.finish()
    assert rc == 0, out
    res = []
    for line in out.decode("utf-8", "replace").splitlines():
        if line.startswith("SNMSG|"):
            _, q, ret, hx, t = line.split("|", 4)
            res.append((t, int(q), ret == "1", bytes.fromhex(hx)))
    return res


def assert_sn_serves(sn_clients):
    """A fresh MQTT-SN client connects, subscribes, publishes and gets its message."""
    c = sn_clients.client(client_id="alive" + uuid.uuid4().hex[:10])
    t = "e2e-sn/alive/" + uuid.uuid4().hex[:10]
    a = c.subscribe(t, qos=1)
    assert a.rc == 0, a
    assert c.publish(t, b"still here", qos=1).rc == 0
    d = c.get()
    assert (d.topic, d.payload, d.qos) == (t, b"still here", 1)
    assert c.disconnect().type == sn.DISCONNECT


def wait_until(pred, what, timeout=None):
    deadline = time.monotonic() + (TIMEOUT if timeout is None else timeout)
    while not pred():
        assert time.monotonic() < deadline, "never happened: %s" % what
        time.sleep(0.02)


# ------------------------------------------------------------------ discovery


def test_searchgw_answered_with_gwinfo(sn_clients):
    c = sn_clients.client(connect=False)
    g = c.searchgw(radius=1)
    assert g.gw_id == GW_ID
    assert g.gw_add == b"", "a gateway's own GWINFO carries no GwAdd (5.4.3)"
    # twice, and from a connected client too
    assert c.searchgw(radius=0).gw_id == GW_ID
    c2 = sn_clients.client()
    assert c2.searchgw().gw_id == GW_ID


def _drain_adv():
    ADV_SOCK.setblocking(False)
    try:
        while True:
            ADV_SOCK.recvfrom(65536)
    except (BlockingIOError, OSError):
        pass
    finally:
        ADV_SOCK.setblocking(True)


def _adv_recv(timeout):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("nothing at the advertise address within %.1fs" % timeout)
        ADV_SOCK.settimeout(left)
        try:
            data, _ = ADV_SOCK.recvfrom(65536)
        except socket.timeout:
            continue
        return sn.decode(data), time.monotonic()


@pytest.mark.broker_config(**ADVERTISE_CFG)
def test_advertise_every_interval(broker):
    _drain_adv()
    seen = []
    deadline = time.monotonic() + 4 * SLOW + 2
    while len(seen) < 3 and time.monotonic() < deadline:
        m, at = _adv_recv(deadline - time.monotonic())
        if m.type == sn.ADVERTISE:
            seen.append((m, at))
    assert len(seen) == 3, seen
    for m, _ in seen:
        assert (m.gw_id, m.duration) == (GW_ID, 1)
    gaps = [b[1] - a[1] for a, b in zip(seen, seen[1:])]
    assert all(0.5 <= g <= 1.5 * SLOW + 0.5 for g in gaps), gaps


@pytest.mark.broker_config(**ADVERTISE_CFG)
def test_searchgw_gwinfo_also_to_advertise_address(broker, sn_clients):
    """SPEC: GWINFO goes straight back to the sender, and, when ADVERTISE broadcasting is
    configured, to the broadcast address too."""
    _drain_adv()
    c = sn_clients.client(connect=False)
    assert c.searchgw().gw_id == GW_ID
    deadline = time.monotonic() + TIMEOUT
    while True:
        m, _ = _adv_recv(deadline - time.monotonic())
        if m.type == sn.GWINFO:
            assert m.gw_id == GW_ID
            return


# ------------------------------------------------------------------ connect, disconnect


def test_connect_disconnect(sn_clients, clients, base):
    c = sn_clients.client(connect=False)
    assert c.connect(c.client_id, duration=30).rc == sn.RC_ACCEPTED
    tid = c.register(base + "/t")
    d = c.disconnect()
    assert d.type == sn.DISCONNECT and d.duration is None
    # no longer connected: a PUBLISH is answered with DISCONNECT, not a PUBACK
    c.send(sn.publish(tid, 1, b"late", qos=1))
    m = c.wait_for((sn.DISCONNECT, sn.PUBACK))
    assert m.type == sn.DISCONNECT, m


# (a DISCONNECT from an unknown address is left out: answering it in kind could make two
# peers that both follow this rule bounce DISCONNECTs forever)
@pytest.mark.parametrize("msg", [
    pytest.param(lambda: sn.publish(1, 0, b"x", qos=0), id="publish-qos0"),
    pytest.param(lambda: sn.publish(1, 1, b"x", qos=1), id="publish-qos1"),
    pytest.param(lambda: sn.publish(2, 1, b"x", qos=2, tid_type=sn.TID_PREDEFINED),
                 id="publish-qos2-predefined"),
    pytest.param(lambda: sn.register(0, 1, "e2e-sn/unknown"), id="register"),
    pytest.param(lambda: sn.subscribe(1, "e2e-sn/unknown/#"), id="subscribe"),
    pytest.param(lambda: sn.unsubscribe(1, "e2e-sn/unknown/#"), id="unsubscribe"),
    pytest.param(lambda: sn.pingreq(), id="pingreq"),
    pytest.param(lambda: sn.willtopicupd("e2e-sn/w"), id="willtopicupd"),
    pytest.param(lambda: sn.willmsgupd(b"w"), id="willmsgupd"),
    pytest.param(lambda: sn.pubrel(1), id="pubrel"),
])
def test_unknown_address_gets_disconnect(sn_clients, msg):
    c = sn_clients.client(connect=False)
    c.send(msg())
    m = c.wait_for((sn.DISCONNECT, sn.PUBACK, sn.REGACK, sn.SUBACK, sn.UNSUBACK, sn.PINGRESP,
                    sn.WILLTOPICRESP, sn.WILLMSGRESP, sn.PUBCOMP))
    assert m.type == sn.DISCONNECT, m
    # and it may connect afterwards
    assert c.connect(c.client_id).rc == 0


def test_connect_with_will_dialogue_and_keepalive_loss(sn_clients, broker, base):
    """The will dialogue at CONNECT; a client silent for 1.5 x its duration is lost and
    its will published (seen by mosquitto_sub)."""
    t = base + "/will"
    sub = mosq_sub(broker, t, 1)
    try:
        c = sn_clients.client(connect=False)
        c.send(sn.connect(c.client_id, clean=True, will=True, duration=1))
        assert c.wait_for(sn.WILLTOPICREQ).type == sn.WILLTOPICREQ
        c.send(sn.willtopic(t, qos=1, retain=False))
        assert c.wait_for(sn.WILLMSGREQ).type == sn.WILLMSGREQ
        c.send(sn.willmsg(b"sensor lost"))
        assert c.wait_for(sn.CONNACK).rc == 0
        t0 = time.monotonic()
        got = mosq_results(sub)
        elapsed = time.monotonic() - t0
    finally:
        sub.kill()
    assert got == [(t, 1, False, b"sensor lost")]
    assert elapsed >= 1.0, "will after %.2fs: the keepalive is 1.5 x 1 s" % elapsed
    # the lost client's address is unknown now
    c.send(sn.pingreq())
    assert c.wait_for((sn.DISCONNECT, sn.PINGRESP)).type == sn.DISCONNECT


def test_keepalive_kept_by_pings(sn_clients, clients, base):
    t = base + "/will"
    watch = mqtt_sub(clients, t, 1)
    c = sn_clients.client(duration=1, will={"topic": t, "message": b"must not", "qos": 1})
    end = time.monotonic() + 2.4  # well past 1.5 x 1 s
    while time.monotonic() < end:
        c.ping()
        time.sleep(0.4)
    mqtt_expect_none(watch, 0.3)
    c.disconnect()
    mqtt_expect_none(watch, 0.3)


def test_disconnect_sends_no_will(sn_clients, clients, base):
    t = base + "/will"
    watch = mqtt_sub(clients, t, 1)
    c = sn_clients.client(duration=1, will={"topic": t, "message": b"must not", "qos": 1,
                                            "retain": True})
    assert c.disconnect().duration is None
    mqtt_expect_none(watch, 2.2)  # past the 1.5 s keepalive too


def test_retained_will(sn_clients, clients, base):
    t = base + "/will"
    sn_clients.client(duration=1, will={"topic": t, "message": b"offline", "qos": 1,
                                        "retain": True})
    live = mqtt_sub(clients, t, 1)
    p = mqtt_get(live, TIMEOUT + 2)
    assert (p.topic, p.payload, p.qos, p.retain) == (t, b"offline", 1, False)
    late = mqtt_sub(clients, t, 1)
    p = mqtt_get(late)
    assert (p.payload, p.retain) == (b"offline", True)
    mqtt_conn(clients).publish(t, b"", qos=1, retain=True)  # clear it


@pytest.mark.broker_config(mqttsn_allowed_clients="sn-good-1,sn-good-2")
def test_allowed_clients(sn_clients):
    assert sn_clients.client(client_id="sn-good-1").client_id == "sn-good-1"
    sn_clients.client(client_id="sn-good-2")
    bad = sn_clients.client(client_id="sn-good-3", expect_rc=sn.RC_NOT_SUPPORTED)
    # refused: it is not connected
    bad.send(sn.pingreq())
    assert bad.wait_for((sn.DISCONNECT, sn.PINGRESP)).type == sn.DISCONNECT
    # with a will the refusal may come before or after the will dialogue
    sn_clients.client(client_id="intruder", will={"topic": "e2e-sn/w", "message": b"x"},
                      expect_rc=sn.RC_NOT_SUPPORTED)


@pytest.mark.broker_config(mqttsn_max_connections=2)
def test_max_connections_congestion(sn_clients):
    a = sn_clients.client()
    sn_clients.client()
    sn_clients.client(expect_rc=sn.RC_CONGESTION)
    a.disconnect()
    sn_clients.client()  # a place is free again


@pytest.mark.broker_config(mqttsn_max_connections=3)  # a broker of its own
def test_kept_sessions_do_not_count_against_max_connections(sn_clients):
    """A persistent session left behind is not a connection: it must not lock
    new devices out."""
    for _ in range(4):
        sn_clients.client(clean=False).disconnect()
    live = [sn_clients.client() for _ in range(3)]
    sn_clients.client(expect_rc=sn.RC_CONGESTION)
    for c in live:
        c.disconnect()


@pytest.mark.broker_config(mqttsn_max_connections=0, broker_max_connections=1)
def test_broker_max_connections_counts_mqttsn_and_mqtt(sn_clients, clients):
    """broker.max_connections holds over every protocol."""
    a = sn_clients.client()
    sn_clients.client(expect_rc=sn.RC_CONGESTION)
    a.disconnect()
    sn_clients.client()


# ------------------------------------------------------------------ access control


@pytest.mark.broker_config(**AUTH_OK)
def test_auth_group_credentials_accepted(sn_clients, clients):
    c = sn_clients.client()
    assert c.ping().type == sn.PINGRESP


@pytest.mark.broker_config(**AUTH_BAD)
def test_auth_wrong_group_password_refused(sn_clients):
    sn_clients.client(expect_rc=sn.RC_NOT_SUPPORTED)


@pytest.mark.broker_config(**AUTH_ANON)
def test_auth_anonymous_refused(sn_clients):
    sn_clients.client(expect_rc=sn.RC_NOT_SUPPORTED)


@pytest.mark.broker_config(**AUTH_OK)
def test_acl_subscribe_and_publish(sn_clients, clients, uniq):
    admin = mqtt_sub(clients, "e2e-sn/acl/#", 1, user="admin", password="adminpw")
    c = sn_clients.client()
    assert c.subscribe("e2e-sn/acl/deny/" + uniq, qos=1).rc == sn.RC_NOT_SUPPORTED
    assert c.subscribe("e2e-sn/acl/ro/" + uniq, qos=1).rc == sn.RC_ACCEPTED
    assert c.subscribe("e2e-sn/acl/rw/#", qos=1).rc == sn.RC_ACCEPTED
    ro = c.register("e2e-sn/acl/ro/" + uniq)
    rw = c.register("e2e-sn/acl/rw/" + uniq)
    assert c.publish(ro, b"denied-1", qos=1, expect_rc=None).rc == sn.RC_NOT_SUPPORTED
    assert c.publish(ro, b"denied-2", qos=2, expect_rc=None).rc == sn.RC_NOT_SUPPORTED
    c.publish(ro, b"denied-0", qos=0)
    c.publish(rw, b"allowed", qos=1)
    p = mqtt_get(admin)
    assert (p.topic, p.payload) == ("e2e-sn/acl/rw/" + uniq, b"allowed")
    d = c.get()
    assert d.payload == b"allowed"
    # what the client may read reaches it
    mqtt_conn(clients, user="admin", password="adminpw").publish(
        "e2e-sn/acl/ro/" + uniq, b"readable", qos=1)
    d = c.get()
    assert (d.topic, d.payload) == ("e2e-sn/acl/ro/" + uniq, b"readable")
    assert mqtt_get(admin).payload == b"readable"
    mqtt_expect_none(admin)


# ------------------------------------------------------------------ the HTTP auth service


class _AuthHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace")
        fields = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
        with AUTH_LOCK:
            AUTH_REQUESTS.append((urllib.parse.urlsplit(self.path).path, fields))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


AUTH_LOCK = threading.Lock()
AUTH_REQUESTS = []
AUTH_SERVER = ThreadingHTTPServer((HOST, 0), _AuthHandler)
AUTH_SERVER.daemon_threads = True
threading.Thread(target=AUTH_SERVER.serve_forever, daemon=True).start()
AUTH_HTTP = dict(auth_http_url="http://%s:%d/auth" % (HOST, AUTH_SERVER.server_address[1]),
                 auth_http_acl_url="http://%s:%d/acl" % (HOST, AUTH_SERVER.server_address[1]),
                 mqttsn_username="snhttp", mqttsn_password="pw-sn")


@pytest.mark.broker_config(**AUTH_HTTP)
def test_identity_at_http_auth_service(sn_clients, base):
    """The MQTT-side identity of an MQTT-SN client: protocol "mqtt-sn", its client id, the
    group's username and password."""
    c = sn_clients.client()
    t = base + "/id"
    c.publish(t, b"x", qos=1)

    def find(path, pred):
        with AUTH_LOCK:
            return [f for p, f in AUTH_REQUESTS if p == path and pred(f)]
    wait_until(lambda: find("/auth", lambda f: f.get("clientid") == c.client_id), "auth request")
    f = find("/auth", lambda f: f.get("clientid") == c.client_id)[0]
    assert (f.get("username"), f.get("password"), f.get("protocol")) == (
        "snhttp", "pw-sn", "mqtt-sn"), f
    wait_until(lambda: find("/acl", lambda f: f.get("topic") == t), "acl request")
    f = find("/acl", lambda f: f.get("topic") == t)[0]
    assert (f.get("clientid"), f.get("access"), f.get("protocol")) == (
        c.client_id, "publish", "mqtt-sn"), f


# ------------------------------------------------------------------ sessions


def test_clean_session_false_keeps_subscriptions_and_registrations(sn_clients, clients, base):
    cid = sn_clients.client_id("keep")
    watch = mqtt_sub(clients, base + "/#", 1)
    a = sn_clients.client(client_id=cid, clean=False)
    tid = a.register(base + "/reg")
    sa = a.subscribe(base + "/sub", qos=1)
    assert sa.rc == 0
    a.disconnect()
    b = sn_clients.client(client_id=cid, clean=False)  # another socket
    b.topics = dict(a.topics)
    # the registration survived
    assert b.publish(tid, b"old id", qos=1).rc == 0
    p = mqtt_get(watch)
    assert (p.topic, p.payload) == (base + "/reg", b"old id")
    # the subscription survived
    mqtt_conn(clients).publish(base + "/sub", b"to persistent", qos=1)
    d = b.get()
    assert (d.topic, d.payload, d.qos) == (base + "/sub", b"to persistent", 1)
    mqtt_get(watch)
    b.disconnect()
    # clean session: all gone
    c = sn_clients.client(client_id=cid, clean=True)
    assert c.publish(tid, b"gone", qos=1, expect_rc=None).rc == sn.RC_INVALID_TOPIC_ID
    mqtt_conn(clients).publish(base + "/sub", b"not for a clean session", qos=1)
    mqtt_get(watch)
    c.expect_none()


def test_persistent_session_gets_what_arrived_while_away(sn_clients, clients, base):
    cid = sn_clients.client_id("away")
    a = sn_clients.client(client_id=cid, clean=False)
    a.subscribe(base + "/#", qos=1)
    a.disconnect()
    mqtt_conn(clients).publish(base + "/x", b"while away", qos=1)
    b = sn_clients.client(client_id=cid, clean=False)
    d = b.get()
    assert (d.topic, d.payload, d.qos) == (base + "/x", b"while away", 1)


def test_takeover_from_new_address(sn_clients, clients, base):
    cid = sn_clients.client_id("take")
    a = sn_clients.client(client_id=cid, clean=False)
    a.subscribe(base + "/t", qos=1)
    b = sn_clients.client(client_id=cid, clean=False)
    assert a.address != b.address
    b.topics = dict(a.topics)
    mqtt_conn(clients).publish(base + "/t", b"to the new one", qos=1)
    d = b.get()
    assert (d.topic, d.payload) == (base + "/t", b"to the new one")
    a.expect_silence(QUIET)
    # the old address is not a client any more
    a.send(sn.pingreq())
    assert a.wait_for((sn.DISCONNECT, sn.PINGRESP)).type == sn.DISCONNECT
    assert b.ping().type == sn.PINGRESP


# ------------------------------------------------------------------ REGISTER


def test_register_ids(sn_clients, base):
    c = sn_clients.client()
    a = c.register_ack(base + "/a")
    assert a.rc == 0 and a.topic_id not in (0, 0xFFFF)
    assert c.register(base + "/a") == a.topic_id
    b = c.register(base + "/b")
    assert b != a.topic_id and b not in (0, 0xFFFF)
    # REGACK echoes the msg id
    c.send(sn.register(0, 0x4242, base + "/c"))
    ack = c.wait_for(sn.REGACK)
    assert ack.msg_id == 0x4242 and ack.rc == 0


@pytest.mark.parametrize("wild", ["/+", "/#", "/+/x"])
def test_register_wildcard_not_supported(sn_clients, base, wild):
    c = sn_clients.client()
    assert c.register_ack(base + wild).rc == sn.RC_NOT_SUPPORTED


@pytest.mark.broker_config(mqttsn_max_registrations=3)
def test_max_registrations_refused(sn_clients, base):
    """A full registry does not empty by waiting, so the answer is "not supported"
    (0x03) rather than congestion, which clients retry for ever."""
    c = sn_clients.client()
    ids = [c.register(base + "/%d" % i) for i in range(3)]
    assert c.register_ack(base + "/3").rc == sn.RC_NOT_SUPPORTED
    assert c.register(base + "/0") == ids[0]  # a known one is still fine
    other = sn_clients.client()  # per client
    other.register(base + "/3")


# ------------------------------------------------------------------ PUBLISH from MQTT-SN


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_reaches_mosquitto_sub(sn_clients, broker, base, qos):
    t = base + "/q"
    sub = mosq_sub(broker, t, 1, qos=2)
    try:
        c = sn_clients.client()
        ack = c.publish(t, b"from sn \x00\xff", qos=qos)
        if qos == 1:
            assert ack.type == sn.PUBACK and ack.rc == 0
        elif qos == 2:
            assert ack.type == sn.PUBCOMP
        got = mosq_results(sub)
    finally:
        sub.kill()
    assert got == [(t, qos, False, b"from sn \x00\xff")]


def test_qos2_from_sn_full_handshake_both_sides(sn_clients, clients, base):
    t = base + "/q2"
    m = mqtt_sub(clients, t, 2)
    c = sn_clients.client()
    tid = c.register(t)
    c.send(sn.publish(tid, 77, b"exactly once", qos=2))
    rec = c.wait_for(sn.PUBREC)
    assert rec.msg_id == 77
    # a resent PUBLISH (DUP) before PUBREL must not be published twice
    c.send(sn.publish(tid, 77, b"exactly once", qos=2, dup=True))
    assert c.wait_for(sn.PUBREC).msg_id == 77
    c.send(sn.pubrel(77))
    assert c.wait_for(sn.PUBCOMP).msg_id == 77
    p = m.wait_for(r.PUBLISH)
    assert (p.topic, p.payload, p.qos) == (t, b"exactly once", 2)
    m.send(r.ack_packet(r.PUBREC, p.pid, version=V5))
    rel = m.wait_for(r.PUBREL)
    assert rel.pid == p.pid
    m.send(r.ack_packet(r.PUBCOMP, p.pid, version=V5))
    mqtt_expect_none(m)


def test_publish_retained(sn_clients, clients, base):
    t = base + "/ret"
    c = sn_clients.client()
    c.publish(t, b"kept", qos=1, retain=True)
    late = mqtt_sub(clients, t, 1)
    p = mqtt_get(late)
    assert (p.topic, p.payload, p.retain) == (t, b"kept", True)
    # an MQTT-SN subscriber gets it too, flagged retained
    s = sn_clients.client()
    a = s.subscribe(t, qos=1)
    d = s.get()
    assert (d.topic_id, d.payload, d.retain) == (a.topic_id, b"kept", True)
    # an empty retained publish clears it
    c.publish(t, b"", qos=1, retain=True)
    mqtt_get(late)
    s2 = sn_clients.client()
    s2.subscribe(t, qos=1)
    s2.expect_none()


def test_publish_predefined_and_short(sn_clients, clients, uniq):
    m = mqtt_sub(clients, PREDEFINED[2], 2)
    short = mqtt_sub(clients, "k1", 2)
    c = sn_clients.client()
    c.publish(2, b"predefined " + uniq.encode(), qos=1, tid_type=sn.TID_PREDEFINED)
    p = mqtt_get(m)
    assert (p.topic, p.payload, p.qos) == (PREDEFINED[2], b"predefined " + uniq.encode(), 1)
    c.publish("k1", b"short " + uniq.encode(), qos=2)
    p = mqtt_get(short)
    assert (p.topic, p.payload, p.qos) == ("k1", b"short " + uniq.encode(), 2)


@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("tid_type,topic_id", [(sn.TID_NORMAL, 0x7777),
                                                (sn.TID_PREDEFINED, 999)],
                         ids=["normal", "predefined"])
def test_publish_unknown_topic_id(sn_clients, clients, qos, tid_type, topic_id):
    watch = mqtt_sub(clients, "#", 0)
    c = sn_clients.client()
    mid = 0 if qos == 0 else 0x0102
    c.send(sn.publish(topic_id, mid, b"nowhere", qos=qos, tid_type=tid_type))
    a = c.wait_for((sn.PUBACK, sn.PUBREC))
    assert a.type == sn.PUBACK, a
    assert (a.topic_id, a.msg_id, a.rc) == (topic_id, mid, sn.RC_INVALID_TOPIC_ID)
    # the client's publishes are handled in order: had "nowhere" been published, it
    # would come before this sentinel
    c.publish(PREDEFINED[7], b"sentinel", qos=1)
    before = []
    while True:
        p = watch.wait_for(r.PUBLISH)
        if p.payload == b"sentinel":
            break
        before.append(p)
    assert not [p for p in before if p.payload == b"nowhere"], before


def test_qos_minus_one_without_connection(sn_clients, clients, uniq):
    pre = mqtt_sub(clients, PREDEFINED[3], 1)
    short = mqtt_sub(clients, "k2", 1)
    c = sn_clients.client(connect=False)
    c.publish(3, b"neg1 predefined " + uniq.encode(), qos=-1, tid_type=sn.TID_PREDEFINED)
    c.publish("k2", b"neg1 short " + uniq.encode(), qos=-1)
    p = mqtt_get(pre)
    assert (p.topic, p.payload, p.qos) == (PREDEFINED[3], b"neg1 predefined " + uniq.encode(), 0)
    p = mqtt_get(short)
    assert (p.topic, p.payload, p.qos) == ("k2", b"neg1 short " + uniq.encode(), 0)
    # a normal topic id at QoS -1 is dropped, no answer; the address stays unknown
    c.send(sn.publish(1, 0, b"neg1 normal", qos=-1, tid_type=sn.TID_NORMAL))
    c.expect_silence(QUIET)
    # no answer at all to QoS -1 publishes
    assert not c.stash


@pytest.mark.broker_config(mqttsn_qos_neg1=False)
def test_qos_minus_one_disabled(sn_clients, clients, uniq):
    watch = mqtt_sub(clients, PREDEFINED[4], 1)
    c = sn_clients.client(connect=False)
    c.publish(4, b"neg1 " + uniq.encode(), qos=-1, tid_type=sn.TID_PREDEFINED)
    c.publish("k3", b"neg1 " + uniq.encode(), qos=-1)
    mqtt_expect_none(watch)
    # a connected client's QoS 0 still works
    c2 = sn_clients.client()
    c2.publish(4, b"qos0", qos=0, tid_type=sn.TID_PREDEFINED)
    assert mqtt_get(watch).payload == b"qos0"


@pytest.mark.parametrize("size", [256, 1000, 8000])
def test_long_messages_both_ways(sn_clients, clients, base, size):
    """Messages over 255 octets use the 3-octet Length form, both ways."""
    t = base + "/big"
    payload = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    m = mqtt_sub(clients, t, 1)
    c = sn_clients.client()
    tid = c.register(t)
    c.send(sn.publish(tid, 5, payload, qos=1))
    assert c.wait_for(sn.PUBACK).rc == 0
    assert mqtt_get(m).payload == payload
    c.subscribe(t, qos=1)
    mqtt_conn(clients).publish(t, payload[::-1], qos=1)
    d = c.get()
    assert d.payload == payload[::-1] and d.message.long_form


# ------------------------------------------------------------------ SUBSCRIBE, deliveries


def test_subscribe_by_name(sn_clients, clients, base):
    t = base + "/n"
    c = sn_clients.client()
    tid = c.register(t)
    a = c.subscribe(t, qos=1)
    assert (a.rc, a.qos, a.topic_id) == (0, 1, tid), "SUBACK carries the topic's id"
    other = base + "/m"
    a2 = c.subscribe(other, qos=0)
    assert a2.rc == 0 and a2.topic_id not in (0, tid)
    assert c.register(other) == a2.topic_id  # registered by the SUBSCRIBE
    mqtt_conn(clients).publish(t, b"hello sn", qos=1)
    d = c.get()
    assert (d.topic, d.topic_id, d.tid_type, d.payload, d.qos, d.retain) == (
        t, tid, sn.TID_NORMAL, b"hello sn", 1, False)
    # no REGISTER was needed
    assert not [m for n, m in c.log if n == "REGISTER"]


def test_subscribe_wildcard_registers_before_publish(sn_clients, clients, base):
    c = sn_clients.client(auto_regack=False)
    a = c.subscribe(base + "/+/v", qos=1)
    assert (a.rc, a.qos, a.topic_id) == (0, 1, 0)
    pub = mqtt_conn(clients)
    pub.publish(base + "/x/v", b"1", qos=1)
    reg = c.wait_for(sn.REGISTER)
    assert reg.topic_name == base + "/x/v" and reg.topic_id not in (0, 0xFFFF)
    assert reg.msg_id != 0
    c.pump(0.5 * RETRY)
    assert not c.deliveries, "PUBLISH before the REGACK"
    c.send(sn.regack(reg.topic_id, reg.msg_id, 0))
    c.auto_regack = True
    d = c.get()
    assert (d.topic_id, d.tid_type, d.payload, d.qos) == (reg.topic_id, sn.TID_NORMAL, b"1", 1)
    pub.publish(base + "/x/v", b"2", qos=1)
    pub.publish(base + "/y/v", b"3", qos=1)
    d2, d3 = c.get_n(2)
    assert (d2.topic_id, d2.payload) == (reg.topic_id, b"2")
    assert (d3.topic, d3.payload) == (base + "/y/v", b"3") and d3.topic_id != reg.topic_id
    regs = [m.topic_name for n, m in c.log if n == "REGISTER"]
    assert regs == [base + "/x/v", base + "/y/v"], regs
    # the REGISTER of /y/v came before its PUBLISH
    kinds = [(n, m.topic_id) for n, m in c.log]
    assert kinds.index(("REGISTER", d3.topic_id)) < kinds.index(("PUBLISH", d3.topic_id))


def test_register_to_client_resent(sn_clients, clients, base):
    c = sn_clients.client(auto_regack=False)
    c.subscribe(base + "/#", qos=0)
    mqtt_conn(clients).publish(base + "/r", b"x", qos=0)
    first = c.wait_for(sn.REGISTER)
    t0 = time.monotonic()
    again = c.wait_for(sn.REGISTER, timeout=RETRY + TIMEOUT)
    assert time.monotonic() - t0 >= 0.5 * RETRY
    assert (again.topic_id, again.topic_name) == (first.topic_id, first.topic_name)
    c.send(sn.regack(again.topic_id, again.msg_id, 0))
    d = c.get()
    assert (d.topic, d.payload) == (base + "/r", b"x")


def test_subscribe_predefined(sn_clients, clients, uniq):
    c = sn_clients.client()
    a = c.subscribe(5, qos=2)
    assert (a.rc, a.qos, a.topic_id) == (0, 2, 5)
    mqtt_conn(clients).publish(PREDEFINED[5], b"pre " + uniq.encode(), qos=2)
    d = c.get()
    assert (d.tid_type, d.topic_id, d.topic, d.payload, d.qos) == (
        sn.TID_PREDEFINED, 5, PREDEFINED[5], b"pre " + uniq.encode(), 2)
    assert not [m for n, m in c.log if n == "REGISTER"]
    # a predefined id above 255
    assert c.subscribe(300, qos=0).topic_id == 300


def test_subscribe_unknown_predefined_refused(sn_clients):
    c = sn_clients.client()
    a = c.subscribe(4242, qos=1)
    assert a.rc == sn.RC_INVALID_TOPIC_ID, a


def test_wildcard_delivery_of_predefined_topic_uses_its_id(sn_clients, clients):
    c = sn_clients.client()
    assert c.subscribe("sensors/#", qos=1).rc == 0
    mqtt_conn(clients).publish(PREDEFINED[1], b"21.5", qos=1)
    d = c.get()
    assert (d.tid_type, d.topic_id, d.payload) == (sn.TID_PREDEFINED, 1, b"21.5")
    assert not [m for n, m in c.log if n == "REGISTER"]


def test_subscribe_short_name(sn_clients, broker, uniq):
    c = sn_clients.client()
    a = c.subscribe("k4", qos=1, tid_type=sn.TID_SHORT)
    assert (a.rc, a.qos) == (0, 1)
    r_ = mosquitto_pub(broker, ["-t", "k4", "-q", "1", "-m", "short " + uniq])
    assert r_.returncode == 0, r_.stdout
    d = c.get()
    assert (d.tid_type, d.topic_id, d.topic, d.payload, d.qos) == (
        sn.TID_SHORT, sn.short_id("k4"), "k4", ("short " + uniq).encode(), 1)
    assert c.unsubscribe("k4", tid_type=sn.TID_SHORT).type == sn.UNSUBACK
    mosquitto_pub(broker, ["-t", "k4", "-q", "1", "-m", "after"])
    c.expect_none()


@pytest.mark.parametrize("pub_qos", [0, 1, 2])
@pytest.mark.parametrize("sub_qos", [0, 1, 2])
def test_qos_is_min_of_publish_and_subscription(sn_clients, clients, base, pub_qos, sub_qos):
    # MQTT -> MQTT-SN
    c = sn_clients.client()
    assert c.subscribe(base + "/to-sn", qos=sub_qos).qos == sub_qos
    mqtt_conn(clients).publish(base + "/to-sn", b"down", qos=pub_qos)
    d = c.get()
    assert (d.payload, d.qos) == (b"down", min(pub_qos, sub_qos))
    # MQTT-SN -> MQTT
    m = mqtt_sub(clients, base + "/from-sn", sub_qos)
    c.publish(base + "/from-sn", b"up", qos=pub_qos)
    p = mqtt_get(m)
    assert (p.payload, p.qos) == (b"up", min(pub_qos, sub_qos))


def test_qos2_to_sn_full_handshake(sn_clients, clients, base):
    t = base + "/q2"
    c = sn_clients.client(auto_ack=False)
    c.subscribe(t, qos=2)
    mqtt_conn(clients).publish(t, b"exactly once down", qos=2)  # PUBREC/PUBREL/PUBCOMP
    p = c.wait_for(sn.PUBLISH)
    assert (p.qos, p.data, p.dup) == (2, b"exactly once down", False) and p.msg_id != 0
    c.send(sn.pubrec(p.msg_id))
    rel = c.wait_for(sn.PUBREL)
    assert rel.msg_id == p.msg_id
    c.send(sn.pubcomp(p.msg_id))
    # complete: nothing is resent
    c.pump(RETRY + 0.5)
    assert [n for n, _ in c.log] == ["PUBLISH", "PUBREL"], c.log
    assert not c.stash, c.stash


@pytest.mark.parametrize("qos", [1, 2])
def test_unacknowledged_publish_resent_with_dup(sn_clients, clients, base, qos):
    t = base + "/dup"
    c = sn_clients.client(auto_ack=False)
    c.subscribe(t, qos=qos)
    mqtt_conn(clients).publish(t, b"again", qos=qos)
    first = c.wait_for(sn.PUBLISH)
    t0 = time.monotonic()
    assert not first.dup
    again = c.wait_for(sn.PUBLISH, timeout=RETRY + TIMEOUT)
    assert time.monotonic() - t0 >= 0.5 * RETRY
    assert again.dup and (again.msg_id, again.topic_id, again.data, again.qos) == (
        first.msg_id, first.topic_id, b"again", qos)
    if qos == 1:
        c.send(sn.puback(again.topic_id, again.msg_id, 0))
    else:
        c.send(sn.pubrec(again.msg_id))
        c.send(sn.pubcomp(c.wait_for(sn.PUBREL).msg_id))
    n = len([1 for k, _ in c.log if k == "PUBLISH"])
    c.pump(RETRY + 0.5)
    assert len([1 for k, _ in c.log if k == "PUBLISH"]) == n, "resent after the ack"


def test_retries_exhausted_client_lost(sn_clients, clients, base):
    t = base + "/lost"
    watch = mqtt_sub(clients, base + "/will", 1)
    c = sn_clients.client(auto_ack=False, will={"topic": base + "/will", "message": b"no acks",
                                                "qos": 1})
    c.subscribe(t, qos=1)
    mqtt_conn(clients).publish(t, b"never acked", qos=1)
    p = mqtt_get(watch, (MAX_RETRIES + 1) * RETRY + TIMEOUT)
    assert p.payload == b"no acks"
    c.pump(0.3)
    sent = [m for k, m in c.log if k == "PUBLISH"]
    assert len(sent) == 1 + MAX_RETRIES, sent
    assert [m.dup for m in sent] == [False] + [True] * MAX_RETRIES


def test_unsubscribe(sn_clients, clients, base):
    c = sn_clients.client()
    c.subscribe(base + "/#", qos=1)
    c.subscribe(6, qos=1)
    pub = mqtt_conn(clients)
    pub.publish(base + "/a", b"1", qos=1)
    assert c.get().payload == b"1"
    u = c.unsubscribe(base + "/#")
    assert u.type == sn.UNSUBACK
    assert c.unsubscribe(6).type == sn.UNSUBACK
    pub.publish(base + "/a", b"2", qos=1)
    pub.publish(PREDEFINED[6], b"3", qos=1)
    c.expect_none()


def test_ping(sn_clients):
    c = sn_clients.client()
    for _ in range(3):
        assert c.ping().type == sn.PINGRESP


# ------------------------------------------------------------------ sleeping clients


def test_sleep_queue_and_wake(sn_clients, clients, base):
    c = sn_clients.client(duration=30)
    c.subscribe(base + "/#", qos=1)
    assert c.sleep(10).type == sn.DISCONNECT
    pub = mqtt_conn(clients)
    pub.publish(base + "/a", b"1", qos=1)
    pub.publish(base + "/b", b"2", qos=1)
    pub.publish(base + "/a", b"3", qos=1)
    c.expect_silence(QUIET)  # asleep: nothing is sent
    got = c.wake()
    assert [(d.topic, d.payload) for d in got] == [
        (base + "/a", b"1"), (base + "/b", b"2"), (base + "/a", b"3")]
    kinds = [(n, m.topic_id) for n, m in c.log]
    for d in got[:2]:
        assert kinds.index(("REGISTER", d.topic_id)) < kinds.index(("PUBLISH", d.topic_id))
    # asleep again: the next message waits for the next PINGREQ
    pub.publish(base + "/b", b"4", qos=1)
    c.expect_silence(QUIET)
    assert [d.payload for d in c.wake()] == [b"4"]
    # nothing queued: just PINGRESP
    assert c.wake() == []


def test_wake_waits_for_regack_and_acks_before_pingresp(sn_clients, clients, base):
    c = sn_clients.client(auto_regack=False, auto_ack=False)
    c.subscribe(base + "/#", qos=1)
    c.sleep(10)
    pub = mqtt_conn(clients)
    pub.publish(base + "/w", b"1", qos=1)
    pub.publish(base + "/w", b"2", qos=1)
    c.send(sn.pingreq(c.client_id))
    reg = c.wait_for(sn.REGISTER)
    assert reg.topic_name == base + "/w"
    c.pump(0.3)
    assert not c.deliveries and not [m for m in c.stash if m.type == sn.PINGRESP], (
        "PUBLISH or PINGRESP before the REGACK: %r %r" % (list(c.deliveries), c.stash))
    c.send(sn.regack(reg.topic_id, reg.msg_id, 0))
    acked = []
    while len(acked) < 2:
        d = c.get()
        assert not [m for m in c.stash if m.type == sn.PINGRESP], "PINGRESP before the PUBACKs"
        c.pump(0.2)
        assert not [m for m in c.stash if m.type == sn.PINGRESP], "PINGRESP before the PUBACKs"
        c.send(sn.puback(d.topic_id, d.msg_id, 0))
        acked.append(d.payload)
    assert acked == [b"1", b"2"]
    c.wait_for(sn.PINGRESP)


def test_sleep_kept_by_pings(sn_clients, clients, base):
    watch = mqtt_sub(clients, base + "/will", 1)
    c = sn_clients.client(will={"topic": base + "/will", "message": b"must not"})
    c.sleep(1)
    for _ in range(4):
        time.sleep(0.6)
        c.wake()
    mqtt_expect_none(watch, 0.3)


def test_sleep_expired_publishes_will(sn_clients, clients, base):
    watch = mqtt_sub(clients, base + "/will", 1)
    c = sn_clients.client(will={"topic": base + "/will", "message": b"overslept", "qos": 1})
    c.sleep(1)
    t0 = time.monotonic()
    p = mqtt_get(watch, TIMEOUT + 2)
    assert p.payload == b"overslept"
    assert time.monotonic() - t0 >= 1.0


def test_connect_while_asleep_delivers_queue(sn_clients, clients, base):
    c = sn_clients.client(clean=False)
    c.subscribe(base + "/#", qos=1)
    c.sleep(10)
    mqtt_conn(clients).publish(base + "/q", b"queued", qos=1)
    c.expect_silence(QUIET)
    assert c.connect(c.client_id, clean=False).rc == 0
    d = c.get()
    assert (d.topic, d.payload) == (base + "/q", b"queued")
    assert c.ping().type == sn.PINGRESP  # active again


@pytest.mark.broker_config(max_queued_messages=3)
def test_sleep_queue_bounded(sn_clients, clients, base):
    c = sn_clients.client()
    c.subscribe(base + "/#", qos=1)
    c.sleep(10)
    pub = mqtt_conn(clients)
    for i in range(8):
        pub.publish(base + "/x", b"m%d" % i, qos=1)
    got = c.wake()
    assert 1 <= len(got) <= 3, got
    assert_sn_serves(sn_clients)


# ------------------------------------------------------------------ will updates


def test_will_updates_are_what_is_published(sn_clients, clients, base):
    watch = mqtt_sub(clients, base + "/#", 1)
    c = sn_clients.client(duration=1, will={"topic": base + "/old", "message": b"old"})
    assert c.willtopicupd(base + "/new", qos=1).rc == 0
    assert c.willmsgupd(b"new message").rc == 0
    p = mqtt_get(watch, TIMEOUT + 2)
    assert (p.topic, p.payload, p.qos) == (base + "/new", b"new message", 1)
    mqtt_expect_none(watch)


def test_empty_willtopicupd_deletes_will(sn_clients, clients, base):
    watch = mqtt_sub(clients, base + "/#", 1)
    c = sn_clients.client(duration=1, will={"topic": base + "/w", "message": b"deleted"})
    assert c.willtopicupd(None).rc == 0
    # silent for 2.6 s (> 1.5 x 1 s): lost, without a will; its address is unknown now
    mqtt_expect_none(watch, 2.6)
    c.send(sn.pingreq())
    assert c.wait_for((sn.PINGRESP, sn.DISCONNECT)).type == sn.DISCONNECT


# ------------------------------------------------------------------ forwarder


def test_forwarder_encapsulation_two_nodes(sn_clients, clients, base):
    fwd = sn_clients.forwarder()
    a = sn_clients.client(transport=fwd.node(b"\x00\x01"))
    b = sn_clients.client(transport=fwd.node(b"node-two-long-id"))
    assert a.client_id != b.client_id
    assert a.searchgw().gw_id == GW_ID
    a.subscribe(base + "/a", qos=1)
    b.subscribe(base + "/b", qos=2)
    pub = mqtt_conn(clients)
    pub.publish(base + "/b", b"for b", qos=2)
    pub.publish(base + "/a", b"for a", qos=1)
    assert (b.get().payload, a.get().payload) == (b"for b", b"for a")
    a.expect_none(0.2)
    b.expect_none(0.2)
    # publishes through the forwarder reach MQTT
    m = mqtt_sub(clients, base + "/up", 1)
    b.publish(base + "/up", b"up from b", qos=1)
    assert mqtt_get(m).payload == b"up from b"
    assert fwd.unwrapped == [], "replies to a forwarder come encapsulated"
    assert {e.node_id for e in fwd.envelopes} == {b"\x00\x01", b"node-two-long-id"}
    # one node's DISCONNECT leaves the other connected
    a.disconnect()
    assert b.ping().type == sn.PINGRESP


def test_forwarder_node_and_plain_client_same_id_takeover(sn_clients, clients, base):
    """A client id moving from behind a forwarder to its own address takes the session."""
    fwd = sn_clients.forwarder()
    cid = sn_clients.client_id("mv")
    a = sn_clients.client(transport=fwd.node(b"\x05"), client_id=cid, clean=False)
    a.subscribe(base + "/m", qos=1)
    b = sn_clients.client(client_id=cid, clean=False)
    b.topics = dict(a.topics)
    mqtt_conn(clients).publish(base + "/m", b"moved", qos=1)
    assert b.get().payload == b"moved"
    a.expect_silence(QUIET)


# ------------------------------------------------------------------ mountpoint


@pytest.mark.broker_config(mqttsn_mountpoint="mp-sn/")
def test_mountpoint(sn_clients, clients, uniq):
    m = mqtt_sub(clients, "mp-sn/#", 1)
    c = sn_clients.client()
    c.publish("e2e/" + uniq + "/up", b"mounted", qos=1)
    p = mqtt_get(m)
    assert (p.topic, p.payload) == ("mp-sn/e2e/" + uniq + "/up", b"mounted")
    c.subscribe("e2e/" + uniq + "/#", qos=1)
    mqtt_conn(clients).publish("mp-sn/e2e/" + uniq + "/down", b"unmounted", qos=1)
    d = c.get()
    assert (d.topic, d.payload) == ("e2e/" + uniq + "/down", b"unmounted")
    mqtt_get(m)
    # outside the mountpoint: not seen
    mqtt_conn(clients).publish("e2e/" + uniq + "/down", b"outside", qos=1)
    c.expect_none()


# ------------------------------------------------------------------ cross-protocol


def test_cross_protocol_with_mosquitto_clients(sn_clients, broker, base, uniq):
    c = sn_clients.client()
    c.subscribe(base + "/#", qos=2)
    res = mosquitto_pub(broker, ["-t", base + "/cli", "-q", "2", "-r", "-m", "cli " + uniq])
    assert res.returncode == 0, res.stdout
    d = c.get()
    # a live delivery: MQTT's retain-as-subscribed rule gives RETAIN 0
    assert (d.topic, d.payload, d.qos) == (base + "/cli", ("cli " + uniq).encode(), 2)
    sub = mosq_sub(broker, base + "/cli", 1, qos=1)  # gets the retained one
    try:
        got = mosq_results(sub)
    finally:
        sub.kill()
    assert got == [(base + "/cli", 1, True, ("cli " + uniq).encode())]
    c.publish(base + "/cli", b"", qos=1, retain=True)


# ------------------------------------------------------------------ malformed input


def _long(n, mtype, body=b""):
    return b"\x01" + n.to_bytes(2, "big") + bytes([mtype]) + body


# sent from an address that is not a client
MALFORMED_FRESH = [
    ("one-octet", b"\x05"),
    ("length-0", b"\x00\x04\x04\x01\x00\x3cxx"),
    ("length-1", b"\x01"),
    ("length-longer-than-datagram", b"\x04\x01\x00"),
    ("length-shorter-than-datagram", b"\x02\x01\x00"),
    ("length-shorter-connect", b"\x06" + sn.connect("shortlen")[1:]),
    ("long-form-truncated", b"\x01\x00"),
    ("long-form-length-below-4", _long(3, sn.SEARCHGW)),
    ("long-form-lying", _long(0x0100, sn.SEARCHGW, b"\x00")),
    ("long-form-length-past-end", _long(60000, sn.CONNECT, b"\x04\x01\x00\x3cid")),
    ("type-0x03", b"\x03\x03\x00"),
    ("type-0x11", b"\x03\x11\x00"),
    ("type-0x19", b"\x03\x19\x00"),
    ("type-0x1e", b"\x03\x1e\x00"),
    ("type-0xfd", b"\x03\xfd\x00"),
    ("type-0xff", b"\x03\xff\x00"),
    ("protocol-id-2", sn.connect("badproto", protocol_id=2)),
    ("protocol-id-0", sn.connect("badproto", protocol_id=0)),
    ("connect-no-client-id", b"\x06\x04\x04\x01\x00\x3c"),
    ("connect-truncated", b"\x05\x04\x04\x01\x00"),
    ("searchgw-no-radius", b"\x02\x01"),
    ("encapsulation-inner-truncated", b"\x04\xfe\x00\xaa" + b"\x0c\x04\x04\x01\x00"),
    ("encapsulation-inner-length-lies", b"\x04\xfe\x00\xaa" + b"\x03\x01\x00\x00"),
    ("encapsulation-no-inner", b"\x04\xfe\x00\xaa"),
    ("encapsulation-length-past-end", b"\x09\xfe\x00\xaa"),
    ("encapsulation-length-2", b"\x02\xfe\x00"),
    ("encapsulation-inner-empty-length", b"\x03\xfe\x00\x00"),
    ("encapsulation-inner-unknown-type", b"\x03\xfe\x00\x02\x19"),
    ("garbage-65000", bytes((i * 7 + 3) % 256 for i in range(65000))),
    ("long-form-65000-garbage", _long(65000, 0x42, b"\xee" * (65000 - 4))),
]

# sent by a connected client (then its PINGREQ must still get PINGRESP)
MALFORMED_CONNECTED = [
    ("publish-truncated", b"\x05\x0c\x20\x00\x01"),
    ("publish-no-msg-id", b"\x05\x0c\x00\x00\x01"),
    ("publish-topic-id-type-3", sn.publish(1, 9, b"x", qos=1, tid_type=sn.TID_RESERVED)),
    ("register-truncated", b"\x04\x0a\x00\x00"),
    ("register-no-msg-id", b"\x05\x0a\x00\x00\x00"),
    ("subscribe-truncated", b"\x04\x12\x20\x00"),
    ("subscribe-qos-minus-1", sn.subscribe(3, "e2e-sn/bad/#", qos=-1)),
    ("subscribe-topic-id-type-3", sn.subscribe(3, 1, tid_type=sn.TID_RESERVED)),
    ("subscribe-predefined-1-octet", b"\x06\x12\x21\x00\x03\x05"),
    ("subscribe-short-3-octets", b"\x08\x12\x22\x00\x03abc"),
    ("unsubscribe-truncated", b"\x04\x14\x00\x00"),
    ("regack-truncated", b"\x06\x0b\x00\x01\x00\x01"),
    ("puback-truncated", b"\x04\x0d\x00\x01"),
    ("pubrel-truncated", b"\x03\x10\x00"),
    ("pubrec-long", b"\x05\x0f\x00\x01\x00"),
    ("disconnect-1-octet-duration", b"\x03\x18\x00"),
    ("disconnect-3-octet-duration", b"\x05\x18\x00\x00\x01"),
    ("willtopic-out-of-sequence", sn.willtopic("e2e-sn/bad/will", qos=1)),
    ("willmsg-out-of-sequence", sn.willmsg(b"unasked")),
    ("willtopicupd-flags-only-truncated", b"\x03\x1a"),
    ("unknown-type-0x03", b"\x02\x03"),
    ("encapsulation-truncated", b"\x05\xfe\x00\xaa"),
]


def _malformed_check(sn_clients, clients, base, sender_kind, data):
    bystander = sn_clients.client()
    bystander.subscribe(base + "/by", qos=1)
    watch = mqtt_sub(clients, "e2e-sn/bad/#", 0)
    if sender_kind == "fresh":
        s = sn_clients.client(connect=False)
        s.send(data)
        s.send(sn.searchgw())  # the gateway handles one address's datagrams in order
        first = s.recv()
        assert first.type == sn.GWINFO, "answered %r with %r" % (data[:40], first)
        s.expect_silence(0.1)
    else:
        s = sn_clients.client()
        s.send(data)
        s.send(sn.pingreq())
        first = s.recv()
        assert first.type == sn.PINGRESP, "answered %r with %r" % (data[:40], first)
    # nobody else is affected
    mqtt_conn(clients).publish(base + "/by", b"bystander", qos=1)
    d = bystander.get()
    assert (d.topic, d.payload) == (base + "/by", b"bystander")
    assert bystander.ping().type == sn.PINGRESP
    assert_sn_serves(sn_clients)
    mqtt_expect_none(watch, 0.05)


@pytest.mark.parametrize("data", [d for _, d in MALFORMED_FRESH],
                         ids=[i for i, _ in MALFORMED_FRESH])
def test_malformed_datagram_dropped(sn_clients, clients, base, data):
    _malformed_check(sn_clients, clients, base, "fresh", data)


@pytest.mark.broker_config(mqttsn_max_registrations=999)
def test_empty_datagram_dropped(sn_clients, clients, base):
    """A zero-length datagram (which event loops may mistake for an end of stream) is
    dropped like any other malformed one. On a gateway of its own, so that a listener
    it stopped does not fail every later case too."""
    _malformed_check(sn_clients, clients, base, "fresh", b"")


@pytest.mark.parametrize("data", [d for _, d in MALFORMED_CONNECTED],
                         ids=[i for i, _ in MALFORMED_CONNECTED])
def test_malformed_from_connected_client_dropped(sn_clients, clients, base, data):
    _malformed_check(sn_clients, clients, base, "connected", data)


@pytest.mark.broker_config(log_level="info")
def test_malformed_flood_logging_rate_limited(broker, sn_clients, clients, base):
    """Malformed datagrams are logged, rate-limited: a flood does not flood the log."""
    s = sn_clients.client(connect=False)
    before = broker.log_size()
    for i in range(3000):
        s.send(b"\x03\x19" + bytes([i & 0xFF]))
        if i % 200 == 0:
            time.sleep(0.005)
    for attempt in range(5):  # the flood may have filled the gateway's socket buffer
        s.send(sn.searchgw())
        try:
            assert s.wait_for(sn.GWINFO, timeout=1.0).gw_id == GW_ID
            break
        except TimeoutError:
            assert attempt < 4, "no GWINFO after the flood"
    assert_sn_serves(sn_clients)
    added = broker.log_text(before)
    assert "%s:%d" % s.address in added, "the malformed datagrams were not logged"
    lines = added.count("\n")
    assert lines < 300, "%d log lines for 3000 malformed datagrams:\n%s" % (
        lines, added[-3000:])

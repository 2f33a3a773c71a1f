"""The external HTTP auth backend (`auth.http`, like EMQX's auth_http): polygate asks an
HTTP service whether a client may connect (`url`) and whether it may publish or subscribe
to a topic (`acl_url`), caches the answers, keeps serving other clients while it waits,
and gives `on_error`'s verdict when the service is slow, down or answers neither 2xx nor
4xx.

The backend is a real HTTP server in this process (ThreadingHTTPServer on a free
loopback port). What it answers is decided by the request itself, so each test picks the
behaviour with its usernames and topics:

  /auth  username "status<NNN>..."  -> that status code
         username "slow..."         -> sleeps SLOW_SECONDS (longer than timeout_ms), then 200
         username "hold..."         -> waits until the test calls BACKEND.release(username)
         otherwise                  -> 200 if the password is one of GOOD_PASSWORDS, else 403
  /acl   username "reader..." subscribing -> 200 for any filter
         topic "allowed/..." -> 200;  "status<NNN>/..." -> NNN;  "slow/..." -> sleep, 200;
         "hold/..." -> waits for BACKEND.release(topic), then 200;  anything else -> 403

Every request is recorded (method, path, content type, parsed fields) so tests can check
what polygate sent and count requests (the cache). The records are also written to
.artifacts/auth_http/backend.log.
"""

import json
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import rawmqtt as r
from conftest import ARTIFACTS, HOST, SLOW, polygate_bin
from helpers import TIMEOUT, V5, V311, VERSION_IDS, VERSIONS

pytestmark = pytest.mark.polygate_only  # mosquitto has no HTTP auth backend

V3_BAD_CREDENTIALS, V3_NOT_AUTHORIZED = 4, 5
GOOD_PASSWORDS = {"good", "g&o=o d+%\u00fc\"'{}"}  # the second one checks the body encoding
SLOW_SECONDS = 3.0  # a "slow" answer: well past the timeout_ms of the configs that use it
HOLD_MAX = 20.0 * SLOW  # a held answer is given anyway after this (a failed test)
TIMEOUT_MS = 400  # timeout_ms of the configs that test timeouts


def refused_code(version):
    return 0x86 if version == V5 else V3_BAD_CREDENTIALS


def on_error_refused(version):
    """CONNACK code of a login refused by on_error = "deny" (timeout, no connection, an
    answer neither 2xx nor 4xx): server unavailable (0x88 / 3), not the client's
    credentials' fault."""
    return 0x88 if version == V5 else 3


def published(ack):
    """A publish went through: PUBACK/PUBCOMP success (v5: 0x10 = no subscriber, also fine)."""
    return ack.reason < 0x80


# ------------------------------------------------------------------ the HTTP backend


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as an auth service would
    server_version = "e2e-auth-backend"

    def log_message(self, fmt, *args):
        pass

    def _body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _handle(self):
        backend = self.server.backend
        body = self._body()
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        fields, error = None, None
        try:
            if ctype == "application/json":
                fields = json.loads(body.decode("utf-8"))
            elif ctype == "application/x-www-form-urlencoded":
                pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                                               strict_parsing=bool(body))
                fields = {}
                for k, v in pairs:
                    if k in fields:
                        error = "field %r sent twice" % k
                    fields[k] = v
            else:
                error = "unexpected content type %r" % ctype
        except (ValueError, UnicodeDecodeError) as e:
            error = "cannot parse body: %s" % e
        path = urllib.parse.urlsplit(self.path).path
        rec = {"method": self.command, "path": path, "content_type": ctype,
               "raw_content_type": self.headers.get("Content-Type"), "body": body,
               "fields": fields if isinstance(fields, dict) else {}, "parsed": fields,
               "error": error, "at": time.monotonic(), "peer": self.client_address}
        backend.record(rec)
        status = 400 if error else backend.decide(path, rec["fields"])
        rec["status"] = status
        backend.note("-> %d %s %s" % (status, path, rec["fields"]))
        try:
            if status in (204, 304):
                self.send_response(status)
                self.end_headers()
            else:
                text = b"allow" if 200 <= status < 300 else b"deny" if status < 500 else b"error"
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)
        except OSError:
            pass  # polygate gave up on this answer (a timeout test)

    do_POST = do_GET = do_PUT = _handle


class Backend:
    def __init__(self, tls=None):
        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.scheme = "https" if tls else "http"
        if tls:  # (certificate, key)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.server.daemon_threads = True
        self.server.backend = self
        self.server.handle_error = lambda request, addr: None
        self.port = self.server.server_address[1]
        self.cond = threading.Condition()
        self.records = []
        self.gates = {}
        self.stopping = threading.Event()
        self.thread = None
        d = ARTIFACTS / "auth_http"
        d.mkdir(parents=True, exist_ok=True)
        self.logfile = open(d / "backend.log", "a")

    def url(self, path):
        return "%s://%s:%d%s" % (self.scheme, HOST, self.port, path)

    def start(self):
        if self.thread is None:
            self.thread = threading.Thread(target=self.server.serve_forever,
                                           kwargs={"poll_interval": 0.05}, daemon=True)
            self.thread.start()

    def stop(self):
        self.stopping.set()
        with self.cond:
            for g in self.gates.values():
                g.set()
        if self.thread is not None:
            self.server.shutdown()
            self.thread = None
        self.server.server_close()
        self.logfile.close()

    def note(self, text):
        with self.cond:
            if not self.logfile.closed:
                self.logfile.write("%.3f %s\n" % (time.monotonic(), text))
                self.logfile.flush()

    def record(self, rec):
        with self.cond:
            self.records.append(rec)
            self.cond.notify_all()
        self.note("%s %s %s %r" % (rec["method"], rec["path"], rec["raw_content_type"],
                                   rec["body"]))

    # -- behaviour
    def gate(self, key):
        with self.cond:
            g = self.gates.get(key)
            if g is None:
                g = self.gates[key] = threading.Event()
                if self.stopping.is_set():
                    g.set()
            return g

    def release(self, key):
        self.gate(key).set()

    def decide(self, path, f):
        user = f.get("username", "")
        if path == "/auth":
            if user.startswith("status"):
                return int(user[6:9])
            if user.startswith("slow"):
                self.stopping.wait(SLOW_SECONDS)
            elif user.startswith("hold"):
                self.gate(user).wait(HOLD_MAX)
            return 200 if f.get("password") in GOOD_PASSWORDS else 403
        if path == "/acl":
            topic = f.get("topic", "")
            if user.startswith("reader") and f.get("access") == "subscribe":
                return 200
            first = topic.split("/")[0]
            if first.startswith("status"):
                return int(first[6:9])
            if first == "slow":
                self.stopping.wait(SLOW_SECONDS)
                return 200
            if first == "hold":
                self.gate(topic).wait(HOLD_MAX)
                return 200
            return 200 if first == "allowed" else 403
        return 404

    # -- queries
    def find(self, path=None, **fields):
        """The requests to path whose fields include all of these."""
        with self.cond:
            return [x for x in self.records if (path is None or x["path"] == path)
                    and all(x["fields"].get(k) == v for k, v in fields.items())]

    def wait_request(self, path=None, timeout=None, **fields):
        deadline = time.monotonic() + (TIMEOUT if timeout is None else timeout)
        with self.cond:
            while True:
                got = [x for x in self.records if (path is None or x["path"] == path)
                       and all(x["fields"].get(k) == v for k, v in fields.items())]
                if got:
                    return got[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("the backend got no %s request with %r within %.1fs"
                                         % (path, fields, TIMEOUT if timeout is None else timeout))
                self.cond.wait(left)


# Bound now (so the broker configs below can name its port), served from the fixture on.
BACKEND = Backend()
AUTH_URL = BACKEND.url("/auth")
ACL_URL = BACKEND.url("/acl")

# A port nobody listens on for the whole run: bound, never listening (connect -> refused).
_CLOSED = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
_CLOSED.bind((HOST, 0))
CLOSED_PORT = _CLOSED.getsockname()[1]
DOWN_AUTH_URL = "http://%s:%d/auth" % (HOST, CLOSED_PORT)
DOWN_ACL_URL = "http://%s:%d/acl" % (HOST, CLOSED_PORT)


# An https service whose certificate (for IP 127.0.0.1) a CA made here signed.
PKI = ARTIFACTS / "auth_http" / "pki"
PKI.mkdir(parents=True, exist_ok=True)


def _openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True)


_openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=e2e-ca",
         "-keyout", str(PKI / "ca.key"), "-out", str(PKI / "ca.crt"))
_openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", str(PKI / "srv.key"), "-out", str(PKI / "srv.csr"))
(PKI / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
_openssl("x509", "-req", "-days", "2", "-in", str(PKI / "srv.csr"), "-CA", str(PKI / "ca.crt"),
         "-CAkey", str(PKI / "ca.key"), "-CAcreateserial", "-extfile", str(PKI / "ext"),
         "-out", str(PKI / "srv.crt"))
TLS_BACKEND = Backend(tls=(str(PKI / "srv.crt"), str(PKI / "srv.key")))


@pytest.fixture(scope="module", autouse=True)
def backend():
    BACKEND.start()
    TLS_BACKEND.start()
    yield BACKEND
    BACKEND.stop()
    TLS_BACKEND.stop()


def http(**kw):
    """broker_config keys for auth.http (short names: url=..., on_error=...)."""
    return {"auth_http_" + k: v for k, v in kw.items()}


BASE = http(url=AUTH_URL, acl_url=ACL_URL, timeout_ms=TIMEOUT_MS, on_error="deny",
            format="form")
ALLOW_ON_ERROR = dict(BASE, auth_http_on_error="allow")
JSON = dict(BASE, auth_http_format="json")
CACHED = dict(BASE, auth_http_cache_seconds=60)
UNCACHED = dict(BASE, auth_http_cache_seconds=0)
TINY_CACHE = dict(CACHED, auth_http_cache_size=1)
HOLD = http(url=AUTH_URL, acl_url=ACL_URL, timeout_ms=int(min(60000, 30000 * SLOW)))
DOWN_DENY = http(url=DOWN_AUTH_URL, acl_url=DOWN_ACL_URL, timeout_ms=2000, on_error="deny")
DOWN_ALLOW = http(url=DOWN_AUTH_URL, acl_url=DOWN_ACL_URL, timeout_ms=2000, on_error="allow")
DOWN_ACL_DENY = http(acl_url=DOWN_ACL_URL, timeout_ms=2000, on_error="deny")

FORMATS = [pytest.param("form", marks=pytest.mark.broker_config(**BASE), id="form"),
           pytest.param("json", marks=pytest.mark.broker_config(**JSON), id="json")]
ON_ERROR = [pytest.param("deny", marks=pytest.mark.broker_config(**BASE), id="deny"),
            pytest.param("allow", marks=pytest.mark.broker_config(**ALLOW_ON_ERROR), id="allow")]


# ------------------------------------------------------------------ helpers


def login(clients, version=V5, user=None, password=None, cid=None):
    """A raw connection and its CONNACK."""
    c = clients.raw(version)
    if isinstance(password, str):
        password = password.encode("utf-8")
    ack = c.connect(cid or clients.client_id(user or "anon"), username=user, password=password)
    return c, ack


def timed_login(clients, version, user, password, cid=None):
    t0 = time.monotonic()
    c, ack = login(clients, version, user, password, cid)
    return c, ack, time.monotonic() - t0


def nothing_yet(c, quiet=0.3):
    """Asserts that c receives nothing for `quiet` seconds."""
    try:
        p = c.recv_packet(timeout=quiet)
    except TimeoutError:
        return
    raise AssertionError("expected nothing while the check is pending, got %r" % p)


def publishes(c, quiet=0.3):
    out = []
    while True:
        try:
            p = c.recv_packet(timeout=quiet)
        except (TimeoutError, r.Closed):
            return [x for x in out if x.type == r.PUBLISH]
        out.append(p)


def next_publish(c):
    p = c.wait_for(r.PUBLISH)
    c.ack(p)
    return p


def assert_about_timeout(elapsed, what):
    t = TIMEOUT_MS / 1000.0
    assert elapsed >= 0.9 * t, "%s answered after %.3fs, before timeout_ms (%.3fs)" % (
        what, elapsed, t)
    assert elapsed < t + 1.5 * SLOW, "%s answered after %.3fs, long after timeout_ms (%.3fs)" % (
        what, elapsed, t)


# ------------------------------------------------------------------ authentication


@pytest.mark.broker_config(**BASE)
@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_backend_allows_and_denies(clients, version):
    c, ack = login(clients, version, "alice", "good")
    assert ack.reason == 0
    assert c.ping().type == r.PINGRESP
    c, ack = login(clients, version, "alice", "bad")
    assert ack.reason == refused_code(version)
    assert c.is_closed(timeout=TIMEOUT), "a refused client is disconnected"


@pytest.mark.parametrize("fmt", FORMATS)
def test_auth_request_fields(clients, uniq, fmt):
    user = "us er&x=1/\u00e9+%" + uniq  # needs encoding in either format
    password = "g&o=o d+%\u00fc\"'{}"  # one of GOOD_PASSWORDS: it must arrive intact
    cid = "cid&=" + uniq
    c, ack = login(clients, V5, user, password, cid=cid)
    assert ack.reason == 0, "the backend got a mangled password: %r" % BACKEND.find("/auth")[-3:]
    reqs = BACKEND.find("/auth", clientid=cid)
    assert len(reqs) == 1, reqs
    req = reqs[0]
    assert req["error"] is None, req
    assert req["method"] == "POST"
    if fmt == "json":
        assert req["content_type"] == "application/json", req["raw_content_type"]
        assert isinstance(req["parsed"], dict), "a JSON object"
        assert all(isinstance(v, str) for v in req["parsed"].values()), req["parsed"]
    else:
        assert req["content_type"] == "application/x-www-form-urlencoded", req["raw_content_type"]
    f = req["fields"]
    assert f.get("clientid") == cid
    assert f.get("username") == user
    assert f.get("password") == password
    assert f.get("peerhost") == "127.0.0.1"
    assert f.get("peerport") == str(c.sock.getsockname()[1])
    assert f.get("protocol") == "mqtt"


@pytest.mark.broker_config(**BASE)
@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_anonymous_client_is_not_sent_to_backend(clients, version):
    cid = clients.client_id("anon")
    _, ack = login(clients, version, cid=cid)
    assert ack.reason == 0, "allow_anonymous = true decides"
    assert BACKEND.find("/auth", clientid=cid) == []


@pytest.mark.broker_config(allow_anonymous=False, **BASE)
@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_anonymous_refused_without_asking_backend(clients, version):
    cid = clients.client_id("anon")
    _, ack = login(clients, version, cid=cid)
    assert ack.reason == (0x87 if version == V5 else V3_NOT_AUTHORIZED)
    assert BACKEND.find("/auth", clientid=cid) == []
    _, ack = login(clients, version, "alice", "good")
    assert ack.reason == 0, "users still go to the backend"


# ------------------------------------------------------------------ access control


@pytest.mark.parametrize("fmt", FORMATS)
def test_acl_request_fields(clients, uniq, fmt):
    user = "alice" + uniq
    c, ack = login(clients, V5, user, "good")
    assert ack.reason == 0
    cid = BACKEND.wait_request("/auth", username=user, timeout=0)["fields"]["clientid"]
    port = str(c.sock.getsockname()[1])
    t = "allowed/%s/x y" % uniq
    assert published(c.publish(t, b"p", qos=1))
    f = "allowed/%s/+/#" % uniq
    assert c.subscribe([(f, 1)]).codes == [1]
    reqs = BACKEND.find("/acl", clientid=cid)
    assert [(x["fields"].get("access"), x["fields"].get("topic")) for x in reqs] == [
        ("publish", t), ("subscribe", f)]
    for req in reqs:
        assert req["error"] is None and req["method"] == "POST", req
        assert req["content_type"] == ("application/json" if fmt == "json" else
                                       "application/x-www-form-urlencoded")
        if fmt == "json":
            assert all(isinstance(v, str) for v in req["parsed"].values()), req["parsed"]
        fl = req["fields"]
        assert (fl.get("clientid"), fl.get("username"), fl.get("peerhost"), fl.get("peerport"),
                fl.get("protocol")) == (cid, user, "127.0.0.1", port, "mqtt"), fl


@pytest.mark.broker_config(**BASE)
@pytest.mark.parametrize("version,qos", [(V5, 1), (V5, 2), (V311, 1), (V311, 2)],
                         ids=["v5-qos1", "v5-qos2", "v311-qos1", "v311-qos2"])
def test_acl_publish_denied(clients, uniq, version, qos):
    reader, ack = login(clients, V5, "reader" + uniq, "good")
    assert ack.reason == 0
    # the backend lets readers subscribe anywhere, so it would get a denied publish
    assert reader.subscribe([("denied/%s/#" % uniq, 1), ("allowed/%s/#" % uniq, 1)]).codes == [1, 1]
    alice, ack = login(clients, version, "alice", "good")
    assert ack.reason == 0
    a = alice.publish("denied/%s/x" % uniq, b"forbidden", qos=qos)
    if version == V5:
        assert a.type == (r.PUBACK if qos == 1 else r.PUBREC)
        assert a.reason == 0x87
    else:
        assert a.reason == 0, "v3: acknowledged (and dropped)"
    assert alice.publish("allowed/%s/x" % uniq, b"fine", qos=qos).reason == 0
    p = next_publish(reader)
    assert (p.topic, p.payload) == ("allowed/%s/x" % uniq, b"fine"), \
        "the denied message must never reach a subscriber"
    assert publishes(reader) == []
    assert not alice.is_closed(), "a denied publish does not disconnect"


@pytest.mark.broker_config(**BASE)
@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_acl_subscribe_denied(clients, uniq, version):
    alice, ack = login(clients, version, "alice", "good")
    assert ack.reason == 0
    ack = alice.subscribe([("allowed/%s/#" % uniq, 1), ("denied/%s/#" % uniq, 1),
                           ("allowed/%s/b" % uniq, 0)])
    assert ack.codes == [1, 0x87 if version == V5 else 0x80, 0]


@pytest.mark.broker_config(**BASE)
def test_deliveries_are_not_checked(clients, uniq):
    # a reader subscribed to a denied filter: each delivery is not sent to acl_url
    reader, _ = login(clients, V5, "reader" + uniq, "good")
    assert reader.subscribe([("#", 0)]).codes == [0]
    n_before = len(BACKEND.find("/acl"))
    alice, _ = login(clients, V5, "alice" + uniq, "good")
    cid = BACKEND.wait_request("/auth", username="alice" + uniq, timeout=0)["fields"]["clientid"]
    assert alice.publish("allowed/%s/d" % uniq, b"d", qos=1).reason == 0
    got = [p for p in publishes(reader) if p.topic == "allowed/%s/d" % uniq]
    assert [p.payload for p in got] == [b"d"]
    new = BACKEND.find("/acl")[n_before:]
    assert [x["fields"].get("clientid") for x in new] == [cid], [x["fields"] for x in new]


# ------------------------------------------------------------------ cache


@pytest.mark.broker_config(**CACHED)
def test_cache_answers(clients, uniq):
    cid = "cache" + uniq
    for i in range(2):
        c, ack = login(clients, V5, "alice", "good", cid=cid)
        assert ack.reason == 0
        assert published(c.publish("allowed/%s/t" % uniq, b"x", qos=1))
        assert c.subscribe([("allowed/%s/#" % uniq, 0)]).codes == [0]
        c.disconnect()
    assert len(BACKEND.find("/auth", clientid=cid)) == 1, "the second connect is answered from the cache"
    assert len(BACKEND.find("/acl", clientid=cid, access="publish")) == 1
    assert len(BACKEND.find("/acl", clientid=cid, access="subscribe")) == 1
    # the key holds the password, the client id and the topic
    _, ack = login(clients, V5, "alice", "bad", cid=cid)
    assert ack.reason == 0x86
    assert len(BACKEND.find("/auth", clientid=cid)) == 2
    _, ack = login(clients, V5, "alice", "good", cid=cid + "b")
    assert ack.reason == 0
    assert len(BACKEND.find("/auth", clientid=cid + "b")) == 1
    c, _ = login(clients, V5, "alice", "good", cid=cid)
    assert published(c.publish("allowed/%s/u" % uniq, b"x", qos=1))
    assert len(BACKEND.find("/acl", clientid=cid, access="publish")) == 2


@pytest.mark.broker_config(**CACHED)
def test_cache_keeps_denials(clients, uniq):
    cid = "deny" + uniq
    for i in range(2):
        _, ack = login(clients, V5, "alice", "bad", cid=cid)
        assert ack.reason == 0x86
    assert len(BACKEND.find("/auth", clientid=cid)) == 1
    c, _ = login(clients, V5, "alice", "good", cid=cid)
    for i in range(2):
        assert c.publish("denied/%s" % uniq, b"x", qos=1).reason == 0x87
    assert len(BACKEND.find("/acl", clientid=cid)) == 1


@pytest.mark.broker_config(**UNCACHED)
def test_cache_seconds_0_asks_every_time(clients, uniq):
    cid = "nocache" + uniq
    for i in range(2):
        c, ack = login(clients, V5, "alice", "good", cid=cid)
        assert ack.reason == 0
        assert published(c.publish("allowed/%s/t" % uniq, b"x", qos=1))
        assert published(c.publish("allowed/%s/t" % uniq, b"x", qos=1))
        c.disconnect()
    assert len(BACKEND.find("/auth", clientid=cid)) == 2
    assert len(BACKEND.find("/acl", clientid=cid)) == 4


@pytest.mark.broker_config(**TINY_CACHE)
def test_cache_size_bounds_the_cache(clients, uniq):
    a, b = "a" + uniq, "b" + uniq
    for cid in (a, a, b, a):
        c, ack = login(clients, V5, "alice", "good", cid=cid)
        assert ack.reason == 0
        c.disconnect()
    assert len(BACKEND.find("/auth", clientid=a)) == 2, "with one entry, b pushed a out"
    assert len(BACKEND.find("/auth", clientid=b)) == 1


# ------------------------------------------------------------------ errors: on_error


@pytest.mark.parametrize("on_error", ON_ERROR)
@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_auth_timeout(clients, uniq, on_error, version):
    user = "slow" + uniq
    _, ack, elapsed = timed_login(clients, version, user, "good")
    BACKEND.wait_request("/auth", username=user, timeout=0)
    assert ack.reason == (0 if on_error == "allow" else on_error_refused(version))
    assert_about_timeout(elapsed, "CONNACK")


@pytest.mark.parametrize("on_error", ON_ERROR)
def test_acl_timeout(clients, uniq, on_error):
    c, ack = login(clients, V5, "alice", "good")
    assert ack.reason == 0
    t0 = time.monotonic()
    a = c.publish("slow/%s/p" % uniq, b"x", qos=1)
    elapsed = time.monotonic() - t0
    assert published(a) if on_error == "allow" else a.reason == 0x87, a
    assert_about_timeout(elapsed, "PUBACK")
    t0 = time.monotonic()
    a = c.subscribe([("slow/%s/#" % uniq, 1)])
    elapsed = time.monotonic() - t0
    assert a.codes == [1 if on_error == "allow" else 0x87]
    assert_about_timeout(elapsed, "SUBACK")


STATUSES = [(200, "allow"), (204, "allow"), (299, "allow"), (401, "deny"), (403, "deny"),
            (404, "deny"), (302, "error"), (500, "error"), (503, "error")]


@pytest.mark.parametrize("on_error", ON_ERROR)
@pytest.mark.parametrize("status,meaning", STATUSES, ids=[str(s) for s, _ in STATUSES])
def test_status_codes(clients, uniq, on_error, status, meaning):
    allowed = meaning == "allow" or (meaning == "error" and on_error == "allow")
    _, ack = login(clients, V311, "status%d-%s" % (status, uniq), "irrelevant")
    refused = V3_BAD_CREDENTIALS if meaning == "deny" else on_error_refused(V311)
    assert ack.reason == (0 if allowed else refused), "auth answered %d" % status
    c, _ = login(clients, V5, "alice", "good")
    a = c.publish("status%d/%s" % (status, uniq), b"x", qos=1)
    assert published(a) if allowed else a.reason == 0x87, "acl answered %d: %r" % (status, a)


@pytest.mark.broker_config(**DOWN_DENY)
@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_backend_down_deny(clients, version):
    _, ack = login(clients, version, "alice", "good")
    assert ack.reason == on_error_refused(version)
    _, ack = login(clients, version)
    assert ack.reason == 0, "anonymous clients do not need the backend"


@pytest.mark.broker_config(**DOWN_ACL_DENY)
def test_acl_backend_down_deny(clients, uniq):
    c, ack = login(clients, V5, "alice", "whatever")
    assert ack.reason == 0, "no url: usernames are not checked"
    assert c.publish("allowed/%s" % uniq, b"x", qos=1).reason == 0x87
    assert c.subscribe([("allowed/%s" % uniq, 1)]).codes == [0x87]


@pytest.mark.broker_config(**DOWN_ALLOW)
def test_backend_down_allow(clients, uniq):
    c, ack = login(clients, V5, "alice", "bad")
    assert ack.reason == 0
    assert c.subscribe([("denied/%s" % uniq, 1)]).codes == [1]
    assert c.publish("denied/%s" % uniq, b"x", qos=1).reason == 0
    p = next_publish(c)
    assert (p.topic, p.payload) == ("denied/%s" % uniq, b"x")


# ------------------------------------------------------------------ others keep being served


@pytest.mark.broker_config(**HOLD)
def test_pending_auth_does_not_hold_up_others(clients, uniq):
    user = "hold" + uniq
    t = "allowed/%s/s" % uniq
    slow = clients.raw(V5)
    # CONNECT, then SUBSCRIBE and PUBLISH without waiting for the CONNACK
    slow.send(r.connect_packet("slow" + uniq, 5, username=user, password=b"good")
              + r.subscribe_packet(1, [(t, 1)], version=5)
              + r.publish_packet(t, b"mine", qos=1, pid=2, version=5))
    BACKEND.wait_request("/auth", username=user)
    # while the backend sits on that answer, other clients are served
    other, ack = login(clients, V5, "alice", "good")
    assert ack.reason == 0
    assert other.subscribe([("allowed/%s/o" % uniq, 1)]).codes == [1]
    other.publish("allowed/%s/o" % uniq, b"o", qos=1)
    assert next_publish(other).payload == b"o"
    anon, ack = login(clients, V311)
    assert ack.reason == 0
    assert anon.ping().type == r.PINGRESP
    nothing_yet(slow)
    BACKEND.release(user)
    ack = slow.recv_packet()
    assert (ack.type, ack.reason) == (r.CONNACK, 0)
    sub = slow.recv_packet()
    assert (sub.type, sub.pid, sub.codes) == (r.SUBACK, 1, [1]), "then the SUBSCRIBE, in order"
    rest = [slow.recv_packet(), slow.recv_packet()]
    assert sorted((p.type, p.pid if p.type == r.PUBACK else p.payload) for p in rest) == [
        (r.PUBLISH, b"mine"), (r.PUBACK, 2)]


@pytest.mark.broker_config(**HOLD)
def test_pending_acl_keeps_order_and_others_served(clients, uniq):
    reader, _ = login(clients, V5, "reader" + uniq, "good")
    assert reader.subscribe([("hold/%s/#" % uniq, 1), ("allowed/%s/#" % uniq, 1)]).codes == [1, 1]
    held = "hold/%s/a" % uniq
    pub, ack = login(clients, V5, "alice", "good")
    assert ack.reason == 0
    pub.send(r.publish_packet(held, b"a", qos=1, pid=1, version=5)
             + r.publish_packet("allowed/%s/b" % uniq, b"b", qos=1, pid=2, version=5)
             + r.pingreq_packet())
    BACKEND.wait_request("/acl", topic=held)
    other, _ = login(clients, V5, "bob", "good")
    assert other.publish("allowed/%s/q" % uniq, b"q", qos=1).reason == 0
    assert next_publish(reader).payload == b"q", "other clients' messages flow meanwhile"
    t0 = time.monotonic()
    nothing_yet(pub)
    assert publishes(reader, quiet=max(0.05, 0.3 - (time.monotonic() - t0))) == []
    BACKEND.release(held)
    got = [pub.recv_packet() for _ in range(3)]
    assert [(p.type, p.pid) for p in got] == [(r.PUBACK, 1), (r.PUBACK, 2), (r.PINGRESP, None)]
    assert [p.reason for p in got[:2]] == [0, 0]
    assert [next_publish(reader).payload for _ in range(2)] == [b"a", b"b"]


@pytest.mark.broker_config(**HOLD)
def test_client_gone_while_check_pending(broker, clients, uniq):
    user = "hold" + uniq
    c = clients.raw(V5)
    c.send(r.connect_packet("gone" + uniq, 5, username=user, password=b"good"))
    BACKEND.wait_request("/auth", username=user)
    c.abort()
    p, _ = login(clients, V5, "alice", "good")
    held = "hold/%s/g" % uniq
    p.send(r.publish_packet(held, b"g", qos=1, pid=1, version=5))
    BACKEND.wait_request("/acl", topic=held)
    p.close()
    BACKEND.release(user)
    BACKEND.release(held)
    # the late answers land on nothing; the broker carries on
    c2, ack = login(clients, V5, "alice", "good", cid="after" + uniq)
    assert ack.reason == 0
    assert c2.subscribe([("allowed/%s/#" % uniq, 1)]).codes == [1]
    c2.publish("allowed/%s/x" % uniq, b"still here", qos=1)
    assert next_publish(c2).payload == b"still here"
    assert broker.alive()


@pytest.mark.broker_config(**HOLD)
@pytest.mark.parametrize("how", ["abort", "close"], ids=["rst", "fin"])
def test_gone_client_does_not_take_over_session(clients, uniq, how):
    """A client whose login is pending gives up (closes) and connects again with the same
    client id; the late answer to the first, dead, connection must not take the session
    over from the live one."""
    user = "hold" + uniq
    cid = "ghost" + uniq
    c = clients.raw(V5)
    c.send(r.connect_packet(cid, 5, username=user, password=b"good"))
    BACKEND.wait_request("/auth", username=user)
    getattr(c, how)()
    live, ack = login(clients, V5, "alice", "good", cid=cid)
    assert ack.reason == 0
    BACKEND.release(user)
    nothing_yet(live, 0.5)
    assert live.ping().type == r.PINGRESP


# ------------------------------------------------------------------ wills, SIGHUP, https


@pytest.mark.broker_config(**BASE)
@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_will_topic_checked_at_connect(clients, uniq, version):
    """As mosquitto: a will may only name a topic the client may publish to."""
    cid = "will" + uniq
    c = clients.raw(version)
    ack = c.connect(cid, username="alice", password=b"good",
                    will={"topic": "denied/%s" % uniq, "payload": b"gone"})
    assert ack.reason == (0x87 if version == V5 else V3_NOT_AUTHORIZED)
    assert BACKEND.find("/acl", clientid=cid, access="publish", topic="denied/%s" % uniq)
    c = clients.raw(version)
    ack = c.connect(cid, username="alice", password=b"good",
                    will={"topic": "allowed/%s" % uniq, "payload": b"gone"})
    assert ack.reason == 0


@pytest.mark.broker_config(**CACHED)
def test_sighup_forgets_cached_answers(broker, clients, uniq):
    cid = "hup" + uniq
    for _ in range(2):
        c, ack = login(clients, V5, "alice", "good", cid=cid)
        assert ack.reason == 0
        c.disconnect()
    assert len(BACKEND.find("/auth", clientid=cid)) == 1
    broker.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + TIMEOUT
    while "HTTP auth answers forgotten" not in broker.log_path.read_text():
        assert time.monotonic() < deadline, "SIGHUP was not handled"
        time.sleep(0.05)
    _, ack = login(clients, V5, "alice", "good", cid=cid)
    assert ack.reason == 0
    assert len(BACKEND.find("/auth", clientid=cid)) == 2


TLS_CA = http(url=TLS_BACKEND.url("/auth"), acl_url=TLS_BACKEND.url("/acl"), timeout_ms=5000,
              ca_file=str(PKI / "ca.crt"))
TLS_NO_CA = http(url=TLS_BACKEND.url("/auth"), timeout_ms=5000, on_error="deny")


@pytest.mark.broker_config(**TLS_CA)
def test_https_service(clients, uniq):
    c, ack = login(clients, V5, "alice", "good")
    assert ack.reason == 0
    assert c.publish("denied/%s" % uniq, b"x", qos=1).reason == 0x87
    _, ack = login(clients, V5, "alice", "bad")
    assert ack.reason == 0x86
    assert TLS_BACKEND.find("/auth", username="alice")


@pytest.mark.broker_config(**TLS_NO_CA)
def test_https_service_with_unknown_ca_is_an_error(clients):
    """The system's CAs do not know the test CA: the request fails, on_error decides."""
    _, ack = login(clients, V5, "alice", "good")
    assert ack.reason == on_error_refused(V5)


# ------------------------------------------------------------------ polygate -t


OTHERS_OFF = ('websocket = { enabled = false; }; mqttsn = { enabled = false; }; '
              'coap = { enabled = false; }; stomp = { enabled = false; }; '
              'http = { enabled = false; };\n'
              'mqtt = { listeners = ( { bind = "127.0.0.1"; port = 0; } ); };\n')


def check_config(tmp_path, auth):
    path = tmp_path / "p.conf"
    path.write_text("auth = {\n%s\n};\n" % auth + OTHERS_OFF)
    res = subprocess.run([polygate_bin(), "-t", "-c", str(path)], capture_output=True,
                         text=True, timeout=TIMEOUT)
    return str(path), res


@pytest.fixture
def passwd(tmp_path):
    p = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(p), "alice", "secret"], check=True)
    return str(p)


def test_check_accepts_http_keys(tmp_path, passwd):
    _, res = check_config(tmp_path, (
        '  http = { url = "http://127.0.0.1:8080/auth"; acl_url = "http://127.0.0.1:8080/acl";\n'
        '           timeout_ms = 5000; cache_seconds = 60; cache_size = 4096;\n'
        '           on_error = "allow"; format = "json"; };'))
    assert res.returncode == 0, res.stderr
    _, res = check_config(tmp_path, '  password_file = "%s";\n'
                          '  http = { acl_url = "http://127.0.0.1:8080/acl"; };' % passwd)
    assert res.returncode == 0, "a password file and an acl_url go together: " + res.stderr
    _, res = check_config(tmp_path, '  password_file = "%s";\n  http = { url = ""; };' % passwd)
    assert res.returncode == 0, 'url = "" is off: ' + res.stderr


def test_check_rejects_password_file_with_url(tmp_path, passwd):
    path, res = check_config(tmp_path, '  password_file = "%s";\n'
                             '  http = { url = "http://127.0.0.1:8080/auth"; };' % passwd)
    assert res.returncode == 1, res
    assert res.stderr.startswith(path + ":"), res.stderr
    assert "password_file" in res.stderr or "url" in res.stderr, res.stderr


BAD = [("on_error", 'on_error = "maybe";'),
       ("on_error", 'on_error = "";'),
       ("format", 'format = "xml";'),
       ("url", 'url = "ftp://127.0.0.1/auth";'),
       ("url", 'url = "not a url";'),
       ("url", 'url = "http://";'),
       ("acl_url", 'acl_url = "gopher://127.0.0.1/acl";'),
       ("timeout_ms", "timeout_ms = 0;"),
       ("timeout_ms", "timeout_ms = 60001;"),
       ("cache_seconds", "cache_seconds = -1;"),
       ("bogus_key", "bogus_key = 1;")]


@pytest.mark.parametrize("key,setting", BAD, ids=["%s-%d" % (k, i) for i, (k, _) in enumerate(BAD)])
def test_check_rejects_bad_values(tmp_path, key, setting):
    path, res = check_config(tmp_path, "  http = {\n    %s\n  };" % setting)
    assert res.returncode == 1, "accepted %s: %r" % (setting, res)
    assert res.stderr.startswith(path + ":3: "), res.stderr  # the setting's line
    assert key in res.stderr, res.stderr

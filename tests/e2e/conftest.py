"""End-to-end test harness: starts the broker under test, hands tests its address.

Target selection (env POLYGATE_TARGET):
  polygate  (default) runs $POLYGATE_BIN (default: build/polygate) as `BIN -c FILE` with a
            generated libconfig file.
  mosquitto runs /usr/sbin/mosquitto with an equivalent generated mosquitto.conf, to check
            that the tests themselves are right. Tests marked `polygate_only` (behaviour
            the spec allows but mosquitto doesn't do) are skipped there.

Brokers listen on free loopback ports. A test picks its broker configuration with
`@pytest.mark.broker_config(max_packet_size=..., tls=True, ...)` (keys: DEFAULT_CONFIG);
tests of one module that ask for the same configuration share one broker process, so
every test uses its own topics and client ids (fixtures `uniq`, `topic`).
Each broker's stderr log is kept in tests/e2e/.artifacts/ and is attached to the report
of a failing test; at teardown the broker gets SIGTERM and must exit 0 in time.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
ARTIFACTS = HERE / ".artifacts"
sys.path.insert(0, str(HERE))

TARGET = os.environ.get("POLYGATE_TARGET", "polygate").strip().lower() or "polygate"
if TARGET not in ("polygate", "mosquitto"):
    raise pytest.UsageError("POLYGATE_TARGET must be polygate or mosquitto, not %r" % TARGET)
MOSQUITTO_BIN = os.environ.get("MOSQUITTO_BIN", "/usr/sbin/mosquitto")
HOST = "127.0.0.1"

# Slower builds (AddressSanitizer) stretch every deadline by this factor.
SLOW = float(os.environ.get("E2E_TIME_FACTOR", "1"))
START_TIMEOUT = 20.0 * SLOW
STOP_TIMEOUT = 15.0 * SLOW

DEFAULT_CONFIG = {
    "max_packet_size": 1048576,
    "max_inflight": 32,
    "max_queued_messages": 1000,
    "max_keepalive": 65535,
    "retain_available": True,
    "sys_interval": 1,
    "max_topic_alias": 64,
    "broker_max_connections": 0,  # polygate's process-wide limit, every protocol
    "tls": False,  # adds a second MQTT listener with TLS (self-signed cert made here)
    "log_level": os.environ.get("E2E_LOG_LEVEL", "debug"),
    "allow_anonymous": True,
    "mqtt_allow_anonymous": None,  # polygate's per-group override (None = not set)
    "password_file": "",
    "acl_file": "",
    # every test client comes from 127.0.0.1: slowing refusals is off unless a test asks
    "auth_failure_delay_ms": 0,
    # polygate's external HTTP auth backend, `auth.http = { ... }`: each key left at None is
    # not written (the http group is left out when all are None); polygate only
    "auth_http_url": None,
    "auth_http_acl_url": None,
    "auth_http_timeout_ms": None,
    "auth_http_cache_seconds": None,
    "auth_http_cache_size": None,
    "auth_http_on_error": None,
    "auth_http_format": None,
    "auth_http_ca_file": None,
    # MQTT over WebSocket: ws=True adds a websocket listener (broker.ws_port); ws_tls=True
    # adds a wss one (broker.wss_port, the tls=True certificate). The other ws_* keys are
    # polygate's `websocket = { ... }` settings (mosquitto: only ws_www_dir, as http_dir)
    "ws": False,
    "ws_tls": False,
    "ws_max_frame_size": 0,
    "ws_allowed_origins": "",
    "ws_trust_xff": False,
    "ws_www_dir": "",
    "ws_mountpoint": "",
    "ws_allow_anonymous": None,  # the websocket group's override (None = not set)
    # MQTT-SN (polygate only): mqttsn=True adds `mqttsn = { enabled = true; ... }` with one
    # UDP listener on a free loopback port (broker.sn_port); otherwise the group is
    # `mqttsn = { enabled = false; }`. Each mqttsn_<key> left at None is not written (the
    # gateway's default applies); predefined_topics is a tuple of (id, topic) pairs,
    # max_connections goes into the listener, allow_anonymous is the group's override.
    "mqttsn": False,
    "mqttsn_gateway_id": None,
    "mqttsn_mountpoint": None,
    "mqttsn_predefined_topics": None,
    "mqttsn_qos_neg1": None,
    "mqttsn_username": None,
    "mqttsn_password": None,
    "mqttsn_allowed_clients": None,
    "mqttsn_max_registrations": None,
    "mqttsn_retry_interval": None,
    "mqttsn_max_retries": None,
    "mqttsn_advertise_interval": None,
    "mqttsn_advertise_address": None,
    "mqttsn_allow_anonymous": None,
    "mqttsn_max_connections": None,
}
# the mqttsn_* keys written as `key = value;` in the group, in this order
MQTTSN_KEYS = ("gateway_id", "mountpoint", "qos_neg1", "username", "password",
               "allowed_clients", "max_registrations", "retry_interval", "max_retries",
               "advertise_interval", "advertise_address", "allow_anonymous")
AUTH_HTTP_KEYS = ("url", "acl_url", "timeout_ms", "cache_seconds", "cache_size", "on_error",
                  "format", "ca_file")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "polygate_only: behaviour the spec allows but mosquitto does not do; "
        "skipped when POLYGATE_TARGET=mosquitto")
    config.addinivalue_line(
        "markers", "broker_config(**kw): broker configuration for this test (see conftest)")
    if not getattr(config, "workerinput", None):
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)


def pytest_report_header(config):
    if TARGET == "mosquitto":
        return "e2e target: mosquitto (%s)" % MOSQUITTO_BIN
    return "e2e target: polygate (%s)" % polygate_bin()


def pytest_collection_modifyitems(config, items):
    if TARGET != "mosquitto":
        return
    skip = pytest.mark.skip(reason="polygate_only: spec-allowed behaviour mosquitto lacks")
    for item in items:
        if "polygate_only" in item.keywords:
            item.add_marker(skip)


def polygate_bin():
    return os.environ.get("POLYGATE_BIN") or str(REPO / "build" / "polygate")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80]


# ------------------------------------------------------------------ TLS material


_tls_cache = {}


def tls_files():
    """A self-signed server certificate for localhost / 127.0.0.1 (openssl CLI)."""
    if _tls_cache:
        return _tls_cache
    d = ARTIFACTS / "tls"
    d.mkdir(parents=True, exist_ok=True)
    crt, key = d / "server.crt", d / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(crt), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
    os.chmod(key, 0o644)
    _tls_cache.update(cert=str(crt), key=str(key), ca=str(crt))
    return _tls_cache


# ------------------------------------------------------------------ broker process


def _auth_http_conf(cfg):
    """`http = { ... }; ` for the auth group, from the auth_http_* keys set ("" if none)."""
    items = []
    for k in AUTH_HTTP_KEYS:
        v = cfg["auth_http_" + k]
        if v is None:
            continue
        if isinstance(v, str):
            v = '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')
        items.append("%s = %s;" % (k, v))
    return "http = { %s }; " % " ".join(items) if items else ""


def _qs(v):
    """A libconfig string literal."""
    return '"%s"' % str(v).replace("\\", "\\\\").replace('"', '\\"')


def _websocket_conf(cfg, ws_port, wss_port, tls):
    """The `websocket = { ... };` group: disabled unless ws/ws_tls asked for listeners.
    Keys at their documented default are left out, except www_dir (always written)."""
    if not ws_port and not wss_port:
        return "websocket = { enabled = false; };\n"
    b = lambda v: "true" if v else "false"
    listeners = []
    if ws_port:
        listeners.append('{ bind = "%s"; port = %d; }' % (HOST, ws_port))
    if wss_port:
        listeners.append('{ bind = "%s"; port = %d; tls = { cert_file = "%s"; key_file = "%s"; }; }'
                         % (HOST, wss_port, tls["cert"], tls["key"]))
    items = ["enabled = true;", "listeners = ( %s );" % ",\n    ".join(listeners),
             "www_dir = %s;" % _qs(cfg["ws_www_dir"])]
    if cfg["ws_max_frame_size"]:
        items.append("max_frame_size = %d;" % cfg["ws_max_frame_size"])
    if cfg["ws_allowed_origins"]:
        items.append("allowed_origins = %s;" % _qs(cfg["ws_allowed_origins"]))
    if cfg["ws_trust_xff"]:
        items.append("trust_x_forwarded_for = true;")
    if cfg["ws_mountpoint"]:
        items.append("mountpoint = %s;" % _qs(cfg["ws_mountpoint"]))
    if cfg["ws_allow_anonymous"] is not None:
        items.append("allow_anonymous = %s;" % b(cfg["ws_allow_anonymous"]))
    return "websocket = { %s };\n" % "\n              ".join(items)


def _mqttsn_conf(cfg, sn_port):
    """The `mqttsn = { ... };` group: disabled unless mqttsn=True."""
    if not sn_port:
        return "mqttsn = { enabled = false; };\n"
    listener = '{ bind = "%s"; port = %d;' % (HOST, sn_port)
    if cfg["mqttsn_max_connections"] is not None:
        listener += " max_connections = %d;" % cfg["mqttsn_max_connections"]
    items = ["enabled = true;", "listeners = ( %s } );" % listener]
    for k in MQTTSN_KEYS:
        v = cfg["mqttsn_" + k]
        if v is None:
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, str):
            v = _qs(v)
        items.append("%s = %s;" % (k, v))
    if cfg["mqttsn_predefined_topics"] is not None:
        items.append("predefined_topics = ( %s );" % ",\n        ".join(
            "{ id = %d; topic = %s; }" % (i, _qs(t)) for i, t in cfg["mqttsn_predefined_topics"]))
    return "mqttsn = { %s };\n" % "\n           ".join(items)


def _polygate_conf(cfg, port, tls_port, tls, ws_port=None, wss_port=None, sn_port=None):
    b = lambda v: "true" if v else "false"
    listeners = ['{ bind = "%s"; port = %d; }' % (HOST, port)]
    if tls_port:
        listeners.append('{ bind = "%s"; port = %d; tls = { cert_file = "%s"; key_file = "%s"; }; }'
                         % (HOST, tls_port, tls["cert"], tls["key"]))
    return (
        "broker = { max_packet_size = %d; max_inflight = %d; max_queued_messages = %d;\n"
        "           max_keepalive = %d; retain_available = %s; sys_interval = %d;\n"
        "           max_topic_alias = %d; max_connections = %d; };\n"
        'auth = { allow_anonymous = %s; password_file = "%s"; acl_file = "%s";\n'
        "         failure_delay_ms = %d; %s};\n"
        'log = { level = "%s"; };\n'
        "mqtt = { enabled = true; listeners = ( %s ); %s};\n"
        "%s%s"
        "coap = { enabled = false; };\nstomp = { enabled = false; };\nhttp = { enabled = false; };\n"
    ) % (cfg["max_packet_size"], cfg["max_inflight"], cfg["max_queued_messages"],
         cfg["max_keepalive"], b(cfg["retain_available"]), cfg["sys_interval"],
         cfg["max_topic_alias"], cfg["broker_max_connections"], b(cfg["allow_anonymous"]),
         cfg["password_file"],
         cfg["acl_file"], cfg["auth_failure_delay_ms"], _auth_http_conf(cfg), cfg["log_level"],
         ",\n    ".join(listeners),
         "" if cfg["mqtt_allow_anonymous"] is None
         else "allow_anonymous = %s; " % b(cfg["mqtt_allow_anonymous"]),
         _websocket_conf(cfg, ws_port, wss_port, tls), _mqttsn_conf(cfg, sn_port))


def _mosquitto_conf(cfg, port, tls_port, tls, ws_port=None, wss_port=None):
    lines = [
        "per_listener_settings false",
        "allow_anonymous %s" % ("true" if cfg["allow_anonymous"] else "false"),
        "persistence false",
        "log_dest stderr",
        "log_type all" if cfg["log_level"] == "debug" else "log_type information",
        "max_packet_size %d" % cfg["max_packet_size"],
        "max_inflight_messages %d" % cfg["max_inflight"],
        "max_queued_messages %d" % cfg["max_queued_messages"],
        "max_keepalive %d" % cfg["max_keepalive"],
        "retain_available %s" % ("true" if cfg["retain_available"] else "false"),
        "sys_interval %d" % cfg["sys_interval"],
    ]
    if cfg["password_file"]:
        lines.append("password_file %s" % cfg["password_file"])
    if cfg["acl_file"]:
        lines.append("acl_file %s" % cfg["acl_file"])
    if os.geteuid() == 0:
        lines.append("user root")
    lines += ["listener %d %s" % (port, HOST), "max_topic_alias %d" % cfg["max_topic_alias"]]
    if tls_port:
        lines += ["listener %d %s" % (tls_port, HOST), "max_topic_alias %d" % cfg["max_topic_alias"],
                  "certfile %s" % tls["cert"], "keyfile %s" % tls["key"]]
    for p in (ws_port, wss_port):
        if not p:
            continue
        lines += ["listener %d %s" % (p, HOST), "protocol websockets",
                  "max_topic_alias %d" % cfg["max_topic_alias"]]
        if cfg["ws_www_dir"]:
            lines.append("http_dir %s" % cfg["ws_www_dir"])
        if p == wss_port:
            lines += ["certfile %s" % tls["cert"], "keyfile %s" % tls["key"]]
    return "\n".join(lines) + "\n"


class PolygateProcess:
    """What every test that runs a polygate (or mosquitto) process needs of it: its
    log (self.log_path, written through self.log) and a clean stop (self.proc)."""

    def log_size(self):
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_text(self, offset=0, limit=40000):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except OSError:
            return ""
        if len(data) > limit:
            data = b"[... cut ...]\n" + data[-limit:]
        return data.decode("utf-8", "replace")

    def log_tail(self):
        return "---- %s ----\n%s" % (self.log_path, self.log_text())

    def stop(self):
        """SIGTERM; returns (exit code or None if it had to be killed)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.log.close()
                return None
        self.log.close()
        return self.proc.returncode


class Broker(PolygateProcess):
    """One running broker under test."""

    def __init__(self, cfg, name):
        self.cfg = dict(cfg)
        self.target = TARGET
        self.host = HOST
        self.name = name
        self.dir = ARTIFACTS / _safe(name)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "broker.log"
        self.proc = None
        self.port = None
        self.tls_port = None
        self.ws_port = None   # MQTT over WebSocket (broker_config ws=True)
        self.wss_port = None  # the same over TLS (ws_tls=True)
        self.sn_port = None   # MQTT-SN over UDP (broker_config mqttsn=True)
        self.cafile = None

    def __repr__(self):
        return "<Broker %s %s:%s tls=%s ws=%s wss=%s sn=%s>" % (
            self.target, self.host, self.port, self.tls_port, self.ws_port, self.wss_port,
            self.sn_port)

    def start(self):
        tls = tls_files() if (self.cfg["tls"] or self.cfg["ws_tls"]) else None
        for attempt in range(3):  # a free port can be taken between probe and bind
            self.port = free_port()
            self.tls_port = free_port() if self.cfg["tls"] else None
            self.ws_port = free_port() if self.cfg["ws"] else None
            self.wss_port = free_port() if self.cfg["ws_tls"] else None
            self.sn_port = free_udp_port() if self.cfg["mqttsn"] else None
            if tls:
                self.cafile = tls["ca"]
            if TARGET == "mosquitto":
                conf = self.dir / "mosquitto.conf"
                conf.write_text(_mosquitto_conf(self.cfg, self.port, self.tls_port, tls,
                                               self.ws_port, self.wss_port))
                argv = [MOSQUITTO_BIN, "-c", str(conf)]
            else:
                conf = self.dir / "polygate.conf"
                conf.write_text(_polygate_conf(self.cfg, self.port, self.tls_port, tls,
                                              self.ws_port, self.wss_port, self.sn_port))
                binary = polygate_bin()
                if not os.access(binary, os.X_OK):
                    pytest.fail("polygate binary %s not found or not executable "
                                "(set POLYGATE_BIN, or POLYGATE_TARGET=mosquitto)" % binary,
                                pytrace=False)
                argv = [binary, "-c", str(conf)]
            self.log = open(self.log_path, "ab")
            self.log.write(("==== %s\n" % " ".join(argv)).encode())
            self.log.flush()
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                         stderr=self.log, cwd=str(self.dir))
            if self._wait_ready():
                return self
            rc = self.proc.poll()
            if rc is None:
                self.proc.kill()
                self.proc.wait()
                pytest.fail("broker did not accept TCP on %s within %.0fs\n%s" % (
                    "/".join(str(p) for p in self._ports()), START_TIMEOUT, self.log_tail()),
                    pytrace=False)
            text = self.log_tail()
            if "in use" in text.lower() and attempt < 2:
                continue
            pytest.fail("broker exited with code %s at start\n%s" % (rc, text), pytrace=False)

    def _ports(self):
        return [p for p in (self.port, self.tls_port, self.ws_port, self.wss_port) if p]

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        ports = self._ports()
        while ports:
            if self.proc.poll() is not None:
                return False
            if time.monotonic() > deadline:
                return False
            try:
                with socket.create_connection((self.host, ports[0]), timeout=0.5):
                    ports.pop(0)
            except OSError:
                time.sleep(0.02)
        if self.sn_port and self.target == "polygate":
            return self._wait_udp_ready(deadline)
        return True

    def _wait_udp_ready(self, deadline):
        """The MQTT-SN UDP port is bound: a SEARCHGW is answered, or at least not refused
        (ICMP port unreachable) for a while."""
        silent = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((self.host, self.sn_port))
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    s.send(b"\x03\x01\x00")  # SEARCHGW, radius 0
                    s.settimeout(0.2)
                    s.recv(65536)
                    return True
                except ConnectionRefusedError:
                    silent = 0
                    time.sleep(0.02)
                except socket.timeout:
                    silent += 1
                    if silent >= 5:
                        return True
        return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


def _merged_config(request):
    cfg = dict(DEFAULT_CONFIG)
    for mark in reversed(list(request.node.iter_markers("broker_config"))):
        unknown = set(mark.kwargs) - set(DEFAULT_CONFIG)
        if unknown:
            raise pytest.UsageError("unknown broker_config keys %s" % sorted(unknown))
        cfg.update(mark.kwargs)
    return cfg


@pytest.fixture(scope="module")
def _broker_pool(request):
    pool = {}
    yield pool
    errors = []
    for broker in pool.values():
        rc = broker.stop()
        if rc != 0:
            errors.append("%r: %s\n%s" % (
                broker, "did not exit within %.0fs of SIGTERM" % STOP_TIMEOUT if rc is None
                else "exit code %s after SIGTERM (expected 0)" % rc, broker.log_tail()))
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


@pytest.fixture
def broker(request, _broker_pool):
    """The broker under test for this test's broker_config (shared within the module)."""
    cfg = _merged_config(request)
    key = tuple(sorted(cfg.items()))
    b = _broker_pool.get(key)
    if b is not None and not b.alive():
        # it died during an earlier test, which has been failed for it
        _broker_pool.pop(key)
        b = None
    if b is None:
        name = "%s-%d" % (request.module.__name__, len(_broker_pool) + 1)
        b = Broker(cfg, name).start()
        _broker_pool[key] = b
    request.node._e2e_brokers = getattr(request.node, "_e2e_brokers", []) + [(b, b.log_size())]
    yield b
    if not b.alive():
        pytest.fail("broker died during this test: exit code %s\n%s" % (
            b.proc.returncode, b.log_tail()), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for b, offset in getattr(item, "_e2e_brokers", []):
            report.sections.append((
                "broker log (%s, from this test on)" % b.log_path,
                b.log_text(offset)))


# ------------------------------------------------------------------ per-test helpers


@pytest.fixture
def uniq():
    """A short unique string for client ids and topics of this test."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def topic(request, uniq):
    """A topic prefix no other test uses."""
    short = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:40].strip("-")
    return "e2e/%s/%s" % (short, uniq)


@pytest.fixture
def clients(broker, uniq):
    """Factory for paho and raw clients, all closed at teardown."""
    import helpers
    f = helpers.ClientFactory(broker, uniq)
    yield f
    f.close_all()

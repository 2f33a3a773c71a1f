"""examples/mqttsn-sensor against polygate: the example is a plain C MQTT-SN v1.2 client
(libc and UDP sockets only). polygate runs here with a generated config (an MQTT
listener and one MQTT-SN listener on free loopback ports, everything else off); an MQTT
subscriber (rawmqtt) watches what the sensor's readings and will become on the MQTT side.

Covered: a run of -n 2 -s 1 (SEARCHGW/GWINFO, CONNECT with the will dialogue, REGISTER,
QoS 1 PUBLISH, sleep with DISCONNECT+duration, wake with PINGREQ, CONNECT again, clean
DISCONNECT: readings arrive at QoS 1, no will); a sensor killed while active with
keepalive 2 (its retained will "offline" arrives once 1.5 x keepalive passed without a
ping); no gateway at the address (a clear error); and commands and the will across the
wake-up CONNECT (MQTT-SN v1.2 section 6.3: CleanSession=false, Will=false keeps the
client's subscriptions and will).

Binaries: $POLYGATE_BIN (default build/polygate), $POLYGATE_EXAMPLES/mqttsn-sensor
(default build/examples/mqttsn-sensor). Skipped with POLYGATE_TARGET=mosquitto.
"""

import os
import queue
import re
import socket
import subprocess
import threading
import time
import uuid

import pytest

import rawmqtt as r
from conftest import ARTIFACTS, HOST, TARGET, PolygateProcess, free_port, polygate_bin
from helpers import QUIET, SLOW, TIMEOUT

pytestmark = pytest.mark.skipif(TARGET != "polygate", reason="polygate's own example")

GW_ID = 1  # mqttsn.gateway_id's default


def sensor_bin():
    d = os.environ.get("POLYGATE_EXAMPLES") or os.path.join(
        os.path.dirname(__file__), "..", "..", "build", "examples")
    binary = os.path.join(d, "mqttsn-sensor")
    if not os.access(binary, os.X_OK):
        pytest.fail("%s not found: build it with `make` (or set POLYGATE_EXAMPLES)" % binary,
                    pytrace=False)
    return binary


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ polygate


class Gateway(PolygateProcess):
    """polygate with an MQTT listener and an MQTT-SN listener, nothing else."""

    def __init__(self):
        self.dir = ARTIFACTS / "mqttsn-sensor"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "polygate.log"
        self.proc = None

    def start(self):
        binary = polygate_bin()
        if not os.access(binary, os.X_OK):
            pytest.fail("polygate binary %s not found (set POLYGATE_BIN)" % binary, pytrace=False)
        for _ in range(3):  # a free port can be taken between probe and bind
            self.port, self.sn_port = free_port(), free_udp_port()
            conf = self.dir / "polygate.conf"
            conf.write_text(
                'log = { level = "debug"; };\n'
                'mqtt = { enabled = true; listeners = ( { bind = "%s"; port = %d; } ); };\n'
                'mqttsn = { enabled = true; listeners = ( { bind = "%s"; port = %d; } ); };\n'
                "websocket = { enabled = false; };\ncoap = { enabled = false; };\n"
                "stomp = { enabled = false; };\nhttp = { enabled = false; };\n"
                % (HOST, self.port, HOST, self.sn_port))
            self.log = open(self.log_path, "ab")
            self.proc = subprocess.Popen([binary, "-c", str(conf)], stdin=subprocess.DEVNULL,
                                         stdout=self.log, stderr=self.log, cwd=str(self.dir))
            if self._ready():
                return self
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.log.close()
            if "in use" not in self.log_tail().lower():
                break
        pytest.fail("polygate did not start\n%s" % self.log_tail(), pytrace=False)

    def _ready(self):
        """The MQTT port accepts, and the MQTT-SN port answers SEARCHGW with GWINFO."""
        deadline = time.monotonic() + 20 * SLOW
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.02)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((HOST, self.sn_port))
            s.settimeout(0.2)
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    s.send(b"\x03\x01\x00")  # SEARCHGW, radius 0
                    if s.recv(64)[1:2] == b"\x02":  # GWINFO
                        return True
                except (socket.timeout, ConnectionRefusedError):
                    time.sleep(0.02)
        return False


@pytest.fixture(scope="module")
def gateway():
    g = Gateway().start()
    yield g
    rc = g.stop()
    assert rc == 0, "polygate: exit code %s after SIGTERM\n%s" % (rc, g.log_tail())


# ------------------------------------------------------------------ the sensor


class Sensor:
    """The example running in the background; its stdout lines are read as they come."""

    def __init__(self, gateway, *args):
        self.gateway = gateway
        self.argv = [sensor_bin(), "-h", HOST, "-p", str(gateway.sn_port)] + [str(a) for a in args]
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines = []  # every stdout line so far
        self._q = queue.Queue()
        self._err = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self._err.extend(self.proc.stderr), daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def report(self):
        return "%s\nstdout:\n%s\nstderr:\n%s" % (
            " ".join(self.argv), "\n".join(self.lines), "".join(self._err))

    def next_line(self, timeout=None):
        """The next stdout line; None once the sensor has exited."""
        try:
            line = self._q.get(timeout=TIMEOUT if timeout is None else timeout)
        except queue.Empty:
            raise AssertionError("no line from the sensor within %.1fs\n%s" % (
                TIMEOUT if timeout is None else timeout, self.report()))
        if line is None:
            self._q.put(None)  # stays at the end
            return None
        self.lines.append(line)
        return line

    def expect(self, pattern, timeout=None):
        """Reads lines until one matches pattern (a regex, whole line); returns its match."""
        deadline = time.monotonic() + (TIMEOUT if timeout is None else timeout)
        while True:
            line = self.next_line(max(0.0, deadline - time.monotonic()))
            if line is None:
                raise AssertionError("sensor exited before %r\n%s" % (pattern, self.report()))
            m = re.fullmatch(pattern, line)
            if m:
                return m

    def wait(self, timeout=None):
        """Exit code; all of stdout read."""
        rc = self.proc.wait(timeout=TIMEOUT * 2 if timeout is None else timeout)
        while self.next_line() is not None:
            pass
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def sensors(gateway, request):
    """Starts sensors, killed at teardown. A failing test's report shows polygate's log
    from this test on (conftest's report hook); assertion messages show the sensor's
    command line and output."""
    started = []
    request.node._e2e_brokers = getattr(request.node, "_e2e_brokers", []) + [
        (gateway, gateway.log_size())]

    def start(*args):
        s = Sensor(gateway, *args)
        started.append(s)
        return s

    yield start
    for s in started:
        s.kill()


# ------------------------------------------------------------------ MQTT side


def mqtt_sub(gateway, topic_filter):
    """A raw MQTT 3.1.1 client subscribed to topic_filter at QoS 1."""
    c = r.Conn(HOST, gateway.port, 4, timeout=TIMEOUT)
    assert c.connect("watch-" + uuid.uuid4().hex[:8]).reason == 0
    assert c.subscribe([(topic_filter, 1)]).codes == [1]
    return c


def mqtt_next(c, timeout):
    """The next PUBLISH (acknowledged), or None when none comes in time."""
    try:
        p = c.wait_for(r.PUBLISH, timeout)
    except TimeoutError:
        return None
    c.ack(p)
    return p


def retained(gateway, topic):
    """The retained message of topic, or None: what a new subscriber gets first."""
    c = mqtt_sub(gateway, topic)
    try:
        p = mqtt_next(c, QUIET)
        assert p is None or p.retain, p
        return p
    finally:
        c.disconnect()


def uniq_id():
    return "s" + uuid.uuid4().hex[:10]  # well under MQTT-SN's 23 characters


# ------------------------------------------------------------------ tests


def test_readings_arrive_at_qos1_and_clean_disconnect_sends_no_will(gateway, sensors):
    cid = uniq_id()
    topic = "sensors/%s/temp" % cid
    sub = mqtt_sub(gateway, "sensors/%s/#" % cid)
    s = sensors("-i", cid, "-n", 2, "-s", 1)
    assert s.wait() == 0, s.report()
    readings = r"(\d+\.\d) \(msg (\d+)\) acked"
    expected = [r"gwinfo gw=%d" % GW_ID, "connected", r"registered %s id=(\d+)" % re.escape(topic),
                "published " + readings, "asleep 1s", "awake", "connected",
                "published " + readings, "disconnected"]
    assert len(s.lines) == len(expected), s.report()
    got = [re.fullmatch(e, line) for e, line in zip(expected, s.lines)]
    assert all(got), s.report()
    values = [got[3].group(1), got[7].group(1)]
    msg_ids = [int(got[3].group(2)), int(got[7].group(2))]
    assert msg_ids[0] != msg_ids[1] and 0 not in msg_ids, s.report()
    for value in values:
        assert 15.0 <= float(value) <= 27.0, values  # drifting around 21.0

    # The MQTT side: both readings, in order, at QoS 1, not retained.
    for value in values:
        p = mqtt_next(sub, TIMEOUT)
        assert p is not None, "reading %s not received\n%s" % (value, s.report())
        assert (p.topic, p.payload, p.qos, p.retain) == (topic, value.encode(), 1, False)
    # A clean DISCONNECT: no will, neither delivered nor retained.
    assert mqtt_next(sub, QUIET) is None
    assert retained(gateway, topic + "/status") is None
    sub.disconnect()


def test_killed_sensor_will_is_published_after_keepalive(gateway, sensors):
    cid = uniq_id()
    status = "sensors/%s/temp/status" % cid
    sub = mqtt_sub(gateway, "sensors/%s/#" % cid)
    # -a: stays active (no MQTT-SN sleep) between readings, 30 s apart, and PINGREQs
    # every keepalive (2 s); polygate counts it lost after 1.5 x 2 s of silence.
    s = sensors("-i", cid, "-n", 0, "-s", 30, "-k", 2, "-a")
    s.expect(r"published \d+\.\d \(msg \d+\) acked")
    p = mqtt_next(sub, TIMEOUT)
    assert p is not None and p.topic == "sensors/%s/temp" % cid, p
    # Alive and pinging: nothing more for longer than 1.5 x keepalive.
    assert mqtt_next(sub, 3.5) is None
    assert s.proc.poll() is None, s.report()

    s.kill()  # SIGKILL: no DISCONNECT
    t0 = time.monotonic()
    p = mqtt_next(sub, 3.0 + 2.0 * SLOW)
    elapsed = time.monotonic() - t0
    assert p is not None, "no will within %.1fs of SIGKILL\n%s" % (elapsed, s.report())
    assert (p.topic, p.payload, p.qos) == (status, b"offline", 1)
    # Lost by the keepalive timer: 1.5 x 2 s after its last PINGREQ, which came at most
    # 2 s before the kill.
    assert 0.5 <= elapsed <= 3.0 + 1.0 * SLOW, elapsed
    w = retained(gateway, status)
    assert w is not None and w.payload == b"offline", w
    sub.disconnect()


def test_no_gateway_is_a_clear_error():
    port = free_udp_port()  # nothing listens there: SEARCHGW gets ICMP port unreachable
    out = subprocess.run([sensor_bin(), "-h", HOST, "-p", str(port), "-n", "1"],
                         capture_output=True, text=True, timeout=TIMEOUT * 4)
    assert out.returncode == 1, out
    assert out.stdout == ""
    assert out.stderr.startswith("error: ") and "port unreachable" in out.stderr, out.stderr


def test_commands_and_will_survive_the_wake_up_connect(gateway, sensors):
    cid = uniq_id()
    cmd = "sensors/%s/cmd" % cid
    pub = r.Conn(HOST, gateway.port, 4, timeout=TIMEOUT)
    assert pub.connect("cmd-" + cid).reason == 0
    watch = mqtt_sub(gateway, "sensors/%s/temp/status" % cid)
    # Sleeps of 1 s (sleep duration 2 s) and keepalive 2 s: lost 3 s after the last
    # message whether it is killed active or asleep.
    s = sensors("-i", cid, "-n", 0, "-s", 1, "-k", 2, "-c", cmd + "/#")
    for n, word in enumerate(["one", "two"]):
        s.expect("asleep 1s")
        pub.publish("%s/%s" % (cmd, word), word.encode(), qos=1)  # queued while it sleeps
        before = len(s.lines)
        s.expect("awake")
        woke = s.lines[before:]
        # The wake-up brings it: the gateway REGISTERs the new topic, then PUBLISHes.
        assert "received %s/%s %s" % (cmd, word, word) in woke, (
            "command %d (%s) not delivered at wake-up %d\n%s" % (n + 1, word, n + 1, s.report()))
        assert "gateway registered %s/%s id=" % (cmd, word) in " ".join(woke), s.report()
        s.expect("connected")
    s.kill()
    p = mqtt_next(watch, 3.0 + 2.0 * SLOW)
    assert p is not None and p.payload == b"offline", "no will after SIGKILL\n%s" % s.report()
    pub.disconnect()
    watch.disconnect()

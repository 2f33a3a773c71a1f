"""The browser example (examples/web) in a real browser: polygate serves the page and
MQTT.js on its WebSocket port, Debian's chromium runs it (tests/browser/page_test.mjs,
playwright-core), and the page talks with mosquitto clients on the MQTT TCP port.

Needs /usr/bin/chromium, node, and both npm trees:
    npm ci --prefix examples/web && npm ci --prefix tests/browser
(`make test` installs them). Missing pieces fail the test instead of skipping it.
The screenshots are kept in tests/e2e/.artifacts/browser/ (page.png, page-v5.png).
"""

import json
import os
import queue
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from types import SimpleNamespace

import pytest

from conftest import (ARTIFACTS, HOST, REPO, STOP_TIMEOUT, TARGET, PolygateProcess, free_port,
                      polygate_bin)
from helpers import SLOW, MosquittoSub

pytestmark = pytest.mark.skipif(TARGET != "polygate",
                                reason="polygate serves the page; mosquitto has no www_dir")

WEB_DIR = REPO / "examples" / "web"
BROWSER_DIR = REPO / "tests" / "browser"
PAGE_TEST = BROWSER_DIR / "page_test.mjs"
CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
OUT = ARTIFACTS / "browser"

START_TIMEOUT = 10.0 * SLOW
STEP_TIMEOUT = 10.0 * SLOW  # the longest wait for one line of page_test's progress
PAGE_TIMEOUT_MS = int(20000 * SLOW)  # page_test's own deadline for everything


def _require_tools():
    problems = []
    node = shutil.which("node")
    if not node:
        problems.append("node is not installed (Debian package nodejs)")
    if not os.access(CHROMIUM, os.X_OK):
        problems.append("%s is missing (apt-get install chromium)" % CHROMIUM)
    if not (WEB_DIR / "node_modules" / "mqtt" / "dist" / "mqtt.min.js").is_file():
        problems.append("MQTT.js is not installed: npm ci --prefix examples/web")
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        problems.append("playwright-core is not installed: npm ci --prefix tests/browser")
    if not shutil.which("mosquitto_sub") or not shutil.which("mosquitto_pub"):
        problems.append("mosquitto_sub/mosquitto_pub are missing (mosquitto-clients)")
    if problems:
        pytest.fail("browser test prerequisites:\n  " + "\n  ".join(problems), pytrace=False)
    return node


def _port_accepts(port):
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


class Gateway(PolygateProcess):
    """polygate with an MQTT TCP listener and a WebSocket listener serving examples/web."""

    def __init__(self):
        OUT.mkdir(parents=True, exist_ok=True)
        self.conf_path = OUT / "polygate.conf"
        self.log_path = OUT / "polygate.log"
        self.proc = None
        self.log = None

    def start(self):
        binary = polygate_bin()
        if not os.access(binary, os.X_OK):
            pytest.fail("polygate binary %s not found or not executable (set POLYGATE_BIN)"
                        % binary, pytrace=False)
        for attempt in range(3):  # a free port can be taken between probe and bind
            self.port, self.ws_port = free_port(), free_port()
            self.conf_path.write_text(
                'log = { level = "%s"; };\n'
                'mqtt = { enabled = true; listeners = ( { bind = "%s"; port = %d; } ); };\n'
                'websocket = { enabled = true; listeners = ( { bind = "%s"; port = %d; } );\n'
                '              www_dir = "%s"; };\n'
                "mqttsn = { enabled = false; };\ncoap = { enabled = false; };\n"
                "stomp = { enabled = false; };\nhttp = { enabled = false; };\n"
                % (os.environ.get("E2E_LOG_LEVEL", "debug"), HOST, self.port, HOST, self.ws_port,
                   str(WEB_DIR).replace("\\", "\\\\").replace('"', '\\"')))
            argv = [binary, "-c", str(self.conf_path)]
            self.log = open(self.log_path, "ab")
            self.log.write(("==== %s\n" % " ".join(argv)).encode())
            self.log.flush()
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                         stderr=self.log, cwd=str(OUT))
            deadline = time.monotonic() + START_TIMEOUT
            waiting = [self.port, self.ws_port]
            while waiting and self.proc.poll() is None and time.monotonic() < deadline:
                if _port_accepts(waiting[0]):
                    waiting.pop(0)
                else:
                    time.sleep(0.02)
            if not waiting:
                return self
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
                self.log.close()
                pytest.fail("polygate did not accept on ports %d (mqtt) and %d (websocket) "
                            "within %.0fs\n%s" % (self.port, self.ws_port, START_TIMEOUT,
                                                  self.log_tail()), pytrace=False)
            self.log.close()
            text = self.log_tail()
            if "in use" in text.lower() and attempt < 2:
                continue
            pytest.fail("polygate exited with code %s at start\n%s" % (self.proc.returncode, text),
                        pytrace=False)

    @property
    def mqtt(self):
        """What helpers.MosquittoSub wants to know about a broker."""
        return SimpleNamespace(host=HOST, port=self.port, tls_port=None, cafile=None)


@pytest.fixture(scope="module")
def gateway():
    _require_tools()
    gw = Gateway().start()
    yield gw
    rc = gw.stop()
    if rc != 0:
        pytest.fail("polygate: %s\n%s" % (
            "did not exit within %.0fs of SIGTERM" % STOP_TIMEOUT if rc is None
            else "exit code %s after SIGTERM (expected 0)" % rc, gw.log_tail()), pytrace=False)


def _get(url):
    with urllib.request.urlopen(url, timeout=5 * SLOW) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read()


def _mosquitto_pub(gw, *args):
    r = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(gw.port), *args],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10 * SLOW)
    assert r.returncode == 0, "mosquitto_pub %s: %s" % (args, r.stdout.decode(errors="replace"))


class PageTest:
    """tests/browser/page_test.mjs in the background; its stdout read line by line."""

    def __init__(self, node, argv, name):
        self.stderr_path = OUT / ("%s.stderr.txt" % name)
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([node, str(PAGE_TEST), *argv], cwd=str(REPO),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.stderr)
        self.lines = []
        self._q = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        with self.proc.stdout:
            for line in iter(self.proc.stdout.readline, b""):
                self._q.put(line.decode("utf-8", "replace").rstrip("\n"))
        self._q.put(None)

    def report(self):
        try:
            err = self.stderr_path.read_text(errors="replace")
        except OSError:
            err = ""
        return "page_test stdout:\n  %s\npage_test stderr (%s):\n%s" % (
            "\n  ".join(self.lines) or "(nothing)", self.stderr_path, err or "(nothing)")

    def expect(self, prefix, gw):
        """Waits for the next progress line; it must start with prefix."""
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            try:
                line = self._q.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                pytest.fail("no %s from page_test within %.0fs\n%s\n%s" % (
                    prefix, STEP_TIMEOUT, self.report(), gw.log_tail()), pytrace=False)
            if line is None:
                rc = self.proc.wait()
                pytest.fail("page_test exited (code %s) before %s\n%s\n%s" % (
                    rc, prefix, self.report(), gw.log_tail()), pytrace=False)
            self.lines.append(line)
            if line.startswith(prefix):
                return line
            if not line.startswith(("CONNECTED", "SUBSCRIBED", "RECEIVED", "PUBLISHED",
                                     "ECHOED", "SCREENSHOT", "DISCONNECTED")):
                self.kill()
                pytest.fail("unexpected line %r from page_test\n%s" % (line, self.report()),
                            pytrace=False)

    def finish(self, gw):
        try:
            rc = self.proc.wait(timeout=STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = None
        self.stderr.close()
        if rc != 0:
            pytest.fail("page_test exit code %s\n%s\n%s" % (rc, self.report(), gw.log_tail()),
                        pytrace=False)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


def _page_round_trip(gw, protocol, screenshot):
    node = _require_tools()
    base = "http://%s:%d/" % (HOST, gw.ws_port)

    # polygate serves the page and the MQTT.js bundle from www_dir
    status, ctype, body = _get(base)
    assert status == 200 and b'id="status"' in body, (status, ctype, body[:200])
    assert "text/html" in ctype, ctype
    status, ctype, body = _get(base + "node_modules/mqtt/dist/mqtt.min.js")
    assert status == 200 and len(body) > 100000, (status, ctype, len(body))
    assert "javascript" in ctype, ctype

    prefix = "e2e/browser/%s" % uuid.uuid4().hex[:10]
    retained = ("%s/retained" % prefix, "retained before the page subscribed")
    # markup, quotes, an event handler and non-ASCII text: all must show up as text
    live = ("%s/to-page" % prefix,
            '<b class="xss">bold?</b> & "quotes" <img src=x onerror="window.__xss=1"> '
            "gr\u00fc\u00dfe \u2713 " + prefix)
    outgoing = ("%s/from-page" % prefix, "hello from the browser (MQTT %s) %s"
                % ("5.0" if protocol == 5 else "3.1.1", prefix))

    if screenshot.exists():
        screenshot.unlink()
    _mosquitto_pub(gw, "-q", "1", "-r", "-t", retained[0], "-m", retained[1])
    page = PageTest(node, [
        base, "--protocol", str(protocol), "--sub", prefix + "/#", "--sub-qos", "1",
        "--expect", json.dumps({"topic": retained[0], "payload": retained[1], "retain": True}),
        "--expect", json.dumps({"topic": live[0], "payload": live[1], "retain": False,
                                "qos": 1}),
        "--pub-topic", outgoing[0], "--pub-payload", outgoing[1], "--pub-qos", "1",
        "--screenshot", str(screenshot), "--timeout", str(PAGE_TIMEOUT_MS),
        "--chromium", CHROMIUM,
    ], screenshot.stem)
    sub = None
    try:
        page.expect("READY", gw)
        # The page publishes only after it has the live message, so a subscriber that has
        # its SUBACK before that publish cannot miss the page's message.
        sub = MosquittoSub(gw.mqtt, ["-q", "1", "-v", "-t", outgoing[0]], 1)
        _mosquitto_pub(gw, "-q", "1", "-t", live[0], "-m", live[1])
        page.expect("RECEIVED", gw)  # the retained message
        page.expect("RECEIVED", gw)  # the live one
        page.expect("PUBLISHED", gw)
        page.expect("ECHOED", gw)  # the page is subscribed to its own topic too
        page.expect("SCREENSHOT", gw)
        page.expect("DISCONNECTED", gw)  # the page's Disconnect button
        page.expect("OK", gw)
        page.finish(gw)
        rc, out = sub.finish()
        sub = None
    finally:
        page.kill()
        if sub is not None:
            sub.kill()
    line = ("%s %s" % outgoing).encode()
    assert rc == 0 and line in out.splitlines(), (
        "mosquitto_sub did not get the page's message %r (exit %s):\n%s\n%s"
        % (line, rc, out.decode(errors="replace"), gw.log_tail()))
    assert screenshot.is_file() and screenshot.stat().st_size > 10000, screenshot
    assert gw.proc.poll() is None, "polygate died\n" + gw.log_tail()


def test_browser_page_mqtt311(gateway):
    _page_round_trip(gateway, 4, OUT / "page.png")


def test_browser_page_mqtt5(gateway):
    _page_round_trip(gateway, 5, OUT / "page-v5.png")

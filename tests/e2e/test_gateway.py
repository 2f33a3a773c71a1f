"""The polygate binary itself (SPEC.md "Binary, command line"): -t, -V, -h, a port in
use, SIGHUP reopening the log file, SIGTERM exiting 0."""

import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import TARGET, free_port, polygate_bin
from helpers import TIMEOUT

pytestmark = pytest.mark.skipif(TARGET != "polygate", reason="polygate's command line")

OTHERS_OFF = ('websocket = { enabled = false; }; mqttsn = { enabled = false; }; '
              'coap = { enabled = false; }; stomp = { enabled = false; }; '
              'http = { enabled = false; };\n')


def conf(tmp_path, text, name="p.conf"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def run(*args):
    return subprocess.run([polygate_bin(), *args], capture_output=True, text=True,
                          timeout=TIMEOUT)


def wait_for(cond, what):
    deadline = time.monotonic() + TIMEOUT
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_check_config_ok_and_shipped_file():
    here = os.path.join(os.path.dirname(__file__), "..", "..")
    r = run("-t", "-c", os.path.join(here, "config", "polygate.conf"))
    assert r.returncode == 0, r.stderr


def test_check_config_error_names_file_and_line(tmp_path):
    path = conf(tmp_path, "broker = {\n  max_inflight = 32;\n  max_inflite = 3;\n};\n")
    r = run("-t", "-c", path)
    assert r.returncode == 1
    assert r.stderr.startswith("%s:3: " % path), r.stderr
    assert "max_inflite" in r.stderr


def test_version_and_help():
    r = run("-V")
    assert r.returncode == 0 and r.stdout.startswith("polygate ")
    r = run("-h")
    assert r.returncode == 0 and "-c FILE" in r.stdout
    assert run("-x").returncode != 0


def test_port_in_use_is_a_clear_error(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    path = conf(tmp_path, 'mqtt = { listeners = ( { bind = "127.0.0.1"; port = %d; } ); };\n'
                % port + OTHERS_OFF)
    r = run("-c", path)
    s.close()
    assert r.returncode == 1
    assert "127.0.0.1:%d" % port in r.stderr and "in use" in r.stderr, r.stderr


def test_sighup_reopens_log_and_sigterm_exits_0(tmp_path):
    log = tmp_path / "polygate.log"
    port = free_port()
    path = conf(tmp_path, 'log = { file = "%s"; level = "info"; };\n'
                'mqtt = { listeners = ( { bind = "127.0.0.1"; port = %d; } ); };\n'
                % (log, port) + OTHERS_OFF)
    proc = subprocess.Popen([polygate_bin(), "-c", path])
    try:
        wait_for(lambda: log.exists() and "started" in log.read_text(), "polygate started")
        rotated = tmp_path / "polygate.log.1"
        log.rename(rotated)
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: log.exists() and "reopened" in log.read_text(), "log reopened")
        subprocess.run(["mosquitto_pub", "-p", str(port), "-i", "after-hup", "-t", "x",
                        "-m", "y"], check=True, timeout=TIMEOUT)
        wait_for(lambda: "after-hup" in log.read_text(), "new log used")
        assert "after-hup" not in rotated.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=TIMEOUT) == 0

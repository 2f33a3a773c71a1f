"""`polygate passwd` and mosquitto's password files: the same file must work with both.

The broker does not read password files yet, so interop is checked through the file: a
file `polygate passwd` writes must let clients into a real mosquitto (/usr/sbin/mosquitto
with password_file and allow_anonymous false), and a file mosquitto_passwd wrote must be
edited without touching the lines `polygate passwd` was not asked to change.
"""

import os
import re
import shutil
import socket
import stat
import subprocess
import time

import pytest

from conftest import HOST, MOSQUITTO_BIN, TARGET, free_port, polygate_bin
from helpers import TIMEOUT

pytestmark = [
    pytest.mark.skipif(TARGET != "polygate", reason="polygate's command line"),
    pytest.mark.skipif(not (os.access(MOSQUITTO_BIN, os.X_OK) and shutil.which("mosquitto_passwd")
                            and shutil.which("mosquitto_pub")),
                       reason="needs mosquitto, mosquitto_passwd and mosquitto_pub"),
]

# user:$7$ITERATIONS$SALT(12 bytes)$HASH(64 bytes), as mosquitto_passwd 2.0 writes it.
LINE_7 = re.compile(r"^([^:\n]+):\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==\n$")


def passwd(*args, stdin=None):
    return subprocess.run([polygate_bin(), "passwd", *args], input=stdin, capture_output=True,
                          text=True, timeout=TIMEOUT * 4)


def mosquitto_passwd(*args):
    r = subprocess.run(["mosquitto_passwd", *args], capture_output=True, text=True,
                       timeout=TIMEOUT * 4)
    assert r.returncode == 0, r.stderr


def lines(path):
    return path.read_text().splitlines(keepends=True)


class Mosquitto:
    """A throwaway mosquitto that only lets in the users of one password file."""

    def __init__(self, tmp_path, pwfile):
        self.port = free_port()
        # mosquitto started as root drops to user `mosquitto`: keep root, and make the
        # file readable anyway in case it does drop.
        os.chmod(tmp_path, 0o755)
        os.chmod(pwfile, 0o644)
        conf = tmp_path / "mosquitto.conf"
        conf.write_text("per_listener_settings false\nallow_anonymous false\n"
                        "persistence false\nlog_dest stderr\npassword_file %s\n%s"
                        "listener %d %s\n" % (pwfile, "user root\n" if os.geteuid() == 0 else "",
                                              self.port, HOST))
        self.log = open(tmp_path / "mosquitto.log", "wb")
        self.proc = subprocess.Popen([MOSQUITTO_BIN, "-c", str(conf)], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + TIMEOUT * 4
        while True:
            assert self.proc.poll() is None, "mosquitto exited: %s" % self.log_text()
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "mosquitto did not start"
                time.sleep(0.02)

    def log_text(self):
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read().decode(errors="replace")

    def login(self, user, password):
        """True when mosquitto accepts the credentials (mosquitto_pub exits 0)."""
        r = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(self.port), "-u", user,
                            "-P", password, "-t", "pw/test", "-m", "x", "-q", "1"],
                           capture_output=True, text=True, timeout=TIMEOUT * 2)
        return r.returncode == 0

    def stop(self):
        if self.log.closed:
            return
        self.proc.terminate()
        self.proc.wait(timeout=TIMEOUT * 2)
        self.log.close()


@pytest.fixture
def mosquitto(tmp_path):
    started = []

    def start(pwfile):
        m = Mosquitto(tmp_path, pwfile)
        started.append(m)
        return m
    yield start
    for m in started:
        m.stop()


def test_created_file_is_accepted_by_mosquitto(tmp_path, mosquitto):
    f = tmp_path / "pw"
    r = passwd("-c", "-b", str(f), "alice", "pw")
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert [LINE_7.match(x).group(1) for x in lines(f)] == ["alice"]
    r = passwd("-b", str(f), "bob", "s3cret wörd")
    assert r.returncode == 0, r.stderr

    m = mosquitto(f)
    assert m.login("alice", "pw"), m.log_text()
    assert m.login("bob", "s3cret wörd"), m.log_text()
    assert not m.login("alice", "wrong")
    assert not m.login("alice", "pw2")
    assert not m.login("carol", "pw")


def test_create_replaces_an_existing_file(tmp_path):
    f = tmp_path / "pw"
    f.write_text("old:junk\n")
    r = passwd("-c", "-b", str(f), "alice", "pw")
    assert r.returncode == 0, r.stderr
    assert [LINE_7.match(x).group(1) for x in lines(f)] == ["alice"]


def test_mosquitto_file_updated_and_deleted(tmp_path, mosquitto):
    f = tmp_path / "pw"
    mosquitto_passwd("-c", "-b", str(f), "alice", "pw")
    mosquitto_passwd("-H", "sha512", "-b", str(f), "old6", "pw6")  # a $6$ line
    with open(f, "a") as out:
        out.write("# operators\n\n")
    original = f.read_bytes()

    r = passwd("-b", str(f), "bob", "pw2")
    assert r.returncode == 0, r.stderr
    after = f.read_bytes()
    assert after.startswith(original)  # every old line byte for byte, in order
    assert LINE_7.match(after[len(original):].decode()).group(1) == "bob"

    m = mosquitto(f)
    assert m.login("alice", "pw") and m.login("bob", "pw2") and m.login("old6", "pw6")
    assert not m.login("bob", "pw")
    m.stop()

    r = passwd("-D", str(f), "bob")
    assert r.returncode == 0, r.stderr
    assert f.read_bytes() == original


def test_update_replaces_the_line_in_place(tmp_path, mosquitto):
    f = tmp_path / "pw"
    mosquitto_passwd("-c", "-b", str(f), "first", "a")
    mosquitto_passwd("-b", str(f), "alice", "old")
    mosquitto_passwd("-b", str(f), "last", "z")
    before = lines(f)

    r = passwd("-b", str(f), "alice", "new")
    assert r.returncode == 0, r.stderr
    after = lines(f)
    assert len(after) == 3 and after[0] == before[0] and after[2] == before[2]
    assert after[1] != before[1] and LINE_7.match(after[1]).group(1) == "alice"

    m = mosquitto(f)
    assert m.login("alice", "new") and not m.login("alice", "old")
    assert m.login("first", "a") and m.login("last", "z")


def test_prompted_password_from_stdin(tmp_path, mosquitto):
    f = tmp_path / "pw"
    r = passwd("-c", str(f), "carol", stdin="pw3\npw3\n")
    assert r.returncode == 0, r.stderr
    assert "pw3" not in r.stdout + r.stderr
    r = passwd(str(f), "dave", stdin="one line\n")  # no confirmation line: accepted
    assert r.returncode == 0, r.stderr

    r = passwd(str(f), "erin", stdin="pw4\npw5\n")
    assert r.returncode == 1
    assert "do not match" in r.stderr
    r = passwd(str(f), "erin", stdin="")
    assert r.returncode == 1 and "no password" in r.stderr
    r = passwd(str(f), "erin", stdin="\n\n")
    assert r.returncode == 1 and "empty password" in r.stderr
    assert [LINE_7.match(x).group(1) for x in lines(f)] == ["carol", "dave"]

    m = mosquitto(f)
    assert m.login("carol", "pw3") and m.login("dave", "one line")
    assert not m.login("erin", "pw4")


def test_errors(tmp_path):
    f = tmp_path / "pw"
    r = passwd("-b", str(f), "alice", "pw")
    assert r.returncode == 1 and "No such file" in r.stderr
    assert not f.exists()

    f.write_text("# header\nalice\n")
    before = f.read_bytes()
    r = passwd("-b", str(f), "bob", "pw")
    assert r.returncode == 1
    assert "%s:2: missing ':'" % f in r.stderr
    assert f.read_bytes() == before

    mosquitto_passwd("-c", "-b", str(f), "alice", "pw")
    before = f.read_bytes()
    r = passwd("-D", str(f), "bob")
    assert r.returncode == 1 and "'bob' not found" in r.stderr
    for bad in ("a:b", " alice", "#x", ""):
        r = passwd("-b", str(f), bad, "pw")
        assert r.returncode == 1 and "invalid username" in r.stderr, bad
    assert passwd("-c", "-D", str(f), "alice").returncode == 1
    assert passwd("-b", "-D", str(f), "alice").returncode == 1
    assert passwd("-b", str(f), "alice").returncode == 1  # PASSWORD missing
    assert passwd("-q", str(f), "alice").returncode == 1
    assert f.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["pw"]  # no temp files left behind

    r = passwd("-h")
    assert r.returncode == 0 and "FILE USER" in r.stdout


@pytest.mark.broker_config(allow_anonymous=False, auth_failure_delay_ms=800)
def test_repeated_failures_slow_down_refusals(clients):
    """After auth.failure_threshold (3) refusals from one address, the next refusal is
    held for failure_delay_ms, while other clients are served meanwhile."""
    import rawmqtt
    from helpers import V5

    def refused():
        c = clients.raw(V5)
        start = time.monotonic()
        ack = c.connect(clients.client_id("guess"), timeout=10)
        assert ack.reason == 0x87
        return time.monotonic() - start

    quick = [refused() for _ in range(3)]
    assert max(quick) < 0.5, quick
    c = clients.raw(V5)  # the 4th attempt is held...
    c.send(rawmqtt.connect_packet(clients.client_id("guess"), V5))
    start = time.monotonic()
    other = clients.raw(V5)  # ...and meanwhile the broker serves others at once
    assert other.connect(clients.client_id("other"), username="someone").reason == 0
    assert time.monotonic() - start < 0.5
    p = c.recv_packet(timeout=10)
    held = time.monotonic() - start
    assert p.type == rawmqtt.CONNACK and p.reason == 0x87
    assert held >= 0.7, held

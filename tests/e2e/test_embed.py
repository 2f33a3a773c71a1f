"""examples/embed: polygate linked as a library. The example starts a broker with one
MQTT listener, logs every publish through a hook, and publishes inline (no network
client); a real mosquitto_sub must receive those messages, and a message published
over the network must show up in the hook's log."""

import os
import queue
import signal
import subprocess
import threading

import pytest

from conftest import TARGET
from helpers import TIMEOUT

pytestmark = pytest.mark.skipif(TARGET != "polygate", reason="polygate's own example")


def example(name):
    d = os.environ.get("POLYGATE_EXAMPLES") or os.path.join(
        os.path.dirname(__file__), "..", "..", "build", "examples")
    return os.path.join(d, name)


def test_embed_example_hook_and_inline_publish():
    proc = subprocess.Popen([example("embed"), "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in proc.stdout], daemon=True).start()
    try:
        first = lines.get(timeout=TIMEOUT)
        assert first.startswith("port "), first
        port = first.split()[1]
        sub = subprocess.run(["mosquitto_sub", "-p", port, "-t", "embed/#", "-v", "-C", "2",
                              "-W", str(int(TIMEOUT))], capture_output=True, text=True)
        got = sub.stdout.splitlines()
        assert len(got) == 2 and all(l.startswith("embed/reading reading ") for l in got), got
        subprocess.run(["mosquitto_pub", "-p", port, "-i", "netclient", "-t", "from/net",
                        "-m", "hello"], check=True, timeout=TIMEOUT)
        while True:  # the hook sees the network publish too
            line = lines.get(timeout=TIMEOUT)
            if "'from/net'" in line:
                assert "by netclient" in line, line
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=TIMEOUT)
    assert rc == 0, proc.stderr.read()


def test_embed_example_stops_after_count():
    out = subprocess.run([example("embed"), "0", "3"], capture_output=True, text=True,
                         timeout=TIMEOUT * 2)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("hook: published 'embed/reading'") == 3
    assert "published 3 messages inline" in out.stdout

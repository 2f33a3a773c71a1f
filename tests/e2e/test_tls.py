"""MQTT over TLS: a listener with tls = { cert_file; key_file; } (self-signed cert made by
the harness with the openssl CLI). Clients verifying against it as CA work; plain TCP
to the TLS port and TLS to the plain port do not."""

import socket
import ssl
import subprocess
import time

import pytest

import rawmqtt as r
from helpers import TIMEOUT, V5, VERSION_IDS, VERSIONS, MosquittoSub, mosquitto_pub

pytestmark = pytest.mark.broker_config(tls=True)


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_mosquitto_clients_over_tls(broker, topic, version):
    sub = MosquittoSub(broker, ["-t", topic, "-q", "1"], count=1, tls=True, version=version)
    try:
        res = mosquitto_pub(broker, ["-t", topic, "-q", "1", "-m", "over-tls"], tls=True,
                            version=version)
        assert res.returncode == 0, res.stdout
        rc, out = sub.finish()
        assert rc == 0 and b"over-tls" in out, out
    finally:
        sub.kill()


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_tls_and_plain_listeners_share_topics(clients, topic, version):
    tls_sub = clients.paho(version, tls=True)
    tls_sub.subscribe(topic, 1)
    plain_sub = clients.paho(version)
    plain_sub.subscribe(topic, 1)
    plain_pub = clients.paho(version)
    plain_pub.publish(topic, b"from-plain", qos=1)
    assert tls_sub.get().payload == b"from-plain"
    assert plain_sub.get().payload == b"from-plain"
    tls_pub = clients.raw(version, tls=True)
    assert tls_pub.connect(clients.client_id("t")).reason == 0
    tls_pub.publish(topic, b"from-tls", qos=2)
    assert plain_sub.get().payload == b"from-tls"
    assert tls_sub.get().payload == b"from-tls"


def test_server_presents_configured_certificate(clients, broker):
    c = clients.raw(V5, tls=True)
    der = c.sock.getpeercert(binary_form=True)
    with open(broker.cafile) as f:
        pem = f.read()
    assert der == ssl.PEM_cert_to_DER_cert(pem)
    assert c.connect(clients.client_id("c")).reason == 0


def test_mosquitto_pub_rejects_unknown_ca(broker, tmp_path):
    """The client's verification is real: a different CA makes the connection fail."""
    crt, key = tmp_path / "other.crt", tmp_path / "other.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(crt), "-days", "1", "-subj", "/CN=localhost"],
                   check=True, capture_output=True, timeout=30)
    res = subprocess.run(["mosquitto_pub", "-h", "localhost", "-p", str(broker.tls_port),
                          "--cafile", str(crt), "-t", "e2e/x", "-m", "x"],
                         capture_output=True, timeout=TIMEOUT + 5)
    assert res.returncode != 0


def test_plain_tcp_to_tls_port_fails(broker):
    s = socket.create_connection((broker.host, broker.tls_port), timeout=TIMEOUT)
    try:
        s.sendall(r.connect_packet("plain-on-tls", 4))
        data = b""
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(4096)
            except socket.timeout:
                break
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        assert not data.startswith(b"\x20"), "a CONNACK came back over plain TCP: %r" % data
    finally:
        s.close()


def test_tls_to_plain_port_fails(broker):
    ctx = r.tls_context(broker.cafile)
    s = socket.create_connection((broker.host, broker.port), timeout=TIMEOUT)
    try:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            ctx.wrap_socket(s, server_hostname="localhost")
    finally:
        s.close()

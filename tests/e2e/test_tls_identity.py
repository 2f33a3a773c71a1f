"""TLS client certificates (issue 3): require_certificate with ca_file refuses clients
without a certificate from that CA, and use_identity_as_username makes the
certificate's CN the username the ACL sees. Certificates are made here with the
openssl CLI."""

import signal
import ssl
import subprocess
import time

import pytest

import rawmqtt as r
from conftest import ARTIFACTS, HOST, TARGET, free_port, polygate_bin
from helpers import TIMEOUT, V5

pytestmark = pytest.mark.skipif(TARGET != "polygate", reason="polygate's config keys")

D = ARTIFACTS / "tls-identity"


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


def make_ca(name):
    key, crt = D / (name + ".key"), D / (name + ".crt")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(crt), "-days", "2", "-subj", "/CN=" + name)
    return key, crt


def make_cert(name, cn, ca, extfile=None):
    key, csr, crt = D / (name + ".key"), D / (name + ".csr"), D / (name + ".crt")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(csr), "-subj", "/CN=" + cn)
    extra = ["-extfile", str(extfile)] if extfile else []
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[1]), "-CAkey", str(ca[0]),
            "-CAcreateserial", "-out", str(crt), "-days", "2", *extra)
    return key, crt


@pytest.fixture(scope="module")
def gw():
    D.mkdir(parents=True, exist_ok=True)
    ca = make_ca("ca")
    stranger = make_ca("stranger")
    san = D / "san.ext"
    san.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    server = make_cert("server", "localhost", ca, san)
    certs = {"alice": make_cert("alice", "alice", ca),
             "mallory": make_cert("mallory", "alice", stranger)}
    (D / "acl").write_text("user alice\ntopic readwrite alice/#\n")
    (D / "passwd").write_text("")  # no passwords: the certificate is the credential
    port = free_port()
    conf = D / "polygate.conf"
    conf.write_text(
        'auth = { allow_anonymous = false; acl_file = "%s"; };\n'
        'mqtt = { listeners = ( { bind = "%s"; port = %d; tls = { cert_file = "%s";\n'
        '  key_file = "%s"; ca_file = "%s"; require_certificate = true;\n'
        '  use_identity_as_username = true; }; } ); };\n'
        "websocket = { enabled = false; }; mqttsn = { enabled = false; };\n"
        "coap = { enabled = false; }; stomp = { enabled = false; }; http = { enabled = false; };\n"
        % (D / "acl", HOST, port, server[1], server[0], ca[1]))
    log = open(D / "broker.log", "w")
    proc = subprocess.Popen([polygate_bin(), "-c", str(conf)], stderr=log, stdout=log)
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            import socket
            socket.create_connection((HOST, port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "polygate did not start"
            time.sleep(0.02)
    yield {"port": port, "ca": ca, "certs": certs}
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=TIMEOUT) == 0


def tls_conn(gw, who=None):
    ctx = ssl.create_default_context(cafile=str(gw["ca"][1]))
    if who:
        key, crt = gw["certs"][who]
        ctx.load_cert_chain(str(crt), str(key))
    return r.Conn(HOST, gw["port"], V5, timeout=TIMEOUT, ssl_context=ctx,
                  server_hostname="localhost")


def test_certificate_cn_is_the_username_for_the_acl(gw):
    c = tls_conn(gw, "alice")
    assert c.connect("cert-client", username="ignored", password=b"ignored").reason == 0
    assert c.publish("alice/t", b"mine", qos=1).reason < 0x80
    assert c.publish("bob/t", b"not mine", qos=1).reason == 0x87
    assert c.subscribe([("alice/#", 0), ("bob/#", 0)]).codes == [0, 0x87]


def test_mosquitto_clients_with_a_certificate(gw):
    key, crt = gw["certs"]["alice"]
    out = subprocess.run(["mosquitto_pub", "-h", "localhost", "-p", str(gw["port"]),
                          "--cafile", str(gw["ca"][1]), "--cert", str(crt), "--key", str(key),
                          "-t", "alice/x", "-m", "hi", "-q", "1"],
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("who", [None, "mallory"], ids=["no-cert", "untrusted-ca"])
def test_without_a_trusted_certificate_the_handshake_fails(gw, who):
    with pytest.raises((ssl.SSLError, OSError, r.Closed)):
        c = tls_conn(gw, who)
        c.connect("nobody")

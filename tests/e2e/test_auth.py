"""Authentication and access control (issue 3, SPEC "Access control"): a password file
made by mosquitto_passwd, a mosquitto ACL file, allow_anonymous globally and per
protocol group, the reason codes of refusals, and SIGHUP reloading the files."""

import signal
import subprocess
import time

import pytest

import rawmqtt as r
from conftest import ARTIFACTS
from helpers import V5, V311, VERSIONS, VERSION_IDS, TIMEOUT

AUTH = ARTIFACTS / "auth"
AUTH.mkdir(parents=True, exist_ok=True)
AUTH.chmod(0o755)
PASSWD = str(AUTH / "passwd")
ACL = str(AUTH / "acl")
RELOAD_ACL = str(AUTH / "reload.acl")

subprocess.run(["mosquitto_passwd", "-c", "-b", PASSWD, "alice", "secret"], check=True)
subprocess.run(["mosquitto_passwd", "-b", PASSWD, "bob", "hunter2"], check=True)
with open(ACL, "w") as f:
    f.write("# anonymous clients\n"
            "topic read public/#\n"
            "\n"
            "user alice\n"
            "topic readwrite alice/#\n"
            "topic read bob/#\n"
            "\n"
            "user bob\n"
            "topic readwrite bob/#\n"
            "topic read alice/#\n"
            "topic deny alice/secret\n")
with open(RELOAD_ACL, "w") as f:
    f.write("user alice\ntopic readwrite before/#\n")
for p in (PASSWD, ACL, RELOAD_ACL):
    (AUTH / p).chmod(0o644)

ACCEPTED = 0
V3_BAD_CREDENTIALS, V3_NOT_AUTHORIZED = 4, 5


def login(clients, version, user=None, password=None, cid=None):
    c = clients.raw(version)
    ack = c.connect(cid or clients.client_id(user or "anon"), username=user, password=password)
    return c, ack


def drain(c, quiet=0.3):
    out = []
    while True:
        try:
            out.append(c.recv_packet(timeout=quiet))
        except (TimeoutError, r.Closed):
            return out


@pytest.mark.polygate_only  # mosquitto 2.0.11 answers a wrong password with 0x87 / 5
@pytest.mark.broker_config(allow_anonymous=False, password_file=PASSWD)
@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_password_file_made_by_mosquitto_passwd(clients, version):
    _, ack = login(clients, version, "alice", b"secret")
    assert ack.reason == ACCEPTED
    _, ack = login(clients, version, "alice", b"wrong")
    assert ack.reason == (0x86 if version == V5 else V3_BAD_CREDENTIALS)
    _, ack = login(clients, version, "mallory", b"secret")
    assert ack.reason == (0x86 if version == V5 else V3_BAD_CREDENTIALS)
    _, ack = login(clients, version)  # anonymous, refused
    assert ack.reason == (0x87 if version == V5 else V3_NOT_AUTHORIZED)


@pytest.mark.polygate_only
@pytest.mark.broker_config(allow_anonymous=False, mqtt_allow_anonymous=True)
def test_group_allows_anonymous_when_global_does_not(clients):
    _, ack = login(clients, V5)
    assert ack.reason == ACCEPTED


@pytest.mark.polygate_only
@pytest.mark.broker_config(allow_anonymous=True, mqtt_allow_anonymous=False)
def test_group_refuses_anonymous_when_global_allows(clients):
    _, ack = login(clients, V311)
    assert ack.reason == V3_NOT_AUTHORIZED


@pytest.mark.broker_config(password_file=PASSWD, acl_file=ACL)
@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_acl_publish_denied(clients, uniq, version):
    bob, _ = login(clients, V5, "bob", b"hunter2")
    bob.subscribe([("bob/%s/#" % uniq, 1)])
    alice, _ = login(clients, version, "alice", b"secret")
    ack = alice.publish("bob/%s/x" % uniq, b"forged", qos=1)
    assert ack.reason == (0x87 if version == V5 else 0), "v3: acknowledged and dropped"
    alice.publish("alice/%s/x" % uniq, b"fine", qos=1)
    assert [p for p in drain(bob) if p.type == r.PUBLISH] == [], "a denied publish is dropped"


@pytest.mark.polygate_only  # mosquitto 2.0.11 does not check SUBSCRIBE against the ACL
@pytest.mark.broker_config(password_file=PASSWD, acl_file=ACL)
@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_acl_subscribe_denied(clients, version):
    alice, _ = login(clients, version, "alice", b"secret")
    ack = alice.subscribe([("bob/#", 1), ("carol/#", 1)])
    assert ack.codes == [1, 0x87 if version == V5 else 0x80]


@pytest.mark.broker_config(password_file=PASSWD, acl_file=ACL)
def test_acl_checked_before_each_delivery(clients, uniq):
    bob, _ = login(clients, V5, "bob", b"hunter2")
    assert bob.subscribe([("alice/#", 0)]).codes == [0]
    alice, _ = login(clients, V5, "alice", b"secret")
    alice.publish("alice/secret", b"s", qos=1)
    alice.publish("alice/%s" % uniq, b"ok", qos=1)
    got = [p for p in drain(bob) if p.type == r.PUBLISH]
    assert [(p.topic, p.payload) for p in got] == [("alice/%s" % uniq, b"ok")]


@pytest.mark.polygate_only  # mosquitto 2.0.11 does not check SUBSCRIBE against the ACL
@pytest.mark.broker_config(password_file=PASSWD, acl_file=ACL)
def test_anonymous_acl_section(clients, uniq):
    anon, _ = login(clients, V5)
    assert anon.subscribe([("public/#", 0), ("alice/#", 0)]).codes == [0, 0x87]
    assert anon.publish("public/%s" % uniq, b"x", qos=1).reason == 0x87


@pytest.mark.polygate_only
@pytest.mark.broker_config(password_file=PASSWD, acl_file=RELOAD_ACL)
def test_sighup_reloads_acl_and_keeps_old_rules_on_error(broker, clients, uniq):
    alice, _ = login(clients, V5, "alice", b"secret")
    assert alice.publish("after/%s" % uniq, b"x", qos=1).reason == 0x87
    with open(RELOAD_ACL, "w") as f:
        f.write("user alice\ntopic readwrite after/#\n")
    broker.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + TIMEOUT
    while alice.publish("after/%s" % uniq, b"x", qos=1).reason >= 0x80:
        assert time.monotonic() < deadline, "SIGHUP did not reload the ACL"
        time.sleep(0.05)
    with open(RELOAD_ACL, "w") as f:
        f.write("user alice\nbogus line\n")
    broker.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + TIMEOUT
    while "reload.acl:2:" not in broker.log_path.read_text():
        assert time.monotonic() < deadline, "the bad file's error was not logged"
        time.sleep(0.05)
    assert alice.publish("after/%s" % uniq, b"x", qos=1).reason < 0x80, "old rules kept"
    assert not alice.is_closed(), "reloading drops no client"

"""MQTT 5 features: CONNACK properties, assigned client id, topic aliases both ways,
subscription identifiers, no-local, retain-as-published, retain handling, shared
subscriptions, message expiry, maximum packet size, receive maximum, user properties
and the other application properties."""

import time

import pytest

import rawmqtt as r
from helpers import (TIMEOUT, V5, V311, VERSION_IDS, VERSIONS, assert_broker_serves,
                     expect_closed)


# ------------------------------------------------------------------ CONNACK


def test_connack_properties(clients, broker):
    c = clients.raw(V5)
    ack = c.connect(clients.client_id("k"))
    assert ack.reason == 0, ack
    p = ack.props
    assert p.get("receive_maximum", 65535) == broker.cfg["max_inflight"], p
    assert p.get("topic_alias_maximum", 0) == broker.cfg["max_topic_alias"], p
    assert p.get("retain_available", 1) == 1, p
    assert p.get("maximum_qos", 2) == 2, p
    assert p.get("maximum_packet_size") == broker.cfg["max_packet_size"], p
    for flag in ("wildcard_subscription_available", "subscription_identifier_available",
                 "shared_subscription_available"):
        assert p.get(flag, 1) == 1, (flag, p)
    assert "assigned_client_identifier" not in p, "the client gave its own id"


def test_v5_empty_client_id_gets_assigned_one(clients, topic):
    c = clients.raw(V5)
    ack = c.connect("", clean=True)
    assert ack.reason == 0
    cid = ack.props.get("assigned_client_identifier")
    assert cid, "CONNACK must carry the Assigned Client Identifier: %r" % ack
    # the assigned id is a working identity
    c.subscribe([(topic, 1)])
    c.publish(topic, b"me", qos=1)
    assert c.wait_for(r.PUBLISH).payload == b"me"
    other = clients.raw(V5)
    ack2 = other.connect("", clean=True)
    assert ack2.props.get("assigned_client_identifier") not in (None, cid), "ids must be unique"


@pytest.mark.parametrize("clean,expect", [(False, r.CONNACK_V3_IDENTIFIER_REJECTED),
                                          (True, r.CONNACK_V3_ACCEPTED)], ids=["clean0", "clean1"])
def test_v311_empty_client_id(clients, clean, expect):
    c = clients.raw(V311)
    ack = c.connect("", clean=clean)
    assert ack.reason == expect, ack
    if expect:
        assert expect_closed(c) == []
        assert not ack.session_present
    else:
        assert c.ping().type == r.PINGRESP


@pytest.mark.broker_config(max_packet_size=1024)
@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_packet_over_broker_max_packet_size_disconnects(clients, topic, version):
    sub = clients.paho(V5)
    sub.subscribe(topic, 1)
    c = clients.raw(version)
    ack = c.connect(clients.client_id("b"))
    if version == V5:
        assert ack.props.get("maximum_packet_size") == 1024
    c.publish(topic, b"s" * 900, qos=1)  # packet < 1024 bytes: fine
    assert sub.get().payload == b"s" * 900
    c.send(r.publish_packet(topic, b"b" * 2000, qos=1, pid=9, version=version))
    pkts = expect_closed(c)
    if version == V5:
        # MQTT 5 4.13 / 3.1.2.11.4 (server side): DISCONNECT 0x95 Packet too large;
        # mosquitto sends it too, so this is checked on both targets
        assert [(p.type, p.reason) for p in pkts] == [(r.DISCONNECT, r.RC_PACKET_TOO_LARGE)], pkts
    else:
        assert pkts == []
    sub.publish(topic, b"sentinel", qos=1)
    assert sub.get().payload == b"sentinel", "the oversized message must not be delivered"
    assert_broker_serves(clients.broker, version)


# ------------------------------------------------------------------ topic aliases


def test_topic_alias_client_to_server(clients, topic):
    sub = clients.paho(V5)
    sub.subscribe(topic + "/#", 1)
    c = clients.raw(V5)
    ack = c.connect(clients.client_id("a"))
    assert ack.props.get("topic_alias_maximum", 0) >= 1
    c.publish(topic + "/one", b"1", qos=1, props={"topic_alias": 1})
    c.publish("", b"2", qos=1, props={"topic_alias": 1})
    c.publish(topic + "/two", b"3", qos=1, props={"topic_alias": 1})  # re-map alias 1
    c.publish("", b"4", qos=0, props={"topic_alias": 1})
    got = [(m.topic, m.payload) for m in sub.get_n(4)]
    assert got == [(topic + "/one", b"1"), (topic + "/one", b"2"),
                   (topic + "/two", b"3"), (topic + "/two", b"4")]
    assert [m.topic for m in sub.drain(0.05)] == []


@pytest.mark.broker_config(max_topic_alias=2)
@pytest.mark.parametrize("props,topic_name,codes", [
    pytest.param({"topic_alias": 3}, "t", {r.RC_TOPIC_ALIAS_INVALID}, id="above-maximum"),
    pytest.param({"topic_alias": 0}, "t", {r.RC_TOPIC_ALIAS_INVALID, r.RC_MALFORMED, r.RC_PROTOCOL_ERROR}, id="zero"),
    pytest.param({"topic_alias": 2}, "", {r.RC_PROTOCOL_ERROR, r.RC_TOPIC_ALIAS_INVALID}, id="unknown-alias"),
    pytest.param(None, "", {r.RC_PROTOCOL_ERROR, r.RC_TOPIC_NAME_INVALID}, id="empty-topic-no-alias"),
])
def test_topic_alias_invalid(clients, props, topic_name, codes):
    c = clients.raw(V5)
    ack = c.connect(clients.client_id("a"))
    assert ack.props.get("topic_alias_maximum") == 2
    c.send(r.publish_packet(topic_name, b"x", qos=1, pid=1, props=props, version=V5))
    pkts = expect_closed(c)
    assert all(p.type == r.DISCONNECT and p.reason in codes for p in pkts), pkts
    assert_broker_serves(clients.broker, V5)


def _resolve_aliases(conn, n, tam):
    """Reads n PUBLISHes, resolving server-assigned topic aliases like a client must."""
    aliases, out = {}, []
    for _ in range(n):
        p = conn.wait_for(r.PUBLISH)
        a = p.props.get("topic_alias")
        if a is not None:
            assert 1 <= a <= tam, "alias %d outside 1..%d (MQTT-3.3.2-9)" % (a, tam)
            if p.topic:
                aliases[a] = p.topic
            else:
                assert a in aliases, "alias %d used before it was set" % a
        else:
            assert p.topic, "empty topic without an alias"
        out.append((p.topic, a, aliases.get(a, p.topic) if a else p.topic, p.payload))
        conn.ack(p)
    return out


def test_no_outbound_alias_when_client_allows_none(clients, topic):
    c = clients.raw(V5)
    c.connect(clients.client_id("s"))  # no Topic Alias Maximum: 0
    c.subscribe([(topic, 1)])
    pub = clients.paho(V5)
    for i in range(3):
        pub.publish(topic, b"%d" % i, qos=1)
    for _ in range(3):
        p = c.wait_for(r.PUBLISH)
        assert p.topic == topic and "topic_alias" not in p.props, p


def test_outbound_aliases_stay_within_client_maximum(clients, topic):
    """Whatever the server does with aliases, they are valid and resolve to the topics."""
    c = clients.raw(V5)
    c.connect(clients.client_id("s"), props={"topic_alias_maximum": 2})
    c.subscribe([(topic + "/#", 1)])
    pub = clients.paho(V5)
    expected = []
    for rnd in range(2):
        for t in ("a", "b", "c", "a"):
            pub.publish(topic + "/" + t, t.encode(), qos=1)
            expected.append(topic + "/" + t)
    got = _resolve_aliases(c, len(expected), 2)
    assert [g[2] for g in got] == expected
    assert [g[3] for g in got] == [e[-1:].encode() for e in expected]


@pytest.mark.polygate_only
def test_server_assigns_outbound_topic_alias(clients, topic):
    """A client that allows topic aliases gets the second PUBLISH to a topic with the alias
    and an empty topic name (mosquitto never assigns aliases)."""
    c = clients.raw(V5)
    c.connect(clients.client_id("s"), props={"topic_alias_maximum": 5})
    c.subscribe([(topic, 1)])
    pub = clients.paho(V5)
    pub.publish(topic, b"first", qos=1)
    pub.publish(topic, b"second", qos=1)
    p1 = c.wait_for(r.PUBLISH)
    c.ack(p1)
    p2 = c.wait_for(r.PUBLISH)
    c.ack(p2)
    assert p1.topic == topic and 1 <= p1.props.get("topic_alias", 0) <= 5, p1
    assert p2.topic == "" and p2.props.get("topic_alias") == p1.props["topic_alias"], p2
    assert p2.payload == b"second"


# ------------------------------------------------------------------ subscription options


def test_subscription_identifier(clients, topic):
    sub = clients.paho(V5)
    sub.subscribe(topic + "/with", 1, props={"subscription_identifier": 7})
    sub.subscribe(topic + "/without", 1)
    pub = clients.paho(V5)
    pub.publish(topic + "/with", b"a", qos=1)
    m = sub.get()
    assert m.properties.SubscriptionIdentifier == [7]
    pub.publish(topic + "/without", b"b", qos=1)
    m = sub.get()
    assert getattr(m.properties, "SubscriptionIdentifier", None) is None
    # re-subscribing replaces the identifier
    sub.subscribe(topic + "/with", 1, props={"subscription_identifier": 268435455})
    pub.publish(topic + "/with", b"c", qos=1)
    assert sub.get().properties.SubscriptionIdentifier == [268435455]


def _overlap(clients, topic):
    sub = clients.paho(V5)
    sub.subscribe(topic + "/#", 1, props={"subscription_identifier": 1})
    sub.subscribe(topic + "/x", 1, props={"subscription_identifier": 2})
    pub = clients.paho(V5)
    pub.publish(topic + "/x", b"both", qos=1)
    pub.publish(topic + "/y", b"sentinel", qos=1)
    return sub, sub.drain_until(b"sentinel")


def test_overlapping_subscriptions_carry_both_identifiers(clients, topic):
    """Either one PUBLISH with both ids or one PUBLISH per subscription (MQTT-3.3.4-3..5)."""
    sub, msgs = _overlap(clients, topic)
    ids = sorted(i for m in msgs for i in m.properties.SubscriptionIdentifier)
    assert ids == [1, 2], [(m.payload, m.properties.SubscriptionIdentifier) for m in msgs]
    assert all(m.payload == b"both" for m in msgs)
    assert len(msgs) in (1, 2)


@pytest.mark.polygate_only
def test_overlapping_subscriptions_one_publish_with_both_identifiers(clients, topic):
    """polygate delivers once with both identifiers (mosquitto sends one copy per
    subscription)."""
    sub, msgs = _overlap(clients, topic)
    assert len(msgs) == 1, msgs
    assert sorted(msgs[0].properties.SubscriptionIdentifier) == [1, 2]


def test_no_local(clients, topic):
    me = clients.paho(V5)
    me.subscribe(topic, 1, no_local=True)
    me.subscribe(topic + "/mine", 1)  # no_local off: own messages come back
    me.publish(topic, b"own", qos=1)
    me.publish(topic + "/mine", b"own-echo", qos=1)
    other = clients.paho(V5)
    other.publish(topic, b"other", qos=1)
    got = [(m.topic, m.payload) for m in me.get_n(2)]
    assert got == [(topic + "/mine", b"own-echo"), (topic, b"other")]


@pytest.mark.parametrize("rap", [False, True], ids=["rap0", "rap1"])
def test_retain_as_published(clients, topic, rap):
    sub = clients.paho(V5)
    sub.subscribe(topic, 1, rap=rap)
    pub = clients.paho(V5)
    pub.publish(topic, b"retained", qos=1, retain=True)
    pub.publish(topic, b"plain", qos=1)
    m1, m2 = sub.get_n(2)
    assert (m1.payload, m1.retain) == (b"retained", rap)
    assert (m2.payload, m2.retain) == (b"plain", False)
    pub.publish(topic, b"", qos=1, retain=True)  # clean up


def _retained_on_subscribe(sub, pub, topic, rh):
    """Subscribes with retain handling rh; returns the retained messages it brought."""
    sub.subscribe(topic, 1, retain_handling=rh)
    pub.publish(topic, b"live", qos=1)
    return [m.payload for m in sub.drain_until(b"live")]


def test_retain_handling(clients, topic):
    pub = clients.paho(V5)
    pub.publish(topic, b"kept", qos=1, retain=True)

    s0 = clients.paho(V5)
    assert _retained_on_subscribe(s0, pub, topic, 0) == [b"kept"]
    assert _retained_on_subscribe(s0, pub, topic, 0) == [b"kept"], "0: at every subscribe"

    s1 = clients.paho(V5)
    assert _retained_on_subscribe(s1, pub, topic, 1) == [b"kept"], "1: new subscription"
    assert _retained_on_subscribe(s1, pub, topic, 1) == [], "1: not when it existed"

    s2 = clients.paho(V5)
    assert _retained_on_subscribe(s2, pub, topic, 2) == [], "2: never at subscribe"
    s2.expect_none(0.3)
    pub.publish(topic, b"", qos=1, retain=True)


# ------------------------------------------------------------------ shared subscriptions


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_shared_subscription_splits_messages(clients, topic, version):
    members = [clients.paho(version) for _ in range(2)]
    for m in members:
        assert m.subscribe("$share/g%s/%s" % (clients.uniq, topic), 1) == 1
    plain = clients.paho(version)
    plain.subscribe(topic, 1)
    pub = clients.paho(version)
    n = 20
    sent = [b"%02d" % i for i in range(n)]
    for p in sent:
        pub.publish(topic, p, qos=1)
    assert sorted(m.payload for m in plain.get_n(n)) == sent, "a normal subscriber gets all"
    got = [[], []]
    deadline = time.monotonic() + TIMEOUT
    while len(got[0]) + len(got[1]) < n and time.monotonic() < deadline:
        for i, m in enumerate(members):
            for x in m.drain(0.02):
                assert x.topic == topic, "delivered with the real topic, not the $share filter"
                got[i].append(x.payload)
    for i, m in enumerate(members):
        got[i] += [x.payload for x in m.drain(0.2)]
    assert got[0] and got[1], "each member gets some: %r" % got
    assert sorted(got[0] + got[1]) == sent, "every message exactly once across the group"


# ------------------------------------------------------------------ message expiry


def test_message_expiry(clients, topic):
    cid = clients.client_id("x")
    c = clients.raw(V5)
    c.connect(cid, clean=False, props={"session_expiry_interval": 60})
    c.subscribe([(topic, 1)])
    c.disconnect()
    pub = clients.paho(V5)
    pub.publish(topic, b"short", qos=1, props={"message_expiry_interval": 1})
    pub.publish(topic, b"long", qos=1, props={"message_expiry_interval": 30})
    pub.publish(topic, b"forever", qos=1)
    time.sleep(2.0)
    c = clients.raw(V5)
    assert c.connect(cid, clean=False, props={"session_expiry_interval": 0}).session_present
    got = []
    for _ in range(2):
        p = c.wait_for(r.PUBLISH)
        c.ack(p)
        got.append(p)
    assert [p.payload for p in got] == [b"long", b"forever"], "expired message delivered"
    left = got[0].props.get("message_expiry_interval")
    assert left is not None and 1 <= left <= 28, "expiry must count down while queued: %r" % left
    assert "message_expiry_interval" not in got[1].props
    with pytest.raises(TimeoutError):
        c.wait_for(r.PUBLISH, timeout=0.3)


def test_message_expiry_on_live_delivery(clients, topic):
    sub = clients.paho(V5)
    sub.subscribe(topic, 1)
    pub = clients.paho(V5)
    pub.publish(topic, b"e", qos=1, props={"message_expiry_interval": 100})
    m = sub.get()
    assert 99 <= m.properties.MessageExpiryInterval <= 100


# ------------------------------------------------------------------ limits from the client


def test_client_maximum_packet_size(clients, topic):
    """A client's Maximum Packet Size: larger messages are not sent to it (MQTT-3.1.2-24)."""
    small = clients.raw(V5)
    small.connect(clients.client_id("m"), props={"maximum_packet_size": 256})
    small.subscribe([(topic, 1)])
    pub = clients.paho(V5)
    pub.publish(topic, b"a" * 100, qos=1)
    pub.publish(topic, b"B" * 1000, qos=1)
    pub.publish(topic, b"c" * 100, qos=1)
    got = []
    for _ in range(2):
        p = small.wait_for(r.PUBLISH)
        small.ack(p)
        got.append(p.payload)
    assert got == [b"a" * 100, b"c" * 100]
    with pytest.raises(TimeoutError):
        small.wait_for(r.PUBLISH, timeout=0.3)
    assert small.ping().type == r.PINGRESP, "the client stays connected"


def test_application_properties_passed_through(clients, topic):
    sub = clients.paho(V5)
    sub.subscribe(topic, 1)
    pub = clients.paho(V5)
    pub.publish(topic, "héllo".encode(), qos=1, props={
        "payload_format_indicator": 1, "content_type": "text/plain; charset=utf-8",
        "response_topic": topic + "/reply", "correlation_data": b"\x00\xffid",
        "user_property": [("a", "1"), ("a", "2"), ("b", "ü")]})
    m = sub.get()
    p = m.properties
    assert m.payload == "héllo".encode()
    assert p.PayloadFormatIndicator == 1
    assert p.ContentType == "text/plain; charset=utf-8"
    assert p.ResponseTopic == topic + "/reply"
    assert p.CorrelationData == b"\x00\xffid"
    assert p.UserProperty == [("a", "1"), ("a", "2"), ("b", "ü")], "order and duplicates kept"

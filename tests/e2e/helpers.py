"""Client-side helpers shared by the e2e tests: a synchronous wrapper over paho-mqtt,
the raw client factory, mosquitto_sub/mosquitto_pub runners and small assertions."""

import os
import queue
import subprocess
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCodes
from paho.mqtt.subscribeoptions import SubscribeOptions

import rawmqtt
import rawws

SLOW = float(os.environ.get("E2E_TIME_FACTOR", "1"))
TIMEOUT = 5.0 * SLOW  # how long to wait for something that must happen
QUIET = 0.5  # how long to watch for something that must NOT happen

V311, V5 = 4, 5
VERSIONS = [V311, V5]
VERSION_IDS = ["v311", "v5"]

# The names paho uses for the properties (rawmqtt's snake_case -> paho's CamelCase).
PAHO_PROP = {
    "payload_format_indicator": "PayloadFormatIndicator",
    "message_expiry_interval": "MessageExpiryInterval",
    "content_type": "ContentType",
    "response_topic": "ResponseTopic",
    "correlation_data": "CorrelationData",
    "subscription_identifier": "SubscriptionIdentifier",
    "session_expiry_interval": "SessionExpiryInterval",
    "will_delay_interval": "WillDelayInterval",
    "receive_maximum": "ReceiveMaximum",
    "topic_alias_maximum": "TopicAliasMaximum",
    "topic_alias": "TopicAlias",
    "user_property": "UserProperty",
    "maximum_packet_size": "MaximumPacketSize",
}


def paho_props(ptype, props):
    if not props:
        return None
    p = Properties(ptype)
    for k, v in props.items():
        setattr(p, PAHO_PROP.get(k, k), v)
    return p


def prop(msg, name, default=None):
    """A property of a paho message (v5), by paho name."""
    props = getattr(msg, "properties", None)
    if props is None:
        return default
    return getattr(props, name, default)


class PahoClient:
    """paho-mqtt with a background loop and blocking helpers that wait for acks."""

    def __init__(self, broker, client_id, version=V5, clean=True, tls=False, port=None,
                 transport="tcp", ws_path="/mqtt", ws_headers=None):
        """transport="websockets": MQTT over WebSocket to broker.ws_port (tls: wss_port),
        with the URL path ws_path and extra/replaced handshake headers ws_headers."""
        self.broker = broker
        self.version = version
        self.client_id = client_id
        self.clean = clean
        kw = {}
        if version != V5:
            kw["clean_session"] = clean
        self.c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5 if version == V5 else
                             mqtt.MQTTv311, reconnect_on_failure=False, transport=transport, **kw)
        ws = transport == "websockets"
        if ws:
            self.c.ws_set_options(path=ws_path, headers=ws_headers)
        if tls:
            self.c.tls_set_context(rawmqtt.tls_context(broker.cafile))
            self.port = port or (broker.wss_port if ws else broker.tls_port)
        else:
            self.port = port or (broker.ws_port if ws else broker.port)
        self.messages = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.disconnect_rc = None
        self.connack_rc = None
        self.connack_props = None
        self.session_present = None
        self._cond = threading.Condition()
        self._subacks = {}
        self._unsubacks = {}
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = self._on_unsubscribe
        self.loop_running = False

    # callbacks ------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.session_present = bool(flags.get("session present"))
        self.connack_rc = rc.value if hasattr(rc, "value") else rc
        self.connack_props = properties
        self.connected.set()

    def _on_disconnect(self, client, userdata, rc, properties=None):
        self.disconnect_rc = rc.value if hasattr(rc, "value") else rc
        self.disconnected.set()

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        with self._cond:
            self._subacks[mid] = [g.value if hasattr(g, "value") else g for g in granted]
            self._cond.notify_all()

    def _on_unsubscribe(self, client, userdata, mid, *rest):
        with self._cond:
            self._unsubacks[mid] = True
            self._cond.notify_all()

    # operations -----------------------------------------------------------
    def connect(self, keepalive=60, props=None, will=None, expect_rc=0):
        """Connects and waits for CONNACK. will: dict(topic, payload, qos, retain, props)."""
        if will:
            self.c.will_set(will["topic"], will.get("payload", b""), will.get("qos", 0),
                            will.get("retain", False),
                            paho_props(PacketTypes.WILLMESSAGE, will.get("props")))
        if self.version == V5:
            self.c.connect(self.broker.host, self.port, keepalive, clean_start=self.clean,
                           properties=paho_props(PacketTypes.CONNECT, props))
        else:
            self.c.connect(self.broker.host, self.port, keepalive)
        self.c.loop_start()
        self.loop_running = True
        if not self.connected.wait(TIMEOUT):
            raise AssertionError("no CONNACK for %s within %.0fs" % (self.client_id, TIMEOUT))
        if expect_rc is not None:
            assert self.connack_rc == expect_rc, "CONNACK code %r, expected %r" % (
                self.connack_rc, expect_rc)
        return self

    def subscribe(self, topic, qos=0, no_local=False, rap=False, retain_handling=0, props=None):
        """Subscribes and waits for SUBACK; returns the granted QoS / reason code."""
        if self.version == V5:
            opts = SubscribeOptions(qos=qos, noLocal=no_local, retainAsPublished=rap,
                                    retainHandling=retain_handling)
            rc, mid = self.c.subscribe(topic, options=opts,
                                       properties=paho_props(PacketTypes.SUBSCRIBE, props))
        else:
            rc, mid = self.c.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS, "subscribe not sent: %s" % rc
        deadline = time.monotonic() + TIMEOUT
        with self._cond:
            while mid not in self._subacks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no SUBACK for %r within %.0fs" % (topic, TIMEOUT))
                self._cond.wait(left)
            granted = self._subacks.pop(mid)
        return granted[0]

    def unsubscribe(self, topic):
        rc, mid = self.c.unsubscribe(topic)
        deadline = time.monotonic() + TIMEOUT
        with self._cond:
            while mid not in self._unsubacks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no UNSUBACK for %r" % topic)
                self._cond.wait(left)
            self._unsubacks.pop(mid)

    def publish(self, topic, payload=b"", qos=0, retain=False, props=None, wait=True):
        info = self.c.publish(topic, payload, qos, retain,
                              properties=paho_props(PacketTypes.PUBLISH, props))
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, "publish not sent: %s" % info.rc
        if wait:
            info.wait_for_publish(TIMEOUT)
            assert info.is_published(), "publish to %r (QoS %d) not completed" % (topic, qos)
        return info

    def get(self, timeout=None):
        """The next received message; fails if none arrives in time."""
        try:
            return self.messages.get(timeout=TIMEOUT if timeout is None else timeout)
        except queue.Empty:
            raise AssertionError("%s: no message within %.1fs" % (
                self.client_id, TIMEOUT if timeout is None else timeout))

    def get_n(self, n, timeout=None):
        deadline = time.monotonic() + (TIMEOUT if timeout is None else timeout)
        out = []
        while len(out) < n:
            try:
                out.append(self.messages.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError("%s: got %d of %d messages: %r" % (
                    self.client_id, len(out), n, [(m.topic, m.payload) for m in out]))
        return out

    def expect_none(self, timeout=QUIET):
        """Asserts that no message arrives within timeout."""
        try:
            m = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError("%s: unexpected message topic=%r payload=%r retain=%r" % (
            self.client_id, m.topic, m.payload, m.retain))

    def drain(self, timeout=QUIET):
        """All messages that arrive within timeout."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                out.append(self.messages.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                return out

    def drain_until(self, payload, timeout=None):
        """Messages received before the one with this payload (which must arrive)."""
        out = []
        deadline = time.monotonic() + (TIMEOUT if timeout is None else timeout)
        while True:
            try:
                m = self.messages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("%s: %r never arrived; got %r" % (
                    self.client_id, payload, [(x.topic, x.payload) for x in out]))
            if m.payload == payload:
                return out
            out.append(m)

    def disconnect(self, reason=None, props=None):
        if self.version == V5 and reason is not None:
            rc = ReasonCodes(PacketTypes.DISCONNECT, identifier=reason)
            self.c.disconnect(reasoncode=rc, properties=paho_props(PacketTypes.DISCONNECT, props))
        else:
            self.c.disconnect(properties=paho_props(PacketTypes.DISCONNECT, props)
                              if self.version == V5 else None)
        self.disconnected.wait(TIMEOUT)
        self.stop()

    def stop(self):
        if self.loop_running:
            # paho's loop thread sits in select() for up to 1 s: wake it so we don't wait
            self.c._thread_terminate = True
            try:
                self.c._sockpairW.send(b"\0")
            except Exception:
                pass
            self.c.loop_stop()
            self.loop_running = False
        sock = self.c.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


class ClientFactory:
    """Makes clients for a test and closes whatever is left at teardown."""

    def __init__(self, broker, uniq):
        self.broker = broker
        self.uniq = uniq
        self.n = 0
        self.paho_clients = []
        self.raw_conns = []

    def client_id(self, tag="c"):
        self.n += 1
        return "%s%s%d" % (tag[:8], self.uniq, self.n)

    def paho(self, version=V5, client_id=None, clean=True, connect=True, tls=False,
             transport="tcp", ws_path="/mqtt", ws_headers=None, **kw):
        c = PahoClient(self.broker, client_id or self.client_id(), version, clean, tls,
                       transport=transport, ws_path=ws_path, ws_headers=ws_headers)
        self.paho_clients.append(c)
        if connect:
            c.connect(**kw)
        return c

    def raw(self, version=V5, tls=False, port=None, timeout=None):
        ctx = rawmqtt.tls_context(self.broker.cafile) if tls else None
        c = rawmqtt.Conn(self.broker.host, port or (self.broker.tls_port if tls else self.broker.port),
                         version, timeout=TIMEOUT if timeout is None else timeout,
                         ssl_context=ctx)
        self.raw_conns.append(c)
        return c

    def raw_ws(self, version=V5, tls=False, path="/mqtt", subprotocols=("mqtt",), origin=None,
               headers=None, timeout=None, port=None):
        """A rawws.MqttWS (rawmqtt.Conn over WebSocket) to broker.ws_port (tls: wss_port).
        Raises rawws.Refused when the upgrade is refused."""
        ctx = rawmqtt.tls_context(self.broker.cafile) if tls else None
        c = rawws.MqttWS(self.broker.host,
                         port or (self.broker.wss_port if tls else self.broker.ws_port), version,
                         timeout=TIMEOUT if timeout is None else timeout, path=path,
                         subprotocols=subprotocols, origin=origin, headers=headers,
                         ssl_context=ctx)
        self.raw_conns.append(c)
        return c

    def ws(self, path="/mqtt", subprotocols=("mqtt",), origin=None, headers=None, tls=False,
           timeout=None):
        """A bare rawws.WSConn (frames only) to broker.ws_port (tls: wss_port)."""
        ctx = rawmqtt.tls_context(self.broker.cafile) if tls else None
        c = rawws.WSConn(self.broker.host, self.broker.wss_port if tls else self.broker.ws_port,
                         path, subprotocols, origin, headers,
                         TIMEOUT if timeout is None else timeout, ctx)
        self.raw_conns.append(c)
        return c

    def close_all(self):
        for c in self.paho_clients:
            try:
                c.stop()
            except Exception:
                pass
        for c in self.raw_conns:
            c.close()


def assert_broker_serves(broker, version=V5):
    """A fresh client can still connect, subscribe and get its own message back."""
    t = "e2e/alive/" + uuid.uuid4().hex[:8]
    c = rawmqtt.Conn(broker.host, broker.port, version, timeout=TIMEOUT)
    try:
        ack = c.connect("alive" + uuid.uuid4().hex[:8])
        assert ack.reason == 0, "fresh client refused: %r" % ack
        c.subscribe([(t, 1)])
        c.publish(t, b"still here", qos=1)
        p = c.wait_for(rawmqtt.PUBLISH)
        assert (p.topic, p.payload) == (t, b"still here")
        c.disconnect()
    finally:
        c.close()


def expect_closed(conn, timeout=None):
    """Reads until the server closes; returns the packets it sent before closing."""
    return conn.read_until_closed(TIMEOUT if timeout is None else timeout)


# ---------------------------------------------------------------- mosquitto clients


class MosquittoSub:
    """mosquitto_sub in the background, ready once it has its SUBACK (-d debug output)."""

    def __init__(self, broker, args, count, tls=False, version=V311):
        argv = ["mosquitto_sub", "-h", broker.host if not tls else "localhost",
                "-p", str(broker.tls_port if tls else broker.port), "-d", "-C", str(count),
                "-W", str(int(10 * SLOW)), "-V", "mqttv5" if version == V5 else "mqttv311"]
        if tls:
            argv += ["--cafile", broker.cafile]
        # stdbuf: mosquitto_sub's stdio would otherwise hold its debug lines in a buffer
        self.proc = subprocess.Popen(["stdbuf", "-oL", "-eL"] + argv + args,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines = []
        self._q = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                line = self._q.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise AssertionError("mosquitto_sub: no SUBACK: %s" % b"".join(self.lines))
            if line is None:
                self.proc.wait()
                raise AssertionError("mosquitto_sub exited before SUBACK: %s" % b"".join(self.lines))
            self.lines.append(line)
            if b"received suback" in line.lower():
                return

    def _read(self):
        with self.proc.stdout:
            for line in iter(self.proc.stdout.readline, b""):
                self._q.put(line)
        self._q.put(None)

    def finish(self):
        """Waits for exit (after -C messages); returns (exit code, all output)."""
        try:
            self.proc.wait(timeout=TIMEOUT + 10 * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(TIMEOUT)
        while True:
            line = self._q.get_nowait() if not self._q.empty() else None
            if line is None:
                break
            self.lines.append(line)
        return self.proc.returncode, b"".join(self.lines)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(TIMEOUT)


def mosquitto_pub(broker, args, tls=False, version=V311):
    argv = ["mosquitto_pub", "-h", broker.host if not tls else "localhost",
            "-p", str(broker.tls_port if tls else broker.port),
            "-V", "mqttv5" if version == V5 else "mqttv311"]
    if tls:
        argv += ["--cafile", broker.cafile]
    return subprocess.run(argv + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=TIMEOUT + 5)

// polygate web example: MQTT over WebSocket with MQTT.js (global `mqtt`, loaded from
// node_modules/mqtt/dist/mqtt.min.js). Connects to the host that served this page, at
// /mqtt; `?ws=ws://host:port/path` overrides the broker URL.
//
// Everything a message carries (topic, payload) is put into the page with textContent,
// never as HTML.
'use strict';

(function () {
  const MAX_MESSAGES = 500;
  const RECONNECT_MS = 2000;

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $('status'),
    statusText: $('status-text'),
    brokerUrl: $('broker-url'),
    clientId: $('client-id'),
    connOptions: $('conn-options'),
    connForm: $('conn-form'),
    username: $('username'),
    password: $('password'),
    protocol: $('protocol'),
    disconnectBtn: $('disconnect-btn'),
    subForm: $('sub-form'),
    subTopic: $('sub-topic'),
    subQos: $('sub-qos'),
    subBtn: $('sub-btn'),
    subs: $('subs'),
    subsEmpty: $('subs-empty'),
    pubForm: $('pub-form'),
    pubTopic: $('pub-topic'),
    pubPayload: $('pub-payload'),
    pubQos: $('pub-qos'),
    pubRetain: $('pub-retain'),
    pubBtn: $('pub-btn'),
    pubStatus: $('pub-status'),
    messages: $('messages'),
    messagesEmpty: $('messages-empty'),
    msgCount: $('msg-count'),
    clearBtn: $('clear-btn'),
  };

  // ------------------------------------------------------------------ helpers

  function brokerUrl() {
    const override = new URLSearchParams(location.search).get('ws');
    if (override) return override;
    const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    return scheme + location.host + '/mqtt';
  }

  function randomClientId() {
    const bytes = new Uint8Array(4);
    crypto.getRandomValues(bytes);
    return 'web-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clockTime(d) {
    const pad = (n, w) => String(n).padStart(w || 2, '0');
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()) +
      '.' + pad(d.getMilliseconds(), 3);
  }

  const utf8 = new TextDecoder('utf-8', { fatal: true });

  // {text, binary}: UTF-8 text when the payload decodes, else hex bytes.
  function decodePayload(payload) {
    const bytes = payload instanceof Uint8Array ? payload : new TextEncoder().encode(String(payload));
    try {
      return { text: utf8.decode(bytes), binary: false };
    } catch (e) {
      return {
        text: Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' '),
        binary: true,
      };
    }
  }

  function hasWildcard(topic) {
    return topic.includes('+') || topic.includes('#');
  }

  // ------------------------------------------------------------------ state

  const url = brokerUrl();
  const clientId = randomClientId();
  let client = null;
  let wanted = true;          // false after "Disconnect": stay offline
  let lastError = '';
  // topic filter -> { qos, state: 'pending' | 'active' | 'refused', li }
  const subscriptions = new Map();
  let messageCount = 0;

  ui.brokerUrl.textContent = url;
  ui.clientId.textContent = clientId;

  function setStatus(state, text) {
    ui.status.dataset.state = state;
    ui.statusText.textContent = text;
    const connected = state === 'connected';
    if (!connected) delete ui.status.dataset.protocol;
    ui.subBtn.disabled = !connected;
    ui.pubBtn.disabled = !connected;
    ui.disconnectBtn.textContent = wanted ? 'Disconnect' : 'Connect';
  }

  // ------------------------------------------------------------------ connection

  function offlineText() {
    const retry = ' (retrying every ' + RECONNECT_MS / 1000 + ' s)';
    return (lastError ? 'offline: ' + lastError : 'offline') + retry;
  }

  function connect() {
    wanted = true;
    lastError = '';
    const options = {
      clientId,
      clean: true,
      keepalive: 30,
      connectTimeout: 10000,
      reconnectPeriod: RECONNECT_MS,
      protocolVersion: Number(ui.protocol.value) || 4,
      resubscribe: false,     // done here, so the list below shows each SUBACK
    };
    if (ui.username.value) {
      options.username = ui.username.value;
      if (ui.password.value) options.password = ui.password.value;
    }
    setStatus('connecting', 'connecting to ' + url + '…');
    const c = mqtt.connect(url, options);
    client = c;

    c.on('connect', (connack) => {
      if (c !== client) return;
      lastError = '';
      const version = options.protocolVersion;
      ui.status.dataset.protocol = String(version);
      setStatus('connected', 'connected as ' + clientId + ' · MQTT ' + (version === 5 ? '5.0' : '3.1.1'));
      if (!connack || !connack.sessionPresent) {
        for (const [topic, sub] of subscriptions) subscribe(topic, sub.qos);
      }
    });
    c.on('reconnect', () => {
      if (c !== client) return;
      setStatus('connecting', 'reconnecting…');
    });
    c.on('offline', () => {
      if (c !== client) return;
      setStatus('offline', offlineText());
    });
    c.on('close', () => {
      if (c !== client) return;
      setStatus('offline', offlineText());
      markSubsPending();
    });
    c.on('error', (err) => {
      if (c !== client) return;
      lastError = err && err.message ? err.message : String(err);
      setStatus('offline', offlineText());
      // CONNACK: bad username or password / not authorized (3.1.1 and 5.0 codes)
      if (err && [4, 5, 0x86, 0x87].includes(err.code)) ui.connOptions.open = true;
    });
    c.on('message', (topic, payload, packet) => {
      if (c !== client) return;
      addMessage(topic, payload, packet);
    });
  }

  function disconnect(then) {
    const c = client;
    client = null;
    if (!c) {
      if (then) then();
      return;
    }
    // A clean DISCONNECT (the broker drops the will); give up waiting for it after 2 s.
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      if (then) then();
    };
    const timer = setTimeout(() => { c.end(true); finish(); }, 2000);
    c.end(false, () => { clearTimeout(timer); finish(); });
  }

  ui.disconnectBtn.addEventListener('click', () => {
    if (wanted) {
      wanted = false;
      disconnect();
      setStatus('offline', 'disconnected');
      markSubsPending();
    } else {
      connect();
    }
  });

  ui.connForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    markSubsPending();
    disconnect(connect);
  });

  // ------------------------------------------------------------------ subscriptions

  function setSubState(sub, state, detail) {
    sub.state = state;
    sub.li.dataset.state = state;
    sub.stateEl.textContent = detail || state;
  }

  function markSubsPending() {
    for (const sub of subscriptions.values()) setSubState(sub, 'pending');
  }

  function renderSubsEmpty() {
    ui.subsEmpty.hidden = subscriptions.size > 0;
  }

  function addSubscriptionRow(topic, qos) {
    let sub = subscriptions.get(topic);
    if (!sub) {
      const li = el('li', 'sub');
      li.dataset.topic = topic;
      const name = el('code', 'sub-topic', topic);
      const qosEl = el('span', 'badge');
      const stateEl = el('span', 'sub-state');
      const btn = el('button', 'icon-btn', '×');
      btn.type = 'button';
      btn.title = 'Unsubscribe';
      btn.setAttribute('aria-label', 'Unsubscribe from ' + topic);
      btn.addEventListener('click', () => unsubscribe(topic));
      li.append(name, qosEl, stateEl, btn);
      ui.subs.append(li);
      sub = { qos, state: 'pending', li, qosEl, stateEl };
      subscriptions.set(topic, sub);
    }
    sub.qos = qos;
    sub.qosEl.textContent = 'QoS ' + qos;
    renderSubsEmpty();
    return sub;
  }

  function subscribe(topic, qos) {
    const sub = addSubscriptionRow(topic, qos);
    setSubState(sub, 'pending', 'pending');
    const c = client;
    if (!c || !c.connected) return;
    c.subscribe(topic, { qos }, (err, granted) => {
      if (c !== client || subscriptions.get(topic) !== sub) return;
      const g = granted && granted[0];
      if (err || !g || g.qos >= 0x80) {
        const why = err ? err.message || String(err) : 'refused (0x' + (g ? g.qos.toString(16) : '??') + ')';
        setSubState(sub, 'refused', why);
        return;
      }
      sub.qosEl.textContent = 'QoS ' + g.qos;
      setSubState(sub, 'active', g.qos === qos ? 'active' : 'active, granted QoS ' + g.qos);
    });
  }

  function unsubscribe(topic) {
    const sub = subscriptions.get(topic);
    if (!sub) return;
    subscriptions.delete(topic);
    sub.li.remove();
    renderSubsEmpty();
    if (client && client.connected) client.unsubscribe(topic);
  }

  ui.subForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const topic = ui.subTopic.value.trim();
    if (!topic) return;
    subscribe(topic, Number(ui.subQos.value));
  });

  // ------------------------------------------------------------------ messages

  function addMessage(topic, payload, packet) {
    const { text, binary } = decodePayload(payload);
    const qos = packet && packet.qos ? packet.qos : 0;
    const retain = !!(packet && packet.retain);

    const li = el('li', 'msg');
    li.dataset.topic = topic;
    li.dataset.qos = String(qos);
    li.dataset.retain = retain ? '1' : '0';

    const meta = el('div', 'msg-meta');
    meta.append(el('span', 'msg-topic', topic));
    meta.append(el('span', 'badge qos-' + qos, 'QoS ' + qos));
    if (retain) meta.append(el('span', 'badge retain', 'retained'));
    if (binary) meta.append(el('span', 'badge binary', 'binary'));
    const now = new Date();
    const time = el('time', 'msg-time', clockTime(now));
    time.dateTime = now.toISOString();
    meta.append(time);

    const body = el('pre', 'msg-payload', text);
    if (text === '') {
      body.classList.add('is-empty');
      body.dataset.placeholder = binary ? '' : '(empty payload)';
    }
    li.append(meta, body);

    ui.messages.prepend(li);
    while (ui.messages.childElementCount > MAX_MESSAGES) ui.messages.lastElementChild.remove();
    messageCount += 1;
    ui.msgCount.textContent = String(messageCount);
    ui.messagesEmpty.hidden = true;
  }

  ui.clearBtn.addEventListener('click', () => {
    ui.messages.replaceChildren();
    messageCount = 0;
    ui.msgCount.textContent = '0';
    ui.messagesEmpty.hidden = false;
  });

  // ------------------------------------------------------------------ publish

  function setPubStatus(state, text) {
    ui.pubStatus.dataset.state = state;
    ui.pubStatus.textContent = text;
  }

  function publish() {
    const topic = ui.pubTopic.value.trim();
    const payload = ui.pubPayload.value;
    const qos = Number(ui.pubQos.value);
    const retain = ui.pubRetain.checked;
    if (!topic) {
      setPubStatus('error', 'A topic is needed.');
      return;
    }
    if (hasWildcard(topic)) {
      setPubStatus('error', 'A topic to publish to cannot contain + or #.');
      return;
    }
    const c = client;
    if (!c || !c.connected) {
      setPubStatus('error', 'Not connected.');
      return;
    }
    setPubStatus('pending', 'Publishing…');
    c.publish(topic, payload, { qos, retain }, (err) => {
      if (err) {
        setPubStatus('error', 'Failed: ' + (err.message || String(err)));
        return;
      }
      const how = qos === 0 ? 'sent' : qos === 1 ? 'acknowledged' : 'completed';
      setPubStatus('sent', 'Published to ' + topic + ' (QoS ' + qos + (retain ? ', retained' : '') +
        ', ' + how + ') at ' + clockTime(new Date()) + '.');
    });
  }

  ui.pubForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    publish();
  });
  ui.pubPayload.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey) && !ui.pubBtn.disabled) {
      ev.preventDefault();
      publish();
    }
  });

  // ------------------------------------------------------------------ start

  if (typeof mqtt === 'undefined') {
    setStatus('offline', 'MQTT.js is missing: run `npm ci --prefix examples/web`');
    return;
  }
  renderSubsEmpty();
  connect();
})();

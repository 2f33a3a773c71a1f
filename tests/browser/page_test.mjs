#!/usr/bin/env node
// Drives the browser example (examples/web) in Debian's chromium through playwright-core.
//
//   node tests/browser/page_test.mjs URL --sub FILTER [--sub-qos N]
//        [--expect JSON]... --pub-topic TOPIC --pub-payload TEXT [--pub-qos N] [--pub-retain]
//        [--protocol 4|5] [--screenshot PATH] [--timeout MS] [--chromium PATH]
//
// Steps: open URL, wait for "connected" (with --protocol 5: choose MQTT 5.0 under
// "Credentials and protocol", press Reconnect, wait again), subscribe to FILTER and wait
// for its SUBACK, print READY; wait until every --expect message ({"topic", "payload",
// optional "retain", "qos"}) is in the message list, with its payload shown as text and
// nothing from it turned into markup; publish from the form and wait for the broker's
// acknowledgement (and, when FILTER matches the topic, for the page to receive it back);
// save a screenshot; press Disconnect (a clean MQTT DISCONNECT); exit 0.
//
// Progress goes to stdout, one line each: CONNECTED <client id>, SUBSCRIBED <filter>,
// READY, RECEIVED <json>, PUBLISHED <topic>, ECHOED <topic>, SCREENSHOT <path>,
// DISCONNECTED (after pressing Disconnect), OK.
// On failure: "page_test: FAIL: <why>" and the page's state on stderr, a screenshot if one
// was asked for, exit 1 (2 for bad arguments). Browser console errors go to stderr.

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { chromium } from 'playwright-core';

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
];

function usage(msg) {
  process.stderr.write(`page_test: ${msg}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = {
    url: null, sub: null, subQos: 1, expect: [], pubTopic: null, pubPayload: null, pubQos: 1,
    pubRetain: false, protocol: 4, screenshot: null, timeout: 20000,
    chromium: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--sub': o.sub = val(); break;
      case '--sub-qos': o.subQos = Number(val()); break;
      case '--expect': {
        let e;
        try { e = JSON.parse(val()); } catch (err) { usage(`--expect: bad JSON: ${err.message}`); }
        if (typeof e.topic !== 'string' || typeof e.payload !== 'string') usage('--expect needs {"topic", "payload"}');
        o.expect.push(e);
        break;
      }
      case '--pub-topic': o.pubTopic = val(); break;
      case '--pub-payload': o.pubPayload = val(); break;
      case '--pub-qos': o.pubQos = Number(val()); break;
      case '--pub-retain': o.pubRetain = true; break;
      case '--protocol': o.protocol = Number(val()); break;
      case '--screenshot': o.screenshot = val(); break;
      case '--timeout': o.timeout = Number(val()); break;
      case '--chromium': o.chromium = val(); break;
      default:
        if (a.startsWith('--') || o.url) usage(`unexpected argument ${a}`);
        o.url = a;
    }
  }
  if (!o.url) usage('the page URL is required');
  if (!o.sub) usage('--sub FILTER is required');
  if (o.pubTopic === null || o.pubPayload === null) usage('--pub-topic and --pub-payload are required');
  if (![4, 5].includes(o.protocol)) usage('--protocol is 4 or 5');
  if (!(o.timeout > 0)) usage('--timeout must be a positive number of milliseconds');
  return o;
}

// MQTT topic filter matching (+ one level, # the rest), for "will the page see its own message".
function topicMatches(filter, topic) {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

const opts = parseArgs(process.argv.slice(2));
const deadline = Date.now() + opts.timeout;
const left = () => Math.max(1, deadline - Date.now());
const started = Date.now();
const say = (line) => process.stdout.write(line + '\n');
let stepName = 'starting';
// Each step's start time goes to stderr, to see where the time goes.
function setStep(v) {
  stepName = v;
  process.stderr.write(`page_test: +${Date.now() - started} ms ${v}\n`);
}

let browser = null;
let page = null;

// Whatever happens, do not outlive the timeout by much.
const watchdog = setTimeout(() => {
  process.stderr.write(`page_test: FAIL: overall timeout (${opts.timeout} ms + 10 s) while ${stepName}\n`);
  process.exit(1);
}, opts.timeout + 10000);
watchdog.unref();

async function pageState() {
  if (!page) return '(no page)';
  try {
    return await page.evaluate(() => {
      const text = (sel) => { const e = document.querySelector(sel); return e ? e.textContent.trim() : null; };
      const attr = (sel, a) => { const e = document.querySelector(sel); return e ? e.getAttribute(a) : null; };
      return JSON.stringify({
        status: attr('#status', 'data-state'),
        statusText: text('#status'),
        mqttLoaded: typeof window.mqtt !== 'undefined',
        subscriptions: Array.from(document.querySelectorAll('#subs li'), (li) => ({
          topic: li.dataset.topic, state: li.dataset.state, text: li.textContent.trim(),
        })),
        pubStatus: text('#pub-status'),
        messages: Array.from(document.querySelectorAll('#messages li.msg'), (li) => ({
          topic: li.dataset.topic, qos: li.dataset.qos, retain: li.dataset.retain,
          payload: (li.querySelector('.msg-payload') || {}).textContent,
        })).slice(0, 20),
      }, null, 1);
    });
  } catch (err) {
    return `(page state unavailable: ${err.message})`;
  }
}

async function waitFor(what, fn, arg) {
  setStep(what);
  try {
    await page.waitForFunction(fn, arg, { timeout: left(), polling: 'raf' });
  } catch (err) {
    throw new Error(`timed out waiting for ${what}: ${err.message.split('\n')[0]}`);
  }
}

async function waitConnected(protocol) {
  await waitFor(`"connected" (MQTT ${protocol === 5 ? '5.0' : '3.1.1'})`,
    (p) => {
      const s = document.getElementById('status');
      return s && s.dataset.state === 'connected' && s.dataset.protocol === String(p);
    }, protocol);
  const id = await page.textContent('#client-id');
  say(`CONNECTED ${id}`);
}

async function main() {
  setStep('launching chromium');
  browser = await chromium.launch({
    executablePath: opts.chromium,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: left(),
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') process.stderr.write(`browser console ${m.type()}: ${m.text()}\n`);
  });
  page.on('pageerror', (err) => process.stderr.write(`browser page error: ${err.message}\n`));
  page.on('requestfailed', (r) => process.stderr.write(`browser request failed: ${r.url()} ${r.failure() ? r.failure().errorText : ''}\n`));
  page.on('response', (r) => {
    if (r.status() >= 400) process.stderr.write(`browser: HTTP ${r.status()} for ${r.url()}\n`);
  });

  setStep(`loading ${opts.url}`);
  const resp = await page.goto(opts.url, { timeout: left(), waitUntil: 'load' });
  if (!resp || !resp.ok()) throw new Error(`GET ${opts.url}: ${resp ? 'HTTP ' + resp.status() : 'no response'}`);
  if (!(await page.evaluate(() => typeof window.mqtt !== 'undefined'))) {
    throw new Error('MQTT.js (node_modules/mqtt/dist/mqtt.min.js) did not load in the page');
  }

  await waitConnected(4);
  if (opts.protocol === 5) {
    setStep('switching to MQTT 5.0');
    await page.click('#conn-options > summary');
    await page.selectOption('#protocol', '5');
    await page.click('#connect-btn');
    await waitConnected(5);
    await page.click('#conn-options > summary'); // fold it again for the screenshot
  }

  setStep(`subscribing to ${opts.sub}`);
  await page.fill('#sub-topic', opts.sub);
  await page.selectOption('#sub-qos', String(opts.subQos));
  await page.click('#sub-btn');
  await waitFor(`the SUBACK for ${opts.sub}`, (t) => Array.from(document.querySelectorAll('#subs li'))
    .some((li) => li.dataset.topic === t && li.dataset.state !== 'pending'), opts.sub);
  const subState = await page.evaluate((t) => Array.from(document.querySelectorAll('#subs li'))
    .find((li) => li.dataset.topic === t).dataset.state, opts.sub);
  if (subState !== 'active') throw new Error(`subscription to ${opts.sub} is ${subState}`);
  say(`SUBSCRIBED ${opts.sub}`);
  say('READY');

  for (const e of opts.expect) {
    await waitFor(`the message ${JSON.stringify(e)}`, (exp) => Array.from(document.querySelectorAll('#messages li.msg'))
      .some((li) => {
        const body = li.querySelector('.msg-payload');
        return li.dataset.topic === exp.topic && body && body.textContent === exp.payload &&
          (exp.retain === undefined || li.dataset.retain === (exp.retain ? '1' : '0')) &&
          (exp.qos === undefined || li.dataset.qos === String(exp.qos));
      }), e);
    say(`RECEIVED ${JSON.stringify(e)}`);
  }

  // Payloads are text: the message list holds only the page's own elements.
  setStep('checking the message list for markup from payloads');
  const foreign = await page.evaluate(() => {
    const allowed = new Set(['LI', 'DIV', 'SPAN', 'TIME', 'PRE']);
    return Array.from(document.querySelectorAll('#messages *'))
      .filter((n) => !allowed.has(n.tagName) || n.hasAttribute('onerror') || n.hasAttribute('style'))
      .map((n) => n.outerHTML.slice(0, 120))
      .concat(window.__xss !== undefined ? ['window.__xss was set'] : []);
  });
  if (foreign.length) throw new Error(`payload turned into markup: ${foreign.join(' | ')}`);

  setStep(`publishing to ${opts.pubTopic}`);
  await page.fill('#pub-topic', opts.pubTopic);
  await page.fill('#pub-payload', opts.pubPayload);
  await page.selectOption('#pub-qos', String(opts.pubQos));
  await page.setChecked('#pub-retain', opts.pubRetain);
  await page.click('#pub-btn');
  await waitFor('the publish to be acknowledged', () => {
    const s = document.getElementById('pub-status');
    return s && (s.dataset.state === 'sent' || s.dataset.state === 'error');
  });
  const pub = await page.evaluate(() => {
    const s = document.getElementById('pub-status');
    return { state: s.dataset.state, text: s.textContent };
  });
  if (pub.state !== 'sent') throw new Error(`publish failed: ${pub.text}`);
  say(`PUBLISHED ${opts.pubTopic}`);

  if (topicMatches(opts.sub, opts.pubTopic)) {
    await waitFor('the page to receive its own message', (exp) => Array.from(document.querySelectorAll('#messages li.msg'))
      .some((li) => li.dataset.topic === exp.topic && li.querySelector('.msg-payload').textContent === exp.payload),
    { topic: opts.pubTopic, payload: opts.pubPayload });
    say(`ECHOED ${opts.pubTopic}`);
  }

  if (opts.screenshot) {
    setStep('saving the screenshot');
    mkdirSync(dirname(opts.screenshot), { recursive: true });
    await page.screenshot({ path: opts.screenshot, fullPage: true, animations: 'disabled', timeout: left() });
    say(`SCREENSHOT ${opts.screenshot}`);
  }

  setStep('disconnecting');
  await page.click('#disconnect-btn');
  await waitFor('"disconnected"', () => {
    const s = document.getElementById('status');
    return s.dataset.state === 'offline' && s.textContent.includes('disconnected');
  });
  say('DISCONNECTED');
}

let failed = null;
try {
  await main();
} catch (err) {
  failed = err;
}
if (failed) {
  process.stderr.write(`page_test: FAIL: ${failed.message}\n`);
  process.stderr.write(`page state: ${await pageState()}\n`);
  if (opts.screenshot && page) {
    try {
      mkdirSync(dirname(opts.screenshot), { recursive: true });
      await page.screenshot({ path: opts.screenshot, fullPage: true, timeout: 5000 });
      process.stderr.write(`page_test: screenshot of the failure in ${opts.screenshot}\n`);
    } catch (e) { /* the browser may be gone */ }
  }
}
if (browser) {
  setStep('closing chromium');
  await browser.close().catch(() => {});
}
if (!failed) say('OK');
process.exit(failed ? 1 : 0);

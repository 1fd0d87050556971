// The saga board page in a real Chromium, against the whole system as ./run.sh starts
// it: signs in on the page, drives orders and a poison message through the API and
// Kafka, and checks that the page follows them live, without a reload. Any miss fails
// the run with a message saying what was awaited and what the page showed instead.
//
//   tests/browser/run.sh     (installs Chromium and playwright-core, then runs this)
//
// Environment: GATEWAY_URL (http://127.0.0.1:8080), KAFKA_BOOTSTRAP_SERVERS
// (127.0.0.1:9092), ADMIN_EMAIL / ADMIN_PASSWORD (run.sh's defaults), CHROMIUM
// (/usr/bin/chromium), BOARD_SCREENSHOT (target/board.png under the repository),
// BROWSER_TEST_DEPS (where run.sh installed playwright-core).

import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const GATEWAY = process.env.GATEWAY_URL ?? 'http://127.0.0.1:8080';
const KAFKA = process.env.KAFKA_BOOTSTRAP_SERVERS || '127.0.0.1:9092';
const ADMIN = {
  email: process.env.ADMIN_EMAIL ?? 'admin@example.com',
  password: process.env.ADMIN_PASSWORD ?? 'admin-password',
};
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOT = resolve(process.env.BOARD_SCREENSHOT ?? join(ROOT, 'target/board.png'));
// Long enough for a saga on a busy 2-core machine, short enough to fail within minutes.
const WAIT_MS = 30_000;
const WHOLE_RUN_MS = 150_000;

// playwright-core from where run.sh installed it (outside the clone), else from a
// node_modules beside this file.
const require = createRequire(process.env.BROWSER_TEST_DEPS ? `${resolve(process.env.BROWSER_TEST_DEPS)}/` : import.meta.url);
const { chromium } = require('playwright-core');

// ------------------------------------------------------------------ the system's API

async function call(method, path, { token, body, status } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(GATEWAY + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const ok = status === undefined ? response.ok : [status].flat().includes(response.status);
  if (!ok) throw new Error(`${method} ${path} answered ${response.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

async function signIn(email, password) {
  const { accessToken } = await call('POST', '/api/auth/token', { body: { email, password }, status: 200 });
  return accessToken;
}

/** Repeats `attempt` until it returns something truthy, or fails with `what`. */
async function eventually(what, attempt, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const value = await attempt();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms / 1000} s${last ? ` (last: ${last.message})` : ''}`);
    await new Promise((done) => setTimeout(done, 250));
  }
}

/** A user with a wallet (opened through Kafka a moment after the sign-up) and a token. */
async function newUser() {
  const email = `board-${randomUUID()}@example.com`;
  const password = 'board-test-password';
  const { id } = await call('POST', '/api/users', { body: { email, name: 'Board Test', password }, status: 201 });
  const token = await signIn(email, password);
  await eventually(`the wallet of ${id}`, () => call('GET', `/api/wallets/${id}`, { token, status: 200 }));
  return { id, token };
}

async function product(adminToken, priceCents) {
  const sku = `BOARD-${randomUUID().slice(0, 8).toUpperCase()}`;
  await call('PUT', `/api/products/${sku}`, {
    token: adminToken,
    body: { name: `Board test ${sku}`, priceCents, available: 10 },
  });
  return sku;
}

async function order(user, sku) {
  const { id } = await call('POST', '/api/orders', {
    token: user.token,
    body: { userId: user.id, items: [{ sku, quantity: 1 }] },
    status: 202,
  });
  return id;
}

/** A value that is not JSON, keyed `key`, written to order.created with Kafka's own producer. */
function producePoison(key) {
  const producer = join(ROOT, 'stack/bin/kafka-console-producer.sh');
  const args = ['--bootstrap-server', KAFKA, '--topic', 'order.created',
    '--property', 'parse.key=true', '--property', 'key.separator=|'];
  return new Promise((done, fail) => {
    const child = spawn(producer, args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => { output += chunk; });
    child.stderr.on('data', (chunk) => { output += chunk; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', (error) => { clearTimeout(timer); fail(error); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) done();
      else fail(new Error(`the console producer ended with ${code ?? signal}: ${output.trim()}`));
    });
    child.stdin.end(`${key}|this is not json\n`);
  });
}

// ------------------------------------------------------------------------- the page

/** Waits for `selector` on the page; on a miss, says what was there instead. */
async function see(page, what, selector, { ms = WAIT_MS, near } = {}) {
  try {
    return await page.waitForSelector(selector, { timeout: ms, state: 'attached' });
  } catch {
    const shown = near
      ? await page.$eval(near, (e) => e.outerHTML.slice(0, 1500)).catch(() => `nothing matches ${near}`)
      : '';
    throw new Error(`${what}: no ${selector} within ${ms / 1000} s${shown ? `\n  the page shows: ${shown}` : ''}`);
  }
}

const row = (orderId) => `#orders tr[data-order-id="${orderId}"]`;

/**
 * The board shows new orders only once it has read what Kafka held before them. A board
 * with a new store reads every topic from the start, which on a broker with a long
 * history takes minutes: said plainly here rather than as a missing row later.
 */
async function boardCaughtUp(adminToken) {
  let lag;
  // librdkafka reports a partition's lag only once it has something to fetch: on a broker
  // with empty topics it never does. Unknown for two of its 5 s reports counts as none.
  const unknownSince = Date.now();
  await eventually('the saga board catching up with Kafka', async () => {
    const stats = await call('GET', '/api/board/stats', { token: adminToken, status: 200 });
    lag = stats.services.find((s) => s.name === 'saga-board')?.consumerLag;
    if (lag === undefined || lag === null) return Date.now() - unknownSince > 11_000;
    return lag < 1000;
  }, 60_000).catch((error) => {
    throw new Error(`${error.message}: saga-board is ${lag ?? 'an unknown number of'} events behind`);
  });
}

async function run(page, errors) {
  const steps = [];
  const step = async (name, body) => {
    const started = Date.now();
    await body();
    steps.push(name);
    console.log(`ok ${steps.length} - ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  };

  await step('the admin signs in through the form', async () => {
    await page.goto(`${GATEWAY}/board`);
    await page.fill('#sign-in-form input[name=email]', ADMIN.email);
    await page.fill('#sign-in-form input[name=password]', ADMIN.password);
    await page.click('#sign-in-form button[type=submit]');
    await see(page, 'the board after signing in', '#board:not([hidden])', { near: '#sign-in' });
    await see(page, 'the live stream', '#live[data-state="live"]', { near: '#live' });
    await see(page, 'the services in the figures', '#services li[data-service="order-service"]', { near: '.stats' });
    // Gone if the page reloads: everything below must arrive live.
    await page.evaluate(() => { window.boardTestMarker = 'never reloaded'; });
  });

  const admin = await signIn(ADMIN.email, ADMIN.password);
  await boardCaughtUp(admin);
  const user = await newUser();
  let confirmed;

  await step('an order appears and turns CONFIRMED live', async () => {
    confirmed = await order(user, await product(admin, 2500));
    await see(page, `the row of order ${confirmed}`, row(confirmed), { near: '#orders' });
    await see(page, `order ${confirmed} CONFIRMED`, `${row(confirmed)}[data-status="CONFIRMED"]`, { near: row(confirmed) });
    await see(page, 'its forward lane', `${row(confirmed)} .lane.forward [data-topic="order.confirmed"]:not([data-pending])`,
      { near: row(confirmed) });
  });

  await step('a failed payment is compensated on the reversed lane', async () => {
    const failed = await order(user, await product(admin, 150_000));
    const compensated = `${row(failed)}[data-status="CANCELLED"][data-path="COMPENSATION"]`;
    await see(page, `order ${failed} CANCELLED by compensation`, compensated, { near: row(failed) });
    await see(page, 'inventory.released on the reversed lane',
      `${compensated} .lane.reversed [data-topic="inventory.released"][data-reversed="true"]`, { near: row(failed) });
    await see(page, 'payment.failed as a failure', `${compensated} [data-topic="payment.failed"][data-failed="true"]`,
      { near: row(failed) });
  });

  await step('a poison message is dead-lettered, replayed, and dead-lettered again', async () => {
    const key = randomUUID();
    await producePoison(key);
    const letters = `#dead-letters tr[data-key="${key}"]`;
    const first = await see(page, `the dead letter keyed ${key}`, letters, { near: '#dead-letters' });
    const id = await first.getAttribute('data-dead-letter-id');
    await page.click(`#dead-letters tr[data-dead-letter-id="${id}"] button[data-action="replay"]`);
    await see(page, 'the answer to Replay', `#dead-letters tr[data-dead-letter-id="${id}"] .note.ok`,
      { near: `#dead-letters tr[data-dead-letter-id="${id}"]` });
    // The replay, read from order.created again, fails again: a new dead letter whose
    // original is where the replay went.
    try {
      await page.waitForFunction(([selector, id]) => {
        const rows = [...document.querySelectorAll(selector)];
        const replayed = rows.find((r) => r.dataset.deadLetterId === id);
        const sentTo = (replayed?.dataset.replayedTo ?? '').split(' ').filter(Boolean);
        return Number(replayed?.dataset.replays) >= 1
          && rows.some((r) => r !== replayed && sentTo.includes(r.dataset.original));
      }, [letters, id], { timeout: WAIT_MS });
    } catch {
      const shown = await page.$$eval(letters, (rows) => rows.map((r) => r.outerHTML.slice(0, 800)).join('\n'));
      throw new Error(`dead letter ${id} replayed (data-replays ≥ 1) and dead-lettered again as another row keyed ` +
        `${key}: not within ${WAIT_MS / 1000} s\n  the page shows: ${shown}`);
    }
  });

  await step('the user filter finds the order, and its timeline opens by keyboard', async () => {
    // Filtered first: under load newer orders push it off the list's first page.
    await page.fill('#filters input[name="userId"]', user.id);
    await page.click('#filters button[type="submit"]');
    await see(page, `order ${confirmed} among the user's orders`, row(confirmed), { near: '#orders' });
    await page.focus(row(confirmed));
    await page.keyboard.press('Enter');
    await see(page, 'the timeline dialog', `dialog#timeline[open][data-order-id="${confirmed}"]`);
    for (const topic of ['order.created', 'order.confirmed']) {
      await see(page, `${topic} in the timeline`, `#timeline-entries li[data-kind="EVENT"][data-topic="${topic}"]`,
        { near: '#timeline' });
    }
    await see(page, 'the Zipkin link', '#trace-link:not([hidden])[href^="http"]', { near: '#timeline .dialog-head' });
    await see(page, 'order.confirmed consumed by notification-service',
      '#timeline-entries li[data-topic="order.confirmed"] dd:has-text("notification-service")', { near: '#timeline' });
    await page.click('#timeline-entries li[data-topic="order.created"] details summary');
    await page.screenshot({ path: SCREENSHOT.replace(/(\.png)?$/, '-timeline.png') });
    await page.keyboard.press('Escape');
    await see(page, 'the dialog closed by Escape', 'dialog#timeline:not([open])');
    const focused = await page.evaluate(() => document.activeElement?.dataset?.orderId);
    if (focused !== confirmed) throw new Error(`focus after Escape: ${focused ?? 'not on a row'}, not order ${confirmed}`);
  });

  await step('no reload and no script error all along', async () => {
    const marker = await page.evaluate(() => window.boardTestMarker);
    if (marker !== 'never reloaded') throw new Error('the page was reloaded: its marker is gone');
    if (errors.length) throw new Error(`script errors on the page:\n  ${errors.join('\n  ')}`);
  });

  await step(`a screenshot: ${SCREENSHOT}`, async () => {
    await page.click('#filters button[type="reset"]');
    // The stats poll has run a few times by now; the rows' highlight has faded.
    await page.waitForTimeout(1500);
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  });
}

async function main() {
  mkdirSync(dirname(SCREENSHOT), { recursive: true });
  const whole = setTimeout(() => {
    console.error(`board page test: not done within ${WHOLE_RUN_MS / 1000} s`);
    process.exit(1);
  }, WHOLE_RUN_MS);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Chromium's sandbox cannot start as root (CI containers run as root).
    args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
  });
  const errors = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') console.error(`  [page ${message.type()}] ${message.text()}`);
    });
    try {
      await run(page, errors);
    } catch (error) {
      const failed = SCREENSHOT.replace(/(\.png)?$/, '-failed.png');
      await page.screenshot({ path: failed, fullPage: true }).catch(() => {});
      throw new Error(`${error.message}\n  (the page then: ${failed})`);
    }
  } finally {
    clearTimeout(whole);
    await browser.close();
  }
}

main().then(
  () => console.log('board page test: passed'),
  (error) => {
    console.error(`board page test FAILED: ${error.message}`);
    process.exit(1);
  },
);

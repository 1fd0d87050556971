// The saga board: every order's saga as it happens, the system's figures, the dead
// letters. Everything comes from the admin-only /api/board/... operations with the token
// the admin signs in for here; the page itself holds no data.
//
// Plain DOM, no framework. Text from the API only ever goes in as text (textContent),
// never as HTML: payloads are whatever a producer wrote, poison included.

const TOKEN_KEY = 'board.token';
const EMAIL_KEY = 'board.email';
const ORDERS_LIMIT = 50;
const DEAD_LETTERS_LIMIT = 100;
// Rows beyond these go, oldest first: a board left open for a day must not grow for ever.
const MAX_ORDER_ROWS = 200;
const MAX_DEAD_LETTER_ROWS = 200;
// Events are drawn at most this often, each thing once as it last was: under load (or
// while the board rebuilds itself from Kafka) thousands of events a second arrive, and
// drawing each one would leave the page no time for anything else.
const DRAW_EVERY_MS = 100;
const STATS_EVERY_MS = 2000;
// The service sends keep-alive comments; a stream silent for this long is dead even if
// its connection is not, so it is dropped and opened again.
const SILENT_STREAM_MS = 45000;
const MAX_BACKOFF_MS = 30000;
// A stuck order gets no more events, so the stream cannot say it became stuck. The page
// ages waiting orders itself: past the "stuck after" filter's seconds, or this default.
const DEFAULT_STUCK_S = 30;

// The forward path of the saga, and the short names steps go by on the board.
const FORWARD = ['order.created', 'inventory.reserved', 'payment.completed', 'order.confirmed'];
const LABELS = {
  'order.created': 'created',
  'inventory.reserved': 'reserved',
  'inventory.rejected': 'rejected',
  'payment.completed': 'paid',
  'payment.failed': 'payment failed',
  'order.confirmed': 'confirmed',
  'order.cancel-requested': 'cancel asked',
  'payment.refunded': 'refunded',
  'inventory.released': 'released',
  'order.cancelled': 'cancelled',
};
// Steps that undo: drawn on the reversed lane when awaited, before they happen.
const UNDOING = new Set(['order.cancel-requested', 'payment.refunded', 'inventory.released']);
const TERMINAL = new Set(['CONFIRMED', 'CANCELLED']);
const PATHS = { REJECTED: 'rejected', COMPENSATION: 'compensation', USER_CANCEL: 'user cancel' };

const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ small helpers

/**
 * An element with attributes and children. A `data-*` attribute keeps a boolean as
 * "true"/"false" (the browser test reads them); any other is present when true.
 */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    const data = name.startsWith('data-');
    if (value === null || value === undefined || (value === false && !data)) continue;
    if (name === 'class') element.className = value;
    else if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true && !data ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

const pad = (n, width = 2) => String(n).padStart(width, '0');

function clock(at, withMillis = false) {
  if (!at) return '—';
  const d = new Date(at);
  if (Number.isNaN(d.getTime())) return at;
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return withMillis ? `${hms}.${pad(d.getMilliseconds(), 3)}` : hms;
}

function duration(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  return `${(ms / 60000).toFixed(1)} min`;
}

const count = (n) => (n === null || n === undefined ? '—' : Number(n).toLocaleString('en'));
const time = (at) => (at ? Date.parse(at) : NaN);
// UUIDv7s made close together share their first (time) digits: the last ones tell apart.
const short = (id) => (id ? `…${id.slice(-8)}` : '—');

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

/** Re-renders `container` with `fill` and gives focus back to what had it inside. */
function keepingFocus(container, fill) {
  const focused = container.contains(document.activeElement) ? document.activeElement : null;
  const key = focused?.dataset.focusKey;
  fill();
  if (!focused) return;
  const again = key ? container.querySelector(`[data-focus-key="${key}"]`) : null;
  (again ?? container).focus({ preventScroll: true });
}

// --------------------------------------------------------------------------- the API

/** An answer other than 2xx, with the problem's `detail` when it sent one. */
class Problem extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function problemOf(response) {
  let detail = `${response.status} ${response.statusText}`.trim();
  try {
    const problem = await response.json();
    detail = problem.detail ?? problem.title ?? detail;
  } catch {
    // Not problem+json (a proxy's page, say): the status line says enough.
  }
  return new Problem(response.status, detail);
}

const token = () => sessionStorage.getItem(TOKEN_KEY);

function authorised(headers = {}) {
  return { ...headers, Authorization: `Bearer ${token()}` };
}

async function api(path, { method = 'GET' } = {}) {
  const response = await fetch(path, { method, headers: authorised({ Accept: 'application/json' }) });
  if (!response.ok) throw await problemOf(response);
  return response.json();
}

// --------------------------------------------------------------- signing in and out

let session = null; // an AbortController while signed in: aborting it stops every loop

function showSignIn(problem) {
  $('board').hidden = true;
  $('who').hidden = true;
  $('sign-in').hidden = false;
  $('sign-in-problem').hidden = !problem;
  $('sign-in-problem').textContent = problem ?? '';
  setLive('off');
  $('sign-in-form').elements.email.focus();
}

function signOut(problem) {
  session?.abort();
  session = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $('timeline').close();
  showSignIn(problem);
}

/**
 * What a refused call means for the whole page: 401, the token is no good (expired,
 * say), so sign in again; 403, this account is no admin. True when it was one of those.
 */
function refused(error) {
  if (!(error instanceof Problem)) return false;
  if (error.status === 401) {
    signOut(error.message);
    return true;
  }
  if (error.status === 403) {
    signOut(`${sessionStorage.getItem(EMAIL_KEY) ?? 'This account'} is not an admin: the board is for admins only.`);
    return true;
  }
  return false;
}

async function signIn(event) {
  event.preventDefault();
  const form = event.target;
  const email = form.elements.email.value.trim();
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    const response = await fetch('/api/auth/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ email, password: form.elements.password.value }),
    });
    if (!response.ok) throw await problemOf(response);
    const { accessToken } = await response.json();
    sessionStorage.setItem(TOKEN_KEY, accessToken);
    sessionStorage.setItem(EMAIL_KEY, email);
    form.elements.password.value = '';
    start();
  } catch (error) {
    showSignIn(error.message);
  } finally {
    button.disabled = false;
  }
}

function start() {
  session?.abort();
  session = new AbortController();
  $('sign-in').hidden = true;
  $('board').hidden = false;
  $('who').hidden = false;
  $('who-email').textContent = sessionStorage.getItem(EMAIL_KEY) ?? '';
  showBoardProblem(null);
  loadOrders();
  loadDeadLetters();
  pollStats(session.signal);
  follow(session.signal);
}

function showBoardProblem(message) {
  $('board-problem').hidden = !message;
  $('board-problem').textContent = message ?? '';
}

/** For the calls whose failure only this page section cares about. */
function report(error) {
  if (!refused(error)) showBoardProblem(error.message);
}

// ---------------------------------------------------------------------- the figures

async function pollStats(signal) {
  while (!signal.aborted) {
    try {
      renderStats(await api('/api/board/stats'));
    } catch (error) {
      if (signal.aborted || refused(error)) return;
      document.querySelector('.stats').dataset.stale = 'true';
      document.querySelector('.stats').title = `not current: ${error.message}`;
    }
    ageWaitingOrders();
    await sleep(STATS_EVERY_MS, signal);
  }
}

function renderStats(stats) {
  const strip = document.querySelector('.stats');
  delete strip.dataset.stale;
  strip.title = '';
  $('stat-rate').textContent = stats.sagasPerMinute === null ? '—' : Number(stats.sagasPerMinute).toFixed(1);
  $('stat-p50').textContent = duration(stats.sagaMillis?.p50);
  $('stat-p99').textContent = duration(stats.sagaMillis?.p99);
  $('stat-dead').textContent = count(stats.deadLetters);
  $('stat-dead').classList.toggle('alarm', stats.deadLetters > 0);
  $('services').replaceChildren(...stats.services.map((s) =>
    h('li', { class: 'service', 'data-service': s.name, 'data-up': s.up },
      h('span', { class: 'dot', 'aria-hidden': 'true' }),
      h('strong', {}, s.name.replace(/-service$/, '')),
      h('span', { class: 'visually-hidden' }, s.up ? ' up' : ' down'),
      h('span', { class: 'figure', title: 'events written, not yet sent to Kafka' }, 'outbox ', h('b', {}, count(s.outboxBacklog))),
      h('span', { class: 'figure', title: 'events on Kafka not yet consumed' }, 'lag ', h('b', {}, count(s.consumerLag))),
      h('span', { class: `figure${s.deadLettered > 0 ? ' alarm' : ''}`, title: 'messages it sent to a dead-letter topic' },
        'dead ', h('b', {}, count(s.deadLettered))))));
}

// ------------------------------------------------------------------------- the orders

const orders = new Map(); // orderId → the OrderSummary shown

function filters() {
  const form = $('filters').elements;
  return {
    status: form.status.value,
    reason: form.reason.value,
    userId: form.userId.value.trim(),
    stuck: form.stuck.value.trim(),
  };
}

async function loadOrders() {
  const query = new URLSearchParams({ limit: ORDERS_LIMIT });
  for (const [name, value] of Object.entries(filters())) if (value) query.set(name, value);
  try {
    const list = await api(`/api/board/orders?${query}`);
    orders.clear();
    $('orders').replaceChildren();
    for (const order of list) upsertOrder(order, false);
    showEmpty();
    showBoardProblem(null);
  } catch (error) {
    report(error);
  }
}

function showEmpty() {
  $('orders-empty').hidden = orders.size > 0;
  $('orders-empty').textContent = Object.values(filters()).some(Boolean) ? 'No orders match.' : 'No orders yet.';
}

function stuckAfterMs() {
  return 1000 * (Number(filters().stuck) || DEFAULT_STUCK_S);
}

function isStuck(order) {
  if (order.stuck) return true;
  if (!order.waitingFor?.length || !order.createdAt) return false;
  return Date.now() - time(order.createdAt) >= stuckAfterMs();
}

/**
 * The filters, applied to what the stream brings as the server applied them to the
 * list. "Stuck" only keeps rows up to date: a new order is not stuck yet.
 */
function wanted(order) {
  const f = filters();
  return (!f.status || order.status === f.status)
    && (!f.reason || order.reason === f.reason)
    && (!f.userId || order.userId === f.userId)
    && (!f.stuck || orders.has(order.orderId));
}

/** Shows `order`: from the list (`live` false: the server filtered it) or the stream. */
function upsertOrder(order, live) {
  const shown = orders.get(order.orderId);
  // The list and the stream can cross: never go back to an older state.
  if (shown && time(shown.updatedAt) > time(order.updatedAt)) return;
  let row = rowOf(order.orderId);
  if (live && !wanted(order)) {
    if (row) row.remove();
    orders.delete(order.orderId);
    return;
  }
  if (!row && olderThanAllShown(order)) return;
  orders.set(order.orderId, order);
  if (!row) {
    row = h('tr', { tabindex: 0, 'data-order-id': order.orderId });
    insertNewestFirst(row, order);
    if (live) flash(row);
    trimOrders();
  }
  keepingFocus(row, () => fillOrderRow(row, order));
}

/** Whether a new row for `order` would be trimmed away as soon as it was added. */
function olderThanAllShown(order) {
  const oldest = $('orders').lastElementChild;
  if (!oldest || $('orders').children.length < MAX_ORDER_ROWS) return false;
  return time(order.createdAt) < time(orders.get(oldest.dataset.orderId)?.createdAt);
}

const rowOf = (id) => $('orders').querySelector(`tr[data-order-id="${CSS.escape(id)}"]`);

function insertNewestFirst(row, order) {
  const created = time(order.createdAt);
  const later = [...$('orders').children].find((other) => {
    // Before the first older one; one without a time (NaN) goes to the top.
    return !(time(orders.get(other.dataset.orderId)?.createdAt) >= created);
  });
  $('orders').insertBefore(row, later ?? null);
}

function trimOrders() {
  while ($('orders').children.length > MAX_ORDER_ROWS) {
    const oldest = $('orders').lastElementChild;
    orders.delete(oldest.dataset.orderId);
    oldest.remove();
  }
}

function flash(row) {
  row.classList.add('arrived');
  row.addEventListener('animationend', () => row.classList.remove('arrived'), { once: true });
}

/** Waiting orders turn stuck with time, not with events: looked at on every stats tick. */
function ageWaitingOrders() {
  for (const order of orders.values()) {
    const row = rowOf(order.orderId);
    if (row && order.waitingFor?.length && String(isStuck(order)) !== row.dataset.stuck) {
      keepingFocus(row, () => fillOrderRow(row, order));
    }
  }
}

function fillOrderRow(row, order) {
  const stuck = isStuck(order);
  Object.assign(row.dataset, { status: order.status, path: order.path, stuck: String(stuck) });
  row.replaceChildren(
    h('td', { class: 'time' }, clock(order.createdAt)),
    h('td', {}, h('code', { title: order.orderId }, short(order.orderId))),
    h('td', {}, h('code', { title: order.userId ?? '' }, short(order.userId))),
    h('td', {},
      h('span', { class: `badge status-${order.status}` }, order.status),
      PATHS[order.path] ? h('span', { class: `path path-${order.path}` }, PATHS[order.path]) : null),
    h('td', { class: 'reason' }, order.reason ?? '—'),
    h('td', { class: 'num' },
      duration(order.sagaMillis),
      order.deadLetters > 0
        ? h('span', { class: 'dead-count', title: 'dead letters of this order' }, `${order.deadLetters} dead`)
        : null),
    h('td', { class: 'steps' }, lanes(order),
      stuck ? h('p', { class: 'stuck-note' }, `stuck: waiting for ${order.waitingFor.join(' or ') || '?'}`) : null),
  );
}

/**
 * The saga as two lanes: the forward lane left to right, and under it the lane of steps
 * that undo (compensation, user cancel) right to left, each undo under the step it walks
 * back from. Steps to come are drawn hollow; those the order waits for, marked.
 */
function lanes(order) {
  const forward = order.steps.filter((s) => !s.reversed);
  const back = order.steps.filter((s) => s.reversed);
  const seen = new Set(order.steps.map((s) => s.topic));
  const waiting = new Set(order.waitingFor ?? []);
  const open = !TERMINAL.has(order.status);
  const ahead = open && order.path === 'FORWARD' ? FORWARD.filter((t) => !seen.has(t)) : [];
  const undoAhead = open ? [...waiting].filter((t) => UNDOING.has(t) && !seen.has(t)) : [];

  const forwardItems = [...forward.map(step), ...ahead.map((t) => toCome(t, waiting.has(t)))];
  const backItems = [...back.map(step), ...undoAhead.map((t) => toCome(t, true))];
  const columns = Math.max(forwardItems.length, backItems.length, 1);
  backItems.forEach((item, i) => { item.style.gridColumn = String(columns - i); });
  const lane = (kind, items, label) => {
    const list = h('ol', { class: `lane ${kind}`, 'aria-label': label }, items);
    list.style.gridTemplateColumns = `repeat(${columns}, var(--step-width))`;
    return list;
  };
  return h('div', { class: 'lanes' },
    lane('forward', forwardItems, 'forward'),
    backItems.length ? lane('reversed', backItems, 'undone, right to left') : null);
}

function step(s) {
  const kind = s.failed ? 'failed' : 'done';
  return h('li', {
    class: `step ${kind}`,
    'data-topic': s.topic,
    'data-failed': s.failed,
    'data-reversed': s.reversed,
    title: `${s.eventType ?? s.topic} at ${clock(s.at, true)}`,
  },
  h('span', { class: 'name' }, LABELS[s.topic] ?? s.topic),
  h('span', { class: 'hop' }, s.hopMillis === null || s.hopMillis === undefined ? ' ' : `+${duration(s.hopMillis)}`));
}

function toCome(topic, waited) {
  return h('li', { class: `step to-come${waited ? ' waiting' : ''}`, 'data-topic': topic, 'data-pending': true,
    title: waited ? `waiting for ${topic}` : `${topic}, to come` },
  h('span', { class: 'name' }, LABELS[topic] ?? topic),
  h('span', { class: 'hop' }, waited ? 'waiting' : ' '));
}

function openFromRow(event) {
  const row = event.target.closest('tr[data-order-id]');
  if (!row || event.target.closest('button, a')) return;
  if (event.type === 'keydown' && (event.key !== 'Enter' || event.target !== row)) return;
  event.preventDefault();
  openTimeline(row.dataset.orderId, row);
}

// ---------------------------------------------------------------------- the timeline

let timelineFrom = null; // what had focus before the dialog, to give it back

async function openTimeline(orderId, from) {
  const dialog = $('timeline');
  timelineFrom = from ?? document.activeElement;
  $('timeline-title').textContent = `Order ${orderId}`;
  $('timeline-summary').textContent = 'Loading…';
  $('timeline-problem').hidden = true;
  $('timeline-entries').replaceChildren();
  $('trace-link').hidden = true;
  dialog.dataset.orderId = orderId;
  if (!dialog.open) dialog.showModal();
  $('timeline-close').focus();
  try {
    const order = await api(`/api/board/orders/${encodeURIComponent(orderId)}`);
    if (dialog.dataset.orderId === orderId) renderTimeline(order);
  } catch (error) {
    if (refused(error)) return;
    $('timeline-summary').textContent = '';
    $('timeline-problem').hidden = false;
    $('timeline-problem').textContent = error.message;
  }
}

function renderTimeline(order) {
  $('timeline-summary').replaceChildren(
    h('span', { class: `badge status-${order.status}` }, order.status),
    ` ${PATHS[order.path] ?? 'forward'}`,
    order.reason ? ` · ${order.reason}` : '',
    ` · saga ${duration(order.sagaMillis)}`,
    order.userId ? ` · user ${order.userId}` : '',
  );
  const link = $('trace-link');
  link.hidden = !order.traceUrl;
  if (order.traceUrl) link.href = order.traceUrl;
  $('timeline-entries').replaceChildren(...order.timeline.map(entry));
}

function entry(e) {
  const dead = e.kind === 'DEAD_LETTER';
  const facts = [
    ['ceId', e.eventId], ['ceType', e.eventType], ['source', e.source], ['key', e.key],
    ['trace', e.traceId], ['consumer group', e.consumerGroup], ['attempts', e.attempts],
    ['replayed from', e.replayedFrom],
    // Which services' consumer groups have committed past it: where a stuck saga stopped.
    ['consumed by', e.consumedBy ? e.consumedBy.join(', ') || 'no one yet' : null],
  ].filter(([, value]) => value !== null && value !== undefined);
  const headers = Object.entries(e.headers ?? {});
  return h('li', { class: `entry${dead ? ' dead' : ''}`, 'data-kind': e.kind, 'data-topic': e.topic },
    h('div', { class: 'entry-head' },
      h('time', { datetime: e.at ?? '' }, clock(e.at, true)),
      h('strong', {}, e.topic),
      h('span', { class: 'where' }, `partition ${e.partition} · offset ${e.offset}`),
      e.hopMillis !== null && e.hopMillis !== undefined ? h('span', { class: 'hop' }, `+${duration(e.hopMillis)}`) : null,
      dead ? h('span', { class: 'badge dead-badge' }, 'dead letter') : null,
      e.duplicate ? h('span', { class: 'badge dup-badge', title: 'the same event id again: dropped by its consumers' }, 'duplicate') : null),
    dead && e.error ? h('p', { class: 'error' }, e.error) : null,
    h('dl', { class: 'facts' }, facts.map(([name, value]) => h('div', {}, h('dt', {}, name), h('dd', {}, String(value))))),
    h('details', {}, h('summary', {}, 'Payload'), h('pre', {}, pretty(e.payload))),
    h('details', {}, h('summary', {}, `Headers (${headers.length})`),
      h('pre', {}, headers.map(([name, value]) => `${name}: ${value}`).join('\n'))));
}

/** JSON indented; a payload that is not JSON (a poison message) as it came. */
function pretty(payload) {
  if (payload === null || payload === undefined) return '(none)';
  return typeof payload === 'string' ? payload : JSON.stringify(payload, null, 2);
}

// -------------------------------------------------------------------- the dead letters

const deadLetters = new Map(); // id → the DeadLetter shown
const replayNotes = new Map(); // id → what the last Replay click answered

async function loadDeadLetters() {
  try {
    const list = await api(`/api/board/dead-letters?limit=${DEAD_LETTERS_LIMIT}`);
    deadLetters.clear();
    $('dead-letters').replaceChildren();
    for (const letter of list) upsertDeadLetter(letter, false);
    $('dead-empty').hidden = deadLetters.size > 0;
    showBoardProblem(null);
  } catch (error) {
    report(error);
  }
}

const failedAt = (d) => time(d.lastFailureAt ?? d.firstFailureAt);

function upsertDeadLetter(letter, live) {
  deadLetters.set(letter.id, letter);
  let row = $('dead-letters').querySelector(`tr[data-dead-letter-id="${CSS.escape(letter.id)}"]`);
  if (!row) {
    row = h('tr', { 'data-dead-letter-id': letter.id });
    const later = [...$('dead-letters').children]
      .find((other) => !(failedAt(deadLetters.get(other.dataset.deadLetterId)) >= failedAt(letter)));
    $('dead-letters').insertBefore(row, later ?? null);
    if (live) flash(row);
    while ($('dead-letters').children.length > MAX_DEAD_LETTER_ROWS) {
      const oldest = $('dead-letters').lastElementChild;
      deadLetters.delete(oldest.dataset.deadLetterId);
      oldest.remove();
    }
  }
  if (row.isConnected) keepingFocus(row, () => fillDeadLetterRow(row, letter));
  $('dead-empty').hidden = true;
}

function fillDeadLetterRow(row, d) {
  const replays = d.replays ?? [];
  const position = (topic, partition, offset) => `${topic}/${partition}/${offset}`;
  Object.assign(row.dataset, {
    key: d.key ?? '',
    replays: String(replays.length),
    // Where it was read from and where each replay went: a replay that fails again is
    // the dead letter whose original is one of these.
    original: position(d.originalTopic, d.originalPartition, d.originalOffset),
    replayedTo: replays.map((r) => position(r.topic, r.partition, r.offset)).join(' '),
  });
  const note = replayNotes.get(d.id);
  const preview = d.payload === null || d.payload === undefined ? '(none)' : d.payload.replace(/\s+/g, ' ');
  row.replaceChildren(
    h('td', { class: 'time' }, clock(d.lastFailureAt ?? d.firstFailureAt)),
    h('td', {},
      h('strong', {}, d.originalTopic ?? '?'),
      h('span', { class: 'where' }, ` ${d.originalPartition ?? '?'}/${d.originalOffset ?? '?'}`),
      h('div', { class: 'muted small' }, `→ ${d.topic} ${d.partition}/${d.offset}`)),
    h('td', {}, d.consumerGroup ?? '—'),
    h('td', { class: 'error' },
      h('span', { class: 'clip', title: d.error }, d.error),
      d.attempts === null || d.attempts === undefined
        ? null
        : h('div', { class: 'muted small' }, `${d.attempts} attempt${d.attempts === 1 ? '' : 's'}`)),
    h('td', {},
      h('code', { title: d.key ?? '' }, d.key ? short(d.key) : '—'),
      d.orderId ? h('div', {}, h('button', { type: 'button', class: 'link', 'aria-label': `timeline of order ${d.orderId}`, 'data-focus-key': 'timeline',
        onclick: (e) => openTimeline(d.orderId, e.target) }, 'timeline')) : null),
    h('td', {}, h('code', { class: 'clip payload', title: preview }, preview)),
    h('td', { class: 'replays' }, replays.length
      ? replays.map((r) => h('div', {}, `replayed → ${r.topic} @${r.partition}/${r.offset}`))
      : '—'),
    h('td', { class: 'action' },
      h('button', { type: 'button', class: 'quiet', 'data-action': 'replay', 'data-focus-key': 'replay',
        'aria-label': `Replay ${d.id}`, onclick: () => replay(d.id) }, 'Replay'),
      note ? h('div', { class: `note ${note.ok ? 'ok' : 'bad'}`, role: 'status' }, note.text) : null),
  );
}

async function replay(id) {
  const d = deadLetters.get(id);
  const row = $('dead-letters').querySelector(`tr[data-dead-letter-id="${CSS.escape(id)}"]`);
  const button = row?.querySelector('[data-action=replay]');
  if (button) button.disabled = true;
  const path = `/api/board/dead-letters/${encodeURIComponent(d.topic)}/${d.partition}/${d.offset}/replay`;
  try {
    const { replayedTo } = await api(path, { method: 'POST' });
    replayNotes.set(id, { ok: true, text: `sent again to ${replayedTo}` });
  } catch (error) {
    if (refused(error)) return;
    replayNotes.set(id, { ok: false, text: `not replayed: ${error.message}` });
  }
  // The row as it is now (the stream may have replaced its letter meanwhile), with the note.
  if (row?.isConnected) keepingFocus(row, () => fillDeadLetterRow(row, deadLetters.get(id)));
}

// ------------------------------------------------------------------------- the stream

function setLive(state, retryInMs) {
  const live = $('live');
  live.dataset.state = state;
  live.textContent = {
    off: 'offline',
    connecting: 'connecting…',
    live: 'live',
    retrying: `stream lost: again in ${Math.round((retryInMs ?? 0) / 1000)} s`,
  }[state];
}

/**
 * Follows /api/board/stream while signed in. EventSource cannot send an Authorization
 * header, so it is read with fetch and parsed here. When it ends or fails it is opened
 * again after a pause that doubles up to 30 s; after each opening the lists are read
 * again, since what happened while it was closed was not sent.
 */
async function follow(signal) {
  let backoff = 1000;
  while (!signal.aborted) {
    const silent = new AbortController();
    let watchdog = null;
    const heard = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => silent.abort(), SILENT_STREAM_MS);
    };
    try {
      setLive('connecting');
      const response = await fetch('/api/board/stream', {
        headers: authorised({ Accept: 'text/event-stream' }),
        signal: AbortSignal.any([signal, silent.signal]),
        cache: 'no-store',
      });
      if (!response.ok) throw await problemOf(response);
      heard();
      setLive('live');
      backoff = 1000;
      loadOrders();
      loadDeadLetters();
      await readEvents(response.body, heard, onEvent);
    } catch (error) {
      if (signal.aborted || refused(error)) return;
      console.warn('board stream:', error);
    } finally {
      clearTimeout(watchdog);
    }
    setLive('retrying', backoff);
    await sleep(backoff, signal);
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
  }
}

/** Reads server-sent events: blocks separated by a blank line, `:` lines are comments. */
async function readEvents(body, heard, dispatch) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    heard();
    // Normalised after joining, so a \r\n split between two chunks is still one break.
    const blocks = (buffer + value).replace(/\r\n/g, '\n').split('\n\n');
    buffer = blocks.pop(); // the start of an event still coming
    for (const block of blocks) {
      const event = parseEvent(block);
      if (event) dispatch(event);
    }
  }
}

function parseEvent(block) {
  let name = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') name = value;
    else if (field === 'data') data.push(value);
  }
  return data.length ? { name, data: data.join('\n') } : null;
}

const arrived = { orders: new Map(), deadLetters: new Map(), drawing: null };

function onEvent({ name, data }) {
  let value;
  try {
    value = JSON.parse(data);
  } catch {
    console.warn(`board stream: ${name} event that is not JSON`, data);
    return;
  }
  if (name === 'order') arrived.orders.set(value.orderId, value);
  else if (name === 'dead-letter') arrived.deadLetters.set(value.id, value);
  else return;
  arrived.drawing ??= setTimeout(draw, DRAW_EVERY_MS);
}

/** What arrived since the last drawing, each order and dead letter as it last was. */
function draw() {
  arrived.drawing = null;
  const orderBatch = [...arrived.orders.values()];
  const letterBatch = [...arrived.deadLetters.values()];
  arrived.orders.clear();
  arrived.deadLetters.clear();
  for (const order of orderBatch) upsertOrder(order, true);
  for (const letter of letterBatch) upsertDeadLetter(letter, true);
  showEmpty();
}

// ----------------------------------------------------------------------------- wiring

$('sign-in-form').addEventListener('submit', signIn);
$('sign-out').addEventListener('click', () => signOut(null));
$('filters').addEventListener('submit', (event) => { event.preventDefault(); loadOrders(); });
// `reset` fires before the fields are cleared.
$('filters').addEventListener('reset', () => setTimeout(loadOrders));
for (const select of $('filters').querySelectorAll('select')) {
  select.addEventListener('change', () => $('filters').requestSubmit());
}
$('orders').addEventListener('click', openFromRow);
$('orders').addEventListener('keydown', openFromRow);
$('timeline-close').addEventListener('click', () => $('timeline').close());
// Escape closes a modal <dialog> by itself; focus goes back to the row it came from.
$('timeline').addEventListener('close', () => {
  delete $('timeline').dataset.orderId;
  if (timelineFrom?.isConnected) timelineFrom.focus();
  timelineFrom = null;
});

if (token()) start();
else showSignIn(null);

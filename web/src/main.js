// The dashboard of tide serve: per endpoint, live charts over server-sent events, the decision
// timeline, the comparison of groups, a history view for any range, and the configuration.
import { getJson, HttpError, setToken, streamEvents, token } from './api.js';
import { GroupCharts } from './charts.js';
import './style.css';

const LIVE_POINTS = 900; // 15 minutes at one event per second
const $ = (id) => document.getElementById(id);

const state = {
  endpoints: [],
  endpoint: null,
  view: 'live',
  live: new Map(), // group -> [{t, desired, ready, ...}]
  decisions: [], // newest last
  snapshot: null,
  stream: null, // AbortController of the event stream
  liveCharts: null,
  historyCharts: null,
};
window.tide = state; // for the browser test and curious operators

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function setStatus(text, kind = '') {
  const s = $('status');
  s.textContent = text;
  s.className = `status ${kind}`;
}

function fmtNum(x, digits = 0) {
  if (x == null || Number.isNaN(x)) return '–';
  return Number(x).toLocaleString(undefined, {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

function fmtSeconds(s) {
  if (s == null) return '–';
  if (s === 0) return '0';
  if (s < 1) return `${(s * 1000).toFixed(s < 0.01 ? 1 : 0)} ms`;
  if (s < 120) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  return `${(s / 60).toFixed(1)} min`;
}

function fmtTime(unix) {
  return new Date(unix * 1000).toLocaleTimeString();
}

function fmtDateTime(unix) {
  return new Date(unix * 1000).toLocaleString();
}

function handleError(err) {
  if (err instanceof HttpError && err.status === 401) {
    setStatus('the API needs a token', 'error');
    $('token-form').hidden = false;
    $('token').focus();
    return true;
  }
  setStatus(err.message, 'error');
  return false;
}

// ---- live ----

function onEndpointEvent(s) {
  if (s.name !== state.endpoint) return;
  state.snapshot = s;
  const recent = new Map((s.recent ?? []).map((r) => [r.name, r]));
  for (const g of s.groups) {
    const r = recent.get(g.name) ?? {};
    const points = state.live.get(g.name) ?? [];
    points.push({
      t: s.time,
      desired: g.desired,
      ready: g.ready,
      starting: g.starting,
      draining: g.draining,
      queued: g.queued,
      in_flight: g.in_flight,
      rps: r.rps ?? 0,
      latency_p50_s: r.latency_p50_s ?? null,
      latency_p95_s: r.latency_p95_s ?? null,
      latency_p99_s: r.latency_p99_s ?? null,
    });
    if (points.length > LIVE_POINTS) points.splice(0, points.length - LIVE_POINTS);
    state.live.set(g.name, points);
    state.liveCharts.update(g.name, points);
  }
  renderCards(s, recent);
  renderComparison(s);
  setStatus(`live · ${fmtTime(s.time)}`, 'ok');
}

function onDecisionEvent(d) {
  if (d.endpoint !== state.endpoint) return;
  state.decisions.push(d);
  if (state.decisions.length > 200) state.decisions.shift();
  renderDecisions($('decisions'), state.decisions);
}

function renderCards(s, recent) {
  const cards = $('cards');
  cards.replaceChildren();
  for (const g of s.groups) {
    const r = recent.get(g.name) ?? {};
    const card = el(
      'div',
      { class: 'card', 'data-group': g.name },
      el('h3', {}, g.name, el('small', {}, ` ${g.provisioner}, ${g.min_replicas}–${g.max_replicas} replicas`)),
      el(
        'dl',
        {},
        ...[
          ['desired', g.desired],
          ['ready', g.ready],
          ['starting', g.starting],
          ['draining', g.draining],
          ['queued', g.queued],
          ['in flight', g.in_flight],
          ['req/s', fmtNum(r.rps, 1)],
          ['p95 (10 s)', fmtSeconds(r.latency_p95_s)],
        ].flatMap(([k, v]) => [el('dt', {}, k), el('dd', { 'data-field': k }, v)]),
      ),
      el('p', { class: 'reason' }, g.last_reason || ''),
    );
    if (g.last_error) card.append(el('p', { class: 'error' }, `last failure: ${g.last_error}`));
    const ro = g.rollout;
    if (ro && ro.state !== 'none') {
      const line =
        `rollout to template generation ${ro.generation} ${ro.state}: ` +
        `${ro.old_replicas} old, ${ro.new_replicas} new replicas`;
      const cls = ro.state === 'stopped' ? 'error' : 'reason';
      card.append(el('p', { class: cls, 'data-field': 'rollout' }, ro.reason ? `${line}; ${ro.reason}` : line));
    }
    cards.append(card);
  }
}

function renderComparison(s) {
  const head = [
    'group', 'requests', 'ok', '429', '502', '503', '504', 'gone', 'p50', 'p95', 'p99',
    'wait p95', 'ttft p50', 'ttft p99', 'tpot p50', 'tpot p99',
    'req / replica-h', 'replica-h', 'cost', 'cold starts', 'cold mean', 'cold max',
  ];
  // Streamed answers only (an older server sends no ttft_s / tpot_s).
  const q = (h, key) => fmtSeconds(h && h.count ? h[key] : null);
  const rows = s.groups.map((g) => {
    const st = g.stats;
    const o = st.outcomes;
    return [
      g.name, fmtNum(st.requests), fmtNum(o.ok), fmtNum(o['429']), fmtNum(o['502']),
      fmtNum(o['503']), fmtNum(o['504']), fmtNum(o.client_gone),
      fmtSeconds(st.latency_s.count ? st.latency_s.p50 : null),
      fmtSeconds(st.latency_s.count ? st.latency_s.p95 : null),
      fmtSeconds(st.latency_s.count ? st.latency_s.p99 : null),
      fmtSeconds(st.queue_wait_s.count ? st.queue_wait_s.p95 : null),
      q(st.ttft_s, 'p50'), q(st.ttft_s, 'p99'), q(st.tpot_s, 'p50'), q(st.tpot_s, 'p99'),
      fmtNum(st.requests_per_replica_hour, 0), fmtNum(st.replica_seconds / 3600, 3),
      st.cost != null ? `$${fmtNum(st.cost, 4)}` : '–', fmtNum(st.cold_start_s.count),
      fmtSeconds(st.cold_start_s.count ? st.cold_start_s.mean : null),
      fmtSeconds(st.cold_start_s.count ? st.cold_start_s.max : null),
    ];
  });
  $('comparison').replaceChildren(table(head, rows, 'comparison'));
}

function table(head, rows, cls = '') {
  return el(
    'table',
    { class: cls },
    el('thead', {}, el('tr', {}, ...head.map((h) => el('th', {}, h)))),
    el('tbody', {}, ...rows.map((r) => el('tr', {}, ...r.map((c) => el('td', {}, c))))),
  );
}

function renderDecisions(container, decisions) {
  if (!decisions.length) {
    container.replaceChildren(el('p', { class: 'note' }, 'No scaling decision yet.'));
    return;
  }
  const items = [...decisions].reverse().slice(0, 100).map((d) =>
    el(
      'div',
      { class: `decision ${d.to > d.from ? 'up' : 'down'}` },
      el('time', {}, fmtTime(d.time)),
      el('span', { class: 'group' }, d.group),
      el('span', { class: 'change' }, `${d.from} → ${d.to}`),
      el('span', { class: 'reason' }, d.reason),
    ),
  );
  container.replaceChildren(...items);
}

// The last 15 minutes from the history API, so that the live charts do not start empty; a
// server without history (404) leaves them to fill from now on.
async function backfill(endpoint) {
  const to = Math.floor(Date.now() / 1000);
  try {
    const h = await getJson(`/v1/endpoints/${encodeURIComponent(endpoint)}/history?from=${to - 900}&to=${to}&step=2`);
    for (const g of h.groups) {
      const points = g.points.slice(-LIVE_POINTS);
      state.live.set(g.name, points);
      state.liveCharts.update(g.name, points);
    }
  } catch {
    // no history here
  }
}

async function startLive() {
  state.stream?.abort();
  const controller = new AbortController();
  state.stream = controller;
  state.live.clear();
  state.decisions = [];
  state.liveCharts.clear();
  renderDecisions($('decisions'), []);
  const endpoint = state.endpoint;
  await backfill(endpoint);
  while (!controller.signal.aborted) {
    try {
      setStatus('connecting…');
      await streamEvents(
        `/v1/events?endpoint=${encodeURIComponent(endpoint)}`,
        (name, data) => {
          if (name === 'endpoint') onEndpointEvent(data);
          else if (name === 'decision') onDecisionEvent(data);
        },
        controller.signal,
      );
      setStatus('stream ended; reconnecting', 'error');
    } catch (err) {
      if (controller.signal.aborted) return;
      if (handleError(err)) return;
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

// ---- history ----

function rangeSeconds() {
  const last = $('range-last').value;
  if (last !== 'custom') {
    const to = Math.floor(Date.now() / 1000);
    return { from: to - Number(last), to };
  }
  const from = Math.floor(new Date($('range-from').value).getTime() / 1000);
  const to = Math.floor(new Date($('range-to').value).getTime() / 1000);
  return { from, to };
}

async function loadHistory() {
  const { from, to } = rangeSeconds();
  const note = $('history-note');
  state.historyCharts.clear();
  if (!(to > from)) {
    note.textContent = 'choose a range with "from" before "to"';
    return;
  }
  const step = Math.max(1, Math.ceil((to - from) / 600));
  const name = encodeURIComponent(state.endpoint);
  note.textContent = 'loading…';
  try {
    const h = await getJson(`/v1/endpoints/${name}/history?from=${from}&to=${to}&step=${step}`);
    let points = 0;
    for (const g of h.groups) {
      state.historyCharts.update(g.name, g.points);
      points += g.points.length;
    }
    note.textContent = `${fmtDateTime(h.from)} – ${fmtDateTime(h.to)}, a point every ${h.step_s} s (${points} points)`;
  } catch (err) {
    if (err instanceof HttpError && err.status === 404) {
      note.textContent = 'This server keeps no history (GET …/history answered 404).';
    } else if (!handleError(err)) {
      note.textContent = err.message;
    }
  }
  try {
    const d = await getJson(`/v1/endpoints/${name}/decisions?from=${from}&to=${to}&limit=500`);
    renderDecisions($('history-decisions'), d.decisions);
  } catch (err) {
    $('history-decisions').replaceChildren(
      el('p', { class: 'note' }, err.status === 404 ? 'No decision history on this server.' : err.message),
    );
  }
}

// ---- config ----

async function loadConfig() {
  const body = $('config-body');
  try {
    const e = await getJson(`/v1/endpoints/${encodeURIComponent(state.endpoint)}`);
    const groups = table(
      ['group', 'provisioner', 'min', 'max', 'concurrency', 'price / h', 'launches', 'failures'],
      e.groups.map((g) => [
        g.name, g.provisioner, g.min_replicas, g.max_replicas, g.concurrency,
        g.price != null ? `$${g.price}` : '–', g.launches, g.failures,
      ]),
      'config',
    );
    const routing = e.routing.mode === 'split'
      ? `split, weights ${Object.entries(e.routing.weights).map(([k, v]) => `${k}: ${v}`).join(', ')}` +
        (e.routing.sticky_header ? `, sticky by ${e.routing.sticky_header}` : '')
      : `overflow, order ${e.routing.order.join(' → ')}`;
    const facts = el(
      'dl',
      { class: 'facts' },
      el('dt', {}, 'URL prefix'), el('dd', {}, e.url_prefix),
      el('dt', {}, 'routing'), el('dd', {}, routing),
      el('dt', {}, 'queue'), el('dd', {}, `at most ${e.queue.max_length} held, ${e.queue.timeout_s} s each`),
      el('dt', {}, 'SLO'), el('dd', {}, e.slo.ttft_s != null
        ? `first token within ${e.slo.ttft_s} s (wait budget now ${fmtNum(e.slo.wait_budget_s, 3)} s)`
        : `start within ${e.slo.max_wait_s} s`),
    );
    const raw = el('details', {}, el('summary', {}, 'as JSON'), el('pre', {}, JSON.stringify(e, null, 2)));
    body.replaceChildren(el('h2', {}, e.name), facts, groups, raw);
  } catch (err) {
    if (!handleError(err)) body.replaceChildren(el('p', { class: 'error' }, err.message));
  }
}

// ---- navigation ----

function show(view) {
  state.view = view;
  for (const b of document.querySelectorAll('#views button')) b.classList.toggle('active', b.dataset.view === view);
  for (const v of ['live', 'history', 'config']) $(v).hidden = v !== view;
  if (view === 'history') loadHistory();
  if (view === 'config') loadConfig();
}

function selectEndpoint(name) {
  state.endpoint = name;
  for (const b of document.querySelectorAll('#endpoints button')) b.classList.toggle('active', b.dataset.endpoint === name);
  history.replaceState(null, '', `#${encodeURIComponent(name)}`);
  startLive();
  if (state.view !== 'live') show(state.view);
}

async function init() {
  state.liveCharts = new GroupCharts($('live-charts'));
  state.historyCharts = new GroupCharts($('history-charts'));
  $('token-button').onclick = () => {
    $('token-form').hidden = !$('token-form').hidden;
    $('token').value = token();
  };
  $('token-form').onsubmit = (e) => {
    e.preventDefault();
    setToken($('token').value.trim());
    $('token-form').hidden = true;
    init2();
  };
  $('token-clear').onclick = () => {
    setToken('');
    $('token').value = '';
  };
  for (const b of document.querySelectorAll('#views button')) b.onclick = () => show(b.dataset.view);
  $('range-last').onchange = () => {
    const custom = $('range-last').value === 'custom';
    $('range-from').disabled = !custom;
    $('range-to').disabled = !custom;
    if (custom && !$('range-from').value) {
      const now = new Date();
      const local = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
      $('range-to').value = local(now);
      $('range-from').value = local(new Date(now.getTime() - 3600000));
    }
  };
  $('range').onsubmit = (e) => {
    e.preventDefault();
    loadHistory();
  };
  await init2();
}

async function init2() {
  try {
    const list = await getJson('/v1/endpoints');
    state.endpoints = list.endpoints.map((e) => e.name);
  } catch (err) {
    handleError(err);
    return;
  }
  const nav = $('endpoints');
  nav.replaceChildren(
    ...state.endpoints.map((name) => {
      const b = el('button', { 'data-endpoint': name }, name);
      b.onclick = () => selectEndpoint(name);
      return b;
    }),
  );
  const wanted = decodeURIComponent(location.hash.slice(1));
  if (state.endpoints.length) selectEndpoint(state.endpoints.includes(wanted) ? wanted : state.endpoints[0]);
  else setStatus('no endpoint configured');
}

init();

// The dashboard in a real browser (Debian's chromium, headless, via playwright-core) against a
// real `tide serve` with demo-model replicas and real requests: the page loads, the live charts
// get points from the run, decisions and the comparison of groups show, the history and config
// views work, and a token is sent as a bearer header; legends show numbers, req/s is non-zero
// while requests are held or in flight, and a page opened after the run draws the latency from
// the history. Saves screenshots as test artifacts (dashboard.png, dashboard-first-load.png).
//
// Env: TIDE_BIN (the tide binary, whose share/tide/web holds the built dashboard),
// ARTIFACT_DIR (where the screenshots go), CHROMIUM (default /usr/bin/chromium).
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { eventually, launchBrowser, sendRequests, startTide } from './tide.mjs';

const TIDE_BIN = process.env.TIDE_BIN;
const ARTIFACT_DIR = process.env.ARTIFACT_DIR ?? 'artifacts';
assert.ok(TIDE_BIN, 'set TIDE_BIN to the tide binary');

let tide;
let browser;
before(async () => {
  tide = await startTide(TIDE_BIN);
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  const exit = await tide?.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, `tide serve did not stop cleanly:\n${tide?.log()}`);
});

test('live charts, decisions and the group comparison show data from a real run', { timeout: 120000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1500, height: 1100 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${tide.api}/`);
  await page.waitForSelector('.chart[data-kind="replicas"][data-group="a100"]', { timeout: 30000 });
  assert.equal(await page.textContent('#endpoints button.active'), 'chat');

  // 32 requests over 4 s, every other one streamed (SSE): both groups scale up from zero, serve,
  // and decide with reasons.
  const sent = sendRequests(tide.gateway, 32, 125);
  // While requests are held or in service, before any has ended (the first wait out a 1 s cold
  // start and take 700 ms), a card reads a non-zero req/s: arrivals, not answers ended.
  const busy = await eventually(() => page.evaluate(busyCardRate), 20, 'req/s > 0 on a card with requests in flight, none ended');
  assert.ok(busy.rps > 0 && busy.present > 0 && busy.ended === 0, JSON.stringify(busy));
  const statuses = await sent;
  assert.deepEqual(statuses, Array(32).fill(200), tide.log());

  await eventually(() => page.evaluate(() => window.tide.decisions.some((d) => d.to > d.from)), 20, 'a scale-up decision');
  await page.waitForSelector('#decisions .decision.up .reason');
  assert.match(await page.textContent('#decisions .decision.up .reason'), /\S/);

  // The charts hold points from the run: replicas went up, latency was measured.
  await eventually(async () => Number(await page.getAttribute('.chart[data-kind="replicas"][data-group="a100"]', 'data-points')) >= 5, 20, 'replica chart points');
  await eventually(async () => Number(await page.getAttribute('.chart[data-kind="latency"][data-group="a100"]', 'data-points')) >= 1, 20, 'latency chart points');
  const peak = await page.evaluate(() =>
    Math.max(...[...window.tide.live.values()].flat().map((p) => p.ready)),
  );
  assert.ok(peak >= 1, `peak ready ${peak}`);
  const p50 = await page.evaluate(() =>
    [...window.tide.live.values()].flat().map((p) => p.latency_p50_s).find((v) => v != null),
  );
  assert.ok(p50 >= 0.7, `latency p50 ${p50} (each request is served in 700 ms)`);

  // The comparison table: one row per group, every request answered, a cost from the price.
  await eventually(async () => {
    const rows = await page.$$eval('#comparison tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
    return rows.length === 2 && rows.reduce((n, r) => n + Number(r[2].replace(/,/g, '')), 0) === 32;
  }, 20, 'the comparison to count 32 answered requests');
  const cost = await page.textContent('#comparison tbody tr:first-child td:nth-child(19)');
  assert.match(cost, /^\$\d/);
  // The streamed half shows its time to first token and per output token (the gateway's
  // ttft_s and tpot_s) in a group that served some.
  const header = await page.$$eval('#comparison thead th', (ths) => ths.map((th) => th.textContent));
  assert.deepEqual(header.slice(12, 16), ['ttft p50', 'ttft p99', 'tpot p50', 'tpot p99']);
  const streamed = await page.$$eval('#comparison tbody tr', (trs) =>
    trs.map((tr) => [...tr.children].slice(12, 16).map((td) => td.textContent)),
  );
  assert.ok(streamed.some((r) => r.every((c) => /\d/.test(c))), JSON.stringify(streamed));

  // Legends carry numbers, never uPlot's "--": the latest values with the cursor off the chart,
  // and again after it passed over one and left.
  await assertLegendsShowNumbers(page, '#live-charts');
  await page.hover('#live-charts .chart[data-kind="replicas"][data-group="a100"] .u-over');
  await page.mouse.move(1, 1);
  await assertLegendsShowNumbers(page, '#live-charts');

  mkdirSync(ARTIFACT_DIR, { recursive: true });
  await page.screenshot({ path: join(ARTIFACT_DIR, 'dashboard.png'), fullPage: true });

  // Config view: the groups as configured.
  await page.click('#views button[data-view="config"]');
  await page.waitForSelector('#config-body table.config tbody tr');
  const groups = await page.$$eval('#config-body table.config tbody tr td:first-child', (tds) => tds.map((t) => t.textContent));
  assert.deepEqual(groups, ['a100', 'l4']);
  assert.match(await page.textContent('#config-body .facts'), /split, weights a100: 50, l4: 50/);
  assert.deepEqual(errors, []);
  await page.close();
});

test('on first load the latency chart is drawn from the history the API keeps', { timeout: 60000 }, async () => {
  // Runs after the first test: its 32 answers are in the state file's history. A new page has
  // no live latency yet (the event stream's 10 s window starts with it).
  await eventually(historyHasLatency, 20, 'a latency sample of each group in the history (every 5 s)');
  const loadedAt = Date.now() / 1000;
  const page = await browser.newPage({ viewport: { width: 1500, height: 1100 } });
  await page.goto(`${tide.api}/`);
  const latency = '#live-charts .chart[data-kind="latency"][data-group="a100"]';
  await page.waitForSelector(latency);
  await eventually(async () => Number(await page.getAttribute(latency, 'data-points')) >= 1, 20, 'latency points on first load');
  const older = await page.evaluate(
    (t) => window.tide.live.get('a100').filter((p) => p.t <= t && p.latency_p50_s != null).length,
    loadedAt,
  );
  assert.ok(older >= 1, 'latency points from before the page was opened');
  // Drawn, not only held: the canvas has pixels of the p50 series' color.
  await eventually(() => page.evaluate(coloredPixels, { selector: latency, rgb: [0x16, 0xa3, 0x4a] }), 20, 'p50 drawn on the canvas');
  await assertLegendsShowNumbers(page, '#live-charts');
  mkdirSync(ARTIFACT_DIR, { recursive: true });
  await page.screenshot({ path: join(ARTIFACT_DIR, 'dashboard-first-load.png'), fullPage: true });
  await page.close();
});

test('history view charts what GET /v1/endpoints/{name}/history returns', { timeout: 60000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const seen = [];
  // The history contract (docs/dashboard.md): answered here from the live run's shape, so that
  // the view is tested whether or not this server keeps history.
  await page.route('**/v1/endpoints/chat/history?*', (route) => {
    const url = new URL(route.request().url());
    seen.push(url.search);
    const from = Number(url.searchParams.get('from'));
    const step = Number(url.searchParams.get('step'));
    const points = Array.from({ length: 20 }, (_, i) => ({
      t: from + i * step, desired: i < 10 ? 2 : 0, ready: i < 10 ? 2 : 0, starting: 0, draining: 0,
      queued: 0, in_flight: i < 10 ? 3 : 0, requests: 5, latency_p50_s: 0.8, latency_p95_s: 1.1, latency_p99_s: 1.4,
    }));
    route.fulfill({
      json: { endpoint: 'chat', from, to: Number(url.searchParams.get('to')), step_s: step, groups: [{ name: 'a100', points }] },
    });
  });
  await page.route('**/v1/endpoints/chat/decisions?*', (route) =>
    route.fulfill({ json: { decisions: [{ time: Date.now() / 1000 - 60, group: 'a100', from: 0, to: 2, reason: 'queued 4 > 2 x 0 ready: 0 -> 2', queued: 4, in_flight: 0, ready: 0, starting: 0 }] } }),
  );
  await page.goto(`${tide.api}/#chat`);
  // The live view first backfills its charts with the last 15 minutes, 2 s a point.
  await eventually(() => seen.length >= 1, 20, 'the live view to ask for the last 15 minutes');
  const [, bfFrom, bfTo, bfStep] = /from=(\d+)&to=(\d+)&step=(\d+)/.exec(seen[0]).map(Number);
  assert.deepEqual([bfTo - bfFrom, bfStep], [900, 2]);
  const livePoints = () => page.getAttribute('#live-charts .chart[data-kind="replicas"][data-group="a100"]', 'data-points');
  await eventually(async () => Number(await livePoints()) >= 20, 20, 'the backfilled points in the live chart');
  seen.length = 0;
  await page.click('#views button[data-view="history"]');
  await page.waitForSelector('#history-charts .chart[data-kind="replicas"][data-points="20"]');
  assert.match(seen[0], /^\?from=\d+&to=\d+&step=\d+$/);
  const [, from, to, step] = /from=(\d+)&to=(\d+)&step=(\d+)/.exec(seen[0]).map(Number);
  assert.equal(to - from, 3600); // the default range: the last hour
  assert.equal(step, 6); // at most 600 points
  assert.match(await page.textContent('#history-decisions'), /0 → 2.*queued 4/);
  // Another range from the picker.
  await page.selectOption('#range-last', '86400');
  await page.click('#range button[type="submit"]');
  await eventually(() => seen.length >= 2, 5, 'a second history request');
  assert.match(seen[1], /step=144$/);
  await page.close();
});

test('a token entered once is kept and sent as a bearer header, the event stream included', { timeout: 60000 }, async () => {
  const page = await browser.newPage();
  const authorized = [];
  // Plays an API that requires a token (tide serve's `server.api_token`).
  await page.route('**/v1/**', async (route) => {
    const auth = route.request().headers().authorization;
    if (auth !== 'Bearer s3cret') return route.fulfill({ status: 401, json: { error: { type: 'unauthorized', message: 'token required' } } });
    authorized.push(new URL(route.request().url()).pathname);
    return route.continue();
  });
  await page.goto(`${tide.api}/`);
  await page.waitForSelector('#token-form:not([hidden])');
  // The form says where the token comes from.
  assert.match(await page.textContent('#token-help'), /tide token show/);
  await page.fill('#token', 's3cret');
  await page.click('#token-form button[type="submit"]');
  await page.waitForSelector('#endpoints button.active');
  await eventually(() => authorized.includes('/v1/events'), 20, 'the event stream with the token');
  assert.equal(await page.evaluate(() => localStorage.getItem('tide.token')), 's3cret');
  await page.close();
});

// Whether GET /v1/endpoints/chat/history (real HTTP, as the dashboard asks) has a latency yet.
async function historyHasLatency() {
  const to = Math.floor(Date.now() / 1000); // as the page's backfill asks: samples before now
  const r = await fetch(`${tide.api}/v1/endpoints/chat/history?from=${to - 900}&to=${to}&step=2`);
  const h = await r.json();
  // Every group's: the legends of every chart are checked on first load.
  return ['a100', 'l4'].every((name) =>
    h.groups.some((g) => g.name === name && g.points.some((p) => p.latency_p50_s != null)),
  );
}

// In the page: the first card with requests held or in flight, none of its group's ended yet,
// and its req/s above zero.
function busyCardRate() {
  const groups = window.tide.snapshot?.groups ?? [];
  for (const card of document.querySelectorAll('#cards .card')) {
    const field = (k) => Number(card.querySelector(`dd[data-field="${k}"]`)?.textContent.replace(/,/g, ''));
    const present = field('queued') + field('in flight');
    const rps = field('req/s');
    const ended = groups.find((g) => g.name === card.dataset.group)?.stats.requests;
    if (present > 0 && rps > 0 && ended === 0) return { group: card.dataset.group, present, rps, ended };
  }
  return null;
}

// In the page: whether the canvas of the chart at `selector` has pixels of color `rgb`.
function coloredPixels({ selector, rgb }) {
  const canvas = document.querySelector(`${selector} canvas`);
  const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (Math.abs(data[i] - rgb[0]) < 8 && Math.abs(data[i + 1] - rgb[1]) < 8 && Math.abs(data[i + 2] - rgb[2]) < 8 && data[i + 3] > 200) n++;
  }
  return n > 0;
}

// Every legend value of every chart under `root` is a number (the time column: a time).
async function assertLegendsShowNumbers(page, root) {
  const legends = await page.$$eval(`${root} .chart`, (charts) =>
    charts.map((c) => ({
      kind: c.dataset.kind,
      group: c.dataset.group,
      values: [...c.querySelectorAll('.u-legend .u-series .u-value')].map((v) => v.textContent),
    })),
  );
  assert.ok(legends.length >= 6, `charts: ${legends.length}`);
  for (const { kind, group, values } of legends) {
    assert.equal(values.length > 1, true, `${kind} ${group}: no legend values`);
    const [time, ...series] = values;
    assert.match(time, /\d/, `${kind} ${group}: legend time ${time}`);
    for (const v of series) assert.match(v, /^-?\d+(\.\d+)?$/, `${kind} ${group}: legend ${JSON.stringify(values)}`);
  }
}

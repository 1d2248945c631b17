// The report of `tide sim --out` in a real browser (Debian's chromium, headless, via
// playwright-core): the runs overlaid on one scale above the per-run charts, the warm-up shaded,
// replica axes on whole numbers, the table with the CLI's columns. Saves report.png.
//
// Env: TIDE_BIN (the tide binary), TIDE_SOURCE_DIR (for examples/demo.yaml), ARTIFACT_DIR
// (where report.png goes), CHROMIUM (default /usr/bin/chromium).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import { launchBrowser } from './tide.mjs';

const TIDE_BIN = process.env.TIDE_BIN;
const SOURCE = process.env.TIDE_SOURCE_DIR ?? fileURLToPath(new URL('../..', import.meta.url));
const ARTIFACT_DIR = process.env.ARTIFACT_DIR ?? 'artifacts';
assert.ok(TIDE_BIN, 'set TIDE_BIN to the tide binary');

const POLICIES = ['tide', 'hf', 'viewcomfy'];
let out;
let cli;
let browser;
before(async () => {
  out = mkdtempSync(join(tmpdir(), 'tide-report-'));
  cli = execFileSync(TIDE_BIN, [
    'sim', '--config', join(SOURCE, 'examples/demo.yaml'), '--synthetic', 'bursts', '--rate', '4',
    '--duration', '40m', '--warmup', '5m', '--compare', POLICIES.join(','), '--no-progress', '--out', out,
  ], { encoding: 'utf8' });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  rmSync(out, { recursive: true, force: true });
});

test('the report overlays the runs, shades the warm-up and carries the CLI columns', { timeout: 60000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1300, height: 1400 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(pathToFileURL(join(out, 'report.html')).href);

  // The overlays come first, above the first run's own charts, one line per run on one scale.
  const order = await page.evaluate(() => {
    const top = (sel) => document.querySelector(sel)?.getBoundingClientRect().top ?? null;
    return { replicas: top('#overlay-replicas svg'), wait: top('#overlay-wait svg'), firstRun: top('h2#tide') };
  });
  assert.ok(order.replicas != null && order.wait != null, JSON.stringify(order));
  assert.ok(order.replicas < order.wait && order.wait < order.firstRun, JSON.stringify(order));
  for (const id of ['#overlay-replicas', '#overlay-wait']) {
    const legend = await page.$$eval(`${id} text.legend`, (ts) => ts.map((t) => t.textContent));
    for (const p of POLICIES) assert.ok(legend.includes(p), `${id} legend ${legend}`);
    const lines = await page.$$eval(`${id} path`, (ps) => ps.filter((p) => p.getBBox().width > 0).length);
    assert.ok(lines >= 3, `${id}: ${lines} lines`);
  }

  // The warm-up (5m of 40m) is shaded on the overlays and on every chart of the runs: a visible
  // band an eighth of the plot wide.
  const shades = await page.$$eval('rect.warmup', (rs) =>
    rs.map((r) => {
      const plot = r.ownerSVGElement.querySelector('line.grid').getBBox().width;
      const style = getComputedStyle(r);
      return { share: r.getBBox().width / plot, fill: style.fill, opacity: Number(style.fillOpacity) };
    }),
  );
  const runs = await page.$$eval('h2[id]:not(#overlay)', (hs) => hs.length); // the reference rows too
  assert.ok(runs >= POLICIES.length, `${runs} runs`);
  assert.equal(shades.length, 2 + 4 * runs); // one group: four charts a run
  for (const s of shades) {
    assert.ok(Math.abs(s.share - 0.125) < 0.01, JSON.stringify(s));
    assert.ok(s.opacity > 0 && s.fill !== 'none', JSON.stringify(s));
  }

  // Replica axes tick at whole numbers.
  const ticks = await page.$$eval('#overlay-replicas text.ytick', (ts) => ts.map((t) => t.textContent));
  assert.ok(ticks.length >= 2, `${ticks}`);
  for (const t of ticks) assert.match(t, /^\d+$/, `replica tick ${t}`);

  // The table: the columns the CLI prints, in its order, and its figures.
  const header = await page.$$eval('table.comparison th', (ths) => ths.map((th) => th.textContent));
  const cliHeader = cli.split('\n')[0].trim().split(/\s{2,}/);
  assert.deepEqual(header, cliHeader);
  const tideRow = await page.$$eval('table.comparison tr:nth-child(2) td', (tds) => tds.map((td) => td.textContent));
  const cliRow = cli.split('\n').find((l) => l.startsWith('tide ')).trim().split(/\s{2,}/);
  assert.deepEqual(tideRow, cliRow);

  mkdirSync(ARTIFACT_DIR, { recursive: true });
  await page.screenshot({ path: join(ARTIFACT_DIR, 'report.png') });
  assert.deepEqual(errors, []);
  await page.close();
});

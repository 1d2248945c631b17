// Time-series charts with uPlot: one chart per figure and group, resized with the page.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export const palette = {
  desired: '#111827',
  ready: '#16a34a',
  starting: '#f59e0b',
  draining: '#9ca3af',
  queued: '#dc2626',
  in_flight: '#2563eb',
  p50: '#16a34a',
  p95: '#f59e0b',
  p99: '#dc2626',
};

// The three figures shown per group, live and in history: which series, from which field.
export const figures = [
  {
    kind: 'replicas',
    title: 'Replicas',
    series: [
      { label: 'desired', field: 'desired', dash: [6, 4], step: true },
      { label: 'ready', field: 'ready', step: true, fill: true },
      { label: 'starting', field: 'starting', step: true },
      { label: 'draining', field: 'draining', step: true },
    ],
  },
  {
    kind: 'load',
    title: 'Queue and in flight',
    series: [
      { label: 'queued', field: 'queued' },
      { label: 'in flight', field: 'in_flight', color: palette.in_flight },
    ],
  },
  {
    kind: 'latency',
    title: 'Latency (s)',
    // Latency exists only where requests were answered: marked points, so that a lone answer
    // between idle spans shows too.
    series: [
      { label: 'p50', field: 'latency_p50_s', marks: true },
      { label: 'p95', field: 'latency_p95_s', marks: true },
      { label: 'p99', field: 'latency_p99_s', marks: true },
    ],
  },
];

// A legend value: the value under the cursor, or with the cursor off the chart the latest value
// the series has (uPlot's default shows "--" there).
function lastIndex(u, sidx) {
  const values = u.data[sidx] ?? [];
  for (let i = values.length - 1; i >= 0; i--) if (values[i] != null) return i;
  return null;
}

export function fmtValue(v) {
  if (v == null || Number.isNaN(v)) return '–';
  return Number.isInteger(v) ? String(v) : v.toFixed(Math.abs(v) < 10 ? 3 : 1);
}

function legendValue(u, v, sidx, idx) {
  if (idx != null) return fmtValue(v);
  const last = lastIndex(u, sidx);
  return last == null ? '–' : fmtValue(u.data[sidx][last]);
}

function legendTime(u, t, sidx, idx) {
  const at = idx != null ? t : u.data[0][u.data[0].length - 1];
  return at == null ? '–' : new Date(at * 1000).toLocaleTimeString();
}

function colorOf(s) {
  return s.color ?? palette[s.label] ?? palette[s.field] ?? '#6b7280';
}

export class Chart {
  // `figure`: one of `figures`; `container`: where it goes.
  constructor(container, figure, group) {
    this.figure = figure;
    this.el = document.createElement('div');
    this.el.className = 'chart';
    this.el.dataset.kind = figure.kind;
    this.el.dataset.group = group;
    this.el.dataset.points = '0';
    const title = document.createElement('h3');
    title.textContent = `${figure.title} · ${group}`;
    this.el.append(title);
    container.append(this.el);
    const stepped = uPlot.paths.stepped({ align: 1 });
    const opts = {
      width: this.width(),
      height: 180,
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [{}, { size: 44 }],
      series: [
        { value: legendTime },
        ...figure.series.map((s) => ({
          label: s.label,
          stroke: colorOf(s),
          width: 2,
          dash: s.dash,
          fill: s.fill ? colorOf(s) + '22' : undefined,
          paths: s.step ? stepped : undefined,
          spanGaps: false,
          points: s.marks ? { show: true, size: 7, fill: colorOf(s) } : { show: false },
          value: legendValue,
        })),
      ],
    };
    this.plot = new uPlot(opts, [[], ...figure.series.map(() => [])], this.el);
    this.resize = () => this.plot.setSize({ width: this.width(), height: 180 });
    window.addEventListener('resize', this.resize);
  }

  // Three charts a row on a wide page (12 px gaps, 18 px of padding and border each), else one.
  width() {
    const w = this.el.parentElement?.clientWidth ?? 600;
    const columns = window.innerWidth > 1100 ? 3 : 1;
    return Math.max(260, Math.floor((w - 12 * (columns - 1)) / columns) - 18);
  }

  // points: [{t, <field>: value|null}, ...] sorted by t (Unix seconds).
  setPoints(points) {
    const data = [points.map((p) => p.t)];
    for (const s of this.figure.series) data.push(points.map((p) => p[s.field] ?? null));
    this.plot.setData(data);
    const withData = points.filter((p) => this.figure.series.some((s) => p[s.field] != null));
    this.el.dataset.points = String(withData.length);
  }

  destroy() {
    window.removeEventListener('resize', this.resize);
    this.plot.destroy();
    this.el.remove();
  }
}

// A row of the three figures for each group, in `container`; update(groupName, points).
export class GroupCharts {
  constructor(container) {
    this.container = container;
    this.rows = new Map();
  }

  update(group, points) {
    let row = this.rows.get(group);
    if (!row) {
      const el = document.createElement('div');
      el.className = 'chart-row';
      this.container.append(el);
      row = figures.map((f) => new Chart(el, f, group));
      this.rows.set(group, row);
    }
    for (const chart of row) chart.setPoints(points);
  }

  clear() {
    for (const row of this.rows.values()) for (const c of row) c.destroy();
    this.rows.clear();
    this.container.replaceChildren();
  }
}

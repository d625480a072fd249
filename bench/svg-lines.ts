// The line form of a trial's chart (ChartSpec.lines): one panel per number,
// x the number a variant sits at (hosts in the cluster), one line per series
// (the variant's name without its last `-` part: `dpr-hash-n4` is series
// `dpr-hash` at its x), each point the median with a whisker over min-max.
// "Grows with N" or "flattens" reads at a glance. Hand-written SVG, as svg.ts.
import { machineLine, num, type Spread, type TrialReport, type VariantSummary } from './report';
import type { ChartSpec } from './types';

const WIDTH = 820;
const PLOT_X = 70;
const PLOT_W = 520;
const PLOT_H = 200;
const PANEL_GAP = 70;
const DEFAULT_COLOUR = '#7f8c8d';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const seriesOf = (name: string) => name.replace(/-[^-]+$/, '');

function spreadOf(r: TrialReport, v: VariantSummary, metric: string): Spread | undefined {
  if (metric === 'value') return { median: v.median, min: v.min, max: v.max };
  if (metric === 'secondary') {
    const xs = r.runs.filter((x) => x.variant === v.name).map((x) => x.measurement.secondary);
    return xs.length ? { median: v.secondaryMedian, min: Math.min(...xs), max: Math.max(...xs) } : undefined;
  }
  return v.metrics[metric];
}

function colour(spec: ChartSpec, name: string): string {
  return spec.colours?.find(([prefix]) => name.startsWith(prefix))?.[1] ?? DEFAULT_COLOUR;
}

function panel(r: TrialReport, spec: ChartSpec, p: ChartSpec['panels'][number], top: number): string[] {
  const xMetric = spec.lines!.x;
  const points = r.variants.flatMap((v) => {
    const x = v.metrics[xMetric]?.median;
    const y = spreadOf(r, v, p.metric);
    return x === undefined || y === undefined || !Number.isFinite(y.median) ? [] : [{ series: seriesOf(v.name), x, y }];
  });
  const xs = [...new Set(points.map((q) => q.x))].sort((a, b) => a - b);
  const yMax = Math.max(...points.map((q) => q.y.max), 0) * 1.1 || 1;
  const px = (x: number) => PLOT_X + (xs.length > 1 ? ((x - xs[0]!) / (xs[xs.length - 1]! - xs[0]!)) * PLOT_W : PLOT_W / 2);
  const py = (y: number) => top + 30 + PLOT_H - (y / yMax) * PLOT_H;
  const out = [
    `<text x="10" y="${top + 18}" class="title">${esc(p.label)} (${p.better} is better)</text>`,
    `<line x1="${PLOT_X}" x2="${PLOT_X + PLOT_W}" y1="${py(0)}" y2="${py(0)}" class="axis"/>`,
    `<line x1="${PLOT_X}" x2="${PLOT_X}" y1="${py(0)}" y2="${py(yMax)}" class="axis"/>`,
    `<text x="${PLOT_X - 6}" y="${py(yMax) + 4}" class="tick" text-anchor="end">${esc(num(yMax))}</text>`,
    `<text x="${PLOT_X - 6}" y="${py(0) + 4}" class="tick" text-anchor="end">0</text>`,
    ...xs.map((x) => `<text x="${px(x)}" y="${py(0) + 16}" class="tick" text-anchor="middle">${esc(num(x))}</text>`),
    `<text x="${PLOT_X + PLOT_W / 2}" y="${py(0) + 32}" class="tick" text-anchor="middle">${esc(spec.lines!.xLabel)}</text>`,
  ];
  const series = [...new Set(points.map((q) => q.series))];
  series.forEach((name, i) => {
    const mine = points.filter((q) => q.series === name).sort((a, b) => a.x - b.x);
    const c = colour(spec, name);
    out.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${mine.map((q) => `${px(q.x).toFixed(1)},${py(q.y.median).toFixed(1)}`).join(' ')}"/>`);
    for (const q of mine) {
      out.push(`<line x1="${px(q.x).toFixed(1)}" x2="${px(q.x).toFixed(1)}" y1="${py(q.y.min).toFixed(1)}" y2="${py(q.y.max).toFixed(1)}" stroke="${c}" class="whisker"/>`);
      out.push(`<circle cx="${px(q.x).toFixed(1)}" cy="${py(q.y.median).toFixed(1)}" r="3" fill="${c}"/>`);
    }
    const ly = top + 40 + i * 16;
    out.push(`<line x1="${PLOT_X + PLOT_W + 20}" x2="${PLOT_X + PLOT_W + 40}" y1="${ly - 4}" y2="${ly - 4}" stroke="${c}" stroke-width="2"/>`);
    out.push(`<text x="${PLOT_X + PLOT_W + 46}" y="${ly}" class="label">${esc(name)}</text>`);
  });
  return out;
}

export function lineChart(r: TrialReport, spec: ChartSpec): string {
  const top = 56;
  const panelH = 30 + PLOT_H + PANEL_GAP;
  const height = top + spec.panels.length * panelH + 30;
  const body = spec.panels.flatMap((p, i) => panel(r, spec, p, top + i * panelH));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">`,
    '<style>.title{font-size:14px;font-weight:bold}.label{font-size:12px}.tick{font-size:11px;fill:#333}' +
      '.axis{stroke:#333;stroke-width:1}.whisker{stroke-width:1.5}.note{font-size:11px;fill:#555}</style>',
    `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
    `<text x="10" y="22" class="title">${esc(`${r.trial}${r.quick ? ' (quick)' : ''}`)}</text>`,
    `<text x="10" y="40" class="note">${esc(r.description)}</text>`,
    ...body,
    `<text x="10" y="${height - 22}" class="note">Points: median of ${r.reps} repetitions; whiskers: min–max. Command: sudo npm run bench -- ${esc(r.trial)}${r.quick ? ' --quick' : ''}</text>`,
    `<text x="10" y="${height - 8}" class="note">${esc(machineLine(r.machine))}</text>`,
    '</svg>',
    '',
  ].join('\n');
}

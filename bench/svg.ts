// A chart a person can look at, written by hand as SVG (no dependency): for
// each number a trial charts, one panel of horizontal bars, a bar per variant
// at its median with a whisker over its min-max, and a dashed line at the
// trial baseline's median, so "how close to the balanced cluster" reads at a
// glance.
import { machineLine, num, type Spread, type TrialReport, type VariantSummary } from './report';
import type { ChartSpec } from './types';

const WIDTH = 820;
const LABEL_W = 190;
const BAR_W = 470;
const BAR_H = 18;
const GAP = 6;
const PANEL_HEAD = 28;
const DEFAULT_COLOUR = '#7f8c8d';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function spreadOf(v: VariantSummary, metric: string): Spread | undefined {
  if (metric === 'value') return { median: v.median, min: v.min, max: v.max };
  return v.metrics[metric];
}

function colour(spec: ChartSpec, name: string): string {
  return spec.colours?.find(([prefix]) => name.startsWith(prefix))?.[1] ?? DEFAULT_COLOUR;
}

function panel(r: TrialReport, spec: ChartSpec, p: ChartSpec['panels'][number], top: number, secondary: Map<string, Spread>): string[] {
  const spreads = r.variants.map((v) => (p.metric === 'secondary' ? secondary.get(v.name) : spreadOf(v, p.metric)));
  const max = Math.max(...spreads.map((s) => s?.max ?? 0)) * 1.08 || 1;
  const x = (n: number) => LABEL_W + (n / max) * BAR_W;
  const out = [`<text x="10" y="${top + 18}" class="title">${esc(p.label)} (${p.better} is better)</text>`];
  r.variants.forEach((v, i) => {
    const s = spreads[i];
    const y = top + PANEL_HEAD + i * (BAR_H + GAP);
    out.push(`<text x="${LABEL_W - 8}" y="${y + BAR_H - 5}" class="label">${esc(v.name)}</text>`);
    if (s === undefined) return;
    out.push(`<rect x="${LABEL_W}" y="${y}" width="${(x(s.median) - LABEL_W).toFixed(1)}" height="${BAR_H}" fill="${colour(spec, v.name)}"/>`);
    out.push(`<line x1="${x(s.min).toFixed(1)}" x2="${x(s.max).toFixed(1)}" y1="${y + BAR_H / 2}" y2="${y + BAR_H / 2}" class="whisker"/>`);
    out.push(`<text x="${(x(s.max) + 6).toFixed(1)}" y="${y + BAR_H - 5}" class="value">${esc(num(s.median))}</text>`);
  });
  const base = spreads[r.variants.findIndex((v) => v.name === r.baseline)];
  if (base !== undefined) {
    const y2 = top + PANEL_HEAD + r.variants.length * (BAR_H + GAP);
    out.push(`<line x1="${x(base.median).toFixed(1)}" x2="${x(base.median).toFixed(1)}" y1="${top + PANEL_HEAD - 4}" y2="${y2}" class="base"/>`);
  }
  return out;
}

/** Min-max of the secondary number per variant, from the runs (the summary keeps only its median). */
function secondarySpreads(r: TrialReport): Map<string, Spread> {
  const m = new Map<string, Spread>();
  for (const v of r.variants) {
    const xs = r.runs.filter((x) => x.variant === v.name).map((x) => x.measurement.secondary);
    if (xs.length) m.set(v.name, { median: v.secondaryMedian, min: Math.min(...xs), max: Math.max(...xs) });
  }
  return m;
}

export function barChart(r: TrialReport, spec: ChartSpec): string {
  const panelH = PANEL_HEAD + r.variants.length * (BAR_H + GAP) + 16;
  const top = 56;
  const height = top + spec.panels.length * panelH + 36;
  const secondary = secondarySpreads(r);
  const body = spec.panels.flatMap((p, i) => panel(r, spec, p, top + i * panelH, secondary));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">`,
    '<style>.title{font-size:14px;font-weight:bold}.label{font-size:12px;text-anchor:end}.value{font-size:11px}' +
      '.whisker{stroke:#222;stroke-width:1.5}.base{stroke:#c0392b;stroke-dasharray:4 3;stroke-width:1.5}.note{font-size:11px;fill:#555}</style>',
    `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
    `<text x="10" y="22" class="title">${esc(`${r.trial}${r.quick ? ' (quick)' : ''}`)}</text>`,
    `<text x="10" y="40" class="note">${esc(r.description)}</text>`,
    ...body,
    `<text x="10" y="${height - 22}" class="note">Bars: median of ${r.reps} repetitions; whiskers: min–max; dashed line: ${esc(r.baseline)}. Command: sudo npm run bench -- ${esc(r.trial)}${r.quick ? ' --quick' : ''}</text>`,
    `<text x="10" y="${height - 8}" class="note">${esc(machineLine(r.machine))}</text>`,
    '</svg>',
    '',
  ].join('\n');
}

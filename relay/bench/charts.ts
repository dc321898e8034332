// The report's pictures: hand-written SVG (no dependencies), white background so they read the same in light and
// dark viewers. `latencyChart`: p50 and p99 latency against the offered rate, one colour per server, log y.
// `cpuChart`: server CPU µs per delivery, one group of bars per workload, one bar per server, with the ratio to the
// baseline written on each bar. `chartsOf` takes both from a run's figures; run.ts writes them beside BENCHMARKS.md.
import { M } from './figures.js';
import type { Runs } from './figures.js';
import { median } from './stats.js';

const finiteOrNull = (value: number): number | null => (Number.isFinite(value) ? value : null);

export interface LatencySeries {
  server: string;
  /** One point per offered rate (msg/s) the server ran; NaN latencies are left out. */
  points: { rate: number; p50: number; p99: number }[];
}

export interface CpuGroup {
  workload: string;
  /** One bar per server; `ratio` is value ÷ the baseline's in the same repetitions (null: none). */
  bars: { server: string; value: number; ratio: number | null }[];
}

/** Colours that stay apart for common colour-vision deficiencies (Okabe–Ito), dark enough on white. */
const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000'];
const FONT = 'font-family="Helvetica, Arial, sans-serif"';
const WIDTH = 880;
const HEIGHT = 480;
const PLOT = { left: 80, right: 200, top: 56, bottom: 70 };

export function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** A number as a short label: 1.5, 12, 1,200, 12k. */
export function shortNumber(value: number): string {
  if (!Number.isFinite(value)) return '–';
  if (value === 0) return '0';
  if (value >= 10_000) return `${Math.round(value / 1000)}k`;
  if (value >= 100) return Math.round(value).toLocaleString('en-US');
  if (value >= 10) return value.toFixed(0);
  if (value >= 1) return value.toFixed(1);
  return value.toPrecision(2);
}

/** An offered rate as a label: 50, 500, 2k, 2.5k, 10k. */
export const rateLabel = (rate: number): string => (rate >= 1000 ? `${+(rate / 1000).toFixed(1)}k` : String(rate));

const colourOf = (servers: string[], server: string): string =>
  PALETTE[Math.max(0, servers.indexOf(server)) % PALETTE.length] as string;

function frame(title: string, subtitle: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" ` +
      `role="img" aria-label="${escapeXml(title)}">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect x="0" y="0" width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${PLOT.left}" y="24" ${FONT} font-size="17" font-weight="bold" fill="#111111">${escapeXml(title)}</text>`,
    `<text x="${PLOT.left}" y="42" ${FONT} font-size="12" fill="#444444">${escapeXml(subtitle)}</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

const plotWidth = WIDTH - PLOT.left - PLOT.right;
const plotHeight = HEIGHT - PLOT.top - PLOT.bottom;

function axisLabels(x: string, y: string): string[] {
  const midY = PLOT.top + plotHeight / 2;
  return [
    `<text x="${PLOT.left + plotWidth / 2}" y="${HEIGHT - 18}" ${FONT} font-size="13" fill="#111111" ` +
      `text-anchor="middle">${escapeXml(x)}</text>`,
    `<text x="20" y="${midY}" ${FONT} font-size="13" fill="#111111" text-anchor="middle" ` +
      `transform="rotate(-90 20 ${midY})">${escapeXml(y)}</text>`,
  ];
}

/** Powers of ten (and 2x, 5x between them when few) covering [min, max] for a log axis. */
function logTicks(min: number, max: number): number[] {
  const low = Math.floor(Math.log10(min));
  const high = Math.ceil(Math.log10(max));
  const ticks: number[] = [];
  for (let e = low; e <= high; e++) {
    for (const m of high - low <= 2 ? [1, 2, 5] : [1]) {
      const v = m * 10 ** e;
      if (v >= 10 ** low && v <= 10 ** high) ticks.push(v);
    }
  }
  return ticks;
}

/** p50 (dashed) and p99 (solid) latency against offered rate, one colour per server, log y. */
export function latencyChart(series: LatencySeries[], note = ''): string {
  const title = 'Latency against offered rate (open loop)';
  const subtitle = `p99 solid, p50 dashed; log scale; from the scheduled send to the receipt${note ? `; ${note}` : ''}`;
  const drawn = series
    .map((s) => ({
      ...s,
      points: s.points.filter((p) => Number.isFinite(p.p50) && Number.isFinite(p.p99) && p.p50 > 0 && p.p99 > 0),
    }))
    .filter((s) => s.points.length > 0);
  const servers = series.map((s) => s.server);
  const rates = [...new Set(drawn.flatMap((s) => s.points.map((p) => p.rate)))].sort((a, b) => a - b);
  if (rates.length === 0) {
    return frame(title, subtitle, [
      `<text x="${WIDTH / 2}" y="${HEIGHT / 2}" ${FONT} font-size="14" text-anchor="middle" fill="#111111">` +
        'no open-loop figures in this run</text>',
    ]);
  }
  const values = drawn.flatMap((s) => s.points.flatMap((p) => [p.p50, p.p99]));
  const ticks = logTicks(Math.min(...values), Math.max(...values));
  const yMin = Math.log10(ticks[0] as number);
  const yMax = Math.log10(ticks.at(-1) as number);
  const y = (v: number): number => PLOT.top + plotHeight - ((Math.log10(v) - yMin) / (yMax - yMin || 1)) * plotHeight;
  // Offered rates on a log axis too (2k, 5k, 10k, 20k are evenly spread that way); one rate sits in the middle.
  const xMin = Math.log10(rates[0] as number);
  const xMax = Math.log10(rates.at(-1) as number);
  const x = (rate: number): number =>
    xMax === xMin
      ? PLOT.left + plotWidth / 2
      : PLOT.left + 30 + ((Math.log10(rate) - xMin) / (xMax - xMin)) * (plotWidth - 60);
  const body: string[] = [];
  for (const t of ticks) {
    body.push(
      `<line x1="${PLOT.left}" x2="${PLOT.left + plotWidth}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" ` +
        'stroke="#dddddd" stroke-width="1"/>',
      `<text x="${PLOT.left - 8}" y="${(y(t) + 4).toFixed(1)}" ${FONT} font-size="12" fill="#333333" ` +
        `text-anchor="end">${shortNumber(t)}</text>`,
    );
  }
  for (const rate of rates) {
    body.push(
      `<line x1="${x(rate).toFixed(1)}" x2="${x(rate).toFixed(1)}" y1="${PLOT.top}" y2="${PLOT.top + plotHeight}" ` +
        'stroke="#eeeeee" stroke-width="1"/>',
      `<text x="${x(rate).toFixed(1)}" y="${PLOT.top + plotHeight + 18}" ${FONT} font-size="12" fill="#333333" ` +
        `text-anchor="middle">${rateLabel(rate)}/s</text>`,
    );
  }
  body.push(
    `<rect x="${PLOT.left}" y="${PLOT.top}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#888888"/>`,
  );
  for (const s of drawn) {
    const colour = colourOf(servers, s.server);
    const points = [...s.points].sort((a, b) => a.rate - b.rate);
    for (const [key, dash] of [
      ['p99', ''],
      ['p50', ' stroke-dasharray="6 4"'],
    ] as const) {
      const path = points.map((p) => `${x(p.rate).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' ');
      body.push(
        `<polyline points="${path}" fill="none" stroke="${colour}" stroke-width="2.5"${dash}/>`,
        ...points.map(
          (p) =>
            `<circle cx="${x(p.rate).toFixed(1)}" cy="${y(p[key]).toFixed(1)}" r="3.5" fill="${colour}">` +
            `<title>${escapeXml(`${s.server} ${key} at ${p.rate}/s: ${p[key].toFixed(1)} ms`)}</title></circle>`,
        ),
      );
    }
  }
  // The p99 value above each point; at each rate, labels that would overlap are pushed apart upwards.
  for (const rate of rates) {
    const labels = drawn
      .flatMap((s) => s.points.filter((p) => p.rate === rate).map((p) => ({ server: s.server, at: y(p.p99) - 7, p })))
      .sort((a, b) => b.at - a.at);
    for (let i = 1; i < labels.length; i++) {
      const below = labels[i - 1] as (typeof labels)[number];
      const label = labels[i] as (typeof labels)[number];
      label.at = Math.min(label.at, below.at - 12);
    }
    for (const label of labels) {
      body.push(
        `<text x="${x(rate).toFixed(1)}" y="${label.at.toFixed(1)}" ${FONT} font-size="11" ` +
          `fill="${colourOf(servers, label.server)}" text-anchor="middle">${shortNumber(label.p.p99)}</text>`,
      );
    }
  }
  body.push(
    ...legend(
      drawn.map((s) => s.server),
      servers,
    ),
  );
  body.push(...axisLabels('offered rate, messages per second (log scale)', 'latency, ms (log scale)'));
  return frame(title, subtitle, body);
}

function legend(shown: string[], servers: string[]): string[] {
  const left = PLOT.left + plotWidth + 16;
  return shown.flatMap((server, i) => {
    const top = PLOT.top + 10 + i * 22;
    return [
      `<rect x="${left}" y="${top - 10}" width="14" height="14" fill="${colourOf(servers, server)}"/>`,
      `<text x="${left + 20}" y="${top + 2}" ${FONT} font-size="13" fill="#111111">${escapeXml(server)}</text>`,
    ];
  });
}

/** Server CPU µs per delivery, grouped by workload, one bar per server, the ratio to `baseline` on each bar. */
export function cpuChart(groups: CpuGroup[], baseline: string, note = ''): string {
  const title = 'Server CPU per delivery';
  const subtitle = `µs of server CPU (all node processes) per delivery, lower is better; ×N = ÷ ${baseline}${
    note ? `; ${note}` : ''
  }`;
  const shown = groups
    .map((g) => ({ ...g, bars: g.bars.filter((b) => Number.isFinite(b.value) && b.value > 0) }))
    .filter((g) => g.bars.length > 0);
  const servers = [...new Set(groups.flatMap((g) => g.bars.map((b) => b.server)))];
  if (shown.length === 0) {
    return frame(title, subtitle, [
      `<text x="${WIDTH / 2}" y="${HEIGHT / 2}" ${FONT} font-size="14" text-anchor="middle" fill="#111111">` +
        'no messaging figures in this run</text>',
    ]);
  }
  const max = Math.max(...shown.flatMap((g) => g.bars.map((b) => b.value)));
  // Headroom above the tallest bar for its vertical label (value and ratio).
  const step = niceStep((max * 1.4) / 5);
  const top = Math.ceil((max * 1.4) / step) * step;
  const y = (v: number): number => PLOT.top + plotHeight - (v / top) * plotHeight;
  const body: string[] = [];
  for (let v = 0; v <= top + step / 2; v += step) {
    body.push(
      `<line x1="${PLOT.left}" x2="${PLOT.left + plotWidth}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" ` +
        'stroke="#dddddd" stroke-width="1"/>',
      `<text x="${PLOT.left - 8}" y="${(y(v) + 4).toFixed(1)}" ${FONT} font-size="12" fill="#333333" ` +
        `text-anchor="end">${shortNumber(v)}</text>`,
    );
  }
  const groupWidth = plotWidth / shown.length;
  const barWidth = Math.min(36, (groupWidth - 16) / Math.max(1, servers.length));
  shown.forEach((group, g) => {
    const centre = PLOT.left + groupWidth * (g + 0.5);
    const first = centre - (barWidth * servers.length) / 2;
    servers.forEach((server, i) => {
      const bar = group.bars.find((b) => b.server === server);
      if (bar === undefined) return;
      const left = first + i * barWidth;
      const height = PLOT.top + plotHeight - y(bar.value);
      const label = `${shortNumber(bar.value)}${bar.ratio === null || server === baseline ? '' : ` ×${bar.ratio.toFixed(2)}`}`;
      const labelX = left + barWidth / 2;
      const labelY = y(bar.value) - 5;
      body.push(
        `<rect x="${(left + 1).toFixed(1)}" y="${y(bar.value).toFixed(1)}" width="${(barWidth - 2).toFixed(1)}" ` +
          `height="${height.toFixed(1)}" fill="${colourOf(servers, server)}">` +
          `<title>${escapeXml(`${group.workload}, ${server}: ${bar.value.toFixed(1)} µs/delivery`)}</title></rect>`,
        // Vertical labels so that neighbouring bars' ratios never overlap.
        `<text x="${labelX.toFixed(1)}" y="${labelY.toFixed(1)}" ${FONT} font-size="11" fill="#111111" ` +
          `transform="rotate(-90 ${labelX.toFixed(1)} ${labelY.toFixed(1)})" dominant-baseline="middle">` +
          `${escapeXml(label)}</text>`,
      );
    });
    body.push(
      `<text x="${centre.toFixed(1)}" y="${PLOT.top + plotHeight + 18}" ${FONT} font-size="12" fill="#333333" ` +
        `text-anchor="middle">${escapeXml(group.workload)}</text>`,
    );
  });
  body.push(
    `<rect x="${PLOT.left}" y="${PLOT.top}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#888888"/>`,
  );
  body.push(...legend(servers, servers));
  body.push(...axisLabels('workload', 'server CPU µs per delivery'));
  return frame(title, subtitle, body);
}

/** 1, 2 or 5 times a power of ten, at least `raw`. */
function niceStep(raw: number): number {
  const power = 10 ** Math.floor(Math.log10(Math.max(raw, 1e-9)));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

/** Both charts from a run's figures: medians over repetitions, ratios within each repetition. */
export function chartsOf(
  runs: Runs,
  servers: string[],
  baseline: string,
  labels: string[],
  reduced: Set<string>,
): { latency: string; cpu: string } {
  const openLabels = labels.filter((l) => /^open \d+\/s$/.test(l));
  const fullServers = servers.filter((s) => !reduced.has(s));
  const series: LatencySeries[] = fullServers.map((server) => ({
    server,
    points: openLabels
      .filter((label) => runs.has(server, label))
      .map((label) => ({
        rate: Number(label.slice(5, -2)),
        p50: runs.median(server, label, M.p50),
        p99: runs.median(server, label, M.p99),
      })),
  }));
  const groups: CpuGroup[] = labels
    .filter((label) => fullServers.some((s) => runs.has(s, label)))
    .map((label) => ({
      workload: label,
      bars: fullServers
        .filter((server) => runs.has(server, label))
        .map((server) => ({
          server,
          value: runs.median(server, label, M.cpuUs),
          ratio: server === baseline ? 1 : finiteOrNull(median(runs.ratio(server, baseline, label, M.cpuUs))),
        })),
    }));
  const note = reduced.size > 0 ? `not shown: ${[...reduced].join(', ')} (reduced plan)` : '';
  return { latency: latencyChart(series, note), cpu: cpuChart(groups, baseline, note) };
}

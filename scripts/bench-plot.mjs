// Draws the results of bench-calls.mjs as an SVG, by hand (no plotting
// library): left, the CPU of the service and of Asterisk against concurrent
// calls, one line per transport and mode; right, the added latency per frame
// (p99, from the packet capture and from the service's histogram, on a
// logarithmic scale).
//   node scripts/bench-plot.mjs RESULTS.jsonl OUT.svg [--labels='A|B']    (or bench-calls.mjs --plot OUT.svg)
import { readFileSync, writeFileSync } from 'node:fs';

const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];
const W = 960;
const H = 420;
const PANEL = { w: 380, h: 280, top: 60 };
const LEFT_X = 70;
const RIGHT_X = 560;

const esc = (text) => String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;');

/** A "nice" upper bound for an axis that must hold `max`. */
function niceMax(max) {
  if (!(max > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (step * power >= max) return step * power;
  return 10 * power;
}

/** `yMin` given: a logarithmic y axis from yMin to yMax, a grid line per power of ten. */
function panel(x0, title, xLabel, yLabel, xs, yMax, series, yMin) {
  const { w, h, top } = PANEL;
  const xMin = 0;
  const xMax = niceMax(Math.max(...xs));
  const px = (x) => x0 + ((x - xMin) / (xMax - xMin)) * w;
  const log = yMin !== undefined;
  const py = log
    ? (y) => top + h - ((Math.log10(Math.max(y, yMin)) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * h
    : (y) => top + h - (y / yMax) * h;
  const parts = [`<text x="${x0 + w / 2}" y="${top - 30}" text-anchor="middle" font-weight="bold">${esc(title)}</text>`];
  const grid = log
    ? Array.from({ length: Math.round(Math.log10(yMax / yMin)) + 1 }, (_, i) => yMin * 10 ** i)
    : Array.from({ length: 6 }, (_, i) => (yMax * i) / 5);
  for (const y of grid) {
    parts.push(`<line x1="${x0}" y1="${py(y)}" x2="${x0 + w}" y2="${py(y)}" stroke="#ddd"/>`);
    parts.push(`<text x="${x0 - 6}" y="${py(y) + 4}" text-anchor="end" font-size="11">${+y.toFixed(2)}</text>`);
  }
  for (const x of [...new Set(xs)].sort((a, b) => a - b)) {
    parts.push(`<line x1="${px(x)}" y1="${top + h}" x2="${px(x)}" y2="${top + h + 4}" stroke="#000"/>`);
    parts.push(`<text x="${px(x)}" y="${top + h + 17}" text-anchor="middle" font-size="11">${x}</text>`);
  }
  parts.push(`<rect x="${x0}" y="${top}" width="${w}" height="${h}" fill="none" stroke="#000"/>`);
  parts.push(`<text x="${x0 + w / 2}" y="${top + h + 36}" text-anchor="middle" font-size="12">${esc(xLabel)}</text>`);
  parts.push(
    `<text x="${x0 - 48}" y="${top + h / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 ${x0 - 48} ${top + h / 2})">${esc(yLabel)}</text>`,
  );
  series.forEach((s, i) => {
    const points = s.points.filter(([, y]) => Number.isFinite(y)).sort((a, b) => a[0] - b[0]);
    if (points.length === 0) return;
    const path = points.map(([x, y]) => `${px(x).toFixed(1)},${py(Math.min(y, yMax)).toFixed(1)}`).join(' ');
    parts.push(
      `<polyline points="${path}" fill="none" stroke="${s.colour}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
    );
    for (const [x, y] of points)
      parts.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(Math.min(y, yMax)).toFixed(1)}" r="3" fill="${s.colour}"/>`);
    // The legend goes under the panel, where it covers no line.
    const ly = top + h + 58 + i * 14;
    parts.push(
      `<line x1="${x0 + 8}" y1="${ly - 4}" x2="${x0 + 28}" y2="${ly - 4}" stroke="${s.colour}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
    );
    parts.push(`<text x="${x0 + 32}" y="${ly}" font-size="11">${esc(s.name)}</text>`);
  });
  return parts.join('\n');
}

/** The SVG of a list of bench-calls results. */
export function plotSvg(results, caption = '') {
  const groups = new Map();
  for (const r of results) {
    const key = `${r.transport} ${r.mode}${r.label ? ` ${r.label}` : ''}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(r);
  }
  const xs = results.map((r) => r.calls);
  const cpu = [];
  const latency = [];
  [...groups].forEach(([key, rs], i) => {
    const colour = COLOURS[i % COLOURS.length];
    cpu.push({ name: `service, ${key}`, colour, points: rs.map((r) => [r.calls, r.serviceCpuPercent]) });
    cpu.push({ name: `Asterisk, ${key}`, colour, dashed: true, points: rs.map((r) => [r.calls, r.asteriskCpuPercent]) });
    if (rs.some((r) => r.latency?.captureP99Ms !== undefined))
      latency.push({ name: `p99, capture, ${key}`, colour, points: rs.map((r) => [r.calls, r.latency?.captureP99Ms]) });
    latency.push({
      name: `p99, service's histogram, ${key}`,
      colour,
      dashed: true,
      points: rs.map((r) => [r.calls, r.latency?.histogramP99Ms]),
    });
  });
  const cpuMax = niceMax(Math.max(...cpu.flatMap((s) => s.points.map(([, y]) => y)).filter(Number.isFinite)) * 1.1);
  const latencyMin = 0.1;
  const latencyMax =
    10 ** Math.ceil(Math.log10(Math.max(10, ...latency.flatMap((s) => s.points.map(([, y]) => y)).filter(Number.isFinite)) * 1.5));
  const goalY =
    PANEL.top + PANEL.h - ((Math.log10(2) - Math.log10(latencyMin)) / (Math.log10(latencyMax) - Math.log10(latencyMin))) * PANEL.h;
  const height = H + 14 * Math.max(cpu.length, latency.length);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" font-family="sans-serif">
<rect width="${W}" height="${height}" fill="#fff"/>
${panel(LEFT_X, 'CPU against concurrent calls', 'concurrent calls', '% of one core', xs, cpuMax, cpu)}
${panel(RIGHT_X, 'Added latency per frame, p99', 'concurrent calls', 'ms (logarithmic)', xs, latencyMax, latency, latencyMin)}
<line x1="${RIGHT_X}" y1="${goalY}" x2="${RIGHT_X + PANEL.w}" y2="${goalY}" stroke="#888" stroke-dasharray="2 3"/>
<text x="${RIGHT_X + PANEL.w - 4}" y="${goalY - 4}" text-anchor="end" font-size="10" fill="#666">goal: p99 2 ms</text>
<text x="${W / 2}" y="${height - 8}" text-anchor="middle" font-size="11" fill="#444">${esc(caption)}</text>
</svg>
`;
}

export function writePlot(file, results, caption) {
  const first = results[0]?.date?.slice(0, 10) ?? '';
  writeFileSync(file, plotSvg(results, caption ?? `npm run bench:calls, ${first}: service and Asterisk measured in the same runs`));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [input, output, labelsOption] = process.argv.slice(2);
  // --labels=A|B: only the results with those labels (one plot for one round of a long results file).
  const labels = labelsOption?.startsWith('--labels=') ? new Set(labelsOption.slice('--labels='.length).split('|')) : undefined;
  const results = readFileSync(input, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line))
    .filter((r) => r.calls !== undefined && (labels === undefined || labels.has(r.label)));
  // A size measured again replaces the earlier result.
  const last = new Map(results.map((r) => [`${r.transport} ${r.mode} ${r.label ?? ''} ${r.calls}`, r]));
  writePlot(output, [...last.values()]);
}

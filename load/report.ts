/**
 * The load test's report: report.md (tables, with the charts as SVG files
 * next to it) and report.html (the same, charts inline, one file to open).
 */

export interface Part {
  name: string;
  connections: number;
  requests: number;
  rps: number;
  /** Every answer: ms since the scenario started, its latency and its status. */
  latencies: { at: number; ms: number; status?: number }[];
  /** unavailable: 503 DEPENDENCY_UNAVAILABLE while --chaos faults hit (expected there, not an error). */
  outcome: { ok: number; refused: number; unavailable?: number; error: number };
  statuses: Record<string, number>;
}

export interface ScenarioReport {
  name: string;
  elapsedS: number;
  parts: Part[];
  /** Redis load per master during the scenario, busiest first. */
  shards?: { node: string; commandsPerSecond: number; scriptsPerSecond: number; cpuShare: number; share: number }[];
}

export interface ReportInput {
  title: string;
  setup: string;
  reports: ScenarioReport[];
  checks: { what: string; ok: boolean; detail: string }[];
  hotKeys?: { hotPost: string; popular: string };
  /** --chaos: the seed and every fault, in ms since its scenario started, with what the clients were answered meanwhile. */
  faults?: { seed: number; events: { at: number; until: number; what: string; seen: string }[] };
}

const COLORS = { p50: '#4e79a7', p95: '#f28e2b', p99: '#e15759', rps: '#b6d7a8' };

export function percentiles(part: Part): { p50: number; p95: number; p99: number; max: number } {
  const ms = part.latencies.map((sample) => sample.ms).sort((a, b) => a - b);
  const at = (q: number) => (ms.length ? ms[Math.min(ms.length - 1, Math.floor(q * ms.length))]! : 0);
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: ms.length ? ms[ms.length - 1]! : 0 };
}

const label = (report: ScenarioReport, part: Part) => (report.parts.length > 1 ? `${report.name} / ${part.name}` : part.name);
const esc = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Horizontal bars: p50, p95 and p99 of every scenario part. */
export function latencyChart(reports: ScenarioReport[]): string {
  const rows = reports.flatMap((report) => report.parts.map((part) => ({ name: label(report, part), ...percentiles(part) })));
  const max = Math.max(1, ...rows.map((row) => row.p99));
  const left = 230;
  const width = 820;
  const barH = 9;
  const rowH = 3 * barH + 12;
  const top = 40;
  const height = top + rows.length * rowH + 30;
  const scale = (ms: number) => ((width - left - 70) * ms) / max;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">Latency per scenario (ms)</text>`,
  ];
  (['p50', 'p95', 'p99'] as const).forEach((key, i) => {
    parts.push(`<rect x="${left + i * 80}" y="28" width="10" height="10" fill="${COLORS[key]}"/><text x="${left + i * 80 + 14}" y="37">${key}</text>`);
  });
  rows.forEach((row, i) => {
    const y = top + i * rowH + 6;
    parts.push(`<text x="${left - 8}" y="${y + 1.5 * barH + 4}" text-anchor="end">${esc(row.name)}</text>`);
    (['p50', 'p95', 'p99'] as const).forEach((key, j) => {
      const w = Math.max(1, scale(row[key]));
      parts.push(`<rect x="${left}" y="${y + j * barH}" width="${w.toFixed(1)}" height="${barH - 1}" fill="${COLORS[key]}"/>`);
      parts.push(`<text x="${left + w + 4}" y="${y + j * barH + barH - 1}" font-size="10">${row[key].toFixed(0)}</text>`);
    });
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** One panel per scenario: answers per second (bars) and p99 per second (line). */
export function timelineChart(reports: ScenarioReport[]): string {
  const panelW = 380;
  const panelH = 150;
  const cols = 2;
  const rows = Math.ceil(reports.length / cols);
  const width = cols * panelW + 20;
  const height = 40 + rows * (panelH + 40);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">Each second: answers/s (bars) and p99 ms (red line)</text>`,
  ];
  reports.forEach((report, index) => {
    const x0 = 10 + (index % cols) * panelW + 40;
    const y0 = 40 + Math.floor(index / cols) * (panelH + 40) + 15;
    const w = panelW - 70;
    const h = panelH - 30;
    const seconds = Math.max(1, Math.ceil(report.elapsedS));
    const buckets = Array.from({ length: seconds }, () => [] as number[]);
    for (const part of report.parts) for (const sample of part.latencies) buckets[Math.min(seconds - 1, Math.floor(sample.at / 1000))]!.push(sample.ms);
    const counts = buckets.map((bucket) => bucket.length);
    const p99s = buckets.map((bucket) => {
      const sorted = [...bucket].sort((a, b) => a - b);
      return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(0.99 * sorted.length))]! : 0;
    });
    const maxCount = Math.max(1, ...counts);
    const maxP99 = Math.max(1, ...p99s);
    const bw = w / seconds;
    out.push(`<text x="${x0}" y="${y0 - 4}" font-weight="bold">${esc(report.name)}</text>`);
    out.push(`<rect x="${x0}" y="${y0}" width="${w}" height="${h}" fill="none" stroke="#ccc"/>`);
    counts.forEach((count, i) => {
      const bh = (h * count) / maxCount;
      out.push(`<rect x="${(x0 + i * bw + 1).toFixed(1)}" y="${(y0 + h - bh).toFixed(1)}" width="${Math.max(1, bw - 2).toFixed(1)}" height="${bh.toFixed(1)}" fill="${COLORS.rps}"/>`);
    });
    const points = p99s.map((p99, i) => `${(x0 + (i + 0.5) * bw).toFixed(1)},${(y0 + h - (h * p99) / maxP99).toFixed(1)}`).join(' ');
    out.push(`<polyline points="${points}" fill="none" stroke="${COLORS.p99}" stroke-width="2"/>`);
    out.push(`<text x="${x0 - 4}" y="${y0 + 10}" text-anchor="end" fill="#38761d">${maxCount}</text>`);
    out.push(`<text x="${x0 + w + 4}" y="${y0 + 10}" fill="${COLORS.p99}">${maxP99.toFixed(0)} ms</text>`);
    out.push(`<text x="${x0}" y="${y0 + h + 13}">0 s</text><text x="${x0 + w}" y="${y0 + h + 13}" text-anchor="end">${seconds} s</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

function tables(input: ReportInput): string[] {
  const lines: string[] = [];
  lines.push('| scenario | conn | requests | rps | p50 ms | p95 ms | p99 ms | max ms | 2xx | refused (409) | errors | statuses |');
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const report of input.reports) {
    for (const part of report.parts) {
      const p = percentiles(part);
      const statuses = Object.entries(part.statuses).map(([status, n]) => `${status}: ${n}`).join(', ');
      lines.push(
        `| ${label(report, part)} | ${part.connections} | ${part.requests} | ${part.rps.toFixed(0)} | ${p.p50.toFixed(0)} | ${p.p95.toFixed(0)} | ${p.p99.toFixed(0)} | ${p.max.toFixed(0)} | ${part.outcome.ok} | ${part.outcome.refused} | ${part.outcome.error} | ${statuses} |`,
      );
    }
  }
  const withShards = input.reports.filter((report) => report.shards && report.shards.length > 0);
  if (withShards.length > 0) {
    lines.push('', '**What each Redis master carried** (INFO: commands executed per second, those inside scripts included, and their share; script calls (round trips) per second; CPU of its one thread; busiest first):', '');
    lines.push('| scenario | per master |', '|---|---|');
    for (const report of withShards) {
      const cells = report.shards!.map(
        (shard) =>
          `${shard.node}: ${shard.commandsPerSecond.toFixed(0)} cmd/s (${(shard.share * 100).toFixed(0)}%), ${shard.scriptsPerSecond.toFixed(0)} scripts/s, ${(shard.cpuShare * 100).toFixed(0)}% CPU`,
      );
      lines.push(`| ${report.name} | ${cells.join(' · ')} |`);
    }
    if (input.hotKeys) lines.push('', `The hot post's likes live on ${input.hotKeys.hotPost}; every popular-items key on ${input.hotKeys.popular}.`);
  }
  if (input.faults) {
    lines.push('', `**Faults** (seed ${input.faults.seed}; what the clients were answered from each fault's start until a second after its end):`, '');
    lines.push('| from s | to s | fault | answers meanwhile |', '|---:|---:|---|---|');
    for (const event of input.faults.events) lines.push(`| ${(event.at / 1000).toFixed(1)} | ${(event.until / 1000).toFixed(1)} | ${event.what} | ${event.seen} |`);
  }
  lines.push('', '**Invariants** (through the API and the database, against what the 2xx answers imply):', '');
  for (const check of input.checks) lines.push(`- ${check.ok ? '✅' : '❌'} ${check.what}${check.ok ? '' : `: ${check.detail}`}`);
  return lines;
}

export function renderReport(input: ReportInput): Record<string, string> {
  const latency = latencyChart(input.reports);
  const timeline = timelineChart(input.reports);
  const body = tables(input);
  const md = [`# ${input.title}`, '', input.setup, '', '![latency per scenario](latency.svg)', '', ...body, '', '![answers and p99 per second](timeline.svg)', ''].join('\n');
  const html = [
    '<!doctype html><meta charset="utf-8">',
    `<title>${esc(input.title)}</title>`,
    '<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 6px;text-align:right}td:first-child,th:first-child,td:last-child{text-align:left}</style>',
    `<h1>${esc(input.title)}</h1><p>${esc(input.setup)}</p>`,
    latency,
    markdownTablesToHtml(body),
    timeline,
  ].join('\n');
  return { 'report.md': md, 'report.html': html, 'latency.svg': latency, 'timeline.svg': timeline };
}

/** Just enough markdown for the report's own tables, bold lines and lists. */
function markdownTablesToHtml(lines: string[]): string {
  const out: string[] = [];
  let inTable = false;
  for (const line of lines) {
    if (line.startsWith('|')) {
      if (/^\|[-:|]+\|$/.test(line)) continue;
      const cells = line.slice(1, -1).split('|').map((cell) => esc(cell.trim()));
      if (!inTable) {
        out.push('<table><tr>' + cells.map((cell) => `<th>${cell}</th>`).join('') + '</tr>');
        inTable = true;
      } else out.push('<tr>' + cells.map((cell) => `<td>${cell}</td>`).join('') + '</tr>');
      continue;
    }
    if (inTable) {
      out.push('</table>');
      inTable = false;
    }
    if (line.startsWith('- ')) out.push(`<div>${esc(line.slice(2))}</div>`);
    else if (line) out.push(`<p>${esc(line).replace(/\*\*(.+?)\*\*/g, '<b>$1</b>')}</p>`);
  }
  if (inTable) out.push('</table>');
  return out.join('\n');
}

// The fidelity table of docs/fidelity.md, regenerated: `latsim qemu compare
// FILE --repeat N --json` over every scenarios/fidelity/*.yaml (one at a
// time: QEMU runs are measurements), each comparison saved as JSON, then
// rendered as Markdown: an overview of every case, and per case each metric
// with the simulation, QEMU's median [min..max], the gap and the goal.
//
//   npm run fidelity:table -- [--repeat 3] [--out DIR] [--write docs/fidelity.md] [FILE...]
//   npm run fidelity:table -- --from DIR [--write docs/fidelity.md]   (render saved JSON only)
//
// --write replaces what lies between the markers
// <!-- fidelity-table:begin --> and <!-- fidelity-table:end --> in the file;
// without it the Markdown goes to stdout.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { basename, join } from 'node:path';

import { loadScenarioFile } from '../../cli/scenario-file.ts';
import { compareRows, type CompareReport, type CompareRow } from './compare.ts';
import { gapText, qemuCell } from './report.ts';

const BEGIN = '<!-- fidelity-table:begin -->';
/** The line about how and where the table was made, kept beside the saved JSON. */
const META = 'meta.txt';
const END = '<!-- fidelity-table:end -->';
const ROOT = join(import.meta.dirname, '..', '..');

interface Saved {
  readonly file: string;
  readonly report: CompareReport | null;
  readonly code: number | null;
  readonly stderr: string;
  readonly wall_ms: number;
}

function args(): { repeat: number; out: string | null; from: string | null; write: string | null; files: string[] } {
  const a = process.argv.slice(2);
  const o = { repeat: 3, out: null as string | null, from: null as string | null, write: null as string | null, files: [] as string[] };
  for (let i = 0; i < a.length; i++) {
    const k = a[i]!;
    if (k === '--repeat') o.repeat = Number(a[++i]);
    else if (k === '--out') o.out = a[++i]!;
    else if (k === '--from') o.from = a[++i]!;
    else if (k === '--write') o.write = a[++i]!;
    else o.files.push(k);
  }
  if (!Number.isInteger(o.repeat) || o.repeat < 1) throw new Error('--repeat: expected a positive integer');
  return o;
}

function run(files: readonly string[], repeat: number, out: string): Saved[] {
  mkdirSync(out, { recursive: true });
  const saved: Saved[] = [];
  for (const file of files) {
    const t0 = performance.now();
    process.stderr.write(`fidelity-table: ${file} (${repeat} QEMU runs)\n`);
    const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'latsim.mjs'), 'qemu', 'compare', file, '--repeat', String(repeat), '--json'], {
      cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let report: CompareReport | null = null;
    try {
      report = JSON.parse(r.stdout) as CompareReport;
    } catch {
      report = null;
    }
    const s: Saved = { file, report, code: r.status, stderr: r.stderr.split('\n').filter((l) => !l.startsWith('latsim: qemu')).join('\n').trim(), wall_ms: Math.round(performance.now() - t0) };
    writeFileSync(join(out, `${basename(file, '.yaml')}.json`), `${JSON.stringify(s)}\n`);
    process.stderr.write(`fidelity-table: ${file}: exit ${r.status}, ${Math.round(s.wall_ms / 1000)} s\n`);
    saved.push(s);
  }
  return saved;
}

/** The rows computed again from the saved results (so a change to the rows re-renders without rerunning QEMU). */
function withRows(s: Saved): Saved {
  if (!s.report) return s;
  const rows = compareRows(loadScenarioFile(join(ROOT, s.file)), s.report.sim, s.report.runs);
  return { ...s, report: { ...s.report, rows, outside: rows.filter((r) => r.within === false).map((r) => r.metric) } };
}

function load(dir: string): Saved[] {
  return readdirSync(dir).filter((f) => f.endsWith('.json')).sort().map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as Saved);
}

const cell = (v: number | string | null, unit: string) => (v === null ? '-' : typeof v === 'string' ? v : unit === 'MiB' ? v.toFixed(1) : Number.isInteger(v) ? String(v) : v.toFixed(1));
const row = (c: CompareReport, metric: string): CompareRow | undefined => c.rows.find((r) => r.metric === metric);

/** "sim -> QEMU (gap)" for the overview. */
function brief(c: CompareReport, metric: string): string {
  const r = row(c, metric);
  if (!r) return '-';
  const ok = r.within === false ? ' **x**' : '';
  return `${cell(r.sim, r.unit)} / ${qemuCell(r)}${r.gap === null ? '' : ` (${gapText(r.gap)})`}${ok}`;
}

export function markdown(saved: readonly Saved[], meta: string): string {
  const out: string[] = [meta, ''];
  out.push('| case | status (sim / QEMU) | dirty-sync-count | ram.transferred (MiB) | total-time (ms) | downtime (ms) | simulated link | outside the goals |');
  out.push('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const s of saved) {
    const c = s.report;
    if (!c) {
      out.push(`| ${basename(s.file, '.yaml')} | exit ${s.code}: ${s.stderr.split('\n').pop() ?? ''} | | | | | | |`);
      continue;
    }
    out.push(`| ${c.scenario.replace(/^fidelity-/, '')} | ${brief(c, 'status')} | ${brief(c, 'dirty-sync-count')} | ${brief(c, 'ram.transferred')} | ` +
      `${brief(c, 'total-time')} | ${brief(c, 'downtime')} | ${(c.link.simulated_bandwidth / 1e6).toFixed(0)} MB/s | ${c.outside.length === 0 ? 'none' : c.outside.join(', ')} |`);
  }
  out.push('', 'Cells: simulation / QEMU median [min..max] (gap = (QEMU - sim) / sim); **x**: outside the case\'s fidelity goal.');
  for (const s of saved) {
    const c = s.report;
    if (!c) continue;
    out.push('', `### ${c.scenario.replace(/^fidelity-/, '')}`, '');
    const profile = (c as Partial<CompareReport>).profile;
    out.push(`\`${c.file}\`; ${c.repeat} QEMU runs${profile ? `; simulated as QEMU ${profile.simulated}` : ''}; simulated link ${(c.link.simulated_bandwidth / 1e6).toFixed(1)} MB/s ` +
      `(QEMU's unthrottled stream${c.link.qemu_stream ? `, measured: ${c.link.qemu_stream.mbps} Mbit/s` : ', given'}); ${Math.round(s.wall_ms / 1000)} s wall.`, '');
    out.push('| metric | unit | simulation | QEMU median [min..max] | gap | goal | within |');
    out.push('| --- | --- | ---: | ---: | ---: | --- | --- |');
    for (const r of c.rows) {
      out.push(`| ${r.metric.trim()} | ${r.unit} | ${cell(r.sim, r.unit)} | ${qemuCell(r)} | ${gapText(r.gap)} | ${r.goal} | ${r.within === null ? '' : r.within ? 'yes' : '**no**'} |`);
    }
    const notes: string[] = [];
    for (const [i, q] of c.runs.entries()) {
      const m = q.migration;
      const bits = [`run ${i + 1}: ${q.outcome}`, m ? `${m.status}${m.status === 'completed' ? `, memory ${m.verified ? 'verified' : 'NOT verified'}` : ''}` : ''];
      if (m?.downtime_phases && m.downtime_phases.drain + m.downtime_phases.flush > 0) bits.push(`drain ${m.downtime_phases.drain} ms, flush ${m.downtime_phases.flush} ms`);
      if (m && m.throttle.length > 0) bits.push(`throttle ${m.throttle.map((t) => `${t.pct}% at ${(t.t_ns / 1e9).toFixed(2)} s`).join(', ')}`);
      bits.push(`QMP longest wait ${q.qmp.poll_latency_max_ms} ms`, `guest ${q.guest.achieved_rate} pages/s`);
      if (q.error) bits.push(`error: ${q.error}`);
      notes.push(bits.filter(Boolean).join(', '));
    }
    out.push('', `QEMU runs: ${notes.join('; ')}.`);
  }
  return out.join('\n');
}

function main(): void {
  const o = args();
  let saved: Saved[];
  let meta: string;
  if (o.from) {
    saved = load(o.from);
    meta = existsSync(join(o.from, META)) ? readFileSync(join(o.from, META), 'utf8').trim() : `Rendered from ${o.from}.`;
  } else {
    const files = o.files.length > 0 ? o.files : readdirSync(join(ROOT, 'scenarios', 'fidelity')).filter((f) => f.endsWith('.yaml')).sort().map((f) => join('scenarios', 'fidelity', f));
    const out = o.out ?? mkdtempSync(join(tmpdir(), 'latsim-fidelity-'));
    const load0 = loadavg()[0]!.toFixed(1);
    const t0 = performance.now();
    saved = run(files, o.repeat, out);
    const first = saved.find((s) => s.report)?.report;
    meta = `Generated ${new Date().toISOString().slice(0, 10)} by \`npm run fidelity:table -- --repeat ${o.repeat}\` ` +
      `(${Math.round((performance.now() - t0) / 60000)} min; JSON in ${out}): QEMU ${first?.qemu.version ?? '?'} (${first?.qemu.package ?? ''}), ` +
      `${cpus().length} cores, load average ${load0} at the start.`;
    writeFileSync(join(out, META), `${meta}\n`);
  }
  const md = markdown(saved.map(withRows), meta);
  if (!o.write) {
    process.stdout.write(`${md}\n`);
    return;
  }
  const text = readFileSync(o.write, 'utf8');
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a < 0 || b < a) throw new Error(`${o.write}: no ${BEGIN} ... ${END} markers`);
  writeFileSync(o.write, `${text.slice(0, a + BEGIN.length)}\n${md}\n${text.slice(b)}`);
  process.stderr.write(`fidelity-table: wrote ${o.write}\n`);
}

main();

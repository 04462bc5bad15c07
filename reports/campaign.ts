// Campaign results (latsim sweep) as text: an aligned table for people and
// RFC 4180 CSV for spreadsheets, one row per run in campaign order. The JSON
// form is the CampaignDocument itself. Leaves out plots: reports/html.ts
// draws the runs side by side.
import type { CampaignDocument, RunRow } from '../cli/campaign.ts';
import { formatNs } from '../cli/units.ts';

type Cell = string | number | boolean | null;

/** The value of a column of a row: an axis path, or a RunRow field. */
function cell(doc: CampaignDocument, row: RunRow, column: string): Cell {
  if (doc.campaign.axes.some((a) => a.path === column)) return row.grid[column] ?? null;
  return (row as unknown as Record<string, Cell>)[column] ?? null;
}

/** CSV with a header line; empty cells for missing values. */
export function campaignCsv(doc: CampaignDocument): string {
  const quote = (v: Cell): string => {
    const s = v === null ? '' : String(v);
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const lines = [doc.columns.map(quote).join(',')];
  for (const r of doc.rows) lines.push(doc.columns.map((c) => quote(cell(doc, r, c))).join(','));
  return `${lines.join('\n')}\n`;
}

/** Header, whether the column is text (left-aligned), and the cell. */
const TABLE_COLUMNS: readonly [string, boolean, (r: RunRow) => string][] = [
  ['seed', false, (r) => String(r.seed)],
  ['result', true, (r) => (r.outcome !== 'ok' ? r.outcome.toUpperCase() : r.pass ? 'ok' : 'FAIL')],
  ['exit', false, (r) => String(r.exit_code)],
  ['downtime', false, (r) => msText(r.downtime_ms)],
  ['main loop max', false, (r) => msText(r.main_loop_blocked_max_ms)],
  ['BQL wait max', false, (r) => msText(r.bql_wait_max_ms)],
  ['ping p99', false, (r) => msText(r.ping_rtt_p99_ms)],
  ['lost', false, (r) => countText(r.ping_lost)],
  ['progress', false, (r) => countText(r.userspace_progress)],
  ['gap max', false, (r) => msText(r.userspace_gap_max_ms)],
  ['migration', true, (r) => r.migration_status ?? '-'],
  ['attempts', false, (r) => countText(r.completion_attempts)],
  ['rollbacks', false, (r) => countText(r.rollbacks)],
  ['trace', true, (r) => (r.trace_sha256 ? r.trace_sha256.slice(0, 12) : '-')],
];

function msText(v: number | null): string {
  return v === null ? '-' : formatNs(v * 1e6);
}

function countText(v: number | null): string {
  return v === null ? '-' : String(v);
}

/** An aligned table: axis values left-aligned, numbers right-aligned, then a summary line and any errors. */
export function campaignTable(doc: CampaignDocument): string {
  const axes = doc.campaign.axes.map((a) => a.path);
  const headers = [...axes, ...TABLE_COLUMNS.map(([h]) => h)];
  const rows = doc.rows.map((r) => [...axes.map((p) => r.grid[p] ?? ''), ...TABLE_COLUMNS.map(([, , f]) => f(r))]);
  const left = [...axes.map(() => true), ...TABLE_COLUMNS.map(([, text]) => text)];
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (left[i] ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  const out = [line(headers), ...rows.map(line)];
  const passed = doc.rows.filter((r) => r.pass).length;
  const shard = doc.shard ? ` (shard ${doc.shard.index}/${doc.shard.count} of ${doc.campaign.points} runs)` : '';
  out.push('', `${doc.rows.length} runs${shard}: ${passed} passed, ${doc.rows.length - passed} failed`);
  for (const r of doc.rows) {
    if (r.error) out.push(`run ${r.index} (seed ${r.seed}): ${r.error}`);
  }
  return out.join('\n');
}

// Campaign results (latsim sweep) as text: an aligned table for people and
// RFC 4180 CSV for spreadsheets, one row per run in campaign order. The JSON
// form is the CampaignDocument itself. Leaves out plots: reports/html.ts
// draws the runs side by side.
import { formatNs } from '../sim/instrument/format.ts';

/** One parameter of the grid: a path into the scenario and the values it takes. */
export interface GridAxis {
  /** As written: `migration.flush_timeout`, `devices.blk[0].flush`. */
  readonly path: string;
  /** Each value as written (YAML text). */
  readonly values: readonly string[];
}

/** What a campaign is, independent of how it is split or run. */
export interface CampaignSpec {
  /** The scenario file as given on the command line. */
  readonly scenario: string;
  /** SHA-256 of the scenario text: shards of different files do not merge. */
  readonly scenario_sha256: string;
  readonly axes: readonly GridAxis[];
  /** Seeds to run every grid point with; null: the scenario's own seed. */
  readonly seeds: readonly number[] | null;
}

export interface Shard {
  /** 1-based. */
  readonly index: number;
  readonly count: number;
}

/** The summary of one run: the numbers a campaign compares. Durations in ms. */
export interface RunRow {
  readonly index: number;
  /** Axis path -> value as written. */
  readonly grid: Readonly<Record<string, string>>;
  readonly seed: number;
  readonly pass: boolean;
  /** As `latsim run` would exit: 0 ok, 1 budget, 3 liveness, 4 invariant, 5 internal error. */
  readonly exit_code: number;
  /** ok, liveness, invariant, or error (the model threw). */
  readonly outcome: string;
  /** Null unless the migration completed. */
  readonly downtime_ms: number | null;
  readonly main_loop_blocked_max_ms: number | null;
  readonly bql_wait_max_ms: number | null;
  /** Null when no ping was sent. */
  readonly ping_rtt_p99_ms: number | null;
  readonly ping_lost: number | null;
  readonly userspace_progress: number | null;
  readonly userspace_gap_max_ms: number | null;
  /** Null without a migration section. */
  readonly migration_status: string | null;
  readonly completion_attempts: number | null;
  readonly rollbacks: number | null;
  readonly trace_sha256: string | null;
  readonly error: string | null;
}

/** Column order of rows in tables, CSV and JSON (grid columns come first). */
export const ROW_METRICS = [
  'seed', 'pass', 'exit_code', 'outcome', 'downtime_ms', 'main_loop_blocked_max_ms', 'bql_wait_max_ms',
  'ping_rtt_p99_ms', 'ping_lost', 'userspace_progress', 'userspace_gap_max_ms', 'migration_status',
  'completion_attempts', 'rollbacks', 'trace_sha256', 'error',
] as const satisfies readonly (keyof RunRow)[];

/**
 * A campaign's results as one self-describing JSON object: what was run (so
 * shards of the same campaign can be recognized and joined), which shard this
 * is, and one row per run in campaign order.
 */
export interface CampaignDocument {
  readonly format: 'latsim-campaign';
  readonly version: 1;
  readonly command: string;
  readonly campaign: CampaignSpec & { readonly points: number };
  readonly shard: Shard | null;
  /** Column order for tables and CSV: index, the axis paths, then ROW_METRICS. */
  readonly columns: readonly string[];
  readonly rows: readonly RunRow[];
}

/** The forms a campaign is printed in. */
export const CAMPAIGN_FORMATS = ['table', 'csv', 'json'] as const;
export type CampaignFormat = (typeof CAMPAIGN_FORMATS)[number];

export function formatCampaign(doc: CampaignDocument, format: CampaignFormat): string {
  switch (format) {
    case 'json': return `${JSON.stringify(doc, null, 2)}\n`;
    case 'csv': return campaignCsv(doc);
    case 'table': return `${campaignTable(doc)}\n`;
  }
}

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

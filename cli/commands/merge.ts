// `latsim merge <files...>`: joins the --json outputs of the shards of one
// campaign (`latsim sweep` or `latsim fuzz` with --shard i/n) into the output
// a single machine would have printed for the whole campaign: same rows, same
// order, same exit code. The shards must describe the same campaign and
// together hold every run exactly once; anything else is exit 2 with what
// does not fit.
// Leaves out: running anything; rows are taken as the shards computed them.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { UsageError } from '../errors.ts';
import { formatOption } from '../args.ts';
import { campaignDocument, campaignExitCode } from '../campaign.ts';
import { formatCampaign, type CampaignDocument, type CampaignSpec, type Shard } from '../../reports/campaign.ts';
import { fuzzDocument, fuzzExitCode, fuzzText, type FuzzDocument } from '../fuzz/document.ts';

type Doc = CampaignDocument | FuzzDocument;

function load(file: string): Doc {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`${file}: ${code === 'ENOENT' ? 'no such file' : code ? `cannot read the file (${code})` : `not JSON (${(e as Error).message.split('\n')[0]})`}`);
  }
  const o = v as { format?: unknown; version?: unknown; rows?: unknown; campaign?: unknown };
  if (!o || typeof o !== 'object' || (o.format !== 'latsim-campaign' && o.format !== 'latsim-fuzz') || !Array.isArray(o.rows) || typeof o.campaign !== 'object') {
    throw new UsageError(`${file}: not the --json output of latsim sweep or latsim fuzz`);
  }
  if (o.version !== 1) throw new UsageError(`${file}: format version ${String(o.version)}; this latsim reads version 1`);
  return v as Doc;
}

const shardText = (s: Shard | null) => (s ? `shard ${s.index}/${s.count}` : 'the whole campaign');

/** Checks that the documents are shards of one campaign covering it exactly; returns the rows in order. */
function joinRows<R extends { index: number }>(files: readonly string[], docs: readonly Doc[], total: number, rowsOf: (d: Doc) => readonly R[]): R[] {
  const first = docs[0]!;
  const identity = (d: Doc) => JSON.stringify([d.format, 'command' in d ? d.command : null, d.campaign]);
  docs.forEach((d, i) => {
    if (d.format !== first.format) throw new UsageError(`${files[i]} is a ${d.format} output, ${files[0]} a ${first.format} output: they do not merge`);
    if (identity(d) !== identity(first)) {
      throw new UsageError(`${files[i]} belongs to another campaign than ${files[0]}: ${JSON.stringify(d.campaign)} vs ${JSON.stringify(first.campaign)}`);
    }
    const cut = (d as { interrupted?: { signal: string; done: number; total: number | null } | null }).interrupted;
    if (cut) {
      throw new UsageError(`${files[i]} (${shardText(d.shard)}) was interrupted by ${cut.signal} after ${cut.done}${cut.total === null ? '' : ` of ${cut.total}`}; run that shard again`);
    }
    if (d.format === 'latsim-fuzz' && d.not_run > 0) {
      throw new UsageError(`${files[i]} (${shardText(d.shard)}) stopped at its --time budget with ${d.not_run} seeds not run; rerun it with --seeds instead of --time`);
    }
  });
  const owner = new Map<number, number>();
  const rows: R[] = [];
  docs.forEach((d, i) => {
    for (const r of rowsOf(d)) {
      if (!Number.isSafeInteger(r.index) || r.index < 0 || r.index >= total) {
        throw new UsageError(`${files[i]}: run ${r.index} is outside the campaign (0..${total - 1})`);
      }
      if (d.shard && r.index % d.shard.count !== d.shard.index - 1) {
        throw new UsageError(`${files[i]}: run ${r.index} does not belong to ${shardText(d.shard)}`);
      }
      const prev = owner.get(r.index);
      if (prev !== undefined) {
        throw new UsageError(`run ${r.index} is in both ${files[prev]} (${shardText(docs[prev]!.shard)}) and ${files[i]} (${shardText(d.shard)}): a shard is given twice or the shards overlap`);
      }
      owner.set(r.index, i);
      rows.push(r);
    }
  });
  if (rows.length !== total) {
    const missing: number[] = [];
    for (let i = 0; i < total && missing.length < 10; i++) if (!owner.has(i)) missing.push(i);
    const counts = [...new Set(docs.map((d) => d.shard?.count).filter((c) => c !== undefined))];
    const absent = counts.length === 1
      ? Array.from({ length: counts[0]! }, (_, i) => i + 1).filter((i) => !docs.some((d) => d.shard?.index === i)).map((i) => `${i}/${counts[0]}`)
      : [];
    throw new UsageError(`the shards cover ${rows.length} of ${total} runs; missing runs ${missing.join(', ')}${rows.length + missing.length < total ? ', ...' : ''}` +
      `${absent.length > 0 ? ` (shard${absent.length > 1 ? 's' : ''} ${absent.join(', ')} not given)` : ''}`);
  }
  return rows.sort((a, b) => a.index - b.index);
}

export interface Merged {
  readonly output: string;
  readonly exitCode: number;
}

/** Merges shard outputs; format is table, csv or json (sweep) or text or json (fuzz). */
export function mergeFiles(files: readonly string[], format: string | null): Merged {
  if (files.length === 0) throw new UsageError('merge: no files');
  const docs = files.map(load);
  const first = docs[0]!;
  if (first.format === 'latsim-campaign') {
    const total = first.campaign.points;
    const rows = joinRows(files, docs, total, (d) => (d as CampaignDocument).rows);
    const { points: _points, ...spec } = first.campaign;
    const doc = campaignDocument(first.command, spec as CampaignSpec, null, rows);
    const f = format ?? 'table';
    if (!['table', 'csv', 'json'].includes(f)) throw new UsageError(`--format: expected table, csv or json for sweep results, got ${JSON.stringify(f)}`);
    return { output: formatCampaign(doc, f as 'table' | 'csv' | 'json'), exitCode: campaignExitCode(doc.rows) };
  }
  const fuzzDocs = docs as FuzzDocument[];
  const rows = joinRows(files, docs, (first as FuzzDocument).campaign.seeds, (d) => (d as FuzzDocument).rows);
  const doc = fuzzDocument((first as FuzzDocument).campaign, null, rows, fuzzDocs.flatMap((d) => d.failures), 0);
  const f = format ?? 'text';
  if (!['text', 'json'].includes(f)) throw new UsageError(`--format: expected text or json for fuzz results, got ${JSON.stringify(f)}`);
  return { output: f === 'json' ? `${JSON.stringify(doc, null, 2)}\n` : `${fuzzText(doc)}\n`, exitCode: fuzzExitCode(doc) };
}

export function registerMerge(command: Command): void {
  command
    .argument('<files...>', 'shard outputs (latsim sweep/fuzz --shard i/n --json)')
    .option('--format <format>', 'sweep: table, csv or json; fuzz: text or json')
    .option('--json', 'same as --format json')
    .action((files: string[], opts: { format?: string; json?: boolean }) => {
      const { output, exitCode } = mergeFiles(files, formatOption(opts));
      process.stdout.write(output);
      process.exitCode = exitCode;
    });
}

// The output of a fuzz campaign (or of one shard of it) as one JSON document,
// its exit code and its text form; `latsim fuzz` writes it, `latsim merge`
// joins shards of it.
import type { Shard } from '../../reports/campaign.ts';
import { interruptionText, type Interruption } from '../interrupt.ts';
import type { Plant } from './scenario.ts';

/** What a fuzz campaign is, independent of how it is split or run. */
export interface FuzzCampaign {
  readonly seed_start: number;
  readonly seeds: number;
  readonly plant: Plant | null;
  readonly knobs_version: number;
}

export interface FuzzRow {
  /** Position in the campaign: seed - seed_start. */
  readonly index: number;
  readonly seed: number;
  readonly pass: boolean;
  readonly safety_status: string | null;
  readonly phase: string | null;
  readonly class: string | null;
}

export interface FuzzFailure {
  readonly seed: number;
  readonly phase: string;
  readonly class: string;
  readonly exit_code: number;
  readonly error: string;
  readonly shrunk_file: string | null;
  readonly shrink_runs: number;
  readonly replay: string | null;
  readonly seed_command: string;
}

/** The JSON output of a fuzz run (or of one shard of it). */
export interface FuzzDocument {
  readonly format: 'latsim-fuzz';
  readonly version: 1;
  readonly campaign: FuzzCampaign;
  readonly shard: Shard | null;
  /** Seeds run. */
  readonly seeds: number;
  readonly passed: number;
  /** Seeds not started because the --time budget ran out. */
  readonly not_run: number;
  /** True when an interrupt cut the campaign short: seeds not run, or failures not shrunk. */
  readonly partial: boolean;
  readonly interrupted: FuzzInterruption | null;
  readonly failures: readonly FuzzFailure[];
  readonly rows: readonly FuzzRow[];
}

/**
 * Where an interrupt stopped a fuzz campaign. stage seeds: done and total
 * count seeds; stage shrinking (every seed ran): they count failures shrunk,
 * and the others keep their seed's own scenario as regression file.
 */
export interface FuzzInterruption extends Interruption {
  readonly stage: 'seeds' | 'shrinking';
}

/** The document for rows and failures, in campaign order. */
export function fuzzDocument(campaign: FuzzCampaign, shard: Shard | null, rows: readonly FuzzRow[], failures: readonly FuzzFailure[], notRun: number,
  interrupted: FuzzInterruption | null = null): FuzzDocument {
  const sorted = [...rows].sort((a, b) => a.index - b.index);
  return {
    format: 'latsim-fuzz',
    version: 1,
    campaign,
    shard,
    seeds: sorted.length,
    passed: sorted.filter((r) => r.pass).length,
    not_run: notRun,
    partial: interrupted !== null,
    interrupted,
    failures: [...failures].sort((a, b) => a.seed - b.seed),
    rows: sorted,
  };
}

/** 4 if a safety failure was found, else 3 if a liveness failure was, else 0. */
export function fuzzExitCode(doc: FuzzDocument): number {
  return doc.failures.reduce((c, f) => Math.max(c, f.exit_code), 0);
}

/** The fuzz result for people. */
export function fuzzText(doc: FuzzDocument): string {
  const out: string[] = [];
  for (const f of doc.failures) {
    out.push(`seed ${f.seed}: ${f.phase} phase: ${f.class}: ${f.error}`);
    if (f.shrunk_file) out.push(f.shrink_runs > 0 ? `  shrunk (${f.shrink_runs} runs): ${f.shrunk_file}` : `  not shrunk: ${f.shrunk_file}`, `  replay: ${f.replay}`);
    out.push(`  seed:   ${f.seed_command}`);
  }
  const c = doc.campaign;
  const range = `${c.seed_start}..${c.seed_start + c.seeds - 1}`;
  const safety = doc.failures.filter((f) => f.exit_code === 4).length;
  const liveness = doc.failures.length - safety;
  out.push(`fuzz: ${doc.seeds} seeds run of ${range}${doc.shard ? ` (shard ${doc.shard.index}/${doc.shard.count})` : ''}` +
    `${c.plant ? `, planted bug ${c.plant}` : ''}: ${doc.passed} passed, ${doc.failures.length} failed` +
    ` (${safety} safety, ${liveness} liveness)${doc.not_run > 0 ? `; ${doc.not_run} not run (--time budget)` : ''}`);
  const interrupted = interruptedLine(doc);
  if (interrupted) out.push(interrupted);
  return out.join('\n');
}

/** The last line of an interrupted campaign's text (null when it was not). */
export function interruptedLine(doc: FuzzDocument): string | null {
  const i = doc.interrupted;
  if (!i) return null;
  return i.stage === 'seeds'
    ? `fuzz: ${interruptionText(i, 'seeds')}; the rows and failures are those of the seeds that finished`
    : `fuzz: ${interruptionText(i, 'failures shrunk')}; the others keep their seed's own scenario`;
}

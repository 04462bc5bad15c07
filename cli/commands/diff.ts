// `latsim diff A B`: compares two runs. Each side is a result (`latsim run
// --json` output or result.json), a Perfetto trace (`--trace` output), or a
// `--report` directory (its result.json and trace.json together; a warning
// when its manifest says it is not complete). Exit 0 when
// the runs are identical, 1 when they differ, 2 for input that is none of these.
// The comparison itself is reports/diff.ts.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { UsageError } from '../errors.ts';
import { diffRuns, diffText, type ResultJson, type RunInput, type TraceJson } from '../../reports/diff.ts';

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new UsageError(`${file}: ${code === 'ENOENT' ? 'no such file' : `cannot read the file (${code})`}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${file}: not JSON (${(e as Error).message.split('\n')[0]})`);
  }
}

function isResult(v: unknown): v is ResultJson {
  const o = v as Record<string, unknown> | null;
  return typeof o === 'object' && o !== null && typeof o.trace_sha256 === 'string' && Array.isArray(o.handlers) &&
    typeof o.main_loop === 'object' && typeof o.bql === 'object' && typeof o.guest === 'object' && Array.isArray(o.expect);
}

function isTrace(v: unknown): v is TraceJson {
  const o = v as Record<string, unknown> | null;
  return typeof o === 'object' && o !== null && Array.isArray(o.traceEvents);
}

/** Reads one side of a diff: a result file, a trace file, or a report directory. */
export function loadRunInput(file: string): RunInput {
  if (existsSync(file) && statSync(file).isDirectory()) {
    const rf = join(file, 'result.json');
    const tf = join(file, 'trace.json');
    const result = existsSync(rf) ? readJson(rf) : null;
    const trace = existsSync(tf) ? readJson(tf) : null;
    if (result !== null && !isResult(result)) throw new UsageError(`${rf}: not a latsim result`);
    if (trace !== null && !isTrace(trace)) throw new UsageError(`${tf}: not a trace-event file`);
    if (result === null && trace === null) throw new UsageError(`${file}: a directory without result.json or trace.json (expected a latsim run --report directory)`);
    return { file, result, trace };
  }
  const v = readJson(file);
  if (isResult(v)) return { file, result: v, trace: null };
  if (isTrace(v)) return { file, result: null, trace: v };
  throw new UsageError(`${file}: neither a latsim result (latsim run --json, result.json) nor a trace (latsim run --trace)`);
}

/** The warning for a report directory whose manifest says it is not complete (an interrupted or failed write); null otherwise. */
export function incompleteReport(file: string): string | null {
  const mf = join(file, 'manifest.json');
  if (!existsSync(file) || !statSync(file).isDirectory() || !existsSync(mf)) return null;
  const m = readJson(mf) as { complete?: unknown; reason?: unknown };
  return m.complete === false ? `${file}: the report directory is not complete (${typeof m.reason === 'string' ? m.reason : 'no reason given'})` : null;
}

/** Checks that the two sides can be compared: both have a result, or both a trace. */
export function comparable(a: RunInput, b: RunInput): void {
  if ((a.result && b.result) || (a.trace && b.trace)) return;
  throw new UsageError(`cannot compare ${a.file} (${a.result ? 'a result' : 'a trace'}) with ${b.file} (${b.result ? 'a result' : 'a trace'}): ` +
    'give two results, two traces, or two --report directories');
}

export function registerDiff(command: Command): void {
  command
    .argument('<a>', 'the first run: result JSON, trace JSON or report directory')
    .argument('<b>', 'the second run, compared against the first')
    .option('--json', 'print the diff as one JSON object')
    .action((fa: string, fb: string, opts: { json?: boolean }) => {
      const a = loadRunInput(fa);
      const b = loadRunInput(fb);
      for (const f of [fa, fb]) {
        const w = incompleteReport(f);
        if (w) process.stderr.write(`latsim: warning: ${w}\n`);
      }
      comparable(a, b);
      // A report directory on one side only: compare what both sides have.
      const both = (x: RunInput, y: RunInput): RunInput => ({
        file: x.file,
        result: y.result ? x.result : null,
        trace: y.trace ? x.trace : null,
      });
      const d = diffRuns(both(a, b), both(b, a));
      if (opts.json) process.stdout.write(`${JSON.stringify(d, null, 2)}\n`);
      else process.stdout.write(`${diffText(d)}\n`);
      process.exitCode = d.identical ? 0 : 1;
    });
}

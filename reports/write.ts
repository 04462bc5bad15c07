// Report directories. `latsim run --report DIR` writes report.txt (the text
// summary), result.json, trace.json (Perfetto) and report.html (plots);
// `latsim sweep --report DIR` writes its own files the same way. Each file is
// written whole (reports/output.ts), and manifest.json last: every file with
// its size and SHA-256, and `complete: true` only when every file was written
// and what they hold is all that was asked for (not an interrupted campaign).
// A manifest saying `complete: false` is written before the first file, so a
// directory cut short at any point is recognisable: its manifest says false,
// or the files do not match the sizes and digests it lists.
// Leaves out: rendering (reports/text.ts, json.ts, perfetto.ts, html.ts).
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { SimRun } from '../sim/run.ts';
import { textReport } from './text.ts';
import { resultJson } from './json.ts';
import { perfettoTrace } from './perfetto.ts';
import { htmlReport } from './html.ts';
import { ensureDirectory, OutputError, throwOutputErrors, writeFileAtomic } from './output.ts';

export { throwOutputErrors } from './output.ts';

export const MANIFEST_FILE = 'manifest.json';

export interface ReportFile {
  readonly name: string;
  readonly text: string;
}

/** manifest.json of a report directory. */
export interface Manifest {
  readonly format: 'latsim-report';
  readonly version: 1;
  /** The command that wrote the directory: run, sweep, real run, ... */
  readonly command: string;
  /** Every file written, and all that was asked for. */
  readonly complete: boolean;
  /** Why the directory is not complete; null when it is. */
  readonly reason: string | null;
  readonly files: readonly { readonly name: string; readonly bytes: number; readonly sha256: string }[];
  /** Files that could not be written, and why. */
  readonly failed: readonly { readonly name: string; readonly error: string }[];
}

function manifestText(m: Manifest): string {
  return `${JSON.stringify(m, null, 2)}\n`;
}

/**
 * Writes files into a directory, then its manifest. A file that cannot be
 * written does not stop the others; the manifest lists it, and the errors are
 * thrown once everything that could be written was. `partial`: why the
 * content is incomplete although every file is written (an interrupt).
 */
export function writeReportDirectory(dir: string, command: string, files: readonly ReportFile[], partial: string | null = null): Manifest {
  ensureDirectory(dir);
  const base = { format: 'latsim-report', version: 1, command } as const;
  writeFileAtomic(join(dir, MANIFEST_FILE), manifestText({ ...base, complete: false, reason: 'being written', files: [], failed: [] }));
  const written: Manifest['files'][number][] = [];
  const failed: Manifest['failed'][number][] = [];
  const errors: OutputError[] = [];
  for (const f of files) {
    try {
      writeFileAtomic(join(dir, f.name), f.text);
      written.push({ name: f.name, bytes: Buffer.byteLength(f.text), sha256: createHash('sha256').update(f.text).digest('hex') });
    } catch (e) {
      const err = OutputError.of(join(dir, f.name), 'write', e);
      errors.push(err);
      failed.push({ name: f.name, error: `${err.code} (${err.reason})` });
    }
  }
  const reason = failed.length > 0 ? `${failed.map((f) => f.name).join(', ')} could not be written` : partial;
  const manifest: Manifest = { ...base, complete: reason === null, reason, files: written, failed };
  try {
    writeFileAtomic(join(dir, MANIFEST_FILE), manifestText(manifest));
  } catch (e) {
    errors.push(OutputError.of(join(dir, MANIFEST_FILE), 'write', e));
  }
  throwOutputErrors(errors);
  return manifest;
}

/** The files of a run's report directory. */
export function runReportFiles(run: Pick<SimRun, 'result' | 'world'>): ReportFile[] {
  const r = run.result;
  return [
    { name: 'report.txt', text: `${textReport(r)}\n` },
    { name: 'result.json', text: `${JSON.stringify(resultJson(r), null, 2)}\n` },
    { name: 'trace.json', text: JSON.stringify(perfettoTrace(run.world.machine.trace.records, r)) },
    { name: 'report.html', text: htmlReport([r], { traces: [run.world.machine.trace.records] }) },
  ];
}

/** Writes a run's report directory; returns the paths of its files. */
export function writeReports(dir: string, run: SimRun, command = 'run'): string[] {
  const files = runReportFiles(run);
  writeReportDirectory(dir, command, files);
  return [...files.map((f) => join(dir, f.name)), join(dir, MANIFEST_FILE)];
}

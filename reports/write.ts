// Writes a run's reports into a directory: report.txt (the text summary),
// result.json, trace.json (Perfetto) and report.html (plots).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SimRun } from '../sim/run.ts';
import { textReport } from './text.ts';
import { resultJson } from './json.ts';
import { perfettoTrace } from './perfetto.ts';
import { htmlReport } from './html.ts';

export function writeReports(dir: string, run: SimRun): string[] {
  mkdirSync(dir, { recursive: true });
  const r = run.result;
  const files: [string, string][] = [
    ['report.txt', `${textReport(r)}\n`],
    ['result.json', `${JSON.stringify(resultJson(r), null, 2)}\n`],
    ['trace.json', JSON.stringify(perfettoTrace(run.world.machine.trace.records, r))],
    ['report.html', htmlReport([r], { traces: [run.world.machine.trace.records] })],
  ];
  for (const [name, text] of files) writeFileSync(join(dir, name), text);
  return files.map(([name]) => join(dir, name));
}

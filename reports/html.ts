// The HTML report (being replaced by the plotted version).
import type { RunResult } from '../sim/results.ts';
import { textReport } from './text.ts';

export function htmlReport(results: readonly RunResult[]): string {
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  return `<!doctype html><meta charset="utf-8"><title>latsim</title><pre>${esc(results.map((r) => textReport(r)).join('\n\n'))}</pre>`;
}

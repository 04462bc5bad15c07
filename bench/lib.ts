// Helpers shared by the benchmarks: command-line options, best-of-N rates,
// peak resident memory, and the two output forms (a small aligned table for
// people, one JSON object with --json).
//
// Leaves out: statistics beyond the best run (the benchmarks report the best
// of N, the figure least disturbed by the rest of the machine).

import { readFileSync } from 'node:fs';

export interface BenchOptions {
  json: boolean;
  args: string[];
}

/** Peak resident set size of this process in bytes (VmHWM; getrusage's maxrss elsewhere). */
export function peakRssBytes(): number {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // Not Linux: fall through to getrusage.
  }
  return process.resourceUsage().maxRSS * 1024;
}

/**
 * The best rate of reps timed runs of fn, which returns how many things it
 * did (events, writes): things per second of wall time.
 */
export function bestRate(reps: number, fn: () => number): number {
  let best = 0;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    const n = fn();
    const s = (performance.now() - t0) / 1000;
    if (n / s > best) best = n / s;
  }
  return best;
}

/** The value after `flag`, or fallback when the flag is absent. */
export function stringArg(args: readonly string[], flag: string, fallback: string): string {
  const i = args.indexOf(flag);
  if (i < 0) return fallback;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) usage(`${flag} needs a value`);
  return v;
}

/** A positive integer after `flag` (1e6 and 2**20 forms are accepted), or fallback. */
export function intArg(args: readonly string[], flag: string, fallback: number): number {
  const i = args.indexOf(flag);
  if (i < 0) return fallback;
  const text = args[i + 1] ?? '';
  const m = /^2\*\*(\d+)$/.exec(text);
  const v = m ? 2 ** Number(m[1]) : Number(text);
  if (!Number.isSafeInteger(v) || v < 1) usage(`${flag} needs a positive integer, got "${text}"`);
  return v;
}

/** A comma-separated list of positive integers after `flag`, or fallback. */
export function intListArg(args: readonly string[], flag: string, fallback: readonly number[]): number[] {
  const i = args.indexOf(flag);
  if (i < 0) return [...fallback];
  const list = (args[i + 1] ?? '').split(',').map(Number);
  if (list.length === 0 || list.some((v) => !Number.isSafeInteger(v) || v < 1)) {
    usage(`${flag} needs a comma-separated list of positive integers`);
  }
  return list;
}

/** A bad option: exit code 2, as the CLI does for bad input. */
export function usage(message: string): never {
  console.error(`bench: ${message}`);
  process.exit(2);
}

/** A benchmark that cannot produce a meaningful figure: exit code 1. */
export function fail(bench: string, message: string): never {
  console.error(`${bench}: ${message}`);
  process.exit(1);
}

/** Formats rows under a header, first column left-aligned, the rest right-aligned. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** Rounds to `digits` decimals. */
export function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** 12345678 -> "12.3 M", 1234 -> "1.23 k". */
export function si(x: number, digits = 3): string {
  const units: readonly [number, string][] = [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']];
  for (const [scale, unit] of units) {
    if (Math.abs(x) >= scale) return `${(x / scale).toPrecision(digits)} ${unit}`;
  }
  return x.toPrecision(digits);
}

/** Bytes as MiB or GiB with one decimal. */
export function bytesText(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** Prints exactly one JSON object (the --json contract). */
export function printJson(value: Record<string, unknown>): void {
  console.log(JSON.stringify(value));
}

// Helpers for CLI tests: run `latsim` in this process with its output
// captured, or as a child process (for signals, pipes and file descriptors);
// write scenario text to temporary files; find processes left behind.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { vi } from 'vitest';
import { main } from '../../cli/main.ts';

/** This checkout. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const text = (chunk: unknown): string => (typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));

/** Runs main(args) with stdout and stderr captured; leaves process.exitCode as it found it. */
export async function runCli(args: readonly string[]): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  // write(chunk, [encoding], [callback]): the callback is called, as a stream would (main waits for stdout to flush).
  const done = (rest: unknown[]) => {
    const cb = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
    if (cb) process.nextTick(cb);
  };
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: unknown, ...rest: unknown[]) => {
    stdout += text(chunk);
    done(rest);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: unknown, ...rest: unknown[]) => {
    stderr += text(chunk);
    done(rest);
    return true;
  });
  const saved = process.exitCode;
  process.exitCode = undefined;
  try {
    const code = await main(args);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
    process.exitCode = saved;
  }
}

/** A temporary directory; remove() deletes it. */
export function tempDir(prefix: string): { dir: string; file: (name: string, content: string) => string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `latsim-${prefix}-`));
  return {
    dir,
    file: (name, content) => {
      const f = join(dir, name);
      writeFileSync(f, content);
      return f;
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface Spawned {
  readonly child: ChildProcessWithoutNullStreams;
  /** Resolves once stderr (so far) matches; rejects if the process exits first. */
  waitForStderr(pattern: RegExp): Promise<void>;
  /** Resolves when the process has exited, with all it printed. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** Starts `node bin/latsim.mjs args` as a child process (for signals, pipes and real file descriptors). */
export function spawnCli(args: readonly string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Spawned {
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'latsim.mjs'), ...args], {
    cwd: options.cwd ?? ROOT, env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const waiters: { pattern: RegExp; resolve: () => void; reject: (e: Error) => void }[] = [];
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    for (const w of waiters.splice(0)) {
      if (w.pattern.test(stderr)) w.resolve();
      else waiters.push(w);
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) => {
    child.on('close', (code, signal) => {
      for (const w of waiters.splice(0)) w.reject(new Error(`exited (${code ?? signal}) before stderr matched ${w.pattern}:\n${stderr}`));
      resolve({ code, signal, stdout, stderr });
    });
  });
  return {
    child,
    exited,
    waitForStderr: (pattern) => new Promise((resolve, reject) => {
      if (pattern.test(stderr)) resolve();
      else if (child.exitCode !== null || child.signalCode !== null) reject(new Error(`exited before stderr matched ${pattern}:\n${stderr}`));
      else waiters.push({ pattern, resolve, reject });
    }),
  };
}

/** Pids of the processes whose command line contains `marker` (Linux /proc), this one left out. */
export function processesWith(marker: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(marker)) pids.push(Number(name));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

/** Pids of the processes whose working directory is under `dir` (Linux /proc). */
export function processesIn(dir: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readlinkSync(`/proc/${name}/cwd`).startsWith(dir)) pids.push(Number(name));
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return pids;
}

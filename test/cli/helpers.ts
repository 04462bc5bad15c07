// Helpers for CLI tests: run `latsim` in this process with its output
// captured, and write scenario text to temporary files.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vi } from 'vitest';
import { main } from '../../cli/main.ts';

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

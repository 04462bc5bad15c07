// Outputs of the command line, in child processes with real file
// descriptors: an output that cannot be written (a full device, a report
// directory onto or under a file, a trace onto a directory, a full stdout) is
// one line with the path, what failed and the errno, exit 9, never a stack
// trace, and costs nothing else (the report on stdout, the other files); a
// closed stdout (EPIPE) ends quietly with the run's own exit code; a report
// directory's manifest lists its files, sizes and digests; no temporary file
// is left behind.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, spawnCli, tempDir } from './helpers.ts';

const FIXTURE = 'test/cli/fixtures/flush-stall.yaml';
const tmp = tempDir('output');
afterAll(() => tmp.remove());

/** A small scenario whose budget fails: latsim run exits 1. */
const failing = tmp.file('failing.yaml', `
name: failing
seed: 3
duration: 2s
vm: { memory: 64MiB }
main_loop:
  handlers:
    - { name: slow, type: bh, interval: 500ms, cost: 200ms }
expect: { max_main_loop_block: 100ms }
`);

async function latsim(...args: string[]) {
  return spawnCli(args).exited;
}

/** stderr is exactly these lines, none of them a stack frame. */
function lines(stderr: string): string[] {
  const out = stderr.trimEnd().split('\n');
  for (const l of out) expect(l).not.toMatch(/^\s+at /);
  return out;
}

const noTemporaries = (dir: string) => expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);

describe('an output that cannot be written', () => {
  it.runIf(existsSync('/dev/full'))('--trace /dev/full: one line, exit 9, and the text report is printed all the same', async () => {
    const r = await latsim('run', FIXTURE, '--trace', '/dev/full');
    expect(r.code).toBe(9);
    expect(lines(r.stderr)).toEqual(['latsim: cannot write /dev/full: ENOSPC (no space left on device)']);
    expect(r.stdout).toContain('flush-stall (test/cli/fixtures/flush-stall.yaml), seed 7');
    expect(r.stdout).toContain('all budgets held');
  });

  it('--report onto a file: ENOTDIR, exit 9, and the JSON result is printed all the same', async () => {
    const file = tmp.file('a-file', 'keep me');
    const r = await latsim('run', FIXTURE, '--json', '--report', file);
    expect(r.code).toBe(9);
    expect(lines(r.stderr)).toEqual([`latsim: cannot create directory ${file}: ENOTDIR (not a directory)`]);
    expect(JSON.parse(r.stdout).seed).toBe(7);
    expect(readFileSync(file, 'utf8')).toBe('keep me');
  });

  it('a failed --trace does not cost the --report directory', async () => {
    const file = tmp.file('another-file', '');
    const dir = join(tmp.dir, 'report');
    const r = await latsim('run', FIXTURE, '--trace', join(file, 'trace.json'), '--report', dir);
    expect(r.code).toBe(9);
    expect(lines(r.stderr)).toEqual([`latsim: cannot write ${file}/trace.json: ENOTDIR (not a directory)`]);
    const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    expect(m).toMatchObject({ format: 'latsim-report', command: 'run', complete: true, reason: null, failed: [] });
    expect(m.files.map((f: { name: string }) => f.name)).toEqual(['report.txt', 'result.json', 'trace.json', 'report.html']);
    for (const f of m.files as { name: string; bytes: number; sha256: string }[]) {
      const data = readFileSync(join(dir, f.name));
      expect(data.length, f.name).toBe(f.bytes);
      expect(createHash('sha256').update(data).digest('hex'), f.name).toBe(f.sha256);
    }
    noTemporaries(dir);
  });

  it('--trace onto a directory: EISDIR; the exit code of an output error beats the verdict', async () => {
    const dir = join(tmp.dir, 'a-dir');
    mkdirSync(dir);
    const r = await latsim('run', failing, '--trace', dir);
    expect(r.code).toBe(9);
    expect(lines(r.stderr)).toEqual([`latsim: cannot write ${dir}: EISDIR (is a directory)`]);
    expect(r.stdout).toContain('FAIL max_main_loop_block');
  });

  it('sweep --report and fuzz --out that cannot be written are said before anything runs', async () => {
    const file = tmp.file('in-the-way', '');
    const s = await latsim('sweep', FIXTURE, '--seeds', '1..3', '--report', file);
    expect(s.code).toBe(9);
    expect(lines(s.stderr)).toEqual([`latsim: cannot create directory ${file}: ENOTDIR (not a directory)`]);
    expect(s.stdout).toBe('');
    const f = await latsim('fuzz', '--seeds', '1', '--out', join(file, 'regressions'));
    expect(f.code).toBe(9);
    expect(lines(f.stderr)).toEqual([`latsim: cannot create directory ${file}/regressions: ENOTDIR (not a directory)`]);
    expect(f.stdout).toBe('');
  });

  it.runIf(existsSync('/dev/full'))('a full stdout: one line, exit 9', async () => {
    const fd = openSync('/dev/full', 'w');
    try {
      const child = spawn(process.execPath, [join(ROOT, 'bin', 'latsim.mjs'), 'run', FIXTURE, '--json'], { cwd: ROOT, stdio: ['ignore', fd, 'pipe'] });
      let stderr = '';
      child.stderr!.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
      });
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      expect(code).toBe(9);
      expect(lines(stderr)).toEqual(['latsim: cannot write stdout: ENOSPC (no space left on device)']);
    } finally {
      closeSync(fd);
    }
  });
});

describe('a closed stdout', () => {
  it.each([
    ['a run whose budgets hold', FIXTURE, 0],
    ['a run whose budget fails', failing, 1],
  ])('ends %s quietly, with the run\'s exit code', async (_what, file, code) => {
    const p = spawnCli(['run', file, '--json']);
    // Like `latsim run --json | head -0`: the reader is gone before anything is written.
    p.child.stdout.destroy();
    const r = await p.exited;
    expect(r.code).toBe(code);
    expect(r.stderr).toBe('');
  });

  it('ends a sweep quietly too', async () => {
    const p = spawnCli(['sweep', FIXTURE, '--seeds', '1..2']);
    p.child.stdout.destroy();
    const r = await p.exited;
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
  });
});

describe('files are written whole', () => {
  it('a trace written twice is replaced, never appended to, and no temporary file is left', async () => {
    const trace = join(tmp.dir, 'trace.json');
    for (let i = 0; i < 2; i++) {
      const r = await latsim('run', FIXTURE, '--trace', trace);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(readFileSync(trace, 'utf8')).traceEvents.length).toBeGreaterThan(0);
    }
    noTemporaries(tmp.dir);
  });

  it('a sweep --report directory has its manifest', async () => {
    const dir = join(tmp.dir, 'sweep');
    const r = await latsim('sweep', FIXTURE, '--seeds', '1..2', '--report', dir);
    expect(r.code, r.stderr).toBe(0);
    const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    expect(m).toMatchObject({ command: 'sweep', complete: true, reason: null });
    expect(m.files.map((f: { name: string }) => f.name)).toEqual(['report.html', 'sweep.json', 'sweep.csv']);
    expect(JSON.parse(readFileSync(join(dir, 'sweep.json'), 'utf8'))).toMatchObject({ partial: false, interrupted: null });
    noTemporaries(dir);
  });
});

// SIGINT and SIGTERM during sweep, fuzz and bisect-param (bisect's are in
// commands/bisect.test.ts, beside its repository): the CLI runs as a child
// process and gets the signal once its progress lines show finished work.
// It must keep and print every finished row, marked partial (JSON: "partial"
// and "interrupted"; table and text: a last line), write the regression files
// of the failures already found, mark a --report directory incomplete, exit
// 130, and leave no process behind. Nothing here measures time: each signal
// follows a line the CLI printed.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mergeFiles } from '../../cli/commands/merge.ts';
import { parseScenario } from '../../cli/scenario-file.ts';
import { processesWith, runCli, spawnCli, tempDir } from './helpers.ts';

const tmp = tempDir('interrupt');
afterAll(() => tmp.remove());
// A copy of the fixture under a unique path: a process still using it after the CLI exited is a stray.
const scenario = tmp.file('flush-stall.yaml', readFileSync('test/cli/fixtures/flush-stall.yaml', 'utf8'));
const strays = () => processesWith(tmp.dir);
// Downtime is mostly the final flush (as in commands/bisect-param.test.ts; the disk is written to, so QEMU 9.2 flushes it): max_downtime holds at 1 ms, fails at 60 s.
const flush = tmp.file('flush.yaml', `
name: flush-threshold
seed: 5
duration: 20s
vm: { memory: 128MiB, vcpus: 1 }
guest:
  workloads:
    - { vcpus: all, dirty: { rate: 2000/s, pattern: uniform } }
devices:
  blk:
    - { name: disk0, flush: 1ms, io: { rate: 50/s, write_fraction: 1, flush_every: 0 } }
migration:
  start: 1s
  policy: legacy
  downtime_limit: 300ms
expect:
  max_downtime: 300ms
`);

describe('an interrupted sweep', () => {
  it('SIGINT: prints the rows finished as JSON marked partial, exits 130, leaves no process', async () => {
    const p = spawnCli(['sweep', scenario, '--seeds', '1..5000', '--progress', 'lines', '--json']);
    await p.waitForStderr(/sweep: 3 of 5000 runs done/);
    p.child.kill('SIGINT');
    const r = await p.exited;
    expect(r.code, r.stderr).toBe(130);
    const doc = JSON.parse(r.stdout);
    expect(doc.partial).toBe(true);
    expect(doc.interrupted).toMatchObject({ signal: 'SIGINT', total: 5000 });
    const done = doc.interrupted.done as number;
    expect(done).toBeGreaterThanOrEqual(3);
    expect(done).toBeLessThan(5000);
    // One worker: the runs finished are the first ones, in order, each a real row.
    expect(doc.rows.map((x: { index: number }) => x.index)).toEqual([...Array(done).keys()]);
    expect(doc.rows.map((x: { seed: number }) => x.seed)).toEqual(Array.from({ length: done }, (_, i) => i + 1));
    for (const row of doc.rows) expect(row.trace_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(r.stderr.trimEnd().split('\n').at(-1)).toBe(`latsim sweep: interrupted by SIGINT after ${done} of 5000 runs; the rows are the runs that finished`);
    expect(strays()).toEqual([]);

    // A shard cut short does not merge as if it were whole.
    const file = join(tmp.dir, 'partial.json');
    writeFileSync(file, r.stdout);
    expect(() => mergeFiles([file], 'json')).toThrow(`was interrupted by SIGINT after ${done} of 5000; run that shard again`);
  });

  it('SIGTERM with two workers: a table whose last line says so, and a --report directory marked incomplete', async () => {
    const report = join(tmp.dir, 'sweep-report');
    const p = spawnCli(['sweep', scenario, '--seeds', '1..5000', '--workers', '2', '--progress', 'lines', '--report', report]);
    await p.waitForStderr(/sweep: 2 of 5000 runs done/);
    p.child.kill('SIGTERM');
    const r = await p.exited;
    expect(r.code, r.stderr).toBe(130);
    const out = r.stdout.trimEnd().split('\n');
    const last = out.at(-1)!;
    const m = /^latsim sweep: interrupted by SIGTERM after (\d+) of 5000 runs; the rows are the runs that finished$/.exec(last);
    expect(m, last).not.toBeNull();
    const done = Number(m![1]);
    expect(done).toBeGreaterThanOrEqual(2);
    expect(out).toContain(`${done} runs: ${done} passed, 0 failed`);
    const manifest = JSON.parse(readFileSync(join(report, 'manifest.json'), 'utf8'));
    expect(manifest).toMatchObject({ command: 'sweep', complete: false, reason: `interrupted by SIGTERM after ${done} of 5000 runs`, failed: [] });
    const doc = JSON.parse(readFileSync(join(report, 'sweep.json'), 'utf8'));
    expect(doc).toMatchObject({ partial: true, interrupted: { signal: 'SIGTERM', done, total: 5000 } });
    expect(doc.rows).toHaveLength(done);
    expect(strays()).toEqual([]);
  });
});

describe('an interrupted fuzz campaign', () => {
  const plant = ['--plant', 'sync-drops-new-bits'];

  it('SIGINT while seeds run: the seeds finished, and a regression file for every failure found', async () => {
    const out = join(tmp.dir, 'regressions');
    const p = spawnCli(['fuzz', '--seeds', '5000', ...plant, '--out', out, '--progress', 'lines', '--json']);
    await p.waitForStderr(/fuzz: 8 of 5000 seeds done/);
    p.child.kill('SIGINT');
    const r = await p.exited;
    expect(r.code, r.stderr).toBe(130);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ partial: true, interrupted: { signal: 'SIGINT', total: 5000, stage: 'seeds' } });
    const done = doc.interrupted.done as number;
    expect(done).toBeGreaterThanOrEqual(8);
    expect(doc.rows.map((x: { seed: number }) => x.seed)).toEqual(Array.from({ length: done }, (_, i) => i + 1));
    // The planted bug is found within the first seeds (as in commands/fuzz.test.ts), and every failure has its file.
    const failed = doc.rows.filter((x: { pass: boolean }) => !x.pass).map((x: { seed: number }) => x.seed);
    expect(failed.length).toBeGreaterThan(0);
    expect(doc.failures.map((f: { seed: number }) => f.seed)).toEqual(failed);
    for (const f of doc.failures) {
      expect(f.shrunk_file).toBe(join(out, `fuzz-${f.class}-${f.seed}.yaml`));
      expect(parseScenario(readFileSync(f.shrunk_file, 'utf8'), f.shrunk_file).migration!.bug).toBe('sync-drops-new-bits');
    }
    expect(readdirSync(out).sort()).toEqual(doc.failures.map((f: { shrunk_file: string }) => f.shrunk_file.slice(out.length + 1)).sort());
    expect(r.stderr).toContain(`latsim fuzz: interrupted by SIGINT after ${done} of 5000 seeds`);
    expect(strays()).toEqual([]);
  });

  it('SIGINT while shrinking: the failure keeps its seed\'s own scenario as regression file', async () => {
    // A seed the planted bug fails with.
    const probe = await runCli(['fuzz', '--seeds', '3', ...plant, '--shrink-runs', '0', '--out', join(tmp.dir, 'probe'), '--json']);
    const seed = JSON.parse(probe.stdout).failures[0].seed as number;
    const out = join(tmp.dir, 'shrinking');
    const p = spawnCli(['fuzz', '--seeds', '1', '--seed-start', String(seed), ...plant, '--out', out, '--progress', 'lines']);
    // The seed is done and its file written; shrinking starts (in a worker thread).
    await p.waitForStderr(/fuzz: 1 of 1 seeds done/);
    p.child.kill('SIGINT');
    const r = await p.exited;
    expect(r.code, r.stderr).toBe(130);
    const text = r.stdout.trimEnd().split('\n');
    expect(text.at(-1)).toBe('fuzz: interrupted by SIGINT after 0 of 1 failures shrunk; the others keep their seed\'s own scenario');
    const file = join(out, `fuzz-lost-page-${seed}.yaml`);
    expect(text).toContain(`  not shrunk: ${file}`);
    const regression = readFileSync(file, 'utf8');
    expect(regression).toContain('# Not shrunk; this is the seed\'s own scenario:');
    expect(regression).toContain(`# Replay: latsim run ${file}`);
    expect(strays()).toEqual([]);
  });
});

describe('an interrupted bisect-param', () => {
  it('prints the runs made and the bracket so far, marked partial, exit 130', async () => {
    const p = spawnCli(['bisect-param', flush, '--param', 'devices.blk[0].flush', '--range', '1ms..60s', '--precision', '1ms', '--json']);
    // Both ends have run: the bracket is known.
    await p.waitForStderr(/bisect-param: [^\n]+\nbisect-param: [^\n]+\n/);
    p.child.kill('SIGINT');
    const r = await p.exited;
    expect(r.code, r.stderr).toBe(130);
    const b = JSON.parse(r.stdout);
    expect(b).toMatchObject({ partial: true, threshold: null, monotonic: null, interrupted: { signal: 'SIGINT', total: null } });
    expect(b.interrupted.done).toBe(b.steps.length);
    expect(b.steps.length).toBeGreaterThanOrEqual(2);
    expect(b.verdict).toMatch(/^interrupted by SIGINT after \d+ runs: /);
    expect(r.stderr.trimEnd().split('\n').at(-1)).toBe(`latsim bisect-param: interrupted by SIGINT after ${b.steps.length} runs`);
    expect(strays()).toEqual([]);
  });
});

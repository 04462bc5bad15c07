// `latsim merge`: the shards of a fuzz campaign and of a sweep, each run
// separately (one of them on two worker threads), merge into exactly the
// output of the unsharded run; shards that do not cover the campaign exactly,
// or that belong to different campaigns, exit 2 with what does not fit.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mergeFiles } from '../../../cli/commands/merge.ts';

const dir = mkdtempSync(join(tmpdir(), 'latsim-merge-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function latsim(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/latsim.mjs', ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs latsim and saves its stdout to a file in the test directory. */
function save(name: string, ...args: string[]): string {
  const r = latsim(...args);
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).not.toBe(2);
  const f = join(dir, name);
  writeFileSync(f, r.stdout);
  return f;
}

describe('latsim merge', () => {
  it('joins fuzz shards into the unsharded output', () => {
    const fuzz = ['fuzz', '--seeds', '5', '--seed-start', '40', '--out', dir, '--json'];
    const whole = save('fuzz.json', ...fuzz);
    const s1 = save('fuzz-1.json', ...fuzz, '--shard', '1/2', '--workers', '2');
    const s2 = save('fuzz-2.json', ...fuzz, '--shard', '2/2');
    const m = latsim('merge', s2, s1, '--json');
    expect(m.code, m.stderr).toBe(0);
    expect(m.stdout).toBe(readFileSync(whole, 'utf8'));
    expect(JSON.parse(m.stdout).rows.map((r: { seed: number }) => r.seed)).toEqual([40, 41, 42, 43, 44]);

    expect(() => mergeFiles([s1], 'json')).toThrow('the shards cover 3 of 5 runs; missing runs 1, 3 (shard 2/2 not given)');
    expect(() => mergeFiles([s1, s1, s2], 'json')).toThrow(/run 0 is in both .* a shard is given twice or the shards overlap/);
    const other = join(dir, 'fuzz-other.json');
    const doc = JSON.parse(readFileSync(s2, 'utf8'));
    writeFileSync(other, JSON.stringify({ ...doc, campaign: { ...doc.campaign, seed_start: 41 } }));
    expect(() => mergeFiles([s1, other], 'json')).toThrow('belongs to another campaign');
    const missing = latsim('merge', s1);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('missing runs 1, 3');
  });

  it('joins sweep shards into the unsharded output, in every format', () => {
    const scenario = join(dir, 'sweep.yaml');
    writeFileSync(scenario, `
name: merge-sweep
seed: 3
duration: 3s
vm: { memory: 64MiB }
main_loop:
  handlers:
    - { name: noisy, type: bh, rate: 20/s, cost: { dist: exponential, mean: 5ms } }
expect:
  max_main_loop_block: 40ms
`);
    const sweep = ['sweep', scenario, '--set', 'main_loop.handlers[0].rate=10/s,50/s', '--seeds', '1..3', '--json'];
    const whole = save('sweep.json', ...sweep);
    const s1 = save('sweep-1.json', ...sweep, '--shard', '1/3');
    const s2 = save('sweep-2.json', ...sweep, '--shard', '2/3');
    const s3 = save('sweep-3.json', ...sweep, '--shard', '3/3', '--workers', '2');
    const m = latsim('merge', s3, s1, s2, '--json');
    expect(m.code).toBe(mergeFiles([whole], 'json').exitCode);
    expect(m.stdout).toBe(readFileSync(whole, 'utf8'));
    for (const format of ['csv', 'table']) {
      expect(mergeFiles([s2, s3, s1], format).output, format).toBe(mergeFiles([whole], format).output);
    }
    const fuzzDoc = join(dir, 'a-fuzz-doc.json');
    writeFileSync(fuzzDoc, JSON.stringify({ format: 'latsim-fuzz', version: 1, campaign: { seed_start: 1, seeds: 1, plant: null, knobs_version: 1 }, shard: null, seeds: 0, passed: 0, not_run: 0, failures: [], rows: [] }));
    expect(() => mergeFiles([s1, fuzzDoc], 'json')).toThrow('do not merge');
    expect(() => mergeFiles([scenario], 'json')).toThrow('not JSON');
  });
});

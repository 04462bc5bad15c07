// Tests of `latsim sweep` and cli/campaign.ts: parsing --set, --seeds and
// --shard; the grid's order; shards that partition a campaign exactly; the
// same rows whatever --workers is; the table, CSV and JSON outputs (JSON
// self-describing enough to join shards); bad grid values as exit 2 with the
// file, line and path; --report writing the side-by-side HTML.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  campaignSpec, expandGrid, parsePath, parseSet, parseShard, parseWorkers, pointCount, shardPoints,
} from '../../cli/campaign.ts';
import { parseSeeds } from '../../cli/args.ts';
import type { CampaignDocument, GridAxis } from '../../reports/campaign.ts';
import { UsageError } from '../../cli/errors.ts';
import { runCli, tempDir } from './helpers.ts';

const FIXTURE = 'test/cli/fixtures/flush-stall.yaml';
const POLICIES = 'migration.policy=legacy,[flush-timeout,min-interval]';

describe('parsing the command line', () => {
  it('--set splits values at top-level commas only', () => {
    expect(parseSet(POLICIES)).toEqual({ path: 'migration.policy', values: ['legacy', '[flush-timeout,min-interval]'] });
    expect(parseSet('devices.blk[0].flush=1ms, {dist: exponential, mean: 2ms},"a,b"')).toEqual({
      path: 'devices.blk[0].flush', values: ['1ms', '{dist: exponential, mean: 2ms}', '"a,b"'],
    });
    expect(parseSet('vm.vcpus=1')).toEqual({ path: 'vm.vcpus', values: ['1'] });
  });

  it.each(['novalue', '=1s', 'a..b=1', 'a.=1', 'a[x]=1', 'a=1,,2', 'a=', 'a=[1,2', 'a b=1'])('--set %j is a usage error', (text) => {
    expect(() => parseSet(text)).toThrow(UsageError);
  });

  it('paths name keys and list indices', () => {
    expect(parsePath('devices.blk[0].flush')).toEqual(['devices', 'blk', 0, 'flush']);
    expect(parsePath('main_loop.handlers[2].cost')).toEqual(['main_loop', 'handlers', 2, 'cost']);
    expect(parsePath('a[1][2]')).toEqual(['a', 1, 2]);
  });

  it('--seeds takes a range, a list or one seed', () => {
    expect(parseSeeds('--seeds', '1..4', 100)).toEqual([1, 2, 3, 4]);
    expect(parseSeeds('--seeds', '7', 100)).toEqual([7]);
    expect(parseSeeds('--seeds', '5,1,3', 100)).toEqual([5, 1, 3]);
  });

  it.each(['3..1', 'x', '-1', '1,1', '4294967296', '1..', '1.5'])('--seeds %j is a usage error', (text) => {
    expect(() => parseSeeds('--seeds', text, 100)).toThrow(UsageError);
  });

  it('--shard is i/n with 1 <= i <= n', () => {
    expect(parseShard('2/4')).toEqual({ index: 2, count: 4 });
    for (const bad of ['0/4', '5/4', '1/0', 'a/b', '1', '1/2/3']) expect(() => parseShard(bad), bad).toThrow(UsageError);
  });

  it('--workers is a count or auto', () => {
    expect(parseWorkers('3')).toBe(3);
    expect(parseWorkers('auto')).toBeGreaterThanOrEqual(1);
    for (const bad of ['0', '-1', '1.5', 'many', '100000']) expect(() => parseWorkers(bad), bad).toThrow(UsageError);
  });
});

describe('the grid', () => {
  const axes: GridAxis[] = [{ path: 'a', values: ['1', '2'] }, { path: 'b', values: ['x', 'y', 'z'] }];

  it('runs every combination, first axis outermost, seeds innermost', () => {
    const spec = campaignSpec('s.yaml', 'text', axes, [10, 11]);
    const points = expandGrid(spec);
    expect(pointCount(spec)).toBe(12);
    expect(points.map((p) => p.index)).toEqual([...Array(12).keys()]);
    expect(points.slice(0, 4).map((p) => [...p.values, p.seed])).toEqual([['1', 'x', 10], ['1', 'x', 11], ['1', 'y', 10], ['1', 'y', 11]]);
    expect(points[11]).toEqual({ index: 11, values: ['2', 'z'], seed: 11 });
  });

  it('without --seeds, each point runs once with the scenario\'s seed', () => {
    expect(expandGrid(campaignSpec('s.yaml', 'text', axes, null)).map((p) => p.seed)).toEqual(Array(6).fill(null));
    expect(expandGrid(campaignSpec('s.yaml', 'text', [], null))).toEqual([{ index: 0, values: [], seed: null }]);
  });

  it('refuses a path given twice and a campaign too large', () => {
    expect(() => campaignSpec('s', 't', [axes[0]!, { path: 'a', values: ['3'] }], null)).toThrow(/given twice/);
    const big = Array.from({ length: 1001 }, (_, i) => String(i));
    expect(() => campaignSpec('s', 't', [{ path: 'a', values: big }, { path: 'b', values: big }], null)).toThrow(/more than/);
  });

  it('shards partition the campaign: every point in exactly one shard, shards within one point of each other in size', () => {
    fc.assert(fc.property(
      fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 0, maxLength: 3 }),
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 1, max: 12 }),
      (sizes, seeds, n) => {
        const spec = campaignSpec('s', 't', sizes.map((k, i) => ({ path: `p${i}`, values: Array.from({ length: k }, (_, j) => String(j)) })),
          Array.from({ length: seeds }, (_, i) => i + 1));
        const all = expandGrid(spec);
        const shards = Array.from({ length: n }, (_, i) => shardPoints(all, { index: i + 1, count: n }));
        const union = shards.flat().map((p) => p.index).sort((a, b) => a - b);
        expect(union).toEqual(all.map((p) => p.index));
        const lengths = shards.map((s) => s.length);
        expect(Math.max(...lengths) - Math.min(...lengths)).toBeLessThanOrEqual(1);
        shards.forEach((s, i) => s.forEach((p) => expect(p.index % n).toBe(i)));
        expect(shardPoints(all, null)).toEqual(all);
      },
    ));
  });
});

describe('latsim sweep', () => {
  const tmp = tempDir('sweep');
  afterAll(() => tmp.remove());
  const args = ['sweep', FIXTURE, '--set', POLICIES, '--seeds', '1..2'];
  const json = async (...extra: string[]) => {
    const run = await runCli([...args, '--json', ...extra]);
    return { ...run, doc: JSON.parse(run.stdout) as CampaignDocument };
  };

  it('prints a self-describing JSON document, one row per run in campaign order', async () => {
    const { code, stderr, doc } = await json();
    expect(stderr).toBe('');
    expect(doc.format).toBe('latsim-campaign');
    expect(doc.version).toBe(1);
    expect(doc.command).toBe('sweep');
    expect(doc.campaign).toEqual({
      scenario: FIXTURE,
      scenario_sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
      axes: [{ path: 'migration.policy', values: ['legacy', '[flush-timeout,min-interval]'] }],
      seeds: [1, 2],
      points: 4,
    });
    expect(doc.shard).toBeNull();
    expect(doc.columns.slice(0, 3)).toEqual(['index', 'migration.policy', 'seed']);
    expect(doc.rows.map((r) => [r.index, r.grid['migration.policy'], r.seed])).toEqual([
      [0, 'legacy', 1], [1, 'legacy', 2], [2, '[flush-timeout,min-interval]', 1], [3, '[flush-timeout,min-interval]', 2],
    ]);
    for (const r of doc.rows) {
      expect(r.outcome).toBe('ok');
      expect(r.migration_status).toBe('completed');
      expect(r.trace_sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(r.exit_code).toBe(r.pass ? 0 : 1);
      expect(r.downtime_ms).toBeGreaterThan(0);
      expect(r.userspace_progress).toBeGreaterThan(0);
      expect(r.ping_rtt_p99_ms).toBeGreaterThan(0);
    }
    // The policy is what the rows differ in: rollbacks only with flush-timeout.
    expect(doc.rows.map((r) => r.rollbacks! > 0)).toEqual([false, false, true, true]);
    expect(code).toBe(Math.max(...doc.rows.map((r) => r.exit_code)));
  });

  it('gives the same rows with 1 and 2 workers', async () => {
    const one = await json('--workers', '1');
    const two = await json('--workers', '2');
    expect(two.code).toBe(one.code);
    expect(two.stdout).toBe(one.stdout);
  });

  it('shards join into the whole campaign', async () => {
    const whole = await json();
    const shards = [];
    for (const i of [1, 2, 3]) shards.push(await json('--shard', `${i}/3`));
    for (const [i, s] of shards.entries()) {
      expect(s.doc.shard).toEqual({ index: i + 1, count: 3 });
      expect(s.doc.campaign).toEqual(whole.doc.campaign);
      expect(s.doc.rows.every((r) => r.index % 3 === i)).toBe(true);
    }
    const joined = shards.flatMap((s) => s.doc.rows).sort((a, b) => a.index - b.index);
    expect(joined).toEqual(whole.doc.rows);
  });

  it('prints CSV with a header and quoted cells', async () => {
    const run = await runCli([...args, '--format', 'csv']);
    const { doc } = await json();
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(doc.columns.join(','));
    expect(lines).toHaveLength(5);
    expect(lines[3]!.startsWith('2,"[flush-timeout,min-interval]",1,')).toBe(true);
    for (const line of lines.slice(1)) {
      // Quoted commas aside, one cell per column.
      expect(line.replace(/"[^"]*"/g, 'q').split(',')).toHaveLength(doc.columns.length);
    }
  });

  it('prints a table by default, with a summary line and no progress bar off a terminal', async () => {
    const run = await runCli(args);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^migration\.policy\s+seed\s+result\s+exit\s+downtime\s+main loop max/);
    expect(lines.slice(1, 5).map((l) => l.split(/\s+/)[0])).toEqual(['legacy', 'legacy', '[flush-timeout,min-interval]', '[flush-timeout,min-interval]']);
    expect(lines[lines.length - 1]).toMatch(/^4 runs: \d passed, \d failed$/);
    expect(run.stderr).toBe('');
  });

  it('writes the side-by-side report with --report', async () => {
    const dir = join(tmp.dir, 'report');
    const run = await runCli([...args, '--json', '--report', dir]);
    expect(['report.html', 'sweep.json', 'sweep.csv'].every((f) => existsSync(join(dir, f)))).toBe(true);
    expect(readFileSync(join(dir, 'sweep.json'), 'utf8')).toBe(run.stdout);
    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    expect(html).toContain('data-chart="compare-metrics"');
    expect(html.match(/<h2>[^<]*migration\.policy=legacy, seed 1<\/h2>/)).not.toBeNull();
  });

  it('a bad grid value is bad input: exit 2, one line with the file, line and path, before anything runs', async () => {
    const line = readFileSync(FIXTURE, 'utf8').split('\n').findIndex((l) => l.startsWith('  flush_timeout:')) + 1;
    const run = await runCli(['sweep', FIXTURE, '--set', 'migration.flush_timeout=1s,abc']);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(`latsim: ${FIXTURE}:${line}:18: migration.flush_timeout: expected a duration like "358ms" or "40s", got "abc" (--set migration.flush_timeout=abc)\n`);
  });

  it('an impossible combination is bad input too', async () => {
    const run = await runCli(['sweep', FIXTURE, '--set', 'migration.policy=flush-timeout,min-interval']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^latsim: \S+:\d+:\d+: migration\.policy: min-interval acts after a rollback.*\(--set migration\.policy=min-interval\)\n$/);
  });

  it.each([
    [['--shard', '4/3'], /--shard "4\/3"/],
    [['--workers', '0'], /--workers/],
    [['--format', 'xml'], /--format: expected one of table, csv, json/],
    [['--seeds', '2..1'], /--seeds 2\.\.1: the range is empty/],
    [['--set', 'migration.policy=legacy'], /given twice/],
  ])('%j is a usage error', async (extra, message) => {
    const run = await runCli([...args, ...(extra as string[])]);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(message as RegExp);
    expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
  });

  it('a missing scenario is bad input', async () => {
    const run = await runCli(['sweep', 'no/such.yaml', '--set', POLICIES]);
    expect(run.code).toBe(2);
    expect(run.stderr).toBe('latsim: no/such.yaml: no such file\n');
  });
});

// `latsim bisect` on a throwaway git repository built here from this
// checkout's HEAD: a good commit, a neutral one, a commit that breaks the CLI
// (skipped), its fix, the planted regression (a default of the scenario format grows the
// device state sent during downtime from 512 KiB to 512 MiB, so max_downtime
// fails), and a neutral commit. Bisect must name the regression, go around the
// broken commit, show the diff, and leave no worktree behind; interrupted,
// print the commits tested so far and leave no worktree, temporary directory
// or process behind. Also the exit codes of `latsim run --bisect` for
// `git bisect run`.
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processesIn, spawnCli } from '../helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'latsim-bisect-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const repo = join(dir, 'repo');

function latsim(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/latsim.mjs', ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function git(...args: string[]): string {
  const r = spawnSync('git', ['-c', 'user.name=latsim test', '-c', 'user.email=test@latsim.invalid', '-c', 'commit.gpgsign=false', ...args], { cwd: repo, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

function commit(message: string): string {
  git('commit', '-q', '-a', '-m', message);
  return git('rev-parse', 'HEAD');
}

const scenarioText = `
name: bisect-me
seed: 5
duration: 10s
vm: { memory: 64MiB, vcpus: 1 }
guest:
  workloads:
    - { vcpus: all, dirty: { rate: 1000/s, pattern: uniform } }
migration:
  start: 1s
  downtime_limit: 300ms
expect:
  migration_status: completed
  max_downtime: 300ms
`;
const scenario = join(dir, 'bisect-me.yaml');
const commits: Record<string, string> = {};

beforeAll(() => {
  writeFileSync(scenario, scenarioText);
  mkdirSync(repo);
  const archive = spawnSync('git', ['archive', '--format=tar', 'HEAD'], { encoding: 'buffer', maxBuffer: 256 * 2 ** 20 });
  expect(archive.status, 'git archive HEAD of this checkout').toBe(0);
  expect(spawnSync('tar', ['-x', '-C', repo], { input: archive.stdout }).status).toBe(0);
  git('init', '-q');
  git('add', '-A');
  git('commit', '-q', '-m', 'initial: a good tree');
  commits.good = git('rev-parse', 'HEAD');
  appendFileSync(join(repo, 'README.md'), '\nA first neutral change.\n');
  commits.neutral = commit('docs: a first neutral change');
  const run = join(repo, 'cli', 'commands', 'run.ts');
  const runText = readFileSync(run, 'utf8');
  appendFileSync(run, '\nthis is not TypeScript (\n');
  commits.broken = commit('wip: a commit that does not load');
  writeFileSync(run, runText);
  commits.fixed = commit('fix the wip commit');
  const sf = join(repo, 'sim', 'scenario', 'migration.ts');
  const before = readFileSync(sf, 'utf8');
  const after = before.replace(/(m\.device_state,\s*)512 \* 1024,/, '$1512 * 1024 * 1024,');
  expect(after, 'the planted regression (device_state default) no longer applies: update this test').not.toBe(before);
  writeFileSync(sf, after);
  commits.regression = commit('migration: send more device state by default');
  appendFileSync(join(repo, 'README.md'), '\nA neutral change.\n');
  commits.bad = commit('docs: a neutral change');
});

describe('latsim bisect', () => {
  it('names the first bad commit, skips the broken one, shows the diff and cleans up', () => {
    const r = latsim('bisect', scenario, '--good', commits.good!, '--bad', commits.bad!, '--repo', repo, '--json');
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.candidates).toBe(5);
    expect(j.first_bad).toEqual({ commit: commits.regression, subject: 'migration: send more device state by default' });
    expect(j.last_good.commit).toBe(commits.fixed);
    const verdicts = Object.fromEntries(j.steps.map((s: { commit: string; verdict: string }) => [s.commit, s.verdict]));
    expect(verdicts[commits.good!]).toBe('good');
    expect(verdicts[commits.bad!]).toBe('bad');
    expect(verdicts[commits.broken!]).toBe('skip');
    expect(verdicts[commits.neutral!]).toBe('good');
    expect(verdicts[commits.regression!]).toBe('bad');
    expect(j.steps[0].install).toMatch(/identical package-lock\.json/);
    expect(j.diff.budgets.map((b: { name: string }) => b.name)).toContain('max_downtime');
    expect(j.diff.migration.downtime_phases_ns.device_state.delta).toBeGreaterThan(300e6);
    expect(j.diff.verdict).toMatch(/^B is worse: budget max_downtime fails, downtime \+\d+ ms \(device_state\)/);
    expect(j.steps.find((s: { commit: string }) => s.commit === commits.broken).note).toMatch(/exited 1 without a result/);
    // Every worktree is gone.
    expect(git('worktree', 'list').split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('skip');
  });

  it('SIGINT: prints the commits tested so far, marked partial, exits 130 and leaves nothing behind', async () => {
    // Its own temporary directory, to see that the worktrees, node_modules and children in it are gone.
    const tmp = join(dir, 'tmp');
    mkdirSync(tmp);
    const p = spawnCli(['bisect', scenario, '--good', commits.good!, '--bad', commits.bad!, '--repo', repo, '--json'], { env: { ...process.env, TMPDIR: tmp } });
    // The good commit is tested; the bad one is being tested (a child latsim run in a worktree).
    await p.waitForStderr(/^[0-9a-f]{12} good /m);
    p.child.kill('SIGINT');
    const r = await p.exited;
    expect(r.code, r.stderr).toBe(130);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ partial: true, first_bad: null, diff: null, interrupted: { signal: 'SIGINT', total: null } });
    expect(j.steps[0]).toMatchObject({ commit: commits.good, verdict: 'good' });
    expect(j.interrupted.done).toBe(j.steps.length);
    expect(r.stderr.trimEnd().split('\n').at(-1)).toBe(`latsim bisect: interrupted by SIGINT after ${j.steps.length} commits tested`);
    expect(git('worktree', 'list').split('\n')).toHaveLength(1);
    expect(readdirSync(tmp).filter((n) => n.startsWith('latsim-bisect-'))).toEqual([]);
    expect(processesIn(tmp)).toEqual([]);
  });

  it('exits 2 when the --good commit is not good', () => {
    const r = latsim('bisect', scenario, '--good', commits.regression!, '--bad', commits.bad!, '--repo', repo);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--good .* is not good: bad \(latsim run exited 1\)/);
    expect(git('worktree', 'list').split('\n')).toHaveLength(1);
  });
});

describe('latsim run --bisect (for git bisect run)', () => {
  it('maps exit codes to git bisect run: 0 good, 1 bad, 125 skip', () => {
    const good = join(dir, 'good.yaml');
    const bad = join(dir, 'bad.yaml');
    const skip = join(dir, 'skip.yaml');
    const base = 'name: b\nduration: 2s\nvm: { memory: 64MiB }\nmain_loop:\n  handlers:\n    - { name: slow, type: bh, interval: 500ms, cost: 200ms }\n';
    writeFileSync(good, `${base}expect: { max_main_loop_block: 1s }\n`);
    writeFileSync(bad, `${base}expect: { max_main_loop_block: 100ms }\n`);
    writeFileSync(skip, `${base}not_known_here: 1\n`);
    expect(latsim('run', good, '--bisect').code).toBe(0);
    expect(latsim('run', bad, '--bisect').code).toBe(1);
    const s = latsim('run', skip, '--bisect');
    expect(s.code).toBe(125);
    expect(s.stderr).toContain('skipping this commit (exit 125)');
    expect(latsim('run', skip).code).toBe(2);
  });
});

// `latsim bisect --good REV --bad REV <scenario>`: finds the first commit at
// which a scenario's budgets fail. Candidates are the commits on the ancestry
// path from good to bad (`git rev-list --ancestry-path`, oldest first); each
// one tested is checked out in a temporary `git worktree`, gets its
// node_modules, and runs `node bin/latsim.mjs run <scenario> --json` with the
// scenario file of the current tree copied in, so every commit runs the same
// scenario. Exit 0 is good; 1, 3 and 4 with a result printed are bad; 2
// (the scenario does not apply at that commit), 5, a crash while loading (exit
// 1 without a result) or a failed install are "skip", like git bisect's 125,
// and the search goes around skipped commits. The result names the first bad
// commit and shows `latsim diff` of the last good and first bad runs.
// Worktrees and the temporary directory are removed however it ends. SIGINT
// or SIGTERM stops the child process in progress (its process group), removes
// the worktrees and prints the commits tested so far, marked partial, exit
// 130; a second signal removes them and exits at once.
//
// node_modules for a commit, in this order: --node-modules DIR (linked); a
// link to the node_modules of the repository's checkout or of this latsim
// when its package-lock.json is byte-identical to the commit's; otherwise
// `npm ci --no-audit --no-fund --prefer-offline` in the worktree (kept for
// later commits with the same lockfile). Which one was used is reported.
// Leaves out: merge-heavy histories are bisected along rev-list's order, which
// is exact for linear history only; `git bisect run` (see the README) is the
// tool for those.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { UsageError } from '../errors.ts';
import { parseInteger, parseSeed } from '../args.ts';
import { catchInterrupts, interruptionText, type Interruption, type Interrupts } from '../interrupt.ts';
import { EXIT } from '../exit-codes.ts';
import { loadScenarioFile } from '../scenario-file.ts';
import { diffRuns, diffText, type ResultJson, type RunDiff } from '../../reports/diff.ts';

/** This latsim's own checkout (its node_modules may serve commits with the same lockfile). */
const LATSIM_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Wall-clock limit of one install or one run (a hang is a skip, not a stuck bisect). */
const DEFAULT_TIMEOUT_S = 600;

export type Verdict = 'good' | 'bad' | 'skip';

export interface BisectStep {
  readonly commit: string;
  readonly subject: string;
  readonly verdict: Verdict;
  /** latsim run's exit code, null if it did not run. */
  readonly exit_code: number | null;
  /** Why a commit was skipped, or the run's error line. */
  readonly note: string;
  /** How node_modules was provided. */
  readonly install: string;
}

export interface BisectResult {
  readonly repo: string;
  readonly scenario: string;
  readonly good: string;
  readonly bad: string;
  /** Commits on the path good..bad (bad included). */
  readonly candidates: number;
  readonly first_bad: { commit: string; subject: string } | null;
  /** When skipped commits hide the answer: the commits it is among. */
  readonly possible: readonly { commit: string; subject: string }[];
  readonly last_good: { commit: string; subject: string } | null;
  readonly steps: readonly BisectStep[];
  readonly diff: RunDiff | null;
  /** True when an interrupt stopped the search: steps are the commits tested so far. */
  readonly partial: boolean;
  readonly interrupted: Interruption | null;
}

export interface BisectOptions {
  good: string;
  bad: string;
  repo?: string;
  nodeModules?: string;
  seed?: string;
  timeout?: string;
  /** Progress lines (stderr). */
  log?: (line: string) => void;
}

function git(cwd: string, args: string[]): string {
  const r = spawnSync('git', args, { cwd, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  if (r.error) throw new UsageError(`git: ${r.error.message}`);
  if (r.status !== 0) throw new UsageError(`git ${args.join(' ')}: ${(r.stderr || r.stdout).trim().split('\n')[0]}`);
  return r.stdout.trim();
}

function tryGit(cwd: string, args: string[]): boolean {
  return spawnSync('git', args, { cwd, encoding: 'utf8' }).status === 0;
}

function sha256(file: string): string | null {
  return existsSync(file) ? createHash('sha256').update(readFileSync(file)).digest('hex') : null;
}

/** How a child process ended. */
interface ChildRun {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** It could not start, or ran past the timeout. */
  readonly error: Error | null;
}

function tail(r: ChildRun): string {
  if (r.error) return r.error.message;
  const lines = `${r.stderr}\n${r.stdout}`.trim().split('\n').filter(Boolean);
  return lines.slice(-1)[0] ?? `exit ${r.status}`;
}

/** Output kept of a child at most (a run's JSON result with a long trace is large). */
const CHILD_OUTPUT_MAX = 512 * 2 ** 20;

/** Sends a signal to a child's whole process group (npm ci starts more processes). */
function killGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, sig);
  } catch {
    // Already gone.
  }
}

/**
 * Runs a child in its own process group without blocking this thread, so a
 * signal handler can run; the timeout or an abort kill the group (SIGTERM,
 * then SIGKILL after a grace period) and the promise settles once it exited.
 * `current` holds the running child's pid for a cleanup on a second signal.
 */
function runChild(cmd: string, args: string[], o: { cwd: string; timeoutMs: number; signal?: AbortSignal; current: { pid?: number } }): Promise<ChildRun> {
  return new Promise((resolvePromise) => {
    const child = spawn(cmd, args, { cwd: o.cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    o.current.pid = child.pid;
    let stdout = '';
    let stderr = '';
    let error: Error | null = null;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < CHILD_OUTPUT_MAX) stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < CHILD_OUTPUT_MAX) stderr += d;
    });
    let grace: NodeJS.Timeout | null = null;
    const stop = (why: Error) => {
      error ??= why;
      killGroup(child.pid, 'SIGTERM');
      grace ??= setTimeout(() => killGroup(child.pid, 'SIGKILL'), 5000);
    };
    const timer = setTimeout(() => stop(new Error(`timed out after ${o.timeoutMs / 1000} s`)), o.timeoutMs);
    const onAbort = () => stop(new Error('interrupted'));
    o.signal?.addEventListener('abort', onAbort, { once: true });
    if (o.signal?.aborted) onAbort();
    child.on('error', (e) => {
      error ??= e;
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      if (grace) clearTimeout(grace);
      o.signal?.removeEventListener('abort', onAbort);
      // Whatever the child left running in its group goes too.
      killGroup(child.pid, 'SIGKILL');
      o.current.pid = undefined;
      resolvePromise({ status, signal, stdout, stderr, error });
    });
  });
}

/** Thrown when an interrupt stops the search. */
const STOP = Symbol('interrupted');

/** Runs the search; always removes the worktrees it made. An interrupt ends it with the commits tested so far. */
export async function bisectCommits(scenarioFile: string, opts: BisectOptions, interrupts?: Pick<Interrupts, 'signal' | 'received' | 'onForce'>): Promise<BisectResult> {
  const log = opts.log ?? (() => {});
  const seed = opts.seed === undefined ? null : parseSeed('--seed', opts.seed);
  const timeoutMs = (opts.timeout === undefined ? DEFAULT_TIMEOUT_S : parseInteger('--timeout', opts.timeout, 1, 7 * 86_400)) * 1000;
  // The scenario comes from the current tree and must be valid here.
  loadScenarioFile(scenarioFile);
  const repoDir = resolve(opts.repo ?? '.');
  if (!existsSync(repoDir) || !statSync(repoDir).isDirectory()) throw new UsageError(`--repo ${opts.repo ?? '.'}: no such directory`);
  const repo = git(repoDir, ['rev-parse', '--show-toplevel']);
  const good = git(repo, ['rev-parse', '--verify', `${opts.good}^{commit}`]);
  const bad = git(repo, ['rev-parse', '--verify', `${opts.bad}^{commit}`]);
  if (good === bad) throw new UsageError(`--good and --bad are the same commit (${good.slice(0, 12)})`);
  if (!tryGit(repo, ['merge-base', '--is-ancestor', good, bad])) {
    throw new UsageError(`--good ${opts.good} is not an ancestor of --bad ${opts.bad}`);
  }
  const path = git(repo, ['rev-list', '--ancestry-path', '--topo-order', '--reverse', `${good}..${bad}`]).split('\n').filter(Boolean);
  const nodeModules = opts.nodeModules === undefined ? null : resolve(opts.nodeModules);
  if (nodeModules !== null && !existsSync(nodeModules)) throw new UsageError(`--node-modules ${opts.nodeModules}: no such directory`);
  const scenarioName = basename(scenarioFile);
  const signal = interrupts?.signal;
  const current: { pid?: number } = {};

  const tmp = mkdtempSync(join(tmpdir(), 'latsim-bisect-'));
  const worktrees: string[] = [];
  const installed = new Map<string, string>(); // lockfile sha256 -> node_modules made by npm ci
  const results = new Map<string, ResultJson>();
  const steps: BisectStep[] = [];
  const subject = (c: string) => git(repo, ['log', '-1', '--format=%s', c]);

  const cleanup = () => {
    for (const wt of worktrees.splice(0)) {
      if (!tryGit(repo, ['worktree', 'remove', '--force', wt])) rmSync(wt, { recursive: true, force: true });
    }
    tryGit(repo, ['worktree', 'prune']);
    rmSync(tmp, { recursive: true, force: true });
  };
  // A second signal: no waiting for the child to exit.
  const unforce = interrupts?.onForce(() => {
    killGroup(current.pid, 'SIGKILL');
    cleanup();
  });

  /** Gives the worktree a node_modules; returns how, or null with a reason to skip. */
  const provide = async (wt: string): Promise<{ how: string } | { skip: string }> => {
    if (!existsSync(join(wt, 'package.json'))) return { skip: 'no package.json at this commit' };
    const target = join(wt, 'node_modules');
    if (nodeModules !== null) {
      symlinkSync(nodeModules, target, 'dir');
      return { how: `linked --node-modules ${nodeModules}` };
    }
    const lock = sha256(join(wt, 'package-lock.json'));
    if (lock !== null) {
      for (const root of [repo, LATSIM_ROOT]) {
        if (existsSync(join(root, 'node_modules')) && sha256(join(root, 'package-lock.json')) === lock) {
          symlinkSync(join(root, 'node_modules'), target, 'dir');
          return { how: `linked ${join(root, 'node_modules')} (identical package-lock.json)` };
        }
      }
      const made = installed.get(lock);
      if (made) {
        symlinkSync(made, target, 'dir');
        return { how: 'linked the node_modules npm ci made for an earlier commit (identical package-lock.json)' };
      }
    }
    const args = lock !== null ? ['ci', '--no-audit', '--no-fund', '--prefer-offline'] : ['install', '--no-audit', '--no-fund', '--prefer-offline'];
    log(`  npm ${args.join(' ')} in ${wt}`);
    const r = await runChild('npm', args, { cwd: wt, timeoutMs, ...(signal ? { signal } : {}), current });
    if (signal?.aborted) throw STOP;
    if (r.status !== 0) return { skip: `npm ${args[0]} failed: ${tail(r)}` };
    if (lock !== null) {
      const keep = join(tmp, `node_modules-${lock.slice(0, 16)}`);
      renameSync(target, keep);
      symlinkSync(keep, target, 'dir');
      installed.set(lock, keep);
    }
    return { how: `npm ${args[0]}` };
  };

  const test = async (commit: string): Promise<Verdict> => {
    const done = steps.find((s) => s.commit === commit);
    if (done) return done.verdict;
    if (signal?.aborted) throw STOP;
    const subj = subject(commit);
    const wt = join(tmp, `wt-${commit.slice(0, 12)}`);
    git(repo, ['worktree', 'add', '--detach', '--quiet', wt, commit]);
    worktrees.push(wt);
    let step: BisectStep;
    try {
      const p = await provide(wt);
      if ('skip' in p) {
        step = { commit, subject: subj, verdict: 'skip', exit_code: null, note: p.skip, install: 'none' };
      } else if (!existsSync(join(wt, 'bin', 'latsim.mjs'))) {
        step = { commit, subject: subj, verdict: 'skip', exit_code: null, note: 'no bin/latsim.mjs at this commit', install: p.how };
      } else {
        mkdirSync(join(wt, '.latsim-bisect'), { recursive: true });
        const rel = join('.latsim-bisect', scenarioName);
        copyFileSync(scenarioFile, join(wt, rel));
        const args = ['bin/latsim.mjs', 'run', rel, '--json', ...(seed === null ? [] : ['--seed', String(seed)])];
        const r = await runChild(process.execPath, args, { cwd: wt, timeoutMs, ...(signal ? { signal } : {}), current });
        if (signal?.aborted) throw STOP;
        const code = r.status;
        try {
          const j = JSON.parse(r.stdout) as ResultJson;
          if (typeof j.trace_sha256 === 'string') results.set(commit, j);
        } catch {
          // No result: a crash, a bad scenario at this commit, or a timeout.
        }
        // Good and bad runs print their result; an exit 1 without one is a crash while loading (a broken commit).
        const ran = results.has(commit);
        const verdict: Verdict = code === 0 && ran ? 'good' : (code === 1 || code === 3 || code === 4) && ran ? 'bad' : 'skip';
        const note = r.error ? `timed out or could not start: ${r.error.message}`
          : verdict === 'skip' ? `latsim run exited ${code ?? r.signal}${ran ? '' : ' without a result'}: ${tail(r)}`
            : results.get(commit)?.error ?? (verdict === 'bad' ? `budgets failed: ${(results.get(commit)?.expect ?? []).filter((e) => !e.pass).map((e) => e.name).join(', ')}` : '');
        step = { commit, subject: subj, verdict, exit_code: code, note, install: p.how };
      }
    } finally {
      if (!tryGit(repo, ['worktree', 'remove', '--force', wt])) rmSync(wt, { recursive: true, force: true });
      worktrees.splice(worktrees.indexOf(wt), 1);
    }
    steps.push(step);
    log(`${commit.slice(0, 12)} ${step.verdict.padEnd(4)} ${step.exit_code === null ? '' : `(exit ${step.exit_code}) `}${subj}${step.note ? ` - ${step.note}` : ''}`);
    return step.verdict;
  };

  // Binary search on path: path[lo] is good (or lo = -1: the good commit), path[hi] is bad.
  let lo = -1;
  let hi = path.length - 1;
  let searching = false;
  /** The commits tested so far and, once both ends are known, the commits the first bad one is among. */
  const partial = (): BisectResult => {
    const lastGood = lo < 0 ? good : path[lo]!;
    return {
      repo, scenario: scenarioFile, good, bad, candidates: path.length, first_bad: null,
      possible: searching ? path.slice(lo + 1, hi + 1).map((c) => ({ commit: c, subject: subject(c) })) : [],
      last_good: searching ? { commit: lastGood, subject: subject(lastGood) } : null,
      steps, diff: null, partial: true, interrupted: { signal: interrupts!.received()!, done: steps.length, total: null },
    };
  };

  try {
    const g = await test(good);
    if (g !== 'good') throw new UsageError(`--good ${opts.good} (${good.slice(0, 12)}) is not good: ${describe(steps[steps.length - 1]!)}`);
    const b = await test(bad);
    if (b !== 'bad') throw new UsageError(`--bad ${opts.bad} (${bad.slice(0, 12)}) is not bad: ${describe(steps[steps.length - 1]!)}`);
    searching = true;
    const skipped = new Set<number>();
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      // The untested, unskipped commit nearest the middle.
      let pick = -1;
      for (let d = 0; d < hi - lo; d++) {
        for (const c of [mid - d, mid + d]) {
          if (pick < 0 && c > lo && c < hi && !skipped.has(c)) pick = c;
        }
        if (pick >= 0) break;
      }
      if (pick < 0) break;
      const v = await test(path[pick]!);
      if (v === 'good') lo = pick;
      else if (v === 'bad') hi = pick;
      else skipped.add(pick);
    }
    const lastGood = lo < 0 ? good : path[lo]!;
    const between = path.slice(lo + 1, hi + 1);
    const found = between.length === 1;
    const ra = results.get(lastGood);
    const rb = results.get(path[hi]!);
    return {
      repo,
      scenario: scenarioFile,
      good,
      bad,
      candidates: path.length,
      first_bad: found ? { commit: path[hi]!, subject: subject(path[hi]!) } : null,
      possible: found ? [] : between.map((c) => ({ commit: c, subject: subject(c) })),
      last_good: { commit: lastGood, subject: subject(lastGood) },
      steps,
      diff: found && ra && rb ? diffRuns({ file: `${lastGood.slice(0, 12)} (last good)`, result: ra, trace: null }, { file: `${path[hi]!.slice(0, 12)} (first bad)`, result: rb, trace: null }) : null,
      partial: false,
      interrupted: null,
    };
  } catch (e) {
    if (e === STOP) return partial();
    throw e;
  } finally {
    unforce?.();
    cleanup();
  }
}

function describe(s: BisectStep): string {
  return `${s.verdict}${s.exit_code === null ? '' : ` (latsim run exited ${s.exit_code})`}${s.note ? `: ${s.note}` : ''}`;
}

export function bisectText(r: BisectResult): string {
  const out: string[] = [];
  out.push(`bisect ${r.scenario} over ${r.candidates} commits after ${r.good.slice(0, 12)} up to ${r.bad.slice(0, 12)}:`);
  for (const s of r.steps) {
    out.push(`  ${s.commit.slice(0, 12)} ${s.verdict.padEnd(4)} ${s.exit_code === null ? '        ' : `(exit ${s.exit_code})`} ${s.subject}${s.note ? ` - ${s.note}` : ''}`);
  }
  const installs = [...new Set(r.steps.map((s) => s.install).filter((i) => i !== 'none'))];
  if (installs.length > 0) out.push(`  node_modules: ${installs.join('; ')}`);
  out.push('');
  if (r.first_bad) {
    out.push(`first bad commit: ${r.first_bad.commit} ${r.first_bad.subject}`);
    if (r.last_good) out.push(`last good commit:  ${r.last_good.commit} ${r.last_good.subject}`);
    if (r.diff) out.push('', `latsim diff (last good -> first bad):`, diffText(r.diff).split('\n').map((l) => `  ${l}`).join('\n'));
  } else if (r.interrupted) {
    if (r.possible.length > 0) {
      out.push('so far, the first bad commit is one of:');
      for (const c of r.possible) out.push(`  ${c.commit} ${c.subject}`);
    }
    out.push(`bisect: ${interruptionText(r.interrupted, 'commits tested')}; the search did not end`);
  } else {
    out.push('skipped commits hide the first bad commit; it is one of:');
    for (const c of r.possible) out.push(`  ${c.commit} ${c.subject}`);
  }
  return out.join('\n');
}

const HELP = `
Each tested commit is checked out in a temporary git worktree and runs
  node bin/latsim.mjs run <scenario> --json
with the scenario file of the current tree copied in. Exit 0 is good; 1, 3, 4
are bad; 2 (the scenario does not apply there), 5 or a failed install skip the
commit (like git bisect's 125). node_modules: --node-modules DIR if given, else
a link to the repository's or this latsim's node_modules when package-lock.json
is identical, else npm ci --prefer-offline. Exit code: 0 the first bad commit
was found, 1 skipped commits hide it, 2 bad input (including a --good commit
that is not good or a --bad commit that is not bad), 130 interrupted (SIGINT,
SIGTERM: the run in progress is stopped, the worktrees removed, the commits
tested so far printed, marked partial).

In place, with git itself (exit codes mapped by --bisect: 0 good, 1 bad, 125 skip):
  cp scenarios/x.yaml /tmp/x.yaml
  git bisect start BAD GOOD && git bisect run npx latsim run /tmp/x.yaml --bisect
`;

export function registerBisect(command: Command): void {
  command
    .argument('<scenario>', 'scenario file of the current tree, run at every commit')
    .requiredOption('--good <rev>', 'a commit at which the scenario passes')
    .requiredOption('--bad <rev>', 'a later commit at which it fails')
    .option('--repo <dir>', 'the git repository (default: the current directory)')
    .option('--node-modules <dir>', 'link this node_modules into every worktree instead of installing')
    .option('--seed <n>', 'override the scenario seed')
    .option('--timeout <s>', `seconds one install or run may take before the commit is skipped (default ${DEFAULT_TIMEOUT_S})`)
    .option('--json', 'print the result as one JSON object')
    .addHelpText('after', HELP)
    .action(async (file: string, opts: BisectOptions & { json?: boolean }) => {
      const interrupts = catchInterrupts();
      let r: BisectResult;
      try {
        r = await bisectCommits(file, { ...opts, log: (l) => process.stderr.write(`${l}\n`) }, interrupts);
      } finally {
        interrupts.dispose();
      }
      process.stdout.write(opts.json ? `${JSON.stringify(r, null, 2)}\n` : `${bisectText(r)}\n`);
      if (opts.json && r.interrupted) process.stderr.write(`latsim bisect: ${interruptionText(r.interrupted, 'commits tested')}\n`);
      process.exitCode = r.interrupted ? EXIT.interrupted : r.first_bad ? 0 : 1;
    });
}

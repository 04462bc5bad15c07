// `npm run bench -- scheduler [--json]`: the hold model on latsim's virtual
// clock. Every event, when it fires, schedules one new event at now + an
// exponential increment (mean 1 µs, rounded to integer ns), so the queue always
// holds the same number of pending events: 10, 1,000 and 100,000 here. Three
// ways, each in events per second of wall time:
//   - scheduler: Scheduler.run firing a registered target whose fire() draws
//     from a seeded Rng stream (seedrandom's Alea, exponentials by the
//     ziggurat) and calls after(): what model code does; this is the headline
//     figure;
//   - scheduler + xorshift: the same with an inline xorshift32 and an
//     exponential by inversion (-log u), the way SimPy's expovariate draws:
//     the difference shows what the ziggurat saves;
//   - queue alone: EventQueue.pop + push in a loop, no Scheduler, with the
//     increments drawn beforehand (a table of 2^16): the queue's own cost.
// In the same run, bench/simpy_hold.py runs the same hold model on SimPy
// (N processes looping `yield env.timeout(d)`), and the ratio is taken against
// it. Each figure is the best of --reps segments of one long run, after a
// warm-up, each segment a span of simulated time holding about --events events.
//
// Goals: >= 5 M events/s and >= 20x SimPy at 1,000 pending; whether every
// pending count reaches 20x is reported beside.
//
// Leaves out: coroutine threads and the Platform (one event = one fire() call
// here; a coroutine switch costs more), cancellation, and megamorphic targets.
// Options: --pending 10,1000,100000, --events N (default 1e6), --reps N
// (default 10), --simpy-events N (default 3e5), --simpy-reps N (default 3),
// --seed N (default 1), --python PATH (default /usr/bin/python3), --no-simpy.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EventQueue } from '../sim/scheduler/event-queue.ts';
import type { Rng } from '../sim/scheduler/random.ts';
import { Scheduler } from '../sim/scheduler/scheduler.ts';
import { type BenchOptions, bestRate, fail, intArg, intListArg, printJson, round, si, stringArg, table } from './lib.ts';

const MEAN_NS = 1000;
const GOAL_EVENTS_PER_S_AT_1000 = 5e6;
const GOAL_RATIO_VS_SIMPY = 20;
const INSTALL_SIMPY = 'apt-get install python3-simpy3';
/** Increments drawn beforehand for the queue-alone figure (a power of two). */
const INCREMENT_TABLE = 1 << 16;

const here = dirname(fileURLToPath(import.meta.url));

interface Case {
  queue: number;
  schedulerXorshift: number;
  scheduler: number;
}

interface SimpyRun {
  simpy: string;
  python: string;
  executable: string;
  results: Record<string, { events: number; seconds: number; events_per_s: number }>;
}

export default async function schedulerBench(opts: BenchOptions): Promise<void> {
  const pendingCounts = intListArg(opts.args, '--pending', [10, 1000, 100_000]);
  const events = intArg(opts.args, '--events', 1_000_000);
  const reps = intArg(opts.args, '--reps', 10);
  const simpyEvents = intArg(opts.args, '--simpy-events', 300_000);
  const simpyReps = intArg(opts.args, '--simpy-reps', 3);
  const seed = intArg(opts.args, '--seed', 1);
  const wallStart = performance.now();

  const cases: Record<string, Case> = {};
  for (const n of pendingCounts) {
    cases[String(n)] = {
      queue: queueAlone(n, events, reps, seed),
      schedulerXorshift: onScheduler(n, events, reps, seed, 'xorshift'),
      scheduler: onScheduler(n, events, reps, seed, 'rng'),
    };
  }

  // Debian's python3-simpy3 installs for /usr/bin/python3, not for a python3
  // that may come first on PATH (pyenv and the like).
  const python = stringArg(opts.args, '--python', existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
  const simpy = opts.args.includes('--no-simpy')
    ? { run: null, why: 'skipped (--no-simpy)' }
    : runSimpy(python, pendingCounts, simpyEvents, simpyReps, seed);

  const keyed = <T>(f: (key: string) => T): Record<string, T> =>
    Object.fromEntries(pendingCounts.map((n) => [String(n), f(String(n))]));
  const simpyRate = (k: string): number | null => simpy.run?.results[k]?.events_per_s ?? null;
  const ratio = (k: string): number | null => {
    const s = simpyRate(k);
    return s === null ? null : cases[k]!.scheduler / s;
  };
  const at1000 = cases['1000']?.scheduler;
  const goals = {
    events_per_s_at_1000: at1000 === undefined ? null : at1000 >= GOAL_EVENTS_PER_S_AT_1000,
    // The goal is at 1,000 pending; every count is reported too.
    ratio_vs_simpy_at_1000: simpy.run === null || ratio('1000') === null ? null : ratio('1000')! >= GOAL_RATIO_VS_SIMPY,
    ratio_vs_simpy: simpy.run === null ? null : pendingCounts.every((n) => (ratio(String(n)) ?? 0) >= GOAL_RATIO_VS_SIMPY),
  };
  const wallS = (performance.now() - wallStart) / 1000;

  if (opts.json) {
    if (simpy.run === null) console.error(`scheduler: SimPy unavailable (${simpy.why}); install it with: ${INSTALL_SIMPY}`);
    printJson({
      events_per_s: keyed((k) => Math.round(cases[k]!.scheduler)),
      ratio_vs_simpy: keyed((k) => { const r = ratio(k); return r === null ? null : round(r, 2); }),
      simpy_events_per_s: keyed((k) => { const s = simpyRate(k); return s === null ? null : Math.round(s); }),
      queue_events_per_s: keyed((k) => Math.round(cases[k]!.queue)),
      scheduler_xorshift_events_per_s: keyed((k) => Math.round(cases[k]!.schedulerXorshift)),
      simpy: simpy.run === null
        ? { available: false, reason: simpy.why, install: INSTALL_SIMPY }
        : { available: true, version: simpy.run.simpy, python: simpy.run.python, executable: simpy.run.executable },
      goals: { events_per_s_at_1000: GOAL_EVENTS_PER_S_AT_1000, ratio_vs_simpy_at_1000: GOAL_RATIO_VS_SIMPY, ratio_vs_simpy: GOAL_RATIO_VS_SIMPY },
      meets_goals: goals,
      mean_increment_ns: MEAN_NS,
      events_per_segment: events,
      reps,
      simpy_events_per_segment: simpyEvents,
      simpy_reps: simpyReps,
      seed,
      node: process.version,
      wall_s: round(wallS, 1),
    });
    return;
  }

  console.log(`hold model: exponential increments, mean ${MEAN_NS} ns; best of ${reps} segments of ~${si(events)} events ` +
    `(SimPy: ${simpyReps} of ~${si(simpyEvents)}); seed ${seed}; node ${process.version}`);
  if (simpy.run === null) console.log(`SimPy unavailable (${simpy.why}); install it with: ${INSTALL_SIMPY}`);
  else console.log(`SimPy ${simpy.run.simpy} on ${simpy.run.python} (${simpy.run.executable})`);
  console.log('');
  const rows = pendingCounts.map((n) => {
    const k = String(n);
    const c = cases[k]!;
    const s = simpyRate(k);
    const r = ratio(k);
    return [k, si(c.scheduler), si(c.schedulerXorshift), si(c.queue), s === null ? '-' : si(s), r === null ? '-' : `${r.toFixed(1)}x`];
  });
  console.log(table(['pending', 'scheduler/s', '+xorshift/s', 'queue/s', 'SimPy/s', 'vs SimPy'], rows));
  console.log('');
  console.log('scheduler: Scheduler.run + fire() + Rng.exponential (ziggurat) + after(); +xorshift: same with an inline PRNG and -log u; ' +
    'queue: EventQueue pop + push alone, increments drawn beforehand');
  const met = (ok: boolean | null) => (ok === null ? 'n/a' : ok ? 'met' : 'NOT met');
  console.log(`goal >= ${si(GOAL_EVENTS_PER_S_AT_1000)} events/s at 1000 pending: ${met(goals.events_per_s_at_1000)}; ` +
    `goal >= ${GOAL_RATIO_VS_SIMPY}x SimPy at 1000 pending: ${met(goals.ratio_vs_simpy_at_1000)} ` +
    `(at every count: ${met(goals.ratio_vs_simpy)}); wall ${wallS.toFixed(1)} s`);
}

/** xorshift32 state -> next state (never 0 from a non-zero state). */
function xorshift(x: number): number {
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  return x | 0;
}

/** An exponential increment in integer ns from a xorshift32 state. */
function expFromBits(x: number): number {
  return Math.round(-MEAN_NS * Math.log((x >>> 0) * 2 ** -32 + 2 ** -33));
}

/** EventQueue alone: pop the earliest, push one at its due time + an increment from a table drawn beforehand. */
function queueAlone(pending: number, events: number, reps: number, seed: number): number {
  const increments = new Float64Array(INCREMENT_TABLE);
  let x = mixSeed(seed);
  for (let i = 0; i < increments.length; i++) {
    x = xorshift(x);
    increments[i] = expFromBits(x);
  }
  const q = new EventQueue(pending);
  let j = 0;
  for (let i = 0; i < pending; i++) q.push(increments[j++ & (INCREMENT_TABLE - 1)]!, 1, i);
  const segment = (count: number): number => {
    for (let i = 0; i < count; i++) {
      q.pop();
      q.push(q.topDue + increments[j++ & (INCREMENT_TABLE - 1)]!, q.topTag, q.topArg);
    }
    return count;
  };
  segment(events >>> 1);
  const best = bestRate(reps, () => segment(events));
  if (q.size !== pending) fail('scheduler', `the queue holds ${q.size} events, not ${pending}`);
  return best;
}

/** The hold model's event target: each event schedules its successor. */
class Holder {
  tag = 0;
  private x: number;

  constructor(private readonly scheduler: Scheduler, private readonly rng: Rng, seed: number) {
    this.x = mixSeed(seed);
  }

  fire(arg: number): void {
    this.scheduler.after(Math.round(this.rng.exponential(MEAN_NS)), this.tag, arg);
  }

  fireXorshift(arg: number): void {
    this.x = xorshift(this.x);
    this.scheduler.after(expFromBits(this.x), this.tag, arg);
  }
}

/** Scheduler.run on the hold model; draws from an Rng stream or an inline xorshift32. */
function onScheduler(pending: number, events: number, reps: number, seed: number, draw: 'rng' | 'xorshift'): number {
  const s = new Scheduler({ seed });
  const holder = new Holder(s, s.random.stream('hold'), seed);
  // One target object per variant, so fire() has one shape at the call site.
  const target = draw === 'rng'
    ? { fire: (arg: number) => holder.fire(arg) }
    : { fire: (arg: number) => holder.fireXorshift(arg) };
  holder.tag = s.register(target);
  for (let i = 0; i < pending; i++) target.fire(i);
  const spanNs = Math.round((events * MEAN_NS) / pending);
  const segment = (ns: number): number => {
    const before = s.events;
    s.run(s.now + ns);
    return s.events - before;
  };
  segment(spanNs >>> 1);
  const best = bestRate(reps, () => segment(spanNs));
  if (s.pending !== pending) fail('scheduler', `the queue holds ${s.pending} events, not ${pending}`);
  return best;
}

function runSimpy(python: string, pending: readonly number[], events: number, reps: number, seed: number):
  { run: SimpyRun | null; why: string } {
  const args = [join(here, 'simpy_hold.py'), '--pending', pending.join(','), '--events', String(events),
    '--reps', String(reps), '--seed', String(seed)];
  const run = spawnSync(python, args, { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (run.error !== undefined) return unavailable(`${python} not found (${run.error.message})`);
  if (run.status === 3) return unavailable(`import simpy failed under ${python}`);
  if (run.status !== 0) fail('scheduler', `${python} ${args.join(' ')} failed: ${run.stderr}`);
  return { run: JSON.parse(run.stdout) as SimpyRun, why: '' };
}

function unavailable(why: string): { run: null; why: string } {
  return { run: null, why };
}

/** A non-zero 32-bit state from a small seed (murmur3's finalizer). */
function mixSeed(n: number): number {
  let h = n >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h = (h ^ (h >>> 16)) | 0;
  return h === 0 ? 1 : h;
}

// Named-latency instrumentation: every handler (fd handler, bottom half, timer,
// vCPU exit, migration step) runs through run(), which records its latency per
// (thread, name), writes a slice to the trace and, past the threshold, a slow
// line with what the thread was waiting on inside it. The talk could only
// print "fd read: 0x7ffff7df2390 358 ms"; here every handler has a name.
// Also main-loop blocked time: how long the main loop went without polling,
// and the same per thread: for an event loop (the main loop, an IOThread, a
// vhost worker) the time from its wait's return to its next wait; for any
// thread the longest wait that kept it from its work (a lock, a drain).
// A handler run allocates nothing but its generator: statistics are found
// through per-thread maps of interned names, frames are reused per thread and
// depth, and the stack of a run is spelled out only when it is slow.
import type { Co, Platform, PlatformOp } from '../platform.ts';
import { Histogram } from './histogram.ts';
import type { Trace } from './trace.ts';

export interface HandlerStats {
  readonly name: string;
  readonly kind: string;
  readonly thread: string;
  readonly hist: Histogram;
}

export interface SlowRun {
  readonly name: string;
  readonly kind: string;
  readonly thread: string;
  readonly at_ns: number;
  readonly duration_ns: number;
  /** The wait that took most of the run, or "running" if it mostly computed. */
  readonly waited_on: string;
  readonly waited_ns: number;
  /** The handlers it ran in, outermost first, ending with itself. */
  readonly stack: readonly string[];
}

interface Frame {
  name: string;
  /** Time waited inside the handler, per label (made at the first wait). */
  waits: Map<string, number> | null;
}

/** The handlers running on one thread, innermost last, and its statistics by handler name. */
interface ThreadFrames {
  readonly frames: Frame[];
  depth: number;
  readonly stats: Map<string, HandlerStats>;
}

export const DEFAULT_THRESHOLD_NS = 100_000_000;

export class Instruments {
  readonly handlers: HandlerStats[] = [];
  readonly slow: SlowRun[] = [];
  /** Intervals between two polls of the main loop (its dispatch time). */
  readonly mainLoopBlocked = new Histogram();
  mainLoopBlockedMaxAtNs = 0;
  /** Per thread: the longest stretch it could not run its handlers, and when it began. */
  readonly blocked = new Map<string, { maxNs: number; atNs: number }>();
  private readonly threads = new Map<string, ThreadFrames>();
  /** The thread framesOf() answered last, and its frames (a thread runs handlers in a row). */
  private lastThread: string | null = null;
  private lastFrames: ThreadFrames | null = null;

  constructor(
    private readonly platform: Platform,
    readonly trace: Trace,
    readonly thresholdNs = DEFAULT_THRESHOLD_NS,
  ) {}

  /** Runs a named handler body on the current thread and accounts for it (`yield* inst.run(...)`). */
  run<T>(name: string, kind: string, body: Co<T>): Co<T> {
    return new HandlerRun(this, name, kind, body);
  }

  /** @internal HandlerRun: the handler starts on the current thread, in the frame of its depth. */
  enter(run: HandlerRun<unknown>): void {
    const thread = this.platform.current().name;
    const t = this.framesOf(thread);
    const depth = t.depth++;
    let frame = t.frames[depth];
    if (frame === undefined) {
      frame = { name: run.name, waits: null };
      t.frames.push(frame);
    } else {
      frame.name = run.name;
      frame.waits?.clear();
    }
    run.thread = thread;
    run.frames = t;
    run.depth = depth;
    run.startNs = this.platform.nowNs();
  }

  /** @internal HandlerRun: the handler ended (returned, threw or was closed); record it when it returned. */
  leave(run: HandlerRun<unknown>, returned: boolean): void {
    const t = run.frames!;
    t.depth = run.depth;
    if (returned) this.record(t, run.thread, run.name, run.kind, run.startNs, this.platform.nowNs() - run.startNs, t.frames[run.depth]!);
  }

  /** Attributes a wait of ns to every handler running on thread. */
  noteWait(thread: string, label: string, ns: number): void {
    if (ns <= 0) return;
    const t = this.threads.get(thread);
    if (!t) return;
    for (let i = 0; i < t.depth; i++) {
      const f = t.frames[i]!;
      f.waits ??= new Map();
      f.waits.set(label, (f.waits.get(label) ?? 0) + ns);
    }
  }

  /** Records one main-loop dispatch interval (from poll return to next poll). */
  noteMainLoopBlocked(startNs: number, ns: number): void {
    if (ns > this.mainLoopBlocked.maxNs) this.mainLoopBlockedMaxAtNs = startNs;
    this.mainLoopBlocked.record(ns);
    this.noteBlocked('main-loop', startNs, ns);
  }

  /** thread could not run its handlers for ns from startNs (an event loop's dispatch, a lock wait, a drain). */
  noteBlocked(thread: string, startNs: number, ns: number): void {
    if (ns <= 0) return;
    const b = this.blocked.get(thread);
    if (!b) this.blocked.set(thread, { maxNs: ns, atNs: startNs });
    else if (ns > b.maxNs) {
      b.maxNs = ns;
      b.atNs = startNs;
    }
  }

  /** Handler statistics sorted by thread, then name. */
  handlerList(): HandlerStats[] {
    return [...this.handlers].sort((a, b) =>
      a.thread === b.thread ? cmp(a.name, b.name) : cmp(a.thread, b.thread));
  }

  private record(t: ThreadFrames, thread: string, name: string, kind: string, start: number, dur: number, frame: Frame): void {
    let h = t.stats.get(name);
    if (!h) {
      h = { name, kind, thread, hist: new Histogram() };
      t.stats.set(name, h);
      this.handlers.push(h);
    }
    h.hist.record(dur);
    this.trace.slice(thread, name, kind, start, dur);
    if (dur > this.thresholdNs) {
      let waitedOn = 'running';
      let waitedNs = 0;
      const waits = frame.waits ?? new Map<string, number>();
      for (const [label, ns] of waits) {
        if (ns > waitedNs) {
          waitedOn = label;
          waitedNs = ns;
        }
      }
      if (waitedNs * 2 < dur) {
        waitedOn = 'running';
        waitedNs = dur - sumOf(waits);
      }
      // The handlers it ran in: the frames below it, unchanged while it ran.
      const path = t.frames.slice(0, t.depth).map((f) => f.name);
      path.push(name);
      this.slow.push({
        name, kind, thread, at_ns: start, duration_ns: dur, waited_on: waitedOn, waited_ns: waitedNs, stack: path,
      });
      this.trace.event(thread, 'slow_handler', { name, duration_ns: dur });
    }
  }

  private framesOf(thread: string): ThreadFrames {
    if (thread === this.lastThread) return this.lastFrames!;
    let t = this.threads.get(thread);
    if (!t) {
      t = { frames: [], depth: 0, stats: new Map() };
      this.threads.set(thread, t);
    }
    this.lastThread = thread;
    this.lastFrames = t;
    return t;
  }
}

/**
 * One handler run as an iterator over its body's operations: what a
 * generator wrapping `yield* body` in try/finally would do, with the body's
 * own results passed through, so a handler run costs one small object and no
 * generator. The handler starts at the first next(), on the thread that asks.
 */
const NEXT = 0;
const THROW = 1;
const RETURN = 2;

class HandlerRun<T> implements Generator<PlatformOp, T, unknown> {
  thread = '';
  frames: ThreadFrames | null = null;
  depth = 0;
  startNs = 0;
  /** 0: not started, 1: running, 2: ended. */
  private state = 0;

  constructor(
    private readonly inst: Instruments,
    readonly name: string,
    readonly kind: string,
    private readonly body: Co<T>,
  ) {}

  next(value?: unknown): IteratorResult<PlatformOp, T> {
    if (this.state === 0) {
      this.state = 1;
      this.inst.enter(this);
    } else if (this.state === 2) {
      return { value: undefined as T, done: true };
    }
    return this.resume(NEXT, value);
  }

  throw(e: unknown): IteratorResult<PlatformOp, T> {
    if (this.state !== 1) {
      this.state = 2;
      throw e;
    }
    return this.resume(THROW, e);
  }

  return(value: T): IteratorResult<PlatformOp, T> {
    if (this.state !== 1) {
      this.state = 2;
      return { value, done: true };
    }
    return this.resume(RETURN, value);
  }

  [Symbol.iterator](): this {
    return this;
  }

  /** Resumes the body; when it ends, leaves the handler (recorded when it returned, not when closed from outside or thrown). */
  private resume(how: number, v: unknown): IteratorResult<PlatformOp, T> {
    let r: IteratorResult<PlatformOp, T>;
    try {
      r = how === NEXT ? this.body.next(v) : how === THROW ? this.body.throw(v) : this.body.return(v as T);
    } catch (e) {
      this.end(false);
      throw e;
    }
    if (r.done) this.end(how !== RETURN);
    return r;
  }

  private end(returned: boolean): void {
    this.state = 2;
    this.inst.leave(this, returned);
  }
}

function sumOf(m: Map<string, number>): number {
  let s = 0;
  for (const v of m.values()) s += v;
  return s;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

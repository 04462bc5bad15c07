// Named-latency instrumentation: every handler (fd handler, bottom half, timer,
// vCPU exit, migration step) runs through run(), which records its latency per
// (thread, name), writes a slice to the trace and, past the threshold, a slow
// line with what the thread was waiting on inside it. The talk could only
// print "fd read: 0x7ffff7df2390 358 ms"; here every handler has a name.
// Also main-loop blocked time: how long the main loop went without polling,
// and the same per thread: for an event loop (the main loop, an IOThread, a
// vhost worker) the time from its wait's return to its next wait; for any
// thread the longest wait that kept it from its work (a lock, a drain).
import type { Co, Platform } from '../platform.ts';
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
  readonly name: string;
  readonly waits: Map<string, number>;
}

export const DEFAULT_THRESHOLD_NS = 100_000_000;

export class Instruments {
  readonly handlers = new Map<string, HandlerStats>();
  readonly slow: SlowRun[] = [];
  /** Intervals between two polls of the main loop (its dispatch time). */
  readonly mainLoopBlocked = new Histogram();
  mainLoopBlockedMaxAtNs = 0;
  /** Per thread: the longest stretch it could not run its handlers, and when it began. */
  readonly blocked = new Map<string, { maxNs: number; atNs: number }>();
  private readonly frames = new Map<string, Frame[]>();

  constructor(
    private readonly platform: Platform,
    readonly trace: Trace,
    readonly thresholdNs = DEFAULT_THRESHOLD_NS,
  ) {}

  /** Runs a named handler body on the current thread and accounts for it. */
  *run<T>(name: string, kind: string, body: Co<T>): Co<T> {
    const p = this.platform;
    const thread = p.current().name;
    const start = p.nowNs();
    const stack = this.stackOf(thread);
    const frame: Frame = { name, waits: new Map() };
    stack.push(frame);
    let result: T;
    const path = stack.map((f) => f.name);
    try {
      result = yield* body;
    } finally {
      stack.pop();
    }
    const dur = p.nowNs() - start;
    this.record(thread, name, kind, start, dur, frame, path);
    return result;
  }

  /** Attributes a wait of ns to every handler running on thread. */
  noteWait(thread: string, label: string, ns: number): void {
    if (ns <= 0) return;
    const stack = this.frames.get(thread);
    if (!stack) return;
    for (const f of stack) f.waits.set(label, (f.waits.get(label) ?? 0) + ns);
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
    return [...this.handlers.values()].sort((a, b) =>
      a.thread === b.thread ? cmp(a.name, b.name) : cmp(a.thread, b.thread));
  }

  private record(thread: string, name: string, kind: string, start: number, dur: number, frame: Frame, path: string[]): void {
    const key = `${thread}\u0000${name}`;
    let h = this.handlers.get(key);
    if (!h) {
      h = { name, kind, thread, hist: new Histogram() };
      this.handlers.set(key, h);
    }
    h.hist.record(dur);
    this.trace.slice(thread, name, kind, start, dur);
    if (dur > this.thresholdNs) {
      let waitedOn = 'running';
      let waitedNs = 0;
      for (const [label, ns] of frame.waits) {
        if (ns > waitedNs) {
          waitedOn = label;
          waitedNs = ns;
        }
      }
      if (waitedNs * 2 < dur) {
        waitedOn = 'running';
        waitedNs = dur - sumOf(frame.waits);
      }
      this.slow.push({
        name, kind, thread, at_ns: start, duration_ns: dur, waited_on: waitedOn, waited_ns: waitedNs, stack: path,
      });
      this.trace.event(thread, 'slow_handler', { name, duration_ns: dur });
    }
  }

  private stackOf(thread: string): Frame[] {
    let s = this.frames.get(thread);
    if (!s) {
      s = [];
      this.frames.set(thread, s);
    }
    return s;
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

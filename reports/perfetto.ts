// The trace as Chrome trace-event JSON, which ui.perfetto.dev opens: one track
// per thread (main loop, vCPUs, migration, IOThreads, vhost workers, in that
// order when the result lists its threads) with complete slices for
// handlers, bottom halves and timers; each thread's BQL holds on a track of
// their own ("vcpu0 BQL"), since a hold need not nest inside a handler;
// counters for dirty pages and remaining bytes; instants for statechart
// transitions and other trace events; flow arrows from a guest kick to the
// handler that served it; the seed in the process name and the metadata.
//
// Perfetto's importer binds a flow event to the slice on top of its thread's
// stack when it reads it, and reads events in timestamp order. So events are
// written sorted, a flow start follows a 1 ns "kick" slice on the kicking
// thread, and a flow end follows the start of the handler that was running
// when the kick was served (a 1 ns "served" slice when none was, or when that
// handler began before the kick, so the arrow always points forward). Timestamps
// are microseconds as doubles; the importer truncates ts * 1000, so each one
// is written as the double that truncates back to the exact nanosecond.
// Leaves out: async slices, stack samples, the v2 flow fields.
import type { TraceRecord } from '../sim/instrument/trace.ts';

export interface PerfettoMeta {
  readonly scenario: string;
  readonly seed: number;
  readonly trace_sha256: string;
  /**
   * The run's threads in report order (main loop, vCPUs, migration, IOThreads,
   * vhost workers): each gets its track in this order, even one that never
   * ran a handler, and its kind in the track's metadata.
   */
  readonly threads?: readonly { readonly name: string; readonly kind?: string }[];
}

/** One trace event; ph, ts and pid are always set. */
export interface TraceEvent {
  ph: string;
  ts: number;
  pid: number;
  tid?: number;
  name: string;
  [key: string]: unknown;
}

export interface ChromeTrace {
  traceEvents: TraceEvent[];
  displayTimeUnit: 'ns';
  metadata: Record<string, string | number>;
}

const PID = 1;
/** Category of the model's BQL-hold slices (sim/main-loop/bql.ts); they get their own track per thread. */
const BQL_CAT = 'bql';

const f64 = new Float64Array(1);
const i64 = new BigInt64Array(f64.buffer);

/** Nanoseconds as trace microseconds such that Math.trunc(us * 1000) === ns. */
export function usOf(ns: number): number {
  const us = ns / 1000;
  if (Math.trunc(us * 1000) === ns || ns < 0) return us;
  f64[0] = us;
  i64[0]! += 1n;
  return f64[0]!;
}

/** A sortable event: ts, rank (0 instants and counters, 1 slices and flows), then tie-breakers. */
interface Keyed {
  readonly ev: TraceEvent;
  readonly key: readonly number[];
}

function compareKeys(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return 0;
}

export function perfettoTrace(records: readonly TraceRecord[], meta: PerfettoMeta): ChromeTrace {
  const head: TraceEvent[] = [];
  const tids = new Map<string, number>();
  const ordinal = new Map<string, number>();
  const tid = (thread: string, bql = false): number => {
    const track = bql ? `${thread} BQL` : thread;
    let t = tids.get(track);
    if (t === undefined) {
      if (bql) tid(thread);
      else ordinal.set(thread, ordinal.size + 1);
      t = tids.size + 1;
      tids.set(track, t);
      // A thread's BQL track sorts right below the thread.
      const sort = 2 * ordinal.get(thread)! + (bql ? 1 : 0);
      head.push({ ph: 'M', ts: 0, pid: PID, tid: t, name: 'thread_name', args: { name: track } });
      head.push({ ph: 'M', ts: 0, pid: PID, tid: t, name: 'thread_sort_index', args: { sort_index: sort } });
    }
    return t;
  };
  head.push({ ph: 'M', ts: 0, pid: PID, name: 'process_name', args: { name: `latsim ${meta.scenario} (seed ${meta.seed})` } });
  const mainTid = tid('main-loop');
  for (const t of meta.threads ?? []) {
    const id = tid(t.name);
    // An IOThread or vhost worker says what it is: a track per thread, as QEMU's threads are.
    if (t.kind === 'iothread' || t.kind === 'vhost') {
      head.push({ ph: 'M', ts: 0, pid: PID, tid: id, name: 'thread_kind', args: { kind: t.kind === 'iothread' ? 'IOThread (own AioContext)' : 'vhost worker (kernel thread)' } });
    }
  }

  // Where each flow ends: the first handler slice written after the flow end on
  // the same thread that spans its time (the innermost handler then running),
  // unless that handler began before the kick (the arrow would point back).
  const started = new Map<number, string>();
  const startTs = new Map<number, number>();
  const ended = new Set<number>();
  /** Record indices of the flow ends kept (the first end of a started flow). */
  const ends = new Set<number>();
  const enclosing = new Map<number, number>();
  const pending = new Map<string, { index: number; ts: number; after: number }[]>();
  records.forEach((r, i) => {
    if (r.ph === 'f') {
      if (!r.end) {
        started.set(r.id, r.name);
        startTs.set(r.id, r.ts);
      } else if (started.has(r.id) && !ended.has(r.id)) {
        ended.add(r.id);
        ends.add(i);
        const list = pending.get(r.thread) ?? [];
        list.push({ index: i, ts: r.ts, after: startTs.get(r.id)! });
        pending.set(r.thread, list);
      }
    } else if (r.ph === 'X' && r.cat !== BQL_CAT) {
      const list = pending.get(r.thread);
      if (!list || list.length === 0) return;
      const open = list.filter((p) => {
        if (r.ts <= p.ts && p.ts <= r.ts + r.dur) {
          if (r.ts >= p.after) enclosing.set(p.index, i);
          return false;
        }
        return true;
      });
      pending.set(r.thread, open);
    }
  });
  const flowEndsOf = new Map<number, number[]>();
  for (const [f, x] of enclosing) flowEndsOf.set(x, [...(flowEndsOf.get(x) ?? []), f]);

  const out: Keyed[] = [];
  const sliceKey = (ts: number, dur: number, index: number, sub: number) => [ts, 1, -dur, -index, sub];
  const flowEnd = (r: Extract<TraceRecord, { ph: 'f' }>, key: number[]) => {
    out.push({ ev: { ph: 'f', bp: 'e', ts: usOf(key[0]!), pid: PID, tid: tid(r.thread), id: r.id, name: started.get(r.id)!, cat: 'kick' }, key });
  };
  records.forEach((r, i) => {
    switch (r.ph) {
      case 'X': {
        const bql = r.cat === BQL_CAT;
        const ev: TraceEvent = { ph: 'X', ts: usOf(r.ts), dur: usOf(r.dur), pid: PID, tid: tid(r.thread, bql), name: r.name, cat: r.cat };
        if (r.args) ev.args = r.args;
        out.push({ ev, key: sliceKey(r.ts, r.dur, i, 0) });
        (flowEndsOf.get(i) ?? []).forEach((f, k) => flowEnd(records[f] as Extract<TraceRecord, { ph: 'f' }>, sliceKey(r.ts, r.dur, i, 1 + k)));
        break;
      }
      case 'i': {
        const ev: TraceEvent = { ph: 'i', s: 't', ts: usOf(r.ts), pid: PID, tid: tid(r.thread), name: r.name, cat: r.name === 'migrate_set_state' ? 'migration' : 'trace' };
        if (r.args) ev.args = r.args;
        out.push({ ev, key: [r.ts, 0, 0, i, 0] });
        break;
      }
      case 'C':
        out.push({ ev: { ph: 'C', ts: usOf(r.ts), pid: PID, tid: mainTid, name: r.name, args: { value: r.value } }, key: [r.ts, 0, 0, i, 0] });
        break;
      case 'f': {
        const t = tid(r.thread);
        if (!r.end) {
          // A short slice on the kicking thread for the arrow to start from.
          out.push({ ev: { ph: 'X', ts: usOf(r.ts), dur: usOf(1), pid: PID, tid: t, name: r.name, cat: 'kick' }, key: sliceKey(r.ts, 1, i, 0) });
          if (ended.has(r.id)) {
            out.push({ ev: { ph: 's', ts: usOf(r.ts), pid: PID, tid: t, id: r.id, name: r.name, cat: 'kick' }, key: sliceKey(r.ts, 1, i, 1) });
          }
        } else if (ends.has(i) && !enclosing.has(i)) {
          // Served outside any handler: a short slice for the arrow to end on.
          out.push({ ev: { ph: 'X', ts: usOf(r.ts), dur: usOf(1), pid: PID, tid: t, name: `${r.name} served`, cat: 'kick' }, key: sliceKey(r.ts, 1, i, 0) });
          flowEnd(r, sliceKey(r.ts, 1, i, 1));
        }
        break;
      }
    }
  });
  out.sort((a, b) => compareKeys(a.key, b.key));
  return {
    traceEvents: [...head, ...out.map((k) => k.ev)],
    displayTimeUnit: 'ns',
    metadata: { 'latsim-scenario': meta.scenario, 'latsim-seed': meta.seed, 'latsim-trace-sha256': meta.trace_sha256 },
  };
}

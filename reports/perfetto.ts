// The trace as Chrome trace-event JSON, which ui.perfetto.dev opens: one track
// per thread (main loop, vCPUs, migration), complete slices for handlers,
// bottom halves, timers and BQL holds, counters for dirty pages and remaining
// bytes, instants for statechart transitions and other trace events, flow
// arrows from a guest kick to the handler that served it, and the seed in the
// metadata and the process name.
import type { TraceRecord } from '../sim/trace.ts';

export interface PerfettoMeta {
  readonly scenario: string;
  readonly seed: number;
  readonly trace_sha256: string;
}

type Event = Record<string, unknown>;

const PID = 1;
const us = (ns: number) => ns / 1000;

export function perfettoTrace(records: readonly TraceRecord[], meta: PerfettoMeta): { traceEvents: Event[]; metadata: Record<string, unknown>; displayTimeUnit: string } {
  const tids = new Map<string, number>();
  const events: Event[] = [];
  const tid = (thread: string): number => {
    let t = tids.get(thread);
    if (t === undefined) {
      t = tids.size + 1;
      tids.set(thread, t);
      events.push({ ph: 'M', pid: PID, tid: t, name: 'thread_name', args: { name: thread } });
      events.push({ ph: 'M', pid: PID, tid: t, name: 'thread_sort_index', args: { sort_index: t } });
    }
    return t;
  };
  events.push({ ph: 'M', pid: PID, name: 'process_name', args: { name: `latsim ${meta.scenario} (seed ${meta.seed})` } });
  tid('main-loop');
  for (const r of records) {
    switch (r.ph) {
      case 'X':
        events.push({ ph: 'X', pid: PID, tid: tid(r.thread), ts: us(r.ts), dur: us(r.dur), name: r.name, cat: r.cat, ...(r.args ? { args: r.args } : {}) });
        break;
      case 'i':
        events.push({ ph: 'i', s: 't', pid: PID, tid: tid(r.thread), ts: us(r.ts), name: r.name, cat: r.name === 'migrate_set_state' ? 'migration' : 'trace', ...(r.args ? { args: r.args } : {}) });
        break;
      case 'C':
        events.push({ ph: 'C', pid: PID, ts: us(r.ts), name: r.name, args: { value: r.value } });
        break;
      case 'f':
        if (!r.end) {
          // A short slice on the kicking thread for the arrow to start from.
          events.push({ ph: 'X', pid: PID, tid: tid(r.thread), ts: us(r.ts), dur: 0.001, name: r.name, cat: 'kick' });
          events.push({ ph: 's', pid: PID, tid: tid(r.thread), ts: us(r.ts), id: r.id, name: r.name, cat: 'kick' });
        } else {
          events.push({ ph: 'f', bp: 'e', pid: PID, tid: tid(r.thread), ts: us(r.ts), id: r.id, name: r.name, cat: 'kick' });
        }
        break;
    }
  }
  return {
    traceEvents: events,
    displayTimeUnit: 'ns',
    metadata: { 'latsim-scenario': meta.scenario, 'latsim-seed': meta.seed, 'latsim-trace-sha256': meta.trace_sha256 },
  };
}

// Tests of reports/perfetto.ts on real runs (the shipped virtio-net scenario
// and a migration with a stalled flush): the output is Chrome trace-event JSON
// that ui.perfetto.dev's importer takes as meant. Every event has ph, ts and
// pid; every thread used is named; slices nest on every track; events come
// sorted; flow starts and ends pair up and, replaying the importer's rule
// (a flow binds to the slice on top of its thread's stack), each start binds
// to its kick and each end to a handler on the serving thread that ran when
// or after the kick; timestamps truncate back to the exact nanosecond; the
// seed is in the metadata.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { loadScenarioFile } from '../../cli/scenario-file.ts';
import { simulate } from '../../sim/run.ts';
import { perfettoTrace, usOf, type ChromeTrace, type TraceEvent } from '../../reports/perfetto.ts';
import type { TraceRecord } from '../../sim/instrument/trace.ts';

const SCENARIOS = ['scenarios/virtio-net-358ms.yaml', 'test/cli/fixtures/flush-stall.yaml', 'scenarios/iothread-358ms.yaml', 'scenarios/vhost-net-vs-userspace.yaml'];

function exported(file: string): { trace: ChromeTrace; records: readonly TraceRecord[]; seed: number } {
  const run = simulate(loadScenarioFile(file), { keepTrace: true });
  return { trace: perfettoTrace(run.world.machine.trace.records, run.result), records: run.world.machine.trace.records, seed: run.result.seed };
}

/** What the importer reads for a ts or dur: Math.trunc(us * 1000) nanoseconds. */
const ns = (us: unknown): number => Math.trunc((us as number) * 1000);

describe.each(SCENARIOS)('%s', (file) => {
  const { trace, records, seed } = exported(file);
  const events = trace.traceEvents;
  const timed = events.filter((e) => e.ph !== 'M');

  it('is JSON with the trace-event fields', () => {
    const text = JSON.stringify(trace);
    expect(JSON.stringify(JSON.parse(text))).toBe(text);
    expect(trace.displayTimeUnit).toBe('ns');
    const bad = events.filter((e) =>
      typeof e.ph !== 'string' || !(Number.isFinite(e.ts) && e.ts >= 0) || e.pid !== 1 || typeof e.name !== 'string' ||
      (e.ph === 'X' && !(Number.isFinite(e.dur) && (e.dur as number) >= 0)) ||
      (e.ph === 'C' && !Number.isFinite((e.args as { value: number }).value)) ||
      (e.ph === 'i' && e.s !== 't') ||
      (e.ph !== 'M' && typeof e.tid !== 'number'));
    expect(bad.slice(0, 5)).toEqual([]);
  });

  it('names every thread it uses, and each thread of the run has a track', () => {
    const names = new Map(events.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => [e.tid!, (e.args as { name: string }).name]));
    expect(timed.filter((e) => !names.has(e.tid!)).slice(0, 5)).toEqual([]);
    const threads = new Set(records.filter((r) => 'thread' in r).map((r) => (r as { thread: string }).thread));
    for (const t of threads) expect([...names.values()]).toContain(t);
    expect([...names.values()]).toEqual(expect.arrayContaining(['main-loop', 'vcpu0', 'vcpu1', 'main-loop BQL']));
    expect(events.find((e) => e.ph === 'M' && e.name === 'process_name')?.args).toEqual({ name: expect.stringContaining(`(seed ${seed})`) });
  });

  it('carries the seed and the fingerprint in its metadata', () => {
    expect(trace.metadata['latsim-seed']).toBe(seed);
    expect(trace.metadata['latsim-trace-sha256']).toMatch(/^[0-9a-f]{64}$/);
  });

  it('has every kind of event', () => {
    const phases = new Set(events.map((e) => e.ph));
    for (const ph of ['M', 'X', 'i', 's', 'f']) expect(phases).toContain(ph);
  });

  it('comes sorted by time, and slices nest on every track', () => {
    let last = -1;
    const unsorted: TraceEvent[] = [];
    const overlapping: TraceEvent[] = [];
    const stacks = new Map<number, { ts: number; end: number }[]>();
    for (const e of timed) {
      const ts = ns(e.ts);
      if (ts < last) unsorted.push(e);
      last = ts;
      if (e.ph !== 'X') continue;
      const stack = stacks.get(e.tid!) ?? [];
      stacks.set(e.tid!, stack);
      while (stack.length > 0 && stack[stack.length - 1]!.end <= ts) stack.pop();
      const end = ts + ns(e.dur);
      const parent = stack[stack.length - 1];
      if (parent && end > parent.end) overlapping.push(e);
      stack.push({ ts, end });
    }
    expect(unsorted.slice(0, 5)).toEqual([]);
    expect(overlapping.slice(0, 5)).toEqual([]);
  });

  it('writes every slice at its exact nanosecond', () => {
    const slices = records.filter((r): r is Extract<TraceRecord, { ph: 'X' }> => r.ph === 'X');
    const exported = new Set(events.filter((e) => e.ph === 'X').map((e) => `${e.tid} ${ns(e.ts)} ${ns(e.dur)} ${e.name}`));
    const tidOf = new Map(events.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => [(e.args as { name: string }).name, e.tid!]));
    const missing = slices.filter((r) => !exported.has(`${tidOf.get(r.cat === 'bql' ? `${r.thread} BQL` : r.thread)} ${r.ts} ${r.dur} ${r.name}`));
    expect(slices.length).toBeGreaterThan(0);
    expect(missing.slice(0, 5)).toEqual([]);
  });

  it('pairs flows, and binds each end to a slice on the serving thread', () => {
    const starts = new Map<number, TraceEvent>();
    const ends = new Map<number, TraceEvent>();
    for (const e of events) {
      if (e.ph === 's') {
        expect(starts.has(e.id as number)).toBe(false);
        starts.set(e.id as number, e);
      }
      if (e.ph === 'f') {
        expect(ends.has(e.id as number)).toBe(false);
        expect(e.bp).toBe('e');
        ends.set(e.id as number, e);
      }
    }
    expect(starts.size).toBeGreaterThan(0);
    expect([...starts.keys()].sort()).toEqual([...ends.keys()].sort());
    for (const [id, s] of starts) {
      const f = ends.get(id)!;
      expect([f.cat, f.name]).toEqual([s.cat, s.name]);
    }
    const served = new Map<number, string>();
    for (const r of records) if (r.ph === 'f' && r.end && !served.has(r.id)) served.set(r.id, r.thread);
    const threadOf = new Map(events.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => [e.tid!, (e.args as { name: string }).name]));

    // Replay the importer: a flow event binds to the slice on top of its track's stack.
    const stacks = new Map<number, TraceEvent[]>();
    const boundTo = new Map<string, TraceEvent>();
    for (const e of timed) {
      const stack = stacks.get(e.tid!) ?? [];
      stacks.set(e.tid!, stack);
      const ts = ns(e.ts);
      if (e.ph === 'X' || e.ph === 'i') {
        while (stack.length > 0 && ns(stack[stack.length - 1]!.ts) + ns(stack[stack.length - 1]!.dur ?? 0) <= ts) stack.pop();
        stack.push(e);
      } else if (e.ph === 's' || e.ph === 'f') {
        const top = stack[stack.length - 1];
        expect(top, JSON.stringify(e)).toBeDefined();
        boundTo.set(`${e.ph}${e.id as number}`, top!);
      }
    }
    for (const [id, s] of starts) {
      const from = boundTo.get(`s${id}`)!;
      const to = boundTo.get(`f${id}`)!;
      expect(from.ph).toBe('X');
      expect(to.ph).toBe('X');
      expect(from.name).toBe(s.name);
      expect(threadOf.get(to.tid!)).toBe(served.get(id));
      // The arrow points forward: the serving slice starts no earlier than the kick.
      expect(ns(to.ts)).toBeGreaterThanOrEqual(ns(from.ts));
    }
  });
});

describe('usOf', () => {
  it('gives microseconds that the importer truncates back to the exact nanosecond', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: Math.floor(2 ** 53 / 1000) }), (n) => {
      const us = usOf(n);
      expect(Math.trunc(us * 1000)).toBe(n);
      expect(Math.abs(us - n / 1000)).toBeLessThan(1e-3);
    }), { numRuns: 20_000 });
  });
});

describe('threads beyond the main loop', () => {
  it('gives each IOThread and vhost worker its own track, in the result\'s thread order, saying what it is', () => {
    for (const [file, extra] of [['scenarios/iothread-358ms.yaml', 'iothread0'], ['scenarios/vhost-net-vs-userspace.yaml', 'vhost-net0']] as const) {
      const run = simulate(loadScenarioFile(file), { keepTrace: true });
      const events = perfettoTrace(run.world.machine.trace.records, run.result).traceEvents;
      const named = events.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => (e.args as { name: string }).name)
        .filter((n) => !n.endsWith(' BQL'));
      expect(named.slice(0, run.result.threads.length)).toEqual(run.result.threads.map((t) => t.name));
      const tid = events.find((e) => e.ph === 'M' && e.name === 'thread_name' && (e.args as { name: string }).name === extra)!.tid;
      expect(events.find((e) => e.ph === 'M' && e.name === 'thread_kind' && e.tid === tid)).toBeDefined();
      // Its handlers' slices are on its track.
      const slices = events.filter((e) => e.ph === 'X' && e.tid === tid && e.cat !== 'kick');
      expect(slices.length).toBeGreaterThan(0);
    }
  });
});

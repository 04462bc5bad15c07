// The canonical trace: its fingerprint is a function of every record's
// kind, time, thread, name and arguments (key, type and value) and of their
// order, the same on every run, whatever the buffering; records are kept for
// the exporters only when asked.
import { describe, expect, it } from 'vitest';
import { Trace, type TraceArgs } from '../../../sim/instrument/trace.ts';

type Write = (t: Trace, clock: { ns: number }) => void;

function fingerprint(write: Write, keep = false): { sha: string; trace: Trace } {
  const clock = { ns: 0 };
  const trace = new Trace(() => clock.ns, keep);
  write(trace, clock);
  return { sha: trace.sha256(), trace };
}

const base: Write = (t, clock) => {
  clock.ns = 10;
  t.event('vcpu0', 'kvm_run_exit', { reason: 'pio', exit: 'vcpu0.pio-exit' });
  clock.ns = 25;
  t.slice('main-loop', 'BQL held (main_loop_wait)', 'bql', 12, 13);
  t.counter('migration.dirty_pages', 4096);
  const id = t.flowStart('vcpu0', 'net0.kick');
  t.flowEnd('main-loop', 'net0.kick', id);
  t.event('main-loop', 'qemu_mutex_locked', { mutex: 'BQL', site: 'main_loop_wait', waited_ns: 0.5, idle: true });
};

const variant = (args: TraceArgs): Write => (t) => t.event('vcpu0', 'e', args);

describe('Trace', () => {
  it('gives the same fingerprint for the same records', () => {
    expect(fingerprint(base).sha).toBe(fingerprint(base).sha);
    expect(fingerprint(base).sha).toMatch(/^[0-9a-f]{64}$/);
  });

  it('tells apart records that differ in any field, and their order', () => {
    const shas = new Set([
      base,
      (t: Trace, c: { ns: number }) => { base(t, c); t.event('vcpu0', 'x'); },
      (t: Trace) => { t.event('vcpu0', 'x'); t.event('vcpu1', 'x'); },
      (t: Trace) => { t.event('vcpu1', 'x'); t.event('vcpu0', 'x'); },
      (t: Trace, c: { ns: number }) => { c.ns = 1; t.event('vcpu0', 'x'); },
      (t: Trace) => t.event('vcpu0', 'xy'),
      (t: Trace) => t.event('vcpu0x', 'y'),
      (t: Trace) => t.slice('vcpu0', 'x', 'bh', 0, 1),
      (t: Trace) => t.slice('vcpu0', 'x', 'bh', 0, 2),
      (t: Trace) => t.slice('vcpu0', 'x', 'fd', 0, 1),
      (t: Trace) => t.counter('x', 1),
      (t: Trace) => t.counter('x', 2),
      variant({ a: 1 }),
      variant({ a: '1' }),
      variant({ a: true }),
      variant({ a: 2 }),
      variant({ b: 1 }),
      variant({ a: 1, b: 2 }),
      variant({ b: 2, a: 1 }),
      variant({ a: 'x', b: 'y' }),
      variant({ a: 'xy' }),
      variant({}),
    ].map((w) => fingerprint(w).sha));
    expect(shas.size).toBe(22);
  });

  it('hashes a long run the same way every time, across many buffer fills', () => {
    const long: Write = (t, clock) => {
      for (let i = 0; i < 50_000; i++) {
        clock.ns = i * 1000;
        t.event(`vcpu${i % 3}`, 'kvm_run_exit', { reason: 'pio', n: i, name: i % 1000 === 0 ? `new-${i}` : 'same' });
        t.slice('main-loop', 'h', 'fd', clock.ns, i % 7);
      }
    };
    const a = fingerprint(long);
    expect(a.trace.length).toBe(100_000);
    expect(fingerprint(long).sha).toBe(a.sha);
    expect(a.trace.records).toEqual([]);
  });

  it('keeps the records for the exporters when asked', () => {
    const { trace } = fingerprint(base, true);
    expect(trace.records.map((r) => r.ph)).toEqual(['i', 'X', 'C', 'f', 'f', 'i']);
    expect(trace.records[0]).toEqual({ ph: 'i', ts: 10, thread: 'vcpu0', name: 'kvm_run_exit', args: { reason: 'pio', exit: 'vcpu0.pio-exit' } });
    expect(() => trace.event('vcpu0', 'late')).toThrow(/after its fingerprint/);
  });
});

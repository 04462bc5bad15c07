// The block backend's fault schedule: a stall holds completions until the
// window ends, a slow flush takes the fault's latency, and the retry interval
// wakes a waiting aio_poll while requests are stalled (the talk's qaw lines).
import { describe, expect, it } from 'vitest';
import { simulate } from '../../../sim/run.ts';
import { scenario, MS, S } from '../helpers.ts';

const disk = (faults: string, extra = '') => scenario(`
name: backend
seed: 2
duration: 20s
vm: { memory: 64MiB, vcpus: 1 }
devices:
  blk:
    - name: disk0
      read: 100us
      write: 100us
      flush: 1ms
      ${extra}
      io: { rate: 100/s, write_fraction: 0.5, flush_every: 4 }
faults:
${faults}
`);

describe('BlockBackend faults', () => {
  it('holds requests issued during a stall until the stall ends', () => {
    const { world } = simulate(disk('  - { name: san-stall, device: disk0, kind: stall, at: 5s, for: 3s }'));
    const delays = world.devices.blk[0]!.backend.delays;
    // The backend's queue fills: queue_depth requests are held, the rest wait to be issued.
    expect(delays.length).toBe(32);
    for (const d of delays) {
      expect(d.fault).toBe('san-stall');
      expect(d.from_ns).toBeGreaterThanOrEqual(5 * S);
      expect(d.to_ns).toBeGreaterThanOrEqual(8 * S);
      expect(d.to_ns).toBeLessThan(8 * S + 2 * MS);
    }
  });

  it('gives flushes in a slow-flush window the fault latency, and only flushes', () => {
    const { world } = simulate(disk('  - { name: nfs, device: disk0, kind: slow-flush, at: 5s, for: 1s, latency: 4s }'));
    const delays = world.devices.blk[0]!.backend.delays;
    expect(delays.length).toBeGreaterThan(0);
    expect(delays.every((d) => d.op === 'flush' && d.to_ns - d.from_ns >= 4 * S)).toBe(true);
    expect(delays.every((d) => d.from_ns >= 5 * S && d.from_ns < 6 * S)).toBe(true);
  });

  it('wakes a drain every retry interval while a request is stalled', () => {
    const withMigration = scenario(`
name: drain
seed: 2
duration: 30s
vm: { memory: 32MiB, vcpus: 1 }
devices:
  blk:
    - { name: disk0, flush: 1ms, retry_interval: 1s, io: { rate: 100/s, write_fraction: 0.5, flush_every: 4 } }
faults:
  - { name: nfs, device: disk0, kind: slow-flush, at: 1s, for: 19s, latency: 10s }
migration: { start: 2s, mode: main-loop }
`);
    const { result } = simulate(withMigration);
    const drain = result.drain.filter((d) => d.phase === 'drain');
    expect(drain.length).toBeGreaterThanOrEqual(9);
    expect(drain.every((d) => d.rfd === 1 && d.wfd === 0)).toBe(true);
    // While nothing completes, the NFS retries wake the drain once a second.
    const gaps = drain.slice(1, 9).map((d, i) => d.elapsed_ns - drain[i]!.elapsed_ns);
    expect(gaps).toEqual(Array(8).fill(1 * S));
    expect(drain[drain.length - 1]!.in_flight).toBe(0);
    expect(result.migration!.status).toBe('completed');
  });
});

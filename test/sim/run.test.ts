import { describe, expect, it } from 'vitest';
import { simulate } from '../../sim/run.ts';
import { S, scenario } from './helpers.ts';

const MIGRATING = `
name: converging
seed: 5
duration: 60s
vm: { memory: 64MiB, vcpus: 1 }
guest:
  workloads:
    - vcpus: all
      dirty: { rate: 500/s, pattern: uniform }
migration:
  start: 1s
  max_bandwidth: 64MiB/s
`;

describe('simulate', () => {
  it('ends a run a grace period after its migration completed, with the migration as the whole run had it', () => {
    const whole = simulate(scenario(MIGRATING)).result;
    const short = simulate(scenario(MIGRATING), { stopAfterEndNs: S }).result;
    expect(whole.migration?.status).toBe('completed');
    expect(whole.sim_time_ns).toBe(60 * S);
    const end = 1 * S + whole.migration!['total-time'] * 1e6;
    expect(short.sim_time_ns).toBeGreaterThanOrEqual(end);
    expect(short.sim_time_ns).toBeLessThan(end + 2 * S);
    expect(short.migration).toEqual({ ...whole.migration });
    expect(short.events).toBeLessThan(whole.events);
  });

  it('leaves the trace unwritten when no fingerprint is asked for, and nothing else changes', () => {
    const hashed = simulate(scenario(MIGRATING)).result;
    const bare = simulate(scenario(MIGRATING), { fingerprint: false }).result;
    expect(hashed.trace_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(bare.trace_sha256).toBe('');
    expect({ ...bare, trace_sha256: hashed.trace_sha256, wall_ms: hashed.wall_ms }).toEqual(hashed);
  });

  it('ends a run a grace period after its migration failed, the guest running on the source again', () => {
    const broken = `${MIGRATING}faults: [{ name: cut, kind: link-break, at: 1200ms, for: 1s }]\n`;
    const whole = simulate(scenario(broken)).result;
    const short = simulate(scenario(broken), { stopAfterEndNs: S }).result;
    expect(whole.migration?.status).toBe('failed');
    const failedAt = whole.migration!.transitions.at(-1)!.t_ns;
    expect(short.sim_time_ns).toBe(failedAt + S);
    expect(short.migration).toEqual({ ...whole.migration });
    expect(short.guest.userspace.progress).toBeGreaterThan(0);
  });

  it('runs a migration that never ends to the end of the scenario', () => {
    const failing = MIGRATING.replace('max_bandwidth: 64MiB/s', 'max_bandwidth: 64MiB/s\n  link: { bandwidth: 100Mbit/s }')
      .replace('rate: 500/s', 'rate: 20000/s');
    const r = simulate(scenario(failing), { stopAfterEndNs: S }).result;
    expect(r.migration?.status).not.toBe('completed');
    expect(r.sim_time_ns).toBe(60 * S);
  });
});

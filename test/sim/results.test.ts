// The result's `threads`: every thread of the run in a fixed order
// (main-loop, vcpuN, migration, each IOThread by id, each vhost worker), each
// with its longest blocked stretch and the names of the handlers that ran on
// it, the same threads `handlers[].thread` names.
import { describe, expect, it } from 'vitest';
import { simulate } from '../../sim/run.ts';
import { scenario, MS } from './helpers.ts';

const all = scenario(`
name: all-threads
seed: 3
duration: 6s
qemu: { version: 7.2 }
iothreads: [ { id: io-a }, { id: io-b, poll_max_ns: 0s } ]
vm: { memory: 128MiB, vcpus: 2 }
guest: { workloads: [ { vcpus: all, exits: { rate: 100/s, cost: 10us } } ] }
devices:
  net:
    - { name: net0, vhost: true, peer: { ping_interval: 50ms } }
  blk:
    - { name: disk0, iothread: io-a, request_cost: 120ms, io: { rate: 4/s } }
    - { name: disk1, iothread: io-b, io: { rate: 50/s } }
migration: { start: 2s, max_bandwidth: 1GiB/s, link: { bandwidth: 10Gbit/s } }
`);

describe('threads', () => {
  const { result } = simulate(all);

  it('lists every thread of the run, in QEMU\'s order, with its kind', () => {
    expect(result.threads.map((t) => [t.name, t.kind])).toEqual([
      ['main-loop', 'main-loop'], ['vcpu0', 'vcpu'], ['vcpu1', 'vcpu'], ['migration', 'migration'],
      ['io-a', 'iothread'], ['io-b', 'iothread'], ['vhost-net0', 'vhost'],
    ]);
  });

  it('gives each thread exactly the handlers that ran on it', () => {
    for (const t of result.threads) {
      const expected = [...new Set(result.handlers.filter((h) => h.thread === t.name).map((h) => h.name))].sort();
      expect(t.handlers, t.name).toEqual(expected);
    }
    const names = new Set(result.threads.map((t) => t.name));
    for (const h of result.handlers) expect(names.has(h.thread), h.thread).toBe(true);
    expect(result.threads.find((t) => t.name === 'io-b')!.handlers).toContain('virtio-blk.disk1.host-notifier-read');
  });

  it('measures each event loop on its own: io-a\'s 120 ms submissions block io-a only', () => {
    const by = new Map(result.threads.map((t) => [t.name, t]));
    expect(by.get('io-a')!.blocked_max_ns).toBeGreaterThanOrEqual(120 * MS);
    expect(by.get('io-b')!.blocked_max_ns).toBeLessThan(MS);
    expect(by.get('main-loop')!.blocked_max_ns).toBe(result.main_loop.blocked_max_ns);
    expect(by.get('vcpu0')!.blocked_max_ns).toBe(result.guest.vcpus[0]!.stall_max_ns);
    expect(by.get('io-a')!.poll).toMatchObject({ poll_max_ns: 32_768 });
    expect(by.get('io-b')!.poll).toMatchObject({ poll_max_ns: 0, polled_ns: 0 });
    expect(by.get('vhost-net0')!.poll).toBeUndefined();
  });
});

// vhost-net: the vhost worker serves tx and rx outside QEMU's threads (the
// main loop handles no fd of the device), pings are answered while the main
// loop is blocked, vm_stop waits for the worker's work in flight, and the
// pages the worker writes into guest memory reach the migration bitmap
// through vhost's own dirty log: the destination check holds, and fails
// without the log's sync.
import { describe, expect, it } from 'vitest';
import { loadScenarioFile } from '../../../../cli/scenario-file.ts';
import { simulate } from '../../../../sim/run.ts';
import { Scheduler } from '../../../../sim/scheduler/index.ts';
import { SimPlatform } from '../../../../sim/sim-platform.ts';
import { buildWorld } from '../../../../sim/world.ts';
import { InvariantError } from '../../../../sim/invariant.ts';
import { scenario, MS } from '../../helpers.ts';

const migrating = (extra = '') => scenario(`
name: vhost-migrate
seed: 11
duration: 12s
threshold: 10ms
qemu: { version: 7.2 }
vm: { memory: 256MiB, vcpus: 2 }
guest:
  workloads:
    - { vcpus: [0], dirty: { rate: 5000/s, pattern: hotset, hot_set: 32MiB, cold: 10% } }
devices:
  net:
    - name: net0
      vcpu: 1
      vhost: true
      ${extra}
      peer: { ping_interval: 20ms, ping_timeout: 1s, background: 5000/s }
migration: { start: 2s, max_bandwidth: 64MiB/s, link: { bandwidth: 1Gbit/s } }
`);

describe('vhost-net', () => {
  it('keeps the data path off the main loop: the worker answers pings while the main loop is blocked', () => {
    const { result } = simulate(loadScenarioFile('scenarios/vhost-net-vs-userspace.yaml'));
    const main = result.threads.find((t) => t.name === 'main-loop')!;
    expect(main.handlers).toEqual(['monitor.query-slow']);
    expect(main.blocked_max_ns).toBeGreaterThanOrEqual(358 * MS);
    const worker = result.threads.find((t) => t.name === 'vhost-net0')!;
    expect(worker.kind).toBe('vhost');
    expect(worker.handlers).toEqual(['vhost-net.net0.handle-rx', 'vhost-net.net0.handle-tx']);
    expect(result.handlers.find((h) => h.name === 'vhost-net.net0.handle-rx')?.thread).toBe('vhost-net0');
    expect(result.guest.ping.rtt_p99_ns).toBeLessThan(MS);
    expect(result.guest.ping.lost).toBe(0);
    expect(result.migration?.verified).toBe(true);
  });

  it('in the userspace twin, the pings wait for the 358 ms monitor command on the main loop', () => {
    const { result } = simulate(loadScenarioFile('scenarios/vhost-net-userspace.yaml'));
    const main = result.threads.find((t) => t.name === 'main-loop')!;
    expect(main.handlers).toContain('virtio-net.net0.host-notifier-read');
    expect(main.handlers).toContain('virtio-net.net0.tap-read');
    expect(result.threads.some((t) => t.kind === 'vhost')).toBe(false);
    expect(result.guest.ping.rtt_p99_ns).toBeGreaterThan(100 * MS);
  });

  it('logs the pages it writes while migration logs, merges them at every sync, and the destination has them all', () => {
    const { result, world } = simulate(migrating());
    const v = world.devices.net[0]!.vhost!;
    expect(result.error).toBeNull();
    expect(result.migration?.status).toBe('completed');
    expect(result.migration?.verified).toBe(true);
    expect(v.pagesWritten).toBeGreaterThan(10_000);
    // One sync per migration_bitmap_sync, and one more when vm_stop stopped the worker.
    expect(v.logSyncs).toBe(result.migration!.ram['dirty-sync-count'] + 1);
    expect(v.started).toBe(true);
  });

  it('loses pages at switchover when its log is never merged (the destination check catches it)', () => {
    const s = migrating();
    const scheduler = new Scheduler({ seed: s.seed, maxTimeNs: s.limits.max_time_ns, maxEvents: s.limits.max_events });
    const world = buildWorld(s, new SimPlatform(scheduler), false);
    world.devices.net[0]!.vhost!.skipLogSync = true;
    let caught: unknown = null;
    try {
      scheduler.run(s.duration_ns);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(InvariantError);
    expect((caught as InvariantError).kind).toBe('lost-page');
  });

  it('vm_stop waits for the worker to finish its work in flight (vhost_net_flush) under the BQL', () => {
    const { result, world } = simulate(migrating('tx_bh_cost: 80ms'));
    expect(result.migration?.status).toBe('completed');
    const stop = world.machine.inst.handlerList().find((h) => h.name === 'vhost-net.net0.stop')!;
    expect(stop.thread).toBe('migration');
    // The completion came while handle_tx ran: the stop waited for the rest of its 80 ms.
    const slow = result.slow.find((x) => x.name === 'vhost-net.net0.stop')!;
    expect(slow.waited_on).toBe('the work in flight of vhost-net0 (vhost_net_flush)');
    expect(slow.duration_ns).toBeGreaterThan(10 * MS);
    expect(slow.duration_ns).toBeLessThanOrEqual(80 * MS);
    expect(result.migration!.downtime_phases!.drain).toBe(Math.round(slow.duration_ns / MS));
    expect(world.machine.stops.length).toBe(1);
  });
});

// Critical-path attribution names the right chain of causes for the shipped
// talk scenarios: who held the BQL or stopped the VM, in which handlers,
// waiting on what, delayed by which fault.
import { describe, expect, it } from 'vitest';
import { loadScenarioFile } from '../../../cli/scenario-file.ts';
import { simulate } from '../../../sim/run.ts';
import { scenario } from '../helpers.ts';

describe('attribution', () => {
  it('blames the 358 ms virtio-net host-notifier read for the vCPUs\' BQL waits', () => {
    const { result } = simulate(loadScenarioFile('scenarios/virtio-net-358ms.yaml'));
    const stalls = result.attribution.filter((a) => a.subject === 'vcpu-stall');
    expect(stalls.length).toBeGreaterThan(0);
    for (const a of stalls) {
      expect(a.chain[0]).toMatch(/^vcpu\d waited \d+ ms for the BQL$/);
      expect(a.chain[1]).toBe('held by main-loop in virtio-net.net0.host-notifier-read');
      expect(a.chain[2]).toBe('running for 358 ms');
    }
  });

  it('follows the 51 s downtime to bdrv_drain_all, aio_poll, disk0 and the NFS fault', () => {
    const { result } = simulate(loadScenarioFile('scenarios/flush-stall-legacy.yaml'));
    const downtime = result.attribution.find((a) => a.subject === 'downtime')!;
    expect(downtime.chain).toEqual([
      'downtime 50.6 s of completion attempt 1 (completed)',
      '49.0 s of it in bdrv_drain_all',
      'on main-loop in migration.buffered_rate_tick -> migration_completion -> vm_stop -> bdrv_drain_all',
      'waiting 49.0 s in aio_poll(qemu_aio_context) for in-flight requests on disk0',
      'delayed by fault nfs-stall (slow-flush on disk0)',
    ]);
    const vcpu0 = result.attribution.find((a) => a.subject === 'vcpu-stall' && a.chain[0]!.startsWith('vcpu0'))!;
    expect(vcpu0.text).toBe('vcpu0 was stopped for 50.6 s (vm_stop to finish-migrate), by main-loop in migration.buffered_rate_tick' +
      ' -> migration_completion -> vm_stop -> bdrv_drain_all, waiting 49.0 s in aio_poll(qemu_aio_context) for in-flight' +
      ' requests on disk0, delayed by fault nfs-stall (slow-flush on disk0)');
  });

  it('with a migration thread, the vCPU waits for the BQL held by the migration thread in the flush', () => {
    const { result } = simulate(scenario(`
name: thread-flush
seed: 1
duration: 40s
vm: { memory: 64MiB, vcpus: 1 }
guest: { workloads: [ { vcpus: all, exits: { rate: 100/s, cost: 10us } } ] }
devices:
  blk:
    - { name: disk0, io: { rate: 20/s, write_fraction: 1, flush_every: 0 } }
faults:
  - { name: nfs-stall, device: disk0, kind: slow-flush, at: 1s, for: 10s, latency: 20s }
migration: { start: 2s, mode: thread }
`));
    const downtime = result.attribution.find((a) => a.subject === 'downtime')!;
    expect(downtime.text).toMatch(/in bdrv_flush_all, on migration in migration_completion -> vm_stop -> bdrv_flush_all, waiting 20\.0 s in aio_poll\(qemu_aio_context\) for flush on disk0, delayed by fault nfs-stall/);
  });
});

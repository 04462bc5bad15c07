// virtio-blk's dataplane: with iothread= the host notifier's handler, the
// completions and the guest notification run in the IOThread without the
// BQL; vm_stop stops the dataplane and waits for the IOThread (7.2: for its
// AioContext lock; 9.2: for the stop bottom half), draining its requests;
// vm_start resumes it with the requests kept by werror=stop.
import { describe, expect, it } from 'vitest';
import { loadScenarioFile } from '../../../../cli/scenario-file.ts';
import { simulate } from '../../../../sim/run.ts';
import { scenario, MS, S } from '../../helpers.ts';
import { Scheduler } from '../../../../sim/scheduler/index.ts';
import { SimPlatform } from '../../../../sim/sim-platform.ts';
import { buildWorld } from '../../../../sim/world.ts';

const stopDuringHandler = (version: string) => scenario(`
name: dataplane-stop
seed: 58
duration: 20s
qemu: { version: ${version} }
iothreads: [ { id: iothread0 } ]
vm: { memory: 64MiB, vcpus: 2 }
guest: { workloads: [ { vcpus: all, exits: { rate: 200/s, cost: 10us } } ] }
devices:
  blk:
    - name: disk0
      vcpu: 1
      iothread: iothread0
      request_cost: 358ms
      io: { rate: 2.5/s, write_fraction: 0.5, flush_every: 8 }
migration: { start: 2s, max_bandwidth: 1GiB/s, link: { bandwidth: 10Gbit/s } }
`);

describe('virtio-blk dataplane', () => {
  it('runs the host notifier, completions and guest notification in iothread0; the vCPUs never wait for the BQL', () => {
    const { result } = simulate(loadScenarioFile('scenarios/iothread-358ms.yaml'));
    const thread = (name: string) => result.handlers.find((h) => h.name === name)?.thread;
    expect(thread('virtio-blk.disk0.host-notifier-read')).toBe('iothread0');
    expect(thread('virtio-blk.disk0.aio-completion')).toBe('iothread0');
    expect(thread('virtio-blk.disk0.notify-bh')).toBe('iothread0');
    const io = result.threads.find((t) => t.name === 'iothread0')!;
    expect(io.kind).toBe('iothread');
    expect(io.blocked_max_ns).toBeGreaterThanOrEqual(358 * MS);
    expect(io.handlers).toContain('virtio-blk.disk0.host-notifier-read');
    expect(result.slow.find((s) => s.name === 'virtio-blk.disk0.host-notifier-read')?.thread).toBe('iothread0');
    expect(result.bql.wait_max_ns).toBeLessThan(MS);
    expect(result.guest.vcpu_stall_max_ns).toBeLessThan(MS);
    expect(result.main_loop.blocked_max_ns).toBeLessThan(MS);
  });

  it('on the main loop instead, the same 358 ms submission holds the BQL and stalls the vCPUs', () => {
    const { result } = simulate(loadScenarioFile('scenarios/iothread-358ms-main-loop.yaml'));
    expect(result.handlers.find((h) => h.name === 'virtio-blk.disk0.host-notifier-read')?.thread).toBe('main-loop');
    expect(result.threads.map((t) => t.name)).toEqual(['main-loop', 'vcpu0', 'vcpu1']);
    expect(result.bql.wait_max_ns).toBeGreaterThanOrEqual(300 * MS);
    expect(result.guest.vcpu_stall_max_ns).toBeGreaterThanOrEqual(300 * MS);
  });

  it('7.2: the migration thread\'s vm_stop waits for iothread0\'s AioContext lock, held by the 358 ms handler', () => {
    const { result, world } = simulate(stopDuringHandler('7.2'));
    expect(result.migration?.status).toBe('completed');
    expect(result.migration?.verified).toBe(true);
    const lock = world.machine.iothread('iothread0').ctx.lock!;
    const w = lock.waits.find((x) => x.site === 'virtio_blk_data_plane_stop')!;
    expect(w).toMatchObject({ thread: 'migration', holder: 'iothread0', holder_site: 'virtio_blk_handle_vq' });
    // The completion came 11 ms into a 358 ms submission: the rest of it is the downtime.
    expect(w.to_ns - w.from_ns).toBeGreaterThan(300 * MS);
    expect(w.to_ns - w.from_ns).toBeLessThan(358 * MS);
    expect(result.migration!.downtime).toBeGreaterThanOrEqual(Math.floor((w.to_ns - w.from_ns) / MS));
    const downtime = result.attribution.find((a) => a.subject === 'downtime')!;
    expect(downtime.text).toContain("waiting 347 ms for iothread0's AioContext lock, held by iothread0 in virtio-blk.disk0.host-notifier-read, running for 358 ms");
    // After the switchover the destination's dataplane runs in iothread0 again.
    expect(world.devices.blk[0]!.dataplane?.started).toBe(true);
    expect(world.devices.blk[0]!.backend.ctx.name).toBe('iothread0');
  });

  it('9.2: no AioContext lock; the stop waits for its bottom half behind the IOThread\'s handler', () => {
    const { result, world } = simulate(stopDuringHandler('9.2'));
    expect(result.migration?.status).toBe('completed');
    expect(world.machine.iothread('iothread0').ctx.lock).toBeNull();
    expect(result.handlers.find((h) => h.name === 'virtio-blk.disk0.dataplane-stop-bh')?.thread).toBe('iothread0');
    // The same seed's completion as in 7.2: the same wait, now for the stop bottom half.
    expect(result.migration!.downtime).toBeGreaterThan(300);
    const stop = world.machine.inst.slow.find((s) => s.name === 'virtio-blk.disk0.dataplane-stop')!;
    expect(stop.waited_on).toBe('aio_poll(qemu_aio_context) for virtio-blk.disk0.dataplane-stop-bh in iothread0');
    const d = result.attribution.find((a) => a.subject === 'downtime')!;
    expect(d.text).toMatch(/iothread0 meanwhile in virtio-blk\.disk0\.host-notifier-read for 358 ms/);
  });

  it('keeps werror=stop requests in s->rq and resubmits them when the dataplane starts again', () => {
    const { result, world } = simulate(scenario(`
name: dataplane-werror
seed: 21
duration: 10s
qemu: { version: 7.2 }
iothreads: [ { id: iothread0 } ]
vm: { memory: 64MiB, vcpus: 1 }
devices:
  blk:
    - { name: disk0, iothread: iothread0, on_error: stop, io: { rate: 200/s, write_fraction: 1, flush_every: 0 } }
faults:
  - { name: eio, device: disk0, kind: io-error, at: 2s, for: 3s, ops: [write] }
`));
    const d = world.devices.blk[0]!;
    expect(world.machine.stops.some((s) => s.state === 'io-error')).toBe(true);
    expect(d.dev.restarted).toBeGreaterThan(0);
    expect(d.driver.errors).toBe(0);
    // With the ioeventfd on, the dma-restart BH is not the one that resubmits.
    expect(result.handlers.map((h) => h.name)).not.toContain('virtio-blk.disk0.dma-restart-bh');
    expect(world.machine.runstate.running).toBe(true);
    expect(d.dataplane?.started).toBe(true);
  });

  it('the talk\'s flush stall with the disk on an IOThread: the downtime still waits for the flush, iothread0 does not block', () => {
    const { result } = simulate(loadScenarioFile('scenarios/iothread-flush-stall.yaml'));
    const m = result.migration!;
    expect(m.status).toBe('completed');
    expect(m.verified).toBe(true);
    expect(m.downtime).toBeGreaterThan(40_000);
    const io = result.threads.find((t) => t.name === 'iothread0')!;
    expect(io.blocked_max_ns).toBeLessThan(MS);
    expect(result.threads.find((t) => t.name === 'migration')!.blocked_max_ns).toBeGreaterThan(40 * S);
    expect(result.drain.some((d) => d.site === 'virtio_blk_data_plane_stop' && d.ctx === 'iothread0')).toBe(true);
    const downtime = result.attribution.find((a) => a.subject === 'downtime')!;
    expect(downtime.chain).toContain('on migration in migration_completion -> vm_stop -> virtio-blk.disk0.dataplane-stop -> blk_set_aio_context');
    expect(downtime.text).toMatch(/for in-flight requests on disk0 in iothread0, iothread0 meanwhile free/);
    expect(downtime.text).toMatch(/delayed by fault nfs-stall \(slow-flush on disk0\)$/);
  });

  it.each(['7.2', '9.2'])('%s: a drained section in the running VM keeps the guest\'s requests in the ring until it ends', (version) => {
    const s = scenario(`
name: drained
seed: 4
duration: 30s
qemu: { version: ${version} }
iothreads: [ { id: iothread0 } ]
vm: { memory: 64MiB, vcpus: 1 }
devices:
  blk:
    - { name: disk0, iothread: iothread0, io: { rate: 100/s, write_fraction: 1, flush_every: 0 } }
faults:
  - { name: stuck, device: disk0, kind: stall, at: 1s, for: 5s }
`);
    const scheduler = new Scheduler({ seed: s.seed });
    const platform = new SimPlatform(scheduler);
    const world = buildWorld(s, platform, false);
    const m = world.machine;
    const d = world.devices.blk[0]!;
    const qmp = platform.createNotifier('qmp');
    let drained = -1;
    m.mainLoop.setFdHandler(qmp, 'qmp.drain', function* () {
      qmp.read();
      yield* world.devices.block.drainAll();
      drained = platform.nowNs();
    });
    scheduler.callAt(2 * S, () => qmp.set());
    scheduler.run(3 * S);
    // Drained since 2 s, the stall holds what is in flight until 6 s: the guest's new requests wait in the ring.
    expect(drained).toBe(-1);
    expect(d.dev.vq.length).toBeGreaterThan(50);
    const ringAt3s = d.dev.vq.length;
    scheduler.run(10 * S);
    expect(drained).toBeGreaterThanOrEqual(6 * S);
    expect(d.dev.vq.length).toBeLessThan(ringAt3s);
    expect(d.dataplane?.started).toBe(true);
  });
});

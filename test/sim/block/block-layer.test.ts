// The block layer across AioContexts: bdrv_drain_all and bdrv_flush_all from
// the main loop wait for a backend whose completions run in an IOThread
// (AIO_WAIT_WHILE polls qemu_aio_context, the IOThread kicks it); the drained
// section keeps the device's external handler off (7.2) or asks the device
// (8.2's BlockDevOps, the 9.2 profile); blk_set_aio_context drains and moves
// the completions.
import { describe, expect, it } from 'vitest';
import { Scheduler } from '../../../sim/scheduler/index.ts';
import { SimPlatform } from '../../../sim/sim-platform.ts';
import { Machine } from '../../../sim/machine.ts';
import { QEMU_PROFILES, HOST_COSTS_DEFAULT } from '../../../sim/scenario/qemu.ts';
import { BlockLayer } from '../../../sim/block/block-layer.ts';
import { BlockBackend } from '../../../sim/block/backend.ts';
import { FaultSchedule } from '../../../sim/faults.ts';
import { scenario, MS, S } from '../helpers.ts';

const spec = scenario(`
name: drain
duration: 100s
vm: { memory: 64MiB, vcpus: 1 }
devices:
  blk:
    - { name: disk0, read: 100us, write: 100us, flush: 1ms }
faults:
  - { name: nfs, device: disk0, kind: slow-flush, at: 0s, for: 2s, latency: 40s }
`);

function rig(version: '7.2' | '9.2') {
  const scheduler = new Scheduler({ seed: 3 });
  const p = new SimPlatform(scheduler);
  const profile = QEMU_PROFILES[version];
  const m = new Machine(p, {
    keepTrace: true, qemu: { profile, host: HOST_COSTS_DEFAULT },
    iothreads: [{ id: 'iothread0', poll_max_ns: 0, poll_grow: 0, poll_shrink: 0 }],
  });
  const io = m.iothread('iothread0');
  const block = new BlockLayer(p, m.bql, m.mainLoop.aioContext, m.inst, true, m.aioWait, profile.block_locking);
  m.block = block;
  const backend = new BlockBackend('disk0', p, m.inst, io.ctx, spec.devices.blk[0]!, new FaultSchedule(spec.faults));
  block.add(backend);
  return { scheduler, p, m, io, block, backend };
}

describe('BlockLayer across AioContexts', () => {
  it('bdrv_drain_all from the main loop waits for the IOThread\'s 40 s flush, kicked by its completion', () => {
    const { scheduler, p, m, block, backend } = rig('7.2');
    let doneAt = -1;
    scheduler.callAt(MS, () => backend.submit({ op: 'flush', block: 0, blocks: 0, versions: [], done: () => { doneAt = p.nowNs(); } }));
    const trigger = p.createNotifier('monitor');
    let drainedAt = -1;
    let completionThread = '';
    m.mainLoop.setFdHandler(trigger, 'qmp.drain', function* () {
      trigger.read();
      yield* block.drainAll();
      drainedAt = p.nowNs();
    });
    m.start();
    scheduler.callAt(2 * MS, () => trigger.set());
    scheduler.run(60 * S);
    completionThread = m.inst.handlerList().find((h) => h.name === 'virtio-blk.disk0.aio-completion')!.thread;
    // Issued at 1 ms: the fault's 40 s on top of the 1 ms flush.
    expect(doneAt).toBe(40 * S + 2 * MS);
    expect(drainedAt).toBe(doneAt);
    expect(completionThread).toBe('iothread0');
    expect(m.aioWait.kicks).toBe(1);
    // Each poll iteration is recorded against qemu_aio_context; the main loop was blocked for it.
    expect(block.iterations.length).toBe(1);
    expect(block.iterations[0]).toMatchObject({ phase: 'drain', in_flight: 0 });
    expect(m.inst.mainLoopBlocked.maxNs).toBeGreaterThanOrEqual(40 * S - MS);
    // The wait is named for what it waited on: the IOThread's requests.
    const slow = m.inst.slow.find((s) => s.name === 'bdrv_drain_all')!;
    expect(slow.waited_on).toBe('aio_poll(qemu_aio_context) for in-flight requests on disk0 in iothread0');
  });

  it('bdrv_flush_all flushes the IOThread\'s backend and waits for it', () => {
    const { scheduler, p, m, block, backend } = rig('9.2');
    // A write makes the node dirty (a clean node's flush is skipped).
    scheduler.callAt(3 * S, () => backend.submit({ op: 'write', block: 0, blocks: 1, versions: [7], done: () => {} }));
    const trigger = p.createNotifier('monitor');
    let result: string | null = 'not run';
    let at = -1;
    m.mainLoop.setFdHandler(trigger, 'qmp.flush', function* () {
      trigger.read();
      result = yield* block.flushAll();
      at = p.nowNs();
    });
    m.start();
    scheduler.callAt(4 * S, () => trigger.set());
    scheduler.run(10 * S);
    expect(result).toBeNull();
    expect(at).toBeGreaterThan(4 * S);
    expect(at).toBeLessThan(4 * S + 100 * MS);
    expect(backend.stable[0]).toBe(7);
  });

  it('7.2: the drained section disables the IOThread context\'s external handlers', () => {
    const { scheduler, p, m, io, block, backend } = rig('7.2');
    const kick = p.createNotifier('disk0.ioeventfd');
    const handled: number[] = [];
    io.ctx.setFdHandler(kick, 'host-notifier', function* () {
      kick.read();
      handled.push(p.nowNs());
    }, null, { external: true });
    scheduler.callAt(MS, () => backend.submit({ op: 'flush', block: 0, blocks: 0, versions: [], done: () => {} }));
    const trigger = p.createNotifier('monitor');
    m.mainLoop.setFdHandler(trigger, 'qmp.drain', function* () {
      trigger.read();
      yield* block.drainAll();
    });
    m.start();
    scheduler.callAt(2 * MS, () => trigger.set());
    scheduler.callAt(10 * S, () => kick.set());
    scheduler.run(60 * S);
    // The guest's kick during the drain is handled only when the drained section ends.
    expect(handled).toEqual([40 * S + 2 * MS]);
    expect(io.ctx.externalDisabled).toBe(false);
  });

  it('7.2: bdrv_drain_all_begin waits for the IOThread\'s handler holding its AioContext lock', () => {
    const { scheduler, p, m, io, block } = rig('7.2');
    const lock = io.ctx.lock!;
    const kick = p.createNotifier('disk0.ioeventfd');
    io.ctx.setFdHandler(kick, 'handle-vq', function* () {
      kick.read();
      yield* lock.acquire('virtio_blk_handle_vq');
      yield* p.cpu(100 * MS);
      lock.release();
    });
    const trigger = p.createNotifier('monitor');
    let drained = -1;
    m.mainLoop.setFdHandler(trigger, 'qmp.drain', function* () {
      trigger.read();
      yield* block.drainAll();
      drained = p.nowNs();
    });
    m.start();
    scheduler.callAt(MS, () => kick.set());
    scheduler.callAt(2 * MS, () => trigger.set());
    scheduler.run(S);
    expect(drained).toBe(101 * MS);
    expect(lock.waits[0]).toMatchObject({ thread: 'main-loop', site: 'bdrv_drain_all_begin', holder: 'iothread0', holder_site: 'virtio_blk_handle_vq' });
  });

  it('9.2: the drained section goes through the device\'s BlockDevOps', () => {
    const { scheduler, p, m, block, backend } = rig('9.2');
    const calls: string[] = [];
    backend.devOps = { drainedBegin: () => calls.push(`begin@${p.nowNs() / MS}`), drainedEnd: () => calls.push(`end@${p.nowNs() / MS}`) };
    scheduler.callAt(MS, () => backend.submit({ op: 'read', block: 0, blocks: 1, versions: [], done: () => {} }));
    const trigger = p.createNotifier('monitor');
    m.mainLoop.setFdHandler(trigger, 'qmp.drain', function* () {
      trigger.read();
      yield* block.drainAll();
    });
    m.start();
    scheduler.callAt(MS, () => trigger.set());
    scheduler.run(S);
    expect(calls.length).toBe(2);
    expect(calls[0]).toBe('begin@1');
  });

  it('blk_set_aio_context drains in the old context, then completions run in the new one', () => {
    const { scheduler, p, m, io, block, backend } = rig('7.2');
    scheduler.callAt(MS, () => backend.submit({ op: 'flush', block: 0, blocks: 0, versions: [], done: () => {} }));
    const trigger = p.createNotifier('monitor');
    let moved = -1;
    m.mainLoop.setFdHandler(trigger, 'qmp.move', function* () {
      trigger.read();
      yield* block.setAioContext(backend, m.mainLoop.aioContext, 'test');
      moved = p.nowNs();
    });
    m.start();
    scheduler.callAt(2 * MS, () => trigger.set());
    scheduler.run(44 * S);
    expect(moved).toBe(40 * S + 2 * MS);
    expect(backend.ctx).toBe(m.mainLoop.aioContext);
    expect(io.ctx.hasHandler(backend.completionFd)).toBe(false);
    expect(m.mainLoop.aioContext.hasHandler(backend.completionFd)).toBe(true);
    expect(block.iterations.every((i) => i.site === 'test' && i.ctx === 'iothread0')).toBe(true);
    // A request now completes on the main loop.
    scheduler.callAt(45 * S, () => backend.submit({ op: 'read', block: 0, blocks: 1, versions: [], done: () => {} }));
    scheduler.run(46 * S);
    const threads = m.inst.handlerList().filter((h) => h.name === 'virtio-blk.disk0.aio-completion').map((h) => h.thread);
    expect(threads.sort()).toEqual(['iothread0', 'main-loop']);
  });
});

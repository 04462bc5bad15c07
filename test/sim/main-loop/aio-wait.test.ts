// AIO_WAIT_WHILE across AioContexts: a BQL holder waiting for work in an
// IOThread polls qemu_aio_context, is woken by aio_wait_kick, and drops the
// IOThread's AioContext lock around each poll so the IOThread's handler can
// take it; aio_wait_bh_oneshot runs a bottom half in the IOThread and waits.
import { describe, expect, it } from 'vitest';
import { Scheduler } from '../../../sim/scheduler/index.ts';
import { SimPlatform } from '../../../sim/sim-platform.ts';
import { Machine } from '../../../sim/machine.ts';
import { QEMU_PROFILES, HOST_COSTS_DEFAULT } from '../../../sim/scenario/qemu.ts';
import { MS } from '../helpers.ts';

function rig2(version: '7.2' | '9.2' = '7.2') {
  const scheduler = new Scheduler({ seed: 1 });
  const platform = new SimPlatform(scheduler);
  const machine = new Machine(platform, {
    keepTrace: true,
    qemu: { profile: QEMU_PROFILES[version], host: HOST_COSTS_DEFAULT },
    iothreads: [{ id: 'iothread0', poll_max_ns: 0, poll_grow: 0, poll_shrink: 0 }],
  });
  return { scheduler, platform, machine, iothread: machine.iothread('iothread0') };
}

describe('AIO_WAIT_WHILE', () => {
  it('wakes the waiter polling qemu_aio_context when the IOThread kicks, holding the BQL throughout', () => {
    const { scheduler, platform: p, machine: m, iothread } = rig2();
    const done = p.createNotifier('disk0.aio-fd');
    let inFlight = 1;
    iothread.ctx.setFdHandler(done, 'completion', function* () {
      done.read();
      inFlight = 0;
      m.aioWait.kick();
    });
    const log: string[] = [];
    const trigger = p.createNotifier('monitor');
    m.mainLoop.setFdHandler(trigger, 'monitor.drain', function* () {
      trigger.read();
      const lock = iothread.ctx.lock!;
      yield* lock.acquire('test');
      const ok = yield* m.aioWait.waitWhile(iothread.ctx, () => inFlight > 0, { what: 'disk0 in iothread0' });
      log.push(`done@${p.nowNs() / MS} ok=${ok} bql=${m.bql.locked()} lock=${lock.heldDepth()}`);
      lock.release();
    });
    m.start();
    scheduler.callAt(MS, () => trigger.set());
    scheduler.callAt(40 * MS, () => done.set());
    scheduler.run(100 * MS);
    expect(log).toEqual(['done@40 ok=true bql=true lock=1']);
    expect(m.aioWait.kicks).toBe(1);
    expect(m.aioWait.numWaiters).toBe(0);
    // The kick's dummy BH ran on the waiting thread, in qemu_aio_context.
    expect(m.inst.handlerList().find((h) => h.name === 'aio_wait_kick')?.thread).toBe('main-loop');
    // The wait is the main loop's blocked time, and in no handler of the IOThread.
    expect(m.inst.mainLoopBlocked.maxNs).toBeGreaterThanOrEqual(39 * MS);
  });

  it('drops the AioContext lock inside each poll: the IOThread\'s handler takes it meanwhile (7.2)', () => {
    const { scheduler, platform: p, machine: m, iothread } = rig2('7.2');
    const lock = iothread.ctx.lock!;
    const kick = p.createNotifier('disk0.ioeventfd');
    let handled = -1;
    iothread.ctx.setFdHandler(kick, 'handle-vq', function* () {
      kick.read();
      yield* lock.acquire('virtio_blk_handle_vq');
      handled = p.nowNs();
      lock.release();
      m.aioWait.kick();
    });
    const trigger = p.createNotifier('monitor');
    m.mainLoop.setFdHandler(trigger, 'monitor.wait', function* () {
      trigger.read();
      yield* lock.acquire('test');
      yield* m.aioWait.waitWhile(iothread.ctx, () => handled < 0, { what: 'the handler' });
      lock.release();
    });
    m.start();
    scheduler.callAt(MS, () => trigger.set());
    scheduler.callAt(3 * MS, () => kick.set());
    scheduler.run(10 * MS);
    expect(handled).toBe(3 * MS);
    expect(lock.waits).toEqual([]);
  });

  it('makes a BQL holder that takes the lock wait for the IOThread\'s handler holding it, and names the holder', () => {
    const { scheduler, platform: p, machine: m, iothread } = rig2('7.2');
    const lock = iothread.ctx.lock!;
    const kick = p.createNotifier('disk0.ioeventfd');
    iothread.ctx.setFdHandler(kick, 'handle-vq', function* () {
      kick.read();
      yield* lock.acquire('virtio_blk_handle_vq');
      yield* p.cpu(358 * MS);
      lock.release();
    });
    const trigger = p.createNotifier('monitor');
    let got = -1;
    m.mainLoop.setFdHandler(trigger, 'monitor.stop', function* () {
      trigger.read();
      yield* lock.acquire('virtio_blk_data_plane_stop');
      got = p.nowNs();
      lock.release();
    });
    m.start();
    scheduler.callAt(MS, () => kick.set());
    scheduler.callAt(2 * MS, () => trigger.set());
    scheduler.run(MS * 1000);
    expect(got).toBe(359 * MS);
    expect(lock.waits).toEqual([{
      thread: 'main-loop', site: 'virtio_blk_data_plane_stop', from_ns: 2 * MS, to_ns: 359 * MS,
      holder: 'iothread0', holder_site: 'virtio_blk_handle_vq',
    }]);
  });

  it('runs aio_wait_bh_oneshot\'s bottom half in the IOThread and returns once it ran', () => {
    const { scheduler, platform: p, machine: m, iothread } = rig2('9.2');
    const where: string[] = [];
    const trigger = p.createNotifier('monitor');
    m.mainLoop.setFdHandler(trigger, 'monitor.oneshot', function* () {
      trigger.read();
      yield* m.aioWait.bhOneshot(iothread.ctx, 'stop-bh', function* () {
        where.push(`${p.current().name}@${p.nowNs() / MS}`);
        yield* p.cpu(5 * MS);
      });
      where.push(`back on ${p.current().name}@${p.nowNs() / MS}`);
    });
    m.start();
    scheduler.callAt(MS, () => trigger.set());
    scheduler.run(20 * MS);
    expect(where).toEqual(['iothread0@1', 'back on main-loop@6']);
  });
});

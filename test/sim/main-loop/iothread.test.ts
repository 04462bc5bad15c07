// IOThreads: a thread with its own AioContext whose blocking aio_poll is woken
// from other threads (aio_notify), whose handlers run on it and not on the
// main loop, whose adaptive polling grows and shrinks poll_ns as QEMU 7.2's
// aio_poll does, and whose blocked time is its dispatch time.
import { describe, expect, it } from 'vitest';
import { Scheduler } from '../../../sim/scheduler/index.ts';
import { SimPlatform } from '../../../sim/sim-platform.ts';
import { Machine } from '../../../sim/machine.ts';
import { QEMU_PROFILES, HOST_COSTS_DEFAULT } from '../../../sim/scenario/qemu.ts';
import { POLL_NS_START } from '../../../sim/main-loop/aio.ts';
import type { IothreadSpec } from '../../../sim/scenario/iothreads.ts';
import { InvariantError } from '../../../sim/invariant.ts';
import { MS } from '../helpers.ts';

const US = 1_000;

function iorig(spec: Partial<IothreadSpec> = {}, version: '7.2' | '9.2' | '1.1' = '7.2') {
  const scheduler = new Scheduler({ seed: 1 });
  const platform = new SimPlatform(scheduler);
  const machine = new Machine(platform, {
    keepTrace: true,
    qemu: { profile: QEMU_PROFILES[version], host: HOST_COSTS_DEFAULT },
    iothreads: [{ id: 'iothread0', poll_max_ns: 0, poll_grow: 0, poll_shrink: 0, ...spec }],
  });
  return { scheduler, platform, machine, iothread: machine.iothread('iothread0') };
}

describe('IOThread', () => {
  it('runs a bottom half scheduled from another thread: aio_notify wakes its blocked aio_poll', () => {
    const { scheduler, platform: p, machine: m, iothread } = iorig();
    const ran: { thread: string; at: number }[] = [];
    const bh = iothread.ctx.bhNew('work-bh', function* () {
      ran.push({ thread: p.current().name, at: p.nowNs() });
    });
    // The main loop schedules it from an fd handler (under the BQL).
    const fd = p.createNotifier('monitor');
    m.mainLoop.setFdHandler(fd, 'monitor.read', function* () {
      fd.read();
      bh.schedule();
    });
    m.start();
    scheduler.callAt(5 * MS, () => fd.set());
    scheduler.run(10 * MS);
    expect(ran).toEqual([{ thread: 'iothread0', at: 5 * MS }]);
    const handlers = m.inst.handlerList().filter((h) => h.name === 'work-bh');
    expect(handlers.map((h) => h.thread)).toEqual(['iothread0']);
  });

  it('dispatches its fd handlers without the BQL and counts their time as its blocked time, not the main loop\'s', () => {
    const { scheduler, platform: p, machine: m, iothread } = iorig();
    const fd = p.createNotifier('disk0.ioeventfd');
    let bql = true;
    iothread.ctx.setFdHandler(fd, 'slow-handler', function* () {
      fd.read();
      bql = m.bql.locked();
      yield* p.cpu(358 * MS);
    });
    m.start();
    scheduler.callAt(MS, () => fd.set());
    scheduler.run(2_000 * MS);
    m.finish();
    expect(bql).toBe(false);
    expect(m.inst.blocked.get('iothread0')!.maxNs).toBe(358 * MS);
    expect(m.inst.mainLoopBlocked.maxNs).toBeLessThan(MS);
  });

  it('grows poll_ns from 4 us while waits are short and drops it to 0 after a wait longer than poll-max-ns (poll-shrink 0)', () => {
    const { scheduler, platform: p, machine: m, iothread } = iorig({ poll_max_ns: 24_000 });
    const ctx = iothread.ctx;
    const fd = p.createNotifier('vq');
    ctx.setFdHandler(fd, 'vq.read', function* () { fd.read(); }, null, { poll: true });
    const seen: number[] = [];
    m.start();
    // Events 20 us apart: each wait is under poll-max-ns, so poll_ns doubles
    // until a poll outlasts the gap (the sweet spot), capped at poll-max-ns.
    for (let i = 1; i <= 8; i++) scheduler.callAt(i * 20 * US, () => fd.set());
    for (let i = 1; i <= 8; i++) scheduler.callAt(i * 20 * US + 1, () => seen.push(ctx.pollNs));
    scheduler.run(200 * US);
    expect(seen).toEqual([POLL_NS_START, 8_000, 16_000, 24_000, 24_000, 24_000, 24_000, 24_000]);
    // From the fifth event on, the busy-poll found it: no blocking wait.
    expect(ctx.pollStats.pollHits).toBe(4);
    // Then a long idle wait: shrink to 0 (QEMU 7.2: poll-shrink 0 means reset).
    scheduler.callAt(10 * MS, () => fd.set());
    scheduler.run(11 * MS);
    expect(ctx.pollNs).toBe(0);
    expect(ctx.pollStats.shrinks).toBeGreaterThan(0);
    const grows = m.trace.records.filter((r) => r.ph === 'i' && r.name === 'poll_grow');
    expect(grows.length).toBe(ctx.pollStats.grows);
  });

  it('divides poll_ns by poll-shrink and multiplies it by poll-grow when they are set', () => {
    const { scheduler, platform: p, machine: m, iothread } = iorig({ poll_max_ns: 64_000, poll_grow: 4, poll_shrink: 2 });
    const ctx = iothread.ctx;
    const fd = p.createNotifier('vq');
    ctx.setFdHandler(fd, 'vq.read', function* () { fd.read(); }, null, { poll: true });
    m.start();
    scheduler.callAt(10 * US, () => fd.set());
    scheduler.callAt(20 * US, () => fd.set());
    scheduler.run(25 * US);
    expect(ctx.pollNs).toBe(4 * POLL_NS_START);
    scheduler.callAt(MS, () => fd.set());
    scheduler.run(2 * MS);
    expect(ctx.pollNs).toBe(2 * POLL_NS_START);
  });

  it('never polls without poll-max-ns or a pollable handler', () => {
    const { scheduler, platform: p, machine: m, iothread } = iorig({ poll_max_ns: 0 });
    const fd = p.createNotifier('vq');
    iothread.ctx.setFdHandler(fd, 'vq.read', function* () { fd.read(); }, null, { poll: true });
    m.start();
    for (let i = 1; i <= 5; i++) scheduler.callAt(i * 10 * US, () => fd.set());
    scheduler.run(MS);
    expect(iothread.ctx.pollStats.polledNs).toBe(0);
    expect(iothread.ctx.pollNs).toBe(0);
  });

  it('has an AioContext lock in 7.2 and none in 9.2; QEMU 1.1 has no IOThreads', () => {
    expect(iorig({}, '7.2').iothread.ctx.lock).not.toBeNull();
    expect(iorig({}, '9.2').iothread.ctx.lock).toBeNull();
    expect(() => iorig({}, '1.1')).toThrow(InvariantError);
  });

  it('skips external handlers while the context is drained and polls them again after', () => {
    const { scheduler, platform: p, machine: m, iothread } = iorig();
    const ctx = iothread.ctx;
    const kick = p.createNotifier('disk0.ioeventfd');
    const at: number[] = [];
    ctx.setFdHandler(kick, 'host-notifier', function* () {
      kick.read();
      at.push(p.nowNs());
    }, null, { external: true });
    m.start();
    scheduler.callAt(MS, () => ctx.disableExternal());
    scheduler.callAt(2 * MS, () => kick.set());
    scheduler.callAt(5 * MS, () => ctx.enableExternal());
    scheduler.run(10 * MS);
    expect(at).toEqual([5 * MS]);
    expect(() => ctx.enableExternal()).toThrow(/without aio_disable_external/);
  });
});

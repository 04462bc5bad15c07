// AioContext: nested aio_poll that blocks its caller and runs only the
// context's own handlers, and bottom halves (schedule, cancel, idle, oneshot).
import { describe, expect, it } from 'vitest';
import { rig, MS } from '../helpers.ts';

describe('AioContext', () => {
  it('nests aio_poll inside a handler: the main loop waits, holding the BQL, and iohandlers do not run', () => {
    const { scheduler, platform: p, machine: m } = rig();
    const ml = m.mainLoop;
    const ctx = ml.aioContext;
    const completion = p.createNotifier('disk0.aio-fd');
    const chardev = p.createNotifier('serial0');
    let inFlight = 1;
    const log: string[] = [];
    ctx.setFdHandler(completion, 'disk0.aio-completion', function* () {
      completion.read();
      inFlight = 0;
      log.push(`completion@${p.nowNs() / MS}`);
    });
    ml.setFdHandler(chardev, 'serial0.read', function* () {
      chardev.read();
      log.push(`serial@${p.nowNs() / MS}`);
    });
    const trigger = p.createNotifier('monitor');
    ml.setFdHandler(trigger, 'monitor.read', function* () {
      trigger.read();
      log.push(`drain-start@${p.nowNs() / MS}`);
      let polls = 0;
      while (inFlight > 0) {
        yield* ctx.poll(true, 'disk0');
        polls++;
      }
      log.push(`drain-end@${p.nowNs() / MS} after ${polls} polls, BQL held: ${m.bql.locked()}`);
    });
    m.start();
    scheduler.callAt(10 * MS, () => trigger.set());
    scheduler.callAt(20 * MS, () => chardev.set());
    scheduler.callAt(40_000 * MS, () => completion.set());
    scheduler.run(50_000 * MS);
    expect(log).toEqual([
      'drain-start@10',
      'completion@40000',
      'drain-end@40000 after 1 polls, BQL held: true',
      'serial@40000',
    ]);
    expect(m.inst.mainLoopBlocked.maxNs).toBe(39_990 * MS);
  });

  it('runs a scheduled bottom half once, not a cancelled one, and a oneshot only once', () => {
    const { scheduler, platform: p, machine: m } = rig();
    const ctx = m.mainLoop.aioContext;
    const ran: string[] = [];
    const bh = ctx.bhNew('tx-bh', function* () { ran.push(`tx@${p.nowNs()}`); });
    const cancelled = ctx.bhNew('cancelled', function* () { ran.push('cancelled'); });
    m.start();
    scheduler.callAt(MS, () => {
      bh.schedule();
      bh.schedule();
      cancelled.schedule();
      cancelled.cancel();
      ctx.bhScheduleOneshot('oneshot', function* () { ran.push('oneshot'); });
    });
    scheduler.run(10 * MS);
    expect(ran).toEqual([`tx@${MS}`, 'oneshot']);
  });

  it('runs an idle bottom half at the next 10 ms poll timeout, not at once', () => {
    const { scheduler, platform: p, machine: m } = rig();
    const ctx = m.mainLoop.aioContext;
    let at = -1;
    const bh = ctx.bhNew('idle', function* () { at = p.nowNs(); });
    const fd = p.createNotifier('fd');
    m.mainLoop.setFdHandler(fd, 'schedules-idle', function* () {
      fd.read();
      bh.scheduleIdle();
    });
    m.start();
    scheduler.callAt(MS, () => fd.set());
    scheduler.run(100 * MS);
    expect(at).toBe(11 * MS);
  });

  it('refuses to schedule a deleted bottom half', () => {
    const { platform: p, machine: m } = rig();
    const bh = m.mainLoop.aioContext.bhNew('gone', function* () {});
    bh.delete();
    void p;
    expect(() => bh.schedule()).toThrow(/after qemu_bh_delete/);
  });
});

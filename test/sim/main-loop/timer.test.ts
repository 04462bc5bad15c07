// QEMU clocks and timers: QEMU_CLOCK_VIRTUAL stops while the VM is stopped,
// REALTIME and HOST do not; the main loop wakes for the nearest deadline.
import { describe, expect, it } from 'vitest';
import { QEMUClockType } from '../../../sim/main-loop/timer.ts';
import { rig, MS } from '../helpers.ts';

describe('QEMU clocks', () => {
  it('stops QEMU_CLOCK_VIRTUAL while the VM is stopped and resumes it where it stopped', () => {
    const { scheduler, platform: p, machine: m } = rig();
    const fired: Record<string, number> = {};
    const tlg = m.mainLoop.tlg;
    const timers = (['realtime', 'virtual', 'host'] as const).map((name, type) =>
      tlg.timerNew(type as QEMUClockType, name, function* () { fired[name] = p.nowNs() / MS; }));
    for (const t of timers) t.mod(100 * MS);
    const stop = m.mainLoop.aioContext.bhNew('stop', function* () {
      yield* m.vmStop('paused');
    });
    const cont = m.mainLoop.aioContext.bhNew('cont', function* () { m.vmStart(); });
    m.start();
    scheduler.callAt(50 * MS, () => stop.schedule());
    scheduler.callAt(1050 * MS, () => cont.schedule());
    scheduler.run(2000 * MS);
    expect(fired).toEqual({ realtime: 100, host: 100, virtual: 1100 });
    expect(m.clocks.get(QEMUClockType.VIRTUAL)).toBe(1000 * MS);
  });

  it('sleeps the main loop until the nearest timer, no busy polling', () => {
    const { scheduler, machine: m } = rig();
    let runs = 0;
    const t = m.mainLoop.tlg.timerNew(QEMUClockType.REALTIME, 'periodic', function* () {
      runs++;
      t.mod(t.list.now() + 10 * MS);
    });
    t.mod(10 * MS);
    m.start();
    scheduler.run(1000 * MS);
    expect(runs).toBe(100);
    expect(m.mainLoop.iterations).toBeLessThanOrEqual(102);
  });
});

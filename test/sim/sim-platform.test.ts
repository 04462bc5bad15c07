// The simulation Platform: exact causality, waits with and without timeouts,
// FIFO mutex hand-off.
import { describe, expect, it } from 'vitest';
import { rig, MS } from './helpers.ts';

describe('SimPlatform', () => {
  it('makes what a thread does after 358 ms of CPU visible 358 ms later, not before', () => {
    const { scheduler, platform: p } = rig();
    const fd = p.createNotifier('fd');
    const seen: number[] = [];
    p.spawn('handler', function* () {
      yield* p.cpu(358 * MS);
      fd.set();
    });
    p.spawn('poller', function* () {
      const ready = yield* p.wait([fd], -1);
      seen.push(p.nowNs(), ready.length);
    });
    scheduler.run();
    expect(seen).toEqual([358 * MS, 1]);
  });

  it('spends a delay at once with tryAdvance when nothing else is due first, as cpu() would, and refuses otherwise', () => {
    const run = (sync: boolean) => {
      const { scheduler, platform: p } = rig();
      const log: string[] = [];
      const t = p.spawn('worker', function* () {
        for (let i = 0; i < 5; i++) {
          if (!(sync && p.tryAdvance(3 * MS, true))) yield* p.cpu(3 * MS);
          log.push(`worker ${p.nowNs() / MS}`);
        }
      });
      scheduler.callAt(7 * MS, () => log.push(`event ${p.nowNs() / MS}`));
      scheduler.run();
      return { log, events: scheduler.events, cpuNs: (t as unknown as { cpuNs: number }).cpuNs };
    };
    const yielded = run(false);
    expect(run(true)).toEqual(yielded);
    expect(yielded.log).toEqual(['worker 3', 'worker 6', 'event 7', 'worker 9', 'worker 12', 'worker 15']);
    expect(yielded.cpuNs).toBe(15 * MS);
    const { scheduler, platform: p } = rig();
    const answers: boolean[] = [];
    p.spawn('worker', function* () {
      answers.push(p.tryAdvance(0, false), p.tryAdvance(5 * MS, false), p.tryAdvance(1 * MS, false));
      yield* p.sleep(0);
    });
    scheduler.callAt(2 * MS, () => {});
    scheduler.run();
    // Zero is a yield; 5 ms would pass the event due at 2 ms; 1 ms does not.
    expect(answers).toEqual([false, false, true]);
  });

  it('times out a wait, and select(NULL) waits for ever', () => {
    const { scheduler, platform: p } = rig();
    const fd = p.createNotifier('fd');
    const log: string[] = [];
    p.spawn('timed', function* () {
      const r = yield* p.wait([fd], 10 * MS);
      log.push(`timed ${r.length} at ${p.nowNs() / MS}`);
    });
    p.spawn('forever', function* () {
      const r = yield* p.wait([fd], -1);
      log.push(`forever ${r.length} at ${p.nowNs() / MS}`);
    });
    scheduler.callAt(50 * MS, () => fd.set());
    scheduler.run();
    expect(log).toEqual(['timed 0 at 10', 'forever 1 at 50']);
  });

  it('returns at once from a zero timeout and from a ready fd', () => {
    const { scheduler, platform: p } = rig();
    const fd = p.createNotifier('fd');
    const out: number[] = [];
    p.spawn('t', function* () {
      out.push((yield* p.wait([fd], 0)).length, p.nowNs());
      fd.set(2);
      out.push((yield* p.wait([fd], -1)).length, p.nowNs(), fd.read(), fd.read());
    });
    scheduler.run();
    expect(out).toEqual([0, 0, 1, 0, 2, 0]);
  });

  it('hands a mutex to waiters in FIFO order at the unlock time', () => {
    const { scheduler, platform: p } = rig();
    const m = p.createMutex('m');
    const order: string[] = [];
    for (const name of ['a', 'b', 'c']) {
      p.spawn(name, function* () {
        yield* p.lock(m);
        order.push(`${name}@${p.nowNs() / MS}`);
        yield* p.cpu(5 * MS);
        p.unlock(m);
      });
    }
    scheduler.run();
    expect(order).toEqual(['a@0', 'b@5', 'c@10']);
  });

  it('refuses to unlock a mutex held by another thread', () => {
    const { scheduler, platform: p } = rig();
    const m = p.createMutex('m');
    p.spawn('owner', function* () {
      yield* p.lock(m);
      yield* p.sleep(MS);
    });
    p.spawn('thief', function* () {
      yield* p.sleep(1);
      p.unlock(m);
    });
    expect(() => scheduler.run()).toThrow(/thief unlocks m held by owner/);
  });
});

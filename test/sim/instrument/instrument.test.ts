// Named-latency instrumentation: a handler run is recorded with its duration
// when its body returns, nested runs keep their stack, and a body that throws
// or is closed from outside is not recorded and leaves the stack as it was.
import { describe, expect, it } from 'vitest';
import type { Co } from '../../../sim/platform.ts';
import { MS, rig } from '../helpers.ts';

describe('Instruments.run', () => {
  it('records a returning handler, keeps a slow one\'s stack, and passes the result through', () => {
    const { scheduler, platform, machine } = rig();
    const inst = machine.inst;
    const results: number[] = [];
    platform.spawn('worker', function* (): Co<void> {
      results.push(yield* inst.run('outer', 'bh', (function* (): Co<number> {
        yield* platform.cpu(MS);
        return yield* inst.run('inner', 'fd read', (function* (): Co<number> {
          yield* platform.cpu(150 * MS);
          return 7;
        })());
      })()));
    });
    scheduler.run();
    expect(results).toEqual([7]);
    const byName = Object.fromEntries(inst.handlerList().map((h) => [h.name, h.hist.maxNs]));
    expect(byName).toEqual({ outer: 151 * MS, inner: 150 * MS });
    expect(inst.slow.map((s) => s.stack)).toEqual([['outer', 'inner'], ['outer']]);
  });

  it('records neither a body that throws nor one closed from outside, and the next run starts at the same depth', () => {
    const { scheduler, platform, machine } = rig();
    const inst = machine.inst;
    const caught: string[] = [];
    platform.spawn('worker', function* (): Co<void> {
      try {
        yield* inst.run('fails', 'bh', (function* (): Co<void> {
          yield* platform.cpu(MS);
          throw new Error('boom');
        })());
      } catch (e) {
        caught.push((e as Error).message);
      }
      const closed = inst.run('closed', 'bh', (function* (): Co<void> {
        yield* platform.cpu(MS);
      })());
      closed.next();
      closed.return(undefined);
      yield* inst.run('after', 'bh', (function* (): Co<void> {
        yield* platform.cpu(200 * MS);
      })());
    });
    scheduler.run();
    expect(caught).toEqual(['boom']);
    expect(inst.handlerList().map((h) => h.name)).toEqual(['after']);
    expect(inst.slow.map((s) => s.stack)).toEqual([['after']]);
  });
});

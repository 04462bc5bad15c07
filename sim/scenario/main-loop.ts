// The `main_loop` section: synthetic handlers that stand for the chardevs,
// monitors and device timers of a real QEMU (an fd handler, an aio fd handler,
// a bottom half or a timer), each with a cost and an activation interval.
import type { Dist } from '../util/dist.ts';
import type { ClockName } from '../main-loop/timer.ts';
import { fixed, items, type Fields, type Raw } from './fields.ts';
import { dist, duration, list, name, obj, oneOfWords, rate, type Schema } from './schema-kit.ts';

/** A handler that stands for real work on the main loop. */
export interface SyntheticHandlerSpec {
  readonly name: string;
  /** fd: an iohandler; aio-fd: a handler in qemu_aio_context; bh; timer. */
  readonly type: 'fd' | 'aio-fd' | 'bh' | 'timer';
  readonly cost: Dist;
  /** Time between activations. */
  readonly interval: Dist;
  readonly clock: ClockName;
  /** First activation (default: one interval after start). */
  readonly start_ns: number | null;
}

export function mainLoopSchema(): Schema {
  const handler = obj({
    name: name('handler name, reported by the threshold reporter'),
    type: oneOfWords(['fd', 'aio-fd', 'bh', 'timer'], 'fd: an iohandler; aio-fd: in qemu_aio_context; bh; timer'),
    cost: dist('CPU time of one run'),
    rate: rate('activations per second (Poisson)'),
    interval: dist('time between activations (instead of rate)'),
    clock: oneOfWords(['realtime', 'virtual', 'host'], 'timer clock (QEMU_CLOCK_*)'),
    start: duration('first activation'),
  }, 'a synthetic main-loop handler', ['name', 'type', 'cost']);
  return obj({ handlers: list(handler, 'synthetic handlers') }, 'synthetic main-loop work');
}

export function checkMainLoop(mainLoop: unknown, durationNs: number, f: Fields): SyntheticHandlerSpec[] {
  return items(mainLoop, 'handlers').map((h: Raw, i) => {
    const path = ['main_loop', 'handlers', i];
    if ((h.rate === undefined) === (h.interval === undefined)) f.fail(path, 'give exactly one of "rate" and "interval"');
    let interval: Dist;
    if (h.rate !== undefined) {
      const r = f.positive([...path, 'rate'], f.rate([...path, 'rate'], h.rate, 0), 'rate');
      interval = { dist: 'exponential', mean_ns: Math.round(1e9 / r) };
    } else {
      interval = f.dist([...path, 'interval'], h.interval, fixed(0));
    }
    const start = h.start === undefined ? null : f.duration([...path, 'start'], h.start, 0);
    if (start !== null && start >= durationNs) f.fail([...path, 'start'], 'starts after the end of the run');
    return {
      name: h.name as string,
      type: h.type as SyntheticHandlerSpec['type'],
      cost: f.dist([...path, 'cost'], h.cost, fixed(0)),
      interval,
      clock: (h.clock as ClockName | undefined) ?? 'realtime',
      start_ns: start,
    };
  });
}

// The `main_loop` section: synthetic handlers that stand for the chardevs,
// monitors and device timers of a real QEMU (an fd handler, an aio fd handler,
// a bottom half or a timer), each with a cost and an activation interval.
import type { Dist } from '../util/dist.ts';
import type { ClockName } from '../main-loop/timer.ts';
import { distMean, fixed, items, type Fields, type Raw } from './fields.ts';
import { COST_LIMIT, INSTANT_LIMIT, limit } from './limits.ts';
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

/** Synthetic handlers a scenario may declare at most. */
export const HANDLERS_MAX = 256;
/** Activations: at most a million per second (one per microsecond), as a rate or as an interval's mean. */
const RATE_LIMIT = limit.rate('0/s', '1e6/s');
const INTERVAL_LIMIT = limit.duration('0s', '1h');
const INTERVAL_MEAN_MIN_NS = 1_000;

export function mainLoopSchema(): Schema {
  const handler = obj({
    name: name('handler name, reported by the threshold reporter; unique'),
    type: oneOfWords(['fd', 'aio-fd', 'bh', 'timer'], 'fd: an iohandler; aio-fd: in qemu_aio_context; bh; timer'),
    cost: dist('CPU time of one run', COST_LIMIT),
    rate: rate('activations per second (Poisson), greater than zero', RATE_LIMIT),
    interval: dist('time between activations (instead of rate); its mean at least 1us', INTERVAL_LIMIT),
    clock: oneOfWords(['realtime', 'virtual', 'host'], 'timer clock (QEMU_CLOCK_*)'),
    start: duration('first activation', INSTANT_LIMIT),
  }, 'a synthetic main-loop handler', ['name', 'type', 'cost']);
  return obj({ handlers: list(handler, 'synthetic handlers', HANDLERS_MAX, 'handlers') }, 'synthetic main-loop work');
}

export function checkMainLoop(mainLoop: unknown, durationNs: number, f: Fields): SyntheticHandlerSpec[] {
  const handlers = items(mainLoop, 'handlers');
  f.distinct(['main_loop', 'handlers'], handlers.map((h) => h.name), 'handler name', 'name');
  return handlers.map((h: Raw, i) => {
    const path = ['main_loop', 'handlers', i];
    if ((h.rate === undefined) === (h.interval === undefined)) f.fail(path, 'give exactly one of "rate" and "interval"');
    let interval: Dist;
    if (h.rate !== undefined) {
      const r = f.positive([...path, 'rate'], f.rate([...path, 'rate'], h.rate, 0, RATE_LIMIT), 'rate');
      interval = { dist: 'exponential', mean_ns: Math.round(1e9 / r) };
    } else {
      interval = f.dist([...path, 'interval'], h.interval, fixed(0), INTERVAL_LIMIT);
      const mean = distMean(interval);
      if (mean === 0) f.fail([...path, 'interval'], 'an interval of 0 activates the handler forever at one instant; give a positive interval');
      if (mean < INTERVAL_MEAN_MIN_NS) f.fail([...path, 'interval'], `a mean interval of ${mean} ns is below the limit of 1us (more than a million activations per second)`);
    }
    const start = h.start === undefined ? null : f.duration([...path, 'start'], h.start, 0, INSTANT_LIMIT);
    if (start !== null && start >= durationNs) f.fail([...path, 'start'], 'starts after the end of the run');
    return {
      name: h.name as string,
      type: h.type as SyntheticHandlerSpec['type'],
      cost: f.dist([...path, 'cost'], h.cost, fixed(0), COST_LIMIT),
      interval,
      clock: (h.clock as ClockName | undefined) ?? 'realtime',
      start_ns: start,
    };
  });
}

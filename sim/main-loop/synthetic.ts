// Synthetic main-loop work from a scenario: fd handlers whose fd becomes
// readable at intervals, bottom halves scheduled at intervals, periodic timers
// on any of the three clocks, each costing CPU drawn from a distribution. They
// stand for the chardevs, monitors and device timers of a real QEMU, and let a
// scenario put a named 358 ms handler on the main loop before any device exists.
import { sample } from '../util/dist.ts';
import type { Machine } from '../machine.ts';
import type { SyntheticHandlerSpec } from '../scenario/scenario.ts';
import { CLOCK_NAMES } from './timer.ts';

export function installSyntheticHandler(m: Machine, spec: SyntheticHandlerSpec): void {
  const p = m.platform;
  const rng = p.random(`handler.${spec.name}`);
  const firstDelay = () => spec.start_ns ?? sample(spec.interval, rng);
  const cost = function* () {
    m.bql.assertHeld(spec.name);
    yield* p.cpu(sample(spec.cost, rng));
  };
  switch (spec.type) {
    case 'fd':
    case 'aio-fd': {
      const fd = p.createNotifier(spec.name);
      const handler = function* () {
        fd.read();
        yield* cost();
      };
      if (spec.type === 'fd') m.mainLoop.setFdHandler(fd, spec.name, handler);
      else m.mainLoop.aioContext.setFdHandler(fd, spec.name, handler);
      const arrive = () => {
        fd.set();
        p.callAfter(sample(spec.interval, rng), arrive);
      };
      p.callAfter(firstDelay(), arrive);
      return;
    }
    case 'bh': {
      const bh = m.mainLoop.aioContext.bhNew(spec.name, cost);
      const arrive = () => {
        bh.schedule();
        p.callAfter(sample(spec.interval, rng), arrive);
      };
      p.callAfter(firstDelay(), arrive);
      return;
    }
    case 'timer': {
      // A periodic timer: each expiry is set from the previous one, not from when the callback ended.
      const type = CLOCK_NAMES.indexOf(spec.clock);
      let due = 0;
      const timer = m.mainLoop.tlg.timerNew(type, spec.name, function* () {
        yield* cost();
        due += sample(spec.interval, rng);
        timer.mod(Math.max(due, timer.list.now()));
      });
      due = timer.list.now() + firstDelay();
      timer.mod(due);
      return;
    }
  }
}

// The simulated-time scheduler: clock and event queue, coroutine threads,
// seeded random streams. Knows nothing of QEMU.
export { EventQueue } from './event-queue.ts';
export { Scheduler, LivenessError } from './scheduler.ts';
export type { EventTarget, LivenessBound, RunOutcome, SchedulerOptions } from './scheduler.ts';
export { Coroutine, PENDING } from './coroutine.ts';
export type { CoroutineHost } from './coroutine.ts';
export { Rng, RandomStreams } from './random.ts';
export { CoMutex, WOKEN, beginWait, waitResult, wakeWaiters } from './sync.ts';
export type { Parkable, SyncThread, Waitable } from './sync.ts';
export { CoThread, ThreadHost, checkDelayNs } from './threads.ts';
export { xstateClock } from './clock.ts';

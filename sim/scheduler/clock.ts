// xstate's Clock over a timer source in nanoseconds: an actor's delayed
// events (given in milliseconds) become one-shot callbacks on that source, so
// on the scheduler they run in simulated time and in (due, seq) order. No host
// timer is involved.

/** The shape of xstate's Clock (createActor(machine, { clock })). */
export interface Clock {
  setTimeout(fn: (...args: unknown[]) => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

export function xstateClock(
  callAfterNs: (ns: number, fn: () => void) => number,
  cancel: (id: number) => void,
): Clock {
  return {
    setTimeout: (fn: (...args: unknown[]) => void, ms: number) => callAfterNs(Math.max(0, Math.round(ms * 1e6)), fn),
    clearTimeout: (id: unknown) => cancel(id as number),
  };
}

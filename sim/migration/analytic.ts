// The analytic pre-copy model, to validate the simulation against. With a
// guest of N pages dirtying uniformly at random at D pages/s and a link that
// moves R pages/s, pass i sends V_i pages in t_i = V_i / R and leaves the
// pages dirtied meanwhile for pass i + 1:
//   geometric form:  V_{i+1} = D t_i            so V_i = V_mem (D/R)^i
//   saturating form: V_{i+1} = N (1 - e^(-D t_i / N))   (distinct pages hit)
// Migration stops iterating once V_i <= R x downtime_limit and sends the last
// V_i pages during the downtime. Leaves out: zero pages, headers beyond a
// fixed per-page size, rate-limit windows, the bandwidth estimate's lag.

export interface PrecopyInputs {
  /** Guest pages N. */
  readonly pages: number;
  /** Dirty rate D, pages per second (uniform over all pages). */
  readonly dirtyRate: number;
  /** Link rate R, pages per second (page plus header on the wire). */
  readonly pageRate: number;
  readonly downtimeLimitNs: number;
  /** Give up after this many passes (non-convergence). */
  readonly maxPasses?: number;
}

export interface PrecopyPrediction {
  /** Pages sent by each pass; the last one is sent during the downtime. */
  readonly volumes: readonly number[];
  readonly converges: boolean;
  /** Passes before the switchover (the iterative rounds). */
  readonly rounds: number;
  readonly totalPages: number;
  readonly downtimeNs: number;
  readonly totalTimeNs: number;
}

function predict(inp: PrecopyInputs, next: (v: number) => number): PrecopyPrediction {
  const threshold = (inp.pageRate * inp.downtimeLimitNs) / 1e9;
  const maxPasses = inp.maxPasses ?? 1000;
  const volumes: number[] = [inp.pages];
  while (volumes[volumes.length - 1]! > threshold && volumes.length < maxPasses) {
    volumes.push(next(volumes[volumes.length - 1]!));
  }
  const last = volumes[volumes.length - 1]!;
  const converges = last <= threshold;
  const totalPages = volumes.reduce((a, b) => a + b, 0);
  return {
    volumes,
    converges,
    rounds: volumes.length - 1,
    totalPages,
    downtimeNs: (last / inp.pageRate) * 1e9,
    totalTimeNs: (totalPages / inp.pageRate) * 1e9,
  };
}

/** V_i = V_mem (D/R)^i: every dirtying hits a new page. */
export function geometricPrecopy(inp: PrecopyInputs): PrecopyPrediction {
  return predict(inp, (v) => (inp.dirtyRate * v) / inp.pageRate);
}

/** Distinct pages dirtied in a pass of t: N (1 - e^(-D t / N)). */
export function saturatingPrecopy(inp: PrecopyInputs): PrecopyPrediction {
  return predict(inp, (v) => inp.pages * (1 - Math.exp(-(inp.dirtyRate * (v / inp.pageRate)) / inp.pages)));
}

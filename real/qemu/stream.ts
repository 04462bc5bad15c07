// The effective throughput of QEMU's own migration stream on this host: one
// unthrottled migration (max-bandwidth 1000 Gbit/s, the scenario limit) of a
// 256 MiB guest whose pages all hold data, over loopback. QEMU's migration
// thread and the destination's loading, not the socket, set the pace: about
// 90 MB/s when the destination touches each page for the first time (under
// this nested KVM), 300-1600 MB/s with its RAM preallocated, against
// 300-1500 MB/s of Node-to-Node loopback TCP. So this, not measureLoopback, is
// the link a simulation must be given to be compared with QEMU; pass the run
// options the compared runs use. The figure is the slope of ram.transferred
// over the `active` polls (set-up and switchover left out), or the whole
// migration's mean when it is over too soon for two polls.
// Leaves out: zero pages (their cost is the page scan, not the stream).
import { checkScenario, type Scenario } from '../../sim/scenario/scenario.ts';
import { runOnQemu, type QemuRunOptions } from './run.ts';

export interface StreamMeasure {
  /** Bytes per second of ram.transferred while active. */
  readonly bandwidth: number;
  /** The same in Mbit/s, as query-migrate's mbps. */
  readonly mbps: number;
  /** QEMU's own mbps at its last poll. */
  readonly qemu_mbps: number;
  readonly memory_bytes: number;
  readonly transferred: number;
  readonly total_time_ms: number;
  readonly status: string;
  readonly wall_ms: number;
}

const MIB = 2 ** 20;

/** The scenario of the measurement: a populated guest dirtying a little, migrated without a rate limit. */
export function streamScenario(memoryBytes = 256 * MIB): Scenario {
  return checkScenario({
    name: 'qemu-stream-throughput',
    seed: 1,
    duration: '30s',
    vm: { memory: `${Math.round(memoryBytes / MIB)}MiB`, vcpus: 1, populated: '100%' },
    guest: { workloads: [{ vcpus: 'all', dirty: { rate: '500/s', pattern: 'uniform', start: '2MiB' } }] },
    migration: { start: '300ms', max_bandwidth: '1000Gbit/s', downtime_limit: '300ms' },
  }, 'qemu-stream-throughput', (path, detail) => {
    throw new Error(`stream scenario: ${path.join('.')}: ${detail}`);
  });
}

/** Measures QEMU's stream with the run options the compared runs use (binary, destination preallocation). */
export async function measureQemuStream(opts: QemuRunOptions = {}): Promise<StreamMeasure> {
  const r = await runOnQemu(streamScenario(opts.memoryBytes), { ...opts, memoryBytes: undefined, durationNs: undefined, verify: false, afterMs: 200 });
  const m = r.migration;
  if (r.outcome === 'error' || !m) throw new Error(`measuring QEMU's migration stream: ${r.error ?? 'no migration'}`);
  const active = m.snapshots.filter((q) => q.status === 'active' && q.ram.transferred > 0);
  const a = active[0];
  const b = active[active.length - 1];
  let bw: number;
  if (a && b && b.t_ns - a.t_ns >= 300_000_000) {
    bw = ((b.ram.transferred - a.ram.transferred) * 1e9) / (b.t_ns - a.t_ns);
  } else if (m['total-time'] > 0) {
    // Too short to have two polls apart: the whole migration's mean.
    bw = (m.ram.transferred * 1000) / m['total-time'];
  } else {
    throw new Error('measuring QEMU\'s migration stream: the migration reported no time');
  }
  return {
    bandwidth: Math.round(bw),
    mbps: Math.round((bw * 8) / 1e4) / 100,
    qemu_mbps: m.ram.mbps,
    memory_bytes: r.qemu.memory_bytes,
    transferred: m.ram.transferred,
    total_time_ms: m['total-time'],
    status: m.status,
    wall_ms: r.wall_ms,
  };
}

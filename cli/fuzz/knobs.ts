// The knobs of one fuzz seed: a flat record of integers, drawn from a seeded
// stream (seedrandom's Alea, keyed by the fuzz seed), so a seed always means
// the same scenario. Swarm testing as in FoundationDB and TigerBeetle: each
// seed also switches whole features on or off (the disk, the network device,
// vCPU exits, a noisy main-loop handler, the fault, multifd, xbzrle), so a campaign covers
// sparse combinations, not only the everything-on average. Every knob's
// lowest value is its simplest (feature off, smallest memory, first policy),
// which is the direction fast-check shrinks integers in.
// Leaves out: what the knobs mean in a scenario (cli/fuzz/scenario.ts).
import { Rng } from '../../sim/scheduler/random.ts';

/**
 * Bumped whenever a knob's range or the order of the knobs changes: the same
 * seed then draws other values. Knobs appended at the end (postcopy, the
 * link-break) leave the earlier knobs' draws as they were; a seed's scenario
 * gains the new features.
 */
export const KNOBS_VERSION = 3;

/** Name, lowest (simplest) and highest value of each knob, in draw order. */
export const KNOB_TABLE = [
  ['duration_s', 10, 40],
  ['memory', 0, 3], // 64, 128, 256, 512 MiB
  ['vcpus', 1, 2],
  ['dirty_on', 0, 1],
  ['dirty_rate', 100, 20_000], // pages/s per vCPU
  ['dirty_pattern', 0, 3], // uniform, hotset, sequential, increment
  ['hot_set_pct', 1, 50],
  ['exits_on', 0, 1],
  ['exit_rate', 10, 1000],
  ['exit_cost_us', 1, 200],
  ['net_on', 0, 1],
  ['net_cost_us', 5, 500],
  ['blk_on', 0, 1],
  ['blk_flush_ms', 0, 50],
  ['blk_write_us', 50, 2000],
  ['blk_io_rate', 0, 200],
  ['blk_on_error', 0, 1], // report, stop
  ['blk_retry_ms', 0, 1000],
  ['handler_on', 0, 1],
  ['handler_cost_us', 10, 50_000],
  ['handler_rate', 1, 100],
  ['fault', 0, 4], // none, stall, slow-flush, io-error, handler-cost
  ['fault_at_ms', 0, 20_000], // after the migration starts
  ['fault_for_ms', 100, 30_000],
  ['fault_latency_ms', 10, 50_000],
  ['migration_start_ms', 100, 3000],
  ['mode', 0, 1], // thread, main-loop
  ['policy', 0, 5], // legacy, flush-timeout, flush-timeout+min-interval, abort-on-downtime, auto-converge, dirty-limit
  ['max_bandwidth', 0, 3], // 128, 32, 64, 256 MiB/s
  ['link_bandwidth', 0, 2], // 10, 1, 0.4 Gbit/s
  ['downtime_limit_ms', 30, 1000],
  ['max_iterations', 0, 50],
  ['flush_timeout_ms', 100, 5000],
  ['min_interval_ms', 0, 10_000],
  ['abort_extra_ms', 500, 5000], // abort-on-downtime: downtime limit + this
  ['throttle_initial', 5, 50],
  ['throttle_increment', 5, 30],
  ['multifd_on', 0, 1], // thread mode only
  ['multifd_channels', 1, 8],
  ['zero_page_detection', 0, 2], // multifd (9.2's default), legacy, none
  ['xbzrle_on', 0, 1],
  ['xbzrle_cache', 0, 3], // 64MiB (QEMU's default), 16MiB, 1MiB, 64KiB
  ['postcopy_on', 0, 1],
  ['postcopy_start', 0, 3], // migrate-start-postcopy after 0-2 passes, or at a time
  ['postcopy_at_ms', 0, 10_000], // postcopy_start 3: this long after the migration starts
  ['postcopy_preempt', 0, 1],
  ['break_on', 0, 1], // a link-break, safety phase only
  ['break_at_ms', 0, 20_000], // after the migration starts
  ['break_for_ms', 1, 5000],
  ['recover_after_ms', 0, 3000],
  ['ring_on', 0, 1], // the KVM dirty ring (dirty-limit turns it on whatever this says)
  ['ring_size', 0, 3], // 1024, 2048, 4096, 16384 entries per vCPU
  ['manual_on', 0, 1], // manual dirty-log protection (without the ring)
  ['clear_bitmap_shift', 6, 18],
  ['vcpu_dirty_limit', 1, 200], // MB/s
  ['dirty_limit_period_ms', 50, 1000],
] as const satisfies readonly (readonly [string, number, number])[];

export type KnobName = (typeof KNOB_TABLE)[number][0];
export type Knobs = Record<KnobName, number>;

/** On/off knobs: a feature is on with probability 1/2 (the swarm). */
const SWITCHES: ReadonlySet<KnobName> = new Set(['dirty_on', 'exits_on', 'net_on', 'blk_on', 'handler_on', 'multifd_on', 'xbzrle_on', 'postcopy_on', 'break_on', 'ring_on', 'manual_on']);

/** The knobs of a seed. */
export function knobsOf(seed: number): Knobs {
  const rng = new Rng(`latsim-fuzz:v${KNOBS_VERSION}:${seed}`);
  const k = {} as Knobs;
  for (const [name, lo, hi] of KNOB_TABLE) {
    if (SWITCHES.has(name)) {
      k[name] = rng.next() < 0.5 ? 1 : 0;
    } else if (hi - lo >= 1000) {
      // Wide ranges: log-uniform, so small values are as likely as large ones.
      const v = Math.exp(rng.uniform(Math.log(lo + 1), Math.log(hi + 1))) - 1;
      k[name] = Math.min(hi, Math.max(lo, Math.round(v)));
    } else {
      k[name] = lo + rng.int(hi - lo + 1);
    }
  }
  return k;
}

/** Every knob as name=value, for scenario headers. */
export function knobsText(k: Knobs): string {
  return KNOB_TABLE.map(([name]) => `${name}=${k[name]}`).join(' ');
}

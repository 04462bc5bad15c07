// `latsim qemu calibrate`: this host's costs, measured on the user's own QEMU
// under KVM, as the `qemu.host` section of a scenario (and the firmware's
// share of guest memory as `vm.firmware`). Four QEMU runs and one socket:
//
//   idle       an all-zero guest migrated without a rate limit into a
//              preallocated destination: the migration thread's CPU time
//              per zero page is the zero-page scan (buffer_is_zero over the
//              source's untouched memory, the kernel's shared zero page);
//              the destination main thread's, less its normal pages' loads,
//              is its check of a zero page it holds (ram_handle_compressed's
//              buffer_is_zero over RAM); QEMU's downtime is the floor; its
//              normal pages are what the firmware left.
//   stream     a populated guest into a preallocated destination: the
//              migration thread's CPU per normal page is the page send; the
//              destination's main thread (the incoming coroutine) CPU per
//              page is its load of a page it has; the bitmap sync's time per
//              GiB comes from the trace (migration_bitmap_sync_start/_end).
//   fresh      the same into a destination that never touched its RAM: the
//              first touch (a fault and a zeroed page) sets the pass's pace,
//              so its time per page (the thread's CPU, or the pass's wall
//              time when the faults cost more than that shows) is the cost.
//   guest      the payload asked to dirty faster than it can: what it reaches
//              is the guest's fastest rate.
//   loopback   Node-to-Node TCP over 127.0.0.1: the link.
//   cores      the host's CPUs (os.availableParallelism): the source's vCPUs,
//              its migration thread and the destination share them.
//   setup      in every migrating run, the status `setup` to `active` (QMP's
//              MIGRATION events) less the first bitmap sync (QEMU's trace):
//              connecting, the migration thread's start, the dirty-log
//              start, the stream's header. The median of all runs: it is
//              mostly waiting, not CPU another process adds to, and varies
//              from run to run (0.3-10 ms here).
//
// CPU time is each thread's own (/proc/PID/task/TID/schedstat, sampled every
// 10 ms while the run goes on), so the costs are what QEMU spent, not what
// the run's wall clock shows. The result prints as a table and, with
// --write, as a scenario fragment that scenarios include (`include:`); the
// fidelity suite includes scenarios/fidelity/host.yaml.
// Leaves out: more than one vCPU, huge pages, compression, xbzrle's encoding,
// multifd's cores, the dirty ring's reap and manual protection's split of the
// sync (qemu.host.xbzrle_encode, migration_cores, dirty_ring_reap, dirty_log_*).
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, hostname } from 'node:os';
import { checkScenario, type Scenario } from '../../sim/scenario/scenario.ts';
import { formatBytes } from '../../sim/instrument/format.ts';
import type { HostCosts } from '../../sim/scenario/qemu.ts';
import { measureLoopback } from './loopback.ts';
import { runOnQemu, type QemuRunOptions } from './run.ts';
import { median } from './summary.ts';
import type { QemuRunResult } from './result.ts';

/** One thread's CPU time, as the kernel counts it. */
interface ThreadCpu {
  readonly pid: number;
  readonly tid: number;
  /** Its name: read again while it is still the process's, which a new thread bears until it names itself. */
  comm: string;
  /** The process runs as a migration destination (-incoming). */
  readonly destination: boolean;
  cpuNs: number;
  /** cpuNs at the mark (0 for a thread that appeared after it). */
  markNs: number;
}

/** Reads a /proc file, or null when the process or thread is gone. */
function procRead(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/**
 * Samples the CPU time of every thread of the QEMU processes this process
 * started, keeping each thread's last value (a thread that exits keeps what
 * it had at its last sample: at most one period less; the period is short
 * enough to see a 128 MiB idle guest's migration thread, which lives for
 * tens of milliseconds).
 */
export class QemuCpuSampler {
  private readonly threads = new Map<number, ThreadCpu>();
  private timer: NodeJS.Timeout | null = null;

  /** Samples the children of this process whose name starts with `processName`. */
  constructor(private readonly processName = 'qemu-system') {}

  start(periodMs = 2): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), periodMs);
  }

  /** Stops sampling: what cpuNs reports is fixed from here on (the migration is over). */
  stop(): void {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = null;
    this.sample();
  }

  /** Takes the threads' CPU now as the zero of cpuNs (the migration's start: boot and preallocation are not its cost). */
  mark(): void {
    this.sample();
    for (const t of this.threads.values()) t.markNs = t.cpuNs;
  }

  /** CPU of the threads matching since the mark, ns. */
  cpuNs(match: (t: ThreadCpu) => boolean): number {
    let sum = 0;
    for (const t of this.threads.values()) if (match(t)) sum += t.cpuNs - t.markNs;
    return sum;
  }

  private sample(): void {
    for (const entry of readdirSync('/proc')) {
      const pid = Number(entry);
      if (!Number.isInteger(pid)) continue;
      const stat = procRead(`/proc/${pid}/stat`);
      // pid (comm) state ppid ...: comm may hold spaces, so read after its last ')'.
      if (!stat) continue;
      const processComm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (!processComm.startsWith(this.processName)) continue;
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== process.pid) continue;
      const destination = (procRead(`/proc/${pid}/cmdline`) ?? '').split('\0').includes('-incoming');
      let tids: string[];
      try {
        tids = readdirSync(`/proc/${pid}/task`);
      } catch {
        continue;
      }
      for (const t of tids) {
        const tid = Number(t);
        const sched = procRead(`/proc/${pid}/task/${tid}/schedstat`);
        if (!sched) continue;
        const cpuNs = Number(sched.split(' ')[0]);
        const known = this.threads.get(tid);
        if (known && known.pid === pid) {
          known.cpuNs = Math.max(known.cpuNs, cpuNs);
          // A thread seen between its creation and its pthread_setname_np
          // still bears the process's name: read it again until it has its
          // own (the main thread keeps the process's name, so not it).
          if (tid !== pid && known.comm === processComm) known.comm = (procRead(`/proc/${pid}/task/${tid}/comm`) ?? known.comm).trim();
        } else {
          const comm = (procRead(`/proc/${pid}/task/${tid}/comm`) ?? '').trim();
          this.threads.set(tid, { pid, tid, comm, destination, cpuNs, markNs: 0 });
        }
      }
    }
  }
}

/** The migration thread of QEMU 7.2 (qemu_thread_create(..., "live_migration", ...)). */
const MIGRATION_THREAD = 'live_migration';

export interface CalibrationRun {
  readonly what: string;
  readonly memory_bytes: number;
  readonly status: string;
  readonly total_time_ms: number;
  readonly downtime_ms: number;
  readonly normal: number;
  readonly duplicate: number;
  /** CPU of the source's migration thread (its bitmap syncs are a fraction of a millisecond per GiB). */
  readonly migration_thread_cpu_ns: number;
  /** CPU of the destination's main thread (the incoming coroutine). */
  readonly destination_cpu_ns: number;
  /** The set-up phase (status setup to active) less its bitmap sync; -1 when either status was not seen. */
  readonly setup_ns: number;
  readonly wall_ms: number;
}

export interface Calibration {
  readonly host: string;
  readonly qemu: { readonly version: string; readonly package: string; readonly binary: string };
  /** The qemu.host section, in ns, pages/s and bytes/s. */
  readonly costs: Costs;
  /** vm.firmware: what the firmware left holding data in an idle guest. */
  readonly firmware_bytes: number;
  readonly runs: readonly CalibrationRun[];
}

export interface CalibrateOptions {
  readonly qemu?: string;
  /** The guests' memory (default 512 MiB: a pass long enough to measure, short enough to be quick). */
  readonly memoryBytes?: number;
  /** Rounds of measurement (default 3): each cost is the least seen, each rate the greatest. */
  readonly repeat?: number;
  readonly log?: (line: string) => void;
}

const MIB = 2 ** 20;
const GIB = 2 ** 30;

/** A calibration guest: its memory, data and dirtying; migrated without a rate limit unless migrate is false. */
export function calibrationScenario(what: string, memoryBytes: number, populated: string, rate: string, migrate = true): Scenario {
  const workload = { vcpus: 'all', dirty: { rate, pattern: 'uniform', start: '2MiB' } };
  return checkScenario({
    name: `qemu-calibrate-${what}`,
    seed: 1,
    duration: migrate ? '60s' : '3s',
    qemu: { version: '7.2' },
    vm: { memory: `${Math.round(memoryBytes / MIB)}MiB`, vcpus: 1, populated },
    guest: { workloads: [workload] },
    ...(migrate ? { migration: { start: '300ms', max_bandwidth: '1000Gbit/s', downtime_limit: '300ms' } } : {}),
  }, `qemu-calibrate-${what}`, (path, detail) => {
    throw new Error(`calibration scenario ${what}: ${path.join('.')}: ${detail}`);
  });
}

/** Runs one calibration guest on QEMU with the threads' CPU sampled. */
async function measuredRun(what: string, s: Scenario, opts: QemuRunOptions): Promise<{ run: CalibrationRun; result: QemuRunResult }> {
  const sampler = new QemuCpuSampler();
  sampler.start();
  let result: QemuRunResult;
  try {
    // debug-threads=on: QEMU names its threads (the migration thread is live_migration) only when asked.
    const named = ['-name', `latsim-${what},debug-threads=on`];
    result = await runOnQemu(s, {
      ...opts, verify: false, afterMs: 200, onMigrate: () => sampler.mark(), onMigrationEnd: () => sampler.stop(),
      extraArgs: { source: named, destination: named },
    });
  } finally {
    sampler.stop();
  }
  if (result.outcome === 'error') throw new Error(`calibration run ${what}: ${result.error ?? 'failed'}`);
  const m = result.migration;
  if (s.migration && m?.status !== 'completed') throw new Error(`calibration run ${what}: the migration ended ${m?.status ?? 'without starting'}`);
  const run: CalibrationRun = {
    what,
    memory_bytes: result.qemu.memory_bytes,
    status: m?.status ?? 'none',
    total_time_ms: m?.['total-time'] ?? 0,
    downtime_ms: m?.downtime ?? 0,
    normal: m?.ram.normal ?? 0,
    duplicate: m?.ram.duplicate ?? 0,
    migration_thread_cpu_ns: sampler.cpuNs((t) => !t.destination && t.comm === MIGRATION_THREAD),
    // The incoming migration runs as a coroutine of the destination's main loop, in its main thread.
    destination_cpu_ns: sampler.cpuNs((t) => t.destination && t.tid === t.pid),
    setup_ns: setupPhase(result),
    wall_ms: result.wall_ms,
  };
  return { run, result };
}

/** The set-up phase less its bitmap sync: from the status setup to active (QMP's MIGRATION events), -1 when either is missing. */
function setupPhase(r: QemuRunResult): number {
  const m = r.migration;
  const setup = m?.transitions.find((t) => t.to === 'setup');
  const active = m?.transitions.find((t) => t.to === 'active');
  if (!setup || !active) return -1;
  return Math.max(0, active.t_ns - setup.t_ns - (m!.iterations[0]?.duration_ns ?? 0));
}

/** The median of the sync durations per GiB of guest memory, ns (0 when none was traced). */
function syncPerGib(r: QemuRunResult): number {
  const d = (r.migration?.iterations ?? []).filter((x) => !x.in_completion && x.duration_ns > 0).map((x) => x.duration_ns).sort((a, b) => a - b);
  if (d.length === 0) return 0;
  return Math.round((d[Math.floor(d.length / 2)]! * GIB) / r.qemu.memory_bytes);
}

/** The costs calibrate measures (the others, e.g. xbzrle's encoding and the dirty ring's reap, it leaves to the scenario). */
type Costs = Pick<HostCosts, 'zero_page_scan_ns' | 'page_send_ns' | 'dirty_sync_ns_per_gib' | 'dest_first_touch_ns' | 'dest_page_ns'
  | 'dest_zero_page_ns' | 'downtime_floor_ns' | 'migration_setup_ns' | 'guest_dirty_rate_max' | 'loopback' | 'cores'>;

/** What one round measures: every cost but the set-up, which is the median over all rounds' runs. */
type RoundCosts = Omit<Costs, 'migration_setup_ns'>;

/** Runs measured again when the sampler never saw their migration thread. */
const UNSEEN_RETRIES = 3;

/**
 * measuredRun, again while the sampler never saw the migration thread of a
 * run that moved pages. An idle guest's thread lives for tens of
 * milliseconds, and a busy host can keep the sampler from ever seeing it: a
 * thread never seen is no measurement, not a cost of zero.
 */
async function seenRun(what: string, s: Scenario, opts: QemuRunOptions, log: (line: string) => void, round: string): Promise<Awaited<ReturnType<typeof measuredRun>>> {
  let m = await measuredRun(what, s, opts);
  for (let again = 0; again < UNSEEN_RETRIES && m.run.normal + m.run.duplicate > 0 && m.run.migration_thread_cpu_ns === 0; again++) {
    log(`qemu calibrate${round}: the migration thread was not sampled; the ${what} guest again`);
    m = await measuredRun(what, s, opts);
  }
  return m;
}

/** One round of the four runs and the socket. */
async function calibrateOnce(mem: number, base: QemuRunOptions, log: (line: string) => void, round: string): Promise<{ costs: RoundCosts; firmware: number; runs: CalibrationRun[]; first: QemuRunResult }> {
  const runs: CalibrationRun[] = [];
  log(`qemu calibrate${round}: idle guest (zero-page scan, downtime floor, firmware)`);
  const idle = await seenRun('idle', calibrationScenario('idle', mem, '0%', '1/s'), { ...base, preallocDestination: true }, log, round);
  runs.push(idle.run);
  const zeroScan = idle.run.duplicate > 0 ? idle.run.migration_thread_cpu_ns / idle.run.duplicate : 0;
  // The destination's CPU per zero page, its few normal pages not yet taken out (they are, below).
  const destZeroAll = idle.run.duplicate > 0 ? idle.run.destination_cpu_ns / idle.run.duplicate : 0;

  log(`qemu calibrate${round}: populated guest into a preallocated destination (page send, destination load, dirty sync)`);
  const stream = await seenRun('stream', calibrationScenario('stream', mem, '100%', '500/s'), { ...base, preallocDestination: true }, log, round);
  runs.push(stream.run);
  const s = stream.run;
  // The normal pages' CPU: the thread's, less the zero pages' scans at the rate the idle run measured.
  const pageSend = s.normal > 0 ? Math.max(0, s.migration_thread_cpu_ns - s.duplicate * zeroScan) / s.normal : 0;
  const destPage = s.normal > 0 ? Math.max(0, s.destination_cpu_ns - s.duplicate * destZeroAll) / s.normal : 0;
  const i = idle.run;
  const destZero = i.duplicate > 0 ? Math.max(0, i.destination_cpu_ns - i.normal * destPage) / i.duplicate : 0;

  log(`qemu calibrate${round}: populated guest into a destination that touches its memory for the first time`);
  const fresh = await seenRun('fresh', calibrationScenario('fresh', mem, '100%', '500/s'), { ...base, preallocDestination: false }, log, round);
  runs.push(fresh.run);
  const f = fresh.run;
  // The pass into untouched memory is the destination's pace: its CPU per page,
  // or the pass's wall time per page when the faults cost more than the thread's own CPU shows.
  const firstTouchCpu = f.normal > 0 ? Math.max(0, f.destination_cpu_ns - f.duplicate * zeroScan) / f.normal : 0;
  const passNs = Math.max(0, f.total_time_ms - f.downtime_ms - (fresh.result.migration?.['setup-time'] ?? 0)) * 1e6;
  const firstTouch = Math.max(firstTouchCpu, f.normal > 0 ? passNs / (f.normal + f.duplicate) : 0);

  log(`qemu calibrate${round}: the guest dirtying as fast as it can`);
  const guest = await measuredRun('guest', calibrationScenario('guest', 64 * MIB, '0%', '100000000/s', false), base);
  runs.push(guest.run);

  log(`qemu calibrate${round}: loopback TCP`);
  const lo = await measureLoopback(256 * MIB);
  return {
    costs: {
      zero_page_scan_ns: Math.round(zeroScan),
      page_send_ns: Math.round(pageSend),
      dirty_sync_ns_per_gib: syncPerGib(stream.result),
      dest_first_touch_ns: Math.round(Math.max(firstTouch, destPage)),
      dest_page_ns: Math.round(destPage),
      dest_zero_page_ns: Math.round(destZero),
      downtime_floor_ns: idle.run.downtime_ms * 1_000_000,
      guest_dirty_rate_max: Math.round(guest.result.guest.achieved_rate),
      loopback: Math.round(lo.bandwidth),
      cores: availableParallelism(),
    },
    // The idle guest's normal pages hold what SeaBIOS, the option ROMs and the payload left.
    firmware: idle.run.normal * 4096,
    runs,
    first: idle.result,
  };
}

/**
 * Measures this host's costs on QEMU: `repeat` rounds (about 30 s each),
 * keeping each cost's least and each rate's greatest, since what another
 * process on the host does can only add to a cost.
 */
export async function calibrate(opts: CalibrateOptions = {}): Promise<Calibration> {
  const log = opts.log ?? (() => {});
  const mem = opts.memoryBytes ?? 512 * MIB;
  const repeat = opts.repeat ?? 3;
  const base: QemuRunOptions = { ...(opts.qemu ? { qemu: opts.qemu } : {}) };
  const rounds: Awaited<ReturnType<typeof calibrateOnce>>[] = [];
  for (let i = 0; i < repeat; i++) rounds.push(await calibrateOnce(mem, base, log, repeat > 1 ? ` ${i + 1}/${repeat}` : ''));
  const least = (k: keyof RoundCosts) => Math.min(...rounds.map((r) => r.costs[k]));
  const most = (k: keyof RoundCosts) => Math.max(...rounds.map((r) => r.costs[k]));
  const setups = rounds.flatMap((r) => r.runs).filter((r) => r.setup_ns >= 0).map((r) => r.setup_ns);
  const first = rounds[0]!.first;
  return {
    host: hostname(),
    qemu: { version: first.qemu.version, package: first.qemu.package, binary: first.qemu.binary },
    costs: {
      zero_page_scan_ns: least('zero_page_scan_ns'),
      page_send_ns: least('page_send_ns'),
      dirty_sync_ns_per_gib: least('dirty_sync_ns_per_gib'),
      dest_first_touch_ns: least('dest_first_touch_ns'),
      dest_page_ns: least('dest_page_ns'),
      dest_zero_page_ns: least('dest_zero_page_ns'),
      downtime_floor_ns: least('downtime_floor_ns'),
      migration_setup_ns: setups.length > 0 ? Math.round(median(setups)) : 0,
      guest_dirty_rate_max: most('guest_dirty_rate_max'),
      loopback: most('loopback'),
      cores: least('cores'),
    },
    firmware_bytes: Math.min(...rounds.map((r) => r.firmware)),
    runs: rounds.flatMap((r) => r.runs),
  };
}

/** A duration as a scenario writes it: whole ns below 10 us, then us to 0.1 us. */
function durationText(ns: number): string {
  // In microseconds from 10 us up, to 0.1 us: a slow host's set-up of 17.4 ms
  // written as 17.4ms would lose up to 50 us.
  if (ns >= 10_000) return `${Math.round(ns / 100) / 10}us`;
  return `${Math.round(ns)}ns`;
}

/** The calibration as a scenario fragment: comments saying where and when, then qemu.host and vm.firmware. */
export function calibrationFragment(c: Calibration, when: string, schemaPath = '../latsim.schema.json'): string {
  const k = c.costs;
  const mbs = (b: number) => `${Math.round(b / 1e5) / 10}MB/s`;
  return [
    `# yaml-language-server: $schema=${schemaPath}`,
    '#',
    `# This host's costs, measured by \`latsim qemu calibrate\` on ${when} on`,
    `# ${c.host} with QEMU ${c.qemu.version}${c.qemu.package ? ` (${c.qemu.package})` : ''} under KVM. A scenario takes them`,
    '# with `include:` (the fidelity suite includes this file); a value the',
    '# scenario gives itself wins. Measured again with',
    '#   latsim qemu calibrate --write <this file>',
    'qemu:',
    '  host:',
    `    zero_page_scan: ${durationText(k.zero_page_scan_ns)}        # migration thread CPU per zero page (idle guest)`,
    `    page_send: ${durationText(k.page_send_ns)}             # migration thread CPU per normal page`,
    `    dirty_sync_per_gib: ${durationText(k.dirty_sync_ns_per_gib)}   # migration_bitmap_sync per GiB of guest memory`,
    `    dest_first_touch: ${durationText(k.dest_first_touch_ns)}      # destination time per page into untouched memory`,
    `    dest_page: ${durationText(k.dest_page_ns)}             # destination CPU per page into preallocated memory`,
    `    dest_zero_page: ${durationText(k.dest_zero_page_ns)}         # destination CPU per zero page, preallocated memory`,
    `    downtime_floor: ${durationText(k.downtime_floor_ns)}        # QEMU's downtime with next to nothing to send`,
    `    migration_setup: ${durationText(k.migration_setup_ns)}       # set-up less its sync (median of the runs)`,
    `    guest_dirty_rate_max: ${k.guest_dirty_rate_max}/s  # the payload's fastest page writes per second`,
    `    loopback: ${mbs(k.loopback)}           # Node-to-Node TCP over 127.0.0.1`,
    `    cores: ${k.cores}                     # the host's CPUs, which the vCPUs, the migration thread and the destination share`,
    'vm:',
    `  firmware: ${Math.round(c.firmware_bytes / 1024)}KiB          # normal pages of an idle guest (SeaBIOS, option ROMs, the payload)`,
    '',
  ].join('\n');
}

/** The calibration as a table. */
export function calibrationText(c: Calibration): string {
  const k = c.costs;
  const rows: [string, string, string][] = [
    ['zero_page_scan', durationText(k.zero_page_scan_ns), 'migration thread CPU per zero page'],
    ['page_send', durationText(k.page_send_ns), 'migration thread CPU per normal page'],
    ['dirty_sync_per_gib', durationText(k.dirty_sync_ns_per_gib), 'bitmap sync per GiB (trace)'],
    ['dest_first_touch', durationText(k.dest_first_touch_ns), 'destination time per page, untouched memory'],
    ['dest_page', durationText(k.dest_page_ns), 'destination CPU per page, preallocated'],
    ['dest_zero_page', durationText(k.dest_zero_page_ns), 'destination CPU per zero page, preallocated'],
    ['downtime_floor', durationText(k.downtime_floor_ns), 'downtime of an idle guest'],
    ['migration_setup', durationText(k.migration_setup_ns), 'set-up phase less its sync (median)'],
    ['guest_dirty_rate_max', `${k.guest_dirty_rate_max}/s`, 'fastest page writes of the payload'],
    ['loopback', `${Math.round(k.loopback / 1e5) / 10} MB/s`, 'TCP over 127.0.0.1'],
    ['cores', String(k.cores), 'the host\'s CPUs'],
    ['vm.firmware', formatBytes(c.firmware_bytes), 'normal pages of an idle guest'],
  ];
  const out = [`calibration of ${c.host}, QEMU ${c.qemu.version} (${c.qemu.binary})`, ''];
  for (const [k2, v, what] of rows) out.push(`  ${k2.padEnd(22)} ${v.padStart(12)}   ${what}`);
  out.push('', '  run      status      total   downtime    normal  duplicate  mig-thread CPU  dest CPU     wall');
  for (const r of c.runs) {
    out.push(`  ${r.what.padEnd(8)} ${r.status.padEnd(10)} ${`${r.total_time_ms} ms`.padStart(7)} ${`${r.downtime_ms} ms`.padStart(9)} ` +
      `${String(r.normal).padStart(9)} ${String(r.duplicate).padStart(10)} ${`${Math.round(r.migration_thread_cpu_ns / 1e6)} ms`.padStart(15)} ` +
      `${`${Math.round(r.destination_cpu_ns / 1e6)} ms`.padStart(9)} ${`${r.wall_ms} ms`.padStart(8)}`);
  }
  return out.join('\n');
}

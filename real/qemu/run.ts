// runOnQemu: one scenario on real QEMU with KVM. It starts the project's NBD
// server for the scenario's disk (with its fault schedule), a source QEMU
// booting real/qemu/guest with the scenario's workload, and a destination
// QEMU (-incoming defer, -S); applies the scenario's migration parameters
// and capabilities over QMP, starts `migrate` at migration.start, polls
// query-migrate every 100 ms (timing each answer: a poll sent while the
// migration thread holds the BQL in migration_completion is answered when
// it lets go), and after switchover compares both sides' memory (pmemsave
// while both are stopped), resumes the destination with `cont` and watches
// its heartbeat. The source's trace log gives the iteration table and the
// switchover's steps. Everything has a timeout; both QEMUs are reaped on
// every path (process.ts also kills them on exit and signals).
//
// Time zero is the host time the guest's "R" line (workload started) arrived;
// fault windows and migration.start count from it, as they count from the
// start of the simulated run.
// Leaves out: policies QEMU 7.2 does not have (flush-timeout, min-interval,
// abort-on-downtime: reported as unsupported, the run is legacy), the 2012
// main-loop mode, max_iterations, net devices, more than one vCPU or disk,
// postcopy recovery, migration over anything but loopback TCP. multifd,
// xbzrle, postcopy and the dirty ring are QEMU's capabilities and parameters
// (features.ts), their figures from the traces and query-migrate.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

import type { Scenario } from '../../sim/scenario/scenario.ts';
import { adaptScenario } from '../scenario.ts';
import { planGuest, heartbeats, maxGap, parseStatus, type GuestPlan } from './guest-params.ts';
import { NbdServer } from './nbd-server.ts';
import { DEFAULT_QEMU, GUEST_ELF, probeQemu } from './probe.ts';
import { QemuProcess, atTeardown } from './process.ts';
import { QmpClient, QmpTimeout, type QmpEvent } from './qmp.ts';
import type { QemuMigrationResult, QemuQueryMigrate, QemuRunResult, QmpPoll } from './result.ts';
import { TRACE_EVENTS, readTraceLog, switchoverSteps, syncTable } from './trace.ts';
import { compareDumps } from './verify.ts';
import { featureCapabilities, featureParameters, featuresOf, modernResult, postcopyDue } from './features.ts';
import { MODERN_TRACE_EVENTS } from './modern-trace.ts';

export interface QemuRunOptions {
  /** The QEMU binary (default /usr/bin/qemu-system-x86_64). */
  readonly qemu?: string;
  /** Guest memory instead of the scenario's (workload ranges shrink in proportion). */
  readonly memoryBytes?: number;
  /** Run length instead of the scenario's duration. */
  readonly durationNs?: number;
  /** Heartbeat interval of the guest (default 10 ms). */
  readonly heartbeatMs?: number;
  /**
   * Status line interval of the guest (default 250 ms): the achieved rate
   * before switchover needs one line at least, and a migration may be over
   * within a second.
   */
  readonly statusMs?: number;
  /** query-migrate poll interval (default 100 ms, as the simulation's snapshots). */
  readonly pollMs?: number;
  /** Compare both sides' memory at switchover (default true). */
  readonly verify?: boolean;
  /** How long to watch the destination run after switchover (default 2500 ms: two status lines). */
  readonly afterMs?: number;
  /** Longest wait for one QMP answer, e.g. during a flush stall (default 180 s). */
  readonly qmpTimeoutMs?: number;
  /** Longest wait for the guest to boot (default 60 s). */
  readonly bootTimeoutMs?: number;
  /** Keep the work directory (traces, sockets) instead of deleting it. */
  readonly keepWorkDir?: boolean;
  /**
   * Start the destination with -mem-prealloc (default: the scenario's
   * migration.destination_prealloc, false when it says nothing). Under this
   * nested KVM the destination's first touch of each guest page costs ~40 us,
   * which caps the first pass at ~90 MB/s; preallocated, QEMU's stream runs
   * at ~500 MB/s on every pass (README, "Measured here").
   */
  readonly preallocDestination?: boolean;
  /** Extra QEMU arguments for the source and for the destination. */
  readonly extraArgs?: { readonly source?: readonly string[]; readonly destination?: readonly string[] };
  /** Progress lines (default: none). */
  readonly log?: (line: string) => void;
  /** Called just before `migrate` is sent (calibration marks the threads' CPU there). */
  readonly onMigrate?: () => void;
  /** Called once the migration's last status is known, before the destination is resumed. */
  readonly onMigrationEnd?: () => void;
}

/** "Unlimited" max-bandwidth for QEMU (bytes/s). */
const UNLIMITED_BW = 2 ** 40;
const MIB = 1024 * 1024;

export class QemuUnavailable extends Error {}

/** How far apart the trace's wall clock and the host's monotonic clock may still be after wallClockOffsetMs (ns). */
const CLOCK_SLACK_NS = 5_000_000;

/** Date.now() - performance.now(), now (ms): the wall-clock time of performance.now()'s zero. */
function wallClockOffsetMs(): number {
  let best = -Infinity;
  for (let i = 0; i < 200; i++) best = Math.max(best, Date.now() - performance.now());
  return best;
}

/** The QEMU command line of one side (exported for tests and documentation). */
export function qemuArgs(o: {
  role: 'source' | 'destination';
  memoryBytes: number;
  append: string;
  qmpPath: string;
  tracePath: string;
  nbdPort: number | null;
  exportName: string;
  onError: 'report' | 'stop';
  /** -accel kvm,dirty-ring-size= (0 or absent: the dirty log). */
  dirtyRingSize?: number;
}): string[] {
  const a = [
    '-accel', o.dirtyRingSize ? `kvm,dirty-ring-size=${o.dirtyRingSize}` : 'kvm', '-M', 'pc', '-m', `${Math.ceil(o.memoryBytes / MIB)}M`, '-smp', '1',
    '-nodefaults', '-no-user-config', '-display', 'none', '-serial', 'stdio',
    // No kvmclock: SeaBIOS would register a pvclock structure (at 0xe8c20
    // here) that KVM itself rewrites on stop/cont and on the destination, so
    // the two sides' memory would differ in it at switchover.
    '-cpu', 'qemu64,-kvmclock',
    '-kernel', GUEST_ELF, '-append', o.append,
    '-qmp', `unix:${o.qmpPath},server=on,wait=off`,
    '-msg', 'timestamp=on', '-D', o.tracePath,
  ];
  for (const e of [...TRACE_EVENTS, ...MODERN_TRACE_EVENTS]) a.push('-trace', `enable=${e}`);
  if (o.nbdPort !== null) {
    a.push(
      '-blockdev', `driver=nbd,node-name=disk0,server.type=inet,server.host=127.0.0.1,server.port=${o.nbdPort},export=${o.exportName}`,
      '-device', `ide-hd,drive=disk0,bus=ide.0,unit=0,werror=${o.onError},rerror=${o.onError}`,
    );
  }
  if (o.role === 'destination') a.push('-incoming', 'defer', '-S');
  return a;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface RawQueryMigrate {
  status?: string;
  'total-time'?: number;
  'setup-time'?: number;
  downtime?: number;
  'expected-downtime'?: number;
  'cpu-throttle-percentage'?: number;
  'error-desc'?: string;
  ram?: Record<string, number>;
  'xbzrle-cache'?: Record<string, number>;
}

function toQueryMigrate(q: RawQueryMigrate, t_ns: number): QemuQueryMigrate {
  const r = q.ram ?? {};
  return {
    t_ns,
    status: q.status ?? 'none',
    'total-time': q['total-time'] ?? 0,
    'expected-downtime': q['expected-downtime'] ?? 0,
    'cpu-throttle-percentage': q['cpu-throttle-percentage'] ?? 0,
    ram: {
      transferred: r['transferred'] ?? 0,
      remaining: r['remaining'] ?? 0,
      total: r['total'] ?? 0,
      duplicate: r['duplicate'] ?? 0,
      normal: r['normal'] ?? 0,
      'dirty-pages-rate': r['dirty-pages-rate'] ?? 0,
      mbps: Math.round((r['mbps'] ?? 0) * 100) / 100,
      'dirty-sync-count': r['dirty-sync-count'] ?? 0,
    },
  };
}

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

function isTerminalEvent(e: QmpEvent): boolean {
  return e.event === 'MIGRATION' && TERMINAL.has(String((e.data as { status?: string } | null)?.status));
}

/** Runs the scenario on real QEMU; throws QemuUnavailable when this host cannot. */
export async function runOnQemu(scenario: Scenario, opts: QemuRunOptions = {}): Promise<QemuRunResult> {
  const wall0 = performance.now();
  const binary = opts.qemu ?? DEFAULT_QEMU;
  const probe = probeQemu(binary);
  if (!probe.available) throw new QemuUnavailable(probe.reason);
  const log = opts.log ?? (() => {});
  const s = adaptScenario(scenario, { memoryBytes: opts.memoryBytes, durationNs: opts.durationNs });
  if (s.vm.memory_bytes > 3 * 1024 * MIB) throw new RangeError('the QEMU guest is 32-bit: at most 3 GiB of RAM');
  const heartbeatMs = opts.heartbeatMs ?? 10;
  const pollMs = opts.pollMs ?? 100;
  const qmpTimeout = opts.qmpTimeoutMs ?? 180_000;
  const plan: GuestPlan = planGuest(s, { heartbeatMs, statusMs: opts.statusMs ?? 250, tickUs: 1000 });
  const mig = s.migration;
  const migUnsupported: string[] = [];
  if (mig) {
    for (const p of mig.policy) {
      if (p !== 'legacy' && p !== 'auto-converge') migUnsupported.push(`policy ${p}: QEMU 7.2 has no such policy (runs as legacy)`);
    }
    if (mig.mode === 'main-loop') migUnsupported.push('mode main-loop: QEMU 7.2 migrates from its migration thread');
    if (mig.max_iterations > 0) migUnsupported.push(`max_iterations ${mig.max_iterations}: QEMU 7.2 has no iteration cap`);
    if (mig.postcopy) migUnsupported.push('migration.postcopy: latsim qemu drives pre-copy only (runs without postcopy)');
    migUnsupported.push(`link ${mig.link.bandwidth} B/s, ${mig.link.latency_ns} ns: the migration runs over loopback TCP`);
  }
  const features = featuresOf(s, probe.version);
  migUnsupported.push(...features.unsupported);
  const unsupportedFaults = s.faults.filter((f) => f.kind === 'handler-cost' || f.kind === 'link-break').map((f) => (f.kind === 'link-break'
    ? `fault ${f.name} (link-break): the migration runs over loopback TCP, which latsim qemu does not cut`
    : `fault ${f.name} (handler-cost): QEMU's handlers are its own`));

  const dir = mkdtempSync(join(tmpdir(), 'latsim-qemu-'));
  const untrack = opts.keepWorkDir ? () => {} : atTeardown(() => rmSync(dir, { recursive: true, force: true }));
  const blk = s.devices.blk[0] ?? null;
  const nbd = blk
    ? new NbdServer({ name: blk.name, sizeBytes: blk.io.sectors * blk.io.request_bytes, faults: s.faults, seed: s.seed })
    : null;
  let src: QemuProcess | null = null;
  let dst: QemuProcess | null = null;
  let qs: QmpClient | null = null;
  let qd: QmpClient | null = null;
  const polls: QmpPoll[] = [];
  const snapshots: QemuQueryMigrate[] = [];
  const transitions: { t_ns: number; from: string; to: string }[] = [];
  let origin = 0;
  const tns = (ms: number) => Math.round((ms - origin) * 1e6);
  let error: string | null = null;
  let failure: QemuRunResult['failure'] = null;
  let outcome: QemuRunResult['outcome'] = 'ok';
  // Where a thrown error comes from: the guest's boot, or the migration.
  let phase: 'guest' | 'migration' = 'guest';
  let lastRaw: RawQueryMigrate = {};
  let statusAtEnd = mig ? 'none' : 'none';
  let finalStatus = 'none';
  let verify: QemuRunResult['verify'] = null;
  let checkMs = 0;
  let dstReadyMs = -1;
  let contMs = -1;
  let migrateMs = -1;
  let postcopyMs = -1;
  let postcopyBlocktimeMs = -1;
  let bootMs = 0;
  const args = { source: [] as string[], destination: [] as string[] };
  try {
    const srcPort = nbd ? await nbd.listen(0, '127.0.0.1', 'source') : null;
    const dstPort = nbd ? await nbd.listen(0, '127.0.0.1', 'destination') : null;
    const common = {
      memoryBytes: s.vm.memory_bytes, append: plan.append, exportName: blk?.name ?? '', onError: blk?.on_error ?? 'report',
      dirtyRingSize: features.dirty_ring_size,
    };
    args.source = [
      ...qemuArgs({ ...common, role: 'source', qmpPath: join(dir, 'src.qmp'), tracePath: join(dir, 'src.trace'), nbdPort: srcPort }),
      ...(opts.extraArgs?.source ?? []),
    ];
    const spawnMs = performance.now();
    src = new QemuProcess('source', binary, args.source);
    if (mig) {
      args.destination = [
        ...qemuArgs({ ...common, role: 'destination', qmpPath: join(dir, 'dst.qmp'), tracePath: join(dir, 'dst.trace'), nbdPort: dstPort }),
        ...((opts.preallocDestination ?? mig.destination_prealloc) ? ['-mem-prealloc'] : []),
        ...(opts.extraArgs?.destination ?? []),
      ];
      dst = new QemuProcess('destination', binary, args.destination);
    }
    qs = await QmpClient.connect(join(dir, 'src.qmp'), 15_000);
    if (dst) qd = await QmpClient.connect(join(dir, 'dst.qmp'), 15_000);
    const ready = await src.waitSerial(/^R\b/, opts.bootTimeoutMs ?? 60_000);
    origin = ready.host_ms;
    bootMs = Math.round(origin - spawnMs);
    if (nbd) nbd.origin = origin;
    log(`qemu: guest running ${bootMs} ms after spawn: ${plan.append}`);
    const endMs = origin + s.duration_ns / 1e6;

    if (mig && qd) {
      phase = 'migration';
      const port = await freePort();
      const caps = [{ capability: 'events', state: true }];
      await qd.execute('migrate-set-capabilities', { capabilities: [...caps, ...featureCapabilities(features, 'destination')] });
      // multifd-channels must be the same on both sides, before migrate-incoming.
      const featureParams = featureParameters(features);
      if (Object.keys(featureParams).length > 0) await qd.execute('migrate-set-parameters', featureParams);
      await qd.execute('migrate-incoming', { uri: `tcp:127.0.0.1:${port}` });
      const ac = mig.policy.includes('auto-converge');
      await qs.execute('migrate-set-capabilities', {
        capabilities: [...caps, { capability: 'auto-converge', state: ac }, ...featureCapabilities(features, 'source')],
      });
      const params: Record<string, unknown> = {
        ...featureParams,
        'max-bandwidth': mig.max_bandwidth > 0 && Number.isFinite(mig.max_bandwidth) ? Math.round(mig.max_bandwidth) : UNLIMITED_BW,
        'downtime-limit': Math.max(0, Math.round(mig.downtime_limit_ns / 1e6)),
      };
      if (ac) {
        params['cpu-throttle-initial'] = mig.auto_converge.initial;
        params['cpu-throttle-increment'] = mig.auto_converge.increment;
        params['max-cpu-throttle'] = mig.auto_converge.max;
        params['throttle-trigger-threshold'] = mig.auto_converge.trigger;
      }
      await qs.execute('migrate-set-parameters', params);
      const startAt = origin + mig.start_ns / 1e6;
      await sleep(Math.max(0, startAt - performance.now()));
      opts.onMigrate?.();
      migrateMs = performance.now();
      await qs.execute('migrate', { uri: `tcp:127.0.0.1:${port}` });
      log(`qemu: migrate at ${Math.round(migrateMs - origin)} ms`);

      // Poll until a terminal status or the end of the run.
      let prevStatus = 'none';
      for (;;) {
        const sent = performance.now();
        let raw: RawQueryMigrate | null = null;
        try {
          raw = await qs.execute<RawQueryMigrate>('query-migrate', undefined, qmpTimeout);
        } catch (e) {
          if (!(e instanceof QmpTimeout)) throw e;
        }
        const answered = performance.now();
        const status = raw?.status ?? 'unanswered';
        polls.push({ sent_ns: tns(sent), answered_ns: raw ? tns(answered) : -1, latency_ns: Math.round((answered - sent) * 1e6), status });
        if (!raw) throw new Error(`query-migrate unanswered for ${qmpTimeout} ms`);
        lastRaw = raw;
        snapshots.push(toQueryMigrate(raw, tns(answered)));
        if (status !== prevStatus) {
          transitions.push({ t_ns: tns(answered), from: prevStatus, to: status });
          prevStatus = status;
        }
        if (TERMINAL.has(status)) break;
        if (answered >= endMs) break;
        if (postcopyMs < 0 && status === 'active' && postcopyDue(features, raw.ram?.['dirty-sync-count'] ?? 0, tns(answered))) {
          // cont first: while the destination is still inmigrate it only sets autostart, so
          // the guest runs on the destination from the switch on, as it must for its faults.
          await qd.execute('cont');
          postcopyMs = performance.now();
          await qs.execute('migrate-start-postcopy');
          log(`qemu: migrate-start-postcopy at ${Math.round(postcopyMs - origin)} ms`);
        }
        // The next poll, or at once when QEMU reports the end (MIGRATION event).
        const wait = Math.max(0, sent + pollMs - performance.now());
        await Promise.race([sleep(wait), qs.waitEvent(isTerminalEvent, wait + 1, sent).catch(() => undefined)]);
      }
      if (lastRaw.status === 'completed' || lastRaw.status === 'failed') {
        // migrate_set_state(completed) comes before migration_calculate_complete
        // sets total-time and downtime: ask again until they are there.
        for (let i = 0; i < 40 && !lastRaw['total-time']; i++) {
          await sleep(25);
          lastRaw = await qs.execute<RawQueryMigrate>('query-migrate', undefined, qmpTimeout);
        }
        snapshots.push(toQueryMigrate(lastRaw, tns(performance.now())));
      }
      statusAtEnd = lastRaw.status ?? 'none';
      opts.onMigrationEnd?.();
      finalStatus = statusAtEnd;
      if (statusAtEnd === 'failed') failure = 'migration';
      if (!TERMINAL.has(statusAtEnd)) {
        // The run's time is up (a non-converging migration): cancel it.
        await qs.execute('migrate_cancel', undefined, qmpTimeout);
        for (let i = 0; i < 100; i++) {
          const q = await qs.execute<RawQueryMigrate>('query-migrate', undefined, qmpTimeout);
          finalStatus = q.status ?? 'none';
          if (TERMINAL.has(finalStatus)) break;
          await sleep(50);
        }
      }
      if (statusAtEnd === 'completed') {
        // The destination has loaded everything and stays paused (-S).
        for (let i = 0; ; i++) {
          const st = await qd.execute<{ status: string }>('query-status', undefined, 10_000);
          if (st.status !== 'inmigrate') break;
          if (i > 1000) throw new Error('the destination never left inmigrate');
          await sleep(20);
        }
        // Ready since its MIGRATION "completed" event (else: since now).
        const ev = qd.events.find((e) => isTerminalEvent(e));
        dstReadyMs = ev ? Math.min(ev.host_ms, performance.now()) : performance.now();
        if (postcopyMs >= 0) {
          // The destination ran the guest while its pages arrived: its memory moved on from the source's.
          const dq = await qd.execute<{ 'postcopy-blocktime'?: number }>('query-migrate', undefined, 10_000);
          postcopyBlocktimeMs = dq['postcopy-blocktime'] ?? -1;
        } else if (opts.verify ?? true) {
          const size = s.vm.memory_bytes;
          const a = join(dir, 'src.mem');
          const b = join(dir, 'dst.mem');
          await qs.execute('pmemsave', { val: 0, size, filename: a }, 120_000);
          await qd.execute('pmemsave', { val: 0, size, filename: b }, 120_000);
          const cmp = compareDumps(a, b, size);
          if (cmp.equal || !opts.keepWorkDir) {
            rmSync(a, { force: true });
            rmSync(b, { force: true });
          }
          checkMs = Math.round(performance.now() - dstReadyMs);
          verify = { ...cmp, check_ms: checkMs };
          if (!cmp.equal) {
            outcome = 'invariant';
            error = `destination memory differs from the source in ${cmp.differing_pages} pages (first at 0x${cmp.first_differences[0]!.toString(16)})`;
          }
          log(`qemu: memory ${cmp.equal ? 'equal' : 'DIFFERS'} (${cmp.bytes} bytes, ${cmp.zero_pages} zero pages) in ${checkMs} ms`);
        }
        contMs = performance.now();
        if (postcopyMs < 0) await qd.execute('cont');
        const from = postcopyMs < 0 ? dst!.serial.length : 0;
        await dst!.waitSerial(/^H\b/, 30_000, from);
        await sleep(opts.afterMs ?? 2500);
      } else if (statusAtEnd === 'failed') {
        await sleep(opts.afterMs ?? 2500);
      }
    } else {
      await sleep(Math.max(0, endMs - performance.now()));
    }
  } catch (e) {
    outcome = 'error';
    error = e instanceof Error ? e.message : String(e);
    failure = phase;
  } finally {
    qs?.close();
    qd?.close();
    await Promise.all([src?.stop(), dst?.stop()]);
    await nbd?.close();
  }

  // Collect.
  // QEMU's trace is stamped with the wall clock, everything else here with
  // performance.now(). performance.timeOrigin is the wall clock when this
  // process started: after minutes the two clocks have drifted apart by
  // milliseconds (NTP slews the wall clock), so the offset is taken now, from
  // several readings (Date.now() has 1 ms steps: the largest reading is the
  // closest to the true offset from below).
  const originWall = origin + wallClockOffsetMs();
  const srcTrace = readTraceLog(join(dir, 'src.trace'));
  const dstTrace = readTraceLog(join(dir, 'dst.trace'));
  if (!opts.keepWorkDir) rmSync(dir, { recursive: true, force: true });
  untrack();
  const transferred = snapshots.map((q) => ({ t_ns: q.t_ns, bytes: q.ram.transferred }));
  const iterations = syncTable({ events: srcTrace, originWallMs: originWall, pageSize: 4096, transferred });
  const steps = switchoverSteps(srcTrace, originWall);
  const flushRecs = nbd ? nbd.records.filter((r) => r.op === 'flush' && r.client === 'source') : [];
  let phases: QemuMigrationResult['downtime_phases'] = null;
  if (steps && steps.paused_ns >= 0 && steps.vm_stop_ret_ns >= 0) {
    const ms = (n: number) => Math.round(n / 1e6);
    // The flush bdrv_flush_all sent: the source's last flush to arrive before
    // vm_stop returned that was still running when the vCPUs were paused. With
    // nothing to drain it arrives within a millisecond of the pause, so both
    // ends allow for the two clocks' residual skew.
    const slack = CLOCK_SLACK_NS;
    const flush = [...flushRecs].reverse().find((r) => r.at_ns <= steps.vm_stop_ret_ns + slack && r.at_ns + r.latency_ns >= steps.paused_ns - slack);
    const flushStart = flush ? Math.min(steps.vm_stop_ret_ns, Math.max(steps.paused_ns, flush.at_ns)) : steps.vm_stop_ret_ns;
    phases = {
      stop: steps.stop_ns >= 0 ? ms(steps.paused_ns - steps.stop_ns) : 0,
      drain: ms(flushStart - steps.paused_ns),
      flush: ms(steps.vm_stop_ret_ns - flushStart),
      final_ram_and_device_state: steps.end_ns >= 0 && steps.complete_precopy_ns >= 0 ? ms(steps.end_ns - steps.complete_precopy_ns) : 0,
    };
  }
  const throttle: { t_ns: number; pct: number }[] = [];
  let lastPct = 0;
  for (const q of snapshots) {
    if (q['cpu-throttle-percentage'] !== lastPct) {
      throttle.push({ t_ns: q.t_ns, pct: q['cpu-throttle-percentage'] });
      lastPct = q['cpu-throttle-percentage'];
    }
  }
  const r = lastRaw.ram ?? {};
  // Status changes: QEMU's MIGRATION events (capability "events") when there are any, else the polls'.
  const migEvents = (qs?.events ?? []).filter((e) => e.event === 'MIGRATION');
  if (migEvents.length > 0) {
    transitions.length = 0;
    let prev = 'none';
    for (const e of migEvents) {
      const to = String((e.data as { status?: string } | null)?.status ?? '');
      transitions.push({ t_ns: tns(e.host_ms), from: prev, to });
      prev = to;
    }
  }
  const migration: QemuMigrationResult | null = mig
    ? {
      status: statusAtEnd,
      final_status: finalStatus,
      'total-time': lastRaw['total-time'] ?? 0,
      'setup-time': lastRaw['setup-time'] ?? 0,
      downtime: lastRaw.downtime ?? 0,
      'expected-downtime': [...snapshots].reverse().find((q) => q.status === 'active')?.['expected-downtime'] ?? 0,
      ram: {
        ...toQueryMigrate(lastRaw, 0).ram,
        'downtime-bytes': r['downtime-bytes'] ?? 0,
        'precopy-bytes': r['precopy-bytes'] ?? 0,
        'pages-per-second': r['pages-per-second'] ?? 0,
      },
      switchover: steps,
      downtime_phases: phases,
      completion_attempts: steps ? 1 : 0,
      rollbacks: 0,
      verified: verify !== null && verify.equal,
      policy: [...mig.policy],
      mode: 'thread',
      fail_reason: lastRaw['error-desc'] ?? '',
      cpu_throttle_percentage: lastRaw['cpu-throttle-percentage'] ?? 0,
      throttle,
      throttle_events_ns: srcTrace.filter((e) => e.name === 'migration_throttle').map((e) => Math.round((e.wall_ms - originWall) * 1e6)),
      iterations,
      snapshots,
      transitions,
      unsupported: migUnsupported,
      ...modernResult(features, srcTrace, dstTrace, lastRaw, postcopyMs < 0 ? -1 : tns(postcopyMs), postcopyBlocktimeMs),
    }
    : null;

  // The guest's view.
  const srcLines = src?.serial ?? [];
  const dstLines = dst?.serial ?? [];
  const switchoverEndMs = steps && steps.end_ns >= 0 ? origin + steps.end_ns / 1e6 : Infinity;
  const srcStatus = srcLines.map((l) => parseStatus(l.text, l.host_ms)).filter((x) => x !== null);
  const dstStatus = dstLines.map((l) => parseStatus(l.text, l.host_ms)).filter((x) => x !== null);
  // A status line's interval may span a pause; rates come from the pages and guest ms between lines.
  const rateOf = (st: typeof srcStatus) => {
    if (st.length < 2) return st[0]?.rate ?? 0;
    const a = st[0]!;
    const b = st[st.length - 1]!;
    return b.ms > a.ms ? Math.round(((b.pages - a.pages) * 1000) / (b.ms - a.ms)) : 0;
  };
  const tsc = srcLines.find((l) => l.text.startsWith('LSQ tsc'));
  const srcBeats = heartbeats(srcLines);
  const dstBeats = heartbeats(dstLines);
  const srcGap = maxGap(srcBeats.filter((t) => t <= switchoverEndMs));
  let switchoverStall = -1;
  if (statusAtEnd === 'completed' && dstBeats.length > 0 && contMs >= 0) {
    const lastSrc = srcBeats.filter((t) => t <= dstBeats[0]!).pop() ?? origin;
    switchoverStall = Math.round(dstBeats[0]! - lastSrc - (contMs - dstReadyMs));
  }
  const dstGap = maxGap(dstBeats);
  const lastSrcStatus = srcStatus[srcStatus.length - 1];

  // QMP's view.
  let pollMax = 0;
  let pollMaxAt = -1;
  let gapMax = 0;
  let late = 0;
  for (let i = 0; i < polls.length; i++) {
    const p = polls[i]!;
    if (p.latency_ns > pollMax * 1e6) {
      pollMax = p.latency_ns / 1e6;
      pollMaxAt = p.sent_ns;
    }
    if (p.latency_ns > pollMs * 1e6) late++;
    if (i > 0 && p.answered_ns >= 0 && polls[i - 1]!.answered_ns >= 0) gapMax = Math.max(gapMax, (p.answered_ns - polls[i - 1]!.answered_ns) / 1e6);
  }

  const block: QemuRunResult['block'] = nbd && blk
    ? [{
      name: blk.name,
      reads: nbd.counts.read,
      writes: nbd.counts.write,
      flushes: nbd.counts.flush,
      errors: nbd.counts.errors,
      counts: { ...nbd.counts },
      flush_max_ns: Math.max(0, ...nbd.records.filter((x) => x.op === 'flush').map((x) => x.latency_ns)),
      faults_fired: [...nbd.firedFaults],
      requests: nbd.records.filter((x) => x.op === 'flush' || x.fault !== null || x.error !== 0),
    }]
    : [];

  return {
    scenario: s.name,
    file: s.file,
    seed: s.seed,
    backend: 'qemu',
    outcome,
    error,
    failure,
    wall_ms: Math.round(performance.now() - wall0),
    qemu: { version: probe.version, package: probe.package, binary, boot_ms: bootMs, memory_bytes: s.vm.memory_bytes, args },
    guest: {
      target_rate: plan.target_rate,
      achieved_rate: rateOf(srcStatus.filter((x) => x.host_ms <= switchoverEndMs)),
      // The counter lives in guest memory: the destination's lines continue the source's.
      pages_written: (dstStatus[dstStatus.length - 1] ?? lastSrcStatus)?.pages ?? 0,
      lost_ticks: Math.max(lastSrcStatus?.lost_ticks ?? 0, dstStatus[dstStatus.length - 1]?.lost_ticks ?? 0),
      tsc_khz: tsc ? Number(/khz=(\d+)/.exec(tsc.text)?.[1] ?? 0) : 0,
      heartbeat_ms: heartbeatMs,
      source_gap_max_ms: Math.round(srcGap.gap_ms),
      source_gap_max_at_ns: srcGap.at_ms >= 0 ? tns(srcGap.at_ms) : -1,
      switchover_stall_ms: switchoverStall,
      vcpu_stall_max_ms: Math.round(Math.max(srcGap.gap_ms, switchoverStall, dstGap.gap_ms)),
      vcpu_stall_max_ns: Math.round(Math.max(srcGap.gap_ms, switchoverStall, dstGap.gap_ms) * 1e6),
      dirty_writes: (dstStatus[dstStatus.length - 1] ?? lastSrcStatus)?.pages ?? 0,
      status: [
        ...srcStatus.map((x) => ({ t_ns: tns(x.host_ms), side: 'source' as const, rate: x.rate, pages: x.pages, lost_ticks: x.lost_ticks })),
        ...dstStatus.map((x) => ({ t_ns: tns(x.host_ms), side: 'destination' as const, rate: x.rate, pages: x.pages, lost_ticks: x.lost_ticks })),
      ],
      // The destination's first line spans the switchover (the guest's TSC runs
      // on through the downtime): the mean of the later lines' rates, else the first's.
      destination_achieved_rate: dstStatus.length > 1
        ? Math.round(dstStatus.slice(1).reduce((a, x) => a + x.rate, 0) / (dstStatus.length - 1))
        : dstStatus[0]?.rate ?? 0,
      disk: (() => {
        const last = dstStatus[dstStatus.length - 1] ?? lastSrcStatus;
        return plan.disk && last ? { writes: last.dw, reads: last.dr, flushes: last.df, errors: last.de, flush_max_us: last.dflush_max_us } : null;
      })(),
      plan: { append: plan.append, unsupported: [...plan.unsupported, ...unsupportedFaults] },
    },
    qmp: {
      polls: polls.length,
      poll_latency_max_ms: Math.round(pollMax),
      poll_latency_max_at_ns: pollMaxAt,
      answer_gap_max_ms: Math.round(gapMax),
      late_polls: late,
      series: polls,
    },
    block,
    verify,
    migration,
    logs: { source_stderr: tail(src?.stderr ?? ''), destination_stderr: tail(dst?.stderr ?? '') },
  };
}

function tail(s: string, lines = 20): string {
  return s.trim().split('\n').slice(-lines).join('\n');
}

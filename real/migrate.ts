// Live migration of a real guest between two processes. The source runs the
// scenario as `latsim real run` does, plus its migration: the statechart, the
// migration thread, migration_bitmap_sync over KVM's dirty log and RAM save
// are the model's code (sim/migration/), and the far end is a second latsim
// process (`latsim real incoming`) reached over loopback TCP. The source waits
// for the destination's report (did the guest's heartbeat advance there?) and
// ends; the destination ends after its report.
// Under faults: a destination that dies or stops answering before GO fails
// the migration (the stream timeout bounds every wait on it) and the source's
// guest runs on, watched for the check window; after GO the guest is lost on
// both sides and the run says so. Either way the stream is closed and the
// destination process reaped: it gets the stream timeout to exit, then SIGKILL.
// Leaves out: migrating anything but loopback, more than one migration per run,
// retrying a failed migration; multifd (one stream carries everything here)
// and xbzrle (its cache models content versions): a scenario with either is
// refused, naming the field.
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { Scenario } from '../sim/scenario/scenario.ts';
import { DEFAULT_STREAM_TIMEOUT_NS } from '../sim/scenario/migration.ts';
import type { Machine } from '../sim/machine.ts';
import { MigrationStreamError } from '../sim/migration/destination.ts';
import type { KvmGuest } from './kvm-guest.ts';
import { IncomingMigration, type DestinationFault } from './incoming.ts';
import { StreamDestination, type DeviceState, type HelloMessage } from './migration-stream.ts';
import type { RealPlatform } from './platform.ts';
import { collectRealRun, runGuarded, type RealRun } from './run.ts';
import { withoutMigration } from './scenario.ts';
import type { DestinationReport, LoadedMessage } from './stream.ts';
import { ensurePayload, openKvm, RealSession } from './world.ts';
import { RealError } from './errors.ts';

const LATSIM_BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'latsim.mjs');

/** The source's guest after a failed migration: it runs again, watched for the check window. */
export interface SourceAfterFailure {
  readonly running: boolean;
  readonly heartbeat_before: number;
  readonly heartbeat_after: number;
  readonly window_ms: number;
}

/** What the source learned of the destination. */
export interface DestinationInfo {
  report: DestinationReport | null;
  loaded: LoadedMessage | null;
  /** Both sides digesting memory at switchover (left out of the downtime). */
  check_ms: number;
  pages_sent: number;
  wire_bytes: number;
  pid: number | null;
  exit_code: number | null;
  /** The signal that ended the destination process (the source sends SIGKILL to one that does not exit). */
  exit_signal: string | null;
  /** What broke the stream (the migration's error, or the report's after the switchover), or null. */
  error: string | null;
  /**
   * Where the guest is at the end: on the source (the migration failed before
   * GO, or did not finish; `source_after_failure` says whether it runs), on
   * the destination (it ran there until the report), or lost on both sides
   * (the destination failed after GO).
   */
  guest: 'source' | 'destination' | 'lost';
  source_after_failure: SourceAfterFailure | null;
}

export interface RealMigration extends RealRun<StreamDestination> {
  readonly destination: DestinationInfo;
}

export interface MigrateOptions {
  /** The scenario file, for the destination process. */
  readonly file: string;
  /** Options the destination gets too (--duration, --memory), so it builds the same VM. */
  readonly passArgs: readonly string[];
  readonly keepTrace?: boolean;
  /** How long the guest runs on the destination before its report (and on the source after a failure). */
  readonly checkNs: number;
  /** How long the destination may take to start listening. */
  readonly startTimeoutMs?: number;
  /** A fault the destination inflicts on itself (tests, demonstrations). */
  readonly fault?: DestinationFault | null;
}

/** Polls the migration's status (ms). */
const WATCH_INTERVAL_NS = 5_000_000;
/** After SIGKILL, how long the destination process may take to be reaped. */
const KILL_REAP_MS = 10_000;

/** Refuses what real mode does not migrate: multifd channels, the XBZRLE cache (RealError, exit 2). */
export function checkRealMigration(scenario: Scenario): void {
  const m = scenario.migration;
  if (m?.multifd) {
    throw new RealError('unsupported', `${scenario.file}: migration.multifd: real mode migrates over one stream; multifd runs in the simulation (latsim run)`);
  }
  if (m?.xbzrle) {
    throw new RealError('unsupported', `${scenario.file}: migration.xbzrle: real mode sends pages whole; xbzrle runs in the simulation (latsim run)`);
  }
  // Postcopy on KVM needs the destination to register guest RAM with userfaultfd and a return path: not built.
  if (m?.postcopy) throw new RealError('unsupported', `${scenario.file}: migration.postcopy: real mode migrates by pre-copy only`);
  const cut = scenario.faults.find((f) => f.kind === 'link-break');
  if (cut) throw new RealError('unsupported', `${scenario.file}: fault ${cut.name} (link-break): real mode does not cut its TCP stream`);
}

export async function realMigrate(scenario: Scenario, o: MigrateOptions): Promise<RealMigration> {
  if (!scenario.migration) throw new RealError('unsupported', `${scenario.file}: the scenario has no migration section`);
  checkRealMigration(scenario);
  const streamTimeoutNs = scenario.migration.stream_timeout_ns;
  // Fail here, with exit code 6, before a second process is started.
  ensurePayload();
  openKvm().close();
  const fault = o.fault ? ['--fault', `${o.fault.signal === 'SIGKILL' ? 'kill' : 'stop'}@${o.fault.at}`] : [];
  const child = spawn(process.execPath, [
    LATSIM_BIN, 'real', 'incoming', o.file, '--port', '0', '--check', `${Math.round(o.checkNs / 1e6)}ms`, ...o.passArgs, ...fault,
  ], { stdio: ['ignore', 'pipe', 'inherit'] });
  let fd = -1;
  let session: RealSession<StreamDestination> | null = null;
  /** Closes the source's end: a destination still alive sees end of stream and ends. */
  const closeStream = () => {
    if (fd < 0 || !session) return;
    session.platform.releaseFd(fd);
    try {
      session.platform.io.close(fd);
    } catch {
      // already closed
    }
    fd = -1;
  };
  let run: RealRun<StreamDestination>;
  let dest: StreamDestination | null = null;
  let failedAtNs = -1;
  let after: SourceAfterFailure | null = null;
  let exit: { code: number | null; signal: string | null };
  try {
    const port = await listeningPort(child, o.startTimeoutMs ?? 120_000);
    const hello = (g: KvmGuest): HelloMessage => ({ pages: g.ram.pages, page_size: g.ram.pageSize, vcpus: g.natives.length, scenario: scenario.name });
    const opened: RealSession<StreamDestination> = RealSession.open<StreamDestination>(scenario, {
      keepTrace: o.keepTrace ?? false,
      destination: (_m: Machine, g: KvmGuest, p: RealPlatform) => {
        fd = p.io.tcpConnect('127.0.0.1', port);
        dest = new StreamDestination(p, g, fd, () => deviceState(opened), hello(g), streamTimeoutNs);
        return dest;
      },
    });
    session = opened;
    const p = opened.platform;
    const mig = opened.world.migration!;
    const machine = opened.world.machine;
    const t0 = performance.now();
    let waiting = false;
    let afterEndNs = -1;
    const watch = () => {
      const st = mig.status;
      if (st === 'failed' || st === 'cancelled') {
        failedAtNs = p.nowNs();
        closeStream();
        // Lost (stopped for good at switchover): nothing runs here any more.
        if (dest!.phase !== 'before-go') return p.stop();
        // As under QEMU the source runs on; watch its guest for the check window.
        const hb0 = opened.guest.heartbeat(0);
        afterEndNs = failedAtNs + o.checkNs;
        p.callAfter(o.checkNs, () => {
          after = {
            running: machine.runstate.running, heartbeat_before: hb0, heartbeat_after: opened.guest.heartbeat(0),
            window_ms: Math.round((p.nowNs() - failedAtNs) / 1e6),
          };
          p.stop();
        });
        return;
      }
      if (st === 'completed' && !waiting) {
        waiting = true;
        const d = dest!;
        p.spawn('migration-return-path', function* () {
          try {
            yield* d.awaitReport(o.checkNs);
          } catch (e) {
            // The guest is lost; the destination's streamError says why.
            if (!(e instanceof MigrationStreamError)) throw e;
          }
          p.stop();
        });
      }
      p.callAfter(WATCH_INTERVAL_NS, watch);
    };
    p.callAfter(WATCH_INTERVAL_NS, watch);
    let { outcome, error } = runGuarded(() => p.run(scenario.duration_ns));
    // The scenario's time ran out during the watch after a failure: finish the window.
    if (!error && after === null && afterEndNs > p.nowNs()) ({ outcome, error } = runGuarded(() => p.run(afterEndNs + WATCH_INTERVAL_NS)));
    run = closeSourceStalls(collectRealRun(opened, outcome, error, t0));
  } finally {
    closeStream();
    session?.close();
    exit = await reap(child, streamTimeoutNs / 1e6);
  }
  const d = dest as StreamDestination | null;
  const m = run.result.migration;
  // A migration the policy failed (abort-on-downtime, an I/O error) is a result; a broken stream is a fault.
  const error = d?.streamError ?? null;
  const lost = error !== null && d !== null && d.phase !== 'before-go';
  return {
    ...run,
    destination: {
      report: d?.report ?? null,
      loaded: d?.loaded ?? null,
      check_ms: d ? Math.round(d.checkNs / 1e5) / 10 : 0,
      pages_sent: d?.pagesReceived ?? 0,
      wire_bytes: d?.wireBytes ?? 0,
      pid: child.pid ?? null,
      exit_code: exit.code,
      exit_signal: exit.signal,
      error,
      guest: lost ? 'lost' : m?.status === 'completed' && d?.report?.running ? 'destination' : 'source',
      source_after_failure: after,
    },
  };
}

/**
 * The destination process: waits for the stream, loads it, runs the guest,
 * reports. Returns the exit code. It ends by itself when the source process
 * is gone (its parent changes).
 */
export function realIncoming(scenario: Scenario, o: { port: number; checkNs: number; limitNs: number; fault?: DestinationFault | null }): number {
  const streamTimeoutNs = scenario.migration?.stream_timeout_ns ?? DEFAULT_STREAM_TIMEOUT_NS;
  const s = RealSession.open(withoutMigration({ ...scenario, vm: { ...scenario.vm, run_state: 'inmigrate' } }), { incoming: true });
  try {
    const io = s.platform.io;
    const lfd = io.tcpListen('127.0.0.1', o.port);
    process.stdout.write(`listening ${io.socketLocalPort(lfd)}\n`);
    const inc = new IncomingMigration(s, lfd, { checkNs: o.checkNs, streamTimeoutNs, fault: o.fault ?? null });
    inc.start();
    const parent = process.ppid;
    const watchParent = () => {
      // Once the guest runs here it finishes its check window whatever the source does.
      const waitingOnSource = inc.status === 'listening' || inc.status === 'receiving' || inc.status === 'loaded';
      if (process.ppid !== parent && waitingOnSource) return inc.fail('the source process is gone');
      s.platform.callAfter(PARENT_CHECK_NS, watchParent);
    };
    s.platform.callAfter(PARENT_CHECK_NS, watchParent);
    runGuarded(() => s.platform.run(o.limitNs));
    inc.close();
    s.platform.releaseFd(lfd);
    io.close(lfd);
    if (inc.status === 'completed') return 0;
    const why = inc.status === 'listening' ? 'no migration arrived' : inc.failReason || `the migration ended in ${inc.status}`;
    process.stderr.write(`latsim: real incoming: ${why}\n`);
    return REAL_PEER_EXIT;
  } finally {
    s.close();
  }
}

/** How often the destination looks whether the source process still exists. */
const PARENT_CHECK_NS = 200_000_000;

const REAL_PEER_EXIT = 8;

/**
 * After the switchover the source's vCPUs stay out of guest mode (the guest
 * runs on the destination), which the model would count as one stall lasting
 * to the end of the run. What the guest felt is the downtime: each vCPU's
 * longest stall is its longest finished one or the downtime, and the
 * vcpu_stall budgets are evaluated again on that.
 */
function closeSourceStalls<R extends RealRun<StreamDestination>>(run: R): R {
  const r = run.result;
  const m = r.migration;
  if (!m || m.status !== 'completed') return run;
  const vcpus = run.world.machine.vcpus;
  const downtimeNs = (m.downtime_phases ? m.downtime : 0) * 1e6;
  r.guest.vcpus = r.guest.vcpus.map((v, i) => ({ ...v, stall_max_ns: Math.max(vcpus[i]!.stallMaxNs, downtimeNs) }));
  r.guest.vcpu_stall_max_ns = Math.max(0, ...r.guest.vcpus.map((v) => v.stall_max_ns));
  const stallBudgets = new Set(run.world.scenario.expect.filter((b) => b.key === 'vcpu_stall').map((b) => b.name));
  r.expect = r.expect.map((e) => {
    if (!stallBudgets.has(e.name)) return e;
    const b = run.world.scenario.expect.find((x) => x.name === e.name)!;
    const value = r.guest.vcpu_stall_max_ns;
    return { ...e, value, pass: b.bound === 'max' ? value <= b.limit : value >= b.limit };
  });
  r.pass = r.outcome === 'ok' && r.expect.every((e) => e.pass);
  return run;
}

/** The state the destination needs besides RAM; read while the vCPUs are parked. */
function deviceState(s: RealSession<StreamDestination>): DeviceState {
  const net = s.world.devices.net[0];
  return {
    vcpus: s.guest.natives.map((v) => ({ regs: v.getRegs(), sregs: v.getSregs(), fpu: v.getFpu() })),
    net: net && s.netRing && s.net
      ? { ring: s.netRing.save(), tx_waiting: net.dev.txWaiting, replies: s.net.replies, consumed: s.net.consumed }
      : null,
  };
}

/** The port the destination printed ("listening N"), or a RealError if it ended or took too long. */
function listeningPort(child: ChildProcess, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => done(new RealError('peer', `the destination process did not start listening within ${timeoutMs} ms`)), timeoutMs);
    const done = (r: number | Error) => {
      clearTimeout(timer);
      child.stdout?.removeAllListeners('data');
      child.removeAllListeners('exit');
      if (typeof r === 'number') resolve(r);
      else reject(r);
    };
    child.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /^listening (\d+)$/m.exec(out);
      if (m) done(Number(m[1]));
    });
    child.once('exit', (code, signal) => {
      // The destination prints its own one-line reason on stderr (inherited).
      if (code === 6) done(new RealError('unavailable', 'unavailable: the destination process could not open KVM'));
      else done(new RealError('peer', `the destination process ${signal ? `was killed by ${signal}` : `exited with code ${code}`} before listening`));
    });
  });
}

/** The child's exit code or signal once it exits (null, null if it does not within timeoutMs). */
function exited(child: ChildProcess, timeoutMs: number): Promise<{ code: number | null; signal: string | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ code: null, signal: null }), timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}

/** Waits up to graceMs for the child to exit, then SIGKILLs it and waits for it to be reaped. */
async function reap(child: ChildProcess, graceMs: number): Promise<{ code: number | null; signal: string | null }> {
  const first = await exited(child, graceMs);
  if (first.code !== null || first.signal !== null) return first;
  child.kill('SIGKILL');
  return exited(child, KILL_REAP_MS);
}

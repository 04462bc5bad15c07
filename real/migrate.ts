// Live migration of a real guest between two processes. The source runs the
// scenario as `latsim real run` does, plus its migration: the statechart, the
// migration thread, migration_bitmap_sync over KVM's dirty log and RAM save
// are the model's code (sim/migration/), and the far end is a second latsim
// process (`latsim real incoming`) reached over loopback TCP. The source waits
// for the destination's report (did the guest's heartbeat advance there?) and
// ends; the destination ends after its report.
// Leaves out: migrating anything but loopback, more than one migration per run.
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { Scenario } from '../sim/scenario/scenario.ts';
import type { Machine } from '../sim/machine.ts';
import type { KvmGuest } from './kvm-guest.ts';
import { IncomingMigration } from './incoming.ts';
import { StreamDestination, type DeviceState, type HelloMessage } from './migration-stream.ts';
import type { RealPlatform } from './platform.ts';
import { collectRealRun, runGuarded, type RealRun } from './run.ts';
import { withoutMigration } from './scenario.ts';
import type { DestinationReport, LoadedMessage } from './stream.ts';
import { ensurePayload, openKvm, RealSession } from './world.ts';
import { RealError } from './errors.ts';

const LATSIM_BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'latsim.mjs');

/** What the source learned of the destination. */
export interface DestinationInfo {
  report: DestinationReport | null;
  loaded: LoadedMessage | null;
  /** Both sides digesting memory at switchover (left out of the downtime). */
  check_ms: number;
  pages_sent: number;
  wire_bytes: number;
  exit_code: number | null;
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
  /** How long the guest runs on the destination before its report. */
  readonly checkNs: number;
  /** How long the destination may take to start listening. */
  readonly startTimeoutMs?: number;
}

/** Polls the migration's status (ms). */
const WATCH_INTERVAL_NS = 5_000_000;

export async function realMigrate(scenario: Scenario, o: MigrateOptions): Promise<RealMigration> {
  if (!scenario.migration) throw new RealError('unsupported', `${scenario.file}: the scenario has no migration section`);
  // Fail here, with exit code 6, before a second process is started.
  ensurePayload();
  openKvm().close();
  const child = spawn(process.execPath, [
    LATSIM_BIN, 'real', 'incoming', o.file, '--port', '0', '--check', `${Math.round(o.checkNs / 1e6)}ms`, ...o.passArgs,
  ], { stdio: ['ignore', 'pipe', 'inherit'] });
  let fd = -1;
  let session: RealSession<StreamDestination> | null = null;
  try {
    const port = await listeningPort(child, o.startTimeoutMs ?? 120_000);
    let dest: StreamDestination | null = null;
    const hello = (g: KvmGuest): HelloMessage => ({ pages: g.ram.pages, page_size: g.ram.pageSize, vcpus: g.natives.length, scenario: scenario.name });
    const opened: RealSession<StreamDestination> = RealSession.open<StreamDestination>(scenario, {
      keepTrace: o.keepTrace ?? false,
      destination: (_m: Machine, g: KvmGuest, p: RealPlatform) => {
        fd = p.io.tcpConnect('127.0.0.1', port);
        dest = new StreamDestination(p, g, fd, () => deviceState(opened), hello(g));
        return dest;
      },
    });
    session = opened;
    const p = opened.platform;
    const mig = opened.world.migration!;
    const t0 = performance.now();
    let waiting = false;
    const watch = () => {
      const st = mig.status;
      if (st === 'failed' || st === 'cancelled') return p.stop();
      if (st === 'completed' && !waiting) {
        waiting = true;
        const d = dest!;
        p.spawn('migration-return-path', function* () {
          yield* d.awaitReport();
          p.stop();
        });
      }
      p.callAfter(WATCH_INTERVAL_NS, watch);
    };
    p.callAfter(WATCH_INTERVAL_NS, watch);
    const { outcome, error } = runGuarded(() => p.run(scenario.duration_ns));
    const run = closeSourceStalls(collectRealRun(opened, outcome, error, t0));
    const d = dest as StreamDestination | null;
    return {
      ...run,
      destination: {
        report: d?.report ?? null,
        loaded: d?.loaded ?? null,
        check_ms: d ? Math.round(d.checkNs / 1e5) / 10 : 0,
        pages_sent: d?.pagesReceived ?? 0,
        wire_bytes: d?.wireBytes ?? 0,
        exit_code: await exited(child, 30_000),
      },
    };
  } finally {
    session?.close();
    if (fd >= 0) {
      try {
        session?.platform.io.close(fd);
      } catch {
        // already closed
      }
    }
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

/** The destination process: waits for the stream, loads it, runs the guest, reports. Returns the exit code. */
export function realIncoming(scenario: Scenario, o: { port: number; checkNs: number; limitNs: number }): number {
  const s = RealSession.open(withoutMigration({ ...scenario, vm: { ...scenario.vm, run_state: 'inmigrate' } }), { incoming: true });
  try {
    const io = s.platform.io;
    const lfd = io.tcpListen('127.0.0.1', o.port);
    process.stdout.write(`listening ${io.socketLocalPort(lfd)}\n`);
    const inc = new IncomingMigration(s, lfd, o.checkNs);
    inc.start();
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
    child.once('exit', (code) => {
      // The destination prints its own one-line reason on stderr (inherited).
      if (code === 6) done(new RealError('unavailable', 'unavailable: the destination process could not open KVM'));
      else done(new RealError('peer', `the destination process exited with code ${code} before listening`));
    });
  });
}

/** The child's exit code once it exits (null if it does not within timeoutMs). */
function exited(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

// `latsim real ...`: the scenario's VM on KVM, with the same Machine, main
// loop, devices, migration statechart and RAM code as the simulator.
//   probe     what this host offers: KVM API version, capabilities, dirty-log modes
//   run       the scenario's VM for its duration in real time (no migration)
//   migrate   live migration to a second process over loopback TCP
//   compare   the scenario on both backends, side by side
//   incoming  the destination process of `migrate` (started by it)
// Without KVM, the addon or the guest payload, every one of them prints one
// line and exits 6; a guest that fails (triple fault) exits 7; a destination
// process that fails, or a broken migration stream, exits 8: before the
// switchover the result says the migration failed and the guest keeps
// running on the source, after it that the guest is lost on both sides.
// Leaves out: --seed (a real run is not reproducible) and fingerprint checks.
import { Option, type Command } from 'commander';
import { UsageError } from '../errors.ts';
import { realScenarioOf } from '../real-scenario.ts';
import { parseDuration } from '../../sim/scenario/units.ts';
import type { World } from '../../sim/world.ts';
import { textReport } from '../../reports/text.ts';
import { resultJson } from '../../reports/json.ts';
import { perfettoTrace } from '../../reports/perfetto.ts';
import { writeReports } from '../../reports/write.ts';
import { writeAll, writeFileAtomic } from '../output.ts';
import { probeKvm, DEFAULT_ADDON_PATH, DEFAULT_KVM_DEVICE, type CapName } from '../../real/kvm/index.ts';
import { PAYLOAD_PATH } from '../../real/guest/loader.ts';
import { existsSync } from 'node:fs';
import { ensurePayload, openKvm } from '../../real/world.ts';
import { realRun, type RealInfo, type RealRun } from '../../real/run.ts';
import { checkRealMigration, realIncoming, realMigrate, type DestinationInfo } from '../../real/migrate.ts';
import { FAULT_POINTS, parseFault, type DestinationFault } from '../../real/incoming.ts';
import { compareResults, compareTable } from '../../real/compare.ts';
import { simulate } from '../../sim/run.ts';
import { classify, REAL_EXIT, RealError } from '../../real/errors.ts';
import { exitCodeOf } from '../exit-codes.ts';

export const REAL_EXIT_CODES_HELP = `
Exit codes (besides those of latsim run):
  6  real mode unavailable: no /dev/kvm or no permission, KVM API version other
     than 12, a missing capability, the addon or the guest payload not built
  7  the guest failed: triple fault, failed VM entry, KVM internal error
  8  migrate: the destination process failed, the migration stream broke or
     stopped moving for migration.stream_timeout (default 10s); the migration
     failed and the guest keeps running on the source, or, after the
     switchover, the guest is lost on both sides
`;

interface CommonOptions {
  json?: boolean;
  duration?: string;
  memory?: string;
  report?: string;
  trace?: string;
}

/** Runs a real-mode action; unavailability and guest failures become one line and their exit code. */
async function guarded(action: () => Promise<number> | number): Promise<void> {
  try {
    process.exitCode = await action();
  } catch (e) {
    const r = classify(e);
    if (!r) throw e;
    process.stderr.write(`latsim: real: ${r.message}\n`);
    process.exitCode = r.exitCode;
  }
}

/** Prints a real run as `latsim run` prints a simulated one, plus its `real` section. */
export function printRun(run: RealRun, o: CommonOptions, extra: Record<string, unknown> = {}): void {
  const r = run.result;
  // The report first: a file that cannot be written does not cost it.
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ ...resultJson(r), real: { ...run.real, ...extra } }, null, 2)}\n`);
  } else {
    process.stdout.write(`${textReport(r)}\n\n${realText(run.real)}\n`);
  }
  if (r.error) process.stderr.write(`latsim: ${r.error}\n`);
  writeAll([
    () => o.trace !== undefined && writeFileAtomic(o.trace, JSON.stringify(perfettoTrace(run.world.machine.trace.records, r))),
    // The report writers read only the result and the trace records of the world.
    () => o.report !== undefined && writeReports(o.report, { result: r, world: run.world as unknown as World, error: run.error }, 'real run'),
  ]);
}

/** The text lines of the `real` section. */
export function realText(real: RealInfo): string {
  const out = ['real (KVM):'];
  out.push(real.dirty_ring
    ? `  KVM API ${real.kvm.api_version}, dirty ring of ${real.dirty_ring.size} entries (KVM_CAP_${real.kvm.dirty_ring_cap}), ` +
      `${real.ring_full_exits} ring-full exits, ${real.dirty_ring.reaps} reaps of ${real.dirty_ring.reaped_pages} pages`
    : `  KVM API ${real.kvm.api_version}, dirty log ${real.kvm.manual_dirty_log ? 'manual (KVM_CLEAR_DIRTY_LOG)' : 'KVM_GET_DIRTY_LOG'}, ${real.dirty_log_reads} reads`);
  for (const v of real.vcpus) {
    out.push(`  ${v.name}: ${v.workload} at ${v.tick_hz} ticks/s (${v.dirty_rate} pages/s, ${v.exit_rate.toFixed(0)} exits/s): ` +
      `${v.heartbeat} ticks, ${v.pages_written} page writes, ${v.exits} exits`);
  }
  if (real.net) {
    out.push(`  virtio-net tx ring: ${real.net.ring_popped} popped, ${real.net.ring_used} used, ${real.net.kicks} kicks ` +
      `(${real.net.kicks_suppressed} suppressed), ${real.net.replies} ping replies${real.net.broken ? `; BROKEN: ${real.net.broken}` : ''}`);
  }
  out.push(`  loop: ${real.loop.events} events, blocked in epoll_wait ${real.loop.blocked_waits} times for ${real.loop.blocked_ms} ms`);
  for (const d of real.debug) out.push(`  guest: ${d}`);
  return out.join('\n');
}

function probeAction(o: { json?: boolean }): number {
  const p = probeKvm();
  const addon = existsSync(DEFAULT_ADDON_PATH);
  const payload = existsSync(PAYLOAD_PATH);
  if (!p.available) {
    if (o.json) process.stdout.write(`${JSON.stringify({ available: false, code: p.code, reason: p.reason, device: DEFAULT_KVM_DEVICE, addon, payload })}\n`);
    throw new RealError('unavailable', p.reason);
  }
  const dirtyRing = Math.max(p.caps.DIRTY_LOG_RING, p.caps.DIRTY_LOG_RING_ACQ_REL ?? 0);
  const out = {
    available: true,
    device: DEFAULT_KVM_DEVICE,
    api_version: p.apiVersion,
    caps: p.caps,
    dirty_log: {
      get_dirty_log: p.caps.USER_MEMORY > 0,
      manual_protect: p.manualDirtyLog,
      initially_set: p.manualDirtyLogInitiallySet,
      ring_bytes: dirtyRing,
      ring_acq_rel: (p.caps.DIRTY_LOG_RING_ACQ_REL ?? 0) > 0,
    },
    addon: DEFAULT_ADDON_PATH,
    payload: payload ? PAYLOAD_PATH : null,
  };
  if (o.json) {
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return 0;
  }
  const lines = [`KVM: ${out.device}, API version ${out.api_version}`, '', 'dirty-log modes:'];
  lines.push(`  KVM_GET_DIRTY_LOG (KVM_MEM_LOG_DIRTY_PAGES)   ${out.dirty_log.get_dirty_log ? 'yes' : 'no'}`);
  lines.push(`  KVM_CLEAR_DIRTY_LOG (manual protect)         ${out.dirty_log.manual_protect ? `yes${out.dirty_log.initially_set ? ', initially-set too' : ''}` : 'no'}`);
  lines.push(`  dirty ring (KVM_CAP_DIRTY_LOG_RING)          ${dirtyRing > 0
    ? `offered, up to ${dirtyRing / 16} entries per vCPU${out.dirty_log.ring_acq_rel ? ' (_ACQ_REL too)' : ''}; used with vm.dirty_ring_size`
    : 'no'}`);
  lines.push('', 'capabilities (KVM_CHECK_EXTENSION):');
  for (const [name, v] of Object.entries(p.caps) as [CapName, number][]) lines.push(`  KVM_CAP_${name.padEnd(28)} ${v}`);
  lines.push('', `addon: ${addon ? DEFAULT_ADDON_PATH : 'not built'}`, `guest payload: ${payload ? PAYLOAD_PATH : 'not built yet (built on first use)'}`);
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

/** --duration and --memory as given, for the destination process. */
function passArgs(o: CommonOptions): string[] {
  return [...(o.duration ? ['--duration', o.duration] : []), ...(o.memory ? ['--memory', o.memory] : [])];
}

function checkNsOf(text: string | undefined): number {
  if (text === undefined) return 500_000_000;
  const d = parseDuration(text);
  if (d === null || d <= 0) throw new UsageError(`--check: expected a duration such as 500ms, got ${JSON.stringify(text)}`);
  return d;
}

/** The lines about the destination, and where the guest is after a fault. */
export function destinationText(d: DestinationInfo): string {
  const r = d.report;
  const out = ['destination (second process):'];
  out.push(`  ${d.pages_sent} pages sent in ${d.wire_bytes} bytes on the socket; memory check ${d.check_ms} ms (not in the downtime)`);
  if (r) {
    out.push(`  ${r.running ? 'running' : 'NOT running'}: heartbeat ${r.heartbeat_before} -> ${r.heartbeat_after} in ${r.window_ms} ms, ` +
      `${r.exits} exits served, ${r.pages_received} pages received`);
  } else {
    out.push('  no report from the destination');
  }
  const ended = d.exit_signal ? `killed by ${d.exit_signal}` : d.exit_code === null ? 'still running' : `exit code ${d.exit_code}`;
  out.push(`  process ${d.pid ?? '-'}: ${ended}`);
  if (d.error) out.push(`  error: ${d.error}`);
  const a = d.source_after_failure;
  if (a) {
    out.push(`  on the source after the failure: ${a.running ? 'running' : 'NOT running'}, ` +
      `heartbeat ${a.heartbeat_before} -> ${a.heartbeat_after} in ${a.window_ms} ms after the failure`);
  }
  if (d.guest === 'lost' && !d.error?.startsWith('the guest is lost')) out.push('  the guest is lost on both sides');
  return out.join('\n');
}

/** The one line a migration that failed under a fault leaves on stderr, or null. */
export function faultLine(d: DestinationInfo): string | null {
  if (!d.error) return null;
  if (d.guest === 'lost') return d.error.startsWith('the guest is lost') ? d.error : `the guest is lost on both sides: ${d.error}`;
  const runs = d.source_after_failure?.running ?? false;
  return `the migration failed: ${d.error}; the guest ${runs ? 'keeps running on' : 'stays, not running, on'} the source`;
}

async function migrateAction(file: string, o: CommonOptions & { check?: string; destinationFault?: DestinationFault }): Promise<number> {
  const scenario = realScenarioOf(file, o);
  const run = await realMigrate(scenario, {
    file, passArgs: passArgs(o), keepTrace: Boolean(o.trace || o.report), checkNs: checkNsOf(o.check), fault: o.destinationFault ?? null,
  });
  const d = run.destination;
  printRun(run, o, { destination: d });
  if (!o.json) process.stdout.write(`${destinationText(d)}\n`);
  let code = exitCodeOf(run.result);
  // The guest must keep running on the destination.
  if (run.result.migration?.status === 'completed' && (!d.report || d.report.heartbeat_after <= d.report.heartbeat_before)) code = Math.max(code, 1);
  const line = faultLine(d);
  if (line !== null && code !== 4) {
    process.stderr.write(`latsim: real: ${line}\n`);
    code = REAL_EXIT.peer;
  }
  return code;
}

/** --destination-fault / --fault: `kill@ram`, `stop@eos`, ... */
function faultOption(flag: string): Option {
  return new Option(`${flag} <signal@point>`, `tests: the destination sends itself SIGKILL (kill) or SIGSTOP (stop) at ${FAULT_POINTS.join(', ')}`)
    .hideHelp()
    .argParser((v: string) => {
      const f = parseFault(v);
      if (!f) throw new UsageError(`${flag}: expected kill or stop, @, and one of ${FAULT_POINTS.join(', ')}; got ${JSON.stringify(v)}`);
      return f;
    });
}

async function compareAction(file: string, o: CommonOptions & { check?: string }): Promise<number> {
  const scenario = realScenarioOf(file, o);
  checkRealMigration(scenario);
  ensurePayload();
  openKvm().close(); // unavailable: say so before simulating
  const sim = simulate(scenario).result;
  const realRunResult = scenario.migration
    ? await realMigrate(scenario, { file, passArgs: passArgs(o), checkNs: checkNsOf(o.check) })
    : realRun(scenario);
  const rows = compareResults(sim, realRunResult.result);
  if (o.json) {
    process.stdout.write(`${JSON.stringify({
      scenario: scenario.name, file, seed: scenario.seed, duration_ns: scenario.duration_ns, memory_bytes: scenario.vm.memory_bytes,
      rows, sim: resultJson(sim), real: { ...resultJson(realRunResult.result), real: realRunResult.real },
    }, null, 2)}\n`);
  } else {
    const mem = `${Math.round(scenario.vm.memory_bytes / 2 ** 20)} MiB`;
    process.stdout.write(`latsim real compare: ${scenario.name} (${file}), seed ${scenario.seed}, ${mem}, ` +
      `${scenario.duration_ns / 1e9} s${scenario.migration ? ', migration to a second process' : ''}\n\n${compareTable(rows)}\n`);
  }
  return 0;
}

function runAction(file: string, o: CommonOptions & { crashGuest?: boolean }): number {
  const scenario = realScenarioOf(file, o);
  if (scenario.migration) process.stderr.write('latsim: real run leaves the migration out (latsim real migrate migrates)\n');
  const run = realRun(scenario, { keepTrace: Boolean(o.trace || o.report), crash: o.crashGuest ?? false });
  printRun(run, o);
  return exitCodeOf(run.result);
}

export function registerReal(command: Command): void {
  const real = command
    .addHelpText('after', REAL_EXIT_CODES_HELP);

  real.command('probe')
    .description('say what this host offers: KVM API version, capabilities, dirty-log modes')
    .option('--json', 'print one JSON object')
    .action((o: { json?: boolean }) => guarded(() => probeAction(o)));

  real.command('run')
    .description('run the scenario\'s VM on KVM for its duration in real time (the migration is left out)')
    .argument('<scenario>', 'scenario file (YAML)')
    .option('--json', 'print the result as one JSON object')
    .option('--duration <d>', 'run this long instead of the scenario\'s duration (e.g. 5s)')
    .option('--memory <size>', 'give the guest this much memory instead (e.g. 64MiB)')
    .option('--trace <file>', 'write a Perfetto / Chrome trace-event JSON file')
    .option('--report <dir>', 'write report.txt, result.json, trace.json and report.html to a directory')
    .option('--crash-guest', 'run the payload\'s triple-fault workload on vCPU 0 (to see the error path)')
    .action((file: string, o: CommonOptions & { crashGuest?: boolean }) => guarded(() => runAction(file, o)));

  real.command('migrate')
    .description('migrate the running guest live to a second process over loopback TCP, with the same statechart and RAM code')
    .argument('<scenario>', 'scenario file (YAML) with a migration section')
    .option('--json', 'print the result as one JSON object')
    .option('--duration <d>', 'end the run after this long at most (e.g. 10s)')
    .option('--memory <size>', 'give the guest this much memory instead (e.g. 64MiB)')
    .option('--check <d>', 'how long the guest runs on the destination before it reports, or on the source after a failed migration (default 500ms)')
    .option('--trace <file>', 'write a Perfetto / Chrome trace-event JSON file')
    .option('--report <dir>', 'write report.txt, result.json, trace.json and report.html to a directory')
    .addOption(faultOption('--destination-fault'))
    .action((file: string, o: CommonOptions & { check?: string; destinationFault?: DestinationFault }) => guarded(() => migrateAction(file, o)));

  real.command('compare')
    .description('run the scenario on the simulator and on KVM and print dirty-sync-count, pages, iterations and downtime side by side')
    .argument('<scenario>', 'scenario file (YAML)')
    .option('--json', 'print both results and the rows as one JSON object')
    .option('--duration <d>', 'both runs last this long instead (e.g. 10s)')
    .option('--memory <size>', 'both guests get this much memory instead (e.g. 64MiB)')
    .option('--check <d>', 'how long the guest runs on the destination before it reports (default 500ms)')
    .action((file: string, o: CommonOptions & { check?: string }) => guarded(() => compareAction(file, o)));

  real.command('incoming', { hidden: true })
    .description('the destination process of latsim real migrate: listens, loads the stream, runs the guest, reports')
    .argument('<scenario>', 'scenario file (YAML)')
    .requiredOption('--port <n>', 'TCP port on 127.0.0.1 to listen on (0: any; the port is printed as "listening N")')
    .option('--duration <d>', 'as given to migrate')
    .option('--memory <size>', 'as given to migrate')
    .option('--check <d>', 'how long the guest runs here before the report (default 500ms)')
    .addOption(faultOption('--fault'))
    .action((file: string, o: CommonOptions & { port: string; check?: string; fault?: DestinationFault }) => guarded(() => {
      const scenario = realScenarioOf(file, o);
      const port = Number(o.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port: expected a TCP port, got ${JSON.stringify(o.port)}`);
      return realIncoming(scenario, { port, checkNs: checkNsOf(o.check), limitNs: scenario.duration_ns + 120_000_000_000, fault: o.fault ?? null });
    }));

  for (const c of real.commands) c.exitOverride().configureOutput({ outputError: () => {} });
}

export { REAL_EXIT };

// The QEMU backend's programmatic API (see README.md): run a scenario on real
// QEMU, probe a QEMU binary, measure loopback TCP, and the parts a CLI or a
// test may want on their own (QMP client, NBD server, trace parsing); and
// what latsim qemu compare and the fidelity suite are made of (QEMU's stream,
// the comparison, budgets on QEMU runs, medians over repeats, QMP capabilities).
export { runOnQemu, qemuArgs, QemuUnavailable, type QemuRunOptions } from './run.ts';
export { probeQemu, DEFAULT_QEMU, GUEST_ELF, type QemuProbe } from './probe.ts';
export { measureLoopback, type LoopbackResult } from './loopback.ts';
export { QmpClient, QmpError, QmpTimeout, type QmpEvent } from './qmp.ts';
export { NbdServer, type NbdServerOptions, type NbdRequestRecord } from './nbd-server.ts';
export { QemuProcess, liveQemuCount } from './process.ts';
export { parseTraceLog, syncTable, switchoverSteps, TRACE_EVENTS, type QemuSyncRecord } from './trace.ts';
export { planGuest, type GuestPlan } from './guest-params.ts';
export type { QemuRunResult, QemuMigrationResult, QemuQueryMigrate, QmpPoll } from './result.ts';
export { measureQemuStream, streamScenario, type StreamMeasure } from './stream.ts';
export { compareOnQemu, compareRows, simulatedScenario, type CompareReport, type CompareRow, type CompareOptions } from './compare.ts';
export { evaluateQemuBudgets, qemuExitCode, QEMU_EXIT, type QemuBudgetResult } from './budgets.ts';
export { summarize, median, spread, type RunSummary, type Spread } from './summary.ts';
export { queryCapabilities, type QemuCapabilities } from './capabilities.ts';

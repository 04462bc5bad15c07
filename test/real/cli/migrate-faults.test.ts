/**
 * `latsim real migrate` under faults, end to end: the destination process
 * sends itself SIGKILL or SIGSTOP at a chosen point (`--destination-fault`).
 * Before GO the migration fails through the statechart, the source's guest
 * runs on and its heartbeat keeps advancing, exit 8; a stopped destination is
 * noticed by the stream timeout (1 s here); after GO the run says the guest is
 * lost on both sides, exit 8. Every run ends with the destination process
 * gone; so does a source killed mid-migration. Skip with the reason without
 * /dev/kvm or the addon (fail instead under `npm run test:kvm`); the option's
 * parsing is checked everywhere.
 * Leaves out: timing assertions (the nested test VM is ~100x slower).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { parseFault } from '../../../real/incoming.ts';
import { kvmOrSkip } from '../helpers.ts';

const T = { timeout: 240_000 };
const dir = mkdtempSync(join(tmpdir(), 'latsim-real-faults-'));

/** 16 MiB at 8 MiB/s: the first pass takes about two seconds, time to be hit in. */
const SCENARIO = `
name: real-faults
seed: 5
duration: 120s
vm: { memory: 16MiB, vcpus: 1 }
guest:
  workloads:
    - vcpus: all
      exits: { rate: 100/s, cost: 10us }
      dirty: { rate: 1000/s, pattern: uniform }
devices:
  net:
    - name: net0
      peer: { ping_interval: 100ms, ping_timeout: 5s }
migration:
  start: 300ms
  max_bandwidth: 8MiB/s
  downtime_limit: 300ms
`;

const file = join(dir, 'faults.yaml');
writeFileSync(file, SCENARIO);
const stalling = join(dir, 'faults-1s.yaml');
writeFileSync(stalling, SCENARIO.replace('downtime_limit: 300ms', 'downtime_limit: 300ms\n  stream_timeout: 1s'));

interface Migrated {
  code: number | null;
  stderr: string;
  json: {
    migration: { status: string; fail_reason: string; transitions: { to: string }[]; attempts: { outcome: string }[] };
    real: {
      vcpus: { heartbeat: number }[];
      destination: {
        pid: number | null;
        exit_code: number | null;
        exit_signal: string | null;
        error: string | null;
        guest: 'source' | 'destination' | 'lost';
        source_after_failure: { running: boolean; heartbeat_before: number; heartbeat_after: number } | null;
      };
    };
  };
}

const pids: number[] = [];

/** True while pid runs (a zombie waiting for its reaper has ended). */
function alive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Polls until cond holds or timeoutMs passes; returns whether it held. */
async function eventually(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}

/** The pids of a process's children. */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

function migrate(scenario: string, fault: string): Migrated {
  const r = spawnSync(process.execPath, ['bin/latsim.mjs', 'real', 'migrate', scenario, '--json', '--destination-fault', fault], {
    encoding: 'utf8', timeout: 200_000,
  });
  expect(r.error, 'the run finished').toBeUndefined();
  const json = JSON.parse(r.stdout) as Migrated['json'];
  const pid = json.real.destination.pid;
  if (pid !== null) pids.push(pid);
  return { code: r.status, stderr: r.stderr, json };
}

/** The one `latsim: real:` line of stderr. */
function realLine(stderr: string): string {
  const lines = stderr.trim().split('\n').filter((l) => l.startsWith('latsim: real:'));
  expect(lines, stderr).toHaveLength(1);
  return lines[0]!;
}

afterEach(() => {
  // No stray destination: the source reaped it (a leftover is killed here, and the test fails).
  for (const pid of pids.splice(0)) {
    const was = alive(pid);
    if (was) process.kill(pid, 'SIGKILL');
    expect(was, `destination process ${pid} still exists`).toBe(false);
  }
});

describe('latsim real migrate under faults', () => {
  it('--destination-fault names a signal and a point', () => {
    expect(parseFault('kill@ram')).toEqual({ signal: 'SIGKILL', at: 'ram' });
    expect(parseFault('stop@go')).toEqual({ signal: 'SIGSTOP', at: 'go' });
    expect(parseFault('kill@nowhere')).toBeNull();
    expect(parseFault('term@ram')).toBeNull();
  });

  it('the destination killed mid-migration: failed, the source\'s guest runs on, exit 8', T, (ctx) => {
    kvmOrSkip(ctx).close();
    const { code, stderr, json } = migrate(file, 'kill@ram');
    expect(code, stderr).toBe(8);
    const m = json.migration;
    expect(m.status).toBe('failed');
    expect(m.fail_reason).toMatch(/stream broke|closed the migration stream/);
    expect(m.transitions.map((t) => t.to)).toEqual(['setup', 'active', 'failed']);
    const d = json.real.destination;
    expect(d.exit_signal).toBe('SIGKILL');
    expect(d.error).toBe(m.fail_reason);
    expect(d.guest).toBe('source');
    const a = d.source_after_failure!;
    expect(a.running).toBe(true);
    expect(a.heartbeat_after).toBeGreaterThan(a.heartbeat_before);
    expect(json.real.vcpus[0]!.heartbeat).toBeGreaterThanOrEqual(a.heartbeat_after);
    expect(realLine(stderr)).toMatch(/^latsim: real: the migration failed: .*; the guest keeps running on the source$/);
  });

  it('the destination stopped (SIGSTOP): failed after the stream timeout, the source runs on, the destination is reaped', T, (ctx) => {
    kvmOrSkip(ctx).close();
    const { code, stderr, json } = migrate(stalling, 'stop@ram');
    expect(code, stderr).toBe(8);
    expect(json.migration.status).toBe('failed');
    expect(json.migration.fail_reason).toMatch(/no write progress for \d+ ms \(stream timeout 1000 ms\)/);
    const d = json.real.destination;
    // It never exits by itself: the source kills it after the stream timeout.
    expect(d.exit_signal).toBe('SIGKILL');
    expect(d.guest).toBe('source');
    expect(d.source_after_failure!.running).toBe(true);
    expect(d.source_after_failure!.heartbeat_after).toBeGreaterThan(d.source_after_failure!.heartbeat_before);
  });

  it('the destination killed while the source is stopped for completion: vm_start again, the guest runs on', T, (ctx) => {
    kvmOrSkip(ctx).close();
    const { code, stderr, json } = migrate(file, 'kill@eos');
    expect(code, stderr).toBe(8);
    const m = json.migration;
    expect(m.status).toBe('failed');
    expect(m.transitions.map((t) => t.to)).toEqual(['setup', 'active', 'failed']);
    expect(m.attempts.map((x) => x.outcome)).toEqual(['failed']);
    const a = json.real.destination.source_after_failure!;
    expect(json.real.destination.guest).toBe('source');
    expect(a.running).toBe(true);
    expect(a.heartbeat_after).toBeGreaterThan(a.heartbeat_before);
  });

  it('the destination killed after GO, during its start: the guest is lost on both sides, exit 8', T, (ctx) => {
    kvmOrSkip(ctx).close();
    const { code, stderr, json } = migrate(file, 'kill@go');
    expect(code, stderr).toBe(8);
    expect(json.migration.status).toBe('failed');
    const d = json.real.destination;
    expect(d.guest).toBe('lost');
    expect(d.source_after_failure).toBeNull();
    expect(d.error).toMatch(/^the guest is lost on both sides: /);
    expect(realLine(stderr)).toMatch(/^latsim: real: the guest is lost on both sides: .*after GO/);
  });

  it('the destination killed once the guest runs there: completed, then lost, exit 8', T, (ctx) => {
    kvmOrSkip(ctx).close();
    const { code, stderr, json } = migrate(file, 'kill@running');
    expect(code, stderr).toBe(8);
    expect(json.migration.status).toBe('completed');
    const d = json.real.destination;
    expect(d.guest).toBe('lost');
    expect(realLine(stderr)).toMatch(/^latsim: real: the guest is lost on both sides: .*after the guest started there/);
  });

  it('the source killed mid-migration: the destination ends by itself', T, async (ctx) => {
    kvmOrSkip(ctx).close();
    const src = spawn(process.execPath, ['bin/latsim.mjs', 'real', 'migrate', file], { stdio: 'ignore' });
    try {
      let dst = -1;
      expect(await eventually(() => {
        dst = childrenOf(src.pid!).find((c) => cmdline(c).includes('real incoming')) ?? -1;
        return dst > 0;
      }, 60_000), 'the destination process started').toBe(true);
      pids.push(dst);
      // Wait for the stream to flow (or at least not long), then kill the source.
      await new Promise((r) => setTimeout(r, 1500));
      src.kill('SIGKILL');
      // End of stream (or, before the connection, the parent gone) ends it.
      expect(await eventually(() => !alive(dst), 60_000), 'the destination ended').toBe(true);
    } finally {
      if (src.exitCode === null && src.signalCode === null) src.kill('SIGKILL');
    }
  });
});

// The fidelity suite (`npm run test:qemu`): every scenarios/fidelity/*.yaml
// on the simulation and once on real QEMU with KVM, compared metric by metric
// (real/qemu/compare.ts), after one measurement of QEMU's own migration stream
// that becomes the simulated link. Each case prints its table; the end prints
// every case's gaps outside its `fidelity` goals.
//
// What fails the suite now: a QEMU run that errs or whose guest or migration
// fails, a completed migration whose destination memory differs from the
// source's (or was not checked; for postcopy, whose destination runs from
// the switch, a fault never answered), a comparison without its rows. What does not:
// the gaps themselves. The goals are for the model's next revision; today
// they are printed (docs/fidelity.md explains them).
//
// Without QEMU, /dev/kvm or a buildable guest payload every case skips with
// one line; LATSIM_REAL_REQUIRED=1 makes that a failure. LATSIM_QEMU=<binary>
// runs it on another QEMU (e.g. a source tree's build/qemu-system-x86_64);
// LATSIM_FIDELITY_JSON=<file> writes every comparison as JSON.
import { spawnSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadScenarioFile } from '../../cli/scenario-file.ts';
import { resultJson } from '../../reports/json.ts';
import { compareOnQemu, type CompareReport } from '../../real/qemu/compare.ts';
import { DEFAULT_QEMU, probeQemu } from '../../real/qemu/probe.ts';
import { liveQemuCount } from '../../real/qemu/process.ts';
import { compareText, gapText, qemuCell } from '../../real/qemu/report.ts';
import { measureQemuStream, type StreamMeasure } from '../../real/qemu/stream.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const DIR = join(ROOT, 'scenarios', 'fidelity');
const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml')).sort();
const QEMU = process.env['LATSIM_QEMU'] || DEFAULT_QEMU;

function unavailable(): string | null {
  let p = probeQemu(QEMU);
  if (!p.guest_built && p.version && p.kvm) {
    spawnSync(process.execPath, [join(ROOT, 'real', 'qemu', 'guest', 'build.mjs')], { encoding: 'utf8' });
    p = probeQemu(QEMU);
  }
  if (p.available) return null;
  const reason = `QEMU backend unavailable: ${p.reason}`;
  if (process.env['LATSIM_REAL_REQUIRED'] === '1') throw new Error(`real mode required (LATSIM_REAL_REQUIRED=1) but ${reason}`);
  return reason;
}

const reason = unavailable();
if (reason) process.stdout.write(`fidelity suite skipped: ${reason}\n`);

const reports: CompareReport[] = [];
let stream: StreamMeasure | null = null;
const t0 = performance.now();

describe('fidelity suite: scenarios/fidelity on the simulation and on QEMU', () => {
  beforeAll(async () => {
    if (reason) return;
    stream = await measureQemuStream({ qemu: QEMU, preallocDestination: true });
    process.stdout.write(`QEMU's unthrottled stream: ${(stream.bandwidth / 1e6).toFixed(1)} MB/s (${stream.mbps} Mbit/s; ` +
      `${Math.round(stream.memory_bytes / 2 ** 20)} MiB populated guest, destination preallocated): the simulated link of every case\n`);
  });

  it('has at least ten cases', () => {
    expect(files.length).toBeGreaterThanOrEqual(10);
  });

  for (const f of files) {
    it(f, async (ctx) => {
      if (reason) ctx.skip(reason);
      const s = loadScenarioFile(join('scenarios', 'fidelity', f));
      const c = await compareOnQemu(s, { qemu: QEMU, linkBandwidth: stream!.bandwidth, repeat: 1, preallocDestination: true });
      reports.push(c);
      process.stdout.write(`\n${compareText(c)}\n`);
      expect(liveQemuCount()).toBe(0);
      // What must hold now: QEMU ran the case, checked memory (postcopy: answered every fault), and the table exists.
      for (const r of c.runs) {
        expect(r.error, `${f}: QEMU run failed`).toBeNull();
        expect(r.failure, `${f}: ${r.failure} failed`).toBeNull();
        expect(r.outcome).toBe('ok');
        if (r.migration?.status === 'completed' && s.migration?.postcopy) {
          // The destination ran the guest from the switch on: its memory has moved on; every fault was answered.
          expect(r.migration.postcopy, `${f}: no postcopy figures`).not.toBeNull();
          expect(r.migration.postcopy!.started_at_ns, `${f}: migrate-start-postcopy never sent`).toBeGreaterThan(0);
          expect(r.migration.postcopy!.unanswered, `${f}: faults never answered`).toBe(0);
        } else if (r.migration?.status === 'completed') {
          expect(r.verify, `${f}: memory not checked`).not.toBeNull();
          expect(r.migration.verified, `${f}: destination memory differs`).toBe(true);
        }
      }
      expect(c.rows.length).toBeGreaterThanOrEqual(9);
      expect(c.rows.find((r) => r.metric === 'status')).toBeDefined();
    });
  }

  afterAll(() => {
    if (reports.length === 0) return;
    const lines = ['', `fidelity suite: ${reports.length} cases in ${Math.round((performance.now() - t0) / 1000)} s; gaps outside the goals (not failures):`];
    for (const c of reports) {
      const outside = c.rows.filter((r) => r.within === false);
      lines.push(`  ${c.scenario}: ${outside.length === 0 ? 'every goal met' : outside.map((r) => `${r.metric} ${r.sim} vs ${qemuCell(r)}${r.gap === null ? '' : ` (${gapText(r.gap)})`}`).join('; ')}`);
    }
    process.stdout.write(`${lines.join('\n')}\n`);
    const out = process.env['LATSIM_FIDELITY_JSON'];
    if (out) writeFileSync(out, `${JSON.stringify({ stream, cases: reports.map((c) => ({ ...c, sim: resultJson(c.sim) })) }, null, 2)}\n`);
  });
});

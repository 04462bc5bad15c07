// `latsim fuzz`: a seed always draws the same knobs; the fast-check shrinker
// finds the smallest knobs that still fail; clean seeds pass (exit 0); and
// with a planted bug (the dirty-bitmap sync drops new bits) fuzz finds it in
// a phase, exits 4, shrinks it to a small scenario written to --out
// (never to scenarios/regressions from a test) that still fails when run.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KNOB_TABLE, knobsOf } from '../../../cli/fuzz/knobs.ts';
import { shrinkKnobs } from '../../../cli/fuzz/shrink.ts';
import { buildScenario } from '../../../cli/fuzz/scenario.ts';
import { judge, runPhase } from '../../../cli/fuzz/check.ts';
import { fuzzSeed } from '../../../cli/fuzz/seed.ts';
import { parseScenario, scenarioFromObject } from '../../../cli/scenario-file.ts';

const dir = mkdtempSync(join(tmpdir(), 'latsim-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function latsim(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/latsim.mjs', ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const regressions = () => (existsSync('scenarios/regressions') ? readdirSync('scenarios/regressions').sort() : []);

describe('fuzz knobs and shrinking', () => {
  it('draws the same knobs for a seed, others for another, within their ranges, and valid scenarios whose files say what runs', () => {
    expect(knobsOf(17)).toEqual(knobsOf(17));
    expect(knobsOf(17)).not.toEqual(knobsOf(18));
    for (let seed = 1; seed <= 30; seed++) {
      const k = knobsOf(seed);
      for (const [name, lo, hi] of KNOB_TABLE) {
        expect(k[name]).toBeGreaterThanOrEqual(lo);
        expect(k[name]).toBeLessThanOrEqual(hi);
      }
      for (const phase of ['safety', 'liveness'] as const) {
        const s = buildScenario(k, { seed, phase, plant: null });
        // What runs (the object) is what the regression file says (its text).
        expect(scenarioFromObject(s.doc, `fuzz-${seed}.yaml`)).toEqual(parseScenario(s.text, `fuzz-${seed}.yaml`));
      }
    }
  });

  it('shrinks to the smallest knobs that still fail', () => {
    const start = { ...knobsOf(3), dirty_rate: 15_000, vcpus: 2, memory: 3 };
    const shrunk = shrinkKnobs(start, (k) => k.dirty_rate > 5000 && k.vcpus === 2);
    expect(shrunk.knobs.dirty_rate).toBe(5001);
    expect(shrunk.knobs.vcpus).toBe(2);
    for (const [name, lo] of KNOB_TABLE) if (name !== 'dirty_rate' && name !== 'vcpus') expect(shrunk.knobs[name], name).toBe(lo);
    expect(shrinkKnobs(start, () => false).knobs).toEqual(start);
  });
});

describe('a seed\'s two phases', () => {
  it('judges the liveness phase from the safety run when the knobs describe the same run, as running it would', () => {
    let shared = 0;
    for (let seed = 1; seed <= 40 && shared < 3; seed++) {
      const k = knobsOf(seed);
      const safety = buildScenario(k, { seed, phase: 'safety', plant: null });
      const liveness = buildScenario(k, { seed, phase: 'liveness', plant: null });
      if (safety.model !== liveness.model) continue;
      const a = runPhase(safety, 'safety');
      const r = a.result!;
      if (r.migration?.status !== 'completed' || r.sim_time_ns >= Math.min(safety.duration_ns, liveness.duration_ns)) continue;
      shared++;
      const b = runPhase(liveness, 'liveness');
      // The same run: same end, same migration, same judgement.
      expect(b.result!.sim_time_ns, `seed ${seed}`).toBe(r.sim_time_ns);
      expect(b.result!.events, `seed ${seed}`).toBe(r.events);
      expect(b.result!.migration, `seed ${seed}`).toEqual(r.migration);
      expect(judge(r, 'liveness'), `seed ${seed}`).toEqual(b.failure);
      expect(fuzzSeed({ seed, plant: null, out: dir, deadline_ms: null }).failure).toEqual(b.failure);
    }
    expect(shared).toBe(3);
  });
});

describe('latsim fuzz', () => {
  it('passes clean seeds with exit 0', () => {
    const r = latsim('fuzz', '--seeds', '3', '--seed-start', '42', '--out', dir, '--json');
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ format: 'latsim-fuzz', seeds: 3, passed: 3, failures: [] });
    expect(j.rows.map((x: { seed: number }) => x.seed)).toEqual([42, 43, 44]);
  });

  it('finds a planted bug, shrinks it to a small scenario that still fails, and writes it to --out', () => {
    const before = regressions();
    const out = join(dir, 'regressions');
    const r = latsim('fuzz', '--seeds', '3', '--plant', 'sync-drops-new-bits', '--out', out, '--json');
    expect(r.code, r.stderr).toBe(4);
    const j = JSON.parse(r.stdout);
    expect(j.failures.length).toBeGreaterThanOrEqual(1);
    const f = j.failures[0];
    // Either phase may meet the planted bug first: both run the seed's migration.
    expect(f).toMatchObject({ class: 'lost-page', exit_code: 4 });
    expect(['safety', 'liveness']).toContain(f.phase);
    expect(f.error).toMatch(/invariant violated \(lost-page\)/);
    expect(f.shrunk_file).toBe(join(out, `fuzz-lost-page-${f.seed}.yaml`));
    expect(f.replay).toBe(`latsim run ${f.shrunk_file}`);
    expect(regressions()).toEqual(before);

    const text = readFileSync(f.shrunk_file, 'utf8');
    expect(text).toContain(`seed ${f.seed}, planted bug sync-drops-new-bits`);
    expect(text).toContain(`# Replay: latsim run ${f.shrunk_file}`);
    expect(text).toContain(`latsim fuzz --seed-start ${f.seed} --seeds 1 --plant sync-drops-new-bits`);
    const s = parseScenario(text, f.shrunk_file);
    // Shrunk: the smallest memory, one vCPU, no devices, no faults, legacy policy; the bug and a dirtying guest remain.
    expect(s.vm.memory_bytes).toBe(64 * 2 ** 20);
    expect(s.vm.vcpus).toBe(1);
    expect(s.devices.net.length + s.devices.blk.length).toBe(0);
    expect(s.faults).toEqual([]);
    expect(s.migration!.policy).toEqual(['legacy']);
    expect(s.migration!.bug).toBe('sync-drops-new-bits');
    expect(s.guest.workloads[0]!.dirty!.rate).toBe(100);

    const replay = latsim('run', f.shrunk_file, '--json');
    expect(replay.code).toBe(4);
    expect(JSON.parse(replay.stdout).error).toMatch(/invariant violated \(lost-page\)/);

    const human = latsim('fuzz', '--seeds', '1', '--seed-start', String(f.seed), '--plant', 'sync-drops-new-bits', '--out', out, '--shrink-runs', '0');
    expect(human.code).toBe(4);
    expect(human.stdout).toContain(`seed ${f.seed}: ${f.phase} phase: lost-page`);
    expect(human.stdout).toMatch(/fuzz: 1 seeds run of \d+\.\.\d+, planted bug sync-drops-new-bits: 0 passed, 1 failed \(1 safety, 0 liveness\)/);
  });

  it('exits 2 for an unknown planted bug', () => {
    const r = latsim('fuzz', '--plant', 'no-such-bug');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--plant: expected one of sync-drops-new-bits, skip-final-flush');
  });
});

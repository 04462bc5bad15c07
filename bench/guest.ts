// `npm run bench -- guest [--json]`: dirty-log writes per second and memory of
// a 256 GiB guest (2^26 pages of 4 KiB) whose 4 vCPUs dirty pages uniformly.
//   - scenario: the whole model (parseScenario + simulate): 4 vCPUs writing
//     --rate pages/s each for --seconds of simulated time while a migration
//     at QEMU's default 128 MiB/s keeps dirty logging on; writes/s of wall
//     time, simulated/wall ratio, peak RSS of its own process, and the bytes
//     of state per page from the typed arrays the run allocated (page
//     versions, KVM dirty log, migration bitmap, destination copy);
//   - Dirtier loop: the write path alone, four Dirtiers (one Rng stream each,
//     as the vCPUs have) advanced in 1 ms slices over the same GuestRam;
//   - raw loop (the floor): a flat array of versions and the same dirty
//     log written by an inline loop with an inline xorshift32, no model
//     code: what the memory allows;
//   - baseline, per-page objects: an array of {version, dirty} objects (the
//     obvious model) against GuestRam.write, both on 2^22 pages (a 16 GiB
//     guest; the objects of 2^26 pages, some 3 GiB of heap, are extrapolated)
//     with the same index stream: bytes per page from the heap, and writes/s.
// Each case runs in its own child process (`--case NAME`), so each peak RSS
// is its own.
//
// Leaves out: non-uniform patterns (hot sets stay in cache and run faster),
// the cost of sending pages (bench/migrate.ts), and KVM's real dirty log.
// Options: --pages N (default 2^26), --vcpus N (4), --rate N pages/s per vCPU
// (default 1e6), --seconds N simulated (2), --writes N per timed segment of
// the loops (1e7), --reps N (best of N segments, 5), --object-pages N (2^22),
// --seed N (1).

import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseScenario } from '../cli/scenario-file.ts';
import { Dirtier } from '../sim/guest/dirtier.ts';
import { GuestRam } from '../sim/guest/ram.ts';
import { Destination } from '../sim/migration/destination.ts';
import { simulate } from '../sim/run.ts';
import { RandomStreams } from '../sim/scheduler/random.ts';
import {
  type BenchOptions, bytesText, fail, intArg, peakRssBytes, printJson, round, si, stringArg, table, usage,
} from './lib.ts';

const PAGE_SIZE = 4096;
const SLICE_NS = 1_000_000;

interface Settings {
  pages: number;
  vcpus: number;
  rate: number;
  seconds: number;
  writes: number;
  reps: number;
  objectPages: number;
  seed: number;
}

interface ScenarioCase {
  writes: number;
  wall_ms: number;
  sim_ns: number;
  peak_rss_bytes: number;
  arrays_bytes: { versions: number; dirty_log: number; migration_bitmap: number; destination: number };
  migration_status: string;
}

interface LoopCase {
  dirtier_writes_per_s: number;
  raw_writes_per_s: number;
  peak_rss_bytes: number;
}

interface ObjectsCase {
  pages: number;
  objects_bytes_per_page: number;
  objects_writes_per_s: number;
  typed_bytes_per_page: number;
  typed_writes_per_s: number;
  peak_rss_bytes: number;
}

const here = dirname(fileURLToPath(import.meta.url));

export default async function guestBench(opts: BenchOptions): Promise<void> {
  const s: Settings = {
    pages: intArg(opts.args, '--pages', 2 ** 26),
    vcpus: intArg(opts.args, '--vcpus', 4),
    rate: intArg(opts.args, '--rate', 1_000_000),
    seconds: intArg(opts.args, '--seconds', 2),
    writes: intArg(opts.args, '--writes', 10_000_000),
    reps: intArg(opts.args, '--reps', 5),
    objectPages: intArg(opts.args, '--object-pages', 2 ** 22),
    seed: intArg(opts.args, '--seed', 1),
  };
  const only = stringArg(opts.args, '--case', '');
  if (only === 'scenario') return printJson({ ...scenarioCase(s) });
  if (only === 'loop') return printJson({ ...loopCase(s) });
  if (only === 'objects') return printJson({ ...objectsCase(s) });
  if (only !== '') usage(`guest: unknown case "${only}" (scenario, loop, objects)`);

  const wallStart = performance.now();
  const passOn = opts.args.filter((a) => a !== '--json');
  const sc = child<ScenarioCase>('scenario', passOn);
  const loop = child<LoopCase>('loop', passOn);
  const obj = child<ObjectsCase>('objects', passOn, ['--expose-gc']);
  const wallS = (performance.now() - wallStart) / 1000;

  const a = sc.arrays_bytes;
  const perPage = (b: number) => b / s.pages;
  const bytesPerPage = {
    total: perPage(a.versions + a.dirty_log + a.migration_bitmap + a.destination),
    versions: perPage(a.versions),
    dirty_log: perPage(a.dirty_log),
    migration_bitmap: perPage(a.migration_bitmap),
    destination: perPage(a.destination),
  };
  const writesPerS = sc.writes / (sc.wall_ms / 1000);
  const simWall = sc.sim_ns / 1e6 / sc.wall_ms;
  const gib = (s.pages * PAGE_SIZE) / 2 ** 30;

  if (opts.json) {
    printJson({
      pages: s.pages,
      guest_gib: gib,
      vcpus: s.vcpus,
      rate_per_vcpu: s.rate,
      sim_s: s.seconds,
      writes: sc.writes,
      writes_per_s: Math.round(writesPerS),
      sim_wall_ratio: round(simWall, 3),
      wall_ms: round(sc.wall_ms, 1),
      peak_rss_bytes: sc.peak_rss_bytes,
      bytes_per_page: Object.fromEntries(Object.entries(bytesPerPage).map(([k, v]) => [k, round(v, 4)])),
      dirtier_loop_writes_per_s: Math.round(loop.dirtier_writes_per_s),
      raw_loop_writes_per_s: Math.round(loop.raw_writes_per_s),
      dirtier_vs_raw: round(loop.dirtier_writes_per_s / loop.raw_writes_per_s, 3),
      baseline_objects: {
        pages: obj.pages,
        bytes_per_page: round(obj.objects_bytes_per_page, 2),
        writes_per_s: Math.round(obj.objects_writes_per_s),
        guest_ram_bytes_per_page: round(obj.typed_bytes_per_page, 4),
        guest_ram_writes_per_s: Math.round(obj.typed_writes_per_s),
        bytes_ratio: round(obj.objects_bytes_per_page / obj.typed_bytes_per_page, 2),
        writes_ratio: round(obj.typed_writes_per_s / obj.objects_writes_per_s, 2),
        peak_rss_bytes: obj.peak_rss_bytes,
      },
      migration_status: sc.migration_status,
      seed: s.seed,
      node: process.version,
      wall_s: round(wallS, 1),
    });
    return;
  }

  console.log(`${gib} GiB guest (${s.pages} pages of 4 KiB), ${s.vcpus} vCPUs each dirtying ${si(s.rate)} pages/s uniformly; ` +
    `seed ${s.seed}; node ${process.version}`);
  console.log('');
  const logBytes = obj.typed_bytes_per_page.toFixed(3);
  console.log(table(['case', 'pages', 'writes/s', 'B/page', 'sim/wall', 'peak RSS'], [
    [`scenario (simulate, ${s.seconds} s)`, pow2(s.pages), si(writesPerS), bytesPerPage.total.toFixed(3), simWall.toFixed(2),
      bytesText(sc.peak_rss_bytes)],
    ['Dirtier loop (write path alone)', pow2(s.pages), si(loop.dirtier_writes_per_s), logBytes, '-', bytesText(loop.peak_rss_bytes)],
    ['raw Uint32Array loop (the floor)', pow2(s.pages), si(loop.raw_writes_per_s), logBytes, '-', '-'],
    ['GuestRam.write', pow2(obj.pages), si(obj.typed_writes_per_s), logBytes, '-', '-'],
    ['per-page {version, dirty} objects', pow2(obj.pages), si(obj.objects_writes_per_s), obj.objects_bytes_per_page.toFixed(1), '-',
      bytesText(obj.peak_rss_bytes)],
  ]));
  console.log('');
  const b = bytesPerPage;
  console.log(`state per page: ${b.total.toFixed(3)} B = versions ${b.versions} + dirty log ${b.dirty_log} + ` +
    `migration bitmap ${b.migration_bitmap} + destination ${b.destination} (allocated; only received pages are resident)`);
  console.log(`Dirtier loop / raw loop: ${(loop.dirtier_writes_per_s / loop.raw_writes_per_s).toFixed(2)} ` +
    '(raw: the same arrays, an inline xorshift32 instead of the Rng streams, no model code)');
  console.log(`GuestRam vs per-page objects at ${pow2(obj.pages)} pages, same index stream: ` +
    `${(obj.objects_bytes_per_page / obj.typed_bytes_per_page).toFixed(1)}x less memory, ` +
    `${(obj.typed_writes_per_s / obj.objects_writes_per_s).toFixed(2)}x the writes/s; ` +
    `objects for ${pow2(s.pages)} pages would take ${bytesText(obj.objects_bytes_per_page * s.pages)}`);
  console.log(`the scenario's migration (128 MiB/s) keeps the dirty log on, status ${sc.migration_status}; wall ${wallS.toFixed(1)} s`);
}

/** 67108864 -> "2^26"; other counts as they are. */
function pow2(n: number): string {
  const e = Math.log2(n);
  return Number.isInteger(e) ? `2^${e}` : String(n);
}

/** The whole model: a scenario whose vCPUs dirty pages while a migration logs them. */
function scenarioCase(s: Settings): ScenarioCase {
  const yaml = [
    'name: bench-guest',
    `seed: ${s.seed}`,
    `duration: ${s.seconds}s`,
    'vm:',
    `  memory: ${(s.pages * PAGE_SIZE) / 2 ** 20}MiB`,
    `  vcpus: ${s.vcpus}`,
    'guest:',
    '  workloads:',
    '    - vcpus: all',
    `      dirty: { rate: ${s.rate}/s, pattern: uniform }`,
    'migration:',
    '  start: 1ms',
    '  max_bandwidth: 128MiB/s',
    '  link: { bandwidth: 10Gbit/s, latency: 100us }',
  ].join('\n');
  const scenario = parseScenario(yaml, 'bench/guest.ts');
  const t0 = performance.now();
  const run = simulate(scenario);
  const wallMs = performance.now() - t0;
  if (run.error) fail('guest', `the scenario failed: ${run.error.message}`);
  const ram = run.world.guest.ram;
  const mig = run.world.migration;
  if (mig === null) fail('guest', 'the scenario has no migration');
  if (!(ram instanceof GuestRam) || !(mig.dest instanceof Destination)) fail('guest', 'the run is not on the simulator\'s memory model');
  return {
    writes: ram.writes,
    wall_ms: wallMs,
    sim_ns: s.seconds * 1e9,
    peak_rss_bytes: peakRssBytes(),
    arrays_bytes: {
      versions: ram.versionBytes,
      dirty_log: ram.dirtyLog.byteLength,
      migration_bitmap: mig.ram.bitmap.byteLength,
      destination: mig.dest.bytes,
    },
    migration_status: mig.status,
  };
}

/** The dirty-log write path alone, then the raw loop on the same arrays. */
function loopCase(s: Settings): LoopCase {
  const ram = new GuestRam(s.pages * PAGE_SIZE, PAGE_SIZE);
  ram.logging = true;
  const streams = new RandomStreams(s.seed);
  const dirtiers: Dirtier[] = [];
  for (let v = 0; v < s.vcpus; v++) {
    dirtiers.push(new Dirtier(ram, {
      rate: s.rate, pattern: 'uniform', first_page: 0, pages: s.pages, hot_pages: 0, cold_fraction: 0,
    }, streams.stream(`vcpu${v}.dirty`)));
  }
  // Best of --reps segments of about --writes writes each, after a warm-up segment.
  const slices = Math.max(1, Math.round(s.writes / (s.vcpus * s.rate * (SLICE_NS / 1e9))));
  const runDirtiers = (): number => {
    const before = ram.writes;
    for (let i = 0; i < slices; i++) for (const d of dirtiers) d.advance(SLICE_NS);
    return ram.writes - before;
  };
  const segmentWrites = runDirtiers();
  const flat = new Uint32Array(s.pages);
  const raw = (n: number, seed: number): number => {
    const versions = flat;
    const log = ram.dirtyLog;
    const pages = s.pages;
    let x = seed | 0 || 1;
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      // Uniform page from 32 random bits, as Rng.int draws it from one double.
      const p = Math.floor((x >>> 0) * 2 ** -32 * pages);
      versions[p] = (versions[p]! + 1) >>> 0 || 1;
      log[p >>> 5]! |= 1 << (p & 31);
    }
    return x;
  };
  raw(segmentWrites, s.seed + 1);
  // Alternating repetitions, so both see the same machine.
  let dirtierBest = 0;
  let rawBest = 0;
  for (let r = 0; r < s.reps; r++) {
    const t0 = performance.now();
    const n = runDirtiers();
    const t1 = performance.now();
    raw(segmentWrites, s.seed + 2 + r);
    const t2 = performance.now();
    dirtierBest = Math.max(dirtierBest, n / ((t1 - t0) / 1000));
    rawBest = Math.max(rawBest, segmentWrites / ((t2 - t1) / 1000));
  }
  return {
    dirtier_writes_per_s: dirtierBest,
    raw_writes_per_s: rawBest,
    peak_rss_bytes: peakRssBytes(),
  };
}

/** Per-page objects against GuestRam at a size both fit, with one index stream. */
function objectsCase(s: Settings): ObjectsCase {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) fail('guest', 'the objects case needs node --expose-gc');
  const n = s.objectPages;
  const writes = Math.min(s.writes, 8 * n);

  gc();
  const heap0 = process.memoryUsage().heapUsed;
  const objects: { version: number; dirty: boolean }[] = new Array(n);
  for (let i = 0; i < n; i++) objects[i] = { version: 1, dirty: false };
  gc();
  const objectsBytes = process.memoryUsage().heapUsed - heap0;
  // One loop per model (a shared loop taking a callback would measure the call).
  const writeObjects = (count: number, seed: number): number => {
    let x = seed | 0 || 1;
    for (let i = 0; i < count; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      const o = objects[Math.floor((x >>> 0) * 2 ** -32 * n)]!;
      o.version = (o.version + 1) >>> 0 || 1;
      o.dirty = true;
    }
    return x;
  };
  const ram = new GuestRam(n * PAGE_SIZE, PAGE_SIZE);
  ram.logging = true;
  const writeRam = (count: number, seed: number): number => {
    let x = seed | 0 || 1;
    for (let i = 0; i < count; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      ram.write(Math.floor((x >>> 0) * 2 ** -32 * n));
    }
    return x;
  };
  writeObjects(writes >>> 3, s.seed + 3);
  writeRam(writes >>> 3, s.seed + 3);
  // Alternating repetitions, so both see the same machine.
  let objectsBest = 0;
  let ramBest = 0;
  for (let r = 0; r < s.reps; r++) {
    const t0 = performance.now();
    writeObjects(writes, s.seed + 4 + r);
    const t1 = performance.now();
    writeRam(writes, s.seed + 4 + r);
    const t2 = performance.now();
    objectsBest = Math.max(objectsBest, writes / ((t1 - t0) / 1000));
    ramBest = Math.max(ramBest, writes / ((t2 - t1) / 1000));
  }
  return {
    pages: n,
    objects_bytes_per_page: objectsBytes / n,
    objects_writes_per_s: objectsBest,
    typed_bytes_per_page: (ram.versionBytes + ram.dirtyLog.byteLength + ram.modified.byteLength) / n,
    typed_writes_per_s: ramBest,
    peak_rss_bytes: peakRssBytes(),
  };
}

/** Runs one case of this benchmark in a child process and returns its JSON. */
function child<T>(name: string, args: readonly string[], nodeFlags: readonly string[] = []): T {
  const bin = join(here, '..', 'bin', 'bench.mjs');
  const run = spawnSync(process.execPath, [...nodeFlags, bin, 'guest', ...args, '--case', name, '--json'], {
    encoding: 'utf8', maxBuffer: 1 << 20,
  });
  if (run.status !== 0) fail('guest', `case ${name} failed (exit ${run.status ?? run.signal}): ${run.stderr}`);
  return JSON.parse(run.stdout) as T;
}

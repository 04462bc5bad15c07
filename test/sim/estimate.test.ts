// The run's estimate before it runs (sim/estimate.ts): the per-page and
// per-block bytes it counts are the model's real ones, its event estimate is
// at least what the shipped scenarios fire, and what grows with the run is
// bounded by the event bound.
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadScenarioFile, parseScenario } from '../../cli/scenario-file.ts';
import { simulate } from '../../sim/run.ts';
import { Scheduler } from '../../sim/scheduler/index.ts';
import { SimPlatform } from '../../sim/sim-platform.ts';
import { buildWorld } from '../../sim/world.ts';
import { BASE_BYTES, DISK_BYTES_PER_BLOCK, estimateEvents, estimateMemory, MIGRATION_BYTES_PER_PAGE } from '../../sim/estimate.ts';
import { RAM_BYTES_PER_PAGE } from '../../sim/guest/ram.ts';

const SMALL = `
name: small
duration: 10s
vm: { memory: 64MiB, vcpus: 2 }
devices:
  blk: [ { name: disk0, io: { rate: 100/s, disk_size: 64MiB } } ]
migration: { start: 1s }
`;

describe('estimateMemory', () => {
  it('counts the bytes the model really allocates per page and per disk block', () => {
    const s = parseScenario(SMALL, 'small.yaml');
    const world = buildWorld(s, new SimPlatform(new Scheduler({ seed: 1 })), false);
    const pages = world.guest.ram.pages;
    const ram = world.guest.ram;
    // A small guest: its bitmaps, and a version for every page.
    expect((ram.versionBytes + ram.dirtyLog.byteLength + ram.modified.byteLength) / pages).toBe(RAM_BYTES_PER_PAGE + 4);
    const mig = world.migration!;
    // Besides its bitmaps, the destination has a table of the pages the guest rewrote (small so far).
    expect((mig.ram.bitmap.byteLength + mig.dest.bytes - mig.dest.versions.tableBytes) / pages).toBe(MIGRATION_BYTES_PER_PAGE);
    const disk = world.devices.blk[0]!;
    const blocks = s.devices.blk[0]!.io.sectors;
    expect((disk.backend.stable.byteLength + disk.backend.cache.byteLength + disk.driver.acked.byteLength) / blocks).toBe(DISK_BYTES_PER_BLOCK);
  });

  it('is the base plus its parts, largest first, each naming a field', () => {
    const e = estimateMemory(parseScenario(SMALL.replace('64MiB, vcpus', '1TiB, vcpus'), 'big.yaml'));
    expect(e.bytes).toBe(BASE_BYTES + e.parts.reduce((t, p) => t + p.bytes, 0));
    expect(e.parts.map((p) => p.bytes)).toEqual([...e.parts.map((p) => p.bytes)].sort((a, b) => b - a));
    expect(e.parts[0]).toEqual({ what: 'migration bitmap and destination: 2^28 pages x 0.5 B', bytes: 2 ** 28 * 0.5, path: ['vm', 'memory'] });
    expect(e.parts[1]!.what).toBe('guest RAM\'s dirty log and bitmaps: 2^28 pages x 0.375 B');
  });

  it('counts the trace only when it is kept', () => {
    const s = parseScenario(SMALL, 'small.yaml');
    const kept = estimateMemory(s, { keepTrace: true });
    const not = estimateMemory(s);
    expect(kept.bytes - not.bytes).toBe(kept.events * (256 - 24));
  });

  it('what grows with the run grows at most with the event bound', () => {
    const text = `name: x\nduration: 24h\nlimits: {max_events: 1000}\nguest: {slice: 10us, userspace: {quantum: 10us}}\ndevices: {net: [{name: n, peer: {ping_interval: 100us, background: 1e6/s}}]}\n`;
    const e = estimateMemory(parseScenario(text, 'x.yaml'), { keepTrace: true });
    expect(e.events).toBe(1000);
    expect(e.bytes - BASE_BYTES - 2 ** 18 * (RAM_BYTES_PER_PAGE + 4)).toBeLessThan(1000 * (256 + 80 + 80 + 100 * 40) + 1);
  });
});

describe('estimateEvents', () => {
  const files = readdirSync('scenarios').filter((f) => f.endsWith('.yaml')).map((f) => `scenarios/${f}`);
  // An upper bound: it assumes the migration streams for the whole run; a fast one is over in a second.
  it.each(files)('is at least what %s fires, and within 10x of it', (file) => {
    const s = loadScenarioFile(file);
    const { result } = simulate(s);
    const est = estimateEvents(s);
    expect(est).toBeGreaterThanOrEqual(result.events);
    expect(est).toBeLessThan(10 * result.events);
  });
});

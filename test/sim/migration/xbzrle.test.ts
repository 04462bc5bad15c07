// xbzrle: a hot-set guest on a slow link sends far fewer bytes, from cache
// hits, and converges where it would not without; a cache too small misses;
// pages sent once before are the only ones encoded; migration-test's byte
// counter sends almost nothing; the destination still equals the source; the
// encoded size follows the model's rule; the page cache is QEMU's direct-mapped
// one; bad values say so in one line.
import { describe, expect, it } from 'vitest';
import { simulate } from '../../../sim/run.ts';
import { checkRealMigration } from '../../../real/migrate.ts';
import { encodedLength, PageCache, XBZRLE_WRITES_PER_LINE_MAX } from '../../../sim/migration/xbzrle.ts';
import { scenario, scenarioErrorOf } from '../helpers.ts';

/** 2 x 50,000 writes/s over a 64 MiB hot set of a 1 GiB guest, on a 1 Gbit/s link. */
const hot = (migration: string, qemu = '', pattern = 'hotset, hot_set: 64MiB, cold: 1%') => scenario(`
name: xb
seed: 3
duration: 40s
${qemu}
vm: { memory: 1GiB, vcpus: 2, populated: 60% }
guest:
  workloads: [ { vcpus: all, dirty: { rate: 50000/s, pattern: ${pattern} } } ]
migration:
  start: 1s
  max_bandwidth: 1Gbit/s
  link: { bandwidth: 1Gbit/s }
${migration}
`);

const run = (s: ReturnType<typeof scenario>) => {
  const { result } = simulate(s);
  expect(result.outcome, result.error ?? '').toBe('ok');
  return result.migration!;
};

describe('xbzrle', () => {
  it('sends a hot set as small encodings from cache hits, and converges where plain precopy does not', () => {
    const without = run(hot(''));
    const cached = run(hot('  xbzrle: { cache_size: 128MiB }'));
    expect(without.status).toBe('active');
    expect(cached.status).toBe('completed');
    expect(cached.verified).toBe(true);
    const x = cached.xbzrle!;
    expect(x.cache_size).toBe(128 * 2 ** 20);
    expect(x.pages).toBeGreaterThan(10_000);
    // A few lines of each page changed: far less than the pages whole.
    expect(x.bytes).toBeLessThan(x.pages * 4096 * 0.2);
    expect(x.overflow).toBeLessThan(x.pages / 10);
    // The cached migration sent little besides its first pass (60% of 1 GiB
    // holds data, and the hot set) and the misses that filled the cache; the
    // plain one kept resending the hot set until the run ended.
    expect(cached.ram.transferred).toBeLessThan(0.8 * 2 ** 30);
    expect(without.ram.transferred).toBeGreaterThan(5 * cached.ram.transferred);
  });

  it('misses with a cache too small for the hot set', () => {
    const tiny = run(hot('  xbzrle: { cache_size: 64KiB }')).xbzrle!;
    const big = run(hot('  xbzrle: { cache_size: 128MiB }')).xbzrle!;
    expect(tiny.cache_miss).toBeGreaterThan(50 * tiny.pages);
    expect(tiny.cache_miss_rate).toBeGreaterThan(0.9);
    expect(big.cache_miss).toBeLessThan(big.pages * 2);
  });

  it('encodes only pages sent before: nothing while the first pass runs', () => {
    // 1 GiB at 1 Gbit/s: the first pass takes about 9 s.
    const first = run(scenario(`
name: xb-first
duration: 5s
vm: { memory: 1GiB, vcpus: 2 }
guest:
  workloads: [ { vcpus: all, dirty: { rate: 25000/s, pattern: hotset, hot_set: 64MiB } } ]
migration:
  start: 1s
  max_bandwidth: 1Gbit/s
  link: { bandwidth: 1Gbit/s }
  xbzrle: {}
`));
    expect(first.status).toBe('active');
    expect(first.xbzrle).toEqual({ cache_size: 64 * 2 ** 20, bytes: 0, pages: 0, cache_miss: 0, cache_miss_rate: 0, encoding_rate: 0, overflow: 0 });
  });

  it('sends migration-test\'s byte counters as 3-byte encodings, or nothing when a counter is back where it was', () => {
    const counter = run(hot('  xbzrle: { cache_size: 1GiB }', '', 'increment, size: 64MiB'));
    expect(counter.status).toBe('completed');
    expect(counter.verified).toBe(true);
    const x = counter.xbzrle!;
    expect(x.pages).toBeGreaterThan(0);
    expect(x.overflow).toBe(0);
    // Each encoded page: the flag, the length and a 3-byte encoding (at most: unchanged pages send none).
    expect(x.bytes).toBeLessThanOrEqual(x.pages * 6);
  });

  it('keeps the destination equal to the source with misses, overflows and unchanged pages', () => {
    const s = scenario(`
name: xb-mixed
seed: 11
duration: 60s
qemu: { version: 7.2 }
vm: { memory: 256MiB, vcpus: 2, populated: 50% }
guest:
  workloads:
    - { vcpus: [0], dirty: { rate: 4000/s, pattern: hotset, hot_set: 8MiB, cold: 20% } }
    - { vcpus: [1], dirty: { rate: 2000/s, pattern: increment, start: 128MiB, size: 8MiB } }
devices:
  blk: [ { name: disk0, flush: 1ms, io: { rate: 100/s, write_fraction: 0.7, flush_every: 4 } } ]
migration:
  start: 500ms
  max_bandwidth: 32MiB/s
  link: { bandwidth: 1Gbit/s }
  xbzrle: { cache_size: 4MiB }
`);
    const m = run(s);
    expect(m.status).toBe('completed');
    expect(m.verified).toBe(true);
    expect(m.xbzrle!.pages).toBeGreaterThan(0);
    expect(m.xbzrle!.cache_miss).toBeGreaterThan(0);
  });

  it('sizes an encoding by the lines the writes since the cached copy changed', () => {
    expect(encodedLength(5, 7, 7, 4096, false)).toBe(0);
    // One write: one 64-byte line, with its two run lengths.
    const one = encodedLength(5, 7, 8, 4096, false);
    expect(one).toBeGreaterThanOrEqual(64 + 2);
    expect(one).toBeLessThanOrEqual(64 + 3);
    const ten = encodedLength(5, 7, 17, 4096, false);
    expect(ten).toBeGreaterThan(one);
    expect(ten).toBeLessThanOrEqual(10 * 67);
    expect(encodedLength(5, 7, 17, 4096, false)).toBe(ten);
    // Past 4 writes per line every line changed: no smaller than the page.
    expect(encodedLength(5, 7, 7 + XBZRLE_WRITES_PER_LINE_MAX * 64 + 1, 4096, false)).toBe(-1);
    // A byte counter: one byte, or none after 256 writes.
    expect(encodedLength(5, 7, 8, 4096, true)).toBe(3);
    expect(encodedLength(5, 7, 7 + 256, 4096, true)).toBe(0);
    // Versions wrap from 2^32-1 to 1: one write.
    const wrapped = encodedLength(5, 2 ** 32 - 1, 1, 4096, false);
    expect(wrapped).toBeGreaterThanOrEqual(64 + 2);
    expect(wrapped).toBeLessThanOrEqual(64 + 3);
  });

  it('keeps QEMU\'s direct-mapped cache: a slot used in the last 2 syncs is not taken over', () => {
    const c = new PageCache(4 * 4096, 4096, 1000);
    expect(c.slots).toBe(4);
    expect(c.insert(1, 10, 5)).toBe(true);
    // Page 5 maps to page 1's slot, which is fresh at ages 5 and 6.
    expect(c.insert(5, 20, 6)).toBe(false);
    expect(c.isCached(1, 6)).toBe(true);
    expect(c.isCached(5, 6)).toBe(false);
    expect(c.insert(5, 20, 8)).toBe(true);
    expect(c.isCached(1, 8)).toBe(false);
    expect(c.get(5)).toBe(20);
    // Never more slots than the guest has pages (rounded up to a power of two).
    expect(new PageCache(2 ** 30, 4096, 100).slots).toBe(128);
  });

  it('refuses a cache size QEMU refuses or a QEMU without xbzrle, in one line; the real backend refuses it', () => {
    const err = (migration: string, qemu = '') => scenarioErrorOf(() => hot(migration, qemu));
    expect(err('  xbzrle: { cache_size: 3MiB }')).toMatch(/migration\.xbzrle\.cache_size: 3MiB is not a power of two no less than the page size \(4096 bytes\)$/);
    expect(err('  xbzrle: { cache_size: 1KiB }')).toMatch(/migration\.xbzrle\.cache_size: 1KiB is not a power of two/);
    expect(err('  xbzrle: {}', 'qemu: { version: 1.1 }')).toMatch(/migration\.xbzrle: xbzrle came with QEMU 1\.2; this scenario follows QEMU 1\.1$/);
    expect(hot('  xbzrle: {}').migration!.xbzrle).toEqual({ cache_size: 64 * 2 ** 20 });
    expect(() => checkRealMigration(hot('  xbzrle: {}'))).toThrow(/^test\.yaml: migration\.xbzrle: real mode sends pages whole/);
  });
});

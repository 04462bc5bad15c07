// multifd: more channels finish a CPU-bound migration sooner (up to the host
// cores they share); the channels' bytes and the main stream's make
// ram.transferred; zero-page-detection decides who finds zero pages and what
// they cost on the wire; QEMU 7.2 syncs after every ram_save_iterate, 9.2
// when the scan wraps; the destination still holds every page; the checker
// catches a page sent twice between syncs; bad fields and the real backend
// say what is wrong in one line.
import { describe, expect, it } from 'vitest';
import { simulate } from '../../../sim/run.ts';
import { checkRealMigration } from '../../../real/migrate.ts';
import { MULTIFD_PACKET_HEADER_BYTES, MULTIFD_OFFSET_BYTES } from '../../../sim/migration/multifd.ts';
import { MULTIFD_PACKET_SIZE } from '../../../sim/scenario/migration.ts';
import { scenario, scenarioErrorOf } from '../helpers.ts';

/** A guest on a 25 Gbit/s link whose 4 us per page make one stream CPU-bound at about 1 GB/s. */
const fast = (migration: string, qemu = '', host = '') => scenario(`
name: mf
seed: 5
duration: 30s
qemu:
  ${qemu}
  host: { page_send: 4us${host} }
vm: { memory: 1GiB, vcpus: 2, populated: 70% }
guest:
  workloads: [ { vcpus: all, dirty: { rate: 5000/s, pattern: uniform } } ]
migration:
  start: 1s
  max_bandwidth: 25Gbit/s
  downtime_limit: 30ms
  link: { bandwidth: 25Gbit/s, latency: 50us }
${migration}
`);

const run = (s: ReturnType<typeof scenario>) => {
  const { result, world } = simulate(s);
  expect(result.outcome, result.error ?? '').toBe('ok');
  return { m: result.migration!, world, result };
};

describe('multifd', () => {
  it('finishes a CPU-bound migration sooner with more channels, up to the host cores they share', () => {
    const one = run(fast('  multifd: { channels: 1 }')).m;
    const four = run(fast('  multifd: { channels: 4 }')).m;
    const twoCores = run(fast('  multifd: { channels: 4 }', '', ', migration_cores: 2')).m;
    for (const m of [one, four, twoCores]) {
      expect(m.status).toBe('completed');
      expect(m.verified).toBe(true);
    }
    expect(four['total-time']).toBeLessThan(one['total-time'] / 2.5);
    expect(twoCores['total-time']).toBeGreaterThan(four['total-time'] * 1.5);
    expect(twoCores['total-time']).toBeLessThan(one['total-time'] * 0.7);
    expect(four.downtime).toBeLessThan(one.downtime);
  });

  it('puts every byte on a channel or the main stream: their sums make ram.transferred', () => {
    const { m, world } = run(fast('  multifd: { channels: 3 }'));
    const mf = m.multifd!;
    expect(mf.channels).toBe(3);
    expect(mf.transferred).toHaveLength(3);
    expect(mf.packets).toHaveLength(3);
    const channels = mf.transferred.reduce((a, b) => a + b, 0);
    // The main stream carries the RAM section's EOS and flush markers, then the device state.
    const mainRam = world.migration!.link.mainStream()!.transferred - world.scenario.migration!.device_state_bytes;
    expect(channels + mainRam).toBe(m.ram.transferred);
    expect(mainRam).toBeGreaterThan(0);
    expect(mainRam).toBeLessThan(4096);
    // Round-robin: the channels carry about the same; no packet holds more than 512 KiB of pages.
    const packetMax = MULTIFD_PACKET_SIZE + MULTIFD_PACKET_HEADER_BYTES + MULTIFD_OFFSET_BYTES * (MULTIFD_PACKET_SIZE / 4096);
    for (let i = 0; i < 3; i++) {
      expect(mf.transferred[i]).toBeGreaterThan(channels / 3 * 0.9);
      expect(mf.transferred[i]).toBeLessThanOrEqual(mf.packets[i]! * packetMax);
    }
  });

  it('leaves zero pages to the channels (multifd), the migration thread (legacy) or the wire (none)', () => {
    const det = (zpd: string) => run(fast(`  multifd: { channels: 2, zero_page_detection: ${zpd} }`));
    const multifd = det('multifd');
    const legacy = det('legacy');
    const none = det('none');
    const zeroPages = (1 << 30) / 4096 * 0.25;
    // Zero pages cost the channels' offsets only, a header and a byte each on the main stream, or a whole page.
    expect(multifd.m.ram.duplicate).toBeGreaterThanOrEqual(zeroPages);
    expect(legacy.m.ram.duplicate).toBeGreaterThanOrEqual(zeroPages);
    expect(none.m.ram.duplicate).toBe(0);
    const main = (r: typeof multifd) => r.world.migration!.link.mainStream()!.transferred - r.world.scenario.migration!.device_state_bytes;
    expect(main(multifd)).toBeLessThan(4096);
    expect(main(legacy)).toBeGreaterThanOrEqual(zeroPages * 9);
    expect(none.m.ram.transferred - multifd.m.ram.transferred).toBeGreaterThan(zeroPages * 4000);
    for (const r of [multifd, legacy, none]) {
      expect(r.m.multifd!.zero_page_detection).toBe(r === multifd ? 'multifd' : r === legacy ? 'legacy' : 'none');
      expect(r.m.verified).toBe(true);
    }
  });

  it('syncs after every ram_save_iterate in QEMU 7.2, only when the scan wraps in 9.2, and counts the waits', () => {
    // A guest that dirties a third of what the link moves: a few passes.
    const passes = (qemu: string) => run(scenario(`
name: mf-sync
seed: 5
duration: 30s
qemu: { version: ${qemu}, host: { page_send: 4us } }
vm: { memory: 1GiB, vcpus: 2 }
guest:
  workloads: [ { vcpus: all, dirty: { rate: 50000/s, pattern: uniform } } ]
migration:
  start: 1s
  max_bandwidth: 10Gbit/s
  downtime_limit: 30ms
  link: { bandwidth: 10Gbit/s }
  multifd: { channels: 4 }
`)).m;
    const q72 = passes('7.2');
    const q92 = passes('9.2');
    expect(q72.multifd!.zero_page_detection).toBe('legacy');
    expect(q92.multifd!.zero_page_detection).toBe('multifd');
    for (const m of [q72, q92]) {
      expect(m.status).toBe('completed');
      expect(m.ram['dirty-sync-count']).toBeGreaterThanOrEqual(4);
      expect(m.multifd!.sync_wait_max_ns).toBeGreaterThan(0);
      expect(m.multifd!.sync_wait_total_ns).toBeGreaterThanOrEqual(m.multifd!.sync_wait_max_ns);
    }
    // 9.2: setup, each wrap of the scan, completion; 7.2: besides, every ram_save_iterate (about every 50 ms).
    expect(q92.multifd!.sync_waits).toBeGreaterThanOrEqual(q92.ram['dirty-sync-count']);
    expect(q72.multifd!.sync_waits).toBeGreaterThan(2 * q92.multifd!.sync_waits);
    expect(q72.multifd!.sync_waits).toBeGreaterThan(q72['total-time'] / 100);
  });

  it('keeps the destination equal to the source under a hot guest, a slow link and the rate limit', () => {
    const hot = (qemu: string) => scenario(`
name: mf-hot
seed: 9
duration: 60s
qemu: { version: ${qemu} }
vm: { memory: 256MiB, vcpus: 2 }
guest:
  workloads: [ { vcpus: all, dirty: { rate: 3000/s, pattern: hotset, hot_set: 16MiB, cold: 10% } } ]
devices:
  blk: [ { name: disk0, flush: 1ms, io: { rate: 100/s, write_fraction: 0.7, flush_every: 4 } } ]
migration:
  start: 500ms
  max_bandwidth: 64MiB/s
  link: { bandwidth: 1Gbit/s }
  multifd: { channels: 3, zero_page_detection: legacy }
`);
    const q72 = run(hot('7.2')).m;
    const q92 = run(hot('9.2')).m;
    for (const m of [q72, q92]) {
      expect(m.status).toBe('completed');
      expect(m.verified).toBe(true);
    }
    // The rate limit holds across the channels: a 100 ms window moves no
    // more than it allows and the packet that crossed it. 7.2 counts a packet
    // when it hands it over; 9.x once it is written, so a window also lets
    // the packets in flight through (3 channels).
    const mbpsMax = (m: typeof q72) => Math.max(...m.snapshots.filter((x) => x.status === 'active').map((x) => x.ram.mbps));
    const mbps = (bytesPerS: number) => (bytesPerS * 8) / 1e6;
    const packetsPerS = (n: number) => n * MULTIFD_PACKET_SIZE * 10;
    const limit = 64 * 2 ** 20;
    expect(mbpsMax(q72)).toBeLessThan(mbps(limit + packetsPerS(1)));
    expect(mbpsMax(q92)).toBeLessThan(mbps(limit + packetsPerS(4)));
    expect(mbpsMax(q92)).toBeGreaterThan(mbpsMax(q72));
  });

  it('catches a page sent twice between two syncs (its older copy could land last)', () => {
    const { world } = simulate(fast('  multifd: { channels: 2 }'));
    const mf = world.migration!.multifd!;
    mf.noteSent(7);
    expect(() => mf.noteSent(7)).toThrow(/invariant violated \(lost-page\): page 7 sent twice between two multifd syncs/);
  });

  it('catches a migration that skips the multifd syncs (a planted bug) as a lost page', () => {
    const { result } = simulate(fast('  multifd: { channels: 2 }\n  bug: multifd-skips-sync'));
    expect(result.outcome).toBe('invariant');
    expect(result.error).toMatch(/invariant violated \(lost-page\): page \d+ sent twice between two multifd syncs/);
  });

  it('is off by default: the JSON says null, and cpu-throttle-percentage has QEMU\'s name too', () => {
    const { m } = run(fast(''));
    expect(m.multifd).toBeNull();
    expect(m.xbzrle).toBeNull();
    expect(m['cpu-throttle-percentage']).toBe(m.cpu_throttle_percentage);
  });

  it('refuses what a version lacks or a value QEMU refuses, in one line naming the field', () => {
    const err = (migration: string, qemu = '') => scenarioErrorOf(() => fast(migration, qemu));
    expect(err('  multifd: {}', 'version: 2.12')).toMatch(/^test\.yaml:\d+:\d+: migration\.multifd: multifd came with QEMU 4\.0; this scenario follows QEMU 2\.12$/);
    expect(err('  multifd: { zero_page_detection: multifd }', 'version: 7.2'))
      .toMatch(/migration\.multifd\.zero_page_detection: zero-page-detection multifd came with QEMU 9\.0; QEMU 7\.2 finds zero pages on the migration thread \(legacy\)$/);
    expect(err('  multifd: { channels: 0 }')).toMatch(/migration\.multifd\.channels: expected an integer from 1 to 255, got 0$/);
    expect(err('  multifd: { channels: 256 }')).toMatch(/migration\.multifd\.channels: expected an integer from 1 to 255, got 256$/);
    expect(err('  mode: main-loop\n  multifd: {}')).toMatch(/migration\.multifd: multifd channels are fed by the migration thread: it needs mode thread$/);
    for (const e of [err('  multifd: {}', 'version: 2.12'), err('  multifd: { channels: 0 }')]) expect(e).not.toContain('\n');
    // 7.2 has only the migration thread's detection: legacy is what it does.
    expect(fast('  multifd: { zero_page_detection: legacy }', 'version: 7.2').migration!.multifd).toEqual({ channels: 2, zero_page_detection: 'legacy' });
  });

  it('is refused by the real backend, naming the field', () => {
    expect(() => checkRealMigration(fast('  multifd: { channels: 2 }'))).toThrow(/^test\.yaml: migration\.multifd: real mode migrates over one stream/);
  });
});

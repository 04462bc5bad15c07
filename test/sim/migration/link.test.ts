// The migration stream's link (sim/migration/link.ts): what overlaps and what
// waits. Here: qemu.host.cores, the host's CPUs shared with the running vCPUs
// (one each), so that the migration thread and the destination's loading
// take turns when a single core is left for both.
import { describe, expect, it } from 'vitest';
import { simulate } from '../../../sim/run.ts';
import { MigrationLink } from '../../../sim/migration/link.ts';
import { MS, rig, scenario } from '../helpers.ts';

/** 256 MiB of data into a preallocated destination, unthrottled (the wire takes a page in 1.6 us): 65536 pages at 2 us each side. */
const run = (cores: number, vcpus = 1) => simulate(scenario(`
name: cores
seed: 3
duration: 5s
qemu: { version: 7.2, host: { page_send: 2us, dest_page: 2us, cores: ${cores} } }
vm: { memory: 256MiB, vcpus: ${vcpus} }
migration: { start: 100ms, max_bandwidth: 100Gbit/s, downtime_limit: 1us, link: { bandwidth: 20Gbit/s }, destination_prealloc: true }
`)).result.migration!;

describe('qemu.host.cores (the host\'s CPUs: the vCPUs, the migration thread and the destination)', () => {
  it('overlaps the source\'s copies and the destination\'s loads when each has a core', () => {
    for (const m of [run(0), run(3)]) {
      expect(m.status).toBe('completed');
      // 65536 pages: 131 ms on each side, at once.
      expect(m['total-time']).toBeGreaterThanOrEqual(131);
      expect(m['total-time']).toBeLessThan(160);
    }
  });

  it('makes them take turns when the running vCPU leaves one core for both', () => {
    const m = run(2);
    expect(m.status).toBe('completed');
    // 131 ms of copying and 131 ms of loading, one after the other.
    expect(m['total-time']).toBeGreaterThanOrEqual(255);
    // Two vCPUs on two cores leave none: the same turns, not worse.
    expect(run(2, 2)['total-time']).toBe(m['total-time']);
  });

  it('takes turns only while sharedCore says so (the VM runs): each copy waits for the destination\'s load of the write before', () => {
    const ends = (shared: boolean) => {
      const { scheduler, platform } = rig();
      // 1 MB/s: each write of 1000 bytes is 1 ms on the wire, besides 2 ms of copying and 3 ms of loading.
      const link = new MigrationLink(platform, 1e6, 0, 0);
      link.sharedCore = () => shared;
      const at: number[] = [];
      platform.spawn('migration', function* () {
        for (let i = 0; i < 3; i++) {
          yield* link.send(1000, { cpuNs: 2 * MS, destNs: 3 * MS });
          at.push(platform.nowNs() / MS);
        }
      });
      scheduler.run();
      return at;
    };
    // Own cores: the copies follow one another; the socket's buffer takes the writes.
    expect(ends(false)).toEqual([2, 4, 6]);
    // One core: each copy waits for the load of the write before it (2 + 3 + 2 + 3 + 2).
    expect(ends(true)).toEqual([2, 7, 12]);
  });
});

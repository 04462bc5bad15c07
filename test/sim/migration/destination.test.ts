// The model's destination (sim/migration/destination.ts): what each page
// costs it to load, as QEMU 7.2's ram_load_precopy does it, and whether its
// RAM is preallocated (-mem-prealloc: migration.destination_prealloc).
import { describe, expect, it, vi } from 'vitest';
import { Destination } from '../../../sim/migration/destination.ts';
import { GuestRam } from '../../../sim/guest/ram.ts';
import { HOST_COSTS_DEFAULT, type HostCosts } from '../../../sim/scenario/qemu.ts';
import { simulate } from '../../../sim/run.ts';
import { rig, scenario } from '../helpers.ts';

const host: HostCosts = { ...HOST_COSTS_DEFAULT, zero_page_scan_ns: 100, dest_zero_page_ns: 700, dest_page_ns: 300, dest_first_touch_ns: 9000 };

/** 64 pages: the first 32 hold data, the rest are zero. */
function guestRam(): GuestRam {
  const ram = new GuestRam(64 * 4096, 4096);
  ram.populate(32);
  return ram;
}

describe('Destination: the load cost of a page (QEMU 7.2 ram_load_precopy)', () => {
  it('faults a page in on its first write, and checks a zero page it never touched against the shared zero page', () => {
    const d = new Destination(rig().platform, guestRam(), host);
    d.savePage(0, false);
    expect(d.takeLoadCostNs()).toBe(9000);
    d.savePage(0, false);
    expect(d.takeLoadCostNs()).toBe(300);
    d.savePage(40, true);
    expect(d.takeLoadCostNs()).toBe(100);
    // A page it holds that arrives as a zero page: buffer_is_zero reads the page itself.
    d.savePage(0, true);
    expect(d.takeLoadCostNs()).toBe(700);
  });

  it('holds every page from the start when preallocated: no first touch, and a zero page\'s check reads RAM', () => {
    const d = new Destination(rig().platform, guestRam(), host, true);
    d.savePage(0, false);
    expect(d.takeLoadCostNs()).toBe(300);
    d.savePage(40, true);
    expect(d.takeLoadCostNs()).toBe(700);
  });

  it('costs a run of pages (the first pass\'s whole words) as the same pages one by one', () => {
    for (const prealloc of [false, true]) {
      const run = new Destination(rig().platform, guestRam(), host, prealloc);
      const one = new Destination(rig().platform, guestRam(), host, prealloc);
      one.savePage(3, false);
      run.savePage(3, false);
      expect(run.saveRun(0, 64)).toBe(32);
      for (let p = 0; p < 64; p++) one.savePage(p, p >= 32);
      expect(run.takeLoadCostNs()).toBe(one.takeLoadCostNs());
    }
    const fresh = new Destination(rig().platform, guestRam(), host);
    fresh.saveRun(0, 64);
    expect(fresh.takeLoadCostNs()).toBe(32 * 9000 + 32 * 100);
    const held = new Destination(rig().platform, guestRam(), host, true);
    held.saveRun(0, 64);
    expect(held.takeLoadCostNs()).toBe(32 * 300 + 32 * 700);
  });
});

describe('migration.destination_prealloc (the destination QEMU with -mem-prealloc)', () => {
  const run = (prealloc: boolean, extra = '') => simulate(scenario(`
name: prealloc
seed: 5
duration: 10s
qemu: { version: 7.2, host: { dest_first_touch: 20us, dest_page: 1us, dest_zero_page: 2us } }
vm: { memory: 128MiB }
guest: { workloads: [ { vcpus: all, dirty: { rate: 5000/s, pattern: increment, start: 2MiB } } ] }
migration:
  start: 500ms
  max_bandwidth: 128MiB/s
  downtime_limit: 300ms
  link: { bandwidth: 1700MB/s }
  destination_prealloc: ${prealloc}
${extra}`)).result.migration!;

  it('spares the final pass the first touch of the pages the first pass had not reached yet', () => {
    const fresh = run(false);
    const held = run(true);
    expect(fresh.status).toBe('completed');
    expect(held.status).toBe('completed');
    // It converges before the first pass is over: its final pass holds a few thousand pages never sent before.
    expect(held.iterations.length).toBe(fresh.iterations.length);
    // ~32 MB at 1700 MB/s is ~19 ms on the wire; 3000 first touches at 20 us would be 60 ms more.
    expect(held.downtime).toBeLessThan(30);
    expect(fresh.downtime).toBeGreaterThan(held.downtime + 40);
  });

  it('is undone by postcopy, which discards the destination\'s RAM at the advise', () => {
    const postcopy = '  postcopy: { start_after_passes: 0 }';
    expect(run(true, postcopy).postcopy).toEqual(run(false, postcopy).postcopy);
  });
});

describe('qemu.host.dest_zero_page (an idle guest into a preallocated destination)', () => {
  const idle = (prealloc: boolean) => simulate(scenario(`
name: idle
seed: 3
duration: 5s
qemu: { version: 7.2, host: { zero_page_scan: 100ns, dest_zero_page: 2us } }
vm: { memory: 1GiB, populated: 0% }
migration: { start: 100ms, max_bandwidth: 100Gbit/s, link: { bandwidth: 100Gbit/s }, destination_prealloc: ${prealloc} }
`)).result.migration!;

  it('checks each zero page in the RAM it holds: 262144 pages at 2 us, against the shared zero page\'s 100 ns', () => {
    const held = idle(true);
    const fresh = idle(false);
    expect(held.status).toBe('completed');
    expect(held['total-time']).toBeGreaterThanOrEqual(524);
    expect(fresh['total-time']).toBeLessThan(200);
  });
});

const PAGES = 256;

function pair(setup: (ram: GuestRam) => void) {
  const ram = new GuestRam(PAGES * 4096, 4096);
  setup(ram);
  const byRun = new Destination(rig().platform, ram);
  const byPage = new Destination(rig().platform, ram);
  return { ram, byRun, byPage };
}

describe('Destination.saveRun (the first pass\'s whole words at once)', () => {
  it('receives a run as savePage receives each of its pages: the same versions, zero pages and load cost', () => {
    const { ram, byRun, byPage } = pair((r) => {
      r.populate(40);
      r.addByteCounterRange(100, 8);
      for (let i = 0; i < 256; i++) r.write(101); // the counter byte is back at zero
      r.write(102);
      r.write(200);
    });
    // A page received before: written again, not touched for the first time.
    byRun.savePage(200, false);
    byPage.savePage(200, false);
    byRun.takeLoadCostNs();
    byPage.takeLoadCostNs();

    const zeros = byRun.saveRun(0, PAGES);
    let zerosByPage = 0;
    for (let p = 0; p < PAGES; p++) {
      const zero = ram.isZeroPage(p);
      if (zero) zerosByPage++;
      byPage.savePage(p, zero);
    }
    expect(zeros).toBe(zerosByPage);
    expect(zeros).toBe(PAGES - 40 - 2); // 101 is a zero page again; 102 and 200 are not
    expect([...byRun.versions.toArray()]).toEqual([...byPage.versions.toArray()]);
    expect(byRun.firstDifferentPage(ram)).toBe(-1);
    expect(byRun.takeLoadCostNs()).toBe(byPage.takeLoadCostNs());
    expect(byRun.pagesReceived).toBe(byPage.pagesReceived);
  });

  it('costs a never-written word only the zero scan of its 32 pages', () => {
    const { byRun } = pair(() => {});
    expect(byRun.saveRun(64, 64)).toBe(64);
    expect(byRun.takeLoadCostNs()).toBe(64 * HOST_COSTS_DEFAULT.zero_page_scan_ns);
  });

  it('takes an idle guest\'s first pass in whole words to the end of each chunk of the budget: a page alone only in the word the budget ends in', () => {
    const idle = scenario(`
name: idle-first-pass
seed: 1
duration: 3s
vm: { memory: 1GiB, vcpus: 1, populated: 0% }
migration: { start: 1s, max_bandwidth: 1GiB/s, link: { bandwidth: 10Gbit/s } }
expect: { migration_status: completed }
`);
    const byPage = vi.spyOn(Destination.prototype, 'savePage');
    const byRun = vi.spyOn(Destination.prototype, 'saveRun');
    try {
      const r = simulate(idle).result;
      expect(r.migration!.status).toBe('completed');
      const pages = 2 ** 18;
      const ran = byRun.mock.calls.reduce((n, [, count]) => n + count, 0);
      // 1 MiB of zero pages (9 bytes each on the wire) is about 116,000 pages:
      // each chunk of the budget sends at most the 31 pages of one word alone.
      expect(ran + byPage.mock.calls.length).toBeGreaterThanOrEqual(pages);
      expect(byPage.mock.calls.length).toBeLessThan((pages / 100_000 + 2) * 32);
    } finally {
      byPage.mockRestore();
      byRun.mockRestore();
    }
  });
});

import { describe, expect, it } from 'vitest';
import { GuestRam } from '../../../sim/guest/ram.ts';
import { Destination } from '../../../sim/migration/destination.ts';
import { HOST_COSTS_DEFAULT } from '../../../sim/scenario/qemu.ts';
import { rig } from '../helpers.ts';

const PAGES = 256;

function pair(setup: (ram: GuestRam) => void) {
  const ram = new GuestRam(PAGES * 4096, 4096);
  setup(ram);
  const byRun = new Destination(rig().platform, ram);
  const byPage = new Destination(rig().platform, ram);
  return { ram, byRun, byPage };
}

describe('Destination.saveRun', () => {
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
    expect([...byRun.versions]).toEqual([...byPage.versions]);
    expect(byRun.firstDifferentPage(ram)).toBe(-1);
    expect(byRun.takeLoadCostNs()).toBe(byPage.takeLoadCostNs());
    expect(byRun.pagesReceived).toBe(byPage.pagesReceived);
  });

  it('costs a never-written word only the zero scan of its 32 pages', () => {
    const { byRun } = pair(() => {});
    expect(byRun.saveRun(64, 64)).toBe(64);
    expect(byRun.takeLoadCostNs()).toBe(64 * HOST_COSTS_DEFAULT.zero_page_scan_ns);
  });
});

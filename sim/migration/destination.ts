// The destination side of a migration: what it received of each page (the
// content version), and the switchover check. At switchover every page must
// hold exactly what the source holds, and every write the guest saw
// acknowledged must be on the flushed (shared) disk; the first difference is
// an invariant violation naming the page or sector.
import type { GuestRam } from '../guest/ram.ts';
import type { BlkDevice } from '../devices/devices.ts';
import { InvariantError } from '../invariant.ts';

export class Destination {
  readonly versions: Uint32Array;
  pagesReceived = 0;
  running = false;

  constructor(readonly pages: number) {
    this.versions = new Uint32Array(pages);
  }

  /** A page arrives with the content the source had when it sent it. */
  receive(page: number, version: number): void {
    this.versions[page] = version;
    this.pagesReceived++;
  }

  /** The first page whose content differs from the source's, or -1. */
  firstDifferentPage(src: GuestRam): number {
    const a = Buffer.from(this.versions.buffer, this.versions.byteOffset, this.versions.byteLength);
    const b = Buffer.from(src.versions.buffer, src.versions.byteOffset, src.versions.byteLength);
    if (a.equals(b)) return -1;
    const d = this.versions;
    const s = src.versions;
    for (let i = 0; i < d.length; i++) if (d[i] !== s[i]) return i;
    return -1;
  }

  /** Checks memory and disks at switchover; throws InvariantError on the first loss. */
  verify(src: GuestRam, disks: readonly BlkDevice[]): void {
    const page = this.firstDifferentPage(src);
    if (page >= 0) {
      throw new InvariantError('lost-page',
        `page ${page} (guest address 0x${(page * src.pageSize).toString(16)}) differs at switchover: ` +
        `destination has version ${this.versions[page]}, source ${src.versions[page]}`);
    }
    for (const d of disks) {
      const acked = d.driver.acked;
      const stable = d.backend.stable;
      for (let b = 0; b < acked.length; b++) {
        if (acked[b]! > stable[b]!) {
          const sector = (b * d.dev.spec.io.request_bytes) / 512;
          throw new InvariantError('lost-write',
            `${d.dev.spec.name} sector ${sector}: the guest saw write version ${acked[b]} acknowledged, ` +
            `the flushed disk has version ${stable[b]}`);
        }
      }
    }
  }
}

// Memory equality at switchover: both QEMUs stopped (source postmigrate,
// destination paused by -S), each writes its guest-physical memory [0, size)
// with QMP pmemsave, and the two dumps are compared page by page and hashed.
// Also counts zero pages in the source's dump (untouched memory is zero).
// Leaves out: memory above 4 GiB (the payload is 32-bit), device state.
import { closeSync, openSync, readSync } from 'node:fs';
import { createHash } from 'node:crypto';

export interface MemoryCompare {
  readonly bytes: number;
  readonly equal: boolean;
  readonly differing_pages: number;
  /** Guest-physical addresses of the first differing pages. */
  readonly first_differences: readonly number[];
  readonly zero_pages: number;
  readonly sha256_source: string;
  readonly sha256_destination: string;
}

const PAGE = 4096;
const CHUNK = 1 << 20;

export function compareDumps(source: string, destination: string, bytes: number): MemoryCompare {
  const fa = openSync(source, 'r');
  const fb = openSync(destination, 'r');
  const ha = createHash('sha256');
  const hb = createHash('sha256');
  const a = Buffer.alloc(CHUNK);
  const b = Buffer.alloc(CHUNK);
  const zero = Buffer.alloc(PAGE);
  let differing = 0;
  let zeros = 0;
  const first: number[] = [];
  try {
    for (let off = 0; off < bytes; off += CHUNK) {
      const n = Math.min(CHUNK, bytes - off);
      const na = readSync(fa, a, 0, n, off);
      const nb = readSync(fb, b, 0, n, off);
      if (na !== n || nb !== n) throw new Error(`short dump: ${off + Math.min(na, nb)} of ${bytes} bytes`);
      ha.update(a.subarray(0, n));
      hb.update(b.subarray(0, n));
      const same = a.compare(b, 0, n, 0, n) === 0;
      for (let p = 0; p < n; p += PAGE) {
        const e = Math.min(p + PAGE, n);
        if (a.compare(zero, 0, e - p, p, e) === 0) zeros++;
        if (!same && a.compare(b, p, e, p, e) !== 0) {
          differing++;
          if (first.length < 16) first.push(off + p);
        }
      }
    }
  } finally {
    closeSync(fa);
    closeSync(fb);
  }
  return {
    bytes,
    equal: differing === 0,
    differing_pages: differing,
    first_differences: first,
    zero_pages: zeros,
    sha256_source: ha.digest('hex'),
    sha256_destination: hb.digest('hex'),
  };
}

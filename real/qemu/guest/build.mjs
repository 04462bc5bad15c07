#!/usr/bin/env node
// Builds the QEMU guest payload (real/qemu/guest/build/guest.elf) with the
// host's gcc (-m32) and make, through real/qemu/guest/Makefile. Exits non-zero
// with one line on failure; with --optional (postinstall) it prints the line
// and exits 0, so installing never fails for want of a 32-bit gcc.
// Leaves out: installing a toolchain.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = dirname(fileURLToPath(import.meta.url));
const optional = process.argv.includes('--optional');
const r = spawnSync('make', ['-s', '-C', dir], { stdio: ['ignore', 'inherit', 'inherit'] });
if (r.error || r.status !== 0) {
  const why = r.error ? r.error.message : `make exited with status ${r.status}`;
  console.error(`latsim: QEMU guest payload build failed: ${why} (needs make and a gcc that can do -m32)`);
  process.exit(optional ? 0 : 1);
}
console.log(`latsim: QEMU guest payload built: ${join(dir, 'build', 'guest.elf')}`);

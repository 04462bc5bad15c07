#!/usr/bin/env node
// Builds the guest payload (real/guest/build/payload.bin) with the host's gcc,
// make and objcopy, through real/guest/Makefile. Exits non-zero with one line on
// failure. Leaves out: installing a toolchain.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = dirname(fileURLToPath(import.meta.url));
const r = spawnSync('make', ['-s', '-C', dir], { stdio: ['ignore', 'inherit', 'inherit'] });
if (r.error || r.status !== 0) {
  const why = r.error ? r.error.message : `make exited with status ${r.status}`;
  console.error(`latsim: guest payload build failed: ${why} (needs gcc, make and objcopy)`);
  process.exit(1);
}
console.log(`latsim: guest payload built: ${join(dir, 'build', 'payload.bin')}`);

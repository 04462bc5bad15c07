/**
 * Vitest configuration of the real-mode suite (`npm run test:kvm`): only
 * test/real/**, one worker (the nested VM has one CPU), generous timeouts (an exit
 * costs up to ~100 us under emulation), and LATSIM_REAL_REQUIRED=1 so a missing
 * /dev/kvm or addon fails the run instead of skipping it.
 * Leaves out: coverage and the simulation suites.
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'),
  test: {
    include: ['test/real/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['verbose'],
    env: { LATSIM_REAL_REQUIRED: '1' },
  },
});

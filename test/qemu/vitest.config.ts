// `npm run test:qemu`: the fidelity suite (scenarios/fidelity/*.yaml on the
// simulation and on real QEMU, side by side). Its files end in .suite.ts, so
// `npm test` (test/**/*.test.ts) never runs it. One file, one case at a time:
// QEMU runs are measurements and must not share the host's two cores.
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: join(import.meta.dirname, '..', '..'),
  test: {
    include: ['test/qemu/**/*.suite.ts'],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    pool: 'forks',
    fileParallelism: false,
    sequence: { concurrent: false },
  },
});

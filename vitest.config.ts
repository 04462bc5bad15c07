// The test suite: everything under test/. The model, CLI and report tests run
// first, in parallel; then the real-mode tests (test/real/, which skip
// themselves without /dev/kvm) one file at a time, since they time real
// processes and a real guest. Coverage of the model, with a floor on sim/ lines.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: { name: 'model', include: ['test/**/*.test.ts'], exclude: ['test/real/**'], sequence: { groupOrder: 0 } },
      },
      {
        extends: true,
        test: { name: 'real', include: ['test/real/**/*.test.ts'], fileParallelism: false, maxWorkers: 1, sequence: { groupOrder: 1 } },
      },
    ],
    coverage: {
      provider: 'v8',
      include: ['sim/**/*.ts', 'cli/**/*.ts', 'reports/**/*.ts'],
      reporter: ['text-summary', 'json-summary'],
      reportsDirectory: 'coverage',
      thresholds: {
        'sim/**/*.ts': { lines: 85 },
      },
    },
  },
});

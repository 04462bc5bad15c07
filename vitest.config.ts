// The test suite: everything under test/ (real-mode tests skip themselves
// without /dev/kvm; `npm run test:kvm` runs them in a nested-KVM VM), with
// coverage of the model and a floor on sim/ lines.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
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

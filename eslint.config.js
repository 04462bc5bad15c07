// Lint rules: model code never touches Date, Math.random, process.hrtime,
// timers (also through globalThis) or fs; sim/scheduler imports nothing of the
// model; sim/ never imports real/ (nor cli/ or reports/). The rest of the
// layering and the cycle check are .dependency-cruiser.cjs's (npm run lint
// runs both).
import tseslint from 'typescript-eslint';

const timers = ['setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval', 'queueMicrotask'];
const modelGlobals = [
  ...timers.map((name) => ({ name, message: 'model code runs on the Platform: use platform.callAfter / sleep' })),
  { name: 'Date', message: 'model code reads time from the Platform (nowNs/hostNs)' },
  { name: 'performance', message: 'model code reads time from the Platform (nowNs)' },
];
const nodeIo = ['fs', 'node:fs', 'fs/promises', 'node:fs/promises', 'child_process', 'node:child_process', 'net', 'node:net', 'worker_threads', 'node:worker_threads', 'timers', 'node:timers'];

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'dist.*/**', 'coverage/**', 'reports/out/**', 'real/kvm/build/**', 'real/guest/build/**', 'bench/out/**', '.vm/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  {
    files: ['sim/**/*.ts'],
    rules: {
      'no-restricted-globals': ['error', ...modelGlobals],
      'no-restricted-properties': ['error',
        { object: 'Math', property: 'random', message: 'use a seeded stream: platform.random(component)' },
        { object: 'process', property: 'hrtime', message: 'model code reads time from the Platform (nowNs)' },
        ...timers.map((property) => ({ object: 'globalThis', property, message: 'model code runs on the Platform: use platform.callAfter / sleep' })),
        { object: 'globalThis', property: 'Date', message: 'model code reads time from the Platform (nowNs/hostNs)' },
        { object: 'globalThis', property: 'performance', message: 'model code reads time from the Platform (nowNs)' },
      ],
      'no-restricted-imports': ['error', {
        paths: nodeIo.map((name) => ({ name, message: 'model code has no I/O of its own: go through the Platform' })),
        patterns: [
          { group: ['**/real/**', '../real/*', '../../real/*'], message: 'sim/ never imports real/' },
          { group: ['**/cli/**', '**/reports/**'], message: 'the model does not depend on the CLI or the reports' },
        ],
      }],
    },
  },
  {
    files: ['sim/scheduler/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: nodeIo.map((name) => ({ name, message: 'the scheduler has no I/O' })),
        patterns: [{ group: ['../*', '!./*'], message: 'sim/scheduler imports nothing of the model' }],
      }],
    },
  },
);

// The layering of latsim (docs/architecture.md), checked by `npm run lint`.
// Arrows point one way: the scheduler below everything, the model (sim/)
// below the backends (real/), the reports and the CLI; no import cycles at
// all, type-only imports included.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'no import cycles, type-only cycles included', from: {}, to: { circular: true } },
    { name: 'scheduler-knows-no-model', severity: 'error', comment: 'sim/scheduler imports nothing of the model',
      from: { path: '^sim/scheduler/' }, to: { path: '^(sim/(?!scheduler/)|real/|cli/|reports/)' } },
    { name: 'model-not-above', severity: 'error', comment: 'the model never imports a backend, the CLI or the reports',
      from: { path: '^sim/' }, to: { path: '^(real/|cli/|reports/|bench/|test/)' } },
    { name: 'guest-not-migration', severity: 'error', comment: 'the guest knows nothing of migration',
      from: { path: '^sim/guest/' }, to: { path: '^sim/migration/' } },
    { name: 'util-is-a-leaf', severity: 'error', comment: 'sim/util (bitmaps, distributions) imports only the scheduler\'s streams',
      from: { path: '^sim/util/' }, to: { path: '^sim/(?!util/|scheduler/)' } },
    { name: 'instrument-below-the-model', severity: 'error', comment: 'instrumentation does not reach into devices or migration',
      from: { path: '^sim/instrument/' }, to: { path: '^sim/(devices|migration|guest|block)/' } },
    { name: 'scenario-is-data', severity: 'error', comment: 'sim/scenario describes a scenario; it runs nothing',
      from: { path: '^sim/scenario/' }, to: { path: '^sim/(devices|migration|guest|block|instrument)/|^sim/(machine|world|run|results)\\.ts$' } },
    { name: 'reports-not-cli', severity: 'error', comment: 'reports render results; they do not depend on the CLI',
      from: { path: '^reports/' }, to: { path: '^cli/' } },
    { name: 'commands-apart', severity: 'error', comment: 'no command imports another command',
      from: { path: '^cli/commands/([^/]+)\\.ts$' }, to: { path: '^cli/commands/', pathNot: '^cli/commands/$1\\.ts$' } },
    { name: 'product-not-tests', severity: 'error', comment: 'nothing but tests imports the tests',
      from: { path: '^(sim|real|cli|reports|bench)/' }, to: { path: '^test/' } },
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^node_modules/|^real/kvm/build/|^coverage/)' },
    includeOnly: '^(sim|real|cli|reports|bench|test)/',
  },
};

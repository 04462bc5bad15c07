// Worker-thread entry of the campaign pool (cli/campaign.ts): runs one job per
// task: a named export of a module, called with the task's input. Loaded
// modules are kept for the next task. A TypeScript module (the source tree)
// is loaded through tsx, registered in this thread the first time one is
// asked for; the compiled tree's modules (dist/, bin/build.mjs) load as they
// are. Leaves out scheduling and ordering: the pool and runJobs do that.
const modules = new Map();
let tsx = null;

export default async function runTask({ module, fn, input }) {
  let mod = modules.get(module);
  if (!mod) {
    if (module.endsWith('.ts')) tsx ??= import('tsx/esm/api').then(({ register }) => register());
    await tsx;
    mod = await import(module);
    modules.set(module, mod);
  }
  if (typeof mod[fn] !== 'function') throw new Error(`${module} has no export ${fn}`);
  return mod[fn](input);
}

// Worker-thread entry of the campaign pool (cli/campaign.ts): registers tsx so
// this thread can load TypeScript, then runs one job per task: a named export
// of a module, called with the task's input. Loaded modules are kept for the
// next task. Leaves out scheduling and ordering: the pool and runJobs do that.
import { register } from 'tsx/esm/api';

register();

const modules = new Map();

export default async function runTask({ module, fn, input }) {
  let mod = modules.get(module);
  if (!mod) {
    mod = await import(module);
    modules.set(module, mod);
  }
  if (typeof mod[fn] !== 'function') throw new Error(`${module} has no export ${fn}`);
  return mod[fn](input);
}

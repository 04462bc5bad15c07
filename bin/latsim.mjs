#!/usr/bin/env node
// Entry point of the `latsim` command: runs the compiled CLI in dist/ (built by
// `npm ci` or `npm run build`, bin/build.mjs), or, when there is no build or a
// development tree's sources are newer than it (bin/dist.mjs says how that is
// told), loads the TypeScript through tsx.
import { compiledUrl, distIsFresh } from './dist.mjs';

let main;
if (distIsFresh()) {
  ({ main } = await import(compiledUrl('cli/main')));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../cli/main.ts'));
}
process.exitCode = await main(process.argv.slice(2));

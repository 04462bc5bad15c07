#!/usr/bin/env node
// Entry point of the `latsim` command: runs the compiled CLI in dist/ (built by
// `npm ci` or `npm run build`, bin/build.mjs), or, when there is no build or a
// development tree's sources are newer than it (bin/dist.mjs says how that is
// told), loads the TypeScript through tsx.
import { setFlagsFromString } from 'node:v8';
import { compiledUrl, distIsFresh } from './dist.mjs';

// A run lasts a second or less, most of it before V8's optimizing compiler
// has caught up; inlining only small functions (a random draw, a page write),
// it compiles several times faster, and runs end about a fifth sooner (bench
// e2e), for a few percent of top speed in long ones.
setFlagsFromString('--max-inlined-bytecode-size=60');
setFlagsFromString('--max-inlined-bytecode-size-cumulative=200');

let main;
if (distIsFresh()) {
  ({ main } = await import(compiledUrl('cli/main')));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../cli/main.ts'));
}
process.exitCode = await main(process.argv.slice(2));

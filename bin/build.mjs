#!/usr/bin/env node
// `npm run build` (and the prepare step of `npm ci`): compiles the TypeScript
// of cli/, sim/, reports/ and real/ into dist/, so that `latsim` starts without
// transpiling. esbuild (tsx's own compiler) strips the types and bundles the
// tree into a few modules, which load faster than a hundred: the CLI's entry
// (dist/cli/main.js), a module per command (each loaded when its command
// runs), the modules worker threads load by URL, and chunks of the code they
// share. A few packages made of many small files are bundled in (BUNDLED);
// the others stay imports of node_modules.
//
// A compiled module keeps its source's place: import.meta.url (and
// import.meta.dirname, import.meta.filename) read as those of the .ts file,
// so every path a module derives from its own location (the scenario schema,
// the KVM addon, the guest payloads, bin/latsim.mjs, the campaign worker)
// resolves as it does in the source tree. The one exception is the URL of a
// TypeScript module itself, `new URL('./x.ts', import.meta.url)` (a worker's
// job module): it names x's compiled entry, dist/<its path>.js.
//
// The scenario schema's validator is precompiled too (Ajv's standalone code,
// dist/scenario-validator.cjs, see cli/scenario-file.ts), so a run does not
// compile it at start.
//
// The tree is built in a temporary folder and moved into place, and the stamp
// (dist/build.json, see bin/dist.mjs) is written last, so a failed or
// interrupted build leaves no dist/ that looks complete.
// Leaves out: type checking (npm run typecheck), tests and benchmarks (they
// run through vitest and tsx), source maps.
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DIST, ROOT, SOURCE_ROOTS, STAMP } from './dist.mjs';

// esbuild comes with tsx, which the package depends on.
const esbuild = createRequire(createRequire(import.meta.url).resolve('tsx/package.json'))('esbuild');

/** Every .ts file to compile: the source roots, without tests, configs and build outputs. */
function sources(dir, out = []) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name === 'build') continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) sources(p, out);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.config.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** A source file's path from the root, with forward slashes. */
const fromRoot = (file) => relative(ROOT, file).split(sep).join('/');

/** `new URL('./x.ts', import.meta.url)`: the URL of a TypeScript module, named by its source's path. */
const MODULE_URL = /new URL\((['"])(\.\.?\/[^'"\n]*\.ts)\1, import\.meta\.url\)/g;

/** The modules a source names by URL (they must be entries, so that they exist as files). */
function modulesNamedByUrl(file, text) {
  return [...text.matchAll(MODULE_URL)].map((m) => resolve(dirname(file), m[2]));
}

/** The lines that give a compiled module its source's import.meta.url (see the header). */
function sourceLocation(file, text) {
  const lines = [`var __latsim_source_url = new URL(${JSON.stringify(fromRoot(file))}, __latsim_root_url).href;`];
  if (/import\.meta\.(dirname|filename)/.test(text)) {
    lines.push('var __latsim_source_filename = __latsim_fileURLToPath(__latsim_source_url);');
    lines.push('var __latsim_source_dirname = __latsim_dirname(__latsim_source_filename);');
    lines.unshift('import { fileURLToPath as __latsim_fileURLToPath } from "node:url";', 'import { dirname as __latsim_dirname } from "node:path";');
  }
  return lines.join('\n');
}

/**
 * Packages bundled in (each is many small CommonJS files, whose loading costs
 * more than its running at every start); the others stay imports of
 * node_modules (tinypool finds files beside its own; xstate's functions keep
 * the names `latsim statechart` prints, which bundling could change).
 */
const BUNDLED = new Set(['yaml', 'commander', 'seedrandom']);

/** The esbuild plugin that keeps every module's place (see the header). */
const tree = () => ({
  name: 'latsim-tree',
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith('node:')) return { path: args.path, external: true };
      const name = args.path.startsWith('@') ? args.path.split('/').slice(0, 2).join('/') : args.path.split('/')[0];
      return BUNDLED.has(name) ? undefined : { path: args.path, external: true };
    });
    build.onLoad({ filter: /\.ts$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      const named = text.replace(MODULE_URL, (_, _q, rel) => {
        const entry = `${fromRoot(resolve(dirname(args.path), rel)).slice(0, -3)}.js`;
        return `new URL(${JSON.stringify(entry)}, __latsim_dist_url)`;
      });
      return { contents: `${sourceLocation(args.path, text)}\n${named}`, loader: 'ts' };
    });
  },
});

// --out DIR builds elsewhere (the tests do), without a stamp: bin/latsim.mjs runs only dist/.
const outArg = process.argv.indexOf('--out');
const target = outArg > 0 ? resolve(process.argv[outArg + 1] ?? '') : DIST;
const started = Date.now();
const tmp = `${target}.tmp-${process.pid}`;
rmSync(tmp, { recursive: true, force: true });
const files = SOURCE_ROOTS.filter((r) => existsSync(join(ROOT, r))).flatMap((r) => sources(join(ROOT, r)));
// The CLI, the scenario loader (the build precompiles its validator) and what is loaded by URL.
const entryPoints = [...new Set([
  join(ROOT, 'cli', 'main.ts'),
  join(ROOT, 'cli', 'scenario-file.ts'),
  ...files.flatMap((f) => modulesNamedByUrl(f, readFileSync(f, 'utf8'))),
])];
const distName = basename(target);
let result;
try {
  result = await esbuild.build({
    entryPoints,
    outdir: tmp,
    outbase: ROOT,
    entryNames: '[dir]/[name]',
    chunkNames: 'chunks/[name]-[hash]',
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    metafile: true,
    define: {
      'globalThis.__LATSIM_COMPILED__': 'true',
      'import.meta.url': '__latsim_source_url',
      'import.meta.filename': '__latsim_source_filename',
      'import.meta.dirname': '__latsim_source_dirname',
    },
    // The build's folder, from where the running module is in it, and the package root from there.
    banner: {
      js: `const __latsim_dist_url = import.meta.url.slice(0, import.meta.url.lastIndexOf(${JSON.stringify(`/${distName}/`)}) + ${distName.length + 2});\n` +
        `const __latsim_root_url = new URL(${JSON.stringify(`${relative(target, ROOT).split(sep).join('/')}/`)}, __latsim_dist_url).href;\n` +
        // What the bundled CommonJS packages require of Node.
        'import { createRequire as __latsim_createRequire } from "node:module";\nconst require = __latsim_createRequire(import.meta.url);',
    },
    plugins: [tree()],
    logLevel: 'warning',
  });
} catch {
  rmSync(tmp, { recursive: true, force: true });
  console.error('latsim: build failed (latsim still runs, through tsx)');
  // An install does not fail for want of the compiled tree; `npm run build` does.
  process.exit(process.env.npm_lifecycle_event === 'prepare' ? 0 : 1);
}
mkdirSync(dirname(target), { recursive: true });
const old = `${target}.old-${process.pid}`;
if (existsSync(target)) renameSync(target, old);
renameSync(tmp, target);
rmSync(old, { recursive: true, force: true });
// From its final place: compiled modules find the root from their folder's name.
try {
  const { validatorSource } = await import(pathToFileURL(join(target, 'cli', 'scenario-file.js')).href);
  writeFileSync(join(target, 'scenario-validator.cjs'), validatorSource());
} catch (e) {
  console.error(`latsim: the scenario validator was not precompiled (${e.message}); runs compile it`);
}
const outputs = Object.keys(result.metafile.outputs).length;
if (target === DIST) writeFileSync(STAMP, `${JSON.stringify({ started_ms: started, sources: files.length, outputs })}\n`);
console.log(`latsim: compiled ${files.length} modules into ${outputs} in ${relative(process.cwd(), target) || '.'}/ in ${Date.now() - started} ms`);

#!/usr/bin/env node
// `npm run build` (and the prepare step of `npm ci`): compiles the TypeScript
// of cli/, sim/, reports/ and real/ into dist/, one JavaScript module per
// source file at the same relative path, so that `latsim` starts without
// transpiling. esbuild (tsx's own compiler) strips the types; nothing is
// bundled: a relative import of x.ts becomes one of x.js, and packages stay
// imports of node_modules.
//
// A compiled module keeps its source's place: import.meta.url (and
// import.meta.dirname, import.meta.filename) read as those of the .ts file,
// so every path a module derives from its own location (the scenario schema,
// the KVM addon, the guest payloads, bin/latsim.mjs, the campaign worker)
// resolves as it does in the source tree. The one exception is the URL of a
// TypeScript module itself, `new URL('./x.ts', import.meta.url)` (a worker's
// job module): it names the compiled x.js beside the compiled module.
//
// The tree is built in a temporary folder and moved into place, and the stamp
// (dist/build.json, see bin/dist.mjs) is written last, so a failed or
// interrupted build leaves no dist/ that looks complete.
// Leaves out: type checking (npm run typecheck), tests and benchmarks (they
// run through vitest and tsx), source maps.
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
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

/** The lines that give a compiled module (in out/) its source's import.meta.url (see the header). */
function sourceLocation(file, out, text) {
  const compiled = join(out, relative(ROOT, file));
  const rel = relative(dirname(compiled), file).split(sep).join('/');
  const lines = [`const __latsim_source_url = new URL(${JSON.stringify(rel)}, __latsim_compiled_url).href;`];
  if (/import\.meta\.(dirname|filename)/.test(text)) {
    lines.push('const __latsim_source_filename = __latsim_fileURLToPath(__latsim_source_url);');
    lines.push('const __latsim_source_dirname = __latsim_dirname(__latsim_source_filename);');
    lines.unshift('import { fileURLToPath as __latsim_fileURLToPath } from "node:url";', 'import { dirname as __latsim_dirname } from "node:path";');
  }
  return lines.join('\n');
}

/** The esbuild plugin that keeps the tree as it is (see the header), for a build into out/. */
const tree = (out) => ({
  name: 'latsim-tree',
  setup(build) {
    build.onResolve({ filter: /^\.\.?\// }, (args) => {
      if (args.kind === 'entry-point') return undefined;
      if (!args.path.endsWith('.ts')) {
        return { errors: [{ text: `${args.path}: a relative import in the compiled tree must name a .ts module` }] };
      }
      return { path: `${args.path.slice(0, -3)}.js`, external: true };
    });
    build.onLoad({ filter: /\.ts$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      const moduleUrls = text.replace(/new URL\((['"])(\.\.?\/[^'"\n]*)\.ts\1, import\.meta\.url\)/g, 'new URL($1$2.js$1, __latsim_compiled_url)');
      return { contents: `${sourceLocation(args.path, out, text)}\n${moduleUrls}`, loader: 'ts' };
    });
  },
});

// --out DIR builds elsewhere (the tests do), without a stamp: bin/latsim.mjs runs only dist/.
const outArg = process.argv.indexOf('--out');
const target = outArg > 0 ? resolve(process.argv[outArg + 1] ?? '') : DIST;
const started = Date.now();
const tmp = `${target}.tmp-${process.pid}`;
rmSync(tmp, { recursive: true, force: true });
const entryPoints = SOURCE_ROOTS.filter((r) => existsSync(join(ROOT, r))).flatMap((r) => sources(join(ROOT, r)));
try {
  await esbuild.build({
    entryPoints,
    outdir: tmp,
    outbase: ROOT,
    bundle: true,
    packages: 'external',
    format: 'esm',
    platform: 'node',
    target: 'node20',
    define: {
      'import.meta.url': '__latsim_source_url',
      'import.meta.filename': '__latsim_source_filename',
      'import.meta.dirname': '__latsim_source_dirname',
    },
    banner: { js: 'const __latsim_compiled_url = import.meta.url;' },
    plugins: [tree(target)],
    logLevel: 'warning',
  });
} catch {
  rmSync(tmp, { recursive: true, force: true });
  console.error('latsim: build failed (latsim still runs, through tsx)');
  process.exit(1);
}
mkdirSync(dirname(target), { recursive: true });
const old = `${target}.old-${process.pid}`;
if (existsSync(target)) renameSync(target, old);
renameSync(tmp, target);
rmSync(old, { recursive: true, force: true });
if (target === DIST) writeFileSync(STAMP, `${JSON.stringify({ started_ms: started, modules: entryPoints.length })}\n`);
console.log(`latsim: compiled ${entryPoints.length} modules into ${relative(process.cwd(), target) || '.'}/ in ${Date.now() - started} ms`);

// Where the compiled tree is and whether it may be run. `npm ci` (the
// prepare script) and `npm run build` compile the TypeScript of cli/, sim/,
// reports/ and real/ into dist/ (bin/build.mjs); bin/latsim.mjs runs from
// there and falls back to transpiling through tsx when dist/ is absent or
// stale.
//
// Stale means, in a development tree only (one with .git: a clone or a
// worktree), that a source file or folder under those roots was modified
// after the build began: one stat per entry, about 170 of them, a
// millisecond. git checkout, an editor's save, a new, renamed or removed file
// all move a file's or its folder's mtime. Outside a development tree (an
// installed package) the build is what was shipped, and is trusted as it is.
// Leaves out: rebuilding on its own (run npm run build); dependencies are
// not compiled in, so node_modules does not make a build stale.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The package root (the folder holding bin/). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const DIST = join(ROOT, 'dist');
/** Written last by a build: { "started_ms": the build's start }. */
export const STAMP = join(DIST, 'build.json');
/** The folders compiled into dist/. */
export const SOURCE_ROOTS = ['cli', 'sim', 'reports', 'real'];

/** The build stamp of root's dist/, or null when there is no complete build. */
function stamp(root) {
  try {
    const s = JSON.parse(readFileSync(join(root, 'dist', 'build.json'), 'utf8'));
    return typeof s.started_ms === 'number' ? s : null;
  } catch {
    return null;
  }
}

/** True when some file or folder under dir was modified after ms. */
function modifiedAfter(dir, ms) {
  if (statSync(dir).mtimeMs > ms) return true;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    // Build outputs of the addon and the guest payloads hold no TypeScript.
    if (e.name === 'node_modules' || e.name === 'build') continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (modifiedAfter(p, ms)) return true;
    } else if (e.name.endsWith('.ts') && statSync(p).mtimeMs > ms) {
      return true;
    }
  }
  return false;
}

/** Whether root's dist/ holds a build that matches the sources (see the header). */
export function distIsFresh(root = ROOT) {
  const s = stamp(root);
  if (s === null) return false;
  if (!existsSync(join(root, '.git'))) return true;
  return !SOURCE_ROOTS.some((r) => existsSync(join(root, r)) && modifiedAfter(join(root, r), s.started_ms));
}

/** The file: URL of a module's compiled form, e.g. compiledUrl('cli/main'). */
export function compiledUrl(module) {
  return pathToFileURL(join(DIST, `${module}.js`)).href;
}

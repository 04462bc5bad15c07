// The compiled tree (bin/build.mjs) and when bin/latsim.mjs may run it
// (bin/dist.mjs): a build into another folder runs commands exactly as the
// TypeScript sources do, paths to the schema and the campaign worker
// included; a development tree's build is stale once a source or folder under
// the compiled roots changes after the build began, an installed package's
// build never.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { distIsFresh } from '../../bin/dist.mjs';
import { ROOT, runCli } from '../cli/helpers.ts';

describe('when the compiled tree is fresh', () => {
  let root = '';
  const at = (file: string, s: number) => utimesSync(file, s, s);
  const stamp = (s: number) => writeFileSync(join(root, 'dist', 'build.json'), JSON.stringify({ started_ms: s * 1000 }));

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'latsim-dist-'));
    mkdirSync(join(root, '.git'));
    mkdirSync(join(root, 'cli', 'commands'), { recursive: true });
    mkdirSync(join(root, 'dist'));
    writeFileSync(join(root, 'cli', 'main.ts'), '');
    for (const p of ['cli/main.ts', 'cli/commands', 'cli']) at(join(root, p), 1000);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('is stale without a stamp, fresh after a build that began after every change', () => {
    expect(distIsFresh(root)).toBe(false);
    stamp(2000);
    expect(distIsFresh(root)).toBe(true);
  });

  it('is stale once a source is modified, or a file appears in a folder, after the build began', () => {
    stamp(2000);
    at(join(root, 'cli', 'main.ts'), 3000);
    expect(distIsFresh(root)).toBe(false);
    at(join(root, 'cli', 'main.ts'), 1000);
    writeFileSync(join(root, 'cli', 'commands', 'notes.txt'), '');
    expect(distIsFresh(root)).toBe(false);
  });

  it('trusts the build of a tree that is not a development tree', () => {
    rmSync(join(root, '.git'), { recursive: true });
    at(join(root, 'cli', 'main.ts'), 3000);
    expect(distIsFresh(root)).toBe(true);
  });
});

describe('the compiled tree', () => {
  let out = '';
  beforeAll(() => {
    out = mkdtempSync(join(tmpdir(), 'latsim-build-'));
    // Packages resolve from the compiled modules' place, as they would in the tree.
    symlinkSync(join(ROOT, 'node_modules'), join(out, 'node_modules'));
    // What bin/latsim.mjs does with a fresh dist/ (a file, not -e: worker threads inherit node's options).
    writeFileSync(join(out, 'latsim.mjs'), "const { main } = await import('./dist/cli/main.js');\nprocess.exitCode = await main(process.argv.slice(2));\n");
    const build = spawnSync(process.execPath, [join(ROOT, 'bin', 'build.mjs'), '--out', join(out, 'dist')], { cwd: ROOT, encoding: 'utf8' });
    expect(build.status, build.stderr).toBe(0);
  });
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  const compiled = (args: readonly string[]) =>
    spawnSync(process.execPath, [join(out, 'latsim.mjs'), ...args], { cwd: ROOT, encoding: 'utf8' });
  const withoutWall = (json: string) => JSON.stringify({ ...JSON.parse(json), wall_ms: 0 });

  it('runs a scenario as the sources do', async () => {
    const args = ['run', 'scenarios/flush-stall-legacy.yaml', '--json'];
    const c = compiled(args);
    const s = await runCli(args);
    expect(c.status).toBe(s.code);
    expect(withoutWall(c.stdout)).toBe(withoutWall(s.stdout));
  });

  it('finds the scenario schema, runs fuzz seeds on worker threads and prints the statechart as the sources do', async () => {
    const args = ['fuzz', '--seeds', '2', '--workers', '2', '--json'];
    const c = compiled(args);
    const s = await runCli(args);
    expect(c.stderr).toBe(s.stderr);
    expect(c.status).toBe(s.code);
    expect(c.stdout).toBe(s.stdout);
    const schema = compiled(['schema']);
    expect(schema.stdout).toBe((await runCli(['schema'])).stdout);
    // Bundling must not rename what the statechart prints (its actions' and guards' names).
    expect(compiled(['statechart']).stdout).toBe((await runCli(['statechart'])).stdout);
  });
});

#!/usr/bin/env node
// Postinstall step: tries to build the KVM addon (node-gyp rebuild in real/kvm).
// On failure it prints one line saying real mode is unavailable and why, and still
// exits 0, so the simulation installs and works without the addon.
// Leaves out: installing compilers or headers; LATSIM_SKIP_KVM_BUILD=1 skips the build.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = dirname(fileURLToPath(import.meta.url));

function unavailable(why) {
  console.log(`latsim: real mode unavailable: ${why} (simulation works; retry with npm run build:kvm)`);
  process.exit(0);
}

if (process.env.LATSIM_SKIP_KVM_BUILD === '1') unavailable('addon build skipped (LATSIM_SKIP_KVM_BUILD=1)');
if (process.platform !== 'linux' || process.arch !== 'x64') unavailable(`KVM addon needs Linux on x86-64, not ${process.platform}/${process.arch}`);

let gyp;
try {
  gyp = createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
} catch {
  unavailable('node-gyp is not installed');
}

// Use the headers installed beside this node (distro packages, official tarballs)
// unless npm already names a nodedir, so no download is needed.
const args = [gyp, 'rebuild', '--directory', dir];
const prefix = dirname(dirname(process.execPath));
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_version.h'))) {
  args.push(`--nodedir=${prefix}`);
}

const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
if (r.error) unavailable(`node-gyp did not run: ${r.error.message}`);
if (r.status !== 0) {
  const lines = `${r.stdout}\n${r.stderr}`.split('\n').map((l) => l.trim()).filter(Boolean);
  const why =
    lines.find((l) => /\berror:/.test(l)) ??
    lines.find((l) => l.startsWith('gyp ERR! stack Error:'))?.replace('gyp ERR! stack ', '') ??
    lines.find((l) => l.startsWith('gyp ERR!') && !/^gyp ERR! (stack|System|command|cwd|node -v|node-gyp -v|not ok)/.test(l)) ??
    `node-gyp exited with status ${r.status}`;
  unavailable(`addon build failed: ${why}`);
}
console.log(`latsim: KVM addon built: ${join(dir, 'build', 'Release', 'latsim_kvm.node')}`);

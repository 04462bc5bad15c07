// What a QEMU binary says of itself over QMP, for `latsim qemu probe`: its
// version, whether KVM is enabled, and the migration capabilities and
// parameters it knows (`query-migrate-capabilities`,
// `query-migrate-parameters`). It starts the binary with no machine
// (`-M none`), with KVM when /dev/kvm is usable, asks, and quits.
// Leaves out: devices and machine types (a run finds out what it needs).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { QemuProcess } from './process.ts';
import { QmpClient } from './qmp.ts';

export interface QemuCapabilities {
  readonly qmp_version: string;
  readonly machine: string;
  readonly kvm: { readonly enabled: boolean; readonly present: boolean };
  readonly migration_capabilities: readonly string[];
  readonly migration_parameters: readonly string[];
}

export async function queryCapabilities(binary: string, kvm: boolean): Promise<QemuCapabilities> {
  const dir = mkdtempSync(join(tmpdir(), 'latsim-qemu-probe-'));
  const sock = join(dir, 'qmp.sock');
  const p = new QemuProcess('probe', binary, [
    '-M', 'none', '-accel', kvm ? 'kvm' : 'tcg', '-nodefaults', '-no-user-config', '-display', 'none',
    '-qmp', `unix:${sock},server=on,wait=off`,
  ]);
  let q: QmpClient | null = null;
  try {
    q = await QmpClient.connect(sock, 15_000);
    const v = await q.execute<{ qemu: { major: number; minor: number; micro: number }; package: string }>('query-version');
    const k = await q.execute<{ enabled: boolean; present: boolean }>('query-kvm');
    const caps = await q.execute<{ capability: string }[]>('query-migrate-capabilities');
    const params = await q.execute<Record<string, unknown>>('query-migrate-parameters');
    return {
      qmp_version: `${v.qemu.major}.${v.qemu.minor}.${v.qemu.micro}${v.package ? ` ${v.package.trim()}` : ''}`,
      machine: 'none',
      kvm: { enabled: k.enabled, present: k.present },
      migration_capabilities: caps.map((c) => c.capability),
      migration_parameters: Object.keys(params),
    };
  } finally {
    q?.close();
    await p.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

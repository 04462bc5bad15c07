// QEMU processes are reaped when the host process is killed: a child Node
// process starts a QEMU, prints its pid, gets SIGTERM; the QEMU must be gone
// and the teardown (a work directory) must have run.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { qemuOrSkip } from './helpers.ts';

const root = join(import.meta.dirname, '..', '..', '..');

describe('QemuProcess registry', () => {
  it('kills QEMU and runs teardowns when the host process gets SIGTERM', async (ctx) => {
    const probe = qemuOrSkip(ctx);
    const dir = mkdtempSync(join(tmpdir(), 'latsim-reap-test-'));
    const script = join(dir, 'child.mts');
    writeFileSync(script, `
import { QemuProcess, atTeardown } from ${JSON.stringify(join(root, 'real/qemu/process.ts'))};
import { rmSync } from 'node:fs';
atTeardown(() => rmSync(${JSON.stringify(dir)}, { recursive: true, force: true }));
const q = new QemuProcess('child', ${JSON.stringify(probe.binary)}, ['-accel', 'kvm', '-M', 'pc', '-m', '16M', '-nodefaults', '-display', 'none', '-S']);
console.log('pid', q.pid);
setInterval(() => {}, 1000);
`);
    const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    const pid = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        const m = /pid (\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.once('exit', () => reject(new Error(`child exited early: ${out}`)));
    });
    await new Promise((r) => setTimeout(r, 500));
    expect(() => process.kill(pid, 0)).not.toThrow();
    const exited = new Promise((r) => child.once('exit', (_code, signal) => r(signal)));
    child.kill('SIGTERM');
    expect(await exited).toBe('SIGTERM');
    // Gone, or a zombie waiting for whoever adopted it (the container's init
    // may not reap): either way no longer running.
    const running = () => {
      try {
        return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 50 && running(); i++) await new Promise((r) => setTimeout(r, 20));
    expect(running()).toBe(false);
    expect(existsSync(dir)).toBe(false);
  });
});

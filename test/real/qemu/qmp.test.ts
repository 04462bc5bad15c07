// The QMP client and the QEMU process wrapper against a real QEMU running
// the guest payload: greeting, commands, errors, events, serial lines, and
// the process reaped afterwards. Skips without QEMU, /dev/kvm or the payload.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { QemuProcess, liveQemuCount } from '../../../real/qemu/process.ts';
import { QmpClient, QmpError, QmpTimeout } from '../../../real/qemu/qmp.ts';
import { qemuArgs } from '../../../real/qemu/run.ts';
import { qemuOrSkip } from './helpers.ts';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

describe('QMP against real QEMU', () => {
  it('negotiates, answers commands and errors, reports events, and the process is reaped', async (ctx) => {
    const probe = qemuOrSkip(ctx);
    const dir = mkdtempSync(join(tmpdir(), 'latsim-qmp-test-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const args = qemuArgs({
      role: 'source', memoryBytes: 16 << 20, append: 'w0=u:500:512:2048 hb=50 st=500', qmpPath: join(dir, 'q.sock'),
      tracePath: join(dir, 't.log'), nbdPort: null, exportName: '', onError: 'report',
    });
    const q = new QemuProcess('test', probe.binary, args);
    cleanup.push(() => q.stop());
    const qmp = await QmpClient.connect(join(dir, 'q.sock'), 15_000);
    cleanup.push(() => qmp.close());

    expect(qmp.greeting!.QMP.version.qemu).toMatchObject({ major: probe.major, minor: probe.minor });
    const v = await qmp.execute<{ qemu: { major: number } }>('query-version');
    expect(v.qemu.major).toBe(probe.major);
    await expect(qmp.execute('no-such-command')).rejects.toBeInstanceOf(QmpError);
    await expect(qmp.waitEvent((e) => e.event === 'NEVER', 50)).rejects.toBeInstanceOf(QmpTimeout);

    // The guest boots and reports on the serial port.
    await q.waitSerial(/^R\b/, 60_000);
    const tsc = await q.waitSerial(/^LSQ tsc khz=\d+/, 1000);
    expect(Number(/khz=(\d+)/.exec(tsc.text)![1])).toBeGreaterThan(100_000);
    await q.waitSerial(/^S ms=/, 5000);

    await qmp.execute('stop');
    await qmp.waitEvent((e) => e.event === 'STOP', 5000);
    expect((await qmp.execute<{ status: string }>('query-status')).status).toBe('paused');
    const beats = q.serial.length;
    await new Promise((r) => setTimeout(r, 300));
    expect(q.serial.length).toBe(beats); // paused: no heartbeat
    await qmp.execute('cont');
    await qmp.waitEvent((e) => e.event === 'RESUME', 5000);
    await q.waitSerial(/^H\b/, 5000, beats);

    const pid = q.pid!;
    qmp.close();
    await q.stop();
    expect(q.running).toBe(false);
    expect(liveQemuCount()).toBe(0);
    expect(() => process.kill(pid, 0)).toThrow();
  });
});

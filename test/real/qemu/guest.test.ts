// The QEMU guest payload's dirtying patterns, checked on its memory: three
// workloads at once (migration-test's increment, a hot set with a cold
// share, a sequential sweep), then `stop` and pmemsave, and the first bytes
// of every page must show each pattern, with all other memory from 2 MiB up
// still zero. Skips without QEMU, /dev/kvm or the payload.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { QemuProcess } from '../../../real/qemu/process.ts';
import { QmpClient } from '../../../real/qemu/qmp.ts';
import { qemuArgs } from '../../../real/qemu/run.ts';
import { qemuOrSkip } from './helpers.ts';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const PAGE = 4096;

describe('QEMU guest payload', () => {
  it('writes each pattern where and as it should, and leaves other memory zero', async (ctx) => {
    const probe = qemuOrSkip(ctx);
    const dir = mkdtempSync(join(tmpdir(), 'latsim-guest-test-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const mem = 32 << 20;
    const append = [
      'hb=0', 'st=500',
      'w0=i:20000:512:256', // increment: 78 passes/s, wrapping every 256
      'w1=h:2000:1024:1024:64:100', // hot set: 64 hot pages, 10% cold
      'w2=s:500:4096:2000', // sequential sweep from page 4096
    ].join(' ');
    const q = new QemuProcess('guest-test', probe.binary, qemuArgs({
      role: 'source', memoryBytes: mem, append, qmpPath: join(dir, 'q.sock'), tracePath: join(dir, 't.log'),
      nbdPort: null, exportName: '', onError: 'report',
    }));
    cleanup.push(() => q.stop());
    const qmp = await QmpClient.connect(join(dir, 'q.sock'), 15_000);
    cleanup.push(() => qmp.close());
    await q.waitSerial(/^R\b/, 60_000);
    await q.waitSerial(/^S ms=2000\b|^S ms=20\d\d\b/, 10_000);
    await qmp.execute('stop');
    await qmp.execute('pmemsave', { val: 0, size: mem, filename: join(dir, 'mem') });
    const m = readFileSync(join(dir, 'mem'));
    const first = (page: number) => m.readUInt32LE(page * PAGE);
    const pageZero = (page: number) => m.subarray(page * PAGE, (page + 1) * PAGE).every((b) => b === 0);

    // Increment: the first byte of every page is v+1 up to one page and v after it (mod 256).
    const inc = Array.from({ length: 256 }, (_, i) => m[(512 + i) * PAGE]!);
    const drops = inc.filter((v, i) => i > 0 && v !== inc[i - 1]).length;
    expect(drops).toBeLessThanOrEqual(1);
    expect(inc.every((v) => v === inc[0] || v === ((inc[0]! + 255) & 0xff))).toBe(true);
    for (let i = 0; i < 256; i++) expect(m.subarray((512 + i) * PAGE + 1, (513 + i) * PAGE).every((b) => b === 0)).toBe(true);

    // Hot set: every hot page written; some, not all, of the cold ones.
    for (let p = 1024; p < 1088; p++) expect(first(p)).not.toBe(0);
    const coldWritten = Array.from({ length: 960 }, (_, i) => first(1088 + i) !== 0).filter(Boolean).length;
    expect(coldWritten).toBeGreaterThan(100);
    expect(coldWritten).toBeLessThan(700);

    // Sequential: a written prefix of the range, then zeroes.
    const seq = Array.from({ length: 2000 }, (_, i) => first(4096 + i) !== 0);
    const n = seq.indexOf(false);
    expect(n).toBeGreaterThan(200); // 500/s for 2 s, less what a busy host takes
    expect(seq.slice(n).every((w) => !w)).toBe(true);

    // Nothing else from 2 MiB up to the last MiB (SeaBIOS keeps its ACPI and
    // SMBIOS tables at the top of RAM).
    const inRange = (p: number) => (p >= 512 && p < 768) || (p >= 1024 && p < 2048) || (p >= 4096 && p < 6096);
    for (let p = 512; p < mem / PAGE - 256; p++) if (!inRange(p)) expect(pageZero(p), `page ${p}`).toBe(true);
  });
});

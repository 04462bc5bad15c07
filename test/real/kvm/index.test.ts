/**
 * Tests of real/kvm/index.ts that need no /dev/kvm: the wrapper says clearly why
 * real mode is unavailable, and (when the addon is built) the raw-fd helpers work
 * and fail with coded one-line errors. Part of the normal `npm test` suite.
 * Leaves out: anything that runs a guest (vm.test.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { Kvm, KvmError, loadAddon, probeKvm } from '../../../real/kvm/index.ts';
import { addonOrSkip } from '../helpers.ts';

describe('availability', () => {
  it('reports a missing addon as unavailable with the build command', () => {
    const a = loadAddon('/nonexistent/latsim_kvm.node');
    expect(a.available).toBe(false);
    if (a.available) return;
    expect(a.code).toBe('ENOADDON');
    expect(a.reason).toMatch(/^unavailable: the KVM addon is not built .*npm run build:kvm/);
    const p = probeKvm({ addonPath: '/nonexistent/latsim_kvm.node' });
    expect(p).toMatchObject({ available: false, code: 'ENOADDON' });
  });

  it('reports an absent /dev/kvm as unavailable, in one line, without throwing', () => {
    const p = probeKvm({ devicePath: '/nonexistent/kvm' });
    expect(p.available).toBe(false);
    if (p.available) return;
    expect(p.reason).toMatch(/^unavailable: /);
    expect(p.reason).not.toContain('\n');
    if (loadAddon().available) {
      expect(p.code).toBe('ENOKVM');
      expect(p.reason).toContain('/nonexistent/kvm');
      expect(p.reason).toMatch(/no KVM/);
    } else {
      expect(p.code).toBe('ENOADDON');
    }
  });

  it('Kvm.open throws a KvmError-shaped error with a code', () => {
    let err: unknown;
    try {
      Kvm.open({ devicePath: '/nonexistent/kvm' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(Error);
    expect((err as KvmError).code).toMatch(/^(ENOKVM|ENOADDON)$/);
  });
});

describe('fd helpers (addon, no KVM needed)', () => {
  it('eventfd counts writes and reads null when empty', (ctx) => {
    const n = addonOrSkip(ctx);
    const fd = n.eventfdCreate();
    expect(n.eventfdRead(fd)).toBeNull();
    n.eventfdWrite(fd, 2);
    n.eventfdWrite(fd);
    expect(n.eventfdRead(fd)).toBe(3);
    expect(n.eventfdRead(fd)).toBeNull();
    n.close(fd);
  });

  it('epoll waits with a timeout and reports the ready fd', (ctx) => {
    const n = addonOrSkip(ctx);
    const ep = n.epollCreate();
    const a = n.eventfdCreate();
    const b = n.eventfdCreate();
    n.epollCtl(ep, 'add', a, n.constants.epoll.IN);
    n.epollCtl(ep, 'add', b, n.constants.epoll.IN);
    const out = new Int32Array(8);
    expect(n.epollWait(ep, out, 10)).toBe(0);
    n.eventfdWrite(b, 1);
    expect(n.epollWait(ep, out, 1000)).toBe(1);
    expect(out[0]).toBe(b);
    expect(out[1]! & n.constants.epoll.IN).not.toBe(0);
    n.epollCtl(ep, 'del', b);
    expect(n.epollWait(ep, out, 0)).toBe(0);
    for (const fd of [a, b, ep]) n.close(fd);
  });

  it('moves bytes over loopback TCP with non-blocking raw fds', (ctx) => {
    const n = addonOrSkip(ctx);
    const lfd = n.tcpListen('127.0.0.1', 0);
    const port = n.socketLocalPort(lfd);
    expect(port).toBeGreaterThan(0);
    const c = n.tcpConnect('127.0.0.1', port);
    expect(n.pollIn(lfd, 2000)).toBe(true);
    const s = n.tcpAccept(lfd);
    expect(s).not.toBeNull();
    expect(n.socketError(c)).toBeNull();
    expect(n.write(c, new TextEncoder().encode('page 42'))).toBe(7);
    expect(n.pollIn(s!, 2000)).toBe(true);
    const buf = new Uint8Array(64);
    const got = n.read(s!, buf);
    expect(new TextDecoder().decode(buf.subarray(0, got!))).toBe('page 42');
    expect(n.read(s!, buf)).toBeNull(); // nothing more: would block
    n.close(c);
    expect(n.pollIn(s!, 2000)).toBe(true);
    expect(n.read(s!, buf)).toBe(0); // end of stream
    n.close(s!);
    n.close(lfd);
  });

  it('writes, syncs and reads a file at offsets', (ctx) => {
    const n = addonOrSkip(ctx);
    const dir = mkdtempSync(join(tmpdir(), 'latsim-fdio-'));
    try {
      const fd = n.fileOpen(join(dir, 'disk.img'), 'w+');
      n.ftruncate(fd, 1 << 20);
      expect(n.pwrite(fd, new Uint8Array([1, 2, 3, 4]), 4096)).toBe(4);
      n.fdatasync(fd);
      const back = new Uint8Array(4);
      expect(n.pread(fd, back, 4096)).toBe(4);
      expect(Array.from(back)).toEqual([1, 2, 3, 4]);
      expect(n.fileSize(fd)).toBe(1 << 20);
      n.close(fd);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('turns failed syscalls into one-line errors with an errno code', (ctx) => {
    const n = addonOrSkip(ctx);
    const attempts: Array<[() => unknown, string]> = [
      [() => n.fileOpen('/nonexistent/dir/file', 'r'), 'ENOENT'],
      [() => n.eventfdRead(987654), 'EBADF'],
      [() => n.tcpConnect('not-an-ip', 80), 'EINVAL'],
      [() => n.epollWait(n.epollCreate(), new Int32Array(1), 0), 'EINVAL'],
      [() => n.getApiVersion(987654), 'EBADF'],
    ];
    for (const [f, code] of attempts) {
      let err: { code?: string; message?: string } | undefined;
      try {
        f();
      } catch (e) {
        err = e as typeof err;
      }
      expect(err?.code).toBe(code);
      expect(err?.message).not.toContain('\n');
    }
  });
});

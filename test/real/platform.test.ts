/**
 * The real Platform's semantics, against the real clock and real fds: sleep and
 * timed waits, waits woken by an in-process notifier and by an eventfd through
 * epoll, a loop that blocks (no spinning) while nothing is due, cpu(ns) holding
 * every other coroutine off, FIFO mutex hand-off, socket readiness, stop()
 * while threads keep each other due, and block
 * I/O on a file with a fault delay. Needs the addon, not /dev/kvm; skips without it.
 * Leaves out: vCPUs (test/real/cli/real.test.ts runs whole guests).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { RealPlatform } from '../../real/platform.ts';
import type { Co, Notifier } from '../../sim/platform.ts';
import { addonOrSkip } from './helpers.ts';

const MS = 1_000_000;
let platforms: RealPlatform[] = [];
afterEach(() => {
  for (const p of platforms) p.close();
  platforms = [];
});

function platform(ctx: Parameters<typeof addonOrSkip>[0]): RealPlatform {
  const io = addonOrSkip(ctx);
  const p = new RealPlatform({ seed: 1, io });
  platforms.push(p);
  return p;
}

describe('RealPlatform', () => {
  it('sleeps and times out waits on the real clock', (ctx) => {
    const p = platform(ctx);
    const n = p.createNotifier('never');
    const log: [string, number][] = [];
    p.spawn('sleeper', function* (): Co<void> {
      const t0 = p.nowNs();
      yield* p.sleep(20 * MS);
      log.push(['slept', p.nowNs() - t0]);
      const t1 = p.nowNs();
      const ready = yield* p.wait([n], 30 * MS);
      log.push([`waited ${ready.length}`, p.nowNs() - t1]);
      p.stop();
    });
    expect(p.run(p.nowNs() + 5_000 * MS)).toBe('stopped');
    expect(log.map((l) => l[0])).toEqual(['slept', 'waited 0']);
    expect(log[0]![1]).toBeGreaterThanOrEqual(20 * MS);
    expect(log[1]![1]).toBeGreaterThanOrEqual(30 * MS);
    expect(Number.isSafeInteger(p.nowNs())).toBe(true);
  });

  it('wakes a waiter when a notifier is set from a timer, and when an eventfd becomes readable', (ctx) => {
    const p = platform(ctx);
    const local = p.createNotifier('local');
    const efd = p.io.eventfdCreate();
    const fdn = p.fdNotifier('efd', efd);
    const got: string[] = [];
    let tLocal = 0;
    let tFd = 0;
    const start = p.nowNs(); // before the timers are armed: wake times count from here
    p.spawn('waiter', function* (): Co<void> {
      const a = yield* p.wait([local, fdn], -1);
      tLocal = p.nowNs() - start;
      got.push(...a.map((x) => x.name));
      local.read();
      const b = yield* p.wait([local, fdn], 5_000 * MS);
      tFd = p.nowNs() - start;
      got.push(...b.map((x) => x.name));
      expect(fdn.read()).toBe(3);
      expect(fdn.ready).toBe(false);
      p.stop();
    });
    p.callAfter(10 * MS, () => local.set());
    p.callAfter(40 * MS, () => p.io.eventfdWrite(efd, 3)); // only epoll can tell the loop
    p.run(p.nowNs() + 5_000 * MS);
    expect(got).toEqual(['local', 'efd']);
    expect(tLocal).toBeGreaterThanOrEqual(10 * MS);
    expect(tFd).toBeGreaterThanOrEqual(40 * MS);
    expect(tFd).toBeLessThan(2_000 * MS);
    p.releaseFd(efd);
    p.io.close(efd);
  });

  it('blocks in epoll_wait while nothing is due instead of spinning', (ctx) => {
    const p = platform(ctx);
    const efd = p.io.eventfdCreate();
    const n = p.fdNotifier('efd', efd);
    p.spawn('waiter', function* (): Co<void> {
      yield* p.wait([n], -1);
      p.stop();
    });
    const cpu0 = process.cpuUsage();
    const t0 = p.nowNs();
    p.callAfter(300 * MS, () => p.io.eventfdWrite(efd, 1));
    p.run(t0 + 5_000 * MS);
    const cpu = process.cpuUsage(cpu0);
    expect(p.nowNs() - t0).toBeGreaterThanOrEqual(300 * MS);
    expect(p.blockedNs).toBeGreaterThanOrEqual(250 * MS);
    expect((cpu.user + cpu.system) * 1000).toBeLessThan(150 * MS);
    p.releaseFd(efd);
    p.io.close(efd);
  });

  it('spends real CPU in cpu(ns), during which no other coroutine or timer runs', (ctx) => {
    const p = platform(ctx);
    let timerAt = 0;
    let spunNs = 0;
    const t0 = p.nowNs();
    p.callAfter(5 * MS, () => {
      timerAt = p.nowNs() - t0;
    });
    p.spawn('spinner', function* (): Co<void> {
      const s = p.nowNs();
      yield* p.cpu(50 * MS);
      spunNs = p.nowNs() - s;
    });
    p.run(t0 + 200 * MS);
    expect(spunNs).toBeGreaterThanOrEqual(50 * MS);
    expect(timerAt).toBeGreaterThanOrEqual(50 * MS);
    expect(p.threads[0]!.cpuNs).toBe(50 * MS);
  });

  it('hands a mutex to its waiters in FIFO order', (ctx) => {
    const p = platform(ctx);
    const m = p.createMutex('m');
    const order: string[] = [];
    const worker = (name: string, delayNs: number) => function* (): Co<void> {
      yield* p.sleep(delayNs);
      yield* p.lock(m);
      order.push(`${name} locked`);
      expect(m.owner?.name).toBe(name);
      yield* p.sleep(10 * MS);
      p.unlock(m);
    };
    p.spawn('a', worker('a', 0));
    p.spawn('b', worker('b', 2 * MS));
    p.spawn('c', worker('c', 4 * MS));
    p.run(p.nowNs() + 100 * MS);
    expect(order).toEqual(['a locked', 'b locked', 'c locked']);
    expect(m.owner).toBeNull();
    expect(() => p.unlock(m)).toThrow(/unlocks m held by nobody/);
  });

  it('reports socket readiness both ways over loopback TCP', (ctx) => {
    const p = platform(ctx);
    const io = p.io;
    const lfd = io.tcpListen('127.0.0.1', 0);
    const port = io.socketLocalPort(lfd);
    const listen = p.socketNotifiers('listen', lfd);
    const cfd = io.tcpConnect('127.0.0.1', port);
    const client = p.socketNotifiers('client', cfd);
    const received: number[] = [];
    p.spawn('server', function* (): Co<void> {
      yield* p.wait([listen.readable], -1);
      const sfd = io.tcpAccept(lfd)!;
      listen.readable.read();
      const server = p.socketNotifiers('server', sfd);
      const buf = new Uint8Array(16);
      while (received.length < 3) {
        yield* p.wait([server.readable], -1);
        const n = io.read(sfd, buf);
        server.readable.read();
        if (n) received.push(...buf.subarray(0, n));
      }
      p.releaseFd(sfd);
      io.close(sfd);
      p.stop();
    });
    p.spawn('client', function* (): Co<void> {
      const ready: readonly Notifier[] = yield* p.wait([client.writable], -1); // connected
      expect(ready).toEqual([client.writable]);
      expect(io.socketError(cfd)).toBeNull();
      expect(io.write(cfd, new Uint8Array([1, 2]))).toBe(2);
      yield* p.sleep(5 * MS);
      expect(io.write(cfd, new Uint8Array([3]))).toBe(1);
    });
    p.run(p.nowNs() + 5_000 * MS);
    expect(received).toEqual([1, 2, 3]);
    for (const fd of [cfd, lfd]) {
      p.releaseFd(fd);
      io.close(fd);
    }
  });

  it('stops from inside a stretch of due work: two threads that keep waking each other', (ctx) => {
    const p = platform(ctx);
    const ping = p.createNotifier('ping');
    const pong = p.createNotifier('pong');
    let rounds = 0;
    // Each wake is due at once, so the loop never gets to look at the clock or epoll in between
    // (as a destination's handler woken again and again by a socket at end of stream).
    const player = (mine: Notifier, theirs: Notifier) => function* (): Co<void> {
      // Bounded, so that a stop() that does not stop fails the test instead of hanging it.
      while (rounds < 100_000) {
        theirs.set();
        yield* p.wait([mine], -1);
        mine.read();
        if (++rounds === 1000) p.stop();
      }
    };
    p.spawn('a', player(ping, pong));
    p.spawn('b', player(pong, ping));
    expect(p.run(p.nowNs() + 60_000 * MS)).toBe('stopped');
    expect(rounds).toBe(1000);
  });

  it('performs block I/O on a file and completes it after the fault delay', (ctx) => {
    const p = platform(ctx);
    const dir = mkdtempSync(join(tmpdir(), 'latsim-platform-'));
    try {
      p.attachBlockFile('disk0', join(dir, 'disk0.img'), 1 << 20);
      const done: [string, number, string | null][] = [];
      const t0 = p.nowNs();
      const req = { offset: 4096, length: 4096, latencyNs: 0, error: null };
      p.submitIo('disk0', { ...req, kind: 'write', faultNs: 0 }, (r) => done.push(['write', p.nowNs() - t0, r.error]));
      p.submitIo('disk0', { ...req, kind: 'flush', faultNs: 80 * MS }, (r) => done.push(['flush', p.nowNs() - t0, r.error]));
      p.submitIo('disk0', { ...req, kind: 'read', faultNs: 0, error: 'EIO (fault x)' }, (r) => done.push(['read', p.nowNs() - t0, r.error]));
      p.run(t0 + 200 * MS);
      expect(done.map((d) => d[0])).toEqual(['write', 'read', 'flush']);
      expect(done[2]![1]).toBeGreaterThanOrEqual(80 * MS);
      expect(done[1]![2]).toBe('EIO (fault x)');
      const bytes = readFileSync(join(dir, 'disk0.img'));
      expect(bytes.length).toBe(1 << 20);
      expect(new DataView(bytes.buffer, bytes.byteOffset).getFloat64(4096, true)).toBe(4096);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// The NBD server: handshake and commands with a fake client over node:net,
// the fault schedule (stall, slow-flush, io-error), and, where qemu-io is
// installed, QEMU's own NBD client against it.
import { spawnSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';

import {
  ByteReader, IHAVEOPT, NBDMAGIC, NBD_CMD_DISC, NBD_CMD_FLUSH, NBD_CMD_READ, NBD_CMD_WRITE, NBD_EIO,
  NBD_FLAG_C_FIXED_NEWSTYLE, NBD_FLAG_C_NO_ZEROES, NBD_FLAG_SEND_FLUSH, NBD_OPT_EXPORT_NAME, NBD_OPT_GO, NBD_OPT_LIST,
  NBD_REP_ACK, NBD_REP_ERR_UNKNOWN, NBD_REP_ERR_UNSUP, NBD_REP_INFO, NBD_REP_MAGIC, NBD_REP_SERVER, NBD_REQUEST_MAGIC,
  NBD_SIMPLE_REPLY_MAGIC, NbdServer,
} from '../../../real/qemu/nbd-server.ts';
import type { FaultSpec } from '../../../sim/scenario/scenario.ts';

/** A minimal NBD client: enough protocol to drive the server from a test. */
class FakeClient {
  private constructor(private readonly sock: Socket, private readonly r: ByteReader) {}
  static async open(port: number): Promise<FakeClient> {
    const sock = connect(port, '127.0.0.1');
    await new Promise<void>((res, rej) => {
      sock.once('connect', () => res());
      sock.once('error', rej);
    });
    const c = new FakeClient(sock, new ByteReader(sock));
    const hello = await c.r.read(18);
    expect(hello.readBigUInt64BE(0)).toBe(NBDMAGIC);
    expect(hello.readBigUInt64BE(8)).toBe(IHAVEOPT);
    const flags = Buffer.alloc(4);
    flags.writeUInt32BE(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    sock.write(flags);
    return c;
  }
  option(opt: number, data: Buffer = Buffer.alloc(0)): void {
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(IHAVEOPT, 0);
    h.writeUInt32BE(opt, 8);
    h.writeUInt32BE(data.length, 12);
    this.sock.write(Buffer.concat([h, data]));
  }
  async reply(): Promise<{ opt: number; type: number; data: Buffer }> {
    const h = await this.r.read(20);
    expect(h.readBigUInt64BE(0)).toBe(NBD_REP_MAGIC);
    const len = h.readUInt32BE(16);
    return { opt: h.readUInt32BE(8), type: h.readUInt32BE(12), data: await this.r.read(len) };
  }
  async go(name: string): Promise<{ size: bigint; flags: number }> {
    const n = Buffer.from(name);
    const d = Buffer.alloc(4 + n.length + 2);
    d.writeUInt32BE(n.length, 0);
    n.copy(d, 4);
    this.option(NBD_OPT_GO, d);
    let size = 0n;
    let flags = 0;
    for (;;) {
      const rep = await this.reply();
      if (rep.type === NBD_REP_ACK) return { size, flags };
      if (rep.type !== NBD_REP_INFO) throw new Error(`GO failed: ${rep.type.toString(16)}`);
      if (rep.data.readUInt16BE(0) === 0) {
        size = rep.data.readBigUInt64BE(2);
        flags = rep.data.readUInt16BE(10);
      }
    }
  }
  request(type: number, handle: number, offset: number, length: number, data?: Buffer): void {
    const h = Buffer.alloc(28);
    h.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
    h.writeUInt16BE(0, 4);
    h.writeUInt16BE(type, 6);
    h.writeBigUInt64BE(BigInt(handle), 8);
    h.writeBigUInt64BE(BigInt(offset), 16);
    h.writeUInt32BE(length, 24);
    this.sock.write(data ? Buffer.concat([h, data]) : h);
  }
  async simpleReply(readLength = 0): Promise<{ error: number; handle: number; data: Buffer; at: number }> {
    const h = await this.r.read(16);
    expect(h.readUInt32BE(0)).toBe(NBD_SIMPLE_REPLY_MAGIC);
    const error = h.readUInt32BE(4);
    const data = readLength && !error ? await this.r.read(readLength) : Buffer.alloc(0);
    return { error, handle: Number(h.readBigUInt64BE(8)), data, at: performance.now() };
  }
  readRaw(n: number): Promise<Buffer> {
    return this.r.read(n);
  }
  close(): void {
    this.sock.destroy();
  }
}

const servers: NbdServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(faults: FaultSpec[] = []): Promise<{ server: NbdServer; port: number }> {
  const server = new NbdServer({ name: 'disk0', sizeBytes: 1 << 20, faults, seed: 1 });
  servers.push(server);
  const port = await server.listen();
  server.origin = performance.now();
  return { server, port };
}

const fault = (f: Partial<FaultSpec> & Pick<FaultSpec, 'kind'>): FaultSpec => ({
  name: f.kind, device: 'disk0', at_ns: 0, for_ns: 60e9, latency: null, ops: [], ...f,
});

describe('NBD server', () => {
  it('negotiates fixed newstyle, lists the export, refuses unknown options and names', async () => {
    const { port } = await start();
    const c = await FakeClient.open(port);
    c.option(NBD_OPT_LIST);
    const srv = await c.reply();
    expect(srv.type).toBe(NBD_REP_SERVER);
    expect(srv.data.subarray(4).toString()).toBe('disk0');
    expect((await c.reply()).type).toBe(NBD_REP_ACK);
    c.option(8); // NBD_OPT_STRUCTURED_REPLY
    expect((await c.reply()).type).toBe(NBD_REP_ERR_UNSUP);
    const d = Buffer.alloc(4 + 4 + 2);
    d.writeUInt32BE(4, 0);
    d.write('nope', 4);
    c.option(NBD_OPT_GO, d);
    expect((await c.reply()).type).toBe(NBD_REP_ERR_UNKNOWN);
    const { size, flags } = await c.go('disk0');
    expect(size).toBe(1n << 20n);
    expect(flags & NBD_FLAG_SEND_FLUSH).toBeTruthy();
    c.close();
  });

  it('enters transmission after NBD_OPT_EXPORT_NAME (the pre-GO path)', async () => {
    const { port } = await start();
    const c = await FakeClient.open(port);
    c.option(NBD_OPT_EXPORT_NAME, Buffer.from('disk0'));
    const h = await c.readRaw(10); // size + flags, no zero padding (NO_ZEROES)
    expect(h.readBigUInt64BE(0)).toBe(1n << 20n);
    c.request(NBD_CMD_FLUSH, 9, 0, 0);
    expect(await c.simpleReply()).toMatchObject({ error: 0, handle: 9 });
    c.close();
  });

  it('reads zeroes where never written, reads back writes, flushes', async () => {
    const { server, port } = await start();
    const c = await FakeClient.open(port);
    await c.go('disk0');
    c.request(NBD_CMD_READ, 1, 4096, 512);
    const z = await c.simpleReply(512);
    expect(z.error).toBe(0);
    expect(z.data.equals(Buffer.alloc(512))).toBe(true);
    // A write across a 64 KiB chunk border.
    const data = Buffer.alloc(8192, 0xab);
    c.request(NBD_CMD_WRITE, 2, 65536 - 4096, 8192, data);
    expect((await c.simpleReply()).error).toBe(0);
    c.request(NBD_CMD_READ, 3, 65536 - 4096, 8192);
    expect((await c.simpleReply(8192)).data.equals(data)).toBe(true);
    c.request(NBD_CMD_FLUSH, 4, 0, 0);
    expect(await c.simpleReply()).toMatchObject({ error: 0, handle: 4 });
    // Past the end.
    c.request(NBD_CMD_READ, 5, 1 << 20, 512);
    expect((await c.simpleReply()).error).not.toBe(0);
    c.request(NBD_CMD_DISC, 6, 0, 0);
    expect(server.counts).toMatchObject({ read: 3, write: 1, flush: 1, errors: 1 });
    c.close();
  });

  it('delays a flush in a slow-flush window and answers other requests meanwhile, out of order', async () => {
    const { server, port } = await start([fault({ kind: 'slow-flush', name: 'slow', latency: { dist: 'fixed', value_ns: 300e6 } })]);
    const c = await FakeClient.open(port);
    await c.go('disk0');
    const t0 = performance.now();
    c.request(NBD_CMD_FLUSH, 1, 0, 0);
    c.request(NBD_CMD_READ, 2, 0, 512);
    const first = await c.simpleReply(512);
    expect(first.handle).toBe(2);
    const second = await c.simpleReply();
    expect(second.handle).toBe(1);
    expect(second.at - t0).toBeGreaterThanOrEqual(290);
    expect(server.firedFaults.has('slow')).toBe(true);
    expect(server.records.find((r) => r.op === 'flush')).toMatchObject({ fault: 'slow' });
    c.close();
  });

  it('holds every request until a stall window ends, and fails the ops an io-error names', async () => {
    const { port } = await start([
      fault({ kind: 'stall', name: 'stall', at_ns: 0, for_ns: 250e6 }),
      fault({ kind: 'io-error', name: 'eio', at_ns: 300e6, for_ns: 60e9, ops: ['write'] }),
    ]);
    const c = await FakeClient.open(port);
    await c.go('disk0');
    const t0 = performance.now();
    c.request(NBD_CMD_READ, 1, 0, 512);
    const stalled = await c.simpleReply(512);
    expect(stalled.at - t0).toBeGreaterThanOrEqual(150);
    await new Promise((r) => setTimeout(r, 320 - (performance.now() - t0)));
    c.request(NBD_CMD_WRITE, 2, 0, 512, Buffer.alloc(512, 1));
    expect((await c.simpleReply()).error).toBe(NBD_EIO);
    c.request(NBD_CMD_READ, 3, 0, 512);
    const r = await c.simpleReply(512);
    expect(r.error).toBe(0);
    expect(r.data.equals(Buffer.alloc(512))).toBe(true); // the failed write left no trace
    c.close();
  });

  it('serves QEMU\'s own NBD client (qemu-io), flush included', async (ctx) => {
    const has = spawnSync('qemu-io', ['--version'], { encoding: 'utf8' });
    if (has.error || has.status !== 0) ctx.skip('qemu-io is not installed');
    const { server, port } = await start([fault({ kind: 'slow-flush', name: 'slow', latency: { dist: 'fixed', value_ns: 200e6 } })]);
    const out = await new Promise<string>((resolve) => {
      import('node:child_process').then(({ execFile }) => execFile('qemu-io', [
        '-f', 'raw', `nbd://127.0.0.1:${port}/disk0`,
        '-c', 'write -P 0xcd 4096 64k', '-c', 'read -P 0xcd 4096 64k', '-c', 'flush', '-c', 'read -P 0 512k 4k',
      ], { timeout: 30_000 }, (e, so, se) => resolve(`${so}${se}${e ? e.message : ''}`)));
    });
    expect(out).not.toMatch(/Pattern verification failed|error|failed/i);
    expect(server.counts.write).toBe(1);
    expect(server.counts.flush).toBeGreaterThanOrEqual(1);
    expect(server.records.filter((r) => r.op === 'flush').every((r) => r.latency_ns >= 190e6)).toBe(true);
  });
});

// A small NBD server (the protocol of nbd's doc/proto.md) over node:net that
// backs the QEMU guest's disk and injects the scenario's block faults.
// Handshake: fixed newstyle (NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
// options NBD_OPT_EXPORT_NAME, NBD_OPT_GO, NBD_OPT_INFO (NBD_INFO_EXPORT and
// NBD_INFO_BLOCK_SIZE), NBD_OPT_LIST and NBD_OPT_ABORT; anything else
// (structured replies, meta contexts, STARTTLS) gets NBD_REP_ERR_UNSUP, so the
// client falls back to simple replies. Transmission: NBD_CMD_READ, WRITE
// (with FUA), DISC, FLUSH, TRIM, WRITE_ZEROES, with NBD_FLAG_SEND_FLUSH,
// SEND_FUA, SEND_TRIM, SEND_WRITE_ZEROES advertised; replies may go out of
// order, as the protocol allows.
//
// The export is held in memory (64 KiB chunks, absent = zeroes), so source
// and destination QEMU share it. Writes take effect on arrival; a fault
// delays or fails the *reply*, which is what the client waits on:
//   stall       every request arriving in [at, at+for) is answered at at+for;
//   slow-flush  a FLUSH arriving in the window is answered after a latency
//               drawn from the fault's distribution;
//   io-error    the fault's ops (read/write/flush) in the window fail with EIO.
// Fault times count from `origin` (the run's start), set by the caller.
// Leaves out: TLS, structured replies, block status, multiple exports' data
// isolation beyond their names, persistence.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

import type { FaultSpec } from '../../sim/scenario/scenario.ts';
import { sample } from '../../sim/util/dist.ts';
import { Rng } from '../../sim/scheduler/random.ts';

export const NBDMAGIC = 0x4e42444d41474943n;
export const IHAVEOPT = 0x49484156454f5054n;
export const NBD_REP_MAGIC = 0x3e889045565a9n;
export const NBD_REQUEST_MAGIC = 0x25609513;
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;

export const NBD_FLAG_FIXED_NEWSTYLE = 1;
export const NBD_FLAG_NO_ZEROES = 2;
export const NBD_FLAG_C_FIXED_NEWSTYLE = 1;
export const NBD_FLAG_C_NO_ZEROES = 2;

export const NBD_OPT_EXPORT_NAME = 1;
export const NBD_OPT_ABORT = 2;
export const NBD_OPT_LIST = 3;
export const NBD_OPT_INFO = 6;
export const NBD_OPT_GO = 7;

export const NBD_REP_ACK = 1;
export const NBD_REP_SERVER = 2;
export const NBD_REP_INFO = 3;
export const NBD_REP_ERR_UNSUP = 0x80000001;
export const NBD_REP_ERR_INVALID = 0x80000003;
export const NBD_REP_ERR_UNKNOWN = 0x80000006;

export const NBD_INFO_EXPORT = 0;
export const NBD_INFO_BLOCK_SIZE = 3;

export const NBD_FLAG_HAS_FLAGS = 1 << 0;
export const NBD_FLAG_SEND_FLUSH = 1 << 2;
export const NBD_FLAG_SEND_FUA = 1 << 3;
export const NBD_FLAG_SEND_TRIM = 1 << 5;
export const NBD_FLAG_SEND_WRITE_ZEROES = 1 << 6;

export const NBD_CMD_READ = 0;
export const NBD_CMD_WRITE = 1;
export const NBD_CMD_DISC = 2;
export const NBD_CMD_FLUSH = 3;
export const NBD_CMD_TRIM = 4;
export const NBD_CMD_WRITE_ZEROES = 6;

export const NBD_EIO = 5;
export const NBD_EINVAL = 22;
export const NBD_ENOSPC = 28;

const CHUNK = 64 * 1024;
/** Largest request payload accepted (QEMU sends at most 32 MiB). */
const MAX_PAYLOAD = 32 * 1024 * 1024;

export type NbdOp = 'read' | 'write' | 'flush' | 'trim' | 'write-zeroes';

/** One request as the server saw it (times in ns from origin). */
export interface NbdRequestRecord {
  readonly op: NbdOp;
  /** The listener's label (run.ts: "source", "destination"). */
  readonly client: string;
  readonly conn: number;
  readonly offset: number;
  readonly length: number;
  readonly at_ns: number;
  /** Arrival to reply. */
  readonly latency_ns: number;
  readonly error: number;
  /** The fault that delayed or failed it, if any. */
  readonly fault: string | null;
}

export interface NbdServerOptions {
  /** Export name (the scenario's device name). */
  readonly name: string;
  readonly sizeBytes: number;
  readonly faults?: readonly FaultSpec[];
  /** Seed for the fault latency draws. */
  readonly seed?: number;
  /** Keep at most this many request records (flushes and faulted requests are always kept). */
  readonly maxRecords?: number;
}

export interface NbdCounts {
  read: number;
  write: number;
  flush: number;
  trim: number;
  'write-zeroes': number;
  errors: number;
  bytes_read: number;
  bytes_written: number;
}

export class NbdServer {
  readonly counts: NbdCounts = { read: 0, write: 0, flush: 0, trim: 0, 'write-zeroes': 0, errors: 0, bytes_read: 0, bytes_written: 0 };
  readonly records: NbdRequestRecord[] = [];
  /** Connections seen (QEMU source and destination each open one). */
  connections = 0;
  /** performance.now() of time zero for the fault schedule; faults are off until set. */
  origin: number | null = null;
  readonly firedFaults = new Set<string>();
  private readonly chunks = new Map<number, Buffer>();
  private readonly sockets = new Set<Socket>();
  private readonly servers: Server[] = [];
  private readonly rng: Rng;
  private inFlightNow = 0;

  constructor(readonly opts: NbdServerOptions) {
    this.rng = new Rng(`${opts.seed ?? 0}/nbd.${opts.name}`);
  }

  /**
   * Listens on host:port (port 0: any free port); resolves with the port.
   * Each listener serves the same export; `client` labels its requests.
   */
  listen(port = 0, host = '127.0.0.1', client = 'client'): Promise<number> {
    const server = createServer((s) => this.onConnection(s, client));
    this.servers.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await Promise.all(this.servers.map((srv) => new Promise<void>((resolve) => srv.close(() => resolve()))));
  }

  /** Requests whose reply is still pending (held by a fault, or being served). */
  get inFlight(): number {
    return this.inFlightNow;
  }

  /** Reads the export's bytes (zeroes where never written). */
  readBytes(offset: number, length: number): Buffer {
    const out = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const pos = offset + done;
      const ci = Math.floor(pos / CHUNK);
      const within = pos - ci * CHUNK;
      const n = Math.min(CHUNK - within, length - done);
      const c = this.chunks.get(ci);
      if (c) c.copy(out, done, within, within + n);
      done += n;
    }
    return out;
  }

  writeBytes(offset: number, data: Buffer): void {
    let done = 0;
    while (done < data.length) {
      const pos = offset + done;
      const ci = Math.floor(pos / CHUNK);
      const within = pos - ci * CHUNK;
      const n = Math.min(CHUNK - within, data.length - done);
      let c = this.chunks.get(ci);
      if (!c) {
        c = Buffer.alloc(CHUNK);
        this.chunks.set(ci, c);
      }
      data.copy(c, within, done, done + n);
      done += n;
    }
  }

  private zeroBytes(offset: number, length: number): void {
    let done = 0;
    while (done < length) {
      const pos = offset + done;
      const ci = Math.floor(pos / CHUNK);
      const within = pos - ci * CHUNK;
      const n = Math.min(CHUNK - within, length - done);
      const c = this.chunks.get(ci);
      if (c) {
        if (n === CHUNK) this.chunks.delete(ci);
        else c.fill(0, within, within + n);
      }
      done += n;
    }
  }

  private nowNs(): number {
    return this.origin === null ? -1 : Math.round((performance.now() - this.origin) * 1e6);
  }

  /** The first fault of a kind active at t (ns from origin), as sim/faults.ts decides. */
  private active(kind: FaultSpec['kind'], t: number): FaultSpec | null {
    if (t < 0) return null;
    for (const f of this.opts.faults ?? []) {
      if (f.device === this.opts.name && f.kind === kind && t >= f.at_ns && t < f.at_ns + f.for_ns) return f;
    }
    return null;
  }

  /** Delay (ms) and error for a request arriving now. */
  private faultFor(op: NbdOp, t: number): { delayMs: number; error: number; fault: string | null } {
    let delayNs = 0;
    let fault: string | null = null;
    const stall = this.active('stall', t);
    if (stall) {
      delayNs = stall.at_ns + stall.for_ns - t;
      fault = stall.name;
    }
    if (op === 'flush') {
      const slow = this.active('slow-flush', t);
      if (slow?.latency) {
        const d = sample(slow.latency, this.rng);
        if (d > delayNs) {
          delayNs = d;
          fault = slow.name;
        }
      }
    }
    let error = 0;
    const failing = this.active('io-error', t);
    if (failing && (op === 'read' || op === 'write' || op === 'flush') && failing.ops.includes(op)) {
      error = NBD_EIO;
      fault = failing.name;
    }
    if (fault) this.firedFaults.add(fault);
    return { delayMs: delayNs / 1e6, error, fault };
  }

  private onConnection(sock: Socket, client: string): void {
    const conn = ++this.connections;
    this.sockets.add(sock);
    sock.setNoDelay(true);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    const reader = new ByteReader(sock);
    void this.serve(sock, reader, conn, client).catch(() => sock.destroy());
  }

  private async serve(sock: Socket, r: ByteReader, conn: number, client: string): Promise<void> {
    const hello = Buffer.alloc(18);
    hello.writeBigUInt64BE(NBDMAGIC, 0);
    hello.writeBigUInt64BE(IHAVEOPT, 8);
    hello.writeUInt16BE(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES, 16);
    sock.write(hello);
    const clientFlags = (await r.read(4)).readUInt32BE(0);
    const noZeroes = (clientFlags & NBD_FLAG_C_NO_ZEROES) !== 0;
    const tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES;
    const size = BigInt(this.opts.sizeBytes);

    // Option haggling.
    for (;;) {
      const h = await r.read(16);
      if (h.readBigUInt64BE(0) !== IHAVEOPT) throw new Error('bad option magic');
      const opt = h.readUInt32BE(8);
      const len = h.readUInt32BE(12);
      if (len > 65536) throw new Error('option too long');
      const data = await r.read(len);
      if (opt === NBD_OPT_EXPORT_NAME) {
        if (data.toString('utf8') !== this.opts.name && len !== 0) {
          sock.destroy();
          return;
        }
        const b = Buffer.alloc(noZeroes ? 10 : 134);
        b.writeBigUInt64BE(size, 0);
        b.writeUInt16BE(tflags, 8);
        sock.write(b);
        break;
      }
      if (opt === NBD_OPT_ABORT) {
        sock.write(optReply(opt, NBD_REP_ACK));
        sock.end();
        return;
      }
      if (opt === NBD_OPT_LIST) {
        const name = Buffer.from(this.opts.name, 'utf8');
        const d = Buffer.alloc(4 + name.length);
        d.writeUInt32BE(name.length, 0);
        name.copy(d, 4);
        sock.write(optReply(opt, NBD_REP_SERVER, d));
        sock.write(optReply(opt, NBD_REP_ACK));
        continue;
      }
      if (opt === NBD_OPT_INFO || opt === NBD_OPT_GO) {
        if (len < 6) {
          sock.write(optReply(opt, NBD_REP_ERR_INVALID));
          continue;
        }
        const nameLen = data.readUInt32BE(0);
        if (4 + nameLen + 2 > len) {
          sock.write(optReply(opt, NBD_REP_ERR_INVALID));
          continue;
        }
        const name = data.subarray(4, 4 + nameLen).toString('utf8');
        if (name !== this.opts.name && name !== '') {
          sock.write(optReply(opt, NBD_REP_ERR_UNKNOWN));
          continue;
        }
        const info = Buffer.alloc(12);
        info.writeUInt16BE(NBD_INFO_EXPORT, 0);
        info.writeBigUInt64BE(size, 2);
        info.writeUInt16BE(tflags, 10);
        sock.write(optReply(opt, NBD_REP_INFO, info));
        const bs = Buffer.alloc(14);
        bs.writeUInt16BE(NBD_INFO_BLOCK_SIZE, 0);
        bs.writeUInt32BE(1, 2);
        bs.writeUInt32BE(4096, 6);
        bs.writeUInt32BE(MAX_PAYLOAD, 10);
        sock.write(optReply(opt, NBD_REP_INFO, bs));
        sock.write(optReply(opt, NBD_REP_ACK));
        if (opt === NBD_OPT_GO) break;
        continue;
      }
      sock.write(optReply(opt, NBD_REP_ERR_UNSUP));
    }

    // Transmission.
    for (;;) {
      const h = await r.read(28);
      if (h.readUInt32BE(0) !== NBD_REQUEST_MAGIC) throw new Error('bad request magic');
      const type = h.readUInt16BE(6);
      const handle = h.subarray(8, 16);
      const offset = Number(h.readBigUInt64BE(16));
      const length = h.readUInt32BE(24);
      if (type === NBD_CMD_DISC) {
        sock.end();
        return;
      }
      let payload: Buffer | null = null;
      if (type === NBD_CMD_WRITE) {
        if (length > MAX_PAYLOAD) throw new Error('write too large');
        payload = await r.read(length);
      }
      this.handle(sock, conn, client, type, Buffer.from(handle), offset, length, payload);
    }
  }

  private handle(sock: Socket, conn: number, client: string, type: number, handle: Buffer, offset: number, length: number, payload: Buffer | null): void {
    const arrived = performance.now();
    const t = this.nowNs();
    const op: NbdOp | null =
      type === NBD_CMD_READ ? 'read'
        : type === NBD_CMD_WRITE ? 'write'
          : type === NBD_CMD_FLUSH ? 'flush'
            : type === NBD_CMD_TRIM ? 'trim'
              : type === NBD_CMD_WRITE_ZEROES ? 'write-zeroes'
                : null;
    let error = 0;
    let data: Buffer | null = null;
    let fault: string | null = null;
    let delayMs = 0;
    if (op === null) {
      error = NBD_EINVAL;
    } else if (op !== 'flush' && offset + length > this.opts.sizeBytes) {
      error = op === 'read' ? NBD_EINVAL : NBD_ENOSPC;
    } else {
      ({ delayMs, error, fault } = this.faultFor(op, t));
      if (error === 0) {
        if (op === 'read') data = this.readBytes(offset, length);
        else if (op === 'write') this.writeBytes(offset, payload!);
        else if (op === 'write-zeroes') this.zeroBytes(offset, length);
      }
    }
    if (op) {
      this.counts[op]++;
      if (op === 'read' && !error) this.counts.bytes_read += length;
      if (op === 'write' && !error) this.counts.bytes_written += length;
    }
    if (error) this.counts.errors++;
    this.inFlightNow++;
    const reply = () => {
      this.inFlightNow--;
      if (op) {
        const rec: NbdRequestRecord = {
          op, client, conn, offset, length, at_ns: t, latency_ns: Math.round((performance.now() - arrived) * 1e6), error, fault,
        };
        if (op === 'flush' || fault || error || this.records.length < (this.opts.maxRecords ?? 10_000)) this.records.push(rec);
      }
      if (sock.destroyed) return;
      const b = Buffer.alloc(16);
      b.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, 0);
      b.writeUInt32BE(error, 4);
      handle.copy(b, 8);
      sock.write(data && !error ? Buffer.concat([b, data]) : b);
    };
    if (delayMs > 0) setTimeout(reply, delayMs);
    else reply();
  }
}

function optReply(opt: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(20 + data.length);
  b.writeBigUInt64BE(NBD_REP_MAGIC, 0);
  b.writeUInt32BE(opt, 8);
  b.writeUInt32BE(type, 12);
  b.writeUInt32BE(data.length, 16);
  data.copy(b, 20);
  return b;
}

/** Exact-length reads from a socket, as promises. */
export class ByteReader {
  private chunks: Buffer[] = [];
  private have = 0;
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  private ended: Error | null = null;

  constructor(sock: Socket) {
    sock.on('data', (b: Buffer) => {
      this.chunks.push(b);
      this.have += b.length;
      this.pump();
    });
    const end = () => {
      this.ended = new Error('connection closed');
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = null;
        w.reject(this.ended);
      }
    };
    sock.on('end', end);
    sock.on('close', end);
  }

  read(n: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
      this.pump();
    });
  }

  private pump(): void {
    const w = this.waiter;
    if (!w) return;
    if (this.have < w.n) {
      if (this.ended) {
        this.waiter = null;
        w.reject(this.ended);
      }
      return;
    }
    this.waiter = null;
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = Buffer.from(all.subarray(0, w.n));
    const rest = all.subarray(w.n);
    this.chunks = rest.length ? [rest] : [];
    this.have = rest.length;
    w.resolve(out);
  }
}

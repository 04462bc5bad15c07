// Loopback TCP throughput on this host, from Node to Node over 127.0.0.1:
// the ceiling for a migration stream between two local QEMUs (QEMU's own
// stream is measured by a run's ram.mbps). Leaves out: latency, other paths.
import { createServer, connect, type AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';

export interface LoopbackResult {
  readonly bytes: number;
  readonly ms: number;
  /** Bytes per second. */
  readonly bandwidth: number;
  /** Mbit/s, as query-migrate's mbps. */
  readonly mbps: number;
}

export async function measureLoopback(bytes = 512 * 1024 * 1024, timeoutMs = 30_000): Promise<LoopbackResult> {
  const chunk = Buffer.alloc(1 << 20, 0x5a);
  let received = 0;
  let t0 = 0;
  const server = createServer();
  const done = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`loopback: ${received} of ${bytes} bytes in ${timeoutMs} ms`)), timeoutMs);
    server.on('connection', (s) => {
      s.on('data', (b: Buffer) => {
        received += b.length;
        if (received >= bytes) {
          clearTimeout(timer);
          resolve(performance.now());
          s.destroy();
        }
      });
      s.on('error', () => {});
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  const c = connect(port, '127.0.0.1');
  c.on('error', () => {});
  await new Promise<void>((r) => c.once('connect', () => r()));
  t0 = performance.now();
  let sent = 0;
  const pump = () => {
    while (sent < bytes) {
      sent += chunk.length;
      if (!c.write(chunk)) {
        c.once('drain', pump);
        return;
      }
    }
  };
  pump();
  try {
    const t1 = await done;
    const ms = t1 - t0;
    const bw = (received * 1000) / ms;
    return { bytes: received, ms: Math.round(ms), bandwidth: Math.round(bw), mbps: Math.round((bw * 8) / 1e4) / 100 };
  } finally {
    c.destroy();
    server.close();
  }
}

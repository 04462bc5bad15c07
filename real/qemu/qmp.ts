// A QMP client (QEMU Machine Protocol, docs/interop/qmp-spec): one JSON
// object per line over a Unix socket. connect() reads the greeting, sends
// qmp_capabilities, and then execute() sends commands with an "id" and
// resolves with "return" or rejects with "error". Events ({"event": ...}) are
// kept with the host time they arrived. Every wait has a timeout.
// Without out-of-band capability (not negotiated here) QEMU answers one
// command at a time, in order, from its main loop under the BQL: a command
// sent while the BQL is held elsewhere (bdrv_drain_all / bdrv_flush_all in
// migration_completion) is answered only when it is released, which is what
// run.ts measures. Leaves out: OOB commands, file-descriptor passing, TLS.
import { connect as netConnect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

export class QmpError extends Error {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`QMP ${command}: ${errorClass}: ${desc}`);
  }
}

export class QmpTimeout extends Error {
  constructor(readonly command: string, readonly ms: number) {
    super(`QMP ${command}: no answer within ${ms} ms`);
  }
}

export interface QmpEvent {
  readonly event: string;
  readonly data: unknown;
  /** QEMU's own timestamp (wall clock), in ms since the epoch. */
  readonly qemu_ms: number;
  /** performance.now() when the event arrived. */
  readonly host_ms: number;
}

export interface QmpGreeting {
  readonly QMP: {
    readonly version: { readonly qemu: { readonly major: number; readonly minor: number; readonly micro: number }; readonly package: string };
    readonly capabilities: readonly string[];
  };
}

interface Pending {
  readonly command: string;
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

export class QmpClient {
  readonly events: QmpEvent[] = [];
  greeting: QmpGreeting | null = null;
  private buf = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private greetingWaiter: ((g: QmpGreeting) => void) | null = null;
  private readonly eventWaiters = new Set<{ match: (e: QmpEvent) => boolean; resolve: (e: QmpEvent) => void }>();
  private closedWith: Error | null = null;

  private constructor(private readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => this.onData(chunk));
    sock.on('error', (e) => this.fail(e));
    sock.on('close', () => this.fail(new Error('QMP socket closed')));
  }

  /** Connects to a QMP Unix socket (retrying until QEMU listens) and negotiates capabilities. */
  static async connect(path: string, timeoutMs = 10_000): Promise<QmpClient> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      try {
        const sock = await new Promise<Socket>((resolve, reject) => {
          const s = netConnect(path);
          const onError = (e: Error) => {
            s.destroy();
            reject(e);
          };
          s.on('error', onError);
          s.once('connect', () => {
            s.off('error', onError);
            resolve(s);
          });
        });
        const c = new QmpClient(sock);
        await c.waitGreeting(Math.max(1, deadline - performance.now()));
        await c.execute('qmp_capabilities', undefined, Math.max(1, deadline - performance.now()));
        return c;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if ((code === 'ENOENT' || code === 'ECONNREFUSED') && performance.now() < deadline) {
          await new Promise((r) => setTimeout(r, 20));
          continue;
        }
        throw e;
      }
    }
  }

  private waitGreeting(timeoutMs: number): Promise<QmpGreeting> {
    if (this.greeting) return Promise.resolve(this.greeting);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new QmpTimeout('greeting', timeoutMs)), timeoutMs);
      this.greetingWaiter = (g) => {
        clearTimeout(t);
        resolve(g);
      };
    });
  }

  /** Sends a command; resolves with its "return" value. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = 10_000): Promise<T> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const id = `l${this.nextId++}`;
    const msg: Record<string, unknown> = { execute: command, id };
    if (args !== undefined) msg['arguments'] = args;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        // A late answer to this id is dropped.
        this.pending.delete(id);
        reject(new QmpTimeout(command, timeoutMs));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      this.sock.write(`${JSON.stringify(msg)}\n`);
    });
  }

  /** The first event (already received or to come) that matches, within timeoutMs. */
  waitEvent(match: (e: QmpEvent) => boolean, timeoutMs: number, since = 0): Promise<QmpEvent> {
    const seen = this.events.find((e) => e.host_ms >= since && match(e));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = {
        match,
        resolve: (e: QmpEvent) => {
          clearTimeout(t);
          this.eventWaiters.delete(w);
          resolve(e);
        },
      };
      const t = setTimeout(() => {
        this.eventWaiters.delete(w);
        reject(new QmpTimeout('event', timeoutMs));
      }, timeoutMs);
      this.eventWaiters.add(w);
    });
  }

  close(): void {
    this.fail(new Error('QMP client closed'));
    this.sock.destroy();
  }

  get closed(): boolean {
    return this.closedWith !== null;
  }

  private onData(chunk: string): void {
    this.buf += chunk;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const text = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (text) this.onMessage(text);
    }
  }

  private onMessage(text: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    if ('QMP' in msg) {
      this.greeting = msg as unknown as QmpGreeting;
      this.greetingWaiter?.(this.greeting);
      return;
    }
    if (typeof msg['event'] === 'string') {
      const ts = msg['timestamp'] as { seconds: number; microseconds: number } | undefined;
      const e: QmpEvent = {
        event: msg['event'],
        data: msg['data'] ?? null,
        qemu_ms: ts ? ts.seconds * 1000 + ts.microseconds / 1000 : 0,
        host_ms: performance.now(),
      };
      this.events.push(e);
      for (const w of [...this.eventWaiters]) if (w.match(e)) w.resolve(e);
      return;
    }
    const id = msg['id'];
    if (typeof id !== 'string') return;
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if ('error' in msg) {
      const err = msg['error'] as { class: string; desc: string };
      p.reject(new QmpError(p.command, err.class, err.desc));
    } else {
      p.resolve(msg['return']);
    }
  }

  private fail(e: Error): void {
    if (this.closedWith) return;
    this.closedWith = e;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.pending.clear();
  }
}

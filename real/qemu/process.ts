// A QEMU process: spawned with its arguments, its serial port on stdout
// (-serial stdio) split into lines stamped with the host time they arrived,
// its stderr kept, and always reaped. Every live QEMU is in one registry:
// process exit, SIGINT, SIGTERM and SIGHUP kill them all (SIGKILL) and run
// the registered teardowns before the host process goes, so a failed or
// interrupted run leaves no VM (and no work directory) behind.
// Leaves out: daemonizing, process groups, resource limits.
import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';

export interface SerialLine {
  /** performance.now() when the line's newline arrived. */
  readonly host_ms: number;
  readonly text: string;
}

const live = new Set<QemuProcess>();
const teardowns = new Set<() => void>();
let hooked = false;

function killAllNow(): void {
  for (const q of live) q.killNow();
  for (const f of teardowns) {
    try {
      f();
    } catch {
      // best effort on the way out
    }
  }
}

/** Runs f on exit or signal too (e.g. removing a work directory); returns its undo. */
export function atTeardown(f: () => void): () => void {
  hookExit();
  teardowns.add(f);
  return () => teardowns.delete(f);
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', killAllNow);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      killAllNow();
      // Default behaviour once our VMs are gone: die by the signal.
      process.removeAllListeners(sig);
      process.kill(process.pid, sig);
    });
  }
}

/** How many QEMU processes this host process still has (tests check it is 0). */
export function liveQemuCount(): number {
  return live.size;
}

export class QemuProcess {
  readonly serial: SerialLine[] = [];
  stderr = '';
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  readonly exited: Promise<void>;
  private readonly child: ChildProcess;
  private partial = '';
  private readonly lineWaiters = new Set<{ re: RegExp; from: number; resolve: (l: SerialLine) => void }>();

  constructor(
    readonly name: string,
    readonly binary: string,
    readonly args: readonly string[],
  ) {
    hookExit();
    this.child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(this);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        live.delete(this);
        resolve();
      });
      this.child.once('error', (e) => {
        this.stderr += `spawn failed: ${e.message}\n`;
        live.delete(this);
        resolve();
      });
    });
    this.child.stdout!.setEncoding('latin1');
    this.child.stdout!.on('data', (chunk: string) => this.onSerial(chunk));
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (chunk: string) => {
      if (this.stderr.length < 65536) this.stderr += chunk;
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitCode === null && this.exitSignal === null && live.has(this);
  }

  private onSerial(chunk: string): void {
    const now = performance.now();
    this.partial += chunk;
    let nl: number;
    while ((nl = this.partial.indexOf('\n')) >= 0) {
      const line: SerialLine = { host_ms: now, text: this.partial.slice(0, nl).replace(/\r$/, '') };
      this.partial = this.partial.slice(nl + 1);
      this.serial.push(line);
      const index = this.serial.length - 1;
      for (const w of [...this.lineWaiters]) {
        if (index >= w.from && w.re.test(line.text)) w.resolve(line);
      }
    }
  }

  /** The first serial line from index `from` on that matches, within timeoutMs. */
  waitSerial(re: RegExp, timeoutMs: number, from = 0): Promise<SerialLine> {
    for (let i = from; i < this.serial.length; i++) if (re.test(this.serial[i]!.text)) return Promise.resolve(this.serial[i]!);
    return new Promise((resolve, reject) => {
      const w = {
        re,
        from,
        resolve: (l: SerialLine) => {
          clearTimeout(t);
          this.lineWaiters.delete(w);
          resolve(l);
        },
      };
      const t = setTimeout(() => {
        this.lineWaiters.delete(w);
        const tail = this.stderr.trim().split('\n').pop() ?? '';
        reject(new Error(`${this.name}: no serial line matching ${re} within ${timeoutMs} ms${this.running ? '' : ` (QEMU exited: ${tail})`}`));
      }, timeoutMs);
      this.lineWaiters.add(w);
      void this.exited.then(() => {
        if (!this.lineWaiters.has(w)) return;
        clearTimeout(t);
        this.lineWaiters.delete(w);
        reject(new Error(`${this.name}: QEMU exited (${this.exitCode ?? this.exitSignal}) before a serial line matching ${re}: ${this.stderr.trim().split('\n').pop() ?? ''}`));
      });
    });
  }

  /** SIGKILL, now (used on exit and signals). */
  killNow(): void {
    if (!this.running) return;
    try {
      this.child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves once the process is reaped. */
  async stop(graceMs = 2000): Promise<void> {
    if (this.running) {
      this.child.kill('SIGTERM');
      const t = setTimeout(() => this.killNow(), graceMs);
      await this.exited;
      clearTimeout(t);
    }
    await this.exited;
  }
}

// The destination of a live migration between two processes: the same
// Machine, main loop and devices as the source, built in the `inmigrate` run
// state, with a guest whose memory and registers come from the stream. An fd
// handler on the main loop (QEMU: process_incoming_migration_co, under the
// BQL) reads the socket, puts pages into guest memory, keeps the device
// state, and at end-of-stream loads the registers and queue state and digests
// its memory for the source's check. On GO a bottom half
// (process_incoming_migration_bh) runs vm_start: the vCPUs enter KVM_RUN where
// the source's stopped. After a check window it reports whether the guest's
// heartbeat advanced, and ends.
// Nothing waits on the source for ever: a closed or broken stream fails the
// migration here (exit 8), so does no GO within the stream timeout after the
// digests went out, and a write the source takes nothing of for that long;
// while RAM arrives the source may legitimately say nothing for long (a
// completion blocked in bdrv_drain_all), so there the bound is the process's
// own limit and the source process itself (realIncoming ends when it is gone).
// For tests, a fault (SIGKILL or SIGSTOP to itself) at a chosen point.
// Leaves out: postcopy, accepting a second stream, keeping the guest running
// after the report.
import type { Co, Notifier } from '../sim/platform.ts';
import { KVM_PAGE_SIZE } from './guest-memory.ts';
import type { DeviceState, HelloMessage } from './migration-stream.ts';
import {
  PAGE_FLAG_ZERO, PAGE_RECORD_HEADER_BYTES, SECTION, SectionReader, SectionWriter, parse, writeAllBlocking,
  type DestinationReport, type LoadedMessage,
} from './stream.ts';
import type { RealSession } from './world.ts';

export type IncomingStatus = 'listening' | 'receiving' | 'loaded' | 'running' | 'completed' | 'failed';

/**
 * Where the destination hurts itself, for tests: `ram` once a quarter of the
 * guest's pages arrived (the first pass), `eos` at end of stream (the source's
 * VM is stopped and everything but GO is sent), `go` on GO before vm_start
 * (the destination's start), `running` once the guest runs here, before the
 * report.
 */
export const FAULT_POINTS = ['ram', 'eos', 'go', 'running'] as const;
export type FaultPoint = (typeof FAULT_POINTS)[number];
const FAULT_SIGNALS = { kill: 'SIGKILL', stop: 'SIGSTOP' } as const;

export interface DestinationFault {
  readonly signal: (typeof FAULT_SIGNALS)[keyof typeof FAULT_SIGNALS];
  readonly at: FaultPoint;
}

/** `kill@ram`, `stop@eos`, ...; null if text is not one. */
export function parseFault(text: string): DestinationFault | null {
  const m = /^(kill|stop)@(\w+)$/.exec(text);
  if (!m || !(FAULT_POINTS as readonly string[]).includes(m[2]!)) return null;
  return { signal: FAULT_SIGNALS[m[1] as keyof typeof FAULT_SIGNALS], at: m[2] as FaultPoint };
}

export interface IncomingOptions {
  /** How long the guest runs here before the report. */
  readonly checkNs: number;
  /** Bounds the waits on the source that have one (GO after the digests, a blocked write). */
  readonly streamTimeoutNs: number;
  readonly fault?: DestinationFault | null;
}

/** Bytes read from the socket per handler run, so the main loop gets to run between them. */
const READ_SLICE_BYTES = 32 << 20;

export class IncomingMigration {
  status: IncomingStatus = 'listening';
  failReason = '';
  pagesReceived = 0;
  wireBytes = 0;
  report: DestinationReport | null = null;
  private fd = -1;
  private readonly listenReadable: Notifier;
  private connReadable: Notifier | null = null;
  private readonly reader = new SectionReader();
  private device: DeviceState | null = null;
  private readonly zeroPage = new Uint8Array(KVM_PAGE_SIZE);

  private readonly checkNs: number;
  private readonly streamTimeoutNs: number;
  private readonly fault: DestinationFault | null;
  private injected = false;

  constructor(
    private readonly session: RealSession,
    private readonly listenFd: number,
    o: IncomingOptions,
  ) {
    this.checkNs = o.checkNs;
    this.streamTimeoutNs = o.streamTimeoutNs;
    this.fault = o.fault ?? null;
    this.listenReadable = session.platform.socketNotifiers('migration.listen', listenFd).readable;
  }

  start(): void {
    this.session.world.machine.mainLoop.setFdHandler(this.listenReadable, 'migration.incoming-accept', () => this.accept());
  }

  private *accept(): Co<void> {
    const p = this.session.platform;
    const fd = p.io.tcpAccept(this.listenFd);
    this.listenReadable.read();
    if (fd === null) return;
    const ml = this.session.world.machine.mainLoop;
    ml.setFdHandler(this.listenReadable, 'migration.incoming-accept', null);
    this.fd = fd;
    this.connReadable = p.socketNotifiers('migration.incoming', fd).readable;
    this.status = 'receiving';
    ml.setFdHandler(this.connReadable, 'migration.process_incoming_migration_co', () => this.receive());
  }

  /** QEMU: process_incoming_migration_co: reads and loads what arrived. */
  private *receive(): Co<void> {
    const p = this.session.platform;
    this.session.world.machine.bql.assertHeld('process_incoming_migration_co');
    this.connReadable!.read();
    try {
      this.wireBytes += this.reader.fill(p.io, this.fd, READ_SLICE_BYTES);
    } catch (e) {
      return this.fail(`the migration stream broke: ${(e as Error).message}`);
    }
    for (let s = this.reader.next(); s; s = this.reader.next()) {
      this.section(s.type, s.payload);
      if (this.status === 'failed') break;
    }
    if (this.reader.eof && this.status !== 'completed' && this.status !== 'failed') {
      this.fail(this.status === 'running' ? 'the source closed the stream before the report' : 'the source closed the stream before the end');
    }
  }

  private section(type: number, payload: Uint8Array): void {
    switch (type) {
      case SECTION.hello:
        return this.hello(parse<HelloMessage>(payload));
      case SECTION.ram:
        this.loadRam(payload);
        if (this.pagesReceived * 4 >= this.session.guest.ram.pages) this.inject('ram');
        return;
      case SECTION.device:
        this.device = parse<DeviceState>(payload);
        return;
      case SECTION.eos:
        this.inject('eos');
        return this.endOfStream();
      case SECTION.go:
        this.inject('go');
        return this.go();
      case SECTION.abort:
        return this.fail(`the source aborted: ${parse<{ reason: string }>(payload).reason}`);
      default:
        return this.fail(`unknown section type ${type}`);
    }
  }

  private hello(h: HelloMessage): void {
    const g = this.session.guest;
    if (h.pages !== g.ram.pages || h.page_size !== g.ram.pageSize || h.vcpus !== g.natives.length) {
      this.fail(`the source's VM differs: ${h.pages} pages of ${h.page_size} bytes and ${h.vcpus} vCPUs, ` +
        `here ${g.ram.pages} pages of ${g.ram.pageSize} bytes and ${g.natives.length} vCPUs`);
    }
  }

  /** QEMU: ram_load_precopy: each record becomes the page's content. */
  private loadRam(b: Uint8Array): void {
    const mem = this.session.guest.ram.bytes;
    const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    let off = 0;
    while (off < b.length) {
      const page = view.getUint32(off, true);
      const flags = view.getUint32(off + 4, true);
      off += PAGE_RECORD_HEADER_BYTES;
      const at = page * KVM_PAGE_SIZE;
      if (at + KVM_PAGE_SIZE > mem.length) return this.fail(`page ${page} is outside guest memory`);
      if (flags & PAGE_FLAG_ZERO) {
        mem.set(this.zeroPage, at);
        off += 1;
      } else {
        mem.set(b.subarray(off, off + KVM_PAGE_SIZE), at);
        off += KVM_PAGE_SIZE;
      }
      this.pagesReceived++;
    }
  }

  /** The stream ended: load the device state, digest memory, tell the source. */
  private endOfStream(): void {
    const p = this.session.platform;
    const s = this.session;
    const d = this.device;
    if (!d) return this.fail('end of stream without device state');
    const t0 = p.nowNs();
    s.guest.natives.forEach((v, i) => {
      const st = d.vcpus[i]!;
      v.setSregs(st.sregs);
      v.setRegs(st.regs);
      v.setFpu(st.fpu);
    });
    const net = s.world.devices.net[0];
    if (d.net && net && s.netRing && s.net) {
      s.netRing.load(d.net.ring);
      net.dev.txWaiting = d.net.tx_waiting;
      s.net.load({ waiting: [], replies: d.net.replies, consumed: d.net.consumed });
    }
    const t1 = p.nowNs();
    const digests = s.guest.ram.chunkDigests();
    const t2 = p.nowNs();
    this.status = 'loaded';
    const msg: LoadedMessage = { load_ns: t1 - t0, check_ns: t2 - t1, pages_received: this.pagesReceived };
    this.send(SECTION.loaded, msg, digests);
    // The source compares and answers GO (or abort) at once: bound the wait.
    p.callAfter(this.streamTimeoutNs, () => {
      if (this.status === 'loaded') this.fail(`no GO from the source within ${this.streamTimeoutNs / 1e6} ms of the digests (stream timeout)`);
    });
  }

  /** GO: QEMU's process_incoming_migration_bh starts the VM from the main loop. */
  private go(): void {
    if (this.status !== 'loaded') return this.fail('GO before the stream was loaded');
    const m = this.session.world.machine;
    const started = () => this.started();
    m.mainLoop.aioContext.bhScheduleOneshot('process_incoming_migration_bh', function* (): Co<void> {
      m.bql.assertHeld('process_incoming_migration_bh');
      m.vmStart();
      started();
    });
  }

  /** The VM runs here: tell the source, and look at the guest's heartbeat after the check window. */
  private started(): void {
    const s = this.session;
    const p = s.platform;
    this.status = 'running';
    if (!this.send(SECTION.running, { at_ns: p.nowNs() })) return;
    this.inject('running');
    const hb0 = s.guest.heartbeat(0);
    const exits0 = s.guest.code.reduce((n, c) => n + c.exits, 0);
    const t0 = p.nowNs();
    p.callAfter(this.checkNs, () => this.finish(hb0, exits0, t0));
  }

  private finish(hb0: number, exits0: number, t0: number): void {
    const s = this.session;
    const p = s.platform;
    const hb1 = s.guest.heartbeat(0);
    const report: DestinationReport = {
      running: s.world.machine.runstate.running,
      heartbeat_before: hb0,
      heartbeat_after: hb1,
      window_ms: Math.round((p.nowNs() - t0) / 1e6),
      exits: s.guest.code.reduce((n, c) => n + c.exits, 0) - exits0,
      pings_answered: s.net?.replies ?? 0,
      pages_received: this.pagesReceived,
      wire_bytes: this.wireBytes,
    };
    this.report = report;
    if (!this.send(SECTION.report, report)) return;
    this.status = hb1 > hb0 ? 'completed' : 'failed';
    if (hb1 <= hb0) this.failReason = `the guest's heartbeat did not advance in ${report.window_ms} ms (${hb0})`;
    p.stop();
  }

  /** Fails the migration here (the process exits 8): tells the source if it still listens. */
  fail(reason: string): void {
    if (this.status === 'failed') return;
    this.status = 'failed';
    this.failReason = reason;
    // QEMU: the incoming coroutine ends; a closed socket would stay readable for ever.
    const ml = this.session.world.machine.mainLoop;
    ml.setFdHandler(this.listenReadable, 'migration.incoming-accept', null);
    if (this.connReadable) ml.setFdHandler(this.connReadable, 'migration.process_incoming_migration_co', null);
    if (this.fd >= 0) {
      try {
        this.write(SECTION.error, { message: reason });
      } catch {
        // the source is gone
      }
    }
    this.session.platform.stop();
  }

  /** The test fault, if it is set for this point: the signal to this very process. */
  private inject(at: FaultPoint): void {
    const f = this.fault;
    if (!f || f.at !== at || this.injected) return;
    this.injected = true;
    process.stderr.write(`latsim: real incoming: fault: ${f.signal} to itself at ${at} ` +
      `(${this.pagesReceived} page records received, the guest has ${this.session.guest.ram.pages} pages)\n`);
    process.kill(process.pid, f.signal);
  }

  /** Closes the connection. */
  close(): void {
    if (this.fd < 0) return;
    this.session.platform.releaseFd(this.fd);
    this.session.platform.io.close(this.fd);
    this.fd = -1;
  }

  /** Sends a message to the source; false if the stream broke (which fails the migration here). */
  private send(type: (typeof SECTION)[keyof typeof SECTION], value: unknown, tail?: Uint8Array): boolean {
    try {
      this.write(type, value, tail);
      return true;
    } catch (e) {
      this.fail(`the migration stream broke: ${(e as Error).message}`);
      return false;
    }
  }

  private write(type: (typeof SECTION)[keyof typeof SECTION], value: unknown, tail?: Uint8Array): void {
    const w = new SectionWriter();
    w.json(type, value, tail);
    writeAllBlocking(this.session.platform.io, this.fd, w.buf.subarray(0, w.len), this.streamTimeoutNs / 1e6);
  }
}

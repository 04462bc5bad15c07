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

  constructor(
    private readonly session: RealSession,
    private readonly listenFd: number,
    /** How long the guest runs here before the report. */
    private readonly checkNs: number,
  ) {
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
    this.wireBytes += this.reader.fill(p.io, this.fd, READ_SLICE_BYTES);
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
        return this.loadRam(payload);
      case SECTION.device:
        this.device = parse<DeviceState>(payload);
        return;
      case SECTION.eos:
        return this.endOfStream();
      case SECTION.go:
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
    this.send(SECTION.running, { at_ns: p.nowNs() });
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
    this.send(SECTION.report, report);
    this.status = hb1 > hb0 ? 'completed' : 'failed';
    if (hb1 <= hb0) this.failReason = `the guest's heartbeat did not advance in ${report.window_ms} ms (${hb0})`;
    p.stop();
  }

  private fail(reason: string): void {
    if (this.status === 'failed') return;
    this.status = 'failed';
    this.failReason = reason;
    if (this.fd >= 0) {
      try {
        this.send(SECTION.error, { message: reason });
      } catch {
        // the source is gone
      }
    }
    this.session.platform.stop();
  }

  /** Closes the connection. */
  close(): void {
    if (this.fd < 0) return;
    this.session.platform.releaseFd(this.fd);
    this.session.platform.io.close(this.fd);
    this.fd = -1;
  }

  private send(type: (typeof SECTION)[keyof typeof SECTION], value: unknown, tail?: Uint8Array): void {
    const w = new SectionWriter();
    w.json(type, value, tail);
    writeAllBlocking(this.session.platform.io, this.fd, w.buf.subarray(0, w.len));
  }
}

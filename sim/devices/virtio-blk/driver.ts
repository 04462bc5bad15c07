// The guest's half of virtio-blk: the guest kernel's driver issues requests at
// a rate while its vCPU runs (writes with a given fraction, a flush after every
// flush_every writes), adds them to the virtqueue and kicks through the
// ioeventfd (no exit to userspace). Completions arrive as interrupts; a write
// is acknowledged to guest userspace only then, and only that is promised to
// be on disk after a flush.
import type { GuestActivity, GuestPort } from '../../guest/guest.ts';
import type { Rng } from '../../scheduler/random.ts';
import type { BlkSpec } from '../../scenario/scenario.ts';
import type { VirtQueue } from '../virtqueue.ts';
import type { VirtIOBlockReq } from './request.ts';

/** The device as its driver sees it: the virtqueue, and the kick (the ioeventfd write). */
export interface BlkQueue {
  readonly vq: VirtQueue<VirtIOBlockReq>;
  kick(req: VirtIOBlockReq): void;
}

export class VirtIOBlockDriver implements GuestActivity {
  readonly name: string;
  /** Highest acknowledged version per block, as the guest saw it. */
  readonly acked: Uint32Array;
  submitted = 0;
  completed = 0;
  errors = 0;
  private nextVersion = 1;
  private writesSinceFlush = 0;
  private cursor = 0;
  private nextId = 1;

  constructor(
    private readonly guest: GuestPort,
    private readonly dev: BlkQueue,
    private readonly spec: BlkSpec,
    private readonly rng: Rng,
  ) {
    this.name = `${spec.name}.guest-driver`;
    this.acked = new Uint32Array(spec.io.sectors);
  }

  nextGapNs(): number {
    return Math.max(1, Math.round(this.rng.exponential(1e9 / this.spec.io.rate)));
  }

  /** The guest issues one request. */
  fire(): null {
    const io = this.spec.io;
    let op: VirtIOBlockReq['op'];
    if (io.flush_every > 0 && this.writesSinceFlush >= io.flush_every) op = 'flush';
    else op = this.rng.next() < io.write_fraction ? 'write' : 'read';
    let block = 0;
    if (op !== 'flush') {
      block = io.pattern === 'sequential' ? this.cursor : this.rng.int(io.sectors);
      this.cursor = (block + 1) % io.sectors;
    }
    const versions = op === 'write' ? [this.nextVersion++] : [];
    if (op === 'write') this.writesSinceFlush++;
    if (op === 'flush') this.writesSinceFlush = 0;
    const p = this.guest.machine.platform;
    const req: VirtIOBlockReq = {
      id: this.nextId++, op, block, blocks: op === 'flush' ? 0 : 1, versions, submittedNs: p.nowNs(), flow: 0,
    };
    if (this.dev.vq.full) return null;
    this.submitted++;
    if (this.dev.vq.add(req)) this.dev.kick(req);
    return null;
  }

  /** The completion interrupt reached the guest kernel. */
  complete(req: VirtIOBlockReq, error: string | null): void {
    this.completed++;
    if (error) {
      this.errors++;
      return;
    }
    if (req.op === 'write') {
      for (let i = 0; i < req.blocks; i++) {
        const b = req.block + i;
        if (req.versions[i]! > this.acked[b]!) this.acked[b] = req.versions[i]!;
      }
    }
  }
}

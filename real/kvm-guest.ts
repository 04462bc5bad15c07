// The guest on KVM, as devices, migration and reports see a guest (GuestPort):
// RAM is one mmap'd slot with KVM's dirty log (KvmGuestMemory); each of the
// machine's vCPUs runs the guest payload on a native vCPU thread
// (KvmVcpuCode), told its workload through its mailbox. The scenario's
// workload section maps onto the payload where it can: a dirty rate and
// pattern become TSC-paced ticks of page writes (uniform, hot set with its
// cold share, sequential; `increment` is QEMU migration-test's unpaced byte
// increment); an exit rate becomes a PIO heartbeat every few ticks, served
// under the BQL with the scenario's cost; the first virtio-net device's vCPU
// also answers pings on the tx virtqueue. Guest userspace progress counts
// stretches of uninterrupted run time, as in the model. With vm.dirty_ring_size
// the VM gets KVM's dirty ring (before its vCPUs), each vCPU maps its ring,
// and QEMU's side of it (reaping, kvm-reaper, ring-full exits) is the model's.
// Leaves out: interrupts (a device's interrupt work runs at once on the host,
// its guest cost is not spent), MMIO exit workloads (the heartbeat is PIO),
// exit rates above the tick rate, modelled guest activities other than a block
// driver's requests (they run on host timers while the VM runs).
import { sample, type Dist } from '../sim/util/dist.ts';
import type { Machine } from '../sim/machine.ts';
import type { Co } from '../sim/platform.ts';
import type { Scenario, WorkloadSpec } from '../sim/scenario/scenario.ts';
import { UserspaceTracker, type GuestActivity, type GuestPort, type GuestWork } from '../sim/guest/guest.ts';
import { KvmDirtyRing } from '../sim/guest/dirty-ring.ts';
import { KvmHostDirtyRings } from './dirty-ring.ts';
import type { GuestSpec } from '../sim/scenario/scenario.ts';
import type { KvmVcpu, Vm } from './kvm/index.ts';
import { bootLongMode, loadPayload, readPayload } from './guest/loader.ts';
import { Mailbox, type WorkloadParams } from './guest/mailbox.ts';
import {
  GUEST_RAM_MIN, VCPUS_MAX, PORT_DEBUG, PORT_DONE, PORT_HEARTBEAT, PORT_HELLO, PORT_PONG, PORT_VQ_NOTIFY, WORK_ADDR,
} from './guest/layout.ts';
import { KvmGuestMemory, KVM_PAGE_SIZE } from './guest-memory.ts';
import { IoBus, KvmVcpuCode, type IoAccess } from './vcpu.ts';
import type { RealPlatform } from './platform.ts';
import { RealError } from './errors.ts';

/** Ticks per second at most (a tick is the payload's pacing unit). */
export const TICK_HZ_MAX = 1000;
/** Queue size of the payload's virtqueue. */
export const VQ_SIZE = 256;

/** What one vCPU runs: the payload's parameters and the scenario's exit workload it stands for. */
export interface VcpuPlan {
  readonly params: WorkloadParams;
  readonly tickHz: number;
  /** Page writes per second the plan gives (0 for the unpaced increment). */
  readonly dirtyRate: number;
  /** PIO heartbeats per second, and the handler cost that serves each. */
  readonly exitRate: number;
  readonly exitCost: Dist | null;
  readonly exitName: string;
}

export interface KvmGuestOptions {
  readonly vm: Vm;
  /** The destination of a migration: memory and registers come from the stream. */
  readonly incoming: boolean;
  /** Runs the payload's triple-fault workload on vCPU 0 (to see the error path). */
  readonly crash?: boolean;
  /** The vCPU that answers pings on the virtqueue (the virtio-net device's), or -1. */
  readonly netVcpu: number;
}

export class KvmGuest implements GuestPort {
  readonly spec: GuestSpec;
  readonly ram: KvmGuestMemory;
  readonly userspace: UserspaceTracker;
  readonly code: KvmVcpuCode[] = [];
  readonly natives: KvmVcpu[] = [];
  readonly mailboxes: Mailbox[] = [];
  readonly plans: VcpuPlan[] = [];
  readonly bus = new IoBus();
  /** Payload lines written to the debug port, per vCPU. */
  readonly debug: string[] = [];
  /** Exits of modelled activities that cannot be taken on KVM (counted, not run). */
  droppedActivityExits = 0;
  kvmDirtyRing: KvmDirtyRing | null = null;
  private readonly platform: RealPlatform;
  private readonly debugLine: string[] = [];

  constructor(readonly machine: Machine, scenario: Scenario, opts: KvmGuestOptions) {
    this.platform = machine.platform as RealPlatform;
    const vm = scenario.vm;
    this.spec = scenario.guest;
    if (vm.page_size !== KVM_PAGE_SIZE) throw new RealError('unsupported', `real mode runs 4 KiB pages; the scenario has ${vm.page_size}-byte pages`);
    if (vm.vcpus > VCPUS_MAX) throw new RealError('unsupported', `real mode runs at most ${VCPUS_MAX} vCPUs; the scenario has ${vm.vcpus}`);
    const bytes = Math.ceil(vm.memory_bytes / KVM_PAGE_SIZE) * KVM_PAGE_SIZE;
    if (bytes < GUEST_RAM_MIN) throw new RealError('unsupported', `real mode needs at least ${GUEST_RAM_MIN >> 20} MiB of guest memory`);
    if (vm.manual_dirty_log_protect) {
      throw new RealError('unsupported', 'real mode clears the whole dirty log at each read: vm.manual_dirty_log_protect is for the simulation only');
    }
    // QEMU: kvm_init enables the ring before any vCPU exists.
    if (vm.dirty_ring_size > 0 && opts.vm.enableDirtyRing(vm.dirty_ring_size) === null) {
      throw new RealError('unavailable', `unavailable: this host's KVM offers no dirty ring of ${vm.dirty_ring_size} entries ` +
        '(KVM_CAP_DIRTY_LOG_RING); drop vm.dirty_ring_size to use the dirty log');
    }
    const memory = opts.vm.allocMemory(bytes);
    this.ram = new KvmGuestMemory(opts.vm, memory, () => this.mailboxes.reduce((s, m) => s + m.get('pages_written'), 0));
    this.userspace = new UserspaceTracker(vm.vcpus, scenario.guest.userspace.quantum_ns, scenario.guest.userspace.tolerance_ns);
    for (let i = 0; i < vm.vcpus; i++) this.mailboxes.push(new Mailbox(memory, 0, i));
    if (!opts.incoming) {
      loadPayload(memory, readPayload());
      populate(this.ram, Math.round(this.ram.pages * vm.populated));
    }
    for (let i = 0; i < vm.vcpus; i++) {
      const native = opts.vm.createVcpu(i);
      this.natives.push(native);
      if (!opts.incoming) bootLongMode(native);
      const tscKhz = opts.incoming ? 0 : safeTscKhz(native);
      const plan = planVcpu(scenario, i, bytes, tscKhz, this.platform, opts.netVcpu === i, opts.crash === true && i === 0);
      this.plans.push(plan);
      if (!opts.incoming) this.mailboxes[i]!.write(plan.params);
      const code = new KvmVcpuCode(this.platform, i, native, this.bus, {
        ran: (v, ns, end) => this.userspace.ran(v, ns, end),
        entered: (v, stalled) => this.userspace.entered(v, stalled),
      });
      this.code.push(code);
      machine.addVcpu(code);
    }
    if (vm.dirty_ring_size > 0) {
      for (const n of this.natives) n.mapDirtyRing(vm.dirty_ring_size);
      const rings = new KvmHostDirtyRings(opts.vm, this.natives, vm.dirty_ring_size);
      this.ram.dirtyRing = rings;
      this.kvmDirtyRing = new KvmDirtyRing(machine, this.ram.dirtyLog, rings);
      for (const c of this.code) c.dirtyRing = this.kvmDirtyRing;
      this.kvmDirtyRing.startReaper();
    }
    this.registerPorts();
  }

  /** The payload's heartbeat counter on vCPU index (ticks done). */
  heartbeat(index = 0): number {
    return this.mailboxes[index]!.get('heartbeat');
  }

  /** No interrupts on KVM here: the work's host-side effect happens now (its guest time is not spent). */
  raiseIrq(_vcpu: number, work: GuestWork): void {
    if (work.run() !== null) this.droppedActivityExits++;
  }

  /** A modelled guest activity (a block driver's requests) fires on host timers while the VM runs. */
  addActivity(vcpu: number, activity: GuestActivity): void {
    const p = this.platform;
    const fire = () => {
      const v = this.machine.vcpus[vcpu];
      if (this.machine.runstate.running && v && !v.stopped && activity.fire() !== null) this.droppedActivityExits++;
      p.callAfter(activity.nextGapNs(), fire);
    };
    p.callAfter(activity.nextGapNs(), fire);
  }

  setThrottle(percent: number): void {
    for (const c of this.code) c.throttlePct = percent;
  }

  /** Handlers for the payload's own ports (devices add theirs). */
  private registerPorts(): void {
    const m = this.machine;
    const p = this.platform;
    const plans = this.plans;
    // Named as the model names its exit workload, so the two backends' reports line up.
    this.bus.registerPio(PORT_HEARTBEAT, {
      name: (v) => plans[v]!.exitName,
      handle: function* (_a: IoAccess, v: number): Co<number | undefined> {
        const plan = plans[v]!;
        m.bql.assertHeld(plan.exitName);
        if (plan.exitCost) yield* p.cpu(sample(plan.exitCost, p.random(`vcpu${v}.exits`)));
        return undefined;
      },
    });
    this.bus.registerPio(PORT_DONE, {
      name: 'payload.done',
      handle: function* (a: IoAccess, v: number): Co<number | undefined> {
        m.trace.event(`vcpu${v}`, 'guest_payload_done', { state: littleEndian(a) });
        return undefined;
      },
    });
    this.bus.registerPio(PORT_DEBUG, {
      name: 'payload.debug',
      handle: (a: IoAccess, v: number) => this.debugChar(a, v),
    });
    this.bus.registerPio(PORT_HELLO, {
      name: 'payload.hello',
      handle: function* (): Co<number | undefined> {
        return 0x4c53494d; // "MISL"
      },
    });
  }

  private *debugChar(a: IoAccess, v: number): Co<number | undefined> {
    const c = littleEndian(a) & 0xff;
    if (c === 10) {
      const line = this.debugLine[v] ?? '';
      this.debug.push(`vcpu${v}: ${line}`);
      this.machine.trace.event(`vcpu${v}`, 'guest_debug', { line });
      this.debugLine[v] = '';
    } else {
      this.debugLine[v] = (this.debugLine[v] ?? '') + String.fromCharCode(c);
    }
    return undefined;
  }

  /** Registers the PIO handler of the payload's pong (pings answered without a queue). */
  onPong(answer: (value: number) => void): void {
    this.bus.registerPio(PORT_PONG, {
      name: 'payload.pong',
      handle: function* (a: IoAccess): Co<number | undefined> {
        answer(littleEndian(a));
        return undefined;
      },
    });
  }

  /** A queue kick that reached userspace (no ioeventfd matched it). */
  onNotifyExit(name: string, kick: () => void): void {
    this.bus.registerPio(PORT_VQ_NOTIFY, {
      name,
      handle: function* (): Co<number | undefined> {
        kick();
        return undefined;
      },
    });
  }
}

/** The value a PIO OUT or MMIO write carried (little-endian). */
export function littleEndian(a: IoAccess): number {
  const d = a.data;
  if (!d) return 0;
  let v = 0;
  for (let i = d.length - 1; i >= 0; i--) v = v * 256 + d[i]!;
  return v;
}

function safeTscKhz(v: KvmVcpu): number {
  try {
    return v.tscKhz();
  } catch {
    return 0;
  }
}

/** Gives the first pages content (a booted guest's data), past the payload's own area. */
function populate(ram: KvmGuestMemory, pages: number): void {
  const view = new DataView(ram.memory);
  for (let page = WORK_ADDR / KVM_PAGE_SIZE; page < Math.min(pages, ram.pages); page++) {
    view.setUint32(page * KVM_PAGE_SIZE + 8, page, true);
    view.setUint32(page * KVM_PAGE_SIZE + 12, 0x4c415453, true);
  }
}

/** The payload's parameters for vCPU index from the scenario's workloads. */
export function planVcpu(
  scenario: Scenario, index: number, memoryBytes: number, tscKhz: number, platform: RealPlatform,
  net: boolean, crash: boolean,
): VcpuPlan {
  const mine = scenario.guest.workloads.filter((w) => w.vcpus.includes(index));
  const dirty = mine.find((w) => w.dirty)?.dirty ?? null;
  const exits: WorkloadSpec['exits'] = mine.find((w) => w.exits)?.exits ?? null;
  const exitName = `vcpu${index}.${exits?.kind ?? 'pio'}-exit`;
  const rng = platform.random(`vcpu${index}.dirty`);
  const seed = Math.floor(rng.next() * 2 ** 48) + 1;
  const virtio = net ? {
    size: VQ_SIZE, notify: 'pio' as const, notifyAddr: PORT_VQ_NOTIFY, queueIndex: 0, requests: 0, outLen: 64, inLen: 0, batch: 0,
  } : undefined;
  if (crash) return { params: { workload: 'tripleFault' }, tickHz: 0, dirtyRate: 0, exitRate: 0, exitCost: null, exitName };
  // The range: the scenario's, clipped to what the payload may write.
  const pageBytes = scenario.vm.page_size;
  const workPages = memoryBytes / KVM_PAGE_SIZE;
  let first = WORK_ADDR / KVM_PAGE_SIZE;
  let pages = 1;
  if (dirty) {
    first = Math.max(first, Math.floor((dirty.first_page * pageBytes) / KVM_PAGE_SIZE));
    const end = Math.min(workPages, Math.ceil(((dirty.first_page + dirty.pages) * pageBytes) / KVM_PAGE_SIZE));
    pages = Math.max(1, end - first);
    if (first + pages > workPages) first = workPages - pages;
  }
  if (dirty?.pattern === 'increment') {
    return {
      params: {
        workload: 'increment', rangeStart: first * KVM_PAGE_SIZE, rangePages: pages, heartbeatEvery: exits ? 1 : 0,
      },
      tickHz: 0, dirtyRate: 0, exitRate: 0, exitCost: exits?.cost ?? null, exitName,
    };
  }
  const rate = dirty?.rate ?? 0;
  const exitRate = exits?.rate ?? 0;
  const tickHz = Math.max(1, Math.min(TICK_HZ_MAX, Math.round(rate > 0 ? rate : exitRate > 0 ? exitRate : 100)));
  const perTick = rate > 0 ? Math.max(1, Math.round(rate / tickHz)) : 1;
  const every = exitRate > 0 ? Math.max(1, Math.round(tickHz / exitRate)) : 0;
  const pattern = dirty?.pattern === 'hotset' ? 'hotSet' : dirty?.pattern === 'sequential' ? 'sequential' : 'uniform';
  const params: WorkloadParams = {
    workload: 'dirty',
    pattern,
    rangeStart: first * KVM_PAGE_SIZE,
    rangePages: pages,
    hotPages: dirty?.pattern === 'hotset' ? Math.max(1, Math.min(pages, dirty.hot_pages)) : 0,
    hotPercent: dirty?.pattern === 'hotset' ? Math.round((1 - dirty.cold_fraction) * 100) : 0,
    pagesPerTick: perTick,
    tickTsc: tscKhz > 0 ? Math.round((tscKhz * 1000) / tickHz) : 0,
    seed,
    heartbeatEvery: every,
    ...(virtio ? { virtio } : {}),
  };
  return {
    params, tickHz, dirtyRate: rate > 0 ? perTick * tickHz : 0, exitRate: every > 0 ? tickHz / every : 0,
    exitCost: exits?.cost ?? null, exitName,
  };
}

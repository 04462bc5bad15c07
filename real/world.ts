// A scenario's world on KVM, built by the same builder as the simulator's
// (sim/world.ts) with a KVM backend: the guest is the payload on native vCPUs
// over mmap'd RAM; the first virtio-net device's tx queue is the payload's
// split ring, its kick a KVM ioeventfd bound to the device's host notifier,
// and its guest half the payload (pings through the mailbox); block backends
// write real files in a temporary directory. IOThreads are threads of the
// real platform with their own event loop each (RealPlatform's ownCore): a
// dataplane's handlers and completions run there, not on the main loop. A
// RealSession owns /dev/kvm, the VM, the platform and the files, and releases
// them all in close().
// Leaves out: more than one virtio-net device (the payload drives one queue),
// vhost-net (its worker writes the model's guest memory, not the payload's).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { Machine } from '../sim/machine.ts';
import type { Scenario } from '../sim/scenario/scenario.ts';
import type { Devices, DeviceGlue } from '../sim/devices/devices.ts';
import type { MigrationDestination } from '../sim/migration/destination.ts';
import { buildWorld, type World, type WorldBackend } from '../sim/world.ts';
import { Kvm, type Vm } from './kvm/index.ts';
import { PAYLOAD_PATH } from './guest/loader.ts';
import { PORT_VQ_NOTIFY, VQ_AVAIL_ADDR, VQ_DESC_ADDR, VQ_USED_ADDR } from './guest/layout.ts';
import { KvmGuest, VQ_SIZE } from './kvm-guest.ts';
import { PayloadNetDriver } from './net-guest.ts';
import { RealPlatform } from './platform.ts';
import { SplitRing } from './split-ring.ts';
import { RealError, classify } from './errors.ts';
import type { Packet } from '../sim/devices/virtio-net/packet.ts';

export type RealWorld<D extends MigrationDestination = MigrationDestination> = World<KvmGuest, D>;

export interface RealSessionOptions<D extends MigrationDestination> {
  /** The destination of a migration: RAM and registers arrive over the stream. */
  readonly incoming?: boolean;
  /** Run the payload's triple-fault workload on vCPU 0. */
  readonly crash?: boolean;
  readonly keepTrace?: boolean;
  /** The migration's far end (required when the scenario migrates). */
  readonly destination?: (machine: Machine, guest: KvmGuest, platform: RealPlatform) => D;
}

/** Builds the guest payload if it is missing; RealError 'unavailable' if it cannot. */
export function ensurePayload(): void {
  if (existsSync(PAYLOAD_PATH)) return;
  const script = join(dirname(fileURLToPath(import.meta.url)), 'guest', 'build.mjs');
  const r = spawnSync(process.execPath, [script], { encoding: 'utf8' });
  if (r.status !== 0 || !existsSync(PAYLOAD_PATH)) {
    const why = (r.stderr || r.stdout || '').trim().split('\n').pop() ?? '';
    throw new RealError('unavailable', `unavailable: the guest payload is not built and does not build (${why})`);
  }
}

/** Opens /dev/kvm; RealError 'unavailable' with the reason if it cannot. */
export function openKvm(): Kvm {
  try {
    return Kvm.open();
  } catch (e) {
    throw classify(e) ?? e;
  }
}

export class RealSession<D extends MigrationDestination = MigrationDestination> {
  readonly platform: RealPlatform;
  readonly world: RealWorld<D>;
  /** The payload's half of the virtio-net device, if the scenario has one. */
  net: PayloadNetDriver | null = null;
  netRing: SplitRing<Packet> | null = null;
  private readonly dir: string;
  private closed = false;

  private constructor(
    readonly scenario: Scenario,
    readonly kvm: Kvm,
    readonly vm: Vm,
    opts: RealSessionOptions<D>,
  ) {
    if (scenario.devices.net.length > 1) {
      throw new RealError('unsupported', `real mode drives one virtio-net device; the scenario has ${scenario.devices.net.length}`);
    }
    const vhost = scenario.devices.net.find((n) => n.vhost);
    if (vhost) throw new RealError('unsupported', `real mode has no vhost-net (${vhost.name}: vhost: true); run it in the simulation`);
    this.dir = mkdtempSync(join(tmpdir(), 'latsim-real-'));
    this.platform = new RealPlatform({ seed: scenario.seed, io: kvm.native });
    try {
      this.world = buildWorld(scenario, this.platform, opts.keepTrace ?? false, this.backend(opts));
    } catch (e) {
      this.platform.close();
      rmSync(this.dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** Opens KVM, creates the VM and builds the world (the machine starts at once). */
  static open<D extends MigrationDestination = MigrationDestination>(scenario: Scenario, opts: RealSessionOptions<D> = {}): RealSession<D> {
    ensurePayload();
    const kvm = openKvm();
    let vm: Vm | null = null;
    try {
      vm = kvm.createVm();
      return new RealSession<D>(scenario, kvm, vm, opts);
    } catch (e) {
      vm?.close();
      kvm.close();
      throw classify(e) ?? e;
    }
  }

  get guest(): KvmGuest {
    return this.world.guest;
  }

  private backend(opts: RealSessionOptions<D>): WorldBackend<KvmGuest, D> {
    const platform = this.platform;
    const netSpec = this.scenario.devices.net[0] ?? null;
    return {
      guest: (machine, scenario) => new KvmGuest(machine, scenario, {
        vm: this.vm, incoming: opts.incoming ?? false, crash: opts.crash ?? false, netVcpu: netSpec ? netSpec.vcpu : -1,
      }),
      glue: (guest): DeviceGlue => {
        if (!netSpec) return {};
        const dirty = (addr: number, len: number) => guest.ram.markDirty(addr, len);
        const driver = new PayloadNetDriver(guest.mailboxes[netSpec.vcpu]!, dirty);
        this.net = driver;
        return {
          netGuest: () => driver,
          netTxQueue: (spec) => {
            const ring = new SplitRing<Packet>(`${spec.name}.tx`, guest.ram.memory, VQ_SIZE,
              { desc: VQ_DESC_ADDR, avail: VQ_AVAIL_ADDR, used: VQ_USED_ADDR },
              (chain, bytes) => driver.decode(chain, bytes, platform.nowNs()), dirty);
            this.netRing = ring;
            return ring;
          },
        };
      },
      devicesReady: (machine, guest, devices) => this.bindDevices(machine, guest, devices),
      destination: (machine, guest) => {
        if (!opts.destination) throw new Error('a migrating real world needs a destination');
        return opts.destination(machine, guest, platform);
      },
    };
  }

  /** QEMU's virtio_bus_set_host_notifier + memory_region_add_eventfd, and the block files. */
  private bindDevices(_machine: Machine, guest: KvmGuest, devices: Devices): void {
    const n = devices.net[0];
    if (n) {
      const fd = this.vm.registerIoeventfd({ addr: PORT_VQ_NOTIFY, len: 2, space: 'pio', datamatch: 0 });
      this.platform.attachFd(n.dev.hostNotifier, fd);
      guest.onNotifyExit(`virtio-net.${n.dev.spec.name}.notify-exit`, () => n.dev.hostNotifier.set());
      const driver = this.net!;
      guest.onPong((value) => {
        const seq = driver.answered(value);
        n.tap.transmit({ id: value, kind: 'echo-reply', seq, sentNs: this.platform.nowNs(), flow: 0 });
      });
    }
    for (const b of devices.blk) {
      const spec = b.dev.spec;
      this.platform.attachBlockFile(spec.name, join(this.dir, `${spec.name}.img`), spec.io.sectors * spec.io.request_bytes);
    }
  }

  /** Pauses the vCPUs, closes the VM, /dev/kvm and the platform, removes the block files. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const v of this.guest?.natives ?? []) {
      try {
        v.pause(1000);
      } catch {
        // an ended vCPU
      }
    }
    this.platform.close();
    this.vm.close();
    this.kvm.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

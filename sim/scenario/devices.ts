// The `devices` section: virtio-net devices with their tap backend and the
// external peer, and virtio-blk devices with their block backend and the
// guest's I/O workload. Device names are unique across both kinds (faults and
// reports name devices by them). A virtio-blk device may run in an IOThread
// (`iothread`, QEMU's -device virtio-blk,iothread=...: the dataplane); a
// virtio-net device may hand its data path to a vhost-net kernel worker
// (`vhost`, -netdev tap,vhost=on) and flush tx from a timer instead of a
// bottom half (`tx: timer`, -device virtio-net,tx=timer,x-txtimer=...).
import type { Dist } from '../util/dist.ts';
import { fixed, items, section, type Fields, type Path } from './fields.ts';
import { COST_LIMIT, limit } from './limits.ts';
import { bool, dist, duration, int, list, name, num, obj, oneOfWords, rate, size, type Schema } from './schema-kit.ts';

export interface NetSpec {
  readonly name: string;
  readonly vcpu: number;
  readonly host_notifier_cost: Dist;
  readonly tx_bh_cost: Dist;
  readonly rx_cost: Dist;
  readonly tx_burst: number;
  /** QEMU: -netdev tap,vhost=on: a vhost-net worker serves tx and rx outside QEMU. */
  readonly vhost: boolean;
  /** QEMU: virtio-net's tx property: flush from a bottom half (default) or from the tx timer. */
  readonly tx: 'bh' | 'timer';
  /** QEMU: x-txtimer, the tx timer's delay in ns (QEMU_CLOCK_VIRTUAL). */
  readonly x_txtimer_ns: number;
  readonly peer: {
    readonly ping_interval_ns: number;
    readonly ping_timeout_ns: number;
    readonly wire_latency_ns: number;
    readonly background_rate: number;
  };
}

export interface BlkSpec {
  readonly name: string;
  readonly vcpu: number;
  readonly queue_depth: number;
  readonly read: Dist;
  readonly write: Dist;
  readonly flush: Dist;
  readonly request_cost: Dist;
  /** QEMU's werror/rerror: report the error to the guest, or stop the VM. */
  readonly on_error: 'report' | 'stop';
  readonly io: {
    readonly pattern: 'random' | 'sequential';
    readonly rate: number;
    readonly write_fraction: number;
    readonly flush_every: number;
    readonly sectors: number;
    readonly request_bytes: number;
  };
  /** Interval at which a stalled backend's fd still wakes aio_poll (NFS retries), 0 for never. */
  readonly retry_interval_ns: number;
  /** QEMU: -device virtio-blk,iothread=ID: the IOThread its dataplane runs in, or null (the main loop). */
  readonly iothread: string | null;
}

export interface DevicesSpec {
  readonly net: readonly NetSpec[];
  readonly blk: readonly BlkSpec[];
}

/** QEMU: virtio-net's tx_burst property default (TX_BURST, hw/net/virtio-net.c). */
export const DEFAULT_TX_BURST = 256;
/** QEMU: TX_TIMER_INTERVAL (include/hw/virtio/virtio-net.h), x-txtimer's default: 150 us (every version modelled). */
export const TX_TIMER_INTERVAL_NS = 150_000;
/** x-txtimer: QEMU takes a uint32 of ns (up to 4.29 s). */
const TX_TIMER_LIMIT = limit.duration('1ns', '4294967295ns');
/** Requests a disk may hold at most: the model keeps a version per request-sized block. */
const DISK_BLOCKS_MAX = 2 ** 26;
/** Devices of each kind a scenario may declare at most. */
export const NET_DEVICES_MAX = 64;
export const BLK_DEVICES_MAX = 64;
/** ping -i: 0 for no ping, else from 100 us (a flood ping) to an hour. */
const PING_INTERVAL_LIMIT = limit.duration('100us', '1h', 'no ping');
const PING_TIMEOUT_LIMIT = limit.duration('1us', '1h');
const WIRE_LATENCY_LIMIT = limit.duration('0s', '10s');
/** Background packets to the guest: up to a million per second (10GbE small-packet line rate is 14.9 M). */
const BACKGROUND_LIMIT = limit.rate('0/s', '1e6/s');
/** NFS retry wakeups: 0 for never, else from 100 us. */
const RETRY_INTERVAL_LIMIT = limit.duration('100us', '1h', 'never');
/** Guest requests per second: a million IOPS is the fastest NVMe device's. */
const IO_RATE_LIMIT = limit.rate('0/s', '1e6/s');
const DISK_SIZE_LIMIT = limit.size('1B', '64TiB');
const REQUEST_SIZE_LIMIT = limit.size('1B', '64MiB');

export function devicesSchema(): Schema {
  const peer = obj({
    ping_interval: duration('time between pings (0s: no ping)', PING_INTERVAL_LIMIT),
    ping_timeout: duration('a reply later than this counts as lost', PING_TIMEOUT_LIMIT),
    wire_latency: duration('one-way latency between peer and tap', WIRE_LATENCY_LIMIT),
    background: rate('background packets per second to the guest', BACKGROUND_LIMIT),
  }, 'the external peer on the tap');
  const net = obj({
    name: name('device id, e.g. net0'),
    vcpu: int(0, 1023, 'vCPU that takes the interrupts'),
    host_notifier_cost: dist('host-notifier read handler cost (the talk: 358ms)', COST_LIMIT),
    tx_bh_cost: dist('tx bottom half cost', COST_LIMIT),
    rx_cost: dist('receive path cost per packet', COST_LIMIT),
    tx_burst: int(1, 4096, 'packets per tx flush (x-txburst; default 256, TX_BURST)'),
    vhost: bool('-netdev tap,vhost=on: a vhost-net kernel worker serves tx and rx, costing tx_bh_cost per tx run and rx_cost per packet; host_notifier_cost, tx and x_txtimer do not apply (default false)'),
    tx: oneOfWords(['bh', 'timer'], 'tx=: flush tx from a bottom half (bh, the default) or from the tx timer'),
    x_txtimer: duration('x-txtimer: how long tx=timer waits for a batch (default 150us, TX_TIMER_INTERVAL)', TX_TIMER_LIMIT),
    peer,
  }, 'a virtio-net device with a tap backend', ['name']);
  const blk = obj({
    name: name('device id, e.g. disk0'),
    vcpu: int(0, 1023, 'vCPU that issues requests and takes interrupts'),
    queue_depth: int(1, 1024, 'requests in flight at the backend'),
    read: dist('read latency', COST_LIMIT),
    write: dist('write latency', COST_LIMIT),
    flush: dist('flush latency', COST_LIMIT),
    request_cost: dist('device handler cost per request', COST_LIMIT),
    on_error: oneOfWords(['report', 'stop'], 'werror/rerror: report to the guest, or stop the VM'),
    retry_interval: duration('how often a stalled backend still wakes aio_poll (NFS retries); 0s: never', RETRY_INTERVAL_LIMIT),
    iothread: name('iothread=: the id of a declared IOThread the dataplane runs in (default: the main loop)'),
    io: obj({
      rate: rate('guest requests per second', IO_RATE_LIMIT),
      pattern: oneOfWords(['random', 'sequential'], 'which blocks requests hit'),
      write_fraction: num(0, 1, 'share of writes'),
      flush_every: int(0, 1_000_000, 'a flush after this many writes (0: never)'),
      disk_size: size('disk size (at most 2^26 requests)', DISK_SIZE_LIMIT),
      request_size: size('bytes per request', REQUEST_SIZE_LIMIT),
    }, 'the guest I/O workload'),
  }, 'a virtio-blk device and its block backend', ['name']);
  return obj({
    net: list(net, 'virtio-net devices', NET_DEVICES_MAX, 'virtio-net devices'),
    blk: list(blk, 'virtio-blk devices', BLK_DEVICES_MAX, 'virtio-blk devices'),
  }, 'devices; names are unique across both kinds');
}

type VcpuAt = (path: Path, v: number | undefined, dflt?: number) => number;

export function checkDevices(devices: unknown, vcpuAt: VcpuAt, f: Fields, iothreads: readonly string[]): DevicesSpec {
  const names = new Set<string>();
  const unique = (path: Path, n: string) => {
    if (names.has(n)) f.fail(path, `device name ${JSON.stringify(n)} is used twice`);
    names.add(n);
  };
  const net: NetSpec[] = items(devices, 'net').map((n, i) => {
    const path = ['devices', 'net', i];
    unique([...path, 'name'], n.name as string);
    const peer = section(n, 'peer');
    const pp = [...path, 'peer'];
    return {
      name: n.name as string,
      vcpu: vcpuAt([...path, 'vcpu'], n.vcpu as number | undefined),
      host_notifier_cost: f.dist([...path, 'host_notifier_cost'], n.host_notifier_cost, fixed(20_000), COST_LIMIT),
      tx_bh_cost: f.dist([...path, 'tx_bh_cost'], n.tx_bh_cost, fixed(30_000), COST_LIMIT),
      rx_cost: f.dist([...path, 'rx_cost'], n.rx_cost, fixed(10_000), COST_LIMIT),
      tx_burst: (n.tx_burst as number | undefined) ?? DEFAULT_TX_BURST,
      vhost: (n.vhost as boolean | undefined) ?? false,
      tx: (n.tx as 'bh' | 'timer' | undefined) ?? 'bh',
      x_txtimer_ns: f.duration([...path, 'x_txtimer'], n.x_txtimer, TX_TIMER_INTERVAL_NS, TX_TIMER_LIMIT),
      peer: {
        ping_interval_ns: f.duration([...pp, 'ping_interval'], peer.ping_interval, 100_000_000, PING_INTERVAL_LIMIT),
        ping_timeout_ns: f.duration([...pp, 'ping_timeout'], peer.ping_timeout, 1_000_000_000, PING_TIMEOUT_LIMIT),
        wire_latency_ns: f.duration([...pp, 'wire_latency'], peer.wire_latency, 50_000, WIRE_LATENCY_LIMIT),
        background_rate: f.rate([...pp, 'background'], peer.background, 0, BACKGROUND_LIMIT),
      },
    };
  });
  const blk: BlkSpec[] = items(devices, 'blk').map((b, i) => {
    const path = ['devices', 'blk', i];
    unique([...path, 'name'], b.name as string);
    const io = section(b, 'io');
    const ip = [...path, 'io'];
    const reqBytes = f.size([...ip, 'request_size'], io.request_size, 4096, REQUEST_SIZE_LIMIT);
    const diskBytes = f.size([...ip, 'disk_size'], io.disk_size, 2 ** 30, DISK_SIZE_LIMIT);
    if (diskBytes < reqBytes) f.fail([...ip, 'disk_size'], 'the disk is smaller than one request');
    if (diskBytes / reqBytes > DISK_BLOCKS_MAX) f.fail([...ip, 'disk_size'], 'more than 2^26 requests fit on the disk; raise request_size');
    const iothread = (b.iothread as string | undefined) ?? null;
    if (iothread !== null && !iothreads.includes(iothread)) {
      f.fail([...path, 'iothread'], `no IOThread named ${JSON.stringify(iothread)}${iothreads.length ? `; IOThreads: ${iothreads.join(', ')}` : '; declare it under iothreads'}`);
    }
    return {
      name: b.name as string,
      vcpu: vcpuAt([...path, 'vcpu'], b.vcpu as number | undefined),
      queue_depth: (b.queue_depth as number | undefined) ?? 32,
      read: f.dist([...path, 'read'], b.read, { dist: 'exponential', mean_ns: 100_000 }, COST_LIMIT),
      write: f.dist([...path, 'write'], b.write, { dist: 'exponential', mean_ns: 200_000 }, COST_LIMIT),
      flush: f.dist([...path, 'flush'], b.flush, { dist: 'exponential', mean_ns: 1_000_000 }, COST_LIMIT),
      request_cost: f.dist([...path, 'request_cost'], b.request_cost, fixed(5_000), COST_LIMIT),
      // QEMU: werror=enospc and rerror=report are the defaults; "report" stands for both here.
      on_error: (b.on_error as 'report' | 'stop' | undefined) ?? 'report',
      retry_interval_ns: f.duration([...path, 'retry_interval'], b.retry_interval, 0, RETRY_INTERVAL_LIMIT),
      iothread,
      io: {
        pattern: (io.pattern as 'random' | 'sequential' | undefined) ?? 'random',
        rate: f.rate([...ip, 'rate'], io.rate, 0, IO_RATE_LIMIT),
        write_fraction: (io.write_fraction as number | undefined) ?? 0.5,
        flush_every: (io.flush_every as number | undefined) ?? 16,
        sectors: Math.floor(diskBytes / reqBytes),
        request_bytes: reqBytes,
      },
    };
  });
  return { net, blk };
}

/** Every device name, for sections that refer to devices. */
export function deviceNames(d: DevicesSpec): string[] {
  return [...d.net.map((n) => n.name), ...d.blk.map((b) => b.name)];
}

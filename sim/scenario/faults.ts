// The `faults` section: the fault schedule. Each fault acts for a window of
// time on one named device (a stalled block backend, slow flushes, failing
// I/O, a slow virtio-net handler) or on the migration stream (link-break: the
// connection to the destination, return path included, is cut and comes back
// at the window's end). Fault names are unique (attribution names faults by
// them).
import type { Dist } from '../util/dist.ts';
import { fixed, type Fields, type Raw } from './fields.ts';
import { COST_LIMIT, INSTANT_LIMIT, limit } from './limits.ts';
import { dist, duration, list, name, obj, oneOfWords, type Schema } from './schema-kit.ts';
import { deviceNames, type DevicesSpec } from './devices.ts';

export interface FaultSpec {
  readonly name: string;
  /** The device it acts on; LINK_BREAK_DEVICE for a link-break. */
  readonly device: string;
  readonly kind: 'stall' | 'slow-flush' | 'io-error' | 'handler-cost' | 'link-break';
  readonly at_ns: number;
  readonly for_ns: number;
  /** slow-flush: the latency of each flush in the window. */
  readonly latency: Dist | null;
  /** io-error: which operations fail. */
  readonly ops: readonly ('read' | 'write' | 'flush')[];
}

/** What a link-break acts on: the migration stream (it names no device). */
export const LINK_BREAK_DEVICE = 'migration';

/** Faults a scenario may schedule at most (each request looks up the active ones). */
export const FAULTS_MAX = 1000;
/** A fault's window: from a nanosecond to the longest run. */
const FOR_LIMIT = limit.duration('1ns', '24h');

export function faultsSchema(): Schema {
  const fault = obj({
    name: name('fault name, used in attribution; unique'),
    device: name('device id (every kind but link-break)'),
    kind: oneOfWords(['stall', 'slow-flush', 'io-error', 'handler-cost', 'link-break'], 'what goes wrong (link-break: the migration stream is cut)'),
    at: duration('when it starts', INSTANT_LIMIT),
    for: duration('how long it lasts', FOR_LIMIT),
    latency: dist('slow-flush: flush latency; handler-cost: handler cost', COST_LIMIT),
    ops: list(oneOfWords(['read', 'write', 'flush'], 'operation'), 'io-error: failing operations, each once', 3, 'operations'),
  }, 'a fault on a device or on the migration stream', ['name', 'kind', 'at', 'for']);
  return list(fault, 'the fault schedule', FAULTS_MAX, 'faults');
}

export function checkFaults(faults: unknown, durationText: string, durationNs: number, devices: DevicesSpec, f: Fields): FaultSpec[] {
  const names = deviceNames(devices);
  const list = (faults ?? []) as Raw[];
  f.distinct(['faults'], list.map((x) => x.name), 'fault name', 'name');
  return list.map((x, i) => {
    const path = ['faults', i];
    const at = f.duration([...path, 'at'], x.at, 0, INSTANT_LIMIT);
    if (at >= durationNs) f.fail([...path, 'at'], `the fault starts at or after the end of the run (${durationText})`);
    const kind = x.kind as FaultSpec['kind'];
    if (kind === 'link-break') {
      if (x.device !== undefined) f.fail([...path, 'device'], 'a link-break cuts the migration stream: it takes no device', true);
      if (x.latency !== undefined || x.ops !== undefined) f.fail(path, 'a link-break has only name, kind, at and for');
      return { name: x.name as string, device: LINK_BREAK_DEVICE, kind, at_ns: at, for_ns: f.duration([...path, 'for'], x.for, 0, FOR_LIMIT, 'fault length'), latency: null, ops: [] };
    }
    if (x.device === undefined) f.fail(path, `a ${kind} fault needs "device"`);
    if (!names.includes(x.device as string)) {
      f.fail([...path, 'device'], `no device named ${JSON.stringify(x.device)}${names.length ? `; devices: ${names.join(', ')}` : ''}`);
    }
    const isBlk = devices.blk.some((b) => b.name === x.device);
    if ((kind === 'handler-cost') === isBlk) {
      f.fail([...path, 'kind'], kind === 'handler-cost' ? 'handler-cost applies to virtio-net devices' : `${kind} applies to virtio-blk devices`);
    }
    if ((kind === 'slow-flush' || kind === 'handler-cost') && x.latency === undefined) f.fail(path, `a ${kind} fault needs "latency"`);
    if (x.ops !== undefined) f.distinct([...path, 'ops'], x.ops as unknown[], 'operation');
    return {
      name: x.name as string,
      device: x.device as string,
      kind,
      at_ns: at,
      for_ns: f.duration([...path, 'for'], x.for, 0, FOR_LIMIT, 'fault length'),
      latency: x.latency === undefined ? null : f.dist([...path, 'latency'], x.latency, fixed(0), COST_LIMIT),
      ops: (x.ops as FaultSpec['ops'] | undefined) ?? ['read', 'write', 'flush'],
    };
  });
}

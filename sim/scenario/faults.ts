// The `faults` section: the fault schedule. Each fault acts on one named
// device for a window of time: a stalled block backend, slow flushes, failing
// I/O, or a slow virtio-net handler. Fault names are unique (attribution
// names faults by them).
import type { Dist } from '../util/dist.ts';
import { fixed, type Fields, type Raw } from './fields.ts';
import { COST_LIMIT, INSTANT_LIMIT, limit } from './limits.ts';
import { dist, duration, list, name, obj, oneOfWords, type Schema } from './schema-kit.ts';
import { deviceNames, type DevicesSpec } from './devices.ts';

export interface FaultSpec {
  readonly name: string;
  readonly device: string;
  readonly kind: 'stall' | 'slow-flush' | 'io-error' | 'handler-cost';
  readonly at_ns: number;
  readonly for_ns: number;
  /** slow-flush: the latency of each flush in the window. */
  readonly latency: Dist | null;
  /** io-error: which operations fail. */
  readonly ops: readonly ('read' | 'write' | 'flush')[];
}

/** Faults a scenario may schedule at most (each request looks up the active ones). */
export const FAULTS_MAX = 1000;
/** A fault's window: from a nanosecond to the longest run. */
const FOR_LIMIT = limit.duration('1ns', '24h');

export function faultsSchema(): Schema {
  const fault = obj({
    name: name('fault name, used in attribution; unique'),
    device: name('device id'),
    kind: oneOfWords(['stall', 'slow-flush', 'io-error', 'handler-cost'], 'what goes wrong'),
    at: duration('when it starts', INSTANT_LIMIT),
    for: duration('how long it lasts', FOR_LIMIT),
    latency: dist('slow-flush: flush latency; handler-cost: handler cost', COST_LIMIT),
    ops: list(oneOfWords(['read', 'write', 'flush'], 'operation'), 'io-error: failing operations, each once', 3, 'operations'),
  }, 'a fault on a device', ['name', 'device', 'kind', 'at', 'for']);
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
    if (!names.includes(x.device as string)) {
      f.fail([...path, 'device'], `no device named ${JSON.stringify(x.device)}${names.length ? `; devices: ${names.join(', ')}` : ''}`);
    }
    const kind = x.kind as FaultSpec['kind'];
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

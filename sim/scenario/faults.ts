// The `faults` section: the fault schedule. Each fault acts on one named
// device for a window of time: a stalled block backend, slow flushes, failing
// I/O, or a slow virtio-net handler.
import type { Dist } from '../util/dist.ts';
import { fixed, type Fields, type Raw } from './fields.ts';
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

export function faultsSchema(): Schema {
  const fault = obj({
    name: name('fault name, used in attribution'),
    device: name('device id'),
    kind: oneOfWords(['stall', 'slow-flush', 'io-error', 'handler-cost'], 'what goes wrong'),
    at: duration('when it starts'),
    for: duration('how long it lasts'),
    latency: dist('slow-flush: flush latency; handler-cost: handler cost'),
    ops: list(oneOfWords(['read', 'write', 'flush'], 'operation'), 'io-error: failing operations'),
  }, 'a fault on a device', ['name', 'device', 'kind', 'at', 'for']);
  return list(fault, 'the fault schedule');
}

export function checkFaults(faults: unknown, durationText: string, durationNs: number, devices: DevicesSpec, f: Fields): FaultSpec[] {
  const names = deviceNames(devices);
  return ((faults ?? []) as Raw[]).map((x, i) => {
    const path = ['faults', i];
    const at = f.duration([...path, 'at'], x.at, 0);
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
    return {
      name: x.name as string,
      device: x.device as string,
      kind,
      at_ns: at,
      for_ns: f.positive([...path, 'for'], f.duration([...path, 'for'], x.for, 0), 'fault length'),
      latency: x.latency === undefined ? null : f.dist([...path, 'latency'], x.latency, fixed(0)),
      ops: (x.ops as FaultSpec['ops'] | undefined) ?? ['read', 'write', 'flush'],
    };
  });
}

// A device's handle reaches only the device's own fds, streams and faults.
import { describe, expect, it } from 'vitest';
import { DeviceHandle } from '../../../sim/devices/handle.ts';
import { FaultSchedule } from '../../../sim/faults.ts';
import { Guest } from '../../../sim/guest/guest.ts';
import { InvariantError } from '../../../sim/invariant.ts';
import { rig, scenario } from '../helpers.ts';

const s = scenario(`
name: handle
duration: 10s
vm: { memory: 16MiB }
devices: { net: [{ name: net0 }, { name: net1 }] }
faults:
  - { name: slow0, device: net0, kind: handler-cost, at: 1s, for: 1s, latency: 5ms }
  - { name: slow1, device: net1, kind: handler-cost, at: 0s, for: 5s, latency: 5ms }
`);

function handles() {
  const { machine, scheduler } = rig();
  const guest = new Guest(machine, s.vm, s.guest);
  const faults = new FaultSchedule(s.faults);
  return { scheduler, a: new DeviceHandle('net0', machine, guest, faults), b: new DeviceHandle('net1', machine, guest, faults) };
}

describe('DeviceHandle', () => {
  it('names fds and streams after the device', () => {
    const { a } = handles();
    expect(a.notifier('ioeventfd').name).toBe('net0.ioeventfd');
    const { a: again } = handles();
    expect(a.random('device').next()).toBe(again.random('device').next());
  });

  it('refuses a handler on another device\'s fd', () => {
    const { a, b } = handles();
    const theirs = b.notifier('ioeventfd');
    expect(() => a.setFdHandler(theirs, 'virtio-net.net0.host-notifier-read', null)).toThrow(InvariantError);
    expect(() => b.setFdHandler(theirs, 'virtio-net.net1.host-notifier-read', null)).not.toThrow();
  });

  it('sees only its own faults', () => {
    const { a, b } = handles();
    expect(a.ownFaults().map((f) => f.name)).toEqual(['slow0']);
    expect(a.activeFault('handler-cost')).toBeNull();
    expect(b.activeFault('handler-cost')?.name).toBe('slow1');
  });
});

// virtio-blk: requests from the guest to the backend and back, write merging,
// the dma-restart bottom half after a werror=stop pause, lock discipline.
import { describe, expect, it } from 'vitest';
import { simulate } from '../../../../sim/run.ts';
import { InvariantError } from '../../../../sim/invariant.ts';
import { scenario, rig, S } from '../../helpers.ts';
import { Guest } from '../../../../sim/guest/guest.ts';
import { Devices } from '../../../../sim/devices/devices.ts';

const blk = (io: string, extra = '', disk = '') => scenario(`
name: blk
seed: 21
duration: 10s
vm: { memory: 64MiB, vcpus: 1 }
devices:
  blk:
    - name: disk0
      write: 200us
      flush: 1ms
      ${disk}
      io: ${io}
${extra}`);

describe('virtio-blk', () => {
  it('completes every request and acknowledges writes only once they completed', () => {
    const { result, world } = simulate(blk('{ rate: 200/s, write_fraction: 0.7, flush_every: 8 }'));
    const d = world.devices.blk[0]!;
    expect(d.driver.submitted).toBeGreaterThan(1500);
    expect(d.driver.completed).toBe(d.driver.submitted - d.backend.inFlight);
    expect(d.driver.errors).toBe(0);
    expect(result.block[0]!.flushes).toBeGreaterThan(100);
    const acked = [...d.driver.acked].filter((v) => v > 0).length;
    expect(acked).toBeGreaterThan(0);
    // Nothing the guest saw acknowledged is newer than what reached the (volatile) cache.
    for (let b = 0; b < d.driver.acked.length; b++) expect(d.backend.cache[b]!).toBeGreaterThanOrEqual(d.driver.acked[b]!);
  });

  it('merges adjacent writes popped together into one backend request', () => {
    const s = blk('{ rate: 5000/s, pattern: sequential, write_fraction: 1, flush_every: 0 }', '', 'queue_depth: 1');
    const { result } = simulate({ ...s, duration_ns: S, limits: { ...s.limits, max_time_ns: S } });
    expect(result.block[0]!.merged).toBeGreaterThan(0);
  });

  it('stops the VM on a write error with werror=stop and resubmits from the dma-restart BH on resume', () => {
    const { result, world } = simulate(blk('{ rate: 200/s, write_fraction: 1, flush_every: 0 }', `
faults:
  - { name: eio, device: disk0, kind: io-error, at: 2s, for: 3s, ops: [write] }
`, 'on_error: stop'));
    const d = world.devices.blk[0]!;
    expect(d.dev.restarted).toBeGreaterThan(0);
    expect(d.driver.errors).toBe(0);
    expect(result.handlers.map((h) => h.name)).toContain('virtio-blk.disk0.dma-restart-bh');
    expect(world.machine.stops.some((s) => s.state === 'io-error')).toBe(true);
    expect(world.machine.runstate.running).toBe(true);
    expect(result.guest.vcpu_stall_max_ns).toBeGreaterThan(2 * S);
  });

  it('reports the error to the guest with werror=report', () => {
    const { world } = simulate(blk('{ rate: 200/s, write_fraction: 1, flush_every: 0 }', `
faults:
  - { name: eio, device: disk0, kind: io-error, at: 2s, for: 1s, ops: [write] }
`));
    const d = world.devices.blk[0]!;
    expect(d.driver.errors).toBeGreaterThan(100);
    expect(d.dev.restarted).toBe(0);
  });

  it('asserts the BQL in its host-notifier handler (lock discipline)', () => {
    const s = blk('{ rate: 0/s }');
    const { scheduler, platform: p, machine } = rig();
    const guest = new Guest(machine, s.vm, s.guest);
    const devices = new Devices(machine, guest, s.devices, s.faults);
    p.spawn('rogue', function* () {
      yield* devices.blk[0]!.dev.handleOutput();
    });
    expect(() => scheduler.run()).toThrowError(InvariantError);
  });
});

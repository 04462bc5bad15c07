// The BQL: wait and hold time per holder thread and call site, and the lock
// discipline assertion.
import { describe, expect, it } from 'vitest';
import { InvariantError } from '../../../sim/invariant.ts';
import { rig, MS } from '../helpers.ts';

describe('Bql', () => {
  it('accounts wait and hold time per thread and call site', () => {
    const { scheduler, platform: p, machine: m } = rig();
    const bql = m.bql;
    p.spawn('iothread', function* () {
      yield* bql.lock('main_loop_wait');
      yield* p.cpu(358 * MS);
      bql.unlock();
    });
    p.spawn('vcpu0', function* () {
      yield* p.sleep(MS);
      yield* bql.lock('kvm_cpu_exec');
      yield* p.cpu(20_000);
      bql.unlock();
    });
    scheduler.run();
    const t = bql.table();
    const io = t.find((r) => r.thread === 'iothread')!;
    const v = t.find((r) => r.thread === 'vcpu0')!;
    expect(io).toMatchObject({ site: 'main_loop_wait', holds: 1, holdMaxNs: 358 * MS, waitMaxNs: 0 });
    expect(v).toMatchObject({ site: 'kvm_cpu_exec', waits: 1, waitMaxNs: 357 * MS, holdMaxNs: 20_000 });
    expect(bql.waitMaxNs()).toBe(357 * MS);
    expect(bql.holdMaxNs()).toBe(358 * MS);
  });

  it('asserts that a handler documented to run under the BQL holds it', () => {
    const { scheduler, platform: p, machine: m } = rig();
    p.spawn('rogue', function* () {
      yield* p.sleep(1);
      m.bql.assertHeld('virtio_net_handle_tx_bh');
    });
    expect(() => scheduler.run()).toThrowError(InvariantError);
  });

  it('refuses to take the BQL twice on one thread, and to release it from a thread that does not hold it', () => {
    const twice = rig();
    twice.platform.spawn('iothread', function* () {
      yield* twice.machine.bql.lock('main_loop_wait');
      yield* twice.machine.bql.lock('bdrv_drain_all');
    });
    expect(() => twice.scheduler.run()).toThrowError(/takes the BQL it already holds/);
    const other = rig();
    other.platform.spawn('iothread', function* () {
      yield* other.machine.bql.lock('main_loop_wait');
      yield* other.platform.sleep(MS);
    });
    other.platform.spawn('vcpu0', function* () {
      yield* other.platform.sleep(1);
      other.machine.bql.unlock();
    });
    expect(() => other.scheduler.run()).toThrowError(/vcpu0 releases the BQL held by iothread/);
  });
});

// virtio-net: the tx path (kick -> host-notifier read under the BQL -> tx
// bottom half -> tap -> peer), notification suppression while a flush is
// pending, rx while the VM is stopped, and the talk's 358 ms handler.
import { describe, expect, it } from 'vitest';
import { simulate } from '../../../../sim/run.ts';
import { scenario, MS, S } from '../../helpers.ts';
import { Scheduler } from '../../../../sim/scheduler/index.ts';
import { SimPlatform } from '../../../../sim/sim-platform.ts';
import { buildWorld } from '../../../../sim/world.ts';

const net = (cost: string, extra = '') => scenario(`
name: net
seed: 5
duration: 10s
vm: { memory: 64MiB, vcpus: 1 }
guest:
  workloads:
    - { vcpus: all, exits: { rate: 100/s, cost: 10us } }
devices:
  net:
    - name: net0
      host_notifier_cost: ${cost}
      peer: { ping_interval: 100ms, wire_latency: 50us }
${extra}`);

describe('virtio-net', () => {
  it('answers every ping through kick, host-notifier read, tx bottom half and tap', () => {
    const { result, world } = simulate(net('20us'));
    const n = world.devices.net[0]!;
    // A ping every 100 ms for 10 s; the one sent at the last instant is still in flight.
    expect(result.guest.ping.sent).toBe(100);
    expect(result.guest.ping.answered).toBe(99);
    expect(result.guest.ping.lost).toBe(0);
    // wire 2 x 50 us + tap read + guest reply + host notifier + tx bh: well under a millisecond.
    expect(result.guest.ping.rtt_max_ns).toBeLessThan(MS);
    const names = result.handlers.map((h) => h.name);
    expect(names).toEqual(expect.arrayContaining([
      'virtio-net.net0.host-notifier-read', 'virtio-net.net0.tx-bh', 'virtio-net.net0.tap-read',
    ]));
    expect(result.handlers.every((h) => h.name.startsWith('virtio-net') || h.name.startsWith('vcpu'))).toBe(true);
    expect(n.dev.sent).toBe(99);
    expect(n.driver.replies).toBe(99);
    expect(n.dev.txVq.notificationEnabled).toBe(true);
  });

  it('names a 358 ms host-notifier read in the threshold report, and the guest feels it', () => {
    const { result } = simulate(net('358ms'));
    expect(result.slow.length).toBeGreaterThan(0);
    expect(result.slow.every((s) => s.name === 'virtio-net.net0.host-notifier-read' && s.duration_ns === 358 * MS)).toBe(true);
    expect(result.slow[0]!.thread).toBe('main-loop');
    expect(result.guest.ping.rtt_p99_ns).toBeGreaterThan(300 * MS);
    expect(result.guest.vcpu_stall_max_ns).toBeGreaterThan(300 * MS);
    expect(result.attribution[0]!.text).toMatch(/vcpu0 waited \d+ ms for the BQL, held by main-loop in virtio-net.net0.host-notifier-read, running/);
  });

  it('suppresses kicks while a tx flush is pending (tx_waiting)', () => {
    const { world } = simulate(net('20us'));
    const dev = world.devices.net[0]!.dev;
    // Every reply was kicked and served exactly once.
    const handled = world.machine.inst.handlerList().find((h) => h.name === 'virtio-net.net0.host-notifier-read')!;
    expect(handled.hist.count).toBe(dev.sent);
  });

  it('queues packets while the VM is stopped and answers them after it resumes', () => {
    const s = net('20us');
    const paused = { ...s, vm: { ...s.vm, run_state: 'paused' as const } };
    const scheduler = new Scheduler({ seed: 1 });
    const world = buildWorld(paused, new SimPlatform(scheduler), false);
    const peer = world.devices.net[0]!.peer;
    scheduler.run(5 * S);
    expect(peer.sent).toBe(50);
    expect(peer.answered).toBe(0);
    expect(world.devices.net[0]!.tap.queued).toBe(50);
    world.machine.requestVmStart();
    scheduler.run(5 * S + 10 * MS);
    expect(world.devices.net[0]!.tap.queued).toBe(0);
    expect(peer.answered + peer.late).toBe(50);
    expect(peer.rtt.maxNs).toBeLessThan(5 * S);
  });
});

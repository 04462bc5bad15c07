// virtio-net's tx=timer mode beside tx=bh: a kick arms the tx timer on
// QEMU_CLOCK_VIRTUAL for x-txtimer and suppresses further kicks, so the
// replies of a flood ping leave in batches; each reply waits up to x-txtimer.
import { describe, expect, it } from 'vitest';
import { simulate } from '../../../../sim/run.ts';
import { scenario, MS } from '../../helpers.ts';
import { TX_TIMER_INTERVAL_NS } from '../../../../sim/scenario/devices.ts';

const US = 1_000;
const flood = (tx: string) => scenario(`
name: tx-${tx.replace(/[^a-z0-9]/g, '')}
seed: 8
duration: 2s
vm: { memory: 64MiB, vcpus: 1 }
devices:
  net:
    - name: net0
      ${tx}
      peer: { ping_interval: 100us, ping_timeout: 1s, wire_latency: 20us }
`);

describe('virtio-net tx=timer', () => {
  it('defaults to tx=bh with x-txtimer 150 us (TX_TIMER_INTERVAL) and tx_burst 256', () => {
    const s = flood('');
    expect(s.devices.net[0]).toMatchObject({ tx: 'bh', x_txtimer_ns: 150 * US, tx_burst: 256, vhost: false });
    expect(TX_TIMER_INTERVAL_NS).toBe(150_000);
  });

  it('flushes from the tx timer, in batches, where tx=bh flushes once per kick', () => {
    const bh = simulate(flood('')).result;
    const timer = simulate(flood('tx: timer')).result;
    const count = (r: typeof bh, name: string) => r.handlers.find((h) => h.name === name)?.count ?? 0;
    expect(count(timer, 'virtio-net.net0.tx-bh')).toBe(0);
    expect(timer.handlers.find((h) => h.name === 'virtio-net.net0.tx-timer')?.kind).toBe('timer');
    expect(count(bh, 'virtio-net.net0.tx-timer')).toBe(0);
    // Every reply is answered both ways...
    expect(timer.guest.ping.lost).toBe(0);
    expect(bh.guest.ping.lost).toBe(0);
    // ...but the timer sends several per flush: fewer kicks reach the host notifier.
    const kicksBh = count(bh, 'virtio-net.net0.host-notifier-read');
    const kicksTimer = count(timer, 'virtio-net.net0.host-notifier-read');
    expect(kicksTimer).toBeLessThan(kicksBh / 2);
    // And each reply waits for the timer: the round trip grows by up to x-txtimer.
    expect(timer.guest.ping.rtt_p50_ns - bh.guest.ping.rtt_p50_ns).toBeGreaterThan(50 * US);
    expect(timer.guest.ping.rtt_max_ns).toBeLessThan(bh.guest.ping.rtt_max_ns + 150 * US + 100 * US);
  });

  it('waits x-txtimer for a batch: with a 5 ms timer the replies leave 5 ms late', () => {
    const { result } = simulate(scenario(`
name: tx-5ms
seed: 8
duration: 2s
vm: { memory: 64MiB, vcpus: 1 }
devices:
  net:
    - { name: net0, tx: timer, x_txtimer: 5ms, peer: { ping_interval: 100ms, wire_latency: 20us } }
`));
    expect(result.guest.ping.rtt_p50_ns).toBeGreaterThanOrEqual(5 * MS);
    expect(result.guest.ping.rtt_p50_ns).toBeLessThan(6 * MS);
  });
});

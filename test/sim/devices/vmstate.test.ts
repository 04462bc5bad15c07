// Device migration state: save and load pair up, a drained device saves, and
// state from a device of another configuration does not load.
import { describe, expect, it } from 'vitest';
import { simulate } from '../../../sim/run.ts';
import { InvariantError } from '../../../sim/invariant.ts';
import { loadVirtIOBlock, saveVirtIOBlock } from '../../../sim/devices/virtio-blk/vmstate.ts';
import { loadVirtIONet, saveVirtIONet } from '../../../sim/devices/virtio-net/vmstate.ts';
import { scenario } from '../helpers.ts';

const run = (extra = '') => simulate(scenario(`
name: vmstate
duration: 4s
vm: { memory: 16MiB }
devices:
  net: [{ name: net0 }]
  blk: [{ name: disk0, on_error: stop, io: { rate: 200/s, write_fraction: 1, flush_every: 0 } }]
${extra}`));

describe('vmstate', () => {
  it('saves what the werror=stop path keeps in s->rq and loads it back', () => {
    const { world } = run(`faults: [{ name: eio, device: disk0, kind: io-error, at: 1s, for: 10s, ops: [write] }]`);
    const d = world.devices.blk[0]!;
    // The VM is stopped on the error: the backend drained, failed requests wait in rq.
    expect(d.dev.rq.length).toBeGreaterThan(0);
    const state = saveVirtIOBlock(d.dev);
    d.dev.rq = [];
    loadVirtIOBlock(d.dev, state);
    expect(saveVirtIOBlock(d.dev)).toEqual(state);
  });

  it('refuses to save a virtio-blk with requests in flight', () => {
    const { world } = run();
    const d = world.devices.blk[0]!;
    d.backend.inFlight = 1;
    expect(() => saveVirtIOBlock(d.dev)).toThrow(/in flight/);
  });

  it('refuses state from a device of another configuration', () => {
    const { world } = run();
    const net = world.devices.net[0]!.dev;
    const state = saveVirtIONet(net);
    expect(() => loadVirtIONet(net, { ...state, tx_burst: state.tx_burst + 1 })).toThrow(InvariantError);
    loadVirtIONet(net, { ...state, tx_waiting: true });
    expect(net.txWaiting).toBe(true);
    const blk = world.devices.blk[0]!.dev;
    expect(() => loadVirtIOBlock(blk, { name: 'disk9', queue_depth: 32, rq: [] })).toThrow(InvariantError);
  });
});

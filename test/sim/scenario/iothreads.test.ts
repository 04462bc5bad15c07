// The iothreads section and the device fields that refer to it: QEMU's
// defaults (poll-max-ns 32768 ns), and every mistake a one-line error naming
// file, line and field.
import { describe, expect, it } from 'vitest';
import { parseScenario, ScenarioError } from '../../../cli/scenario-file.ts';
import { IOTHREAD_POLL_MAX_NS_DEFAULT } from '../../../sim/scenario/iothreads.ts';

const doc = (iothreads: string, disk: string, version = '7.2', extra = '') => `name: t
duration: 10s
qemu: { version: ${version} }
${iothreads}
devices:
  blk:
    - name: disk0
${disk}
${extra}`;

function errorOf(text: string): string {
  try {
    parseScenario(text, 'f.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(ScenarioError);
    expect((e as Error).message).not.toContain('\n');
    return (e as Error).message;
  }
  throw new Error('expected a ScenarioError');
}

describe('iothreads', () => {
  it('fills QEMU\'s defaults and binds a disk to a declared IOThread', () => {
    const s = parseScenario(doc('iothreads: [ { id: iothread0 } ]', '      iothread: iothread0'), 'f.yaml');
    expect(s.iothreads).toEqual([{ id: 'iothread0', poll_max_ns: IOTHREAD_POLL_MAX_NS_DEFAULT, poll_grow: 0, poll_shrink: 0 }]);
    expect(IOTHREAD_POLL_MAX_NS_DEFAULT).toBe(32_768);
    expect(s.devices.blk[0]!.iothread).toBe('iothread0');
    const none = parseScenario(doc('', ''), 'f.yaml');
    expect(none.iothreads).toEqual([]);
    expect(none.devices.blk[0]!.iothread).toBeNull();
  });

  it('reads poll-max-ns as a duration and poll-grow/poll-shrink as factors', () => {
    const s = parseScenario(doc('iothreads: [ { id: io1, poll_max_ns: 64us, poll_grow: 4, poll_shrink: 2 } ]', ''), 'f.yaml');
    expect(s.iothreads[0]).toEqual({ id: 'io1', poll_max_ns: 64_000, poll_grow: 4, poll_shrink: 2 });
  });

  it('refuses a disk naming an IOThread nobody declared', () => {
    expect(errorOf(doc('iothreads: [ { id: iothread0 } ]', '      iothread: iothread1')))
      .toMatch(/^f\.yaml:8:\d+: devices\.blk\[0\]\.iothread: no IOThread named "iothread1"; IOThreads: iothread0$/);
    expect(errorOf(doc('', '      iothread: iothread0')))
      .toMatch(/devices\.blk\[0\]\.iothread: no IOThread named "iothread0"; declare it under iothreads$/);
  });

  it('refuses IOThreads in QEMU 1.1, twice the same id, and an id that names another thread', () => {
    expect(errorOf(doc('iothreads: [ { id: iothread0 } ]', '', '1.1'))).toMatch(/iothreads: QEMU 1\.1 has no IOThreads/);
    expect(errorOf(doc('iothreads: [ { id: a }, { id: a } ]', ''))).toMatch(/iothreads\[1\]\.id: IOThread id "a" is given twice/);
    expect(errorOf(doc('iothreads: [ { id: migration } ]', ''))).toMatch(/iothreads\[0\]\.id: "migration" is the name of another thread/);
    expect(errorOf(doc('iothreads: [ { id: io, poll_max_ns: 2s } ]', ''))).toMatch(/poll_max_ns: 2s is above the limit of 1s/);
  });

  it('reads virtio-net\'s vhost, tx and x_txtimer, and refuses a tx mode QEMU does not have', () => {
    const text = `name: t
duration: 10s
devices:
  net:
    - { name: net0, vhost: true, tx: timer, x_txtimer: 300us }
`;
    expect(parseScenario(text, 'f.yaml').devices.net[0]).toMatchObject({ vhost: true, tx: 'timer', x_txtimer_ns: 300_000 });
    expect(errorOf(text.replace('tx: timer', 'tx: thread'))).toMatch(/^f\.yaml:5:\d+: devices\.net\[0\]\.tx: /);
    expect(errorOf(text.replace('vhost: true', 'vhost: yes please'))).toMatch(/devices\.net\[0\]\.vhost: /);
  });

  it('offers a budget on the IOThreads\' blocked time only with an IOThread', () => {
    expect(errorOf(doc('', '', '7.2', 'expect: { max_iothread_block: 1ms }'))).toMatch(/max_iothread_block needs an IOThread/);
    const s = parseScenario(doc('iothreads: [ { id: iothread0 } ]', '', '7.2', 'expect: { max_iothread_block: 1ms }'), 'f.yaml');
    expect(s.expect[0]).toMatchObject({ key: 'iothread_block', bound: 'max', limit: 1_000_000 });
  });
});

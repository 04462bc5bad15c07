// The simulator's virtqueue: FIFO order, the size bound, notification
// suppression, and virtqueue_push paired with virtqueue_pop.
import { describe, expect, it } from 'vitest';
import { SimVirtQueue } from '../../../sim/devices/virtqueue.ts';
import { InvariantError } from '../../../sim/invariant.ts';

describe('SimVirtQueue', () => {
  it('pops in the order the driver added, up to its size', () => {
    const vq = new SimVirtQueue<number>('vq', 2);
    expect(vq.add(1)).toBe(true);
    vq.setNotification(false);
    expect(vq.add(2)).toBe(false);
    expect(vq.full).toBe(true);
    expect(vq.add(3)).toBe(false);
    expect([vq.pop(), vq.pop(), vq.pop()]).toEqual([1, 2, undefined]);
    expect(vq.added).toBe(2);
  });

  it('pushes back only what was popped', () => {
    const vq = new SimVirtQueue<number>('vq', 4);
    vq.add(1);
    vq.push(vq.pop()!);
    expect(vq.used).toBe(1);
    expect(() => vq.push(1)).toThrowError(InvariantError);
    expect(() => new SimVirtQueue<number>('bad', 0)).toThrowError(/not a positive integer/);
  });
});

// The `iothreads` section: QEMU's `-object iothread,id=...,poll-max-ns=...`.
// Each IOThread is a thread with its own AioContext and event loop
// (iothread_run: aio_poll(ctx, true) forever) and adaptive polling: before
// blocking, aio_poll busy-polls its handlers for up to poll_ns, which grows
// (x poll-grow, from 4 us) while the waits it saw were short and shrinks
// (/ poll-shrink, or to 0) when a wait exceeded poll-max-ns. Devices name
// the IOThread they run in (virtio-blk's `iothread`).
// Leaves out: iothread-vq-mapping (8.2), aio-max-batch, the IOThread's
// GMainContext (only used by the NBD server and vhost-user exports).
import type { Fields, Raw } from './fields.ts';
import { limit } from './limits.ts';
import type { QemuProfile } from './qemu.ts';
import { duration, int, list, name, obj, type Schema } from './schema-kit.ts';

export interface IothreadSpec {
  readonly id: string;
  /** QEMU: poll-max-ns; 0 turns polling off. */
  readonly poll_max_ns: number;
  /** QEMU: poll-grow; 0 means the default factor of 2. */
  readonly poll_grow: number;
  /** QEMU: poll-shrink; 0 means poll_ns drops to 0 when a wait was too long. */
  readonly poll_shrink: number;
}

/** QEMU: IOTHREAD_POLL_MAX_NS_DEFAULT (iothread.c), 32768 ns on POSIX hosts (since 2.9). */
export const IOTHREAD_POLL_MAX_NS_DEFAULT = 32_768;
/** IOThreads a scenario may declare at most. */
export const IOTHREADS_MAX = 64;
/** Thread names the model gives its other threads. */
const RESERVED_THREAD = /^(main-loop|migration|vcpu\d+|vhost-.*)$/;
/** poll-max-ns: QEMU takes any int64; past a second a poll is no longer a poll. */
const POLL_MAX_LIMIT = limit.duration('0s', '1s');

export function iothreadsSchema(): Schema {
  const iothread = obj({
    id: name('IOThread id (-object iothread,id=...), named by devices and in reports; unique'),
    poll_max_ns: duration(`poll-max-ns: longest busy-poll before blocking, 0s: no polling (default 32768ns, QEMU's IOTHREAD_POLL_MAX_NS_DEFAULT)`, POLL_MAX_LIMIT),
    poll_grow: int(0, 1024, 'poll-grow: factor poll_ns grows by (0: QEMU\'s default of 2)'),
    poll_shrink: int(0, 1024, 'poll-shrink: divisor poll_ns shrinks by (0: back to 0, as QEMU does)'),
  }, 'an IOThread: a thread with its own AioContext and event loop', ['id']);
  return list(iothread, 'IOThreads (-object iothread)', IOTHREADS_MAX, 'IOThreads');
}

export function checkIothreads(iothreads: unknown, profile: QemuProfile, f: Fields): IothreadSpec[] {
  const list = (iothreads ?? []) as Raw[];
  if (list.length > 0 && profile.block_locking === 'bql') {
    f.fail(['iothreads'], `QEMU ${profile.version} has no IOThreads (-object iothread arrived in 2.0); use qemu.version 2.12 or later`, true);
  }
  f.distinct(['iothreads'], list.map((t) => t.id), 'IOThread id', 'id');
  return list.map((t, i) => {
    const path = ['iothreads', i];
    // The id names the IOThread's thread in reports: it must not be another thread's name.
    if (RESERVED_THREAD.test(t.id as string)) f.fail([...path, 'id'], `${JSON.stringify(t.id)} is the name of another thread (main-loop, migration, vcpuN, vhost-*)`);
    return {
      id: t.id as string,
      poll_max_ns: f.duration([...path, 'poll_max_ns'], t.poll_max_ns, IOTHREAD_POLL_MAX_NS_DEFAULT, POLL_MAX_LIMIT),
      poll_grow: (t.poll_grow as number | undefined) ?? 0,
      poll_shrink: (t.poll_shrink as number | undefined) ?? 0,
    };
  });
}

/** The declared IOThread ids, for sections that refer to them. */
export function iothreadIds(spec: readonly IothreadSpec[]): string[] {
  return spec.map((t) => t.id);
}

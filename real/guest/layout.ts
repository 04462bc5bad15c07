/**
 * Host-side mirror of payload.h: the guest-physical memory map, ports, MMIO
 * addresses, workload/pattern/state numbers, and mailbox field offsets. Keep the
 * two files in step; payload.h pins the offsets with static asserts and the
 * real-mode tests check them against a running payload.
 * Leaves out: the layout logic itself (loader.ts writes memory, mailbox.ts reads it).
 */

export const PAGE_SIZE = 4096;

export const MAILBOX_ADDR = 0x1000;
/** vCPU n's mailbox is at MAILBOX_ADDR + n * MAILBOX_STRIDE. */
export const MAILBOX_STRIDE = 0x200;
export const VCPUS_MAX = 8;
export const GDT_ADDR = 0x2000;
export const PAGE_TABLE_ADDR = 0x3000;
export const VQ_DESC_ADDR = 0x10000;
export const VQ_AVAIL_ADDR = 0x11000;
export const VQ_USED_ADDR = 0x12000;
export const VQ_BUF_ADDR = 0x20000;
export const VQ_BUF_STRIDE = 0x800;
export const VQ_SIZE_MAX = 256;
export const PAYLOAD_ADDR = 0x100000;
export const STACK_TOP = 0x200000;
/** vCPU n's stack grows down from STACK_TOP - n * STACK_STRIDE. */
export const STACK_STRIDE = 0x10000;
export const WORK_ADDR = 0x200000;
export const GUEST_RAM_MIN = 0x400000;

export const PORT_DEBUG = 0x00e9;
export const PORT_HELLO = 0x0510;
export const PORT_HEARTBEAT = 0x0514;
export const PORT_DONE = 0x0518;
export const PORT_PONG = 0x051c;
export const PORT_VQ_NOTIFY = 0x0520;
export const MMIO_HELLO = 0xd0000000;
export const MMIO_VQ_NOTIFY = 0xd0001000;

export const MAILBOX_MAGIC = 0x424d534c;
export const MAILBOX_VERSION = 1;

export const Workload = { hello: 1, dirty: 2, increment: 3, virtio: 4, tripleFault: 5 } as const;
export type WorkloadName = keyof typeof Workload;
export const Pattern = { uniform: 0, hotSet: 1, sequential: 2 } as const;
export type PatternName = keyof typeof Pattern;
export const NotifyKind = { pio: 1, mmio: 2 } as const;
export const GuestState = { idle: 0, running: 1, done: 2, badMailbox: 3, badParams: 4 } as const;

/** Mailbox fields: [byte offset in the mailbox page, width in bytes]. */
export const MAILBOX_FIELDS = {
  // host -> guest
  magic: [0x000, 4],
  version: [0x004, 4],
  workload: [0x008, 4],
  pattern: [0x00c, 4],
  range_start: [0x010, 8],
  range_pages: [0x018, 8],
  hot_pages: [0x020, 8],
  hot_percent: [0x028, 4],
  pages_per_tick: [0x02c, 4],
  tick_tsc: [0x030, 8],
  seed: [0x038, 8],
  max_ticks: [0x040, 8],
  heartbeat_every: [0x048, 4],
  stop: [0x04c, 4],
  ping_req: [0x050, 8],
  vq_size: [0x060, 4],
  vq_notify_kind: [0x064, 4],
  vq_notify_addr: [0x068, 8],
  vq_queue_index: [0x070, 4],
  vq_requests: [0x074, 4],
  vq_out_len: [0x078, 4],
  vq_in_len: [0x07c, 4],
  vq_batch: [0x080, 4],
  // guest -> host
  state: [0x100, 4],
  boots: [0x104, 4],
  heartbeat: [0x108, 8],
  pages_written: [0x110, 8],
  last_page: [0x118, 8],
  ping_ack: [0x120, 8],
  hello_pio: [0x128, 4],
  hello_mmio: [0x12c, 4],
  vq_desc_addr: [0x130, 8],
  vq_avail_addr: [0x138, 8],
  vq_used_addr: [0x140, 8],
  vq_posted: [0x148, 4],
  vq_completed: [0x14c, 4],
  vq_kicks: [0x150, 4],
  vq_kicks_suppressed: [0x154, 4],
  vq_used_bytes: [0x158, 8],
} as const satisfies Record<string, readonly [number, 4 | 8]>;
export type MailboxField = keyof typeof MAILBOX_FIELDS;

/** Split-ring flags (virtio 1.0). */
export const VRING_DESC_F_NEXT = 1;
export const VRING_DESC_F_WRITE = 2;
export const VRING_USED_F_NO_NOTIFY = 1;
/** Set in a request's length word by the payload's echo replies (bytes 8-15: the ping value). */
export const VQ_REPLY = 0x80000000;

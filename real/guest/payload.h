/*
 * Guest payload ABI shared by the payload (C) and the host (real/guest/layout.ts
 * mirrors it): the guest-physical memory map, the mailbox page the host fills with
 * parameters and the guest fills with progress, the I/O ports and MMIO addresses
 * the payload uses, and the split-virtqueue placement. Offsets are pinned with
 * static asserts so a layout change breaks the build, not a test run. Each vCPU
 * (index in RDI at entry) has its own mailbox and stack; only one may use the queue.
 * Leaves out: the virtio transport (feature negotiation, device status): queue
 * placement and notify address come from the mailbox instead.
 */
#ifndef LATSIM_PAYLOAD_H
#define LATSIM_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

/* ---- guest-physical memory map ------------------------------------------ */
#define MAILBOX_ADDR     0x1000ull   /* one page: struct mailbox of vCPU 0, then of vCPUs 1..7 */
#define MAILBOX_STRIDE   0x200ull    /* vCPU n's mailbox is at MAILBOX_ADDR + n * MAILBOX_STRIDE */
#define VCPUS_MAX        8u          /* vCPU index (RDI at entry) must be below this */
#define GDT_ADDR         0x2000ull   /* flat 64-bit GDT written by the loader */
#define PAGE_TABLE_ADDR  0x3000ull   /* PML4, PDPT, 4 PDs (0x3000-0x8fff): identity map of 4 GiB */
#define VQ_DESC_ADDR     0x10000ull  /* descriptor table, 16 bytes x queue size */
#define VQ_AVAIL_ADDR    0x11000ull  /* available ring */
#define VQ_USED_ADDR     0x12000ull  /* used ring */
#define VQ_BUF_ADDR      0x20000ull  /* descriptor i owns VQ_BUF_ADDR + i * VQ_BUF_STRIDE */
#define VQ_BUF_STRIDE    0x800ull
#define VQ_SIZE_MAX      256u
#define PAYLOAD_ADDR     0x100000ull /* code, data and bss (up to 512 KiB) */
#define STACK_TOP        0x200000ull /* vCPU n's stack grows down from STACK_TOP - n * STACK_STRIDE */
#define STACK_STRIDE     0x10000ull  /* 64 KiB of stack per vCPU */
#define WORK_ADDR        0x200000ull /* first page free for workloads */
#define GUEST_RAM_MIN    0x400000ull /* 4 MiB */

/* ---- ports and MMIO ------------------------------------------------------ */
#define PORT_DEBUG       0x00e9u  /* outb: one character of a diagnostic line */
#define PORT_HELLO       0x0510u  /* inl: the host answers a 32-bit value */
#define PORT_HEARTBEAT   0x0514u  /* outl: low 32 bits of the heartbeat counter */
#define PORT_DONE        0x0518u  /* outl: final state, then the payload halts */
#define PORT_PONG        0x051cu  /* outl: low 32 bits of ping_ack */
#define PORT_VQ_NOTIFY   0x0520u  /* default PIO notify port (outw queue index) */
#define MMIO_HELLO       0xd0000000ull  /* 32-bit read, then a 32-bit write */
#define MMIO_VQ_NOTIFY   0xd0001000ull  /* default MMIO notify (16-bit write of queue index) */

/* ---- mailbox --------------------------------------------------------------- */
#define MAILBOX_MAGIC    0x424d534cu /* "LSMB" little-endian */
#define MAILBOX_VERSION  1u

enum workload {
  WL_HELLO = 1,         /* PIO IN + MMIO read/write, then done */
  WL_DIRTY = 2,         /* dirty pages at a rate with a pattern (plus the virtqueue, if vq_size != 0) */
  WL_INCREMENT = 3,     /* migration-test style: +1 on the first byte of every page, pass after pass */
  WL_VIRTIO = 4,        /* post requests on the split virtqueue and kick */
  WL_TRIPLE_FAULT = 5,  /* ud2 with no IDT: #UD -> #GP -> #DF -> shutdown */
};

enum pattern {
  PAT_UNIFORM = 0,     /* uniform pseudo-random page in the range */
  PAT_HOT_SET = 1,     /* hot_percent of writes in the first hot_pages pages */
  PAT_SEQUENTIAL = 2,  /* page after page, wrapping */
};

enum notify_kind { NOTIFY_PIO = 1, NOTIFY_MMIO = 2 };

enum state {
  ST_IDLE = 0,
  ST_RUNNING = 1,
  ST_DONE = 2,
  ST_BAD_MAILBOX = 3,  /* wrong magic or version */
  ST_BAD_PARAMS = 4,   /* parameters out of range */
};

struct mailbox {
  /* host -> guest */
  uint32_t magic;            /* 0x000 */
  uint32_t version;          /* 0x004 */
  uint32_t workload;         /* 0x008 enum workload */
  uint32_t pattern;          /* 0x00c enum pattern */
  uint64_t range_start;      /* 0x010 guest-physical, page-aligned */
  uint64_t range_pages;      /* 0x018 */
  uint64_t hot_pages;        /* 0x020 */
  uint32_t hot_percent;      /* 0x028 0-100 */
  uint32_t pages_per_tick;   /* 0x02c page writes per tick (WL_DIRTY) */
  uint64_t tick_tsc;         /* 0x030 TSC cycles per tick, 0 = no pacing */
  uint64_t seed;             /* 0x038 PRNG seed (0 is replaced by a constant) */
  uint64_t max_ticks;        /* 0x040 ticks (WL_DIRTY) or passes (WL_INCREMENT); 0 = until stop */
  uint32_t heartbeat_every;  /* 0x048 ticks between PORT_HEARTBEAT writes, 0 = never */
  uint32_t stop;             /* 0x04c host sets non-zero: finish the tick and report done */
  uint64_t ping_req;         /* 0x050 host increments; guest echoes into ping_ack */
  uint64_t reserved0;        /* 0x058 */
  uint32_t vq_size;          /* 0x060 power of two, <= VQ_SIZE_MAX */
  uint32_t vq_notify_kind;   /* 0x064 enum notify_kind */
  uint64_t vq_notify_addr;   /* 0x068 port number or guest-physical address */
  uint32_t vq_queue_index;   /* 0x070 value written on a kick */
  uint32_t vq_requests;      /* 0x074 requests to complete (WL_DIRTY: 0 = no limit) */
  uint32_t vq_out_len;       /* 0x078 device-readable bytes per request (>= 8) */
  uint32_t vq_in_len;        /* 0x07c device-writable bytes per request (0 = none) */
  uint32_t vq_batch;         /* 0x080 requests per kick (0 = 1); WL_DIRTY: per tick */
  uint8_t  pad0[0x100 - 0x084];
  /* guest -> host */
  uint32_t state;            /* 0x100 enum state */
  uint32_t boots;            /* 0x104 incremented at entry */
  uint64_t heartbeat;        /* 0x108 ticks / passes completed */
  uint64_t pages_written;    /* 0x110 page writes (or increments) done */
  uint64_t last_page;        /* 0x118 guest-physical address of the last page written */
  uint64_t ping_ack;         /* 0x120 last ping_req seen */
  uint32_t hello_pio;        /* 0x128 value read from PORT_HELLO */
  uint32_t hello_mmio;       /* 0x12c value read from MMIO_HELLO */
  uint64_t vq_desc_addr;     /* 0x130 */
  uint64_t vq_avail_addr;    /* 0x138 */
  uint64_t vq_used_addr;     /* 0x140 */
  uint32_t vq_posted;        /* 0x148 requests made available */
  uint32_t vq_completed;     /* 0x14c requests returned in the used ring */
  uint32_t vq_kicks;         /* 0x150 notifications written */
  uint32_t vq_kicks_suppressed; /* 0x154 kicks skipped because of VRING_USED_F_NO_NOTIFY */
  uint64_t vq_used_bytes;    /* 0x158 sum of used-element lengths */
};

_Static_assert(offsetof(struct mailbox, tick_tsc) == 0x030, "mailbox layout");
_Static_assert(offsetof(struct mailbox, ping_req) == 0x050, "mailbox layout");
_Static_assert(offsetof(struct mailbox, vq_size) == 0x060, "mailbox layout");
_Static_assert(offsetof(struct mailbox, vq_batch) == 0x080, "mailbox layout");
_Static_assert(offsetof(struct mailbox, state) == 0x100, "mailbox layout");
_Static_assert(offsetof(struct mailbox, hello_mmio) == 0x12c, "mailbox layout");
_Static_assert(offsetof(struct mailbox, vq_used_bytes) == 0x158, "mailbox layout");
_Static_assert(sizeof(struct mailbox) <= MAILBOX_STRIDE, "a vCPU's mailbox fits its slot");
_Static_assert(MAILBOX_STRIDE * VCPUS_MAX <= 4096, "every vCPU's mailbox fits the mailbox page");
_Static_assert(STACK_STRIDE * VCPUS_MAX <= STACK_TOP - 0x180000ull, "stacks stay above the image");

/* ---- split virtqueue (virtio 1.0, 2.6 "Split Virtqueues") ---------------- */
#define VRING_DESC_F_NEXT      1u
#define VRING_DESC_F_WRITE     2u
#define VRING_USED_F_NO_NOTIFY 1u
#define VQ_REPLY               0x80000000u /* set in a request's length word: an echo reply (payload's own format) */

struct vring_desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
struct vring_avail {
  uint16_t flags;
  uint16_t idx;
  uint16_t ring[];
};
struct vring_used_elem {
  uint32_t id;
  uint32_t len;
};
struct vring_used {
  uint16_t flags;
  uint16_t idx;
  struct vring_used_elem ring[];
};
_Static_assert(sizeof(struct vring_desc) == 16, "virtio descriptor is 16 bytes");
_Static_assert(VQ_DESC_ADDR + 16 * VQ_SIZE_MAX <= VQ_AVAIL_ADDR, "descriptor table fits");
_Static_assert(VQ_BUF_ADDR + VQ_BUF_STRIDE * VQ_SIZE_MAX <= PAYLOAD_ADDR, "buffers fit");

#endif

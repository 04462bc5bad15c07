/*
 * The latsim guest payload: each vCPU reads its parameters from its own mailbox
 * (MAILBOX_ADDR + index * MAILBOX_STRIDE), runs one workload and reports progress
 * there (and through a few PIO writes):
 *   WL_HELLO        PIO IN and MMIO read/write answered by the host's main loop;
 *   WL_DIRTY        dirty pages at a rate (TSC-paced ticks) with a uniform, hot-set
 *                   or sequential pattern; each write stores the tick number; with
 *                   vq_size set it answers pings on the virtqueue (an echo reply
 *                   request, then a kick) and posts vq_batch more requests per tick;
 *   WL_INCREMENT    QEMU migration-test's workload: add one to the first byte of
 *                   every page of the range, pass after pass;
 *   WL_VIRTIO       the split-virtqueue driver in virtq.c;
 *   WL_TRIPLE_FAULT ud2 with no IDT, so the vCPU shuts down.
 * Every tick it bumps the heartbeat, echoes ping_req into ping_ack (and PORT_PONG),
 * and honours `stop`. At the end it writes PORT_DONE and halts forever. The TSC
 * is not carried over by a migration: a paced workload re-bases its schedule when
 * the TSC jumps back, or when it falls more than two ticks behind.
 * Leaves out: interrupts, timers, SMP, a guest kernel.
 */
#include "io.h"
#include "payload.h"

typedef volatile struct mailbox mailbox_t;

void virtq_run(mailbox_t *m);
int virtq_setup(mailbox_t *m);
int virtq_step(mailbox_t *m, uint32_t max_new);
int virtq_reply(mailbox_t *m, uint64_t ping);

void *memset(void *dst, int c, unsigned long n) {
  unsigned char *d = dst;
  while (n--) *d++ = (unsigned char)c;
  return dst;
}

void *memcpy(void *dst, const void *src, unsigned long n) {
  unsigned char *d = dst;
  const unsigned char *s = src;
  while (n--) *d++ = *s++;
  return dst;
}

void debug_puts(const char *s) {
  while (*s) outb(PORT_DEBUG, (uint8_t)*s++);
  outb(PORT_DEBUG, '\n');
}

/* xorshift64* : small, fast, good enough to spread page writes. One state per vCPU. */
static uint64_t rng_next(uint64_t *state) {
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1Dull;
}

/*
 * Echoes a new ping_req into ping_ack and answers it: on the virtqueue when the
 * workload has one (an echo reply, sent once a descriptor is free), else PORT_PONG.
 */
static void answer_ping(mailbox_t *m, int queue) {
  uint64_t ping = m->ping_req;
  if (ping == m->ping_ack) return;
  if (queue) {
    if (virtq_reply(m, ping)) m->ping_ack = ping;
    return;
  }
  m->ping_ack = ping;
  outl(PORT_PONG, (uint32_t)ping);
}

/* One tick of bookkeeping. Returns non-zero when the host asked to stop. */
static int tick(mailbox_t *m, int queue) {
  uint64_t hb = m->heartbeat + 1;
  m->heartbeat = hb;
  answer_ping(m, queue);
  uint32_t every = m->heartbeat_every;
  if (every != 0 && hb % every == 0) outl(PORT_HEARTBEAT, (uint32_t)hb);
  return m->stop != 0;
}

/*
 * Spins until `deadline` (TSC), answering pings meanwhile. Returns early when the
 * deadline lies more than two ticks ahead: the TSC went back (a migration).
 */
static void wait_until(mailbox_t *m, uint64_t deadline, uint64_t tick_tsc, int queue) {
  for (;;) {
    int64_t left = (int64_t)(deadline - rdtsc());
    if (left <= 0 || left > (int64_t)(2 * tick_tsc)) return;
    if (m->stop) return;
    answer_ping(m, queue);
    cpu_relax();
  }
}

static int range_ok(uint64_t start, uint64_t pages) {
  return pages != 0 && (start & 0xfff) == 0 && start >= WORK_ADDR && start + pages * 4096 > start;
}

static void hello(mailbox_t *m) {
  m->hello_pio = inl(PORT_HELLO);
  m->hello_mmio = mmio_read32(MMIO_HELLO);
  mmio_write32(MMIO_HELLO, m->hello_pio ^ m->hello_mmio);
}

static void dirty(mailbox_t *m) {
  uint64_t start = m->range_start, pages = m->range_pages;
  uint64_t hot = m->hot_pages, max_ticks = m->max_ticks, tick_tsc = m->tick_tsc;
  uint32_t per_tick = m->pages_per_tick, hot_percent = m->hot_percent, pattern = m->pattern;
  if (!range_ok(start, pages) || per_tick == 0 || pattern > PAT_SEQUENTIAL || hot_percent > 100 ||
      (pattern == PAT_HOT_SET && (hot == 0 || hot > pages))) {
    m->state = ST_BAD_PARAMS;
    return;
  }
  int queue = m->vq_size != 0;
  if (queue && virtq_setup(m) != 0) return;
  uint64_t rng = m->seed ? m->seed : 0x9E3779B97F4A7C15ull;
  uint64_t seq = 0, written = 0;
  uint64_t deadline = rdtsc() + tick_tsc;
  for (uint64_t t = 1; max_ticks == 0 || t <= max_ticks; t++) {
    for (uint32_t i = 0; i < per_tick; i++) {
      uint64_t page;
      if (pattern == PAT_SEQUENTIAL) {
        page = seq;
        seq = seq + 1 == pages ? 0 : seq + 1;
      } else if (pattern == PAT_HOT_SET && rng_next(&rng) % 100 < hot_percent) {
        page = rng_next(&rng) % hot;
      } else {
        page = rng_next(&rng) % pages;
      }
      uint64_t addr = start + page * 4096;
      *(volatile uint64_t *)addr = t;
      written++;
      m->last_page = addr;
    }
    m->pages_written = written;
    if (queue) virtq_step(m, m->vq_batch);
    if (tick(m, queue)) return;
    if (tick_tsc != 0) {
      wait_until(m, deadline, tick_tsc, queue);
      uint64_t now = rdtsc();
      deadline += tick_tsc;
      if ((int64_t)(deadline - now) > (int64_t)(2 * tick_tsc) || (int64_t)(now - deadline) > (int64_t)(2 * tick_tsc))
        deadline = now + tick_tsc;
    }
  }
}

static void increment(mailbox_t *m) {
  uint64_t start = m->range_start, pages = m->range_pages, max_ticks = m->max_ticks;
  if (!range_ok(start, pages)) {
    m->state = ST_BAD_PARAMS;
    return;
  }
  uint64_t done = 0;
  for (uint64_t pass = 1; max_ticks == 0 || pass <= max_ticks; pass++) {
    for (uint64_t p = 0; p < pages; p++) {
      volatile uint8_t *b = (volatile uint8_t *)(start + p * 4096);
      *b = (uint8_t)(*b + 1);
    }
    done += pages;
    m->pages_written = done;
    m->last_page = start + (pages - 1) * 4096;
    if (tick(m, 0)) return;
  }
}

static void triple_fault(void) {
  debug_puts("ud2");
  __asm__ volatile("ud2");
}

void payload_main(uint64_t cpu) {
  mailbox_t *m = (mailbox_t *)(MAILBOX_ADDR + cpu * MAILBOX_STRIDE);
  m->boots = m->boots + 1;
  if (m->magic != MAILBOX_MAGIC || m->version != MAILBOX_VERSION) {
    m->state = ST_BAD_MAILBOX;
    debug_puts("latsim payload: bad mailbox");
  } else {
    m->state = ST_RUNNING;
    switch (m->workload) {
      case WL_HELLO: hello(m); break;
      case WL_DIRTY: dirty(m); break;
      case WL_INCREMENT: increment(m); break;
      case WL_VIRTIO: virtq_run(m); break;
      case WL_TRIPLE_FAULT: triple_fault(); break;
      default: m->state = ST_BAD_PARAMS; break;
    }
    if (m->state == ST_RUNNING) m->state = ST_DONE;
  }
  outl(PORT_DONE, m->state);
  for (;;) halt();
}

/*
 * The latsim guest payload: reads its parameters from the mailbox page, runs one
 * workload and reports progress there (and through a few PIO writes):
 *   WL_HELLO        PIO IN and MMIO read/write answered by the host's main loop;
 *   WL_DIRTY        dirty pages at a rate (TSC-paced ticks) with a uniform, hot-set
 *                   or sequential pattern; each write stores the tick number;
 *   WL_INCREMENT    QEMU migration-test's workload: add one to the first byte of
 *                   every page of the range, pass after pass;
 *   WL_VIRTIO       the split-virtqueue driver in virtq.c;
 *   WL_TRIPLE_FAULT ud2 with no IDT, so the vCPU shuts down.
 * Every tick it bumps the heartbeat, echoes ping_req into ping_ack (and PORT_PONG),
 * and honours `stop`. At the end it writes PORT_DONE and halts forever.
 * Leaves out: interrupts, timers, SMP, a guest kernel.
 */
#include "io.h"
#include "payload.h"

#define MB ((volatile struct mailbox *)MAILBOX_ADDR)

void virtq_run(volatile struct mailbox *m);

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

/* xorshift64* : small, fast, good enough to spread page writes. */
static uint64_t rng_state;
static uint64_t rng_next(void) {
  uint64_t x = rng_state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rng_state = x;
  return x * 0x2545F4914F6CDD1Dull;
}

/* One tick of bookkeeping. Returns non-zero when the host asked to stop. */
static int tick(void) {
  uint64_t hb = MB->heartbeat + 1;
  MB->heartbeat = hb;
  uint64_t ping = MB->ping_req;
  if (ping != MB->ping_ack) {
    MB->ping_ack = ping;
    outl(PORT_PONG, (uint32_t)ping);
  }
  uint32_t every = MB->heartbeat_every;
  if (every != 0 && hb % every == 0) outl(PORT_HEARTBEAT, (uint32_t)hb);
  return MB->stop != 0;
}

/* Spins until `deadline` (TSC), answering pings meanwhile. */
static void wait_until(uint64_t deadline) {
  while ((int64_t)(rdtsc() - deadline) < 0) {
    if (MB->stop) return;
    if (MB->ping_req != MB->ping_ack) {
      MB->ping_ack = MB->ping_req;
      outl(PORT_PONG, (uint32_t)MB->ping_ack);
    }
    cpu_relax();
  }
}

static int range_ok(uint64_t start, uint64_t pages) {
  return pages != 0 && (start & 0xfff) == 0 && start >= WORK_ADDR && start + pages * 4096 > start;
}

static void hello(void) {
  MB->hello_pio = inl(PORT_HELLO);
  MB->hello_mmio = mmio_read32(MMIO_HELLO);
  mmio_write32(MMIO_HELLO, MB->hello_pio ^ MB->hello_mmio);
}

static void dirty(void) {
  uint64_t start = MB->range_start, pages = MB->range_pages;
  uint64_t hot = MB->hot_pages, max_ticks = MB->max_ticks, tick_tsc = MB->tick_tsc;
  uint32_t per_tick = MB->pages_per_tick, hot_percent = MB->hot_percent, pattern = MB->pattern;
  if (!range_ok(start, pages) || per_tick == 0 || pattern > PAT_SEQUENTIAL || hot_percent > 100 ||
      (pattern == PAT_HOT_SET && (hot == 0 || hot > pages))) {
    MB->state = ST_BAD_PARAMS;
    return;
  }
  rng_state = MB->seed ? MB->seed : 0x9E3779B97F4A7C15ull;
  uint64_t seq = 0, written = 0;
  uint64_t deadline = rdtsc() + tick_tsc;
  for (uint64_t t = 1; max_ticks == 0 || t <= max_ticks; t++) {
    for (uint32_t i = 0; i < per_tick; i++) {
      uint64_t page;
      if (pattern == PAT_SEQUENTIAL) {
        page = seq;
        seq = seq + 1 == pages ? 0 : seq + 1;
      } else if (pattern == PAT_HOT_SET && rng_next() % 100 < hot_percent) {
        page = rng_next() % hot;
      } else {
        page = rng_next() % pages;
      }
      uint64_t addr = start + page * 4096;
      *(volatile uint64_t *)addr = t;
      written++;
      MB->last_page = addr;
    }
    MB->pages_written = written;
    if (tick()) return;
    if (tick_tsc != 0) {
      wait_until(deadline);
      deadline += tick_tsc;
    }
  }
}

static void increment(void) {
  uint64_t start = MB->range_start, pages = MB->range_pages, max_ticks = MB->max_ticks;
  if (!range_ok(start, pages)) {
    MB->state = ST_BAD_PARAMS;
    return;
  }
  uint64_t done = 0;
  for (uint64_t pass = 1; max_ticks == 0 || pass <= max_ticks; pass++) {
    for (uint64_t p = 0; p < pages; p++) {
      volatile uint8_t *b = (volatile uint8_t *)(start + p * 4096);
      *b = (uint8_t)(*b + 1);
    }
    done += pages;
    MB->pages_written = done;
    MB->last_page = start + (pages - 1) * 4096;
    if (tick()) return;
  }
}

static void triple_fault(void) {
  debug_puts("ud2");
  __asm__ volatile("ud2");
}

void payload_main(void) {
  MB->boots = MB->boots + 1;
  if (MB->magic != MAILBOX_MAGIC || MB->version != MAILBOX_VERSION) {
    MB->state = ST_BAD_MAILBOX;
    debug_puts("latsim payload: bad mailbox");
  } else {
    MB->state = ST_RUNNING;
    switch (MB->workload) {
      case WL_HELLO: hello(); break;
      case WL_DIRTY: dirty(); break;
      case WL_INCREMENT: increment(); break;
      case WL_VIRTIO: virtq_run(MB); break;
      case WL_TRIPLE_FAULT: triple_fault(); break;
      default: MB->state = ST_BAD_PARAMS; break;
    }
    if (MB->state == ST_RUNNING) MB->state = ST_DONE;
  }
  outl(PORT_DONE, MB->state);
  for (;;) halt();
}

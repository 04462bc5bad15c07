/*
 * The guest payload latsim boots in real QEMU (-kernel, multiboot v1): a
 * freestanding 32-bit program in flat protected mode, no paging, no
 * interrupts, no libc, one vCPU. It runs a scenario's guest workload and
 * reports its progress on COM1:
 *
 *  - dirtying pages at a rate in one of the scenario's patterns (uniform,
 *    hot set with the cold share outside the hot set, sequential, and QEMU
 *    migration-test's "increment the first byte of every page", which makes a
 *    page zero again every 256 passes), up to four workloads at once, paced by
 *    the TSC in ticks (1 ms by default) and calibrated against PIT channel 2;
 *  - disk writes, reads and flushes on the primary IDE disk (ATA PIO, LBA28,
 *    READ/WRITE MULTIPLE, FLUSH CACHE), issued at a rate and polled without
 *    blocking the dirtying, so a slow flush on the host side delays only the
 *    disk, as a guest's I/O thread would be delayed;
 *  - a heartbeat line every `hb` ms and a status line (pages written, the
 *    rate achieved in the last interval, disk counters) every `st` ms.
 *
 * Pages outside the workloads' ranges and the populated range stay zero.
 * When the schedule falls more than two ticks behind (the vCPU was paused, or
 * it cannot keep up with the rate) it re-bases instead of catching up and
 * counts the ticks it lost, so the status line reports what was achieved.
 *
 * Parameters come from the multiboot command line (QEMU's -append), as
 * space-separated key=value tokens (see README.md). Leaves out: SMP (the
 * host folds every vCPU's workload onto this one), interrupts, paging,
 * memory above 4 GiB, DMA.
 */
#include <stdint.h>

typedef uint64_t u64;
typedef uint32_t u32;
typedef uint16_t u16;
typedef uint8_t u8;

/* ---- port I/O and TSC ---- */

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) {
  u8 v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline void outsb(u16 port, const void *buf, u32 n) {
  __asm__ volatile("rep outsb" : "+S"(buf), "+c"(n) : "d"(port) : "memory");
}
static inline u64 rdtsc(void) {
  u32 lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((u64)hi << 32) | lo;
}

/* ---- 64-bit division: gcc calls these on i386; no 32-bit libgcc here ---- */

u64 __udivmoddi4(u64 n, u64 d, u64 *rem);
u64 __udivdi3(u64 n, u64 d);
u64 __umoddi3(u64 n, u64 d);

u64 __udivmoddi4(u64 n, u64 d, u64 *rem) {
  u64 q = 0, r = 0;
  if (d == 0) d = 1;
  for (int i = 63; i >= 0; i--) {
    r = (r << 1) | ((n >> i) & 1);
    if (r >= d) {
      r -= d;
      q |= 1ull << i;
    }
  }
  if (rem) *rem = r;
  return q;
}
u64 __udivdi3(u64 n, u64 d) { return __udivmoddi4(n, d, 0); }
u64 __umoddi3(u64 n, u64 d) {
  u64 r;
  __udivmoddi4(n, d, &r);
  return r;
}

/* ---- serial output (COM1); one rep outsb per line, so one exit per line ---- */

#define COM1 0x3f8
static char line[160];
static u32 line_len;

static void put_c(char c) {
  if (line_len < sizeof line) line[line_len++] = c;
}
static void put_s(const char *s) {
  while (*s) put_c(*s++);
}
static void put_u(u64 v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + (u32)(v % 10));
    v /= 10;
  } while (v);
  while (n) put_c(tmp[--n]);
}
static void put_kv(const char *k, u64 v) {
  put_c(' ');
  put_s(k);
  put_c('=');
  put_u(v);
}
static void flush_line(void) {
  put_c('\n');
  outsb(COM1, line, line_len);
  line_len = 0;
}

/* ---- command line ---- */

struct multiboot_info {
  u32 flags, mem_lower, mem_upper, boot_device, cmdline;
};

static int str_eq_n(const char *a, const char *b, u32 n) {
  for (u32 i = 0; i < n; i++)
    if (a[i] != b[i]) return 0;
  return b[n] == 0;
}

/* Parses an unsigned decimal at *p, advancing p. */
static u64 parse_u(const char **p) {
  u64 v = 0;
  while (**p >= '0' && **p <= '9') v = v * 10 + (u64)(*(*p)++ - '0');
  return v;
}

/* ---- xorshift32: few instructions, since guest instructions are costly here ---- */

static u32 rng_state = 0x9E3779B9u;
static inline u32 rng_next(void) {
  u32 x = rng_state;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  rng_state = x;
  return x;
}
/* Uniform in [0, n): one 32x32->64 multiply. */
static inline u32 rng_below(u32 n) { return (u32)(((u64)rng_next() * n) >> 32); }

/* ---- workloads ---- */

enum { P_UNIFORM = 'u', P_HOTSET = 'h', P_SEQUENTIAL = 's', P_INCREMENT = 'i' };

struct workload {
  u32 pattern;
  u32 rate;          /* page writes per second (0: unpaced, increment only) */
  u32 first_page;    /* guest-physical page number */
  u32 pages;
  u32 hot_pages;
  u32 cold_permille; /* hot set: share of writes outside the hot set */
  u32 acc;           /* owed page writes x 1e6 (32-bit: native division) */
  u32 cursor;
};

#define MAX_WORKLOADS 4
static struct workload wl[MAX_WORKLOADS];
static u32 n_wl;
static u64 pages_written;
static u64 tick_no;

static void write_page(u32 page, u32 pattern) {
  volatile u8 *p = (volatile u8 *)(page * 4096u);
  if (pattern == P_INCREMENT) {
    *p = (u8)(*p + 1);
  } else {
    /* The tick number (never zero) keeps the page a normal page. */
    *(volatile u32 *)p = (u32)tick_no | 1;
  }
  pages_written++;
}

static void run_workload(struct workload *w, u32 n) {
  for (u32 i = 0; i < n; i++) {
    u32 page;
    switch (w->pattern) {
    case P_HOTSET:
      if (rng_below(1000) < w->cold_permille && w->pages > w->hot_pages)
        page = w->first_page + w->hot_pages + rng_below(w->pages - w->hot_pages);
      else
        page = w->first_page + rng_below(w->hot_pages);
      break;
    case P_SEQUENTIAL:
    case P_INCREMENT:
      page = w->first_page + w->cursor;
      if (++w->cursor == w->pages) w->cursor = 0;
      break;
    default:
      page = w->first_page + rng_below(w->pages);
      break;
    }
    write_page(page, w->pattern);
  }
}

/* ---- ATA disk (primary channel, master) with PIIX bus-master DMA ----
 * Commands and status go through the task-file ports; the data moves by DMA
 * (one PRD entry), because string PIO exits once per word here (4 KiB of
 * rep outsw took 21 ms in this KVM). */

#define ATA_COUNT 0x1f2
#define ATA_LBA0 0x1f3
#define ATA_LBA1 0x1f4
#define ATA_LBA2 0x1f5
#define ATA_DRIVE 0x1f6
#define ATA_CMD 0x1f7
#define ATA_CTRL 0x3f6
#define ST_ERR 0x01
#define ST_BSY 0x80
#define CMD_READ_DMA 0xc8
#define CMD_WRITE_DMA 0xca
#define CMD_FLUSH_CACHE 0xe7
#define BM_CMD 0 /* bit 0 start, bit 3 direction: 1 = device to memory */
#define BM_STATUS 2
#define BM_PRDT 4

enum { D_OFF, D_IDLE, D_BUSY };

static struct {
  u32 state;
  u32 rate;           /* requests per second */
  u32 write_permille; /* share of requests that are writes */
  u32 flush_every;    /* a flush after this many writes (0: never) */
  u32 blocks;         /* requests that fit on the disk */
  u32 spb;            /* sectors per request (1..16) */
  u32 sequential;
  u32 cursor;
  u32 acc;
  u32 op;             /* 'w', 'r', 'f' of the request in flight */
  u32 writes_since_flush;
  u16 bm;             /* bus-master I/O base (BAR4) */
  u64 seq;
  u64 writes, reads, flushes, errors;
  u64 started_tsc;
  u64 flush_max_tsc;
} disk;

static u16 sector_buf[16 * 256] __attribute__((aligned(4096)));
static struct prd {
  u32 addr;
  u16 bytes;
  u16 flags; /* 0x8000: last entry */
} prdt __attribute__((aligned(64)));

static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u32 inl(u16 port) {
  u32 v;
  __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static u32 pci_read(u32 dev, u32 fn, u32 off) {
  outl(0xcf8, 0x80000000u | (dev << 11) | (fn << 8) | (off & 0xfc));
  return inl(0xcfc);
}
static void pci_write(u32 dev, u32 fn, u32 off, u32 v) {
  outl(0xcf8, 0x80000000u | (dev << 11) | (fn << 8) | (off & 0xfc));
  outl(0xcfc, v);
}

static int ata_wait_not_busy(u32 spins) {
  while (spins--) {
    u8 s = inb(ATA_CMD);
    if (!(s & ST_BSY)) return s;
  }
  return -1;
}

static void disk_fail(const char *why) {
  put_s("E disk: ");
  put_s(why);
  flush_line();
  disk.state = D_OFF;
}

static void disk_init(void) {
  /* Find the IDE controller (class 01, subclass 01) on bus 0; enable I/O and bus mastering. */
  for (u32 dev = 0; dev < 32 && !disk.bm; dev++) {
    for (u32 fn = 0; fn < 8; fn++) {
      u32 id = pci_read(dev, fn, 0);
      if ((id & 0xffff) == 0xffff) continue;
      if ((pci_read(dev, fn, 8) >> 16) != 0x0101) continue;
      disk.bm = (u16)(pci_read(dev, fn, 0x20) & 0xfffc);
      pci_write(dev, fn, 4, pci_read(dev, fn, 4) | 0x05);
      break;
    }
  }
  if (!disk.bm) return disk_fail("no IDE bus-master controller on PCI bus 0");
  outb(ATA_CTRL, 0x02); /* nIEN: no interrupts, the driver polls */
  outb(ATA_DRIVE, 0xe0);
  if (ata_wait_not_busy(1000000) < 0) return disk_fail("busy at boot");
  disk.state = D_IDLE;
}

static void disk_start(void) {
  u32 block = disk.sequential ? disk.cursor : rng_below(disk.blocks);
  if (disk.sequential && ++disk.cursor == disk.blocks) disk.cursor = 0;
  u32 lba = block * disk.spb;
  disk.seq++;
  disk.started_tsc = rdtsc();
  disk.state = D_BUSY;
  if (disk.flush_every && disk.writes_since_flush >= disk.flush_every) {
    disk.op = 'f';
    disk.writes_since_flush = 0;
    outb(ATA_DRIVE, 0xe0);
    outb(ATA_CMD, CMD_FLUSH_CACHE);
    return;
  }
  disk.op = rng_below(1000) < disk.write_permille ? 'w' : 'r';
  if (disk.op == 'w') {
    /* Content: the request number in every 8th byte pair. */
    for (u32 i = 0; i < disk.spb * 256; i += 4) {
      sector_buf[i] = (u16)disk.seq;
      sector_buf[i + 1] = (u16)(disk.seq >> 16);
    }
  }
  prdt.addr = (u32)sector_buf;
  prdt.bytes = (u16)(disk.spb * 512);
  prdt.flags = 0x8000;
  outb(disk.bm + BM_CMD, 0);
  outl(disk.bm + BM_PRDT, (u32)&prdt);
  outb(disk.bm + BM_STATUS, 0x06); /* clear interrupt and error */
  outb(ATA_DRIVE, (u8)(0xe0 | ((lba >> 24) & 0x0f)));
  outb(ATA_COUNT, (u8)disk.spb);
  outb(ATA_LBA0, (u8)lba);
  outb(ATA_LBA1, (u8)(lba >> 8));
  outb(ATA_LBA2, (u8)(lba >> 16));
  outb(ATA_CMD, disk.op == 'w' ? CMD_WRITE_DMA : CMD_READ_DMA);
  outb(disk.bm + BM_CMD, disk.op == 'w' ? 0x01 : 0x09);
}

static void disk_done(u8 status) {
  if (disk.op != 'f') outb(disk.bm + BM_CMD, 0);
  if (status & ST_ERR) {
    disk.errors++;
    put_s("E disk");
    put_kv("op", disk.op);
    put_kv("seq", disk.seq);
    flush_line();
  } else if (disk.op == 'w') {
    disk.writes++;
    disk.writes_since_flush++;
  } else if (disk.op == 'r') {
    disk.reads++;
  } else {
    disk.flushes++;
    u64 took = rdtsc() - disk.started_tsc;
    if (took > disk.flush_max_tsc) disk.flush_max_tsc = took;
  }
  disk.state = D_IDLE;
}

/* One non-blocking step: at most one status read while a request is in flight. */
static void disk_step(u32 tick_us) {
  if (disk.state == D_OFF) return;
  if (disk.state == D_IDLE) {
    disk.acc += disk.rate * tick_us;
    if (disk.acc < 1000000) return;
    disk.acc -= 1000000;
    if (disk.acc > 1000000) disk.acc = 1000000; /* owe at most one more */
    disk_start();
    return;
  }
  u8 s = inb(ATA_CMD);
  if (s & ST_BSY) return;
  disk_done(s);
}

/* ---- timing ---- */

static u64 tsc_khz;

/* TSC kHz from PIT channel 2 counting 20 ms in mode 0 (gate via port 0x61). */
static u64 calibrate_tsc_khz(void) {
  const u32 count = 23864; /* 1193182 Hz x 20 ms */
  outb(0x61, (u8)((inb(0x61) & ~0x02) | 0x01));
  outb(0x43, 0xb0); /* channel 2, lobyte/hibyte, mode 0, binary */
  outb(0x42, (u8)count);
  outb(0x42, (u8)(count >> 8));
  u64 t0 = rdtsc();
  u32 spins = 0;
  while (!(inb(0x61) & 0x20) && ++spins < 50000000) {
  }
  u64 t1 = rdtsc();
  return (t1 - t0) / 20;
}

/* ---- main ---- */

void guest_main(u32 magic, struct multiboot_info *mbi);

void guest_main(u32 magic, struct multiboot_info *mbi) {
  u32 hb_ms = 10, st_ms = 1000, tick_us = 1000;
  u32 pop_first = 0, pop_pages = 0;
  u64 mem_kb = 0;
  const char *cmd = "";
  if (magic == 0x2BADB002u) {
    if (mbi->flags & 1) mem_kb = 1024 + (u64)mbi->mem_upper;
    if (mbi->flags & 4) cmd = (const char *)mbi->cmdline;
  }
  /* Tokens: key=value, separated by spaces (the first is the kernel's path). */
  for (const char *p = cmd; *p;) {
    while (*p == ' ') p++;
    const char *k = p;
    while (*p && *p != '=' && *p != ' ') p++;
    u32 klen = (u32)(p - k);
    if (*p != '=') continue;
    p++;
    if (str_eq_n(k, "hb", klen)) hb_ms = (u32)parse_u(&p);
    else if (str_eq_n(k, "st", klen)) st_ms = (u32)parse_u(&p);
    else if (str_eq_n(k, "tick", klen)) tick_us = (u32)parse_u(&p);
    else if (str_eq_n(k, "tsc", klen)) tsc_khz = parse_u(&p);
    else if (str_eq_n(k, "seed", klen)) rng_state = (u32)parse_u(&p) * 2 + 1;
    else if (str_eq_n(k, "pop", klen)) {
      pop_first = (u32)parse_u(&p);
      if (*p == ':') p++;
      pop_pages = (u32)parse_u(&p);
    } else if (klen == 2 && k[0] == 'w' && k[1] >= '0' && k[1] < '0' + MAX_WORKLOADS) {
      /* w<i>=pattern:rate:first_page:pages:hot_pages:cold_permille */
      struct workload *w = &wl[n_wl < MAX_WORKLOADS ? n_wl++ : MAX_WORKLOADS - 1];
      w->pattern = (u32)*p++;
      u32 *f[] = {&w->rate, &w->first_page, &w->pages, &w->hot_pages, &w->cold_permille};
      for (u32 i = 0; i < 5 && *p == ':'; i++) {
        p++;
        *f[i] = (u32)parse_u(&p);
      }
      if (w->pages == 0) w->pages = 1;
      if (w->hot_pages == 0 || w->hot_pages > w->pages) w->hot_pages = w->pages;
    } else if (str_eq_n(k, "blk", klen)) {
      /* blk=rate:write_permille:flush_every:blocks:sectors_per_block:r|s */
      u32 *f[] = {&disk.rate, &disk.write_permille, &disk.flush_every, &disk.blocks, &disk.spb};
      for (u32 i = 0; i < 5; i++) {
        *f[i] = (u32)parse_u(&p);
        if (*p == ':') p++;
      }
      disk.sequential = *p == 's';
      if (disk.spb < 1) disk.spb = 1;
      if (disk.spb > 16) disk.spb = 16;
      if (disk.blocks < 1) disk.blocks = 1;
      disk.state = D_IDLE;
    }
    while (*p && *p != ' ') p++;
  }
  if (tick_us < 100) tick_us = 100;
  if (tick_us > 100000) tick_us = 100000;
  if (disk.spb > 16) disk.spb = 16;
  /* Keep rate x tick_us within 32 bits. */
  for (u32 i = 0; i < n_wl; i++)
    if (wl[i].rate > 4000000000u / tick_us) wl[i].rate = 4000000000u / tick_us;
  if (disk.rate > 100000) disk.rate = 100000;

  put_s("LSQ boot");
  put_kv("mem_kb", mem_kb);
  put_kv("workloads", n_wl);
  put_kv("disk", disk.state != D_OFF);
  flush_line();

  if (tsc_khz == 0) tsc_khz = calibrate_tsc_khz();
  if (tsc_khz == 0) tsc_khz = 1000000;
  put_s("LSQ tsc");
  put_kv("khz", tsc_khz);
  flush_line();

  /* Populated pages: a marker in each, so they are normal pages. */
  for (u32 i = 0; i < pop_pages; i++)
    *(volatile u32 *)((pop_first + i) * 4096u) = 0x504f504cu + i;
  if (disk.state != D_OFF) disk_init();

  const u64 tick_tsc = tsc_khz * tick_us / 1000;
  const u64 hb_tsc = tsc_khz * hb_ms, st_tsc = tsc_khz * st_ms;
  const u64 start = rdtsc();
  u64 next = start + tick_tsc, next_hb = start + hb_tsc, next_st = start + st_tsc;
  u64 hb_seq = 0, lost_ticks = 0, st_pages = 0, st_at = start;
  put_s("R");
  put_kv("pop", pop_pages);
  flush_line();

  for (;;) {
    tick_no++;
    for (u32 i = 0; i < n_wl; i++) {
      struct workload *w = &wl[i];
      if (w->rate == 0) {
        run_workload(w, 256); /* unpaced: as fast as it goes */
        continue;
      }
      w->acc += w->rate * tick_us;
      u32 n = w->acc / 1000000;
      w->acc -= n * 1000000;
      run_workload(w, n);
    }
    disk_step(tick_us);
    u64 now = rdtsc();
    if (hb_ms && now >= next_hb) {
      put_s("H");
      put_kv("n", ++hb_seq);
      flush_line();
      next_hb = now - next_hb > 2 * hb_tsc ? now + hb_tsc : next_hb + hb_tsc;
    }
    if (now >= next_st) {
      u64 el = now - st_at;
      u64 done = pages_written - st_pages;
      put_s("S");
      put_kv("ms", (now - start) / tsc_khz);
      put_kv("pages", pages_written);
      put_kv("rate", el ? done * tsc_khz * 1000 / el : 0);
      put_kv("lost_ticks", lost_ticks);
      put_kv("dw", disk.writes);
      put_kv("dr", disk.reads);
      put_kv("df", disk.flushes);
      put_kv("de", disk.errors);
      put_kv("dflush_max_us", disk.flush_max_tsc * 1000 / tsc_khz);
      put_kv("dstate", disk.state);
      flush_line();
      st_at = now;
      st_pages = pages_written;
      next_st = now - next_st > 2 * st_tsc ? now + st_tsc : next_st + st_tsc;
    }
    if (now > next + 2 * tick_tsc) {
      /* Paused, or too slow for the rate: re-base, do not catch up. */
      lost_ticks += (now - next) / tick_tsc;
      next = now + tick_tsc;
      continue;
    }
    while (rdtsc() < next) {
    }
    next += tick_tsc;
  }
}

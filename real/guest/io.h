/*
 * Port I/O, MMIO, TSC and barrier helpers for the freestanding payload, plus the
 * few libc routines gcc may emit calls to. Leaves out: interrupts (the payload
 * runs with interrupts disabled and no IDT).
 */
#ifndef LATSIM_IO_H
#define LATSIM_IO_H

#include <stdint.h>

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint32_t inl(uint16_t port) {
  uint32_t v;
  __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline uint32_t mmio_read32(uint64_t addr) { return *(volatile uint32_t *)addr; }
static inline void mmio_write32(uint64_t addr, uint32_t v) { *(volatile uint32_t *)addr = v; }
static inline void mmio_write16(uint64_t addr, uint16_t v) { *(volatile uint16_t *)addr = v; }

static inline uint64_t rdtsc(void) {
  uint32_t lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((uint64_t)hi << 32) | lo;
}
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void halt(void) { __asm__ volatile("hlt" ::: "memory"); }
/* Full barrier: orders ring stores before the used-flags load (virtio 2.6.13.6). */
static inline void mb(void) { __asm__ volatile("mfence" ::: "memory"); }
/* Compiler barrier: x86 keeps stores ordered with stores and loads with loads. */
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }

void *memset(void *dst, int c, unsigned long n);
void *memcpy(void *dst, const void *src, unsigned long n);
void debug_puts(const char *s);

#endif

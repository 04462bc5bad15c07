/*
 * C reference for `npm run bench -- bitmap`: QEMU's word-wise dirty-bitmap
 * sync (cpu_physical_memory_sync_dirty_bitmap, include/exec/ram_addr.h) over
 * 64-bit words: take each word of the KVM dirty log and zero it, OR it into
 * the migration bitmap, and add popcount(bits & ~old) to the count.
 *
 * It builds the same inputs as bench/bitmap.ts (xorshift32, one draw per page,
 * page dirty if the draw is below a threshold), runs the sync REPS times on
 * fresh copies, and prints one JSON line with the best time of each variant:
 *   ms        plain load / store 0 / OR / popcount, zero words skipped (QEMU's shape)
 *   ms_flat   the same without the zero-word branch (the compiler may vectorize it)
 *   ms_xchg   as `ms` but with an atomic exchange, as QEMU's qatomic_xchg does
 * Left out: QEMU's DirtyMemoryBlocks chunking and RCU; one thread.
 *
 * Build: gcc -O2 -march=native -o bench/out/bitmap_ref bench/c/bitmap_ref.c
 * Usage: bitmap_ref PAGES KVM_SEED MIG_SEED THRESHOLD_U32 REPS
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint32_t xorshift32(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

/* Page p is bit (p % 64) of word p / 64: a little-endian unsigned long bitmap. */
static void fill(uint64_t *map, uint64_t nwords, uint64_t pages, uint32_t seed, uint32_t threshold)
{
    uint32_t state = seed;
    for (uint64_t k = 0; k < nwords; k++) {
        uint64_t word = 0;
        for (unsigned j = 0; j < 64; j++) {
            uint64_t page = k * 64 + j;
            if (page < pages && xorshift32(&state) < threshold) {
                word |= UINT64_C(1) << j;
            }
        }
        map[k] = word;
    }
}

__attribute__((noinline))
static uint64_t sync_skip(uint64_t *restrict kvm, uint64_t *restrict mig, uint64_t nwords)
{
    uint64_t n = 0;
    for (uint64_t k = 0; k < nwords; k++) {
        uint64_t bits = kvm[k];
        if (bits) {
            kvm[k] = 0;
            uint64_t old = mig[k];
            mig[k] = old | bits;
            n += (uint64_t)__builtin_popcountll(bits & ~old);
        }
    }
    return n;
}

__attribute__((noinline))
static uint64_t sync_flat(uint64_t *restrict kvm, uint64_t *restrict mig, uint64_t nwords)
{
    uint64_t n = 0;
    for (uint64_t k = 0; k < nwords; k++) {
        uint64_t bits = kvm[k];
        kvm[k] = 0;
        uint64_t old = mig[k];
        mig[k] = old | bits;
        n += (uint64_t)__builtin_popcountll(bits & ~old);
    }
    return n;
}

__attribute__((noinline))
static uint64_t sync_xchg(uint64_t *restrict kvm, uint64_t *restrict mig, uint64_t nwords)
{
    uint64_t n = 0;
    for (uint64_t k = 0; k < nwords; k++) {
        if (kvm[k]) {
            uint64_t bits = __atomic_exchange_n(&kvm[k], 0, __ATOMIC_SEQ_CST);
            uint64_t old = mig[k];
            mig[k] = old | bits;
            n += (uint64_t)__builtin_popcountll(bits & ~old);
        }
    }
    return n;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

typedef uint64_t (*sync_fn)(uint64_t *restrict, uint64_t *restrict, uint64_t);

static double best_of(sync_fn fn, int reps, const uint64_t *kvm0, const uint64_t *mig0,
                      uint64_t *kvm, uint64_t *mig, uint64_t nwords, uint64_t *newly)
{
    double best = 1e300;
    for (int r = 0; r < reps; r++) {
        memcpy(kvm, kvm0, nwords * 8);
        memcpy(mig, mig0, nwords * 8);
        double t0 = now_ms();
        uint64_t n = fn(kvm, mig, nwords);
        double t = now_ms() - t0;
        if (r > 0 && n != *newly) {
            fprintf(stderr, "bitmap_ref: repetition %d counted %" PRIu64 ", expected %" PRIu64 "\n",
                    r, n, *newly);
            exit(1);
        }
        *newly = n;
        if (t < best) {
            best = t;
        }
    }
    return best;
}

static uint64_t count_ones(const uint64_t *map, uint64_t nwords)
{
    uint64_t n = 0;
    for (uint64_t k = 0; k < nwords; k++) {
        n += (uint64_t)__builtin_popcountll(map[k]);
    }
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s PAGES KVM_SEED MIG_SEED THRESHOLD_U32 REPS\n", argv[0]);
        return 2;
    }
    uint64_t pages = strtoull(argv[1], NULL, 0);
    uint32_t kvm_seed = (uint32_t)strtoul(argv[2], NULL, 0);
    uint32_t mig_seed = (uint32_t)strtoul(argv[3], NULL, 0);
    uint32_t threshold = (uint32_t)strtoul(argv[4], NULL, 0);
    int reps = atoi(argv[5]);
    if (pages == 0 || kvm_seed == 0 || mig_seed == 0 || reps < 1) {
        fprintf(stderr, "bitmap_ref: PAGES, seeds and REPS must be positive\n");
        return 2;
    }
    uint64_t nwords = (pages + 63) / 64;
    uint64_t *kvm0 = aligned_alloc(64, nwords * 8 + 64);
    uint64_t *mig0 = aligned_alloc(64, nwords * 8 + 64);
    uint64_t *kvm = aligned_alloc(64, nwords * 8 + 64);
    uint64_t *mig = aligned_alloc(64, nwords * 8 + 64);
    if (!kvm0 || !mig0 || !kvm || !mig) {
        fprintf(stderr, "bitmap_ref: out of memory\n");
        return 1;
    }
    fill(kvm0, nwords, pages, kvm_seed, threshold);
    fill(mig0, nwords, pages, mig_seed, threshold);

    uint64_t newly = 0, newly_flat = 0, newly_xchg = 0;
    double ms = best_of(sync_skip, reps, kvm0, mig0, kvm, mig, nwords, &newly);
    double ms_flat = best_of(sync_flat, reps, kvm0, mig0, kvm, mig, nwords, &newly_flat);
    double ms_xchg = best_of(sync_xchg, reps, kvm0, mig0, kvm, mig, nwords, &newly_xchg);
    if (newly_flat != newly || newly_xchg != newly || count_ones(kvm, nwords) != 0) {
        fprintf(stderr, "bitmap_ref: variants disagree\n");
        return 1;
    }
    printf("{\"pages\": %" PRIu64 ", \"kvm_dirty\": %" PRIu64 ", \"mig_dirty_before\": %" PRIu64
           ", \"newly\": %" PRIu64 ", \"mig_dirty_after\": %" PRIu64
           ", \"ms\": %.3f, \"ms_flat\": %.3f, \"ms_xchg\": %.3f}\n",
           pages, count_ones(kvm0, nwords), count_ones(mig0, nwords), newly,
           count_ones(mig, nwords), ms, ms_flat, ms_xchg);
    free(kvm0);
    free(mig0);
    free(kvm);
    free(mig);
    return 0;
}

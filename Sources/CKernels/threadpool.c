/*
 * A small fork-join pool for kernel calls: a run hands out `parts` indices to the calling thread and
 * the pool's helpers, which claim them one at a time, and returns when all are done.
 *
 * Helpers spin for a short while after each run, so the next parallel region of the same inference
 * (a convolution a few microseconds later) starts without a wake-up; then they sleep on a condition
 * variable until the next run. Nothing spins while the pool is idle for longer than the spin budget.
 *
 * Parts are claimed from one 64-bit ticket (run generation in the high half, next part in the low
 * half) by compare-and-swap, so a helper that wakes late cannot claim a part of a run it did not read
 * the task of, and a helper that is not scheduled at all costs nothing: the caller claims its parts.
 */
#define _GNU_SOURCE
#include "isa.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#ifdef ONYX_X86
#define ONYX_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define ONYX_RELAX() __asm__ __volatile__("yield")
#else
#define ONYX_RELAX() ((void)0)
#endif

struct onyx_pool {
    size_t threads;      /* including the caller */
    uint64_t spin_ns;    /* how long an idle helper spins before sleeping */
    pthread_t *helpers;  /* threads - 1 of them, started by the first run */
    size_t started;

    _Atomic uint64_t ticket;  /* generation << 32 | next unclaimed part */
    _Atomic uint32_t parts;
    _Atomic uint32_t done;
    _Atomic(onyx_pool_task) task;
    _Atomic(void *) context;

    _Atomic int busy;      /* a run is in progress: a concurrent or nested caller runs serially */
    _Atomic int stopping;
    _Atomic int sleepers;
    pthread_mutex_t lock;
    pthread_cond_t wake;
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Claims and runs parts of the run `seen` belongs to until none is left. */
static void claim_parts(struct onyx_pool *pool, uint64_t seen) {
    for (;;) {
        uint32_t next = (uint32_t)seen;
        if (next >= atomic_load_explicit(&pool->parts, memory_order_acquire)) return;
        onyx_pool_task task = atomic_load_explicit(&pool->task, memory_order_relaxed);
        void *context = atomic_load_explicit(&pool->context, memory_order_relaxed);
        /* Success means the run is still unfinished, so task and context were its own. */
        if (atomic_compare_exchange_weak_explicit(&pool->ticket, &seen, seen + 1, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            task(context, next);
            atomic_fetch_add_explicit(&pool->done, 1, memory_order_release);
            seen += 1;
        }
        /* On failure `seen` holds the current ticket, possibly of a newer run: claim from that. */
    }
}

static void *helper_main(void *argument) {
    struct onyx_pool *pool = argument;
    uint64_t seen = atomic_load(&pool->ticket);
    for (;;) {
        claim_parts(pool, seen);
        seen = atomic_load(&pool->ticket);
        /* Wait for the ticket to move past what was just seen (a new run was published). */
        uint64_t waiting_for = seen;
        if ((uint32_t)seen < atomic_load(&pool->parts)) continue;
        uint64_t deadline = now_ns() + pool->spin_ns;
        for (unsigned spins = 1;; spins++) {
            if (atomic_load(&pool->stopping)) return NULL;
            seen = atomic_load_explicit(&pool->ticket, memory_order_acquire);
            if (seen != waiting_for) break;
            ONYX_RELAX();
            if ((spins & 255) == 0 && now_ns() > deadline) {
                pthread_mutex_lock(&pool->lock);
                atomic_fetch_add(&pool->sleepers, 1);
                while (atomic_load(&pool->ticket) == waiting_for && !atomic_load(&pool->stopping))
                    pthread_cond_wait(&pool->wake, &pool->lock);
                atomic_fetch_sub(&pool->sleepers, 1);
                pthread_mutex_unlock(&pool->lock);
                deadline = now_ns() + pool->spin_ns;
            }
        }
    }
}

onyx_pool *onyx_pool_create(size_t threads, uint64_t spin_ns) {
    struct onyx_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return NULL;
    pool->threads = threads < 1 ? 1 : threads;
    pool->spin_ns = spin_ns;
    if (pool->threads > 1) {
        pool->helpers = calloc(pool->threads - 1, sizeof *pool->helpers);
        if (!pool->helpers) {
            free(pool);
            return NULL;
        }
    }
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    return pool;
}

size_t onyx_pool_threads(const onyx_pool *pool) { return pool->threads; }

static void start_helpers(struct onyx_pool *pool) {
    while (pool->started + 1 < pool->threads) {
        if (pthread_create(&pool->helpers[pool->started], NULL, helper_main, pool) != 0) return;
#ifdef __linux__
        pthread_setname_np(pool->helpers[pool->started], "onyx-compute");
#endif
        pool->started += 1;
    }
}

void onyx_pool_run(onyx_pool *pool, size_t parts, onyx_pool_task task, void *context) {
    if (parts == 0) return;
    int expected = 0;
    if (parts == 1 || pool->threads == 1 || parts > UINT32_MAX ||
        !atomic_compare_exchange_strong(&pool->busy, &expected, 1)) {
        for (size_t part = 0; part < parts; part++) task(context, part);
        return;
    }
    if (pool->started + 1 < pool->threads) start_helpers(pool);

    atomic_store_explicit(&pool->task, task, memory_order_relaxed);
    atomic_store_explicit(&pool->context, context, memory_order_relaxed);
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    atomic_store_explicit(&pool->parts, (uint32_t)parts, memory_order_relaxed);
    uint64_t generation = (atomic_load(&pool->ticket) >> 32) + 1;
    uint64_t ticket = generation << 32;
    atomic_store(&pool->ticket, ticket); /* publishes everything above */
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->lock);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
    }

    claim_parts(pool, ticket);

    /* What is left is running on helpers; wait, yielding the core if it takes a while. */
    uint64_t deadline = 0;
    for (unsigned spins = 1; atomic_load_explicit(&pool->done, memory_order_acquire) < parts; spins++) {
        ONYX_RELAX();
        if ((spins & 255) == 0) {
            if (deadline == 0) deadline = now_ns() + pool->spin_ns;
            else if (now_ns() > deadline) sched_yield();
        }
    }
    atomic_store_explicit(&pool->busy, 0, memory_order_release);
}

void onyx_pool_destroy(onyx_pool *pool) {
    if (!pool) return;
    atomic_store(&pool->stopping, 1);
    pthread_mutex_lock(&pool->lock);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (size_t i = 0; i < pool->started; i++) pthread_join(pool->helpers[i], NULL);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->wake);
    free(pool->helpers);
    free(pool);
}

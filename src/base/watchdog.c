/* The watchdog (soju/base.h): one thread that wakes every `every_s` seconds
 * and looks at two clocks.
 *
 *   host wait    the time the outermost soju_watchdog_enter began, 0 when the
 *                watched thread is not waiting. Written by that thread and
 *                read here, so it is an atomic; no lock on the wait's path.
 *   polled wait  the time the poll function first said WAITING with the
 *                progress count it says now. Kept by this thread alone.
 *
 * The poll function runs with `lock` held, and set_poll takes the same lock,
 * so a poll that was cleared is never running (its context may be freed).
 * `fire` runs without the lock and at most once; then the thread ends. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "soju/base.h"

struct soju_watchdog {
    double limit_s, every_s;
    soju_watch_fire_fn fire;
    void *fire_ctx;

    pthread_t thread;
    pthread_mutex_t lock; /* guards poll, poll_ctx, stopping */
    pthread_cond_t wake;  /* signalled by stop */
    int stopping;
    soju_watch_poll_fn poll;
    void *poll_ctx;

    /* the host wait: its start in nanoseconds of soju_now(), 0 when none */
    _Atomic long long host_since_ns;
    _Atomic(const char *) host_what;
    int depth; /* enters not yet left; the watched thread's own */
};

static long long now_ns(void) { return (long long)(soju_now() * 1e9) + 1; /* never 0 */ }

/* One look at both clocks: 1 with a reason in why when a limit is passed. */
static int overdue(soju_watchdog *w, unsigned long *last_progress, double *polled_since, char *why, size_t n) {
    double now = soju_now();
    long long since = atomic_load(&w->host_since_ns);
    if (since && now - (double)since * 1e-9 >= w->limit_s) {
        snprintf(why, n, "%s has waited %.0f s (limit %g s)", atomic_load(&w->host_what),
                 now - (double)since * 1e-9, w->limit_s);
        return 1;
    }
    if (!w->poll) return 0;
    unsigned long progress = 0;
    int state = w->poll(w->poll_ctx, &progress, why, n);
    if (state == SOJU_WATCH_FAILED) return 1;
    if (state != SOJU_WATCH_WAITING) {
        *polled_since = 0;
        return 0;
    }
    if (*polled_since == 0 || progress != *last_progress) {
        *polled_since = now;
        *last_progress = progress;
        return 0;
    }
    if (now - *polled_since < w->limit_s) return 0;
    snprintf(why, n, "work queued on the device has not finished for %.0f s (limit %g s)", now - *polled_since,
             w->limit_s);
    return 1;
}

static void *watch(void *arg) {
    soju_watchdog *w = arg;
    unsigned long last_progress = 0;
    double polled_since = 0;
    char why[512];
    int fired = 0;
    pthread_mutex_lock(&w->lock);
    while (!w->stopping && !fired) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        long long ns = (long long)until.tv_nsec + (long long)(w->every_s * 1e9);
        until.tv_sec += (time_t)(ns / 1000000000LL);
        until.tv_nsec = (long)(ns % 1000000000LL);
        pthread_cond_timedwait(&w->wake, &w->lock, &until);
        if (!w->stopping) fired = overdue(w, &last_progress, &polled_since, why, sizeof why);
    }
    pthread_mutex_unlock(&w->lock);
    if (fired) w->fire(w->fire_ctx, why);
    return NULL;
}

soju_watchdog *soju_watchdog_start(double limit_s, soju_watch_fire_fn fire, void *fire_ctx) {
    if (!(limit_s > 0)) return NULL;
    soju_watchdog *w = soju_calloc(1, sizeof *w);
    w->limit_s = limit_s;
    w->every_s = limit_s / 4 < 1 ? limit_s / 4 : 1;
    w->fire = fire;
    w->fire_ctx = fire_ctx;
    atomic_init(&w->host_since_ns, 0);
    atomic_init(&w->host_what, "a wait");
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* the clock soju_now reads */
    pthread_cond_init(&w->wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&w->lock, NULL);
    if (pthread_create(&w->thread, NULL, watch, w) != 0) {
        fprintf(stderr, "soju: could not start the watchdog thread; waits are not limited\n");
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
    }
    return w;
}

void soju_watchdog_stop(soju_watchdog *w) {
    if (!w) return;
    pthread_mutex_lock(&w->lock);
    w->stopping = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

void soju_watchdog_set_poll(soju_watchdog *w, soju_watch_poll_fn poll, void *ctx) {
    if (!w) return;
    pthread_mutex_lock(&w->lock);
    w->poll = poll;
    w->poll_ctx = ctx;
    pthread_mutex_unlock(&w->lock);
}

void soju_watchdog_enter(soju_watchdog *w, const char *what) {
    if (!w || w->depth++) return;
    atomic_store(&w->host_what, what);
    atomic_store(&w->host_since_ns, now_ns());
}

void soju_watchdog_leave(soju_watchdog *w) {
    if (w && w->depth > 0 && --w->depth == 0) atomic_store(&w->host_since_ns, 0);
}

double soju_watchdog_limit(const soju_watchdog *w) { return w ? w->limit_s : 0; }

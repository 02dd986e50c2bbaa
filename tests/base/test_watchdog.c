/* The watchdog (soju/base.h): a host wait or a polled device wait longer
 * than the limit fires once, with a reason naming it; waits shorter than the
 * limit, and a device that is busy but making progress, never fire; a
 * failure the poll reports fires at the next check; a cleared poll is never
 * called again.
 *
 * Limits here are fractions of a second. Waits meant to fire run several
 * times the limit; loops meant not to fire keep every gap well under it. */
#include <stdatomic.h>
#include <time.h>

#include "test.h"

typedef struct {
    atomic_int fired;
    char why[512];
} fire_log;

static void record(void *ctx, const char *why) {
    fire_log *f = ctx;
    snprintf(f->why, sizeof f->why, "%s", why);
    atomic_fetch_add(&f->fired, 1);
}

static void nap(double s) {
    struct timespec t = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&t, NULL);
}

/* Wait up to `s` seconds for a fire. */
static int fired_within(fire_log *f, double s) {
    for (double t = 0; t < s && !atomic_load(&f->fired); t += 0.01) nap(0.01);
    return atomic_load(&f->fired);
}

TEST(no_limit_means_no_watchdog) {
    fire_log f = {0};
    CHECK(soju_watchdog_start(0, record, &f) == NULL);
    CHECK(soju_watchdog_start(-1, record, &f) == NULL);
    /* every call takes NULL */
    soju_watchdog_enter(NULL, "x");
    soju_watchdog_leave(NULL);
    soju_watchdog_set_poll(NULL, NULL, NULL);
    soju_watchdog_stop(NULL);
    CHECK(soju_watchdog_limit(NULL) == 0);
}

TEST(a_host_wait_past_the_limit_fires_once_naming_it) {
    fire_log f = {0};
    soju_watchdog *w = soju_watchdog_start(0.2, record, &f);
    CHECK(w != NULL);
    CHECK(soju_watchdog_limit(w) == 0.2);
    soju_watchdog_enter(w, "MPI_Allreduce");
    CHECK(fired_within(&f, 5) == 1);
    nap(0.5); /* and only once */
    CHECK_EQ_INT(atomic_load(&f.fired), 1);
    CHECK_MSG(strstr(f.why, "MPI_Allreduce has waited") != NULL, "%s", f.why);
    soju_watchdog_leave(w);
    soju_watchdog_stop(w);
}

TEST(short_host_waits_never_fire) {
    fire_log f = {0};
    soju_watchdog *w = soju_watchdog_start(0.5, record, &f);
    /* 2 s of waits of 20 ms each: together four times the limit */
    for (int i = 0; i < 100; i++) {
        soju_watchdog_enter(w, "MPI_Bcast");
        nap(0.02);
        soju_watchdog_leave(w);
    }
    CHECK_EQ_INT(atomic_load(&f.fired), 0);
    soju_watchdog_stop(w);
}

TEST(nested_waits_count_from_the_outermost) {
    fire_log f = {0};
    soju_watchdog *w = soju_watchdog_start(0.2, record, &f);
    soju_watchdog_enter(w, "outer");
    soju_watchdog_enter(w, "inner");
    soju_watchdog_leave(w); /* still inside "outer" */
    CHECK(fired_within(&f, 5) == 1);
    CHECK_MSG(strstr(f.why, "outer has waited") != NULL, "%s", f.why);
    soju_watchdog_leave(w);
    soju_watchdog_stop(w);
}

/* A fake device: `state` is what the poll says, `progress` its count. */
typedef struct {
    atomic_int state;
    atomic_ulong progress;
    atomic_int calls;
} device;

static int poll_device(void *ctx, unsigned long *progress, char *why, size_t n) {
    device *d = ctx;
    atomic_fetch_add(&d->calls, 1);
    *progress = atomic_load(&d->progress);
    int s = atomic_load(&d->state);
    if (s == SOJU_WATCH_FAILED) snprintf(why, n, "the link went down");
    return s;
}

/* A watchdog polling d, which starts in `state`. */
static soju_watchdog *watch(device *d, int state, double limit, fire_log *f) {
    atomic_store(&d->state, state);
    soju_watchdog *w = soju_watchdog_start(limit, record, f);
    soju_watchdog_set_poll(w, poll_device, d);
    return w;
}

TEST(a_stuck_device_fires_and_a_busy_one_does_not) {
    fire_log f = {0};
    device d = {0};
    soju_watchdog *w = watch(&d, SOJU_WATCH_WAITING, 0.5, &f);
    /* always waiting, but the count moves every 20 ms: 2 s, four limits */
    for (int i = 0; i < 100; i++) {
        atomic_fetch_add(&d.progress, 1);
        nap(0.02);
    }
    CHECK_EQ_INT(atomic_load(&f.fired), 0);
    CHECK(atomic_load(&d.calls) > 2);
    /* the count stops */
    CHECK(fired_within(&f, 5) == 1);
    CHECK_MSG(strstr(f.why, "has not finished") != NULL, "%s", f.why);
    soju_watchdog_stop(w);
}

TEST(an_idle_device_never_fires) {
    fire_log f = {0};
    device d = {0};
    soju_watchdog *w = watch(&d, SOJU_WATCH_IDLE, 0.2, &f);
    nap(1);
    CHECK_EQ_INT(atomic_load(&f.fired), 0);
    CHECK(atomic_load(&d.calls) > 2);
    soju_watchdog_stop(w);
}

TEST(a_reported_failure_fires_at_the_next_check) {
    fire_log f = {0};
    device d = {0};
    /* a long limit: only the failure itself can fire within the wait below */
    soju_watchdog *w = watch(&d, SOJU_WATCH_FAILED, 100, &f);
    CHECK(fired_within(&f, 3) == 1);
    CHECK_STR(f.why, "the link went down");
    soju_watchdog_stop(w);
}

TEST(a_cleared_poll_is_not_called_again) {
    fire_log f = {0};
    device d = {0};
    soju_watchdog *w = watch(&d, SOJU_WATCH_IDLE, 0.2, &f);
    nap(0.3);
    soju_watchdog_set_poll(w, NULL, NULL);
    int calls = atomic_load(&d.calls);
    CHECK(calls > 0);
    atomic_store(&d.state, SOJU_WATCH_FAILED); /* would fire if it were called */
    nap(0.5);
    CHECK_EQ_INT(atomic_load(&d.calls), calls);
    CHECK_EQ_INT(atomic_load(&f.fired), 0);
    soju_watchdog_stop(w);
}

TEST(stop_is_prompt) {
    fire_log f = {0};
    soju_watchdog *w = soju_watchdog_start(1000, record, &f); /* checks every second */
    double t0 = soju_now();
    soju_watchdog_stop(w);
    CHECK_MSG(soju_now() - t0 < 0.5, "stop took %.2f s", soju_now() - t0);
}

TEST_MAIN(no_limit_means_no_watchdog, a_host_wait_past_the_limit_fires_once_naming_it, short_host_waits_never_fire,
          nested_waits_count_from_the_outermost, a_stuck_device_fires_and_a_busy_one_does_not,
          an_idle_device_never_fires, a_reported_failure_fires_at_the_next_check, a_cleared_poll_is_not_called_again,
          stop_is_prompt)

/* Time and progress display. */
#define _POSIX_C_SOURCE 200809L
#include "soju/base.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

double soju_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 1234567 -> "1.23M" */
static void human(char *out, size_t n, double v) {
    const char *suffix[] = {"", "k", "M", "G", "T"};
    int i = 0;
    while (v >= 1000 && i < 4) v /= 1000, i++;
    snprintf(out, n, i ? "%.2f%s" : "%.0f%s", v, suffix[i]);
}

static void duration(char *out, size_t n, double s) {
    if (s < 0 || s > 1e7) { snprintf(out, n, "?"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(out, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(out, n, "%ld:%02ld", t / 60, t % 60);
}

void soju_progress_init(soju_progress *p, const char *label, const char *unit, double total) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->unit = unit;
    p->total = total;
    p->out = stderr;
    p->is_tty = isatty(fileno(stderr));
    p->t_start = p->t_last_draw = soju_now();
    p->log_every_s = 10.0;
}

void soju_progress_set_extra(soju_progress *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->extra, sizeof p->extra, fmt, ap);
    va_end(ap);
}

static void draw(soju_progress *p, int final) {
    double now = soju_now(), el = now - p->t_start;
    double rate = el > 0 ? p->done / el : 0;
    char r[32], d[32], t[32], eta[32], spent[32];
    human(r, sizeof r, rate);
    human(d, sizeof d, p->done);
    human(t, sizeof t, p->total);
    duration(spent, sizeof spent, el);
    duration(eta, sizeof eta, rate > 0 && p->total > 0 ? (p->total - p->done) / rate : -1);
    if (p->is_tty) {
        char bar[21] = "                    ";
        if (p->total > 0) {
            int fill = (int)(20.0 * p->done / p->total);
            for (int i = 0; i < fill && i < 20; i++) bar[i] = '#';
        }
        if (p->total > 0)
            fprintf(p->out, "\r%s [%s] %s/%s %s %s/s %s eta %s\033[K", p->label, bar, d, t, p->unit, r,
                    p->extra, eta);
        else
            fprintf(p->out, "\r%s %s %s %s/s %s %s\033[K", p->label, d, p->unit, r, p->extra, spent);
        if (final) fputc('\n', p->out);
    } else {
        if (p->total > 0)
            fprintf(p->out, "%s: %s/%s %s (%.1f%%) %s/s %s elapsed %s eta %s\n", p->label, d, t, p->unit,
                    100.0 * p->done / p->total, r, p->extra, spent, eta);
        else
            fprintf(p->out, "%s: %s %s %s/s %s elapsed %s\n", p->label, d, p->unit, r, p->extra, spent);
    }
    fflush(p->out);
    p->t_last_draw = now;
}

void soju_progress_update(soju_progress *p, double done) {
    p->done = done;
    double now = soju_now();
    double every = p->is_tty ? 0.1 : p->log_every_s;
    if (now - p->t_last_draw >= every) draw(p, 0);
}

void soju_progress_finish(soju_progress *p) { draw(p, 1); }

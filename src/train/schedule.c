/* Learning-rate schedules (formulas in soju/train.h).
 *
 * Warmup is linear from peak/W at the first step to the peak at step W-1, so
 * no step is wasted at lr = 0. Cosine (Loshchilov & Hutter's SGDR without
 * restarts) decays to a floor; warmup-stable-decay (WSD, as in MiniCPM and
 * "Scaling Laws and Compute-Optimal Training Beyond Fixed Training Durations")
 * holds the peak and spends its last decay_frac of steps cooling down,
 * linearly or along 1 - sqrt. */
#include <math.h>
#include <string.h>

#include "soju/train.h"

static const char *sched_names[] = {"cosine", "wsd", "constant"};
static const char *shape_names[] = {"linear", "sqrt"};

const char *soju_sched_name(soju_sched_kind k) { return (unsigned)k < 3 ? sched_names[k] : "?"; }
const char *soju_decay_shape_name(soju_decay_shape d) { return (unsigned)d < 2 ? shape_names[d] : "?"; }

int soju_sched_parse(const char *name, soju_sched_kind *k) {
    for (int i = 0; i < 3; i++)
        if (name && !strcmp(name, sched_names[i])) return *k = (soju_sched_kind)i, 0;
    return -1;
}

int soju_decay_shape_parse(const char *name, soju_decay_shape *d) {
    if (name && !strcmp(name, "1-sqrt")) return *d = SOJU_DECAY_SQRT, 0;
    for (int i = 0; i < 2; i++)
        if (name && !strcmp(name, shape_names[i])) return *d = (soju_decay_shape)i, 0;
    return -1;
}

int soju_lr_schedule_check(const soju_lr_schedule *s, soju_err *err) {
    if (!(s->peak_lr > 0) || !isfinite(s->peak_lr)) return soju_errf(err, SOJU_EARG, "learning rate must be > 0");
    if (s->total_steps <= 0) return soju_errf(err, SOJU_EARG, "total steps must be > 0");
    if (s->warmup_steps < 0 || s->warmup_steps > s->total_steps)
        return soju_errf(err, SOJU_EARG, "warmup %ld steps is outside [0, %ld]", s->warmup_steps, s->total_steps);
    if (!(s->min_lr_frac >= 0 && s->min_lr_frac <= 1))
        return soju_errf(err, SOJU_EARG, "min lr fraction %g is outside [0, 1]", s->min_lr_frac);
    if (!(s->decay_frac >= 0 && s->decay_frac <= 1))
        return soju_errf(err, SOJU_EARG, "decay fraction %g is outside [0, 1]", s->decay_frac);
    if ((unsigned)s->kind > SOJU_SCHED_CONSTANT || (unsigned)s->decay_shape > SOJU_DECAY_SQRT)
        return soju_errf(err, SOJU_EARG, "unknown schedule");
    return SOJU_OK;
}

double soju_lr_at(const soju_lr_schedule *s, long step) {
    const double peak = s->peak_lr, floor_lr = s->peak_lr * s->min_lr_frac;
    const long W = s->warmup_steps, N = s->total_steps;
    if (step < W) return peak * (double)(step + 1) / (double)W;
    switch (s->kind) {
    case SOJU_SCHED_CONSTANT: return peak;
    case SOJU_SCHED_COSINE: {
        if (N <= W) return peak;
        double p = (double)(step - W) / (double)(N - W);
        if (p > 1) p = 1;
        return floor_lr + (peak - floor_lr) * 0.5 * (1.0 + cos(M_PI * p));
    }
    case SOJU_SCHED_WSD: {
        long D = N - lround(s->decay_frac * (double)N);
        if (D < W) D = W;
        if (step < D || N <= D) return peak;
        double p = (double)(step - D) / (double)(N - D);
        if (p > 1) p = 1;
        double f = s->decay_shape == SOJU_DECAY_SQRT ? sqrt(p) : p;
        return floor_lr + (peak - floor_lr) * (1.0 - f);
    }
    }
    return peak;
}

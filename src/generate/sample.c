/* Sampling the next token from logits: greedy, temperature, top-k, top-p.
 *
 *   p_i = softmax(logits / temperature)           (computed in double, max subtracted)
 *   top-k: keep the k most likely (ties: lower id first)
 *   top-p: renormalize, keep the smallest most-likely-first prefix with mass >= p
 *   draw u ~ U[0, kept mass) and walk the kept list
 *
 * Only candidates are sorted: with top-k the k best are selected by a bounded
 * insertion pass (k is small), otherwise all ids are sorted once. */
#define _GNU_SOURCE /* qsort_r */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "soju/generate.h"

int soju_sampler_init(soju_sampler *s, int vocab, const soju_sample_opts *o, uint64_t seed, soju_err *err) {
    memset(s, 0, sizeof *s);
    if (vocab <= 0) return soju_errf(err, SOJU_EARG, "sampler: vocab size %d", vocab);
    if (!isfinite(o->temperature) || o->temperature < 0)
        return soju_errf(err, SOJU_EARG, "temperature must be >= 0 (got %g)", o->temperature);
    if (!(o->top_p >= 0 && o->top_p <= 1)) return soju_errf(err, SOJU_EARG, "top-p must be in [0, 1] (got %g)", o->top_p);
    if (o->top_k < 0) return soju_errf(err, SOJU_EARG, "top-k must be >= 0 (got %d)", o->top_k);
    s->opts = *o;
    s->vocab = vocab;
    s->probs = soju_malloc(sizeof *s->probs * (size_t)vocab);
    s->ids = soju_malloc(sizeof *s->ids * (size_t)vocab);
    soju_rng_seed(&s->rng, seed);
    return SOJU_OK;
}

void soju_sampler_free(soju_sampler *s) {
    free(s->probs);
    free(s->ids);
    memset(s, 0, sizeof *s);
}

/* Is candidate a ahead of b: larger logit, then lower id. */
static int ahead(const float *logits, int a, int b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); }

static int by_logit(const void *x, const void *y, void *logits) {
    int a = *(const int *)x, b = *(const int *)y;
    return ahead(logits, a, b) ? -1 : ahead(logits, b, a) ? 1 : 0;
}

static int argmax(const float *logits, int V) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

int soju_sample_candidates(soju_sampler *s, const float *logits) {
    const int V = s->vocab;
    const soju_sample_opts *o = &s->opts;
    if (o->temperature <= 0 || o->top_k == 1) {
        s->ids[0] = argmax(logits, V);
        s->probs[0] = 1.0;
        return 1;
    }
    /* Candidates in order, most likely first. */
    int n;
    if (o->top_k > 0 && o->top_k < V) {
        n = 0;
        for (int i = 0; i < V; i++) {
            if (n == o->top_k && !ahead(logits, i, s->ids[n - 1])) continue;
            int j = n < o->top_k ? n++ : n - 1;
            while (j > 0 && ahead(logits, i, s->ids[j - 1])) s->ids[j] = s->ids[j - 1], j--;
            s->ids[j] = i;
        }
    } else {
        n = V;
        for (int i = 0; i < V; i++) s->ids[i] = i;
        qsort_r(s->ids, (size_t)V, sizeof *s->ids, by_logit, (void *)logits);
    }
    /* Softmax over the candidates at this temperature (the others have no mass). */
    const double inv_t = 1.0 / o->temperature, top = logits[s->ids[0]];
    double total = 0;
    for (int i = 0; i < n; i++) total += s->probs[i] = exp(((double)logits[s->ids[i]] - top) * inv_t);
    for (int i = 0; i < n; i++) s->probs[i] /= total;
    if (o->top_p > 0 && o->top_p < 1) {
        /* A relative slack of 1e-12 keeps a sum that is p up to rounding from pulling in one more token. */
        double mass = 0;
        int keep = 0;
        while (keep < n && mass < o->top_p * (1 - 1e-12)) mass += s->probs[keep++];
        n = keep;
        for (int i = 0; i < n; i++) s->probs[i] /= mass;
    }
    while (n > 1 && s->probs[n - 1] == 0) n--; /* underflowed tails can never be drawn */
    return n;
}

int32_t soju_sample(soju_sampler *s, const float *logits) {
    int n = soju_sample_candidates(s, logits);
    if (n == 1) return s->ids[0];
    double u = soju_rng_double(&s->rng), acc = 0;
    for (int i = 0; i < n; i++) {
        acc += s->probs[i];
        if (u < acc) return s->ids[i];
    }
    return s->ids[n - 1]; /* u landed in the rounding gap at the top */
}

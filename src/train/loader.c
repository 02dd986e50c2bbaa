/* The data loader: token shards -> (B, T) micro-batches (see soju/train.h for
 * the sample layout, the stream order and the worker split).
 *
 * Everything about the order is a pure function of (seed, epoch, shard), so the
 * loader's state is just (epoch, pos). Two things are cached because they are
 * costly to rebuild per sample: the shard order of the current epoch (with the
 * running sample counts) and the sample permutation of the current shard. */
#include <stdlib.h>
#include <string.h>

#include "soju/train.h"

struct soju_loader {
    soju_loader_opts o;
    int n;                 /* shards */
    soju_shard *shards;
    uint64_t *samples;     /* per shard: (n_tokens - 1) / T */
    uint64_t total;        /* samples in one epoch */
    uint64_t tokens;
    soju_loader_state st;

    /* cache: stream order of epoch `order_epoch` */
    uint64_t order_epoch;
    int order_valid;
    uint64_t *order;       /* order[k] = shard visited k-th */
    uint64_t *first;       /* first[k] = stream position of its first sample; first[n] = total */

    /* cache: sample permutation of shard `perm_shard` in epoch `perm_epoch` */
    uint64_t perm_epoch;
    int perm_shard;
    uint64_t *perm;
    size_t perm_cap;

    uint32_t *window;      /* T + 1 tokens */
};

/* A seed for one (epoch, shard) pair; shard = -1 seeds the shard order. */
static uint64_t sub_seed(uint64_t seed, uint64_t epoch, int64_t shard) {
    uint64_t key[3] = {seed, epoch, (uint64_t)shard};
    return soju_hash64(key, sizeof key, 0x736f6a75 /* "soju" */);
}

int soju_loader_open(soju_loader **out, const soju_loader_opts *o, soju_err *err) {
    if (o->n_paths <= 0) return soju_errf(err, SOJU_EARG, "no token shards given");
    if (o->B <= 0 || o->T <= 0) return soju_errf(err, SOJU_EARG, "bad batch shape B=%d T=%d", o->B, o->T);
    if (o->world <= 0 || o->rank < 0 || o->rank >= o->world)
        return soju_errf(err, SOJU_EARG, "bad worker rank %d of %d", o->rank, o->world);
    soju_loader *l = soju_calloc(1, sizeof *l);
    l->o = *o;
    l->o.paths = NULL;
    l->n = o->n_paths;
    l->shards = soju_calloc((size_t)l->n, sizeof *l->shards);
    l->samples = soju_calloc((size_t)l->n, sizeof *l->samples);
    l->order = soju_calloc((size_t)l->n, sizeof *l->order);
    l->first = soju_calloc((size_t)l->n + 1, sizeof *l->first);
    l->window = soju_calloc((size_t)o->T + 1, sizeof *l->window);
    l->perm_shard = -1;
    for (int i = 0; i < l->n; i++) {
        int rc = soju_shard_open(&l->shards[i], o->paths[i], err);
        if (rc) {
            l->n = i; /* close only those opened */
            soju_loader_close(l);
            return rc;
        }
        const soju_shard_info *in = &l->shards[i].info;
        if (o->max_vocab && in->vocab_size > o->max_vocab) {
            soju_errf(err, SOJU_EFORMAT, "%s: vocab size %u exceeds the model's vocab_size %u", o->paths[i],
                      in->vocab_size, o->max_vocab);
            l->n = i + 1;
            soju_loader_close(l);
            return SOJU_EFORMAT;
        }
        l->samples[i] = in->n_tokens > (uint64_t)o->T ? (in->n_tokens - 1) / (uint64_t)o->T : 0;
        l->total += l->samples[i];
        l->tokens += in->n_tokens;
    }
    if (l->total == 0) {
        soju_errf(err, SOJU_EFORMAT, "%s%s: too short: no shard holds T+1 = %d tokens", o->paths[0],
                  l->n > 1 ? " (and the other shards)" : "", o->T + 1);
        soju_loader_close(l);
        return SOJU_EFORMAT;
    }
    *out = l;
    return SOJU_OK;
}

void soju_loader_close(soju_loader *l) {
    if (!l) return;
    for (int i = 0; i < l->n; i++) soju_shard_close(&l->shards[i]);
    free(l->shards);
    free(l->samples);
    free(l->order);
    free(l->first);
    free(l->perm);
    free(l->window);
    free(l);
}

uint64_t soju_loader_samples(const soju_loader *l) { return l->total; }
uint64_t soju_loader_tokens(const soju_loader *l) { return l->tokens; }
soju_loader_state soju_loader_get_state(const soju_loader *l) { return l->st; }
void soju_loader_set_state(soju_loader *l, soju_loader_state s) {
    l->st = s;
    l->st.pos %= l->total;
}
void soju_loader_rewind(soju_loader *l) { l->st.epoch = l->st.pos = 0; }

static void build_order(soju_loader *l, uint64_t epoch) {
    for (int i = 0; i < l->n; i++) l->order[i] = (uint64_t)i;
    if (l->o.shuffle) {
        soju_rng r;
        soju_rng_seed(&r, sub_seed(l->o.seed, epoch, -1));
        soju_rng_shuffle_u64(&r, l->order, (size_t)l->n);
    }
    l->first[0] = 0;
    for (int k = 0; k < l->n; k++) l->first[k + 1] = l->first[k] + l->samples[l->order[k]];
    l->order_epoch = epoch;
    l->order_valid = 1;
}

static void build_perm(soju_loader *l, uint64_t epoch, int shard) {
    size_t n = (size_t)l->samples[shard];
    if (n > l->perm_cap) {
        l->perm = soju_realloc(l->perm, n * sizeof *l->perm);
        l->perm_cap = n;
    }
    for (size_t i = 0; i < n; i++) l->perm[i] = i;
    soju_rng r;
    soju_rng_seed(&r, sub_seed(l->o.seed, epoch, shard));
    soju_rng_shuffle_u64(&r, l->perm, n);
    l->perm_epoch = epoch;
    l->perm_shard = shard;
}

/* Stream position q of an epoch -> (shard, first token of its sample). */
static void locate(soju_loader *l, uint64_t epoch, uint64_t q, int *shard, uint64_t *start) {
    if (!l->order_valid || l->order_epoch != epoch) build_order(l, epoch);
    int lo = 0, hi = l->n - 1; /* last k with first[k] <= q (skipping empty shards) */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (l->first[mid] <= q) lo = mid;
        else hi = mid - 1;
    }
    while (l->first[lo + 1] <= q) lo++; /* land on a shard that has samples */
    int s = (int)l->order[lo];
    uint64_t local = q - l->first[lo];
    if (l->o.shuffle) {
        if (l->perm_shard != s || l->perm_epoch != epoch) build_perm(l, epoch, s);
        local = l->perm[local];
    }
    *shard = s;
    *start = local * (uint64_t)l->o.T;
}

int soju_loader_next(soju_loader *l, soju_batch_buf *b, soju_err *err) {
    const int B = l->o.B, T = l->o.T;
    for (int j = 0; j < B; j++) {
        uint64_t epoch = l->st.epoch;
        uint64_t q = l->st.pos + (uint64_t)l->o.rank * (uint64_t)B + (uint64_t)j;
        while (q >= l->total) q -= l->total, epoch++;
        int s;
        uint64_t start;
        locate(l, epoch, q, &s, &start);
        const soju_shard *sh = &l->shards[s];
        soju_shard_read(sh, start, (size_t)T + 1, l->window);
        int32_t *in = b->inputs + (size_t)j * T, *tg = b->targets + (size_t)j * T;
        for (int t = 0; t <= T; t++)
            if (l->window[t] >= sh->info.vocab_size)
                return soju_errf(err, SOJU_EFORMAT, "%s: token %u at index %llu is outside the vocab (%u)", sh->path,
                                 l->window[t], (unsigned long long)(start + (uint64_t)t), sh->info.vocab_size);
        for (int t = 0; t < T; t++) {
            in[t] = (int32_t)l->window[t];
            tg[t] = (int32_t)l->window[t + 1];
        }
        if (l->o.doc_mask) {
            /* A separator begins a new segment: positions restart, the doc id grows. */
            int32_t *pos = b->positions + (size_t)j * T, *doc = b->doc_ids + (size_t)j * T;
            uint32_t sep = sh->info.sep_token;
            int32_t p = 0, d = 0;
            for (int t = 0; t < T; t++) {
                if (t > 0 && l->window[t] == sep) p = 0, d++;
                pos[t] = p++;
                doc[t] = d;
            }
        }
    }
    b->has_doc_ids = l->o.doc_mask;
    l->st.pos += (uint64_t)B * (uint64_t)l->o.world;
    while (l->st.pos >= l->total) l->st.pos -= l->total, l->st.epoch++;
    return SOJU_OK;
}

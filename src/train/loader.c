/* The data loader: token shards -> (B, T) micro-batches (see soju/train.h for
 * the sample layout, the stream order and the worker split).
 *
 * Samples are numbered globally: shard 0's first, then shard 1's, ... In
 * sequential mode stream position q reads global sample q. In shuffled mode it
 * reads sample perm_e(q), where perm_e is a pseudorandom bijection of
 * [0, samples) keyed by (seed, epoch): every epoch visits every sample of
 * every shard once, and the shards are mixed from the first step (a corpus of
 * English and Korean shards does not arrive one language after the other).
 * The bijection is computed, not stored (a Feistel network, below), so the
 * loader's whole state is (epoch, pos) whatever the corpus size. */
#include <stdlib.h>
#include <string.h>

#include "soju/train.h"

struct soju_loader {
    soju_loader_opts o;
    int n;                 /* shards */
    soju_shard *shards;
    uint64_t *first;       /* first[k] = global index of shard k's first sample; first[n] = samples */
    uint64_t total;        /* samples in one epoch */
    uint64_t tokens;
    soju_loader_state st;
    uint32_t *window;      /* T + 1 tokens */
};

/* The key of an epoch's permutation. */
static uint64_t epoch_key(uint64_t seed, uint64_t epoch) {
    uint64_t key[2] = {seed, epoch};
    return soju_hash64(key, sizeof key, 0x736f6a75 /* "soju" */);
}

/* A bijection of [0, n) chosen by key. A balanced Feistel network permutes
 * the 2h-bit numbers (2^2h >= n, h as small as possible): split x into halves
 * L, R and apply four rounds (L, R) <- (R, L ^ F(R)), where F is a keyed
 * 64-bit mix cut to h bits; any F makes each round invertible. Values that
 * land outside [0, n) are fed through again ("cycle walking"), which stays a
 * bijection on [0, n) and takes fewer than 4 passes on average (2^2h < 4n). */
static uint64_t permute(uint64_t x, uint64_t n, uint64_t key) {
    if (n <= 1) return 0;
    int bits = 64 - __builtin_clzll(n - 1);
    if (bits & 1) bits++;
    int h = bits / 2;
    uint64_t mask = h >= 64 ? ~0ULL : (1ULL << h) - 1;
    do {
        uint64_t L = x >> h, R = x & mask;
        for (uint64_t round = 0; round < 4; round++) {
            uint64_t f = soju_mix64(R ^ key ^ (round * 0x9e3779b97f4a7c15ULL)) & mask;
            uint64_t t = L ^ f;
            L = R;
            R = t;
        }
        x = (L << h) | R;
    } while (x >= n);
    return x;
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
    l->first = soju_calloc((size_t)l->n + 1, sizeof *l->first);
    l->window = soju_calloc((size_t)o->T + 1, sizeof *l->window);
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
        uint64_t samples = in->n_tokens > (uint64_t)o->T ? (in->n_tokens - 1) / (uint64_t)o->T : 0;
        l->first[i + 1] = l->first[i] + samples;
        l->total += samples;
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
    free(l->first);
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

/* Stream position q of an epoch -> (shard, first token of its sample). */
static void locate(const soju_loader *l, uint64_t epoch, uint64_t q, int *shard, uint64_t *start) {
    uint64_t g = l->o.shuffle ? permute(q, l->total, epoch_key(l->o.seed, epoch)) : q;
    int lo = 0, hi = l->n - 1; /* the last shard k with first[k] <= g; empty shards share its first[] */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (l->first[mid] <= g) lo = mid;
        else hi = mid - 1;
    }
    *shard = lo;
    *start = (g - l->first[lo]) * (uint64_t)l->o.T;
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

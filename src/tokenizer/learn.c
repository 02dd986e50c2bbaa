/* Learning BPE merges from counted words (training and vocabulary extension).
 *
 * Each distinct word is an array of symbols with a count. Pair counts are
 * kept in a hash table, each pair with the list of words it occurs in, and
 * a max-heap orders pairs by count. A merge rewrites only the words that
 * hold the pair and adjusts the counts of the neighbouring pairs by the
 * word's count (no recount): for ... p a b n ... → ... p X n ... the pairs
 * (p,a), (a,b), (b,n) lose and (p,X), (X,n) gain. Counts only fall except
 * for pairs that contain the new token, which are pushed after the merge,
 * so a heap entry whose count is stale can be refreshed when it is popped
 * (lazy deletion). Memory is proportional to the distinct words. */
#include <stdlib.h>
#include <string.h>

#include "learn.h"

typedef struct pair_info {
    uint32_t a, b;
    int64_t count;
    uint32_t *where; /* words holding the pair (may hold stale or repeated entries) */
    uint32_t n_where, cap_where;
    uint32_t gained_at; /* the last merge step that raised its count */
} pair_info;

typedef struct heap_item {
    int64_t count;
    uint32_t a, b, idx;
} heap_item;

typedef struct learner {
    tok_learn_input *in;
    pair_info *pairs;
    size_t n_pairs, cap_pairs;
    tok_pair_map index; /* (a,b) → pair index (stored in the rank field) */
    heap_item *heap;
    size_t n_heap, cap_heap;
    uint32_t *stamp;    /* per word: the last merge that visited it */
    uint32_t *touched;  /* pairs that gained during the current merge */
    size_t n_touched, cap_touched;
    uint32_t step;      /* merges done so far, from 1 */
} learner;

/* Higher count first; on ties the smaller pair, so training is deterministic. */
static int heap_before(const heap_item *x, const heap_item *y) {
    if (x->count != y->count) return x->count > y->count;
    if (x->a != y->a) return x->a < y->a;
    return x->b < y->b;
}

static void heap_push(learner *L, heap_item it) {
    if (L->n_heap == L->cap_heap) {
        L->cap_heap = L->cap_heap ? 2 * L->cap_heap : 4096;
        L->heap = soju_realloc(L->heap, L->cap_heap * sizeof *L->heap);
    }
    size_t i = L->n_heap++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (!heap_before(&it, &L->heap[p])) break;
        L->heap[i] = L->heap[p];
        i = p;
    }
    L->heap[i] = it;
}

static heap_item heap_pop(learner *L) {
    heap_item top = L->heap[0], last = L->heap[--L->n_heap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= L->n_heap) break;
        if (c + 1 < L->n_heap && heap_before(&L->heap[c + 1], &L->heap[c])) c++;
        if (!heap_before(&L->heap[c], &last)) break;
        L->heap[i] = L->heap[c];
        i = c;
    }
    if (L->n_heap) L->heap[i] = last;
    return top;
}

static uint32_t pair_find(const learner *L, uint32_t a, uint32_t b) {
    const tok_pair_slot *s = tok_pair_get(&L->index, a, b);
    return s ? s->rank : UINT32_MAX;
}

static uint32_t pair_get_or_add(learner *L, uint32_t a, uint32_t b, int *created) {
    uint32_t i = pair_find(L, a, b);
    *created = 0;
    if (i != UINT32_MAX) return i;
    if (L->n_pairs == L->cap_pairs) {
        L->cap_pairs = L->cap_pairs ? 2 * L->cap_pairs : 4096;
        L->pairs = soju_realloc(L->pairs, L->cap_pairs * sizeof *L->pairs);
    }
    i = (uint32_t)L->n_pairs++;
    L->pairs[i] = (pair_info){a, b, 0, NULL, 0, 0, 0};
    tok_pair_put(&L->index, a, b, i, 0);
    *created = 1;
    return i;
}

static void add_where(pair_info *p, uint32_t w) {
    if (p->n_where && p->where[p->n_where - 1] == w) return;
    if (p->n_where == p->cap_where) {
        p->cap_where = p->cap_where ? 2 * p->cap_where : 4;
        p->where = soju_realloc(p->where, p->cap_where * sizeof *p->where);
    }
    p->where[p->n_where++] = w;
}

static void gain(learner *L, uint32_t a, uint32_t b, int64_t c, uint32_t w) {
    int created;
    uint32_t i = pair_get_or_add(L, a, b, &created);
    pair_info *p = &L->pairs[i];
    if (p->gained_at != L->step) {
        /* First gain in this merge: remember to push it afterwards. */
        p->gained_at = L->step;
        if (L->n_touched == L->cap_touched) {
            L->cap_touched = L->cap_touched ? 2 * L->cap_touched : 1024;
            L->touched = soju_realloc(L->touched, L->cap_touched * sizeof *L->touched);
        }
        L->touched[L->n_touched++] = i;
    }
    p->count += c;
    add_where(p, w);
}

static void lose(learner *L, uint32_t a, uint32_t b, int64_t c) {
    uint32_t i = pair_find(L, a, b);
    if (i != UINT32_MAX) L->pairs[i].count -= c;
}

/* Rewrite word w, replacing each (a,b) by x, left to right. */
static void merge_word(learner *L, uint32_t w, uint32_t a, uint32_t b, uint32_t x) {
    tok_learn_input *in = L->in;
    uint32_t *s = in->sym + in->word_off[w];
    uint32_t n = in->word_len[w];
    int64_t c = (int64_t)in->word_count[w];
    for (uint32_t i = 0; i + 1 < n;) {
        if (s[i] != a || s[i + 1] != b) {
            i++;
            continue;
        }
        if (i > 0) {
            lose(L, s[i - 1], a, c);
            gain(L, s[i - 1], x, c, w);
        }
        if (i + 2 < n) {
            lose(L, b, s[i + 2], c);
            gain(L, x, s[i + 2], c, w);
        }
        /* (a,b) itself is not decremented: its count is zeroed after the merge. */
        s[i] = x;
        memmove(s + i + 1, s + i + 2, (n - i - 2) * sizeof *s);
        n--;
        i++;
    }
    in->word_len[w] = n;
}

int tok_learn(tok_learn_input *in, tok_learn_output *out, const tok_learn_opts *o) {
    learner L = {0};
    L.in = in;
    tok_pair_init(&L.index, 1 << 16);
    L.stamp = soju_calloc(in->n_words ? in->n_words : 1, sizeof *L.stamp);
    for (size_t w = 0; w < in->n_words; w++) {
        const uint32_t *s = in->sym + in->word_off[w];
        for (uint32_t i = 0; i + 1 < in->word_len[w]; i++) {
            int created;
            uint32_t k = pair_get_or_add(&L, s[i], s[i + 1], &created);
            L.pairs[k].count += (int64_t)in->word_count[w];
            add_where(&L.pairs[k], (uint32_t)w);
        }
    }
    for (size_t k = 0; k < L.n_pairs; k++)
        heap_push(&L, (heap_item){L.pairs[k].count, L.pairs[k].a, L.pairs[k].b, (uint32_t)k});

    soju_progress bar;
    if (!o->quiet) soju_progress_init(&bar, "merges", "merge", (double)o->max_new_tokens);
    soju_buf cat = {0};
    while (out->n_new < o->max_new_tokens && L.n_heap) {
        heap_item top = heap_pop(&L);
        pair_info *p = &L.pairs[top.idx];
        if (p->count != top.count) {
            if (p->count > 0) heap_push(&L, (heap_item){p->count, p->a, p->b, top.idx});
            continue;
        }
        if (p->count < (int64_t)o->min_frequency || p->count <= 0) break;
        /* The new token's bytes; an existing token with the same bytes is reused. */
        size_t la, lb;
        const uint8_t *ba = tok_learn_bytes(in, p->a, &la), *bb = tok_learn_bytes(in, p->b, &lb);
        soju_buf_clear(&cat);
        soju_buf_append(&cat, ba, la);
        soju_buf_append(&cat, bb, lb);
        int found;
        tok_strmap_slot *slot = tok_strmap_upsert(&in->by_bytes, cat.data, cat.len, in->n_tok, &found);
        uint32_t x = slot->value;
        if (!found) {
            tok_learn_add_token(in, cat.data, cat.len);
            out->n_new++;
        }
        if (out->n_merges == out->cap_merges) {
            out->cap_merges = out->cap_merges ? 2 * out->cap_merges : 1024;
            out->merges = soju_realloc(out->merges, out->cap_merges * sizeof *out->merges);
        }
        out->merges[out->n_merges++] = (tok_merge){p->a, p->b, x};
        uint32_t step = ++L.step;
        uint32_t a = p->a, b = p->b, pidx = top.idx;
        L.n_touched = 0;
        /* Words listed for the pair; p may move when pairs grow, so index by pidx. */
        for (uint32_t k = 0; k < L.pairs[pidx].n_where; k++) {
            uint32_t w = L.pairs[pidx].where[k];
            if (L.stamp[w] == step) continue;
            L.stamp[w] = step;
            merge_word(&L, w, a, b, x);
        }
        p = &L.pairs[pidx];
        p->count = 0;
        free(p->where);
        p->where = NULL;
        p->n_where = p->cap_where = 0;
        for (size_t k = 0; k < L.n_touched; k++) {
            pair_info *q = &L.pairs[L.touched[k]];
            if (q->count > 0) heap_push(&L, (heap_item){q->count, q->a, q->b, L.touched[k]});
        }
        if (!o->quiet && (L.step & 255) == 0) soju_progress_update(&bar, (double)out->n_new);
    }
    if (!o->quiet) {
        soju_progress_update(&bar, (double)out->n_new);
        soju_progress_finish(&bar);
    }
    soju_buf_free(&cat);
    for (size_t k = 0; k < L.n_pairs; k++) free(L.pairs[k].where);
    free(L.pairs);
    tok_pair_free(&L.index);
    free(L.heap);
    free(L.stamp);
    free(L.touched);
    return SOJU_OK;
}

/* ---------------------------------------------------------------- inputs */

void tok_learn_input_init(tok_learn_input *in) {
    memset(in, 0, sizeof *in);
    tok_strmap_init(&in->by_bytes, 1 << 16);
}

void tok_learn_input_free(tok_learn_input *in) {
    free(in->sym);
    free(in->word_off);
    free(in->word_len);
    free(in->word_count);
    soju_buf_free(&in->bytes);
    free(in->tok_off);
    free(in->tok_len);
    tok_strmap_free(&in->by_bytes);
    memset(in, 0, sizeof *in);
}

uint32_t tok_learn_add_token(tok_learn_input *in, const void *bytes, size_t n) {
    if (in->n_tok == in->cap_tok) {
        in->cap_tok = in->cap_tok ? 2 * in->cap_tok : 1024;
        in->tok_off = soju_realloc(in->tok_off, in->cap_tok * sizeof *in->tok_off);
        in->tok_len = soju_realloc(in->tok_len, in->cap_tok * sizeof *in->tok_len);
    }
    in->tok_off[in->n_tok] = (uint32_t)in->bytes.len;
    in->tok_len[in->n_tok] = (uint32_t)n;
    soju_buf_append(&in->bytes, bytes, n);
    return in->n_tok++;
}

void tok_learn_add_word(tok_learn_input *in, const uint32_t *syms, uint32_t n, uint64_t count) {
    if (in->n_words == in->cap_words) {
        in->cap_words = in->cap_words ? 2 * in->cap_words : 1 << 16;
        in->word_off = soju_realloc(in->word_off, in->cap_words * sizeof *in->word_off);
        in->word_len = soju_realloc(in->word_len, in->cap_words * sizeof *in->word_len);
        in->word_count = soju_realloc(in->word_count, in->cap_words * sizeof *in->word_count);
    }
    if (in->n_sym + n > in->cap_sym) {
        in->cap_sym = (in->cap_sym ? 2 * in->cap_sym : 1 << 20) + n;
        in->sym = soju_realloc(in->sym, in->cap_sym * sizeof *in->sym);
    }
    in->word_off[in->n_words] = in->n_sym;
    in->word_len[in->n_words] = n;
    in->word_count[in->n_words] = count;
    memcpy(in->sym + in->n_sym, syms, n * sizeof *syms);
    in->n_sym += n;
    in->n_words++;
}

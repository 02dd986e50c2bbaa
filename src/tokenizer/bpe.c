/* BPE over one pre-token: repeatedly merge the adjacent pair with the lowest
 * rank, the leftmost one on ties, until no adjacent pair has a merge.
 *
 * Short pieces (almost all words) use a flat array: find the minimum by a
 * linear scan, merge, and re-rank only the two neighbouring pairs; that is
 * O(n^2) but n is the byte length of one word and the arrays stay in L1.
 * Long pieces (a megabyte of letters with no space would otherwise take
 * O(n^2)) use a doubly linked list and a binary min-heap of (rank, position)
 * with lazy deletion: an entry is checked against the current pair when it is
 * popped, so each merge costs O(log n). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define SHORT_PIECE TOK_SHORT_PIECE

static inline void rank_of(const soju_tokenizer *t, uint32_t a, uint32_t b, uint32_t *rank, uint32_t *merged) {
    const tok_pair_slot *s = tok_pair_get(&t->pairs, a, b);
    if (s) *rank = s->rank, *merged = s->merged;
    else *rank = SOJU_TOK_NONE, *merged = SOJU_TOK_NONE;
}

/* The flat-array path. rank[i]/mid[i] describe the pair (syms[i], syms[i+1]). */
static size_t merge_short(const soju_tokenizer *t, uint32_t *syms, size_t n, uint32_t *rank, uint32_t *mid) {
    for (;;) {
        uint32_t best = SOJU_TOK_NONE;
        size_t at = 0;
        for (size_t i = 0; i + 1 < n; i++)
            if (rank[i] < best) best = rank[i], at = i;
        if (best == SOJU_TOK_NONE) return n;
        syms[at] = mid[at];
        /* Close the gap left by syms[at+1]. */
        size_t tail = n - at - 2;
        memmove(syms + at + 1, syms + at + 2, tail * sizeof *syms);
        memmove(rank + at + 1, rank + at + 2, tail * sizeof *rank);
        memmove(mid + at + 1, mid + at + 2, tail * sizeof *mid);
        n--;
        if (at > 0) rank_of(t, syms[at - 1], syms[at], &rank[at - 1], &mid[at - 1]);
        if (at + 1 < n) rank_of(t, syms[at], syms[at + 1], &rank[at], &mid[at]);
        else rank[at] = SOJU_TOK_NONE;
    }
}

/* ---------------------------------------------------------------- long pieces */

typedef struct heap {
    uint64_t *a;
    size_t n;
} heap;

static void heap_push(heap *h, uint64_t v) {
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h->a[p] <= v) break;
        h->a[i] = h->a[p];
        i = p;
    }
    h->a[i] = v;
}

static uint64_t heap_pop(heap *h) {
    uint64_t top = h->a[0], v = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && h->a[c + 1] < h->a[c]) c++;
        if (h->a[c] >= v) break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n) h->a[i] = v;
    return top;
}

#define END UINT32_MAX

static size_t merge_long(const soju_tokenizer *t, uint32_t *syms, size_t n) {
    uint32_t *next = soju_malloc(n * sizeof *next), *prev = soju_malloc(n * sizeof *prev);
    heap h = {soju_malloc(2 * n * sizeof *h.a), 0};
    size_t heap_cap = 2 * n;
    for (size_t i = 0; i < n; i++) {
        next[i] = i + 1 < n ? (uint32_t)(i + 1) : END;
        prev[i] = i ? (uint32_t)(i - 1) : END;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        uint32_t r, m;
        rank_of(t, syms[i], syms[i + 1], &r, &m);
        if (r != SOJU_TOK_NONE) heap_push(&h, (uint64_t)r << 32 | i);
    }
    while (h.n) {
        uint64_t top = heap_pop(&h);
        uint32_t r = (uint32_t)(top >> 32), i = (uint32_t)top;
        if (syms[i] == END || next[i] == END) continue; /* removed, or now last */
        uint32_t j = next[i], cr, cm;
        rank_of(t, syms[i], syms[j], &cr, &cm);
        if (cr != r) continue; /* stale: the pair at i changed since it was pushed */
        syms[i] = cm;
        syms[j] = END;
        next[i] = next[j];
        if (next[j] != END) prev[next[j]] = i;
        if (h.n + 2 > heap_cap) {
            heap_cap *= 2;
            h.a = soju_realloc(h.a, heap_cap * sizeof *h.a);
        }
        if (prev[i] != END) {
            rank_of(t, syms[prev[i]], syms[i], &cr, &cm);
            if (cr != SOJU_TOK_NONE) heap_push(&h, (uint64_t)cr << 32 | prev[i]);
        }
        if (next[i] != END) {
            rank_of(t, syms[i], syms[next[i]], &cr, &cm);
            if (cr != SOJU_TOK_NONE) heap_push(&h, (uint64_t)cr << 32 | i);
        }
    }
    size_t k = 0;
    for (uint32_t i = 0; i != END; i = next[i]) syms[k++] = syms[i];
    free(next);
    free(prev);
    free(h.a);
    return k;
}

size_t tok_bpe_merge(const soju_tokenizer *t, uint32_t *syms, size_t n, uint32_t *scratch) {
    if (n < 2) return n;
    if (n > SHORT_PIECE) return merge_long(t, syms, n);
    uint32_t *rank = scratch, *mid = scratch + SHORT_PIECE;
    for (size_t i = 0; i + 1 < n; i++) rank_of(t, syms[i], syms[i + 1], &rank[i], &mid[i]);
    rank[n - 1] = SOJU_TOK_NONE;
    return merge_short(t, syms, n, rank, mid);
}

size_t tok_bpe_bytes(const soju_tokenizer *t, const uint8_t *bytes, size_t n, uint32_t *syms, uint32_t *scratch) {
    for (size_t i = 0; i < n; i++) syms[i] = t->byte_id[bytes[i]];
    if (n < 2) return n;
    if (n > SHORT_PIECE) return merge_long(t, syms, n);
    /* The first ranks come from the 256x256 table of byte pairs: no hashing. */
    uint32_t *rank = scratch, *mid = scratch + SHORT_PIECE;
    for (size_t i = 0; i + 1 < n; i++) {
        const tok_pair_slot *p = &t->pair0[(size_t)bytes[i] << 8 | bytes[i + 1]];
        rank[i] = p->rank;
        mid[i] = p->merged;
    }
    rank[n - 1] = SOJU_TOK_NONE;
    return merge_short(t, syms, n, rank, mid);
}

/* Hash tables of the tokenizer: byte strings → u32 (vocabularies, word
 * counts) and id pairs → merges. Both use open addressing with linear
 * probing at a load factor of at most 1/2, so a lookup touches one or two
 * cache lines. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static size_t table_size(size_t expected) {
    size_t n = 16;
    while (n < 2 * expected) n *= 2;
    return n;
}

/* ---------------------------------------------------------------- strings */

void tok_strmap_init(tok_strmap *m, size_t expected) {
    memset(m, 0, sizeof *m);
    size_t n = table_size(expected);
    m->slots = soju_calloc(n, sizeof *m->slots);
    m->mask = n - 1;
}

void tok_strmap_free(tok_strmap *m) {
    free(m->slots);
    soju_buf_free(&m->pool);
    memset(m, 0, sizeof *m);
}

static void strmap_grow(tok_strmap *m) {
    size_t n = (m->mask + 1) * 2;
    tok_strmap_slot *slots = soju_calloc(n, sizeof *slots);
    for (size_t i = 0; i <= m->mask; i++) {
        tok_strmap_slot *s = &m->slots[i];
        if (!s->used) continue;
        size_t j = s->hash & (n - 1);
        while (slots[j].used) j = (j + 1) & (n - 1);
        slots[j] = *s;
    }
    free(m->slots);
    m->slots = slots;
    m->mask = n - 1;
}

tok_strmap_slot *tok_strmap_upsert(tok_strmap *m, const void *key, size_t len, uint32_t init, int *found) {
    if (2 * (m->count + 1) > m->mask + 1) strmap_grow(m);
    uint64_t h = soju_hash64(key, len, 0);
    size_t i = h & m->mask;
    for (;;) {
        tok_strmap_slot *s = &m->slots[i];
        if (!s->used) {
            s->used = 1;
            s->hash = h;
            s->off = (uint32_t)m->pool.len;
            s->len = (uint32_t)len;
            s->value = init;
            soju_buf_append(&m->pool, key, len);
            m->count++;
            if (found) *found = 0;
            return s;
        }
        if (s->hash == h && s->len == len && !memcmp(m->pool.data + s->off, key, len)) {
            if (found) *found = 1;
            return s;
        }
        i = (i + 1) & m->mask;
    }
}

uint32_t tok_strmap_get(const tok_strmap *m, const void *key, size_t len) {
    if (!m->slots) return SOJU_TOK_NONE;
    uint64_t h = soju_hash64(key, len, 0);
    size_t i = h & m->mask;
    for (;;) {
        const tok_strmap_slot *s = &m->slots[i];
        if (!s->used) return SOJU_TOK_NONE;
        if (s->hash == h && s->len == len && !memcmp(m->pool.data + s->off, key, len)) return s->value;
        i = (i + 1) & m->mask;
    }
}

/* ---------------------------------------------------------------- pairs */

void tok_pair_init(tok_pair_map *m, size_t expected) {
    size_t n = table_size(expected);
    m->slots = soju_malloc(n * sizeof *m->slots);
    for (size_t i = 0; i < n; i++) m->slots[i].key = TOK_PAIR_EMPTY;
    m->mask = n - 1;
    m->count = 0;
}

void tok_pair_free(tok_pair_map *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static void pair_insert_slot(tok_pair_slot *slots, size_t mask, tok_pair_slot e) {
    size_t i = soju_mix64(e.key) & mask;
    while (slots[i].key != TOK_PAIR_EMPTY) i = (i + 1) & mask;
    slots[i] = e;
}

void tok_pair_put(tok_pair_map *m, uint32_t left, uint32_t right, uint32_t rank, uint32_t merged) {
    if (!m->slots) tok_pair_init(m, 1024);
    if (2 * (m->count + 1) > m->mask + 1) {
        size_t n = (m->mask + 1) * 2;
        tok_pair_slot *slots = soju_malloc(n * sizeof *slots);
        for (size_t i = 0; i < n; i++) slots[i].key = TOK_PAIR_EMPTY;
        for (size_t i = 0; i <= m->mask; i++)
            if (m->slots[i].key != TOK_PAIR_EMPTY) pair_insert_slot(slots, n - 1, m->slots[i]);
        free(m->slots);
        m->slots = slots;
        m->mask = n - 1;
    }
    uint64_t key = tok_pair_key(left, right);
    size_t i = soju_mix64(key) & m->mask;
    for (;;) {
        tok_pair_slot *s = &m->slots[i];
        if (s->key == key) {
            if (rank < s->rank) s->rank = rank, s->merged = merged;
            return;
        }
        if (s->key == TOK_PAIR_EMPTY) {
            s->key = key;
            s->rank = rank;
            s->merged = merged;
            m->count++;
            return;
        }
        i = (i + 1) & m->mask;
    }
}

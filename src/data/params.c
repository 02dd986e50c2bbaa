/* Per-language parameters, small hash tables and word sets for the filters. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "internal.h"
#include "soju/text.h"

const char *const data_lang_names[LANG_N] = {"en", "ko", "other"};

int data_lang_index(soju_doc *d) {
    const char *l = soju_doc_lang(d);
    if (!strcmp(l, "en")) return LANG_EN;
    if (!strcmp(l, "ko")) return LANG_KO;
    return LANG_OTHER;
}

static int load_level(const cJSON *cfg, const char *step, const data_param *ps, int nps, void *params, soju_err *err) {
    for (int i = 0; i < nps; i++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(cfg, ps[i].key);
        if (!it) continue;
        double v;
        if (soju_cfg_num(cfg, step, ps[i].key, 0, ps[i].lo, ps[i].hi, &v, err)) return SOJU_EARG;
        PARAM_AT(params, ps[i].off) = v;
    }
    return SOJU_OK;
}

int data_params_load(const cJSON *cfg, const char *step, const data_param *ps, int nps, void *params, size_t size,
                     const char *const *extra_keys, soju_err *err) {
    for (int l = 0; l < LANG_N; l++)
        for (int i = 0; i < nps; i++) PARAM_AT((char *)params + l * size, ps[i].off) = ps[i].dflt[l];
    if (!cfg) return SOJU_OK;
    /* Unknown keys are errors: a typo must not silently keep a default. */
    for (const cJSON *it = cfg->child; it; it = it->next) {
        int ok = 0;
        for (int i = 0; i < nps && !ok; i++) ok = !strcmp(it->string, ps[i].key);
        for (int l = 0; l < LANG_N && !ok; l++) ok = !strcmp(it->string, data_lang_names[l]);
        for (int i = 0; extra_keys && extra_keys[i] && !ok; i++) ok = !strcmp(it->string, extra_keys[i]);
        if (!ok) return soju_errf(err, SOJU_EARG, "step %s: unknown setting '%s'", step, it->string);
    }
    for (int l = 0; l < LANG_N; l++)
        if (load_level(cfg, step, ps, nps, (char *)params + l * size, err)) return SOJU_EARG;
    for (int l = 0; l < LANG_N; l++) {
        const cJSON *sub = cJSON_GetObjectItemCaseSensitive(cfg, data_lang_names[l]);
        if (!sub) continue;
        if (!cJSON_IsObject(sub)) return soju_errf(err, SOJU_EARG, "step %s: %s must be a mapping", step, data_lang_names[l]);
        for (const cJSON *it = sub->child; it; it = it->next) {
            int ok = 0;
            for (int i = 0; i < nps && !ok; i++) ok = !strcmp(it->string, ps[i].key);
            if (!ok) return soju_errf(err, SOJU_EARG, "step %s: unknown setting '%s.%s'", step, data_lang_names[l], it->string);
        }
        if (load_level(sub, step, ps, nps, (char *)params + l * size, err)) return SOJU_EARG;
    }
    return SOJU_OK;
}

/* ---------------------------------------------------------------- hash table */

void data_htab_reset(data_htab *t, size_t expected) {
    size_t want = 16;
    while (want < expected * 2) want *= 2;
    if (want > t->cap) {
        free(t->keys);
        free(t->counts);
        free(t->stamp);
        free(t->aux);
        t->cap = want;
        t->keys = soju_malloc(want * sizeof *t->keys);
        t->counts = soju_malloc(want * sizeof *t->counts);
        t->aux = soju_malloc(want * sizeof *t->aux);
        t->stamp = soju_calloc(want, sizeof *t->stamp);
        t->gen = 0;
    }
    if (++t->gen == 0) {
        memset(t->stamp, 0, t->cap * sizeof *t->stamp);
        t->gen = 1;
    }
    t->used = 0;
}

size_t data_htab_add(data_htab *t, uint64_t key) {
    size_t mask = t->cap - 1, i = (size_t)soju_mix64(key) & mask;
    for (;;) {
        if (t->stamp[i] != t->gen) {
            t->stamp[i] = t->gen;
            t->keys[i] = key;
            t->counts[i] = 1;
            t->aux[i] = 0;
            t->used++;
            return i;
        }
        if (t->keys[i] == key) {
            t->counts[i]++;
            return i;
        }
        i = (i + 1) & mask;
    }
}

size_t data_htab_find(const data_htab *t, uint64_t key) {
    if (!t->cap) return (size_t)-1;
    size_t mask = t->cap - 1, i = (size_t)soju_mix64(key) & mask;
    while (t->stamp[i] == t->gen) {
        if (t->keys[i] == key) return i;
        i = (i + 1) & mask;
    }
    return (size_t)-1;
}

void data_htab_free(data_htab *t) {
    free(t->keys);
    free(t->counts);
    free(t->stamp);
    free(t->aux);
    memset(t, 0, sizeof *t);
}

/* ---------------------------------------------------------------- word sets */

uint64_t data_hash_lower(const char *s, size_t n) {
    char tmp[64];
    if (n > sizeof tmp) return soju_hash64(s, n, 0);
    for (size_t i = 0; i < n; i++) tmp[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
    return soju_hash64(tmp, n, 0);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int data_hset_load(data_hset *s, const char *list, soju_err *err) {
    memset(s, 0, sizeof *s);
    soju_list l;
    if (soju_list_load(&l, list, err)) return SOJU_EIO;
    s->h = soju_malloc((l.items.len + 1) * sizeof *s->h);
    for (size_t i = 0; i < l.items.len; i++) s->h[s->n++] = data_hash_lower(l.items.data[i], strlen(l.items.data[i]));
    qsort(s->h, s->n, sizeof *s->h, cmp_u64);
    soju_list_free(&l);
    return SOJU_OK;
}

int data_hset_has(const data_hset *s, uint64_t h) {
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->h[mid] < h) lo = mid + 1;
        else hi = mid;
    }
    return lo < s->n && s->h[lo] == h;
}

void data_hset_free(data_hset *s) {
    free(s->h);
    memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------------- simplified words */

size_t data_simple_words(const char *s, size_t n, data_word_fn fn, void *ctx) {
    const uint8_t *p = (const uint8_t *)s;
    uint8_t word[256];
    size_t wl = 0, count = 0;
    for (size_t i = 0; i <= n;) {
        uint32_t c = ' ';
        int len = 1;
        if (i < n) {
            if (p[i] < 0x80) c = p[i];
            else if (!(len = soju_utf8_decode(p + i, n - i, &c))) len = 1, c = ' ';
        }
        int keep;
        if (c < 0x80) {
            keep = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
            if (c >= 'A' && c <= 'Z') c += 32;
            else if (c >= '0' && c <= '9') c = '0';
        } else if (c >= 0xAC00 && c <= 0xD7A3) {
            keep = 1;
        } else {
            utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
            keep = (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) || k == UTF8PROC_CATEGORY_ND ||
                   k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_MC;
            if (k == UTF8PROC_CATEGORY_ND) c = '0';
            else if (keep) c = (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
        }
        if (keep) {
            if (wl + 4 <= sizeof word) wl += (size_t)soju_utf8_encode(c, word + wl);
        } else if (wl) {
            fn(ctx, soju_hash64(word, wl, 0x5eed));
            count++;
            wl = 0;
        }
        i += (size_t)len;
    }
    return count;
}

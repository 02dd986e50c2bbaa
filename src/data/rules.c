/* Rule lists (one phrase per line, files in data/rules) and a multi-phrase
 * matcher over them.
 *
 * The matcher is Aho–Corasick compiled into a DFA over byte classes: every
 * byte that occurs in some phrase gets its own class, all other bytes share
 * class 0, so the transition table is states x classes instead of states x
 * 256. ASCII letters are folded to lower case on both sides. One pass over
 * the text finds every occurrence of every phrase. */
#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* ---------------------------------------------------------------- lists */

char *soju_rules_find(const char *name) {
    if (strchr(name, '/')) return soju_file_exists(name) ? soju_strdup(name) : NULL;
    const char *env = getenv("SOJU_RULES");
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    char dirs[4][PATH_MAX + 32];
    int nd = 0;
    if (env && *env) snprintf(dirs[nd++], sizeof dirs[0], "%s", env);
    snprintf(dirs[nd++], sizeof dirs[0], "data/rules");
    if (exe[0]) {
        snprintf(dirs[nd++], sizeof dirs[0], "%s/../data/rules", exe);
        snprintf(dirs[nd++], sizeof dirs[0], "%s/../../data/rules", exe);
    }
    for (int i = 0; i < nd; i++) {
        char *p = soju_path_join(dirs[i], name);
        if (soju_file_exists(p)) return p;
        free(p);
    }
    return NULL;
}

int soju_list_load(soju_list *l, const char *name, soju_err *err) {
    memset(l, 0, sizeof *l);
    char *path = soju_rules_find(name);
    if (!path) return soju_errf(err, SOJU_EIO, "rule list '%s' not found (looked in $SOJU_RULES and data/rules)", name);
    char *data;
    size_t len;
    int rc = soju_read_file(path, &data, &len, err);
    free(path);
    if (rc) return rc;
    char *save = NULL;
    for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        while (*line == ' ' || *line == '\t') line++;
        size_t k = strlen(line);
        while (k && (line[k - 1] == ' ' || line[k - 1] == '\t' || line[k - 1] == '\r')) line[--k] = 0;
        if (!k || line[0] == '#') continue;
        soju_vec_push(&l->items, soju_strdup(line));
    }
    free(data);
    return SOJU_OK;
}

void soju_list_free(soju_list *l) {
    for (size_t i = 0; i < l->items.len; i++) free(l->items.data[i]);
    soju_vec_free(&l->items);
}

int data_phrases_of(soju_phrases **out, const char *const *phrases, soju_err *err) {
    soju_list l = {{0}};
    for (int i = 0; phrases[i]; i++) soju_vec_push(&l.items, soju_strdup(phrases[i]));
    int rc = soju_phrases_build(out, &l, err);
    soju_list_free(&l);
    return rc;
}

int data_phrases_cfg(soju_phrases **out, const cJSON *cfg, const char *step, const char *key,
                     const char *const *dflt, soju_err *err) {
    const cJSON *it = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, key) : NULL;
    const char *names[16];
    int n = 0;
    if (!it) {
        for (; dflt[n] && n < 16; n++) names[n] = dflt[n];
    } else if (cJSON_IsString(it)) {
        names[n++] = it->valuestring;
    } else if (cJSON_IsArray(it)) {
        for (const cJSON *x = it->child; x && n < 16; x = x->next) {
            if (!cJSON_IsString(x)) return soju_errf(err, SOJU_EARG, "step %s: %s must list file names", step, key);
            names[n++] = x->valuestring;
        }
    } else {
        return soju_errf(err, SOJU_EARG, "step %s: %s must be a list file or a list of them", step, key);
    }
    /* All lists into one matcher: one pass over a text finds every phrase. */
    soju_list all = {{0}};
    for (int i = 0; i < n; i++) {
        soju_list l;
        if (soju_list_load(&l, names[i], err)) {
            soju_list_free(&all);
            return soju_err_prefix(err, SOJU_EIO, "step %s", step);
        }
        for (size_t k = 0; k < l.items.len; k++) soju_vec_push(&all.items, l.items.data[k]);
        l.items.len = 0;
        soju_list_free(&l);
    }
    int rc = soju_phrases_build(out, &all, err);
    soju_list_free(&all);
    return rc;
}

/* ---------------------------------------------------------------- matcher */

struct soju_phrases {
    uint8_t cls[256];      /* byte -> class */
    int n_cls;
    uint32_t *next;        /* n_states x n_cls transitions */
    uint32_t *hits;        /* phrases ending at a state (through failure links too) */
    int32_t *first;        /* one phrase id ending at a state, -1 if none */
    int n_states;
    char **items;          /* copies of the phrases */
    int n_items;
};

static inline uint8_t fold(uint8_t c) { return (uint8_t)((c >= 'A' && c <= 'Z') ? c + 32 : c); }

int soju_phrases_build(soju_phrases **out, const soju_list *l, soju_err *err) {
    soju_phrases *p = soju_calloc(1, sizeof *p);
    /* Byte classes. */
    p->n_cls = 1;
    size_t total = 1;
    for (size_t i = 0; i < l->items.len; i++) {
        for (const uint8_t *c = (const uint8_t *)l->items.data[i]; *c; c++) {
            uint8_t b = fold(*c);
            if (!p->cls[b]) {
                if (p->n_cls == 255) {
                    soju_phrases_free(p);
                    return soju_errf(err, SOJU_EARG, "phrase list uses too many distinct bytes");
                }
                p->cls[b] = (uint8_t)p->n_cls++;
                if (b >= 'a' && b <= 'z') p->cls[b - 32] = p->cls[b];
            }
            total++;
        }
    }
    /* Trie: next[] holds child links (0 = none; the root is state 0). */
    size_t cap = total;
    p->next = soju_calloc(cap * (size_t)p->n_cls, sizeof *p->next);
    p->hits = soju_calloc(cap, sizeof *p->hits);
    p->first = soju_malloc(cap * sizeof *p->first);
    for (size_t i = 0; i < cap; i++) p->first[i] = -1;
    p->n_states = 1;
    p->items = soju_calloc(l->items.len + 1, sizeof(char *));
    for (size_t i = 0; i < l->items.len; i++) {
        const uint8_t *c = (const uint8_t *)l->items.data[i];
        if (!*c) continue;
        p->items[p->n_items] = soju_strdup(l->items.data[i]);
        uint32_t s = 0;
        for (; *c; c++) {
            uint32_t *t = &p->next[(size_t)s * p->n_cls + p->cls[fold(*c)]];
            if (!*t) *t = (uint32_t)p->n_states++;
            s = *t;
        }
        p->hits[s]++;
        if (p->first[s] < 0) p->first[s] = p->n_items;
        p->n_items++;
    }
    /* Breadth-first: failure links turn the trie into a DFA. */
    uint32_t *fail = soju_calloc((size_t)p->n_states, sizeof *fail);
    uint32_t *queue = soju_malloc((size_t)p->n_states * sizeof *queue);
    size_t qh = 0, qt = 0;
    for (int c = 0; c < p->n_cls; c++) {
        uint32_t t = p->next[c];
        if (t) fail[t] = 0, queue[qt++] = t;
    }
    while (qh < qt) {
        uint32_t s = queue[qh++];
        p->hits[s] += p->hits[fail[s]];
        if (p->first[s] < 0) p->first[s] = p->first[fail[s]];
        for (int c = 0; c < p->n_cls; c++) {
            uint32_t *t = &p->next[(size_t)s * p->n_cls + c];
            uint32_t f = p->next[(size_t)fail[s] * p->n_cls + c];
            if (*t) {
                fail[*t] = f;
                queue[qt++] = *t;
            } else {
                *t = f;
            }
        }
    }
    free(fail);
    free(queue);
    *out = p;
    return SOJU_OK;
}

void soju_phrases_free(soju_phrases *p) {
    if (!p) return;
    for (int i = 0; i < p->n_items; i++) free(p->items[i]);
    free(p->items);
    free(p->next);
    free(p->hits);
    free(p->first);
    free(p);
}

size_t soju_phrases_count(const soju_phrases *p, const char *s, size_t n, int *which) {
    if (which) *which = -1;
    if (!p || !p->n_items) return 0;
    const uint8_t *b = (const uint8_t *)s;
    const uint32_t *next = p->next;
    const int nc = p->n_cls;
    size_t count = 0;
    uint32_t st = 0;
    for (size_t i = 0; i < n; i++) {
        st = next[(size_t)st * nc + p->cls[b[i]]];
        if (p->hits[st]) {
            if (!count && which) *which = p->first[st];
            count += p->hits[st];
        }
    }
    return count;
}

const char *soju_phrases_item(const soju_phrases *p, int i) { return i >= 0 && i < p->n_items ? p->items[i] : "?"; }

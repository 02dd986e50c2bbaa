/* Allocation that never returns NULL: running out of memory is not a
 * condition any caller in soju can recover from, so it is reported and fatal. */
#include "soju/base.h"

#include <stdlib.h>
#include <string.h>

static void *check(void *p, size_t n) {
    if (!p && n) {
        fprintf(stderr, "soju: out of memory (asked for %zu bytes)\n", n);
        abort();
    }
    return p;
}

void *soju_malloc(size_t n) { return check(malloc(n ? n : 1), n); }
void *soju_calloc(size_t count, size_t size) { return check(calloc(count ? count : 1, size ? size : 1), count * size); }
void *soju_realloc(void *p, size_t n) { return check(realloc(p, n ? n : 1), n); }

char *soju_strdup(const char *s) { return soju_strndup(s, strlen(s)); }

char *soju_strndup(const char *s, size_t n) {
    char *d = soju_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

void *soju_aligned_alloc(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) check(NULL, n);
    return p;
}

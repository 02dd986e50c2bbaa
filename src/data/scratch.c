/* The per-thread scratch state shared by the per-document steps: two text
 * buffers, a counting hash table and an array of hashes, grown on first use and reused for every
 * document a thread handles. Each kind uses the parts it needs. */
#include <stdlib.h>

#include "internal.h"

void *data_scratch_new(const soju_step *s) {
    (void)s;
    return soju_calloc(1, sizeof(data_scratch));
}

void data_scratch_free(void *p) {
    data_scratch *x = p;
    if (!x) return;
    soju_buf_free(&x->a);
    soju_buf_free(&x->b);
    data_htab_free(&x->tab);
    free(x->hashes);
    free(x);
}

/* Micro-batch host buffers: allocated once per run, refilled every step. */
#include <stdlib.h>

#include "soju/train.h"

void soju_batch_buf_init(soju_batch_buf *b, int B, int T) {
    size_t n = (size_t)B * (size_t)T;
    b->B = B;
    b->T = T;
    b->inputs = soju_calloc(n, sizeof(int32_t));
    b->targets = soju_calloc(n, sizeof(int32_t));
    b->positions = soju_calloc(n, sizeof(int32_t));
    b->doc_ids = soju_calloc(n, sizeof(int32_t));
    b->has_doc_ids = 0;
}

void soju_batch_buf_free(soju_batch_buf *b) {
    free(b->inputs);
    free(b->targets);
    free(b->positions);
    free(b->doc_ids);
    b->inputs = b->targets = b->positions = b->doc_ids = NULL;
}

soju_batch soju_batch_buf_view(const soju_batch_buf *b) {
    soju_batch v = {
        .B = b->B,
        .T = b->T,
        .inputs = b->inputs,
        .targets = b->targets,
        .positions = b->has_doc_ids ? b->positions : NULL,
        .doc_ids = b->has_doc_ids ? b->doc_ids : NULL,
    };
    return v;
}

/* Fuzz every per-document step on arbitrary bytes as document text
 * (invalid UTF-8, NULs, huge digit runs): normalize, langid, the filters,
 * web_garbage and PII must keep or drop, never crash or read out of bounds. */
#include <string.h>

#include "soju/data.h"

static const char *const kinds[] = {"normalize", "langid", "gopher_quality", "gopher_repetition", "c4",
                                    "fineweb", "web_garbage", "length", "pii"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    soju_err err;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        soju_step *s;
        if (soju_step_create(&s, kinds[k], NULL, &err)) continue;
        soju_doc d;
        soju_doc_init(&d, (const char *)data, size);
        soju_verdict v;
        soju_step_run1(s, &d, &v);
        soju_doc_free(&d);
        soju_step_free(s);
    }
    soju_pii_opts o;
    soju_pii_defaults(&o);
    soju_buf out = {0};
    uint64_t counts[SOJU_PII_COUNT] = {0};
    soju_pii_redact(&o, (const char *)data, size, &out, counts);
    soju_buf_free(&out);
    return 0;
}

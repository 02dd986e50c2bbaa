/* Fuzz the safetensors header parser and float conversion of every tensor. */
#include <stdlib.h>

#include "soju/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    soju_safetensors st;
    soju_err err;
    if (soju_st_parse(&st, data, size, "fuzz.safetensors", &err) != SOJU_OK) return 0;
    for (int i = 0; i < st.n_tensors; i++) {
        const soju_st_tensor *t = &st.tensors[i];
        size_t es = soju_dtype_size(t->dtype);
        size_t count = t->nbytes / es;
        if (count > (1u << 20)) continue;
        float *out = malloc((count ? count : 1) * sizeof(float));
        soju_st_read_f32(&st, t->name, out, count, &err);
        free(out);
    }
    soju_st_close(&st);
    return 0;
}

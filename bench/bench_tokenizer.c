/* bench_tokenizer — soju's encoding speed on a text file, line by line.
 *
 *   bench_tokenizer --tokenizer SPEC --file PATH [--threads N] [--repeat R]
 *
 * Each line is one document (as the Python peers in bench/tokenizer_bench.py
 * split the same file). Every repeat starts from fresh encoders, so the
 * pre-token cache is cold at the start of each run. Prints one line:
 *   soju MB/s <median> tokens <n> bytes <n> threads <n> */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "soju/tokenizer.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    const char *spec = NULL, *file = NULL;
    int threads = 1, repeat = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--tokenizer")) spec = argv[i + 1];
        else if (!strcmp(argv[i], "--file")) file = argv[i + 1];
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--repeat")) repeat = atoi(argv[i + 1]);
    }
    if (!spec || !file || threads < 1 || repeat < 1) {
        fprintf(stderr, "usage: bench_tokenizer --tokenizer SPEC --file PATH [--threads N] [--repeat R]\n");
        return 2;
    }
    soju_err err;
    soju_tokenizer *t;
    char *text;
    size_t len;
    if (soju_tok_load(spec, &t, &err) || soju_read_file(file, &text, &len, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    /* Lines as documents. */
    size_t n = 0, cap = 1024;
    size_t *off = malloc(cap * sizeof *off), *ln = malloc(cap * sizeof *ln);
    for (size_t p = 0; p <= len;) {
        char *nl = memchr(text + p, '\n', len - p);
        size_t e = nl ? (size_t)(nl - text) : len;
        if (n == cap) cap *= 2, off = realloc(off, cap * sizeof *off), ln = realloc(ln, cap * sizeof *ln);
        off[n] = p;
        ln[n++] = e - p;
        p = e + 1;
    }
    soju_set_num_threads(threads);
    double *rates = malloc((size_t)repeat * sizeof *rates);
    size_t tokens = 0;
    for (int r = 0; r < repeat; r++) {
        soju_tok_encoder **enc = malloc((size_t)threads * sizeof *enc);
        for (int i = 0; i < threads; i++) enc[i] = soju_tok_encoder_new(t);
        size_t total = 0;
        double t0 = soju_now();
#pragma omp parallel num_threads(threads) reduction(+ : total)
        {
            int tid = 0;
#ifdef _OPENMP
            tid = omp_get_thread_num();
#endif
            soju_ids ids = {0};
#pragma omp for schedule(dynamic, 64)
            for (size_t i = 0; i < n; i++) {
                ids.len = 0;
                soju_tok_encode(enc[tid], text + off[i], ln[i], 0, &ids);
                total += ids.len;
            }
            soju_ids_free(&ids);
        }
        double dt = soju_now() - t0;
        rates[r] = len / dt / 1e6;
        tokens = total;
        for (int i = 0; i < threads; i++) soju_tok_encoder_free(enc[i]);
        free(enc);
    }
    qsort(rates, (size_t)repeat, sizeof *rates, cmp_double);
    printf("soju MB/s %.2f tokens %zu bytes %zu threads %d\n", rates[repeat / 2], tokens, len, threads);
    free(rates);
    free(off);
    free(ln);
    free(text);
    soju_tok_free(t);
    return 0;
}

/* The CPU backend's matrix product (src/ops/cpu/gemm.c) against a plain
 * triple loop in double: every transposition, alpha and beta, shapes with
 * partial micro-tiles and several K-blocks, strided operands, the serial and
 * the threaded entry, and thread-count independence of the bits. */
#include "soju/ops.h"
#include "ops/cpu/cpu_ops.h"
#include "test.h"

static float *random_matrix(size_t n, uint64_t seed) {
    soju_rng rng;
    soju_rng_seed(&rng, seed);
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = soju_rng_normal(&rng);
    return x;
}

/* C = alpha op(A) op(B) + beta C in double; op(A) is M x K, op(B) K x N. */
static void reference(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                      float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)(ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
                     (tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
            double c = beta == 0.0f ? 0.0 : beta * (double)C[(size_t)i * ldc + j];
            C[(size_t)i * ldc + j] = (float)(alpha * s + c);
        }
}

/* One product both ways; operands carry 3 columns of padding (lda > width). */
static void check_shape(soju_backend *be, int ta, int tb, int M, int N, int K, float alpha, float beta, int serial) {
    int pad = 3, lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
    float *A = random_matrix(na, 1), *B = random_matrix(nb, 2), *C = random_matrix(nc, 3), *R = malloc(nc * sizeof(float));
    if (beta == 0.0f) /* beta = 0 must ignore C, even NaN */
        for (size_t i = 0; i < nc; i++) C[i] = NAN;
    memcpy(R, C, nc * sizeof(float));
    reference(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, R, ldc);
    if (serial) {
        float *ws = malloc((cpu_gemm_scratch_floats(M, N, K, 1) + 1) * sizeof(float));
        cpu_gemm_serial(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ws);
        free(ws);
    } else {
        cpu_gemm(be, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    }
    double worst = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double d = fabs((double)C[(size_t)i * ldc + j] - R[(size_t)i * ldc + j]);
            worst = d > worst || d != d ? d : worst;
        }
    /* the padding columns of C are never written */
    int untouched = 1;
    for (int i = 0; i < M; i++)
        for (int j = N; j < ldc; j++) untouched &= memcmp(&C[(size_t)i * ldc + j], &R[(size_t)i * ldc + j], 4) == 0;
    CHECK_MSG(worst <= 2e-5 * sqrt((double)K) * (fabs(alpha) + 1), "%c%c M %d N %d K %d alpha %g beta %g %s: max diff %g",
              ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, beta, serial ? "serial" : "threaded", worst);
    CHECK(untouched);
    free(A), free(B), free(C), free(R);
}

TEST(matches_reference) {
    soju_backend *be;
    soju_err err;
    CHECK_OK(soju_backend_create(&be, "cpu", &err));
    /* partial tiles in M (not a multiple of 14) and N (not of 32), K across
     * several K-blocks (> 384), rows split over threads, tiny M (BLAS path);
     * K = 1021 gives A a row stride of 1024 (padding 3), which the kernel
     * packs rather than reading in place (L1 set conflicts) */
    int shapes[][3] = {{1, 7, 5},       {15, 33, 9},    {16, 32, 16},  {29, 65, 31},
                       {100, 47, 400},  {257, 96, 800}, {64, 600, 70}, {31, 40, 1021}};
    float ab[][2] = {{1, 0}, {1, 1}, {0.5f, -2}};
    for (int s = 0; s < 8; s++)
        for (int t = 0; t < 4; t++)
            for (int v = 0; v < 3; v++)
                for (int serial = 0; serial < 2; serial++)
                    check_shape(be, t & 1, t >> 1, shapes[s][0], shapes[s][1], shapes[s][2], ab[v][0], ab[v][1],
                                serial);
    soju_backend_free(be);
}

/* Sums over k run in the same order for any thread count: identical bits. */
TEST(same_bits_for_any_thread_count) {
    soju_backend *be;
    soju_err err;
    CHECK_OK(soju_backend_create(&be, "cpu", &err));
    int M = 301, N = 130, K = 777;
    float *A = random_matrix((size_t)M * K, 4), *B = random_matrix((size_t)K * N, 5);
    float *C1 = calloc((size_t)M * N, sizeof(float)), *C2 = calloc((size_t)M * N, sizeof(float));
    int threads = soju_num_threads();
    soju_set_num_threads(1);
    cpu_gemm(be, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C1, N);
    soju_set_num_threads(3);
    cpu_gemm(be, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C2, N);
    soju_set_num_threads(threads);
    CHECK(memcmp(C1, C2, (size_t)M * N * sizeof(float)) == 0);
    free(A), free(B), free(C1), free(C2);
    soju_backend_free(be);
}

TEST_MAIN(matches_reference, same_bits_for_any_thread_count)

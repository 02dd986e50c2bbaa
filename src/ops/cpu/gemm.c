/* Single-precision matrix products for the CPU backend:
 *
 *   C (M, N) = alpha op(A) (M, K) op(B) (K, N) + beta C,   all row-major,
 *   op(X) = X or X^T (trans_a, trans_b), as cblas_sgemm with CblasRowMajor.
 *
 * Why not just OpenBLAS: at the shapes of a small transformer (K or N of a
 * few hundred) OpenBLAS's sgemm runs at about 70% of this CPU's fp32 peak,
 * and its threads wait on each other (sched_yield) inside every call. The
 * product here is the usual blocked design (Goto & van de Geijn, "Anatomy of
 * high-performance matrix multiplication", 2008, and BLIS) around an
 * AVX-512 micro-kernel, and synchronizes once per block of op(B):
 *
 *   - op(B) is cut into blocks of NC columns and KC rows; the threads pack a
 *     block together into panels of NR = 32 columns, k-major
 *     (panel[k][0..32)), which stay in L2; after one barrier they take
 *     chunks of rows of C dynamically, each packing its rows of op(A) into
 *     panels of MR = 14 rows (panel[k][0..14)), small enough to stay in L1
 *     while they meet every B panel of the block; an untransposed A is
 *     read in place instead (14 rows at a time; this saves the packing
 *     pass, about a tenth of the time at a small model's shapes), unless
 *     its row stride would crowd those rows into a few L1 sets;
 *   - the micro-kernel keeps a 14 x 32 block of C in 28 zmm registers and per
 *     k does 2 vector loads of B, 14 broadcasts of A and 28 FMAs, prefetching
 *     the B panel ahead (it streams from L2) and the C tile it ends with.
 *
 * Each element of C is summed over k in the same order whatever the thread
 * count (K-blocks in order, k in order inside a block), so results are
 * deterministic and do not depend on the number of threads.
 *
 * Built without AVX-512, or for very few rows (packing all of op(B) would
 * then dominate: decoding), the same entry points call cblas_sgemm. */
#include <cblas.h>

#include "cpu_ops.h"

#define MR 14    /* rows of the micro-tile (broadcast operand) */
#define NR 32    /* columns of the micro-tile: two 16-float vectors */
#define KC 384   /* K-block: an A micro-panel (MR x KC) is 21 KB and stays in L1 */
#define NC 512   /* N-block: a packed B block (KC x NC) is 768 KB and stays in L2 */
#define MC 252   /* M-block: rows of op(A) packed at a time (a multiple of MR) */
#define MIN_M 16 /* below this many rows the product goes to BLAS */
#define PREFETCH_K 16 /* the kernel prefetches B this many k-steps ahead */

static int round_up(int x, int to) { return (x + to - 1) / to * to; }
static int min_int(int a, int b) { return a < b ? a : b; }

static void blas_fallback(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                          int ldb, float beta, float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
}

#ifdef __AVX512F__
#include <immintrin.h>

/* K is cut into equal blocks of at most KC rows. */
static int k_block(int K) {
    int blocks = (K + KC - 1) / KC;
    return blocks ? (K + blocks - 1) / blocks : 1;
}

/* ---------------------------------------------------------------- micro-kernel */

/* C[0..14)[0..32) = alpha * sum_k A[i][k] b[k][j] + beta * S, where S (stride
 * lds) is C itself or another matrix (a residual added on the way), and is
 * not read when beta == 0. b: NR floats per k (a packed panel). A[i][k] is
 * a[i * rs + k * ks]: a packed panel (rs = 1, ks = MR) or 14 rows of a
 * row-major matrix read in place (rs = lda, ks = 1). The rows are reached
 * from five base pointers (rows 0, 3, 6, 9, 12) plus 0, rs or 2 rs, which
 * x86 addressing does without extra registers. Inlined into the two
 * wrappers below, where rs and ks are known, so the compiler keeps all 28
 * accumulators and both B vectors in registers. */
static inline __attribute__((always_inline)) void kernel_tile(int kc, const float *a, long rs, long ks,
                                                              const float *restrict b, float *c, long ldc, float alpha,
                                                              float beta, const float *src, long lds) {
    __m512 zero = _mm512_setzero_ps();
    const float *base0 = a, *base1 = a + 3 * rs, *base2 = a + 6 * rs, *base3 = a + 9 * rs, *base4 = a + 12 * rs;
#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13)
#define DECLARE(i) __m512 c##i##a = zero, c##i##b = zero;
#define A_AT(i) ((i) < 3 ? base0 : (i) < 6 ? base1 : (i) < 9 ? base2 : (i) < 12 ? base3 : base4)[((i) % 3) * rs]
#define FMA_ROW(i)                                                                                                     \
    {                                                                                                                  \
        __m512 ai = _mm512_set1_ps(A_AT(i));                                                                           \
        c##i##a = _mm512_fmadd_ps(ai, b0, c##i##a);                                                                    \
        c##i##b = _mm512_fmadd_ps(ai, b1, c##i##b);                                                                    \
    }
    ROWS(DECLARE)
#define PREFETCH_ROW(i)                                                                                                \
    _mm_prefetch((const char *)(c + (long)(i) * ldc), _MM_HINT_T0);                                                    \
    _mm_prefetch((const char *)(c + (long)(i) * ldc + 16), _MM_HINT_T0);                                               \
    if (beta != 0.0f && src != c) {                                                                                    \
        _mm_prefetch((const char *)(src + (long)(i) * lds), _MM_HINT_T0);                                              \
        _mm_prefetch((const char *)(src + (long)(i) * lds + 16), _MM_HINT_T0);                                         \
    }
    ROWS(PREFETCH_ROW) /* the tile is written at the end */
    for (int k = 0; k < kc; k++) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        _mm_prefetch((const char *)(b + PREFETCH_K * NR), _MM_HINT_T0);
        _mm_prefetch((const char *)(b + PREFETCH_K * NR + 16), _MM_HINT_T0);
        ROWS(FMA_ROW)
        base0 += ks, base1 += ks, base2 += ks, base3 += ks, base4 += ks;
        b += NR;
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#define STORE_ROW(i)                                                                                                   \
    {                                                                                                                  \
        float *p = c + (long)(i) * ldc;                                                                                \
        const float *q = src + (long)(i) * lds;                                                                        \
        if (beta == 0.0f) {                                                                                            \
            _mm512_storeu_ps(p, _mm512_mul_ps(va, c##i##a));                                                           \
            _mm512_storeu_ps(p + 16, _mm512_mul_ps(va, c##i##b));                                                      \
        } else {                                                                                                       \
            _mm512_storeu_ps(p, _mm512_fmadd_ps(va, c##i##a, _mm512_mul_ps(vb, _mm512_loadu_ps(q))));                  \
            _mm512_storeu_ps(p + 16, _mm512_fmadd_ps(va, c##i##b, _mm512_mul_ps(vb, _mm512_loadu_ps(q + 16))));        \
        }                                                                                                              \
    }
    ROWS(STORE_ROW)
#undef ROWS
#undef DECLARE
#undef FMA_ROW
#undef A_AT
#undef STORE_ROW
#undef PREFETCH_ROW
}

/* A packed A micro-panel (MR floats per k). */
__attribute__((noinline)) static void kernel_14x32(int kc, const float *restrict a, const float *restrict b, float *c,
                                                   long ldc, float alpha, float beta, const float *src, long lds) {
    kernel_tile(kc, a, 1, MR, b, c, ldc, alpha, beta, src, lds);
}

/* 14 rows of a row-major op(A) (row stride lda), read where they are. */
__attribute__((noinline)) static void kernel_14x32_rows(int kc, const float *a, long lda, const float *restrict b,
                                                        float *c, long ldc, float alpha, float beta, const float *src,
                                                        long lds) {
    kernel_tile(kc, a, lda, 1, b, c, ldc, alpha, beta, src, lds);
}

/* A partial tile (mr < MR or nr < NR): the kernel writes a full tile into a
 * local buffer (the padding of the packed panels is zero), then the valid
 * part goes to C. a is a packed panel (lda = 0) or 14 whole rows in place. */
static void kernel_edge(int kc, const float *a, long lda, const float *b, float *c, long ldc, int mr, int nr,
                        float alpha, float beta, const float *src, long lds) {
    float tile[MR * NR] = {0}; /* (beta = 0: never read; initialized for the compiler) */
    if (lda) kernel_14x32_rows(kc, a, lda, b, tile, NR, alpha, 0.0f, tile, NR);
    else kernel_14x32(kc, a, b, tile, NR, alpha, 0.0f, tile, NR);
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++)
            c[(long)i * ldc + j] = beta == 0.0f ? tile[i * NR + j] : tile[i * NR + j] + beta * src[(long)i * lds + j];
}

/* ---------------------------------------------------------------- packing */

/* Transpose the 16 x 16 block held in r[0..16) (row i in r[i]) in registers:
 * 2-element, 4-element, 8-element, then 16-element interleaves. */
static inline void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
        __m512d c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0x88);
        t[4 + i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0xdd);
        t[8 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0x88);
        t[12 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0xdd);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
        r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd);
        r[4 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0x88);
        r[12 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0xdd);
    }
}

/* Packing reads operands that are usually not in cache (activations of a
 * few MB); the loops prefetch the source this far ahead (rows for pack_cols,
 * floats along a row for pack_rows), so they run at memory bandwidth rather
 * than latency. */
#define PREFETCH_ROWS 4
#define PREFETCH_FLOATS 64

/* Panels of `width` lanes from a matrix whose lanes are ROWS of src (stride
 * ld): dst[k * width + i] = src[i * ld + k] for i < n (0 for n <= i < width),
 * k < kc. 16 x 16 blocks go through registers. */
static void pack_rows(float *restrict dst, int width, const float *src, long ld, int n, int kc) {
    __m512 r[16];
    for (int i0 = 0; i0 < width; i0 += 16) {
        int lanes = width - i0 < 16 ? width - i0 : 16;
        __mmask16 keep = (__mmask16)((1u << lanes) - 1);
        int k = 0;
        for (; k + 16 <= kc; k += 16) {
            for (int i = 0; i < 16; i++) {
                const float *x = src + (long)(i0 + i) * ld + k;
                if (i0 + i < n) {
                    _mm_prefetch((const char *)(x + PREFETCH_FLOATS), _MM_HINT_T0);
                    r[i] = _mm512_loadu_ps(x);
                } else {
                    r[i] = _mm512_setzero_ps();
                }
            }
            transpose16(r);
            for (int j = 0; j < 16; j++) _mm512_mask_storeu_ps(dst + (long)(k + j) * width + i0, keep, r[j]);
        }
        for (; k < kc; k++)
            for (int i = 0; i < lanes; i++) dst[(long)k * width + i0 + i] = i0 + i < n ? src[(long)(i0 + i) * ld + k] : 0.0f;
    }
}

/* Consecutive panels of `width` lanes from a matrix whose lanes are COLUMNS
 * of src: panel p gets dst[p * kc * width + k * width + i] =
 * src[k * ld + p * width + i] for lanes p * width + i < n (0 beyond), k < kc.
 * Row by row, so each source row is read once, front to back. */
static void pack_cols(float *restrict dst, int width, const float *src, long ld, int n, int kc) {
    int panels = (n + width - 1) / width;
    for (int k = 0; k < kc; k++) {
        const float *row = src + (long)k * ld;
        if (k + PREFETCH_ROWS < kc)
            for (int c = 0; c < n; c += 16) _mm_prefetch((const char *)(row + PREFETCH_ROWS * ld + c), _MM_HINT_T0);
        for (int p = 0; p < panels; p++) {
            float *d = dst + ((long)p * kc + k) * width;
            for (int i0 = 0; i0 < width; i0 += 16) {
                int lanes = width - i0 < 16 ? width - i0 : 16, first = p * width + i0;
                int valid = n - first < 0 ? 0 : (n - first < lanes ? n - first : lanes);
                _mm512_mask_storeu_ps(d + i0, (__mmask16)((1u << lanes) - 1),
                                      _mm512_maskz_loadu_ps((__mmask16)((1u << valid) - 1), row + first));
            }
        }
    }
}

/* op(A) rows [i0, i0 + mc) x K-range [k0, k0 + kc) into MR-row panels, each kc x MR. */
static void pack_a(float *restrict ap, int ta, const float *A, long lda, int i0, int mc, int k0, int kc) {
    if (ta) { /* the rows of op(A) are columns of A */
        pack_cols(ap, MR, A + (long)k0 * lda + i0, lda, mc, kc);
        return;
    }
    for (int ir = 0; ir < mc; ir += MR) {
        int mr = mc - ir < MR ? mc - ir : MR;
        pack_rows(ap + (long)ir * kc, MR, A + (long)(i0 + ir) * lda + k0, lda, mr, kc);
    }
}

/* op(B) K-range [k0, k0 + kc) x columns [j0, j0 + nc) into NR-column panels, each kc x NR. */
static void pack_b(float *restrict bp, int tb, const float *B, long ldb, int j0, int nc, int k0, int kc) {
    if (!tb) {
        pack_cols(bp, NR, B + (long)k0 * ldb + j0, ldb, nc, kc);
        return;
    }
    for (int jr = 0; jr < nc; jr += NR) {
        int nr = nc - jr < NR ? nc - jr : NR;
        pack_rows(bp + (long)jr * kc, NR, B + (long)(j0 + jr) * ldb + k0, ldb, nr, kc);
    }
}

/* ---------------------------------------------------------------- blocked product */

typedef struct {
    int ta, tb, M, N, K, lda, ldb, ldc, kcs;
    int a_in_place; /* op(A) = A, read by the kernel where it is (see a_in_place) */
    float alpha, beta;
    const float *A, *B;
    float *C;
    const cpu_gemm_extra *ex; /* or NULL */
} gemm_args;

/* Rows [ic, ic + mc) of C against one packed block of op(B) (columns
 * [jc, jc + nc), K-block [pc, pc + kc)): ap holds the rows' packed A
 * panels (with A in place, only a last partial one), bp the block's B
 * panels. An A micro-panel stays in L1 while it meets each B panel, which
 * stream from L2. The first K-block brings in
 * beta C (or the extra addend), the last one hands each finished tile to
 * the extra's callback while it is still in L1. */
static void sweep(const gemm_args *g, const float *ap, int ic, int mc, const float *bp, int jc, int nc, int pc, int kc) {
    const cpu_gemm_extra *ex = g->ex;
    int first = pc == 0, last = pc + kc == g->K;
    float beta = first ? (ex && ex->add ? 1.0f : g->beta) : 1.0f;
    for (int ir = 0; ir < mc; ir += MR) {
        int mr = mc - ir < MR ? mc - ir : MR;
        for (int jr = 0; jr < nc; jr += NR) {
            int nr = nc - jr < NR ? nc - jr : NR, i0 = ic + ir, j0 = jc + jr;
            float *c = g->C + (long)i0 * g->ldc + j0;
            const float *src = c;
            long lds = g->ldc;
            if (first && ex && ex->add) src = ex->add + (long)i0 * ex->ld_add + j0, lds = ex->ld_add;
            int in_place = g->a_in_place && mr == MR;
            const float *a = ap + (long)ir * kc, *b = bp + (long)jr * kc;
            long lda = 0; /* 0: a packed panel; else 14 rows in place */
            if (in_place) a = g->A + (long)i0 * g->lda + pc, lda = g->lda;
            if (mr == MR && nr == NR && lda) kernel_14x32_rows(kc, a, lda, b, c, g->ldc, g->alpha, beta, src, lds);
            else if (mr == MR && nr == NR) kernel_14x32(kc, a, b, c, g->ldc, g->alpha, beta, src, lds);
            else kernel_edge(kc, a, lda, b, c, g->ldc, mr, nr, g->alpha, beta, src, lds);
            if (last && ex && ex->tile_done) ex->tile_done(ex->ctx, g->C, g->ldc, i0, j0, mr, nr);
        }
    }
}

/* The A panels sweep needs for rows [ic, ic + mc), K-block [pc, pc + kc). */
static void prepare_a(const gemm_args *g, float *ap, int ic, int mc, int pc, int kc) {
    if (!g->a_in_place) {
        pack_a(ap, g->ta, g->A, g->lda, ic, mc, pc, kc);
        return;
    }
    int full = mc / MR * MR; /* whole micro-panels are read in place */
    if (full < mc) pack_a(ap + (long)full * kc, g->ta, g->A, g->lda, ic + full, mc - full, pc, kc);
}

/* Rows [i0, i0 + n) of C are final (every column, every K-block). */
static void rows_done(const gemm_args *g, int i0, int n) {
    if (g->ex && g->ex->rows_done) g->ex->rows_done(g->ex->ctx, g->C, g->ldc, i0, n);
}

/* The whole product on the calling thread: for each block of op(B), packed
 * into bp, every MC-row block of op(A) is packed into ap and swept. */
static void gemm_alone(const gemm_args *g, float *ap, float *bp) {
    for (int jc = 0; jc < g->N; jc += NC) {
        int nc = g->N - jc < NC ? g->N - jc : NC;
        for (int pc = 0; pc < g->K; pc += g->kcs) {
            int kc = g->K - pc < g->kcs ? g->K - pc : g->kcs;
            pack_b(bp, g->tb, g->B, g->ldb, jc, nc, pc, kc);
            for (int ic = 0; ic < g->M; ic += MC) {
                int mc = g->M - ic < MC ? g->M - ic : MC;
                prepare_a(g, ap, ic, mc, pc, kc);
                sweep(g, ap, ic, mc, bp, jc, nc, pc, kc);
                if (jc + nc == g->N && pc + kc == g->K) rows_done(g, ic, mc);
            }
        }
    }
}

/* The product on the whole OpenMP team (call inside a parallel region):
 * per block of op(B), the threads pack its panels together into a shared
 * buffer, meet at a barrier, then take chunks of rows dynamically, so a
 * thread slowed down by another process on its core takes fewer. Blocks
 * alternate between two buffers, so one barrier per block suffices: a
 * thread reaches the barrier of block p only after its chunks of block
 * p - 1, so once past it nobody reads block p - 1's buffer, which block
 * p + 1 then reuses. A chunk of rows meets the K-blocks in order (block
 * p + 1 starts after the barrier that ends block p), so sums keep their
 * order. */
static void gemm_team(const gemm_args *g, float *bp2[2], float *ap, int rows) {
    int t = omp_get_thread_num(), team = omp_get_num_threads(), block = 0;
    int chunks = (g->M + rows - 1) / rows;
    for (int jc = 0; jc < g->N; jc += NC) {
        int nc = g->N - jc < NC ? g->N - jc : NC, panels = (nc + NR - 1) / NR;
        for (int pc = 0; pc < g->K; pc += g->kcs, block++) {
            int kc = g->K - pc < g->kcs ? g->K - pc : g->kcs;
            float *bp = bp2[block & 1];
            int q0 = panels * t / team, q1 = panels * (t + 1) / team;
            if (q1 > q0) {
                int c1 = q1 * NR < nc ? q1 * NR : nc;
                pack_b(bp + (long)q0 * NR * kc, g->tb, g->B, g->ldb, jc + q0 * NR, c1 - q0 * NR, pc, kc);
            }
#pragma omp barrier
#pragma omp for schedule(dynamic, 1) nowait
            for (int c = 0; c < chunks; c++) {
                int ic = c * rows, mc = g->M - ic < rows ? g->M - ic : rows;
                prepare_a(g, ap, ic, mc, pc, kc);
                sweep(g, ap, ic, mc, bp, jc, nc, pc, kc);
                if (jc + nc == g->N && pc + kc == g->K) rows_done(g, ic, mc);
            }
        }
    }
}

static int use_kernel(int M, int N, int K) { return M >= MIN_M && N > 0 && K > 0; }

/* Whether the kernel can read op(A) = A (not transposed) in place instead
 * of packing it: the lines of one micro-panel (14 rows of kc floats) must
 * not crowd into a few sets of the L1 cache (64 sets of 12 64-byte lines),
 * as they do for a row stride that is a multiple of 1024 floats, where the
 * rows' j-th lines all fall into one set and evict each other. At most 8
 * lines of the panel per set leaves room for the B panel streaming past. */
static int a_in_place(int ta, int lda, int kc) {
    if (ta) return 0; /* (columns in place measured slower than packing them: strided rows of k) */
    int lines_in_set[64] = {0}, most = 0, row_lines = (kc * (int)sizeof(float) + 63) / 64;
    for (long i = 0; i < MR; i++)
        for (int j = 0; j < row_lines; j++) {
            int set = (int)((i * lda * (long)sizeof(float) / 64 + j) % 64);
            most = ++lines_in_set[set] > most ? lines_in_set[set] : most;
        }
    return most <= 8;
}

/* Packing room: A blocks of up to MC rows, B blocks of up to NC columns. */
static size_t a_block_floats(int M, int K) { return (size_t)round_up(min_int(M, MC), MR) * min_int(K, KC); }
static size_t b_block_floats(int N, int K) { return (size_t)round_up(min_int(N, NC), NR) * min_int(K, KC); }
#endif /* __AVX512F__ */

/* ---------------------------------------------------------------- entry points */

/* Room for two B blocks and one A block per thread (covers both entries). */
size_t cpu_gemm_scratch_floats(int M, int N, int K, int threads) {
    if (M <= 0 || N <= 0 || K <= 0) return 0;
    size_t a = (size_t)round_up(min_int(M, MC), MR) * min_int(K, KC);
    size_t b = (size_t)round_up(min_int(N, NC), NR) * min_int(K, KC);
    return 2 * b + (size_t)threads * a;
}

void cpu_gemm_serial(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                     float beta, float *C, int ldc, float *scratch) {
#ifdef __AVX512F__
    if (use_kernel(M, N, K)) {
        gemm_args g = {ta, tb, M, N, K, lda, ldb, ldc, k_block(K), a_in_place(ta, lda, k_block(K)), alpha, beta, A, B, C, NULL};
        gemm_alone(&g, scratch, scratch + a_block_floats(M, K));
        return;
    }
#endif
    (void)scratch;
    blas_fallback(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* Without the kernel: BLAS, with the extras applied around it. */
static void blas_with_extras(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                             int ldb, float beta, float *C, int ldc, const cpu_gemm_extra *ex) {
    if (ex && ex->add) { /* C = add, then C += product */
        if (ex->add != C)
            for (int i = 0; i < M; i++) memcpy(C + (long)i * ldc, ex->add + (long)i * ex->ld_add, N * sizeof(float));
        beta = 1.0f;
    }
    blas_fallback(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    if (ex && ex->tile_done) ex->tile_done(ex->ctx, C, ldc, 0, 0, M, N);
    if (ex && ex->rows_done) ex->rows_done(ex->ctx, C, ldc, 0, M);
}

void cpu_gemm_ex(soju_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc, const cpu_gemm_extra *ex) {
#ifdef __AVX512F__
    if (use_kernel(M, N, K)) {
        int nt = omp_get_max_threads();
        float *scratch = cpu_scratch(be, CPU_SCRATCH_GEMM, cpu_gemm_scratch_floats(M, N, K, nt));
        gemm_args g = {ta, tb, M, N, K, lda, ldb, ldc, k_block(K), a_in_place(ta, lda, k_block(K)), alpha, beta, A, B, C, ex};
        size_t b = b_block_floats(N, K), a = a_block_floats(M, K);
        float *bp2[2] = {scratch, scratch + b};
        /* Small chunks of rows (whole micro-panels) keep the threads' shares
         * within a chunk of each other; they cost nothing in traffic, since
         * every micro-panel of A meets the whole B block anyway. */
        int rows = round_up((M + 8 * nt - 1) / (8 * nt), MR);
        rows = rows > 4 * MR ? 4 * MR : rows;
#pragma omp parallel
        gemm_team(&g, bp2, scratch + 2 * b + a * omp_get_thread_num(), rows);
        return;
    }
#endif
    (void)be;
    blas_with_extras(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ex);
}

void cpu_gemm(soju_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    cpu_gemm_ex(be, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL);
}

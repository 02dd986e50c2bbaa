// Optional per-op GPU timing: with SOJU_CUDA_PROFILE=1 in the environment,
// the backend hands out a copy of its op table whose every entry records a
// CUDA event before and after the real op. At backend free it prints, per
// op, the calls, the GPU milliseconds between the events and the share of
// the total (stderr). Nothing is synchronized between ops, so the timeline
// is the normal one; only the events are added. SOJU_CUDA_PROFILE_SKIP=N
// drops what was recorded up to the end of the N-th optimizer step (adamw
// call), so warm-up steps (plan creation, first-use allocations) don't count.
#include <string.h>
#include <type_traits>

#include "cuda_common.cuh"

#define PROF_OPS 48
#define PROF_POOL 4096

struct prof_state {
    const char *names[PROF_OPS];
    double ms[PROF_OPS];
    long calls[PROF_OPS];
    cudaEvent_t ev[PROF_POOL][2];
    int id[PROF_POOL];
    int used;
    int skip_steps, steps; // optimizer steps to drop, and seen so far
};

// Fold the recorded events into the totals (synchronizes).
static void prof_flush(soju_cuda_state *st) {
    prof_state *p = (prof_state *)st->profile;
    if (!p || !p->used) return;
    CUDA_CHECK(cudaStreamSynchronize(st->stream));
    for (int i = 0; i < p->used; i++) {
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, p->ev[i][0], p->ev[i][1]));
        p->ms[p->id[i]] += ms;
        p->calls[p->id[i]]++;
    }
    p->used = 0;
}

static int prof_begin(soju_backend *be, int id) {
    soju_cuda_state *st = cuda_state(be);
    prof_state *p = (prof_state *)st->profile;
    if (p->used == PROF_POOL) prof_flush(st);
    int k = p->used++;
    p->id[k] = id;
    CUDA_CHECK(cudaEventRecord(p->ev[k][0], st->stream));
    return k;
}

static void prof_end(soju_backend *be, int k) {
    soju_cuda_state *st = cuda_state(be);
    prof_state *p = (prof_state *)st->profile;
    CUDA_CHECK(cudaEventRecord(p->ev[k][1], st->stream));
    if (p->id[k] == 0 && ++p->steps == p->skip_steps) { // end of the last step to drop
        prof_flush(st);
        memset(p->ms, 0, sizeof p->ms);
        memset(p->calls, 0, sizeof p->calls);
    }
}

// A wrapper per op, generated from the op's own signature.
template <int ID, auto F> struct prof_wrap;
template <int ID, typename R, typename... A, R (*F)(soju_backend *, A...)> struct prof_wrap<ID, F> {
    static R call(soju_backend *be, A... a) {
        int k = prof_begin(be, ID);
        if constexpr (std::is_void_v<R>) {
            F(be, a...);
            prof_end(be, k);
        } else {
            R r = F(be, a...);
            prof_end(be, k);
            return r;
        }
    }
};

#define PROF_FIELDS(X)                                                                                         \
    X(0, adamw) X(1, sum_squares) X(2, scale) X(3, act_from_f32) X(4, act_to_f32) X(5, copy_rows)               \
    X(6, encoder_forward) X(7, encoder_backward) X(8, matmul_forward) X(9, matmul_backward)                     \
    X(10, rmsnorm_forward) X(11, rmsnorm_backward) X(12, layernorm_forward) X(13, layernorm_backward)           \
    X(14, rope_forward) X(15, rope_backward) X(16, attention_forward) X(17, attention_backward)                 \
    X(18, attention_decode) X(19, swiglu_forward) X(20, swiglu_backward) X(21, gelu_forward)                    \
    X(22, gelu_backward) X(23, residual_forward) X(24, softcap_forward) X(25, softcap_backward)                 \
    X(26, crossentropy_forward) X(27, crossentropy_backward) X(28, matmul_gelu_forward)                       \
    X(29, matmul_backward_gelu) X(30, matmul_residual_forward) X(31, crossentropy_fused)

// The profiled table: the plain table with every op pointer wrapped.
void cuda_profile_table(soju_backend_ops *o) {
#define WRAP(id, f) o->f = prof_wrap<id, cuda_##f>::call;
    PROF_FIELDS(WRAP)
#undef WRAP
}

void cuda_profile_init(soju_cuda_state *st) {
    prof_state *p = (prof_state *)soju_calloc(1, sizeof(prof_state));
#define NAME(id, f) p->names[id] = #f;
    PROF_FIELDS(NAME)
#undef NAME
    for (int i = 0; i < PROF_POOL; i++) {
        CUDA_CHECK(cudaEventCreate(&p->ev[i][0]));
        CUDA_CHECK(cudaEventCreate(&p->ev[i][1]));
    }
    const char *skip = getenv("SOJU_CUDA_PROFILE_SKIP");
    p->skip_steps = skip ? atoi(skip) : 0;
    st->profile = p;
}

void cuda_profile_report(soju_cuda_state *st) {
    prof_state *p = (prof_state *)st->profile;
    if (!p) return;
    prof_flush(st);
    double total = 0;
    for (int i = 0; i < PROF_OPS; i++) total += p->ms[i];
    fprintf(stderr, "soju cuda profile (GPU time between events; first %d optimizer steps dropped)\n",
            p->skip_steps);
    fprintf(stderr, "  %-24s %8s %12s %10s %7s\n", "op", "calls", "total ms", "ms/call", "share");
    for (int pass = 0; pass < PROF_OPS; pass++) { // largest first
        int best = -1;
        for (int i = 0; i < PROF_OPS; i++)
            if (p->calls[i] > 0 && (best < 0 || p->ms[i] > p->ms[best])) best = i;
        if (best < 0) break;
        fprintf(stderr, "  %-24s %8ld %12.3f %10.4f %6.1f%%\n", p->names[best], p->calls[best], p->ms[best],
                p->ms[best] / p->calls[best], 100.0 * p->ms[best] / total);
        p->calls[best] = -p->calls[best]; // printed
    }
    fprintf(stderr, "  %-24s %8s %12.3f\n", "total", "", total);
    for (int i = 0; i < PROF_POOL; i++) {
        cudaEventDestroy(p->ev[i][0]);
        cudaEventDestroy(p->ev[i][1]);
    }
    free(p);
    st->profile = nullptr;
}

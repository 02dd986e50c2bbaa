/* cuDNN's attention graphs (src/ops/cuda/cudnn_graph.c) evaluated on the CPU
 * and compared with soju's CPU attention ops.
 *
 * The offline check (test_cudnn_offline.c) shows that cuDNN's engines accept
 * the graphs; this shows that the graphs compute attention: the forward's
 * output and log-sum-exp, and the backward's dQ, dK and dV, for causal
 * attention with grouped heads, packed documents and sliding windows. The
 * graph is recorded as data (cudnn_attention_graph, no library, no GPU),
 * bound as the GPU path binds it (cudnn_attention_bindings: which tensors,
 * where in soju's buffers), and run here op by op in fp32 with cuDNN's
 * meaning of each operation:
 *   - every tensor is 4-d; an input dim smaller than the output's broadcasts
 *     (extent 1) or serves a group (grouped-query heads: output index i reads
 *     input index i * in / out);
 *   - a tensor's elements live at the offsets its strides give: bound
 *     tensors inside soju's buffers (K transposed is only strides), virtual
 *     ones in their own memory, and a reshape reads its input's memory
 *     through its own strides (how the graphs transpose);
 *   - a reduction sums (or maxes) over the dims its output shrinks;
 *   - BINARY_SELECT is y = t ? x : b; GEN_INDEX is the index along its axis.
 * What it cannot show is how cuDNN's engines read the same graph; the GPU
 * check (gpu_check.sh, SOJU_CUDA_CUDNN=strict) does that. */
#include <float.h>
#include <math.h>

#include "soju/ops.h"
#include "test.h"

#ifdef SOJU_HAVE_CUDNN
#include <cudnn.h>

#include "ops/cuda/cudnn_graph.h"

/* ---------------------------------------------------------------- the evaluator */

/* Where each tensor's elements live: bound tensors in the caller's buffers,
 * virtual ones in memory of their own (all fp32; ints and booleans exact). */
typedef struct evaluation {
    const cudnn_graph_program *p;
    float *mem[CUDNN_GRAPH_MAX_TENSORS];
    int owned[CUDNN_GRAPH_MAX_TENSORS];
} evaluation;

static size_t extent(const cudnn_graph_tensor *t) {
    size_t last = 0;
    for (int d = 0; d < 4; d++) last += (size_t)(t->dims[d] - 1) * (size_t)t->strides[d];
    return last + 1;
}

static size_t offset(const cudnn_graph_tensor *t, const int64_t *idx) {
    size_t o = 0;
    for (int d = 0; d < 4; d++) o += (size_t)idx[d] * (size_t)t->strides[d];
    return o;
}

/* x's element for output index idx (y's dims): broadcast or grouped. */
static float read_for(const evaluation *ev, int x, const cudnn_graph_tensor *y, const int64_t *idx) {
    const cudnn_graph_tensor *t = &ev->p->tensors[x];
    int64_t in[4];
    for (int d = 0; d < 4; d++) in[d] = idx[d] * t->dims[d] / y->dims[d];
    return ev->mem[x][offset(t, in)];
}

/* Calls fn for every index of dims, last dim fastest. */
#define FOR_INDEX(idx, dims)                                   \
    for (idx[0] = 0; idx[0] < (dims)[0]; idx[0]++)             \
        for (idx[1] = 0; idx[1] < (dims)[1]; idx[1]++)         \
            for (idx[2] = 0; idx[2] < (dims)[2]; idx[2]++)     \
                for (idx[3] = 0; idx[3] < (dims)[3]; idx[3]++)

static float pointwise(int mode, float x, float b, float t, int64_t index) {
    switch (mode) {
    case CUDNN_POINTWISE_ADD: return x + b;
    case CUDNN_POINTWISE_SUB: return x - b;
    case CUDNN_POINTWISE_MUL: return x * b;
    case CUDNN_POINTWISE_DIV: return x / b;
    case CUDNN_POINTWISE_EXP: return expf(x);
    case CUDNN_POINTWISE_LOG: return logf(x);
    case CUDNN_POINTWISE_IDENTITY: return x;
    case CUDNN_POINTWISE_GEN_INDEX: return (float)index;
    case CUDNN_POINTWISE_CMP_GE: return x >= b;
    case CUDNN_POINTWISE_CMP_GT: return x > b;
    case CUDNN_POINTWISE_CMP_LE: return x <= b;
    case CUDNN_POINTWISE_CMP_EQ: return x == b;
    case CUDNN_POINTWISE_LOGICAL_AND: return x != 0 && b != 0;
    case CUDNN_POINTWISE_BINARY_SELECT: return t != 0 ? x : b;
    default: fprintf(stderr, "evaluator: pointwise mode %d\n", mode); exit(1);
    }
}

static void run_op(evaluation *ev, const cudnn_graph_op *op) {
    const cudnn_graph_tensor *y = &ev->p->tensors[op->y];
    float *out = ev->mem[op->y];
    int64_t i[4];
    switch (op->kind) {
    case CUDNN_GRAPH_MATMUL: { /* y[.., m, n] = sum_k x[.., m, k] b[.., k, n] */
        const cudnn_graph_tensor *a = &ev->p->tensors[op->x], *bm = &ev->p->tensors[op->b];
        const int64_t K = a->dims[3];
        FOR_INDEX(i, y->dims) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++) {
                int64_t ia[4] = {i[0] * a->dims[0] / y->dims[0], i[1] * a->dims[1] / y->dims[1], i[2], k};
                int64_t ib[4] = {i[0] * bm->dims[0] / y->dims[0], i[1] * bm->dims[1] / y->dims[1], k, i[3]};
                acc += (double)ev->mem[op->x][offset(a, ia)] * ev->mem[op->b][offset(bm, ib)];
            }
            out[offset(y, i)] = (float)acc;
        }
        break;
    }
    case CUDNN_GRAPH_POINTWISE:
        FOR_INDEX(i, y->dims) {
            float x = read_for(ev, op->x, y, i);
            float b = op->b >= 0 ? read_for(ev, op->b, y, i) : 0;
            float t = op->t >= 0 ? read_for(ev, op->t, y, i) : 0;
            out[offset(y, i)] = pointwise(op->mode, x, b, t, op->axis >= 0 ? i[op->axis] : 0);
        }
        break;
    case CUDNN_GRAPH_REDUCE: { /* over the dims y shrinks (to 1, or by groups) */
        const cudnn_graph_tensor *x = &ev->p->tensors[op->x];
        const int is_max = op->mode == CUDNN_REDUCE_TENSOR_MAX;
        FOR_INDEX(i, y->dims) out[offset(y, i)] = is_max ? -INFINITY : 0;
        FOR_INDEX(i, x->dims) {
            int64_t o[4];
            for (int d = 0; d < 4; d++) o[d] = i[d] * y->dims[d] / x->dims[d];
            float v = ev->mem[op->x][offset(x, i)], *acc = &out[offset(y, o)];
            *acc = is_max ? fmaxf(*acc, v) : *acc + v;
        }
        break;
    }
    case CUDNN_GRAPH_RESHAPE: break; /* y aliases x's memory (set up before the run) */
    }
}

/* Runs the program with its bound tensors at the addresses of a variant
 * pack (uids[i] at ptrs[i]): fp32 in place; int32 ones (inputs: the document
 * ids, the window, zero) copied into fp32. Virtual tensors get memory of their
 * own. */
static void evaluate(const cudnn_graph_program *p, const int64_t *uids, void *const *ptrs, int n) {
    evaluation ev = {p, {0}, {0}};
    for (int t = 0; t < p->n_tensors; t++) {
        const cudnn_graph_tensor *tt = &p->tensors[t];
        if (tt->is_virtual) continue;
        for (int i = 0; i < n; i++)
            if (uids[i] == tt->uid) ev.mem[t] = ptrs[i];
        if (!ev.mem[t]) {
            fprintf(stderr, "evaluator: nothing bound to tensor %lld\n", (long long)tt->uid);
            exit(1);
        }
        if (tt->type == CUDNN_DATA_INT32) {
            const int32_t *ints = (const int32_t *)ev.mem[t];
            size_t len = extent(tt);
            ev.mem[t] = soju_malloc(len * sizeof(float));
            ev.owned[t] = 1;
            for (size_t i = 0; i < len; i++) ev.mem[t][i] = (float)ints[i];
        }
    }
    for (int o = 0; o < p->n_ops; o++) { /* a reshape's output reads its input's memory */
        const cudnn_graph_op *op = &p->ops[o];
        if (op->kind == CUDNN_GRAPH_RESHAPE) ev.mem[op->y] = ev.mem[op->x];
        else if (!ev.mem[op->y]) {
            ev.mem[op->y] = soju_calloc(extent(&p->tensors[op->y]), sizeof(float));
            ev.owned[op->y] = 1;
        }
        run_op(&ev, op);
    }
    for (int t = 0; t < p->n_tensors; t++)
        if (ev.owned[t]) free(ev.mem[t]);
}

/* ---------------------------------------------------------------- the cases */

static soju_backend *cpu;
static soju_rng rng;

static float *randoms(size_t n) {
    float *x = soju_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (float)soju_rng_normal(&rng);
    return x;
}

/* max |a - b| over max |b|: the relative error of the evaluated graph */
static double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0, m = 1e-30;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return d / m;
}

static void setup(void) {
    if (cpu) return;
    soju_err err;
    if (soju_backend_create(&cpu, "cpu", &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    soju_rng_seed(&rng, 20261123);
}

static void run_case(int B, int T, int NH, int NKV, int hd, int docs, int window) {
    setup();
    const size_t W = (size_t)(NH + 2 * NKV) * hd, BT = (size_t)B * T, rows = BT * NH;
    const float scale = 1.0f / sqrtf((float)hd);
    float *qkv = randoms(BT * W), *dout = randoms(BT * NH * hd);
    float *out = soju_calloc(BT * NH * hd, sizeof(float)), *lse = soju_calloc(rows, sizeof(float));
    float *dqkv = soju_calloc(BT * W, sizeof(float));
    float *rowsum = soju_calloc(rows, sizeof(float)), *dq_accum = soju_calloc(rows * hd, sizeof(float));
    int32_t *doc_ids = soju_calloc(BT, sizeof(int32_t));
    for (int b = 0; b < B; b++) { /* docs 1: documents of random lengths, ids rising; 2: ids reused out of order */
        int id = 0;
        for (int t = 0; t < T; t++) {
            if (docs && t > 0 && soju_rng_below(&rng, 6) == 0) id++;
            doc_ids[b * T + t] = docs == 2 ? (t * 7 + b) % 3 : id;
        }
    }
    cudnn_att_shape s = {B, T, NH, NKV, hd, scale, docs != 0, window};
    static cudnn_graph_program fwd, bwd;
    CHECK_EQ_INT(cudnn_attention_graph(&s, 0, &fwd), 0);
    CHECK_EQ_INT(cudnn_attention_graph(&s, 1, &bwd), 0);

    /* the reference: soju's CPU ops */
    const int32_t *ids = docs ? doc_ids : NULL;
    float *ref_out = soju_calloc(BT * NH * hd, sizeof(float)), *ref_lse = soju_calloc(rows, sizeof(float));
    float *ref_dqkv = soju_calloc(BT * W, sizeof(float));
    cpu->ops->attention_forward(cpu, ref_out, ref_lse, qkv, ids, B, T, NH, NKV, hd, window, scale);
    cpu->ops->attention_backward(cpu, ref_dqkv, dout, qkv, ref_out, ref_lse, ids, B, T, NH, NKV, hd, window, scale,
                                 NULL, NULL);

    /* the graphs, bound as cudnn_attention_forward / _backward bind them (fp32 elements here) */
    cudnn_att_buffers buf = {.qkv = qkv, .dout = dout, .out = out, .dqkv = dqkv, .rowsum = rowsum,
                             .dq_accum = dq_accum, .lse = lse, .doc_ids = doc_ids, .scale = scale,
                             .neg_inf = -INFINITY, .one = 1.0f, .window = window};
    int64_t uids[CUDNN_ATT_MAX_BINDINGS];
    void *ptrs[CUDNN_ATT_MAX_BINDINGS];
    int n = cudnn_attention_bindings(&s, 0, &buf, sizeof(float), uids, ptrs);
    evaluate(&fwd, uids, ptrs, n);
    double e_out = rel_diff(out, ref_out, BT * NH * hd), e_lse = rel_diff(lse, ref_lse, rows);
    n = cudnn_attention_bindings(&s, 1, &buf, sizeof(float), uids, ptrs);
    evaluate(&bwd, uids, ptrs, n);
    double e_grad = rel_diff(dqkv, ref_dqkv, BT * W);
    printf("  B%d T%d NH%d NKV%d hd%d%s window %d: forward %d ops, backward %d; out %.1e lse %.1e dqkv %.1e\n", B, T,
           NH, NKV, hd, docs ? " docs" : "", window, fwd.n_ops, bwd.n_ops, e_out, e_lse, e_grad);
    CHECK_MSG(e_out < 1e-5 && e_lse < 1e-5, "forward differs: out %.2e lse %.2e", e_out, e_lse);
    CHECK_MSG(e_grad < 1e-4, "backward differs: dqkv %.2e", e_grad);
    free(qkv), free(dout), free(out), free(lse), free(dqkv), free(rowsum), free(dq_accum), free(doc_ids);
    free(ref_out), free(ref_lse), free(ref_dqkv);
}

TEST(causal) { run_case(2, 24, 4, 4, 8, 0, 0); }
TEST(grouped_query_heads) { run_case(2, 20, 6, 2, 8, 0, 0); }
TEST(packed_documents) { run_case(2, 32, 4, 2, 8, 1, 0); }
TEST(sliding_window) { run_case(1, 30, 4, 1, 16, 0, 7); }
TEST(documents_and_window) { run_case(2, 28, 2, 2, 8, 1, 5); }
TEST(document_ids_out_of_order) { run_case(2, 26, 4, 2, 8, 2, 0); }

TEST_MAIN(causal, grouped_query_heads, packed_documents, sliding_window, documents_and_window,
          document_ids_out_of_order)
#else
int main(void) { SKIP("this build has no cuDNN header (cudnn_backend.h)"); }
#endif

/* cudnn_graph.h — cuDNN's fused attention behind soju's attention ops.
 *
 * cuDNN is optional at every level: the build compiles this part only where
 * cudnn.h is found, and the library (libcudnn.so.9, e.g. from PyTorch's wheel
 * nvidia-cudnn-cu12/13) is opened at run time, only when SOJU_CUDA_CUDNN
 * asks for it. soju's own kernels stay the default and serve every case
 * cuDNN's engines do not (head dims off the multiple of 8 or above 128).
 *
 * The attention is described to cuDNN as an operation graph (matrix
 * products, point-wise steps, reductions) that its flash-attention engines
 * recognize; the graphs are written out in cudnn_graph.c. */
#ifndef SOJU_CUDNN_GRAPH_H
#define SOJU_CUDNN_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cudnn_attention cudnn_attention;

/* The attention problem one plan serves: qkv packed as the ops interface
 * says (B, T, (NH + 2 NKV) hd), out (B, T, NH hd), lse (B, NH, T) fp32;
 * causal, with docs packed documents (key j kept for query i when
 * doc_ids[j] == doc_ids[i], (B, T) int32, any ids), with window > 0 a
 * sliding window (i - j < window). */
typedef struct cudnn_att_shape {
    int B, T, NH, NKV, hd;
    float scale;
    int docs;   /* 1: packed documents (doc_ids given) */
    int window; /* sliding window length, 0: none */
} cudnn_att_shape;

/* The ids of the tensors bound when a plan runs (the rest are intermediates
 * of the fused kernel). Their layouts are views into soju's buffers:
 * Q (B, NH, T, hd), K and V (B, NKV, T, hd) or transposed, as strides into
 * qkv; O and dO (B, NH, T, hd) into out and dout; the statistics (B, NH, T, 1)
 * are soju's lse; the row sums and dQ's fp32 sums live in the workspace;
 * the document ids enter as (B, 1, T, 1) and (B, 1, 1, T) views of one array;
 * the rest are scalars by value. */
enum {
    CUDNN_ATT_Q = 1,
    CUDNN_ATT_K,
    CUDNN_ATT_V,
    CUDNN_ATT_O,
    CUDNN_ATT_STATS,
    CUDNN_ATT_SCALE,     /* fp32 */
    CUDNN_ATT_NEG_INF,   /* fp32: what masked scores become */
    CUDNN_ATT_DO,
    CUDNN_ATT_DQ,
    CUDNN_ATT_DK,
    CUDNN_ATT_DV,
    CUDNN_ATT_ONE,       /* fp32 1.0 */
    CUDNN_ATT_ROWSUM,    /* backward: rowsum(dO O), fp32 (B, NH, T, 1) */
    CUDNN_ATT_DQ_ACCUM,  /* backward: dQ summed in fp32 (B, NH, T, hd) */
    CUDNN_ATT_DOC_ROW,   /* packed documents: the ids (int32) per query */
    CUDNN_ATT_DOC_COL,   /* ... and the same ids per key */
    CUDNN_ATT_ZERO,      /* int32 0 (makes the query's id an intermediate) */
    CUDNN_ATT_WINDOW     /* int32 */
};

/* One call's buffers: qkv, out and lse as the ops interface lays them out,
 * and for the backward dout, dqkv and two fp32 scratch buffers (the row sums
 * (B, NH, T) and dQ's sums (B, NH, T, hd)); the document ids with docs;
 * and the scalars bound by value (so the struct must outlive the run). */
typedef struct cudnn_att_buffers {
    const void *qkv, *dout;
    void *out, *dqkv, *rowsum, *dq_accum;
    float *lse;
    const int32_t *doc_ids;
    float scale, neg_inf, one;
    int32_t window, zero;
} cudnn_att_buffers;

/* A call's variant pack: the ids of the tensors a plan of `s` binds and their
 * addresses in buf (qkv, out, dout and dqkv of elem_size-byte elements: 2 for
 * bf16; the CPU evaluation of the graphs uses 4). Returns how many. */
#define CUDNN_ATT_MAX_BINDINGS 20 /* the backward with documents and a window binds 18 */
int cudnn_attention_bindings(const cudnn_att_shape *s, int backward, cudnn_att_buffers *buf, size_t elem_size,
                             int64_t *uids, void **ptrs);

/* A graph as data: what cudnn_attention_graph records instead of describing
 * it to cuDNN, so that a test can evaluate it on the CPU (types are
 * cudnnDataType_t, modes cudnnPointwiseMode_t or cudnnReduceTensorOp_t). */
#define CUDNN_GRAPH_MAX_TENSORS 96
#define CUDNN_GRAPH_MAX_OPS 64
typedef enum { CUDNN_GRAPH_MATMUL, CUDNN_GRAPH_POINTWISE, CUDNN_GRAPH_REDUCE, CUDNN_GRAPH_RESHAPE } cudnn_graph_kind;
typedef struct cudnn_graph_tensor {
    int64_t uid;
    int type;
    int64_t dims[4], strides[4];
    int is_virtual, by_value;
} cudnn_graph_tensor;
/* y = op(x, b, t): tensor indices into the program's tensors, -1 for none;
 * axis for GEN_INDEX. */
typedef struct cudnn_graph_op {
    cudnn_graph_kind kind;
    int mode, axis;
    int x, b, t, y;
} cudnn_graph_op;
typedef struct cudnn_graph_program {
    cudnn_graph_tensor tensors[CUDNN_GRAPH_MAX_TENSORS];
    int n_tensors;
    cudnn_graph_op ops[CUDNN_GRAPH_MAX_OPS];
    int n_ops;
} cudnn_graph_program;

/* Records the forward (backward = 0) or backward graph of `s` without a
 * library or a GPU. 0, or -1 when the graph outgrows the program. */
int cudnn_attention_graph(const cudnn_att_shape *s, int backward, cudnn_graph_program *out);

/* Opens libcudnn (SOJU_CUDNN_LIB, else libcudnn.so.9 on the loader's path)
 * and a handle on `stream` (a cudaStream_t). NULL with a one-line reason in
 * err when there is no library or no GPU; one line on stderr says which
 * cuDNN it is. strict: a shape cuDNN refuses stops the process instead of
 * falling back to soju's kernels (checks use it, so that a pass means cuDNN
 * ran), except those cudnn_attention_known_bad keeps on soju's kernels. tune: the first call of each shape
 * times every plan cuDNN's heuristics offer and keeps the fastest (one line
 * on stderr says which); otherwise the heuristics' first is taken. */
cudnn_attention *cudnn_attention_open(void *stream, int strict, int tune, char *err, size_t err_len);
void cudnn_attention_close(cudnn_attention *ca);

/* The ops' contract (ops.h attention_forward / attention_backward without
 * rope; doc_ids NULL unless s->docs). Return 0 on success, -1 when cuDNN
 * refused the shape or would not run it (no memory for its workspace, a
 * failed execute: said once on stderr, strict stops there). Outputs may then
 * hold a timing run's values; the caller's kernels write them all again. */
int cudnn_attention_forward(cudnn_attention *ca, const cudnn_att_shape *s, void *out, float *lse, const void *qkv,
                            const int32_t *doc_ids);
int cudnn_attention_backward(cudnn_attention *ca, const cudnn_att_shape *s, void *dqkv, const void *dout,
                             const void *qkv, const void *out, const float *lse, const int32_t *doc_ids);

/* Shapes that cuDNN release `version` (cudnnGetVersion's number) gets
 * wrong although its engines take them, as NVIDIA's frontend lists them
 * (it refuses them or works around them): the reason, or NULL. Such shapes
 * are refused like those no engine takes (soju's kernels serve them). */
const char *cudnn_attention_known_bad(size_t version, const cudnn_att_shape *s, int backward);

/* Without a GPU: builds the forward and backward graphs of `s` and asks
 * cuDNN for execution plans for the device described by `device_json`
 * (cuDNN's device-properties JSON, e.g. tools/cudnn_h100.json). Prints one
 * line per direction (engines offered, plan built or why not) to `log`
 * (a FILE *); returns the number of directions whose kernels compiled (0-2:
 * without a GPU a plan stops at loading them into the driver), or -1
 * when the library cannot be opened. */
int cudnn_attention_check_offline(const char *device_json, const cudnn_att_shape *s, void *log);

#ifdef __cplusplus
}
#endif

#endif

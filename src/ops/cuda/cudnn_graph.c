/* cudnn_graph.c — causal attention (forward and backward) as cuDNN operation
 * graphs, run by cuDNN's fused flash-attention engines.
 *
 * cuDNN's backend API describes a computation as a graph of operations on
 * tensor descriptors (each with a unique id, dims, strides and a type;
 * "virtual" tensors live only inside the fused kernel). The engines match
 * known graph shapes; the attention shape is the one below. Each graph is
 * built once per problem shape; the plan (the engine and its compiled
 * kernel) is cached and executed with the tensors' device pointers bound by
 * id. libcudnn is opened with dlopen, so nothing links against it.
 *
 * In order: the library; the builder (descriptors, and the recording of a
 * graph as data when there is no library); the operations; the attention's
 * tensors, mask, forward and backward graphs; plans; running on a GPU (the
 * plan cache, engine timing, the variant pack); the graphs as data; the
 * offline check. */
#define _GNU_SOURCE /* dladdr: the path of the libcudnn that was loaded */
#include "ops/cuda/cudnn_graph.h"

#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <dlfcn.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- the library */

/* The few entry points soju uses, looked up by name in libcudnn. */
typedef struct cudnn_api {
    void *lib;
    __typeof__(cudnnGetVersion) *get_version;
    __typeof__(cudnnCreate) *create;
    __typeof__(cudnnDestroy) *destroy;
    __typeof__(cudnnSetStream) *set_stream;
    __typeof__(cudnnGetErrorString) *error_string;
    __typeof__(cudnnGetLastErrorString) *last_error;
    __typeof__(cudnnBackendCreateDescriptor) *create_desc;
    __typeof__(cudnnBackendDestroyDescriptor) *destroy_desc;
    __typeof__(cudnnBackendSetAttribute) *set_attr;
    __typeof__(cudnnBackendGetAttribute) *get_attr;
    __typeof__(cudnnBackendFinalize) *finalize;
    __typeof__(cudnnBackendExecute) *execute;
} cudnn_api;

static int api_load(cudnn_api *api, char *err, size_t err_len) {
    memset(api, 0, sizeof *api);
    const char *path = getenv("SOJU_CUDNN_LIB");
    if (!path || !*path) path = "libcudnn.so.9";
    api->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!api->lib) {
        snprintf(err, err_len, "cannot open %s (%s); set SOJU_CUDNN_LIB or LD_LIBRARY_PATH", path, dlerror());
        return -1;
    }
#define LOOKUP(field, name)                                                                    \
    if (!(*(void **)&api->field = dlsym(api->lib, name))) {                                   \
        snprintf(err, err_len, "%s has no %s (cuDNN 9 or newer is needed)", path, name);      \
        dlclose(api->lib);                                                                     \
        api->lib = NULL;                                                                       \
        return -1;                                                                             \
    }
    LOOKUP(get_version, "cudnnGetVersion")
    LOOKUP(create, "cudnnCreate")
    LOOKUP(destroy, "cudnnDestroy")
    LOOKUP(set_stream, "cudnnSetStream")
    LOOKUP(error_string, "cudnnGetErrorString")
    LOOKUP(last_error, "cudnnGetLastErrorString")
    LOOKUP(create_desc, "cudnnBackendCreateDescriptor")
    LOOKUP(destroy_desc, "cudnnBackendDestroyDescriptor")
    LOOKUP(set_attr, "cudnnBackendSetAttribute")
    LOOKUP(get_attr, "cudnnBackendGetAttribute")
    LOOKUP(finalize, "cudnnBackendFinalize")
    LOOKUP(execute, "cudnnBackendExecute")
#undef LOOKUP
    if (api->get_version() < 90000) {
        snprintf(err, err_len, "%s is cuDNN %zu; 9.0 or newer is needed", path, api->get_version());
        dlclose(api->lib);
        api->lib = NULL;
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- building descriptors
 *
 * A builder owns every descriptor it creates (freed together) and keeps the
 * first failure: the call that failed and cuDNN's own message. Every helper
 * is a no-op once the builder has failed, so a graph is written as straight
 * code and checked once at the end. */

#define BUILDER_MAX_DESCS 192

typedef struct builder {
    const cudnn_api *api; /* NULL: no library, the graph is only recorded */
    cudnnBackendDescriptor_t descs[BUILDER_MAX_DESCS];
    int n_descs;
    bool failed;
    cudnnStatus_t status; /* of the first failure */
    char why[2048];
    bool known_limit; /* refused by cudnn_attention_known_bad: a documented fallback, even under strict */
    /* without a library: the graph as data (cudnn_attention_graph), and for each
       descriptor the recorded tensor it is (-1: not a tensor) */
    cudnn_graph_program *rec;
    int tensor_of[BUILDER_MAX_DESCS];
} builder;

static void builder_fail(builder *b, const char *what, cudnnStatus_t st) {
    if (b->failed) return;
    b->failed = true;
    b->status = st;
    char last[1536] = "";
    b->api->last_error(last, sizeof last);
    /* libcudnn.so.9 loads its engines from separate libraries on the loader's
       path: SOJU_CUDNN_LIB naming one cuDNN and LD_LIBRARY_PATH another fails so */
    const bool mixed = st == CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED || st == CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH;
    snprintf(b->why, sizeof b->why, "%s: %s%s%s%s", what, b->api->error_string(st), *last ? ": " : "", last,
             mixed ? " (SOJU_CUDNN_LIB and LD_LIBRARY_PATH must name the same cuDNN)" : "");
    for (char *c = b->why; *c; c++) /* cuDNN's messages span lines; errors here are one line */
        if (*c == '\n') *c = ';';
}

/* A failure soju decides (not a cuDNN call's): the reason, printf-style. */
static void builder_refuse(builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void builder_refuse(builder *b, const char *fmt, ...) {
    if (b->failed) return;
    b->failed = true;
    b->status = CUDNN_STATUS_NOT_SUPPORTED;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->why, sizeof b->why, fmt, ap);
    va_end(ap);
}

static void builder_free(builder *b) {
    for (int i = b->n_descs - 1; i >= 0 && b->api; i--) b->api->destroy_desc(b->descs[i]);
    b->n_descs = 0;
}

static cudnnBackendDescriptor_t desc_new(builder *b, cudnnBackendDescriptorType_t type) {
    if (b->failed) return NULL;
    if (b->n_descs == BUILDER_MAX_DESCS) {
        builder_refuse(b, "more than %d descriptors in one graph", BUILDER_MAX_DESCS);
        return NULL;
    }
    cudnnBackendDescriptor_t d = NULL;
    if (!b->api) { /* recording: the handle only names the slot */
        b->tensor_of[b->n_descs] = -1;
        d = (cudnnBackendDescriptor_t)(intptr_t)(b->n_descs + 1);
    } else {
        cudnnStatus_t st = b->api->create_desc(type, &d);
        if (st != CUDNN_STATUS_SUCCESS) {
            builder_fail(b, "create descriptor", st);
            return NULL;
        }
    }
    b->descs[b->n_descs++] = d;
    return d;
}

static void set(builder *b, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
                cudnnBackendAttributeType_t type, int64_t count, const void *value, const char *what) {
    if (b->failed || !b->api) return;
    cudnnStatus_t st = b->api->set_attr(d, name, type, count, value);
    if (st != CUDNN_STATUS_SUCCESS) builder_fail(b, what, st);
}

/* The same for an attribute that names another descriptor (the most common kind). */
static void set_desc(builder *b, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
                     cudnnBackendDescriptor_t value, const char *what) {
    set(b, d, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &value, what);
}

static void finalize(builder *b, cudnnBackendDescriptor_t d, const char *what) {
    if (b->failed || !b->api) return;
    cudnnStatus_t st = b->api->finalize(d);
    if (st != CUDNN_STATUS_SUCCESS) builder_fail(b, what, st);
}

/* ---------------------------------------------------------------- recording
 *
 * Without a library the builder records what it would have described: the
 * tensors and the operations in order (cudnn_attention_graph), so that a
 * test can evaluate the graphs on the CPU. */

/* The recorded tensor a descriptor handle stands for (-1: none). */
static int recorded(const builder *b, cudnnBackendDescriptor_t d) {
    if (!b->rec || !d) return -1;
    return b->tensor_of[(intptr_t)d - 1];
}

static void record_tensor(builder *b, cudnnBackendDescriptor_t d, int64_t uid, cudnnDataType_t type, const int64_t *dims,
                          const int64_t *strides, bool is_virtual, bool by_value) {
    cudnn_graph_program *p = b->rec;
    if (!p || !d || b->failed) return;
    if (p->n_tensors == CUDNN_GRAPH_MAX_TENSORS) {
        builder_refuse(b, "more than %d tensors in one graph", CUDNN_GRAPH_MAX_TENSORS);
        return;
    }
    cudnn_graph_tensor *t = &p->tensors[p->n_tensors];
    t->uid = uid;
    t->type = (int)type;
    memcpy(t->dims, dims, sizeof t->dims);
    memcpy(t->strides, strides, sizeof t->strides);
    t->is_virtual = is_virtual, t->by_value = by_value;
    b->tensor_of[(intptr_t)d - 1] = p->n_tensors++;
}

static void record_op(builder *b, cudnn_graph_kind kind, int mode, int64_t axis, cudnnBackendDescriptor_t x,
                      cudnnBackendDescriptor_t bx, cudnnBackendDescriptor_t t, cudnnBackendDescriptor_t y) {
    cudnn_graph_program *p = b->rec;
    if (!p || b->failed) return;
    if (p->n_ops == CUDNN_GRAPH_MAX_OPS) {
        builder_refuse(b, "more than %d operations in one graph", CUDNN_GRAPH_MAX_OPS);
        return;
    }
    cudnn_graph_op op = {kind, mode, (int)axis, recorded(b, x), recorded(b, bx), recorded(b, t), recorded(b, y)};
    p->ops[p->n_ops++] = op;
}

/* A 4-d tensor's shape: every tensor of the attention graphs has 4 dims
 * (batch, heads, rows, columns), scalars (1, 1, 1, 1). */
typedef struct tensor4 {
    int64_t dims[4], strides[4];
} tensor4;

/* Packed row-major strides for dims. */
static tensor4 packed(int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    tensor4 t = {{d0, d1, d2, d3}, {d1 * d2 * d3, d2 * d3, d3, 1}};
    return t;
}

/* Ids for a graph's virtual tensors (intermediates of the fused kernel, never
 * bound): they count up from above the bound tensors' ids. */
typedef struct graph_ids {
    int64_t next_virtual;
} graph_ids;

static cudnnBackendDescriptor_t tensor(builder *b, int64_t uid, cudnnDataType_t type, tensor4 t, bool is_virtual,
                                       bool by_value) {
    cudnnBackendDescriptor_t d = desc_new(b, CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    int64_t align = 16;
    set(b, d, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "tensor id");
    set(b, d, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type, "tensor type");
    set(b, d, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, t.dims, "tensor dims");
    set(b, d, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, t.strides, "tensor strides");
    set(b, d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, "tensor alignment");
    if (is_virtual) set(b, d, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual, "tensor virtual");
    if (by_value) set(b, d, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value, "tensor by value");
    finalize(b, d, "tensor");
    record_tensor(b, d, uid, type, t.dims, t.strides, is_virtual, by_value);
    return d;
}

/* An intermediate of the fused kernel. */
static cudnnBackendDescriptor_t virt(builder *b, graph_ids *ids, cudnnDataType_t type, tensor4 t) {
    return tensor(b, ids->next_virtual++, type, t, true, false);
}

/* A scalar bound at execution from host memory (by value). */
static cudnnBackendDescriptor_t scalar(builder *b, int64_t uid, cudnnDataType_t type) {
    return tensor(b, uid, type, packed(1, 1, 1, 1), false, true);
}

/* c = a b (batched over the first two dims; a's and b's heads may be fewer
 * than c's when several query heads share one key/value head). */
static cudnnBackendDescriptor_t op_matmul(builder *b, cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t bm,
                                          cudnnBackendDescriptor_t c) {
    cudnnBackendDescriptor_t mm = desc_new(b, CUDNN_BACKEND_MATMUL_DESCRIPTOR);
    cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    set(b, mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp, "matmul compute type");
    finalize(b, mm, "matmul descriptor");
    cudnnBackendDescriptor_t op = desc_new(b, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
    set_desc(b, op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, a, "matmul a");
    set_desc(b, op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, bm, "matmul b");
    set_desc(b, op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, c, "matmul c");
    set_desc(b, op, CUDNN_ATTR_OPERATION_MATMUL_DESC, mm, "matmul desc");
    finalize(b, op, "matmul operation");
    record_op(b, CUDNN_GRAPH_MATMUL, 0, -1, a, bm, NULL, c);
    return op;
}

/* y = mode(x [, b [, t]]) element-wise, computed in prec; axis is for
 * GEN_INDEX (-1: none). BINARY_SELECT reads y = t ? x : b. */
static cudnnBackendDescriptor_t op_pointwise_in(builder *b, cudnnPointwiseMode_t mode, cudnnDataType_t prec,
                                                cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t bx,
                                                cudnnBackendDescriptor_t t, cudnnBackendDescriptor_t y,
                                                int64_t axis) {
    cudnnBackendDescriptor_t pw = desc_new(b, CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    set(b, pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, "pointwise mode");
    set(b, pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec, "pointwise precision");
    if (axis >= 0) set(b, pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis, "pointwise axis");
    finalize(b, pw, "pointwise descriptor");
    cudnnBackendDescriptor_t op = desc_new(b, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    set_desc(b, op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw, "pointwise desc");
    set_desc(b, op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x, "pointwise x");
    if (bx) set_desc(b, op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, bx, "pointwise b");
    if (t) set_desc(b, op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, t, "pointwise t");
    set_desc(b, op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y, "pointwise y");
    finalize(b, op, "pointwise operation");
    record_op(b, CUDNN_GRAPH_POINTWISE, (int)mode, axis, x, bx, t, y);
    return op;
}

/* The same in the usual precision: comparisons in booleans, the rest in fp32
 * (integer arithmetic on indices names INT32 through op_pointwise_in). */
static cudnnBackendDescriptor_t op_pointwise(builder *b, cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x,
                                             cudnnBackendDescriptor_t bx, cudnnBackendDescriptor_t t,
                                             cudnnBackendDescriptor_t y, int64_t axis) {
    const bool compare = mode == CUDNN_POINTWISE_CMP_GE || mode == CUDNN_POINTWISE_CMP_GT || mode == CUDNN_POINTWISE_CMP_EQ;
    return op_pointwise_in(b, mode, compare ? CUDNN_DATA_BOOLEAN : CUDNN_DATA_FLOAT, x, bx, t, y, axis);
}

/* y = reduce(x) over the dims where y has extent 1, in fp32. */
static cudnnBackendDescriptor_t op_reduce(builder *b, cudnnReduceTensorOp_t mode, cudnnBackendDescriptor_t x,
                                          cudnnBackendDescriptor_t y) {
    cudnnBackendDescriptor_t rd = desc_new(b, CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    set(b, rd, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode, "reduction mode");
    set(b, rd, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp, "reduction compute type");
    finalize(b, rd, "reduction descriptor");
    cudnnBackendDescriptor_t op = desc_new(b, CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
    set_desc(b, op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x, "reduction x");
    set_desc(b, op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y, "reduction y");
    set_desc(b, op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, rd, "reduction desc");
    finalize(b, op, "reduction operation");
    record_op(b, CUDNN_GRAPH_REDUCE, (int)mode, -1, x, NULL, NULL, y);
    return op;
}

/* y = x laid out as y's descriptor says (a transpose, for the products that
 * need one operand the other way round). */
static cudnnBackendDescriptor_t op_reshape(builder *b, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    cudnnBackendDescriptor_t op = desc_new(b, CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR);
    set_desc(b, op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, x, "reshape x");
    set_desc(b, op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, y, "reshape y");
    finalize(b, op, "reshape operation");
    record_op(b, CUDNN_GRAPH_RESHAPE, 0, -1, x, NULL, NULL, y);
    return op;
}

/* ---------------------------------------------------------------- the attention's tensors
 *
 * Ids of the tensors bound at execution; virtual ones count from 100. The
 * layouts are views into soju's packed buffers: head h of query row t of
 * batch row b sits at qkv[b][t][h] (W = (NH + 2 NKV) hd elements per row),
 * so the (B, heads, T, hd) view has strides (T W, hd, W, 1). */
enum {
    UID_Q = CUDNN_ATT_Q,
    UID_K = CUDNN_ATT_K,
    UID_V = CUDNN_ATT_V,
    UID_O = CUDNN_ATT_O,
    UID_STATS = CUDNN_ATT_STATS,
    UID_SCALE = CUDNN_ATT_SCALE,
    UID_NEG_INF = CUDNN_ATT_NEG_INF,
    UID_DO = CUDNN_ATT_DO,
    UID_DQ = CUDNN_ATT_DQ,
    UID_DK = CUDNN_ATT_DK,
    UID_DV = CUDNN_ATT_DV,
    UID_ONE = CUDNN_ATT_ONE,
    UID_ROWSUM = CUDNN_ATT_ROWSUM,
    UID_DQ_ACCUM = CUDNN_ATT_DQ_ACCUM,
    UID_DOC_ROW = CUDNN_ATT_DOC_ROW,
    UID_DOC_COL = CUDNN_ATT_DOC_COL,
    UID_ZERO = CUDNN_ATT_ZERO,
    UID_WINDOW = CUDNN_ATT_WINDOW,
    UID_FIRST_VIRTUAL = 100
};

static tensor4 qkv_view(const cudnn_att_shape *s, int heads, int transposed) {
    int64_t W = (int64_t)(s->NH + 2 * s->NKV) * s->hd;
    tensor4 t = {{s->B, heads, s->T, s->hd}, {(int64_t)s->T * W, s->hd, W, 1}};
    if (transposed) { /* (B, heads, hd, T): K as the right factor of Q K^T, V of dO V^T */
        t.dims[2] = s->hd, t.dims[3] = s->T;
        t.strides[2] = 1, t.strides[3] = W;
    }
    return t;
}

static tensor4 out_view(const cudnn_att_shape *s) {
    int64_t W = (int64_t)s->NH * s->hd;
    tensor4 t = {{s->B, s->NH, s->T, s->hd}, {(int64_t)s->T * W, s->hd, W, 1}};
    return t;
}

static tensor4 stats_view(const cudnn_att_shape *s) { return packed(s->B, s->NH, s->T, 1); }
static tensor4 scores_view(const cudnn_att_shape *s) { return packed(s->B, s->NH, s->T, s->T); }

/* The mask on scores x (virtual fp32): key j is kept for query i when i >= j,
 * with packed documents when doc[i] == doc[j], and with a sliding window
 * when j + window > i; the rest become -inf. Returns the masked scores.
 *
 * The engines take each condition as its own select (a logical AND of two
 * is refused), and a comparison's first operand must be an intermediate of
 * the fused kernel, never a bound tensor: the documents' ids are bound twice
 * (a column, doc[i], and a row, doc[j], of the same array), so the query's id
 * is first made an intermediate, as i * 0 + doc[i]. (Ampere's backward takes
 * no per-query vector beyond the statistics and the row sums: there the
 * backward with documents stays on soju's kernels.) */
static cudnnBackendDescriptor_t attention_mask(builder *b, graph_ids *ids, const cudnn_att_shape *s,
                                               cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t neg_inf,
                                               cudnnBackendDescriptor_t *ops, int *n_ops) {
    tensor4 sv = scores_view(s);
    cudnnBackendDescriptor_t row = virt(b, ids, CUDNN_DATA_INT32, sv), col = virt(b, ids, CUDNN_DATA_INT32, sv);
    cudnnBackendDescriptor_t keep = virt(b, ids, CUDNN_DATA_BOOLEAN, sv), y = virt(b, ids, CUDNN_DATA_FLOAT, sv);
    ops[(*n_ops)++] = op_pointwise(b, CUDNN_POINTWISE_GEN_INDEX, x, NULL, NULL, row, 2);
    ops[(*n_ops)++] = op_pointwise(b, CUDNN_POINTWISE_GEN_INDEX, x, NULL, NULL, col, 3);
    ops[(*n_ops)++] = op_pointwise(b, CUDNN_POINTWISE_CMP_GE, row, col, NULL, keep, -1);
    ops[(*n_ops)++] = op_pointwise(b, CUDNN_POINTWISE_BINARY_SELECT, x, neg_inf, keep, y, -1);
    if (s->docs) {
        tensor4 per_query = {{s->B, 1, s->T, 1}, {s->T, s->T, 1, 1}}, per_key = {{s->B, 1, 1, s->T}, {s->T, s->T, s->T, 1}};
        cudnnBackendDescriptor_t doc_q = tensor(b, UID_DOC_ROW, CUDNN_DATA_INT32, per_query, false, false);
        cudnnBackendDescriptor_t doc_k = tensor(b, UID_DOC_COL, CUDNN_DATA_INT32, per_key, false, false);
        cudnnBackendDescriptor_t zero = scalar(b, UID_ZERO, CUDNN_DATA_INT32);
        cudnnBackendDescriptor_t nothing = virt(b, ids, CUDNN_DATA_INT32, sv), query_doc = virt(b, ids, CUDNN_DATA_INT32, sv);
        cudnnBackendDescriptor_t inside = virt(b, ids, CUDNN_DATA_BOOLEAN, sv), y2 = virt(b, ids, CUDNN_DATA_FLOAT, sv);
        ops[(*n_ops)++] = op_pointwise_in(b, CUDNN_POINTWISE_MUL, CUDNN_DATA_INT32, row, zero, NULL, nothing, -1);
        ops[(*n_ops)++] = op_pointwise_in(b, CUDNN_POINTWISE_ADD, CUDNN_DATA_INT32, nothing, doc_q, NULL, query_doc, -1);
        ops[(*n_ops)++] = op_pointwise(b, CUDNN_POINTWISE_CMP_EQ, query_doc, doc_k, NULL, inside, -1);
        ops[(*n_ops)++] = op_pointwise(b, CUDNN_POINTWISE_BINARY_SELECT, y, neg_inf, inside, y2, -1);
        y = y2;
    }
    if (s->window > 0) {
        /* reach = j + window in int32 (the engines refuse the sum in fp32) */
        cudnnBackendDescriptor_t window = scalar(b, UID_WINDOW, CUDNN_DATA_INT32);
        cudnnBackendDescriptor_t reach = virt(b, ids, CUDNN_DATA_INT32, sv);
        cudnnBackendDescriptor_t near = virt(b, ids, CUDNN_DATA_BOOLEAN, sv), y3 = virt(b, ids, CUDNN_DATA_FLOAT, sv);
        ops[(*n_ops)++] = op_pointwise_in(b, CUDNN_POINTWISE_ADD, CUDNN_DATA_INT32, col, window, NULL, reach, -1);
        ops[(*n_ops)++] = op_pointwise(b, CUDNN_POINTWISE_CMP_GT, reach, row, NULL, near, -1);
        ops[(*n_ops)++] = op_pointwise(b, CUDNN_POINTWISE_BINARY_SELECT, y, neg_inf, near, y3, -1);
        y = y3;
    }
    return y;
}

/* Forward: O = softmax(scale Q K^T + causal) V, and the rows' log-sum-exp
 * (the backward's statistics). Returns the operations in ops. */
static int forward_graph(builder *b, const cudnn_att_shape *s, cudnnBackendDescriptor_t *ops) {
    graph_ids ids = {UID_FIRST_VIRTUAL};
    int n = 0;
    tensor4 sv = scores_view(s), st = stats_view(s);
    cudnnBackendDescriptor_t q = tensor(b, UID_Q, CUDNN_DATA_BFLOAT16, qkv_view(s, s->NH, 0), false, false);
    cudnnBackendDescriptor_t kt = tensor(b, UID_K, CUDNN_DATA_BFLOAT16, qkv_view(s, s->NKV, 1), false, false);
    cudnnBackendDescriptor_t v = tensor(b, UID_V, CUDNN_DATA_BFLOAT16, qkv_view(s, s->NKV, 0), false, false);
    cudnnBackendDescriptor_t o = tensor(b, UID_O, CUDNN_DATA_BFLOAT16, out_view(s), false, false);
    cudnnBackendDescriptor_t stats = tensor(b, UID_STATS, CUDNN_DATA_FLOAT, st, false, false);
    cudnnBackendDescriptor_t scale = scalar(b, UID_SCALE, CUDNN_DATA_FLOAT);
    cudnnBackendDescriptor_t neg_inf = scalar(b, UID_NEG_INF, CUDNN_DATA_FLOAT);

    cudnnBackendDescriptor_t raw = virt(b, &ids, CUDNN_DATA_FLOAT, sv), scaled = virt(b, &ids, CUDNN_DATA_FLOAT, sv);
    ops[n++] = op_matmul(b, q, kt, raw);
    ops[n++] = op_pointwise(b, CUDNN_POINTWISE_MUL, raw, scale, NULL, scaled, -1);
    cudnnBackendDescriptor_t masked = attention_mask(b, &ids, s, scaled, neg_inf, ops, &n);
    /* softmax with its statistics: m = max, e = exp(x - m), z = sum e,
     * stats = m + log z, p = e / z */
    cudnnBackendDescriptor_t m = virt(b, &ids, CUDNN_DATA_FLOAT, st), shifted = virt(b, &ids, CUDNN_DATA_FLOAT, sv);
    cudnnBackendDescriptor_t e = virt(b, &ids, CUDNN_DATA_FLOAT, sv), z = virt(b, &ids, CUDNN_DATA_FLOAT, st);
    cudnnBackendDescriptor_t logz = virt(b, &ids, CUDNN_DATA_FLOAT, st), p = virt(b, &ids, CUDNN_DATA_BFLOAT16, sv);
    ops[n++] = op_reduce(b, CUDNN_REDUCE_TENSOR_MAX, masked, m);
    ops[n++] = op_pointwise(b, CUDNN_POINTWISE_SUB, masked, m, NULL, shifted, -1);
    ops[n++] = op_pointwise(b, CUDNN_POINTWISE_EXP, shifted, NULL, NULL, e, -1);
    ops[n++] = op_reduce(b, CUDNN_REDUCE_TENSOR_ADD, e, z);
    ops[n++] = op_pointwise(b, CUDNN_POINTWISE_LOG, z, NULL, NULL, logz, -1);
    ops[n++] = op_pointwise(b, CUDNN_POINTWISE_ADD, m, logz, NULL, stats, -1);
    ops[n++] = op_pointwise(b, CUDNN_POINTWISE_DIV, e, z, NULL, p, -1);
    ops[n++] = op_matmul(b, p, v, o);
    return n;
}

static tensor4 transposed(tensor4 t) {
    tensor4 r = t;
    r.dims[2] = t.dims[3], r.dims[3] = t.dims[2];
    r.strides[2] = t.strides[3], r.strides[3] = t.strides[2];
    return r;
}

/* A key-side gradient, out = x^T y (dV = P^T dO, dK = dS^T Q): x, a score-
 * shaped tensor, transposed into bf16 for the product; with grouped-query
 * heads the product is formed per query head and then summed over each
 * key/value head's group into out. */
static void key_gradient(builder *b, graph_ids *ids, const cudnn_att_shape *s, cudnnBackendDescriptor_t x,
                         cudnnBackendDescriptor_t y, cudnnBackendDescriptor_t out, cudnnBackendDescriptor_t *ops,
                         int *n_ops) {
    const bool grouped = s->NH != s->NKV;
    cudnnBackendDescriptor_t xt = virt(b, ids, CUDNN_DATA_BFLOAT16, transposed(scores_view(s)));
    cudnnBackendDescriptor_t per_head =
        grouped ? virt(b, ids, CUDNN_DATA_BFLOAT16, packed(s->B, s->NH, s->T, s->hd)) : out;
    ops[(*n_ops)++] = op_reshape(b, x, xt);
    ops[(*n_ops)++] = op_matmul(b, xt, y, per_head);
    if (grouped) ops[(*n_ops)++] = op_reduce(b, CUDNN_REDUCE_TENSOR_ADD, per_head, out);
}

/* Backward: from dO, O and the statistics, recompute P = exp(scale Q K^T +
 * causal - stats) tile by tile and form
 *   dV = P^T dO,  dP = dO V^T,  dS = scale P (dP - rowsum(dO O)),
 *   dQ = dS K,    dK = dS^T Q.
 * The engine matches this exact shape: K and V enter only transposed (as
 * strides on their own descriptors), the row sums and the fp32 dQ sums are
 * bound tensors (in the workspace), and with grouped-query heads dK and dV
 * are formed per query head and then summed over each group. */
static int backward_graph(builder *b, const cudnn_att_shape *s, cudnnBackendDescriptor_t *ops) {
    graph_ids ids = {UID_FIRST_VIRTUAL};
    int n = 0;
    tensor4 sv = scores_view(s), st = stats_view(s);
    tensor4 qv = qkv_view(s, s->NH, 0), kv = qkv_view(s, s->NKV, 0), ov = out_view(s);
    tensor4 full = packed(s->B, s->NH, s->T, s->hd); /* per query head */
    cudnnBackendDescriptor_t q = tensor(b, UID_Q, CUDNN_DATA_BFLOAT16, qv, false, false);
    cudnnBackendDescriptor_t kt = tensor(b, UID_K, CUDNN_DATA_BFLOAT16, transposed(kv), false, false);
    cudnnBackendDescriptor_t vt = tensor(b, UID_V, CUDNN_DATA_BFLOAT16, transposed(kv), false, false);
    cudnnBackendDescriptor_t o = tensor(b, UID_O, CUDNN_DATA_BFLOAT16, ov, false, false);
    cudnnBackendDescriptor_t dout = tensor(b, UID_DO, CUDNN_DATA_BFLOAT16, ov, false, false);
    cudnnBackendDescriptor_t stats = tensor(b, UID_STATS, CUDNN_DATA_FLOAT, st, false, false);
    cudnnBackendDescriptor_t dq = tensor(b, UID_DQ, CUDNN_DATA_BFLOAT16, qv, false, false);
    cudnnBackendDescriptor_t dk = tensor(b, UID_DK, CUDNN_DATA_BFLOAT16, kv, false, false);
    cudnnBackendDescriptor_t dv = tensor(b, UID_DV, CUDNN_DATA_BFLOAT16, kv, false, false);
    cudnnBackendDescriptor_t rowsum = tensor(b, UID_ROWSUM, CUDNN_DATA_FLOAT, st, false, false);
    cudnnBackendDescriptor_t dq_accum = tensor(b, UID_DQ_ACCUM, CUDNN_DATA_FLOAT, full, false, false);
    cudnnBackendDescriptor_t scale = scalar(b, UID_SCALE, CUDNN_DATA_FLOAT);
    cudnnBackendDescriptor_t neg_inf = scalar(b, UID_NEG_INF, CUDNN_DATA_FLOAT);
    cudnnBackendDescriptor_t one = scalar(b, UID_ONE, CUDNN_DATA_FLOAT);

    /* rowsum(dO O): the softmax's share of every row's gradient */
    cudnnBackendDescriptor_t dot = virt(b, &ids, CUDNN_DATA_FLOAT, full), sum = virt(b, &ids, CUDNN_DATA_FLOAT, st);
    ops[n++] = op_pointwise(b, CUDNN_POINTWISE_MUL, dout, o, NULL, dot, -1);
    ops[n++] = op_reduce(b, CUDNN_REDUCE_TENSOR_ADD, dot, sum);
    ops[n++] = op_pointwise(b, CUDNN_POINTWISE_MUL, sum, one, NULL, rowsum, -1);
    /* P = exp(scale Q K^T - stats), masked */
    cudnnBackendDescriptor_t raw = virt(b, &ids, CUDNN_DATA_FLOAT, sv), scaled = virt(b, &ids, CUDNN_DATA_FLOAT, sv);
    cudnnBackendDescriptor_t shifted = virt(b, &ids, CUDNN_DATA_FLOAT, sv);
    ops[n++] = op_matmul(b, q, kt, raw);
    ops[n++] = op_pointwise(b, CUDNN_POINTWISE_MUL, raw, scale, NULL, scaled, -1);
    ops[n++] = op_pointwise(b, CUDNN_POINTWISE_SUB, scaled, stats, NULL, shifted, -1);
    cudnnBackendDescriptor_t masked = attention_mask(b, &ids, s, shifted, neg_inf, ops, &n);
    cudnnBackendDescriptor_t p = virt(b, &ids, CUDNN_DATA_FLOAT, sv);
    ops[n++] = op_pointwise(b, CUDNN_POINTWISE_EXP, masked, NULL, NULL, p, -1);
    /* dV = P^T dO */
    key_gradient(b, &ids, s, p, dout, dv, ops, &n);
    /* dS = scale P (dO V^T - rowsum) */
    cudnnBackendDescriptor_t dp = virt(b, &ids, CUDNN_DATA_FLOAT, sv), centered = virt(b, &ids, CUDNN_DATA_FLOAT, sv);
    cudnnBackendDescriptor_t pd = virt(b, &ids, CUDNN_DATA_FLOAT, sv), ds = virt(b, &ids, CUDNN_DATA_FLOAT, sv);
    ops[n++] = op_matmul(b, dout, vt, dp);
    ops[n++] = op_pointwise(b, CUDNN_POINTWISE_SUB, dp, rowsum, NULL, centered, -1);
    ops[n++] = op_pointwise(b, CUDNN_POINTWISE_MUL, centered, p, NULL, pd, -1);
    ops[n++] = op_pointwise(b, CUDNN_POINTWISE_MUL, pd, scale, NULL, ds, -1);
    /* dK = dS^T Q */
    key_gradient(b, &ids, s, ds, q, dk, ops, &n);
    /* dQ = dS K, summed in fp32, then rounded into dq */
    cudnnBackendDescriptor_t k = virt(b, &ids, CUDNN_DATA_FLOAT, kv);
    ops[n++] = op_reshape(b, kt, k);
    ops[n++] = op_matmul(b, ds, k, dq_accum);
    ops[n++] = op_pointwise(b, CUDNN_POINTWISE_IDENTITY, dq_accum, NULL, NULL, dq, -1);
    return n;
}

/* ---------------------------------------------------------------- plans */

typedef enum { DIR_FORWARD = 0, DIR_BACKWARD = 1 } direction;

static const char *direction_name(direction dir) { return dir == DIR_FORWARD ? "forward" : "backward"; }

/* "forward B=4 T=1024 NH=12 NKV=4 hd=64 docs": a plan's name in messages. */
static const char *plan_name(char *buf, size_t len, const cudnn_att_shape *s, direction dir) {
    char window[32] = "";
    if (s->window > 0) snprintf(window, sizeof window, " window=%d", s->window);
    snprintf(buf, len, "%s B=%d T=%d NH=%d NKV=%d hd=%d%s%s", direction_name(dir), s->B, s->T, s->NH, s->NKV, s->hd,
             s->docs ? " docs" : "", window);
    return buf;
}

const char *cudnn_attention_known_bad(size_t version, const cudnn_att_shape *s, int backward) {
    if (version == 91000 || version == 91001) return "cuDNN 9.10.0 and 9.10.1 compute bf16 attention wrongly";
    if (backward && s->T == 1) return "the backward takes no single-row attention";
    /* up to 9.15 the backward needs a padding mask (which soju does not build) when the
       rows do not fill the engine's 128-key tiles */
    if (backward && version < 91600 && s->T % 128 != 0)
        return "before cuDNN 9.16 the backward is wrong unless T is a multiple of 128";
    return NULL;
}

/* The operation graph of one direction, finalized; on the GPU path it
 * carries the handle (NULL offline and when recording). Before cuDNN 9.8 a
 * graph without a handle fails to finalize (NVIDIA's frontend refuses to
 * build one there); from 9.8 on it is optional, and the heuristics learn the
 * device from it. The header marks the attribute deprecated for that reason. */
static cudnnBackendDescriptor_t op_graph(builder *b, const cudnn_att_shape *s, direction dir, cudnnHandle_t handle) {
    const char *bad = b->api ? cudnn_attention_known_bad(b->api->get_version(), s, dir == DIR_BACKWARD) : NULL;
    if (bad) {
        builder_refuse(b, "%s", bad);
        b->known_limit = true;
        return NULL;
    }
    cudnnBackendDescriptor_t ops[64];
    int n = dir == DIR_FORWARD ? forward_graph(b, s, ops) : backward_graph(b, s, ops);
    cudnnBackendDescriptor_t g = desc_new(b, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    set(b, g, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n, ops, "graph operations");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    if (handle) set(b, g, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle, "graph handle");
#pragma GCC diagnostic pop
    finalize(b, g, "operation graph");
    return g;
}

/* The global index of the engine an engine configuration runs (-1: unknown). */
static int64_t engine_id(builder *b, cudnnBackendDescriptor_t cfg) {
    cudnnBackendDescriptor_t eng = desc_new(b, CUDNN_BACKEND_ENGINE_DESCRIPTOR);
    int64_t got = 0, id = -1;
    if (eng && b->api->get_attr(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &got, &eng) ==
                   CUDNN_STATUS_SUCCESS)
        b->api->get_attr(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &got, &id);
    return id;
}

/* What planning one graph gave. */
#define MAX_ENGINE_CONFIGS 16
typedef struct plan_result {
    cudnnBackendDescriptor_t plan; /* the heuristics' first configuration that became a plan; NULL: none */
    int offered;                   /* engine configurations the heuristics proposed */
    int compiled;                  /* of those, how many built their kernel (a plan, or, without a
                                      GPU, a kernel that only the driver's load refused) */
    int64_t engine;                /* the plan's engine, else the first compiled one's */
    /* with keep_all: every configuration that became a plan, best first by the heuristics */
    cudnnBackendDescriptor_t plans[MAX_ENGINE_CONFIGS];
    int64_t engines[MAX_ENGINE_CONFIGS];
    int n_plans;
} plan_result;

/* Asks the heuristics for graph g's engine configurations, best first, and
 * makes execution plans of them: only the first that builds, or with
 * keep_all every one that does (to time them). On a GPU `handle` names the
 * device; offline `devprop` describes it, and a configuration counts as
 * compiled when only the (absent) driver refused to load its kernel. */
static plan_result make_plan(builder *b, cudnnBackendDescriptor_t g, cudnnHandle_t handle,
                             cudnnBackendDescriptor_t devprop, bool keep_all) {
    plan_result r;
    memset(&r, 0, sizeof r);
    r.engine = -1;
    cudnnBackendDescriptor_t heur = desc_new(b, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    set_desc(b, heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, g, "heuristics graph");
    set(b, heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, "heuristics mode");
    if (devprop)
        set_desc(b, heur, CUDNN_ATTR_ENGINEHEUR_DEVICEPROP, devprop, "heuristics device");
    finalize(b, heur, "heuristics");
    cudnnBackendDescriptor_t cfgs[MAX_ENGINE_CONFIGS];
    for (int i = 0; i < MAX_ENGINE_CONFIGS; i++) cfgs[i] = desc_new(b, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    if (b->failed) return r;
    int64_t count = 0;
    cudnnStatus_t st = b->api->get_attr(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                        MAX_ENGINE_CONFIGS, &count, cfgs);
    if (st != CUDNN_STATUS_SUCCESS) {
        builder_fail(b, "heuristics results", st);
        return r;
    }
    r.offered = (int)count;
    if (count == 0) {
        builder_fail(b, "no engine takes this graph", CUDNN_STATUS_NOT_SUPPORTED);
        return r;
    }
    char first_why[256] = "";
    for (int64_t i = 0; i < count && (keep_all || !r.plan); i++) {
        int64_t id = engine_id(b, cfgs[i]);
        cudnnBackendDescriptor_t plan = desc_new(b, CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
        set_desc(b, plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, cfgs[i], "plan engine config");
        if (handle) set(b, plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle, "plan handle");
        if (devprop) set_desc(b, plan, CUDNN_ATTR_EXECUTION_PLAN_DEVICEPROP, devprop, "plan device");
        finalize(b, plan, "execution plan");
        bool compiled = !b->failed || b->status == CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER;
        if (compiled && r.compiled++ == 0) r.engine = id;
        if (!b->failed) {
            if (!r.plan) r.plan = plan, r.engine = id;
            r.engines[r.n_plans] = id;
            r.plans[r.n_plans++] = plan;
        } else {
            if (!*first_why) snprintf(first_why, sizeof first_why, "%.255s", b->why);
            b->failed = false; /* try the next configuration */
        }
    }
    if (!r.plan)
        builder_refuse(b, "none of %d engine configurations built a plan; the first: %s", (int)count, first_why);
    return r;
}

/* ---------------------------------------------------------------- running on a GPU */

/* One cached plan per (shape, direction); a failed build is cached too, so
 * a shape cuDNN refuses costs one attempt. When all are taken, a new shape
 * replaces the least recently used. A new shape costs a plan build
 * (the runtime-compiled engines compile their kernel: about a second), which
 * training's fixed shapes pay once; varying prompt lengths would pay it per
 * length. */
#define PLAN_CACHE 16
typedef struct plan_entry {
    cudnn_att_shape shape;
    direction dir;
    bool ok;
    builder b; /* owns the graph's and the plans' descriptors */
    cudnnBackendDescriptor_t plan;
    int64_t workspace, engine;
    /* before the first run, with tuning: every plan the heuristics' configurations
       gave, to be timed on the first call's own tensors (the fastest becomes `plan`) */
    plan_result cands;
    bool tuned;
    unsigned long last_use; /* the cache's clock at its last lookup */
} plan_entry;

struct cudnn_attention {
    cudnn_api api;
    cudnnHandle_t handle;
    cudaStream_t stream;
    bool strict; /* a refused shape aborts */
    bool tune;   /* time the engines' plans on the first call of each shape */
    plan_entry plans[PLAN_CACHE];
    int n_plans;
    unsigned long clock; /* lookups so far: the least recently used entry goes first */
    void *workspace;
    size_t workspace_cap;
};

cudnn_attention *cudnn_attention_open(void *stream, int strict, int tune, char *err, size_t err_len) {
    cudnn_attention *ca = calloc(1, sizeof *ca);
    if (!ca) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    if (api_load(&ca->api, err, err_len) != 0) {
        free(ca);
        return NULL;
    }
    ca->stream = (cudaStream_t)stream;
    ca->strict = strict != 0;
    /* which cuDNN: PyTorch's wheel and the toolkit may each bring one */
    Dl_info where;
    size_t v = ca->api.get_version();
    fprintf(stderr, "soju: cudnn: cuDNN %zu.%zu.%zu from %s\n", v / 10000, v / 100 % 100, v % 100,
            dladdr((void *)ca->api.get_version, &where) && where.dli_fname ? where.dli_fname : "?");
    /* before 9.6 the backward sums into dQ's fp32 buffer, zeroed once per call: repeated
       timing runs would add up there, so those versions take the heuristics' first plan */
    ca->tune = tune != 0 && ca->api.get_version() >= 90600;
    cudnnStatus_t st = ca->api.create(&ca->handle);
    if (st == CUDNN_STATUS_SUCCESS) st = ca->api.set_stream(ca->handle, (cudaStream_t)stream);
    if (st != CUDNN_STATUS_SUCCESS) {
        int devices = 0;
        if (cudaGetDeviceCount(&devices) != cudaSuccess) devices = 0;
        snprintf(err, err_len, "cudnnCreate: %s%s", ca->api.error_string(st), devices ? "" : " (no CUDA device)");
        if (ca->handle) ca->api.destroy(ca->handle);
        dlclose(ca->api.lib);
        free(ca);
        return NULL;
    }
    return ca;
}

void cudnn_attention_close(cudnn_attention *ca) {
    if (!ca) return;
    for (int i = 0; i < ca->n_plans; i++) builder_free(&ca->plans[i].b);
    if (ca->workspace) cudaFree(ca->workspace);
    ca->api.destroy(ca->handle);
    dlclose(ca->api.lib);
    free(ca);
}

static bool same_shape(const cudnn_att_shape *a, const cudnn_att_shape *b) {
    return a->B == b->B && a->T == b->T && a->NH == b->NH && a->NKV == b->NKV && a->hd == b->hd &&
           a->scale == b->scale && a->docs == b->docs && a->window == b->window;
}

/* A shape that runs on soju's kernels instead of cuDNN's (cuDNN refused to
 * plan it, or a planned one cannot run after all), said once on stderr with
 * the reason. Under strict the process stops there, unless may_stop is false
 * (a known limit of the cuDNN release: no case of cuDNN failing). */
static void refuse(const cudnn_attention *ca, const plan_entry *e, const char *why, bool may_stop) {
    char name[96];
    const bool stop = ca->strict && may_stop;
    fprintf(stderr, "soju: cudnn: attention %s %s: %s\n", plan_name(name, sizeof name, &e->shape, e->dir),
            stop ? "refused (SOJU_CUDA_CUDNN=strict)" : "runs on soju's kernels", why);
    if (stop) abort();
}

/* The cached plan of (s, dir), built on first use. NULL when cuDNN refuses
 * the shape (said once on stderr). */
static plan_entry *plan_for(cudnn_attention *ca, const cudnn_att_shape *s, direction dir) {
    ca->clock++;
    for (int i = 0; i < ca->n_plans; i++)
        if (ca->plans[i].dir == dir && same_shape(&ca->plans[i].shape, s)) {
            ca->plans[i].last_use = ca->clock;
            return ca->plans[i].ok ? &ca->plans[i] : NULL;
        }
    /* a new shape: a free slot, else the least recently used (never the
       training step's shapes, used every step, while others come and go) */
    int slot = 0;
    if (ca->n_plans < PLAN_CACHE) slot = ca->n_plans++;
    else
        for (int i = 1; i < PLAN_CACHE; i++)
            if (ca->plans[i].last_use < ca->plans[slot].last_use) slot = i;
    plan_entry *e = &ca->plans[slot];
    if (e->b.n_descs) cudaStreamSynchronize(ca->stream); /* its kernels may still be running */
    builder_free(&e->b);
    memset(e, 0, sizeof *e);
    e->shape = *s;
    e->dir = dir;
    e->last_use = ca->clock;
    e->b.api = &ca->api;
    cudnnBackendDescriptor_t g = op_graph(&e->b, s, dir, ca->handle);
    e->cands = make_plan(&e->b, g, ca->handle, NULL, ca->tune);
    e->plan = e->cands.plan, e->engine = e->cands.engine;
    e->tuned = e->cands.n_plans <= 1;
    /* the workspace fits every candidate */
    for (int i = 0; i < e->cands.n_plans && !e->b.failed; i++) {
        int64_t got = 0, ws = 0;
        ca->api.get_attr(e->cands.plans[i], CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &got, &ws);
        if (ws > e->workspace) e->workspace = ws;
    }
    e->ok = !e->b.failed;
    if (!e->ok) {
        refuse(ca, e, e->b.why, !e->b.known_limit);
        builder_free(&e->b); /* keep only the verdict */
        return NULL;
    }
    return e;
}

/* A shape that was planned but cannot run after all (its workspace cannot
 * be allocated, or cuDNN refuses to execute it): refused from now on. The
 * caller's kernels then compute this call whole (a timing run may have
 * written its outputs; they are written again). */
static int give_up(cudnn_attention *ca, plan_entry *e, const char *why) {
    refuse(ca, e, why, true);
    cudaGetLastError(); /* a launch cuDNN failed must not surface at soju's next launch check */
    e->ok = false;      /* the verdict stays; the descriptors go when the entry is evicted */
    return -1;
}

/* The workspace: `extra` bytes of soju's own tensors at the start, then the
 * plan's. Grown on demand (cudaFree synchronizes, which only happens while
 * plans are new). NULL when the memory is not there. */
static char *workspace(cudnn_attention *ca, size_t extra, const plan_entry *e) {
    size_t need = extra + (size_t)e->workspace;
    if (need > ca->workspace_cap) {
        if (ca->workspace) cudaFree(ca->workspace);
        ca->workspace = NULL, ca->workspace_cap = 0;
        if (cudaMalloc(&ca->workspace, need) != cudaSuccess) {
            cudaGetLastError();
            ca->workspace = NULL;
            return NULL;
        }
        ca->workspace_cap = need;
    }
    return (char *)ca->workspace;
}

/* The fastest of e's candidate plans on the bound tensors (pack): each runs
 * once to warm up, then three times between events; the best of the three
 * counts. The outputs are written again by every run, never summed into, so
 * the timing leaves them as one run would. */
static void tune_plan(cudnn_attention *ca, plan_entry *e, cudnnBackendDescriptor_t pack) {
    cudaEvent_t t0, t1;
    cudaEventCreate(&t0);
    cudaEventCreate(&t1);
    float best = INFINITY, ms[MAX_ENGINE_CONFIGS];
    for (int i = 0; i < e->cands.n_plans; i++) {
        ms[i] = INFINITY;
        for (int rep = 0; rep < 4; rep++) {
            cudaEventRecord(t0, ca->stream);
            cudnnStatus_t st = ca->api.execute(ca->handle, e->cands.plans[i], pack);
            cudaEventRecord(t1, ca->stream);
            cudaEventSynchronize(t1);
            float t = INFINITY;
            if (st != CUDNN_STATUS_SUCCESS) break; /* this engine cannot run it: not a candidate */
            cudaEventElapsedTime(&t, t0, t1);
            if (rep > 0 && t < ms[i]) ms[i] = t;
        }
        if (ms[i] < best) best = ms[i], e->plan = e->cands.plans[i], e->engine = e->cands.engines[i];
    }
    cudaEventDestroy(t0);
    cudaEventDestroy(t1);
    cudaGetLastError(); /* a candidate's refused launch must not surface at soju's next launch check */
    const cudnn_att_shape *s = &e->shape;
    char name[96];
    fprintf(stderr, "soju: cudnn: %s: engine %lld, %.3f ms (of %d timed:", plan_name(name, sizeof name, s, e->dir),
            (long long)e->engine, best, e->cands.n_plans);
    for (int i = 0; i < e->cands.n_plans; i++)
        fprintf(stderr, " engine %lld %.3f", (long long)e->cands.engines[i], ms[i]);
    fprintf(stderr, ")\n");
    e->tuned = true;
}

/* Runs plan e with the given tensors bound by id (by-value scalars point at
 * host memory); the plan's own workspace starts at plan_ws. The first run of
 * an untuned shape picks its fastest plan first. 0, or -1 when cuDNN would
 * not run it (give_up). */
static int run_plan(cudnn_attention *ca, plan_entry *e, int n, const int64_t *uids, void **ptrs, void *plan_ws) {
    builder b = {.api = &ca->api};
    cudnnBackendDescriptor_t pack = desc_new(&b, CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
    set(&b, pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids, "variant pack ids");
    set(&b, pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs, "variant pack pointers");
    set(&b, pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &plan_ws, "variant pack workspace");
    finalize(&b, pack, "variant pack");
    if (!b.failed && !e->tuned) tune_plan(ca, e, pack);
    if (!b.failed) {
        cudnnStatus_t st = ca->api.execute(ca->handle, e->plan, pack);
        if (st != CUDNN_STATUS_SUCCESS) builder_fail(&b, "execute", st);
    }
    int rc = b.failed ? give_up(ca, e, b.why) : 0;
    builder_free(&b);
    return rc;
}

/* What masked scores become: -inf, but the lowest finite float before cuDNN
 * 9.10, whose engines expect that (as NVIDIA's frontend does it). */
static float masked_value(const cudnn_attention *ca) {
    return ca->api.get_version() < 91000 ? -FLT_MAX : -INFINITY;
}

/* Pointers to the query, key and value heads of row 0 inside qkv, whose
 * elements take elem_size bytes. */
static void qkv_heads(const cudnn_att_shape *s, const void *qkv, size_t elem_size, void **q, void **k, void **v) {
    char *base = (char *)qkv;
    *q = base;
    *k = base + (size_t)s->NH * s->hd * elem_size;
    *v = base + (size_t)(s->NH + s->NKV) * s->hd * elem_size;
}

/* A variant pack being filled: ids and addresses, n so far. */
typedef struct bindings {
    int64_t *uids;
    void **ptrs;
    int n;
} bindings;

static void bind(bindings *p, int64_t uid, const void *ptr) {
    if (p->n == CUDNN_ATT_MAX_BINDINGS) { /* a graph grew past the callers' arrays: a bug here */
        fprintf(stderr, "soju: cudnn: more than %d bound tensors\n", CUDNN_ATT_MAX_BINDINGS);
        abort();
    }
    p->uids[p->n] = uid;
    p->ptrs[p->n++] = (void *)ptr;
}

int cudnn_attention_bindings(const cudnn_att_shape *s, int backward, cudnn_att_buffers *buf, size_t elem_size,
                             int64_t *uids, void **ptrs) {
    bindings p = {uids, ptrs, 0};
    void *q, *k, *v;
    qkv_heads(s, buf->qkv, elem_size, &q, &k, &v);
    bind(&p, UID_Q, q), bind(&p, UID_K, k), bind(&p, UID_V, v);
    bind(&p, UID_O, buf->out), bind(&p, UID_STATS, buf->lse);
    bind(&p, UID_SCALE, &buf->scale), bind(&p, UID_NEG_INF, &buf->neg_inf);
    if (backward) {
        void *dq, *dk, *dv;
        qkv_heads(s, buf->dqkv, elem_size, &dq, &dk, &dv);
        bind(&p, UID_DO, buf->dout), bind(&p, UID_DQ, dq), bind(&p, UID_DK, dk), bind(&p, UID_DV, dv);
        bind(&p, UID_ONE, &buf->one), bind(&p, UID_ROWSUM, buf->rowsum), bind(&p, UID_DQ_ACCUM, buf->dq_accum);
    }
    if (s->docs) /* one array, seen per query and per key */
        bind(&p, UID_DOC_ROW, buf->doc_ids), bind(&p, UID_DOC_COL, buf->doc_ids), bind(&p, UID_ZERO, &buf->zero);
    if (s->window > 0) bind(&p, UID_WINDOW, &buf->window);
    return p.n;
}

/* One call's buffers, with the by-value scalars for this library. */
static cudnn_att_buffers call_buffers(const cudnn_attention *ca, const cudnn_att_shape *s) {
    cudnn_att_buffers buf;
    memset(&buf, 0, sizeof buf);
    buf.scale = s->scale, buf.neg_inf = masked_value(ca), buf.one = 1.0f, buf.window = s->window;
    return buf;
}

int cudnn_attention_forward(cudnn_attention *ca, const cudnn_att_shape *s, void *out, float *lse, const void *qkv,
                            const int32_t *doc_ids) {
    plan_entry *e = plan_for(ca, s, DIR_FORWARD);
    if (!e) return -1;
    cudnn_att_buffers buf = call_buffers(ca, s);
    buf.qkv = qkv, buf.out = out, buf.lse = lse, buf.doc_ids = doc_ids;
    int64_t uids[CUDNN_ATT_MAX_BINDINGS];
    void *ptrs[CUDNN_ATT_MAX_BINDINGS];
    int n = cudnn_attention_bindings(s, 0, &buf, 2, uids, ptrs);
    char *ws = workspace(ca, 0, e);
    if (!ws) return give_up(ca, e, "no memory for its workspace");
    return run_plan(ca, e, n, uids, ptrs, ws);
}

int cudnn_attention_backward(cudnn_attention *ca, const cudnn_att_shape *s, void *dqkv, const void *dout,
                             const void *qkv, const void *out, const float *lse, const int32_t *doc_ids) {
    plan_entry *e = plan_for(ca, s, DIR_BACKWARD);
    if (!e) return -1;
    /* the graph's own fp32 tensors, 256-byte aligned at the workspace's start */
    size_t rows = (size_t)s->B * s->NH * s->T;
    size_t rowsum_bytes = (rows * sizeof(float) + 255) & ~(size_t)255;
    size_t accum_bytes = (rows * s->hd * sizeof(float) + 255) & ~(size_t)255;
    char *ws = workspace(ca, rowsum_bytes + accum_bytes, e);
    if (!ws) return give_up(ca, e, "no memory for its workspace");
    cudnn_att_buffers buf = call_buffers(ca, s);
    buf.qkv = qkv, buf.out = (void *)out, buf.lse = (float *)lse, buf.dout = dout, buf.dqkv = dqkv;
    buf.rowsum = ws, buf.dq_accum = ws + rowsum_bytes, buf.doc_ids = doc_ids;
    if (ca->api.get_version() < 90600 && /* older engines add into dQ's fp32 sums instead of writing them */
        cudaMemsetAsync(buf.dq_accum, 0, rows * s->hd * sizeof(float), ca->stream) != cudaSuccess)
        return give_up(ca, e, "zeroing dQ's sums failed");
    int64_t uids[CUDNN_ATT_MAX_BINDINGS];
    void *ptrs[CUDNN_ATT_MAX_BINDINGS];
    int n = cudnn_attention_bindings(s, 1, &buf, 2, uids, ptrs);
    return run_plan(ca, e, n, uids, ptrs, ws + rowsum_bytes + accum_bytes);
}

/* ---------------------------------------------------------------- the graphs as data */

int cudnn_attention_graph(const cudnn_att_shape *s, int backward, cudnn_graph_program *out) {
    memset(out, 0, sizeof *out);
    builder b = {.api = NULL, .rec = out};
    op_graph(&b, s, backward ? DIR_BACKWARD : DIR_FORWARD, NULL);
    return b.failed ? -1 : 0;
}

/* ---------------------------------------------------------------- offline check */

int cudnn_attention_check_offline(const char *device_json, const cudnn_att_shape *s, void *log) {
    FILE *f = (FILE *)log;
    cudnn_api api;
    char err[256];
    if (api_load(&api, err, sizeof err) != 0) {
        fprintf(f, "cudnn: %s\n", err);
        return -1;
    }
    int good = 0;
    for (int dir = DIR_FORWARD; dir <= DIR_BACKWARD; dir++) {
        builder b = {.api = &api};
        cudnnBackendDescriptor_t dev = desc_new(&b, CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR);
        set(&b, dev, CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION, CUDNN_TYPE_CHAR, (int64_t)strlen(device_json),
            device_json, "device json");
        finalize(&b, dev, "device properties");
        cudnnBackendDescriptor_t g = op_graph(&b, s, (direction)dir, NULL);
        plan_result r = make_plan(&b, g, NULL, dev, false);
        char name[96];
        fprintf(f, "cudnn %zu %s: %d engine configs, %d compiled", api.get_version(),
                plan_name(name, sizeof name, s, (direction)dir), r.offered, r.compiled);
        if (r.compiled) fprintf(f, " (engine %lld)\n", (long long)r.engine);
        else fprintf(f, ": %s\n", b.why);
        good += r.compiled > 0;
        builder_free(&b);
    }
    dlclose(api.lib);
    return good;
}

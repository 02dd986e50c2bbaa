/* cuDNN's fused attention graphs (src/ops/cuda/cudnn_graph.c), checked
 * without a GPU.
 *
 * cuDNN (9.8 and newer) can plan for a device described in JSON instead of a
 * live one: tools/cudnn_h100.json describes an H100 SXM. For each shape the
 * forward and backward graphs are built, the heuristics must offer engine
 * configurations (they offer none for a graph their flash-attention engines
 * do not recognize), and the offered engines must compile their kernels; only
 * loading a kernel into the driver needs the GPU, and the CUDA driver stub
 * stands in for it up to there. Numbers come later: gpu_check.sh runs the
 * same path on a GPU against the CPU ops.
 *
 * Skips (77) in a build without cudnn_backend.h or where libcudnn.so.9
 * cannot be opened (SOJU_CUDNN_LIB / LD_LIBRARY_PATH, set by CMake). */
#include "soju/base.h"
#include "test.h"

#ifdef SOJU_HAVE_CUDNN
#include <cuda_runtime_api.h>

#include "ops/cuda/cudnn_graph.h"

/* A device description (tools/cudnn_<name>.json), read once. */
static const char *device(const char *name) {
    static char *json[2];
    static const char *names[2];
    int slot = 0;
    while (slot < 2 && names[slot] && strcmp(names[slot], name) != 0) slot++;
    if (slot == 2) exit(1); /* two devices are all these tests describe */
    if (!json[slot]) {
        char path[64];
        snprintf(path, sizeof path, "tools/cudnn_%s.json", name);
        soju_err err;
        size_t len;
        if (soju_read_file(path, &json[slot], &len, &err) != 0) {
            fprintf(stderr, "%s\n", err.msg);
            exit(1);
        }
        names[slot] = name;
    }
    return json[slot];
}

/* Both directions of `s` must compile for the device (returns 2); -1 means no library. */
static int check_on(const char *dev, int B, int T, int NH, int NKV, int hd, int docs, int window) {
    cudnn_att_shape s = {B, T, NH, NKV, hd, 1.0f / sqrtf((float)hd), docs, window};
    int r = cudnn_attention_check_offline(device(dev), &s, stdout);
    if (r < 0) SKIP("libcudnn.so.9 cannot be opened here");
    return r;
}
static int check_masked_shape(int B, int T, int NH, int NKV, int hd, int docs, int window) {
    return check_on("h100", B, T, NH, NKV, hd, docs, window);
}
static int check_shape(int B, int T, int NH, int NKV, int hd) { return check_masked_shape(B, T, NH, NKV, hd, 0, 0); }

TEST(gpt2_shape) { CHECK_EQ_INT(check_shape(4, 1024, 12, 12, 64), 2); }
TEST(llama_grouped_query_shape) { CHECK_EQ_INT(check_shape(4, 1024, 12, 4, 64), 2); }
TEST(head_dim_128) { CHECK_EQ_INT(check_shape(2, 256, 4, 4, 128), 2); }
TEST(ragged_sequence_and_groups) { CHECK_EQ_INT(check_shape(3, 77, 6, 2, 128), 2); }
TEST(packed_documents) { CHECK_EQ_INT(check_masked_shape(4, 1024, 12, 12, 64, 1, 0), 2); }
TEST(packed_documents_grouped_query) { CHECK_EQ_INT(check_masked_shape(4, 1024, 12, 4, 64, 1, 0), 2); }
TEST(sliding_window) { CHECK_EQ_INT(check_masked_shape(2, 1024, 8, 4, 128, 0, 256), 2); }
TEST(sliding_window_and_documents) { CHECK_EQ_INT(check_masked_shape(2, 512, 8, 2, 64, 1, 100), 2); }
/* The check can fail: cuDNN's engines take no head dim that is not a
 * multiple of 8 (soju never sends one there). */
TEST(refused_head_dim) { CHECK_EQ_INT(check_shape(1, 128, 2, 2, 36), 0); }

/* An older GPU (the backend's floor is Ampere): an A100 SXM takes causal
 * attention with grouped heads and a window both ways, documents only
 * forward (its backward takes no per-query vector beyond the statistics and
 * the row sums: soju's kernels serve it). */
TEST(ampere) {
    CHECK_EQ_INT(check_on("a100", 4, 1024, 12, 12, 64, 0, 0), 2);
    CHECK_EQ_INT(check_on("a100", 2, 512, 8, 2, 128, 0, 100), 2);
    CHECK(check_on("a100", 4, 1024, 12, 4, 64, 1, 0) >= 1); /* 1 with cuDNN 9.19 and 9.26: the forward */
}

/* Releases with known wrong results refuse the shapes they get wrong. */
TEST(known_bad_releases) {
    cudnn_att_shape gpt2 = {4, 1024, 12, 12, 64, 0.125f, 0, 0}, ragged = {3, 77, 6, 2, 128, 0.088f, 0, 0};
    CHECK(cudnn_attention_known_bad(91000, &gpt2, 0) != NULL);
    CHECK(cudnn_attention_known_bad(91001, &gpt2, 1) != NULL);
    CHECK(cudnn_attention_known_bad(91002, &gpt2, 1) == NULL);
    CHECK(cudnn_attention_known_bad(91500, &ragged, 1) != NULL); /* T % 128 before 9.16 */
    CHECK(cudnn_attention_known_bad(91500, &ragged, 0) == NULL); /* the forward is fine */
    CHECK(cudnn_attention_known_bad(91900, &ragged, 1) == NULL);
    cudnn_att_shape one_row = gpt2;
    one_row.T = 1;
    CHECK(cudnn_attention_known_bad(91900, &one_row, 1) != NULL);
}

/* Without a GPU, opening cuDNN for execution fails with a reason (the
 * backend then prints it and keeps soju's kernels). */
TEST(open_without_gpu) {
    int n = 0;
    if (cudaGetDeviceCount(&n) == cudaSuccess && n > 0) {
        printf("open without a GPU: a GPU is here, nothing to refuse\n");
        return;
    }
    char why[256] = "";
    cudnn_attention *ca = cudnn_attention_open(NULL, 0, 0, why, sizeof why);
    CHECK(ca == NULL);
    CHECK_MSG(why[0] != 0 && !strchr(why, '\n'), "reason: '%s'", why);
    printf("open without a GPU: %s\n", why);
    cudnn_attention_close(ca); /* NULL: nothing */
}

TEST_MAIN(gpt2_shape, llama_grouped_query_shape, head_dim_128, ragged_sequence_and_groups, packed_documents,
          packed_documents_grouped_query, sliding_window, sliding_window_and_documents, refused_head_dim,
          ampere, known_bad_releases,
          open_without_gpu)
#else
int main(void) { SKIP("this build has no cuDNN header (cudnn_backend.h)"); }
#endif

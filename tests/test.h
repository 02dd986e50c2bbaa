/* tests/test.h — the whole test framework: checks that count failures, and a
 * main() that runs every TEST() listed in the file.
 *
 *   #include "test.h"
 *   TEST(adds) { CHECK(1 + 1 == 2); CHECK_NEAR(0.1 + 0.2, 0.3, 1e-12); }
 *   TEST_MAIN(adds)
 *
 * Environment set by ctest: SOJU_SHARED (../shared), SOJU_BIN (the CLI),
 * SOJU_TMP (a scratch folder). A test that needs something absent calls
 * SKIP("why"), which exits 77 (ctest shows it as skipped, not passed). */
#ifndef SOJU_TEST_H
#define SOJU_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "soju/base.h"

static int test_failures_;
static const char *test_current_;

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: [%s] check failed: %s\n", __FILE__, __LINE__,        \
                    test_current_, #cond);                                               \
            test_failures_++;                                                            \
        }                                                                                \
    } while (0)

#define CHECK_MSG(cond, ...)                                                             \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: [%s] check failed: %s: ", __FILE__, __LINE__,       \
                    test_current_, #cond);                                               \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
            test_failures_++;                                                            \
        }                                                                                \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                            \
    do {                                                                                 \
        double a_ = (double)(a), b_ = (double)(b);                                       \
        if (!(fabs(a_ - b_) <= (tol))) {                                                 \
            fprintf(stderr, "%s:%d: [%s] %s = %.9g, expected %s = %.9g (tol %g)\n",      \
                    __FILE__, __LINE__, test_current_, #a, a_, #b, b_, (double)(tol));   \
            test_failures_++;                                                            \
        }                                                                                \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                               \
    do {                                                                                 \
        long long a_ = (long long)(a), b_ = (long long)(b);                              \
        if (a_ != b_) {                                                                  \
            fprintf(stderr, "%s:%d: [%s] %s = %lld, expected %s = %lld\n", __FILE__,     \
                    __LINE__, test_current_, #a, a_, #b, b_);                            \
            test_failures_++;                                                            \
        }                                                                                \
    } while (0)

#define CHECK_STR(a, b)                                                                  \
    do {                                                                                 \
        const char *a_ = (a), *b_ = (b);                                                 \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                         \
            fprintf(stderr, "%s:%d: [%s] %s = \"%s\", expected \"%s\"\n", __FILE__,      \
                    __LINE__, test_current_, #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
            test_failures_++;                                                            \
        }                                                                                \
    } while (0)

/* A call that must succeed; prints the error line if it does not. */
#define CHECK_OK(call)                                                                   \
    do {                                                                                 \
        soju_err e_ = {{0}};                                                             \
        (void)e_;                                                                        \
        int rc_ = (call);                                                                \
        if (rc_ != 0) {                                                                  \
            fprintf(stderr, "%s:%d: [%s] %s failed (%d)\n", __FILE__, __LINE__,          \
                    test_current_, #call, rc_);                                          \
            test_failures_++;                                                            \
        }                                                                                \
    } while (0)

#define SKIP(...)                                                                        \
    do {                                                                                 \
        fprintf(stderr, "SKIP: ");                                                       \
        fprintf(stderr, __VA_ARGS__);                                                    \
        fputc('\n', stderr);                                                             \
        exit(77);                                                                        \
    } while (0)

#define TEST(name) static void test_##name(void)

typedef struct { const char *name; void (*fn)(void); } test_case_;

#define TEST_ENTRY_(name) {#name, test_##name},
#define TEST_FOREACH_(M, ...) TEST_EXPAND_(TEST_MAP_(M, __VA_ARGS__))
#define TEST_EXPAND_(x) x

/* TEST_MAIN(a, b, c): runs the listed tests in order (or those named on the command line). */
#define TEST_MAIN(...)                                                                   \
    int main(int argc, char **argv) {                                                    \
        void (*fns_[])(void) = {TEST_FNS_(__VA_ARGS__)};                                 \
        const char *names_ = #__VA_ARGS__;                                               \
        return test_run_(fns_, sizeof fns_ / sizeof fns_[0], names_, argc, argv);        \
    }

/* Map names to function pointers with a fixed-arity trick (up to 40 tests). */
#define TEST_FNS_(...) TEST_GET_(__VA_ARGS__, TEST_F40_, TEST_F39_, TEST_F38_, TEST_F37_, TEST_F36_, TEST_F35_, TEST_F34_, TEST_F33_, TEST_F32_, TEST_F31_, TEST_F30_, TEST_F29_, TEST_F28_, TEST_F27_, TEST_F26_, TEST_F25_, TEST_F24_, TEST_F23_, TEST_F22_, TEST_F21_, TEST_F20_, TEST_F19_, TEST_F18_, TEST_F17_, TEST_F16_, TEST_F15_, TEST_F14_, TEST_F13_, TEST_F12_, TEST_F11_, TEST_F10_, TEST_F9_, TEST_F8_, TEST_F7_, TEST_F6_, TEST_F5_, TEST_F4_, TEST_F3_, TEST_F2_, TEST_F1_)(__VA_ARGS__)
#define TEST_GET_(_1,_2,_3,_4,_5,_6,_7,_8,_9,_10,_11,_12,_13,_14,_15,_16,_17,_18,_19,_20,_21,_22,_23,_24,_25,_26,_27,_28,_29,_30,_31,_32,_33,_34,_35,_36,_37,_38,_39,_40,N,...) N
#define TEST_F1_(a) test_##a
#define TEST_F2_(a, ...) test_##a, TEST_F1_(__VA_ARGS__)
#define TEST_F3_(a, ...) test_##a, TEST_F2_(__VA_ARGS__)
#define TEST_F4_(a, ...) test_##a, TEST_F3_(__VA_ARGS__)
#define TEST_F5_(a, ...) test_##a, TEST_F4_(__VA_ARGS__)
#define TEST_F6_(a, ...) test_##a, TEST_F5_(__VA_ARGS__)
#define TEST_F7_(a, ...) test_##a, TEST_F6_(__VA_ARGS__)
#define TEST_F8_(a, ...) test_##a, TEST_F7_(__VA_ARGS__)
#define TEST_F9_(a, ...) test_##a, TEST_F8_(__VA_ARGS__)
#define TEST_F10_(a, ...) test_##a, TEST_F9_(__VA_ARGS__)
#define TEST_F11_(a, ...) test_##a, TEST_F10_(__VA_ARGS__)
#define TEST_F12_(a, ...) test_##a, TEST_F11_(__VA_ARGS__)
#define TEST_F13_(a, ...) test_##a, TEST_F12_(__VA_ARGS__)
#define TEST_F14_(a, ...) test_##a, TEST_F13_(__VA_ARGS__)
#define TEST_F15_(a, ...) test_##a, TEST_F14_(__VA_ARGS__)
#define TEST_F16_(a, ...) test_##a, TEST_F15_(__VA_ARGS__)
#define TEST_F17_(a, ...) test_##a, TEST_F16_(__VA_ARGS__)
#define TEST_F18_(a, ...) test_##a, TEST_F17_(__VA_ARGS__)
#define TEST_F19_(a, ...) test_##a, TEST_F18_(__VA_ARGS__)
#define TEST_F20_(a, ...) test_##a, TEST_F19_(__VA_ARGS__)
#define TEST_F21_(a, ...) test_##a, TEST_F20_(__VA_ARGS__)
#define TEST_F22_(a, ...) test_##a, TEST_F21_(__VA_ARGS__)
#define TEST_F23_(a, ...) test_##a, TEST_F22_(__VA_ARGS__)
#define TEST_F24_(a, ...) test_##a, TEST_F23_(__VA_ARGS__)
#define TEST_F25_(a, ...) test_##a, TEST_F24_(__VA_ARGS__)
#define TEST_F26_(a, ...) test_##a, TEST_F25_(__VA_ARGS__)
#define TEST_F27_(a, ...) test_##a, TEST_F26_(__VA_ARGS__)
#define TEST_F28_(a, ...) test_##a, TEST_F27_(__VA_ARGS__)
#define TEST_F29_(a, ...) test_##a, TEST_F28_(__VA_ARGS__)
#define TEST_F30_(a, ...) test_##a, TEST_F29_(__VA_ARGS__)
#define TEST_F31_(a, ...) test_##a, TEST_F30_(__VA_ARGS__)
#define TEST_F32_(a, ...) test_##a, TEST_F31_(__VA_ARGS__)
#define TEST_F33_(a, ...) test_##a, TEST_F32_(__VA_ARGS__)
#define TEST_F34_(a, ...) test_##a, TEST_F33_(__VA_ARGS__)
#define TEST_F35_(a, ...) test_##a, TEST_F34_(__VA_ARGS__)
#define TEST_F36_(a, ...) test_##a, TEST_F35_(__VA_ARGS__)
#define TEST_F37_(a, ...) test_##a, TEST_F36_(__VA_ARGS__)
#define TEST_F38_(a, ...) test_##a, TEST_F37_(__VA_ARGS__)
#define TEST_F39_(a, ...) test_##a, TEST_F38_(__VA_ARGS__)
#define TEST_F40_(a, ...) test_##a, TEST_F39_(__VA_ARGS__)

static inline int test_run_(void (**fns)(void), size_t n, const char *names, int argc, char **argv) {
    /* stdout line by line, also into a file or a pipe: a test's printed lines (the CUDA
     * checks' "name err tol ok|FAIL") must survive an abort() or a timeout's kill,
     * which do not flush a full buffer */
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* Split the stringified name list "a, b, c". */
    char *list = strdup(names), *save = NULL;
    const char *nm[64];
    size_t k = 0;
    for (char *t = strtok_r(list, ", \t\n", &save); t && k < 64; t = strtok_r(NULL, ", \t\n", &save)) nm[k++] = t;
    int ran = 0;
    for (size_t i = 0; i < n && i < k; i++) {
        int wanted = argc < 2;
        for (int a = 1; a < argc; a++) wanted |= !strcmp(argv[a], nm[i]);
        if (!wanted) continue;
        test_current_ = nm[i];
        int before = test_failures_;
        fprintf(stderr, "-- %s\n", nm[i]);
        fns[i]();
        fprintf(stderr, "   %s: %s\n", nm[i], test_failures_ == before ? "ok" : "FAILED");
        ran++;
    }
    free(list);
    fprintf(stderr, "%d test(s), %d failure(s)\n", ran, test_failures_);
    return test_failures_ ? 1 : 0;
}

/* Where shared data lives (../shared), or NULL if it is not there. */
static inline const char *test_shared_dir(void) {
    const char *s = getenv("SOJU_SHARED");
    if (s && access(s, R_OK) == 0) return s;
    if (access("../shared", R_OK) == 0) return "../shared";
    return NULL;
}

/* A fresh scratch directory for one test: $SOJU_TMP/<name> (emptied first). */
static inline char *test_tmp_dir(const char *name) {
    const char *base = getenv("SOJU_TMP");
    if (!base) base = "/tmp/soju-test";
    char *dir = soju_path_join(base, name);
    soju_rmtree(dir);
    soju_err err;
    if (soju_mkdirs(dir, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(2);
    }
    return dir;
}

/* Path to the built CLI. */
static inline const char *test_soju_bin(void) {
    const char *s = getenv("SOJU_BIN");
    return s ? s : "build/soju";
}

#endif

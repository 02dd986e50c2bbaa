/* soju/base.h — the bottom layer every other part stands on.
 *
 * Errors:   functions that can fail take a `soju_err *` as their last argument,
 *           fill it with one human-readable line and return a negative status.
 *           The CLI prints that line and exits non-zero. Nothing here exits the
 *           process except on out-of-memory, which no caller could recover from.
 * Memory:   soju_malloc/calloc/realloc abort with a message when memory runs out.
 * Files:    whole-file reads, atomic writes (temp file, fsync, rename), mkdir -p.
 * Strings:  a growable byte buffer (soju_buf) used for building text and JSON.
 * Random:   a seedable xoshiro256** generator with uniform and normal draws.
 * Time:     monotonic seconds; a progress bar that prints a rate and an ETA.
 * Config:   JSON through cJSON (Debian libcjson); YAML files are read into the
 *           same cJSON tree so every config is walked one way.
 */
#ifndef SOJU_BASE_H
#define SOJU_BASE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- errors */

#define SOJU_ERR_MSG 1024

typedef struct soju_err {
    char msg[SOJU_ERR_MSG];
} soju_err;

/* Status codes. 0 is success; every failure is negative. */
enum {
    SOJU_OK = 0,
    SOJU_EIO = -1,      /* file missing, unreadable, unwritable */
    SOJU_EFORMAT = -2,  /* malformed input (bad magic, truncated, bad JSON, ...) */
    SOJU_EARG = -3,     /* bad argument or configuration value */
    SOJU_ENOMEM = -4,   /* allocation refused (only where a caller can recover) */
    SOJU_ENUM = -5,     /* numerical failure (NaN or infinite loss) */
    SOJU_EUNSUP = -6,   /* valid but not supported yet */
};

/* Write a formatted one-line message into err (if non-NULL) and return code. */
int soju_errf(soju_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix an existing message: "prefix: old message". Returns code. */
int soju_err_prefix(soju_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------------- logging */

/* Plain log lines on stderr: "[soju] message". */
void soju_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void soju_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---------------------------------------------------------------- memory */

void *soju_malloc(size_t n);
void *soju_calloc(size_t count, size_t size);
void *soju_realloc(void *p, size_t n);
char *soju_strdup(const char *s);
char *soju_strndup(const char *s, size_t n);
/* 64-byte aligned allocation (SIMD- and cache-line-friendly); free with free(). */
void *soju_aligned_alloc(size_t n);

/* A growable array of any element type: SOJU_VEC(int) v = {0}; soju_vec_push(&v, 3); */
#define SOJU_VEC(T) struct { T *data; size_t len, cap; }
#define soju_vec_reserve(v, n)                                                     \
    do {                                                                           \
        if ((n) > (v)->cap) {                                                      \
            size_t c_ = (v)->cap ? (v)->cap : 8;                                   \
            while (c_ < (n)) c_ *= 2;                                              \
            (v)->data = soju_realloc((v)->data, c_ * sizeof(*(v)->data));          \
            (v)->cap = c_;                                                         \
        }                                                                          \
    } while (0)
#define soju_vec_push(v, x)                                                        \
    do {                                                                           \
        soju_vec_reserve((v), (v)->len + 1);                                       \
        (v)->data[(v)->len++] = (x);                                               \
    } while (0)
#define soju_vec_free(v)                                                           \
    do {                                                                           \
        free((v)->data);                                                           \
        (v)->data = NULL;                                                          \
        (v)->len = (v)->cap = 0;                                                   \
    } while (0)

/* ---------------------------------------------------------------- strings */

/* Growable byte buffer; always NUL-terminated when data != NULL. */
typedef struct soju_buf {
    char *data;
    size_t len, cap;
} soju_buf;

void soju_buf_reserve(soju_buf *b, size_t extra);
void soju_buf_append(soju_buf *b, const void *p, size_t n);
void soju_buf_puts(soju_buf *b, const char *s);
void soju_buf_putc(soju_buf *b, char c);
void soju_buf_printf(soju_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void soju_buf_clear(soju_buf *b);
void soju_buf_free(soju_buf *b);
/* Append s as a JSON string literal (with quotes and escapes). */
void soju_buf_json_string(soju_buf *b, const char *s, size_t n);

int soju_str_ends_with(const char *s, const char *suffix);
int soju_str_starts_with(const char *s, const char *prefix);

/* Parse "12", "1.5k", "2M", "3G" (powers of 1000) into a count; -1 on error. */
long long soju_parse_count(const char *s);

/* ---------------------------------------------------------------- hashing */

/* A fast 64-bit non-cryptographic hash (wyhash-style multiply-mix). */
uint64_t soju_hash64(const void *data, size_t n, uint64_t seed);
static inline uint64_t soju_mix64(uint64_t x) {
    /* splitmix64 finalizer: a bijection that spreads every input bit. */
    x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27; x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* ---------------------------------------------------------------- files */

/* Read a whole file into a NUL-terminated malloc'd buffer. */
int soju_read_file(const char *path, char **out, size_t *len, soju_err *err);
/* Atomically replace path with data: write path.tmp.<pid>, fsync, rename, fsync dir. */
int soju_write_file_atomic(const char *path, const void *data, size_t len, soju_err *err);

/* Streaming atomic writer: bytes go to a temp file that replaces `path`
 * only on soju_afile_commit; soju_afile_abort removes it. */
typedef struct soju_afile {
    FILE *fp;
    char *path;
    char *tmp_path;
} soju_afile;
int soju_afile_open(soju_afile *f, const char *path, soju_err *err);
int soju_afile_commit(soju_afile *f, soju_err *err);
void soju_afile_abort(soju_afile *f);

/* mkdir -p. */
int soju_mkdirs(const char *path, soju_err *err);
int soju_file_exists(const char *path);
int soju_is_dir(const char *path);
/* Join two path components into a new malloc'd string. */
char *soju_path_join(const char *a, const char *b);
/* fsync a directory so a rename inside it is durable. */
void soju_fsync_dir(const char *dir);
/* Remove a directory tree (used for replacing checkpoint directories). */
int soju_rmtree(const char *path);

/* Read-only memory map of a whole file. */
typedef struct soju_mmap {
    const uint8_t *data;
    size_t len;
} soju_mmap;
int soju_mmap_open(soju_mmap *m, const char *path, soju_err *err);
void soju_mmap_close(soju_mmap *m);

/* ---------------------------------------------------------------- random */

/* xoshiro256**: fast, 256-bit state, good statistical quality. The state is
 * plain data so it can be saved into a checkpoint and restored exactly. */
typedef struct soju_rng {
    uint64_t s[4];
} soju_rng;

void soju_rng_seed(soju_rng *r, uint64_t seed);
uint64_t soju_rng_u64(soju_rng *r);
/* Uniform in [0, 1) with 24 (float) or 53 (double) random bits. */
float soju_rng_float(soju_rng *r);
double soju_rng_double(soju_rng *r);
/* Uniform integer in [0, n). */
uint64_t soju_rng_below(soju_rng *r, uint64_t n);
/* Standard normal (Box–Muller). */
float soju_rng_normal(soju_rng *r);
/* Fisher–Yates shuffle of an index array. */
void soju_rng_shuffle_u64(soju_rng *r, uint64_t *a, size_t n);

/* ---------------------------------------------------------------- time */

double soju_now(void); /* monotonic seconds */

/* ---------------------------------------------------------------- progress */

/* A progress display. On a terminal it redraws one line with a bar, the rate
 * and an ETA; otherwise it prints a plain line at most every `log_every_s`. */
typedef struct soju_progress {
    const char *label;
    const char *unit;    /* "tok", "doc", "B", ... */
    double total;        /* 0 when unknown */
    double done;
    double t_start, t_last_draw, log_every_s;
    int is_tty;
    FILE *out;
    char extra[256];     /* free text shown after the rate, e.g. "loss 3.21" */
} soju_progress;

void soju_progress_init(soju_progress *p, const char *label, const char *unit, double total);
void soju_progress_update(soju_progress *p, double done);
void soju_progress_set_extra(soju_progress *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void soju_progress_finish(soju_progress *p);

/* ---------------------------------------------------------------- threads */

int soju_num_threads(void);          /* OpenMP's current maximum */
void soju_set_num_threads(int n);    /* n <= 0 leaves it unchanged */

/* ---------------------------------------------------------------- watchdog
 *
 * A thread that stops waits from lasting forever. Data-parallel training waits
 * on the other ranks in every collective; when one of them dies without its
 * launcher noticing (srun without --kill-on-bad-exit) or hangs, the others
 * would wait until the job's time runs out. With a watchdog they fail after
 * the limit instead, and the job (or its scheduler) can resume from the last
 * checkpoint.
 *
 * Two kinds of wait count:
 *  - host waits, between enter and leave (a blocking MPI call), and
 *  - waits a poll function reports (work queued on a device that has not
 *    finished: a GPU stream stuck in a collective), or a failure it reports.
 * When either has lasted `limit_s` seconds without a break, or the poll
 * reports a failure, the watchdog calls `fire` once, from its own thread,
 * with a one-line reason. `fire` normally prints and ends the process. */

typedef struct soju_watchdog soju_watchdog;

enum { SOJU_WATCH_FAILED = -1, SOJU_WATCH_IDLE = 0, SOJU_WATCH_WAITING = 1 };
/* Runs on the watchdog's thread and returns SOJU_WATCH_IDLE (nothing
 * queued), _FAILED with a reason written to why[0..why_size), or _WAITING with
 * *progress set to a count that grows while the waiter makes progress (work
 * issued so far, say): the wait is timed from the last change of that count,
 * so a device that is busy but moving never fires, however the checks fall. */
typedef int (*soju_watch_poll_fn)(void *ctx, unsigned long *progress, char *why, size_t why_size);
typedef void (*soju_watch_fire_fn)(void *ctx, const char *why);

/* Start watching; NULL when limit_s <= 0 (no limit). The checks run every
 * min(1 s, limit_s / 4). Every function below accepts w == NULL and does
 * nothing. */
soju_watchdog *soju_watchdog_start(double limit_s, soju_watch_fire_fn fire, void *fire_ctx);
/* Stop the thread and free w (the fire function is not called after this
 * returns). */
void soju_watchdog_stop(soju_watchdog *w);
/* Set (poll != NULL) or clear the poll function. Once this returns, the old
 * one is not running and will not run again, so its context may be freed. */
void soju_watchdog_set_poll(soju_watchdog *w, soju_watch_poll_fn poll, void *ctx);
/* A host wait begins, named by `what` (a string literal: "MPI_Allreduce");
 * enters nest, and only the outermost counts. Call both from one thread. */
void soju_watchdog_enter(soju_watchdog *w, const char *what);
void soju_watchdog_leave(soju_watchdog *w);
double soju_watchdog_limit(const soju_watchdog *w);

/* ---------------------------------------------------------------- config */

/* Load a JSON file into a cJSON tree. Errors name the file and the position. */
int soju_json_load(const char *path, cJSON **out, soju_err *err);
/* Load a YAML file (block or flow style; scalars become numbers, booleans,
 * null or strings as YAML 1.2 core schema says) into a cJSON tree. */
int soju_yaml_load(const char *path, cJSON **out, soju_err *err);
int soju_yaml_parse(const char *text, size_t len, const char *name, cJSON **out, soju_err *err);
/* Typed getters with defaults. Return the default when the key is absent;
 * set *bad (if non-NULL) when it is present with the wrong type. */
double soju_json_num(const cJSON *obj, const char *key, double dflt, int *bad);
const char *soju_json_str(const cJSON *obj, const char *key, const char *dflt, int *bad);
int soju_json_bool(const cJSON *obj, const char *key, int dflt, int *bad);
/* Serialize and write atomically, pretty-printed. */
int soju_json_save(const char *path, const cJSON *obj, soju_err *err);

#ifdef __cplusplus
}
#endif
#endif

/* Data-parallel `soju pretrain` under `mpirun -np 2` on the CPU:
 *
 *   1 process, micro-batch 2B                      (the reference)
 *   2 ranks, micro-batch B each                    same parameters within float rounding
 *   2 ranks, ZeRO-1                                the same, and bit-identical to 2 ranks without it
 *   2 ranks, ZeRO-1, B/2 x 2 accum, per-layer sums the same within float rounding
 *   2 ranks, ZeRO-1, stopped at step 3, resumed    bit-identical to the uninterrupted run
 *     ... resumed by 1 process instead             the same within float rounding
 *
 * and that the tolerance means something: half the batch on one process
 * lands far outside it. Rank 0 alone prints and writes metrics; an error on
 * setup comes out once and stops both ranks.
 *
 * Runs as root on a 2-core machine with loopback only (the settings below),
 * one thread per rank. SKIPs when mpirun is absent or soju has no MPI. */
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>

#include "soju/io.h"
#include "soju/train.h"
#include "test.h"

static char *dir_;
static const char *soju_;

static char *at(const char *name) { return soju_path_join(dir_, name); }

/* Run a shell command; its exit status (-1 if it did not exit). */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The training command shared by every run; extra options follow. */
static const char *common(void) {
    static char c[2048];
    snprintf(c, sizeof c,
             "%s pretrain --config %s/config.json --train %s/train0.bin --train %s/train1.bin --val %s/val.bin "
             "--seq-len 16 --batch-tokens 128 --steps 6 --lr 3e-3 --warmup 2 --eval-every 3 --eval-batches 4 "
             "--threads 1 --quiet",
             soju_, dir_, dir_, dir_, dir_);
    return c;
}

/* mpirun with what a CI container needs: root, more ranks than cores,
 * shared memory without cross-process copies, loopback only; a hang becomes
 * a failure after two minutes. */
#define MPIRUN "timeout 120 mpirun -np 2 --oversubscribe --bind-to none"

/* Largest |a - b| over every tensor of two safetensors files of the same
 * layout; -1 if they differ in layout; 0 only when bit-identical. */
static double max_diff(const char *run_a, const char *run_b, const char *file) {
    char pa[1024], pb[1024];
    snprintf(pa, sizeof pa, "%s/%s/checkpoints/step_00000006/%s", dir_, run_a, file);
    snprintf(pb, sizeof pb, "%s/%s/checkpoints/step_00000006/%s", dir_, run_b, file);
    soju_safetensors a, b;
    soju_err err;
    if (soju_st_open(&a, pa, &err)) return fprintf(stderr, "%s\n", err.msg), -1;
    if (soju_st_open(&b, pb, &err)) return fprintf(stderr, "%s\n", err.msg), soju_st_close(&a), -1;
    double worst = a.n_tensors == b.n_tensors ? 0 : -1;
    for (int i = 0; i < a.n_tensors && worst >= 0; i++) {
        const soju_st_tensor *x = &a.tensors[i], *y = soju_st_find(&b, x->name);
        if (!y || y->nbytes != x->nbytes || x->dtype != SOJU_DT_F32) {
            worst = -1;
            break;
        }
        const float *fx = (const float *)x->data, *fy = (const float *)y->data;
        for (size_t k = 0; k < x->nbytes / 4; k++) {
            double d = fabs((double)fx[k] - (double)fy[k]);
            if (!(d <= worst)) worst = d; /* NaN counts as worst */
        }
        if (memcmp(x->data, y->data, x->nbytes)) worst = worst > 0 ? worst : 1e-30; /* -0 vs 0 */
    }
    soju_st_close(&a);
    soju_st_close(&b);
    return worst;
}

static int count_lines(const char *path, const char *needle) {
    char *text;
    size_t len;
    soju_err err;
    if (soju_read_file(path, &text, &len, &err)) return -1;
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle)) n++;
    free(text);
    return n;
}

/* Two ranks train like one process with the whole batch. */
#define TOL 2e-5

TEST(two_ranks_equal_one_process) {
    /* the reference: one process, micro-batch 8 */
    CHECK_EQ_INT(sh("%s --micro-batch 8 --out %s/ref > %s/ref.log 2>&1", common(), dir_, dir_), 0);
    /* 2 ranks x 4 */
    CHECK_EQ_INT(sh(MPIRUN " %s --micro-batch 4 --out %s/r2 > %s/r2.log 2>&1", common(), dir_, dir_), 0);
    /* ZeRO-1 */
    CHECK_EQ_INT(sh(MPIRUN " %s --micro-batch 4 --zero 1 --out %s/z1 > %s/z1.log 2>&1", common(), dir_, dir_), 0);
    /* ZeRO-1, 2 micro-batches of 2 per rank, gradients summed layer by layer during the last backward */
    CHECK_EQ_INT(sh("SOJU_DIST_OVERLAP=1 " MPIRUN " %s --micro-batch 2 --zero 1 --out %s/z1acc > %s/z1acc.log 2>&1",
                    common(), dir_, dir_),
                 0);
    const char *runs[] = {"r2", "z1", "z1acc"};
    for (int i = 0; i < 3; i++) {
        double dm = max_diff("ref", runs[i], "model.safetensors"), dv = max_diff("ref", runs[i], "optimizer.safetensors");
        fprintf(stderr, "   %-6s vs 1 process: params differ by at most %.3g, optimizer state by %.3g\n", runs[i], dm,
                dv);
        CHECK_MSG(dm >= 0 && dm <= TOL, "%s: parameters differ by %g", runs[i], dm);
        CHECK_MSG(dv >= 0 && dv <= TOL, "%s: optimizer state differs by %g", runs[i], dv);
    }
    /* with two ranks a sum is a + b either way: ZeRO-1 changes nothing */
    CHECK(max_diff("r2", "z1", "model.safetensors") == 0);
    CHECK(max_diff("r2", "z1", "optimizer.safetensors") == 0);

    /* the tolerance is meaningful: one process with half the batch is far off */
    CHECK_EQ_INT(sh("%s --micro-batch 4 --batch-tokens 64 --out %s/half > /dev/null 2>&1", common(), dir_), 0);
    double off = max_diff("ref", "half", "model.safetensors");
    fprintf(stderr, "   half batch vs 1 process: params differ by %.3g\n", off);
    CHECK_MSG(off > 100 * TOL, "a different batch differs by only %g", off);

    /* rank 0 alone reports and writes metrics */
    char *log = at("r2.log"), *metrics = at("r2/metrics.jsonl");
    CHECK_EQ_INT(count_lines(log, "pretrain: 6 steps"), 1);
    CHECK_EQ_INT(count_lines(log, "2 ranks, mpi"), 1);
    CHECK_EQ_INT(count_lines(metrics, "\"loss\""), 6);
    CHECK_EQ_INT(count_lines(metrics, "\"val_loss\""), 2);
    free(log), free(metrics);
}

TEST(resume_with_zero1_on_two_ranks_and_on_one) {
    /* z1 from the test above is the uninterrupted run */
    CHECK_EQ_INT(sh(MPIRUN " %s --micro-batch 4 --zero 1 --stop-at 3 --out %s/stop > /dev/null 2>&1", common(), dir_),
                 0);
    CHECK_EQ_INT(sh("cp -r %s/stop %s/stop1", dir_, dir_), 0);
    CHECK_EQ_INT(sh(MPIRUN " %s pretrain --resume %s/stop --zero 1 --threads 1 --quiet > %s/resume2.log 2>&1", soju_,
                    dir_, dir_),
                 0);
    CHECK(max_diff("z1", "stop", "model.safetensors") == 0);
    CHECK(max_diff("z1", "stop", "optimizer.safetensors") == 0);
    /* one process continues the 2-rank run: 2 micro-batches instead of 2 ranks */
    CHECK_EQ_INT(sh("%s pretrain --resume %s/stop1 --threads 1 --quiet > %s/resume1.log 2>&1", soju_, dir_, dir_), 0);
    char *log = at("resume1.log");
    CHECK_EQ_INT(count_lines(log, "1 rank(s) instead of 2"), 1);
    free(log);
    double dm = max_diff("z1", "stop1", "model.safetensors");
    CHECK_MSG(dm >= 0 && dm <= TOL, "resumed on one process: parameters differ by %g", dm);
}

TEST(an_error_on_setup_stops_both_ranks_once) {
    /* the run directory already holds a run: both ranks see it, rank 0 says so */
    int rc = sh(MPIRUN " %s --micro-batch 4 --out %s/r2 > %s/err.log 2>&1", common(), dir_, dir_);
    CHECK(rc != 0 && rc != 124); /* failed, and did not hang */
    char *log = at("err.log");
    CHECK_EQ_INT(count_lines(log, "soju: error:"), 1);
    CHECK_EQ_INT(count_lines(log, "already holds a run"), 1);
    free(log);
    /* a batch that does not split over the ranks */
    rc = sh(MPIRUN " %s --micro-batch 3 --out %s/bad > %s/err2.log 2>&1", common(), dir_, dir_);
    CHECK(rc != 0 && rc != 124);
    log = at("err2.log");
    CHECK_EQ_INT(count_lines(log, "micro-batch x seq-len x ranks = 3 x 16 x 2"), 1);
    free(log);
}

/* Ranks that would make different collectives (NCCL would hang or sum
 * garbage) are stopped before the first one, on every rank. */
TEST(ranks_started_differently_are_refused) {
    /* one rank with ZeRO-1, the other without (mpirun's colon gives each its own command) */
    int rc = sh("timeout 120 mpirun --oversubscribe --bind-to none -np 1 %s --micro-batch 4 --out %s/mixed : "
                "-np 1 %s --micro-batch 4 --zero 1 --out %s/mixed > %s/err3.log 2>&1",
                common(), dir_, common(), dir_, dir_);
    CHECK(rc != 0 && rc != 124);
    char *log = at("err3.log");
    CHECK_EQ_INT(count_lines(log, "soju: error:"), 1);
    CHECK_EQ_INT(count_lines(log, "the ranks differ"), 1);
    free(log);
    /* on --resume, ranks that found different latest checkpoints (here: told different
       run directories; a stale listing of a shared filesystem does the same) */
    CHECK_EQ_INT(sh(MPIRUN " %s --micro-batch 4 --stop-at 3 --out %s/early > /dev/null 2>&1", common(), dir_), 0);
    rc = sh("timeout 120 mpirun --oversubscribe --bind-to none -np 1 %s pretrain --resume %s/early --threads 1 --quiet : "
            "-np 1 %s pretrain --resume %s/r2 --threads 1 --quiet > %s/err4.log 2>&1",
            soju_, dir_, soju_, dir_, dir_);
    CHECK(rc != 0 && rc != 124);
    log = at("err4.log");
    CHECK_EQ_INT(count_lines(log, "different latest checkpoints"), 1);
    free(log);
}

/* The step of run directory DIR/name's latest checkpoint, or -1. */
static long latest_step(const char *name) {
    char run[1024];
    snprintf(run, sizeof run, "%s/%s", dir_, name);
    char *ckpt = soju_checkpoint_latest(run);
    const char *p = ckpt ? strstr(ckpt, "step_") : NULL;
    long step = p ? atol(p + 5) : -1;
    free(ckpt);
    return step;
}

/* A rank that hangs (stopped here with SIGSTOP; a stuck filesystem or GPU
 * does the same) leaves the other waiting in a collective. Its watchdog
 * stops it after --dist-timeout, with a message naming the wait, mpirun ends
 * the job, and the run resumes from its last checkpoint. */
TEST(a_hung_rank_stops_the_job_which_resumes) {
    /* long enough that it is still training when rank 1 stops */
    sh("(" MPIRUN " %s pretrain --config %s/config.json --train %s/train0.bin --train %s/train1.bin --seq-len 16 "
       "--batch-tokens 128 --micro-batch 4 --steps 100000 --save-every 2 --threads 1 --quiet --dist-timeout 2 "
       "--out %s/hang > %s/hang.log 2>&1; echo $? > %s/hang.rc) &",
       soju_, dir_, dir_, dir_, dir_, dir_, dir_);
    char *rc_path = at("hang.rc");
    double t0 = soju_now();
    while (latest_step("hang") < 4 && soju_now() - t0 < 60 && access(rc_path, F_OK) != 0) usleep(20000);
    CHECK_MSG(latest_step("hang") >= 4, "the run did not get to step 4 in 60 s");
    /* rank 1: the soju of this run whose environment says so (mpirun's does not) */
    char find[1024];
    snprintf(find, sizeof find,
             "for p in $(pgrep -f -- '--out %s/hang'); do "
             "grep -qz '^OMPI_COMM_WORLD_RANK=1$' /proc/$p/environ 2>/dev/null && echo $p; done",
             dir_);
    FILE *f = popen(find, "r");
    int pid = 0;
    if (!f || fscanf(f, "%d", &pid) != 1) pid = 0;
    if (f) pclose(f);
    CHECK_MSG(pid > 0, "rank 1's process not found");
    double stopped = soju_now();
    if (pid > 0) kill(pid, SIGSTOP);
    while (access(rc_path, F_OK) != 0 && soju_now() - stopped < 100) usleep(20000);
    double took = soju_now() - stopped;
    if (pid > 0) kill(pid, SIGKILL); /* whatever mpirun did with it */
    long rc = -1;
    f = fopen(rc_path, "r");
    if (!f || fscanf(f, "%ld", &rc) != 1) rc = -1;
    if (f) fclose(f);
    fprintf(stderr, "   the job ended %.1f s after rank 1 stopped, status %ld\n", took, rc);
    CHECK(rc != 0 && rc != 124 && rc != -1); /* failed, not by timeout(1) */
    CHECK_MSG(took < 60, "the job took %.0f s to end", took);
    char *log = at("hang.log");
    CHECK_EQ_INT(count_lines(log, "soju: error: rank 0 of 2: "), 1);
    /* (rank 1 may say the same when mpirun wakes it to end it: its clock ran on while it stood) */
    CHECK(count_lines(log, "another rank has probably died or hung") >= 1);
    free(log);
    /* the checkpoints are whole: the run resumes from the latest, two steps on */
    long last = latest_step("hang");
    CHECK(last >= 4);
    CHECK_EQ_INT(sh(MPIRUN " %s pretrain --resume %s/hang --stop-at %ld --threads 1 --quiet > %s/hang2.log 2>&1",
                    soju_, dir_, last + 2, dir_),
                 0);
    CHECK_EQ_INT(latest_step("hang"), last + 2);
    free(rc_path);
}

int main(int argc, char **argv) {
    soju_ = getenv("SOJU_BIN");
    if (!soju_) soju_ = "build/soju";
    if (sh("command -v mpirun > /dev/null 2>&1") != 0) SKIP("mpirun not found (apt-get install openmpi-bin)");
    if (sh("%s version | grep -q 'distributed: mpi'", soju_) != 0) SKIP("%s was built without MPI", soju_);
    /* OpenMPI in a container: as root, oversubscribed, loopback only, no
     * cross-memory attach; one thread per rank. The caller's settings win. */
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
    setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 0);
    setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 0);
    setenv("OMPI_MCA_btl_tcp_if_include", "lo", 0);
    setenv("OMPI_MCA_oob_tcp_if_include", "lo", 0);
    setenv("OMP_NUM_THREADS", "1", 1);
    dir_ = test_tmp_dir("dist_mpi");
    /* a small English corpus as byte-level shards, and a tiny Llama */
    if (sh("bash scripts/demo_corpus.sh %s/corpus.txt 300 && %s tokenize --tokenizer bytes --quiet %s/corpus.txt "
           "--out %s/train0.bin --val-out %s/val.bin --val-frac 0.2 > /dev/null && cp %s/train0.bin %s/train1.bin",
           dir_, soju_, dir_, dir_, dir_, dir_, dir_) != 0)
        SKIP("could not make shards (run from the repository root)");
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir_);
    const char *json =
        "{\"model_type\":\"llama\",\"vocab_size\":257,\"hidden_size\":32,\"intermediate_size\":48,"
        "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,\"max_position_embeddings\":16,"
        "\"tie_word_embeddings\":false}";
    soju_err err;
    if (soju_write_file_atomic(cfg, json, strlen(json), &err)) SKIP("%s", err.msg);
    void (*fns[])(void) = {test_two_ranks_equal_one_process, test_resume_with_zero1_on_two_ranks_and_on_one,
                           test_an_error_on_setup_stops_both_ranks_once, test_ranks_started_differently_are_refused,
                           test_a_hung_rank_stops_the_job_which_resumes};
    return test_run_(fns, sizeof fns / sizeof fns[0],
                     "two_ranks_equal_one_process, resume_with_zero1_on_two_ranks_and_on_one, "
                     "an_error_on_setup_stops_both_ranks_once, ranks_started_differently_are_refused, "
                     "a_hung_rank_stops_the_job_which_resumes",
                     argc, argv);
}

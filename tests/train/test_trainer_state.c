/* trainer_state.json (exact round trip, every field checked, one-line errors)
 * and the run-directory bookkeeping of checkpoints. */
#include <math.h>

#include "soju/train.h"
#include "test.h"

static void sample_state(soju_trainer_state *s) {
    soju_trainer_state_init(s);
    s->step = 120;
    s->total_steps = 1000;
    s->tokens = 18446744073709551557ULL; /* needs all 64 bits */
    s->seconds = 12.5;
    s->train.sched = (soju_lr_schedule){SOJU_SCHED_WSD, 3e-4 / 7, 10, 1000, 0.1, 0.2, SOJU_DECAY_SQRT};
    s->train.adamw = soju_adamw_defaults();
    s->train.adamw.decay_embeddings = 1;
    s->train.grad_clip = 1.0;
    s->micro_B = 4;
    s->T = 256;
    s->accum = 2;
    s->world = 1;
    s->batch_tokens = 2048;
    s->shuffle = 1;
    s->doc_mask = 1;
    s->data_seed = 0xfedcba9876543210ULL;
    s->init_seed = 1337;
    s->loader = (soju_loader_state){3, 800};
    s->train_paths[s->n_train++] = soju_strdup("data/train_0.bin");
    s->train_paths[s->n_train++] = soju_strdup("data/train_1.bin");
    s->val_paths[s->n_val++] = soju_strdup("data/val.bin");
    soju_rng_seed(&s->rng, 99);
    s->eval_every = 50;
    s->eval_batches = 20;
    s->save_every = 100;
    s->keep = 3;
    s->last_loss = 2.0 / 3.0;
    s->best_val_loss = NAN;
    s->best_val_step = -1;
}

static char *to_text(const soju_trainer_state *s) {
    cJSON *j = soju_trainer_state_to_json(s);
    char *t = cJSON_Print(j);
    cJSON_Delete(j);
    return t;
}

TEST(roundtrip_is_exact) {
    soju_trainer_state a, b;
    sample_state(&a);
    char *text = to_text(&a);
    soju_err err;
    CHECK_OK(soju_trainer_state_parse(&b, text, strlen(text), "trainer_state.json", &err));
    CHECK_EQ_INT(b.step, 120);
    CHECK_EQ_INT(b.total_steps, 1000);
    CHECK(b.tokens == a.tokens);
    CHECK(b.train.sched.peak_lr == a.train.sched.peak_lr); /* bit-exact double */
    CHECK(b.train.sched.kind == SOJU_SCHED_WSD && b.train.sched.decay_shape == SOJU_DECAY_SQRT);
    CHECK(b.train.sched.min_lr_frac == 0.1 && b.train.sched.decay_frac == 0.2);
    CHECK(b.train.adamw.beta2 == 0.95 && b.train.adamw.eps == 1e-8 && b.train.adamw.decay_embeddings == 1);
    CHECK(b.train.grad_clip == 1.0);
    CHECK(b.micro_B == 4 && b.T == 256 && b.accum == 2 && b.world == 1 && b.batch_tokens == 2048);
    CHECK(b.shuffle == 1 && b.doc_mask == 1);
    CHECK(b.data_seed == a.data_seed && b.init_seed == 1337);
    CHECK(b.loader.epoch == 3 && b.loader.pos == 800);
    CHECK(b.n_train == 2 && b.n_val == 1);
    CHECK_STR(b.train_paths[1], "data/train_1.bin");
    CHECK_STR(b.val_paths[0], "data/val.bin");
    CHECK(!memcmp(&a.rng, &b.rng, sizeof a.rng));
    CHECK(b.eval_every == 50 && b.eval_batches == 20 && b.save_every == 100 && b.keep == 3);
    CHECK(b.last_loss == a.last_loss);
    CHECK(isnan(b.best_val_loss) && b.best_val_step == -1);
    char *again = to_text(&b);
    CHECK_STR(again, text);
    free(again);
    free(text);
    soju_trainer_state_free(&a);
    soju_trainer_state_free(&b);
}

/* Replace the value at a key path "a.b" in the sample's JSON (NULL: delete it). */
static char *edited(const char *obj, const char *key, cJSON *value) {
    soju_trainer_state s;
    sample_state(&s);
    cJSON *j = soju_trainer_state_to_json(&s);
    soju_trainer_state_free(&s);
    cJSON *parent = obj ? cJSON_GetObjectItemCaseSensitive(j, obj) : j;
    if (value) cJSON_ReplaceItemInObjectCaseSensitive(parent, key, value);
    else cJSON_DeleteItemFromObjectCaseSensitive(parent, key);
    char *t = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return t;
}

static void expect_error(const char *text, size_t len, const char *want) {
    soju_trainer_state s;
    soju_err err = {{0}};
    int rc = soju_trainer_state_parse(&s, text, len, "run/trainer_state.json", &err);
    CHECK(rc == SOJU_EFORMAT);
    CHECK_MSG(strstr(err.msg, "run/trainer_state.json") && strstr(err.msg, want), "message: %s (wanted %s)",
              err.msg, want);
    CHECK(!strchr(err.msg, '\n'));
}

static void expect_field_error(const char *obj, const char *key, cJSON *value, const char *want) {
    char *t = edited(obj, key, value);
    expect_error(t, strlen(t), want);
    free(t);
}

TEST(every_field_is_checked) {
    expect_error("", 0, "not a JSON object");
    expect_error("[1,2]", 5, "not a JSON object");
    char *full = edited(NULL, "seconds", cJSON_CreateNumber(1));
    expect_error(full, strlen(full) / 2, "truncated"); /* cut in half */
    free(full);
    expect_field_error(NULL, "format", cJSON_CreateString("hf-trainer"), "\"format\": not \"soju-trainer-state\"");
    expect_field_error(NULL, "format", NULL, "\"format\": missing");
    expect_field_error(NULL, "version", cJSON_CreateNumber(2), "\"version\": unsupported");
    expect_field_error(NULL, "global_step", cJSON_CreateString("12"), "\"global_step\": not a number");
    expect_field_error(NULL, "global_step", cJSON_CreateNumber(-1), "\"global_step\": out of range");
    expect_field_error(NULL, "global_step", cJSON_CreateNumber(1.5), "\"global_step\": not an integer");
    expect_field_error(NULL, "global_step", cJSON_CreateNumber(5000), "\"global_step\": larger than max_steps");
    expect_field_error(NULL, "tokens", cJSON_CreateNumber(5), "\"tokens\": not a decimal string");
    expect_field_error(NULL, "tokens", cJSON_CreateString("-5"), "\"tokens\": not a decimal string");
    expect_field_error(NULL, "tokens", cJSON_CreateString("99999999999999999999999"), "\"tokens\": not a decimal");
    expect_field_error(NULL, "schedule", cJSON_CreateString("cosine"), "\"schedule\": not an object");
    expect_field_error("schedule", "kind", cJSON_CreateString("linear"), "\"schedule.kind\": unknown schedule");
    expect_field_error("schedule", "lr", NULL, "\"schedule.lr\": missing");
    expect_field_error("schedule", "min_lr_frac", cJSON_CreateNumber(2), "\"schedule.min_lr_frac\": out of range");
    expect_field_error("schedule", "decay_shape", cJSON_CreateString("cubic"), "\"schedule.decay_shape\": unknown");
    expect_field_error("schedule", "warmup_steps", cJSON_CreateNumber(2000), "\"schedule.warmup_steps\": larger");
    expect_field_error("optimizer", "name", cJSON_CreateString("sgd"), "\"optimizer.name\": unknown optimizer");
    expect_field_error("optimizer", "beta2", cJSON_CreateNumber(1), "\"optimizer.beta2\": out of range");
    expect_field_error("optimizer", "decay_embeddings", cJSON_CreateNumber(1), "\"optimizer.decay_embeddings\": not true");
    expect_field_error("batch", "seq_len", cJSON_CreateNumber(0), "\"batch.seq_len\": out of range");
    expect_field_error("batch", "batch_tokens", cJSON_CreateNumber(4096), "\"batch.batch_tokens\": is not");
    expect_field_error("data", "train", cJSON_CreateArray(), "\"data.train\": empty");
    expect_field_error("data", "train", cJSON_CreateString("a.bin"), "\"data.train\": not an array");
    cJSON *arr = cJSON_CreateArray();
    cJSON_AddItemToArray(arr, cJSON_CreateNumber(3));
    expect_field_error("data", "val", arr, "\"data.val\": an entry is not a path string");
    expect_field_error("data", "pos", cJSON_CreateString("x1"), "\"data.pos\": not a decimal");
    expect_field_error(NULL, "rng", cJSON_CreateArray(), "\"rng\": not an array of 4");
    cJSON *rng = cJSON_CreateArray();
    for (int i = 0; i < 4; i++) cJSON_AddItemToArray(rng, cJSON_CreateString(i == 2 ? "oops" : "1"));
    expect_field_error(NULL, "rng", rng, "\"rng\": bad word");
    expect_field_error("intervals", "keep", cJSON_CreateNumber(-1), "\"intervals.keep\": out of range");
    expect_field_error("metrics", "last_loss", cJSON_CreateString("nan"), "\"metrics.last_loss\": not a number or null");
    expect_field_error(NULL, "metrics", NULL, "\"metrics\": missing");
}

TEST(load_from_file) {
    char *dir = test_tmp_dir("trainer_state");
    char *path = soju_path_join(dir, "trainer_state.json");
    soju_trainer_state s;
    soju_err err;
    CHECK(soju_trainer_state_load(&s, path, &err) == SOJU_EIO);
    CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, "cannot open"), "message: %s", err.msg);
    soju_trainer_state a;
    sample_state(&a);
    char *t = to_text(&a);
    CHECK_OK(soju_write_file_atomic(path, t, strlen(t), &err));
    CHECK_OK(soju_trainer_state_load(&s, path, &err));
    CHECK_EQ_INT(s.step, 120);
    soju_trainer_state_free(&s);
    soju_trainer_state_free(&a);
    free(t);
    free(path);
    free(dir);
}

static void make_ckpt(const char *run, long step) {
    char name[256];
    snprintf(name, sizeof name, "%s/checkpoints/step_%08ld", run, step);
    soju_err err;
    CHECK_OK(soju_mkdirs(name, &err));
    char *cfg = soju_path_join(name, "config.json");
    CHECK_OK(soju_write_file_atomic(cfg, "{}", 2, &err));
    free(cfg);
}

TEST(run_directory_checkpoints) {
    char *run = test_tmp_dir("run_dir");
    soju_err err;
    CHECK(soju_checkpoint_latest(run) == NULL);
    char *ck = NULL;
    CHECK(soju_checkpoint_resolve(run, &ck, &err) == SOJU_EIO);
    CHECK_MSG(strstr(err.msg, run) && strstr(err.msg, "config.json: missing"), "message: %s", err.msg);
    char *sub = soju_path_join(run, "checkpoints");
    CHECK_OK(soju_mkdirs(sub, &err));
    CHECK(soju_checkpoint_resolve(run, &ck, &err) == SOJU_EIO);
    CHECK_MSG(strstr(err.msg, "no complete checkpoint"), "message: %s", err.msg);
    free(sub);
    char *nothere = soju_path_join(run, "nothere");
    CHECK(soju_checkpoint_resolve(nothere, &ck, &err) == SOJU_EIO);
    CHECK(strstr(err.msg, "no such checkpoint directory") != NULL);
    free(nothere);
    make_ckpt(run, 100);
    make_ckpt(run, 20);
    make_ckpt(run, 300);
    char tmpname[256]; /* an interrupted save: never picked */
    snprintf(tmpname, sizeof tmpname, "%s/checkpoints/step_00000400.tmp", run);
    CHECK_OK(soju_mkdirs(tmpname, &err));
    char *latest = soju_checkpoint_latest(run);
    CHECK(latest && strstr(latest, "step_00000300"));
    CHECK_OK(soju_checkpoint_resolve(run, &ck, &err));
    CHECK_STR(ck, latest);
    char *ck2 = NULL;
    CHECK_OK(soju_checkpoint_resolve(latest, &ck2, &err)); /* a checkpoint resolves to itself */
    CHECK_STR(ck2, latest);
    free(ck), free(ck2), free(latest);
    soju_checkpoint_prune(run, 2);
    char p20[256], p100[256];
    snprintf(p20, sizeof p20, "%s/checkpoints/step_00000020", run);
    snprintf(p100, sizeof p100, "%s/checkpoints/step_00000100", run);
    CHECK(!soju_file_exists(p20));
    CHECK(soju_file_exists(p100));
    /* Committing over an existing checkpoint replaces it whole. */
    char staged[256];
    snprintf(staged, sizeof staged, "%s.tmp", p100);
    CHECK_OK(soju_mkdirs(staged, &err));
    char *marker = soju_path_join(staged, "new");
    CHECK_OK(soju_write_file_atomic(marker, "x", 1, &err));
    CHECK_OK(soju_dir_commit(staged, p100, &err));
    char *new_marker = soju_path_join(p100, "new"), *old_cfg = soju_path_join(p100, "config.json");
    CHECK(soju_file_exists(new_marker));
    CHECK(!soju_file_exists(old_cfg));
    CHECK(!soju_file_exists(staged));
    free(marker), free(new_marker), free(old_cfg);
    free(run);
}

TEST_MAIN(roundtrip_is_exact, every_field_is_checked, load_from_file, run_directory_checkpoints)

/* soju generate — continue a prompt with a trained model.
 *
 *   soju generate --model runs/a --prompt "ROMEO:" --max-tokens 200 --temperature 0.8 --top-p 0.95
 *
 * --model takes a checkpoint directory or a run directory (its latest
 * checkpoint). The text streams to stdout as it is generated; timings go to
 * stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "soju/generate.h"
#include "soju/train.h"

typedef struct stream {
    soju_text_codec *codec;
    soju_buf text;
} stream;

static int print_token(void *ctx, int32_t id) {
    stream *s = ctx;
    soju_buf_clear(&s->text);
    s->codec->decode(s->codec->ctx, &id, 1, &s->text);
    fwrite(s->text.data ? s->text.data : "", 1, s->text.len, stdout);
    fflush(stdout);
    return 0;
}

int cmd_generate(int argc, char **argv) {
    const char *model_dir = NULL, *prompt = "", *prompt_file = NULL, *tokenizer = NULL, *device = "cpu";
    long long max_tokens = 256, top_k = 0, seed = 1, threads = 0;
    double temperature = 0.8, top_p = 1.0;
    int no_bos = 0, greedy = 0;
    cli_opt opts[] = {
        {"model", CLI_STR, &model_dir, "checkpoint directory (or run directory: its latest checkpoint)"},
        {"prompt", CLI_STR, &prompt, "text to continue"},
        {"prompt-file", CLI_STR, &prompt_file, "read the prompt from a file"},
        {"max-tokens", CLI_INT, &max_tokens, "new tokens at most"},
        {"temperature", CLI_FLOAT, &temperature, "softmax temperature, 0 = greedy"},
        {"top-k", CLI_INT, &top_k, "sample among the k most likely, 0 = off"},
        {"top-p", CLI_FLOAT, &top_p, "nucleus: smallest set with this mass, 1 = off"},
        {"greedy", CLI_FLAG, &greedy, "always the most likely token (= --temperature 0)"},
        {"seed", CLI_INT, &seed, "sampling seed"},
        {"tokenizer", CLI_STR, &tokenizer, "tokenizer.json, a tokenizer directory or model file (default: bytes)"},
        {"no-bos", CLI_FLAG, &no_bos, "do not start the prompt with the BOS/separator token"},
        {"threads", CLI_INT, &threads, "CPU threads (default: all)"},
        {"device", CLI_STR, &device, "cpu | cuda"},
        {0},
    };
    int rc = cli_parse(argc, argv, opts, "soju generate --model DIR [--prompt TEXT] [options]", NULL, NULL);
    if (rc) return rc == 1 ? 0 : 2;
    if (!model_dir) return cli_fail("give the model: --model CHECKPOINT_DIR");
    if (max_tokens <= 0) return cli_fail("--max-tokens must be > 0");
    if (greedy) temperature = 0;
    if (threads > 0) soju_set_num_threads((int)threads);

    soju_err err = {{0}};
    char *prompt_text = NULL;
    size_t prompt_len = strlen(prompt);
    if (prompt_file) {
        if (soju_read_file(prompt_file, &prompt_text, &prompt_len, &err)) return cli_fail(err.msg);
        prompt = prompt_text;
    }
    soju_text_codec codec;
    if (soju_text_codec_open(&codec, tokenizer, &err)) {
        free(prompt_text);
        return cli_fail(err.msg);
    }
    soju_model *m = NULL;
    soju_kv_cache *kv = NULL;
    int32_t *ids = NULL, *out = NULL;
    size_t n = 0, cap = 0;
    stream st = {.codec = &codec};
    rc = soju_checkpoint_load_model(model_dir, device, 1, 0, &m, &err);
    const soju_model_config *cfg = m ? soju_model_config_of(m) : NULL;
    if (rc == SOJU_OK && codec.vocab_size > cfg->vocab_size)
        rc = soju_errf(&err, SOJU_EARG, "%s: the model's vocab_size %d is smaller than the tokenizer's %d", model_dir,
                       cfg->vocab_size, codec.vocab_size);
    if (rc == SOJU_OK && !no_bos && codec.bos_id >= 0) {
        ids = soju_malloc(sizeof *ids * 64);
        cap = 64;
        ids[n++] = codec.bos_id;
    }
    if (rc == SOJU_OK) rc = codec.encode(codec.ctx, prompt, prompt_len, &ids, &n, &cap, &err);
    if (rc == SOJU_OK && n == 0) rc = soju_errf(&err, SOJU_EARG, "empty prompt and no BOS token to start from");
    int max_T = cfg ? cfg->max_position_embeddings : 0;
    if (rc == SOJU_OK && (long)n >= max_T)
        rc = soju_errf(&err, SOJU_EARG, "the prompt has %zu tokens; the model's context is %d", n, max_T);
    if (rc == SOJU_OK && (long long)n + max_tokens > max_T) max_tokens = max_T - (long long)n;
    if (rc == SOJU_OK) rc = soju_kv_cache_create(&kv, m, 1, (int)(n + (size_t)max_tokens), &err);
    soju_generate_stats gs = {0};
    if (rc == SOJU_OK) {
        out = soju_malloc(sizeof *out * (size_t)max_tokens);
        soju_generate_opts go = {.sample = {temperature, (int)top_k, top_p},
                                 .seed = (uint64_t)seed,
                                 .max_new_tokens = (int)max_tokens,
                                 .eos_id = codec.eos_id};
        fwrite(prompt, 1, prompt_len, stdout);
        rc = soju_generate(m, kv, ids, (int)n, &go, out, print_token, &st, &gs, &err);
        printf("\n");
        fflush(stdout); /* the text ends before the timing line on stderr */
    }
    if (rc == SOJU_OK)
        soju_log("%d prompt tokens in %.2f s, %d new tokens in %.2f s (%.1f tokens/s)%s", gs.prompt_tokens,
                 gs.prefill_s, gs.new_tokens, gs.decode_s, gs.decode_s > 0 ? gs.new_tokens / gs.decode_s : 0,
                 gs.stopped_at_eos ? ", stopped at EOS" : "");
    soju_buf_free(&st.text);
    free(out);
    free(ids);
    soju_kv_cache_free(kv);
    soju_model_free(m);
    soju_text_codec_close(&codec);
    free(prompt_text);
    return rc ? cli_fail(err.msg) : 0;
}

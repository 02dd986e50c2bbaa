/* soju generate — continue a prompt with a trained model.
 *
 *   soju generate --model runs/a --prompt "ROMEO:" --max-tokens 200 --temperature 0.8 --top-p 0.95
 *
 * --model takes a checkpoint directory or a run directory (its latest
 * checkpoint). The tokenizer is --tokenizer, else the checkpoint's
 * tokenizer.json, else the byte vocabulary ("bytes"). The prompt starts
 * after the document separator, where documents start in the shards. The
 * text streams to stdout as it is generated; timings go to stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "soju/generate.h"
#include "soju/tokenizer.h"
#include "soju/train.h"

typedef struct stream {
    const soju_tokenizer *tok;
} stream;

/* Print each new token's bytes as it comes (special tokens print nothing;
 * ids past the tokenizer's vocabulary, which a padded model can draw, neither). */
static int print_token(void *ctx, int32_t id) {
    stream *s = ctx;
    size_t len = 0;
    const uint8_t *bytes = id >= 0 && !soju_tok_is_special(s->tok, (uint32_t)id)
                               ? soju_tok_token_bytes(s->tok, (uint32_t)id, &len)
                               : NULL;
    if (bytes) fwrite(bytes, 1, len, stdout);
    fflush(stdout);
    return 0;
}

/* --tokenizer, else the checkpoint's tokenizer.json, else the byte vocabulary. */
static int open_tokenizer(const char *spec, const char *model_dir, soju_tokenizer **t, soju_err *err) {
    if (spec) return soju_tok_load(spec, t, err);
    char *ck;
    int rc = soju_checkpoint_resolve(model_dir, &ck, err);
    if (rc) return rc;
    char *path = soju_path_join(ck, "tokenizer.json");
    rc = soju_file_exists(path) ? soju_tok_load(path, t, err) : soju_tok_load_bytes(t, err);
    free(path);
    free(ck);
    return rc;
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
        {"tokenizer", CLI_STR, &tokenizer,
         "a tokenizer spec, or bytes (default: the checkpoint's tokenizer.json, else bytes)"},
        {"no-bos", CLI_FLAG, &no_bos, "do not start the prompt with the document separator (EOS/BOS) token"},
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
    soju_tokenizer *tok = NULL;
    soju_model *m = NULL;
    soju_kv_cache *kv = NULL;
    soju_ids ids = {0};
    int32_t *out = NULL;
    rc = open_tokenizer(tokenizer, model_dir, &tok, &err);
    if (rc == SOJU_OK) rc = soju_checkpoint_load_model(model_dir, device, 1, 0, &m, &err);
    const soju_model_config *cfg = m ? soju_model_config_of(m) : NULL;
    if (rc == SOJU_OK && soju_tok_vocab_size(tok) > (size_t)cfg->vocab_size)
        rc = soju_errf(&err, SOJU_EARG, "%s: the model's vocab_size %d is smaller than the tokenizer's %zu", model_dir,
                       cfg->vocab_size, soju_tok_vocab_size(tok));
    int sep_after;
    uint32_t sep = tok ? soju_tok_doc_separator(tok, &sep_after) : SOJU_TOK_NONE;
    if (rc == SOJU_OK && !no_bos && sep != SOJU_TOK_NONE) soju_ids_push(&ids, sep);
    if (rc == SOJU_OK) soju_tok_encode_once(tok, prompt, prompt_len, 0, &ids); /* special-token strings stay text */
    if (rc == SOJU_OK && ids.len == 0) rc = soju_errf(&err, SOJU_EARG, "empty prompt and no BOS token to start from");
    int max_T = cfg ? cfg->max_position_embeddings : 0;
    if (rc == SOJU_OK && (long)ids.len >= max_T)
        rc = soju_errf(&err, SOJU_EARG, "the prompt has %zu tokens; the model's context is %d", ids.len, max_T);
    if (rc == SOJU_OK && (long long)ids.len + max_tokens > max_T) max_tokens = max_T - (long long)ids.len;
    if (rc == SOJU_OK) rc = soju_kv_cache_create(&kv, m, 1, (int)(ids.len + (size_t)max_tokens), &err);
    soju_generate_stats gs = {0};
    if (rc == SOJU_OK) {
        out = soju_malloc(sizeof *out * (size_t)max_tokens);
        uint32_t eos = soju_tok_special_id(tok, SOJU_TOK_EOS);
        soju_generate_opts go = {.sample = {temperature, (int)top_k, top_p},
                                 .seed = (uint64_t)seed,
                                 .max_new_tokens = (int)max_tokens,
                                 .eos_id = eos == SOJU_TOK_NONE ? -1 : (int)eos};
        stream st = {tok};
        fwrite(prompt, 1, prompt_len, stdout);
        /* soju_generate takes signed ids; a vocabulary is far below 2^31 */
        rc = soju_generate(m, kv, (const int32_t *)ids.data, (int)ids.len, &go, out, print_token, &st, &gs, &err);
        printf("\n");
        fflush(stdout); /* the text ends before the timing line on stderr */
    }
    if (rc == SOJU_OK)
        soju_log("%d prompt tokens in %.2f s, %d new tokens in %.2f s (%.1f tokens/s)%s", gs.prompt_tokens,
                 gs.prefill_s, gs.new_tokens, gs.decode_s, gs.decode_s > 0 ? gs.new_tokens / gs.decode_s : 0,
                 gs.stopped_at_eos ? ", stopped at EOS" : "");
    free(out);
    soju_ids_free(&ids);
    soju_kv_cache_free(kv);
    soju_model_free(m);
    soju_tok_free(tok);
    free(prompt_text);
    return rc ? cli_fail(err.msg) : 0;
}

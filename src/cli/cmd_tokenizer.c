/* soju tokenizer <train|extend|stats|encode|decode|convert|info> */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "soju/io.h"
#include "soju/tokenizer.h"

static int load_or_fail(const char *spec, soju_tokenizer **t) {
    if (!spec) return cli_fail("--tokenizer is required (tokenizer.json, a directory, a rank file or PRESET:path)");
    soju_err err;
    if (soju_tok_load(spec, t, &err)) return cli_fail(err.msg);
    return 0;
}

/* soju tokenizer encode --tokenizer T [--specials] [--text S | FILE...]: ids, one line per input line. */
static int cmd_tok_encode(int argc, char **argv) {
    const char *spec = NULL, *text = NULL;
    int specials = 0, bos = 0, eos = 0, pieces = 0;
    cli_opt opts[] = {{"tokenizer", CLI_STR, &spec, "tokenizer to use"},
                      {"text", CLI_STR, &text, "encode this text (default: each line of stdin or FILEs)"},
                      {"specials", CLI_FLAG, &specials, "recognize special-token strings in the text"},
                      {"bos", CLI_FLAG, &bos, "prepend BOS"},
                      {"eos", CLI_FLAG, &eos, "append EOS"},
                      {"pieces", CLI_FLAG, &pieces, "print token strings instead of ids"},
                      {0}};
    char **pos;
    int npos;
    int rc = cli_parse(argc, argv, opts, "soju tokenizer encode --tokenizer T [--text S | FILE...]", &pos, &npos);
    if (rc) return rc == 1 ? 0 : rc;
    soju_tokenizer *t;
    if (load_or_fail(spec, &t)) return free(pos), 1;
    soju_tok_encoder *e = soju_tok_encoder_new(t);
    int flags = (specials ? SOJU_ENC_SPECIALS : 0) | (bos ? SOJU_ENC_BOS : 0) | (eos ? SOJU_ENC_EOS : 0);
    soju_ids ids = {0};
    soju_buf line = {0};
    int status = 0;
    for (int f = 0; f < (text ? 1 : npos ? npos : 1); f++) {
        FILE *in = NULL;
        if (!text) {
            in = npos ? fopen(pos[f], "rb") : stdin;
            if (!in) {
                fprintf(stderr, "soju: error: %s: cannot open\n", pos[f]);
                status = 1;
                break;
            }
        }
        for (;;) {
            soju_buf_clear(&line);
            if (text) soju_buf_puts(&line, text);
            else {
                int c;
                while ((c = fgetc(in)) != EOF && c != '\n') soju_buf_putc(&line, (char)c);
                if (c == EOF && !line.len) break;
            }
            ids.len = 0;
            soju_tok_encode(e, line.data ? line.data : "", line.len, flags, &ids);
            for (size_t i = 0; i < ids.len; i++) {
                if (pieces) printf("%s%s", i ? " " : "", soju_tok_id_to_token(t, ids.data[i]));
                else printf("%s%u", i ? " " : "", ids.data[i]);
            }
            putchar('\n');
            if (text) break;
        }
        if (in && in != stdin) fclose(in);
    }
    soju_buf_free(&line);
    soju_ids_free(&ids);
    soju_tok_encoder_free(e);
    soju_tok_free(t);
    free(pos);
    return status;
}

/* soju tokenizer decode --tokenizer T ID...: the text. */
static int cmd_tok_decode(int argc, char **argv) {
    const char *spec = NULL;
    int skip = 0;
    cli_opt opts[] = {{"tokenizer", CLI_STR, &spec, "tokenizer to use"},
                      {"skip-special", CLI_FLAG, &skip, "leave special tokens out"},
                      {0}};
    char **pos;
    int npos;
    int rc = cli_parse(argc, argv, opts, "soju tokenizer decode --tokenizer T ID...", &pos, &npos);
    if (rc) return rc == 1 ? 0 : rc;
    soju_tokenizer *t;
    if (load_or_fail(spec, &t)) return free(pos), 1;
    soju_ids ids = {0};
    for (int i = 0; i < npos; i++) {
        char *end;
        unsigned long v = strtoul(pos[i], &end, 10);
        if (*end || end == pos[i]) {
            fprintf(stderr, "soju: error: '%s' is not a token id\n", pos[i]);
            soju_ids_free(&ids);
            soju_tok_free(t);
            free(pos);
            return 1;
        }
        soju_ids_push(&ids, (uint32_t)v);
    }
    soju_buf out = {0};
    soju_err err;
    int status = 0;
    if (soju_tok_decode(t, ids.data, ids.len, skip ? SOJU_DEC_SKIP_SPECIAL : 0, &out, &err)) status = cli_fail(err.msg);
    else fwrite(out.data ? out.data : "", 1, out.len, stdout), putchar('\n');
    soju_buf_free(&out);
    soju_ids_free(&ids);
    soju_tok_free(t);
    free(pos);
    return status;
}

/* soju tokenizer convert --tokenizer T --out tokenizer.json */
static int cmd_tok_convert(int argc, char **argv) {
    const char *spec = NULL, *out = NULL;
    cli_opt opts[] = {{"tokenizer", CLI_STR, &spec, "tokenizer to read"},
                      {"out", CLI_STR, &out, "tokenizer.json to write"},
                      {0}};
    int rc = cli_parse(argc, argv, opts, "soju tokenizer convert --tokenizer T --out tokenizer.json", NULL, NULL);
    if (rc) return rc == 1 ? 0 : rc;
    if (!out) return cli_fail("--out is required");
    soju_tokenizer *t;
    if (load_or_fail(spec, &t)) return 1;
    soju_err err;
    int status = 0;
    if (soju_tok_save_hf_json(t, out, &err)) status = cli_fail(err.msg);
    else printf("wrote %s (%zu ids)\n", out, soju_tok_vocab_size(t));
    soju_tok_free(t);
    return status;
}

/* soju tokenizer info --tokenizer T */
static int cmd_tok_info(int argc, char **argv) {
    const char *spec = NULL;
    cli_opt opts[] = {{"tokenizer", CLI_STR, &spec, "tokenizer to describe"}, {0}};
    int rc = cli_parse(argc, argv, opts, "soju tokenizer info --tokenizer T", NULL, NULL);
    if (rc) return rc == 1 ? 0 : rc;
    soju_tokenizer *t;
    if (load_or_fail(spec, &t)) return 1;
    soju_buf d = {0};
    soju_tok_describe(t, &d);
    printf("%s\n", d.data);
    soju_buf_free(&d);
    soju_tok_free(t);
    return 0;
}

/* soju tokenizer chat --tokenizer T [--template NAME|FILE] FILE.jsonl: each conversation's
 * ids (or pieces), learned tokens (loss mask 1) marked with '*'. */
static int cmd_tok_chat(int argc, char **argv) {
    const char *spec = NULL, *template = "chatml";
    int pieces = 0, gen = 0;
    cli_opt opts[] = {{"tokenizer", CLI_STR, &spec, "tokenizer to use"},
                      {"template", CLI_STR, &template, "chatml, llama3, or a JSON/YAML template file"},
                      {"pieces", CLI_FLAG, &pieces, "print token strings instead of ids"},
                      {"generation-prompt", CLI_FLAG, &gen, "end with the assistant prefix"},
                      {0}};
    char **pos;
    int npos;
    int rc = cli_parse(argc, argv, opts, "soju tokenizer chat --tokenizer T [--template NAME|FILE] FILE.jsonl...",
                       &pos, &npos);
    if (rc) return rc == 1 ? 0 : rc;
    soju_tokenizer *t = NULL;
    soju_chat_template tpl = {0};
    soju_err err;
    int status = 0;
    if (load_or_fail(spec, &t)) status = 1;
    else if (soju_chat_template_load(template, &tpl, &err)) status = cli_fail(err.msg);
    soju_tok_encoder *e = t ? soju_tok_encoder_new(t) : NULL;
    for (int f = 0; f < npos && !status; f++) {
        soju_reader *r;
        if (soju_reader_open(&r, pos[f], SOJU_FMT_JSONL, "text", &err)) {
            status = cli_fail(err.msg);
            break;
        }
        soju_record rec;
        int st;
        while ((st = soju_reader_next(r, &rec, &err)) != SOJU_READ_EOF && !status) {
            if (st < 0) status = cli_fail(err.msg);
            if (st != SOJU_READ_OK && st != SOJU_READ_BAD) break;
            soju_chat_msg *msgs = NULL;
            int n = rec.json ? soju_chat_messages_from_json(rec.json, &msgs, &err) : -1;
            if (n < 0) {
                fprintf(stderr, "soju: skipped %s:%zu: %s\n", rec.path, rec.line, rec.json ? err.msg : "malformed JSON");
                continue;
            }
            soju_ids ids = {0};
            soju_buf mask = {0};
            if (soju_chat_encode(e, &tpl, msgs, (size_t)n, gen, &ids, &mask, &err)) status = cli_fail(err.msg);
            for (size_t i = 0; i < ids.len && !status; i++) {
                if (pieces) printf("%s%s%s", i ? " " : "", soju_tok_id_to_token(t, ids.data[i]), mask.data[i] ? "*" : "");
                else printf("%s%u%s", i ? " " : "", ids.data[i], mask.data[i] ? "*" : "");
            }
            if (!status) putchar('\n');
            free(msgs);
            soju_ids_free(&ids);
            soju_buf_free(&mask);
        }
        soju_reader_close(r);
    }
    soju_tok_encoder_free(e);
    soju_chat_template_free(&tpl);
    soju_tok_free(t);
    free(pos);
    return status;
}

static const cli_command tokenizer_commands[] = {
    {"train", cmd_tokenizer_train, "train a byte-level BPE tokenizer on a corpus"},
    {"extend", cmd_tokenizer_extend, "add new merges learned on a corpus (and resize a checkpoint)"},
    {"stats", cmd_tokenizer_stats, "tokens per character and bytes per token, per language"},
    {"encode", cmd_tok_encode, "print the ids of text"},
    {"decode", cmd_tok_decode, "print the text of ids"},
    {"chat", cmd_tok_chat, "render conversations with a chat template; '*' marks learned tokens"},
    {"convert", cmd_tok_convert, "write any loadable tokenizer as tokenizer.json"},
    {"info", cmd_tok_info, "describe a tokenizer"},
    {0, 0, 0},
};

int cmd_tokenizer(int argc, char **argv) { return cli_dispatch("soju tokenizer", tokenizer_commands, argc, argv); }

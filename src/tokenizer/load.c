/* soju_tok_load: find out what a tokenizer spec names and load it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* A SentencePiece model is binary protobuf starting with field 1 (0x0A);
 * a rank file is base64 text. */
static int looks_like_protobuf(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    int c = fgetc(f);
    fclose(f);
    return c == 0x0A;
}

static int load_file(const char *path, const char *preset, soju_tokenizer **out, soju_err *err) {
    if (!soju_file_exists(path)) return soju_errf(err, SOJU_EIO, "%s: no such tokenizer file", path);
    if (soju_str_ends_with(path, ".json")) return soju_tok_load_hf_json(path, out, err);
    if (!preset && looks_like_protobuf(path)) return soju_tok_load_spm(path, out, err);
    return soju_tok_load_tiktoken(path, preset, out, err);
}

int soju_tok_load(const char *spec, soju_tokenizer **out, soju_err *err) {
    if (!strcmp(spec, "bytes")) return soju_tok_load_bytes(out, err);
    /* PRESET:path */
    const char *colon = strchr(spec, ':');
    if (colon && colon > spec && colon - spec < 16) {
        char preset[16];
        memcpy(preset, spec, (size_t)(colon - spec));
        preset[colon - spec] = 0;
        if (soju_tok_preset_regex(preset)) return load_file(colon + 1, preset, out, err);
    }
    if (!soju_is_dir(spec)) return load_file(spec, NULL, out, err);
    const char *names[] = {"tokenizer.json", "encoder.json", "tokenizer.model", NULL};
    for (int i = 0; names[i]; i++) {
        char *p = soju_path_join(spec, names[i]);
        int exists = soju_file_exists(p);
        int rc = SOJU_OK;
        if (exists && i == 1) {
            char *merges = soju_path_join(spec, "vocab.bpe");
            rc = soju_tok_load_gpt2(p, merges, out, err);
            free(merges);
        } else if (exists) {
            rc = load_file(p, NULL, out, err);
        }
        free(p);
        if (exists) return rc;
    }
    return soju_errf(err, SOJU_EIO, "%s: no tokenizer.json, encoder.json + vocab.bpe or tokenizer.model in this directory",
                     spec);
}

/* Built-in pre-tokenizers and special-token tables. A tiktoken rank file
 * holds only the byte-level tokens; the regex and the special tokens that
 * follow the ranks live in each model's code, so soju carries them here:
 *   gpt2    openai/tiktoken tiktoken_ext/openai_public.py (r50k_base)
 *   cl100k  the same file (cl100k_base)
 *   o200k   the same file (o200k_base)
 *   llama3  meta-llama/llama-models models/llama3/tokenizer.py
 *   llama4  meta-llama/llama-models models/llama4/tokenizer.py
 *   qwen2   Qwen 2 / 2.5 (transformers PRETOKENIZE_REGEX; added tokens of Qwen2.5) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define RE_CL100K                                                                                             \
    "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}++|\\p{N}{1,3}+| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*+|\\s++$|" \
    "\\s*[\\r\\n]|\\s+(?!\\S)|\\s"
#define RE_LLAMA3                                                                                    \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                  \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_O200K                                                                                                   \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|" \
    "'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|" \
    "'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

typedef struct preset {
    const char *name;
    const char *regex;
    size_t n_ranks; /* size of the official rank file, for guessing */
} preset;

static const preset presets[] = {
    {"gpt2", RE_GPT2, 50256},     {"cl100k", RE_CL100K, 100256}, {"llama3", RE_LLAMA3, 128000},
    {"qwen2", RE_QWEN2, 151643},  {"o200k", RE_O200K, 199998},   {"llama4", RE_O200K, 200000},
    {NULL, NULL, 0},
};

const char *soju_tok_preset_regex(const char *name) {
    for (const preset *p = presets; p->name; p++)
        if (!strcmp(p->name, name)) return p->regex;
    return NULL;
}

const char *soju_tok_preset_for_ranks(size_t n_ranks) {
    for (const preset *p = presets; p->name; p++)
        if (p->n_ranks == n_ranks) return p->name;
    return NULL;
}

int tok_set_pretok(soju_tokenizer *t, const char *preset_or_regex, soju_err *err) {
    const char *re = soju_tok_preset_regex(preset_or_regex);
    free(t->preset);
    free(t->pattern);
    t->preset = re ? soju_strdup(preset_or_regex) : NULL;
    t->pattern = soju_strdup(re ? re : preset_or_regex);
    soju_regex_free(t->re);
    t->re = NULL;
    return soju_regex_compile(&t->re, t->pattern, 0, err);
}

/* ---------------------------------------------------------------- special tables */

static void add_named(soju_tokenizer *t, uint32_t id, const char *name) {
    tok_set(t, id, name, name, strlen(name), name, strlen(name), TOKF_SPECIAL);
    tok_add_special(t, id);
}

static void add_list(soju_tokenizer *t, uint32_t *id, const char *const *names) {
    for (; *names; names++) add_named(t, (*id)++, *names);
}

static void add_numbered(soju_tokenizer *t, uint32_t *id, const char *fmt, int from, int count) {
    char name[96];
    for (int i = from; i < from + count; i++) {
        snprintf(name, sizeof name, fmt, i);
        add_named(t, (*id)++, name);
    }
}

static void specials_llama3(soju_tokenizer *t, uint32_t id) {
    static const char *const named[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                                        "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|step_id|>",
                                        "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>",
                                        "<|python_tag|>", "<|image|>", NULL};
    add_list(t, &id, named);
    add_numbered(t, &id, "<|reserved_special_token_%d|>", 2, 256 - 12);
}

static void specials_llama4(soju_tokenizer *t, uint32_t id) {
    static const char *const basic[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|fim_prefix|>", "<|fim_middle|>",
                                        "<|fim_suffix|>", NULL};
    static const char *const post[] = {
        "<|header_start|>", "<|header_end|>", "<|eom|>", "<|eot|>", "<|step|>",
        "<|text_post_train_reserved_special_token_0|>", "<|text_post_train_reserved_special_token_1|>",
        "<|text_post_train_reserved_special_token_2|>", "<|text_post_train_reserved_special_token_3|>",
        "<|text_post_train_reserved_special_token_4|>", "<|text_post_train_reserved_special_token_5|>",
        "<|python_start|>", "<|python_end|>", "<|finetune_right_pad|>", NULL};
    static const char *const vision[] = {"<|image_start|>", "<|image_end|>", "<|vision_reserved_special_token_0|>",
                                         "<|vision_reserved_special_token_1|>", "<|tile_x_separator|>",
                                         "<|tile_y_separator|>", "<|vision_reserved_special_token_2|>",
                                         "<|vision_reserved_special_token_3|>", "<|vision_reserved_special_token_4|>",
                                         "<|vision_reserved_special_token_5|>", "<|image|>",
                                         "<|vision_reserved_special_token_6|>", "<|patch|>", NULL};
    uint32_t first = id;
    add_list(t, &id, basic);
    add_list(t, &id, post);
    add_numbered(t, &id, "<|text_post_train_reserved_special_token_%d|>", 8, 61);
    add_list(t, &id, vision);
    add_numbered(t, &id, "<|vision_reserved_special_token_%d|>", 7, 1041);
    add_numbered(t, &id, "<|reasoning_reserved_special_token_%d|>", 0, 8);
    add_named(t, id++, "<|reasoning_thinking_start|>");
    add_named(t, id++, "<|reasoning_thinking_end|>");
    add_numbered(t, &id, "<|reserved_special_token_%d|>", 0, (int)(2048 - (id - first)));
}

static void specials_qwen2(soju_tokenizer *t, uint32_t id) {
    static const char *const named[] = {
        "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
        "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
        "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
        "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", NULL};
    add_list(t, &id, named);
}

void tok_add_preset_specials(soju_tokenizer *t, const char *name, uint32_t first_id) {
    if (!strcmp(name, "llama3")) specials_llama3(t, first_id);
    else if (!strcmp(name, "llama4")) specials_llama4(t, first_id);
    else if (!strcmp(name, "qwen2")) specials_qwen2(t, first_id);
    else if (!strcmp(name, "gpt2")) add_named(t, first_id, "<|endoftext|>");
    else if (!strcmp(name, "cl100k")) {
        add_named(t, 100257, "<|endoftext|>");
        add_named(t, 100258, "<|fim_prefix|>");
        add_named(t, 100259, "<|fim_middle|>");
        add_named(t, 100260, "<|fim_suffix|>");
        add_named(t, 100276, "<|endofprompt|>");
    } else if (!strcmp(name, "o200k")) {
        add_named(t, 199999, "<|endoftext|>");
        add_named(t, 200018, "<|endofprompt|>");
    }
}

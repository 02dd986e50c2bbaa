/* Model configuration: Hugging Face config.json in and out.
 *
 * Reading fills a family's defaults (those of transformers' LlamaConfig,
 * Qwen2Config, MistralConfig, GPT2Config), overrides them with the file's
 * fields, and validates the result. Every error names the file and field.
 * Writing produces a config.json that transformers opens with the matching
 * *ForCausalLM class. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

/* ---------------------------------------------------------------- reading */

/* Field readers: absent or null keeps the default; the wrong type, a
 * fraction where an integer belongs, or an out-of-range value is an error. */
typedef struct {
    const cJSON *j;
    const char *name;
    soju_err *err;
    int rc;
} reader;

/* A value from the file, fit for a one-line message: control characters
 * become '?', and long values are cut. */
static const char *printable(char *dst, size_t n, const char *s) {
    size_t i = 0;
    for (; s[i] && i + 1 < n; i++) dst[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    dst[i] = 0;
    if (s[i] && n > 4) memcpy(dst + n - 4, "...", 4);
    return dst;
}

static void bad_field(reader *r, const char *key, const char *fmt, const char *detail) {
    if (r->rc) return; /* keep the first error */
    char what[256];
    snprintf(what, sizeof what, fmt, detail);
    r->rc = soju_errf(r->err, SOJU_EARG, "%s: field \"%s\": %s", r->name, key, what);
}

static const cJSON *field(reader *r, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->j, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static void get_int(reader *r, const char *key, int *out, int min) {
    const cJSON *v = field(r, key);
    if (!v) return;
    if (!cJSON_IsNumber(v)) return bad_field(r, key, "expected an integer%s", "");
    double d = v->valuedouble;
    if (d != floor(d) || d < min || d > 1e9) {
        char s[64];
        snprintf(s, sizeof s, "%g", d);
        return bad_field(r, key, "%s is not a valid value here", s);
    }
    *out = (int)d;
}

static void get_float(reader *r, const char *key, float *out, double min_exclusive) {
    const cJSON *v = field(r, key);
    if (!v) return;
    if (!cJSON_IsNumber(v)) return bad_field(r, key, "expected a number%s", "");
    float f = (float)v->valuedouble; /* the range check applies to the stored float */
    if (!(v->valuedouble > min_exclusive) || !(fabs(v->valuedouble) < 3.0e38) || !(f > min_exclusive)) {
        char s[64];
        snprintf(s, sizeof s, "%g", v->valuedouble);
        return bad_field(r, key, "%s is out of range", s);
    }
    *out = f;
}

static void get_bool(reader *r, const char *key, int *out) {
    const cJSON *v = field(r, key);
    if (!v) return;
    if (!cJSON_IsBool(v)) return bad_field(r, key, "expected true or false%s", "");
    *out = cJSON_IsTrue(v);
}

/* Token ids may be an integer or (Llama 3 instruct's eos) a list: keep the first. */
static void get_token_id(reader *r, const char *key, int *out) {
    const cJSON *v = field(r, key);
    if (v && cJSON_IsArray(v)) v = cJSON_GetArrayItem(v, 0);
    if (!v || cJSON_IsNull(v)) return;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 2e9 || v->valuedouble != floor(v->valuedouble))
        return bad_field(r, key, "expected a token id%s", "");
    *out = (int)v->valuedouble;
}

static const char *get_string(reader *r, const char *key) {
    const cJSON *v = field(r, key);
    if (!v) return NULL;
    if (!cJSON_IsString(v)) {
        bad_field(r, key, "expected a string%s", "");
        return NULL;
    }
    return v->valuestring;
}

/* rope_scaling (or transformers 5's rope_parameters): only linear position
 * interpolation is implemented; other kinds would silently change the model. */
static void get_rope(reader *r, soju_model_config *cfg) {
    const char *key = field(r, "rope_parameters") ? "rope_parameters" : "rope_scaling";
    const cJSON *rs = field(r, key);
    if (!rs) return;
    if (!cJSON_IsObject(rs)) return bad_field(r, key, "expected an object or null%s", "");
    reader sub = {rs, r->name, r->err, 0};
    const char *type = get_string(&sub, "rope_type");
    if (!type) type = get_string(&sub, "type");
    if (!type) type = "default";
    char shown[48];
    if (!strcmp(type, "linear")) {
        get_float(&sub, "factor", &cfg->rope_scaling_factor, 0.0);
    } else if (strcmp(type, "default") != 0) {
        if (!r->rc)
            r->rc = soju_errf(r->err, SOJU_EUNSUP, "%s: field \"%s\": rope type \"%s\" is not supported (use linear)",
                              r->name, key, printable(shown, sizeof shown, type));
        return;
    }
    get_float(&sub, "rope_theta", &cfg->rope_theta, 0.0);
    if (sub.rc && !r->rc) r->rc = sub.rc; /* its message names the file and the inner field */
}

static void llama_defaults(soju_model_config *c) {
    c->intermediate_size = 0;
    c->max_position_embeddings = 2048;
    c->norm_eps = 1e-6f;
    c->rope_theta = 10000.0f;
    c->rope_scaling_factor = 1.0f;
    c->tie_word_embeddings = 0;
    c->initializer_range = 0.02f;
    c->bos_token_id = c->eos_token_id = c->pad_token_id = -1;
}

static void gpt2_defaults(soju_model_config *c) {
    c->vocab_size = 50257;
    c->hidden_size = 768;
    c->num_hidden_layers = 12;
    c->num_attention_heads = 12;
    c->max_position_embeddings = 1024;
    c->norm_eps = 1e-5f;
    c->rope_theta = 0.0f;
    c->rope_scaling_factor = 1.0f;
    c->tie_word_embeddings = 1;
    c->attention_bias = c->attention_out_bias = c->mlp_bias = 1;
    c->initializer_range = 0.02f;
    c->bos_token_id = c->eos_token_id = 50256;
    c->pad_token_id = -1;
}

static void read_llama(reader *r, soju_model_config *c) {
    int is_qwen2 = !strcmp(c->model_type, "qwen2"), is_mistral = !strcmp(c->model_type, "mistral");
    c->vocab_size = 0, c->hidden_size = 0, c->num_hidden_layers = 0, c->num_attention_heads = 0;
    if (is_mistral) c->max_position_embeddings = 4096 * 32, c->norm_eps = 1e-6f, c->rope_theta = 10000.0f;
    if (is_qwen2) c->max_position_embeddings = 32768, c->rope_theta = 10000.0f;
    get_int(r, "vocab_size", &c->vocab_size, 1);
    get_int(r, "hidden_size", &c->hidden_size, 1);
    get_int(r, "intermediate_size", &c->intermediate_size, 1);
    get_int(r, "num_hidden_layers", &c->num_hidden_layers, 1);
    get_int(r, "num_attention_heads", &c->num_attention_heads, 1);
    get_int(r, "num_key_value_heads", &c->num_key_value_heads, 1);
    get_int(r, "head_dim", &c->head_dim, 1);
    get_int(r, "max_position_embeddings", &c->max_position_embeddings, 1);
    get_float(r, "rms_norm_eps", &c->norm_eps, 0.0);
    get_float(r, "rope_theta", &c->rope_theta, 0.0);
    get_rope(r, c);
    get_bool(r, "tie_word_embeddings", &c->tie_word_embeddings);
    if (is_qwen2) {
        c->attention_bias = 1; /* Qwen 2 always has q, k, v biases and no o bias */
    } else {
        get_bool(r, "attention_bias", &c->attention_bias);
        c->attention_out_bias = c->attention_bias;
        get_bool(r, "mlp_bias", &c->mlp_bias);
    }
    get_float(r, "initializer_range", &c->initializer_range, 0.0);
    get_float(r, "final_logit_softcapping", &c->final_logit_softcapping, 0.0);
    /* Mistral: sliding_window is the window (null = none); Qwen 2 uses it
     * only with use_sliding_window, and only on some layers: unsupported. */
    if (is_mistral) get_int(r, "sliding_window", &c->sliding_window, 1);
    if (is_qwen2) {
        int use = 0;
        get_bool(r, "use_sliding_window", &use);
        if (use && !r->rc)
            r->rc = soju_errf(r->err, SOJU_EUNSUP, "%s: field \"use_sliding_window\": not supported", r->name);
    }
    const char *act = get_string(r, "hidden_act");
    char shown[48];
    if (act && strcmp(act, "silu") != 0)
        bad_field(r, "hidden_act", "\"%s\" is not supported (expected silu)", printable(shown, sizeof shown, act));
    static const char *required[] = {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                     "num_attention_heads"};
    for (size_t i = 0; i < sizeof required / sizeof *required; i++)
        if (!field(r, required[i])) bad_field(r, required[i], "missing%s", "");
}

static void read_gpt2(reader *r, soju_model_config *c) {
    get_int(r, "vocab_size", &c->vocab_size, 1);
    get_int(r, "n_embd", &c->hidden_size, 1);
    get_int(r, "n_layer", &c->num_hidden_layers, 1);
    get_int(r, "n_head", &c->num_attention_heads, 1);
    get_int(r, "n_positions", &c->max_position_embeddings, 1);
    get_int(r, "n_inner", &c->intermediate_size, 1);
    get_float(r, "layer_norm_epsilon", &c->norm_eps, 0.0);
    get_float(r, "initializer_range", &c->initializer_range, 0.0);
    get_bool(r, "tie_word_embeddings", &c->tie_word_embeddings);
    const char *act = get_string(r, "activation_function");
    char shown[48];
    if (act && strcmp(act, "gelu_new") != 0 && strcmp(act, "gelu_pytorch_tanh") != 0)
        bad_field(r, "activation_function", "\"%s\" is not supported (expected gelu_new)",
                  printable(shown, sizeof shown, act));
    /* Options that change the math and that soju does not implement. */
    int v = 1;
    get_bool(r, "scale_attn_weights", &v);
    if (!v) bad_field(r, "scale_attn_weights", "false is not supported%s", "");
    v = 0;
    get_bool(r, "scale_attn_by_inverse_layer_idx", &v);
    if (v) bad_field(r, "scale_attn_by_inverse_layer_idx", "true is not supported%s", "");
}

/* Checks that hold for every family once the fields are read. */
static void validate(reader *r, soju_model_config *c) {
    if (r->rc) return;
    if (c->num_attention_heads % c->num_key_value_heads != 0) {
        char s[96];
        snprintf(s, sizeof s, "%d does not divide num_attention_heads %d", c->num_key_value_heads,
                 c->num_attention_heads);
        return bad_field(r, c->arch == SOJU_ARCH_GPT2 ? "n_head" : "num_key_value_heads", "%s", s);
    }
    if (c->arch == SOJU_ARCH_GPT2 && c->hidden_size % c->num_attention_heads != 0)
        return bad_field(r, "n_embd", "not a multiple of n_head%s", "");
    if (c->arch == SOJU_ARCH_LLAMA && c->head_dim % 2 != 0)
        return bad_field(r, "head_dim", "must be even for rotary embeddings%s", "");
    if (c->arch == SOJU_ARCH_LLAMA && !field(r, "head_dim") && c->hidden_size % c->num_attention_heads != 0)
        return bad_field(r, "hidden_size", "not a multiple of num_attention_heads (give head_dim)%s", "");
    if (c->num_hidden_layers > 4096) return bad_field(r, "num_hidden_layers", "more than 4096 layers%s", "");
    if (c->num_attention_heads > 4096 || c->head_dim > 4096)
        return bad_field(r, "num_attention_heads", "more than 4096 heads or head_dim above 4096%s", "");
    /* Sizes whose products must fit comfortably in the int arithmetic of the ops. */
    double widest = (double)c->vocab_size * c->hidden_size;
    if (widest > 4e9 || (double)c->intermediate_size * c->hidden_size > 4e9)
        return bad_field(r, "hidden_size", "model too large%s", "");
}

int soju_config_from_json(soju_model_config *cfg, const cJSON *j, const char *name, soju_err *err) {
    memset(cfg, 0, sizeof *cfg);
    if (!cJSON_IsObject(j)) return soju_errf(err, SOJU_EFORMAT, "%s: expected a JSON object", name);
    reader r = {j, name, err, 0};
    const char *type = get_string(&r, "model_type");
    if (r.rc) return r.rc;
    if (!type) { /* files written by hand: tell the family from the field names */
        if (field(&r, "n_embd")) type = "gpt2";
        else if (field(&r, "hidden_size")) type = "llama";
        else return soju_errf(err, SOJU_EARG, "%s: field \"model_type\": missing", name);
    }
    if (!strcmp(type, "gpt2")) {
        cfg->arch = SOJU_ARCH_GPT2;
        gpt2_defaults(cfg);
    } else if (!strcmp(type, "llama") || !strcmp(type, "qwen2") || !strcmp(type, "mistral")) {
        cfg->arch = SOJU_ARCH_LLAMA;
        llama_defaults(cfg);
    } else {
        char shown[48];
        return soju_errf(err, SOJU_EUNSUP,
                         "%s: field \"model_type\": \"%s\" is not supported (expected llama, qwen2, mistral or gpt2)",
                         name, printable(shown, sizeof shown, type));
    }
    snprintf(cfg->model_type, sizeof cfg->model_type, "%s", type);
    if (cfg->arch == SOJU_ARCH_GPT2) read_gpt2(&r, cfg);
    else read_llama(&r, cfg);
    if (r.rc) return r.rc;
    if (!cfg->num_key_value_heads) cfg->num_key_value_heads = cfg->num_attention_heads;
    if (!cfg->head_dim) cfg->head_dim = cfg->hidden_size / cfg->num_attention_heads;
    if (!cfg->intermediate_size) /* (a huge hidden_size stays huge, for validate to refuse, without overflowing) */
        cfg->intermediate_size = cfg->hidden_size <= INT_MAX / 4 ? 4 * cfg->hidden_size : INT_MAX;
    get_token_id(&r, "bos_token_id", &cfg->bos_token_id);
    get_token_id(&r, "eos_token_id", &cfg->eos_token_id);
    get_token_id(&r, "pad_token_id", &cfg->pad_token_id);
    validate(&r, cfg);
    return r.rc;
}

int soju_config_load(soju_model_config *cfg, const char *path, soju_err *err) {
    cJSON *j = NULL;
    int rc = soju_json_load(path, &j, err);
    if (rc) return rc;
    rc = soju_config_from_json(cfg, j, path, err);
    cJSON_Delete(j);
    return rc;
}

/* ---------------------------------------------------------------- writing */

static void add_token_id(cJSON *j, const char *key, int id) {
    if (id >= 0) cJSON_AddNumberToObject(j, key, id);
    else cJSON_AddNullToObject(j, key);
}

cJSON *soju_config_to_json(const soju_model_config *c) {
    cJSON *j = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(j, "architectures");
    if (c->arch == SOJU_ARCH_GPT2) {
        cJSON_AddItemToArray(arch, cJSON_CreateString("GPT2LMHeadModel"));
        cJSON_AddStringToObject(j, "model_type", "gpt2");
        cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
        cJSON_AddNumberToObject(j, "n_embd", c->hidden_size);
        cJSON_AddNumberToObject(j, "n_layer", c->num_hidden_layers);
        cJSON_AddNumberToObject(j, "n_head", c->num_attention_heads);
        cJSON_AddNumberToObject(j, "n_positions", c->max_position_embeddings);
        cJSON_AddNumberToObject(j, "n_ctx", c->max_position_embeddings);
        cJSON_AddNumberToObject(j, "n_inner", c->intermediate_size);
        cJSON_AddNumberToObject(j, "layer_norm_epsilon", c->norm_eps);
        cJSON_AddStringToObject(j, "activation_function", "gelu_new");
        cJSON_AddNumberToObject(j, "resid_pdrop", 0);
        cJSON_AddNumberToObject(j, "embd_pdrop", 0);
        cJSON_AddNumberToObject(j, "attn_pdrop", 0);
        cJSON_AddBoolToObject(j, "scale_attn_weights", 1);
    } else {
        const char *cls = !strcmp(c->model_type, "qwen2")     ? "Qwen2ForCausalLM"
                          : !strcmp(c->model_type, "mistral") ? "MistralForCausalLM"
                                                              : "LlamaForCausalLM";
        cJSON_AddItemToArray(arch, cJSON_CreateString(cls));
        cJSON_AddStringToObject(j, "model_type", c->model_type[0] ? c->model_type : "llama");
        cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
        cJSON_AddNumberToObject(j, "hidden_size", c->hidden_size);
        cJSON_AddNumberToObject(j, "intermediate_size", c->intermediate_size);
        cJSON_AddNumberToObject(j, "num_hidden_layers", c->num_hidden_layers);
        cJSON_AddNumberToObject(j, "num_attention_heads", c->num_attention_heads);
        cJSON_AddNumberToObject(j, "num_key_value_heads", c->num_key_value_heads);
        cJSON_AddNumberToObject(j, "head_dim", c->head_dim);
        cJSON_AddNumberToObject(j, "max_position_embeddings", c->max_position_embeddings);
        cJSON_AddNumberToObject(j, "rms_norm_eps", c->norm_eps);
        cJSON_AddNumberToObject(j, "rope_theta", c->rope_theta);
        if (c->rope_scaling_factor != 1.0f) {
            cJSON *rs = cJSON_AddObjectToObject(j, "rope_scaling");
            cJSON_AddStringToObject(rs, "rope_type", "linear");
            cJSON_AddNumberToObject(rs, "factor", c->rope_scaling_factor);
        } else {
            cJSON_AddNullToObject(j, "rope_scaling");
        }
        cJSON_AddStringToObject(j, "hidden_act", "silu");
        if (strcmp(c->model_type, "qwen2") != 0) {
            cJSON_AddBoolToObject(j, "attention_bias", c->attention_bias);
            cJSON_AddBoolToObject(j, "mlp_bias", c->mlp_bias);
        }
        cJSON_AddNumberToObject(j, "attention_dropout", 0);
        if (!strcmp(c->model_type, "mistral")) {
            if (c->sliding_window > 0) cJSON_AddNumberToObject(j, "sliding_window", c->sliding_window);
            else cJSON_AddNullToObject(j, "sliding_window");
        }
        if (c->final_logit_softcapping > 0)
            cJSON_AddNumberToObject(j, "final_logit_softcapping", c->final_logit_softcapping);
    }
    cJSON_AddBoolToObject(j, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddNumberToObject(j, "initializer_range", c->initializer_range);
    add_token_id(j, "bos_token_id", c->bos_token_id);
    add_token_id(j, "eos_token_id", c->eos_token_id);
    if (c->pad_token_id >= 0) cJSON_AddNumberToObject(j, "pad_token_id", c->pad_token_id);
    cJSON_AddStringToObject(j, "torch_dtype", "float32");
    cJSON_AddBoolToObject(j, "use_cache", 1);
    return j;
}

int soju_config_save(const soju_model_config *cfg, const char *path, soju_err *err) {
    cJSON *j = soju_config_to_json(cfg);
    int rc = soju_json_save(path, j, err);
    cJSON_Delete(j);
    return rc;
}

/* ---------------------------------------------------------------- sizes */

size_t soju_config_num_params(const soju_model_config *cfg) { return soju_layout_size(cfg); }

/* Training FLOPs per token: 6 per parameter touched by a matmul (2 forward,
 * 4 backward; position embeddings excluded), plus attention's 2 T-long
 * products per layer and head dimension (12 L H T, counting the full
 * square as is customary). */
double soju_config_flops_per_token(const soju_model_config *cfg, int T) {
    double n = (double)soju_config_num_params(cfg);
    if (cfg->arch == SOJU_ARCH_GPT2) n -= (double)cfg->max_position_embeddings * cfg->hidden_size;
    double attn = 12.0 * cfg->num_hidden_layers * cfg->num_attention_heads * cfg->head_dim * (double)T;
    return 6.0 * n + attn;
}

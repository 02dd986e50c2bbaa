/* Chat templates: a conversation → ids and a loss mask for SFT.
 *
 * Each message is rendered as prefix(role) content suffix(role). Template
 * text (markers such as <|im_start|>) is encoded with special tokens
 * recognized; message content is encoded with them treated as plain text, so
 * a user cannot inject a role marker. Segment boundaries are token
 * boundaries. The loss mask is 1 on assistant content and on the assistant
 * suffix up to and including its end-of-turn marker (what the model must
 * learn to produce, including when to stop), and 0 elsewhere. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *const role_names[3] = {"system", "user", "assistant"};

int soju_chat_role_parse(const char *name) {
    for (int r = 0; r < 3; r++)
        if (!strcmp(name, role_names[r])) return r;
    return -1;
}

void soju_chat_template_free(soju_chat_template *tpl) {
    free(tpl->name);
    free(tpl->bos);
    for (int r = 0; r < 3; r++) free(tpl->prefix[r]), free(tpl->suffix[r]);
    free(tpl->assistant_end);
    free(tpl->default_system);
    memset(tpl, 0, sizeof *tpl);
}

static void set_roles(soju_chat_template *tpl, const char *pre_fmt, const char *suffix) {
    for (int r = 0; r < 3; r++) {
        soju_buf b = {0};
        soju_buf_printf(&b, pre_fmt, role_names[r]);
        tpl->prefix[r] = b.data;
        tpl->suffix[r] = soju_strdup(suffix);
    }
}

static int from_json(const cJSON *j, const char *path, soju_chat_template *tpl, soju_err *err) {
    int bad = 0;
    tpl->name = soju_strdup(soju_json_str(j, "name", path, &bad));
    tpl->bos = soju_strdup(soju_json_str(j, "bos", "", &bad));
    for (int r = 0; r < 3; r++) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(j, role_names[r]);
        if (!cJSON_IsObject(role))
            return soju_errf(err, SOJU_EFORMAT, "%s: chat template needs a \"%s\" object with prefix and suffix", path,
                             role_names[r]);
        tpl->prefix[r] = soju_strdup(soju_json_str(role, "prefix", "", &bad));
        tpl->suffix[r] = soju_strdup(soju_json_str(role, "suffix", "", &bad));
    }
    const char *end = soju_json_str(j, "assistant_end", NULL, &bad);
    if (!end || !*end)
        return soju_errf(err, SOJU_EFORMAT, "%s: chat template needs \"assistant_end\" (the end-of-turn marker)", path);
    tpl->assistant_end = soju_strdup(end);
    const char *sys = soju_json_str(j, "default_system", NULL, &bad);
    tpl->default_system = sys ? soju_strdup(sys) : NULL;
    if (bad) return soju_errf(err, SOJU_EFORMAT, "%s: chat template fields must be strings", path);
    return SOJU_OK;
}

int soju_chat_template_load(const char *name, soju_chat_template *tpl, soju_err *err) {
    memset(tpl, 0, sizeof *tpl);
    if (!name || !strcmp(name, "chatml")) {
        tpl->name = soju_strdup("chatml");
        tpl->bos = soju_strdup("");
        set_roles(tpl, "<|im_start|>%s\n", "<|im_end|>\n");
        tpl->assistant_end = soju_strdup("<|im_end|>");
        return SOJU_OK;
    }
    if (!strcmp(name, "llama3")) {
        tpl->name = soju_strdup("llama3");
        tpl->bos = soju_strdup("<|begin_of_text|>");
        set_roles(tpl, "<|start_header_id|>%s<|end_header_id|>\n\n", "<|eot_id|>");
        tpl->assistant_end = soju_strdup("<|eot_id|>");
        return SOJU_OK;
    }
    cJSON *j = NULL;
    int rc = soju_str_ends_with(name, ".yaml") || soju_str_ends_with(name, ".yml") ? soju_yaml_load(name, &j, err)
                                                                                   : soju_json_load(name, &j, err);
    if (rc) return soju_err_prefix(err, rc, "chat template '%s' (built in: chatml, llama3)", name);
    rc = from_json(j, name, tpl, err);
    cJSON_Delete(j);
    if (rc) soju_chat_template_free(tpl);
    return rc;
}

static void emit(soju_tok_encoder *e, const char *s, size_t n, int flags, int mask, soju_ids *ids, soju_buf *m) {
    size_t before = ids->len;
    soju_tok_encode(e, s, n, flags, ids);
    if (m)
        for (size_t i = before; i < ids->len; i++) soju_buf_putc(m, (char)mask);
}

int soju_chat_encode(soju_tok_encoder *e, const soju_chat_template *tpl, const soju_chat_msg *msgs, size_t n,
                     int add_generation_prompt, soju_ids *ids, soju_buf *mask, soju_err *err) {
    const soju_tokenizer *t = tok_encoder_tokenizer(e);
    uint32_t end_id = soju_tok_token_to_id(t, tpl->assistant_end);
    if (end_id == SOJU_TOK_NONE || !soju_tok_is_special(t, end_id))
        return soju_errf(err, SOJU_EARG, "chat template %s needs the special token %s, which the tokenizer%s%s lacks",
                         tpl->name, tpl->assistant_end, t->source ? " " : "", t->source ? t->source : "");
    const char *end_in_suffix = strstr(tpl->suffix[SOJU_ROLE_ASSISTANT], tpl->assistant_end);
    if (!end_in_suffix)
        return soju_errf(err, SOJU_EARG, "chat template %s: the assistant suffix does not contain %s", tpl->name,
                         tpl->assistant_end);
    for (size_t i = 0; i < n; i++)
        if (msgs[i].role < 0 || msgs[i].role > 2)
            return soju_errf(err, SOJU_EARG, "message %zu has an unknown role", i);
    const int S = SOJU_ENC_SPECIALS;
    emit(e, tpl->bos, strlen(tpl->bos), S, 0, ids, mask);
    if (tpl->default_system && (n == 0 || msgs[0].role != SOJU_ROLE_SYSTEM)) {
        emit(e, tpl->prefix[0], strlen(tpl->prefix[0]), S, 0, ids, mask);
        emit(e, tpl->default_system, strlen(tpl->default_system), 0, 0, ids, mask);
        emit(e, tpl->suffix[0], strlen(tpl->suffix[0]), S, 0, ids, mask);
    }
    for (size_t i = 0; i < n; i++) {
        int r = msgs[i].role, learn = r == SOJU_ROLE_ASSISTANT;
        emit(e, tpl->prefix[r], strlen(tpl->prefix[r]), S, 0, ids, mask);
        emit(e, msgs[i].content, msgs[i].len, 0, learn, ids, mask);
        const char *suf = tpl->suffix[r];
        if (learn) {
            size_t upto = (size_t)(end_in_suffix - suf) + strlen(tpl->assistant_end);
            emit(e, suf, upto, S, 1, ids, mask);
            emit(e, suf + upto, strlen(suf + upto), S, 0, ids, mask);
        } else {
            emit(e, suf, strlen(suf), S, 0, ids, mask);
        }
    }
    if (add_generation_prompt) {
        const char *p = tpl->prefix[SOJU_ROLE_ASSISTANT];
        emit(e, p, strlen(p), S, 0, ids, mask);
    }
    return SOJU_OK;
}

int soju_chat_messages_from_json(const cJSON *json, soju_chat_msg **out, soju_err *err) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(json, "messages");
    if (cJSON_IsArray(list)) {
        int n = cJSON_GetArraySize(list), k = 0;
        soju_chat_msg *m = soju_calloc((size_t)(n ? n : 1), sizeof *m);
        const cJSON *it;
        cJSON_ArrayForEach(it, list) {
            const char *role = soju_json_str(it, "role", NULL, NULL);
            const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
            int r = role ? soju_chat_role_parse(role) : -1;
            if (r < 0 || !cJSON_IsString(content)) {
                free(m);
                return soju_errf(err, SOJU_EFORMAT,
                                 "messages[%d]: needs a role (system, user, assistant) and a string content", k);
            }
            m[k++] = (soju_chat_msg){r, content->valuestring, strlen(content->valuestring)};
        }
        *out = m;
        return n;
    }
    const char *prompt = soju_json_str(json, "prompt", NULL, NULL), *resp = soju_json_str(json, "response", NULL, NULL);
    if (!prompt || !resp) return soju_errf(err, SOJU_EFORMAT, "neither \"messages\" nor \"prompt\" + \"response\"");
    const char *sys = soju_json_str(json, "system", NULL, NULL);
    soju_chat_msg *m = soju_calloc(3, sizeof *m);
    int k = 0;
    if (sys) m[k++] = (soju_chat_msg){SOJU_ROLE_SYSTEM, sys, strlen(sys)};
    m[k++] = (soju_chat_msg){SOJU_ROLE_USER, prompt, strlen(prompt)};
    m[k++] = (soju_chat_msg){SOJU_ROLE_ASSISTANT, resp, strlen(resp)};
    *out = m;
    return k;
}

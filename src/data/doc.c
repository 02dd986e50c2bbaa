/* Documents: text, the JSON record around it, origin, and serialization. */
#include <stdlib.h>
#include <string.h>

#include "soju/data.h"
#include "soju/text.h"

void soju_doc_init(soju_doc *d, const char *text, size_t n) {
    memset(d, 0, sizeof *d);
    soju_buf_append(&d->text, text, n);
    if (!d->text.data) soju_buf_reserve(&d->text, 1);
    d->modified = 1;
}

void soju_doc_free(soju_doc *d) {
    soju_buf_free(&d->text);
    cJSON_Delete(d->json);
    free(d->raw);
    soju_view_free(&d->view);
    memset(d, 0, sizeof *d);
}

void soju_doc_set_text(soju_doc *d, const char *s, size_t n) {
    soju_buf_clear(&d->text);
    soju_buf_append(&d->text, s, n);
    if (!d->text.data) soju_buf_reserve(&d->text, 1);
    d->modified = 1;
    d->view_ok = 0;
}

const soju_doc_view *soju_doc_view_get(soju_doc *d) {
    if (!d->view_ok) {
        soju_text_view(d->text.data ? d->text.data : "", d->text.len, &d->view);
        d->view_ok = 1;
    }
    return &d->view;
}

void soju_doc_set_field(soju_doc *d, const char *key, cJSON *item) {
    if (!d->json) d->json = cJSON_CreateObject();
    if (cJSON_GetObjectItemCaseSensitive(d->json, key)) cJSON_ReplaceItemInObjectCaseSensitive(d->json, key, item);
    else cJSON_AddItemToObject(d->json, key, item);
    d->modified = 1;
}

/* Write the record with the current text in place of the text field. Only
 * the text is escaped here; other fields go through cJSON. */
void soju_doc_serialize(const soju_doc *d, const char *text_field, soju_buf *out) {
    soju_buf_clear(out);
    if (!d->modified && d->raw) {
        soju_buf_append(out, d->raw, d->raw_len);
        return;
    }
    const char *tf = text_field ? text_field : "text";
    soju_buf_putc(out, '{');
    int first = 1, wrote_text = 0;
    char *tmp = NULL;
    for (const cJSON *it = d->json ? d->json->child : NULL; it; it = it->next) {
        if (!it->string) continue;
        if (!first) soju_buf_putc(out, ',');
        first = 0;
        soju_buf_json_string(out, it->string, strlen(it->string));
        soju_buf_putc(out, ':');
        if (!strcmp(it->string, tf)) {
            soju_buf_json_string(out, d->text.data ? d->text.data : "", d->text.len);
            wrote_text = 1;
        } else {
            tmp = cJSON_PrintUnformatted(it);
            soju_buf_puts(out, tmp ? tmp : "null");
            free(tmp);
        }
    }
    if (!wrote_text) {
        if (!first) soju_buf_putc(out, ',');
        soju_buf_json_string(out, tf, strlen(tf));
        soju_buf_putc(out, ':');
        soju_buf_json_string(out, d->text.data ? d->text.data : "", d->text.len);
    }
    soju_buf_putc(out, '}');
}

/* Hangul share >= 0.3 of letters makes a document Korean (Korean web text is
 * full of Latin brand names and URLs); Latin share >= 0.6 makes it English
 * here (the langid step separates English from other Latin-script text). */
const char *soju_doc_lang(soju_doc *d) {
    if (d->lang[0]) return d->lang;
    const soju_doc_view *v = soju_doc_view_get(d);
    if (v->letters && v->hangul * 10 >= v->letters * 3) return "ko";
    if (v->letters && v->latin * 10 >= v->letters * 6) return "en";
    return "other";
}

/* JSON files through cJSON, with errors that name the file, line and column. */
#include "soju/base.h"

#include <stdlib.h>
#include <string.h>

static void line_col(const char *text, const char *at, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (const char *p = text; p < at && *p; p++) {
        if (*p == '\n') (*line)++, *col = 1;
        else (*col)++;
    }
}

int soju_json_load(const char *path, cJSON **out, soju_err *err) {
    char *text = NULL;
    size_t len = 0;
    int rc = soju_read_file(path, &text, &len, err);
    if (rc) return rc;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j) {
        int line, col;
        line_col(text, end ? end : text, &line, &col);
        free(text);
        return soju_errf(err, SOJU_EFORMAT, "%s:%d:%d: malformed JSON", path, line, col);
    }
    free(text);
    *out = j;
    return SOJU_OK;
}

double soju_json_num(const cJSON *obj, const char *key, double dflt, int *bad) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return dflt;
    if (cJSON_IsNumber(v)) return v->valuedouble;
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    if (bad) *bad = 1;
    return dflt;
}

const char *soju_json_str(const cJSON *obj, const char *key, const char *dflt, int *bad) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return dflt;
    if (cJSON_IsString(v)) return v->valuestring;
    if (bad) *bad = 1;
    return dflt;
}

int soju_json_bool(const cJSON *obj, const char *key, int dflt, int *bad) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return dflt;
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    if (cJSON_IsNumber(v)) return v->valuedouble != 0;
    if (bad) *bad = 1;
    return dflt;
}

int soju_json_save(const char *path, const cJSON *obj, soju_err *err) {
    char *s = cJSON_Print(obj);
    if (!s) return soju_errf(err, SOJU_ENOMEM, "%s: cannot serialize JSON", path);
    size_t n = strlen(s);
    s = soju_realloc(s, n + 2);
    s[n] = '\n';
    s[n + 1] = 0;
    int rc = soju_write_file_atomic(path, s, n + 1, err);
    free(s);
    return rc;
}

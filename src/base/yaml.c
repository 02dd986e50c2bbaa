/* YAML → cJSON through libyaml's event parser. Mappings become objects,
 * sequences arrays; a plain scalar becomes null, a boolean, a number or a
 * string following the YAML 1.2 core schema; quoted scalars stay strings.
 * Anchors and aliases are rejected (configs here have no use for them). */
#include "soju/base.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

static cJSON *plain_scalar(const char *s, size_t n) {
    if (n == 0 || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL"))
        return cJSON_CreateNull();
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) return cJSON_CreateTrue();
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) return cJSON_CreateFalse();
    /* A number must consume the whole scalar. Hex/octal and .inf are left as strings. */
    if (isdigit((unsigned char)s[0]) || ((s[0] == '-' || s[0] == '+' || s[0] == '.') && n > 1)) {
        char *end = NULL;
        double v = strtod(s, &end);
        if (end && *end == 0 && !(n > 1 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')))
            return cJSON_CreateNumber(v);
    }
    return cJSON_CreateString(s);
}

/* Parse one node starting at the event already in *ev. Returns NULL on error. */
static cJSON *parse_node(yaml_parser_t *p, yaml_event_t *ev, const char *name, soju_err *err, int depth);

static int next(yaml_parser_t *p, yaml_event_t *ev, const char *name, soju_err *err) {
    if (!yaml_parser_parse(p, ev)) {
        soju_errf(err, SOJU_EFORMAT, "%s:%zu:%zu: malformed YAML: %s", name, p->problem_mark.line + 1,
                  p->problem_mark.column + 1, p->problem ? p->problem : "parse error");
        return -1;
    }
    return 0;
}

static cJSON *parse_node(yaml_parser_t *p, yaml_event_t *ev, const char *name, soju_err *err, int depth) {
    if (depth > 64) {
        soju_errf(err, SOJU_EFORMAT, "%s:%zu: YAML nested too deeply", name, ev->start_mark.line + 1);
        yaml_event_delete(ev);
        return NULL;
    }
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        const char *s = (const char *)ev->data.scalar.value;
        size_t n = ev->data.scalar.length;
        cJSON *j;
        if (strlen(s) != n) {
            soju_errf(err, SOJU_EFORMAT, "%s:%zu: NUL byte in YAML scalar", name, ev->start_mark.line + 1);
            yaml_event_delete(ev);
            return NULL;
        }
        if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) j = plain_scalar(s, n);
        else j = cJSON_CreateString(s);
        yaml_event_delete(ev);
        return j;
    }
    case YAML_SEQUENCE_START_EVENT: {
        yaml_event_delete(ev);
        cJSON *arr = cJSON_CreateArray();
        for (;;) {
            yaml_event_t e;
            if (next(p, &e, name, err)) { cJSON_Delete(arr); return NULL; }
            if (e.type == YAML_SEQUENCE_END_EVENT) { yaml_event_delete(&e); return arr; }
            cJSON *item = parse_node(p, &e, name, err, depth + 1);
            if (!item) { cJSON_Delete(arr); return NULL; }
            cJSON_AddItemToArray(arr, item);
        }
    }
    case YAML_MAPPING_START_EVENT: {
        yaml_event_delete(ev);
        cJSON *obj = cJSON_CreateObject();
        for (;;) {
            yaml_event_t k;
            if (next(p, &k, name, err)) { cJSON_Delete(obj); return NULL; }
            if (k.type == YAML_MAPPING_END_EVENT) { yaml_event_delete(&k); return obj; }
            if (k.type != YAML_SCALAR_EVENT) {
                soju_errf(err, SOJU_EFORMAT, "%s:%zu: mapping keys must be plain scalars", name,
                          k.start_mark.line + 1);
                yaml_event_delete(&k);
                cJSON_Delete(obj);
                return NULL;
            }
            char *key = soju_strdup((const char *)k.data.scalar.value);
            size_t line = k.start_mark.line + 1;
            yaml_event_delete(&k);
            yaml_event_t v;
            if (next(p, &v, name, err)) { free(key); cJSON_Delete(obj); return NULL; }
            cJSON *val = parse_node(p, &v, name, err, depth + 1);
            if (!val) { free(key); cJSON_Delete(obj); return NULL; }
            if (cJSON_GetObjectItemCaseSensitive(obj, key)) {
                soju_errf(err, SOJU_EFORMAT, "%s:%zu: duplicate key '%s'", name, line, key);
                free(key); cJSON_Delete(val); cJSON_Delete(obj);
                return NULL;
            }
            cJSON_AddItemToObject(obj, key, val);
            free(key);
        }
    }
    case YAML_ALIAS_EVENT:
        soju_errf(err, SOJU_EFORMAT, "%s:%zu: YAML aliases are not supported", name, ev->start_mark.line + 1);
        yaml_event_delete(ev);
        return NULL;
    default:
        soju_errf(err, SOJU_EFORMAT, "%s:%zu: unexpected YAML event", name, ev->start_mark.line + 1);
        yaml_event_delete(ev);
        return NULL;
    }
}

int soju_yaml_parse(const char *text, size_t len, const char *name, cJSON **out, soju_err *err) {
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) return soju_errf(err, SOJU_ENOMEM, "%s: cannot start YAML parser", name);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    cJSON *root = NULL;
    int rc = SOJU_OK;
    yaml_event_t ev;
    /* STREAM-START, DOCUMENT-START, node, DOCUMENT-END, STREAM-END; an empty file is null. */
    if (next(&p, &ev, name, err)) { rc = SOJU_EFORMAT; goto done; }
    yaml_event_delete(&ev);
    if (next(&p, &ev, name, err)) { rc = SOJU_EFORMAT; goto done; }
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        root = cJSON_CreateNull();
        goto done;
    }
    yaml_event_delete(&ev); /* DOCUMENT-START */
    if (next(&p, &ev, name, err)) { rc = SOJU_EFORMAT; goto done; }
    root = parse_node(&p, &ev, name, err, 0);
    if (!root) { rc = SOJU_EFORMAT; goto done; }
    if (next(&p, &ev, name, err)) { rc = SOJU_EFORMAT; goto done; }
    yaml_event_delete(&ev); /* DOCUMENT-END */
    if (next(&p, &ev, name, err)) { rc = SOJU_EFORMAT; goto done; }
    if (ev.type != YAML_STREAM_END_EVENT) {
        rc = soju_errf(err, SOJU_EFORMAT, "%s:%zu: only one YAML document is allowed", name,
                       ev.start_mark.line + 1);
    }
    yaml_event_delete(&ev);
done:
    yaml_parser_delete(&p);
    if (rc) {
        cJSON_Delete(root);
        return rc;
    }
    *out = root;
    return SOJU_OK;
}

int soju_yaml_load(const char *path, cJSON **out, soju_err *err) {
    char *text = NULL;
    size_t len = 0;
    int rc = soju_read_file(path, &text, &len, err);
    if (rc) return rc;
    rc = soju_yaml_parse(text, len, path, out, err);
    free(text);
    return rc;
}

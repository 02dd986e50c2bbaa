/* safetensors read (memory-mapped, validated) and write (atomic).
 * Format: u64 little-endian header size N, N bytes of JSON, then the data
 * buffer; every tensor's data_offsets are relative to the buffer start. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "soju/io.h"

static const char *dtype_names[SOJU_DT_COUNT] = {"F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"};
static const size_t dtype_sizes[SOJU_DT_COUNT] = {4, 2, 2, 8, 8, 4, 2, 1, 1, 1};

const char *soju_dtype_name(soju_dtype d) { return (unsigned)d < SOJU_DT_COUNT ? dtype_names[d] : "?"; }
size_t soju_dtype_size(soju_dtype d) { return (unsigned)d < SOJU_DT_COUNT ? dtype_sizes[d] : 0; }
int soju_dtype_parse(const char *name) {
    for (int i = 0; i < SOJU_DT_COUNT; i++)
        if (!strcmp(name, dtype_names[i])) return i;
    return -1;
}

/* ---------------------------------------------------------------- half floats */

float soju_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t soju_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fff + ((u >> 16) & 1);                                           /* round to nearest even */
    return (uint16_t)(u >> 16);
}

float soju_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {
        if (man == 0) u = sign;
        else { /* subnormal: value = man * 2^-24 */
            float f = ldexpf((float)man, -24);
            memcpy(&u, &f, 4);
            u |= sign;
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000 | (man << 13);
    } else {
        u = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t soju_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffff;
    if (a > 0x7f800000) return sign | 0x7e00;
    if (a >= 0x477ff000) return sign | 0x7c00; /* overflow to infinity */
    if (a < 0x38800000) {                      /* subnormal or zero */
        float af;
        memcpy(&af, &a, 4);
        return sign | (uint16_t)lrintf(af * 16777216.0f);
    }
    uint32_t r = a + 0xfff + ((a >> 13) & 1) - (112u << 23);
    return sign | (uint16_t)(r >> 13);
}

/* ---------------------------------------------------------------- reader */

static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

void soju_st_close(soju_safetensors *st) {
    for (int i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    free(st->tensors);
    cJSON_Delete(st->metadata);
    if (st->map.data) soju_mmap_close(&st->map);
    free(st->path);
    memset(st, 0, sizeof *st);
}

static int bad(soju_safetensors *st, soju_err *err, const char *name, const char *tensor, const char *what) {
    soju_errf(err, SOJU_EFORMAT, "%s: %s%s%s", name, tensor ? "tensor \"" : "", tensor ? tensor : "",
              tensor ? "\": " : "");
    size_t l = strlen(err ? err->msg : "");
    if (err) snprintf(err->msg + l, sizeof err->msg - l, "%s", what);
    soju_mmap m = st->map;
    st->map.data = NULL;
    soju_st_close(st);
    st->map = m;
    return SOJU_EFORMAT;
}

int soju_st_parse(soju_safetensors *st, const uint8_t *data, size_t len, const char *name, soju_err *err) {
    soju_mmap keep = st->map;
    memset(st, 0, sizeof *st);
    st->map = keep;
    if (len < 8) return bad(st, err, name, NULL, "truncated safetensors file (no header size)");
    uint64_t hlen = get64(data);
    if (hlen > len - 8) return bad(st, err, name, NULL, "truncated safetensors file (header runs past the end)");
    if (hlen > (100u << 20)) return bad(st, err, name, NULL, "safetensors header larger than 100 MB");
    const char *htext = (const char *)data + 8;
    const uint8_t *buf = data + 8 + hlen;
    size_t buf_len = len - 8 - hlen;
    cJSON *root = cJSON_ParseWithLength(htext, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return bad(st, err, name, NULL, "safetensors header is not a JSON object");
    }
    int n = cJSON_GetArraySize(root);
    st->tensors = soju_calloc((size_t)n + 1, sizeof *st->tensors);
    for (cJSON *it = root->child; it; it = it->next) {
        if (!it->string) continue;
        /* JSON objects with repeated keys are ambiguous; the format forbids them. */
        for (cJSON *prev = root->child; prev != it; prev = prev->next) {
            if (prev->string && !strcmp(prev->string, it->string)) {
                char tname[128];
                snprintf(tname, sizeof tname, "%s", it->string);
                cJSON_Delete(root);
                return bad(st, err, name, tname, "appears twice in the header");
            }
        }
        if (!strcmp(it->string, "__metadata__")) {
            if (!cJSON_IsObject(it)) {
                cJSON_Delete(root);
                return bad(st, err, name, NULL, "__metadata__ is not an object");
            }
            st->metadata = cJSON_Duplicate(it, 1);
            continue;
        }
        const char *tn = it->string;
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(it, "shape");
        const cJSON *offs = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        const char *why = NULL;
        int d = -1;
        soju_st_tensor t = {0};
        if (!cJSON_IsObject(it)) why = "entry is not an object";
        else if (!cJSON_IsString(dt) || (d = soju_dtype_parse(dt->valuestring)) < 0) why = "missing or unknown dtype";
        else if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) > SOJU_MAX_DIMS) why = "bad shape";
        else if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2) why = "bad data_offsets";
        if (!why) {
            t.dtype = (soju_dtype)d;
            size_t numel = 1;
            for (cJSON *s = shape->child; s && !why; s = s->next) {
                if (!cJSON_IsNumber(s) || s->valuedouble < 0 || s->valuedouble > 9.0e15 ||
                    s->valuedouble != (double)(int64_t)s->valuedouble)
                    why = "bad shape";
                else {
                    int64_t v = (int64_t)s->valuedouble;
                    t.shape[t.ndim++] = v;
                    if (v && numel > SIZE_MAX / (size_t)v) why = "shape too large";
                    else numel *= (size_t)v;
                }
            }
            double b = cJSON_GetArrayItem(offs, 0)->valuedouble, e = cJSON_GetArrayItem(offs, 1)->valuedouble;
            if (!why && (!cJSON_IsNumber(cJSON_GetArrayItem(offs, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(offs, 1)) ||
                         b < 0 || e < b || e > (double)buf_len || b != (double)(size_t)b || e != (double)(size_t)e))
                why = "data_offsets outside the data buffer";
            if (!why && numel > SIZE_MAX / soju_dtype_size(t.dtype)) why = "shape too large";
            if (!why && (size_t)e - (size_t)b != numel * soju_dtype_size(t.dtype))
                why = "data_offsets length does not match shape and dtype";
            if (!why) {
                t.nbytes = (size_t)e - (size_t)b;
                t.data = buf + (size_t)b;
            }
        }
        if (why) {
            char tname[128];
            snprintf(tname, sizeof tname, "%s", tn);
            cJSON_Delete(root);
            return bad(st, err, name, tname, why);
        }
        t.name = soju_strdup(tn);
        st->tensors[st->n_tensors++] = t;
    }
    cJSON_Delete(root);
    st->path = soju_strdup(name);
    return SOJU_OK;
}

int soju_st_open(soju_safetensors *st, const char *path, soju_err *err) {
    memset(st, 0, sizeof *st);
    int rc = soju_mmap_open(&st->map, path, err);
    if (rc) return rc;
    rc = soju_st_parse(st, st->map.data, st->map.len, path, err);
    if (rc) soju_mmap_close(&st->map);
    return rc;
}

const soju_st_tensor *soju_st_find(const soju_safetensors *st, const char *name) {
    for (int i = 0; i < st->n_tensors; i++)
        if (!strcmp(st->tensors[i].name, name)) return &st->tensors[i];
    return NULL;
}

int soju_st_read_f32(const soju_safetensors *st, const char *name, float *out, size_t count, soju_err *err) {
    const soju_st_tensor *t = soju_st_find(st, name);
    if (!t) return soju_errf(err, SOJU_EFORMAT, "%s: missing tensor \"%s\"", st->path, name);
    size_t es = soju_dtype_size(t->dtype), numel = t->nbytes / (es ? es : 1);
    if (numel != count)
        return soju_errf(err, SOJU_EFORMAT, "%s: tensor \"%s\" has %zu elements, expected %zu", st->path, name, numel,
                         count);
    switch (t->dtype) {
    case SOJU_DT_F32: memcpy(out, t->data, count * 4); break;
    case SOJU_DT_BF16:
        for (size_t i = 0; i < count; i++) {
            uint16_t h;
            memcpy(&h, t->data + 2 * i, 2);
            out[i] = soju_bf16_to_f32(h);
        }
        break;
    case SOJU_DT_F16:
        for (size_t i = 0; i < count; i++) {
            uint16_t h;
            memcpy(&h, t->data + 2 * i, 2);
            out[i] = soju_f16_to_f32(h);
        }
        break;
    default:
        return soju_errf(err, SOJU_EUNSUP, "%s: tensor \"%s\" has dtype %s, expected a float type", st->path, name,
                         soju_dtype_name(t->dtype));
    }
    return SOJU_OK;
}

/* ---------------------------------------------------------------- writer */

int soju_st_write(const char *path, const soju_st_tensor *tensors, int n, const cJSON *metadata, soju_err *err) {
    soju_buf h = {0};
    soju_buf_putc(&h, '{');
    if (metadata) {
        char *m = cJSON_PrintUnformatted(metadata);
        soju_buf_printf(&h, "\"__metadata__\":%s", m);
        free(m);
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const soju_st_tensor *t = &tensors[i];
        if (h.len > 1) soju_buf_putc(&h, ',');
        soju_buf_json_string(&h, t->name, strlen(t->name));
        soju_buf_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", soju_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++) soju_buf_printf(&h, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        soju_buf_printf(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + t->nbytes);
        off += t->nbytes;
    }
    soju_buf_putc(&h, '}');
    while (h.len % 8) soju_buf_putc(&h, ' '); /* the data buffer starts 8-byte aligned */
    soju_afile f;
    int rc = soju_afile_open(&f, path, err);
    if (rc) {
        soju_buf_free(&h);
        return rc;
    }
    uint64_t hl = h.len;
    int ok = fwrite(&hl, 8, 1, f.fp) == 1 && fwrite(h.data, 1, h.len, f.fp) == h.len;
    for (int i = 0; ok && i < n; i++)
        ok = tensors[i].nbytes == 0 || fwrite(tensors[i].data, 1, tensors[i].nbytes, f.fp) == tensors[i].nbytes;
    soju_buf_free(&h);
    if (!ok) {
        soju_errf(err, SOJU_EIO, "%s: write failed: %s", path, strerror(errno));
        soju_afile_abort(&f);
        return SOJU_EIO;
    }
    return soju_afile_commit(&f, err);
}

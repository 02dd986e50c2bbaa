/* SentencePiece .model files: a protobuf ModelProto read field by field.
 *
 *   ModelProto      1: repeated SentencePiece pieces, 2: TrainerSpec, 3: NormalizerSpec
 *   SentencePiece   1: piece (string), 2: score (float), 3: type (1 normal, 2 unknown,
 *                   3 control, 4 user-defined, 5 unused, 6 byte)
 *   TrainerSpec     3: model_type (1 unigram, 2 BPE), 35: byte_fallback
 *   NormalizerSpec  1: name, 3: add_dummy_prefix (default true),
 *                   4: remove_extra_whitespaces (default true), 5: escape_whitespaces
 *
 * BPE in SentencePiece merges the adjacent pair whose concatenation is the
 * piece with the highest score, leftmost on ties; as ranks (dense, by score)
 * that is the same rule as every other BPE here. Only BPE models with the
 * identity normalizer are supported (Llama 2's shape); unigram models and
 * precompiled normalization tables are refused by name. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct pb {
    const uint8_t *p, *end;
} pb;

static int pb_varint(pb *b, uint64_t *v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end) return -1;
        uint8_t c = *b->p++;
        *v |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) return 0;
    }
    return -1;
}

/* Next field: its number, wire type, and for wire type 2 the sub-buffer; for 0 the varint; for 5 the 4 bytes. */
typedef struct pb_field {
    uint32_t num, wire;
    uint64_t varint;
    uint32_t fixed32;
    pb sub;
} pb_field;

static int pb_next(pb *b, pb_field *f) {
    uint64_t key;
    if (pb_varint(b, &key)) return -1;
    f->num = (uint32_t)(key >> 3);
    f->wire = (uint32_t)(key & 7);
    switch (f->wire) {
    case 0: return pb_varint(b, &f->varint);
    case 1:
        if (b->end - b->p < 8) return -1;
        b->p += 8;
        return 0;
    case 2: {
        uint64_t n;
        if (pb_varint(b, &n) || n > (uint64_t)(b->end - b->p)) return -1;
        f->sub.p = b->p;
        f->sub.end = b->p + n;
        b->p += n;
        return 0;
    }
    case 5:
        if (b->end - b->p < 4) return -1;
        memcpy(&f->fixed32, b->p, 4);
        b->p += 4;
        return 0;
    default: return -1;
    }
}

typedef struct spm_piece {
    char *piece;
    float score;
    int type;
} spm_piece;

typedef struct spm_model {
    spm_piece *pieces;
    size_t n;
    int model_type, byte_fallback;
    int add_dummy_prefix, remove_extra_ws, escape_ws;
    char *norm_name;
    size_t charsmap_len;
} spm_model;

static int parse_piece(pb b, spm_piece *out) {
    out->piece = NULL;
    out->score = 0;
    out->type = 1;
    pb_field f;
    while (b.p < b.end) {
        if (pb_next(&b, &f)) return -1;
        if (f.num == 1 && f.wire == 2) {
            free(out->piece);
            out->piece = soju_strndup((const char *)f.sub.p, (size_t)(f.sub.end - f.sub.p));
        } else if (f.num == 2 && f.wire == 5) {
            memcpy(&out->score, &f.fixed32, 4);
        } else if (f.num == 3 && f.wire == 0) {
            out->type = (int)f.varint;
        }
    }
    return out->piece ? 0 : -1;
}

static int parse_model(const uint8_t *data, size_t len, spm_model *m) {
    memset(m, 0, sizeof *m);
    m->model_type = 1;
    m->add_dummy_prefix = m->remove_extra_ws = m->escape_ws = 1;
    pb b = {data, data + len};
    pb_field f;
    size_t cap = 0;
    while (b.p < b.end) {
        if (pb_next(&b, &f)) return -1;
        if (f.num == 1 && f.wire == 2) {
            if (m->n == cap) cap = cap ? 2 * cap : 1024, m->pieces = soju_realloc(m->pieces, cap * sizeof *m->pieces);
            if (parse_piece(f.sub, &m->pieces[m->n])) {
                free(m->pieces[m->n].piece);
                return -1;
            }
            m->n++;
        } else if (f.num == 2 && f.wire == 2) {
            pb s = f.sub;
            pb_field g;
            while (s.p < s.end) {
                if (pb_next(&s, &g)) return -1;
                if (g.num == 3 && g.wire == 0) m->model_type = (int)g.varint;
                if (g.num == 35 && g.wire == 0) m->byte_fallback = g.varint != 0;
            }
        } else if (f.num == 3 && f.wire == 2) {
            pb s = f.sub;
            pb_field g;
            while (s.p < s.end) {
                if (pb_next(&s, &g)) return -1;
                if (g.num == 1 && g.wire == 2) {
                    free(m->norm_name);
                    m->norm_name = soju_strndup((const char *)g.sub.p, (size_t)(g.sub.end - g.sub.p));
                }
                if (g.num == 2 && g.wire == 2) m->charsmap_len = (size_t)(g.sub.end - g.sub.p);
                if (g.num == 3 && g.wire == 0) m->add_dummy_prefix = g.varint != 0;
                if (g.num == 4 && g.wire == 0) m->remove_extra_ws = g.varint != 0;
                if (g.num == 5 && g.wire == 0) m->escape_ws = g.varint != 0;
            }
        }
    }
    return 0;
}

static void free_model(spm_model *m) {
    for (size_t i = 0; i < m->n; i++) free(m->pieces[i].piece);
    free(m->pieces);
    free(m->norm_name);
}

/* Dense rank by descending score: equal scores share a rank. */
typedef struct by_score {
    float score;
    uint32_t id;
} by_score;

static int cmp_score(const void *pa, const void *pb_) {
    const by_score *a = pa, *b = pb_;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

int soju_tok_parse_spm(const uint8_t *data, size_t len, const char *name, soju_tokenizer **out, soju_err *err) {
    spm_model m;
    if (parse_model(data, len, &m)) {
        free_model(&m);
        return soju_errf(err, SOJU_EFORMAT, "%s: malformed SentencePiece model (protobuf)", name);
    }
    int rc = SOJU_OK;
    if (!m.n) rc = soju_errf(err, SOJU_EFORMAT, "%s: SentencePiece model without pieces", name);
    else if (m.model_type != 2)
        rc = soju_errf(err, SOJU_EUNSUP, "%s: SentencePiece model type %d is not supported (only BPE = 2)", name,
                       m.model_type);
    else if (m.charsmap_len && m.norm_name && strcmp(m.norm_name, "identity"))
        rc = soju_errf(err, SOJU_EUNSUP, "%s: SentencePiece normalizer '%s' is not supported (only identity)", name,
                       m.norm_name);
    else if (!m.escape_ws)
        rc = soju_errf(err, SOJU_EUNSUP, "%s: SentencePiece without whitespace escaping is not supported", name);
    if (rc) {
        free_model(&m);
        return rc;
    }
    soju_tokenizer *t = tok_new(TOK_KIND_SPM);
    t->source = soju_strdup(name);
    t->byte_fallback = m.byte_fallback;
    t->add_dummy_prefix = m.add_dummy_prefix;
    t->spm_remove_extra_ws = m.remove_extra_ws;
    soju_buf dec = {0};
    by_score *order = soju_malloc(m.n * sizeof *order);
    size_t n_order = 0;
    for (size_t i = 0; i < m.n; i++) {
        const spm_piece *p = &m.pieces[i];
        uint32_t id = (uint32_t)i;
        size_t n = strlen(p->piece);
        if (p->type == 6 && p->piece[0] == '<' && n == 6) { /* <0xNN> */
            uint8_t c = (uint8_t)strtol(p->piece + 3, NULL, 16);
            tok_set(t, id, p->piece, NULL, 0, &c, 1, TOKF_BYTE);
        } else if (p->type == 2 || p->type == 3 || p->type == 4) {
            tok_set(t, id, p->piece, NULL, 0, p->piece, n, TOKF_CONTROL);
            if (p->type == 2) t->unk_id = id;
            else tok_add_special(t, id);
        } else if (p->type == 5) {
            tok_set(t, id, p->piece, NULL, 0, "", 0, TOKF_CONTROL);
        } else {
            tok_spm_piece_bytes(p->piece, n, &dec);
            tok_set(t, id, p->piece, p->piece, n, dec.data, dec.len, 0);
            order[n_order++] = (by_score){p->score, id};
        }
    }
    if (n_order) qsort(order, n_order, sizeof *order, cmp_score);
    uint32_t *rank_of = soju_calloc(t->n_ids, sizeof *rank_of);
    uint32_t rank = 0;
    for (size_t i = 0; i < n_order; i++) {
        if (i && order[i].score != order[i - 1].score) rank++;
        rank_of[order[i].id] = rank;
    }
    tok_merges_from_ranks(t, rank_of);
    free(rank_of);
    free(order);
    soju_buf_free(&dec);
    free_model(&m);
    if (t->unk_id != SOJU_TOK_NONE) t->role[SOJU_TOK_UNK] = t->unk_id;
    rc = tok_finish(t, err);
    if (rc) {
        soju_tok_free(t);
        return rc;
    }
    *out = t;
    return SOJU_OK;
}

int soju_tok_load_spm(const char *path, soju_tokenizer **out, soju_err *err) {
    char *data;
    size_t len;
    int rc = soju_read_file(path, &data, &len, err);
    if (rc) return rc;
    rc = soju_tok_parse_spm((const uint8_t *)data, len, path, out, err);
    free(data);
    return rc;
}

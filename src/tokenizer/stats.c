/* Tokenization statistics per language: tokens per character (fertility)
 * and bytes per token (compression), with documents sorted into Korean,
 * English and other by the script of their letters. */
#include "internal.h"

int soju_tok_doc_language(const char *text, size_t n) {
    soju_script_stats st = {0};
    soju_script_count(text, n, &st);
    if (st.hangul && 2 * st.hangul >= st.letters) return SOJU_LANG_KO;
    if (st.latin && 2 * st.latin >= st.letters) return SOJU_LANG_EN;
    return SOJU_LANG_OTHER;
}

void soju_tok_stats_add(soju_tok_encoder *e, const char *text, size_t n, soju_tok_stats *st) {
    soju_script_stats sc = {0};
    soju_script_count(text, n, &sc);
    int lang = SOJU_LANG_OTHER;
    if (sc.hangul && 2 * sc.hangul >= sc.letters) lang = SOJU_LANG_KO;
    else if (sc.latin && 2 * sc.latin >= sc.letters) lang = SOJU_LANG_EN;
    soju_ids ids = {0};
    soju_tok_encode(e, text, n, 0, &ids);
    int langs[2] = {lang, SOJU_LANG_ALL};
    for (int k = 0; k < 2; k++) {
        st->docs[langs[k]]++;
        st->chars[langs[k]] += sc.chars;
        st->bytes[langs[k]] += n;
        st->tokens[langs[k]] += ids.len;
    }
    st->hangul += sc.hangul;
    st->latin += sc.latin;
    st->letters += sc.letters;
    soju_ids_free(&ids);
}

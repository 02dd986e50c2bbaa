/* UTF-8, normalization, character classes and regular expressions. */
#include <utf8proc.h>

#include "soju/text.h"
#include "test.h"

TEST(utf8_decode_rejects_invalid) {
    uint32_t cp;
    CHECK_EQ_INT(soju_utf8_decode((const uint8_t *)"\xed\x95\x9c", 3, &cp), 3); /* 한 */
    CHECK_EQ_INT(cp, 0xD55C);
    CHECK_EQ_INT(soju_utf8_decode((const uint8_t *)"\xc0\xaf", 2, &cp), 0);     /* overlong '/' */
    CHECK_EQ_INT(soju_utf8_decode((const uint8_t *)"\xed\xa0\x80", 3, &cp), 0); /* surrogate */
    CHECK_EQ_INT(soju_utf8_decode((const uint8_t *)"\xf4\x90\x80\x80", 4, &cp), 0); /* > U+10FFFF */
    CHECK_EQ_INT(soju_utf8_decode((const uint8_t *)"\xe2\x82", 2, &cp), 0);     /* truncated */
    uint8_t out[4];
    for (uint32_t c = 0; c < 0x110000; c += 97) {
        if (c >= 0xD800 && c <= 0xDFFF) continue;
        int n = soju_utf8_encode(c, out);
        uint32_t back;
        CHECK(soju_utf8_decode(out, (size_t)n, &back) == n && back == c);
    }
    const char *s = "ok \xff bad \xe2\x82 end";
    CHECK_EQ_INT(soju_utf8_validate((const uint8_t *)s, strlen(s)), 3);
    soju_buf b = {0};
    CHECK_EQ_INT(soju_utf8_repair((const uint8_t *)s, strlen(s), &b), 3);
    CHECK_EQ_INT(soju_utf8_validate((const uint8_t *)b.data, b.len), b.len);
    soju_buf_free(&b);
    CHECK_EQ_INT(soju_utf8_length((const uint8_t *)"a한b", 5), 3);
}

TEST(normalize_nfc_nfkc) {
    soju_buf out = {0};
    soju_err err;
    /* Decomposed jamo ᄒ ᅡ ᆫ compose to the syllable 한 under NFC. */
    CHECK_OK(soju_normalize("\xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab", 9, SOJU_NORM_NFC, &out, &err));
    CHECK_STR(out.data, "한");
    /* NFKC folds full-width letters and the ㈜ ligature. */
    CHECK_OK(soju_normalize("ＡＢＣ㈜", strlen("ＡＢＣ㈜"), SOJU_NORM_NFKC, &out, &err));
    CHECK_STR(out.data, "ABC(주)");
    CHECK_OK(soju_normalize("ＡＢＣ", strlen("ＡＢＣ"), SOJU_NORM_NFC, &out, &err));
    CHECK_STR(out.data, "ＡＢＣ");
    CHECK(soju_normalize("\xff", 1, SOJU_NORM_NFC, &out, &err) != 0);
    CHECK_EQ_INT(soju_norm_parse("NFKC"), SOJU_NORM_NFKC);
    CHECK_EQ_INT(soju_norm_parse("xx"), -1);
    soju_buf_free(&out);
}

TEST(script_counts) {
    soju_script_stats st = {0};
    const char *s = "한국어 text 123! 漢字 ㅋㅋ";
    soju_script_count(s, strlen(s), &st);
    CHECK_EQ_INT(st.hangul, 5); /* 3 syllables + 2 jamo */
    CHECK_EQ_INT(st.latin, 4);
    CHECK_EQ_INT(st.digits, 3);
    CHECK_EQ_INT(st.han, 2);
    CHECK_EQ_INT(st.punct, 1);
    CHECK_EQ_INT(st.spaces, 4);
    CHECK(soju_is_control(0x200B) || soju_is_control(0xFEFF));
    CHECK(!soju_is_control('\n'));
}

TEST(regex_unicode_classes_and_invalid_bytes) {
    soju_regex *re;
    soju_err err;
    CHECK_OK(soju_regex_compile(&re, "\\p{L}+", 0, &err));
    soju_regex_match *m = soju_regex_match_new(re);
    const char *s = "abc 한국 \xff 123 déf";
    size_t a, b, pos = 0, n = strlen(s);
    const char *want[] = {"abc", "한국", "déf"};
    int k = 0;
    while (soju_regex_find(re, m, s, n, pos, &a, &b) == 1) {
        CHECK(k < 3 && b - a == strlen(want[k]) && !memcmp(s + a, want[k], b - a));
        k++;
        pos = b;
    }
    CHECK_EQ_INT(k, 3);
    CHECK_EQ_INT(soju_regex_count(re, m, s, n), 3);
    soju_regex_match_free(m);
    soju_regex_free(re);
    CHECK(soju_regex_compile(&re, "(unclosed", 0, &err) == SOJU_EARG);
    CHECK(strstr(err.msg, "unclosed") != NULL);
}

/* NFC's shortcut for text of inert characters agrees with utf8proc on random
 * mixes of inert characters and ones that compose or reorder: conjoining
 * jamo after a syllable (가 + ᆨ = 각), combining marks, Tamil and Bengali
 * vowel signs that compose with a preceding letter, singletons (U+2000). */
TEST(normalize_nfc_shortcut_agrees) {
    static const uint32_t pool[] = {'a', ' ', '\n', 0xA0, 0xBF, 0xD7, 0xE9, 0x2010, 0x2019, 0x205E, 0x3000, 0x3029,
                                    0x302A, 0x3131, 0x318E, 0x4E00, 0x9FFF, 0xAC00, 0xAC01, 0xD7A3, 0xFF01, 0xFF5E,
                                    0x1100, 0x1161, 0x11A8, 0x0301, 0x0065, 0x0BC6, 0x0BBE, 0x09C7, 0x09BE, 0x2000,
                                    0x212B, 0x1E0A, 0x0323};
    soju_rng r;
    soju_rng_seed(&r, 11);
    soju_buf s = {0}, out = {0};
    soju_err err;
    for (int t = 0; t < 3000; t++) {
        soju_buf_clear(&s);
        int len = 1 + (int)soju_rng_below(&r, 6);
        for (int k = 0; k < len; k++) {
            uint8_t b[4];
            int m = soju_utf8_encode(pool[soju_rng_below(&r, sizeof pool / sizeof pool[0])], b);
            soju_buf_append(&s, b, (size_t)m);
        }
        utf8proc_uint8_t *ref = utf8proc_NFC((const utf8proc_uint8_t *)s.data);
        CHECK_OK(soju_normalize(s.data, s.len, SOJU_NORM_NFC, &out, &err));
        CHECK(ref && out.len == strlen((const char *)ref) && !memcmp(out.data, ref, out.len));
        free(ref);
    }
    soju_buf_free(&s);
    soju_buf_free(&out);
}

TEST_MAIN(utf8_decode_rejects_invalid, normalize_nfc_nfkc, normalize_nfc_shortcut_agrees, script_counts, regex_unicode_classes_and_invalid_bytes)

/* Hand-made positive and negative cases for every data rule. */
#include <string.h>

#include "soju/data.h"
#include "test.h"

/* Run one step (built from YAML settings) on a text; return KEEP/DROP and the rule. */
static int run_step(const char *kind, const char *yaml, const char *text, char *rule, soju_doc *out) {
    soju_err err = {{0}};
    cJSON *cfg = NULL;
    if (yaml && soju_yaml_parse(yaml, strlen(yaml), "test", &cfg, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    soju_step *s;
    if (soju_step_create(&s, kind, cfg, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        cJSON_Delete(cfg);
        return -1;
    }
    soju_doc d;
    soju_doc_init(&d, text, strlen(text));
    soju_verdict v;
    int rc = soju_step_run1(s, &d, &v);
    if (rule) snprintf(rule, 64, "%s", rc == SOJU_DROP ? soju_step_rule_name(s, v.rule) : "");
    if (out) *out = d;
    else soju_doc_free(&d);
    soju_step_free(s);
    cJSON_Delete(cfg);
    return rc;
}

static char *repeat(const char *unit, int n) {
    soju_buf b = {0};
    for (int i = 0; i < n; i++) soju_buf_puts(&b, unit);
    return b.data;
}

static const char *EN_GOOD =
    "The committee met on Tuesday to review the budget for the coming year. Members agreed that the library "
    "should have longer opening hours, and that the park needs new benches with shade. The mayor said the "
    "plan was fair to everyone in town. Several residents spoke about the bus routes and asked for a stop "
    "near the school. The next meeting will be held in March, and the minutes will be posted online for "
    "anyone who wants to read them before then.";

static const char *KO_GOOD =
    "서울시는 내년 예산안을 발표하면서 도서관 운영 시간을 늘리고 공원에 그늘막을 설치하겠다고 밝혔다. "
    "시민들은 버스 노선을 조정해 학교 근처에 정류장을 만들어 달라고 요청했다. 시장은 이번 계획이 모든 "
    "시민에게 공정하다고 말했다. 위원회는 다음 달에 다시 회의를 열어 세부 사항을 논의할 예정이다. "
    "회의록은 누구나 읽을 수 있도록 홈페이지에 공개된다. 또한 시는 노인과 어린이를 위한 복지 시설을 "
    "확충하기 위해 별도의 예산을 마련했다고 설명했다. 이는 지난해보다 크게 늘어난 규모다.";

TEST(gopher_quality) {
    char rule[64];
    CHECK_EQ_INT(run_step("gopher_quality", NULL, EN_GOOD, rule, NULL), SOJU_KEEP);
    CHECK_EQ_INT(run_step("gopher_quality", NULL, KO_GOOD, rule, NULL), SOJU_KEEP);
    CHECK_EQ_INT(run_step("gopher_quality", NULL, "The cat sat on the mat with the dog.", rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "min_words");
    char *t = repeat("the #marketing and #business of #strategy to #growth that #people have with #results ", 10);
    CHECK_EQ_INT(run_step("gopher_quality", NULL, t, rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "hash_ratio");
    free(t);
    t = repeat("- the item of the list and that to be with have\n", 12);
    CHECK_EQ_INT(run_step("gopher_quality", NULL, t, rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "bullet_lines");
    free(t);
    t = repeat("the story of the town and that to be with have...\n", 12);
    CHECK_EQ_INT(run_step("gopher_quality", NULL, t, rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "ellipsis_lines");
    free(t);
    t = repeat("the... history of... and that... people to be... with have... ", 12);
    CHECK_EQ_INT(run_step("gopher_quality", NULL, t, rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "ellipsis_ratio");
    free(t);
    t = repeat("12 34 56 78 90 the and of 11 22 ", 10);
    CHECK_EQ_INT(run_step("gopher_quality", "{min_mean_word_length: 0}", t, rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "alpha_words");
    free(t);
    t = repeat("apple banana cherry grape lemon mango peach melon plum kiwi ", 8);
    CHECK_EQ_INT(run_step("gopher_quality", NULL, t, rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "stop_words");
    free(t);
    t = repeat("a b c d e f g h i j the and of ", 8);
    CHECK_EQ_INT(run_step("gopher_quality", NULL, t, rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "mean_word_length_low");
    free(t);
    /* Korean: particles-only keyword soup has no function eojeol. */
    t = repeat("강남역 맛집 추천 데이트 코스 분위기 좋은 곳 ", 10);
    CHECK_EQ_INT(run_step("gopher_quality", NULL, t, rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "stop_words");
    free(t);
    /* Per-language override and configuration errors. */
    CHECK_EQ_INT(run_step("gopher_quality", "{en: {min_words: 5}}", "The cat sat on the mat with the dog.", rule, NULL),
                 SOJU_KEEP);
    CHECK_EQ_INT(run_step("gopher_quality", "{min_wrods: 5}", EN_GOOD, rule, NULL), -1);
    CHECK_EQ_INT(run_step("gopher_quality", "{min_words: -1}", EN_GOOD, rule, NULL), -1);
}

TEST(gopher_repetition) {
    char rule[64];
    CHECK_EQ_INT(run_step("gopher_repetition", NULL, EN_GOOD, rule, NULL), SOJU_KEEP);
    CHECK_EQ_INT(run_step("gopher_repetition", NULL, KO_GOOD, rule, NULL), SOJU_KEEP);
    char *t = repeat("Buy cheap shoes here\nBest shoes in town\n", 6);
    CHECK_EQ_INT(run_step("gopher_repetition", NULL, t, rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "dup_line_frac");
    free(t);
    t = repeat("Buy cheap shoes here\n\n", 5);
    CHECK_EQ_INT(run_step("gopher_repetition", NULL, t, rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "dup_para_frac");
    free(t);
    char big[4096];
    snprintf(big, sizeof big, "%s lorem lorem lorem lorem lorem lorem lorem lorem lorem lorem lorem lorem lorem "
                              "lorem lorem lorem lorem lorem lorem lorem lorem lorem lorem lorem", EN_GOOD);
    CHECK_EQ_INT(run_step("gopher_repetition", NULL, big, rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "top_2_gram");
    snprintf(big, sizeof big, "%s one two three four five six seven eight nine ten one two three four five six seven "
                              "eight nine ten one two three four five six seven eight nine ten", EN_GOOD);
    CHECK_EQ_INT(run_step("gopher_repetition", "{top_2_gram: 0, top_3_gram: 0, top_4_gram: 0}", big, rule, NULL),
                 SOJU_DROP);
    CHECK(!strncmp(rule, "dup_", 4));
    /* No words, one word: nothing to count (the fuzzer found "\n" once). */
    CHECK_EQ_INT(run_step("gopher_repetition", NULL, "\n", rule, NULL), SOJU_KEEP);
    CHECK_EQ_INT(run_step("gopher_repetition", NULL, "word", rule, NULL), SOJU_KEEP);
}

TEST(c4) {
    char rule[64];
    soju_doc d;
    const char *page = "Welcome to our site. We sell shoes. Read our privacy policy here.\n"
                       "Enable javascript to continue\n"
                       "Menu\n"
                       "Our shoes are made by hand in small workshops. Each pair takes two days.[1] We ship to every country.\n"
                       "Customers love the fit and the price. Returns are free for thirty days.";
    CHECK_EQ_INT(run_step("c4", NULL, page, rule, &d), SOJU_KEEP);
    CHECK(!strstr(d.text.data, "privacy"));
    CHECK(!strstr(d.text.data, "javascript"));
    CHECK(!strstr(d.text.data, "Menu"));
    CHECK(!strstr(d.text.data, "[1]"));
    CHECK(strstr(d.text.data, "workshops") != NULL);
    soju_doc_free(&d);
    CHECK_EQ_INT(run_step("c4", NULL, "Lorem ipsum dolor sit amet. One. Two. Three. Four. Five.", rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "lorem_ipsum");
    CHECK_EQ_INT(run_step("c4", NULL, "function f() { return 1; } is code. a b c. d e f. g h i. j k l.", rule, NULL),
                 SOJU_DROP);
    CHECK_STR(rule, "curly_bracket");
    CHECK_EQ_INT(run_step("c4", NULL, "Only one sentence here.", rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "too_few_sentences");
    /* The terminal punctuation rule (off by default, as in FineWeb). */
    CHECK_EQ_INT(run_step("c4", "{terminal_punct: 1, min_sentences: 1}", "A line without an end\nA proper line here.",
                          rule, &d), SOJU_KEEP);
    CHECK_STR(d.text.data, "A proper line here.");
    soju_doc_free(&d);
}

TEST(fineweb) {
    char rule[64];
    CHECK_EQ_INT(run_step("fineweb", NULL, EN_GOOD, rule, NULL), SOJU_KEEP);
    CHECK_EQ_INT(run_step("fineweb", NULL, KO_GOOD, rule, NULL), SOJU_KEEP);
    char *t = repeat("Home page link without end\nAnother navigation item label\n", 4);
    CHECK_EQ_INT(run_step("fineweb", NULL, t, rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "line_punct_ratio");
    free(t);
    t = repeat("Short one.\nTiny.\nSmall.\nA line that is long enough to not be short, truly long.\n", 3);
    CHECK_EQ_INT(run_step("fineweb", "{char_dup_ratio: 1}", t, rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "short_line_ratio");
    free(t);
    t = repeat("This repeated sentence is long enough to count.\n", 3);
    CHECK_EQ_INT(run_step("fineweb", NULL, t, rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "char_dup_ratio");
    free(t);
    CHECK_EQ_INT(run_step("fineweb", "{short_line_thr: 1}", "a.\nb.\nc.\nd.", rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "list_ratio");
}

TEST(normalize) {
    char rule[64];
    soju_doc d;
    /* NFD Hangul composes; fillers and odd spaces become one space; controls go. */
    const char *nfd = "\xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab  \xe3\x85\xa4\xc2\xa0x\x01y\r\n\n\n\nz \t";
    CHECK_EQ_INT(run_step("normalize", NULL, nfd, rule, &d), SOJU_KEEP);
    CHECK_STR(d.text.data, "\xed\x95\x9c xy\n\nz");
    soju_doc_free(&d);
    CHECK_EQ_INT(run_step("normalize", "{max_char_repeat: 2}", "ㅋㅋㅋㅋㅋㅋ 1000000!!!!", rule, &d), SOJU_KEEP);
    CHECK_STR(d.text.data, "ㅋㅋ 1000000!!");
    soju_doc_free(&d);
    CHECK_EQ_INT(run_step("normalize", "{form: nfkc}", "\xef\xbc\x90\xef\xbc\x91\xef\xbc\x90", rule, &d), SOJU_KEEP);
    CHECK_STR(d.text.data, "010");
    soju_doc_free(&d);
    CHECK_EQ_INT(run_step("normalize", NULL, "ok \xff text with one bad byte among many characters here", rule, &d),
                 SOJU_KEEP);
    CHECK(strstr(d.text.data, "\xef\xbf\xbd") != NULL);
    soju_doc_free(&d);
    CHECK_EQ_INT(run_step("normalize", NULL, "\xff\xfe\xfd", rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "replacement_ratio");
    CHECK_EQ_INT(run_step("normalize", "{invalid_utf8: reject}", "a\xff", rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "invalid_utf8");
    CHECK_EQ_INT(run_step("normalize", NULL, " \t\n\x01 ", rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "empty");
    CHECK_EQ_INT(run_step("normalize", "{form: nfx}", "a", rule, NULL), -1);
}

TEST(web_garbage) {
    char rule[64];
    soju_doc d;
    CHECK_EQ_INT(run_step("web_garbage", NULL, KO_GOOD, rule, NULL), SOJU_KEEP);
    CHECK_EQ_INT(run_step("web_garbage", NULL, EN_GOOD, rule, NULL), SOJU_KEEP);
    CHECK_EQ_INT(run_step("web_garbage", NULL, "최고의 토토사이트 추천 안전한 곳", rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "spam_strong");
    CHECK_EQ_INT(run_step("web_garbage", NULL, "최저가 특가 무료상담 지금 바로 문의", rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "spam_weak");
    CHECK_EQ_INT(run_step("web_garbage", NULL, "ㅋㅋㅋㅋㅋㅋㅋ ㅠㅠㅠ 진짜", rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "jamo_ratio");
    CHECK_EQ_INT(run_step("web_garbage", NULL, "문의 010-1234-5678 카톡 a@b.com 홈페이지 http://x.kr 전화 02-123-4567", rule, NULL),
                 SOJU_DROP);
    CHECK_STR(rule, "contact_density");
    CHECK_EQ_INT(run_step("web_garbage", NULL, "\xc3\x87\xc3\x91\xc2\xb1\xc2\xb9\xc2\xbe\xc3\xae \xc2\xb1\xc2\xa4\xc2\xb0\xc3\xad", rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "mojibake_latin1");
    CHECK_EQ_INT(run_step("web_garbage", NULL, "\xeb\xb8\xb3援 뼱愿 묎퀬臾 몄쓽 텧", rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "mojibake_mixed_script");
    char page[2048];
    snprintf(page, sizeof page, "%s\n무단전재 및 재배포 금지\n저작권자 © 뉴스", KO_GOOD);
    CHECK_EQ_INT(run_step("web_garbage", NULL, page, rule, &d), SOJU_KEEP);
    CHECK(!strstr(d.text.data, "무단전재"));
    CHECK(!strstr(d.text.data, "저작권자"));
    soju_doc_free(&d);
    CHECK_EQ_INT(run_step("web_garbage", NULL, "All rights reserved.", rule, NULL), SOJU_DROP);
    CHECK_STR(rule, "boilerplate_only");
}

static void redact(const char *in, const char *want, int kind, int count) {
    soju_pii_opts o;
    soju_pii_defaults(&o);
    soju_buf out = {0};
    uint64_t counts[SOJU_PII_COUNT] = {0};
    soju_pii_redact(&o, in, strlen(in), &out, counts);
    CHECK_MSG(!strcmp(out.data, want), "%s -> %s (want %s)", in, out.data, want);
    if (kind >= 0) CHECK_EQ_INT(counts[kind], count);
    soju_buf_free(&out);
}

TEST(pii) {
    redact("mail me at kim.minsu+news@example.co.kr today", "mail me at <EMAIL> today", SOJU_PII_EMAIL, 1);
    redact("user@localhost is not an address", "user@localhost is not an address", SOJU_PII_EMAIL, 0);
    redact("연락처 010-1234-5678로", "연락처 <PHONE>로", SOJU_PII_PHONE, 1);
    redact("폰 01012345678 끝", "폰 <PHONE> 끝", SOJU_PII_PHONE, 1);
    redact("+82-10-1234-5678 or +82 2 123 4567", "<PHONE> or <PHONE>", SOJU_PII_PHONE, 2);
    redact("서울 02-123-4567, 경기 031-1234-5678, 대표 1588-1234", "서울 <PHONE>, 경기 <PHONE>, 대표 <PHONE>",
           SOJU_PII_PHONE, 3);
    redact("(02) 123-4567", "<PHONE>", SOJU_PII_PHONE, 1);
    redact("call (415) 555-2671 now", "call <PHONE> now", SOJU_PII_PHONE, 1);
    redact("가격 123456789원, 2024-01-15, 3.14", "가격 123456789원, 2024-01-15, 3.14", SOJU_PII_PHONE, 0);
    /* RRN 800101-1000008 has a valid check digit (sum 36, (11 - 36 % 11) % 10 = 8); ...-1000005 does not. */
    redact("주민번호 800101-1000008 입니다", "주민번호 <RRN> 입니다", SOJU_PII_RRN, 1);
    redact("번호 800101-1000005", "번호 800101-1000005", SOJU_PII_RRN, 0);
    redact("번호 801301-1000008", "번호 801301-1000008", SOJU_PII_RRN, 0);
    CHECK(soju_rrn_ok("8001011000008", 1));
    CHECK(!soju_rrn_ok("8001011000005", 1));
    CHECK(soju_rrn_ok("8001011000005", 0));
    /* Cards: Luhn-valid test numbers with and without separators. */
    redact("card 4111 1111 1111 1111 ok", "card <CARD> ok", SOJU_PII_CARD, 1);
    redact("card 5500-0000-0000-0004", "card <CARD>", SOJU_PII_CARD, 1);
    redact("card 4111111111111111", "card <CARD>", SOJU_PII_CARD, 1);
    redact("card 4111 1111 1111 1112", "card 4111 1111 1111 1112", SOJU_PII_CARD, 0);
    CHECK(soju_luhn_ok("79927398713", 11));
    CHECK(!soju_luhn_ok("79927398710", 11));
    redact("server 8.8.8.8 and 192.168.0.1", "server <IP> and 192.168.0.1", SOJU_PII_IP, 1);
    redact("version 1.2.3.4.5 and 300.1.1.1", "version 1.2.3.4.5 and 300.1.1.1", SOJU_PII_IP, 0);
    char rule[64];
    soju_doc d;
    CHECK_EQ_INT(run_step("pii", "{placeholders: {email: '[메일]'}, phone: false}", "a@b.com 010-1234-5678", rule, &d),
                 SOJU_KEEP);
    CHECK_STR(d.text.data, "[메일] 010-1234-5678");
    soju_doc_free(&d);
}

TEST(langid) {
    char rule[64];
    soju_doc d;
    CHECK_EQ_INT(run_step("langid", NULL, KO_GOOD, rule, &d), SOJU_KEEP);
    CHECK_STR(d.lang, "ko");
    soju_doc_free(&d);
    CHECK_EQ_INT(run_step("langid", NULL, EN_GOOD, rule, &d), SOJU_KEEP);
    CHECK_STR(d.lang, "en");
    soju_doc_free(&d);
    CHECK_EQ_INT(run_step("langid", "{keep: [ko, en]}", "Le comité s'est réuni mardi pour examiner le budget de "
                                                        "l'année prochaine et les horaires de la bibliothèque.",
                          rule, &d), SOJU_DROP);
    CHECK_STR(d.lang, "latin");
    soju_doc_free(&d);
    CHECK_EQ_INT(run_step("langid", NULL, "東京は日本の首都です。ここには多くの人が住んでいます。", rule, &d), SOJU_KEEP);
    CHECK_STR(d.lang, "ja");
    soju_doc_free(&d);
}

TEST(phrases) {
    soju_list l = {{0}};
    soju_vec_push(&l.items, soju_strdup("he"));
    soju_vec_push(&l.items, soju_strdup("she"));
    soju_vec_push(&l.items, soju_strdup("hers"));
    soju_vec_push(&l.items, soju_strdup("카지노"));
    soju_phrases *p;
    soju_err err;
    CHECK_OK(soju_phrases_build(&p, &l, &err));
    CHECK_EQ_INT(soju_phrases_count(p, "USHERS", 6, NULL), 3); /* she, he, hers */
    int which;
    CHECK_EQ_INT(soju_phrases_count(p, "온라인카지노 사이트", strlen("온라인카지노 사이트"), &which), 1);
    CHECK_STR(soju_phrases_item(p, which), "카지노");
    CHECK_EQ_INT(soju_phrases_count(p, "nothing", 7, NULL), 0);
    soju_phrases_free(p);
    soju_list_free(&l);
}

TEST(words) {
    soju_doc_view v = {0};
    const char *t = "Don't stop... 학교에 갔다! e-mail #1";
    soju_text_view(t, strlen(t), &v);
    /* Don't | stop | ... | 학교에 | 갔다 | ! | e-mail | # | 1 */
    CHECK_EQ_INT(v.words.len, 9);
    CHECK_EQ_INT(v.words.data[3].nchars, 3);
    CHECK(v.words.data[3].flags & SOJU_W_HANGUL);
    CHECK(v.words.data[2].flags & SOJU_W_SYMBOL);
    CHECK_EQ_INT(v.hangul, 5);
    soju_view_free(&v);
}

TEST_MAIN(gopher_quality, gopher_repetition, c4, fineweb, normalize, web_garbage, pii, langid, phrases, words)

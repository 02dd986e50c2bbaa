/* soju_data_report: shards of one pipeline are summed, different pipelines
 * get a section each; conservation is checked in the text. */
#include <string.h>

#include "soju/data.h"
#include "test.h"

static cJSON *stats(const char *name, const char *step, int read, int kept) {
    char buf[512];
    snprintf(buf, sizeof buf,
             "{\"name\":\"%s\",\"read\":{\"docs\":%d,\"bytes\":100,\"bad\":0},"
             "\"steps\":[{\"name\":\"%s\",\"docs_in\":%d,\"docs_out\":%d,\"rules\":{\"r\":{\"docs\":%d,\"bytes\":9}}}],"
             "\"kept\":{\"docs\":%d,\"bytes\":50},\"rejected\":{\"docs\":%d}}",
             name, read, step, read, kept, read - kept, kept, read - kept);
    return cJSON_Parse(buf);
}

static size_t count(const char *s, const char *sub) {
    size_t n = 0;
    for (const char *p = strstr(s, sub); p; p = strstr(p + 1, sub)) n++;
    return n;
}

TEST(shards_summed_pipelines_apart) {
    const cJSON *in[3] = {stats("filter", "c4", 10, 7), stats("pii", "pii", 7, 7), stats("filter", "c4", 20, 5)};
    soju_buf out = {0};
    soju_data_report(in, 3, &out);
    CHECK(out.data != NULL);
    if (out.data) {
        CHECK_EQ_INT(count(out.data, "pipeline "), 2);
        CHECK(strstr(out.data, "pipeline filter (2 stats files)"));
        CHECK(strstr(out.data, "pipeline pii (1 stats file)"));
        CHECK(strstr(out.data, "kept + rejected = 30, read = 30: ok"));
        CHECK(strstr(out.data, "kept + rejected = 7, read = 7: ok"));
        CHECK(!strstr(out.data, "MISMATCH"));
    }
    soju_buf_free(&out);
    for (int i = 0; i < 3; i++) cJSON_Delete((cJSON *)in[i]);
}

TEST_MAIN(shards_summed_pipelines_apart)

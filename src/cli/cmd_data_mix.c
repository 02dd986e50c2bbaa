/* soju data mix --source PATH=WEIGHT ... --out OUT [--by docs|bytes] [--total N] [--seed S] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "data_common.h"

int cmd_data_mix(int argc, char **argv) {
    cli_strs sources = {0};
    const char *out = NULL, *by = "docs", *tf = NULL, *tag = NULL, *stats_path = NULL;
    double total = 0;
    long long seed = 1;
    int quiet = 0;
    cli_opt opts[] = {{"source", CLI_STRS, &sources, "PATH=WEIGHT (repeatable)"},
                      {"out", CLI_STR, &out, "output .jsonl or .jsonl.zst"},
                      {"by", CLI_STR, &by, "weights are shares of docs or bytes"},
                      {"total", CLI_FLOAT, &total, "output size in docs or bytes (0: largest without repeats)"},
                      {"seed", CLI_INT, &seed, "random seed"},
                      {"text-field", CLI_STR, &tf, "JSON field holding the text"},
                      {"tag-field", CLI_STR, &tag, "add the source path under this field"},
                      {"stats", CLI_STR, &stats_path, "statistics JSON (default <out>.stats.json)"},
                      {"quiet", CLI_FLAG, &quiet, "no progress bar"},
                      {0}};
    char **pos;
    int npos;
    int rc = cli_parse(argc, argv, opts, "soju data mix --source a.jsonl=0.7 --source b.jsonl.zst=0.3 --out mix.jsonl.zst",
                       &pos, &npos);
    if (rc) return rc == 1 ? 0 : 2;
    free(pos);
    if (!out || !sources.n) return cli_fail("--source and --out are required");
    if (strcmp(by, "docs") && strcmp(by, "bytes")) return cli_fail("--by must be docs or bytes");
    soju_mix_source *src = soju_calloc((size_t)sources.n, sizeof *src);
    char **paths = soju_calloc((size_t)sources.n, sizeof *paths);
    for (int i = 0; i < sources.n; i++) {
        const char *eq = strrchr(sources.items[i], '=');
        char *end = NULL;
        double w = eq ? strtod(eq + 1, &end) : 1;
        if (eq && (!end || *end)) {
            free(src);
            return cli_fail("--source wants PATH=WEIGHT");
        }
        paths[i] = eq ? soju_strndup(sources.items[i], (size_t)(eq - sources.items[i])) : soju_strdup(sources.items[i]);
        src[i].path = paths[i];
        src[i].weight = w;
    }
    soju_mix_opts o = {src, sources.n, !strcmp(by, "bytes"), total, (uint64_t)seed, tf, tag, out, quiet};
    soju_err err = {{0}};
    cJSON *stats = NULL;
    rc = soju_mix(&o, &stats, &err);
    if (!rc) {
        char sp[4200];
        snprintf(sp, sizeof sp, "%s.stats.json", out);
        rc = soju_json_save(stats_path ? stats_path : sp, stats, &err);
        printf("mixed %.0f docs into %s\n", soju_json_num(stats, "docs_out", 0, NULL), out);
    }
    cJSON_Delete(stats);
    for (int i = 0; i < sources.n; i++) free(paths[i]);
    free(paths);
    free(src);
    free(sources.items);
    return rc ? cli_fail(err.msg) : 0;
}

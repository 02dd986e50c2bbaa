/* soju data dedup — exact, MinHash or line-level deduplication.
 *   one process:  soju data dedup IN... --out OUT [--method minhash|exact|lines]
 *   sharded:      soju data dedup IN... --out OUT.k --shard k/N --work W   (each k)
 *                 soju data dedup --merge --shards N --work W [--method ...]
 *                 soju data dedup IN... --out OUT.k --shard k/N --work W   (each k again) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "data_common.h"

int cmd_data_dedup(int argc, char **argv) {
    data_io io = {0};
    const char *method = "minhash";
    int merge = 0;
    long long shards = 1;
    cli_opt opts[] = {DATA_IO_OPTS(io),
                      {"method", CLI_STR, &method, "exact, minhash or lines"},
                      {"merge", CLI_FLAG, &merge, "merge the signatures of all shards in --work"},
                      {"shards", CLI_INT, &shards, "number of shards (with --merge)"},
                      {0}};
    char **pos;
    int npos;
    int rc = cli_parse(argc, argv, opts, "soju data dedup IN... --out OUT [--method minhash] [--shard k/N --work W]",
                       &pos, &npos);
    if (rc) return rc == 1 ? 0 : 2;
    soju_err err = {{0}};
    cJSON *cfg;
    if (data_settings(&io, &cfg, &err)) { free(pos); free(io.set.items); return cli_fail(err.msg); }
    cJSON *dd = cJSON_GetObjectItemCaseSensitive(cfg, "dedup");
    if (!dd) dd = cJSON_AddObjectToObject(cfg, "dedup");
    if (!cJSON_GetObjectItem(dd, "method")) cJSON_AddStringToObject(dd, "method", method);
    soju_pipeline p;
    rc = data_build_steps("dedup", cfg, &p, &err);
    cJSON_Delete(cfg);
    if (rc) { free(pos); free(io.set.items); return cli_fail(err.msg); }
    if (merge) {
        if (!io.work) rc = soju_errf(&err, SOJU_EARG, "--merge needs --work");
        soju_pipeline_opts o = {0};
        o.work_dir = io.work;
        o.shard.n = (int)shards;
        if (!rc) rc = soju_pipeline_merge(&p, &o, &err);
        soju_pipeline_free(&p);
        free(pos);
        free(io.set.items);
        if (rc) return cli_fail(err.msg);
        printf("merged %lld shards\n", shards);
        return 0;
    }
    if (!npos || !io.out) {
        soju_pipeline_free(&p);
        free(pos);
        free(io.set.items);
        return cli_fail("inputs and --out are required");
    }
    rc = data_run_pipeline(&p, &io, pos, NULL, npos, 0, NULL, "dedup");
    soju_pipeline_free(&p);
    free(pos);
    free(io.set.items);
    return rc;
}

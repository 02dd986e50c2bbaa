/* soju data classify apply IN... --model m --out OUT [--label hq --threshold 0.5]
 * — score documents (the classify step): the probability of --label goes to
 * the --field (score), and with --threshold documents below it are rejected. */
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "data_common.h"

int cmd_data_classify_apply(int argc, char **argv) {
    data_io io = {0};
    const char *model = NULL, *label = NULL, *field = "score";
    double threshold = 0;
    cli_opt opts[] = {DATA_IO_OPTS(io),
                      {"model", CLI_STR, &model, "model file"},
                      {"label", CLI_STR, &label, "label whose probability is the score"},
                      {"threshold", CLI_FLOAT, &threshold, "keep documents with score >= this (0: keep all)"},
                      {"field", CLI_STR, &field, "field for the score"},
                      {0}};
    char **pos;
    int npos;
    int rc = cli_parse(argc, argv, opts, "soju data classify apply IN... --model m --out OUT", &pos, &npos);
    if (rc) return rc == 1 ? 0 : 2;
    soju_err err = {{0}};
    cJSON *cfg = NULL;
    soju_pipeline p;
    if (!model) rc = soju_errf(&err, SOJU_EARG, "--model is required");
    else if (!npos || !io.out) rc = soju_errf(&err, SOJU_EARG, "inputs and --out are required");
    else rc = data_settings(&io, &cfg, &err);
    if (!rc) {
        /* The options are the classify step's settings. */
        cJSON *cs = cJSON_GetObjectItemCaseSensitive(cfg, "classify");
        if (!cs) cs = cJSON_AddObjectToObject(cfg, "classify");
        const char *keys[] = {"model", "label", "field"}, *vals[] = {model, label, field};
        for (int i = 0; i < 3; i++)
            if (vals[i]) cJSON_DeleteItemFromObjectCaseSensitive(cs, keys[i]), cJSON_AddStringToObject(cs, keys[i], vals[i]);
        cJSON_DeleteItemFromObjectCaseSensitive(cs, "threshold");
        cJSON_AddNumberToObject(cs, "threshold", threshold);
        rc = data_build_steps("classify", cfg, &p, &err);
    }
    cJSON_Delete(cfg);
    if (rc) {
        free(pos);
        free(io.set.items);
        return cli_fail(err.msg);
    }
    rc = data_run_pipeline(&p, &io, pos, NULL, npos, 0, NULL, "classify");
    soju_pipeline_free(&p);
    free(pos);
    free(io.set.items);
    return rc;
}

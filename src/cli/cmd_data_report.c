/* soju data report stats.json... — print statistics (summed over files). */
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "data_common.h"

int cmd_data_report(int argc, char **argv) {
    cli_opt opts[] = {{0}};
    char **pos;
    int npos;
    int rc = cli_parse(argc, argv, opts, "soju data report STATS.json...", &pos, &npos);
    if (rc) return rc == 1 ? 0 : 2;
    if (!npos) { free(pos); return cli_fail("give one or more stats JSON files"); }
    cJSON **st = soju_calloc((size_t)npos, sizeof *st);
    soju_err err = {{0}};
    for (int i = 0; i < npos && !rc; i++) rc = soju_json_load(pos[i], &st[i], &err);
    if (!rc) {
        soju_buf out = {0};
        soju_data_report((const cJSON *const *)st, npos, &out);
        fputs(out.data ? out.data : "", stdout);
        soju_buf_free(&out);
    }
    for (int i = 0; i < npos; i++) cJSON_Delete(st[i]);
    free(st);
    free(pos);
    return rc ? cli_fail(err.msg) : 0;
}

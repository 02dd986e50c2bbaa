/* soju data normalize | filter | pii | langid | route | decontaminate:
 * the one-pass commands, each a pipeline of fixed steps over the inputs.
 * Settings come from --config (a YAML mapping step -> settings) and --set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "data_common.h"

/* Parse the common options and run `steps`. */
static int run(int argc, char **argv, const char *usage, const char *steps, int route) {
    data_io io = {0};
    const char *rules = NULL;
    cli_opt opts[] = {DATA_IO_OPTS(io), {"rules", CLI_STR, &rules, "filter steps, comma-separated"}, {0}};
    char **pos;
    int npos;
    int rc = cli_parse(argc, argv, route || strcmp(steps, "filter") ? opts : opts, usage, &pos, &npos);
    if (rc) return rc == 1 ? 0 : 2;
    if (!strcmp(steps, "filter")) steps = rules ? rules : "gopher_quality,gopher_repetition,c4,fineweb,web_garbage";
    rc = data_run_steps(steps, &io, pos, npos, route);
    free(pos);
    return rc;
}

int cmd_data_normalize(int argc, char **argv) {
    return run(argc, argv, "soju data normalize IN... --out OUT [--set normalize.form=nfkc]", "normalize", 0);
}

int cmd_data_filter(int argc, char **argv) {
    return run(argc, argv,
               "soju data filter IN... --out OUT [--rules gopher_quality,gopher_repetition,c4,fineweb,web_garbage,length]",
               "filter", 0);
}

int cmd_data_pii(int argc, char **argv) { return run(argc, argv, "soju data pii IN... --out OUT", "pii", 0); }

int cmd_data_langid(int argc, char **argv) {
    return run(argc, argv, "soju data langid IN... --out OUT [--set langid.keep=[ko,en]]", "langid", 0);
}

int cmd_data_route(int argc, char **argv) {
    return run(argc, argv, "soju data route IN... --out OUT.jsonl.zst  (writes OUT.<lang>.jsonl.zst)", "langid", 1);
}

int cmd_data_decontaminate(int argc, char **argv) {
    return run(argc, argv,
               "soju data decontaminate IN... --out OUT --set decontaminate.bench=[../shared/data/bench_gsm8k]",
               "decontaminate", 0);
}

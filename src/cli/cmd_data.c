/* soju data — the data pipeline commands (see include/soju/data.h). */
#include "commands.h"

static const cli_command data_commands[] = {
    {"normalize", cmd_data_normalize, "UTF-8 repair, NFC/NFKC, control characters, whitespace"},
    {"filter", cmd_data_filter, "heuristic filters (gopher_quality, gopher_repetition, c4, fineweb, web_garbage, length)"},
    {"pii", cmd_data_pii, "replace e-mails, phones, RRNs, cards, IPs with placeholders"},
    {"langid", cmd_data_langid, "tag (and optionally keep) languages"},
    {"route", cmd_data_route, "split documents into one output per language"},
    {"dedup", cmd_data_dedup, "exact / MinHash / line deduplication, sharded with a merge step"},
    {"classify", cmd_data_classify, "train, apply or test the fastText-style classifier"},
    {"decontaminate", cmd_data_decontaminate, "drop or flag documents overlapping benchmark items"},
    {"mix", cmd_data_mix, "weighted, seeded mixture of sources"},
    {"report", cmd_data_report, "render statistics JSON as a readable report"},
    {"run", cmd_data_run, "run a pipeline.yaml"},
    {0, 0, 0},
};

int cmd_data(int argc, char **argv) { return cli_dispatch("soju data", data_commands, argc, argv); }

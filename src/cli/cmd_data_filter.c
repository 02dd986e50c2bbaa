/* soju data filter IN... --out OUT [--rules a,b,...] — the heuristic filters
 * (Gopher quality and repetition, C4, FineWeb, Korean web garbage; also
 * length, or any other per-document step named in --rules). Kept documents
 * go to OUT, rejected ones with step, rule and score to OUT.rejects. */
#include "commands.h"
#include "data_common.h"

int cmd_data_filter(int argc, char **argv) {
    return data_steps_command(
        argc, argv, "soju data filter IN... --out OUT [--rules gopher_quality,gopher_repetition,c4,fineweb,web_garbage,length]",
        "gopher_quality,gopher_repetition,c4,fineweb,web_garbage", 1, 0);
}

/* soju data decontaminate IN... --out OUT --set decontaminate.bench=[DIR,...]
 * — drop (or flag) documents sharing long n-grams with benchmark items; the
 * stats name the items hit (the decontaminate step, see src/data/decontaminate.c). */
#include "commands.h"
#include "data_common.h"

int cmd_data_decontaminate(int argc, char **argv) {
    return data_steps_command(
        argc, argv, "soju data decontaminate IN... --out OUT --set decontaminate.bench=[../shared/data/bench_gsm8k]",
        "decontaminate", 0, 0);
}

/* soju data classify train | apply | test — the fastText-style classifier
 * (one file per subcommand: cmd_data_classify_<name>.c). */
#include "commands.h"

int cmd_data_classify(int argc, char **argv) {
    static const cli_command sub[] = {
        {"train", cmd_data_classify_train, "train on labeled JSONL"},
        {"apply", cmd_data_classify_apply, "score documents (and filter by a threshold)"},
        {"test", cmd_data_classify_test, "accuracy on labeled JSONL"},
        {0, 0, 0},
    };
    return cli_dispatch("soju data classify", sub, argc, argv);
}

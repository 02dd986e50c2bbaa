/* soju data normalize IN... --out OUT — UTF-8 repair, NFC (or NFKC), control
 * characters and whitespace (the normalize step, see src/data/normalize.c).
 * Settings: --config FILE or --set normalize.form=nfkc. */
#include "commands.h"
#include "data_common.h"

int cmd_data_normalize(int argc, char **argv) {
    return data_steps_command(argc, argv, "soju data normalize IN... --out OUT [--set normalize.form=nfkc]",
                              "normalize", 0, 0);
}

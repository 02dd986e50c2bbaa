/* soju data pii IN... --out OUT — replace e-mails, phone numbers, resident
 * registration numbers, card numbers and IP addresses with typed
 * placeholders (the pii step, see src/data/pii.c); counts in the stats. */
#include "commands.h"
#include "data_common.h"

int cmd_data_pii(int argc, char **argv) {
    return data_steps_command(argc, argv, "soju data pii IN... --out OUT [--set pii.ip=false]", "pii", 0, 0);
}

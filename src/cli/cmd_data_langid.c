/* soju data langid IN... --out OUT — tag each document with its language
 * ("lang", "lang_score"), and with --set langid.keep=[ko,en] reject the
 * others (the langid step, see src/data/langid.c). */
#include "commands.h"
#include "data_common.h"

int cmd_data_langid(int argc, char **argv) {
    return data_steps_command(argc, argv, "soju data langid IN... --out OUT [--set langid.keep=[ko,en]]", "langid", 0, 0);
}

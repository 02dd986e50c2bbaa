#include "args.h"
#include "commands.h"
int cmd_tokenizer_stats(int argc, char **argv) { (void)argc; (void)argv; return cli_fail("not yet"); }

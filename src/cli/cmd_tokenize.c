#include "args.h"
#include "commands.h"
int cmd_tokenize(int argc, char **argv) { (void)argc; (void)argv; return cli_fail("not yet"); }

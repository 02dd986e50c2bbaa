/* soju tokenizer extend: stub until extension lands. */
#include "args.h"
#include "commands.h"
int cmd_tokenizer_extend(int argc, char **argv) { (void)argc; (void)argv; return cli_fail("not yet"); }

/* soju version */
#include <stdio.h>

#include "commands.h"
#include "soju/base.h"

int cmd_version(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("soju 0.1.0 (threads: %d)\n", soju_num_threads());
    return 0;
}

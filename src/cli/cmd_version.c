/* soju version */
#include <stdio.h>

#include "commands.h"
#include "soju/base.h"
#include "soju/dist.h"

int cmd_version(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("soju 0.1.0 (threads: %d, distributed: %s)\n", soju_num_threads(), soju_dist_features());
    return 0;
}

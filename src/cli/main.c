/* soju — the command-line entry point: find the command, hand it the rest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"

int cli_dispatch(const char *prog, const cli_command *table, int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        printf("usage: %s <command> [options]\n\ncommands:\n", prog);
        for (const cli_command *c = table; c->name; c++) printf("  %-14s %s\n", c->name, c->summary);
        printf("\n'%s <command> --help' describes each command.\n", prog);
        return argc < 2 ? 2 : 0;
    }
    for (const cli_command *c = table; c->name; c++)
        if (!strcmp(c->name, argv[1])) return c->fn(argc - 1, argv + 1);
    fprintf(stderr, "soju: error: unknown command '%s' (try '%s --help')\n", argv[1], prog);
    return 2;
}

static const cli_command commands[] = {
    {"version", cmd_version, "print the version and build features"},
    {"tokenizer", cmd_tokenizer, "train, extend, inspect and convert tokenizers"},
    {"tokenize", cmd_tokenize, "encode a corpus into token shards (train/validation split, byte vocabulary)"},
    {"data", cmd_data, "data pipeline: normalize, filter, pii, dedup, classify, decontaminate, mix"},
    {"pretrain", cmd_pretrain, "train a model on token shards (new, --init from weights, or --resume)"},
    {"generate", cmd_generate, "continue a prompt with a trained model"},
    {0, 0, 0},
};

/* OpenMP threads that wait for work (at a barrier, or between parallel
 * regions) spin before they sleep; GNU libgomp spins 300,000 pause
 * instructions by default, over 10 ms on current Intel cores. On a machine
 * shared with other jobs that spinning takes the core from the thread being
 * waited for, and a training step ran 2-4x slower than with a short spin.
 * libgomp reads its settings before main() runs, so when the user has set
 * neither, soju sets a short spin (about half a millisecond, longer than
 * the usual gap between two parallel regions) and starts itself again. */
static void prefer_short_openmp_spin(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    setenv("GOMP_SPINCOUNT", "10000", 1);
    execv("/proc/self/exe", argv); /* returns only on failure: then run as we are */
}

int main(int argc, char **argv) {
    prefer_short_openmp_spin(argv);
    return cli_dispatch("soju", commands, argc, argv);
}

/* soju — the command-line entry point: find the command, hand it the rest. */
#include <stdio.h>
#include <string.h>

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
    {"tokenize", cmd_tokenize, "encode a corpus into token shards"},
    {"data", cmd_data, "data pipeline: normalize, filter, pii, dedup, classify, decontaminate, mix"},
    {"shard-text", cmd_shard_text, "text to train/validation shards (byte-level vocabulary, or --tokenizer)"},
    {"pretrain", cmd_pretrain, "train a model on token shards (new, --init from weights, or --resume)"},
    {"generate", cmd_generate, "continue a prompt with a trained model"},
    {0, 0, 0},
};

int main(int argc, char **argv) { return cli_dispatch("soju", commands, argc, argv); }

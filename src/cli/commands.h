/* commands.h — every `soju <command>` entry point. One file per command
 * (cmd_<name>.c); each parses its arguments, calls the library, prints. */
#ifndef SOJU_CLI_COMMANDS_H
#define SOJU_CLI_COMMANDS_H

typedef int (*cli_command_fn)(int argc, char **argv);

typedef struct cli_command {
    const char *name;
    cli_command_fn fn;
    const char *summary;
} cli_command;

/* Dispatch argv[1] among a table of subcommands (used by main and by groups
 * such as `soju tokenizer` and `soju data`). */
int cli_dispatch(const char *prog, const cli_command *table, int argc, char **argv);

int cmd_version(int argc, char **argv);
int cmd_tokenizer(int argc, char **argv);
int cmd_tokenizer_train(int argc, char **argv);
int cmd_tokenizer_extend(int argc, char **argv);
int cmd_tokenizer_stats(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_data_normalize(int argc, char **argv);
int cmd_data_filter(int argc, char **argv);
int cmd_data_pii(int argc, char **argv);
int cmd_data_langid(int argc, char **argv);
int cmd_data_route(int argc, char **argv);
int cmd_data_dedup(int argc, char **argv);
int cmd_data_classify(int argc, char **argv);
int cmd_data_classify_train(int argc, char **argv);
int cmd_data_classify_apply(int argc, char **argv);
int cmd_data_classify_test(int argc, char **argv);
int cmd_data_decontaminate(int argc, char **argv);
int cmd_data_mix(int argc, char **argv);
int cmd_data_report(int argc, char **argv);
int cmd_data_run(int argc, char **argv);
int cmd_pretrain(int argc, char **argv);
int cmd_generate(int argc, char **argv);

#endif

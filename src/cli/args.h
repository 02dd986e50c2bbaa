/* args.h — long-option parsing shared by every command.
 *
 * A command lists its options in a table and calls cli_parse:
 *
 *   const char *config = NULL; long long steps = 100; double lr = 3e-4; int quiet = 0;
 *   cli_opt opts[] = {
 *       {"config", CLI_STR, &config, "model config.json"},
 *       {"steps", CLI_INT, &steps, "optimizer steps"},
 *       {"lr", CLI_FLOAT, &lr, "peak learning rate"},
 *       {"quiet", CLI_FLAG, &quiet, "no progress bar"},
 *       {0}};
 *   if (cli_parse(argc, argv, opts, "soju pretrain [options]", &pos, &npos)) return 2;
 *
 * Accepts --name value and --name=value; integers take k/M/G suffixes;
 * --help prints the table. Arguments that are not options are returned as
 * positionals. */
#ifndef SOJU_CLI_ARGS_H
#define SOJU_CLI_ARGS_H

typedef enum { CLI_STR, CLI_INT, CLI_FLOAT, CLI_FLAG, CLI_STRS } cli_kind;

typedef struct cli_opt {
    const char *name;
    cli_kind kind;
    void *dst;   /* const char **, long long *, double *, int *, or cli_strs * */
    const char *help;
} cli_opt;

/* A repeatable string option (--input a --input b). */
typedef struct cli_strs {
    const char **items;
    int n;
} cli_strs;

/* Returns 0 on success, 1 if --help was printed, 2 on error (message printed). */
int cli_parse(int argc, char **argv, const cli_opt *opts, const char *usage, char ***positional, int *npositional);
void cli_usage(const cli_opt *opts, const char *usage);

/* 1 if --name (or --name=...) appears among the arguments: tells an option
 * given with its default value apart from one not given. */
int cli_given(int argc, char **argv, const char *name);

/* Print "soju: error: <msg>" and return 1 (the conventional failing exit code). */
int cli_fail(const char *msg);

#endif

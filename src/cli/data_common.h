/* data_common.h — what the `soju data ...` commands share: input/output
 * options, step settings from --config and --set, and running a pipeline. */
#ifndef SOJU_CLI_DATA_COMMON_H
#define SOJU_CLI_DATA_COMMON_H

#include "args.h"
#include "soju/data.h"

typedef struct data_io {
    const char *out, *rejects, *stats, *text_field, *config, *shard, *work;
    long long threads;
    int quiet;
    int lines; /* text inputs hold one document per line */
    cli_strs set;
} data_io;

/* The option rows for data_io (spliced into a command's table). */
#define DATA_IO_OPTS(io)                                                                           \
    {"out", CLI_STR, &(io).out, "kept documents (.jsonl or .jsonl.zst)"},                          \
    {"rejects", CLI_STR, &(io).rejects, "rejected documents (default <out>.rejects.jsonl.zst)"},  \
    {"stats", CLI_STR, &(io).stats, "statistics JSON (default <out>.stats.json)"},                \
    {"text-field", CLI_STR, &(io).text_field, "JSON field holding the text"},                      \
    {"config", CLI_STR, &(io).config, "YAML/JSON file with step settings ({step: {key: value}})"}, \
    {"set", CLI_STRS, &(io).set, "step.key=value setting (repeatable)"},                           \
    {"shard", CLI_STR, &(io).shard, "process shard k/N of the inputs"},                            \
    {"work", CLI_STR, &(io).work, "work directory for dedup signatures (default <out>.work)"},    \
    {"threads", CLI_INT, &(io).threads, "threads (0 = all cores)"},                                \
    {"lines", CLI_FLAG, &(io).lines, "text inputs hold one document per line (not blank-line blocks)"}, \
    {"quiet", CLI_FLAG, &(io).quiet, "no progress bar"}

/* Settings object for the given steps from --config and --set; caller frees. */
int data_settings(const data_io *io, cJSON **out, soju_err *err);
/* A pipeline of the named steps (comma-separated), each configured by its
 * block of settings ({step: {key: value}}; absent blocks mean defaults). */
int data_build_steps(const char *steps, const cJSON *settings, soju_pipeline *p, soju_err *err);
/* Build the named steps (comma-separated) with settings and run them over
 * the inputs; prints a one-line summary. Returns the process exit code. */
int data_run_steps(const char *steps, const data_io *io, char **inputs, int n_inputs, int route_by_lang);
/* Run a built pipeline with io's paths; prints the summary; exit code.
 * formats: per input (NULL: from the names, text read by lines with io->lines). */
int data_run_pipeline(soju_pipeline *p, const data_io *io, char **inputs, const soju_record_format *formats,
                      int n_inputs, int route_by_lang, const char *out_dir, const char *name);

/* The whole of a one-pass command (normalize, filter, pii, ...): parse the
 * common options (and --rules, which replaces `steps`, when with_rules),
 * run the steps, print the summary. Returns the process exit code. */
int data_steps_command(int argc, char **argv, const char *usage, const char *steps, int with_rules, int route_by_lang);

#endif

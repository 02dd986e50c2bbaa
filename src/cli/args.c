/* Long-option parsing for the CLI commands (see args.h). */
#include "args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soju/base.h"

/* The "(default X)" after an option's help, or "" when it would say nothing:
 * no value, an empty string, or help text that already names its default. */
static void default_note(const cli_opt *o, char *out, size_t cap) {
    out[0] = 0;
    if (o->help && strstr(o->help, "default")) return;
    switch (o->kind) {
    case CLI_STR: {
        const char *s = *(const char **)o->dst;
        if (s && *s) snprintf(out, cap, " (default %s)", s);
        break;
    }
    case CLI_INT: snprintf(out, cap, " (default %lld)", *(long long *)o->dst); break;
    case CLI_FLOAT: snprintf(out, cap, " (default %g)", *(double *)o->dst); break;
    default: break;
    }
}

void cli_usage(const cli_opt *opts, const char *usage) {
    printf("usage: %s\n", usage);
    if (opts && opts[0].name) printf("\noptions:\n");
    for (const cli_opt *o = opts; o && o->name; o++) {
        const char *arg = o->kind == CLI_FLAG ? "" : o->kind == CLI_INT ? " N" : o->kind == CLI_FLOAT ? " X" : " S";
        char left[64];
        snprintf(left, sizeof left, "--%s%s", o->name, arg);
        char dflt[96];
        default_note(o, dflt, sizeof dflt);
        printf("  %-26s %s%s\n", left, o->help ? o->help : "", dflt);
    }
}

int cli_given(int argc, char **argv, const char *name) {
    size_t n = strlen(name);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) break;
        if (!strncmp(a, "--", 2) && !strncmp(a + 2, name, n) && (a[2 + n] == 0 || a[2 + n] == '=')) return 1;
    }
    return 0;
}

int cli_fail(const char *msg) {
    fprintf(stderr, "soju: error: %s\n", msg);
    return 1;
}

static int set_value(const cli_opt *o, const char *v) {
    char *end = NULL;
    switch (o->kind) {
    case CLI_STR: *(const char **)o->dst = v; return 0;
    case CLI_STRS: {
        cli_strs *s = o->dst;
        s->items = soju_realloc(s->items, sizeof(char *) * (size_t)(s->n + 1));
        s->items[s->n++] = v;
        return 0;
    }
    case CLI_INT: {
        long long n = soju_parse_count(v);
        if (n < 0) {
            /* allow negative plain integers */
            long long x = strtoll(v, &end, 10);
            if (!end || *end) return -1;
            n = x;
        }
        *(long long *)o->dst = n;
        return 0;
    }
    case CLI_FLOAT: {
        double x = strtod(v, &end);
        if (end == v || *end) return -1;
        *(double *)o->dst = x;
        return 0;
    }
    case CLI_FLAG: *(int *)o->dst = 1; return 0;
    }
    return -1;
}

int cli_parse(int argc, char **argv, const cli_opt *opts, const char *usage, char ***positional, int *npositional) {
    char **pos = soju_calloc((size_t)argc + 1, sizeof(char *));
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            cli_usage(opts, usage);
            free(pos);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0 || !strcmp(a, "--") || a[2] == 0) {
            pos[npos++] = argv[i];
            continue;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const cli_opt *o = NULL;
        for (const cli_opt *p = opts; p && p->name; p++)
            if (strlen(p->name) == nlen && !strncmp(p->name, name, nlen)) o = p;
        if (!o) {
            fprintf(stderr, "soju: error: unknown option --%.*s (see --help)\n", (int)nlen, name);
            free(pos);
            return 2;
        }
        const char *v = NULL;
        if (o->kind == CLI_FLAG) {
            if (eq) {
                fprintf(stderr, "soju: error: option --%s takes no value\n", o->name);
                free(pos);
                return 2;
            }
        } else if (eq) {
            v = eq + 1;
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            fprintf(stderr, "soju: error: option --%s needs a value\n", o->name);
            free(pos);
            return 2;
        }
        if (set_value(o, v) != 0) {
            fprintf(stderr, "soju: error: option --%s: bad value '%s'\n", o->name, v);
            free(pos);
            return 2;
        }
    }
    if (positional) *positional = pos;
    else free(pos);
    if (npositional) *npositional = npos;
    return 0;
}

/* cli.c: strict option parsing. */
#include "cmd/cli.h"
#include "common.h"

#include <stdio.h>
#include <string.h>

static void print_usage(const char *cmd, const char *usage, const CliOpt *opts, int nopts, FILE *f) {
    fprintf(f, "usage: effnet %s %s\n\noptions:\n", cmd, usage);
    for (int i = 0; i < nopts; i++) {
        char def[64] = "";
        if (opts[i].type == CLI_STR && *(const char **)opts[i].dst) snprintf(def, sizeof def, " (default %s)", *(const char **)opts[i].dst);
        if (opts[i].type == CLI_INT) snprintf(def, sizeof def, " (default %ld)", *(long *)opts[i].dst);
        fprintf(f, "  %-14s %s%s\n", opts[i].flag, opts[i].help, def);
    }
}

int cli_parse(const char *cmd, const char *usage, CliOpt *opts, int nopts, int argc, char **argv, int first) {
    for (int a = first; a < argc; a++) {
        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
            print_usage(cmd, usage, opts, nopts, stdout);
            return 1;
        }
        const CliOpt *o = NULL;
        for (int i = 0; i < nopts; i++)
            if (!strcmp(argv[a], opts[i].flag)) o = &opts[i];
        if (!o) {
            print_usage(cmd, usage, opts, nopts, stderr);
            EFF_FATAL("effnet %s: unknown option '%s'", cmd, argv[a]);
        }
        if (o->type == CLI_BOOL) {
            *(int *)o->dst = 1;
            continue;
        }
        EFF_CHECK(a + 1 < argc, "effnet %s: option %s needs a value", cmd, o->flag);
        const char *val = argv[++a];
        if (o->type == CLI_STR) {
            *(const char **)o->dst = val;
        } else {
            long v;
            EFF_CHECK(eff_parse_int(val, o->lo, o->hi, &v), "effnet %s: %s '%s' is not an integer in [%ld, %ld]", cmd,
                      o->flag, val, o->lo, o->hi);
            *(long *)o->dst = v;
        }
    }
    return 0;
}

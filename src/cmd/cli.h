/* cli.h: a small, strict "--flag value" parser shared by the subcommands.
 * Unknown flags, missing values and out-of-range numbers are errors that name
 * the flag. */
#ifndef EFFNET_CLI_H
#define EFFNET_CLI_H

typedef enum { CLI_STR, CLI_INT, CLI_BOOL } CliType;

typedef struct CliOpt {
    const char *flag; /* "--model" */
    CliType type;
    void *dst;        /* const char **, long *, or int * */
    long lo, hi;      /* range for CLI_INT */
    const char *help;
} CliOpt;

/* Parse argv[first..argc); exits with a message on error. Returns 0, or 1 if
 * --help was given (usage already printed). */
int cli_parse(const char *cmd, const char *usage, CliOpt *opts, int nopts, int argc, char **argv, int first);

#endif

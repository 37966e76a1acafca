/* cli.h: the command-line conventions shared by every dpo program
 * (DESIGN.md): --db resolution, --help/--version, errors and exit codes. */
#ifndef DPO_CLI_H
#define DPO_CLI_H
#include <stdio.h>

enum { UTIL_EXIT_OK = 0, UTIL_EXIT_FAIL = 1, UTIL_EXIT_USAGE = 2, UTIL_EXIT_INTERRUPTED = 130 };

/* Set the program name used in messages (e.g. "dpo-db"). The string must
 * outlive the program (pass argv[0]'s basename or a literal). */
void util_set_progname(const char *name);
/* The program name set above ("dpo" before). */
const char *util_progname(void);
/* The database path: opt when not NULL, else $DPO_DB, else "./dpo.db".
 * Returns a pointer owned by the caller's arguments or the environment. */
const char *util_db_path(const char *opt);
/* Print "PROG: message" to stderr. */
void util_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "PROG: message" to stderr and exit with status 1. */
void util_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Print "PROG: message" and a hint to run --help, exit with status 2. */
void util_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* This process is one of several running the same command line (an MPI
 * rank other than the first), whose first process says what the command
 * line says: from now on --help and --version print nothing here, and a
 * usage error (util_usage_error, util_cli_usage_error, a bad option) waits
 * wait_s seconds before it prints and exits. The first process, with the
 * same error, prints it once and ends the whole job meanwhile (each rank
 * printing its own copy interleaves them on the shared terminal); an error
 * only this process sees still gets out, late. */
void util_set_secondary(double wait_s);
/* 1 after util_set_secondary, else 0. */
int util_secondary(void);
/* In a secondary process (util_set_secondary), sleep its wait; else return
 * at once. Called before a usage error prints. */
void util_secondary_pause(void);
/* Print "PROG (dpo) VERSION" to stdout. */
void util_print_version(void);
/* Current UTC time as ISO 8601 ("2026-11-26T17:11:38Z") into out (>= 21 bytes). */
void util_utc_now(char *out, unsigned long n);
/* The folder of dpo's installed data (templates, price table, examples):
 * $DPO_DATADIR when set (tests point it at the source tree's share/), else
 * the configured $(pkgdatadir). Never NULL. */
const char *util_datadir(void);
/* Install SIGINT/SIGTERM handlers that set a flag instead of killing. */
void util_catch_interrupts(void);
/* Nonzero once SIGINT or SIGTERM has arrived after util_catch_interrupts. */
int util_interrupted(void);
/* Have util_die (and util_usage_error) call fn(ctx) before they exit, e.g.
 * to close an open record as failed. Hooks run once each, the latest
 * registered first, and are removed before they run (one that fails and
 * dies again does not loop). At most 8 at a time; returns 0, or -1 when
 * full. fn must not be NULL. */
int util_on_die(void (*fn)(void *), void *ctx);
/* Remove the hook registered with this fn and ctx (nothing if none). */
void util_on_die_remove(void (*fn)(void *), void *ctx);

#endif

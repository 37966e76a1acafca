/* dpo_db.h: private to the dpo-db program (not part of store/libstore.a):
 * the subcommands implemented in separate files of store/ (dpo-db-NAME.c;
 * init, check, split, stats and main are in dpo-db.c) and what they share. */
#ifndef DPO_DPO_DB_H
#define DPO_DPO_DB_H
#include "store/store.h"
#include "util/buf.h"
#include "util/opt.h"
#include <string.h>

/* Every subcommand is a util_cmd (util/opt.h): run(argc, argv) with argv[0]
 * the subcommand's name. It parses its own options with its own util_cli,
 * named "dpo-db NAME" (so its config file section is [dpo-db NAME]), and
 * returns the process exit status; usage errors exit 2 in the parser. */
int db_cmd_import(int argc, char **argv); /* dpo-db-import.c */
int db_cmd_export(int argc, char **argv); /* dpo-db-export.c */
int db_cmd_agreement(int argc, char **argv); /* dpo-db-agreement.c */
int db_cmd_derive(int argc, char **argv); /* dpo-db-derive.c: derive-pairs */
/* `dpo-db report OUT.html`: OUT "-" writes to standard output; otherwise the
 * file is written atomically (temporary file, then rename). */
int db_cmd_report(int argc, char **argv); /* dpo-db-report.c */
int db_cmd_merge(int argc, char **argv); /* dpo-db-merge.c */
int db_cmd_assign(int argc, char **argv); /* dpo-db-assign.c */
int db_cmd_remove(int argc, char **argv); /* dpo-db-remove.c */
int db_cmd_runs(int argc, char **argv); /* dpo-db-runs.c */
/* The gold-item accuracy of `dpo-db agreement` (dpo-db-gold.c): appended
 * to json as `, "gold": {...}`, or printed as text when json is NULL.
 * STORE_OK or the store's code. */
int db_gold_agreement(store *st, util_buf *json);

/* The database to use: opt (a subcommand's --db) when not NULL, else the
 * --db given before the subcommand, else $DPO_DB, else ./dpo.db. */
const char *db_path(const char *opt);

/* Open (and migrate) the existing store at path, for the commands that only
 * read (store_open_read: a read-only one is read, immutable if need be); on
 * failure (a missing file too: "no such database") print the store's
 * message and return NULL. */
store *db_open(const char *path);
/* The same for the commands that write (store_open_existing). */
store *db_open_write(const char *path);
/* The same, creating the store when it is missing (init). */
store *db_create(const char *path);

/* The options of the subcommands that have no others than --db (and
 * --json), and the table of --db and --json (in dpo-db.c). */
typedef struct db_opts {
	const char *db;
	int json;
} db_opts;
extern const util_opt db_json_table[];

/* Append s to b as a JSON string. */
static inline void add_str(util_buf *b, const char *s)
{
	util_buf_add_json_string(b, s, strlen(s));
}

#endif

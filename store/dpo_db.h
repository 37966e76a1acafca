/* dpo_db.h: private to the dpo-db program (not part of store/libstore.a):
 * the subcommands implemented in separate files of store/. */
#ifndef DPO_DPO_DB_H
#define DPO_DPO_DB_H

/* `dpo-db import FILE... [options]`: argv[0] is "import". dbpath is the
 * resolved database path. Returns the process exit status (0, 1 or 2). */
int db_cmd_import(int argc, char **argv, const char *dbpath);

/* `dpo-db report OUT.html [--title T]`: argv[0] is "report"; dbpath is the
 * resolved database path. OUT "-" writes to standard output; otherwise the
 * file is written atomically (temporary file, then rename). Returns the
 * process exit status (0, 1 or 2). */
int db_cmd_report(int argc, char **argv, const char *dbpath);

#endif

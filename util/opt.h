/* opt.h: one option table per program (or subcommand) and one parser.
 *
 * As tmux's cmd_entry/options-table and curl's aliases[] do it, a program
 * describes its options once, in a static table:
 *
 *   struct opts { const char *db; double beta; long steps; int json; };
 *   static const util_opt opts_table[] = {
 *       UTIL_OPT_DB(struct opts, db),
 *       {"beta", 0, UTIL_OPT_FLOAT, offsetof(struct opts, beta), .def = "0.1",
 *        .range = "(0, inf)", .arg = "B", .help = "DPO temperature"},
 *       {"steps", 'n', UTIL_OPT_INT, offsetof(struct opts, steps), .range = "[1, inf)", ...},
 *       UTIL_OPT_JSON(struct opts, json),
 *       UTIL_OPT_TABLE_END,
 *   };
 *   static util_cli cli = {.name = "dpo-x", .synopsis = "[OPTIONS] FILE",
 *                          .summary = "...", .opts = opts_table};
 *   struct opts o = {0};
 *   util_cli_parse(&cli, &o, argc, argv);   // exits 0 on --help/--version, 2 on errors
 *
 * and gets from it: the usage text (--help), range errors in one wording
 * ("dpo-x: --beta: expected a number in (0, inf), got "abc""), --version,
 * defaults applied in one place (the table), then the config file
 * ($XDG_CONFIG_HOME/dpo/config, section [dpo-x]), then the command line,
 * and the parsed options serialised as JSON for the run's parameters.
 *
 * Targets are offsets into the struct handed to util_cli_parse; a shared
 * block of options (the sampling options, say) is a table of its own that
 * other tables include with UTIL_OPT_INCLUDE at the offset of its struct.
 *
 * Kinds and the C type of their target:
 *   FLAG      int, set to 1          FLAG_OFF  int, set to 0 (--no-x)
 *             (a flag's .def, "true" or "false", is the target's initial value)
 *   INT       long, decimal           FLOAT     double (finite)
 *   STRING    const char *            PATH      const char *, not empty
 *   ENUM      const char *, one of .choices ("a|b|c")
 *   LIST      util_opt_list; every use appends (split at commas with
 *             UTIL_OPT_COMMAS)
 *   CALL      .call(target, value) parses it (value NULL with UTIL_OPT_NOARG)
 * Strings point into argv or into memory the util_cli owns (config values);
 * they stay valid until util_cli_free. */
#ifndef DPO_UTIL_OPT_H
#define DPO_UTIL_OPT_H
#include <stddef.h>
#include <stdio.h>
#include "util/buf.h"

typedef enum util_opt_kind {
	UTIL_OPT_END = 0,
	UTIL_OPT_FLAG,
	UTIL_OPT_FLAG_OFF,
	UTIL_OPT_INT,
	UTIL_OPT_FLOAT,
	UTIL_OPT_STRING,
	UTIL_OPT_PATH,
	UTIL_OPT_ENUM,
	UTIL_OPT_LIST,
	UTIL_OPT_CALL,
	UTIL_OPT_INCLUDE, /* .sub's entries, their targets relative to .off */
	UTIL_OPT_GROUP,   /* a heading in the usage text (.help) */
} util_opt_kind;

/* Entry flags. */
enum {
	UTIL_OPT_COMMAS = 1 << 0,  /* LIST: one value may hold several, split at commas */
	UTIL_OPT_NOARG = 1 << 1,   /* CALL: takes no value */
	UTIL_OPT_NOPARAM = 1 << 2, /* left out of the run's parameters (--db, --json, -q...) */
	UTIL_OPT_SECRET = 1 << 3,  /* never serialised, redacted from command lines */
	UTIL_OPT_HIDDEN = 1 << 4,  /* accepted but not listed in --help */
	UTIL_OPT_NOCONFIG = 1 << 5, /* may not be set from the config file */
};

/* A LIST target. v is owned by the util_cli; its strings by argv or the cli. */
typedef struct util_opt_list {
	const char **v;
	int n;
} util_opt_list;

typedef struct util_opt util_opt;
struct util_opt {
	const char *name;     /* long name without "--"; NULL with UTIL_OPT_END */
	int key;              /* short letter, or 0 */
	util_opt_kind kind;
	size_t off;           /* target: offset in the options struct */
	const char *def;      /* default, parsed as if given on the command line; NULL: none */
	const char *range;    /* INT/FLOAT: "[1, 64]", "(0, inf)", "[0, 1)"; NULL: any */
	const char *choices;  /* ENUM: "sigmoid|ipo|hinge" */
	const char *arg;      /* value's name in --help ("N", "PATH"); default from the kind */
	const char *help;     /* one line for --help; GROUP: the heading */
	unsigned flags;       /* UTIL_OPT_* flags above */
	/* CALL: parse value into target; return 0, or -1 with a reason (no
	 * option name, no newline) written to err. */
	int (*call)(void *target, const char *value, char *err, size_t errlen);
	const util_opt *sub;  /* INCLUDE: the included table */
};

#define UTIL_OPT_TABLE_END {NULL, 0, UTIL_OPT_END, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL}

/* The common options, with the same name, letter, wording and flags in every
 * program (DESIGN.md): */
/* --db PATH (const char *): the store; resolve it with util_db_path(). */
#define UTIL_OPT_DB(type, field)                                                        \
	{"db", 0, UTIL_OPT_PATH, offsetof(type, field), .arg = "PATH",                 \
	 .flags = UTIL_OPT_NOPARAM | UTIL_OPT_NOCONFIG,                                          \
	 .help = "database (default $DPO_DB, else ./dpo.db)"}
/* --json (int): machine-readable output. */
#define UTIL_OPT_JSON(type, field)                                                      \
	{"json", 0, UTIL_OPT_FLAG, offsetof(type, field), .flags = UTIL_OPT_NOPARAM,          \
	 .help = "print the result as one JSON document"}
/* -q, --quiet (int): no progress on stderr. */
#define UTIL_OPT_QUIET(type, field)                                                     \
	{"quiet", 'q', UTIL_OPT_FLAG, offsetof(type, field), .flags = UTIL_OPT_NOPARAM,       \
	 .help = "no progress output"}
/* --threads N (long, 0 = all cores). */
#define UTIL_OPT_THREADS(type, field)                                                   \
	{"threads", 0, UTIL_OPT_INT, offsetof(type, field), .range = "[1, 4096]", .arg = "N", \
	 .flags = UTIL_OPT_NOPARAM, .help = "compute threads (default: all cores)"}
/* --seed N (long), with its default as a string. */
#define UTIL_OPT_SEED(type, field, dflt)                                                \
	{"seed", 0, UTIL_OPT_INT, offsetof(type, field), .def = dflt, .range = "[0, inf)",    \
	 .arg = "N", .help = "random seed"}
/* Include the shared block tbl at the struct member type.field. */
#define UTIL_OPT_INCLUDE_TABLE(type, field, tbl)                                        \
	{"", 0, UTIL_OPT_INCLUDE, offsetof(type, field), .sub = (tbl)}
/* A heading in --help. */
#define UTIL_OPT_HEADING(text) {"", 0, UTIL_OPT_GROUP, 0, .help = (text)}

/* Where an option's value came from. */
enum { UTIL_OPT_UNSET = 0, UTIL_OPT_FROM_DEFAULT, UTIL_OPT_FROM_CONFIG, UTIL_OPT_FROM_ARGS };

/* cli flags */
enum {
	UTIL_CLI_STOP_AT_ARG = 1 << 0, /* options end at the first argument (a subcommand's name) */
	UTIL_CLI_NO_CONFIG = 1 << 1,   /* no config file section for this command */
};

struct util_cli_state;

/* One program's or subcommand's command line. Fill the first fields
 * (usually as a static initialiser); the rest belongs to the parser. */
typedef struct util_cli {
	const char *name;        /* "dpo-train", "dpo-db export": messages, usage, config section */
	const char *synopsis;    /* after the name in "Usage:", e.g. "[OPTIONS] FILE" */
	const char *summary;     /* paragraph after the usage line (may hold newlines) */
	const char *footer;      /* text after the options; NULL: the exit status line */
	const util_opt *opts;    /* the table, ending with UTIL_OPT_TABLE_END */
	int min_args, max_args;  /* positional arguments allowed (max -1: any) */
	unsigned flags;          /* UTIL_CLI_* */
	/* filled by util_cli_parse */
	char **args;             /* the positional arguments (into argv) */
	int nargs;
	int dashdash;            /* how many of args came before "--"; -1: no "--" */
	int argc;                /* the command line it parsed */
	char **argv;
	struct util_cli_state *st;
} util_cli;

/* Parse argv[1..argc-1] into the struct at base: the table's defaults first,
 * then the config file's section for cli->name (and the [dpo] section for the
 * options this command has), then the command line. On --help prints the
 * usage to stdout and exits 0; on --version prints the version and exits 0;
 * on a bad option or value prints "NAME: --opt: ..." and a hint to stderr and
 * exits 2. Positional arguments go to cli->args (argv is not modified).
 * Strings in the targets stay valid until util_cli_free(cli). */
void util_cli_parse(util_cli *cli, void *base, int argc, char **argv);

/* Like util_cli_parse but returns instead of exiting: 0 when parsed, 1 when
 * --help or --version was handled (text written to out), 2 on a usage error
 * (message, without the program prefix, in err). For tests. */
int util_cli_parse_r(util_cli *cli, void *base, int argc, char **argv, FILE *out, char *err,
		     size_t errlen);

/* Write the usage text (what --help prints) to f. */
void util_cli_usage(const util_cli *cli, FILE *f);

/* Where option name's value came from (UTIL_OPT_UNSET, _FROM_DEFAULT,
 * _FROM_CONFIG, _FROM_ARGS); UTIL_OPT_UNSET for an unknown name. */
int util_cli_source(const util_cli *cli, const char *name);

/* Append the parsed options as one JSON object {"name": value, ...} to b:
 * flags as true/false, INT as integers, FLOAT with %.17g, strings, lists as
 * arrays; options never set and those flagged NOPARAM or SECRET are left out. */
void util_cli_params_json(const util_cli *cli, util_buf *b);

/* Print "NAME: message" and the --help hint to stderr; exit 2. */
void util_cli_usage_error(const util_cli *cli, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

/* Free what the parser allocated (config values, lists). Safe on a cli that
 * was never parsed, and twice. */
void util_cli_free(util_cli *cli);

/* The config file's path: $DPO_CONFIG when set (empty: no config file), else
 * $XDG_CONFIG_HOME/dpo/config, else $HOME/.config/dpo/config. Returns NULL
 * when there is none. The string is static or the environment's. */
const char *util_cli_config_path(void);

/* A subcommand of a program with several (dpo-db, dpo-model). */
typedef struct util_cmd {
	const char *name;                   /* NULL ends the table */
	int (*run)(int argc, char **argv);  /* argv[0] is the subcommand's name */
	const char *summary;                /* one line for the program's --help */
} util_cmd;

/* The entry of cmds called name, or NULL. */
const util_cmd *util_cmd_find(const util_cmd *cmds, const char *name);
/* Write "  name   summary" lines for every command to f. */
void util_cmd_list(const util_cmd *cmds, FILE *f);
/* The names of every command, "a, b, c", into b (for error messages). */
void util_cmd_names(const util_cmd *cmds, util_buf *b);
/* After util_cli_parse of a program's global options (cli->flags with
 * UTIL_CLI_STOP_AT_ARG): the command named by the first argument. A missing
 * or unknown command is a usage error naming the commands (exit 2). *first
 * is set to the index in argv of the command's name, so that the program
 * runs cmd->run(argc - *first, argv + *first). */
const util_cmd *util_cmd_select(const util_cli *cli, const util_cmd *cmds, int argc, int *first);

#endif

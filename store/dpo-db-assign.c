/* dpo-db-assign.c: `dpo-db assign --annotators a,b,c [--overlap N]`:
 * pre-assign the pairs that need labels to a team (store_assign), as Label
 * Studio distributes tasks; dpo-annotate then offers each annotator their
 * own pairs. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/dpo_db.h"
#include "util/cli.h"
#include "util/opt.h"
#include "util/utf8.h"

typedef struct assign_opts {
	const char *db, *split;
	util_opt_list annotators;
	long overlap;
	int dry_run, json;
} assign_opts;

static const util_opt assign_table[] = {
	UTIL_OPT_DB(assign_opts, db),
	{"annotators", 0, UTIL_OPT_LIST, offsetof(assign_opts, annotators), .arg = "A,B,...",
	 .flags = UTIL_OPT_COMMAS, .help = "the team (required; repeatable)"},
	{"overlap", 0, UTIL_OPT_INT, offsetof(assign_opts, overlap), .def = "1", .range = "[1, 256]",
	 .help = "labels each pair should get"},
	{"split", 0, UTIL_OPT_STRING, offsetof(assign_opts, split), .arg = "S",
	 .help = "only pairs of prompts in split S (default: all)"},
	{"dry-run", 'n', UTIL_OPT_FLAG, offsetof(assign_opts, dry_run),
	 .help = "print the counts, change nothing"},
	UTIL_OPT_JSON(assign_opts, json),
	UTIL_OPT_TABLE_END,
};

static util_cli assign_cli = {
	.name = "dpo-db assign",
	.synopsis = "--annotators A,B,... [--overlap N] [--split S] [OPTIONS]",
	.summary = "Pre-assign the pairs that need labels to a team: each pair with fewer than N\n"
		   "human labels goes to annotators not yet on it until labels plus open\n"
		   "assignments reach N, each time to those with the fewest open assignments,\n"
		   "so that everyone gets a fair share. dpo-annotate then offers an annotator\n"
		   "with assignments only their own pairs. Running it again adds only what is\n"
		   "missing (new pairs, new members).",
	.footer = "Exit status: 0 success, 1 failure, 2 usage error.\n",
	.opts = assign_table,
};

int db_cmd_assign(int argc, char **argv)
{
	assign_opts o = {0};
	util_cli_parse(&assign_cli, &o, argc, argv);
	if (o.annotators.n == 0)
		util_cli_usage_error(&assign_cli, "--annotators A,B,... is required");
	if (o.overlap > o.annotators.n)
		util_cli_usage_error(&assign_cli, "--overlap %ld needs at least %ld annotators (%d given)", o.overlap,
				     o.overlap, o.annotators.n);
	store *st = db_open_write(db_path(o.db));
	if (!st)
		return UTIL_EXIT_FAIL;
	store_assign_counts *k = calloc(1, sizeof *k);
	int status = UTIL_EXIT_FAIL;
	if (!k || store_assign(st, o.annotators.v, o.annotators.n, (int)o.overlap, o.split, o.dry_run, k)) {
		util_warn("%s: %s", db_path(o.db), k ? store_errmsg(st) : "out of memory");
		goto out;
	}
	util_buf b = UTIL_BUF_INIT;
	if (o.json) {
		util_buf_addf(&b, "{\"dry_run\": %s, \"overlap\": %ld, \"assignments_new\": %ld, \"pairs_short\": %ld, "
				  "\"annotators\": [",
			      o.dry_run ? "true" : "false", o.overlap, k->assignments_new, k->pairs_short);
		for (int i = 0; i < o.annotators.n; i++) {
			util_buf_adds(&b, i ? ", {\"name\": " : "{\"name\": ");
			add_str(&b, o.annotators.v[i]);
			util_buf_addf(&b, ", \"new\": %ld, \"open\": %ld}", k->added[i], k->pending[i]);
		}
		util_buf_adds(&b, "]}\n");
		fputs(util_buf_str(&b), stdout);
	} else {
		printf("%sassigned %ld pair slots at overlap %ld:", o.dry_run ? "(dry run, nothing changed) " : "",
		       k->assignments_new, o.overlap);
		for (int i = 0; i < o.annotators.n; i++) {
			util_buf_reset(&b);
			printf("%s %s +%ld (%ld open)", i ? "," : "", util_term_escape(o.annotators.v[i], &b),
			       k->added[i], k->pending[i]);
		}
		printf("\n");
		if (k->pairs_short)
			printf("%ld pairs stay below the overlap: every annotator is on them already\n", k->pairs_short);
	}
	util_buf_free(&b);
	status = UTIL_EXIT_OK;
out:
	free(k);
	store_free(st);
	return status;
}

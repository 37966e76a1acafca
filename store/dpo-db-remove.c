/* dpo-db-remove.c: `dpo-db remove --run N | --source S | --annotator A
 * [--dry-run]`: take back what an import run, a source or an annotator
 * added (store_remove, provenance.h). */
#include "store/dpo_db.h"
#include "store/provenance.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/cli.h"
#include "util/opt.h"
#include "util/utf8.h"
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef struct remove_opts {
	const char *db, *source, *annotator;
	long run;
	int dry_run, json;
} remove_opts;

static const util_opt remove_table[] = {
	UTIL_OPT_DB(remove_opts, db),
	{"run", 0, UTIL_OPT_INT, offsetof(remove_opts, run), .range = "[1, inf)", .arg = "N",
	 .help = "what run N added (dpo-db runs lists them):\n"
		 "its labels, and the prompts and completions\n"
		 "its records added that nothing else uses"},
	{"source", 0, UTIL_OPT_STRING, offsetof(remove_opts, source), .arg = "S",
	 .help = "the same for every import of source S (and\n"
		 "its rows imported before runs were kept)"},
	{"annotator", 0, UTIL_OPT_STRING, offsetof(remove_opts, annotator), .arg = "A",
	 .help = "every label of annotator A (labels only)"},
	{"dry-run", 0, UTIL_OPT_FLAG, offsetof(remove_opts, dry_run), .flags = UTIL_OPT_NOPARAM,
	 .help = "print what would be removed; change nothing"},
	UTIL_OPT_JSON(remove_opts, json),
	UTIL_OPT_TABLE_END,
};

typedef struct remove_out {
	int json, dry_run;
} remove_out;

/* Print the counts before anything is deleted. */
static int print_counts(void *ud, const store_remove_counts *c)
{
	const remove_out *o = ud;
	if (o->json) {
		printf("{\"dry_run\": %s, \"runs\": %ld, \"comparisons\": %ld, \"completions\": %ld, \"prompts\": %ld, "
		       "\"annotators\": %ld, \"generators\": %ld, \"kept_prompts\": %ld, \"kept_completions\": %ld}\n",
		       o->dry_run ? "true" : "false", c->runs, c->comparisons, c->completions, c->prompts,
		       c->annotators, c->generators, c->kept_prompts, c->kept_completions);
	} else {
		printf("%s %ld comparison%s, %ld completion%s, %ld prompt%s, %ld annotator%s, %ld generator%s "
		       "(of %ld run%s; %ld prompt%s and %ld completion%s they added stay: still used elsewhere)\n",
		       o->dry_run ? "would remove" : "removing", c->comparisons, c->comparisons == 1 ? "" : "s",
		       c->completions, c->completions == 1 ? "" : "s", c->prompts, c->prompts == 1 ? "" : "s",
		       c->annotators, c->annotators == 1 ? "" : "s", c->generators, c->generators == 1 ? "" : "s",
		       c->runs, c->runs == 1 ? "" : "s", c->kept_prompts, c->kept_prompts == 1 ? "" : "s",
		       c->kept_completions, c->kept_completions == 1 ? "" : "s");
	}
	if (fflush(stdout)) {
		util_warn("standard output: %s", strerror(errno));
		return 1;
	}
	return 0;
}

int db_cmd_remove(int argc, char **argv)
{
	static util_cli cli = {
		.name = "dpo-db remove",
		.synopsis = "--run N | --source S | --annotator A [--dry-run]",
		.summary = "Take back what an import run, a source or an annotator added, in one\n"
			   "transaction: their labels, then the prompts and completions they added that\n"
			   "nothing else uses any more (other runs' records, other labels, generations).\n"
			   "The counts are printed first; with --dry-run only they are.",
		.opts = remove_table,
	};
	remove_opts o = {0};
	util_cli_parse(&cli, &o, argc, argv);
	if ((o.run > 0) + (o.source != NULL) + (o.annotator != NULL) != 1)
		util_cli_usage_error(&cli, "give exactly one of --run, --source and --annotator");
	store *st = db_open_write(db_path(o.db)); /* a dry run too: its transaction takes the write lock */
	if (!st)
		return UTIL_EXIT_FAIL;
	store_remove_spec spec = {.run_id = o.run, .source = o.source, .annotator = o.annotator};
	remove_out out = {.json = o.json, .dry_run = o.dry_run};
	store_remove_counts c;
	int rc = store_remove(st, &spec, o.dry_run, print_counts, &out, &c);
	if (rc < 0)
		util_warn("%s", store_errmsg(st));
	else if (!rc && !o.dry_run && !o.json)
		printf("removed\n");
	store_free(st);
	return rc ? UTIL_EXIT_FAIL : UTIL_EXIT_OK;
}

/* dpo-db-derive.c: `dpo-db derive-pairs --from-ratings ASPECT`: comparisons
 * from the ratings of one aspect (UltraFeedback's binarization), by
 * store_derive_pairs. */
#include "config.h"
#include "store/dpo_db.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/cli.h"
#include "util/opt.h"
#include "util/utf8.h"
#include "util/xmalloc.h"
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct derive_opts {
	const char *db, *aspect;
	double margin;
	long seed;
	int all, dry_run, json;
} derive_opts;

static const util_opt derive_table[] = {
	UTIL_OPT_DB(derive_opts, db),
	{"from-ratings", 0, UTIL_OPT_STRING, offsetof(derive_opts, aspect), .arg = "ASPECT",
	 .help = "the ratings to derive from, e.g. helpfulness,\n"
		 "overall_score or score (required; dpo-db stats\n"
		 "lists the aspects)"},
	{"min-margin", 0, UTIL_OPT_FLOAT, offsetof(derive_opts, margin), .def = "0", .range = "[0, inf)",
	 .arg = "M", .help = "a pair's values must differ by M or more\n(and by more than 0)"},
	{"all", 0, UTIL_OPT_FLAG, offsetof(derive_opts, all),
	 .help = "every pair with the margin, not the best\nagainst one lower-rated completion"},
	UTIL_OPT_SEED(derive_opts, seed, "0"),
	{"dry-run", 0, UTIL_OPT_FLAG, offsetof(derive_opts, dry_run), .flags = UTIL_OPT_NOPARAM,
	 .help = "count the pairs, write nothing"},
	UTIL_OPT_JSON(derive_opts, json),
	UTIL_OPT_TABLE_END,
};

int db_cmd_derive(int argc, char **argv)
{
	static util_cli cli = {
		.name = "dpo-db derive-pairs",
		.synopsis = "--from-ratings ASPECT [OPTIONS]",
		.summary = "Add comparisons derived from ratings, as UltraFeedback's binarization does.\n"
			   "A completion's value is the mean of its ratings on ASPECT. Per prompt (its\n"
			   "completions in content-hash order), the first with the highest value is\n"
			   "chosen, and rejected is one of those lower by at least --min-margin: the\n"
			   "k-th, k = the first 64 bits of SHA-256(\"SEED:PROMPT-HASH\") modulo their\n"
			   "number. With --all every two completions whose values differ by at least\n"
			   "the margin make a pair. The comparisons are by annotator ratings:ASPECT\n"
			   "(kind import), in one transaction, and name the run this is (dpo-db stats\n"
			   "counts runs); running it again adds nothing new.",
		.footer = "Exit status: 0 success, 1 failure (e.g. no ratings of ASPECT), 2 usage error.\n",
		.opts = derive_table,
	};
	derive_opts o = {0};
	util_cli_parse(&cli, &o, argc, argv);
	if (!o.aspect || !*o.aspect)
		util_cli_usage_error(&cli, "--from-ratings ASPECT is required");
	store *st = o.dry_run ? db_open(db_path(o.db)) : db_open_write(db_path(o.db));
	if (!st)
		return UTIL_EXIT_FAIL;
	store_derive_args a = {.aspect = o.aspect, .min_margin = o.margin, .all = o.all, .seed = (uint64_t)o.seed,
			       .dry_run = o.dry_run};
	util_buf params = UTIL_BUF_INIT, sum = UTIL_BUF_INIT;
	store_derive_counts c = {0};
	int rc = 0;
	if (!o.dry_run) { /* a run, which the comparisons name */
		util_cli_params_json(&cli, &params);
		rc = store_run_start(st, "derive", argc, argv, util_buf_str(&params), &a.run_id);
	}
	if (!rc)
		rc = store_derive_pairs(st, &a, &c);
	char *name = xasprintf("ratings:%s", o.aspect);
	util_buf_adds(&sum, "{\"aspect\": ");
	add_str(&sum, o.aspect);
	util_buf_adds(&sum, ", \"annotator\": ");
	add_str(&sum, name);
	util_buf_addf(&sum, ", \"all\": %s, \"min_margin\": %.17g, \"seed\": %ld, \"dry_run\": %s, \"prompts\": %ld, "
		      "\"pairs\": %ld, \"pairs_new\": %ld, \"pairs_existing\": %ld}",
		      o.all ? "true" : "false", o.margin, o.seed, o.dry_run ? "true" : "false", c.prompts, c.pairs,
		      c.pairs_new, c.pairs_existing);
	free(name);
	if (rc)
		util_warn("%s", store_errmsg(st));
	if (a.run_id && store_run_end(st, a.run_id, rc ? "failed" : "ok", util_buf_str(&sum)) && !rc) {
		util_warn("%s", store_errmsg(st));
		rc = -1;
	}
	if (!rc && o.json) {
		printf("%s\n", util_buf_str(&sum));
	} else if (!rc) {
		util_buf e = UTIL_BUF_INIT;
		util_term_escape(o.aspect, &e);
		printf("%sratings:%s: %ld prompt%s with two or more rated completions, %ld pair%s (%s)",
		       o.dry_run ? "dry run: " : "", util_buf_str(&e), c.prompts, c.prompts == 1 ? "" : "s", c.pairs,
		       c.pairs == 1 ? "" : "s", o.all ? "all with the margin" : "best vs one lower");
		if (!o.dry_run)
			printf(", %ld new, %ld already there", c.pairs_new, c.pairs_existing);
		printf("\n");
		util_buf_free(&e);
	}
	util_buf_free(&params);
	util_buf_free(&sum);
	store_free(st);
	if (!rc && fflush(stdout))
		rc = -1;
	return rc ? UTIL_EXIT_FAIL : UTIL_EXIT_OK;
}

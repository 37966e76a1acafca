/* dpo-db-merge.c: `dpo-db merge [--dry-run] OTHER.db...`: bring other
 * stores (an annotator's offline copy) into this one (store_merge), one
 * transaction per store, printing what came in and each conflict. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/dpo_db.h"
#include "util/cli.h"
#include "util/file.h"
#include "util/opt.h"
#include "util/utf8.h"

typedef struct merge_opts {
	const char *db;
	int dry_run, json;
} merge_opts;

static const util_opt merge_table[] = {
	UTIL_OPT_DB(merge_opts, db),
	{"dry-run", 'n', UTIL_OPT_FLAG, offsetof(merge_opts, dry_run),
	 .help = "print what would come in, change nothing"},
	UTIL_OPT_JSON(merge_opts, json),
	UTIL_OPT_TABLE_END,
};

static util_cli merge_cli = {
	.name = "dpo-db merge",
	.synopsis = "[OPTIONS] OTHER.db...",
	.summary = "Bring the prompts, completions, labels (annotator, time, shown order, note),\n"
		   "runs and metrics of other stores into this one, matched by content hashes\n"
		   "and names, so that merging twice adds nothing. The other stores are only\n"
		   "read. A label the same annotator gave the same pair in both with another\n"
		   "verdict is a conflict: the later one is kept, and each is printed.",
	.footer = "Exit status: 0 success, 1 failure, 2 usage error.\n",
	.opts = merge_table,
	.min_args = 1,
	.max_args = -1,
};

/* Print a conflict as a line on stderr. */
static void print_conflict(void *ud, const store_merge_conflict *c)
{
	(void)ud;
	util_buf a = UTIL_BUF_INIT, p = UTIL_BUF_INIT;
	fprintf(stderr, "dpo-db: %s: conflict: %s labelled a pair of prompt %lld (%.12s) %s here (%s) and %s there "
			"(%s); kept the later (%s)\n",
		util_term_escape(c->other_path, &p), util_term_escape(c->annotator, &a), (long long)c->prompt_id,
		c->prompt_hash, c->here_verdict, c->here_at, c->other_verdict, c->other_at,
		c->kept_other ? "there" : "here");
	util_buf_free(&a);
	util_buf_free(&p);
}

static void print_counts(const char *path, const store_merge_counts *k, int dry, int json)
{
	util_buf e = UTIL_BUF_INIT;
	if (json) {
		util_buf_adds(&e, "{\"file\": ");
		add_str(&e, path);
		util_buf_addf(&e, ", \"dry_run\": %s, \"prompts_new\": %ld, \"prompts_duplicate\": %ld, "
				  "\"completions_new\": %ld, \"completions_duplicate\": %ld, \"annotators_new\": %ld, "
				  "\"labels_new\": %ld, \"labels_duplicate\": %ld, \"labels_conflicting\": %ld, "
				  "\"conflicts_taken\": %ld, \"runs_new\": %ld, \"metrics_new\": %ld, \"ratings_new\": %ld, "
				  "\"ratings_conflicting\": %ld, \"feedback_new\": %ld, \"feedback_conflicting\": %ld, "
				  "\"gold_new\": %ld}\n",
			      dry ? "true" : "false", k->prompts_new, k->prompts_dup, k->completions_new,
			      k->completions_dup, k->annotators_new, k->comparisons_new, k->comparisons_dup,
			      k->comparisons_conflict, k->conflicts_taken, k->runs_new, k->metrics_new, k->ratings_new,
			      k->ratings_conflict, k->feedback_new, k->feedback_conflict, k->gold_new);
		fputs(util_buf_str(&e), stdout);
	} else {
		printf("%s: %sprompts %ld new / %ld duplicate, completions %ld new / %ld duplicate, labels %ld new / "
		       "%ld duplicate, %ld conflicting (%ld replaced by the later label), annotators %ld new, runs %ld "
		       "new, metrics %ld new, gold items %ld new",
		       util_term_escape(path, &e), dry ? "(dry run, nothing changed) " : "", k->prompts_new,
		       k->prompts_dup, k->completions_new, k->completions_dup, k->comparisons_new, k->comparisons_dup,
		       k->comparisons_conflict, k->conflicts_taken, k->annotators_new, k->runs_new, k->metrics_new,
		       k->gold_new);
		/* said only when it happens: theirs was not taken */
		if (k->ratings_conflict || k->feedback_conflict)
			printf("; %ld ratings and %ld binary labels there differ from the ones here (kept)",
			       k->ratings_conflict, k->feedback_conflict);
		putchar('\n');
	}
	util_buf_free(&e);
}

int db_cmd_merge(int argc, char **argv)
{
	merge_opts o = {0};
	util_cli_parse(&merge_cli, &o, argc, argv);
	const char *dbpath = db_path(o.db);
	int status = UTIL_EXIT_FAIL;
	/* every other store exists and is not this one, before anything */
	for (int i = 0; i < merge_cli.nargs; i++) {
		const char *other = merge_cli.args[i];
		struct stat sb;
		if (stat(other, &sb) != 0) {
			util_warn("%s: no such database", other);
			return UTIL_EXIT_FAIL;
		}
		if (util_same_file(other, dbpath)) {
			util_warn("%s: is the database itself (--db %s)", other, dbpath);
			return UTIL_EXIT_FAIL;
		}
	}
	store *st = db_open_write(dbpath);
	if (!st)
		return UTIL_EXIT_FAIL;
	for (int i = 0; i < merge_cli.nargs; i++) {
		store_merge_counts k;
		if (store_merge(st, merge_cli.args[i], o.dry_run, &k, print_conflict, NULL)) {
			util_warn("%s", store_errmsg(st));
			goto out;
		}
		print_counts(merge_cli.args[i], &k, o.dry_run, o.json);
	}
	status = UTIL_EXIT_OK;
out:
	store_free(st);
	return status;
}

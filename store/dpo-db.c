/* dpo-db.c: the dpo-db program: create, check, import, export and inspect
 * the preference store. The subcommands are a util_cmd table (main, at the
 * end); each parses its own options with its own util_cli table. Here: init,
 * check, split and stats; import, export, agreement and report live in
 * dpo-db-NAME.c (dpo_db.h). */
#include "config.h"
#include "store/dpo_db.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/cli.h"
#include "util/opt.h"
#include "util/utf8.h"
#include "util/xmalloc.h"
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *global_db; /* --db before the subcommand */

const char *db_path(const char *opt)
{
	return util_db_path(opt ? opt : global_db);
}

static store *open_mode(const char *path, int (*open)(store *, const char *))
{
	store *st = store_new();
	if (open(st, path)) {
		util_warn("%s", store_errmsg(st));
		store_free(st);
		return NULL;
	}
	return st;
}

store *db_open(const char *path)
{
	return open_mode(path, store_open_read);
}

store *db_open_write(const char *path)
{
	return open_mode(path, store_open_existing);
}

store *db_create(const char *path)
{
	return open_mode(path, store_open);
}

static const util_opt db_only_table[] = {
	UTIL_OPT_DB(db_opts, db),
	UTIL_OPT_TABLE_END,
};

const util_opt db_json_table[] = {
	UTIL_OPT_DB(db_opts, db),
	UTIL_OPT_JSON(db_opts, json),
	UTIL_OPT_TABLE_END,
};

/* ---- init, check -------------------------------------------------------- */

static int cmd_init(int argc, char **argv)
{
	static util_cli cli = {.name = "dpo-db init",
			       .summary = "Create the database, or migrate it to the current schema, and print its\n"
					  "path and schema version.",
			       .opts = db_only_table};
	db_opts o = {0};
	util_cli_parse(&cli, &o, argc, argv);
	const char *path = db_path(o.db);
	store *st = db_create(path);
	if (!st)
		return UTIL_EXIT_FAIL;
	util_buf e = UTIL_BUF_INIT;
	printf("%s: schema version %d\n", util_term_escape(path, &e), store_schema_version());
	util_buf_free(&e);
	store_free(st);
	return UTIL_EXIT_OK;
}

static int cmd_check(int argc, char **argv)
{
	static util_cli cli = {.name = "dpo-db check",
			       .summary = "Run SQLite's integrity and foreign-key checks and verify the schema version;\n"
					  "print a report. Exits 1 when anything is wrong (also when the file is not\n"
					  "a dpo database).",
			       .opts = db_only_table};
	db_opts o = {0};
	util_cli_parse(&cli, &o, argc, argv);
	store *st = db_open(db_path(o.db));
	if (!st)
		return UTIL_EXIT_FAIL;
	char *report = NULL;
	int rc = store_check(st, &report);
	/* the report names runs and paths: controls escaped, line by line */
	util_buf e = UTIL_BUF_INIT;
	for (const char *p = report ? report : ""; *p;) {
		size_t k = strcspn(p, "\n");
		char *line = xstrndup(p, k);
		util_term_escape(line, &e);
		free(line);
		p += k;
		if (*p)
			util_buf_addc(&e, *p++);
	}
	fputs(util_buf_str(&e), stdout);
	util_buf_free(&e);
	if (rc)
		util_warn("%s", store_errmsg(st));
	free(report);
	store_free(st);
	return rc ? UTIL_EXIT_FAIL : UTIL_EXIT_OK;
}

/* ---- split -------------------------------------------------------------- */

typedef struct split_opts {
	const char *db;
	double frac;
	long seed;
	util_opt_list from;
	int dry_run;
	int json;
} split_opts;

static const util_opt split_table[] = {
	UTIL_OPT_DB(split_opts, db),
	{"test-fraction", 0, UTIL_OPT_FLOAT, offsetof(split_opts, frac), .range = "[0, 1]", .arg = "F",
	 .help = "share of the reassigned prompts that go to test (required)"},
	UTIL_OPT_SEED(split_opts, seed, "0"),
	{"from", 0, UTIL_OPT_LIST, offsetof(split_opts, from), .arg = "SPLIT", .flags = UTIL_OPT_COMMAS,
	 .help = "reassign the prompts of SPLIT (repeatable, or a comma list; default train)"},
	{"dry-run", 0, UTIL_OPT_FLAG, offsetof(split_opts, dry_run), .flags = UTIL_OPT_NOPARAM,
	 .help = "print how many prompts would move where, and write nothing"},
	UTIL_OPT_JSON(split_opts, json),
	UTIL_OPT_TABLE_END,
};

/* What store_split reports, gathered for printing. */
typedef struct split_out {
	int dry_run;
	util_buf lines; /* text: the "from SPLIT: ..." lines */
	util_buf totals; /* text: the other splits' "SPLIT: N" lines */
	util_buf moves, alone, others; /* JSON */
	long prev; /* a reassigned split's count to test, until its count to train comes */
} split_out;

static int split_line(void *ud, const char *from, const char *to, long n)
{
	split_out *o = ud;
	util_buf e = UTIL_BUF_INIT;
	util_term_escape(from, &e);
	if (!to) {
		util_buf_addf(&o->lines, "from %s: %ld left alone\n", util_buf_str(&e), n);
		if (strcmp(from, "train") && strcmp(from, "test"))
			util_buf_addf(&o->totals, "%s: %ld\n", util_buf_str(&e), n);
		util_buf_adds(&o->alone, o->alone.len ? ", " : "");
		util_buf_add_json_string(&o->alone, from, strlen(from));
		util_buf_addf(&o->alone, ": %ld", n);
		if (strcmp(from, "train") && strcmp(from, "test")) {
			util_buf_adds(&o->others, ", ");
			util_buf_add_json_string(&o->others, from, strlen(from));
			util_buf_addf(&o->others, ": %ld", n);
		}
	} else {
		util_buf_adds(&o->moves, o->moves.len ? ", " : "");
		util_buf_adds(&o->moves, "{\"from\": ");
		util_buf_add_json_string(&o->moves, from, strlen(from));
		util_buf_addf(&o->moves, ", \"to\": \"%s\", \"prompts\": %ld}", to, n);
		if (!strcmp(to, "test")) {
			o->prev = n;
		} else {
			/* both counts known: to test (o->prev), to train (n) */
			const char *mv = o->dry_run ? "would move" : "moved";
			const char *st = o->dry_run ? "would stay" : "stayed";
			util_buf_addf(&o->lines, "from %s: ", util_buf_str(&e));
			if (!strcmp(from, "test"))
				util_buf_addf(&o->lines, "%ld %s to train, %ld %s in test\n", n, mv, o->prev, st);
			else if (!strcmp(from, "train"))
				util_buf_addf(&o->lines, "%ld %s to test, %ld %s in train\n", o->prev, mv, n, st);
			else
				util_buf_addf(&o->lines, "%ld %s to test, %ld %s to train\n", o->prev, mv, n, mv);
		}
	}
	util_buf_free(&e);
	return 0;
}

static int cmd_split(int argc, char **argv)
{
	static util_cli cli = {
		.name = "dpo-db split",
		.synopsis = "--test-fraction F [OPTIONS]",
		.summary = "Reassign the prompts of split train (or of the splits --from names) to test or\n"
			   "train: a prompt goes to test when the first 64 bits of SHA-256(seed || prompt\n"
			   "hash) fall below F * 2^64. Prompts of any other split (an imported test or\n"
			   "validation set) are never moved. The result depends only on the prompt's\n"
			   "content, F and the seed, and growing F only moves prompts from train to test.\n"
			   "Prints the counts per split and how many prompts moved where.",
		.opts = split_table,
	};
	split_opts o = {0};
	util_cli_parse(&cli, &o, argc, argv);
	if (util_cli_source(&cli, "test-fraction") == UTIL_OPT_UNSET)
		util_cli_usage_error(&cli, "--test-fraction F is required");
	for (int i = 0; i < o.from.n; i++)
		if (!*o.from.v[i])
			util_cli_usage_error(&cli, "--from: an empty split name");
	store *st = o.dry_run ? db_open(db_path(o.db)) : db_open_write(db_path(o.db));
	if (!st)
		return UTIL_EXIT_FAIL;
	long ntr = 0, nte = 0;
	split_out out = {.dry_run = o.dry_run};
	store_split_args a = {.test_fraction = o.frac, .seed = (uint64_t)o.seed, .from = o.from.v,
			      .n_from = o.from.n, .dry_run = o.dry_run};
	int rc = store_split(st, &a, split_line, &out, &ntr, &nte);
	if (rc)
		util_warn("%s", store_errmsg(st));
	else if (o.json)
		printf("{\"train\": %ld, \"test\": %ld, \"test_fraction\": %.17g, \"seed\": %ld, \"dry_run\": %s, "
		       "\"splits\": {\"train\": %ld, \"test\": %ld%s}, \"moves\": [%s], \"left_alone\": {%s}}\n",
		       ntr, nte, o.frac, o.seed, o.dry_run ? "true" : "false", ntr, nte, util_buf_str(&out.others),
		       util_buf_str(&out.moves), util_buf_str(&out.alone));
	else
		printf("%strain: %ld\ntest: %ld\n%s%s", o.dry_run ? "dry run: nothing written\n" : "", ntr, nte,
		       util_buf_str(&out.totals), util_buf_str(&out.lines));
	util_buf_free(&out.lines), util_buf_free(&out.totals), util_buf_free(&out.moves);
	util_buf_free(&out.alone), util_buf_free(&out.others);
	store_free(st);
	return rc ? UTIL_EXIT_FAIL : UTIL_EXIT_OK;
}

/* ---- stats -------------------------------------------------------------- */

typedef struct stat_row {
	char *section, *key, *detail, *column;
	long value;
} stat_row;

typedef struct stat_set {
	stat_row *r;
	size_t n, cap;
	int escape; /* text output: names made safe for a terminal (util_term_escape) */
} stat_set;

/* s, or with set->escape s with its control characters escaped; caller frees. */
static char *stat_name(const stat_set *set, const char *s)
{
	if (!set->escape)
		return xstrdup(s);
	util_buf b = UTIL_BUF_INIT;
	util_term_escape(s, &b);
	return util_buf_detach(&b);
}

static int collect_stat(void *ud, const store_stat *s)
{
	stat_set *set = ud;
	if (set->n == set->cap) {
		set->cap = set->cap ? 2 * set->cap : 64;
		set->r = xreallocarray(set->r, set->cap, sizeof *set->r);
	}
	stat_row *r = &set->r[set->n++];
	r->section = xstrdup(s->section);
	r->key = stat_name(set, s->key);
	r->detail = s->detail ? stat_name(set, s->detail) : NULL;
	r->column = xstrdup(s->column);
	r->value = s->value;
	return 0;
}

static void free_stats(stat_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		free(set->r[i].section);
		free(set->r[i].key);
		free(set->r[i].detail);
		free(set->r[i].column);
	}
	free(set->r);
}

static long stat_value(const stat_set *set, const char *section, const char *key, const char *column)
{
	for (size_t i = 0; i < set->n; i++)
		if (!strcmp(set->r[i].section, section) && !strcmp(set->r[i].key, key) &&
		    !strcmp(set->r[i].column, column))
			return set->r[i].value;
	return 0;
}

/* The distinct keys of a section, in order; the array is malloc'ed, the
 * strings belong to set. */
static size_t section_keys(const stat_set *set, const char *section, const stat_row ***out)
{
	const stat_row **k = NULL;
	size_t n = 0;
	for (size_t i = 0; i < set->n; i++) {
		if (strcmp(set->r[i].section, section))
			continue;
		if (n && !strcmp(k[n - 1]->key, set->r[i].key))
			continue;
		k = xreallocarray(k, n + 1, sizeof *k);
		k[n++] = &set->r[i];
	}
	*out = k;
	return n;
}

static void json_section(util_buf *b, const stat_set *set, const char *section, const char *name,
			 const char *const *cols, int with_kind)
{
	const stat_row **keys;
	size_t n = section_keys(set, section, &keys);
	util_buf_addf(b, ", \"%s\": {", name);
	for (size_t i = 0; i < n; i++) {
		if (i)
			util_buf_adds(b, ", ");
		add_str(b, keys[i]->key);
		util_buf_adds(b, ": {");
		if (with_kind) {
			util_buf_adds(b, "\"kind\": ");
			add_str(b, keys[i]->detail ? keys[i]->detail : "");
			util_buf_adds(b, ", ");
		}
		for (int c = 0; cols[c]; c++)
			util_buf_addf(b, "%s\"%s\": %ld", c ? ", " : "", cols[c],
				      stat_value(set, section, keys[i]->key, cols[c]));
		util_buf_adds(b, "}");
	}
	util_buf_adds(b, "}");
	free(keys);
}

static size_t key_width(const stat_set *set, const char *section, size_t min)
{
	size_t w = min;
	for (size_t i = 0; i < set->n; i++)
		if (!strcmp(set->r[i].section, section) && strlen(set->r[i].key) > w)
			w = strlen(set->r[i].key);
	return w;
}

static int col_width(const char *col)
{
	return strlen(col) > 8 ? (int)strlen(col) : 8;
}

static void text_section(const stat_set *set, const char *section, const char *title, const char *const *cols,
			 int with_kind)
{
	const stat_row **keys;
	size_t n = section_keys(set, section, &keys);
	int w = (int)key_width(set, section, strlen(title));
	printf("%-*s", w + 2, title);
	if (with_kind)
		printf("  %-6s", "kind");
	for (int c = 0; cols[c]; c++)
		printf("  %*s", col_width(cols[c]), cols[c]);
	printf("\n");
	if (!n)
		printf("  (none)\n");
	for (size_t i = 0; i < n; i++) {
		printf("  %-*s", w, keys[i]->key);
		if (with_kind)
			printf("  %-6s", keys[i]->detail ? keys[i]->detail : "");
		for (int c = 0; cols[c]; c++)
			printf("  %*ld", col_width(cols[c]), stat_value(set, section, keys[i]->key, cols[c]));
		printf("\n");
	}
	printf("\n");
	free(keys);
}

static int cmd_stats(int argc, char **argv)
{
	static const char *const total_cols[] = {"prompts", "completions", "comparisons", "annotators",
						 "generators", NULL};
	static const char *const group_cols[] = {"prompts", "completions", "comparisons", NULL};
	static const char *const source_cols[] = {"prompts", "completions", "comparisons", "labels", NULL};
	static const char *const ann_cols[] = {"comparisons", "a", "b", "tie", "both_bad", "skip", NULL};
	static const char *const verdicts[] = {"a", "b", "tie", "both_bad", "skip", NULL};
	static const char *const run_statuses[] = {"ok", "failed", "interrupted", "running", NULL};
	static const char *const rating_cols[] = {"ratings", "completions", "annotators", NULL};
	static util_cli cli = {.name = "dpo-db stats",
			       .summary = "Counts of prompts, completions and comparisons by split, source and\n"
					  "annotator (by source also the labels each source imported, on any\n"
					  "prompt); the verdicts; the pairs each resolution policy resolves; and per\n"
					  "annotator the position bias (the share of a/b wins that went to the\n"
					  "completion shown first).",
			       .opts = db_json_table};
	db_opts o = {0};
	util_cli_parse(&cli, &o, argc, argv);
	int json = o.json;
	const char *path = db_path(o.db);
	store *st = db_open(path);
	if (!st)
		return UTIL_EXIT_FAIL;
	stat_set set = {.escape = !json};
	if (store_stats_foreach(st, collect_stat, &set)) {
		util_warn("%s", store_errmsg(st));
		free_stats(&set);
		store_free(st);
		return UTIL_EXIT_FAIL;
	}
	const stat_row **bias;
	size_t nbias = section_keys(&set, "position_bias", &bias);
	if (json) {
		util_buf b = UTIL_BUF_INIT;
		util_buf_adds(&b, "{\"database\": ");
		add_str(&b, path);
		util_buf_addf(&b, ", \"schema_version\": %d, \"totals\": {", store_schema_version());
		for (int c = 0; total_cols[c]; c++)
			util_buf_addf(&b, "%s\"%s\": %ld", c ? ", " : "", total_cols[c],
				      stat_value(&set, "total", "all", total_cols[c]));
		util_buf_adds(&b, "}");
		json_section(&b, &set, "split", "by_split", group_cols, 0);
		json_section(&b, &set, "source", "by_source", source_cols, 0);
		json_section(&b, &set, "annotator", "by_annotator", ann_cols, 1);
		util_buf_adds(&b, ", \"verdicts\": {");
		for (int v = 0; verdicts[v]; v++)
			util_buf_addf(&b, "%s\"%s\": %ld", v ? ", " : "", verdicts[v],
				      stat_value(&set, "verdict", verdicts[v], "comparisons"));
		util_buf_adds(&b, "}, \"resolvable_pairs\": {");
		for (int p = 0; store_policies[p]; p++)
			util_buf_addf(&b, "%s\"%s\": %ld", p ? ", " : "", store_policies[p],
				      stat_value(&set, "pairs", store_policies[p], "pairs"));
		util_buf_adds(&b, "}, \"tied_pairs_dropped\": {");
		for (int p = 0; store_policies[p]; p++)
			util_buf_addf(&b, "%s\"%s\": %ld", p ? ", " : "", store_policies[p],
				      stat_value(&set, "tied_pairs", store_policies[p], "dropped"));
		util_buf_adds(&b, "}, \"runs\": {\"by_status\": {");
		for (int r = 0; run_statuses[r]; r++)
			util_buf_addf(&b, "%s\"%s\": %ld", r ? ", " : "", run_statuses[r],
				      stat_value(&set, "runs", run_statuses[r], "runs"));
		util_buf_addf(&b, "}, \"abandoned\": %ld, \"unchecked\": %ld",
			      stat_value(&set, "runs", "interrupted", "abandoned"),
			      stat_value(&set, "runs", "running", "unchecked"));
		util_buf_adds(&b, "}, \"position_bias\": {");
		for (size_t i = 0; i < nbias; i++) {
			long n = stat_value(&set, "position_bias", bias[i]->key, "n");
			long first = stat_value(&set, "position_bias", bias[i]->key, "first");
			if (i)
				util_buf_adds(&b, ", ");
			add_str(&b, bias[i]->key);
			util_buf_adds(&b, ": {\"kind\": ");
			add_str(&b, bias[i]->detail ? bias[i]->detail : "");
			util_buf_addf(&b, ", \"n\": %ld, \"first_shown_wins\": %ld, \"share\": ", n, first);
			if (n)
				util_buf_addf(&b, "%.17g", (double)first / (double)n);
			else
				util_buf_adds(&b, "null");
			util_buf_adds(&b, "}");
		}
		util_buf_adds(&b, "}");
		json_section(&b, &set, "ratings", "ratings_by_aspect", rating_cols, 0);
		util_buf_addf(&b, ", \"feedback\": {\"good\": %ld, \"bad\": %ld}}\n",
			      stat_value(&set, "feedback", "all", "good"), stat_value(&set, "feedback", "all", "bad"));
		fputs(b.data, stdout);
		util_buf_free(&b);
	} else {
		util_buf e = UTIL_BUF_INIT;
		printf("database: %s (schema version %d)\n", util_term_escape(path, &e), store_schema_version());
		util_buf_free(&e);
		printf("totals:");
		for (int c = 0; total_cols[c]; c++)
			printf("%s %ld %s", c ? "," : "", stat_value(&set, "total", "all", total_cols[c]),
			       total_cols[c]);
		printf("\n\n");
		text_section(&set, "split", "by split", group_cols, 0);
		text_section(&set, "source", "by source", source_cols, 0);
		text_section(&set, "annotator", "by annotator", ann_cols, 1);
		printf("verdicts:");
		for (int v = 0; verdicts[v]; v++)
			printf("%s %s %ld", v ? "," : "", verdicts[v],
			       stat_value(&set, "verdict", verdicts[v], "comparisons"));
		printf("\nresolvable pairs:");
		for (int p = 0; store_policies[p]; p++)
			printf("%s %s %ld", p ? "," : "", store_policies[p],
			       stat_value(&set, "pairs", store_policies[p], "pairs"));
		/* pairs with a tie verdict (e.g. equal UltraFeedback scores) that
		 * no export under the policy has */
		printf("\ntied pairs dropped at export:");
		for (int p = 0; store_policies[p]; p++)
			printf("%s %s %ld", p ? "," : "", store_policies[p],
			       stat_value(&set, "tied_pairs", store_policies[p], "dropped"));
		printf("\nruns:");
		for (int r = 0; run_statuses[r]; r++)
			printf("%s %ld %s", r ? "," : "", stat_value(&set, "runs", run_statuses[r], "runs"),
			       run_statuses[r]);
		long abandoned = stat_value(&set, "runs", "interrupted", "abandoned");
		long unchecked = stat_value(&set, "runs", "running", "unchecked");
		if (abandoned)
			printf("\n  %ld interrupted: left \"running\" by a process that is gone", abandoned);
		if (unchecked)
			printf("\n  %ld running: of another host or without a process id, not checked from here",
			       unchecked);
		printf("\n\n");
		text_section(&set, "ratings", "ratings by aspect", rating_cols, 0);
		printf("binary feedback (KTO): %ld good, %ld bad", stat_value(&set, "feedback", "all", "good"),
		       stat_value(&set, "feedback", "all", "bad"));
		printf("\n\nposition bias (share of a/b wins that went to the completion shown first, per judgment\n"
		       "by the order it was shown in; a judge run in both orders judged each pair twice):\n");
		if (!nbias)
			printf("  (no comparison with a known display order)\n");
		int w = (int)key_width(&set, "position_bias", 10);
		for (size_t i = 0; i < nbias; i++) {
			long n = stat_value(&set, "position_bias", bias[i]->key, "n");
			long first = stat_value(&set, "position_bias", bias[i]->key, "first");
			printf("  %-*s  %-6s  %5.1f%%  (%ld of %ld)\n", w, bias[i]->key,
			       bias[i]->detail ? bias[i]->detail : "", n ? 100.0 * (double)first / (double)n : 0.0,
			       first, n);
		}
	}
	free(bias);
	free_stats(&set);
	store_free(st);
	if (fflush(stdout)) {
		util_warn("standard output: %s", strerror(errno));
		return UTIL_EXIT_FAIL;
	}
	return UTIL_EXIT_OK;
}

/* ---- main --------------------------------------------------------------- */

static const util_cmd commands[] = {
	{"init", cmd_init, "create the database or migrate its schema"},
	{"check", cmd_check, "check integrity and schema (exit 1 on failure)"},
	{"import", db_cmd_import, "import preference data (JSON Lines, .gz too)"},
	{"export", db_cmd_export, "write the resolved pairs as JSON Lines"},
	{"stats", cmd_stats, "counts, verdicts, resolvable pairs, position bias"},
	{"agreement", db_cmd_agreement, "kappa, alpha, judge-vs-human agreement"},
	{"derive-pairs", db_cmd_derive, "comparisons from ratings (UltraFeedback binarization)"},
	{"split", cmd_split, "reassign prompts to test/train (deterministic)"},
	{"report", db_cmd_report, "an HTML page: labels, agreement, judges, training"},
	{"merge", db_cmd_merge, "bring other stores (offline copies) into this one"},
	{"assign", db_cmd_assign, "pre-assign pairs to a team of annotators"},
	{"runs", db_cmd_runs, "list the runs: imports, generations, judging, training"},
	{"remove", db_cmd_remove, "take back an import run, a source or an annotator"},
	{NULL, NULL, NULL},
};

typedef struct main_opts {
	const char *db;
} main_opts;

static const util_opt main_table[] = {
	UTIL_OPT_DB(main_opts, db),
	UTIL_OPT_TABLE_END,
};

/* The text after the global options: the commands (from the table) and
 * where each one's options and defaults are. */
static char *main_footer(void)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return NULL;
	fprintf(f, "Commands:\n");
	util_cmd_list(commands, f);
	fprintf(f, "\n"
		   "Each command has its own options and --help (dpo-db COMMAND --help), and\n"
		   "accepts --db PATH after its name too. Their defaults may be set in the config\n"
		   "file ($DPO_CONFIG, else $XDG_CONFIG_HOME/dpo/config), section [dpo-db COMMAND].\n"
		   "\n"
		   "Exit status: 0 success, 1 failure, 2 usage error. See dpo-db(1).\n");
	fclose(f);
	return text;
}

int main(int argc, char **argv)
{
	static util_cli cli = {
		.name = "dpo-db",
		.synopsis = "[--db PATH] COMMAND [OPTIONS] [ARGS]",
		.summary = "Create, check, import, export and inspect a dpo preference database.",
		.opts = main_table,
		.max_args = -1,
		.flags = UTIL_CLI_STOP_AT_ARG | UTIL_CLI_NO_CONFIG, /* only --db, which a config file may not set */
	};
	static char *footer;
	main_opts o = {0};
	util_set_progname("dpo-db");
	cli.footer = footer = main_footer();
	util_cli_parse(&cli, &o, argc, argv);
	int first;
	const util_cmd *cmd = util_cmd_select(&cli, commands, argc, &first);
	global_db = o.db;
	return cmd->run(argc - first, argv + first);
}

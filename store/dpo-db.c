/* dpo-db.c: the dpo-db program: create, check, import, export and inspect
 * the preference store. The subcommands are a util_cmd table (main, at the
 * end); each parses its own options with its own util_cli table. `import`
 * lives in dpo-db-import.c, `report` in dpo-db-report.c. */
#include "config.h"
#include "store/dpo_db.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/cli.h"
#include "util/opt.h"
#include "util/xmalloc.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static const char *global_db; /* --db before the subcommand */

const char *db_path(const char *opt)
{
	return util_db_path(opt ? opt : global_db);
}

store *db_open(const char *path)
{
	store *st = store_new();
	if (store_open(st, path)) {
		util_warn("%s", store_errmsg(st));
		store_free(st);
		return NULL;
	}
	return st;
}

/* The options of the subcommands that have no others than --db (and --json). */
typedef struct db_opts {
	const char *db;
	int json;
} db_opts;

static const util_opt db_only_table[] = {
	UTIL_OPT_DB(db_opts, db),
	UTIL_OPT_TABLE_END,
};

static const util_opt db_json_table[] = {
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
	store *st = db_open(path);
	if (!st)
		return UTIL_EXIT_FAIL;
	printf("%s: schema version %d\n", path, store_schema_version());
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
	fputs(report ? report : "", stdout);
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
	int json;
} split_opts;

static const util_opt split_table[] = {
	UTIL_OPT_DB(split_opts, db),
	{"test-fraction", 0, UTIL_OPT_FLOAT, offsetof(split_opts, frac), .range = "[0, 1]", .arg = "F",
	 .help = "share of the prompts that go to test (required)"},
	UTIL_OPT_SEED(split_opts, seed, "0"),
	UTIL_OPT_JSON(split_opts, json),
	UTIL_OPT_TABLE_END,
};

static int cmd_split(int argc, char **argv)
{
	static util_cli cli = {
		.name = "dpo-db split",
		.synopsis = "--test-fraction F [OPTIONS]",
		.summary = "Reassign every prompt to test or train: a prompt goes to test when the first\n"
			   "64 bits of SHA-256(seed || prompt hash) fall below F * 2^64. The result depends\n"
			   "only on the prompt's content, F and the seed, and growing F only moves prompts\n"
			   "from train to test. Prints the counts.",
		.opts = split_table,
	};
	split_opts o = {0};
	util_cli_parse(&cli, &o, argc, argv);
	if (util_cli_source(&cli, "test-fraction") == UTIL_OPT_UNSET)
		util_cli_usage_error(&cli, "--test-fraction F is required");
	store *st = db_open(db_path(o.db));
	if (!st)
		return UTIL_EXIT_FAIL;
	long ntr = 0, nte = 0;
	int rc = store_split(st, o.frac, (uint64_t)o.seed, &ntr, &nte);
	if (rc)
		util_warn("%s", store_errmsg(st));
	else if (o.json)
		printf("{\"train\": %ld, \"test\": %ld, \"test_fraction\": %.17g, \"seed\": %ld}\n", ntr, nte, o.frac,
		       o.seed);
	else
		printf("train: %ld\ntest: %ld\n", ntr, nte);
	store_free(st);
	return rc ? UTIL_EXIT_FAIL : UTIL_EXIT_OK;
}

/* ---- export ------------------------------------------------------------- */

enum export_format { EXP_TRL, EXP_TRL_CONV, EXP_HH };

typedef struct export_ctx {
	enum export_format fmt;
	util_buf line;
	FILE *f;
	gzFile gz;
	long n;
	int err;
	const char *errwhat;
} export_ctx;

/* Append compact JSON (as the store writes messages) with a space after
 * each ',' and ':' outside strings, the layout of every exported line. */
static void add_spaced_json(util_buf *b, const char *json)
{
	int in_str = 0;
	for (const char *p = json; *p; p++) {
		util_buf_addc(b, *p);
		if (in_str) {
			if (*p == '\\' && p[1])
				util_buf_addc(b, *++p);
			else if (*p == '"')
				in_str = 0;
		} else if (*p == '"') {
			in_str = 1;
		} else if (*p == ',' || *p == ':') {
			util_buf_addc(b, ' ');
		}
	}
}

static void add_assistant(util_buf *b, const char *text)
{
	util_buf_adds(b, "[{\"role\": \"assistant\", \"content\": ");
	add_str(b, text);
	util_buf_adds(b, "}]");
}

static int starts_with(const char *s, const char *pre)
{
	return !strncmp(s, pre, strlen(pre));
}

static int ends_with(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);
	return n >= m && !strcmp(s + n - m, suf);
}

/* The HH transcript of a prompt, through the final "\n\nAssistant:". A plain
 * prompt that already is such a transcript (as the hh import keeps them) is
 * used as is. */
static int hh_prefix(const store_pair *p, util_buf *out)
{
	util_buf_reset(out);
	if (p->prompt_text) {
		if (starts_with(p->prompt_text, "\n\nHuman:") && ends_with(p->prompt_text, "\n\nAssistant:")) {
			util_buf_adds(out, p->prompt_text);
		} else {
			util_buf_adds(out, "\n\nHuman: ");
			util_buf_adds(out, p->prompt_text);
			util_buf_adds(out, "\n\nAssistant:");
		}
		return 0;
	}
	cJSON *msgs = cJSON_Parse(p->prompt_messages_json);
	if (!cJSON_IsArray(msgs)) {
		cJSON_Delete(msgs);
		return -1;
	}
	/* HH has no system turn: system text opens the next human turn,
	 * separated by a blank line. */
	const cJSON *m;
	const char *pending_system = NULL;
	cJSON_ArrayForEach(m, msgs)
	{
		const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "role"));
		const char *content = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "content"));
		if (!role || !content) {
			cJSON_Delete(msgs);
			return -1;
		}
		if (!strcmp(role, "system")) {
			if (pending_system) {
				util_buf_adds(out, "\n\nHuman: ");
				util_buf_adds(out, pending_system);
			}
			pending_system = content;
			continue;
		}
		if (!strcmp(role, "user")) {
			util_buf_adds(out, "\n\nHuman: ");
			if (pending_system) {
				util_buf_adds(out, pending_system);
				util_buf_adds(out, "\n\n");
			}
		} else {
			if (pending_system) {
				util_buf_adds(out, "\n\nHuman: ");
				util_buf_adds(out, pending_system);
			}
			util_buf_adds(out, "\n\nAssistant: ");
		}
		pending_system = NULL;
		util_buf_adds(out, content);
	}
	if (pending_system) {
		util_buf_adds(out, "\n\nHuman: ");
		util_buf_adds(out, pending_system);
	}
	util_buf_adds(out, "\n\nAssistant:");
	cJSON_Delete(msgs);
	return 0;
}

static int export_pair(void *ud, const store_pair *p)
{
	export_ctx *x = ud;
	util_buf *b = &x->line;
	util_buf_reset(b);
	if (x->fmt == EXP_HH) {
		util_buf pre = UTIL_BUF_INIT, side = UTIL_BUF_INIT;
		if (hh_prefix(p, &pre)) {
			util_buf_free(&pre);
			util_warn("prompt %lld: stored messages are not valid JSON", (long long)p->prompt_id);
			x->err = 1;
			return 1;
		}
		for (int i = 0; i < 2; i++) {
			util_buf_reset(&side);
			util_buf_add(&side, pre.data, pre.len);
			util_buf_addc(&side, ' ');
			util_buf_adds(&side, i ? p->rejected : p->chosen);
			util_buf_adds(b, i ? ", \"rejected\": " : "{\"chosen\": ");
			util_buf_add_json_string(b, side.data, side.len);
		}
		util_buf_adds(b, "}\n");
		util_buf_free(&pre);
		util_buf_free(&side);
	} else {
		int conv = x->fmt == EXP_TRL_CONV || p->prompt_messages_json;
		util_buf_adds(b, "{\"prompt\": ");
		if (p->prompt_messages_json) {
			add_spaced_json(b, p->prompt_messages_json);
		} else if (conv) {
			util_buf_adds(b, "[{\"role\": \"user\", \"content\": ");
			add_str(b, p->prompt_text);
			util_buf_adds(b, "}]");
		} else {
			add_str(b, p->prompt_text);
		}
		util_buf_adds(b, ", \"chosen\": ");
		conv ? add_assistant(b, p->chosen) : add_str(b, p->chosen);
		util_buf_adds(b, ", \"rejected\": ");
		conv ? add_assistant(b, p->rejected) : add_str(b, p->rejected);
		util_buf_adds(b, "}\n");
	}
	if (x->gz) {
		if (gzwrite(x->gz, b->data, (unsigned)b->len) != (int)b->len) {
			x->err = 1;
			return 1;
		}
	} else if (fwrite(b->data, 1, b->len, x->f) != b->len) {
		x->err = 1;
		return 1;
	}
	x->n++;
	return 0;
}

/* Make a rename in path's directory durable (best effort). */
static void sync_dir(const char *path)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	const char *d = ".";
	if (slash == dir)
		d = "/";
	else if (slash) {
		*slash = 0;
		d = dir;
	}
	int dfd = open(d, O_RDONLY | O_DIRECTORY);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	free(dir);
}

typedef struct export_opts {
	const char *db, *format, *split, *policy;
	long min;
} export_opts;

/* --resolve's choices are store_policies (store.h). */
static const util_opt export_table[] = {
	UTIL_OPT_DB(export_opts, db),
	{"format", 0, UTIL_OPT_ENUM, offsetof(export_opts, format), .def = "trl",
	 .choices = "trl|trl-conversational|hh", .arg = "FORMAT",
	 .help = "trl (strings; messages for a conversation),\n"
		 "trl-conversational (always messages) or hh\n"
		 "(HH-RLHF transcripts)"},
	{"split", 0, UTIL_OPT_STRING, offsetof(export_opts, split), .arg = "S",
	 .help = "only prompts of split S (default: every split)"},
	{"resolve", 0, UTIL_OPT_ENUM, offsetof(export_opts, policy), .def = "majority",
	 .choices = "majority|humans-over-judges|unanimous|consistent-judge", .arg = "POLICY",
	 .help = "how comparisons become pairs: majority,\n"
		 "humans-over-judges, unanimous or\n"
		 "consistent-judge"},
	{"min-annotations", 0, UTIL_OPT_INT, offsetof(export_opts, min), .def = "1", .range = "[0, 1000000]",
	 .arg = "N", .help = "only pairs decided by at least N agreeing\na/b votes"},
	UTIL_OPT_TABLE_END,
};

static int cmd_export(int argc, char **argv)
{
	static util_cli cli = {
		.name = "dpo-db export",
		.synopsis = "[OPTIONS] OUT",
		.summary = "Write the resolved preference pairs to OUT as JSON Lines, one pair per line\n"
			   "(OUT - is standard output; gzip when OUT ends in .gz). A file is written to a\n"
			   "temporary name and renamed, so readers never see half a file.",
		.opts = export_table,
		.min_args = 1,
		.max_args = 1,
	};
	export_opts o = {0};
	util_cli_parse(&cli, &o, argc, argv);
	const char *out = cli.args[0];
	int to_stdout = !strcmp(out, "-"), gz = !to_stdout && ends_with(out, ".gz");
	char *tmp = NULL;
	int fd = -1, status = UTIL_EXIT_FAIL, rc;
	export_ctx x = {.fmt = !strcmp(o.format, "hh") ? EXP_HH : !strcmp(o.format, "trl") ? EXP_TRL : EXP_TRL_CONV};

	store *st = db_open(db_path(o.db));
	if (!st)
		return UTIL_EXIT_FAIL;
	if (to_stdout) {
		x.f = stdout;
	} else {
		tmp = xasprintf("%s.tmp.XXXXXX", out);
		if ((fd = mkstemp(tmp)) < 0) {
			util_warn("%s: cannot create a temporary file: %s", out, strerror(errno));
			free(tmp);
			tmp = NULL;
			goto out;
		}
		mode_t um = umask(0);
		umask(um);
		fchmod(fd, 0666 & ~um); /* mkstemp made it 0600 */
		if (gz) {
			int fd2 = dup(fd);
			if (fd2 < 0 || !(x.gz = gzdopen(fd2, "wb"))) {
				util_warn("%s: %s", out, strerror(errno));
				if (fd2 >= 0)
					close(fd2);
				goto out;
			}
		} else if (!(x.f = fdopen(dup(fd), "wb"))) {
			util_warn("%s: %s", out, strerror(errno));
			goto out;
		}
	}
	rc = store_pairs_foreach(st, o.split, o.policy, (int)o.min, export_pair, &x);
	if (rc < 0) {
		util_warn("%s", store_errmsg(st));
		goto out;
	}
	if (x.err) {
		util_warn("%s: write error: %s", out, strerror(errno));
		goto out;
	}
	if (x.gz) {
		int zrc = gzclose(x.gz);
		x.gz = NULL;
		if (zrc != Z_OK) {
			util_warn("%s: write error (gzip)", out);
			goto out;
		}
	} else if (to_stdout) {
		if (fflush(stdout)) {
			util_warn("standard output: %s", strerror(errno));
			goto out;
		}
	} else {
		int e = fclose(x.f);
		x.f = NULL;
		if (e) {
			util_warn("%s: write error: %s", out, strerror(errno));
			goto out;
		}
	}
	if (tmp) {
		if (fsync(fd) || close(fd)) {
			fd = -1;
			util_warn("%s: %s", out, strerror(errno));
			goto out;
		}
		fd = -1;
		if (rename(tmp, out)) {
			util_warn("%s: cannot rename %s: %s", out, tmp, strerror(errno));
			goto out;
		}
		sync_dir(out);
		free(tmp);
		tmp = NULL;
	}
	util_warn("wrote %ld pair%s (%s, %s) to %s", x.n, x.n == 1 ? "" : "s", o.format, o.policy,
		  to_stdout ? "standard output" : out);
	status = UTIL_EXIT_OK;
out:
	if (x.gz)
		gzclose(x.gz);
	if (x.f && !to_stdout)
		fclose(x.f);
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	util_buf_free(&x.line);
	store_free(st);
	return status;
}

/* ---- stats -------------------------------------------------------------- */

typedef struct stat_row {
	char *section, *key, *detail, *column;
	long value;
} stat_row;

typedef struct stat_set {
	stat_row *r;
	size_t n, cap;
} stat_set;

static int collect_stat(void *ud, const store_stat *s)
{
	stat_set *set = ud;
	if (set->n == set->cap) {
		set->cap = set->cap ? 2 * set->cap : 64;
		set->r = xreallocarray(set->r, set->cap, sizeof *set->r);
	}
	stat_row *r = &set->r[set->n++];
	r->section = xstrdup(s->section);
	r->key = xstrdup(s->key);
	r->detail = s->detail ? xstrdup(s->detail) : NULL;
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
	static const char *const ann_cols[] = {"comparisons", "a", "b", "tie", "both_bad", "skip", NULL};
	static const char *const verdicts[] = {"a", "b", "tie", "both_bad", "skip", NULL};
	static util_cli cli = {.name = "dpo-db stats",
			       .summary = "Counts of prompts, completions and comparisons by split, source and\n"
					  "annotator; the verdicts; the pairs each resolution policy resolves; and per\n"
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
	stat_set set = {0};
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
		json_section(&b, &set, "source", "by_source", group_cols, 0);
		json_section(&b, &set, "annotator", "by_annotator", ann_cols, 1);
		util_buf_adds(&b, ", \"verdicts\": {");
		for (int v = 0; verdicts[v]; v++)
			util_buf_addf(&b, "%s\"%s\": %ld", v ? ", " : "", verdicts[v],
				      stat_value(&set, "verdict", verdicts[v], "comparisons"));
		util_buf_adds(&b, "}, \"resolvable_pairs\": {");
		for (int p = 0; store_policies[p]; p++)
			util_buf_addf(&b, "%s\"%s\": %ld", p ? ", " : "", store_policies[p],
				      stat_value(&set, "pairs", store_policies[p], "pairs"));
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
		util_buf_adds(&b, "}}\n");
		fputs(b.data, stdout);
		util_buf_free(&b);
	} else {
		printf("database: %s (schema version %d)\n", path, store_schema_version());
		printf("totals:");
		for (int c = 0; total_cols[c]; c++)
			printf("%s %ld %s", c ? "," : "", stat_value(&set, "total", "all", total_cols[c]),
			       total_cols[c]);
		printf("\n\n");
		text_section(&set, "split", "by split", group_cols, 0);
		text_section(&set, "source", "by source", group_cols, 0);
		text_section(&set, "annotator", "by annotator", ann_cols, 1);
		printf("verdicts:");
		for (int v = 0; verdicts[v]; v++)
			printf("%s %s %ld", v ? "," : "", verdicts[v],
			       stat_value(&set, "verdict", verdicts[v], "comparisons"));
		printf("\nresolvable pairs:");
		for (int p = 0; store_policies[p]; p++)
			printf("%s %s %ld", p ? "," : "", store_policies[p],
			       stat_value(&set, "pairs", store_policies[p], "pairs"));
		printf("\n\nposition bias (share of a/b wins that went to the completion shown first):\n");
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

/* ---- agreement ---------------------------------------------------------- */

typedef struct ann_info {
	int64_t id;
	char *name, *kind;
} ann_info;

typedef struct kappa_cell {
	int i, j; /* annotator indexes, name(i) < name(j) */
	long t[STORE_NCAT][STORE_NCAT];
	long n;
} kappa_cell;

typedef struct agree_ctx {
	ann_info *ann;
	size_t nann;
	kappa_cell *cells;
	size_t ncells;
	long (*units)[STORE_NCAT];
	size_t nunits, capunits;
	long jh_n, jh_agree, jh_ab_n, jh_ab_agree;
} agree_ctx;

static int ann_index(agree_ctx *x, int64_t id, const char *name, const char *kind)
{
	for (size_t i = 0; i < x->nann; i++)
		if (x->ann[i].id == id)
			return (int)i;
	x->ann = xreallocarray(x->ann, x->nann + 1, sizeof *x->ann);
	x->ann[x->nann] = (ann_info){id, xstrdup(name), xstrdup(kind)};
	return (int)x->nann++;
}

static kappa_cell *cell(agree_ctx *x, int i, int j)
{
	for (size_t k = 0; k < x->ncells; k++)
		if (x->cells[k].i == i && x->cells[k].j == j)
			return &x->cells[k];
	x->cells = xreallocarray(x->cells, x->ncells + 1, sizeof *x->cells);
	kappa_cell *c = &x->cells[x->ncells++];
	memset(c, 0, sizeof *c);
	c->i = i, c->j = j;
	return c;
}

static int agree_votes(void *ud, const store_pair_votes *v)
{
	agree_ctx *x = ud;
	int idx[64];
	size_t n = v->n < 64 ? v->n : 64;
	for (size_t k = 0; k < n; k++)
		idx[k] = ann_index(x, v->annotator_ids[k], v->annotator_names[k], v->annotator_kinds[k]);
	for (size_t p = 0; p < n; p++)
		for (size_t q = p + 1; q < n; q++) {
			size_t lo = p, hi = q;
			if (strcmp(x->ann[idx[p]].name, x->ann[idx[q]].name) > 0)
				lo = q, hi = p;
			kappa_cell *c = cell(x, idx[lo], idx[hi]);
			c->t[v->categories[lo]][v->categories[hi]]++;
			c->n++;
			int pj = v->annotator_kinds[p][0] == 'j', qj = v->annotator_kinds[q][0] == 'j';
			if (pj != qj) {
				int same = v->categories[p] == v->categories[q];
				x->jh_n++;
				x->jh_agree += same;
				if (v->categories[p] <= STORE_CAT_B && v->categories[q] <= STORE_CAT_B) {
					x->jh_ab_n++;
					x->jh_ab_agree += same;
				}
			}
		}
	if (v->n >= 2) {
		if (x->nunits == x->capunits) {
			x->capunits = x->capunits ? 2 * x->capunits : 256;
			x->units = xreallocarray(x->units, x->capunits, sizeof *x->units);
		}
		memset(x->units[x->nunits], 0, sizeof x->units[0]);
		for (size_t k = 0; k < v->n; k++)
			x->units[x->nunits][v->categories[k]]++;
		x->nunits++;
	}
	return 0;
}

static int cell_cmp_ctx_names(const kappa_cell *a, const kappa_cell *b, const agree_ctx *x)
{
	int c = strcmp(x->ann[a->i].name, x->ann[b->i].name);
	return c ? c : strcmp(x->ann[a->j].name, x->ann[b->j].name);
}

static void sort_cells(agree_ctx *x)
{
	for (size_t i = 1; i < x->ncells; i++)
		for (size_t j = i; j > 0 && cell_cmp_ctx_names(&x->cells[j - 1], &x->cells[j], x) > 0; j--) {
			kappa_cell t = x->cells[j];
			x->cells[j] = x->cells[j - 1];
			x->cells[j - 1] = t;
		}
}

static void add_num(util_buf *b, double v)
{
	if (isnan(v))
		util_buf_adds(b, "null");
	else
		util_buf_addf(b, "%.17g", v);
}

static int cmd_agreement(int argc, char **argv)
{
	static util_cli cli = {.name = "dpo-db agreement",
			       .summary = "Cohen's kappa for each pair of annotators over the pairs both labelled,\n"
					  "Krippendorff's alpha (nominal) over every pair with two or more labels, and\n"
					  "judge-vs-human agreement, with and without ties.",
			       .opts = db_json_table};
	db_opts o = {0};
	util_cli_parse(&cli, &o, argc, argv);
	int json = o.json;
	store *st = db_open(db_path(o.db));
	if (!st)
		return UTIL_EXIT_FAIL;
	agree_ctx x = {0};
	int status = UTIL_EXIT_OK;
	if (store_votes_foreach(st, agree_votes, &x)) {
		util_warn("%s", store_errmsg(st));
		status = UTIL_EXIT_FAIL;
		goto out;
	}
	sort_cells(&x);
	double alpha = store_krippendorff_alpha((const long(*)[STORE_NCAT])x.units, x.nunits);
	double with = x.jh_n ? (double)x.jh_agree / (double)x.jh_n : NAN;
	double without = x.jh_ab_n ? (double)x.jh_ab_agree / (double)x.jh_ab_n : NAN;
	if (json) {
		util_buf b = UTIL_BUF_INIT;
		util_buf_adds(&b, "{\"kappa\": [");
		for (size_t i = 0; i < x.ncells; i++) {
			kappa_cell *c = &x.cells[i];
			util_buf_adds(&b, i ? ", {\"annotator_1\": " : "{\"annotator_1\": ");
			add_str(&b, x.ann[c->i].name);
			util_buf_adds(&b, ", \"annotator_2\": ");
			add_str(&b, x.ann[c->j].name);
			util_buf_adds(&b, ", \"kappa\": ");
			add_num(&b, store_cohen_kappa((const long(*)[STORE_NCAT])c->t));
			util_buf_addf(&b, ", \"n\": %ld}", c->n);
		}
		util_buf_adds(&b, "], \"alpha\": {\"value\": ");
		add_num(&b, alpha);
		util_buf_addf(&b, ", \"units\": %zu}, \"judge_vs_human\": {\"with_ties\": {\"agreement\": ", x.nunits);
		add_num(&b, with);
		util_buf_addf(&b, ", \"n\": %ld}, \"without_ties\": {\"agreement\": ", x.jh_n);
		add_num(&b, without);
		util_buf_addf(&b, ", \"n\": %ld}}}\n", x.jh_ab_n);
		fputs(b.data, stdout);
		util_buf_free(&b);
	} else {
		int w = 11;
		for (size_t i = 0; i < x.nann; i++)
			if ((int)strlen(x.ann[i].name) > w)
				w = (int)strlen(x.ann[i].name);
		printf("Cohen's kappa per pair of annotators (categories a, b, tie, both_bad; skips left out):\n");
		if (!x.ncells)
			printf("  (no two annotators labelled the same pair)\n");
		for (size_t i = 0; i < x.ncells; i++) {
			kappa_cell *c = &x.cells[i];
			double k = store_cohen_kappa((const long(*)[STORE_NCAT])c->t);
			printf("  %-*s  %-*s  ", w, x.ann[c->i].name, w, x.ann[c->j].name);
			if (isnan(k))
				printf("kappa     -  (n=%ld)\n", c->n);
			else
				printf("kappa %6.3f  (n=%ld)\n", k, c->n);
		}
		printf("\nKrippendorff's alpha (nominal), over %zu pairs with 2 or more labels: ", x.nunits);
		if (isnan(alpha))
			printf("-\n");
		else
			printf("%.3f\n", alpha);
		printf("\njudge vs human (humans and imports), per judge-human label pair on the same item:\n");
		if (x.jh_n)
			printf("  with ties:    %5.1f%% agreement (n=%ld)\n", 100 * with, x.jh_n);
		else
			printf("  with ties:        -  (n=0)\n");
		if (x.jh_ab_n)
			printf("  without ties: %5.1f%% agreement (n=%ld)\n", 100 * without, x.jh_ab_n);
		else
			printf("  without ties:     -  (n=0)\n");
	}
	if (fflush(stdout)) {
		util_warn("standard output: %s", strerror(errno));
		status = UTIL_EXIT_FAIL;
	}
out:
	for (size_t i = 0; i < x.nann; i++) {
		free(x.ann[i].name);
		free(x.ann[i].kind);
	}
	free(x.ann);
	free(x.cells);
	free(x.units);
	store_free(st);
	return status;
}

/* ---- main --------------------------------------------------------------- */

static const util_cmd commands[] = {
	{"init", cmd_init, "create the database or migrate its schema"},
	{"check", cmd_check, "check integrity and schema (exit 1 on failure)"},
	{"import", db_cmd_import, "import preference data (JSON Lines, .gz too)"},
	{"export", cmd_export, "write the resolved pairs as JSON Lines"},
	{"stats", cmd_stats, "counts, verdicts, resolvable pairs, position bias"},
	{"agreement", cmd_agreement, "kappa, alpha, judge-vs-human agreement"},
	{"split", cmd_split, "reassign prompts to test/train (deterministic)"},
	{"report", db_cmd_report, "an HTML page: labels, agreement, judges, training"},
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
		.flags = UTIL_CLI_STOP_AT_ARG,
	};
	static char *footer;
	main_opts o = {0};
	util_set_progname("dpo-db");
	cli.footer = footer = main_footer();
	util_cli_parse(&cli, &o, argc, argv);
	util_buf names = UTIL_BUF_INIT;
	util_cmd_names(commands, &names);
	if (!cli.nargs)
		util_cli_usage_error(&cli, "no command given (%s)", util_buf_str(&names));
	const util_cmd *cmd = util_cmd_find(commands, cli.args[0]);
	if (!cmd)
		util_cli_usage_error(&cli, "unknown command '%s' (%s)", cli.args[0], util_buf_str(&names));
	util_buf_free(&names);
	/* options stop at the command: it and everything after it are its arguments */
	int first = argc - cli.nargs;
	global_db = o.db;
	return cmd->run(argc - first, argv + first);
}

/* dpo-db.c: the dpo-db program: create, check, import, export and inspect
 * the preference store. `import` lives in dpo-db-import.c. */
#include "config.h"
#include "store/dpo_db.h"
#include "store/report.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/cli.h"
#include "util/file.h"
#include "util/xmalloc.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static const char *db_opt; /* --db, global or per subcommand */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: dpo-db [--db PATH] COMMAND [OPTIONS] [ARGS]\n"
		"Create, check, import, export and inspect a dpo preference database.\n"
		"\n"
		"Global options:\n"
		"  --db PATH        the database (else $DPO_DB, else ./dpo.db); created on first use\n"
		"  -h, --help       show this help and exit\n"
		"      --version    show the version and exit\n"
		"\n"
		"Commands:\n"
		"  init             create the database or migrate it to the current schema\n"
		"  check            check integrity, foreign keys and the schema version (exit 1 on failure)\n"
		"  import FILE...   import preference data (JSON Lines, .gz read transparently)\n"
		"      --format auto|trl|hh|ultrafeedback|sharegpt|prompts|candidates   (default auto)\n"
		"      --source NAME    source name (default: the file name)\n"
		"      --split NAME     split of new prompts (default train)\n"
		"      --skip-bad FILE  write rejected lines with their reason to FILE, import the rest\n"
		"      --json           print the import summary as JSON\n"
		"      -q, --quiet      no progress output\n"
		"  export OUT       write resolved preference pairs as JSON Lines (OUT '-' = stdout;\n"
		"                   gzip when OUT ends in .gz)\n"
		"      --format trl|trl-conversational|hh   (default trl)\n"
		"      --split S            only prompts of split S\n"
		"      --resolve POLICY     majority (default), humans-over-judges, unanimous,\n"
		"                           consistent-judge\n"
		"      --min-annotations N  only pairs decided by at least N agreeing votes (default 1)\n"
		"  stats [--json]   counts by split, source and annotator, verdicts, resolvable pairs,\n"
		"                   position bias\n"
		"  agreement [--json]\n"
		"                   Cohen's kappa per pair of annotators, Krippendorff's alpha,\n"
		"                   judge-vs-human agreement\n"
		"  split --test-fraction F [--seed S] [--json]\n"
		"                   reassign prompts to test/train, deterministically from each prompt's\n"
		"                   content hash and the seed\n"
		"  report OUT.html [--title T]\n"
		"                   one self-contained HTML page (inline SVG): labels, agreement,\n"
		"                   judge position bias and consistency, training curves\n"
		"\n"
		"Every command also accepts --db PATH after its name. Exit status: 0 success, 1 failure,\n"
		"2 usage error. See dpo-db(1).\n");
}

/* Parse a subcommand's options: the common ones (--db, --help, --json) are
 * handled here; others are handed to `other` (which may be NULL). Returns
 * optind. */
typedef void (*opt_fn)(int c, const char *arg, void *ud);

static int parse_sub(int argc, char **argv, const struct option *extra, size_t nextra, int *json, opt_fn other,
		     void *ud)
{
	struct option longopts[24];
	size_t n = 0;
	longopts[n++] = (struct option){"db", required_argument, NULL, 'D'};
	longopts[n++] = (struct option){"help", no_argument, NULL, 'h'};
	if (json)
		longopts[n++] = (struct option){"json", no_argument, NULL, 'j'};
	for (size_t i = 0; i < nextra && n < 23; i++)
		longopts[n++] = extra[i];
	longopts[n] = (struct option){NULL, 0, NULL, 0};
	int c;
	optind = 0;
	opterr = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'D': db_opt = optarg; break;
		case 'h': usage(stdout); exit(UTIL_EXIT_OK);
		case 'j': *json = 1; break;
		case '?': util_usage_error("%s: bad option", argv[0]);
		default:
			if (other)
				other(c, optarg, ud);
			else
				util_usage_error("%s: bad option", argv[0]);
		}
	}
	return optind;
}

static store *open_db(const char *path)
{
	store *st = store_new();
	if (store_open(st, path)) {
		util_warn("%s", store_errmsg(st));
		store_free(st);
		return NULL;
	}
	return st;
}

static void no_args(int argc, char **argv, int first)
{
	if (first < argc)
		util_usage_error("%s: unexpected argument '%s'", argv[0], argv[first]);
}

/* ---- init, check -------------------------------------------------------- */

static int cmd_init(int argc, char **argv)
{
	no_args(argc, argv, parse_sub(argc, argv, NULL, 0, NULL, NULL, NULL));
	const char *path = util_db_path(db_opt);
	store *st = open_db(path);
	if (!st)
		return UTIL_EXIT_FAIL;
	printf("%s: schema version %d\n", path, store_schema_version());
	store_free(st);
	return UTIL_EXIT_OK;
}

static int cmd_check(int argc, char **argv)
{
	no_args(argc, argv, parse_sub(argc, argv, NULL, 0, NULL, NULL, NULL));
	store *st = open_db(util_db_path(db_opt));
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
	double frac;
	int have_frac;
	unsigned long long seed;
} split_opts;

static void split_opt(int c, const char *arg, void *ud)
{
	split_opts *o = ud;
	if (c == 'f') {
		util_parse_double("--test-fraction", arg, &o->frac);
		if (!(o->frac >= 0 && o->frac <= 1))
			util_usage_error("split: --test-fraction must be between 0 and 1, not %s", arg);
		o->have_frac = 1;
	} else if (c == 's') {
		char *end;
		errno = 0;
		o->seed = strtoull(arg, &end, 10);
		if (errno || end == arg || *end || *arg == '-')
			util_usage_error("split: --seed must be a non-negative integer, not '%s'", arg);
	}
}

static int cmd_split(int argc, char **argv)
{
	static const struct option opts[] = {
		{"test-fraction", required_argument, NULL, 'f'},
		{"seed", required_argument, NULL, 's'},
	};
	split_opts o = {0};
	int json = 0;
	no_args(argc, argv, parse_sub(argc, argv, opts, 2, &json, split_opt, &o));
	if (!o.have_frac)
		util_usage_error("split: --test-fraction F is required");
	store *st = open_db(util_db_path(db_opt));
	if (!st)
		return UTIL_EXIT_FAIL;
	long ntr = 0, nte = 0;
	int rc = store_split(st, o.frac, (uint64_t)o.seed, &ntr, &nte);
	if (rc)
		util_warn("%s", store_errmsg(st));
	else if (json)
		printf("{\"train\": %ld, \"test\": %ld, \"test_fraction\": %.17g, \"seed\": %llu}\n", ntr, nte, o.frac,
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

static void add_str(util_buf *b, const char *s)
{
	util_buf_add_json_string(b, s, strlen(s));
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

typedef struct export_opts {
	enum export_format fmt;
	const char *split, *policy;
	long min;
} export_opts;

static void export_opt(int c, const char *arg, void *ud)
{
	export_opts *o = ud;
	switch (c) {
	case 'f':
		if (!strcmp(arg, "trl"))
			o->fmt = EXP_TRL;
		else if (!strcmp(arg, "trl-conversational"))
			o->fmt = EXP_TRL_CONV;
		else if (!strcmp(arg, "hh"))
			o->fmt = EXP_HH;
		else
			util_usage_error("export: unknown format \"%s\" (trl, trl-conversational, hh)", arg);
		break;
	case 's': o->split = arg; break;
	case 'r': {
		int ok = 0;
		for (int i = 0; store_policies[i]; i++)
			ok |= !strcmp(arg, store_policies[i]);
		if (!ok)
			util_usage_error("export: unknown policy \"%s\" (majority, humans-over-judges, unanimous, "
					 "consistent-judge)",
					 arg);
		o->policy = arg;
		break;
	}
	case 'm':
		util_parse_long("--min-annotations", arg, &o->min);
		if (o->min < 0 || o->min > 1000000)
			util_usage_error("export: --min-annotations must be between 0 and 1000000");
		break;
	}
}

static int cmd_export(int argc, char **argv)
{
	static const struct option opts[] = {
		{"format", required_argument, NULL, 'f'},
		{"split", required_argument, NULL, 's'},
		{"resolve", required_argument, NULL, 'r'},
		{"min-annotations", required_argument, NULL, 'm'},
	};
	export_opts o = {.fmt = EXP_TRL, .policy = "majority", .min = 1};
	int first = parse_sub(argc, argv, opts, 4, NULL, export_opt, &o);
	if (first >= argc)
		util_usage_error("export: no output file given (use - for standard output)");
	if (first + 1 < argc)
		util_usage_error("export: unexpected argument '%s'", argv[first + 1]);
	const char *out = argv[first];
	int to_stdout = !strcmp(out, "-"), gz = !to_stdout && ends_with(out, ".gz");
	char *tmp = NULL;
	int fd = -1, status = UTIL_EXIT_FAIL, rc;
	export_ctx x = {.fmt = o.fmt};

	store *st = open_db(util_db_path(db_opt));
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
		util_fsync_parent(out); /* make the rename durable (best effort) */
		free(tmp);
		tmp = NULL;
	}
	util_warn("wrote %ld pair%s (%s, %s) to %s", x.n, x.n == 1 ? "" : "s",
		  o.fmt == EXP_HH ? "hh" : o.fmt == EXP_TRL ? "trl" : "trl-conversational", o.policy,
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
	int json = 0;
	no_args(argc, argv, parse_sub(argc, argv, NULL, 0, &json, NULL, NULL));
	const char *path = util_db_path(db_opt);
	store *st = open_db(path);
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
	int json = 0;
	no_args(argc, argv, parse_sub(argc, argv, NULL, 0, &json, NULL, NULL));
	store *st = open_db(util_db_path(db_opt));
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

/* Remove "--db PATH" / "--db=PATH" from a subcommand's arguments (up to a
 * "--"), storing PATH in *db_opt, so that subcommands parsing their own
 * options accept --db after the command name too. */
static void take_db_option(int *argc, char **argv, const char **db_opt)
{
	for (int i = 1; i < *argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "--db") && i + 1 < *argc) {
			*db_opt = argv[i + 1];
			memmove(&argv[i], &argv[i + 2], (size_t)(*argc - i - 2) * sizeof *argv);
			*argc -= 2;
			i--;
		} else if (!strncmp(argv[i], "--db=", 5)) {
			*db_opt = argv[i] + 5;
			memmove(&argv[i], &argv[i + 1], (size_t)(*argc - i - 1) * sizeof *argv);
			*argc -= 1;
			i--;
		}
	}
	argv[*argc] = NULL;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"db", required_argument, NULL, 'D'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	int c;
	util_set_progname("dpo-db");
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case 'D': db_opt = optarg; break;
		case 'h': usage(stdout); return UTIL_EXIT_OK;
		case 'V': util_print_version(); return UTIL_EXIT_OK;
		default: util_usage_error("bad option");
		}
	}
	if (optind >= argc)
		util_usage_error("no command given (init, check, import, export, stats, agreement, split)");
	const char *cmd = argv[optind];
	int sargc = argc - optind;
	char **sargv = argv + optind;
	if (!strcmp(cmd, "init"))
		return cmd_init(sargc, sargv);
	if (!strcmp(cmd, "check"))
		return cmd_check(sargc, sargv);
	if (!strcmp(cmd, "export"))
		return cmd_export(sargc, sargv);
	if (!strcmp(cmd, "stats"))
		return cmd_stats(sargc, sargv);
	if (!strcmp(cmd, "agreement"))
		return cmd_agreement(sargc, sargv);
	if (!strcmp(cmd, "split"))
		return cmd_split(sargc, sargv);
	if (!strcmp(cmd, "import") || !strcmp(cmd, "report")) {
		/* these parse their own options; honour a --db given after the command */
		take_db_option(&sargc, sargv, &db_opt);
		if (!strcmp(cmd, "import"))
			return db_cmd_import(sargc, sargv, util_db_path(db_opt));
		return db_cmd_report(sargc, sargv, util_db_path(db_opt));
	}
	util_usage_error("unknown command '%s' (init, check, import, export, stats, agreement, split, report)", cmd);
}

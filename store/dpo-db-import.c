/* dpo-db-import.c: `dpo-db import [OPTIONS] FILE...`. */
#include "store/dpo_db.h"
#include "store/import.h"
#include "store/provenance.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/utf8.h"
#include "util/cli.h"
#include "util/file.h"
#include "util/opt.h"
#include "util/progress.h"
#include "util/xmalloc.h"
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --format: a record format, or a container (csv, tsv, jsonl) whose
 * records' format is detected. */
typedef struct format_choice {
	store_import_format format;
	store_import_container container;
} format_choice;

typedef struct import_opts {
	const char *db, *source, *split, *rejects, *join, *on, *annotator, *annotator_kind;
	format_choice fmt;
	util_opt_list map;
	int json, quiet;
} import_opts;

/* --format: a format name (store_import_format_from_name), or csv, tsv or
 * jsonl. */
static int parse_format(void *target, const char *value, char *err, size_t errlen)
{
	static const char *const containers[] = {[STORE_IMPORT_CONTAINER_JSONL] = "jsonl",
						 [STORE_IMPORT_CONTAINER_CSV] = "csv",
						 [STORE_IMPORT_CONTAINER_TSV] = "tsv"};
	format_choice *fc = target;
	fc->container = STORE_IMPORT_CONTAINER_AUTO;
	for (int c = STORE_IMPORT_CONTAINER_JSONL; c <= STORE_IMPORT_CONTAINER_TSV; c++)
		if (!strcmp(value, containers[c])) {
			fc->format = STORE_IMPORT_AUTO;
			fc->container = (store_import_container)c;
			return 0;
		}
	if (!store_import_format_from_name(value, &fc->format))
		return 0;
	util_buf names = UTIL_BUF_INIT;
	for (int f = STORE_IMPORT_AUTO; strcmp(store_import_format_name((store_import_format)f), "?"); f++)
		util_buf_addf(&names, "%s%s", f ? ", " : "", store_import_format_name((store_import_format)f));
	util_buf_adds(&names, ", csv, tsv, jsonl");
	snprintf(err, errlen, "unknown format \"%s\" (expected one of %s)", value, util_buf_str(&names));
	util_buf_free(&names);
	return -1;
}

/* --source, --split: a name that is not empty. */
static int parse_name(void *target, const char *value, char *err, size_t errlen)
{
	if (!*value) {
		snprintf(err, errlen, "expected a name, got \"\"");
		return -1;
	}
	*(const char **)target = value;
	return 0;
}

static const util_opt import_table[] = {
	UTIL_OPT_DB(import_opts, db),
	{"format", 'f', UTIL_OPT_CALL, offsetof(import_opts, fmt), .def = "auto", .arg = "FORMAT",
	 .call = parse_format,
	 .help = "auto (detect per file from its first record),\n"
		 "trl, hh, ultrafeedback, sharegpt, prompts,\n"
		 "candidates, mt-bench, mt-bench-single,\n"
		 "alpaca-eval, kto; or csv, tsv (a header row;\n"
		 "the records' format detected from the columns)"},
	{"map", 0, UTIL_OPT_LIST, offsetof(import_opts, map), .arg = "FIELD=PATH,...", .flags = UTIL_OPT_COMMAS,
	 .help = "take FIELD (prompt, chosen, rejected, completion,\n"
		 "model, id, ...) from PATH in each record, e.g.\n"
		 "prompt=instruction,completion=output,model=generator\n"
		 "or completion=choices[0].turns[0]; a PATH\n"
		 "join:P reads P in the --join record"},
	{"join", 0, UTIL_OPT_PATH, offsetof(import_opts, join), .arg = "FILE",
	 .help = "take the prompt from FILE's record (JSON Lines\n"
		 "or array) with the same --on key (FastChat /\n"
		 "arena-hard question.jsonl)"},
	{"on", 0, UTIL_OPT_STRING, offsetof(import_opts, on), .arg = "KEY",
	 .help = "the key path of --join, e.g. question_id"},
	{"source", 's', UTIL_OPT_CALL, offsetof(import_opts, source), .arg = "NAME", .call = parse_name,
	 .help = "source name of the records (default: the\n"
		 "file's base name without extensions); labels\n"
		 "are by annotator import:NAME"},
	{"annotator", 0, UTIL_OPT_CALL, offsetof(import_opts, annotator), .arg = "NAME", .call = parse_name,
	 .help = "the labels, ratings and feedback of records\n"
		 "that name no annotator (field \"annotator\" or\n"
		 "\"judge\") are by NAME, not import:SOURCE"},
	{"annotator-kind", 0, UTIL_OPT_ENUM, offsetof(import_opts, annotator_kind), .arg = "KIND",
	 .choices = "human|judge|import",
	 .help = "the kind of --annotator (default human) and\n"
		 "of the annotators records name (default:\n"
		 "the format's guess)"},
	{"split", 0, UTIL_OPT_CALL, offsetof(import_opts, split), .def = "train", .arg = "NAME", .call = parse_name,
	 .help = "split of new prompts (a prompt already\nstored keeps its own)"},
	{"skip-bad", 0, UTIL_OPT_PATH, offsetof(import_opts, rejects), .arg = "REJECTS",
	 .help = "write each bad line to REJECTS as a JSON\n"
		 "object {\"file\",\"line\",\"reason\",\"record\"}\n"
		 "and import the rest"},
	UTIL_OPT_JSON(import_opts, json),
	UTIL_OPT_QUIET(import_opts, quiet),
	UTIL_OPT_TABLE_END,
};

static util_cli import_cli = {
	.name = "dpo-db import",
	.synopsis = "[OPTIONS] FILE...",
	.summary = "Import preference datasets (JSON Lines, JSON arrays, CSV/TSV with a header;\n"
		   "plain or .gz; \"-\" reads standard input), streamed. Each file is imported in\n"
		   "one transaction: the first bad record aborts that file, names its line, and\n"
		   "leaves the database as it was (files imported before it stay). Importing the\n"
		   "same data again adds nothing.\n"
		   "Each file is a run (dpo-db runs; dpo-db remove --run N takes it back).",
	.footer = "Formats:\n"
		  "  trl            {\"prompt\",\"chosen\",\"rejected\"}: strings, lists of {role,\n"
		  "                 content}, or (no prompt) two whole conversations\n"
		  "  hh             Anthropic HH-RLHF {\"chosen\",\"rejected\"} transcripts\n"
		  "  ultrafeedback  raw (instruction + rated completions) or binarized\n"
		  "                 (prompt, chosen, rejected, score_chosen, score_rejected)\n"
		  "  sharegpt       ShareGPT / LLaMA-Factory DPO ({\"conversations\", \"chosen\",\n"
		  "                 \"rejected\"} with from/value) and LLaMA-Factory v1\n"
		  "                 ({\"chosen_messages\", \"rejected_messages\"})\n"
		  "  prompts        {\"prompt\"} or {\"messages\"}: prompts only\n"
		  "  candidates     {\"prompt\", \"completions\": [str | {\"text\", \"model\"}]}\n"
		  "  mt-bench       MT-Bench pairwise judgments {\"model_a\", \"model_b\", \"winner\",\n"
		  "                 \"judge\", \"conversation_a\", \"conversation_b\", \"turn\"}\n"
		  "  mt-bench-single\n"
		  "                 MT-Bench single grading {\"model\", \"judge\", \"score\",\n"
		  "                 \"user_prompt\" | \"question\" + \"answer\"}: ratings 1..10\n"
		  "  alpaca-eval    AlpacaEval annotations {\"instruction\", \"output_1\", \"output_2\",\n"
		  "                 \"generator_1\", \"generator_2\", \"annotator\", \"preference\"}\n"
		  "                 (p < 1.5: output_1, p > 1.5: output_2, 1.5: tie;\n"
		  "                 confidence |p - 1.5| * 2)\n"
		  "  kto            binary feedback {\"prompt\", \"completion\", \"label\": bool} or\n"
		  "                 {\"messages\", \"kto_tag\"|\"label\": bool}\n"
		  "\n"
		  "Other layouts: --map prompt=instruction,completion=output,model=generator\n"
		  "(AlpacaEval outputs); --join question.jsonl --on question_id answers.jsonl\n"
		  "(FastChat / arena-hard). Parquet is not read: convert it to JSON Lines.\n"
		  "\n"
		  "Exit status: 0 success, 1 failure, 2 usage error, 130 interrupted (the file\n"
		  "being read is rolled back).\n",
	.opts = import_table,
	.min_args = 1,
	.max_args = -1,
};

typedef struct prog_state {
	util_progress *bar;
	const char *label;
	double start;
	int quiet;
} prog_state;

/* Show a progress line only once a file has taken more than a second; stop
 * on Ctrl-C. */
static int on_progress(void *ud, long lines, unsigned long long bytes)
{
	prog_state *ps = ud;
	(void)bytes;
	if (util_interrupted())
		return 1;
	if (ps->quiet)
		return 0;
	if (!ps->bar) {
		if (util_now() - ps->start < 1.0)
			return 0;
		ps->bar = util_progress_new(ps->label, 0, "lines");
	}
	util_progress_update(ps->bar, (double)lines, NULL);
	return 0;
}

static void print_summary(const char *path, const store_import_result *r, int detected)
{
	const store_import_counts *c = &r->counts;
	util_buf ep = UTIL_BUF_INIT, es = UTIL_BUF_INIT; /* names to a terminal: controls escaped */
	printf("%s: %s%s, source %s: %ld records, prompts %ld new / %ld duplicate, completions %ld new / %ld duplicate, comparisons %ld new / %ld duplicate, %ld rejected",
	       util_term_escape(path, &ep), r->variant[0] ? r->variant : store_import_format_name(r->format),
	       detected ? " (detected)" : "", util_term_escape(r->source, &es), c->records, c->prompts_new, c->prompts_dup,
	       c->completions_new, c->completions_dup, c->comparisons_new, c->comparisons_dup, r->rejected);
	util_buf_free(&ep), util_buf_free(&es);
	if (r->completions_dropped)
		printf(", %ld empty completion%s left out", r->completions_dropped, r->completions_dropped == 1 ? "" : "s");
	/* labels against a verdict the source gave the pair before: never
	 * passed off as duplicates */
	if (c->comparisons_conflict) {
		printf(", %ld conflicting label%s (line%s ", c->comparisons_conflict, c->comparisons_conflict == 1 ? "" : "s",
		       r->nconflict_lines == 1 ? "" : "s");
		for (int i = 0; i < r->nconflict_lines; i++)
			printf("%s%ld", i ? ", " : "", r->conflict_lines[i]);
		printf("%s: the source gave the pair another verdict before; the first is kept)",
		       c->comparisons_conflict > r->nconflict_lines ? ", ..." : "");
	}
	if (c->ratings_new || c->ratings_dup || c->ratings_conflict)
		printf(", ratings %ld new / %ld duplicate", c->ratings_new, c->ratings_dup);
	if (c->ratings_conflict)
		printf(" / %ld conflicting (the first value is kept)", c->ratings_conflict);
	if (c->feedback_new || c->feedback_dup || c->feedback_conflict)
		printf(", feedback %ld new / %ld duplicate", c->feedback_new, c->feedback_dup);
	if (c->feedback_conflict)
		printf(" / %ld conflicting (the first label is kept)", c->feedback_conflict);
	putchar('\n');
}

static void json_summary(util_buf *b, const char *path, const store_import_result *r)
{
	const store_import_counts *c = &r->counts;
	util_buf_adds(b, "{\"file\": ");
	util_buf_add_json_string(b, path, strlen(path));
	util_buf_adds(b, ", \"format\": ");
	util_buf_add_json_string(b, store_import_format_name(r->format), strlen(store_import_format_name(r->format)));
	util_buf_adds(b, ", \"variant\": ");
	util_buf_add_json_string(b, r->variant, strlen(r->variant));
	util_buf_adds(b, ", \"source\": ");
	util_buf_add_json_string(b, r->source, strlen(r->source));
	util_buf_addf(b, ", \"lines\": %ld, \"records\": %ld, \"prompts_new\": %ld, \"prompts_duplicate\": %ld, "
		      "\"completions_new\": %ld, \"completions_duplicate\": %ld, \"comparisons_new\": %ld, "
		      "\"comparisons_duplicate\": %ld, \"comparisons_conflicting\": %ld, \"conflict_lines\": [",
		      r->lines, c->records, c->prompts_new, c->prompts_dup, c->completions_new, c->completions_dup,
		      c->comparisons_new, c->comparisons_dup, c->comparisons_conflict);
	for (int i = 0; i < r->nconflict_lines; i++)
		util_buf_addf(b, "%s%ld", i ? ", " : "", r->conflict_lines[i]);
	util_buf_addf(b, "], \"rejected\": %ld, \"ratings_new\": %ld, \"ratings_duplicate\": %ld, "
		      "\"ratings_conflicting\": %ld, \"feedback_new\": %ld, \"feedback_duplicate\": %ld, "
		      "\"feedback_conflicting\": %ld, \"completions_dropped\": %ld, \"container\": ",
		      r->rejected, c->ratings_new, c->ratings_dup, c->ratings_conflict, c->feedback_new, c->feedback_dup,
		      c->feedback_conflict, r->completions_dropped);
	util_buf_add_json_string(b, r->container, strlen(r->container));
	util_buf_addc(b, '}');
}

/* Put the rejects file in place (util_atomic_close: fsync, rename, sync the
 * folder) or, when that fails, remove it. Takes f and *tmp over; returns 0,
 * or -1 after saying why. */
static int finish_rejects(FILE *f, char **tmp, const char *path)
{
	int ok = fflush(f) == 0;
	int fd = dup(fileno(f)); /* util_atomic_close takes a descriptor over */
	fclose(f);
	int rc = util_atomic_close(fd, *tmp, path, ok && fd >= 0);
	*tmp = NULL;
	if (rc)
		util_warn("%s: %s", path, strerror(errno));
	return rc;
}

/* The SHA-256 of an imported file, computed on a thread of its own while
 * the import reads the file, so that the file is not read twice one
 * after the other. */
struct file_hash {
	const char *path;
	char hex[65];
	long long size;
	int ok;
};

static void *hash_file(void *arg)
{
	struct file_hash *h = arg;
	h->ok = store_file_sha256(h->path, h->hex, &h->size) == 0;
	return NULL;
}

/* Import files[i] as a run of its own (provenance.h): the run and its file
 * are recorded first, in their own transaction, and ended with the
 * outcome, so that a failed or interrupted file leaves its run (status
 * failed or interrupted, with the error) but none of its data. Returns
 * store_import_file's code, or the run's. */
static int import_as_run(store *st, const char *file, store_import_opts *opts, int argc, char **argv,
			 store_import_result *res)
{
	util_buf params = UTIL_BUF_INIT, sum = UTIL_BUF_INIT;
	char *real = NULL, *src = opts->source ? xstrdup(opts->source) : store_import_default_source(file);
	int64_t run = 0;
	int from_stdin = !strcmp(file, "-"), rc, hashing = 0;
	struct file_hash fh = {.path = file};
	pthread_t hasher;
	if (!from_stdin)
		real = realpath(file, NULL);
	store_import_file_info fi = {.path = from_stdin ? "-" : real ? real : file, .size = -1, .sha256 = NULL,
				     .source = src, .split = opts->split ? opts->split : "train"};
	char **av = xmalloc((size_t)(argc + 1) * sizeof *av); /* the whole command line */
	av[0] = (char *)"dpo-db";
	memcpy(av + 1, argv, (size_t)argc * sizeof *av);
	util_cli_params_json(&import_cli, &params);
	rc = store_import_run_begin(st, argc + 1, av, util_buf_str(&params), &fi, &run);
	free(av);
	if (rc) {
		memset(res, 0, sizeof *res);
		snprintf(res->errmsg, sizeof res->errmsg, "%s: %s", file, store_errmsg(st));
		goto out;
	}
	opts->run_id = run;
	hashing = !from_stdin && pthread_create(&hasher, NULL, hash_file, &fh) == 0;
	rc = store_import_file(st, file, opts, res);
	opts->run_id = 0;
	if (hashing) {
		pthread_join(hasher, NULL);
		int hrc = fh.ok ? store_import_run_file_hash(st, run, fh.size, fh.hex) : STORE_OK;
		if (hrc && !rc) {
			snprintf(res->errmsg, sizeof res->errmsg, "%s: %s", file, store_errmsg(st));
			rc = hrc;
		}
	}
	json_summary(&sum, file, res);
	const char *status = "ok";
	if (rc) {
		status = util_interrupted() ? "interrupted" : "failed";
		sum.len--; /* the closing brace: the error joins the counts */
		util_buf_adds(&sum, ", \"error\": ");
		add_str(&sum, res->errmsg);
		util_buf_adds(&sum, "}");
	}
	int erc = store_import_run_end(st, run, status, store_import_format_name(res->format), util_buf_str(&sum));
	if (erc && !rc) {
		snprintf(res->errmsg, sizeof res->errmsg, "%s: %s", file, store_errmsg(st));
		rc = erc;
	}
out:
	free(real);
	free(src);
	util_buf_free(&params);
	util_buf_free(&sum);
	return rc;
}

int db_cmd_import(int argc, char **argv)
{
	import_opts o = {0};
	int status = UTIL_EXIT_FAIL;
	store *st = NULL;
	FILE *rejects = NULL;
	char *rejects_tmp = NULL;
	long total_rejected = 0;
	util_buf out = UTIL_BUF_INIT;
	prog_state ps = {0};

	util_cli_parse(&import_cli, &o, argc, argv);
	const char *dbpath = db_path(o.db), *rejects_path = o.rejects;
	char **files = import_cli.args;
	int nfiles = import_cli.nargs, json = o.json;
	store_import_opts opts = {.format = o.fmt.format, .container = o.fmt.container, .source = o.source,
				  .split = o.split, .annotator = o.annotator, .annotator_kind = o.annotator_kind};
	store_import_map *map = NULL;
	if (o.map.n || o.join || o.on) {
		util_buf spec = UTIL_BUF_INIT;
		char why[1024];
		int kind;
		for (int i = 0; i < o.map.n; i++)
			util_buf_addf(&spec, "%s%s", i ? "," : "", o.map.v[i]);
		int e = store_import_map_new(util_buf_str(&spec), o.join, o.on, &map, &kind, why, sizeof why);
		util_buf_free(&spec);
		if (e && kind == STORE_IMPORT_MAP_USAGE)
			util_usage_error("%s", why);
		if (e) {
			util_warn("%s", why);
			goto out;
		}
		opts.map = map;
	}

	if (rejects_path) {
		char why[512];
		if (util_check_output(rejects_path, dbpath, (const char *const *)files, nfiles, why, sizeof why)) {
			util_warn("%s: %s", rejects_path, why);
			goto out;
		}
	}
	st = store_new();
	if (store_open(st, dbpath)) {
		util_warn("%s: %s", dbpath, store_errmsg(st));
		goto out;
	}
	if (rejects_path) {
		/* written to a temporary name, renamed over REJECTS at the end */
		int fd = util_atomic_open(rejects_path, &rejects_tmp);
		rejects = fd >= 0 ? fdopen(fd, "w") : NULL;
		if (!rejects) {
			util_warn("%s: %s", rejects_path, strerror(errno));
			if (fd >= 0)
				close(fd);
			goto out;
		}
		opts.rejects = rejects;
	}
	util_catch_interrupts();
	ps.quiet = o.quiet;
	opts.progress = on_progress;
	opts.progress_ud = &ps;
	if (json)
		util_buf_adds(&out, "{\"files\": [");
	for (int i = 0; i < nfiles; i++) {
		store_import_result res;
		ps.label = files[i];
		ps.start = util_now();
		ps.bar = NULL;
		int rc = import_as_run(st, files[i], &opts, argc, argv, &res);
		if (ps.bar) {
			util_progress_finish(ps.bar);
			util_progress_free(ps.bar);
			ps.bar = NULL;
		}
		if (rc) {
			util_warn("%s", res.errmsg);
			total_rejected += res.rejected;
			if (util_interrupted()) {
				util_warn("%s was rolled back%s; run the import again to resume", files[i],
					  i > 0 ? " (the files before it are imported)" : "");
				status = UTIL_EXIT_INTERRUPTED;
			}
			goto out;
		}
		total_rejected += res.rejected;
		if (json) {
			if (i > 0)
				util_buf_adds(&out, ", ");
			json_summary(&out, files[i], &res);
		} else {
			print_summary(files[i], &res, opts.format == STORE_IMPORT_AUTO);
			if (res.completions_dropped && !rejects_path)
				util_warn("%s: %ld empty completion%s left out (--skip-bad FILE lists them)", files[i],
					  res.completions_dropped, res.completions_dropped == 1 ? "" : "s");
		}
	}
	if (json) {
		util_buf_addf(&out, "], \"rejected\": %ld}\n", total_rejected);
		fputs(out.data, stdout);
	}
	if (rejects) {
		int e = finish_rejects(rejects, &rejects_tmp, rejects_path);
		rejects = NULL;
		if (e)
			goto out;
	}
	if (total_rejected && rejects_path)
		util_warn("%ld bad record%s written to %s", total_rejected, total_rejected == 1 ? "" : "s",
			  rejects_path);
	if (fflush(stdout)) {
		util_warn("writing the summary: %s", strerror(errno));
		goto out;
	}
	status = UTIL_EXIT_OK;
out:
	if (rejects && total_rejected > 0) {
		/* a failed import still hands over the bad records it wrote (every
		 * line of the file is one); one that wrote none leaves an existing
		 * REJECTS as it was */
		finish_rejects(rejects, &rejects_tmp, rejects_path);
		rejects = NULL;
	}
	if (rejects)
		fclose(rejects);
	if (rejects_tmp) {
		unlink(rejects_tmp);
		free(rejects_tmp);
	}
	util_buf_free(&out);
	store_free(st);
	store_import_map_free(map);
	return status;
}

/* dpo-db-runs.c: `dpo-db runs [--kind K] [--json]`: the runs recorded in the
 * store (imports, generations, judge runs, training, evaluations) with their
 * status as read (store_runs_foreach: a run whose process is gone reads
 * "interrupted"); an import shows its file and counts. */
#include "store/dpo_db.h"
#include "store/provenance.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/cli.h"
#include "util/opt.h"
#include "util/utf8.h"
#include "util/xmalloc.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct runs_opts {
	const char *db, *kind;
	int json;
} runs_opts;

static const util_opt runs_table[] = {
	UTIL_OPT_DB(runs_opts, db),
	{"kind", 0, UTIL_OPT_STRING, offsetof(runs_opts, kind), .arg = "K",
	 .help = "only runs of kind K (import, generate, judge,\ntrain, eval, ...)"},
	UTIL_OPT_JSON(runs_opts, json),
	UTIL_OPT_TABLE_END,
};

/* An import run's file, kept while listing. */
typedef struct run_file {
	int64_t run_id;
	char *path, *sha256, *format, *source, *split;
	long long size;
} run_file;

typedef struct runs_ctx {
	run_file *files;
	size_t nfiles, cap;
	int json;
	long n;
	util_buf out, esc;
} runs_ctx;

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static int keep_file(void *ud, int64_t run_id, const store_import_file_info *fi, const char *format)
{
	runs_ctx *x = ud;
	if (x->nfiles == x->cap) {
		x->cap = x->cap ? 2 * x->cap : 16;
		x->files = xreallocarray(x->files, x->cap, sizeof *x->files);
	}
	x->files[x->nfiles++] = (run_file){.run_id = run_id, .path = dup_or_null(fi->path),
					   .sha256 = dup_or_null(fi->sha256), .format = dup_or_null(format),
					   .source = dup_or_null(fi->source), .split = dup_or_null(fi->split),
					   .size = fi->size};
	return 0;
}

/* The file of run id (files are in run id order), or NULL. */
static const run_file *file_of(const runs_ctx *x, int64_t id)
{
	size_t lo = 0, hi = x->nfiles;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (x->files[mid].run_id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < x->nfiles && x->files[lo].run_id == id ? &x->files[lo] : NULL;
}

static void json_str_or_null(util_buf *b, const char *s)
{
	if (s)
		add_str(b, s);
	else
		util_buf_adds(b, "null");
}

/* ", \"key\": " and the string or null. */
static void json_field(util_buf *b, const char *key, const char *s)
{
	util_buf_addf(b, ", \"%s\": ", key);
	json_str_or_null(b, s);
}

/* Stored JSON as is when it parses, else as a string. */
static void json_raw(util_buf *b, const char *s)
{
	cJSON *j = s ? cJSON_Parse(s) : NULL;
	if (j) {
		char *t = cJSON_PrintUnformatted(j);
		util_buf_adds(b, t);
		cJSON_free(t);
		cJSON_Delete(j);
	} else {
		json_str_or_null(b, s);
	}
}

static long num(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsNumber(v) ? (long)v->valuedouble : 0;
}

/* The text summary of a run: an import's file and counts; else its
 * summary JSON as stored. */
static void text_summary(util_buf *b, const store_run *r, const run_file *f)
{
	cJSON *j = r->summary_json ? cJSON_Parse(r->summary_json) : NULL;
	if (f) {
		util_buf_addf(b, "%s (%s)", f->path ? f->path : "?", f->format ? f->format : "?");
		const char *err = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "error"));
		if (err) /* nothing of the file stayed: no counts */
			util_buf_addf(b, ": %s", err);
		else if (j)
			util_buf_addf(b, ": %ld records, prompts %ld new, completions %ld new, comparisons %ld new, "
					 "%ld rejected",
				      num(j, "records"), num(j, "prompts_new"), num(j, "completions_new"),
				      num(j, "comparisons_new"), num(j, "rejected"));
	} else if (r->summary_json) {
		util_buf_adds(b, r->summary_json);
	}
	cJSON_Delete(j);
}

static int list_run(void *ud, const store_run *r)
{
	runs_ctx *x = ud;
	const run_file *f = file_of(x, r->id);
	util_buf *b = &x->out;
	if (x->json) {
		util_buf_addf(b, "%s{\"id\": %lld", x->n ? ", " : "", (long long)r->id);
		json_field(b, "kind", r->kind);
		json_field(b, "status", r->status);
		json_field(b, "started_at", r->started_at);
		json_field(b, "ended_at", r->ended_at);
		json_field(b, "command", r->command);
		util_buf_adds(b, ", \"params\": ");
		json_raw(b, r->params_json);
		util_buf_adds(b, ", \"summary\": ");
		json_raw(b, r->summary_json);
		util_buf_adds(b, ", \"file\": ");
		if (f) {
			util_buf_adds(b, "{\"path\": ");
			json_str_or_null(b, f->path);
			if (f->size >= 0)
				util_buf_addf(b, ", \"size\": %lld", f->size);
			else
				util_buf_adds(b, ", \"size\": null");
			json_field(b, "sha256", f->sha256);
			json_field(b, "format", f->format);
			json_field(b, "source", f->source);
			json_field(b, "split", f->split);
			util_buf_adds(b, "}}");
		} else {
			util_buf_adds(b, "null}");
		}
	} else {
		util_buf line = UTIL_BUF_INIT;
		util_buf_addf(&line, "%-5lld %-9s %-12s %-20s %-20s ", (long long)r->id, r->kind ? r->kind : "",
			      r->status ? r->status : "", r->started_at ? r->started_at : "",
			      r->ended_at ? r->ended_at : "-");
		text_summary(&line, r, f);
		util_buf_reset(&x->esc);
		util_buf_adds(b, util_term_escape(util_buf_str(&line), &x->esc));
		util_buf_addc(b, '\n');
		util_buf_free(&line);
	}
	x->n++;
	return 0;
}

int db_cmd_runs(int argc, char **argv)
{
	static util_cli cli = {
		.name = "dpo-db runs",
		.summary = "List the runs recorded in the database: imports (one per file), generations,\n"
			   "judge runs, training and evaluations, with id, kind, status (a run whose\n"
			   "process is gone reads \"interrupted\"), start, end and a summary (an import:\n"
			   "its file, format and counts).",
		.opts = runs_table,
	};
	runs_opts o = {0};
	runs_ctx x = {.json = 0, .out = UTIL_BUF_INIT, .esc = UTIL_BUF_INIT};
	int status = UTIL_EXIT_FAIL;
	util_cli_parse(&cli, &o, argc, argv);
	x.json = o.json;
	store *st = db_open(db_path(o.db));
	if (!st)
		return UTIL_EXIT_FAIL;
	if (store_import_files_foreach(st, keep_file, &x) || store_runs_foreach(st, o.kind, list_run, &x)) {
		util_warn("%s", store_errmsg(st));
		goto out;
	}
	if (x.json)
		printf("{\"runs\": [%s]}\n", util_buf_str(&x.out));
	else if (x.n)
		printf("%-5s %-9s %-12s %-20s %-20s %s\n%s", "ID", "KIND", "STATUS", "STARTED", "ENDED", "SUMMARY",
		       util_buf_str(&x.out));
	else
		printf("no runs\n");
	if (fflush(stdout)) {
		util_warn("standard output: %s", strerror(errno));
		goto out;
	}
	status = UTIL_EXIT_OK;
out:
	for (size_t i = 0; i < x.nfiles; i++) {
		run_file *f = &x.files[i];
		free(f->path), free(f->sha256), free(f->format), free(f->source), free(f->split);
	}
	free(x.files);
	util_buf_free(&x.out);
	util_buf_free(&x.esc);
	store_free(st);
	return status;
}

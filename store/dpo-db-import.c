/* dpo-db-import.c: `dpo-db import FILE... [options]`. */
#include "store/dpo_db.h"
#include "store/import.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/cli.h"
#include "util/progress.h"
#include "util/xmalloc.h"
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: dpo-db [--db PATH] import FILE... [options]\n"
		"Import preference datasets (JSON Lines, plain or .gz; \"-\" reads standard\n"
		"input). Each file is imported in one transaction: the first bad record\n"
		"aborts that file, names its line, and leaves the database as it was (files\n"
		"imported before it stay). Importing the same data again adds nothing.\n"
		"\n"
		"Options:\n"
		"  -f, --format F       auto (default: detected per file from its first\n"
		"                       record), trl, hh, ultrafeedback, sharegpt, prompts,\n"
		"                       candidates\n"
		"  -s, --source NAME    source name of the records (default: the file's base\n"
		"                       name without extensions); labels are by annotator\n"
		"                       import:NAME\n"
		"      --split NAME     split of new prompts (default: train)\n"
		"      --skip-bad REJECTS  write each bad line to REJECTS as a JSON object\n"
		"                       {\"file\",\"line\",\"reason\",\"record\"} and import the rest\n"
		"      --json           print one JSON document with the per-file summaries\n"
		"  -q, --quiet          no progress line\n"
		"  -h, --help           this text\n"
		"\n"
		"Formats:\n"
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
		"\n"
		"Exit status: 0 success, 1 failure, 2 usage error, 130 interrupted (the file\n"
		"being read is rolled back).\n");
}

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
	printf("%s: %s%s, source %s: %ld records, prompts %ld new / %ld duplicate, completions %ld new / %ld duplicate, comparisons %ld new / %ld duplicate, %ld rejected\n",
	       path, r->variant[0] ? r->variant : store_import_format_name(r->format),
	       detected ? " (detected)" : "", r->source, c->records, c->prompts_new, c->prompts_dup,
	       c->completions_new, c->completions_dup, c->comparisons_new, c->comparisons_dup, r->rejected);
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
		      "\"comparisons_duplicate\": %ld, \"rejected\": %ld}",
		      r->lines, c->records, c->prompts_new, c->prompts_dup, c->completions_new, c->completions_dup,
		      c->comparisons_new, c->comparisons_dup, r->rejected);
}

int db_cmd_import(int argc, char **argv, const char *dbpath)
{
	static const struct option longopts[] = {
		{"format", required_argument, NULL, 'f'},
		{"source", required_argument, NULL, 's'},
		{"split", required_argument, NULL, 'S'},
		{"skip-bad", required_argument, NULL, 'k'},
		{"json", no_argument, NULL, 'j'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	store_import_opts opts = {0};
	const char *rejects_path = NULL;
	int json = 0, quiet = 0, c, status = UTIL_EXIT_FAIL;
	store *st = NULL;
	FILE *rejects = NULL;
	util_buf out = UTIL_BUF_INIT;
	prog_state ps = {0};

	optind = 0;
	while ((c = getopt_long(argc, argv, "f:s:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (store_import_format_from_name(optarg, &opts.format))
				util_usage_error("import: unknown format \"%s\" (auto, trl, hh, ultrafeedback, sharegpt, prompts, candidates)",
						 optarg);
			break;
		case 's':
			if (!*optarg)
				util_usage_error("import: --source must not be empty");
			opts.source = optarg;
			break;
		case 'S':
			if (!*optarg)
				util_usage_error("import: --split must not be empty");
			opts.split = optarg;
			break;
		case 'k': rejects_path = optarg; break;
		case 'j': json = 1; break;
		case 'q': quiet = 1; break;
		case 'h': usage(stdout); return UTIL_EXIT_OK;
		default: util_usage_error("import: see 'dpo-db import --help'");
		}
	}
	if (optind >= argc)
		util_usage_error("import: no input FILE given");

	st = store_new();
	if (store_open(st, dbpath)) {
		util_warn("%s: %s", dbpath, store_errmsg(st));
		goto out;
	}
	if (rejects_path) {
		rejects = fopen(rejects_path, "w");
		if (!rejects) {
			util_warn("%s: %s", rejects_path, strerror(errno));
			goto out;
		}
		opts.rejects = rejects;
	}
	util_catch_interrupts();
	ps.quiet = quiet;
	opts.progress = on_progress;
	opts.progress_ud = &ps;
	if (json)
		util_buf_adds(&out, "{\"files\": [");
	long total_rejected = 0;
	for (int i = optind; i < argc; i++) {
		store_import_result res;
		ps.label = argv[i];
		ps.start = util_now();
		ps.bar = NULL;
		int rc = store_import_file(st, argv[i], &opts, &res);
		if (ps.bar) {
			util_progress_finish(ps.bar);
			util_progress_free(ps.bar);
			ps.bar = NULL;
		}
		if (rc) {
			util_warn("%s", res.errmsg);
			if (util_interrupted()) {
				util_warn("%s was rolled back%s; run the import again to resume", argv[i],
					  i > optind ? " (the files before it are imported)" : "");
				status = UTIL_EXIT_INTERRUPTED;
			}
			goto out;
		}
		total_rejected += res.rejected;
		if (json) {
			if (i > optind)
				util_buf_adds(&out, ", ");
			json_summary(&out, argv[i], &res);
		} else {
			print_summary(argv[i], &res, opts.format == STORE_IMPORT_AUTO);
		}
	}
	if (json) {
		util_buf_addf(&out, "], \"rejected\": %ld}\n", total_rejected);
		fputs(out.data, stdout);
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
	if (rejects && fclose(rejects) && status == UTIL_EXIT_OK) {
		util_warn("%s: %s", rejects_path, strerror(errno));
		status = UTIL_EXIT_FAIL;
	}
	util_buf_free(&out);
	store_free(st);
	return status;
}

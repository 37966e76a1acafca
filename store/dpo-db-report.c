/* dpo-db-report.c: `dpo-db report OUT.html` (see report.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/dpo_db.h"
#include "store/report.h"
#include "util/cli.h"
#include "util/xmalloc.h"

static void report_usage(void)
{
	printf("Usage: dpo-db [--db PATH] report OUT.html [--title TEXT]\n"
	       "Write a self-contained HTML page (inline SVG charts, no script, no network)\n"
	       "with the store's counts, label distribution, annotator agreement, the\n"
	       "judges' position bias and consistency, the training curves of every\n"
	       "training run and the evaluation results. OUT '-' writes to standard output.\n"
	       "\n"
	       "  --title TEXT   page title (default \"dpo report\")\n"
	       "  --db PATH      the database (else $DPO_DB, else ./dpo.db)\n"
	       "  -h, --help     this help\n");
}

int db_cmd_report(int argc, char **argv, const char *dbpath)
{
	static const struct option longopts[] = {
		{"title", required_argument, NULL, 't'},
		{"db", required_argument, NULL, 'd'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *title = NULL;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 't': title = optarg; break;
		case 'd': dbpath = util_db_path(optarg); break;
		case 'h': report_usage(); return UTIL_EXIT_OK;
		default: util_warn("report: try 'dpo-db report --help'"); return UTIL_EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		util_warn(argc - optind < 1 ? "report: the output file is missing"
					    : "report: one output file expected");
		return UTIL_EXIT_USAGE;
	}
	const char *outpath = argv[optind];
	int status = UTIL_EXIT_FAIL;
	char *tmp = NULL;
	FILE *f = NULL;
	util_buf page = UTIL_BUF_INIT;
	store *st = store_new();
	if (access(dbpath, F_OK) != 0) {
		util_warn("%s: %s", dbpath, strerror(errno));
		goto out;
	}
	if (store_open(st, dbpath)) {
		util_warn("%s", store_errmsg(st));
		goto out;
	}
	if (store_report_html(st, title, &page)) {
		util_warn("%s: %s", dbpath, store_errmsg(st));
		goto out;
	}
	if (!strcmp(outpath, "-")) {
		fwrite(page.data, 1, page.len, stdout);
		if (fflush(stdout)) {
			util_warn("standard output: %s", strerror(errno));
			goto out;
		}
	} else {
		tmp = xasprintf("%s.tmp.%ld", outpath, (long)getpid());
		f = fopen(tmp, "w");
		if (!f) {
			util_warn("%s: %s", tmp, strerror(errno));
			goto out;
		}
		size_t w = fwrite(page.data, 1, page.len, f);
		int e = fclose(f);
		f = NULL;
		if (w != page.len || e) {
			util_warn("%s: %s", tmp, strerror(errno));
			unlink(tmp);
			goto out;
		}
		if (rename(tmp, outpath)) {
			util_warn("%s: %s", outpath, strerror(errno));
			unlink(tmp);
			goto out;
		}
		fprintf(stderr, "dpo-db: wrote %s (%zu bytes)\n", outpath, page.len);
	}
	status = UTIL_EXIT_OK;
out:
	free(tmp);
	util_buf_free(&page);
	store_free(st);
	return status;
}

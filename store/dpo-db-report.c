/* dpo-db-report.c: `dpo-db report [OPTIONS] OUT.html`: the page of report.h
 * (store_report_html), written atomically or to standard output. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/dpo_db.h"
#include "store/report.h"
#include "util/cli.h"
#include "util/file.h"
#include "util/opt.h"
#include "util/xmalloc.h"

typedef struct report_opts {
	const char *db, *title;
} report_opts;

static const util_opt report_table[] = {
	UTIL_OPT_DB(report_opts, db),
	{"title", 0, UTIL_OPT_STRING, offsetof(report_opts, title), .def = "dpo report", .arg = "TEXT",
	 .help = "page title"},
	UTIL_OPT_TABLE_END,
};

static util_cli report_cli = {
	.name = "dpo-db report",
	.synopsis = "[OPTIONS] OUT.html",
	.summary = "Write a self-contained HTML page (inline SVG charts, no script, no network)\n"
		   "with the store's counts, label distribution, annotator agreement, the\n"
		   "judges' position bias and consistency, the training curves of every\n"
		   "training run and the evaluation results. OUT - writes to standard output;\n"
		   "otherwise the file is replaced atomically.",
	.opts = report_table,
	.min_args = 1,
	.max_args = 1,
};

int db_cmd_report(int argc, char **argv)
{
	report_opts o = {0};
	util_cli_parse(&report_cli, &o, argc, argv);
	const char *dbpath = db_path(o.db), *title = o.title;
	const char *outpath = report_cli.args[0];
	int status = UTIL_EXIT_FAIL;
	util_buf page = UTIL_BUF_INIT;
	char why[512];
	if (util_check_output(outpath, dbpath, NULL, 0, why, sizeof why)) {
		util_warn("%s: %s", outpath, why);
		return UTIL_EXIT_FAIL;
	}
	store *st = store_new();
	if (store_open_read(st, dbpath)) {
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
		if (util_write_file_atomic(outpath, page.data, page.len)) {
			util_warn("%s: %s", outpath, strerror(errno));
			goto out;
		}
		fprintf(stderr, "dpo-db: wrote %s (%zu bytes)\n", outpath, page.len);
	}
	status = UTIL_EXIT_OK;
out:
	util_buf_free(&page);
	store_free(st);
	return status;
}

/* import_file.c: the file layer of the dataset importer: stream a JSONL file
 * (plain or gzip) through the parser and store_add_record in one
 * transaction. See import.h. */
#include "store/import.h"
#include "store/store_int.h"
#include "util/buf.h"
#include "util/lineread.h"
#include "util/xmalloc.h"
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

char *store_import_default_source(const char *path)
{
	static const char *const exts[] = {".gz", ".jsonl", ".json", ".ndjson", ".jl", ".txt"};
	if (!strcmp(path, "-"))
		return xstrdup("stdin");
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t n = strlen(base);
	for (int again = 1; again;) {
		again = 0;
		for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
			size_t el = strlen(exts[i]);
			if (n > el && !strncmp(base + n - el, exts[i], el)) {
				n -= el;
				again = 1;
			}
		}
	}
	if (n == 0)
		return xstrdup(base[0] ? base : "import");
	return xstrndup(base, n);
}

/* Append s[0..n) escaped for a JSON string, without quotes. */
static void add_escaped(util_buf *b, const char *s, size_t n)
{
	size_t start = b->len;
	util_buf_add_json_string(b, s, n);
	memmove(b->data + start, b->data + start + 1, b->len - start - 2);
	b->len -= 2;
	b->data[b->len] = '\0';
}

/* Append s[0..n) as a JSON string, replacing invalid UTF-8 by U+FFFD so
 * that the rejects file is always valid JSON. */
static void add_json_text(util_buf *b, const char *s, size_t n)
{
	size_t bad;
	util_buf_addc(b, '"');
	while (!store_import_utf8_valid(s, n, &bad)) {
		add_escaped(b, s, bad);
		util_buf_adds(b, "\xEF\xBF\xBD");
		s += bad + 1;
		n -= bad + 1;
	}
	add_escaped(b, s, n);
	util_buf_addc(b, '"');
}

static void seterr(store_import_result *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void seterr(store_import_result *res, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(res->errmsg, sizeof res->errmsg, fmt, ap);
	va_end(ap);
}

static int write_reject(FILE *f, util_buf *b, const char *path, long lineno, const char *reason,
			const char *line, size_t len)
{
	util_buf_reset(b);
	util_buf_adds(b, "{\"file\": ");
	add_json_text(b, path, strlen(path));
	util_buf_addf(b, ", \"line\": %ld, \"reason\": ", lineno);
	add_json_text(b, reason, strlen(reason));
	util_buf_adds(b, ", \"record\": ");
	add_json_text(b, line, len);
	util_buf_adds(b, "}\n");
	return fwrite(b->data, 1, b->len, f) == b->len ? 0 : -1;
}

static int blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

int store_import_file(store *st, const char *path, const store_import_opts *opts, store_import_result *res)
{
	int rc = STORE_OK, in_tx = 0;
	util_lineread *r = NULL;
	store_import_parser *p = NULL;
	util_buf rb = UTIL_BUF_INIT;
	char *src = NULL;
	const char *line;
	size_t len;
	int got;

	memset(res, 0, sizeof *res);
	res->format = opts->format;
	src = opts->source ? xstrdup(opts->source) : store_import_default_source(path);
	snprintf(res->source, sizeof res->source, "%s", src);
	r = util_lineread_open(path);
	if (!r) {
		seterr(res, "%s: %s", path, strerror(errno));
		rc = STORE_ERR;
		goto out;
	}
	p = store_import_parser_new(opts->format);
	if ((rc = store__bulk_begin(st))) {
		seterr(res, "%s: %s", path, store_errmsg(st));
		goto out;
	}
	in_tx = 1;
	while ((got = util_lineread_next(r, &line, &len)) == 1) {
		store_record rec;
		const char *reason;
		long lineno = util_lineread_lineno(r);
		res->lines = lineno;
		if (opts->progress && (lineno & 4095) == 0 &&
		    opts->progress(opts->progress_ud, lineno, util_lineread_offset(r))) {
			seterr(res, "%s:%ld: interrupted", path, lineno);
			rc = STORE_ERR;
			goto out;
		}
		if (blank(line, len))
			continue;
		rc = store_import_parse(p, line, len, &rec);
		if (rc == STORE_OK) {
			long before = res->counts.records;
			rc = store_add_record(st, &rec, src, opts->split, &res->counts);
			if (rc == STORE_OK)
				continue;
			/* The store checks a record before writing any of it (and
			 * counts it only then): a refusal before that point is a
			 * bad line like any other; later, it is fatal. */
			if (rc != STORE_EINVAL || res->counts.records != before) {
				seterr(res, "%s:%ld: %s", path, lineno, store_errmsg(st));
				goto out;
			}
			reason = store_errmsg(st);
		} else {
			reason = store_import_parser_errmsg(p);
		}
		if (!opts->rejects) {
			seterr(res, "%s:%ld: %s", path, lineno, reason);
			goto out;
		}
		if (write_reject(opts->rejects, &rb, path, lineno, reason, line, len)) {
			seterr(res, "writing the rejects file: %s", strerror(errno));
			rc = STORE_ERR;
			goto out;
		}
		res->rejected++;
		rc = STORE_OK;
	}
	if (got < 0) {
		seterr(res, "%s: %s", path, util_lineread_error(r));
		rc = STORE_ERR;
		goto out;
	}
	if (res->counts.records == 0 && res->rejected == 0) {
		seterr(res, "%s: no records", path);
		rc = STORE_EINVAL;
		goto out;
	}
	if (opts->rejects && fflush(opts->rejects)) {
		seterr(res, "writing the rejects file: %s", strerror(errno));
		rc = STORE_ERR;
		goto out;
	}
	if ((rc = store__bulk_commit(st))) {
		seterr(res, "%s: %s", path, store_errmsg(st));
		goto out;
	}
	in_tx = 0;
	if (opts->progress)
		(void)opts->progress(opts->progress_ud, res->lines, util_lineread_offset(r));
out:
	if (in_tx)
		store__bulk_rollback(st);
	if (p) {
		res->format = store_import_parser_format(p);
		snprintf(res->variant, sizeof res->variant, "%s", store_import_parser_variant(p));
	}
	store_import_parser_free(p);
	util_lineread_close(r);
	util_buf_free(&rb);
	free(src);
	return rc;
}

/* import_stream.c: a streaming splitter for a top-level JSON array and the
 * record source of the importer's file layer (JSON Lines, JSON arrays,
 * CSV/TSV; --map/--join applied). See import_stream.h. */
#include "store/import_stream.h"
#include "util/lineread.h"
#include "util/utf8.h"
#include "util/xmalloc.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the JSON array splitter ----------------------------------------------------- */

enum { JS_START, JS_EXPECT, JS_ELEM, JS_END };

void store_jsplit_init(store_jsplit *s)
{
	memset(s, 0, sizeof *s);
	s->line = 1;
}

void store_jsplit_free(store_jsplit *s)
{
	util_buf_free(&s->elem);
}

static int jsplit_fail(store_jsplit *s, const char *fmt, int c)
{
	snprintf(s->err, sizeof s->err, fmt, c);
	return -1;
}

/* The element is complete: trim its trailing white space. */
static int jsplit_done(store_jsplit *s)
{
	util_buf *b = &s->elem;
	while (b->len && (b->data[b->len - 1] == ' ' || b->data[b->len - 1] == '\t' || b->data[b->len - 1] == '\r' ||
			  b->data[b->len - 1] == '\n'))
		b->len--;
	util_buf_addc(b, '\0');
	b->len--;
	s->nelem++;
	return 1;
}

/* Skip string bytes from data[i] (inside a string): returns the index just
 * after the closing quote, or n with the string still open. The bulk of a
 * file is strings: they are skipped with memchr, not byte by byte. */
static size_t jsplit_string(store_jsplit *s, const char *data, size_t n, size_t i)
{
	while (i < n) {
		if (s->esc) { /* the byte after a backslash */
			s->esc = 0;
			s->line += data[i] == '\n';
			i++;
			continue;
		}
		const char *q = memchr(data + i, '"', n - i);
		size_t end = q ? (size_t)(q - data) : n;
		const char *b = memchr(data + i, '\\', end - i);
		if (b)
			end = (size_t)(b - data);
		/* a raw line end in a string is not JSON (the parser says so),
		 * but the lines after it are still counted right */
		for (const char *nl = data + i; (nl = memchr(nl, '\n', end - (size_t)(nl - data))); nl++)
			s->line++;
		if (b) {
			s->esc = 1;
			i = end + 1;
		} else if (q) {
			s->in_str = 0;
			return end + 1;
		} else {
			return n;
		}
	}
	return n;
}

/* Scan inside an element from data[*pos]: 1 complete, 0 more needed, -1 error. */
static int jsplit_elem(store_jsplit *s, const char *data, size_t n, size_t *pos)
{
	size_t i = *pos, start = i;
	int rc = 0;
	for (; i < n; i++) {
		unsigned char c = (unsigned char)data[i];
		if (s->in_str) {
			i = jsplit_string(s, data, n, i) - 1;
			continue;
		}
		if (c == '"') {
			s->in_str = 1;
		} else if (c == '\n') {
			s->line++;
		} else if (c == '{' || c == '[') {
			if (s->depth == STORE_JSPLIT_MAXDEPTH)
				return jsplit_fail(s, "the JSON is nested more than %d deep", STORE_JSPLIT_MAXDEPTH);
			s->stack[s->depth++] = c == '{' ? '}' : ']';
		} else if (c == '}' || c == ']') {
			if (s->depth == 0) {
				if (c == '}')
					return jsplit_fail(s, "unexpected '%c' in the JSON array", c);
				s->state = JS_END; /* the array's own ']' */
				rc = 1;
				break;
			}
			if (s->stack[--s->depth] != (char)c)
				return jsplit_fail(s, "'%c' where the JSON expects another closing bracket", c);
		} else if (c == ',' && s->depth == 0) {
			s->state = JS_EXPECT;
			s->after_comma = 1;
			rc = 1;
			break;
		}
	}
	util_buf_add(&s->elem, data + start, i - start);
	if (rc) {
		*pos = i + 1;
		return jsplit_done(s);
	}
	*pos = n;
	return 0;
}

int store_jsplit_next(store_jsplit *s, const char *data, size_t n, size_t *pos)
{
	size_t i = *pos;
	while (i < n) {
		if (s->state == JS_ELEM) {
			*pos = i;
			return jsplit_elem(s, data, n, pos);
		}
		unsigned char c = (unsigned char)data[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			s->line += c == '\n';
			i++;
			continue;
		}
		switch (s->state) {
		case JS_START:
			if (c == 0xEF || c == 0xBB || c == 0xBF) { /* a byte order mark */
				i++;
				continue;
			}
			if (c != '[') {
				*pos = i;
				return jsplit_fail(s, "expected a JSON array ('['), got '%c'", c);
			}
			s->state = JS_EXPECT;
			s->after_comma = 0;
			i++;
			continue;
		case JS_EXPECT:
			*pos = i;
			if (c == ']') {
				if (s->after_comma)
					return jsplit_fail(s, "a '%c' after the last element of the JSON array", ',');
				s->state = JS_END;
				i++;
				continue;
			}
			if (c == ',')
				return jsplit_fail(s, "an empty element ('%c' with nothing before it) in the JSON array", c);
			util_buf_reset(&s->elem);
			s->elem_line = s->line;
			s->depth = s->in_str = s->esc = 0;
			s->state = JS_ELEM;
			continue;
		default: /* JS_END */
			*pos = i;
			return jsplit_fail(s, "text after the end of the JSON array ('%c')", c);
		}
	}
	*pos = i;
	return 0;
}

int store_jsplit_finish(store_jsplit *s)
{
	if (s->state == JS_END)
		return 0;
	if (s->state == JS_START) {
		snprintf(s->err, sizeof s->err, "no JSON array");
		return -1;
	}
	snprintf(s->err, sizeof s->err, "the file ends inside the JSON array, after %ld complete element%s "
		 "(is it truncated?)", s->nelem, s->nelem == 1 ? "" : "s");
	return -1;
}

/* ---- the record source ----------------------------------------------------------- */

enum { K_JSONL, K_ARRAY, K_CSV, K_TSV };
static const char *const kind_names[] = {"jsonl", "json array", "csv", "tsv"};

struct store__recsrc {
	util_lineread *r;
	int kind;
	const store_import_map *map;
	store_jsplit js;
	store_csv csv;
	const char *chunk;          /* the input piece being split */
	size_t clen, cpos;
	int eof;
	char **header;              /* CSV column names */
	size_t nheader;
	unsigned char *numeric;     /* CSV columns whose numbers stay numbers */
	util_buf json, mapped, why;
	char err[512];
	long errline;
};

static int has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), k = strlen(suf);
	return n >= k && !strcmp(s + n - k, suf);
}

store__recsrc *store__recsrc_open(const char *path, store_import_container container, const store_import_map *map,
				  char *err, size_t errlen)
{
	util_lineread *r = util_lineread_open(path);
	if (!r) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	store__recsrc *s = xcalloc(1, sizeof *s);
	s->r = r;
	s->map = map;
	s->kind = K_JSONL;
	if (container == STORE_IMPORT_CONTAINER_AUTO) {
		if (has_suffix(path, ".csv") || has_suffix(path, ".csv.gz"))
			container = STORE_IMPORT_CONTAINER_CSV;
		else if (has_suffix(path, ".tsv") || has_suffix(path, ".tsv.gz"))
			container = STORE_IMPORT_CONTAINER_TSV;
	}
	if (container == STORE_IMPORT_CONTAINER_CSV || container == STORE_IMPORT_CONTAINER_TSV) {
		s->kind = container == STORE_IMPORT_CONTAINER_CSV ? K_CSV : K_TSV;
		store_csv_init(&s->csv, s->kind == K_CSV ? ',' : '\t');
	} else if (container == STORE_IMPORT_CONTAINER_AUTO) {
		int c = util_lineread_peek(r);
		if (c == -2) {
			snprintf(err, errlen, "%s: %s", path, util_lineread_error(r));
			store__recsrc_close(s);
			return NULL;
		}
		if (c == '[') {
			s->kind = K_ARRAY;
			store_jsplit_init(&s->js);
		}
	}
	return s;
}

/* Feed the splitter or the CSV reader until it has a record: 1, 0 at the
 * end, -1 on error. */
static int chunked_next(store__recsrc *s)
{
	for (;;) {
		if (s->cpos < s->clen) {
			int rc = s->kind == K_ARRAY ? store_jsplit_next(&s->js, s->chunk, s->clen, &s->cpos)
						    : store_csv_next(&s->csv, s->chunk, s->clen, &s->cpos);
			if (rc == 1)
				return 1;
			if (rc < 0) {
				s->errline = s->kind == K_ARRAY ? s->js.line : s->csv.line;
				snprintf(s->err, sizeof s->err, "%s", s->kind == K_ARRAY ? s->js.err : s->csv.err);
				return -1;
			}
			continue;
		}
		if (s->eof) {
			int rc = s->kind == K_ARRAY ? store_jsplit_finish(&s->js) : store_csv_finish(&s->csv);
			if (rc < 0) {
				s->errline = s->kind == K_ARRAY ? s->js.line : s->csv.line;
				snprintf(s->err, sizeof s->err, "%s", s->kind == K_ARRAY ? s->js.err : s->csv.err);
				return -1;
			}
			if (s->kind != K_ARRAY && rc == 1) {
				s->clen = s->cpos = 0;
				return 1;
			}
			return 0;
		}
		s->cpos = 0;
		int g = util_lineread_chunk(s->r, &s->chunk, &s->clen);
		if (g < 0) {
			s->errline = 0;
			snprintf(s->err, sizeof s->err, "%s", util_lineread_error(s->r));
			return -1;
		}
		if (g == 0) {
			s->clen = 0;
			s->eof = 1;
		}
	}
}

/* A CSV cell that is a finite number, written as JSON. */
static int csv_number(const char *cell, size_t len, util_buf *out)
{
	char *end;
	if (!len || cell[0] == ' ' || cell[0] == '\t')
		return 0;
	errno = 0;
	double v = strtod(cell, &end);
	if (end != cell + len || errno || !isfinite(v))
		return 0;
	util_buf_addf(out, "%.17g", v);
	return 1;
}

/* The first row of a CSV file: the column names. 0 or -1 (s->err). */
static int csv_header(store__recsrc *s)
{
	store_csv *c = &s->csv;
	s->nheader = c->nfields;
	s->header = xcalloc(c->nfields, sizeof *s->header);
	s->numeric = xcalloc(c->nfields, 1);
	s->errline = c->row_line;
	for (size_t i = 0; i < c->nfields; i++) {
		size_t len, bad;
		const char *f = store_csv_field(c, i, &len);
		if (i == 0 && len >= 3 && !memcmp(f, "\xEF\xBB\xBF", 3))
			f += 3, len -= 3;
		if (!len) {
			snprintf(s->err, sizeof s->err, "column %zu of the header has no name", i + 1);
			return -1;
		}
		if (!util_utf8_valid(f, len, &bad) || memchr(f, '\0', len)) {
			snprintf(s->err, sizeof s->err, "column %zu of the header: invalid UTF-8 or a NUL byte", i + 1);
			return -1;
		}
		s->header[i] = xstrndup(f, len);
		s->numeric[i] = !strcmp(s->header[i], "score_chosen") || !strcmp(s->header[i], "score_rejected");
		for (size_t j = 0; j < i; j++)
			if (!strcmp(s->header[j], s->header[i])) {
				snprintf(s->err, sizeof s->err, "column %zu: the header names \"%.100s\" twice", i + 1,
					 s->header[i]);
				return -1;
			}
	}
	return 0;
}

/* The last CSV row as a JSON object into s->json; NULL, or the reason the
 * row is bad. */
static const char *csv_row_json(store__recsrc *s)
{
	store_csv *c = &s->csv;
	util_buf_reset(&s->json);
	util_buf_reset(&s->why);
	if (c->nfields != s->nheader) {
		util_buf_addf(&s->why, "%zu column%s, but the header has %zu", c->nfields, c->nfields == 1 ? "" : "s",
			      s->nheader);
		return util_buf_str(&s->why);
	}
	util_buf_addc(&s->json, '{');
	for (size_t i = 0; i < c->nfields; i++) {
		size_t len, bad;
		const char *f = store_csv_field(c, i, &len);
		if (!util_utf8_valid(f, len, &bad)) {
			util_buf_addf(&s->why, "column %zu (\"%s\"): invalid UTF-8 at byte %zu", i + 1, s->header[i],
				      bad + 1);
			return util_buf_str(&s->why);
		}
		if (i)
			util_buf_adds(&s->json, ", ");
		util_buf_add_json_string(&s->json, s->header[i], strlen(s->header[i]));
		util_buf_adds(&s->json, ": ");
		if (!s->numeric[i] || !csv_number(f, len, &s->json))
			util_buf_add_json_string(&s->json, f, len);
	}
	util_buf_addc(&s->json, '}');
	return NULL;
}

/* The next CSV row as a record: 1, 0, -1. */
static int csv_next(store__recsrc *s, store__recitem *it)
{
	for (;;) {
		int rc = chunked_next(s);
		if (rc <= 0)
			return rc;
		store_csv *c = &s->csv;
		size_t len;
		if (c->nfields == 1 && !c->quoted && (store_csv_field(c, 0, &len), len == 0))
			continue; /* a blank line */
		if (!s->header) {
			if (csv_header(s))
				return -1;
			continue;
		}
		it->line = c->row_line;
		it->reason = csv_row_json(s);
		it->text = it->raw = s->json.data ? s->json.data : "";
		it->len = it->rawlen = s->json.len;
		return 1;
	}
}

static int is_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

int store__recsrc_next(store__recsrc *s, store__recitem *it)
{
	int rc;
	memset(it, 0, sizeof *it);
	switch (s->kind) {
	case K_JSONL:
		rc = util_lineread_next(s->r, &it->text, &it->len);
		if (rc < 0) {
			s->errline = 0;
			snprintf(s->err, sizeof s->err, "%s", util_lineread_error(s->r));
		}
		if (rc <= 0)
			return rc;
		it->line = util_lineread_lineno(s->r);
		it->blank = is_blank(it->text, it->len);
		break;
	case K_ARRAY:
		if ((rc = chunked_next(s)) <= 0)
			return rc;
		it->text = s->js.elem.data;
		it->len = s->js.elem.len;
		it->line = s->js.elem_line;
		it->recno = s->js.nelem;
		break;
	default:
		if ((rc = csv_next(s, it)) <= 0)
			return rc;
		break;
	}
	it->raw = it->text;
	it->rawlen = it->len;
	if (s->map && !it->blank && !it->reason) {
		util_buf_reset(&s->why);
		rc = store__map_apply(s->map, it->text, it->len, &s->mapped, &s->why);
		if (rc < 0) {
			it->reason = util_buf_str(&s->why);
		} else if (rc == 0) {
			it->text = s->mapped.data;
			it->len = s->mapped.len;
		}
	}
	return 1;
}

const char *store__recsrc_error(const store__recsrc *s)
{
	return s->err[0] ? s->err : "read error";
}

long store__recsrc_errline(const store__recsrc *s)
{
	return s->errline;
}

unsigned long long store__recsrc_offset(const store__recsrc *s)
{
	return util_lineread_offset(s->r);
}

const char *store__recsrc_kind(const store__recsrc *s)
{
	return kind_names[s->kind];
}

void store__recsrc_close(store__recsrc *s)
{
	if (!s)
		return;
	util_lineread_close(s->r);
	store_jsplit_free(&s->js);
	store_csv_free(&s->csv);
	for (size_t i = 0; i < s->nheader; i++)
		free(s->header[i]);
	free(s->header);
	free(s->numeric);
	util_buf_free(&s->json);
	util_buf_free(&s->mapped);
	util_buf_free(&s->why);
	free(s);
}

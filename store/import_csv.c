/* import_csv.c: an RFC 4180 CSV (or TSV) reader fed in pieces: quoted fields
 * may hold the delimiter, doubled quotes and line ends; a row ends at "\n"
 * or "\r\n" outside quotes. A quote inside a field that does not start with
 * one is an error in CSV and data in TSV (where fields are seldom quoted).
 * See import_stream.h. */
#include "store/import_stream.h"
#include "util/xmalloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CS_ROW, CS_FIELD, CS_UNQUOTED, CS_QUOTED, CS_QUOTE_SEEN };

void store_csv_init(store_csv *c, char delim)
{
	memset(c, 0, sizeof *c);
	c->delim = delim;
	c->line = 1;
}

void store_csv_free(store_csv *c)
{
	util_buf_free(&c->data);
	free(c->offs);
	c->offs = NULL;
}

const char *store_csv_field(const store_csv *c, size_t i, size_t *len)
{
	size_t start = c->offs[i];
	size_t end = i + 1 < c->nfields ? c->offs[i + 1] - 1 : c->data.len - 1;
	*len = end - start;
	return c->data.data + start;
}

static void begin_field(store_csv *c)
{
	if (c->nfields == c->capfields) {
		c->capfields = c->capfields ? 2 * c->capfields : 16;
		c->offs = xreallocarray(c->offs, c->capfields, sizeof *c->offs);
	}
	c->offs[c->nfields++] = c->data.len;
	c->state = CS_FIELD;
}

static void end_field(store_csv *c)
{
	util_buf_addc(&c->data, '\0');
}

static int csv_fail(store_csv *c, const char *what)
{
	snprintf(c->err, sizeof c->err, "column %zu: %s", c->nfields, what);
	return -1;
}

/* A line end outside quotes: the row is complete. */
static int end_row(store_csv *c)
{
	end_field(c);
	c->line++;
	c->state = CS_ROW;
	return 1;
}

int store_csv_next(store_csv *c, const char *data, size_t n, size_t *pos)
{
	size_t i = *pos;
	while (i < n) {
		char ch = data[i++];
		if (c->state == CS_ROW) { /* the first byte of a row */
			util_buf_reset(&c->data);
			c->nfields = 0;
			c->quoted = 0;
			c->row_line = c->line;
			begin_field(c);
		}
		if (c->pending_cr) {
			c->pending_cr = 0;
			if (ch != '\n') {
				if (c->state == CS_QUOTE_SEEN) {
					*pos = i;
					return csv_fail(c, "text after the closing quote of a field");
				}
				util_buf_addc(&c->data, '\r'); /* a lone CR is data */
				c->state = CS_UNQUOTED;
			}
		}
		switch (c->state) {
		case CS_QUOTED:
			if (ch == '"') {
				c->state = CS_QUOTE_SEEN;
			} else {
				c->line += ch == '\n';
				util_buf_addc(&c->data, ch);
			}
			continue;
		case CS_FIELD:
			if (ch == '"') {
				c->state = CS_QUOTED;
				c->quoted = 1;
				continue;
			}
			c->state = CS_UNQUOTED;
			/* fall through */
		case CS_UNQUOTED:
		case CS_QUOTE_SEEN:
			if (ch == '"' && c->state == CS_QUOTE_SEEN) {
				util_buf_addc(&c->data, '"'); /* a doubled quote */
				c->state = CS_QUOTED;
			} else if (ch == c->delim) {
				end_field(c);
				begin_field(c);
			} else if (ch == '\n') {
				*pos = i;
				return end_row(c);
			} else if (ch == '\r') {
				c->pending_cr = 1;
			} else if (c->state == CS_QUOTE_SEEN) {
				*pos = i;
				return csv_fail(c, "text after the closing quote of a field (a quote inside a quoted "
						   "field is written twice)");
			} else if (ch == '"' && c->delim != '\t') { /* TSV takes it as data */
				*pos = i;
				return csv_fail(c, "a quote inside a field that does not start with one (quote the "
						   "whole field and write the quote twice)");
			} else {
				util_buf_addc(&c->data, ch);
			}
			continue;
		}
	}
	*pos = i;
	return 0;
}

int store_csv_finish(store_csv *c)
{
	c->pending_cr = 0; /* a CR at the very end ends the row */
	if (c->state == CS_QUOTED) {
		snprintf(c->err, sizeof c->err,
			 "column %zu: the quoted field is not closed at the end of the file (the row starts on "
			 "line %ld)", c->nfields, c->row_line);
		return -1;
	}
	if (c->state == CS_ROW)
		return 0;
	end_field(c);
	c->state = CS_ROW;
	return 1;
}

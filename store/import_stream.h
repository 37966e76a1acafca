/* import_stream.h: the pieces under the importer's file layer that turn a
 * file into records: a streaming splitter for a top-level JSON array, an
 * RFC 4180 CSV/TSV reader, field paths (choices[0].turns[0]), and the record
 * source that puts them together with --map/--join (store__recsrc). No
 * database. The splitter and the CSV reader are fed the input in pieces of
 * any size and keep only the record being read, so memory does not grow
 * with the file. */
#ifndef DPO_STORE_IMPORT_STREAM_H
#define DPO_STORE_IMPORT_STREAM_H
#include "store/import.h"
#include "util/buf.h"
#include <cjson/cJSON.h>
#include <stddef.h>

/* ---- JSON array splitter --------------------------------------------------- */

#define STORE_JSPLIT_MAXDEPTH 512

/* The state of a split: zero-initialise with store_jsplit_init. */
typedef struct store_jsplit {
	int state;              /* internal */
	int depth, in_str, esc; /* inside the current element */
	int after_comma;        /* a ',' came after the last element */
	char stack[STORE_JSPLIT_MAXDEPTH];
	long line;              /* the line being read (1-based) */
	long elem_line;         /* the line the last element started on */
	long nelem;             /* elements completed */
	util_buf elem;          /* the last element's text (trailing space trimmed) */
	char err[200];          /* why the split failed */
} store_jsplit;

/* Start a split. */
void store_jsplit_init(store_jsplit *s);
/* Free the element buffer. */
void store_jsplit_free(store_jsplit *s);
/* Scan data[*pos..n) on: returns 1 when an element is complete (its text in
 * s->elem, its first line in s->elem_line; *pos is just after it), 0 when
 * the bytes are all consumed and more input is needed, -1 when the input is
 * not a JSON array (the reason, with its line, in s->err). Elements are
 * separated by the brackets, braces, strings and commas of JSON; what is
 * inside an element is left to the JSON parser. */
int store_jsplit_next(store_jsplit *s, const char *data, size_t n, size_t *pos);
/* At the end of the input: 0 when the array was closed, -1 otherwise (the
 * reason in s->err, e.g. "the file ends inside the JSON array"). */
int store_jsplit_finish(store_jsplit *s);

/* ---- CSV / TSV reader -------------------------------------------------------- */

/* One CSV reader: zero-initialise with store_csv_init. */
typedef struct store_csv {
	char delim;             /* ',' or '\t' */
	int state;              /* internal */
	int pending_cr;         /* a '\r' outside quotes, not yet placed */
	long line;              /* the line being read (1-based) */
	long row_line;          /* the line the last row started on */
	util_buf data;          /* the row's fields, each followed by a NUL */
	size_t *offs;           /* where each field starts in data */
	size_t nfields, capfields;
	int quoted;             /* some field of the row was quoted */
	char err[200];
} store_csv;

/* Start a reader for delimiter delim. */
void store_csv_init(store_csv *c, char delim);
/* Free the reader's buffers. */
void store_csv_free(store_csv *c);
/* Read data[*pos..n) on: 1 when a row is complete (store_csv_field),
 * 0 when more input is needed, -1 on a quoting error (c->err names the
 * column; c->line is the line). */
int store_csv_next(store_csv *c, const char *data, size_t n, size_t *pos);
/* At the end of the input: 1 when a last row without a line end completed,
 * 0 when there is none, -1 when a quoted field is still open. */
int store_csv_finish(store_csv *c);
/* Field i (0-based) of the last row: its bytes (NUL-terminated, owned by the
 * reader) and length. */
const char *store_csv_field(const store_csv *c, size_t i, size_t *len);

/* ---- field paths --------------------------------------------------------------- */

typedef struct store_fpath_seg {
	char *key;              /* an object member, or NULL for an index */
	long index;
} store_fpath_seg;

/* A compiled field path: "a.b[0].c", "[2]", "metadata.score". */
typedef struct store_fpath {
	char *text;
	store_fpath_seg *seg;
	size_t nseg;
} store_fpath;

/* Compile text into *p. Returns 0, or -1 with the reason in err. *p owns
 * its memory (store_fpath_free) either way. */
int store_fpath_compile(const char *text, store_fpath *p, char *err, size_t errlen);
/* Free what store_fpath_compile made. */
void store_fpath_free(store_fpath *p);
/* The value at p in root, or NULL; then why (if not NULL) says which step
 * failed, e.g. `"turns" is missing` or `"choices" has no element 3`. */
const cJSON *store_fpath_eval(const store_fpath *p, const cJSON *root, util_buf *why);

/* ---- the record source ------------------------------------------------------------ */

/* One record read from a file. */
typedef struct store__recitem {
	const char *text;       /* the JSON text to parse (valid until the next call) */
	size_t len;
	const char *raw;        /* the record as in the file (for the rejects file) */
	size_t rawlen;
	long line;              /* the line it starts on */
	long recno;             /* its 1-based number in a JSON array or CSV file, else 0 */
	int blank;              /* a blank line: skip it */
	const char *reason;     /* non-NULL: a bad record (e.g. a --map path is missing) */
} store__recitem;

typedef struct store__recsrc store__recsrc;

/* Open path ("-": standard input; gzip detected) as a source of records:
 * JSON Lines, a JSON array (first non-space byte '['), or CSV/TSV (by
 * container, or from the .csv/.tsv extension), mapped through map when not
 * NULL. Returns NULL with the reason in err. */
store__recsrc *store__recsrc_open(const char *path, store_import_container container, const store_import_map *map,
				  char *err, size_t errlen);
/* The next record into *it: 1, 0 at the end, -1 when the file cannot be read
 * on (store__recsrc_error; store__recsrc_errline says on which line, or 0). */
int store__recsrc_next(store__recsrc *s, store__recitem *it);
/* Why store__recsrc_next failed (owned by the source). */
const char *store__recsrc_error(const store__recsrc *s);
/* The line it failed on, or 0 when no line is to blame (a read error). */
long store__recsrc_errline(const store__recsrc *s);
/* Input bytes consumed so far. */
unsigned long long store__recsrc_offset(const store__recsrc *s);
/* The container read ("jsonl", "json array", "csv", "tsv"; a static string). */
const char *store__recsrc_kind(const store__recsrc *s);
/* Close the file and free the source. NULL is allowed. */
void store__recsrc_close(store__recsrc *s);

/* Apply map to one record: 0 with the mapped JSON text in out, 1 when text
 * is not a JSON object (to be parsed as it is, for the parser's message),
 * -1 with the reason in why (a path missing, a join key not found). */
int store__map_apply(const store_import_map *m, const char *text, size_t len, util_buf *out, util_buf *why);

#endif

/* store_defer.c: rows a bulk import appends but never reads back within its
 * transaction (provenance rows, completion_generators credits) are kept in
 * memory and written STORE__DEFER_ROWS at a time by one multi-row INSERT,
 * not one statement each: a statement's fixed cost (cursor open and close,
 * halt, bindings) is most of the cost of such a small row. They are
 * written before the transaction commits (store__bulk_commit) and
 * forgotten when it rolls back. Outside a bulk import each row is written
 * at once, as before. */
#include "config.h"
#include "store/store_int.h"
#include "util/xmalloc.h"
#include <stdlib.h>
#include <string.h>

#define STORE__DEFER_ROWS 64

/* One imported record's provenance row (provenance_records). */
typedef struct prov_row {
	int64_t run_id, prompt_id; /* prompt_id 0: none */
	long line;
	long record_id;     /* offset in text, -1: none */
	long items, nitems; /* offset and length of its JSON in text */
	int prompt_created;
} prov_row;

typedef struct credit_row {
	int64_t completion_id, generator_id;
} credit_row;

struct store_defer {
	prov_row prov[STORE__DEFER_ROWS];
	int nprov;
	credit_row credit[STORE__DEFER_ROWS];
	int ncredit;
	util_buf text;              /* the record ids and items of prov, NUL-separated */
	prov_row cur;               /* the record being imported (its items in items) */
	int have_cur;
	util_buf items;
	sqlite3_stmt *prov_many;    /* INSERT of STORE__DEFER_ROWS provenance rows */
	sqlite3_stmt *credit_many;  /* and of as many credits */
};

/* head, " VALUES " and n groups of width parameters, then tail. */
static sqlite3_stmt *prepare_many(store *st, const char *head, int width, int n, const char *tail)
{
	util_buf b = UTIL_BUF_INIT;
	sqlite3_stmt *s = NULL;
	util_buf_adds(&b, head);
	for (int i = 0; i < n; i++) {
		util_buf_adds(&b, i ? ",(" : " VALUES (");
		for (int j = 0; j < width; j++)
			util_buf_adds(&b, j ? ",?" : "?");
		util_buf_addc(&b, ')');
	}
	util_buf_adds(&b, tail);
	if (sqlite3_prepare_v3(st->db, b.data, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
		store__dberr(st, "prepare");
		s = NULL;
	}
	util_buf_free(&b);
	return s;
}

#define PROV_HEAD "INSERT INTO provenance_records(run_id, line, record_id, prompt_id, prompt_created, items)"
#define CREDIT_HEAD "INSERT INTO completion_generators(completion_id, generator_id)"
#define CREDIT_TAIL " ON CONFLICT(completion_id, generator_id) DO NOTHING"

/* Bind provenance row r at parameters base+1 .. base+6. */
static void bind_prov(store *st, sqlite3_stmt *s, int base, const prov_row *r)
{
	const char *text = st->defer->text.data;
	sqlite3_bind_int64(s, base + 1, r->run_id);
	sqlite3_bind_int64(s, base + 2, r->line);
	if (r->record_id >= 0)
		sqlite3_bind_text(s, base + 3, text + r->record_id, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, base + 3);
	if (r->prompt_id > 0)
		sqlite3_bind_int64(s, base + 4, r->prompt_id);
	else
		sqlite3_bind_null(s, base + 4);
	sqlite3_bind_int(s, base + 5, r->prompt_created);
	sqlite3_bind_text(s, base + 6, text + r->items, (int)r->nitems, SQLITE_STATIC);
}

/* Write the deferred provenance rows: one statement of all when the buffer
 * is full, else one row at a time (the rest before a commit). */
static int flush_prov(store *st)
{
	struct store_defer *d = st->defer;
	int rc = STORE_OK;
	if (d->nprov == STORE__DEFER_ROWS) {
		if (!d->prov_many && !(d->prov_many = prepare_many(st, PROV_HEAD, 6, STORE__DEFER_ROWS, "")))
			return STORE_ERR;
		for (int i = 0; i < d->nprov; i++)
			bind_prov(st, d->prov_many, 6 * i, &d->prov[i]);
		if (sqlite3_step(d->prov_many) != SQLITE_DONE)
			rc = store__dberr(st, "record provenance");
		sqlite3_reset(d->prov_many);
	} else {
		for (int i = 0; i < d->nprov && !rc; i++) {
			sqlite3_stmt *s = store__stmt(st, SS_PROV_ADD);
			if (!s)
				return STORE_ERR;
			bind_prov(st, s, 0, &d->prov[i]);
			if (sqlite3_step(s) != SQLITE_DONE)
				rc = store__dberr(st, "record provenance");
			sqlite3_reset(s);
		}
	}
	d->nprov = 0;
	util_buf_reset(&d->text);
	return rc;
}

/* The same for the credits. */
static int flush_credit(store *st)
{
	struct store_defer *d = st->defer;
	int rc = STORE_OK;
	if (d->ncredit == STORE__DEFER_ROWS) {
		if (!d->credit_many && !(d->credit_many = prepare_many(st, CREDIT_HEAD, 2, STORE__DEFER_ROWS, CREDIT_TAIL)))
			return STORE_ERR;
		for (int i = 0; i < d->ncredit; i++) {
			sqlite3_bind_int64(d->credit_many, 2 * i + 1, d->credit[i].completion_id);
			sqlite3_bind_int64(d->credit_many, 2 * i + 2, d->credit[i].generator_id);
		}
		if (sqlite3_step(d->credit_many) != SQLITE_DONE)
			rc = store__dberr(st, "credit a completion to its generator");
		sqlite3_reset(d->credit_many);
	} else {
		for (int i = 0; i < d->ncredit && !rc; i++) {
			sqlite3_stmt *s = store__stmt(st, SS_COMPLETION_CREDIT);
			if (!s)
				return STORE_ERR;
			sqlite3_bind_int64(s, 1, d->credit[i].completion_id);
			sqlite3_bind_int64(s, 2, d->credit[i].generator_id);
			if (sqlite3_step(s) != SQLITE_DONE)
				rc = store__dberr(st, "credit a completion to its generator");
			sqlite3_reset(s);
		}
	}
	d->ncredit = 0;
	return rc;
}

void store__defer_start(store *st)
{
	if (!st->defer)
		st->defer = xcalloc(1, sizeof *st->defer);
	st->defer->nprov = st->defer->ncredit = st->defer->have_cur = 0;
	util_buf_reset(&st->defer->text);
	st->defer_on = 1;
}

int store__defer_flush(store *st)
{
	int rc = STORE_OK;
	if (st->defer && st->defer_on) {
		st->defer->have_cur = 0; /* a record not ended failed */
		rc = flush_prov(st);
		int rc2 = flush_credit(st);
		if (!rc)
			rc = rc2;
	}
	st->defer_on = 0;
	return rc;
}

void store__defer_drop(store *st)
{
	if (st->defer) {
		st->defer->nprov = st->defer->ncredit = st->defer->have_cur = 0;
		util_buf_reset(&st->defer->text);
	}
	st->defer_on = 0;
}

void store__defer_free(store *st)
{
	if (!st->defer)
		return;
	sqlite3_finalize(st->defer->prov_many);
	sqlite3_finalize(st->defer->credit_many);
	util_buf_free(&st->defer->text);
	util_buf_free(&st->defer->items);
	free(st->defer);
	st->defer = NULL;
	st->defer_on = 0;
}

/* Write v in decimal at p; the end. */
static char *put_int(char *p, int64_t v)
{
	char digits[24];
	int n = 0;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	if (v < 0)
		*p++ = '-';
	do
		digits[n++] = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	while (n)
		*p++ = digits[--n];
	return p;
}

int store__prov_add(store *st, const store_record *rec, const char *kind, int64_t row_id, int created,
		    int64_t generator_id)
{
	if (rec->run_id <= 0)
		return STORE_OK;
	int code = !strcmp(kind, "completion") ? 1 : !strcmp(kind, "comparison") ? 2 : 0;
	if (!code && strcmp(kind, "prompt"))
		return store__err(st, STORE_EINVAL, "provenance of an unknown kind of row \"%s\"", kind);
	if (!st->defer)
		st->defer = xcalloc(1, sizeof *st->defer);
	struct store_defer *d = st->defer;
	prov_row *r = &d->cur;
	/* a prompt starts the record (an unfinished one before it failed) */
	if (!code || !d->have_cur || r->run_id != rec->run_id || r->line != rec->line) {
		*r = (prov_row){.run_id = rec->run_id, .line = rec->line, .record_id = -1};
		util_buf_reset(&d->items);
		d->have_cur = 1;
	}
	if (!code) {
		r->prompt_id = row_id;
		r->prompt_created = created ? 1 : 0;
		return STORE_OK;
	}
	/* [code,row_id,created] or [1,row_id,created,generator_id] */
	char tmp[80], *e = tmp;
	if (d->items.len)
		*e++ = ',';
	*e++ = '[';
	*e++ = (char)('0' + code);
	*e++ = ',';
	e = put_int(e, row_id);
	*e++ = ',';
	*e++ = created ? '1' : '0';
	if (code == 1 && generator_id > 0) {
		*e++ = ',';
		e = put_int(e, generator_id);
	}
	*e++ = ']';
	util_buf_add(&d->items, tmp, (size_t)(e - tmp));
	return STORE_OK;
}

int store__prov_end(store *st, const store_record *rec)
{
	struct store_defer *d = st->defer;
	if (rec->run_id <= 0 || !d || !d->have_cur)
		return STORE_OK;
	int on = st->defer_on;
	if (!on) /* one row, written at once */
		d->nprov = 0, util_buf_reset(&d->text);
	prov_row *r = &d->prov[d->nprov++];
	*r = d->cur;
	d->have_cur = 0;
	if (rec->record_id) {
		r->record_id = (long)d->text.len;
		util_buf_add(&d->text, rec->record_id, strlen(rec->record_id) + 1);
	}
	r->items = (long)d->text.len;
	util_buf_addc(&d->text, '[');
	util_buf_add(&d->text, d->items.data ? d->items.data : "", d->items.len);
	util_buf_add(&d->text, "]", 2);
	r->nitems = (long)d->text.len - 1 - r->items;
	if (!on)
		return flush_prov(st);
	return d->nprov == STORE__DEFER_ROWS ? flush_prov(st) : STORE_OK;
}

int store__credit_add(store *st, int64_t completion_id, int64_t generator_id)
{
	if (!st->defer_on) { /* one row, written at once */
		sqlite3_stmt *s = store__stmt(st, SS_COMPLETION_CREDIT);
		if (!s)
			return STORE_ERR;
		sqlite3_bind_int64(s, 1, completion_id);
		sqlite3_bind_int64(s, 2, generator_id);
		int rc = sqlite3_step(s) == SQLITE_DONE ? STORE_OK
							: store__dberr(st, "credit a completion to its generator");
		sqlite3_reset(s);
		return rc;
	}
	struct store_defer *d = st->defer;
	d->credit[d->ncredit++] = (credit_row){completion_id, generator_id};
	return d->ncredit == STORE__DEFER_ROWS ? flush_credit(st) : STORE_OK;
}

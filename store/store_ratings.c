/* store_ratings.c: labels that are not comparisons: ratings (numeric scores
 * of one completion on one aspect) and binary feedback (KTO), the pairs
 * derived from ratings, and their statistics. See store.h. */
#include "config.h"
#include "store/store_int.h"
#include "util/buf.h"
#include "util/sha256.h"
#include "util/xmalloc.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- importing ---------------------------------------------------------- */

int store__record_extras_check(store *st, const store_record *rec)
{
	if (rec->annotator) {
		const char *k = rec->annotator_kind;
		if (!*rec->annotator)
			return store__err(st, STORE_EINVAL, "the annotator name is empty");
		if (k && strcmp(k, "human") && strcmp(k, "judge") && strcmp(k, "import"))
			return store__err(st, STORE_EINVAL, "annotator kind must be \"human\", \"judge\" or \"import\", not \"%s\"",
					  k);
	}
	for (size_t i = 0; i < rec->nratings; i++) {
		const store_rec_rating *r = &rec->ratings[i];
		if (r->completion < 0 || (size_t)r->completion >= rec->ncompletions)
			return store__err(st, STORE_EINVAL, "rating %zu: completion index out of range", i + 1);
		if (!r->aspect || !*r->aspect)
			return store__err(st, STORE_EINVAL, "rating %zu: no aspect", i + 1);
		if (!isfinite(r->scale_min) || !isfinite(r->scale_max) || !(r->scale_min < r->scale_max))
			return store__err(st, STORE_EINVAL, "rating %zu (%s): bad scale %g..%g", i + 1, r->aspect,
					  r->scale_min, r->scale_max);
		if (!(r->value >= r->scale_min && r->value <= r->scale_max))
			return store__err(st, STORE_EINVAL, "rating %zu (%s): %g is outside the scale %g..%g", i + 1,
					  r->aspect, r->value, r->scale_min, r->scale_max);
	}
	for (size_t i = 0; i < rec->nfeedback; i++) {
		const store_rec_feedback *f = &rec->feedback[i];
		if (f->completion < 0 || (size_t)f->completion >= rec->ncompletions)
			return store__err(st, STORE_EINVAL, "feedback %zu: completion index out of range", i + 1);
		if (f->good != 0 && f->good != 1)
			return store__err(st, STORE_EINVAL, "feedback %zu: must be good (1) or bad (0)", i + 1);
	}
	return STORE_OK;
}

/* Step an insert statement that returns a row with 1 when it added one,
 * 0 when another value was there (kept), and no row when the same value
 * was; count it in n[0] (new), n[1] (duplicate) or n[2] (conflicting). */
static int insert_step(store *st, sqlite3_stmt *s, const char *what, long *n[3])
{
	int rc = sqlite3_step(s), which = 1;
	if (rc == SQLITE_ROW) {
		which = sqlite3_column_int(s, 0) ? 0 : 2;
		rc = sqlite3_step(s);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store__dberr(st, what);
	(*n[which])++;
	return STORE_OK;
}

int store__record_extras_add(store *st, const store_record *rec, int64_t prompt_id, const int64_t *ids,
			     int64_t ann_id, store_import_counts *counts)
{
	int rc = STORE_OK;
	long *rn[3] = {&counts->ratings_new, &counts->ratings_dup, &counts->ratings_conflict};
	long *fn[3] = {&counts->feedback_new, &counts->feedback_dup, &counts->feedback_conflict};
	for (size_t i = 0; !rc && i < rec->nratings; i++) {
		const store_rec_rating *r = &rec->ratings[i];
		sqlite3_stmt *s = store__stmt(st, SS_RATING_INSERT);
		if (!s)
			return STORE_ERR;
		sqlite3_bind_int64(s, 1, ids[r->completion]);
		sqlite3_bind_int64(s, 2, ann_id);
		store__bind_text(s, 3, r->aspect);
		sqlite3_bind_double(s, 4, r->value);
		sqlite3_bind_double(s, 5, r->scale_min);
		sqlite3_bind_double(s, 6, r->scale_max);
		store__bind_text(s, 7, store__now(st));
		rc = insert_step(st, s, "add rating", rn);
	}
	for (size_t i = 0; !rc && i < rec->nfeedback; i++) {
		const store_rec_feedback *f = &rec->feedback[i];
		sqlite3_stmt *s = store__stmt(st, SS_FEEDBACK_INSERT);
		if (!s)
			return STORE_ERR;
		sqlite3_bind_int64(s, 1, prompt_id);
		sqlite3_bind_int64(s, 2, ids[f->completion]);
		sqlite3_bind_int64(s, 3, ann_id);
		sqlite3_bind_int(s, 4, f->good);
		store__bind_text(s, 5, store__now(st));
		rc = insert_step(st, s, "add feedback", fn);
	}
	return rc;
}

/* ---- reading ------------------------------------------------------------ */

int store_feedback_foreach(store *st, const char *split, store_feedback_cb cb, void *ud)
{
	sqlite3_stmt *s = store__prepare(st, "SELECT p.id, p.kind, p.content, p.split, c.id, c.text, f.good, "
					     "a.id, a.name FROM feedback f JOIN completions c ON c.id = f.completion_id "
					     "JOIN prompts p ON p.id = f.prompt_id JOIN annotators a ON a.id = f.annotator_id "
					     "WHERE (?1 IS NULL OR p.split = ?1) ORDER BY p.id, c.id, a.id");
	if (!s)
		return STORE_ERR;
	store__bind_text(s, 1, split);
	int step, rc = STORE_OK;
	while (!rc && (step = sqlite3_step(s)) == SQLITE_ROW) {
		int chat = !strcmp(store__col_text(s, 1), "chat");
		store_feedback f = {
			.prompt_id = sqlite3_column_int64(s, 0),
			.prompt_text = chat ? NULL : store__col_text(s, 2),
			.prompt_messages_json = chat ? store__col_text(s, 2) : NULL,
			.split = store__col_text(s, 3),
			.completion_id = sqlite3_column_int64(s, 4),
			.completion = store__col_text(s, 5),
			.good = sqlite3_column_int(s, 6),
			.annotator_id = sqlite3_column_int64(s, 7),
			.annotator = store__col_text(s, 8),
		};
		rc = cb(ud, &f);
	}
	if (!rc && step != SQLITE_DONE)
		rc = store__dberr(st, "read feedback");
	sqlite3_finalize(s);
	return rc;
}

int store__stats_ratings(store *st, int (*cb)(void *, const store_stat *), void *ud)
{
	static const char *const rcols[] = {"ratings", "completions", "annotators"};
	static const char *const fcols[] = {"feedback", "good", "bad"};
	sqlite3_stmt *s = store__prepare(st, "SELECT 'r', aspect, count(*), count(DISTINCT completion_id), "
					     "count(DISTINCT annotator_id) FROM ratings GROUP BY aspect "
					     "UNION ALL SELECT 'f', 'all', count(*), coalesce(sum(good), 0), "
					     "coalesce(sum(1 - good), 0) FROM feedback ORDER BY 1 DESC, 2");
	if (!s)
		return STORE_ERR;
	int step, rc = STORE_OK;
	while (!rc && (step = sqlite3_step(s)) == SQLITE_ROW) {
		int r = store__col_text(s, 0)[0] == 'r';
		store_stat x = {.section = r ? "ratings" : "feedback", .key = store__col_text(s, 1)};
		for (int i = 0; i < 3 && !rc; i++) {
			x.column = r ? rcols[i] : fcols[i];
			x.value = (long)sqlite3_column_int64(s, 2 + i);
			rc = cb(ud, &x);
		}
	}
	if (!rc && step != SQLITE_DONE)
		rc = store__dberr(st, "rating statistics");
	sqlite3_finalize(s);
	return rc;
}

/* ---- pairs from ratings --------------------------------------------------- */

/* The rated completions of one prompt, in content-hash order. */
typedef struct rated {
	int64_t id;
	double value;
} rated;

typedef struct derive_state {
	store *st;
	const store_derive_args *a;
	store_derive_counts *c;
	int64_t ann_id;
	rated *v;
	size_t n, cap;
	int64_t prompt_id;
	char prompt_hex[65];
} derive_state;

/* Record one derived pair: hi is preferred to lo. */
static int derive_one(derive_state *d, const rated *hi, const rated *lo)
{
	d->c->pairs++;
	if (d->a->dry_run)
		return STORE_OK;
	store_comparison cmp = {
		.prompt_id = d->prompt_id,
		.completion_a = hi->id,
		.completion_b = lo->id,
		.annotator_id = d->ann_id,
		.verdict = "a",
		.confidence = NAN,
		.duration_ms = -1,
		.run_id = d->a->run_id,
	};
	int created = 0, rc = store_comparison_add(d->st, &cmp, NULL, &created);
	if (!rc)
		created ? d->c->pairs_new++ : d->c->pairs_existing++;
	return rc;
}

/* Whether x is preferred to y by the margin. */
static int beats(const derive_state *d, const rated *x, const rated *y)
{
	double m = x->value - y->value;
	return m > 0 && m >= d->a->min_margin;
}

/* The pairs of the prompt collected in d. */
static int derive_prompt(derive_state *d)
{
	int rc = STORE_OK;
	if (d->n < 2)
		return STORE_OK;
	d->c->prompts++;
	if (d->a->all) {
		for (size_t i = 0; !rc && i < d->n; i++)
			for (size_t j = i + 1; !rc && j < d->n; j++) {
				if (beats(d, &d->v[i], &d->v[j]))
					rc = derive_one(d, &d->v[i], &d->v[j]);
				else if (beats(d, &d->v[j], &d->v[i]))
					rc = derive_one(d, &d->v[j], &d->v[i]);
			}
		return rc;
	}
	size_t best = 0, nlow = 0;
	for (size_t i = 1; i < d->n; i++)
		if (d->v[i].value > d->v[best].value)
			best = i;
	for (size_t i = 0; i < d->n; i++)
		nlow += beats(d, &d->v[best], &d->v[i]);
	if (!nlow)
		return STORE_OK;
	char key[96];
	unsigned char h[32];
	int n = snprintf(key, sizeof key, "%llu:%s", (unsigned long long)d->a->seed, d->prompt_hex);
	util_sha256 sh;
	util_sha256_init(&sh);
	util_sha256_update(&sh, key, (size_t)n);
	util_sha256_final(&sh, h);
	uint64_t r = 0;
	for (int i = 0; i < 8; i++)
		r = r << 8 | h[i];
	size_t k = (size_t)(r % nlow);
	for (size_t i = 0; i < d->n; i++)
		if (beats(d, &d->v[best], &d->v[i]) && k-- == 0)
			return derive_one(d, &d->v[best], &d->v[i]);
	return STORE_OK;
}

/* Say which aspects there are, for a store without the one asked for. */
static int no_aspect(store *st, const char *aspect)
{
	util_buf b = UTIL_BUF_INIT;
	sqlite3_stmt *s = store__prepare(st, "SELECT DISTINCT aspect FROM ratings ORDER BY aspect");
	if (!s)
		return STORE_ERR;
	while (sqlite3_step(s) == SQLITE_ROW)
		util_buf_addf(&b, "%s%s", b.len ? ", " : "", store__col_text(s, 0));
	sqlite3_finalize(s);
	int rc = store__err(st, STORE_ENOTFOUND, "no completion is rated on \"%s\"; the aspects rated are: %s", aspect,
			    b.len ? util_buf_str(&b) : "none (no ratings)");
	util_buf_free(&b);
	return rc;
}

/* The derivation over every rated prompt, inside a transaction (or none:
 * dry run). */
static int derive_all(derive_state *d)
{
	sqlite3_stmt *s = store__prepare(d->st, "SELECT c.prompt_id, p.hash, c.id, avg(r.value) FROM ratings r "
						"JOIN completions c ON c.id = r.completion_id "
						"JOIN prompts p ON p.id = c.prompt_id WHERE r.aspect = ?1 "
						"GROUP BY c.id ORDER BY c.prompt_id, c.hash");
	if (!s)
		return STORE_ERR;
	store__bind_text(s, 1, d->a->aspect);
	int step, rc = STORE_OK, rows = 0;
	while (!rc && (step = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t pid = sqlite3_column_int64(s, 0);
		rows = 1;
		if (pid != d->prompt_id) {
			rc = derive_prompt(d);
			d->n = 0;
			d->prompt_id = pid;
			store__hex(sqlite3_column_blob(s, 1), sqlite3_column_bytes(s, 1), d->prompt_hex);
		}
		if (d->n == d->cap) {
			d->cap = d->cap ? 2 * d->cap : 16;
			d->v = xreallocarray(d->v, d->cap, sizeof *d->v);
		}
		d->v[d->n++] = (rated){sqlite3_column_int64(s, 2), sqlite3_column_double(s, 3)};
	}
	if (!rc && step != SQLITE_DONE)
		rc = store__dberr(d->st, "read ratings");
	sqlite3_finalize(s);
	if (!rc)
		rc = derive_prompt(d);
	if (!rc && !rows)
		rc = no_aspect(d->st, d->a->aspect);
	return rc;
}

int store_derive_pairs(store *st, const store_derive_args *a, store_derive_counts *out)
{
	int rc, started = 0;
	derive_state d = {.st = st, .a = a, .c = out};
	memset(out, 0, sizeof *out);
	if (!st->db)
		return store__err(st, STORE_EINVAL, "the store is not open");
	if (!a->aspect || !*a->aspect)
		return store__err(st, STORE_EINVAL, "derive pairs: no aspect");
	if (!(a->min_margin >= 0))
		return store__err(st, STORE_EINVAL, "derive pairs: the margin must be 0 or more, not %g", a->min_margin);
	if (!a->dry_run) {
		if ((rc = store__tx_auto(st, &started)))
			return rc;
		char *name = xasprintf("ratings:%s", a->aspect);
		store_annotator an = {.kind = "import", .name = name};
		rc = store_annotator_id(st, &an, &d.ann_id);
		free(name);
		if (rc)
			goto out;
	}
	rc = derive_all(&d);
out:
	free(d.v);
	if (!a->dry_run)
		rc = store__tx_end(st, started, rc);
	return rc;
}

/* ---- one rating at a time (dpo-judge --mode rating) ---------------------- */

int store_rating_add(store *st, int64_t completion_id, int64_t annotator_id, const char *aspect, double value,
		     double scale_min, double scale_max, int64_t run_id, int *created)
{
	if (created)
		*created = 0;
	if (!aspect || !*aspect || !(scale_min < scale_max) || !(value >= scale_min && value <= scale_max))
		return store__err(st, STORE_EINVAL, "rating of completion %lld: %g is not on the scale %g..%g",
				  (long long)completion_id, value, scale_min, scale_max);
	sqlite3_stmt *s = store__prepare(st, "INSERT INTO ratings(completion_id, annotator_id, aspect, value, "
					     "scale_min, scale_max, run_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
					     "?7, ?8) ON CONFLICT(completion_id, annotator_id, aspect) DO NOTHING");
	if (!s)
		return STORE_ERR;
	sqlite3_bind_int64(s, 1, completion_id);
	sqlite3_bind_int64(s, 2, annotator_id);
	store__bind_text(s, 3, aspect);
	sqlite3_bind_double(s, 4, value);
	sqlite3_bind_double(s, 5, scale_min);
	sqlite3_bind_double(s, 6, scale_max);
	if (run_id > 0)
		sqlite3_bind_int64(s, 7, run_id);
	else
		sqlite3_bind_null(s, 7);
	store__bind_text(s, 8, store__now(st));
	int rc = sqlite3_step(s) == SQLITE_DONE ? STORE_OK : store__dberr(st, "add a rating");
	if (!rc && created)
		*created = sqlite3_changes(st->db) > 0;
	sqlite3_finalize(s);
	return rc;
}

int store_rating_get(store *st, int64_t completion_id, int64_t annotator_id, const char *aspect, double *value)
{
	sqlite3_stmt *s = store__prepare(st, "SELECT value FROM ratings WHERE completion_id = ?1 AND "
					     "annotator_id = ?2 AND aspect = ?3");
	if (!s)
		return STORE_ERR;
	sqlite3_bind_int64(s, 1, completion_id);
	sqlite3_bind_int64(s, 2, annotator_id);
	store__bind_text(s, 3, aspect);
	int step = sqlite3_step(s), rc = STORE_OK;
	if (step == SQLITE_ROW) {
		if (value)
			*value = sqlite3_column_double(s, 0);
	} else if (step == SQLITE_DONE) {
		rc = store__err(st, STORE_ENOTFOUND, "no rating of completion %lld on %s", (long long)completion_id,
				aspect);
	} else {
		rc = store__dberr(st, "read a rating");
	}
	sqlite3_finalize(s);
	return rc;
}

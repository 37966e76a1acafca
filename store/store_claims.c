/* store_claims.c: claims on pairs, so that concurrent workers (annotation
 * sessions, judge runs) share one queue without doing the same work twice.
 *
 * A worker about to show (or send) a pair claims it: a row naming the pair,
 * the scope whose labels count against the overlap ("human" for annotation
 * sessions, a judge's annotator name for judge runs), the owner (the
 * annotator, or a judge run), the owning process (pid, host, start token,
 * as runs keep them) and an expiry. A pair may be claimed while its labels
 * in the scope plus the live claims of other owners stay below the overlap.
 * A claim lives until it expires (the owner renews it while it works on the
 * pair), is released, or its process is seen gone on this host; so a
 * crashed worker's claims free themselves, and nothing has to clean up.
 * Labels are the comparisons rows themselves: a label takes the place of
 * its claim, and deleting a label (undo) frees its slot. */
#include "config.h"
#include "store/store_int.h"
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

/* Seconds since the epoch, with the fraction. */
static double now_s(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

static int check_claim(store *st, const store_claim *c, const char *what)
{
	if (!st->db)
		return store__err(st, STORE_EINVAL, "%s: the store is not open", what);
	if (!c || !c->scope || !*c->scope || !c->owner || !*c->owner || c->completion_a <= 0 ||
	    c->completion_b <= 0 || c->completion_a == c->completion_b)
		return store__err(st, STORE_EINVAL, "%s: a claim needs a pair of two completions, a scope and an owner",
				  what);
	return STORE_OK;
}

/* The pair in the store's order (completion_a < completion_b). */
static void pair_of(const store_claim *c, int64_t *a, int64_t *b)
{
	*a = c->completion_a < c->completion_b ? c->completion_a : c->completion_b;
	*b = c->completion_a < c->completion_b ? c->completion_b : c->completion_a;
}

/* Run fn inside a write transaction: the caller's if one is open, else one
 * of its own (committed, or rolled back on failure). */
static int in_write_tx(store *st, int (*fn)(store *, const store_claim *, void *), const store_claim *c,
		       void *arg)
{
	int own = sqlite3_get_autocommit(st->db) != 0, rc;
	if (own && (rc = store_begin(st)))
		return rc;
	rc = fn(st, c, arg);
	if (own) {
		if (rc < 0)
			store_rollback(st);
		else if ((rc = store_commit(st)) < 0)
			store_rollback(st);
	}
	return rc;
}

/* The labels of the pair that count against the overlap: in scope "human",
 * every human annotator's verdict but skip; else the annotator named scope's.
 * *mine: whether owner (as an annotator) has labelled it (a skip included:
 * a skipped pair is not offered to the one who skipped it again). */
static int count_labels(store *st, int64_t a, int64_t b, const char *scope, const char *owner, int *n, int *mine)
{
	/* comparisons are indexed by (prompt_id, a, b, annotator): the pair's
	 * prompt first, or every claim would scan the whole table */
	static const char sql[] = "SELECT coalesce(sum(c.verdict <> 'skip' AND "
				  "(CASE WHEN ?3 = 'human' THEN x.kind = 'human' ELSE x.name = ?3 END)), 0), "
				  "coalesce(sum(x.name = ?4), 0) FROM comparisons c "
				  "JOIN annotators x ON x.id = c.annotator_id "
				  "WHERE c.prompt_id = (SELECT prompt_id FROM completions WHERE id = ?1) "
				  "AND c.completion_a = ?1 AND c.completion_b = ?2";
	sqlite3_stmt *s = store__stmt_borrow(st, sql);
	if (!s)
		return STORE_ERR;
	sqlite3_bind_int64(s, 1, a);
	sqlite3_bind_int64(s, 2, b);
	store__bind_text(s, 3, scope);
	store__bind_text(s, 4, owner);
	int rc = STORE_OK;
	if (sqlite3_step(s) == SQLITE_ROW) {
		*n = sqlite3_column_int(s, 0);
		*mine = sqlite3_column_int(s, 1) > 0;
	} else {
		rc = store__dberr(st, "count labels");
	}
	store__stmt_return(st, sql, s);
	return rc;
}

/* Drop the pair's claims that are no longer live (expired, or of a
 * process gone on this host), then count the live ones of other owners in
 * scope into *others, whether owner holds one through this process into
 * *held, and whether owner holds one through another live process (one
 * annotator in two terminals) into *mine_elsewhere. */
static int live_claims(store *st, int64_t a, int64_t b, const char *scope, const char *owner, double now,
		       int *others, int *held, int *mine_elsewhere)
{
	long self_pid;
	const char *self_host, *self_tok;
	store__self_identity(&self_pid, &self_host, &self_tok);
	/* a claim whose owner has labelled the pair is no slot of its own: the
	 * label took its place (it is released right after) */
	static const char sql[] = "SELECT owner, pid, host, proc_start, expires_at, rowid FROM claims l "
				  "WHERE completion_a = ?1 AND completion_b = ?2 AND scope = ?3 "
				  "AND NOT EXISTS (SELECT 1 FROM comparisons x JOIN annotators a "
				  "ON a.id = x.annotator_id WHERE x.prompt_id = (SELECT prompt_id FROM completions "
				  "WHERE id = ?1) AND x.completion_a = ?1 AND x.completion_b = ?2 "
				  "AND a.name = l.owner)";
	static const char del[] = "DELETE FROM claims WHERE rowid = ?1";
	sqlite3_stmt *s = store__stmt_borrow(st, sql);
	if (!s)
		return STORE_ERR;
	sqlite3_bind_int64(s, 1, a);
	sqlite3_bind_int64(s, 2, b);
	store__bind_text(s, 3, scope);
	int64_t dead[64];
	int ndead = 0, rc = STORE_OK, step;
	*others = *held = *mine_elsewhere = 0;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		const char *who = (const char *)sqlite3_column_text(s, 0);
		int gone = sqlite3_column_double(s, 4) <= now ||
			   store__run_gone(sqlite3_column_int64(s, 1), (const char *)sqlite3_column_text(s, 2),
					   (const char *)sqlite3_column_text(s, 3));
		if (gone) {
			if (ndead < (int)(sizeof dead / sizeof *dead))
				dead[ndead++] = sqlite3_column_int64(s, 5);
		} else if (who && !strcmp(who, owner) && sqlite3_column_int64(s, 1) == self_pid &&
			   !strcmp(store__col_text(s, 2), self_host)) {
			*held = 1;
		} else if (who && !strcmp(who, owner)) {
			/* the same owner in another live process (one annotator in
			 * two terminals): that session has the pair */
			*mine_elsewhere = 1;
		} else {
			(*others)++;
		}
	}
	if (step != SQLITE_DONE)
		rc = store__dberr(st, "read claims");
	store__stmt_return(st, sql, s);
	if (rc || ndead == 0)
		return rc;
	if (!(s = store__stmt_borrow(st, del)))
		return STORE_ERR;
	for (int i = 0; rc == STORE_OK && i < ndead; i++) {
		sqlite3_reset(s);
		sqlite3_bind_int64(s, 1, dead[i]);
		if (sqlite3_step(s) != SQLITE_DONE)
			rc = store__dberr(st, "drop a dead claim");
	}
	store__stmt_return(st, del, s);
	return rc;
}

/* Insert or refresh owner's claim on the pair, expiring ttl_s from now. */
static int put_claim(store *st, int64_t a, int64_t b, const store_claim *c, double now)
{
	static const char sql[] = "INSERT INTO claims(completion_a, completion_b, scope, owner, pid, "
				  "host, proc_start, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
				  "ON CONFLICT(completion_a, completion_b, scope, owner) DO UPDATE SET "
				  "pid = excluded.pid, host = excluded.host, proc_start = excluded.proc_start, "
				  "expires_at = excluded.expires_at";
	sqlite3_stmt *s = store__stmt_borrow(st, sql);
	if (!s)
		return STORE_ERR;
	long pid;
	const char *host, *tok;
	store__self_identity(&pid, &host, &tok);
	sqlite3_bind_int64(s, 1, a);
	sqlite3_bind_int64(s, 2, b);
	store__bind_text(s, 3, c->scope);
	store__bind_text(s, 4, c->owner);
	sqlite3_bind_int64(s, 5, pid);
	store__bind_text(s, 6, *host ? host : NULL);
	store__bind_text(s, 7, tok);
	sqlite3_bind_double(s, 8, now + (c->ttl_s > 0 ? c->ttl_s : STORE_CLAIM_TTL_S));
	int rc = sqlite3_step(s) == SQLITE_DONE ? STORE_OK : store__dberr(st, "claim pair");
	store__stmt_return(st, sql, s);
	return rc;
}

static int try_claim(store *st, const store_claim *c, void *arg)
{
	int overlap = ((int *)arg)[0], *got = &((int *)arg)[1];
	int64_t a, b;
	pair_of(c, &a, &b);
	double now = now_s();
	int labels = 0, mine = 0, others = 0, held = 0, elsewhere = 0, rc;
	*got = 0;
	if ((rc = count_labels(st, a, b, c->scope, c->owner, &labels, &mine)) ||
	    (rc = live_claims(st, a, b, c->scope, c->owner, now, &others, &held, &elsewhere)))
		return rc;
	if (mine || elsewhere || (!held && labels + others >= overlap))
		return STORE_OK;
	if ((rc = put_claim(st, a, b, c, now)))
		return rc;
	*got = 1;
	return STORE_OK;
}

int store_claim_try(store *st, const store_claim *c, int overlap, int *got)
{
	int rc = check_claim(st, c, "store_claim_try");
	if (rc)
		return rc;
	if (overlap < 1)
		return store__err(st, STORE_EINVAL, "store_claim_try: the overlap must be at least 1, not %d", overlap);
	int arg[2] = {overlap, 0};
	rc = in_write_tx(st, try_claim, c, arg);
	if (got)
		*got = rc == STORE_OK && arg[1];
	return rc;
}

/* Step sql (a literal), whose ?1..?4 are the claim's pair, scope and
 * owner, once; returns sqlite3_step's code (the statement is given back),
 * or -1 when it cannot be prepared. */
static int step_claim(store *st, const char *sql, const store_claim *c)
{
	int64_t a, b;
	pair_of(c, &a, &b);
	sqlite3_stmt *s = store__stmt_borrow(st, sql);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, a);
	sqlite3_bind_int64(s, 2, b);
	store__bind_text(s, 3, c->scope);
	store__bind_text(s, 4, c->owner);
	int step = sqlite3_step(s);
	store__stmt_return(st, sql, s);
	return step;
}

static int renew_claim(store *st, const store_claim *c, void *arg)
{
	(void)arg;
	int64_t a, b;
	pair_of(c, &a, &b);
	int step = step_claim(st, "SELECT 1 FROM claims WHERE completion_a = ?1 AND completion_b = ?2 "
				  "AND scope = ?3 AND owner = ?4", c);
	if (step < 0)
		return STORE_ERR;
	if (step == SQLITE_DONE)
		return store__err(st, STORE_ENOTFOUND, "the claim on the pair is gone (it expired and was dropped)");
	if (step != SQLITE_ROW)
		return store__dberr(st, "read claim");
	return put_claim(st, a, b, c, now_s());
}

int store_claim_renew(store *st, const store_claim *c)
{
	int rc = check_claim(st, c, "store_claim_renew");
	return rc ? rc : in_write_tx(st, renew_claim, c, NULL);
}

static int release_claim(store *st, const store_claim *c, void *arg)
{
	(void)arg;
	int step = step_claim(st, "DELETE FROM claims WHERE completion_a = ?1 AND completion_b = ?2 "
				  "AND scope = ?3 AND owner = ?4", c);
	if (step < 0)
		return STORE_ERR;
	return step == SQLITE_DONE ? STORE_OK : store__dberr(st, "release claim");
}

int store_claim_release(store *st, const store_claim *c)
{
	int rc = check_claim(st, c, "store_claim_release");
	return rc ? rc : in_write_tx(st, release_claim, c, NULL);
}

static int release_all(store *st, const store_claim *c, void *arg)
{
	(void)arg;
	long pid;
	const char *host, *tok;
	store__self_identity(&pid, &host, &tok);
	sqlite3_stmt *s = store__prepare(st, "DELETE FROM claims WHERE owner = ?1 AND pid = ?2");
	if (!s)
		return STORE_ERR;
	store__bind_text(s, 1, c->owner);
	sqlite3_bind_int64(s, 2, pid);
	int rc = sqlite3_step(s) == SQLITE_DONE ? STORE_OK : store__dberr(st, "release claims");
	sqlite3_finalize(s);
	return rc;
}

int store_claims_release_all(store *st, const char *owner)
{
	if (!st->db || !owner || !*owner)
		return store__err(st, STORE_EINVAL, "store_claims_release_all: the store is not open, or no owner");
	store_claim c = {.owner = owner};
	return in_write_tx(st, release_all, &c, NULL);
}

int store__claims_count_live(store *st, int by_owner, const char *key, long *n)
{
	sqlite3_stmt *s = store__prepare(st, by_owner ? "SELECT pid, host, proc_start FROM claims "
							"WHERE owner = ?1 AND expires_at > ?2"
						      : "SELECT pid, host, proc_start FROM claims "
							"WHERE scope = ?1 AND expires_at > ?2");
	if (!s)
		return STORE_ERR;
	store__bind_text(s, 1, key);
	sqlite3_bind_double(s, 2, now_s());
	int step;
	*n = 0;
	while ((step = sqlite3_step(s)) == SQLITE_ROW)
		*n += !store__run_gone(sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1),
				       (const char *)sqlite3_column_text(s, 2));
	int rc = step == SQLITE_DONE ? STORE_OK : store__dberr(st, "read claims");
	sqlite3_finalize(s);
	return rc;
}

int store_claims_live(store *st, const char *scope, long *n)
{
	if (!st->db || !scope || !n)
		return store__err(st, STORE_EINVAL, "store_claims_live: the store is not open, or no scope");
	return store__claims_count_live(st, 0, scope, n);
}

/* ---- assignments (dpo-db assign) --------------------------------------------- */

/* The state of one store_assign. */
struct assign_ctx {
	store *st;
	const char *const *names;
	int n, overlap;
	long *load;       /* per annotator: pairs assigned and not yet labelled by them */
	long pair_no;     /* pairs seen, to rotate the tie order */
	store_assign_counts *k;
	int rc;
};

/* Which of the names labelled (or skipped) the pair or have it assigned:
 * done[i] / held[i]; the pair's human labels (not skips) into *labels. */
static int pair_people(struct assign_ctx *c, const store_pair_ref *p, int *done, int *held, int *labels)
{
	store *st = c->st;
	sqlite3_stmt *s = store__prepare(st, "SELECT a.name, a.kind = 'human' AND x.verdict <> 'skip', 0 "
					     "FROM comparisons x JOIN annotators a ON a.id = x.annotator_id "
					     "WHERE x.prompt_id = (SELECT prompt_id FROM completions WHERE id = ?1) "
					     "AND x.completion_a = ?1 AND x.completion_b = ?2 "
					     "UNION ALL SELECT annotator, 0, 1 FROM assignments "
					     "WHERE completion_a = ?1 AND completion_b = ?2");
	if (!s)
		return STORE_ERR;
	sqlite3_bind_int64(s, 1, p->completion_a);
	sqlite3_bind_int64(s, 2, p->completion_b);
	int step;
	*labels = 0;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		const char *who = (const char *)sqlite3_column_text(s, 0);
		int assigned = sqlite3_column_int(s, 2);
		*labels += sqlite3_column_int(s, 1);
		for (int i = 0; who && i < c->n; i++)
			if (!strcmp(who, c->names[i])) {
				if (assigned)
					held[i] = 1;
				else
					done[i] = 1;
			}
	}
	int rc = step == SQLITE_DONE ? STORE_OK : store__dberr(st, "read labels");
	sqlite3_finalize(s);
	return rc;
}

static int assign_pair(void *ud, const store_pair_ref *p)
{
	struct assign_ctx *c = ud;
	store *st = c->st;
	int done[STORE_ASSIGN_MAX] = {0}, held[STORE_ASSIGN_MAX] = {0}, labels = 0;
	if ((c->rc = pair_people(c, p, done, held, &labels)))
		return 1;
	int need = c->overlap - labels;
	for (int i = 0; i < c->n; i++)
		need -= held[i] && !done[i];
	long start = c->pair_no++;
	while (need > 0) {
		int best = -1;
		for (int j = 0; j < c->n; j++) {
			int i = (int)((start + j) % c->n);
			if (!done[i] && !held[i] && (best < 0 || c->load[i] < c->load[best]))
				best = i;
		}
		if (best < 0) {
			c->k->pairs_short++;
			break;
		}
		sqlite3_stmt *s = store__prepare(st, "INSERT INTO assignments(completion_a, completion_b, annotator, "
						     "created_at) VALUES (?1, ?2, ?3, ?4)");
		if (!s) {
			c->rc = STORE_ERR;
			return 1;
		}
		sqlite3_bind_int64(s, 1, p->completion_a);
		sqlite3_bind_int64(s, 2, p->completion_b);
		store__bind_text(s, 3, c->names[best]);
		store__bind_text(s, 4, store__now(st));
		c->rc = sqlite3_step(s) == SQLITE_DONE ? STORE_OK : store__dberr(st, "assign");
		sqlite3_finalize(s);
		if (c->rc)
			return 1;
		held[best] = 1;
		c->load[best]++;
		c->k->added[best]++;
		c->k->assignments_new++;
		need--;
	}
	return 0;
}

/* Each name's pending assignments (pairs assigned to it that it has not
 * labelled or skipped) into load[]. */
static int pending_loads(store *st, const char *const *names, int n, long *load)
{
	sqlite3_stmt *s = store__prepare(st, "SELECT count(*) FROM assignments g WHERE g.annotator = ?1 AND NOT "
					     "EXISTS (SELECT 1 FROM comparisons x JOIN annotators a ON a.id = "
					     "x.annotator_id WHERE a.name = g.annotator AND x.completion_a = "
					     "g.completion_a AND x.completion_b = g.completion_b)");
	if (!s)
		return STORE_ERR;
	int rc = STORE_OK;
	for (int i = 0; i < n && rc == STORE_OK; i++) {
		sqlite3_reset(s);
		store__bind_text(s, 1, names[i]);
		if (sqlite3_step(s) == SQLITE_ROW)
			load[i] = (long)sqlite3_column_int64(s, 0);
		else
			rc = store__dberr(st, "count assignments");
	}
	sqlite3_finalize(s);
	return rc;
}

int store_assign(store *st, const char *const *names, int n, int overlap, const char *split, int dry_run,
		 store_assign_counts *k)
{
	if (!st->db || !names || !k)
		return store__err(st, STORE_EINVAL, "store_assign: the store is not open, or no annotators");
	if (n < 1 || n > STORE_ASSIGN_MAX)
		return store__err(st, STORE_EINVAL, "between 1 and %d annotators, not %d", STORE_ASSIGN_MAX, n);
	if (overlap < 1 || overlap > n)
		return store__err(st, STORE_EINVAL, "an overlap of %d needs at least %d annotators (%d given)", overlap,
				  overlap, n);
	for (int i = 0; i < n; i++) {
		if (!names[i] || !*names[i])
			return store__err(st, STORE_EINVAL, "an annotator name cannot be empty");
		for (int j = 0; j < i; j++)
			if (!strcmp(names[i], names[j]))
				return store__err(st, STORE_EINVAL, "annotator \"%s\" is named twice", names[i]);
	}
	memset(k, 0, sizeof *k);
	int rc = store_begin(st);
	if (rc)
		return rc;
	struct assign_ctx c = {st, names, n, overlap, k->pending, 0, k, STORE_OK};
	if ((rc = pending_loads(st, names, n, k->pending)))
		goto out;
	store_queue_filter f = {.split = split, .include_labeled = 1, .max_annotations = overlap};
	rc = store_queue_foreach(st, &f, assign_pair, &c);
	if (c.rc)
		rc = c.rc;
out:
	if (rc < 0) {
		store_rollback(st);
		return rc;
	}
	return dry_run ? store_rollback(st) : store_commit(st);
}

int store_assigned_count(store *st, const char *annotator, long *n)
{
	if (!st->db || !annotator || !n)
		return store__err(st, STORE_EINVAL, "store_assigned_count: the store is not open, or no annotator");
	sqlite3_stmt *s = store__prepare(st, "SELECT count(*) FROM assignments WHERE annotator = ?1");
	if (!s)
		return STORE_ERR;
	store__bind_text(s, 1, annotator);
	int rc = sqlite3_step(s) == SQLITE_ROW ? STORE_OK : store__dberr(st, "count assignments");
	if (rc == STORE_OK)
		*n = (long)sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return rc;
}

/* store_pairs.c: deriving preference pairs from comparisons (resolution
 * policies), the work queues of judges and annotators, disagreements, and
 * per-pair votes for agreement statistics. */
#include "config.h"
#include "store/store_int.h"
#include "util/xmalloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const store_policies[] = {"majority", "humans-over-judges", "unanimous", "consistent-judge", NULL};

enum policy { POL_MAJORITY, POL_HUMANS, POL_UNANIMOUS, POL_CONSISTENT };

static int parse_policy(store *st, const char *name, enum policy *p)
{
	if (!name)
		name = "majority";
	for (int i = 0; store_policies[i]; i++)
		if (!strcmp(name, store_policies[i])) {
			*p = (enum policy)i;
			return STORE_OK;
		}
	return store__err(st, STORE_EINVAL,
			  "unknown resolution policy \"%s\" (expected majority, humans-over-judges, unanimous or "
			  "consistent-judge)",
			  name);
}

/* The votes on one pair. "Human" counts human and import annotators. */
typedef struct tally {
	int ha, hb;   /* human/import a and b votes */
	int ja, jb;   /* judge a and b votes */
	int jca, jcb; /* judge a and b votes not flagged inconsistent */
	int other;    /* tie and both_bad verdicts (any annotator) */
	int tie;      /* of those, ties */
} tally;

/* Decide a pair: returns +1 (a chosen), -1 (b chosen) or 0 (no pair), with
 * the number of agreeing a/b votes in *n. */
static int decide(const tally *t, enum policy p, int *n)
{
	int A, B;
	switch (p) {
	case POL_MAJORITY:
		A = t->ha + t->ja;
		B = t->hb + t->jb;
		break;
	case POL_HUMANS:
		if (t->ha + t->hb > 0) {
			A = t->ha;
			B = t->hb;
		} else {
			A = t->ja;
			B = t->jb;
		}
		break;
	case POL_UNANIMOUS:
		A = t->ha + t->ja;
		B = t->hb + t->jb;
		if (t->other || (A && B))
			return 0;
		break;
	case POL_CONSISTENT:
	default:
		A = t->ha + t->jca;
		B = t->hb + t->jcb;
		break;
	}
	*n = A > B ? A : B;
	return A > B ? 1 : B > A ? -1 : 0;
}

typedef struct decided {
	int64_t chosen, rejected;
	int n;
	unsigned char chosen_hash[32], rejected_hash[32]; /* filled by pairs_emit */
} decided;

/* Order by content, not id: ids are renumbered by an export + re-import,
 * content hashes are not, so exports come out byte-identical. */
static int decided_cmp(const void *x, const void *y)
{
	const decided *a = x, *b = y;
	int c = memcmp(a->chosen_hash, b->chosen_hash, 32);
	return c ? c : memcmp(a->rejected_hash, b->rejected_hash, 32);
}

/* Called once per prompt with its decided pairs (in (a, b) order). */
typedef int (*emit_fn)(store *st, void *ctx, int64_t prompt_id, decided *d, size_t n);

/* Scan every comparison in (prompt, a, b) order, resolve each pair and emit
 * the pairs of each prompt. */
static int resolve_scan(store *st, const char *split, const char *policy, int min_annotations, emit_fn emit,
			void *ctx, long *tied_dropped)
{
	enum policy pol;
	int rc = parse_policy(st, policy, &pol), step;
	if (rc)
		return rc;
	if (!st->db)
		return store__err(st, STORE_EINVAL, "the store is not open");
	if (min_annotations < 1)
		min_annotations = 1;
	sqlite3_stmt *s = store__prepare(
		st, split ? "SELECT c.prompt_id, c.completion_a, c.completion_b, c.verdict, c.inconsistent, a.kind "
			    "FROM prompts p JOIN comparisons c ON c.prompt_id = p.id "
			    "JOIN annotators a ON a.id = c.annotator_id WHERE p.split = ?1 AND " STORE__NOT_GOLD_SQL("c")
			    " ORDER BY c.prompt_id, c.completion_a, c.completion_b"
			  : "SELECT c.prompt_id, c.completion_a, c.completion_b, c.verdict, c.inconsistent, a.kind "
			    "FROM comparisons c JOIN annotators a ON a.id = c.annotator_id WHERE " STORE__NOT_GOLD_SQL("c")
			    " ORDER BY c.prompt_id, c.completion_a, c.completion_b");
	if (!s)
		return STORE_ERR;
	if (split)
		sqlite3_bind_text(s, 1, split, -1, SQLITE_STATIC);

	decided *buf = NULL;
	size_t nbuf = 0, cap = 0;
	int64_t cur_p = 0, cur_a = 0, cur_b = 0;
	int have = 0;
	tally t = {0};

	for (;;) {
		step = sqlite3_step(s);
		int row = step == SQLITE_ROW;
		int64_t p = 0, a = 0, b = 0;
		if (row) {
			p = sqlite3_column_int64(s, 0);
			a = sqlite3_column_int64(s, 1);
			b = sqlite3_column_int64(s, 2);
		}
		/* Close the current pair when the key changes. */
		if (have && (!row || p != cur_p || a != cur_a || b != cur_b)) {
			int n = 0, d = decide(&t, pol, &n);
			if (d && n >= min_annotations) {
				if (nbuf == cap) {
					cap = cap ? 2 * cap : 16;
					buf = xreallocarray(buf, cap, sizeof *buf);
				}
				buf[nbuf].chosen = d > 0 ? cur_a : cur_b;
				buf[nbuf].rejected = d > 0 ? cur_b : cur_a;
				buf[nbuf].n = n;
				nbuf++;
			} else if (t.tie && tied_dropped) {
				(*tied_dropped)++;
			}
			memset(&t, 0, sizeof t);
			have = 0;
			/* Close the prompt when it changes. */
			if ((!row || p != cur_p) && nbuf) {
				rc = emit(st, ctx, cur_p, buf, nbuf);
				nbuf = 0;
				if (rc)
					break;
			}
		}
		if (!row)
			break;
		cur_p = p;
		cur_a = a;
		cur_b = b;
		have = 1;
		const char *v = store__col_text(s, 3);
		const char *kind = store__col_text(s, 5);
		int judge = kind[0] == 'j';
		int consistent = !sqlite3_column_int(s, 4);
		if (!strcmp(v, "a") || !strcmp(v, "b")) {
			int isa = v[0] == 'a';
			if (judge) {
				isa ? t.ja++ : t.jb++;
				if (consistent)
					isa ? t.jca++ : t.jcb++;
			} else {
				isa ? t.ha++ : t.hb++;
			}
		} else if (strcmp(v, "skip")) {
			t.other++;
			if (!strcmp(v, "tie"))
				t.tie++;
		}
	}
	if (!rc && step != SQLITE_DONE)
		rc = store__dberr(st, "read comparisons");
	free(buf);
	sqlite3_finalize(s);
	return rc;
}

/* ---- store_pairs_foreach ------------------------------------------------ */

typedef struct pairs_ctx {
	store_pair_cb cb;
	void *ud;
	sqlite3_stmt *prompt, *chosen, *rejected, *hash;
} pairs_ctx;

static int hash_of(store *st, sqlite3_stmt *s, int64_t id, unsigned char out[32])
{
	sqlite3_reset(s);
	sqlite3_bind_int64(s, 1, id);
	if (sqlite3_step(s) != SQLITE_ROW || sqlite3_column_bytes(s, 0) != 32)
		return store__err(st, STORE_ECORRUPT, "%s: completion %lld is missing", st->path, (long long)id);
	memcpy(out, sqlite3_column_blob(s, 0), 32);
	sqlite3_reset(s);
	return STORE_OK;
}

static int text_of(store *st, sqlite3_stmt *s, int64_t id, const char **text)
{
	sqlite3_reset(s);
	sqlite3_bind_int64(s, 1, id);
	if (sqlite3_step(s) != SQLITE_ROW)
		return store__err(st, STORE_ECORRUPT, "%s: completion %lld is missing", st->path, (long long)id);
	*text = store__col_text(s, 0);
	return STORE_OK;
}

static int pairs_emit(store *st, void *vctx, int64_t prompt_id, decided *d, size_t n)
{
	pairs_ctx *ctx = vctx;
	int rc = STORE_OK;
	for (size_t i = 0; i < n; i++)
		if ((rc = hash_of(st, ctx->hash, d[i].chosen, d[i].chosen_hash)) ||
		    (rc = hash_of(st, ctx->hash, d[i].rejected, d[i].rejected_hash)))
			return rc;
	qsort(d, n, sizeof *d, decided_cmp);
	sqlite3_reset(ctx->prompt);
	sqlite3_bind_int64(ctx->prompt, 1, prompt_id);
	if (sqlite3_step(ctx->prompt) != SQLITE_ROW)
		return store__err(st, STORE_ECORRUPT, "%s: prompt %lld is missing", st->path, (long long)prompt_id);
	int chat = store__col_text(ctx->prompt, 0)[0] == 'c';
	store_pair p = {
		.prompt_id = prompt_id,
		.prompt_text = chat ? NULL : store__col_text(ctx->prompt, 1),
		.prompt_messages_json = chat ? store__col_text(ctx->prompt, 1) : NULL,
		.split = store__col_text(ctx->prompt, 2),
		.source = store__col_text(ctx->prompt, 3),
	};
	for (size_t i = 0; i < n && !rc; i++) {
		p.chosen_id = d[i].chosen;
		p.rejected_id = d[i].rejected;
		p.n_annotations = d[i].n;
		if ((rc = text_of(st, ctx->chosen, d[i].chosen, &p.chosen)) ||
		    (rc = text_of(st, ctx->rejected, d[i].rejected, &p.rejected)))
			break;
		rc = ctx->cb(ctx->ud, &p);
	}
	sqlite3_reset(ctx->chosen);
	sqlite3_reset(ctx->rejected);
	sqlite3_reset(ctx->prompt);
	return rc;
}

int store_pairs_foreach(store *st, const char *split, const char *policy, int min_annotations, store_pair_cb cb,
			void *ud)
{
	pairs_ctx ctx = {.cb = cb, .ud = ud};
	enum policy pol;
	int rc = parse_policy(st, policy, &pol);
	if (rc)
		return rc;
	if (!st->db)
		return store__err(st, STORE_EINVAL, "the store is not open");
	if (!(ctx.prompt = store__prepare(st, "SELECT kind, content, split, source FROM prompts WHERE id = ?1")) ||
	    !(ctx.chosen = store__prepare(st, "SELECT text FROM completions WHERE id = ?1")) ||
	    !(ctx.rejected = store__prepare(st, "SELECT text FROM completions WHERE id = ?1")) ||
	    !(ctx.hash = store__prepare(st, "SELECT hash FROM completions WHERE id = ?1"))) {
		rc = STORE_ERR;
		goto out;
	}
	rc = resolve_scan(st, split, policy, min_annotations, pairs_emit, &ctx, NULL);
out:
	sqlite3_finalize(ctx.prompt);
	sqlite3_finalize(ctx.chosen);
	sqlite3_finalize(ctx.rejected);
	sqlite3_finalize(ctx.hash);
	return rc;
}

static int count_emit(store *st, void *ctx, int64_t prompt_id, decided *d, size_t n)
{
	(void)st, (void)prompt_id, (void)d;
	*(long *)ctx += (long)n;
	return 0;
}

int store_pairs_count(store *st, const char *split, const char *policy, int min_annotations, long *n)
{
	return store_pairs_count_ties(st, split, policy, min_annotations, n, NULL);
}

int store_pairs_count_ties(store *st, const char *split, const char *policy, int min_annotations, long *n,
			   long *tied_dropped)
{
	long count = 0, tied = 0;
	int rc = resolve_scan(st, split, policy, min_annotations, count_emit, &count, &tied);
	if (!rc) {
		*n = count;
		if (tied_dropped)
			*tied_dropped = tied;
	}
	return rc;
}

/* ---- work queue --------------------------------------------------------- */

typedef struct vote_row {
	int64_t a, b, annotator;
	char kind; /* 'h', 'j' or 'i' */
	int skip;  /* the verdict is a skip */
} vote_row;

int store_queue_foreach(store *st, const store_queue_filter *f, store_pair_ref_cb cb, void *ud)
{
	store_queue_filter none = {0};
	sqlite3_stmt *ps = NULL, *cs = NULL, *vs = NULL, *as = NULL, *gs = NULL;
	int64_t *cids = NULL;
	vote_row *votes = NULL;
	size_t ccap = 0, vcap = 0;
	long emitted = 0;
	int rc = STORE_OK, step;

	if (!f)
		f = &none;
	if (!st->db)
		return store__err(st, STORE_EINVAL, "the store is not open");
	/* Without labelled pairs, walk the partial index of prompts that have
	 * an unlabelled pair: the next item is found without a scan. */
	const char *psql =
		f->include_labeled
			? "SELECT id FROM prompts WHERE id > ?1 AND n_completions >= 2 "
			  "AND (?2 IS NULL OR split = ?2) AND (?3 IS NULL OR source = ?3) ORDER BY id"
			: "SELECT id FROM prompts INDEXED BY prompts_open "
			  "WHERE n_labeled_pairs < n_completions * (n_completions - 1) / 2 AND id > ?1 "
			  "AND (?2 IS NULL OR split = ?2) AND (?3 IS NULL OR source = ?3) ORDER BY id";
	if (!(ps = store__prepare(st, psql)) ||
	    !(cs = store__prepare(st, "SELECT id FROM completions WHERE prompt_id = ?1 ORDER BY id")) ||
	    !(vs = store__prepare(st, "SELECT c.completion_a, c.completion_b, c.annotator_id, a.kind, "
				      "c.verdict = 'skip' "
				      "FROM comparisons c JOIN annotators a ON a.id = c.annotator_id "
				      "WHERE c.prompt_id = ?1"))) {
		rc = STORE_ERR;
		goto out;
	}
	long nassigned = 0;
	if (f->assigned_to && (rc = store_assigned_count(st, f->assigned_to, &nassigned)))
		goto out;
	if (nassigned > 0) {
		if (!(as = store__prepare(st, "SELECT 1 FROM assignments WHERE annotator = ?1 AND completion_a = ?2 "
					      "AND completion_b = ?3"))) {
			rc = STORE_ERR;
			goto out;
		}
		store__bind_text(as, 1, f->assigned_to);
	}
	long ngold = 0; /* gold items are mixed in by dpo-annotate, never queued */
	if ((rc = store_gold_count(st, &ngold)))
		goto out;
	if (ngold > 0 && !(gs = store__prepare(st, "SELECT 1 FROM gold WHERE completion_a = ?1 AND completion_b = ?2"))) {
		rc = STORE_ERR;
		goto out;
	}
	sqlite3_bind_int64(ps, 1, f->after_prompt_id > 0 ? f->after_prompt_id : 0);
	store__bind_text(ps, 2, f->split);
	store__bind_text(ps, 3, f->source);
	while ((step = sqlite3_step(ps)) == SQLITE_ROW) {
		int64_t pid = sqlite3_column_int64(ps, 0);
		size_t nc = 0, nv = 0;
		sqlite3_reset(cs);
		sqlite3_bind_int64(cs, 1, pid);
		while ((step = sqlite3_step(cs)) == SQLITE_ROW) {
			if (nc == ccap) {
				ccap = ccap ? 2 * ccap : 16;
				cids = xreallocarray(cids, ccap, sizeof *cids);
			}
			cids[nc++] = sqlite3_column_int64(cs, 0);
		}
		if (step != SQLITE_DONE) {
			rc = store__dberr(st, "read completions");
			goto out;
		}
		if (nc < 2)
			continue;
		sqlite3_reset(vs);
		sqlite3_bind_int64(vs, 1, pid);
		while ((step = sqlite3_step(vs)) == SQLITE_ROW) {
			if (nv == vcap) {
				vcap = vcap ? 2 * vcap : 16;
				votes = xreallocarray(votes, vcap, sizeof *votes);
			}
			votes[nv].a = sqlite3_column_int64(vs, 0);
			votes[nv].b = sqlite3_column_int64(vs, 1);
			votes[nv].annotator = sqlite3_column_int64(vs, 2);
			votes[nv].kind = store__col_text(vs, 3)[0];
			votes[nv].skip = sqlite3_column_int(vs, 4);
			nv++;
		}
		if (step != SQLITE_DONE) {
			rc = store__dberr(st, "read comparisons");
			goto out;
		}
		for (size_t i = 0; i < nc; i++) {
			for (size_t j = i + 1; j < nc; j++) {
				int humans = 0, labeled = 0, mine = 0;
				for (size_t k = 0; k < nv; k++) {
					if (votes[k].a != cids[i] || votes[k].b != cids[j])
						continue;
					/* a skip is the skipper's: no label for the others */
					if (votes[k].kind == 'h' && !votes[k].skip)
						humans++;
					if ((votes[k].kind == 'h' || votes[k].kind == 'i') && !votes[k].skip)
						labeled = 1;
					if (f->annotator_id && votes[k].annotator == f->annotator_id)
						mine = 1;
				}
				if (mine || (!f->include_labeled && labeled) ||
				    (f->max_annotations > 0 && humans >= f->max_annotations))
					continue;
				if (as) { /* the annotator's assigned pairs only */
					sqlite3_reset(as);
					sqlite3_bind_int64(as, 2, cids[i]);
					sqlite3_bind_int64(as, 3, cids[j]);
					int hit = sqlite3_step(as);
					if (hit != SQLITE_ROW && hit != SQLITE_DONE) {
						rc = store__dberr(st, "read assignments");
						goto out;
					}
					if (hit == SQLITE_DONE)
						continue;
				}
				if (gs) {
					sqlite3_reset(gs);
					sqlite3_bind_int64(gs, 1, cids[i]);
					sqlite3_bind_int64(gs, 2, cids[j]);
					int hit = sqlite3_step(gs);
					if (hit != SQLITE_ROW && hit != SQLITE_DONE) {
						rc = store__dberr(st, "read gold items");
						goto out;
					}
					if (hit == SQLITE_ROW)
						continue;
				}
				store_pair_ref ref = {pid, cids[i], cids[j]};
				if ((rc = cb(ud, &ref)))
					goto out;
				if (f->limit > 0 && ++emitted >= f->limit)
					goto out;
			}
		}
	}
	if (step != SQLITE_DONE)
		rc = store__dberr(st, "read prompts");
out:
	sqlite3_finalize(ps);
	sqlite3_finalize(cs);
	sqlite3_finalize(vs);
	sqlite3_finalize(as);
	sqlite3_finalize(gs);
	free(cids);
	free(votes);
	return rc;
}

int store_disagreements_foreach(store *st, const char *split, store_pair_ref_cb cb, void *ud)
{
	sqlite3_stmt *s = store__prepare(st, "SELECT c.prompt_id, c.completion_a, c.completion_b "
					     "FROM comparisons c JOIN annotators a ON a.id = c.annotator_id "
					     "JOIN prompts p ON p.id = c.prompt_id "
					     "WHERE a.kind = 'human' AND c.verdict <> 'skip' "
					     "AND (?1 IS NULL OR p.split = ?1) AND " STORE__NOT_GOLD_SQL("c")
					     " GROUP BY c.prompt_id, c.completion_a, c.completion_b "
					     "HAVING count(DISTINCT c.verdict) > 1 "
					     "ORDER BY c.prompt_id, c.completion_a, c.completion_b");
	if (!s)
		return STORE_ERR;
	store__bind_text(s, 1, split);
	int step, rc = STORE_OK;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		store_pair_ref ref = {sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1),
				      sqlite3_column_int64(s, 2)};
		if ((rc = cb(ud, &ref)))
			break;
	}
	if (!rc && step != SQLITE_DONE)
		rc = store__dberr(st, "read disagreements");
	sqlite3_finalize(s);
	return rc;
}

/* ---- votes for agreement ------------------------------------------------ */

int store_verdict_category(const char *v)
{
	if (!v)
		return -1;
	if (!strcmp(v, "a"))
		return STORE_CAT_A;
	if (!strcmp(v, "b"))
		return STORE_CAT_B;
	if (!strcmp(v, "tie"))
		return STORE_CAT_TIE;
	if (!strcmp(v, "both_bad"))
		return STORE_CAT_BOTH_BAD;
	return -1;
}

int store_votes_foreach(store *st, store_pair_votes_cb cb, void *ud)
{
	sqlite3_stmt *s = store__prepare(st, "SELECT c.prompt_id, c.completion_a, c.completion_b, c.annotator_id, "
					     "a.name, a.kind, c.verdict FROM comparisons c "
					     "JOIN annotators a ON a.id = c.annotator_id WHERE c.verdict <> 'skip' AND "
					     STORE__NOT_GOLD_SQL("c") " ORDER BY c.prompt_id, c.completion_a, c.completion_b, "
					     "c.annotator_id");
	if (!s)
		return STORE_ERR;
	size_t n = 0, cap = 0;
	int64_t *ids = NULL;
	char **names = NULL, **kinds = NULL;
	int *cats = NULL;
	store_pair_votes v = {0};
	int step, rc = STORE_OK;
	for (;;) {
		step = sqlite3_step(s);
		int row = step == SQLITE_ROW;
		int64_t p = row ? sqlite3_column_int64(s, 0) : 0, a = row ? sqlite3_column_int64(s, 1) : 0,
			b = row ? sqlite3_column_int64(s, 2) : 0;
		if (n && (!row || p != v.prompt_id || a != v.completion_a || b != v.completion_b)) {
			v.n = n;
			v.annotator_ids = ids;
			v.annotator_names = (const char *const *)names;
			v.annotator_kinds = (const char *const *)kinds;
			v.categories = cats;
			rc = cb(ud, &v);
			for (size_t i = 0; i < n; i++) {
				free(names[i]);
				free(kinds[i]);
			}
			n = 0;
			if (rc)
				break;
		}
		if (!row)
			break;
		int cat = store_verdict_category(store__col_text(s, 6));
		if (cat < 0)
			continue;
		v.prompt_id = p;
		v.completion_a = a;
		v.completion_b = b;
		if (n == cap) {
			cap = cap ? 2 * cap : 8;
			ids = xreallocarray(ids, cap, sizeof *ids);
			names = xreallocarray(names, cap, sizeof *names);
			kinds = xreallocarray(kinds, cap, sizeof *kinds);
			cats = xreallocarray(cats, cap, sizeof *cats);
		}
		ids[n] = sqlite3_column_int64(s, 3);
		names[n] = xstrdup(store__col_text(s, 4));
		kinds[n] = xstrdup(store__col_text(s, 5));
		cats[n] = cat;
		n++;
	}
	if (!rc && step != SQLITE_DONE)
		rc = store__dberr(st, "read comparisons");
	for (size_t i = 0; i < n; i++) {
		free(names[i]);
		free(kinds[i]);
	}
	free(ids);
	free(names);
	free(kinds);
	free(cats);
	sqlite3_finalize(s);
	return rc;
}

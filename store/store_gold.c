/* store_gold.c: what dpo-annotate needs to spend human time where it
 * matters: the pairs judges were unsure about, cached DPO implicit-reward
 * margins, and gold items (pairs with a known answer) with the annotators'
 * scores on them. */
#include "config.h"
#include "store/report.h"
#include "store/store_int.h"
#include <stdio.h>
#include <string.h>

int store_judge_doubts_foreach(store *st, store_pair_doubt_cb cb, void *ud)
{
	if (!st->db)
		return store__err(st, STORE_EINVAL, "the store is not open");
	/* an inconsistent judge verdict is stored as a tie: judges only
	 * disagree by their consistent verdicts */
	sqlite3_stmt *s = store__prepare(
		st, "SELECT c.prompt_id, c.completion_a, c.completion_b, max(c.inconsistent), "
		    "count(DISTINCT CASE WHEN c.inconsistent = 0 THEN c.verdict END) "
		    "FROM comparisons c JOIN annotators a ON a.id = c.annotator_id "
		    "WHERE a.kind = 'judge' AND c.verdict <> 'skip' "
		    "GROUP BY c.prompt_id, c.completion_a, c.completion_b "
		    "HAVING max(c.inconsistent) > 0 OR count(DISTINCT CASE WHEN c.inconsistent = 0 THEN c.verdict END) > 1 "
		    "ORDER BY c.prompt_id, c.completion_a, c.completion_b");
	if (!s)
		return STORE_ERR;
	int step, rc = STORE_OK;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		store_pair_doubt d = {sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1),
				      sqlite3_column_int64(s, 2), sqlite3_column_int(s, 3) > 0,
				      sqlite3_column_int(s, 4) > 1};
		if ((rc = cb(ud, &d)))
			break;
	}
	if (!rc && step != SQLITE_DONE)
		rc = store__dberr(st, "read judge verdicts");
	sqlite3_finalize(s);
	return rc;
}

/* ---- margins ------------------------------------------------------------- */

static int margin_key_ok(store *st, const store_margin_key *k)
{
	if (!st->db)
		return store__err(st, STORE_EINVAL, "the store is not open");
	if (!k->policy_fp || !k->reference_fp || !k->tok_fp || k->completion_a == k->completion_b)
		return store__err(st, STORE_EINVAL, "margin key: fingerprints and two completions are needed");
	return STORE_OK;
}

/* sql prepared with the key bound to ?1..?5 (fingerprints, then the pair
 * in the table's a < b order); *swap: whether the key's pair was b, a. */
static sqlite3_stmt *margin_stmt(store *st, const char *sql, const store_margin_key *k, int *swap)
{
	*swap = k->completion_a > k->completion_b;
	sqlite3_stmt *s = store__prepare(st, sql);
	if (!s)
		return NULL;
	store__bind_text(s, 1, k->policy_fp);
	store__bind_text(s, 2, k->reference_fp);
	store__bind_text(s, 3, k->tok_fp);
	sqlite3_bind_int64(s, 4, *swap ? k->completion_b : k->completion_a);
	sqlite3_bind_int64(s, 5, *swap ? k->completion_a : k->completion_b);
	return s;
}

int store_margin_get(store *st, const store_margin_key *k, double *margin)
{
	int rc = margin_key_ok(st, k), swap;
	if (rc)
		return rc;
	sqlite3_stmt *s = margin_stmt(st, "SELECT margin FROM margin_cache WHERE policy_fp = ?1 AND "
					      "reference_fp = ?2 AND tok_fp = ?3 AND completion_a = ?4 AND "
					      "completion_b = ?5", k, &swap);
	if (!s)
		return STORE_ERR;
	int step = sqlite3_step(s);
	if (step == SQLITE_ROW) {
		double m = sqlite3_column_double(s, 0);
		*margin = swap ? -m : m;
		rc = STORE_OK;
	} else if (step == SQLITE_DONE) {
		rc = STORE_ENOTFOUND;
	} else {
		rc = store__dberr(st, "read the margin cache");
	}
	sqlite3_finalize(s);
	return rc;
}

int store_margin_put(store *st, const store_margin_key *k, double margin)
{
	int rc = margin_key_ok(st, k), swap;
	if (rc)
		return rc;
	sqlite3_stmt *s = margin_stmt(st, "INSERT OR REPLACE INTO margin_cache(policy_fp, reference_fp, tok_fp, "
					      "completion_a, completion_b, margin, created_at) "
					      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", k, &swap);
	if (!s)
		return STORE_ERR;
	sqlite3_bind_double(s, 6, swap ? -margin : margin);
	store__bind_text(s, 7, store__now(st));
	rc = sqlite3_step(s) == SQLITE_DONE ? STORE_OK : store__dberr(st, "write the margin cache");
	sqlite3_finalize(s);
	return rc;
}

int store_margins_foreach(store *st, const store_margin_key *k, store_margin_cb cb, void *ud)
{
	if (!st->db)
		return store__err(st, STORE_EINVAL, "the store is not open");
	sqlite3_stmt *s = store__prepare(st, "SELECT completion_a, completion_b, margin FROM margin_cache "
					     "WHERE policy_fp = ?1 AND reference_fp = ?2 AND tok_fp = ?3 "
					     "ORDER BY completion_a, completion_b");
	if (!s)
		return STORE_ERR;
	store__bind_text(s, 1, k->policy_fp);
	store__bind_text(s, 2, k->reference_fp);
	store__bind_text(s, 3, k->tok_fp);
	int step, rc = STORE_OK;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		store_margin m = {sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1), sqlite3_column_double(s, 2)};
		if ((rc = cb(ud, &m)))
			break;
	}
	if (!rc && step != SQLITE_DONE)
		rc = store__dberr(st, "read the margin cache");
	sqlite3_finalize(s);
	return rc;
}

/* ---- gold items ------------------------------------------------------------- */

/* 1 when completions a and b both belong to prompt_id, 0 when not, or a code. */
static int both_of_prompt(store *st, int64_t prompt_id, int64_t a, int64_t b)
{
	sqlite3_stmt *s = store__prepare(st, "SELECT count(*) FROM completions WHERE prompt_id = ?1 AND id IN (?2, ?3)");
	if (!s)
		return STORE_ERR;
	sqlite3_bind_int64(s, 1, prompt_id);
	sqlite3_bind_int64(s, 2, a);
	sqlite3_bind_int64(s, 3, b);
	int rc = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int(s, 0) == 2 : store__dberr(st, "read completions");
	sqlite3_finalize(s);
	return rc;
}

int store_gold_add(store *st, int64_t prompt_id, int64_t better, int64_t worse, const char *source,
		   int *created)
{
	int rc, ok;
	sqlite3_stmt *s = NULL;
	if (created)
		*created = 0;
	if (!st->db)
		return store__err(st, STORE_EINVAL, "the store is not open");
	if (better == worse)
		return store__err(st, STORE_EINVAL, "a gold item needs two different completions");
	if ((ok = both_of_prompt(st, prompt_id, better, worse)) < 0)
		return ok;
	if (!ok)
		return store__err(st, STORE_EINVAL, "gold item: completions %lld and %lld are not both of prompt %lld",
				  (long long)better, (long long)worse, (long long)prompt_id);
	int64_t a = better < worse ? better : worse, b = better < worse ? worse : better;
	const char *answer = better == a ? "a" : "b";
	if (!(s = store__prepare(st, "SELECT answer FROM gold WHERE completion_a = ?1 AND completion_b = ?2"))) {
		rc = STORE_ERR;
		goto out;
	}
	sqlite3_bind_int64(s, 1, a);
	sqlite3_bind_int64(s, 2, b);
	int step = sqlite3_step(s);
	if (step == SQLITE_ROW) {
		rc = strcmp(store__col_text(s, 0), answer) ?
			     store__err(st, STORE_EINVAL,
					"gold item of prompt %lld is marked already with the other completion as the "
					"answer",
					(long long)prompt_id) :
			     STORE_OK;
		goto out;
	}
	if (step != SQLITE_DONE) {
		rc = store__dberr(st, "read gold items");
		goto out;
	}
	sqlite3_finalize(s);
	if (!(s = store__prepare(st, "INSERT INTO gold(completion_a, completion_b, prompt_id, answer, source, "
				     "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"))) {
		rc = STORE_ERR;
		goto out;
	}
	sqlite3_bind_int64(s, 1, a);
	sqlite3_bind_int64(s, 2, b);
	sqlite3_bind_int64(s, 3, prompt_id);
	store__bind_text(s, 4, answer);
	store__bind_text(s, 5, source);
	store__bind_text(s, 6, store__now(st));
	rc = sqlite3_step(s) == SQLITE_DONE ? STORE_OK : store__dberr(st, "add a gold item");
	if (rc == STORE_OK && created)
		*created = 1;
out:
	sqlite3_finalize(s);
	return rc;
}

int store_gold_foreach(store *st, store_gold_cb cb, void *ud)
{
	if (!st->db)
		return store__err(st, STORE_EINVAL, "the store is not open");
	sqlite3_stmt *s = store__prepare(st, "SELECT prompt_id, completion_a, completion_b, answer, source FROM gold "
					     "ORDER BY prompt_id, completion_a, completion_b");
	if (!s)
		return STORE_ERR;
	int step, rc = STORE_OK;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		store_gold g = {sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1), sqlite3_column_int64(s, 2),
				store__col_text(s, 3), store__col_text(s, 4)};
		if ((rc = cb(ud, &g)))
			break;
	}
	if (!rc && step != SQLITE_DONE)
		rc = store__dberr(st, "read gold items");
	sqlite3_finalize(s);
	return rc;
}

int store_gold_count(store *st, long *n)
{
	if (!st->db)
		return store__err(st, STORE_EINVAL, "the store is not open");
	sqlite3_stmt *s = store__prepare(st, "SELECT count(*) FROM gold");
	if (!s)
		return STORE_ERR;
	int rc = STORE_OK;
	if (sqlite3_step(s) == SQLITE_ROW)
		*n = (long)sqlite3_column_int64(s, 0);
	else
		rc = store__dberr(st, "count gold items");
	sqlite3_finalize(s);
	return rc;
}

int store_gold_scores_foreach(store *st, store_gold_score_cb cb, void *ud)
{
	if (!st->db)
		return store__err(st, STORE_EINVAL, "the store is not open");
	sqlite3_stmt *s = store__prepare(st, "SELECT a.id, a.name, a.kind, count(*), sum(c.verdict = g.answer) "
					     "FROM gold g JOIN comparisons c ON c.completion_a = g.completion_a "
					     "AND c.completion_b = g.completion_b AND c.prompt_id = g.prompt_id "
					     "JOIN annotators a ON a.id = c.annotator_id WHERE c.verdict <> 'skip' "
					     "GROUP BY a.id ORDER BY a.name");
	if (!s)
		return STORE_ERR;
	int step, rc = STORE_OK;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		store_gold_score g = {sqlite3_column_int64(s, 0), store__col_text(s, 1), store__col_text(s, 2),
				      (long)sqlite3_column_int64(s, 3), (long)sqlite3_column_int64(s, 4)};
		if ((rc = cb(ud, &g)))
			break;
	}
	if (!rc && step != SQLITE_DONE)
		rc = store__dberr(st, "read gold scores");
	sqlite3_finalize(s);
	return rc;
}

/* ---- the report's section ----------------------------------------------------- */

typedef struct gold_html {
	util_buf *o;
	long rows;
} gold_html;

static int gold_row_html(void *ud, const store_gold_score *g)
{
	gold_html *h = ud;
	util_buf_adds(h->o, "<tr><td>");
	store_report_escape(h->o, g->annotator);
	util_buf_adds(h->o, "</td><td>");
	store_report_escape(h->o, g->kind);
	util_buf_addf(h->o, "</td><td>%ld</td><td>%ld</td><td>%.1f%%</td></tr>\n", g->n, g->correct,
		      g->n ? 100.0 * (double)g->correct / (double)g->n : 0.0);
	h->rows++;
	return 0;
}

int store_report_gold_html(store *st, util_buf *o)
{
	long n = 0;
	int rc = store_gold_count(st, &n);
	if (rc || !n)
		return rc;
	util_buf_addf(o, "<h2>Gold items</h2>\n<p>%ld pair%s with a known answer (kept out of exports and of the "
			 "agreement above). Accuracy of each annotator on them (a tie or both bad is wrong; skips "
			 "left out):</p>\n",
		      n, n == 1 ? "" : "s");
	util_buf_adds(o, "<table><tr><th>annotator</th><th>kind</th><th>labelled</th><th>correct</th>"
			 "<th>accuracy</th></tr>\n");
	gold_html h = {o, 0};
	if ((rc = store_gold_scores_foreach(st, gold_row_html, &h)) < 0)
		return rc;
	util_buf_adds(o, "</table>\n");
	if (!h.rows)
		util_buf_adds(o, "<p class=\"none\">No annotator has labelled a gold item yet.</p>\n");
	return STORE_OK;
}

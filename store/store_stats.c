/* store_stats.c: dataset statistics and inter-annotator agreement measures. */
#include "config.h"
#include "store/store_int.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Run sql whose rows are (key, detail, value...) and hand each value to cb
 * as (section, key, detail, cols[i], value). */
static int stat_query(store *st, const char *section, const char *sql, const char *const *cols, store_stat_cb cb,
		      void *ud)
{
	sqlite3_stmt *s = store__prepare(st, sql);
	if (!s)
		return STORE_ERR;
	int step, rc = STORE_OK;
	while (!rc && (step = sqlite3_step(s)) == SQLITE_ROW) {
		store_stat x = {.section = section, .key = store__col_text(s, 0), .detail = store__col_text(s, 1)};
		if (!x.key)
			x.key = "";
		for (int i = 0; cols[i] && !rc; i++) {
			x.column = cols[i];
			x.value = (long)sqlite3_column_int64(s, 2 + i);
			rc = cb(ud, &x);
		}
	}
	if (!rc && step != SQLITE_DONE)
		rc = store__dberr(st, "statistics");
	sqlite3_finalize(s);
	return rc;
}

/* Runs by status, as read (see store_stats_foreach). */
struct run_counts {
	long n[4], abandoned, unchecked;
};

static const char *const run_statuses[] = {"running", "ok", "failed", "interrupted"};

static int count_run(void *ud, const store_run *r)
{
	struct run_counts *c = ud;
	for (int i = 0; i < 4; i++)
		if (r->status && !strcmp(r->status, run_statuses[i]))
			c->n[i]++;
	if (r->abandoned)
		c->abandoned++;
	else if (r->status && !strcmp(r->status, "running") && !store__run_checkable(r))
		c->unchecked++;
	return 0;
}

static int run_stats(store *st, store_stat_cb cb, void *ud)
{
	struct run_counts c = {{0}, 0, 0};
	int rc = store_runs_foreach(st, NULL, count_run, &c);
	for (int i = 0; !rc && i < 4; i++) {
		store_stat x = {.section = "runs", .key = run_statuses[i], .column = "runs", .value = c.n[i]};
		rc = cb(ud, &x);
		if (!rc && i == 0) {
			x.column = "unchecked";
			x.value = c.unchecked;
			rc = cb(ud, &x);
		} else if (!rc && i == 3) {
			x.column = "abandoned";
			x.value = c.abandoned;
			rc = cb(ud, &x);
		}
	}
	return rc;
}

#define PER_PROMPT_COUNTS                                                                       \
	"WITH pc AS (SELECT prompt_id, count(*) AS n FROM completions GROUP BY prompt_id), "    \
	"cc AS (SELECT prompt_id, count(*) AS n FROM comparisons GROUP BY prompt_id) "

/* Position bias counts judgments by the order each was shown in. A
 * comparison shown in one order is one judgment: an a/b verdict, won by
 * shown_first or not. A judge run in both orders (dpo-judge's default:
 * "swap":true in its params) stores one comparison for two judgments, one
 * with a shown first and one with b shown first, with shown_first "a" and
 * the two verdicts in its rationale ("a shown first: X; b shown first: Y").
 * A consistent a/b verdict is then one win in first place and one in
 * second; an inconsistent pair (stored as a tie) counts its two verdicts
 * as the rationale gives them: a with a shown first and b with b shown
 * first are first-place wins, b with a first and a with b first are not,
 * and a tie in either order is no a/b win. So `dpo-db stats` agrees with
 * dpo-judge's first-position win rate for the same labels. A long
 * rationale is a compressed BLOB whose first line is readable
 * (store_rationale.c): LIKE matches no BLOB, hence the casts. */
#define TWO_ORDERS                                                                                        \
	"(a.kind = 'judge' AND instr(coalesce(a.params, ''), '\"swap\":true') > 0 AND c.shown_first = 'a' " \
	"AND CAST(c.rationale AS TEXT) LIKE 'a shown first: %' AND instr(CAST(c.rationale AS TEXT), '; b shown first: ') > 0)"
#define POSITION_BIAS_SQL                                                                                    \
	"WITH j AS (SELECT c.annotator_id, "                                                                 \
	"CASE WHEN " TWO_ORDERS " THEN 1 ELSE 0 END AS two, c.verdict, c.shown_first, "                      \
	"CASE WHEN CAST(c.rationale AS TEXT) LIKE 'a shown first: a;%' THEN 'a' WHEN CAST(c.rationale AS TEXT) LIKE 'a shown first: b;%' " \
	"THEN 'b' ELSE NULL END AS va, "                                                                     \
	"CASE substr(CAST(c.rationale AS TEXT), instr(CAST(c.rationale AS TEXT), '; b shown first: ') + 17, 1) WHEN 'a' THEN 'a' "       \
	"WHEN 'b' THEN 'b' ELSE NULL END AS vb "                                                            \
	"FROM comparisons c JOIN annotators a ON a.id = c.annotator_id "                                    \
	"WHERE c.shown_first IS NOT NULL AND c.verdict <> 'skip'), "                                          \
	"w AS (SELECT annotator_id, "                                                                        \
	"CASE WHEN two = 0 THEN (verdict IN ('a', 'b')) "                                                    \
	"ELSE (va IS NOT NULL) + (vb IS NOT NULL) END AS n, "                                                \
	"CASE WHEN two = 0 THEN (verdict IN ('a', 'b') AND verdict = shown_first) "                          \
	"ELSE (va IS 'a') + (vb IS 'b') END AS first FROM j) "                                               \
	"SELECT a.name, a.kind, sum(w.n), sum(w.first) FROM w JOIN annotators a ON a.id = w.annotator_id "  \
	"GROUP BY a.id HAVING sum(w.n) > 0 ORDER BY a.name"

int store_stats_foreach(store *st, store_stat_cb cb, void *ud)
{
	static const char *const total_cols[] = {"prompts", "completions", "comparisons", "annotators",
						 "generators", NULL};
	static const char *const group_cols[] = {"prompts", "completions", "comparisons", NULL};
	static const char *const source_cols[] = {"prompts", "completions", "comparisons", "labels", NULL};
	static const char *const ann_cols[] = {"comparisons", "a", "b", "tie", "both_bad", "skip", NULL};
	static const char *const verdicts[] = {"a", "b", "tie", "both_bad", "skip", NULL};
	static const char *const bias_cols[] = {"n", "first", NULL};
	static const char *const one_col[] = {"comparisons", NULL};
	int rc;

	if (!st->db)
		return store__err(st, STORE_EINVAL, "the store is not open");
	if ((rc = stat_query(st, "total",
			     "SELECT 'all', NULL, (SELECT count(*) FROM prompts), (SELECT count(*) FROM completions), "
			     "(SELECT count(*) FROM comparisons), (SELECT count(*) FROM annotators), "
			     "(SELECT count(*) FROM generators)",
			     total_cols, cb, ud)))
		return rc;
	if ((rc = stat_query(st, "split",
			     PER_PROMPT_COUNTS "SELECT p.split, NULL, count(*), coalesce(sum(pc.n), 0), "
					       "coalesce(sum(cc.n), 0) FROM prompts p "
					       "LEFT JOIN pc ON pc.prompt_id = p.id LEFT JOIN cc ON cc.prompt_id = p.id "
					       "GROUP BY p.split ORDER BY p.split",
			     group_cols, cb, ud)))
		return rc;
	/* By source: prompts, completions and comparisons of the prompts that
	 * came from it, and labels: the comparisons it labelled itself (its
	 * import annotator "import:<source>"), on whatever prompts. A source
	 * that labelled prompts another source brought in shows here too. */
	if ((rc = stat_query(st, "source",
			     PER_PROMPT_COUNTS
			     ", ps AS (SELECT p.source AS source, count(*) AS np, coalesce(sum(pc.n), 0) AS nc, "
			     "coalesce(sum(cc.n), 0) AS ncmp FROM prompts p LEFT JOIN pc ON pc.prompt_id = p.id "
			     "LEFT JOIN cc ON cc.prompt_id = p.id GROUP BY p.source), "
			     "ls AS (SELECT substr(a.name, 8) AS source, count(*) AS n FROM annotators a "
			     "JOIN comparisons c ON c.annotator_id = a.id "
			     "WHERE a.kind = 'import' AND a.name LIKE 'import:%' GROUP BY a.id), "
			     "src AS (SELECT source FROM ps UNION SELECT source FROM ls) "
			     "SELECT src.source, NULL, coalesce(ps.np, 0), coalesce(ps.nc, 0), coalesce(ps.ncmp, 0), "
			     "coalesce(ls.n, 0) FROM src LEFT JOIN ps ON ps.source = src.source "
			     "LEFT JOIN ls ON ls.source = src.source ORDER BY src.source",
			     source_cols, cb, ud)))
		return rc;
	if ((rc = stat_query(st, "annotator",
			     "SELECT a.name, a.kind, coalesce(c.n, 0), coalesce(c.va, 0), coalesce(c.vb, 0), "
			     "coalesce(c.vt, 0), coalesce(c.vbb, 0), coalesce(c.vs, 0) FROM annotators a "
			     "LEFT JOIN (SELECT annotator_id, count(*) AS n, sum(verdict = 'a') AS va, "
			     "sum(verdict = 'b') AS vb, sum(verdict = 'tie') AS vt, sum(verdict = 'both_bad') AS vbb, "
			     "sum(verdict = 'skip') AS vs FROM comparisons GROUP BY annotator_id) c "
			     "ON c.annotator_id = a.id ORDER BY a.name",
			     ann_cols, cb, ud)))
		return rc;
	for (int i = 0; verdicts[i]; i++) {
		char sql[128];
		snprintf(sql, sizeof sql, "SELECT '%s', NULL, count(*) FROM comparisons WHERE verdict = '%s'",
			 verdicts[i], verdicts[i]);
		if ((rc = stat_query(st, "verdict", sql, one_col, cb, ud)))
			return rc;
	}
	if ((rc = stat_query(st, "position_bias", POSITION_BIAS_SQL, bias_cols, cb, ud)))
		return rc;
	for (int i = 0; store_policies[i]; i++) {
		long n = 0, tied = 0;
		if ((rc = store_pairs_count_ties(st, NULL, store_policies[i], 1, &n, &tied)))
			return rc;
		store_stat x = {.section = "pairs", .key = store_policies[i], .column = "pairs", .value = n};
		if ((rc = cb(ud, &x)))
			return rc;
		x.section = "tied_pairs"; /* a section of its own: readers of "pairs" see one column */
		x.column = "dropped";
		x.value = tied;
		if ((rc = cb(ud, &x)))
			return rc;
	}
	if ((rc = run_stats(st, cb, ud)))
		return rc;
	return store__stats_ratings(st, cb, ud);
}

int store_splits_foreach(store *st, store_stat_cb cb, void *ud)
{
	static const char *const cols[] = {"prompts", NULL};
	if (!st->db)
		return store__err(st, STORE_EINVAL, "the store is not open");
	return stat_query(st, "split", "SELECT split, NULL, count(*) FROM prompts GROUP BY split ORDER BY split", cols,
			  cb, ud);
}

/* ---- agreement measures ------------------------------------------------- */

/* Kappa from a table of (possibly fractional) counts. */
static double kappa_of(const double (*t)[STORE_NCAT])
{
	double n = 0, agree = 0, row[STORE_NCAT] = {0}, col[STORE_NCAT] = {0};
	for (int i = 0; i < STORE_NCAT; i++)
		for (int j = 0; j < STORE_NCAT; j++) {
			n += t[i][j];
			row[i] += t[i][j];
			col[j] += t[i][j];
			if (i == j)
				agree += t[i][j];
		}
	if (n <= 0)
		return NAN;
	double po = agree / n, pe = 0;
	for (int k = 0; k < STORE_NCAT; k++)
		pe += (row[k] / n) * (col[k] / n);
	if (pe >= 1.0)
		return po >= 1.0 ? 1.0 : NAN;
	return (po - pe) / (1.0 - pe);
}

double store_cohen_kappa(const long (*t)[STORE_NCAT])
{
	double d[STORE_NCAT][STORE_NCAT];
	for (int i = 0; i < STORE_NCAT; i++)
		for (int j = 0; j < STORE_NCAT; j++)
			d[i][j] = (double)t[i][j];
	return kappa_of((const double(*)[STORE_NCAT])d);
}

/* The category with a and b exchanged (the same pair seen the other way round). */
static int cat_swap(int c)
{
	return c == STORE_CAT_A ? STORE_CAT_B : c == STORE_CAT_B ? STORE_CAT_A : c;
}

double store_pref_kappa(const long (*t)[STORE_NCAT])
{
	double d[STORE_NCAT][STORE_NCAT];
	for (int i = 0; i < STORE_NCAT; i++)
		for (int j = 0; j < STORE_NCAT; j++)
			d[i][j] = (double)t[i][j] + (double)t[cat_swap(i)][cat_swap(j)];
	return kappa_of((const double(*)[STORE_NCAT])d);
}

double store_table_agreement(const long (*t)[STORE_NCAT], long *n)
{
	long all = 0, agree = 0;
	for (int i = 0; i < STORE_NCAT; i++)
		for (int j = 0; j < STORE_NCAT; j++) {
			all += t[i][j];
			if (i == j)
				agree += t[i][j];
		}
	if (n)
		*n = all;
	return all ? (double)agree / (double)all : NAN;
}

/* The coincidence matrix of nominal Krippendorff's alpha: o[c][k] = sum
 * over units of (pairs of values c, k within the unit) / (m_u - 1). */
static void coincidences(const long (*units)[STORE_NCAT], size_t nunits, double (*o)[STORE_NCAT])
{
	memset(o, 0, sizeof(double) * STORE_NCAT * STORE_NCAT);
	for (size_t u = 0; u < nunits; u++) {
		long m = 0;
		for (int k = 0; k < STORE_NCAT; k++)
			m += units[u][k];
		if (m < 2)
			continue;
		for (int c = 0; c < STORE_NCAT; c++)
			for (int k = 0; k < STORE_NCAT; k++) {
				double pairs = (double)units[u][c] * (double)(units[u][k] - (c == k));
				o[c][k] += pairs / (double)(m - 1);
			}
	}
}

static double alpha_of(const double (*o)[STORE_NCAT])
{
	double nc[STORE_NCAT] = {0}, n = 0, dobs = 0, dexp = 0;
	for (int c = 0; c < STORE_NCAT; c++)
		for (int k = 0; k < STORE_NCAT; k++) {
			nc[c] += o[c][k];
			n += o[c][k];
			if (c != k)
				dobs += o[c][k];
		}
	if (n <= 1)
		return NAN;
	for (int c = 0; c < STORE_NCAT; c++)
		for (int k = 0; k < STORE_NCAT; k++)
			if (c != k)
				dexp += nc[c] * nc[k];
	if (dexp <= 0)
		return dobs <= 0 ? 1.0 : NAN;
	return 1.0 - (n - 1.0) * dobs / dexp;
}

double store_krippendorff_alpha(const long (*units)[STORE_NCAT], size_t nunits)
{
	double o[STORE_NCAT][STORE_NCAT];
	coincidences(units, nunits, o);
	return alpha_of((const double(*)[STORE_NCAT])o);
}

double store_pref_alpha(const long (*units)[STORE_NCAT], size_t nunits, double *agreement, double *values)
{
	double o[STORE_NCAT][STORE_NCAT], s[STORE_NCAT][STORE_NCAT], n = 0, agree = 0;
	coincidences(units, nunits, o);
	for (int c = 0; c < STORE_NCAT; c++)
		for (int k = 0; k < STORE_NCAT; k++) {
			s[c][k] = (o[c][k] + o[cat_swap(c)][cat_swap(k)]) / 2;
			n += o[c][k];
			if (c == k)
				agree += o[c][k];
		}
	if (agreement)
		*agreement = n > 0 ? agree / n : NAN;
	if (values)
		*values = n;
	return alpha_of((const double(*)[STORE_NCAT])s);
}

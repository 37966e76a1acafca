/* report.c: the HTML report of a store (see report.h). Everything is read
 * through the public API of store.h. */
#include "store/report.h"
#include "store/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
				      "#9467bd", "#8c564b", "#e377c2", "#17becf"};
#define NPAL (sizeof palette / sizeof palette[0])

void store_report_escape(util_buf *out, const char *s)
{
	if (!s)
		return;
	for (; *s; s++) {
		switch (*s) {
		case '&': util_buf_adds(out, "&amp;"); break;
		case '<': util_buf_adds(out, "&lt;"); break;
		case '>': util_buf_adds(out, "&gt;"); break;
		case '"': util_buf_adds(out, "&quot;"); break;
		case '\'': util_buf_adds(out, "&#39;"); break;
		default: util_buf_addc(out, *s);
		}
	}
}

/* ---- collected data -------------------------------------------------------- */

struct ann {
	char *name, *kind;
	long counts[5];   /* a, b, tie, both_bad, skip */
	long pb_n, pb_first;
	long judged, inconsistent;
};

struct cell {
	size_t i, j;      /* annotator indexes, i < j */
	long t[STORE_NCAT][STORE_NCAT];
	long n;
};

struct series {
	char *name;
	double *x, *y;
	size_t n, cap;
};

struct run {
	int64_t id;
	char *kind, *command, *status, *started;
	struct series m[3]; /* the curves[] of a train run */
	double eval[STORE_METRIC_NEVAL]; /* eval runs, by store_metric_eval_id (NAN: unknown) */
	struct series bon;  /* eval runs: best-of-N of the baseline, x KL, y accuracy */
	long *bon_n;        /* the N of each point of bon */
};

/* Most judge explanations the report quotes. */
#define REPORT_EXPLANATIONS 10
/* Most bytes of one explanation quoted (cut at a UTF-8 boundary). */
#define REPORT_EXPLANATION_BYTES 2000

struct rep {
	store *st;
	long total[5];    /* prompts, completions, comparisons, annotators, generators */
	long verdicts[5];
	struct ann *ann;
	size_t nann;
	struct cell *cells;
	size_t ncells;
	long (*units)[STORE_NCAT];
	size_t nunits, capunits;
	struct run *runs;
	size_t nruns;
	char **splits;
	long (*split_counts)[3];
	size_t nsplits;
	/* judges' explanations shown: inconsistent pairs first, then others */
	struct expl {
		char *judge, *verdict, *shown_first, *rationale;
		int64_t prompt_id;
		int inconsistent;
	} ex[2][REPORT_EXPLANATIONS];
	size_t nex[2];
};

static const char *const verdict_names[5] = {"a", "b", "tie", "both_bad", "skip"};
static const char *const total_cols[5] = {"prompts", "completions", "comparisons", "annotators",
					  "generators"};
/* the training curves drawn, by store_metric_train_id */
static const int curves[3] = {STORE_METRIC_LOSS, STORE_METRIC_REWARDS_MARGINS, STORE_METRIC_REWARDS_ACCURACIES};

static size_t ann_index(struct rep *r, const char *name, const char *kind)
{
	for (size_t i = 0; i < r->nann; i++)
		if (!strcmp(r->ann[i].name, name))
			return i;
	r->ann = xreallocarray(r->ann, r->nann + 1, sizeof *r->ann);
	r->ann[r->nann] = (struct ann){.name = xstrdup(name), .kind = xstrdup(kind ? kind : "")};
	return r->nann++;
}

static int col_index(const char *const *cols, int n, const char *c)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(cols[i], c))
			return i;
	return -1;
}

static int stat_cb(void *ud, const store_stat *s)
{
	struct rep *r = ud;
	int k;
	if (!strcmp(s->section, "total")) {
		if ((k = col_index(total_cols, 5, s->column)) >= 0)
			r->total[k] = s->value;
	} else if (!strcmp(s->section, "verdict")) {
		if ((k = col_index(verdict_names, 5, s->key)) >= 0)
			r->verdicts[k] = s->value;
	} else if (!strcmp(s->section, "annotator")) {
		size_t i = ann_index(r, s->key, s->detail);
		if ((k = col_index(verdict_names, 5, s->column)) >= 0)
			r->ann[i].counts[k] = s->value;
	} else if (!strcmp(s->section, "position_bias")) {
		size_t i = ann_index(r, s->key, s->detail);
		if (!strcmp(s->column, "n"))
			r->ann[i].pb_n = s->value;
		else if (!strcmp(s->column, "first"))
			r->ann[i].pb_first = s->value;
	} else if (!strcmp(s->section, "split")) {
		size_t i;
		for (i = 0; i < r->nsplits; i++)
			if (!strcmp(r->splits[i], s->key))
				break;
		if (i == r->nsplits) {
			r->splits = xreallocarray(r->splits, i + 1, sizeof *r->splits);
			r->split_counts = xreallocarray(r->split_counts, i + 1, sizeof *r->split_counts);
			r->splits[i] = xstrdup(s->key);
			memset(r->split_counts[i], 0, sizeof r->split_counts[i]);
			r->nsplits++;
		}
		if ((k = col_index(total_cols, 3, s->column)) >= 0)
			r->split_counts[i][k] = s->value;
	}
	return 0;
}

static int comparison_cb(void *ud, const store_comparison *c)
{
	struct rep *r = ud;
	if (!c->annotator || !c->annotator_kind || strcmp(c->annotator_kind, "judge"))
		return 0;
	size_t i = ann_index(r, c->annotator, c->annotator_kind);
	r->ann[i].judged++;
	if (c->inconsistent)
		r->ann[i].inconsistent++;
	int k = c->inconsistent ? 0 : 1;
	if (c->rationale && *c->rationale && r->nex[k] < REPORT_EXPLANATIONS) {
		struct expl *e = &r->ex[k][r->nex[k]++];
		e->judge = xstrdup(c->annotator);
		e->verdict = xstrdup(c->verdict ? c->verdict : "?");
		e->shown_first = c->shown_first ? xstrdup(c->shown_first) : NULL;
		e->rationale = xstrdup(c->rationale);
		e->prompt_id = c->prompt_id;
		e->inconsistent = c->inconsistent;
	}
	return 0;
}

/* The judges' own explanations (stored with their labels, decompressed by
 * the store): the pairs a judge was inconsistent on first, since those are
 * the ones a reader wants to understand, then others, at most
 * REPORT_EXPLANATIONS in all, each cut to REPORT_EXPLANATION_BYTES. */
static void section_explanations(util_buf *o, struct rep *r)
{
	size_t n = r->nex[0] + r->nex[1];
	if (n == 0)
		return;
	util_buf_addf(o, "<h2>Judges' explanations</h2>\n<p>%s, as the judge wrote them "
		      "(<code>dpo-annotate --review --show-judge</code> shows them beside the pair).</p>\n",
		      r->nex[0] ? "Pairs where a judge's verdicts differed between the two orders first"
				: "Some judged pairs");
	size_t shown = 0;
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < r->nex[k] && shown < REPORT_EXPLANATIONS; i++, shown++) {
			const struct expl *e = &r->ex[k][i];
			util_buf_adds(o, "<details><summary>");
			store_report_escape(o, e->judge);
			util_buf_addf(o, ", prompt %lld: verdict <b>", (long long)e->prompt_id);
			store_report_escape(o, e->verdict);
			util_buf_adds(o, "</b>");
			if (e->shown_first) {
				util_buf_adds(o, ", ");
				store_report_escape(o, e->shown_first);
				util_buf_adds(o, " shown first");
			}
			if (e->inconsistent)
				util_buf_adds(o, " (inconsistent across orders)");
			util_buf_adds(o, "</summary>\n<pre style=\"white-space:pre-wrap;text-align:left\">");
			size_t len = strlen(e->rationale), cut = len;
			if (cut > REPORT_EXPLANATION_BYTES) {
				cut = REPORT_EXPLANATION_BYTES;
				while (cut > 0 && ((unsigned char)e->rationale[cut] & 0xc0) == 0x80)
					cut--;
			}
			char *t = xstrndup(e->rationale, cut);
			store_report_escape(o, t);
			free(t);
			if (cut < len)
				util_buf_addf(o, "\n[… %zu more bytes]", len - cut);
			util_buf_adds(o, "</pre></details>\n");
		}
}

static int votes_cb(void *ud, const store_pair_votes *v)
{
	struct rep *r = ud;
	if (r->nunits == r->capunits) {
		r->capunits = r->capunits ? 2 * r->capunits : 256;
		r->units = xreallocarray(r->units, r->capunits, sizeof *r->units);
	}
	long *u = r->units[r->nunits++];
	memset(u, 0, sizeof(long) * STORE_NCAT);
	size_t *idx = xmalloc(sizeof(size_t) * (v->n ? v->n : 1));
	for (size_t k = 0; k < v->n; k++) {
		u[v->categories[k]]++;
		idx[k] = ann_index(r, v->annotator_names[k], v->annotator_kinds[k]);
	}
	for (size_t a = 0; a < v->n; a++)
		for (size_t b = a + 1; b < v->n; b++) {
			size_t i = idx[a], j = idx[b];
			int ci = v->categories[a], cj = v->categories[b];
			if (i > j) {
				size_t t = i;
				i = j;
				j = t;
				int tc = ci;
				ci = cj;
				cj = tc;
			}
			size_t c;
			for (c = 0; c < r->ncells; c++)
				if (r->cells[c].i == i && r->cells[c].j == j)
					break;
			if (c == r->ncells) {
				r->cells = xreallocarray(r->cells, c + 1, sizeof *r->cells);
				memset(&r->cells[c], 0, sizeof r->cells[c]);
				r->cells[c].i = i;
				r->cells[c].j = j;
				r->ncells++;
			}
			r->cells[c].t[ci][cj]++;
			r->cells[c].n++;
		}
	free(idx);
	return 0;
}

static int run_cb(void *ud, const store_run *ru)
{
	struct rep *r = ud;
	r->runs = xreallocarray(r->runs, r->nruns + 1, sizeof *r->runs);
	struct run *x = &r->runs[r->nruns++];
	memset(x, 0, sizeof *x);
	x->id = ru->id;
	x->kind = xstrdup(ru->kind);
	x->command = xstrdup(ru->command ? ru->command : "");
	x->status = xstrdup(ru->status ? ru->status : "");
	x->started = xstrdup(ru->started_at ? ru->started_at : "");
	for (int i = 0; i < STORE_METRIC_NEVAL; i++)
		x->eval[i] = NAN;
	return 0;
}

static int metric_cb(void *ud, const store_metric *m)
{
	struct run *x = ud;
	int id = store_metric_index(store_metric_train, STORE_METRIC_NTRAIN, m->name), k = -1;
	for (int c = 0; id >= 0 && c < 3; c++)
		if (curves[c] == id)
			k = c;
	if (k >= 0 && m->step >= 0 && isfinite(m->value)) {
		struct series *s = &x->m[k];
		if (s->n == s->cap) {
			s->cap = s->cap ? 2 * s->cap : 64;
			s->x = xreallocarray(s->x, s->cap, sizeof(double));
			s->y = xreallocarray(s->y, s->cap, sizeof(double));
		}
		s->x[s->n] = (double)m->step;
		s->y[s->n] = m->value;
		s->n++;
	}
	if ((k = store_metric_index(store_metric_eval, STORE_METRIC_NEVAL, m->name)) >= 0 && m->step < 0)
		x->eval[k] = m->value;
	int isacc = !strcmp(m->name, STORE_METRIC_BON_ACCURACY), iskl = !strcmp(m->name, STORE_METRIC_BON_KL);
	if ((isacc || iskl) && m->step > 0 && isfinite(m->value)) {
		/* one point per N (the step): find it or add it, x = KL, y = accuracy */
		struct series *s = &x->bon;
		size_t i = 0;
		while (i < s->n && x->bon_n[i] != m->step)
			i++;
		if (i == s->n) {
			if (s->n == s->cap) {
				s->cap = s->cap ? 2 * s->cap : 16;
				s->x = xreallocarray(s->x, s->cap, sizeof(double));
				s->y = xreallocarray(s->y, s->cap, sizeof(double));
				x->bon_n = xreallocarray(x->bon_n, s->cap, sizeof(long));
			}
			x->bon_n[i] = m->step;
			s->x[i] = s->y[i] = NAN;
			s->n++;
		}
		(iskl ? s->x : s->y)[i] = m->value;
	}
	return 0;
}

static void rep_free(struct rep *r)
{
	for (size_t i = 0; i < r->nann; i++) {
		free(r->ann[i].name);
		free(r->ann[i].kind);
	}
	free(r->ann);
	free(r->cells);
	free(r->units);
	for (size_t i = 0; i < r->nruns; i++) {
		struct run *x = &r->runs[i];
		free(x->kind);
		free(x->command);
		free(x->status);
		free(x->started);
		for (int k = 0; k < 3; k++) {
			free(x->m[k].x);
			free(x->m[k].y);
		}
		free(x->bon.x);
		free(x->bon.y);
		free(x->bon_n);
	}
	free(r->runs);
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < r->nex[k]; i++) {
			free(r->ex[k][i].judge);
			free(r->ex[k][i].verdict);
			free(r->ex[k][i].shown_first);
			free(r->ex[k][i].rationale);
		}
	for (size_t i = 0; i < r->nsplits; i++)
		free(r->splits[i]);
	free(r->splits);
	free(r->split_counts);
}

/* ---- SVG ------------------------------------------------------------------- */

static void num_label(util_buf *o, double v)
{
	if (v != 0 && (fabs(v) >= 1e4 || fabs(v) < 1e-2))
		util_buf_addf(o, "%.2g", v);
	else
		util_buf_addf(o, "%.3g", v);
}

/* Horizontal bar chart of n labelled values. */
static void svg_bars(util_buf *o, const char *title, const char *const *labels, const double *v,
		     const char *const *fmt_values, size_t n)
{
	double max = 0;
	for (size_t i = 0; i < n; i++)
		if (v[i] > max)
			max = v[i];
	int W = 520, lw = 170, bh = 22, H = 30 + (int)n * bh + 10;
	util_buf_addf(o, "<svg class=\"chart\" width=\"%d\" "
		      "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\"><title>", W, H, W, H);
	store_report_escape(o, title);
	util_buf_adds(o, "</title>\n<text x=\"4\" y=\"18\" class=\"t\">");
	store_report_escape(o, title);
	util_buf_adds(o, "</text>\n");
	for (size_t i = 0; i < n; i++) {
		int y = 30 + (int)i * bh;
		double w = max > 0 ? (W - lw - 80) * v[i] / max : 0;
		util_buf_addf(o, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", lw - 6, y + 15);
		store_report_escape(o, labels[i]);
		util_buf_addf(o, "</text><rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" "
			      "fill=\"%s\"/>", lw, y + 3, w, bh - 6, palette[i % NPAL]);
		util_buf_addf(o, "<text x=\"%.1f\" y=\"%d\">", lw + w + 4, y + 15);
		store_report_escape(o, fmt_values[i]);
		util_buf_adds(o, "</text>\n");
	}
	util_buf_adds(o, "</svg>\n");
}

/* Line chart of several series sharing the axes. */
static void svg_lines(util_buf *o, const char *title, const struct series *const *s, size_t ns)
{
	double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
	for (size_t k = 0; k < ns; k++)
		for (size_t i = 0; i < s[k]->n; i++) {
			x0 = fmin(x0, s[k]->x[i]);
			x1 = fmax(x1, s[k]->x[i]);
			y0 = fmin(y0, s[k]->y[i]);
			y1 = fmax(y1, s[k]->y[i]);
		}
	if (!isfinite(x0))
		return;
	if (x1 == x0)
		x1 = x0 + 1;
	if (y1 == y0) {
		y0 -= 0.5;
		y1 += 0.5;
	}
	double pad = (y1 - y0) * 0.05;
	y0 -= pad;
	y1 += pad;
	int W = 520, H = 260, L = 60, R = 12, T = 28, B = 40;
	double pw = W - L - R, ph = H - T - B;
	util_buf_addf(o, "<svg class=\"chart\" width=\"%d\" "
		      "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\"><title>", W, H, W, H);
	store_report_escape(o, title);
	util_buf_adds(o, "</title>\n<text x=\"4\" y=\"18\" class=\"t\">");
	store_report_escape(o, title);
	util_buf_adds(o, "</text>\n");
	util_buf_addf(o, "<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
		      "stroke=\"#999\"/>\n", L, T, pw, ph);
	for (int g = 0; g <= 4; g++) {
		double yv = y0 + (y1 - y0) * g / 4.0;
		double yy = T + ph - ph * g / 4.0;
		util_buf_addf(o, "<line x1=\"%d\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>",
			      L, L + pw, yy, yy);
		util_buf_addf(o, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">", L - 4, yy + 4);
		num_label(o, yv);
		util_buf_adds(o, "</text>\n");
	}
	util_buf_addf(o, "<text x=\"%d\" y=\"%d\">", L, H - 22);
	num_label(o, x0);
	util_buf_addf(o, "</text><text x=\"%.0f\" y=\"%d\" text-anchor=\"end\">", L + pw, H - 22);
	num_label(o, x1);
	util_buf_addf(o, "</text><text x=\"%.0f\" y=\"%d\" text-anchor=\"middle\">step</text>\n",
		      L + pw / 2, H - 22);
	for (size_t k = 0; k < ns; k++) {
		const char *col = palette[k % NPAL];
		util_buf_addf(o, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"",
			      col);
		for (size_t i = 0; i < s[k]->n; i++)
			util_buf_addf(o, "%s%.1f,%.1f", i ? " " : "",
				      L + pw * (s[k]->x[i] - x0) / (x1 - x0),
				      T + ph - ph * (s[k]->y[i] - y0) / (y1 - y0));
		util_buf_adds(o, "\"/>\n");
		if (s[k]->n == 1)
			util_buf_addf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
				      L + pw * (s[k]->x[0] - x0) / (x1 - x0),
				      T + ph - ph * (s[k]->y[0] - y0) / (y1 - y0), col);
		util_buf_addf(o, "<text x=\"%.0f\" y=\"%d\" fill=\"%s\">", L + 4 + 150.0 * (double)k,
			      H - 6, col);
		store_report_escape(o, s[k]->name);
		util_buf_adds(o, "</text>\n");
	}
	util_buf_adds(o, "</svg>\n");
}

/* ---- the page -------------------------------------------------------------- */

static void pct_cell(util_buf *o, long num, long den)
{
	if (den > 0)
		util_buf_addf(o, "<td>%.1f%%</td>", 100.0 * (double)num / (double)den);
	else
		util_buf_adds(o, "<td>-</td>");
}

static void num_cell(util_buf *o, double v, const char *fmt)
{
	util_buf_adds(o, "<td>");
	if (isfinite(v))
		util_buf_addf(o, fmt, v);
	else
		util_buf_adds(o, "-");
	util_buf_adds(o, "</td>");
}

static void section_labels(util_buf *o, struct rep *r)
{
	util_buf_adds(o, "<h2>Label distribution</h2>\n");
	long all = 0;
	for (int k = 0; k < 5; k++)
		all += r->verdicts[k];
	if (all == 0) {
		util_buf_adds(o, "<p class=\"none\">No comparisons yet.</p>\n");
		return;
	}
	double v[5];
	char txt[5][48];
	const char *tp[5];
	for (int k = 0; k < 5; k++) {
		v[k] = (double)r->verdicts[k];
		snprintf(txt[k], sizeof txt[k], "%ld (%.1f%%)", r->verdicts[k],
			 100.0 * (double)r->verdicts[k] / (double)all);
		tp[k] = txt[k];
	}
	svg_bars(o, "Verdicts of all comparisons", verdict_names, v, tp, 5);
	util_buf_adds(o, "<table><tr><th>annotator</th><th>kind</th><th>a</th><th>b</th><th>tie</th>"
		      "<th>both_bad</th><th>skip</th></tr>\n");
	for (size_t i = 0; i < r->nann; i++) {
		struct ann *a = &r->ann[i];
		long n = 0;
		for (int k = 0; k < 5; k++)
			n += a->counts[k];
		if (n == 0)
			continue;
		util_buf_adds(o, "<tr><td>");
		store_report_escape(o, a->name);
		util_buf_adds(o, "</td><td>");
		store_report_escape(o, a->kind);
		util_buf_adds(o, "</td>");
		for (int k = 0; k < 5; k++)
			util_buf_addf(o, "<td>%ld</td>", a->counts[k]);
		util_buf_adds(o, "</tr>\n");
	}
	util_buf_adds(o, "</table>\n");
}

static void section_agreement(util_buf *o, struct rep *r)
{
	util_buf_adds(o, "<h2>Annotator agreement</h2>\n");
	double agree, values;
	double alpha = store_pref_alpha((const long(*)[STORE_NCAT])r->units, r->nunits, &agree, &values);
	util_buf_adds(o, "<p>On which completion was preferred (each pair counted in both orientations; "
			 "categories preferred, tie, both_bad). Krippendorff's alpha (nominal) over ");
	util_buf_addf(o, "%zu labelled pairs: <b>", r->nunits);
	if (isfinite(alpha))
		util_buf_addf(o, "%.3f</b> (%.1f%% agreement, n=%.0f labels)", alpha, 100 * agree, values);
	else
		util_buf_adds(o, "- (no pair has two labels)</b>");
	util_buf_adds(o, "</p>\n");
	if (r->ncells == 0) {
		util_buf_adds(o, "<p class=\"none\">No two annotators labelled the same pair.</p>\n");
		return;
	}
	util_buf_adds(o, "<table><tr><th>annotator 1</th><th>annotator 2</th><th>pairs</th>"
		      "<th>raw agreement</th><th>Cohen's kappa</th></tr>\n");
	for (size_t c = 0; c < r->ncells; c++) {
		struct cell *x = &r->cells[c];
		long agree = 0;
		for (int k = 0; k < STORE_NCAT; k++)
			agree += x->t[k][k];
		util_buf_adds(o, "<tr><td>");
		store_report_escape(o, r->ann[x->i].name);
		util_buf_adds(o, "</td><td>");
		store_report_escape(o, r->ann[x->j].name);
		util_buf_addf(o, "</td><td>%ld</td>", x->n);
		pct_cell(o, agree, x->n);
		num_cell(o, store_pref_kappa((const long(*)[STORE_NCAT])x->t), "%.3f");
		util_buf_adds(o, "</tr>\n");
	}
	util_buf_adds(o, "</table>\n");
}

static void section_judges(util_buf *o, struct rep *r)
{
	util_buf_adds(o, "<h2>Judges: position bias and consistency</h2>\n");
	util_buf_adds(o, "<p>Position bias: of the a/b verdicts whose display order is known, the "
		      "share won by the response shown first (50% is unbiased). Consistency: the "
		      "share of a judge's comparisons whose verdicts agreed when the pair was "
		      "judged in both orders.</p>\n");
	size_t nj = 0;
	for (size_t i = 0; i < r->nann; i++)
		if (r->ann[i].pb_n > 0 || r->ann[i].judged > 0)
			nj++;
	if (nj == 0) {
		util_buf_adds(o, "<p class=\"none\">No judge or order-aware labels yet.</p>\n");
		return;
	}
	const char **labels = xcalloc(nj, sizeof(char *));
	const char **tp = xcalloc(nj, sizeof(char *));
	char (*txt)[48] = xcalloc(nj, 48);
	double *v = xcalloc(nj, sizeof(double));
	size_t n = 0;
	util_buf_adds(o, "<table><tr><th>annotator</th><th>kind</th><th>a/b with known order</th>"
		      "<th>first shown won</th><th>judged</th><th>inconsistent</th>"
		      "<th>consistency</th></tr>\n");
	for (size_t i = 0; i < r->nann; i++) {
		struct ann *a = &r->ann[i];
		if (a->pb_n == 0 && a->judged == 0)
			continue;
		util_buf_adds(o, "<tr><td>");
		store_report_escape(o, a->name);
		util_buf_adds(o, "</td><td>");
		store_report_escape(o, a->kind);
		util_buf_addf(o, "</td><td>%ld</td>", a->pb_n);
		pct_cell(o, a->pb_first, a->pb_n);
		if (a->judged > 0) {
			util_buf_addf(o, "<td>%ld</td><td>%ld</td>", a->judged, a->inconsistent);
			pct_cell(o, a->judged - a->inconsistent, a->judged);
		} else {
			util_buf_adds(o, "<td>-</td><td>-</td><td>-</td>");
		}
		util_buf_adds(o, "</tr>\n");
		labels[n] = a->name;
		v[n] = a->pb_n > 0 ? (double)a->pb_first / (double)a->pb_n : 0;
		if (a->pb_n > 0)
			snprintf(txt[n], 48, "%.1f%% of %ld", 100 * v[n], a->pb_n);
		else
			snprintf(txt[n], 48, "no order known");
		tp[n] = txt[n];
		n++;
	}
	util_buf_adds(o, "</table>\n");
	svg_bars(o, "Share of a/b verdicts won by the first-shown response", labels, v, tp, n);
	free(labels);
	free(tp);
	free(txt);
	free(v);
}

static void section_training(util_buf *o, struct rep *r)
{
	util_buf_adds(o, "<h2>Training runs</h2>\n");
	size_t nt = 0;
	for (size_t i = 0; i < r->nruns; i++) {
		struct run *x = &r->runs[i];
		if (strcmp(x->kind, "train"))
			continue;
		nt++;
		util_buf_addf(o, "<h3>Run %lld (%s, started %s)</h3>\n<p class=\"cmd\">",
			      (long long)x->id, x->status, x->started);
		store_report_escape(o, x->command);
		util_buf_adds(o, "</p>\n");
		int any = 0;
		for (int k = 0; k < 3; k++) {
			if (x->m[k].n == 0)
				continue;
			any = 1;
			x->m[k].name = (char *)store_metric_train[curves[k]];
			const struct series *sp = &x->m[k];
			svg_lines(o, store_metric_train[curves[k]], &sp, 1);
		}
		if (!any)
			util_buf_adds(o, "<p class=\"none\">No per-step metrics recorded.</p>\n");
	}
	if (nt == 0)
		util_buf_adds(o, "<p class=\"none\">No training run recorded in this store "
			      "(dpo-train --from-db records one).</p>\n");
}

static void section_eval(util_buf *o, struct rep *r)
{
	size_t ne = 0;
	for (size_t i = 0; i < r->nruns; i++)
		ne += !strcmp(r->runs[i].kind, "eval");
	if (ne == 0)
		return;
	util_buf_adds(o, "<h2>Evaluations</h2>\n<table><tr><th>run</th><th>accuracy, baseline</th>"
		      "<th>accuracy, policy</th><th>win rate [95% CI]</th><th>KL to baseline</th>"
		      "<th>command</th></tr>\n");
	for (size_t i = 0; i < r->nruns; i++) {
		struct run *x = &r->runs[i];
		if (strcmp(x->kind, "eval"))
			continue;
		util_buf_addf(o, "<tr><td>%lld</td>", (long long)x->id);
		num_cell(o, 100 * x->eval[STORE_METRIC_EVAL_ACCURACY_BASELINE], "%.1f%%");
		num_cell(o, 100 * x->eval[STORE_METRIC_EVAL_ACCURACY_POLICY], "%.1f%%");
		if (isfinite(x->eval[STORE_METRIC_EVAL_WIN_RATE]))
			util_buf_addf(o, "<td>%.1f%% [%.1f%%, %.1f%%]</td>", 100 * x->eval[STORE_METRIC_EVAL_WIN_RATE],
				      100 * x->eval[STORE_METRIC_EVAL_WIN_RATE_LO], 100 * x->eval[STORE_METRIC_EVAL_WIN_RATE_HI]);
		else
			util_buf_adds(o, "<td>-</td>");
		num_cell(o, x->eval[STORE_METRIC_EVAL_KL], "%.4f");
		util_buf_adds(o, "<td class=\"cmd\">");
		store_report_escape(o, x->command);
		util_buf_adds(o, "</td></tr>\n");
	}
	util_buf_adds(o, "</table>\n");
}

/* Whether eval run i has a known beta, accuracy and KL, and no later eval
 * run has the same beta (the frontier shows one point per beta: the last). */
static int frontier_point(const struct rep *r, size_t i)
{
	const struct run *x = &r->runs[i];
	if (strcmp(x->kind, "eval") || !isfinite(x->eval[STORE_METRIC_EVAL_BETA]) || !isfinite(x->eval[STORE_METRIC_EVAL_ACCURACY_POLICY]) || !isfinite(x->eval[STORE_METRIC_EVAL_KL]))
		return 0;
	for (size_t k = 0; k < r->nruns; k++)
		if (r->runs[k].id > x->id && !strcmp(r->runs[k].kind, "eval") && r->runs[k].eval[STORE_METRIC_EVAL_BETA] == x->eval[STORE_METRIC_EVAL_BETA] &&
		    isfinite(r->runs[k].eval[STORE_METRIC_EVAL_ACCURACY_POLICY]) && isfinite(r->runs[k].eval[STORE_METRIC_EVAL_KL]))
			return 0;
	return 1;
}

/* Accuracy against KL to the reference: one point per evaluated policy
 * whose beta is known, and the best-of-N curve of the reference from the
 * eval run with the most best-of-N points -- the DPO paper's frontier. */
static void section_frontier(util_buf *o, struct rep *r)
{
	struct run *bon = NULL;
	size_t npts = 0;
	for (size_t i = 0; i < r->nruns; i++) {
		struct run *x = &r->runs[i];
		if (strcmp(x->kind, "eval"))
			continue;
		npts += frontier_point(r, i);
		if (x->bon.n >= 2 && (!bon || x->bon.n >= bon->bon.n))
			bon = x;
	}
	if (npts == 0 && !bon)
		return;
	double x0 = 0, x1 = 0, y0 = 0, y1 = 1;
	for (size_t i = 0; i < r->nruns; i++) {
		struct run *x = &r->runs[i];
		if (frontier_point(r, i))
			x1 = fmax(x1, x->eval[STORE_METRIC_EVAL_KL]);
	}
	if (bon)
		for (size_t i = 0; i < bon->bon.n; i++)
			if (isfinite(bon->bon.x[i]))
				x1 = fmax(x1, bon->bon.x[i]);
	if (x1 <= 0)
		x1 = 1;
	x1 *= 1.08;
	int W = 560, H = 320, L = 60, R = 16, T = 28, B = 56;
	double pw = W - L - R, ph = H - T - B;
#define PX(v) (L + pw * ((v) - x0) / (x1 - x0))
#define PY(v) (T + ph - ph * ((v) - y0) / (y1 - y0))
	util_buf_adds(o, "<h2>Accuracy against KL to the reference</h2>\n<p>Each dot is a policy trained from the "
		      "reference with the beta shown (its last evaluation), at its held-out accuracy and its sampled KL to the "
		      "reference (dpo-eval). The line is best-of-N sampling from the reference (keep a right "
		      "answer among N samples), at the KL of that selection, from the reference's own "
		      "samples.</p>\n");
	util_buf_addf(o, "<svg class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">"
		      "<title>Accuracy against KL to the reference</title>\n", W, H, W, H);
	util_buf_addf(o, "<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
		      "stroke=\"#999\"/>\n", L, T, pw, ph);
	for (int g = 0; g <= 4; g++) {
		double yv = y0 + (y1 - y0) * g / 4.0, xv = x0 + (x1 - x0) * g / 4.0;
		util_buf_addf(o, "<line x1=\"%d\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
			      "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.0f%%</text>\n",
			      L, L + pw, PY(yv), PY(yv), L - 4, PY(yv) + 4, 100 * yv);
		util_buf_addf(o, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%.2g</text>\n", PX(xv),
			      T + ph + 16, xv);
	}
	util_buf_addf(o, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">KL to the reference (nats)"
		      "</text>\n<text x=\"14\" y=\"%.0f\" transform=\"rotate(-90 14 %.0f)\" "
		      "text-anchor=\"middle\">held-out accuracy</text>\n",
		      L + pw / 2, T + ph + 34.0, T + ph / 2, T + ph / 2);
	if (bon) {
		util_buf_addf(o, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", palette[0]);
		for (size_t i = 0; i < bon->bon.n; i++)
			if (isfinite(bon->bon.x[i]) && isfinite(bon->bon.y[i]))
				util_buf_addf(o, "%s%.1f,%.1f", i ? " " : "", PX(bon->bon.x[i]), PY(bon->bon.y[i]));
		util_buf_adds(o, "\"/>\n");
		for (size_t i = 0; i < bon->bon.n; i++)
			if (isfinite(bon->bon.x[i]) && isfinite(bon->bon.y[i]))
				util_buf_addf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>"
					      "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\">N=%ld</text>\n",
					      PX(bon->bon.x[i]), PY(bon->bon.y[i]), palette[0],
					      PX(bon->bon.x[i]) + 4, PY(bon->bon.y[i]) - 4, palette[0], bon->bon_n[i]);
	}
	for (size_t i = 0; i < r->nruns; i++) {
		struct run *x = &r->runs[i];
		if (!frontier_point(r, i))
			continue;
		util_buf_addf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>"
			      "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\">&#946;=%g</text>\n",
			      PX(fmax(0, x->eval[STORE_METRIC_EVAL_KL])), PY(x->eval[STORE_METRIC_EVAL_ACCURACY_POLICY]), palette[1], PX(fmax(0, x->eval[STORE_METRIC_EVAL_KL])) + 5,
			      PY(x->eval[STORE_METRIC_EVAL_ACCURACY_POLICY]) + 12, palette[1], x->eval[STORE_METRIC_EVAL_BETA]);
	}
	util_buf_addf(o, "<text x=\"%d\" y=\"%d\" fill=\"%s\">&#9679; DPO policies</text>"
		      "<text x=\"%d\" y=\"%d\" fill=\"%s\">&#8212; best-of-N from the reference</text>\n",
		      L, H - 4, palette[1], L + 140, H - 4, palette[0]);
#undef PX
#undef PY
	util_buf_adds(o, "</svg>\n");
	/* the same as a table */
	util_buf_adds(o, "<table><tr><th>policy</th><th>KL (nats)</th><th>accuracy</th></tr>\n");
	for (size_t i = 0; i < r->nruns; i++) {
		struct run *x = &r->runs[i];
		if (!frontier_point(r, i))
			continue;
		util_buf_addf(o, "<tr><td>DPO, &#946;=%g (run %lld)</td>", x->eval[STORE_METRIC_EVAL_BETA], (long long)x->id);
		num_cell(o, x->eval[STORE_METRIC_EVAL_KL], "%.3f");
		num_cell(o, 100 * x->eval[STORE_METRIC_EVAL_ACCURACY_POLICY], "%.1f%%");
		util_buf_adds(o, "</tr>\n");
	}
	for (size_t i = 0; bon && i < bon->bon.n; i++) {
		util_buf_addf(o, "<tr><td>best-of-%ld from the reference</td>", bon->bon_n[i]);
		num_cell(o, bon->bon.x[i], "%.3f");
		num_cell(o, 100 * bon->bon.y[i], "%.1f%%");
		util_buf_adds(o, "</tr>\n");
	}
	util_buf_adds(o, "</table>\n");
}

int store_report_html(store *st, const char *title, util_buf *o)
{
	struct rep r = {.st = st};
	int rc;
	if ((rc = store_stats_foreach(st, stat_cb, &r)) < 0)
		goto out;
	if ((rc = store_comparisons_foreach(st, 0, comparison_cb, &r)) < 0)
		goto out;
	if ((rc = store_votes_foreach(st, votes_cb, &r)) < 0)
		goto out;
	if ((rc = store_runs_foreach(st, NULL, run_cb, &r)) < 0)
		goto out;
	for (size_t i = 0; i < r.nruns; i++)
		if ((rc = store_metrics_foreach(st, r.runs[i].id, NULL, metric_cb, &r.runs[i])) < 0)
			goto out;
	rc = STORE_OK;
	if (!title)
		title = "dpo report";

	util_buf_adds(o, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>");
	store_report_escape(o, title);
	util_buf_adds(o, "</title>\n<style>\n"
		      "body{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em;color:#222}\n"
		      "table{border-collapse:collapse;margin:.5em 0}\n"
		      "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}\n"
		      "td:first-child,th:first-child{text-align:left}\n"
		      "svg.chart{display:block;margin:.5em 0;font-size:12px}\n"
		      "svg .t{font-weight:bold}\n"
		      ".cmd{font-family:monospace;font-size:90%;color:#555;text-align:left}\n"
		      ".none{color:#777}\n"
		      "</style>\n</head>\n<body>\n<h1>");
	store_report_escape(o, title);
	util_buf_adds(o, "</h1>\n<p>Database: <code>");
	store_report_escape(o, store_path(st));
	util_buf_adds(o, "</code></p>\n<h2>Contents</h2>\n<table><tr>");
	for (int k = 0; k < 5; k++)
		util_buf_addf(o, "<th>%s</th>", total_cols[k]);
	util_buf_adds(o, "</tr><tr>");
	for (int k = 0; k < 5; k++)
		util_buf_addf(o, "<td>%ld</td>", r.total[k]);
	util_buf_adds(o, "</tr></table>\n");
	if (r.nsplits) {
		util_buf_adds(o, "<table><tr><th>split</th><th>prompts</th><th>completions</th>"
			      "<th>comparisons</th></tr>\n");
		for (size_t i = 0; i < r.nsplits; i++) {
			util_buf_adds(o, "<tr><td>");
			store_report_escape(o, r.splits[i]);
			util_buf_addf(o, "</td><td>%ld</td><td>%ld</td><td>%ld</td></tr>\n",
				      r.split_counts[i][0], r.split_counts[i][1], r.split_counts[i][2]);
		}
		util_buf_adds(o, "</table>\n");
	}
	section_labels(o, &r);
	section_agreement(o, &r);
	if ((rc = store_report_gold_html(st, o)) < 0)
		goto out;
	section_judges(o, &r);
	section_explanations(o, &r);
	section_training(o, &r);
	section_eval(o, &r);
	section_frontier(o, &r);
	util_buf_adds(o, "</body>\n</html>\n");
out:
	rep_free(&r);
	return rc;
}

/* dpo-db-agreement.c: `dpo-db agreement`: Cohen's kappa per pair of
 * annotators, Krippendorff's alpha and judge-vs-human agreement. */
#include "config.h"
#include "store/dpo_db.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/utf8.h"
#include "util/cli.h"
#include "util/opt.h"
#include "util/xmalloc.h"
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ann_info {
	int64_t id;
	char *name, *kind;
} ann_info;

typedef struct kappa_cell {
	int i, j; /* annotator indexes, name(i) < name(j) */
	long t[STORE_NCAT][STORE_NCAT];
	long n;
} kappa_cell;

/* Judge-vs-human labels on the same pairs: rows the judge, columns the
 * human or import. */
typedef struct jh_table {
	int judge; /* annotator index */
	long t[STORE_NCAT][STORE_NCAT];
} jh_table;

typedef struct agree_ctx {
	ann_info *ann;
	size_t nann;
	kappa_cell *cells;
	size_t ncells;
	long (*units)[STORE_NCAT];
	size_t nunits, capunits;
	jh_table *jh;
	size_t njh;
} agree_ctx;

static int ann_index(agree_ctx *x, int64_t id, const char *name, const char *kind)
{
	for (size_t i = 0; i < x->nann; i++)
		if (x->ann[i].id == id)
			return (int)i;
	x->ann = xreallocarray(x->ann, x->nann + 1, sizeof *x->ann);
	x->ann[x->nann] = (ann_info){id, xstrdup(name), xstrdup(kind)};
	return (int)x->nann++;
}

static kappa_cell *cell(agree_ctx *x, int i, int j)
{
	for (size_t k = 0; k < x->ncells; k++)
		if (x->cells[k].i == i && x->cells[k].j == j)
			return &x->cells[k];
	x->cells = xreallocarray(x->cells, x->ncells + 1, sizeof *x->cells);
	kappa_cell *c = &x->cells[x->ncells++];
	memset(c, 0, sizeof *c);
	c->i = i, c->j = j;
	return c;
}

static jh_table *jh_of(agree_ctx *x, int judge)
{
	for (size_t k = 0; k < x->njh; k++)
		if (x->jh[k].judge == judge)
			return &x->jh[k];
	x->jh = xreallocarray(x->jh, x->njh + 1, sizeof *x->jh);
	jh_table *j = &x->jh[x->njh++];
	memset(j, 0, sizeof *j);
	j->judge = judge;
	return j;
}

static int agree_votes(void *ud, const store_pair_votes *v)
{
	agree_ctx *x = ud;
	int idx[64];
	size_t n = v->n < 64 ? v->n : 64;
	for (size_t k = 0; k < n; k++)
		idx[k] = ann_index(x, v->annotator_ids[k], v->annotator_names[k], v->annotator_kinds[k]);
	for (size_t p = 0; p < n; p++)
		for (size_t q = p + 1; q < n; q++) {
			size_t lo = p, hi = q;
			if (strcmp(x->ann[idx[p]].name, x->ann[idx[q]].name) > 0)
				lo = q, hi = p;
			kappa_cell *c = cell(x, idx[lo], idx[hi]);
			c->t[v->categories[lo]][v->categories[hi]]++;
			c->n++;
			int pj = v->annotator_kinds[p][0] == 'j', qj = v->annotator_kinds[q][0] == 'j';
			if (pj != qj) {
				size_t j = pj ? p : q, h = pj ? q : p;
				jh_of(x, idx[j])->t[v->categories[j]][v->categories[h]]++;
			}
		}
	if (v->n >= 2) {
		if (x->nunits == x->capunits) {
			x->capunits = x->capunits ? 2 * x->capunits : 256;
			x->units = xreallocarray(x->units, x->capunits, sizeof *x->units);
		}
		memset(x->units[x->nunits], 0, sizeof x->units[0]);
		for (size_t k = 0; k < v->n; k++)
			x->units[x->nunits][v->categories[k]]++;
		x->nunits++;
	}
	return 0;
}

static int cell_cmp_ctx_names(const kappa_cell *a, const kappa_cell *b, const agree_ctx *x)
{
	int c = strcmp(x->ann[a->i].name, x->ann[b->i].name);
	return c ? c : strcmp(x->ann[a->j].name, x->ann[b->j].name);
}

static void sort_cells(agree_ctx *x)
{
	for (size_t i = 1; i < x->ncells; i++)
		for (size_t j = i; j > 0 && cell_cmp_ctx_names(&x->cells[j - 1], &x->cells[j], x) > 0; j--) {
			kappa_cell t = x->cells[j];
			x->cells[j] = x->cells[j - 1];
			x->cells[j - 1] = t;
		}
}

static void add_num(util_buf *b, double v)
{
	if (isnan(v))
		util_buf_adds(b, "null");
	else
		util_buf_addf(b, "%.17g", v);
}

/* A table's measures: kappa on the preferred completion, raw agreement, n. */
typedef struct measure {
	double kappa, agreement;
	long n;
} measure;

static measure measure_of(const long (*t)[STORE_NCAT])
{
	measure m;
	m.kappa = store_pref_kappa(t);
	m.agreement = store_table_agreement(t, &m.n);
	return m;
}

/* The a/b part of a table (labels where both said a or b: ties left out). */
static measure measure_ab(const long (*t)[STORE_NCAT])
{
	long ab[STORE_NCAT][STORE_NCAT] = {{0}};
	for (int i = STORE_CAT_A; i <= STORE_CAT_B; i++)
		for (int j = STORE_CAT_A; j <= STORE_CAT_B; j++)
			ab[i][j] = t[i][j];
	return measure_of((const long(*)[STORE_NCAT])ab);
}

static void json_measure(util_buf *b, const char *name, measure m)
{
	util_buf_addf(b, "\"%s\": {\"kappa\": ", name);
	add_num(b, m.kappa);
	util_buf_adds(b, ", \"agreement\": ");
	add_num(b, m.agreement);
	util_buf_addf(b, ", \"n\": %ld}", m.n);
}

static void text_measure(const char *label, int w, measure m)
{
	printf("  %-*s  ", w, label);
	if (isnan(m.kappa))
		printf("kappa     -");
	else
		printf("kappa %6.3f", m.kappa);
	if (m.n)
		printf("  %5.1f%% agreement (n=%ld)\n", 100 * m.agreement, m.n);
	else
		printf("      -  agreement (n=0)\n");
}

static void add_table(long (*to)[STORE_NCAT], const long (*t)[STORE_NCAT])
{
	for (int i = 0; i < STORE_NCAT; i++)
		for (int j = 0; j < STORE_NCAT; j++)
			to[i][j] += t[i][j];
}

int db_cmd_agreement(int argc, char **argv)
{
	static util_cli cli = {.name = "dpo-db agreement",
			       .summary = "Agreement on which completion was preferred: Cohen's kappa for each pair\n"
					  "of annotators over the pairs both labelled and pooled over all of them,\n"
					  "Krippendorff's alpha (nominal) over every pair with two or more labels, and\n"
					  "judge-vs-human agreement (each judge and pooled), with and without ties.\n"
					  "The order inside a pair carries no information, so each pair counts in both\n"
					  "orientations. Raw agreement and n go with every coefficient.",
			       .opts = db_json_table};
	db_opts o = {0};
	util_cli_parse(&cli, &o, argc, argv);
	int json = o.json;
	store *st = db_open(db_path(o.db));
	if (!st)
		return UTIL_EXIT_FAIL;
	agree_ctx x = {0};
	int status = UTIL_EXIT_OK;
	if (store_votes_foreach(st, agree_votes, &x)) {
		util_warn("%s", store_errmsg(st));
		status = UTIL_EXIT_FAIL;
		goto out;
	}
	sort_cells(&x);
	double alpha_agree, alpha_values;
	double alpha = store_pref_alpha((const long(*)[STORE_NCAT])x.units, x.nunits, &alpha_agree, &alpha_values);
	long pooled[STORE_NCAT][STORE_NCAT] = {{0}}, jh[STORE_NCAT][STORE_NCAT] = {{0}};
	for (size_t i = 0; i < x.ncells; i++)
		add_table(pooled, (const long(*)[STORE_NCAT])x.cells[i].t);
	for (size_t i = 0; i < x.njh; i++)
		add_table(jh, (const long(*)[STORE_NCAT])x.jh[i].t);
	measure mpooled = measure_of((const long(*)[STORE_NCAT])pooled);
	measure with = measure_of((const long(*)[STORE_NCAT])jh);
	measure without = measure_ab((const long(*)[STORE_NCAT])jh);
	if (json) {
		util_buf b = UTIL_BUF_INIT;
		util_buf_adds(&b, "{\"kappa\": [");
		for (size_t i = 0; i < x.ncells; i++) {
			kappa_cell *c = &x.cells[i];
			measure m = measure_of((const long(*)[STORE_NCAT])c->t);
			util_buf_adds(&b, i ? ", {\"annotator_1\": " : "{\"annotator_1\": ");
			add_str(&b, x.ann[c->i].name);
			util_buf_adds(&b, ", \"annotator_2\": ");
			add_str(&b, x.ann[c->j].name);
			util_buf_adds(&b, ", \"kappa\": ");
			add_num(&b, m.kappa);
			util_buf_adds(&b, ", \"agreement\": ");
			add_num(&b, m.agreement);
			util_buf_addf(&b, ", \"n\": %ld}", c->n);
		}
		util_buf_adds(&b, "], ");
		json_measure(&b, "pooled_kappa", mpooled);
		util_buf_adds(&b, ", \"alpha\": {\"value\": ");
		add_num(&b, alpha);
		util_buf_adds(&b, ", \"agreement\": ");
		add_num(&b, alpha_agree);
		util_buf_addf(&b, ", \"values\": %.17g, \"units\": %zu}, \"judge_vs_human\": {", alpha_values,
			      x.nunits);
		json_measure(&b, "with_ties", with);
		util_buf_adds(&b, ", ");
		json_measure(&b, "without_ties", without);
		util_buf_adds(&b, ", \"per_judge\": [");
		for (size_t i = 0; i < x.njh; i++) {
			util_buf_adds(&b, i ? ", {\"judge\": " : "{\"judge\": ");
			add_str(&b, x.ann[x.jh[i].judge].name);
			util_buf_adds(&b, ", ");
			json_measure(&b, "with_ties", measure_of((const long(*)[STORE_NCAT])x.jh[i].t));
			util_buf_adds(&b, ", ");
			json_measure(&b, "without_ties", measure_ab((const long(*)[STORE_NCAT])x.jh[i].t));
			util_buf_adds(&b, "}");
		}
		util_buf_adds(&b, "]}");
		if (db_gold_agreement(st, &b) < 0) {
			util_warn("%s", store_errmsg(st));
			status = UTIL_EXIT_FAIL;
		}
		util_buf_adds(&b, "}\n");
		fputs(b.data, stdout);
		util_buf_free(&b);
	} else {
		int w = 11;
		for (size_t i = 0; i < x.nann; i++) { /* names printed to a terminal: controls escaped */
			util_buf e = UTIL_BUF_INIT;
			util_term_escape(x.ann[i].name, &e);
			free(x.ann[i].name);
			x.ann[i].name = util_buf_detach(&e);
		}
		for (size_t i = 0; i < x.nann; i++)
			if ((int)strlen(x.ann[i].name) > w)
				w = (int)strlen(x.ann[i].name);
		printf("Agreement on which completion was preferred (each pair counted in both orientations;\n"
		       "categories preferred, tie, both_bad; skips left out).\n\n");
		printf("Cohen's kappa per pair of annotators:\n");
		if (!x.ncells)
			printf("  (no two annotators labelled the same pair)\n");
		char *label = NULL;
		for (size_t i = 0; i < x.ncells; i++) {
			kappa_cell *c = &x.cells[i];
			free(label);
			label = xasprintf("%-*s  %s", w, x.ann[c->i].name, x.ann[c->j].name);
			text_measure(label, 2 * w + 2, measure_of((const long(*)[STORE_NCAT])c->t));
		}
		if (x.ncells)
			text_measure("pooled (all pairs)", 2 * w + 2, mpooled);
		printf("\nKrippendorff's alpha (nominal), over %zu pairs with 2 or more labels: ", x.nunits);
		if (isnan(alpha))
			printf("-\n");
		else
			printf("%.3f  %.1f%% agreement (n=%.0f labels)\n", alpha, 100 * alpha_agree, alpha_values);
		printf("\njudge vs human (humans and imports), per judge-human label pair on the same item:\n");
		for (size_t i = 0; i < x.njh; i++) {
			printf("  %s:\n", x.ann[x.jh[i].judge].name);
			text_measure("  with ties:", 15, measure_of((const long(*)[STORE_NCAT])x.jh[i].t));
			text_measure("  without ties:", 15, measure_ab((const long(*)[STORE_NCAT])x.jh[i].t));
		}
		if (x.njh > 1 || !x.njh) {
			if (x.njh)
				printf("  pooled:\n");
			text_measure("with ties:", 13, with);
			text_measure("without ties:", 13, without);
		}
		free(label);
		if (db_gold_agreement(st, NULL) < 0) {
			util_warn("%s", store_errmsg(st));
			status = UTIL_EXIT_FAIL;
		}
	}
	if (fflush(stdout)) {
		util_warn("standard output: %s", strerror(errno));
		status = UTIL_EXIT_FAIL;
	}
out:
	for (size_t i = 0; i < x.nann; i++) {
		free(x.ann[i].name);
		free(x.ann[i].kind);
	}
	free(x.ann);
	free(x.cells);
	free(x.units);
	free(x.jh);
	store_free(st);
	return status;
}

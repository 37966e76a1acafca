/* dpo-db-agreement.c: `dpo-db agreement`: Cohen's kappa per pair of
 * annotators, Krippendorff's alpha and judge-vs-human agreement. */
#include "config.h"
#include "store/dpo_db.h"
#include "store/store.h"
#include "util/buf.h"
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

typedef struct agree_ctx {
	ann_info *ann;
	size_t nann;
	kappa_cell *cells;
	size_t ncells;
	long (*units)[STORE_NCAT];
	size_t nunits, capunits;
	long jh_n, jh_agree, jh_ab_n, jh_ab_agree;
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
				int same = v->categories[p] == v->categories[q];
				x->jh_n++;
				x->jh_agree += same;
				if (v->categories[p] <= STORE_CAT_B && v->categories[q] <= STORE_CAT_B) {
					x->jh_ab_n++;
					x->jh_ab_agree += same;
				}
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

int db_cmd_agreement(int argc, char **argv)
{
	static util_cli cli = {.name = "dpo-db agreement",
			       .summary = "Cohen's kappa for each pair of annotators over the pairs both labelled,\n"
					  "Krippendorff's alpha (nominal) over every pair with two or more labels, and\n"
					  "judge-vs-human agreement, with and without ties.",
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
	double alpha = store_krippendorff_alpha((const long(*)[STORE_NCAT])x.units, x.nunits);
	double with = x.jh_n ? (double)x.jh_agree / (double)x.jh_n : NAN;
	double without = x.jh_ab_n ? (double)x.jh_ab_agree / (double)x.jh_ab_n : NAN;
	if (json) {
		util_buf b = UTIL_BUF_INIT;
		util_buf_adds(&b, "{\"kappa\": [");
		for (size_t i = 0; i < x.ncells; i++) {
			kappa_cell *c = &x.cells[i];
			util_buf_adds(&b, i ? ", {\"annotator_1\": " : "{\"annotator_1\": ");
			add_str(&b, x.ann[c->i].name);
			util_buf_adds(&b, ", \"annotator_2\": ");
			add_str(&b, x.ann[c->j].name);
			util_buf_adds(&b, ", \"kappa\": ");
			add_num(&b, store_cohen_kappa((const long(*)[STORE_NCAT])c->t));
			util_buf_addf(&b, ", \"n\": %ld}", c->n);
		}
		util_buf_adds(&b, "], \"alpha\": {\"value\": ");
		add_num(&b, alpha);
		util_buf_addf(&b, ", \"units\": %zu}, \"judge_vs_human\": {\"with_ties\": {\"agreement\": ", x.nunits);
		add_num(&b, with);
		util_buf_addf(&b, ", \"n\": %ld}, \"without_ties\": {\"agreement\": ", x.jh_n);
		add_num(&b, without);
		util_buf_addf(&b, ", \"n\": %ld}}}\n", x.jh_ab_n);
		fputs(b.data, stdout);
		util_buf_free(&b);
	} else {
		int w = 11;
		for (size_t i = 0; i < x.nann; i++)
			if ((int)strlen(x.ann[i].name) > w)
				w = (int)strlen(x.ann[i].name);
		printf("Cohen's kappa per pair of annotators (categories a, b, tie, both_bad; skips left out):\n");
		if (!x.ncells)
			printf("  (no two annotators labelled the same pair)\n");
		for (size_t i = 0; i < x.ncells; i++) {
			kappa_cell *c = &x.cells[i];
			double k = store_cohen_kappa((const long(*)[STORE_NCAT])c->t);
			printf("  %-*s  %-*s  ", w, x.ann[c->i].name, w, x.ann[c->j].name);
			if (isnan(k))
				printf("kappa     -  (n=%ld)\n", c->n);
			else
				printf("kappa %6.3f  (n=%ld)\n", k, c->n);
		}
		printf("\nKrippendorff's alpha (nominal), over %zu pairs with 2 or more labels: ", x.nunits);
		if (isnan(alpha))
			printf("-\n");
		else
			printf("%.3f\n", alpha);
		printf("\njudge vs human (humans and imports), per judge-human label pair on the same item:\n");
		if (x.jh_n)
			printf("  with ties:    %5.1f%% agreement (n=%ld)\n", 100 * with, x.jh_n);
		else
			printf("  with ties:        -  (n=0)\n");
		if (x.jh_ab_n)
			printf("  without ties: %5.1f%% agreement (n=%ld)\n", 100 * without, x.jh_ab_n);
		else
			printf("  without ties:     -  (n=0)\n");
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
	store_free(st);
	return status;
}

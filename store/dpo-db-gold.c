/* dpo-db-gold.c: the gold-item part of `dpo-db agreement`: each annotator's
 * accuracy on pairs with a known answer (store_gold_scores_foreach). */
#include "config.h"
#include "store/dpo_db.h"
#include "util/utf8.h"
#include "util/xmalloc.h"
#include <stdio.h>
#include <string.h>

typedef struct gold_out {
	util_buf *b; /* JSON, or NULL for text */
	long rows;
} gold_out;

static int gold_row(void *ud, const store_gold_score *g)
{
	gold_out *x = ud;
	double acc = g->n ? (double)g->correct / (double)g->n : 0;
	if (x->b) {
		util_buf_adds(x->b, x->rows ? ", {\"annotator\": " : "{\"annotator\": ");
		add_str(x->b, g->annotator);
		util_buf_adds(x->b, ", \"kind\": ");
		add_str(x->b, g->kind);
		util_buf_addf(x->b, ", \"n\": %ld, \"correct\": %ld, \"accuracy\": %.17g}", g->n, g->correct, acc);
	} else {
		util_buf e = UTIL_BUF_INIT;
		util_term_escape(g->annotator, &e); /* printed to a terminal: controls escaped */
		printf("  %-24s %ld/%ld correct  %.1f%%\n", util_buf_str(&e), g->correct, g->n, 100 * acc);
		util_buf_free(&e);
	}
	x->rows++;
	return 0;
}

int db_gold_agreement(store *st, util_buf *json)
{
	long n = 0;
	gold_out x = {json, 0};
	int rc = store_gold_count(st, &n);
	if (rc)
		return rc;
	if (json)
		util_buf_addf(json, ", \"gold\": {\"items\": %ld, \"annotators\": [", n);
	else if (n)
		printf("\nGold items (%ld with a known answer, left out above): accuracy per annotator "
		       "(a tie or both bad is wrong):\n", n);
	if (n && (rc = store_gold_scores_foreach(st, gold_row, &x)) < 0)
		return rc;
	if (json)
		util_buf_adds(json, "]}");
	else if (n && !x.rows)
		printf("  (no gold item labelled yet)\n");
	return STORE_OK;
}

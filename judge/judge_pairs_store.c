/* judge_pairs_store.c: choose the pairs of a run from the store (see
 * judge_pairs.h). The only part of judge_pairs that reads the store. */
#include "config.h"
#include "judge/judge_pairs.h"
#include "store/store.h"
#include <string.h>

typedef struct collect {
	judge_pair_set *s;
	int64_t judge_id;
} collect;

static int on_queue_pair(void *ud, const store_pair_ref *pr)
{
	collect *k = ud;
	judge_pairs_offer(k->s, pr->prompt_id, pr->completion_a, pr->completion_b);
	return 0;
}

/* This judge's failures: its comparisons with verdict "skip". */
static int on_failed(void *ud, const store_comparison *cmp)
{
	collect *k = ud;
	if (cmp->annotator_id != k->judge_id || !cmp->verdict || strcmp(cmp->verdict, "skip"))
		return 0;
	judge_pairs_add(k->s, cmp->prompt_id, cmp->completion_a, cmp->completion_b, cmp->id);
	return 0;
}

int judge_pairs_choose(store *st, const judge_pair_query *q, judge_pair_set *s)
{
	collect k = {s, q->judge_id};
	int rc;
	judge_pairs_init(s, q->retry_failed ? 0 : q->sample, q->seed);
	if (q->retry_failed) {
		rc = store_comparisons_foreach(st, 0, on_failed, &k);
	} else {
		store_queue_filter f;
		memset(&f, 0, sizeof f);
		f.split = q->split;
		f.source = q->source;
		f.annotator_id = q->judge_id;
		f.include_labeled = q->include_labeled;
		f.limit = q->sample > 0 ? 0 : q->limit;
		rc = store_queue_foreach(st, &f, on_queue_pair, &k);
		judge_pairs_sort(s);
	}
	if (rc != STORE_OK)
		return rc;
	judge_pairs_limit(s, q->limit);
	judge_pairs_set_orders(s, q->norders);
	return STORE_OK;
}

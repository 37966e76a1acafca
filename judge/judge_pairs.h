/* judge_pairs.h: the pairs one dpo-judge run judges, and how the verdicts
 * of a pair's two orders become one comparison.
 *
 * The set of pairs, the display orders, the verdict combination and the
 * tally are pure (judge_pairs.c, in libjudge.a: no store, no curl): the
 * caller hands in candidate pairs and verdicts and gets decisions back.
 * judge_pairs_choose (judge_pairs_store.c, linked into dpo-judge only)
 * fills a set from the store's queue or from a judge's failed pairs.
 *
 * Verdicts: a request's verdict is 'A' (the response shown first is
 * better), 'B' (the one shown second) or 'C' (tie), as in judge.h; a pair's
 * verdict is in a/b terms ('a', 'b', 't'), where a is the completion with
 * the lower id (the store keeps completion_a < completion_b). */
#ifndef DPO_JUDGE_PAIRS_H
#define DPO_JUDGE_PAIRS_H
#include <stddef.h>
#include <stdint.h>

/* One pair to judge, and what its requests found so far. Order 0 shows a
 * first; order 1 (only with both orders) shows b first. */
typedef struct judge_pair {
	int64_t prompt_id, ca, cb;
	int64_t retry_id;   /* --retry-failed: the failed comparison it replaces; else 0 */
	int first_b;        /* one order only: b is shown first (judge_pair_first_b) */
	/* filled while judging */
	char v[2];          /* verdict of each order in a/b terms: 'a', 'b', 't'; 0 none */
	int issued;         /* requests handed out (0..norders) */
	int outstanding;    /* requests handed out and not finished */
	int failed;         /* a request failed: the pair is stored as a skip */
	char *err;          /* why (malloc'ed; freed by judge_pairs_free) */
	char *rationale;    /* the first rationale an answer carried (malloc'ed) */
	char *why[2];       /* the judge's explanation of each order (malloc'ed), or NULL */
	double t0;          /* when its first request was handed out */
} judge_pair;

/* The pairs of one run, v[0..n). */
typedef struct judge_pair_set {
	judge_pair *v;
	size_t n, cap;
	size_t seen;        /* candidates offered */
	long sample;        /* > 0: offered candidates are sampled down to this many */
	uint64_t rng;
} judge_pair_set;

/* An empty set. sample > 0 keeps a uniform random sample of that many of
 * the candidates offered (--pairs random:N), drawn with seed. */
void judge_pairs_init(judge_pair_set *s, long sample, long seed);
/* Free the set and the pairs' strings (the set is empty afterwards). */
void judge_pairs_free(judge_pair_set *s);
/* Offer a candidate from the queue: added, or with a sample size once the
 * sample is full, kept in place of a random earlier one (reservoir
 * sampling: every candidate ends up in the sample with the same chance). */
void judge_pairs_offer(judge_pair_set *s, int64_t prompt_id, int64_t ca, int64_t cb);
/* Add a pair as is (no sampling); retry_id: see judge_pair. */
void judge_pairs_add(judge_pair_set *s, int64_t prompt_id, int64_t ca, int64_t cb, int64_t retry_id);
/* Sort by (prompt, a, b). */
void judge_pairs_sort(judge_pair_set *s);
/* Keep the first limit pairs (limit <= 0: all). */
void judge_pairs_limit(judge_pair_set *s, long limit);
/* Set each pair's display order: with one order per pair (norders 1),
 * judge_pair_first_b; with both orders, a first. */
void judge_pairs_set_orders(judge_pair_set *s, int norders);

/* The display order of a pair judged in one order only: fixed per pair
 * (a hash of its ids, so reruns show it the same way), b first for about
 * half of the pairs, so that position bias does not favour lower ids. */
int judge_pair_first_b(int64_t prompt_id, int64_t ca, int64_t cb);
/* Nonzero when order shows b first (order 1, or the pair's one order). */
int judge_pair_b_first(const judge_pair *p, int order);

/* A request's verdict ('A', 'B', 'C') in a/b terms given whether b was
 * shown first: 'a', 'b' or 't'; 0 for anything else. */
char judge_verdict_ab(int verdict, int b_first);
/* "a", "b", or "tie" (for 't' and anything else). */
const char *judge_verdict_name(char v);
/* Record the verdict of order order of p (p->v[order]). */
void judge_pair_record(judge_pair *p, int order, int verdict);

/* What a finished pair becomes. */
typedef enum judge_outcome {
	JUDGE_PAIR_FAILED,       /* a request failed: verdict "skip", the error as rationale */
	JUDGE_PAIR_CONSISTENT,   /* both orders gave the same verdict: that verdict */
	JUDGE_PAIR_INCONSISTENT, /* the orders disagreed: a tie flagged inconsistent */
	JUDGE_PAIR_ONE_ORDER,    /* judged in one order only: its verdict */
} judge_outcome;

typedef struct judge_decision {
	judge_outcome outcome;
	const char *verdict;     /* "a", "b", "tie" or "skip" */
	const char *shown_first; /* "a" (both orders), "a" or "b" (one order); NULL when failed */
	int inconsistent;        /* the store's inconsistent flag */
	const char *rationale;   /* both orders: both verdicts (and the pair's rationale);
				    one order: p->rationale; failed: p->err or "judge error";
				    may be NULL. Points into p or buf. */
	char buf[200];
} judge_decision;

/* Combine the verdicts of a pair whose requests have all finished
 * (norders: 2 with --swap, else 1). *d stays valid while p is unchanged. */
void judge_pair_decide(const judge_pair *p, int norders, judge_decision *d);

/* The rationale stored with a decided pair (malloc'ed, or NULL): d's, and
 * after it the judge's explanation of each order that has one (p->why):
 * with one order the explanation alone when d has none, else d's text
 * and, per order, a blank line, "[a shown first]" or "[b shown first]" and
 * the explanation. A failed pair gets d's text only. */
char *judge_pair_rationale(const judge_pair *p, int norders, const judge_decision *d);

/* Counts over one run. */
typedef struct judge_tally {
	long judged;        /* pairs with a verdict */
	long consistent, inconsistent;
	long failed_pairs;
	long decisive;      /* request verdicts 'A' or 'B' */
	long first_wins;    /* of those, 'A' (the response shown first won) */
} judge_tally;

/* Count one request's verdict ('A', 'B', 'C'). */
void judge_tally_verdict(judge_tally *t, int verdict);
/* Count one finished pair. */
void judge_tally_outcome(judge_tally *t, judge_outcome o);
/* consistent / (consistent + inconsistent); NAN when no pair had both orders. */
double judge_tally_consistency_rate(const judge_tally *t);
/* first_wins / decisive; NAN when no verdict was decisive. */
double judge_tally_first_position_rate(const judge_tally *t);

/* ---- choosing the pairs from the store (judge_pairs_store.c) ---------------- */

struct store;

/* What to judge (dpo-judge's "What to judge" options). */
typedef struct judge_pair_query {
	int64_t judge_id;     /* the judge's annotator id */
	int retry_failed;     /* only the pairs this judge failed on (its skips), in id
				 order; split, source, include_labeled and sample do not apply */
	const char *split;    /* NULL: any */
	const char *source;   /* NULL: any */
	int include_labeled;  /* also pairs that humans or imports labeled */
	long sample;          /* > 0: a uniform sample of this many pending pairs */
	long seed;            /* of the sample */
	long limit;           /* > 0: at most this many (the first after sorting) */
	int norders;          /* 2: both orders, 1: one (judge_pairs_set_orders) */
} judge_pair_query;

/* Initialise s and fill it with the pairs q asks for: pending pairs (those
 * this judge has not judged, without a human or import label unless
 * include_labeled) sorted by (prompt, a, b), or with retry_failed this
 * judge's skips with retry_id set; cut to the limit, display orders set.
 * Returns STORE_OK or the store's error (store_errmsg says what); s is
 * initialised either way (free it with judge_pairs_free). */
int judge_pairs_choose(struct store *st, const judge_pair_query *q, judge_pair_set *s);

#endif

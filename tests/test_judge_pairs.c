/* test_judge_pairs.c: unit tests of judge/judge_pairs: combining the
 * verdicts of a pair's two orders, the tally, the pair set (sampling,
 * sorting, limit, display orders) and choosing the pairs from a store
 * (limit, split, include-labeled, retry-failed, seed determinism). */
#include "config.h"
#include "judge/judge_pairs.h"
#include "store/store.h"
#include "tests/tap.h"
#include "util/buf.h"
#include "util/xmalloc.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_verdict_ab(void)
{
	static const struct {
		int verdict, b_first;
		char want;
	} t[] = {
		{'A', 0, 'a'}, {'A', 1, 'b'}, {'B', 0, 'b'}, {'B', 1, 'a'},
		{'C', 0, 't'}, {'C', 1, 't'}, {0, 0, 0},     {'X', 1, 0},
	};
	for (size_t i = 0; i < sizeof t / sizeof *t; i++)
		TAP_IS_INT(judge_verdict_ab(t[i].verdict, t[i].b_first), t[i].want, "verdict_ab('%c', b_first %d)",
			   t[i].verdict ? t[i].verdict : '0', t[i].b_first);
	TAP_IS_STR(judge_verdict_name('a'), "a", "verdict_name a");
	TAP_IS_STR(judge_verdict_name('b'), "b", "verdict_name b");
	TAP_IS_STR(judge_verdict_name('t'), "tie", "verdict_name t");
	TAP_IS_STR(judge_verdict_name(0), "tie", "verdict_name of nothing is tie");
}

/* The two-order combination: requests' verdicts (as shown: 'A' = the one
 * shown first) go in per order, one comparison comes out. */
static void test_decide(void)
{
	static const struct {
		const char *name;
		int norders, first_b;
		int r0, r1;            /* raw verdicts of order 0 and 1 (0: none) */
		int failed;
		const char *err, *rationale;
		judge_outcome outcome;
		const char *verdict, *shown_first;
		int inconsistent;
		const char *want_rationale;
	} t[] = {
		{"A then B (a wins in both orders): consistent a", 2, 0, 'A', 'B', 0, NULL, NULL,
		 JUDGE_PAIR_CONSISTENT, "a", "a", 0, "a shown first: a; b shown first: a"},
		{"B then A (b wins in both orders): consistent b", 2, 0, 'B', 'A', 0, NULL, NULL,
		 JUDGE_PAIR_CONSISTENT, "b", "a", 0, "a shown first: b; b shown first: b"},
		{"C/C: a consistent tie", 2, 0, 'C', 'C', 0, NULL, NULL, JUDGE_PAIR_CONSISTENT, "tie", "a", 0,
		 "a shown first: tie; b shown first: tie"},
		{"A/A (the first shown always wins): inconsistent tie", 2, 0, 'A', 'A', 0, NULL, NULL,
		 JUDGE_PAIR_INCONSISTENT, "tie", "a", 1, "a shown first: a; b shown first: b"},
		{"B/B (the second shown always wins): inconsistent tie", 2, 0, 'B', 'B', 0, NULL, NULL,
		 JUDGE_PAIR_INCONSISTENT, "tie", "a", 1, "a shown first: b; b shown first: a"},
		{"A/C: a decisive and a tie disagree", 2, 0, 'A', 'C', 0, NULL, NULL, JUDGE_PAIR_INCONSISTENT,
		 "tie", "a", 1, "a shown first: a; b shown first: tie"},
		{"C/B: a tie and a decisive disagree", 2, 0, 'C', 'B', 0, NULL, NULL, JUDGE_PAIR_INCONSISTENT,
		 "tie", "a", 1, "a shown first: tie; b shown first: a"},
		{"both orders with a verifier's rationale", 2, 0, 'B', 'A', 0, NULL, "lengths 62 and 162",
		 JUDGE_PAIR_CONSISTENT, "b", "a", 0, "a shown first: b; b shown first: b; lengths 62 and 162"},
		{"one order failed: skip with the error", 2, 0, 'A', 0, 1, "judge error: HTTP 500", NULL,
		 JUDGE_PAIR_FAILED, "skip", NULL, 0, "judge error: HTTP 500"},
		{"failed without a message", 2, 0, 0, 0, 1, NULL, NULL, JUDGE_PAIR_FAILED, "skip", NULL, 0,
		 "judge error"},
		{"failed, rationale ignored", 1, 1, 'A', 0, 1, "judge error: x", "r", JUDGE_PAIR_FAILED, "skip",
		 NULL, 0, "judge error: x"},
		{"--no-swap, a shown first, A", 1, 0, 'A', 0, 0, NULL, NULL, JUDGE_PAIR_ONE_ORDER, "a", "a", 0,
		 NULL},
		{"--no-swap, b shown first, A: b wins", 1, 1, 'A', 0, 0, NULL, NULL, JUDGE_PAIR_ONE_ORDER, "b",
		 "b", 0, NULL},
		{"--no-swap, b shown first, B: a wins", 1, 1, 'B', 0, 0, NULL, NULL, JUDGE_PAIR_ONE_ORDER, "a",
		 "b", 0, NULL},
		{"--no-swap, tie, with rationale", 1, 0, 'C', 0, 0, NULL, "same", JUDGE_PAIR_ONE_ORDER, "tie",
		 "a", 0, "same"},
	};
	for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
		judge_pair p;
		judge_decision d;
		memset(&p, 0, sizeof p);
		p.first_b = t[i].first_b;
		if (t[i].r0)
			judge_pair_record(&p, 0, t[i].r0);
		if (t[i].r1)
			judge_pair_record(&p, 1, t[i].r1);
		p.failed = t[i].failed;
		p.err = (char *)t[i].err;
		p.rationale = (char *)t[i].rationale;
		judge_pair_decide(&p, t[i].norders, &d);
		int ok = d.outcome == t[i].outcome && !strcmp(d.verdict, t[i].verdict) &&
			 d.inconsistent == t[i].inconsistent &&
			 (t[i].shown_first ? d.shown_first && !strcmp(d.shown_first, t[i].shown_first)
					   : !d.shown_first) &&
			 (t[i].want_rationale ? d.rationale && !strcmp(d.rationale, t[i].want_rationale)
					      : !d.rationale);
		if (!TAP_OK(ok, "decide: %s", t[i].name))
			printf("#   got outcome %d, verdict %s, shown_first %s, inconsistent %d, rationale \"%s\"\n",
			       (int)d.outcome, d.verdict, d.shown_first ? d.shown_first : "(null)", d.inconsistent,
			       d.rationale ? d.rationale : "(null)");
	}

	/* the rationale of both orders is cut to the store's 200-byte buffer */
	judge_pair p;
	judge_decision d;
	char long_r[400];
	memset(&p, 0, sizeof p);
	memset(long_r, 'x', sizeof long_r - 1);
	long_r[sizeof long_r - 1] = 0;
	judge_pair_record(&p, 0, 'A');
	judge_pair_record(&p, 1, 'B');
	p.rationale = long_r;
	judge_pair_decide(&p, 2, &d);
	TAP_IS_INT(strlen(d.rationale), 199, "decide: a long rationale is cut to 199 bytes");
	TAP_OK(!strncmp(d.rationale, "a shown first: a; b shown first: a; xxx", 39), "decide: cut at the end");

	/* #15: the judge's explanations go with the label */
	memset(&p, 0, sizeof p);
	judge_pair_record(&p, 0, 'A');
	judge_pair_record(&p, 1, 'B');
	p.why[0] = "A is right.\n[[A]]";
	p.why[1] = "B is right.\n[[B]]";
	judge_pair_decide(&p, 2, &d);
	char *why = judge_pair_rationale(&p, 2, &d);
	TAP_IS_STR(why,
		   "a shown first: a; b shown first: a\n\n[a shown first]\nA is right.\n[[A]]\n\n[b shown first]\nB is "
		   "right.\n[[B]]",
		   "rationale: both verdicts, then each order's explanation");
	free(why);
	p.why[0] = NULL;
	judge_pair_decide(&p, 2, &d);
	why = judge_pair_rationale(&p, 2, &d);
	TAP_IS_STR(why, "a shown first: a; b shown first: a\n\n[b shown first]\nB is right.\n[[B]]",
		   "rationale: an order without an explanation is left out");
	free(why);
	memset(&p, 0, sizeof p);
	p.first_b = 1;
	judge_pair_record(&p, 0, 'A');
	p.why[0] = "the second is terse [[A]]";
	judge_pair_decide(&p, 1, &d);
	why = judge_pair_rationale(&p, 1, &d);
	TAP_IS_STR(why, "the second is terse [[A]]", "rationale: one order, the explanation alone");
	free(why);
	p.rationale = "verifier says";
	judge_pair_decide(&p, 1, &d);
	why = judge_pair_rationale(&p, 1, &d);
	TAP_IS_STR(why, "verifier says\n\n[b shown first]\nthe second is terse [[A]]",
		   "rationale: one order with a verifier's rationale too");
	free(why);
	p.failed = 1;
	p.err = "judge error: HTTP 500";
	judge_pair_decide(&p, 1, &d);
	why = judge_pair_rationale(&p, 1, &d);
	TAP_IS_STR(why, "judge error: HTTP 500", "rationale: a failed pair keeps only the error");
	free(why);
	memset(&p, 0, sizeof p);
	judge_pair_record(&p, 0, 'C');
	judge_pair_decide(&p, 1, &d);
	TAP_OK(judge_pair_rationale(&p, 1, &d) == NULL, "rationale: nothing to say, NULL");

	/* b_first: order 1 always, order 0 with a one-order pair shown b first */
	memset(&p, 0, sizeof p);
	TAP_OK(!judge_pair_b_first(&p, 0) && judge_pair_b_first(&p, 1), "b_first: order 1 shows b first");
	p.first_b = 1;
	TAP_OK(judge_pair_b_first(&p, 0), "b_first: a pair shown b first");
}

static void test_tally(void)
{
	judge_tally t;
	memset(&t, 0, sizeof t);
	TAP_OK(isnan(judge_tally_consistency_rate(&t)), "tally: no consistency rate without pairs");
	TAP_OK(isnan(judge_tally_first_position_rate(&t)), "tally: no first-position rate without verdicts");
	const int v[] = {'A', 'A', 'B', 'C', 'A', 0};
	for (size_t i = 0; i < sizeof v / sizeof *v; i++)
		judge_tally_verdict(&t, v[i]);
	TAP_IS_INT(t.decisive, 4, "tally: A and B are decisive");
	TAP_IS_INT(t.first_wins, 3, "tally: A is a first-position win");
	TAP_NEAR(judge_tally_first_position_rate(&t), 0.75, 1e-12, "tally: first-position rate");
	const judge_outcome o[] = {JUDGE_PAIR_CONSISTENT, JUDGE_PAIR_CONSISTENT, JUDGE_PAIR_CONSISTENT,
				   JUDGE_PAIR_INCONSISTENT, JUDGE_PAIR_FAILED, JUDGE_PAIR_FAILED,
				   JUDGE_PAIR_ONE_ORDER};
	for (size_t i = 0; i < sizeof o / sizeof *o; i++)
		judge_tally_outcome(&t, o[i]);
	TAP_IS_INT(t.judged, 5, "tally: judged counts every pair with a verdict");
	TAP_IS_INT(t.consistent, 3, "tally: consistent");
	TAP_IS_INT(t.inconsistent, 1, "tally: inconsistent");
	TAP_IS_INT(t.failed_pairs, 2, "tally: failed pairs are not judged");
	TAP_NEAR(judge_tally_consistency_rate(&t), 0.75, 1e-12, "tally: consistency rate");
}

/* Offer candidates (prompt i / 10, completions 2i, 2i + 1) to a set. */
static void offer_n(judge_pair_set *s, int n)
{
	for (int i = 0; i < n; i++)
		judge_pairs_offer(s, i / 10 + 1, 2 * i, 2 * i + 1);
}

static int cmp_ids(const judge_pair *x, const judge_pair *y)
{
	if (x->prompt_id != y->prompt_id)
		return x->prompt_id < y->prompt_id ? -1 : 1;
	if (x->ca != y->ca)
		return x->ca < y->ca ? -1 : 1;
	return x->cb < y->cb ? -1 : x->cb > y->cb;
}

static int same_pairs(const judge_pair_set *x, const judge_pair_set *y)
{
	if (x->n != y->n)
		return 0;
	for (size_t i = 0; i < x->n; i++)
		if (x->v[i].prompt_id != y->v[i].prompt_id || x->v[i].ca != y->v[i].ca || x->v[i].cb != y->v[i].cb)
			return 0;
	return 1;
}

static void test_set(void)
{
	judge_pair_set s, s2;

	judge_pairs_init(&s, 0, 0);
	judge_pairs_offer(&s, 3, 7, 9);
	judge_pairs_offer(&s, 1, 2, 5);
	judge_pairs_offer(&s, 3, 7, 8);
	judge_pairs_offer(&s, 1, 1, 5);
	judge_pairs_add(&s, 2, 4, 6, 42);
	TAP_IS_INT(s.n, 5, "set: every candidate kept without a sample size");
	TAP_IS_INT(s.v[4].retry_id, 42, "set: add keeps the retry id");
	judge_pairs_sort(&s);
	static const int64_t want[5][3] = {{1, 1, 5}, {1, 2, 5}, {2, 4, 6}, {3, 7, 8}, {3, 7, 9}};
	int sorted = 1;
	for (size_t i = 0; i < 5; i++)
		sorted &= s.v[i].prompt_id == want[i][0] && s.v[i].ca == want[i][1] && s.v[i].cb == want[i][2];
	TAP_OK(sorted, "set: sorted by prompt, a, b");
	judge_pairs_limit(&s, 0);
	TAP_IS_INT(s.n, 5, "set: limit 0 keeps all");
	judge_pairs_limit(&s, 9);
	TAP_IS_INT(s.n, 5, "set: a limit above the count keeps all");
	s.v[4].err = xstrdup("dropped with its pair");
	judge_pairs_limit(&s, 2);
	TAP_OK(s.n == 2 && s.v[1].ca == 2, "set: limit 2 keeps the first two");
	judge_pairs_free(&s);
	TAP_OK(s.n == 0 && !s.v, "set: empty after free");

	/* --pairs random:N: reservoir sampling, reproducible with the seed */
	judge_pairs_init(&s, 10, 3);
	offer_n(&s, 100);
	judge_pairs_init(&s2, 10, 3);
	offer_n(&s2, 100);
	TAP_IS_INT(s.n, 10, "sample: 10 of 100");
	TAP_IS_INT(s.seen, 100, "sample: 100 seen");
	TAP_OK(same_pairs(&s, &s2), "sample: the same seed draws the same pairs");
	int distinct = 1, later = 0;
	for (size_t i = 0; i < s.n; i++) {
		later += s.v[i].ca >= 20;
		for (size_t j = 0; j < i; j++)
			distinct &= s.v[i].ca != s.v[j].ca;
	}
	TAP_OK(distinct, "sample: no pair twice");
	TAP_OK(later > 0, "sample: not just the first candidates (%d of 10 from the last 80)", later);
	judge_pairs_free(&s2);
	judge_pairs_init(&s2, 10, 4);
	offer_n(&s2, 100);
	TAP_OK(!same_pairs(&s, &s2), "sample: another seed draws other pairs");
	judge_pairs_free(&s);
	judge_pairs_free(&s2);

	/* the draws must stay what they were, so that a rerun with the same
	 * seed picks the same pairs (golden values) */
	judge_pairs_init(&s, 3, 0);
	offer_n(&s, 10);
	judge_pairs_sort(&s);
	TAP_OK(s.n == 3 && s.v[0].ca == 2 && s.v[1].ca == 10 && s.v[2].ca == 16,
	       "sample: seed 0, 3 of 10 are candidates 1, 5 and 8 (got %lld %lld %lld)", (long long)s.v[0].ca / 2,
	       (long long)s.v[1].ca / 2, (long long)s.v[2].ca / 2);
	judge_pairs_free(&s);

	judge_pairs_init(&s, 20, 1);
	offer_n(&s, 5);
	TAP_IS_INT(s.n, 5, "sample: fewer candidates than the sample size: all of them");
	judge_pairs_free(&s);

	/* every candidate has the same chance: 5 of 20 over 2000 seeds, 500 expected */
	int count[20] = {0}, lo = 1 << 30, hi = 0;
	for (long seed = 0; seed < 2000; seed++) {
		judge_pairs_init(&s, 5, seed);
		offer_n(&s, 20);
		for (size_t i = 0; i < s.n; i++)
			count[s.v[i].ca / 2]++;
		judge_pairs_free(&s);
	}
	for (int i = 0; i < 20; i++) {
		lo = count[i] < lo ? count[i] : lo;
		hi = count[i] > hi ? count[i] : hi;
	}
	TAP_OK(lo >= 420 && hi <= 580, "sample: uniform (each of 20 drawn 420..580 times of 500; %d..%d)", lo, hi);
}

static void test_orders(void)
{
	judge_pair_set s;
	judge_pairs_init(&s, 0, 0);
	for (int i = 0; i < 1000; i++)
		judge_pairs_offer(&s, i / 6 + 1, i, i + 1 + i % 5);
	judge_pairs_set_orders(&s, 2);
	int any = 0;
	for (size_t i = 0; i < s.n; i++)
		any |= s.v[i].first_b;
	TAP_OK(!any, "orders: with both orders every pair starts with a");
	judge_pairs_set_orders(&s, 1);
	int nb = 0, same = 1;
	for (size_t i = 0; i < s.n; i++) {
		nb += s.v[i].first_b;
		same &= s.v[i].first_b == judge_pair_first_b(s.v[i].prompt_id, s.v[i].ca, s.v[i].cb);
	}
	TAP_OK(same, "orders: one order per pair, from judge_pair_first_b");
	TAP_OK(nb > 430 && nb < 570, "orders: about half show b first (%d of 1000)", nb);
	judge_pairs_free(&s);
	/* golden values: a rerun with --no-swap must show each pair as before
	 * (and so hit the request cache) */
	static const struct {
		int64_t p, a, b;
		int want;
	} g[] = {{1, 1, 2, 1}, {1, 1, 3, 1}, {1, 2, 3, 0}, {2, 5, 6, 1}, {2, 5, 7, 1}, {3, 9, 12, 1}, {6, 22, 24, 0}};
	for (size_t i = 0; i < sizeof g / sizeof *g; i++)
		TAP_IS_INT(judge_pair_first_b(g[i].p, g[i].a, g[i].b), g[i].want, "first_b(%lld, %lld, %lld)",
			   (long long)g[i].p, (long long)g[i].a, (long long)g[i].b);
}

/* ---- choosing from a store ------------------------------------------------------- */

static char tmpdir[] = "/tmp/dpo-test-judge-pairs.XXXXXX";

typedef struct fixture {
	store *st;
	int64_t judge, other, human;
	int64_t c[4][3]; /* completions of prompts 1..3 (index 1..3) */
	int64_t pid[4];
	int64_t skip1, skip2, skip_other;
} fixture;

static int add_cmp(fixture *f, int64_t annotator, int prompt, int i, int j, const char *verdict, int64_t *id)
{
	store_comparison cm;
	memset(&cm, 0, sizeof cm);
	cm.prompt_id = f->pid[prompt];
	cm.completion_a = f->c[prompt][i];
	cm.completion_b = f->c[prompt][j];
	cm.annotator_id = annotator;
	cm.verdict = verdict;
	cm.confidence = NAN;
	cm.duration_ms = -1;
	return store_comparison_add(f->st, &cm, id, NULL);
}

/* Three prompts with three completions each (9 pairs): prompts 1 and 2 in
 * split "train", prompt 3 in "test"; a human labeled pair (1: 0, 1); the
 * judge decided (2: 0, 1) and failed on (1: 1, 2) and (3: 0, 2); another
 * judge failed on (2: 0, 2). */
static int fixture_open(fixture *f)
{
	char *path = xasprintf("%s/q.db", tmpdir);
	int64_t gen;
	memset(f, 0, sizeof *f);
	f->st = store_new();
	int rc = store_open(f->st, path);
	free(path);
	store_generator g = {"model", "tiny", "fp", "{}"};
	store_annotator h = {"human", "alice", NULL, NULL, NULL, NULL};
	store_annotator j = {"judge", "judge:test:1", "exec", "m", "t", "{}"};
	store_annotator k = {"judge", "judge:test:2", "exec", "m", "t", "{\"swap\":false}"};
	rc = rc || store_generator_id(f->st, &g, &gen) || store_annotator_id(f->st, &h, &f->human) ||
	     store_annotator_id(f->st, &j, &f->judge) || store_annotator_id(f->st, &k, &f->other);
	for (int p = 1; p <= 3 && !rc; p++) {
		char text[64];
		snprintf(text, sizeof text, "Question %d", p);
		rc = store_prompt_add(f->st, text, NULL, 0, "test", p == 3 ? "test" : "train", &f->pid[p], NULL);
		for (int i = 0; i < 3 && !rc; i++) {
			snprintf(text, sizeof text, "Answer %d to %d", i, p);
			rc = store_completion_add(f->st, f->pid[p], text, gen, &f->c[p][i], NULL);
		}
	}
	rc = rc || add_cmp(f, f->human, 1, 0, 1, "b", NULL) || add_cmp(f, f->judge, 2, 0, 1, "a", NULL) ||
	     add_cmp(f, f->judge, 1, 1, 2, "skip", &f->skip1) || add_cmp(f, f->judge, 3, 0, 2, "skip", &f->skip2) ||
	     add_cmp(f, f->other, 2, 0, 2, "skip", &f->skip_other);
	if (rc)
		printf("# store: %s\n", store_errmsg(f->st));
	return rc;
}

/* "p:i-j p:i-j ..." for the set (prompt number, completion indexes). */
static char *describe(const fixture *f, const judge_pair_set *s)
{
	util_buf b = UTIL_BUF_INIT;
	for (size_t n = 0; n < s->n; n++)
		for (int p = 1; p <= 3; p++)
			for (int i = 0; i < 3; i++)
				for (int j = 0; j < 3; j++)
					if (s->v[n].prompt_id == f->pid[p] && s->v[n].ca == f->c[p][i] &&
					    s->v[n].cb == f->c[p][j])
						util_buf_addf(&b, "%s%d:%d-%d", b.len ? " " : "", p, i, j);
	char *r = util_buf_detach(&b);
	util_buf_free(&b);
	return r;
}

static void check_choice(fixture *f, const judge_pair_query *q, const char *want, const char *name)
{
	judge_pair_set s;
	int rc = judge_pairs_choose(f->st, q, &s);
	char *got = describe(f, &s);
	if (rc != STORE_OK)
		printf("# %s\n", store_errmsg(f->st));
	TAP_IS_STR(got, want, "choose: %s", name);
	free(got);
	judge_pairs_free(&s);
}

static void test_choose(void)
{
	fixture f;
	if (!mkdtemp(tmpdir) || fixture_open(&f)) {
		TAP_OK(0, "choose: fixture");
		return;
	}
	judge_pair_query q = {.judge_id = f.judge, .norders = 2};
	check_choice(&f, &q, "1:0-2 2:0-2 2:1-2 3:0-1 3:1-2",
		     "pending pairs: not labeled by a human, not judged by this judge");
	q.limit = 2;
	check_choice(&f, &q, "1:0-2 2:0-2", "--limit 2: the first two");
	q.limit = 0;
	q.include_labeled = 1;
	check_choice(&f, &q, "1:0-1 1:0-2 2:0-2 2:1-2 3:0-1 3:1-2", "--include-labeled adds the human's pair");
	q.include_labeled = 0;
	q.split = "test";
	check_choice(&f, &q, "3:0-1 3:1-2", "--split test");
	q.split = NULL;
	q.judge_id = f.other;
	check_choice(&f, &q, "1:0-2 1:1-2 2:0-1 2:1-2 3:0-1 3:0-2 3:1-2", "another judge has other pending pairs");

	/* --retry-failed: this judge's skips only, in id order, with their ids */
	judge_pair_set s;
	q = (judge_pair_query){.judge_id = f.judge, .retry_failed = 1, .norders = 2, .split = "train"};
	TAP_IS_INT(judge_pairs_choose(f.st, &q, &s), STORE_OK, "choose: --retry-failed reads");
	char *got = describe(&f, &s);
	TAP_IS_STR(got, "1:1-2 3:0-2", "choose: --retry-failed: this judge's two failures (split does not apply)");
	TAP_OK(s.n == 2 && s.v[0].retry_id == f.skip1 && s.v[1].retry_id == f.skip2,
	       "choose: --retry-failed: each pair knows the comparison it replaces");
	free(got);
	judge_pairs_free(&s);
	q.limit = 1;
	q.sample = 5;
	check_choice(&f, &q, "1:1-2", "--retry-failed --limit 1 (no sampling)");

	/* --pairs random:N --seed S: reproducible, a sorted subset of the pending pairs */
	q = (judge_pair_query){.judge_id = f.judge, .sample = 3, .seed = 7, .norders = 2};
	judge_pair_set a, b;
	TAP_IS_INT(judge_pairs_choose(f.st, &q, &a), STORE_OK, "choose: random:3 reads");
	judge_pairs_choose(f.st, &q, &b);
	char *da = describe(&f, &a), *db = describe(&f, &b);
	TAP_IS_STR(da, db, "choose: random:3 --seed 7 twice: the same pairs");
	TAP_IS_INT(a.n, 3, "choose: random:3 draws 3");
	judge_pair_set all;
	judge_pair_query qall = {.judge_id = f.judge, .norders = 2};
	judge_pairs_choose(f.st, &qall, &all);
	int sorted = 1, pending = 1;
	for (size_t i = 0; i < a.n; i++) {
		if (i)
			sorted &= cmp_ids(&a.v[i - 1], &a.v[i]) < 0;
		int found = 0;
		for (size_t j = 0; j < all.n; j++)
			found |= cmp_ids(&a.v[i], &all.v[j]) == 0;
		pending &= found;
	}
	judge_pairs_free(&all);
	TAP_OK(sorted, "choose: the sample is sorted");
	TAP_OK(pending, "choose: the sample is of pending pairs (%s)", da);
	free(da);
	free(db);
	judge_pairs_free(&a);
	judge_pairs_free(&b);
	int differ = 0;
	for (long seed = 0; seed < 20 && !differ; seed++) {
		q.seed = seed;
		judge_pairs_choose(f.st, &q, &a);
		q.seed = seed + 1;
		judge_pairs_choose(f.st, &q, &b);
		differ = !same_pairs(&a, &b);
		judge_pairs_free(&a);
		judge_pairs_free(&b);
	}
	TAP_OK(differ, "choose: other seeds draw other pairs");
	q.limit = 2;
	q.seed = 7;
	judge_pairs_choose(f.st, &q, &a);
	TAP_IS_INT(a.n, 2, "choose: random:3 --limit 2 keeps 2");
	judge_pairs_free(&a);

	/* --no-swap: display orders set */
	q = (judge_pair_query){.judge_id = f.judge, .norders = 1};
	judge_pairs_choose(f.st, &q, &a);
	int ok = a.n == 5;
	for (size_t i = 0; i < a.n; i++)
		ok &= a.v[i].first_b == judge_pair_first_b(a.v[i].prompt_id, a.v[i].ca, a.v[i].cb);
	TAP_OK(ok, "choose: --no-swap sets each pair's display order");
	judge_pairs_free(&a);

	store_free(f.st);
	char *cmd = xasprintf("rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
	free(cmd);
}

/* long rationales: stored compressed with a readable first line, read back whole */
static void test_rationale_codec(void)
{
	static const struct {
		size_t len;       /* of the text built below */
		int compressed;   /* store_rationale_encode's answer */
		const char *name;
	} t[] = {
		{0, 0, "empty: plain"},
		{100, 0, "short: plain"},
		{STORE_RATIONALE_ZMIN - 1, 0, "just under the threshold: plain"},
		{STORE_RATIONALE_ZMIN, 1, "at the threshold: compressed"},
		{40000, 1, "long: compressed"},
	};
	for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
		util_buf text = UTIL_BUF_INIT, enc = UTIL_BUF_INIT, dec = UTIL_BUF_INIT;
		util_buf_adds(&text, "a shown first: a; b shown first: b");
		while (text.len < t[i].len)
			util_buf_adds(&text, "\nThe answers differ in what they claim; I check each claim. \xc3\xa9");
		if (text.len > t[i].len)
			text.len = t[i].len, text.data[text.len] = '\0';
		int c = store_rationale_encode(util_buf_str(&text), &enc);
		TAP_IS_INT(c, t[i].compressed, "rationale codec: %s", t[i].name);
		if (c) {
			TAP_OK(enc.len < text.len / 4, "rationale codec: %s: %zu bytes for %zu", t[i].name, enc.len,
			       text.len);
			TAP_OK(!strncmp(enc.data, "a shown first: a; b shown first: b", 34) && enc.data[34] == '\0',
			       "rationale codec: %s: the first line stays readable", t[i].name);
			TAP_IS_INT(store_rationale_decode(enc.data, enc.len, &dec), 1, "rationale codec: %s: decodes",
				   t[i].name);
			TAP_OK(dec.len == text.len && !memcmp(dec.data, text.data, text.len),
			       "rationale codec: %s: the same text back", t[i].name);
			util_buf_reset(&dec);
			enc.data[enc.len - 3] ^= 0x55; /* damage the deflated stream */
			TAP_IS_INT(store_rationale_decode(enc.data, enc.len, &dec), -1,
				   "rationale codec: %s: damage is reported", t[i].name);
			TAP_OK(strstr(util_buf_str(&dec), "cannot be decompressed") != NULL,
			       "rationale codec: %s: ... with the first line and a note", t[i].name);
		} else {
			TAP_IS_INT((int)enc.len, 0, "rationale codec: %s: nothing appended", t[i].name);
			TAP_IS_INT(store_rationale_decode(text.data ? text.data : "", text.len, &dec), 0,
				   "rationale codec: %s: plain text decodes as itself", t[i].name);
			TAP_IS_STR(util_buf_str(&dec), util_buf_str(&text), "rationale codec: %s: unchanged", t[i].name);
		}
		util_buf_free(&text);
		util_buf_free(&enc);
		util_buf_free(&dec);
	}
}

int main(void)
{
	test_rationale_codec();
	test_verdict_ab();
	test_decide();
	test_tally();
	test_set();
	test_orders();
	test_choose();
	return tap_done();
}

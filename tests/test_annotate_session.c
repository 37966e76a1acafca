/* test_annotate_session.c: unit tests of dpo-annotate's session model (queue,
 * current item, labels, undo, overlap rules, rank -> implied comparisons,
 * review, judge agreement, search, resume, concurrent annotators) against a
 * real store in a temporary file. No curses. */
#include "config.h"
#include "annotate/session.h"
#include "store/store.h"
#include "tests/tap.h"
#include "util/xmalloc.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/dpo-test-annotate-XXXXXX";
static int dbn;

/* A fresh database path. */
static char *new_db(void)
{
	return xasprintf("%s/db%d.sqlite", dir, ++dbn);
}

static store *open_db(const char *path)
{
	store *st = store_new();
	if (store_open(st, path) != STORE_OK) {
		printf("Bail out! cannot open %s: %s\n", path, store_errmsg(st));
		exit(1);
	}
	return st;
}

static void must(int rc, store *st, const char *what)
{
	if (rc != STORE_OK) {
		printf("Bail out! %s: %s\n", what, store_errmsg(st));
		exit(1);
	}
}

/* nprompts prompts ("prompt N", with "zebra" in prompt 3) with k completions each. */
static void fill(store *st, int nprompts, int k, const char *source, int64_t *first_prompt)
{
	store_generator g = {.kind = "import", .name = "unit"};
	int64_t gid;
	must(store_begin(st), st, "begin");
	must(store_generator_id(st, &g, &gid), st, "generator");
	for (int i = 0; i < nprompts; i++) {
		char text[64];
		int64_t pid;
		snprintf(text, sizeof text, "%s prompt %d%s", source, i, i == 3 ? " about a zebra" : "");
		must(store_prompt_add(st, text, NULL, 0, source, NULL, &pid, NULL), st, "prompt");
		if (i == 0 && first_prompt)
			*first_prompt = pid;
		for (int j = 0; j < k; j++) {
			snprintf(text, sizeof text, "answer %d of %s prompt %d", j, source, i);
			must(store_completion_add(st, pid, text, gid, NULL, NULL), st, "completion");
		}
	}
	must(store_commit(st), st, "commit");
}

typedef struct vote {
	int64_t id, prompt_id, a, b, duration_ms;
	double confidence;
	char annotator[32], verdict[16], shown_first[4], rationale[64];
} vote;

typedef struct votes {
	vote v[512];
	int n;
	const char *only; /* annotator name filter */
} votes;

static int vote_cb(void *ud, const store_comparison *c)
{
	votes *vs = ud;
	if (vs->only && strcmp(c->annotator, vs->only))
		return 0;
	if (vs->n >= 512)
		return 1;
	vote *v = &vs->v[vs->n++];
	memset(v, 0, sizeof *v);
	v->id = c->id;
	v->prompt_id = c->prompt_id;
	v->a = c->completion_a;
	v->b = c->completion_b;
	v->duration_ms = c->duration_ms;
	v->confidence = c->confidence;
	snprintf(v->annotator, sizeof v->annotator, "%s", c->annotator);
	snprintf(v->verdict, sizeof v->verdict, "%s", c->verdict);
	snprintf(v->shown_first, sizeof v->shown_first, "%s", c->shown_first ? c->shown_first : "");
	snprintf(v->rationale, sizeof v->rationale, "%s", c->rationale ? c->rationale : "");
	return 0;
}

static int count_votes(store *st, const char *who, votes *out)
{
	static votes tmp;
	votes *vs = out ? out : &tmp;
	vs->n = 0;
	vs->only = who;
	store_comparisons_foreach(st, 0, vote_cb, vs);
	return vs->n;
}

static ann_session *open_session(store *st, const char *who, int mode, int overlap)
{
	ann_options o = {.annotator = who, .mode = mode, .overlap = overlap, .seed = 42, .retries = -1};
	ann_session *s = ann_session_new(st, &o);
	int rc = ann_session_load(s);
	if (rc != ANN_OK) {
		printf("Bail out! load: %s\n", ann_session_errmsg(s));
		exit(1);
	}
	return s;
}

static void test_rank_implied(void)
{
	static const struct {
		size_t n;
		size_t order[4];
		size_t npairs;
	} cases[] = {
		{1, {0}, 0},
		{2, {1, 0}, 1},
		{3, {2, 0, 1}, 3},
		{4, {3, 1, 0, 2}, 6},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		size_t better[6], worse[6];
		size_t n = ann_rank_implied(cases[c].order, cases[c].n, better, worse);
		TAP_IS_INT(n, cases[c].npairs, "rank of %zu gives %zu implied comparisons", cases[c].n, cases[c].npairs);
		int ok = 1;
		for (size_t i = 0; i < n; i++) {
			/* better must come before worse in the order */
			size_t pb = 99, pw = 99;
			for (size_t k = 0; k < cases[c].n; k++) {
				if (cases[c].order[k] == better[i])
					pb = k;
				if (cases[c].order[k] == worse[i])
					pw = k;
			}
			ok &= pb < pw;
			for (size_t j = 0; j < i; j++)
				ok &= !(better[j] == better[i] && worse[j] == worse[i]);
		}
		TAP_OK(ok, "rank of %zu: every implied pair ordered as ranked, none twice", cases[c].n);
	}
}

static void test_left_right(void)
{
	int lefts = 0, stable = 1;
	for (int64_t p = 1; p <= 200; p++) {
		int l = ann_left_is_a(7, p, 10 * p, 10 * p + 1);
		lefts += l;
		stable &= l == ann_left_is_a(7, p, 10 * p + 1, 10 * p);
		stable &= l == ann_left_is_a(7, p, 10 * p, 10 * p + 1);
	}
	TAP_OK(stable, "left/right placement is stable and independent of argument order");
	TAP_OK(lefts > 70 && lefts < 130, "left/right placement is balanced (%d of 200 left)", lefts);
	int differ = 0;
	for (int64_t p = 1; p <= 64; p++)
		differ += ann_left_is_a(1, p, 1, 2) != ann_left_is_a(2, p, 1, 2);
	TAP_OK(differ > 10, "another seed places differently (%d of 64)", differ);
	TAP_OK(ann_seed_from_string("alice") != ann_seed_from_string("bob"), "names give different seeds");
}

static void test_pair_labels(void)
{
	char *path = new_db();
	store *st = open_db(path);
	fill(st, 4, 3, "s", NULL); /* 4 prompts x 3 pairs */
	ann_session *s = open_session(st, "alice", ANN_MODE_PAIR, 1);
	ann_stats stt;
	ann_session_stats(s, &stt);
	TAP_IS_INT(stt.total, 12, "queue holds every pair (4 prompts x 3)");
	TAP_OK(stt.total_known, "small queue read whole");
	TAP_IS_INT(stt.position, 1, "starts at the first item");

	const ann_item *it = ann_session_current(s);
	TAP_OK(it && it->ncands == 2, "current item is a pair");
	int64_t p0 = it->prompt_id, left = it->cands[0].id, right = it->cands[1].id;
	TAP_IS_STR(it->turns[0].content, "s prompt 0", "prompt text of the first item");
	int64_t a = left < right ? left : right, b = left < right ? right : left;
	TAP_IS_INT(ann_left_is_a(42, p0, a, b), left == a, "shown order follows ann_left_is_a");

	ann_session_set_note(s, "clearer answer");
	TAP_IS_INT(ann_session_label(s, ANN_LEFT, 1500), ANN_OK, "label left");
	votes vs;
	TAP_IS_INT(count_votes(st, "alice", &vs), 1, "one comparison stored at once");
	TAP_IS_STR(vs.v[0].verdict, left == a ? "a" : "b", "verdict names the left completion");
	TAP_IS_STR(vs.v[0].shown_first, left == a ? "a" : "b", "shown_first records the left one");
	TAP_IS_INT(vs.v[0].duration_ms, 1500, "duration stored");
	TAP_IS_STR(vs.v[0].rationale, "clearer answer", "note stored as rationale");
	TAP_OK(ann_session_note(s) == NULL, "note cleared after the label");

	it = ann_session_current(s);
	TAP_OK(it && it->index == 1, "moved to the next item");
	left = it->cands[0].id;
	right = it->cands[1].id;
	a = left < right ? left : right;
	TAP_IS_INT(ann_session_label(s, ANN_RIGHT, 500), ANN_OK, "label right");
	count_votes(st, "alice", &vs);
	TAP_IS_STR(vs.v[1].verdict, left == a ? "b" : "a", "right label names the right completion");
	TAP_IS_INT(ann_session_label(s, ANN_TIE, 1000), ANN_OK, "label tie");
	TAP_IS_INT(ann_session_label(s, ANN_BOTH_BAD, 1000), ANN_OK, "label both bad");
	TAP_IS_INT(ann_session_skip(s, 1000), ANN_OK, "skip");
	count_votes(st, "alice", &vs);
	TAP_IS_INT(vs.n, 5, "five comparisons stored");
	TAP_IS_STR(vs.v[2].verdict, "tie", "tie stored");
	TAP_IS_STR(vs.v[3].verdict, "both_bad", "both bad stored");
	TAP_IS_STR(vs.v[4].verdict, "skip", "skip stored");
	TAP_IS_INT(ann_session_label(s, 99, 1), ANN_EINVAL, "unknown label refused");

	ann_session_stats(s, &stt);
	TAP_IS_INT(stt.done, 5, "done counts the labels");
	TAP_IS_INT(stt.remaining, 7, "remaining");
	TAP_IS_INT(stt.position, 6, "position advanced");
	/* durations 1500+500+1000+1000+1000 = 5000 ms for 5 labels: 1 s each */
	TAP_NEAR(stt.per_hour, 3600.0, 1e-9, "labels per hour from decision times");
	TAP_NEAR(stt.eta_s, 7.0, 1e-9, "ETA from the rate");

	/* undo, several steps */
	TAP_IS_INT(ann_session_undo_depth(s), 5, "five steps to undo");
	TAP_IS_INT(ann_session_undo(s), ANN_OK, "undo once");
	TAP_IS_INT(ann_session_undo(s), ANN_OK, "undo twice");
	TAP_IS_INT(count_votes(st, "alice", NULL), 3, "two comparisons deleted");
	it = ann_session_current(s);
	TAP_OK(it && it->index == 3, "back at the item of the undone label");
	ann_session_stats(s, &stt);
	TAP_IS_INT(stt.done, 3, "done after undo");
	TAP_NEAR(stt.per_hour, 3600.0 * 3 / 3.0, 1e-9, "rate after undo (3 labels, 3 s)");
	TAP_IS_INT(ann_session_undo(s), ANN_OK, "undo 3");
	TAP_IS_INT(ann_session_undo(s), ANN_OK, "undo 4");
	TAP_IS_INT(ann_session_undo(s), ANN_OK, "undo 5");
	TAP_IS_INT(ann_session_undo(s), ANN_ENOUNDO, "nothing more to undo");
	TAP_IS_INT(count_votes(st, "alice", NULL), 0, "every label undone");
	it = ann_session_current(s);
	TAP_OK(it && it->index == 0 && it->prompt_id == p0, "back at the first item");

	/* label three, quit, resume */
	for (int i = 0; i < 3; i++)
		ann_session_label(s, ANN_LEFT, 100);
	ann_session_skip(s, 100);
	ann_session_free(s);
	s = open_session(st, "alice", ANN_MODE_PAIR, 1);
	ann_session_stats(s, &stt);
	TAP_IS_INT(stt.total, 8, "resumed queue leaves out the 4 labeled (skip included)");
	it = ann_session_current(s);
	TAP_OK(it && it->prompt_id == p0 + 1, "resume starts at the first unlabeled pair");
	TAP_IS_INT(ann_session_undo(s), ANN_ENOUNDO, "undo does not reach into an earlier session");

	/* search */
	TAP_IS_INT(ann_session_search(s, "ZEBRA"), ANN_OK, "search finds a prompt, case-insensitively");
	it = ann_session_current(s);
	TAP_OK(it && strstr(it->turns[0].content, "zebra"), "search moved to the matching item");
	TAP_IS_INT(ann_session_search(s, "no such words"), ANN_ENOTFOUND, "search for nothing");
	TAP_OK(ann_session_current(s) == it, "a failed search stays put");
	/* finish the queue: labels wrap around to the items before the search hit */
	int n = 0;
	while (ann_session_current(s) && n < 20) {
		ann_session_label(s, ANN_RIGHT, 10);
		n++;
	}
	TAP_IS_INT(n, 8, "every pending item visited once after a search jump");
	TAP_OK(ann_session_current(s) == NULL, "queue finished");
	TAP_IS_INT(ann_session_label(s, ANN_LEFT, 1), ANN_ENOITEM, "no label when finished");
	TAP_IS_INT(count_votes(st, "alice", NULL), 12, "every pair labeled once");
	TAP_IS_INT(ann_session_undo(s), ANN_OK, "undo from the finished state");
	TAP_OK(ann_session_current(s) != NULL, "undo brings an item back");
	ann_session_free(s);
	store_free(st);
	free(path);
}

static void test_overlap(void)
{
	char *path = new_db();
	store *st = open_db(path);
	fill(st, 3, 2, "o", NULL); /* 3 pairs */
	ann_session *alice = open_session(st, "alice", ANN_MODE_PAIR, 1);
	ann_session *bob_early = open_session(st, "bob", ANN_MODE_PAIR, 1);
	ann_session_label(alice, ANN_LEFT, 10);
	ann_session_label(alice, ANN_LEFT, 10);
	ann_session_free(alice);

	ann_session *bob = open_session(st, "bob", ANN_MODE_PAIR, 1);
	ann_stats stt;
	ann_session_stats(bob, &stt);
	TAP_IS_INT(stt.total, 1, "overlap 1: pairs labeled by another human are not offered");
	ann_session_free(bob);

	/* bob loaded his queue before alice labeled: the recheck drops her pairs */
	const ann_item *it = ann_session_current(bob_early);
	TAP_OK(it != NULL, "early session still has an item");
	int n = 0;
	while (ann_session_current(bob_early) && n < 10) {
		ann_session_label(bob_early, ANN_RIGHT, 10);
		n++;
	}
	TAP_IS_INT(n, 1, "overlap 1: a stale queue skips pairs labeled meanwhile");
	ann_session_free(bob_early);

	ann_session *carol = open_session(st, "carol", ANN_MODE_PAIR, 2);
	ann_session_stats(carol, &stt);
	TAP_IS_INT(stt.total, 3, "overlap 2: pairs with one human label are offered again");
	while (ann_session_current(carol))
		ann_session_label(carol, ANN_TIE, 10);
	ann_session_free(carol);
	ann_session *dave = open_session(st, "dave", ANN_MODE_PAIR, 2);
	ann_session_stats(dave, &stt);
	TAP_IS_INT(stt.total, 0, "overlap 2: pairs with two human labels are done");
	ann_session_free(dave);
	ann_session *erin = open_session(st, "erin", ANN_MODE_PAIR, 3);
	ann_session_stats(erin, &stt);
	TAP_IS_INT(stt.total, 3, "overlap 3: offered to a third annotator");
	ann_session_free(erin);
	ann_session *carol2 = open_session(st, "carol", ANN_MODE_PAIR, 3);
	ann_session_stats(carol2, &stt);
	TAP_IS_INT(stt.total, 0, "never offered twice to the same annotator");
	ann_session_free(carol2);
	store_free(st);
	free(path);
}

static void test_rank(void)
{
	char *path = new_db();
	store *st = open_db(path);
	fill(st, 2, 4, "r", NULL);
	ann_session *s = open_session(st, "rita", ANN_MODE_RANK, 1);
	ann_stats stt;
	ann_session_stats(s, &stt);
	TAP_IS_INT(stt.total, 2, "rank queue holds prompts");
	const ann_item *it = ann_session_current(s);
	TAP_OK(it && it->ncands == 4, "rank item shows all 4 completions");
	int64_t ids[4];
	for (int i = 0; i < 4; i++)
		ids[i] = it->cands[i].id;
	TAP_IS_INT(ann_session_label(s, ANN_LEFT, 1), ANN_EINVAL, "pair labels refused in rank mode");
	size_t bad[4] = {0, 1, 1, 2};
	TAP_IS_INT(ann_session_rank(s, bad, 4, 1), ANN_EINVAL, "a ranking naming one twice is refused");
	TAP_IS_INT(ann_session_rank(s, bad, 3, 1), ANN_EINVAL, "a ranking missing one is refused");
	size_t order[4] = {2, 0, 3, 1};
	TAP_IS_INT(ann_session_rank(s, order, 4, 4000), ANN_OK, "rank 4 completions");
	votes vs;
	TAP_IS_INT(count_votes(st, "rita", &vs), 6, "stored as 6 implied comparisons");
	int ok = 1, okshown = 1;
	for (int i = 0; i < vs.n; i++) {
		int pa = -1, pb = -1, da = -1, db = -1;
		for (int r = 0; r < 4; r++) {
			if (ids[order[r]] == vs.v[i].a)
				pa = r;
			if (ids[order[r]] == vs.v[i].b)
				pb = r;
		}
		for (int d = 0; d < 4; d++) {
			if (ids[d] == vs.v[i].a)
				da = d;
			if (ids[d] == vs.v[i].b)
				db = d;
		}
		ok &= !strcmp(vs.v[i].verdict, pa < pb ? "a" : "b");
		okshown &= !strcmp(vs.v[i].shown_first, da < db ? "a" : "b");
	}
	TAP_OK(ok, "each implied comparison prefers the higher ranked completion");
	TAP_OK(okshown, "shown_first records which was shown higher");
	TAP_OK(ann_session_current(s) && ann_session_current(s)->index == 1, "rank moves to the next prompt");
	TAP_IS_INT(ann_session_undo(s), ANN_OK, "undo a ranking");
	TAP_IS_INT(count_votes(st, "rita", NULL), 0, "undo deletes all its comparisons");
	TAP_IS_INT(ann_session_skip(s, 10), ANN_OK, "skip in rank mode");
	TAP_IS_INT(count_votes(st, "rita", &vs), 6, "a skipped ranking stores skips for every pair");
	TAP_IS_STR(vs.v[0].verdict, "skip", "as skips");
	ann_session_free(s);
	s = open_session(st, "rita", ANN_MODE_RANK, 1);
	ann_session_stats(s, &stt);
	TAP_IS_INT(stt.total, 1, "resumed rank queue leaves out the ranked prompt");
	ann_session_free(s);
	/* a prompt partly labeled in pair mode is still offered, and the ranking
	 * keeps the existing comparison */
	ann_session *p = open_session(st, "rita", ANN_MODE_PAIR, 1);
	ann_session_label(p, ANN_LEFT, 10);
	ann_session_free(p);
	s = open_session(st, "rita", ANN_MODE_RANK, 1);
	size_t ord[4] = {0, 1, 2, 3};
	TAP_IS_INT(ann_session_rank(s, ord, 4, 10), ANN_OK, "rank a prompt with one pair already labeled");
	TAP_IS_INT(count_votes(st, "rita", NULL), 12, "5 new comparisons, the existing one kept");
	TAP_IS_INT(ann_session_undo(s), ANN_OK, "undo that ranking");
	TAP_IS_INT(count_votes(st, "rita", NULL), 7, "undo leaves the earlier pair label");
	ann_session_free(s);
	store_free(st);
	free(path);
}

static void add_vote(store *st, const char *who, const char *kind, int64_t p, int64_t a, int64_t b, const char *v)
{
	store_annotator an = {.kind = kind, .name = who};
	if (!strcmp(kind, "judge")) {
		an.provider = "test";
		an.model = "m";
		an.template_hash = "t";
		an.params_json = "{}";
	}
	int64_t id;
	must(store_annotator_id(st, &an, &id), st, "annotator");
	store_comparison c = {.prompt_id = p, .completion_a = a, .completion_b = b, .annotator_id = id,
			      .verdict = v, .confidence = NAN, .duration_ms = -1};
	must(store_comparison_add(st, &c, NULL, NULL), st, "comparison");
}

typedef struct pairs {
	store_pair_ref p[64];
	int n;
} pairs;

static int pair_cb(void *ud, const store_pair_ref *p)
{
	pairs *ps = ud;
	if (ps->n < 64)
		ps->p[ps->n++] = *p;
	return 0;
}

static void test_review_and_judge(void)
{
	char *path = new_db();
	store *st = open_db(path);
	fill(st, 3, 2, "v", NULL);
	pairs ps = {.n = 0};
	store_queue_filter f = {0};
	store_queue_foreach(st, &f, pair_cb, &ps);
	TAP_IS_INT(ps.n, 3, "three pairs in the fixture");
	/* pair 0: h1 says a, h2 says b (disagree); pair 1: both a; pair 2: a judge only */
	add_vote(st, "h1", "human", ps.p[0].prompt_id, ps.p[0].completion_a, ps.p[0].completion_b, "a");
	add_vote(st, "h2", "human", ps.p[0].prompt_id, ps.p[0].completion_a, ps.p[0].completion_b, "b");
	add_vote(st, "h1", "human", ps.p[1].prompt_id, ps.p[1].completion_a, ps.p[1].completion_b, "a");
	add_vote(st, "h2", "human", ps.p[1].prompt_id, ps.p[1].completion_a, ps.p[1].completion_b, "a");
	add_vote(st, "judge:x", "judge", ps.p[2].prompt_id, ps.p[2].completion_a, ps.p[2].completion_b, "a");
	add_vote(st, "judge:x", "judge", ps.p[0].prompt_id, ps.p[0].completion_a, ps.p[0].completion_b, "b");

	ann_session *r = open_session(st, "rev", ANN_MODE_REVIEW, 1);
	ann_stats stt;
	ann_session_stats(r, &stt);
	TAP_IS_INT(stt.total, 1, "review queue: the one disagreement");
	const ann_item *it = ann_session_current(r);
	TAP_OK(it && it->prompt_id == ps.p[0].prompt_id, "review shows the disputed pair");
	TAP_IS_INT(it ? it->nverdicts : 0, 3, "review shows every verdict on the pair");
	int a_left = it && it->cands[0].id == ps.p[0].completion_a;
	int seen = 0;
	for (size_t i = 0; it && i < it->nverdicts; i++) {
		if (!strcmp(it->verdicts[i].annotator, "h1"))
			seen += !strcmp(it->verdicts[i].verdict, a_left ? "left" : "right");
		if (!strcmp(it->verdicts[i].annotator, "h2"))
			seen += !strcmp(it->verdicts[i].verdict, a_left ? "right" : "left");
	}
	TAP_IS_INT(seen, 2, "verdicts are shown relative to the screen");
	TAP_IS_INT(ann_session_label(r, a_left ? ANN_LEFT : ANN_RIGHT, 10), ANN_OK, "settle it");
	votes vs;
	TAP_IS_INT(count_votes(st, "rev", &vs), 1, "reviewer's verdict stored");
	TAP_IS_STR(vs.v[0].verdict, "a", "as the reviewer chose");
	ann_session_free(r);
	r = open_session(st, "rev", ANN_MODE_REVIEW, 1);
	TAP_OK(ann_session_current(r) == NULL, "a settled pair is not offered again");
	ann_session_free(r);

	/* h1 reviews and changes their own verdict: replaced; undo restores it */
	r = open_session(st, "h1", ANN_MODE_REVIEW, 1);
	it = ann_session_current(r);
	TAP_OK(it != NULL, "review by one of the disagreeing annotators");
	a_left = it && it->cands[0].id == ps.p[0].completion_a;
	TAP_IS_INT(ann_session_label(r, a_left ? ANN_RIGHT : ANN_LEFT, 10), ANN_OK, "h1 changes their verdict");
	count_votes(st, "h1", &vs);
	int found = 0;
	for (int i = 0; i < vs.n; i++)
		if (vs.v[i].a == ps.p[0].completion_a && vs.v[i].b == ps.p[0].completion_b)
			found += !strcmp(vs.v[i].verdict, "b") ? 1 : 100;
	TAP_IS_INT(found, 1, "h1's verdict replaced (one comparison, now b)");
	TAP_IS_INT(ann_session_undo(r), ANN_OK, "undo the review label");
	count_votes(st, "h1", &vs);
	found = 0;
	for (int i = 0; i < vs.n; i++)
		if (vs.v[i].a == ps.p[0].completion_a && vs.v[i].b == ps.p[0].completion_b)
			found += !strcmp(vs.v[i].verdict, "a") ? 1 : 100;
	TAP_IS_INT(found, 1, "undo restores h1's earlier verdict");
	ann_session_free(r);

	/* show-judge: agreement figures */
	ann_options o = {.annotator = "jo", .mode = ANN_MODE_PAIR, .overlap = 5, .seed = 3, .show_judge = 1,
			 .retries = -1};
	ann_session *s = ann_session_new(st, &o);
	TAP_IS_INT(ann_session_load(s), ANN_OK, "show-judge session");
	size_t nj = 0;
	int agree_total = 0;
	for (int k = 0; k < 3; k++) {
		it = ann_session_current(s);
		if (!it)
			break;
		int64_t a = it->cands[0].id < it->cands[1].id ? it->cands[0].id : it->cands[1].id;
		int left_is_a = it->cands[0].id == a;
		int64_t pid = it->prompt_id;
		/* always prefer completion a */
		ann_session_label(s, left_is_a ? ANN_LEFT : ANN_RIGHT, 10);
		const ann_verdict *jv = ann_session_judge_verdicts(s, &nj);
		if (pid == ps.p[2].prompt_id) {
			TAP_IS_INT(nj, 1, "judge verdict revealed after the label");
			TAP_IS_STR(nj ? jv[0].verdict : NULL, left_is_a ? "left" : "right",
				   "judge verdict relative to the screen");
			agree_total++;
		} else if (pid == ps.p[0].prompt_id) {
			TAP_IS_INT(nj, 1, "judge verdict on the disputed pair");
		} else {
			TAP_IS_INT(nj, 0, "no judge verdict on the pair without one");
		}
	}
	ann_session_stats(s, &stt);
	TAP_IS_INT(stt.judge_total, 2, "two labels had a judge verdict");
	TAP_IS_INT(stt.judge_agree, 1, "one agreed (judge said a on one, b on the other)");
	ann_session_undo(s);
	ann_session_undo(s);
	ann_session_undo(s);
	ann_session_stats(s, &stt);
	TAP_IS_INT(stt.judge_total, 0, "undo takes back agreement counts");
	ann_session_free(s);
	store_free(st);
	free(path);
}

static void test_order_chunks_limit(void)
{
	char *path = new_db();
	store *st = open_db(path);
	fill(st, 400, 3, "c", NULL); /* 1200 pairs: more than one chunk */
	ann_session *s = open_session(st, "seq", ANN_MODE_PAIR, 1);
	ann_stats stt;
	ann_session_stats(s, &stt);
	TAP_OK(!stt.total_known && stt.total < 1200, "sequential order reads the queue in chunks (%zu first)",
	       stt.total);
	int more;
	while ((more = ann_session_load_more(s, 100)) == 1)
		;
	TAP_IS_INT(more, 0, "load_more reaches the end");
	ann_session_stats(s, &stt);
	TAP_OK(stt.total_known && stt.total == 1200, "whole queue read in chunks (%zu)", stt.total);
	/* duplicates or gaps at chunk boundaries would show here */
	int64_t last_p = 0, last_a = 0, last_b = 0;
	int ordered = 1, n = 0;
	while (ann_session_current(s) && n < 1300) {
		const ann_item *it = ann_session_current(s);
		int64_t a = it->cands[0].id < it->cands[1].id ? it->cands[0].id : it->cands[1].id;
		int64_t b = it->cands[0].id < it->cands[1].id ? it->cands[1].id : it->cands[0].id;
		if (it->prompt_id < last_p || (it->prompt_id == last_p && (a < last_a || (a == last_a && b <= last_b))))
			ordered = 0;
		last_p = it->prompt_id;
		last_a = a;
		last_b = b;
		ann_session_label(s, ANN_LEFT, 1);
		n++;
	}
	TAP_IS_INT(n, 1200, "every pair visited exactly once across chunks");
	TAP_OK(ordered, "in (prompt, a, b) order");
	ann_session_free(s);

	/* chunks also load lazily while labeling, without load_more */
	s = open_session(st, "lazy", ANN_MODE_PAIR, 5);
	n = 0;
	while (ann_session_current(s) && n < 1300) {
		ann_session_skip(s, 1);
		n++;
	}
	TAP_IS_INT(n, 1200, "lazily loaded chunks cover the whole queue");
	ann_session_free(s);

	/* search reaches prompts beyond the chunks read so far */
	s = open_session(st, "srch", ANN_MODE_PAIR, 9);
	ann_session_stats(s, &stt);
	TAP_OK(!stt.total_known, "search session starts with part of the queue");
	TAP_IS_INT(ann_session_search(s, "c prompt 350"), ANN_OK, "search finds a prompt not read yet");
	const ann_item *found = ann_session_current(s);
	TAP_IS_STR(found ? found->turns[0].content : NULL, "c prompt 350", "and goes there");
	ann_session_free(s);

	ann_options o = {.annotator = "rnd1", .order = ANN_ORDER_RANDOM, .seed = 5, .overlap = 9, .retries = -1};
	ann_session *r1 = ann_session_new(st, &o);
	o.annotator = "rnd2";
	ann_session *r2 = ann_session_new(st, &o);
	o.annotator = "rnd3";
	o.seed = 6;
	ann_session *r3 = ann_session_new(st, &o);
	ann_session_load(r1);
	ann_session_load(r2);
	ann_session_load(r3);
	ann_session_stats(r1, &stt);
	TAP_OK(stt.total_known && stt.total == 1200, "random order reads the whole queue");
	int same12 = 1, same13 = 1, sorted = 1;
	int64_t prev = 0;
	for (int i = 0; i < 20; i++) {
		const ann_item *i1 = ann_session_current(r1), *i2 = ann_session_current(r2),
			       *i3 = ann_session_current(r3);
		same12 &= i1->prompt_id == i2->prompt_id && i1->cands[0].id == i2->cands[0].id;
		same13 &= i1->prompt_id == i3->prompt_id;
		sorted &= i1->prompt_id >= prev;
		prev = i1->prompt_id;
		ann_session_skip(r1, 1);
		ann_session_skip(r2, 1);
		ann_session_skip(r3, 1);
	}
	TAP_OK(same12, "the same seed gives the same order");
	TAP_OK(!same13, "another seed gives another order");
	TAP_OK(!sorted, "random order is not the sequential one");
	ann_session_free(r1);
	ann_session_free(r2);
	ann_session_free(r3);

	o = (ann_options){.annotator = "lim", .limit = 5, .overlap = 9, .retries = -1};
	s = ann_session_new(st, &o);
	ann_session_load(s);
	n = 0;
	while (ann_session_current(s) && n < 10) {
		ann_session_label(s, ANN_LEFT, 1);
		n++;
	}
	TAP_IS_INT(n, 5, "--limit caps the queue");
	ann_session_free(s);
	o = (ann_options){.annotator = "lim", .mode = ANN_MODE_RANK, .limit = 3, .overlap = 9, .retries = -1};
	s = ann_session_new(st, &o);
	ann_session_load(s);
	ann_session_stats(s, &stt);
	TAP_IS_INT(stt.total, 3, "--limit caps rank mode in prompts");
	ann_session_free(s);

	o = (ann_options){.annotator = "", .overlap = 1};
	s = ann_session_new(st, &o);
	TAP_IS_INT(ann_session_load(s), ANN_EINVAL, "an empty annotator name is refused");
	ann_session_free(s);
	store_free(st);
	free(path);
}

static void test_filters(void)
{
	char *path = new_db();
	store *st = open_db(path);
	fill(st, 2, 2, "one", NULL);
	fill(st, 3, 2, "two", NULL);
	ann_options o = {.annotator = "f", .source = "two", .overlap = 1, .retries = -1};
	ann_session *s = ann_session_new(st, &o);
	ann_session_load(s);
	ann_stats stt;
	ann_session_stats(s, &stt);
	TAP_IS_INT(stt.total, 3, "--source filters the queue");
	const ann_item *it = ann_session_current(s);
	TAP_IS_STR(it ? it->source : NULL, "two", "item from that source");
	ann_session_free(s);
	o.source = NULL;
	o.split = "test";
	s = ann_session_new(st, &o);
	ann_session_load(s);
	TAP_OK(ann_session_current(s) == NULL, "--split with no such prompts: empty queue");
	ann_session_free(s);
	store_free(st);
	free(path);
}

/* Two annotators in two processes label the same database at once: every
 * label each of them made is in the store. */
static void test_concurrent(void)
{
	char *path = new_db();
	store *st = open_db(path);
	fill(st, 60, 3, "cc", NULL); /* 180 pairs */
	store_free(st);
	const char *names[2] = {"p1", "p2"};
	int fds[2][2];
	pid_t pids[2];
	for (int k = 0; k < 2; k++) {
		if (pipe(fds[k]) != 0) {
			printf("Bail out! pipe\n");
			exit(1);
		}
		fflush(stdout);
		pids[k] = fork();
		if (pids[k] == 0) {
			close(fds[k][0]);
			store *cs = open_db(path);
			ann_options o = {.annotator = names[k], .overlap = 2, .seed = (uint64_t)k, .retries = -1,
					 .order = ANN_ORDER_RANDOM};
			ann_session *s = ann_session_new(cs, &o);
			long made = 0, errors = 0;
			if (ann_session_load(s) == ANN_OK) {
				while (ann_session_current(s)) {
					if (ann_session_label(s, made % 2 ? ANN_LEFT : ANN_RIGHT, 1) == ANN_OK)
						made++;
					else
						errors++;
					if (errors > 5)
						break;
				}
			} else {
				errors++;
			}
			char buf[64];
			int len = snprintf(buf, sizeof buf, "%ld %ld", made, errors);
			if (write(fds[k][1], buf, (size_t)len) != len)
				_exit(3);
			ann_session_free(s);
			store_free(cs);
			_exit(0);
		}
		close(fds[k][1]);
	}
	long made[2] = {0, 0}, errors[2] = {0, 0};
	for (int k = 0; k < 2; k++) {
		char buf[64] = {0};
		ssize_t r = read(fds[k][0], buf, sizeof buf - 1);
		close(fds[k][0]);
		int status = 0;
		waitpid(pids[k], &status, 0);
		if (r > 0)
			sscanf(buf, "%ld %ld", &made[k], &errors[k]);
		TAP_OK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "annotator %s exited cleanly", names[k]);
	}
	TAP_IS_INT(errors[0] + errors[1], 0, "no errors while labeling at the same time");
	st = open_db(path);
	TAP_IS_INT(count_votes(st, "p1", NULL), made[0], "every label of p1 is stored (%ld)", made[0]);
	TAP_IS_INT(count_votes(st, "p2", NULL), made[1], "every label of p2 is stored (%ld)", made[1]);
	TAP_IS_INT(made[0] + made[1], 360, "with overlap 2 both labeled all 180 pairs");
	store_free(st);
	free(path);
}

/* Notes belong to the item they were written on: undo does not carry the
 * note of the item left to the item gone back to, and brings back the note
 * of the undone label for editing. */
static void test_notes(void)
{
	char *path = new_db();
	store *st = open_db(path);
	fill(st, 3, 2, "n", NULL); /* 3 pairs */
	ann_session *s = open_session(st, "nora", ANN_MODE_PAIR, 1);
	const ann_item *it = ann_session_current(s);
	int64_t p1 = it->prompt_id;
	ann_session_set_note(s, "note of item 1");
	TAP_IS_INT(ann_session_label(s, ANN_LEFT, 10), ANN_OK, "item 1 labeled with its note");
	TAP_OK(ann_session_note(s) == NULL, "item 2 starts without a note");
	ann_session_set_note(s, "note of item 2");
	TAP_IS_STR(ann_session_note(s), "note of item 2", "note written on item 2");
	TAP_IS_INT(ann_session_undo(s), ANN_OK, "undo goes back to item 1");
	it = ann_session_current(s);
	TAP_OK(it && it->prompt_id == p1, "item 1 on screen again");
	TAP_IS_STR(ann_session_note(s), "note of item 1", "undo brings back item 1's stored note to edit");
	ann_session_set_note(s, "item 1, edited");
	TAP_IS_INT(ann_session_label(s, ANN_RIGHT, 10), ANN_OK, "item 1 labeled again");
	TAP_IS_STR(ann_session_note(s), "note of item 2", "item 2 still has its own note");
	TAP_IS_INT(ann_session_label(s, ANN_LEFT, 10), ANN_OK, "item 2 labeled");
	votes vs;
	TAP_IS_INT(count_votes(st, "nora", &vs), 2, "two labels stored");
	TAP_IS_STR(vs.v[0].rationale, "item 1, edited", "item 1's note went to item 1");
	TAP_IS_STR(vs.v[1].rationale, "note of item 2", "item 2's note went to item 2");
	ann_session_set_note(s, "");
	TAP_OK(ann_session_note(s) == NULL, "an empty note clears it");
	TAP_IS_INT(ann_session_label(s, ANN_TIE, 10), ANN_OK, "item 3 labeled");
	count_votes(st, "nora", &vs);
	TAP_IS_STR(vs.v[2].rationale, "", "no note on item 3");
	ann_session_free(s);
	store_free(st);
	free(path);
	/* review: the reviewer's own stored note comes back to edit (one pair) */
	path = new_db();
	st = open_db(path);
	fill(st, 1, 2, "r", NULL);
	ann_session *r1 = open_session(st, "rev1", ANN_MODE_PAIR, 2), *r2 = open_session(st, "rev2", ANN_MODE_PAIR, 2);
	ann_session_set_note(r1, "rev1's reason");
	TAP_IS_INT(ann_session_label(r1, ANN_LEFT, 10), ANN_OK, "rev1 labels the pair with a note");
	TAP_IS_INT(ann_session_label(r2, ANN_RIGHT, 10), ANN_OK, "rev2 disagrees");
	ann_session_free(r1);
	ann_session_free(r2);
	s = open_session(st, "rev1", ANN_MODE_REVIEW, 1);
	TAP_OK(ann_session_current(s) != NULL, "review shows the disputed pair");
	TAP_IS_STR(ann_session_note(s), "rev1's reason", "review: the reviewer's stored note is there to edit");
	ann_session_free(s);
	store_free(st);
	free(path);
}

/* A label that finds the database locked is kept and retried, never lost:
 * another handle holds the write lock (BEGIN IMMEDIATE), the session does
 * not wait (busy timeout 0, no retries). */
static void test_locked(void)
{
	char *path = new_db();
	store *st = open_db(path), *other = open_db(path);
	fill(st, 3, 2, "l", NULL);
	ann_session *s = open_session(st, "lock", ANN_MODE_PAIR, 1);
	ann_session_set_retries(s, 0);
	store_set_busy_timeout(st, 0);
	const ann_item *it = ann_session_current(s);
	int64_t p1 = it->prompt_id, left = it->cands[0].id;
	must(store_begin(other), other, "the other writer's lock");
	TAP_IS_INT(ann_session_label(s, ANN_LEFT, 100), ANN_EBUSY, "label on a locked database: busy");
	TAP_IS_INT(ann_session_pending(s), ANN_LEFT + 1, "the label waits");
	it = ann_session_current(s);
	TAP_OK(it && it->prompt_id == p1, "the item stays on screen");
	TAP_IS_INT(ann_session_label(s, ANN_RIGHT, 120), ANN_EBUSY, "a second key while locked: still busy");
	TAP_IS_INT(ann_session_pending(s), ANN_RIGHT + 1, "the new label replaces the waiting one");
	TAP_IS_INT(ann_session_undo(s), ANN_EBUSY, "undo refused while a label waits");
	TAP_IS_INT(ann_session_search(s, "zebra"), ANN_EBUSY, "search refused while a label waits");
	TAP_IS_INT(ann_session_retry(s), ANN_EBUSY, "retry while still locked: busy");
	TAP_IS_INT(ann_session_pending(s), ANN_RIGHT + 1, "still waiting");
	TAP_IS_INT(count_votes(other, "lock", NULL), 0, "nothing stored yet");
	must(store_commit(other), other, "the other writer's commit");
	TAP_IS_INT(ann_session_retry(s), ANN_OK, "retry once the lock is gone: stored");
	TAP_IS_INT(ann_session_pending(s), 0, "nothing waits");
	votes vs;
	TAP_IS_INT(count_votes(st, "lock", &vs), 1, "one label stored");
	TAP_OK(vs.v[0].prompt_id == p1 && !strcmp(vs.v[0].verdict, left == vs.v[0].a ? "b" : "a"),
	       "the waiting label (right) stored on its item");
	TAP_IS_INT(vs.v[0].duration_ms, 120, "with its decision time");
	it = ann_session_current(s);
	TAP_OK(it && it->prompt_id != p1, "moved on to the next item");
	/* skip, and giving a waiting label up */
	must(store_begin(other), other, "lock again");
	TAP_IS_INT(ann_session_skip(s, 5), ANN_EBUSY, "skip on a locked database: busy");
	TAP_IS_INT(ann_session_pending(s), ANN_SKIP + 1, "the skip waits");
	ann_session_cancel_pending(s);
	TAP_IS_INT(ann_session_pending(s), 0, "cancelled");
	TAP_IS_INT(ann_session_retry(s), ANN_OK, "retry with nothing waiting: nothing to do");
	must(store_commit(other), other, "commit");
	TAP_IS_INT(count_votes(st, "lock", NULL), 1, "a cancelled skip stores nothing");
	ann_session_free(s);
	store_free(other);
	store_free(st);
	free(path);
}

/* --strength: a left/right verdict with its confidence; other labels none. */
static void test_strength(void)
{
	char *path = new_db();
	store *st = open_db(path);
	fill(st, 4, 2, "g", NULL);
	ann_session *s = open_session(st, "gus", ANN_MODE_PAIR, 1);
	TAP_IS_INT(ann_session_label_strength(s, ANN_LEFT, ANN_CONF_MUCH, 10), ANN_OK, "left much better");
	TAP_IS_INT(ann_session_label_strength(s, ANN_RIGHT, ANN_CONF_SLIGHTLY, 10), ANN_OK, "right slightly better");
	TAP_IS_INT(ann_session_label_strength(s, ANN_TIE, ANN_CONF_MUCH, 10), ANN_OK, "a tie takes no strength");
	TAP_IS_INT(ann_session_label_strength(s, ANN_LEFT, 1.5, 10), ANN_EINVAL, "a strength outside [0, 1] refused");
	TAP_IS_INT(ann_session_label(s, ANN_LEFT, 10), ANN_OK, "a plain label");
	votes vs;
	TAP_IS_INT(count_votes(st, "gus", &vs), 4, "four labels");
	TAP_NEAR(vs.v[0].confidence, 1.0, 0, "much better stored as confidence 1");
	TAP_NEAR(vs.v[1].confidence, 0.75, 0, "slightly better stored as confidence 0.75");
	TAP_OK(isnan(vs.v[2].confidence) && isnan(vs.v[3].confidence), "tie and plain label: no confidence");
	TAP_IS_INT(ann_session_undo(s), ANN_OK, "undo");
	TAP_IS_INT(ann_session_undo(s), ANN_OK, "undo");
	TAP_IS_INT(ann_session_undo(s), ANN_OK, "undo the slightly-better label");
	TAP_IS_INT(count_votes(st, "gus", NULL), 1, "one label left");
	ann_session_free(s);
	store_free(st);
	free(path);
}


/* ---- uncertain order and gold items ---------------------------------------- */

/* A judge verdict on pair (a, b) of prompt p, flagged inconsistent or not. */
static void add_judge(store *st, const char *who, int64_t p, int64_t a, int64_t b, const char *v, int inconsistent)
{
	store_annotator an = {.kind = "judge", .name = who, .provider = "test", .model = who, .template_hash = "t",
			      .params_json = "{}"};
	int64_t id;
	must(store_annotator_id(st, &an, &id), st, "annotator");
	store_comparison c = {.prompt_id = p, .completion_a = a, .completion_b = b, .annotator_id = id,
			      .verdict = v, .confidence = NAN, .duration_ms = -1, .inconsistent = inconsistent};
	must(store_comparison_add(st, &c, NULL, NULL), st, "comparison");
}

static int doubt_cb(void *ud, const store_pair_doubt *d)
{
	int *v = ud; /* [n, then per doubt: prompt index offset, inconsistent, disagree] */
	v[1 + 3 * v[0]] = (int)d->prompt_id;
	v[2 + 3 * v[0]] = d->inconsistent;
	v[3 + 3 * v[0]] = d->judges_disagree;
	v[0]++;
	return 0;
}

static int margin_seen_cb(void *ud, const store_margin *m)
{
	double *v = ud; /* count, then the margins in order */
	if (v[0] < 3)
		v[1 + (int)v[0]] = m->margin;
	v[0]++;
	return m->completion_a < m->completion_b ? 0 : 1;
}

static void test_uncertain(void)
{
	char *path = new_db();
	store *st = open_db(path);
	fill(st, 8, 2, "u", NULL);
	pairs ps = {0};
	must(store_queue_foreach(st, NULL, pair_cb, &ps), st, "queue");
	TAP_IS_INT(ps.n, 8, "uncertain: 8 pairs");
	const store_pair_ref *P = ps.p;
	/* P2: inconsistent (and a second judge); P4: inconsistent; P1: two
	 * judges disagree; P5: two judges agree; margins on P0, P1, P3, P5 */
	add_judge(st, "j1", P[2].prompt_id, P[2].completion_a, P[2].completion_b, "tie", 1);
	add_judge(st, "j2", P[2].prompt_id, P[2].completion_a, P[2].completion_b, "a", 0);
	add_judge(st, "j1", P[4].prompt_id, P[4].completion_a, P[4].completion_b, "tie", 1);
	add_judge(st, "j1", P[1].prompt_id, P[1].completion_a, P[1].completion_b, "a", 0);
	add_judge(st, "j2", P[1].prompt_id, P[1].completion_a, P[1].completion_b, "b", 0);
	add_judge(st, "j1", P[5].prompt_id, P[5].completion_a, P[5].completion_b, "b", 0);
	add_judge(st, "j2", P[5].prompt_id, P[5].completion_a, P[5].completion_b, "b", 0);
	int dv[1 + 3 * 8] = {0};
	must(store_judge_doubts_foreach(st, doubt_cb, dv), st, "doubts");
	TAP_IS_INT(dv[0], 3, "doubts: three pairs");
	TAP_OK(dv[1] == (int)P[1].prompt_id && dv[2] == 0 && dv[3] == 1, "doubts: P1 judges disagree");
	TAP_OK(dv[4] == (int)P[2].prompt_id && dv[5] == 1, "doubts: P2 inconsistent");
	TAP_OK(dv[7] == (int)P[4].prompt_id && dv[8] == 1 && dv[9] == 0, "doubts: P4 inconsistent only");

	ann_options o = {.annotator = "unsure", .mode = ANN_MODE_PAIR, .order = ANN_ORDER_UNCERTAIN, .overlap = 1,
			 .seed = 3, .retries = -1};
	ann_session *s = ann_session_new(st, &o);
	TAP_IS_INT(ann_session_load(s), ANN_OK, "uncertain: load");
	size_t nq = 0;
	store_pair_ref *qp = ann_session_queue_pairs(s, &nq);
	TAP_IS_INT((int)nq, 8, "uncertain: the queue's pairs for margins");
	free(qp);
	/* P0 given in the other order (the sign flips; |margin| counts) */
	ann_margin m[] = {
		{P[0].completion_b, P[0].completion_a, 0.1},
		{P[1].completion_a, P[1].completion_b, 0.01},
		{P[3].completion_a, P[3].completion_b, -0.5},
		{P[5].completion_a, P[5].completion_b, 2.0},
		{P[6].completion_a, P[6].completion_b, 0.5},
	};
	TAP_IS_INT(ann_session_set_margins(s, m, 5), ANN_OK, "uncertain: margins");
	/* inconsistent (queue order), disagreeing judges, then |margin| (ties in
	 * queue order), then the rest */
	int want[] = {2, 4, 1, 0, 3, 6, 5, 7};
	int ok = 1;
	for (int i = 0; i < 8; i++) {
		const ann_item *it = ann_session_current(s);
		if (!it || it->prompt_id != P[want[i]].prompt_id) {
			ok = 0;
			tap_diag("position %d: prompt %lld, want %lld", i, it ? (long long)it->prompt_id : -1LL,
				 (long long)P[want[i]].prompt_id);
		}
		if (!it || ann_session_label(s, ANN_LEFT, 100) != ANN_OK)
			break;
		if (i == 0)
			TAP_IS_INT(ann_session_set_margins(s, m, 5), ANN_EINVAL, "uncertain: margins after a label");
	}
	TAP_OK(ok, "uncertain: the exact order");
	TAP_OK(ann_session_current(s) == NULL, "uncertain: done");
	ann_session_free(s);

	/* without margins: the judge tiers, then the queue order */
	ann_options o2 = o;
	o2.annotator = "unsure2";
	o2.overlap = 2;
	s = ann_session_new(st, &o2);
	TAP_IS_INT(ann_session_load(s), ANN_OK, "uncertain, no margins: load");
	int want2[] = {2, 4, 1, 0, 3, 5, 6, 7};
	ok = 1;
	for (int i = 0; i < 8; i++) {
		const ann_item *it = ann_session_current(s);
		if (!it || it->prompt_id != P[want2[i]].prompt_id)
			ok = 0;
		if (!it || ann_session_skip(s, -1) != ANN_OK)
			break;
	}
	TAP_OK(ok, "uncertain, no margins: judge doubts first, then the queue order");
	ann_session_free(s);

	/* the margin cache: either order, the sign follows */
	store_margin_key k = {"pol", "ref", "tok", P[0].completion_a, P[0].completion_b};
	double mv = 0;
	TAP_IS_INT(store_margin_get(st, &k, &mv), STORE_ENOTFOUND, "margin cache: a miss");
	must(store_margin_put(st, &k, 1.25), st, "margin put");
	TAP_IS_INT(store_margin_get(st, &k, &mv), STORE_OK, "margin cache: a hit");
	TAP_NEAR(mv, 1.25, 0, "margin cache: the value");
	store_margin_key r = {"pol", "ref", "tok", P[0].completion_b, P[0].completion_a};
	must(store_margin_get(st, &r, &mv), st, "margin get reversed");
	TAP_NEAR(mv, -1.25, 0, "margin cache: the other order flips the sign");
	store_margin_key r2 = {"pol", "ref", "tok", P[1].completion_b, P[1].completion_a};
	must(store_margin_put(st, &r2, 0.5), st, "margin put reversed");
	double seen[4] = {0};
	must(store_margins_foreach(st, &k, margin_seen_cb, seen), st, "margins foreach");
	TAP_OK(seen[0] == 2 && seen[1] == 1.25 && seen[2] == -0.5, "margin cache: one scan, stored as a over b (%g %g %g)",
	       seen[0], seen[1], seen[2]);
	k.tok_fp = "tok2";
	TAP_IS_INT(store_margin_get(st, &k, &mv), STORE_ENOTFOUND, "margin cache: keyed by the tokenization");
	store_free(st);
	free(path);
}

typedef struct gold_seen {
	int gold[64]; /* per position: 1 gold */
	int n;
	int64_t prompts[64];
} gold_seen;

static int gold_total_cb(void *ud, const store_gold *g)
{
	(void)g;
	(*(int *)ud)++;
	return 0;
}

static int score_cb(void *ud, const store_gold_score *g)
{
	long *v = ud; /* n, correct of annotator "g1" */
	if (!strcmp(g->annotator, "g1")) {
		v[0] = g->n;
		v[1] = g->correct;
	}
	return 0;
}

static int votes_n_cb(void *ud, const store_pair_votes *v)
{
	(void)v;
	(*(int *)ud)++;
	return 0;
}

/* Walk a gold session, labelling "left" throughout. */
static void walk_gold(store *st, const char *who, int overlap, gold_seen *g)
{
	ann_options o = {.annotator = who, .mode = ANN_MODE_PAIR, .overlap = overlap, .seed = 11, .retries = -1,
			 .gold_rate = 0.25};
	ann_session *s = ann_session_new(st, &o);
	if (ann_session_load(s) != ANN_OK) {
		printf("Bail out! load: %s\n", ann_session_errmsg(s));
		exit(1);
	}
	g->n = 0;
	const ann_item *it;
	while ((it = ann_session_current(s)) && g->n < 64) {
		g->gold[g->n] = ann_session_entry_is_gold(s, it->index);
		g->prompts[g->n++] = it->prompt_id;
		if (ann_session_label(s, ANN_LEFT, 10) != ANN_OK)
			break;
	}
	ann_session_free(s);
}

static void test_gold(void)
{
	char *path = new_db();
	store *st = open_db(path);
	fill(st, 12, 2, "n", NULL);
	int64_t g0 = 0;
	fill(st, 4, 2, "g", &g0);
	pairs ps = {0};
	must(store_queue_foreach(st, NULL, pair_cb, &ps), st, "queue");
	TAP_IS_INT(ps.n, 16, "gold: 16 pairs before marking");
	/* the gold answer: the second completion of each "g" prompt, and one
	 * normal label each on a gold pair and a normal pair by an import */
	for (int i = 12; i < 16; i++) {
		int created = 0;
		must(store_gold_add(st, ps.p[i].prompt_id, ps.p[i].completion_b, ps.p[i].completion_a, "gold.jsonl",
				    &created),
		     st, "gold add");
		TAP_OK(created, "gold: marked %d", i);
	}
	int created = 1;
	TAP_IS_INT(store_gold_add(st, ps.p[12].prompt_id, ps.p[12].completion_b, ps.p[12].completion_a, NULL, &created),
		   STORE_OK, "gold: marking again");
	TAP_IS_INT(created, 0, "gold: marking again adds nothing");
	TAP_IS_INT(store_gold_add(st, ps.p[12].prompt_id, ps.p[12].completion_a, ps.p[12].completion_b, NULL, NULL),
		   STORE_EINVAL, "gold: the other answer is refused");
	TAP_IS_INT(store_gold_add(st, ps.p[0].prompt_id, ps.p[0].completion_a, ps.p[12].completion_b, NULL, NULL),
		   STORE_EINVAL, "gold: completions of another prompt are refused");
	pairs q = {0};
	must(store_queue_foreach(st, NULL, pair_cb, &q), st, "queue");
	TAP_IS_INT(q.n, 12, "gold: gold pairs leave the normal queue");

	gold_seen a = {0}, b = {0};
	walk_gold(st, "g1", 1, &a);
	int ngold = 0, prefix_ok = 1;
	for (int i = 0; i < a.n; i++) {
		ngold += a.gold[i];
		/* any prefix of k entries holds k/4 gold items, give or take one */
		if (fabs(ngold - (i + 1) * 0.25) >= 1.0)
			prefix_ok = 0;
		if (a.gold[i] && a.prompts[i] < g0)
			prefix_ok = 0;
	}
	TAP_IS_INT(a.n - ngold, 12, "gold: every normal pair shown");
	TAP_OK(ngold >= 3 && ngold <= 4, "gold: %d gold items among %d at rate 0.25", ngold, a.n);
	TAP_OK(prefix_ok, "gold: mixed in at the rate throughout");
	/* another annotator with the same seed: the same positions; gold items
	 * are for everyone, whatever the overlap */
	walk_gold(st, "g2", 2, &b);
	TAP_IS_INT(b.n, a.n, "gold: same seed, same length");
	TAP_OK(!memcmp(a.gold, b.gold, sizeof a.gold), "gold: same seed, same positions");
	gold_seen c = {0};
	walk_gold(st, "g1", 1, &c);
	TAP_IS_INT(c.n, 0, "gold: labelled gold items are not shown again");

	/* scores: g1 chose "left" each time; compare with the stored verdicts */
	votes vs;
	count_votes(st, "g1", &vs);
	long want_correct = 0, want_n = 0;
	for (int i = 0; i < vs.n; i++)
		for (int j = 12; j < 16; j++)
			if (vs.v[i].a == ps.p[j].completion_a && vs.v[i].b == ps.p[j].completion_b) {
				want_n++;
				want_correct += !strcmp(vs.v[i].verdict, "b");
			}
	long sc[2] = {-1, -1};
	must(store_gold_scores_foreach(st, score_cb, sc), st, "scores");
	TAP_IS_INT(sc[0], want_n, "gold: g1's verdicts on gold items");
	TAP_IS_INT(sc[1], want_correct, "gold: g1's correct ones");
	/* gold labels stay out of pairs and agreement */
	long npairs = -1;
	must(store_pairs_count(st, NULL, NULL, 1, &npairs), st, "pairs");
	TAP_IS_INT(npairs, 12, "gold: exports hold the normal pairs only");
	int nvotes = 0;
	must(store_votes_foreach(st, votes_n_cb, &nvotes), st, "votes");
	TAP_IS_INT(nvotes, 12, "gold: agreement sees the normal pairs only");
	int total = 0;
	must(store_gold_foreach(st, gold_total_cb, &total), st, "gold foreach");
	TAP_IS_INT(total, 4, "gold: four items");
	store_free(st);
	free(path);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		printf("Bail out! mkdtemp\n");
		return 1;
	}
	test_rank_implied();
	test_left_right();
	test_pair_labels();
	test_notes();
	test_locked();
	test_strength();
	test_overlap();
	test_rank();
	test_review_and_judge();
	test_order_chunks_limit();
	test_filters();
	test_concurrent();
	test_uncertain();
	test_gold();
	char *cmd = xasprintf("rm -rf '%s'", dir);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", dir);
	free(cmd);
	return tap_done();
}

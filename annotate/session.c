/* session.c: the annotation session model (see session.h). No curses here. */
#include "config.h"
#include "annotate/session.h"
#include "util/rand.h"
#include "util/xmalloc.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum { Q_PENDING = 0, Q_DONE = 1, Q_GONE = 2 };

/* Queue entries read from the store at a time in sequential order. */
#define ANN_CHUNK 512


/* One queue entry: a pair (pair/review modes) or a prompt (rank mode, a = b = 0). */
typedef struct qent {
	int64_t prompt_id, a, b;
	unsigned char state;
	unsigned char gold; /* a gold item (ann_options.gold_rate) */
} qent;

/* A pair's place in the uncertain order (tier: 0 inconsistent judge, 1
 * judges disagree, 2 a known margin, 3 the rest). */
typedef struct doubt {
	int64_t a, b;
	int tier;
	double margin;
} doubt;

/* A copy of one stored comparison. */
typedef struct cmp {
	int64_t id, a, b, annotator_id, duration_ms;
	char *annotator, *kind, *verdict, *shown_first, *rationale, *created_at;
	double confidence;
	int inconsistent;
} cmp;

typedef struct cmp_list {
	cmp *v;
	size_t n, cap;
} cmp_list;

/* One undoable step: the queue entry, the comparisons it created and the
 * ones it replaced (review). */
typedef struct action {
	size_t qidx;
	int64_t *ids;
	size_t nids;
	cmp *restore;
	size_t nrestore;
	int64_t duration_ms;  /* counted into the rate, or -1 */
	int judged, agreed;
	char *note;           /* the note the step stored, or NULL */
} action;

/* A write that found the database locked, kept to be retried. */
typedef struct pending_write {
	int kind;            /* 0: none; W_LABEL, W_RANK or W_SKIP */
	int label;
	double confidence;   /* W_LABEL: NAN or the strength */
	size_t *order, n;    /* W_RANK */
	int64_t duration_ms;
	size_t qidx;         /* the queue entry it is for */
} pending_write;

enum { W_LABEL = 1, W_RANK, W_SKIP };

/* A note written for a queue entry and not stored yet. */
typedef struct pending_note {
	size_t qidx;
	char *text;
} pending_note;

struct ann_session {
	store *st;
	ann_options o;
	char *annotator, *split, *source;
	int64_t annotator_id;
	char err[512];

	qent *q;
	size_t nq, capq;
	size_t pos;      /* current entry; nq when none */
	size_t npending, ndone;
	int64_t cursor;  /* last prompt id read from the store's queue */
	int complete;    /* the whole queue has been read */

	int have_item;
	ann_item item;
	cmp_list cmps;   /* comparisons of the current item's prompt */

	action *undo;
	size_t nundo, capundo;

	/* the pair on screen is claimed in the store (store_claim_try), so
	 * that concurrent sessions do not show it to more than the overlap */
	int64_t claim_a, claim_b;
	time_t claim_renewed;

	pending_note *notes; /* notes by queue entry, kept until that entry is labeled */
	size_t nnotes;
	pending_write pw;    /* a label waiting for the database */
	int64_t sum_ms;
	long ntimed;
	long judge_total, judge_agree;
	ann_verdict *jv;
	size_t njv;

	/* gold items not yet labelled by this annotator (seeded order), the
	 * next to mix in, and the phase of the schedule; no_inject while a
	 * whole queue is read to be ordered first */
	store_pair_ref *gold;
	size_t ngold, gold_next;
	double gold_phase;
	int no_inject;
	doubt *doubts;       /* uncertain order: judge doubts, sorted by (a, b) */
	size_t ndoubts;
	ann_margin *margins; /* uncertain order: margins, sorted by (a, b) with a < b */
	size_t nmargins;
};

/* ---- helpers ------------------------------------------------------------- */

static int fail(ann_session *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(ann_session *s, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof s->err, fmt, ap);
	va_end(ap);
	return code;
}

/* Map a store error to ours, keeping the store's message. */
static int store_fail(ann_session *s, int rc, const char *what)
{
	fail(s, rc == STORE_EBUSY ? ANN_EBUSY : ANN_ERR, "%s: %s", what, store_errmsg(s->st));
	return rc == STORE_EBUSY ? ANN_EBUSY : ANN_ERR;
}

uint64_t ann_seed_from_string(const char *str)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)(str ? str : ""); *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ull;
	}
	return h;
}

int ann_left_is_a(uint64_t seed, int64_t prompt_id, int64_t a, int64_t b)
{
	uint64_t x = seed;
	uint64_t h = util_splitmix64(&x);
	x = h ^ (uint64_t)prompt_id;
	h = util_splitmix64(&x);
	x = h ^ (uint64_t)(a < b ? a : b);
	h = util_splitmix64(&x);
	x = h ^ (uint64_t)(a < b ? b : a);
	h = util_splitmix64(&x);
	return (int)(h >> 63);
}

size_t ann_rank_implied(const size_t *order, size_t n, size_t *better, size_t *worse)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++) {
			better[k] = order[i];
			worse[k] = order[j];
			k++;
		}
	return k;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void cmp_free(cmp *c)
{
	free(c->annotator);
	free(c->kind);
	free(c->verdict);
	free(c->shown_first);
	free(c->rationale);
	free(c->created_at);
}

static void cmp_list_clear(cmp_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		cmp_free(&l->v[i]);
	l->n = 0;
}

static int cmp_collect(void *ud, const store_comparison *c)
{
	cmp_list *l = ud;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 8;
		l->v = xreallocarray(l->v, l->cap, sizeof *l->v);
	}
	cmp *d = &l->v[l->n++];
	memset(d, 0, sizeof *d);
	d->id = c->id;
	d->a = c->completion_a;
	d->b = c->completion_b;
	d->annotator_id = c->annotator_id;
	d->duration_ms = c->duration_ms;
	d->annotator = xstrdup(c->annotator ? c->annotator : "?");
	d->kind = xstrdup(c->annotator_kind ? c->annotator_kind : "?");
	d->verdict = xstrdup(c->verdict ? c->verdict : "?");
	d->shown_first = xstrdup(c->shown_first);
	d->rationale = xstrdup(c->rationale);
	d->created_at = xstrdup(c->created_at);
	d->confidence = c->confidence;
	d->inconsistent = c->inconsistent;
	return 0;
}

static int load_cmps(ann_session *s, int64_t prompt_id)
{
	cmp_list_clear(&s->cmps);
	int rc = store_comparisons_foreach(s->st, prompt_id, cmp_collect, &s->cmps);
	if (rc != STORE_OK)
		return store_fail(s, rc, "reading comparisons");
	return ANN_OK;
}

static int is_human_vote(const cmp *c)
{
	return !strcmp(c->kind, "human") && strcmp(c->verdict, "skip") != 0;
}

/* The store verdict v ("a", "b", ...) of pair (a, b) as seen with `left` shown left. */
static const char *screen_verdict(const char *v, int64_t a, int64_t left)
{
	if (!strcmp(v, "a"))
		return left == a ? "left" : "right";
	if (!strcmp(v, "b"))
		return left == a ? "right" : "left";
	if (!strcmp(v, "both_bad"))
		return "both bad";
	return v;
}

static void verdicts_free(ann_verdict *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].annotator);
		free(v[i].kind);
		free(v[i].verdict);
		free(v[i].rationale);
	}
	free(v);
}

static void item_clear(ann_item *it)
{
	free(it->split);
	free(it->source);
	for (size_t i = 0; i < it->nturns; i++) {
		free(it->turns[i].role);
		free(it->turns[i].content);
	}
	free(it->turns);
	for (size_t i = 0; i < it->ncands; i++) {
		free(it->cands[i].text);
		free(it->cands[i].generator);
	}
	free(it->cands);
	verdicts_free(it->verdicts, it->nverdicts);
	memset(it, 0, sizeof *it);
}

/* The claim of the pair on screen, for store_claim_*. */
static store_claim claim_of(const ann_session *s, int64_t a, int64_t b)
{
	return (store_claim){a, b, "human", s->annotator, ANN_CLAIM_TTL_S};
}

/* Let go of the claim on the pair that was on screen (a label took its
 * place, or the session moved on). Failures only shorten nothing: the
 * claim expires by itself. */
static void release_claim(ann_session *s)
{
	if (!s->claim_a)
		return;
	store_claim c = claim_of(s, s->claim_a, s->claim_b);
	store_claim_release(s->st, &c);
	s->claim_a = s->claim_b = 0;
}

/* Claim pair (a, b) before showing it: 1 when this session may show it,
 * 0 when concurrent sessions hold it up to the overlap. A store that
 * cannot take the claim (busy, read-only) does not stop the work. */
static int claim_pair(ann_session *s, int64_t a, int64_t b)
{
	store_claim c = claim_of(s, a, b);
	int got = 0;
	if (store_claim_try(s->st, &c, s->o.overlap, &got) != STORE_OK)
		return 1;
	if (got) {
		s->claim_a = a;
		s->claim_b = b;
		s->claim_renewed = time(NULL);
	}
	return got;
}

static void drop_item(ann_session *s)
{
	if (s->have_item)
		item_clear(&s->item);
	s->have_item = 0;
	release_claim(s);
}

static void set_state(ann_session *s, size_t i, unsigned char st)
{
	s->ndone += (st == Q_DONE) - (s->q[i].state == Q_DONE);
	if (s->q[i].state == Q_PENDING && st != Q_PENDING)
		s->npending--;
	else if (s->q[i].state != Q_PENDING && st == Q_PENDING)
		s->npending++;
	s->q[i].state = st;
}

static int load_chunk(ann_session *s, size_t want);

/* Move to the first pending entry at or after `from`, reading more of the
 * queue when the loaded part is exhausted, then wrapping around. */
static void seek_pending(ann_session *s, size_t from)
{
	drop_item(s);
	for (size_t i = from; ; i++) {
		if (i >= s->nq) {
			if (s->complete)
				break;
			size_t before = s->nq;
			if (load_chunk(s, ANN_CHUNK) < 0 || s->nq == before)
				break;
		}
		if (s->q[i].state == Q_PENDING) {
			s->pos = i;
			return;
		}
	}
	for (size_t i = 0; i < from && i < s->nq; i++)
		if (s->q[i].state == Q_PENDING) {
			s->pos = i;
			return;
		}
	s->pos = s->nq;
}

/* ---- life cycle --------------------------------------------------------------- */

ann_session *ann_session_new(store *st, const ann_options *o)
{
	ann_session *s = xcalloc(1, sizeof *s);
	s->st = st;
	s->o = *o;
	s->annotator = xstrdup(o->annotator);
	s->split = xstrdup(o->split);
	s->source = xstrdup(o->source);
	s->o.annotator = s->annotator;
	s->o.split = s->split;
	s->o.source = s->source;
	if (s->o.overlap < 1)
		s->o.overlap = 1;
	if (s->o.retries < 0)
		s->o.retries = 50;
	return s;
}

static void action_free(action *a)
{
	free(a->note);
	free(a->ids);
	for (size_t i = 0; i < a->nrestore; i++)
		cmp_free(&a->restore[i]);
	free(a->restore);
}

void ann_session_free(ann_session *s)
{
	if (!s)
		return;
	drop_item(s);
	if (s->annotator && *s->annotator)
		store_claims_release_all(s->st, s->annotator);
	cmp_list_clear(&s->cmps);
	free(s->cmps.v);
	for (size_t i = 0; i < s->nundo; i++)
		action_free(&s->undo[i]);
	free(s->undo);
	verdicts_free(s->jv, s->njv);
	free(s->q);
	for (size_t i = 0; i < s->nnotes; i++)
		free(s->notes[i].text);
	free(s->notes);
	free(s->pw.order);
	free(s->gold);
	free(s->doubts);
	free(s->margins);
	free(s->annotator);
	free(s->split);
	free(s->source);
	free(s);
}

const char *ann_session_errmsg(const ann_session *s)
{
	return s->err;
}

/* ---- loading the queue ----------------------------------------------------------- */

typedef struct load_ctx {
	ann_session *s;
	size_t want;   /* stop at the first new prompt after this many entries */
	size_t added;
	int hit_limit;
} load_ctx;

static void q_append(ann_session *s, qent e)
{
	if (s->nq == s->capq) {
		s->capq = s->capq ? 2 * s->capq : 256;
		s->q = xreallocarray(s->q, s->capq, sizeof *s->q);
	}
	s->q[s->nq++] = e;
	s->npending += e.state == Q_PENDING;
	s->ndone += e.state == Q_DONE;
}

/* Whether queue position k is one for a gold item: positions where
 * k * rate + phase crosses an integer, so that any run of n entries holds
 * n * rate gold items, give or take one. */
static int gold_due(const ann_session *s, size_t k)
{
	double r = s->o.gold_rate;
	return floor((double)(k + 1) * r + s->gold_phase) > floor((double)k * r + s->gold_phase);
}

/* Append the gold items due before the next entry. */
static void gold_inject(ann_session *s)
{
	while (s->gold_next < s->ngold && gold_due(s, s->nq)) {
		const store_pair_ref *g = &s->gold[s->gold_next++];
		q_append(s, (qent){g->prompt_id, g->completion_a, g->completion_b, Q_PENDING, 1});
	}
}

static void q_push(ann_session *s, int64_t p, int64_t a, int64_t b)
{
	if (!s->no_inject)
		gold_inject(s);
	q_append(s, (qent){p, a, b, Q_PENDING, 0});
}

static int load_pair_cb(void *ud, const store_pair_ref *p)
{
	load_ctx *c = ud;
	ann_session *s = c->s;
	int new_prompt = !s->nq || s->q[s->nq - 1].prompt_id != p->prompt_id;
	if (s->o.mode == ANN_MODE_RANK && !new_prompt)
		return 0;
	if (c->added >= c->want && new_prompt)
		return 1; /* a chunk ends between prompts, so the cursor is exact */
	if (s->o.limit > 0 && (long)s->nq >= s->o.limit) {
		c->hit_limit = 1;
		return 1;
	}
	if (s->o.mode == ANN_MODE_RANK)
		q_push(s, p->prompt_id, 0, 0);
	else
		q_push(s, p->prompt_id, p->completion_a, p->completion_b);
	c->added++;
	s->cursor = p->prompt_id;
	return 0;
}

/* Append up to about `want` more entries (whole prompts) to the queue. */
static int load_chunk(ann_session *s, size_t want)
{
	load_ctx c = {s, want, 0, 0};
	int rc;
	if (s->complete)
		return ANN_OK;
	if (s->o.mode == ANN_MODE_REVIEW) {
		c.want = (size_t)-1;
		rc = store_disagreements_foreach(s->st, s->split, load_pair_cb, &c);
	} else {
		store_queue_filter f = {
			.split = s->split,
			.source = s->source,
			.annotator_id = s->annotator_id,
			.include_labeled = s->o.overlap > 1,
			.max_annotations = s->o.overlap,
			.after_prompt_id = s->cursor,
			.assigned_to = s->annotator, /* their pairs, once dpo-db assign ran */
		};
		rc = store_queue_foreach(s->st, &f, load_pair_cb, &c);
	}
	if (rc < 0)
		return store_fail(s, rc, "reading the work queue");
	if (rc == 0 || c.hit_limit)
		s->complete = 1;
	return ANN_OK;
}

/* ---- gold items and the uncertain order ------------------------------------------ */

typedef struct gold_list {
	ann_session *s;
	store_pair_ref *v;
	size_t n, cap;
} gold_list;

typedef struct mine_ctx {
	const ann_session *s;
	const store_gold *g;
	long *mine;
} mine_ctx;

static int count_mine(void *ud, const store_comparison *c)
{
	mine_ctx *m = ud;
	if (c->annotator_id == m->s->annotator_id && c->completion_a == m->g->completion_a &&
	    c->completion_b == m->g->completion_b)
		(*m->mine)++;
	return 0;
}

/* Keep gold items this annotator has not labelled (or skipped). */
static int gold_collect(void *ud, const store_gold *g)
{
	gold_list *l = ud;
	long mine = 0;
	int rc = store_comparisons_foreach(l->s->st, g->prompt_id, count_mine, &(mine_ctx){l->s, g, &mine});
	if (rc < 0)
		return rc;
	if (mine)
		return 0;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->v = xreallocarray(l->v, l->cap, sizeof *l->v);
	}
	l->v[l->n++] = (store_pair_ref){g->prompt_id, g->completion_a, g->completion_b};
	return 0;
}

static int doubt_cmp(const void *x, const void *y)
{
	const doubt *p = x, *q = y;
	if (p->a != q->a)
		return p->a < q->a ? -1 : 1;
	return p->b < q->b ? -1 : p->b > q->b;
}

static int doubt_collect(void *ud, const store_pair_doubt *d)
{
	ann_session *s = ud;
	s->doubts = xreallocarray(s->doubts, s->ndoubts + 1, sizeof *s->doubts);
	s->doubts[s->ndoubts++] = (doubt){d->completion_a, d->completion_b, d->inconsistent ? 0 : 1, 0};
	return 0;
}

static int margin_cmp(const void *x, const void *y)
{
	const ann_margin *p = x, *q = y;
	if (p->completion_a != q->completion_a)
		return p->completion_a < q->completion_a ? -1 : 1;
	return p->completion_b < q->completion_b ? -1 : p->completion_b > q->completion_b;
}

/* A queue entry with its sort key for the uncertain order. */
typedef struct keyed {
	qent e;
	size_t idx;
	int tier;
	double absm;
} keyed;

static int keyed_cmp(const void *x, const void *y)
{
	const keyed *p = x, *q = y;
	if (p->tier != q->tier)
		return p->tier < q->tier ? -1 : 1;
	if (p->tier == 2 && p->absm != q->absm)
		return p->absm < q->absm ? -1 : 1;
	return p->idx < q->idx ? -1 : p->idx > q->idx;
}

/* The tier (and |margin|) of entry e in the uncertain order. */
static void key_of(const ann_session *s, keyed *k)
{
	doubt probe = {k->e.a, k->e.b, 0, 0};
	const doubt *d = s->ndoubts ? bsearch(&probe, s->doubts, s->ndoubts, sizeof *d, doubt_cmp) : NULL;
	ann_margin mp = {k->e.a, k->e.b, 0};
	const ann_margin *m = s->nmargins ? bsearch(&mp, s->margins, s->nmargins, sizeof *m, margin_cmp) : NULL;
	k->tier = d ? d->tier : m ? 2 : 3;
	k->absm = m ? fabs(m->margin) : 0;
}

/* Order a wholly read queue (random or uncertain), then mix in the gold
 * items. Gold entries already in it are taken out first (and mixed in
 * again in the same order), so that this can run again with new margins. */
static void arrange(ann_session *s)
{
	size_t n = 0;
	for (size_t i = 0; i < s->nq; i++)
		if (!s->q[i].gold)
			s->q[n++] = s->q[i];
	if (s->o.order == ANN_ORDER_RANDOM && n > 1) {
		uint64_t x = s->o.seed ^ 0x5eed5eed5eedull;
		for (size_t i = n - 1; i > 0; i--) {
			size_t j = (size_t)(util_splitmix64(&x) % (i + 1));
			qent t = s->q[i];
			s->q[i] = s->q[j];
			s->q[j] = t;
		}
	} else if (s->o.order == ANN_ORDER_UNCERTAIN && n > 1) {
		keyed *k = xcalloc(n, sizeof *k);
		for (size_t i = 0; i < n; i++) {
			k[i].e = s->q[i];
			k[i].idx = i;
			key_of(s, &k[i]);
		}
		qsort(k, n, sizeof *k, keyed_cmp);
		for (size_t i = 0; i < n; i++)
			s->q[i] = k[i].e;
		free(k);
	}
	qent *normal = xmalloc((n ? n : 1) * sizeof *s->q);
	memcpy(normal, s->q, n * sizeof *s->q);
	s->nq = s->npending = s->ndone = 0;
	s->gold_next = 0;
	for (size_t i = 0; i < n; i++) {
		gold_inject(s);
		q_append(s, normal[i]);
	}
	free(normal);
}

store_pair_ref *ann_session_queue_pairs(const ann_session *s, size_t *n)
{
	store_pair_ref *v = xcalloc(s->nq ? s->nq : 1, sizeof *v);
	size_t k = 0;
	for (size_t i = 0; i < s->nq; i++)
		if (!s->q[i].gold && s->q[i].a)
			v[k++] = (store_pair_ref){s->q[i].prompt_id, s->q[i].a, s->q[i].b};
	*n = k;
	return v;
}

int ann_session_set_margins(ann_session *s, const ann_margin *m, size_t n)
{
	s->err[0] = 0;
	if (s->ndone || s->nundo || s->pw.kind)
		return fail(s, ANN_EINVAL, "margins can only be set before the first label");
	free(s->margins);
	s->margins = xcalloc(n ? n : 1, sizeof *s->margins);
	for (size_t i = 0; i < n; i++) {
		ann_margin x = m[i];
		if (x.completion_a > x.completion_b) {
			int64_t t = x.completion_a;
			x.completion_a = x.completion_b;
			x.completion_b = t;
			x.margin = -x.margin;
		}
		s->margins[i] = x;
	}
	s->nmargins = n;
	if (n > 1)
		qsort(s->margins, n, sizeof *s->margins, margin_cmp);
	if (s->o.order == ANN_ORDER_UNCERTAIN && s->complete) {
		drop_item(s);
		arrange(s);
		seek_pending(s, 0);
	}
	return ANN_OK;
}

int ann_session_entry_is_gold(const ann_session *s, size_t index)
{
	return index < s->nq && s->q[index].gold;
}

int ann_session_load_more(ann_session *s, size_t chunk)
{
	s->err[0] = 0;
	int rc = load_chunk(s, chunk ? chunk : ANN_CHUNK);
	if (rc < 0)
		return rc;
	return s->complete ? 0 : 1;
}

/* Pair mode with a gold rate: the gold items this annotator has not
 * labelled, in a seeded order, and the schedule's phase. */
static int load_gold(ann_session *s)
{
	free(s->gold);
	s->gold = NULL;
	s->ngold = s->gold_next = 0;
	if (s->o.mode != ANN_MODE_PAIR || !(s->o.gold_rate > 0))
		return ANN_OK;
	gold_list l = {s, NULL, 0, 0};
	int rc = store_gold_foreach(s->st, gold_collect, &l);
	if (rc < 0) {
		free(l.v);
		return store_fail(s, rc, "reading the gold items");
	}
	uint64_t x = s->o.seed ^ 0x901d901d901dull;
	for (size_t i = l.n; i > 1; i--) {
		size_t j = (size_t)(util_splitmix64(&x) % i);
		store_pair_ref t = l.v[i - 1];
		l.v[i - 1] = l.v[j];
		l.v[j] = t;
	}
	s->gold = l.v;
	s->ngold = l.n;
	s->gold_phase = (double)(util_splitmix64(&x) >> 11) / 9007199254740992.0;
	return ANN_OK;
}

/* Uncertain order: the judges' doubts, sorted by pair. */
static int load_doubts(ann_session *s)
{
	free(s->doubts);
	s->doubts = NULL;
	s->ndoubts = 0;
	if (s->o.order != ANN_ORDER_UNCERTAIN)
		return ANN_OK;
	int rc = store_judge_doubts_foreach(s->st, doubt_collect, s);
	if (rc < 0)
		return store_fail(s, rc, "reading the judges' verdicts");
	if (s->ndoubts > 1)
		qsort(s->doubts, s->ndoubts, sizeof *s->doubts, doubt_cmp);
	return ANN_OK;
}

int ann_session_load(ann_session *s)
{
	int rc;
	s->err[0] = 0;
	if (!s->annotator || !*s->annotator)
		return fail(s, ANN_EINVAL, "no annotator name (use --annotator or set $USER)");
	if (s->o.mode != ANN_MODE_PAIR && s->o.mode != ANN_MODE_RANK && s->o.mode != ANN_MODE_REVIEW)
		return fail(s, ANN_EINVAL, "unknown mode %d", s->o.mode);
	store_annotator an = {.kind = "human", .name = s->annotator};
	for (int t = 0;; t++) {
		rc = store_annotator_id(s->st, &an, &s->annotator_id);
		if (rc != STORE_EBUSY || t >= s->o.retries)
			break;
		sleep_ms(20 + 10 * (t % 8));
	}
	if (rc != STORE_OK)
		return store_fail(s, rc, "registering the annotator");

	drop_item(s);
	s->nq = s->npending = s->ndone = 0;
	s->cursor = 0;
	s->complete = 0;
	if ((rc = load_gold(s)) < 0 || (rc = load_doubts(s)) < 0)
		return rc;
	/* a random or uncertain order needs the whole queue (gold items are
	 * mixed in once it is ordered); a sequential one is read in chunks as
	 * the annotator advances */
	s->no_inject = s->o.order != ANN_ORDER_SEQUENTIAL;
	rc = load_chunk(s, s->no_inject ? (size_t)-1 : ANN_CHUNK);
	if (rc < 0)
		return rc;
	if (s->no_inject)
		arrange(s);
	seek_pending(s, 0);
	return s->err[0] ? ANN_ERR : ANN_OK;
}

int ann_session_loaded_all(const ann_session *s)
{
	return s->complete;
}

/* ---- notes ---------------------------------------------------------------------- */

/* The index in s->notes of the note of queue entry q, or s->nnotes. */
static size_t note_find(const ann_session *s, size_t q)
{
	size_t i = 0;
	while (i < s->nnotes && s->notes[i].qidx != q)
		i++;
	return i;
}

/* Set (a copy of text) or, with NULL or "", remove the note of entry q. */
static void note_put(ann_session *s, size_t q, const char *text)
{
	size_t i = note_find(s, q);
	if (i < s->nnotes) {
		free(s->notes[i].text);
		s->notes[i] = s->notes[--s->nnotes];
	}
	if (!text || !*text)
		return;
	s->notes = xreallocarray(s->notes, s->nnotes + 1, sizeof *s->notes);
	s->notes[s->nnotes++] = (pending_note){q, xstrdup(text)};
}

/* The note of queue entry q, or NULL. */
static const char *note_of(const ann_session *s, size_t q)
{
	size_t i = note_find(s, q);
	return i < s->nnotes ? s->notes[i].text : NULL;
}

/* ---- fetching the current item ----------------------------------------------------- */

typedef struct prompt_copy {
	char *text, *messages_json, *source, *split;
} prompt_copy;

static int prompt_cb(void *ud, const store_prompt *p)
{
	prompt_copy *c = ud;
	c->text = xstrdup(p->text);
	c->messages_json = xstrdup(p->messages_json);
	c->source = xstrdup(p->source ? p->source : "");
	c->split = xstrdup(p->split ? p->split : "");
	return 0;
}

typedef struct cand_list {
	ann_cand *v;
	size_t n, cap;
} cand_list;

static int cand_cb(void *ud, const store_completion *c)
{
	cand_list *l = ud;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 4;
		l->v = xreallocarray(l->v, l->cap, sizeof *l->v);
	}
	l->v[l->n++] = (ann_cand){c->id, xstrdup(c->text ? c->text : ""),
				  xstrdup(c->generator ? c->generator : "")};
	return 0;
}

static void turns_from_prompt(ann_item *it, const prompt_copy *p)
{
	if (p->text || !p->messages_json) {
		it->turns = xcalloc(1, sizeof *it->turns);
		it->turns[0].role = xstrdup("user");
		it->turns[0].content = xstrdup(p->text ? p->text : "");
		it->nturns = 1;
		return;
	}
	cJSON *j = cJSON_Parse(p->messages_json);
	int n = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : 0;
	if (n <= 0) {
		it->turns = xcalloc(1, sizeof *it->turns);
		it->turns[0].role = xstrdup("conversation");
		it->turns[0].content = xstrdup(p->messages_json);
		it->nturns = 1;
		cJSON_Delete(j);
		return;
	}
	it->turns = xcalloc((size_t)n, sizeof *it->turns);
	cJSON *m;
	cJSON_ArrayForEach(m, j) {
		cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
		cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
		ann_turn *t = &it->turns[it->nturns++];
		t->role = xstrdup(cJSON_IsString(role) ? role->valuestring : "?");
		t->content = xstrdup(cJSON_IsString(content) ? content->valuestring : "");
	}
	cJSON_Delete(j);
}

/* Is entry e still worth showing, given the comparisons of its prompt and
 * its completions? */
static int pair_available(ann_session *s, const qent *e)
{
	size_t others = 0, votes = 0, mine = 0;
	int64_t last_vote = 0, my_id = 0;
	const char *first = NULL;
	int differ = 0;
	for (size_t i = 0; i < s->cmps.n; i++) {
		const cmp *c = &s->cmps.v[i];
		if (c->a != e->a || c->b != e->b)
			continue;
		if (c->annotator_id == s->annotator_id) {
			mine++;
			my_id = c->id;
		}
		if (!is_human_vote(c))
			continue;
		votes++;
		if (c->id > last_vote)
			last_vote = c->id;
		if (!first)
			first = c->verdict;
		else if (strcmp(first, c->verdict))
			differ = 1;
		if (c->annotator_id != s->annotator_id)
			others++;
	}
	if (s->o.mode == ANN_MODE_REVIEW)
		/* settled when this annotator's verdict is the latest human one */
		return differ && !(mine && my_id == last_vote);
	if (e->gold) /* every annotator is scored on it */
		return !mine;
	return !mine && others < (size_t)s->o.overlap;
}

static int rank_available(ann_session *s, const cand_list *cl)
{
	if (cl->n < 2)
		return 0;
	for (size_t i = 0; i < cl->n; i++)
		for (size_t j = i + 1; j < cl->n; j++) {
			int64_t a = cl->v[i].id < cl->v[j].id ? cl->v[i].id : cl->v[j].id;
			int64_t b = cl->v[i].id < cl->v[j].id ? cl->v[j].id : cl->v[i].id;
			qent e = {0, a, b, 0, 0};
			if (pair_available(s, &e))
				return 1;
		}
	return 0;
}

static ann_cand *take_cand(cand_list *cl, int64_t id)
{
	for (size_t i = 0; i < cl->n; i++)
		if (cl->v[i].id == id)
			return &cl->v[i];
	return NULL;
}

/* Fetch entry s->pos into s->item; 1 when shown, 0 when no longer
 * available, negative on error. */
static int fetch(ann_session *s)
{
	const qent *e = &s->q[s->pos];
	prompt_copy p = {0};
	cand_list cl = {0};
	ann_item *it = &s->item;
	int rc = store_prompt_get(s->st, e->prompt_id, prompt_cb, &p);
	if (rc == STORE_ENOTFOUND) {
		rc = 0;
		goto out;
	}
	if (rc != STORE_OK) {
		rc = store_fail(s, rc, "reading a prompt");
		goto out;
	}
	if (s->source && !e->gold && strcmp(p.source, s->source)) {
		rc = 0;
		goto out;
	}
	rc = store_completions_foreach(s->st, e->prompt_id, 0, cand_cb, &cl);
	if (rc != STORE_OK) {
		rc = store_fail(s, rc, "reading completions");
		goto out;
	}
	if ((rc = load_cmps(s, e->prompt_id)) < 0)
		goto out;

	memset(it, 0, sizeof *it);
	if (s->o.mode == ANN_MODE_RANK) {
		if (!rank_available(s, &cl)) {
			rc = 0;
			goto out;
		}
		/* a seeded shuffle of the K completions */
		uint64_t x = s->o.seed ^ ((uint64_t)e->prompt_id * 0x9e3779b97f4a7c15ull);
		for (size_t i = cl.n - 1; i > 0; i--) {
			size_t j = (size_t)(util_splitmix64(&x) % (i + 1));
			ann_cand t = cl.v[i];
			cl.v[i] = cl.v[j];
			cl.v[j] = t;
		}
		it->cands = cl.v;
		it->ncands = cl.n;
		cl.v = NULL;
		cl.n = 0;
	} else {
		ann_cand *ca = take_cand(&cl, e->a), *cb = take_cand(&cl, e->b);
		if (!ca || !cb || !pair_available(s, e) ||
		    (s->o.mode != ANN_MODE_REVIEW && !e->gold && !claim_pair(s, e->a, e->b))) {
			rc = 0;
			goto out;
		}
		int a_left = ann_left_is_a(s->o.seed, e->prompt_id, e->a, e->b);
		it->cands = xcalloc(2, sizeof *it->cands);
		it->cands[0] = a_left ? *ca : *cb;
		it->cands[1] = a_left ? *cb : *ca;
		ca->text = ca->generator = cb->text = cb->generator = NULL;
		it->ncands = 2;
		if (s->o.mode == ANN_MODE_REVIEW) {
			it->verdicts = xcalloc(s->cmps.n ? s->cmps.n : 1, sizeof *it->verdicts);
			for (size_t i = 0; i < s->cmps.n; i++) {
				const cmp *c = &s->cmps.v[i];
				if (c->a != e->a || c->b != e->b)
					continue;
				if (c->annotator_id == s->annotator_id && c->rationale && *c->rationale &&
				    !note_of(s, s->pos))
					note_put(s, s->pos, c->rationale); /* their stored note, to edit */
				ann_verdict *v = &it->verdicts[it->nverdicts++];
				v->annotator = xstrdup(c->annotator);
				v->kind = xstrdup(c->kind);
				v->verdict = xstrdup(screen_verdict(c->verdict, e->a, it->cands[0].id));
				v->rationale = xstrdup(c->rationale);
			}
		}
	}
	it->index = s->pos;
	it->prompt_id = e->prompt_id;
	it->split = p.split;
	it->source = p.source;
	p.split = p.source = NULL;
	turns_from_prompt(it, &p);
	s->have_item = 1;
	rc = 1;
out:
	if (rc != 1 && it->cands)
		item_clear(it);
	for (size_t i = 0; i < cl.n; i++) {
		free(cl.v[i].text);
		free(cl.v[i].generator);
	}
	free(cl.v);
	free(p.text);
	free(p.messages_json);
	free(p.source);
	free(p.split);
	return rc;
}

const ann_item *ann_session_current(ann_session *s)
{
	s->err[0] = 0;
	if (s->have_item && s->claim_a && time(NULL) - s->claim_renewed >= ANN_CLAIM_TTL_S / 4) {
		/* still on screen: keep the claim alive */
		store_claim c = claim_of(s, s->claim_a, s->claim_b);
		if (store_claim_renew(s->st, &c) == STORE_OK)
			s->claim_renewed = time(NULL);
	}
	if (!s->have_item && s->pos >= s->nq && !s->complete)
		seek_pending(s, s->nq); /* an earlier read of the queue failed */
	while (!s->have_item && s->pos < s->nq) {
		int rc = fetch(s);
		if (rc < 0)
			return NULL;
		if (rc == 0) {
			set_state(s, s->pos, Q_GONE);
			seek_pending(s, s->pos + 1);
		}
	}
	return s->have_item ? &s->item : NULL;
}

/* ---- writing ------------------------------------------------------------------- */

static void action_push(ann_session *s, const action *a)
{
	if (s->nundo == s->capundo) {
		s->capundo = s->capundo ? 2 * s->capundo : 16;
		s->undo = xreallocarray(s->undo, s->capundo, sizeof *s->undo);
	}
	s->undo[s->nundo++] = *a;
}

/* In one transaction, retried on STORE_EBUSY: delete the comparisons dels
 * (by id; absent ones are fine), then add adds; the ids of comparisons
 * created go to act->ids. */
static int write_tx(ann_session *s, const int64_t *dels, size_t ndels, const store_comparison *adds,
		    size_t nadds, action *act)
{
	int rc = STORE_OK;
	const char *what = "starting a transaction";
	for (int t = 0;; t++) {
		act->nids = 0;
		rc = store_begin(s->st);
		what = "starting a transaction";
		for (size_t i = 0; rc == STORE_OK && i < ndels; i++) {
			rc = store_comparison_delete(s->st, dels[i]);
			what = "deleting a comparison";
			if (rc == STORE_ENOTFOUND)
				rc = STORE_OK;
		}
		for (size_t i = 0; rc == STORE_OK && i < nadds; i++) {
			int64_t id = 0;
			int created = 0;
			rc = store_comparison_add(s->st, &adds[i], &id, &created);
			what = "adding a comparison";
			if (rc == STORE_OK && created) {
				act->ids = xreallocarray(act->ids, act->nids + 1, sizeof *act->ids);
				act->ids[act->nids++] = id;
			}
		}
		if (rc == STORE_OK) {
			rc = store_commit(s->st);
			what = "committing";
		}
		if (rc == STORE_OK)
			return ANN_OK;
		char msg[sizeof s->err];
		snprintf(msg, sizeof msg, "%s", store_errmsg(s->st));
		store_rollback(s->st);
		if (rc == STORE_EBUSY && t < s->o.retries) {
			sleep_ms(20 + 10 * (t % 8));
			continue;
		}
		act->nids = 0;
		return fail(s, rc == STORE_EBUSY ? ANN_EBUSY : ANN_ERR, "%s: %s", what, msg);
	}
}

static void count_time(ann_session *s, int64_t ms)
{
	if (ms < 0)
		return;
	s->sum_ms += ms;
	s->ntimed++;
}

/* After a pair label: collect the judges' verdicts on the pair and update
 * the agreement figures in act. */
static void judge_reveal(ann_session *s, const qent *e, int64_t left, const char *human, action *act)
{
	verdicts_free(s->jv, s->njv);
	s->jv = NULL;
	s->njv = 0;
	if (!s->o.show_judge || load_cmps(s, e->prompt_id) < 0)
		return;
	const cmp *latest = NULL;
	s->jv = xcalloc(s->cmps.n ? s->cmps.n : 1, sizeof *s->jv);
	for (size_t i = 0; i < s->cmps.n; i++) {
		const cmp *c = &s->cmps.v[i];
		if (c->a != e->a || c->b != e->b || strcmp(c->kind, "judge"))
			continue;
		ann_verdict *v = &s->jv[s->njv++];
		v->annotator = xstrdup(c->annotator);
		v->kind = xstrdup(c->kind);
		v->verdict = xstrdup(screen_verdict(c->verdict, e->a, left));
		v->rationale = xstrdup(c->rationale);
		if (strcmp(c->verdict, "skip") && (!latest || c->id > latest->id))
			latest = c;
	}
	if (latest && strcmp(human, "skip")) {
		act->judged = 1;
		act->agreed = !strcmp(latest->verdict, human);
		s->judge_total++;
		s->judge_agree += act->agreed;
	}
}

static void finish_step(ann_session *s, action *act)
{
	count_time(s, act->duration_ms);
	/* the note now lives in the store; undo brings it back */
	act->note = xstrdup(note_of(s, act->qidx));
	note_put(s, act->qidx, NULL);
	action_push(s, act);
	set_state(s, act->qidx, Q_DONE);
	seek_pending(s, act->qidx + 1);
}

static int label_pair(ann_session *s, int label, double confidence, int64_t duration_ms)
{
	const ann_item *it = ann_session_current(s);
	if (!it)
		return s->err[0] ? ANN_ERR : ANN_ENOITEM;
	const qent *e = &s->q[s->pos];
	int64_t left = it->cands[0].id;
	const char *v;
	switch (label) {
	case ANN_LEFT: v = left == e->a ? "a" : "b"; break;
	case ANN_RIGHT: v = left == e->a ? "b" : "a"; break;
	case ANN_TIE: v = "tie"; break;
	case ANN_BOTH_BAD: v = "both_bad"; break;
	case ANN_SKIP: v = "skip"; break;
	default: return fail(s, ANN_EINVAL, "unknown label %d", label);
	}
	store_comparison c = {
		.prompt_id = e->prompt_id,
		.completion_a = e->a,
		.completion_b = e->b,
		.annotator_id = s->annotator_id,
		.verdict = v,
		.shown_first = left == e->a ? "a" : "b",
		.rationale = note_of(s, s->pos),
		.confidence = label == ANN_LEFT || label == ANN_RIGHT ? confidence : NAN,
		.duration_ms = duration_ms,
	};
	action act = {.qidx = s->pos, .duration_ms = duration_ms};
	int64_t *dels = NULL;
	size_t ndels = 0;
	int rc;
	if (s->o.mode == ANN_MODE_REVIEW) {
		/* the reviewer's verdict replaces their earlier one on this pair */
		if ((rc = load_cmps(s, e->prompt_id)) < 0)
			return rc;
		for (size_t i = 0; i < s->cmps.n; i++) {
			const cmp *o = &s->cmps.v[i];
			if (o->a != e->a || o->b != e->b || o->annotator_id != s->annotator_id)
				continue;
			if (label == ANN_SKIP)
				goto skip_only; /* keep their verdict; just move on */
			dels = xreallocarray(dels, ndels + 1, sizeof *dels);
			dels[ndels++] = o->id;
			act.restore = xreallocarray(act.restore, act.nrestore + 1, sizeof *act.restore);
			cmp *r = &act.restore[act.nrestore++];
			*r = *o;
			r->annotator = xstrdup(o->annotator);
			r->kind = xstrdup(o->kind);
			r->verdict = xstrdup(o->verdict);
			r->shown_first = xstrdup(o->shown_first);
			r->rationale = xstrdup(o->rationale);
			r->created_at = xstrdup(o->created_at);
		}
	}
	rc = write_tx(s, dels, ndels, &c, 1, &act);
	free(dels);
	if (rc < 0) {
		action_free(&act);
		return rc;
	}
	judge_reveal(s, e, left, v, &act);
	finish_step(s, &act);
	return ANN_OK;
skip_only:
	free(dels);
	action_free(&act);
	act = (action){.qidx = s->pos, .duration_ms = duration_ms};
	finish_step(s, &act);
	return ANN_OK;
}

/* After a write attempt: keep it to retry when the database was locked
 * (replacing any earlier waiting one), forget the waiting one otherwise. */
static int keep_if_busy(ann_session *s, int rc, int kind, int label, double confidence, const size_t *order,
			size_t n, int64_t duration_ms, size_t qidx)
{
	free(s->pw.order);
	memset(&s->pw, 0, sizeof s->pw);
	if (rc != ANN_EBUSY)
		return rc;
	s->pw = (pending_write){kind, label, confidence, NULL, n, duration_ms, qidx};
	if (order && n) {
		s->pw.order = xcalloc(n, sizeof *order);
		memcpy(s->pw.order, order, n * sizeof *order);
	}
	return rc;
}

int ann_session_label(ann_session *s, int label, int64_t duration_ms)
{
	return ann_session_label_strength(s, label, NAN, duration_ms);
}

int ann_session_label_strength(ann_session *s, int label, double confidence, int64_t duration_ms)
{
	s->err[0] = 0;
	if (s->o.mode == ANN_MODE_RANK)
		return fail(s, ANN_EINVAL, "labels of a pair need pair or review mode");
	if (!isnan(confidence) && (confidence < 0 || confidence > 1))
		return fail(s, ANN_EINVAL, "a strength is a confidence in [0, 1], got %g", confidence);
	size_t q = s->pos;
	return keep_if_busy(s, label_pair(s, label, confidence, duration_ms), W_LABEL, label, confidence, NULL, 0,
			    duration_ms, q);
}

/* Store a ranking (order best first) or, with order NULL, skips for every pair. */
static int rank_write(ann_session *s, const size_t *order, size_t n, int64_t duration_ms)
{
	const ann_item *it = ann_session_current(s);
	if (!it)
		return s->err[0] ? ANN_ERR : ANN_ENOITEM;
	size_t k = it->ncands;
	if (order) {
		if (n != k)
			return fail(s, ANN_EINVAL, "a ranking must order all %zu completions (got %zu)", k, n);
		unsigned char *seen = xcalloc(k, 1);
		for (size_t i = 0; i < n; i++) {
			if (order[i] >= k || seen[order[i]]) {
				free(seen);
				return fail(s, ANN_EINVAL, "a ranking must name each completion once");
			}
			seen[order[i]] = 1;
		}
		free(seen);
	}
	size_t np = k * (k - 1) / 2;
	size_t *better = xcalloc(np, sizeof *better), *worse = xcalloc(np, sizeof *worse);
	size_t *ident = xcalloc(k, sizeof *ident);
	for (size_t i = 0; i < k; i++)
		ident[i] = i;
	ann_rank_implied(order ? order : ident, k, better, worse);
	store_comparison *adds = xcalloc(np, sizeof *adds);
	for (size_t i = 0; i < np; i++) {
		int64_t hi = it->cands[better[i]].id, lo = it->cands[worse[i]].id;
		int64_t a = hi < lo ? hi : lo, b = hi < lo ? lo : hi;
		/* which of a and b was shown first (higher on the screen) */
		size_t da = hi == a ? better[i] : worse[i], db = hi == a ? worse[i] : better[i];
		adds[i] = (store_comparison){
			.prompt_id = it->prompt_id,
			.completion_a = a,
			.completion_b = b,
			.annotator_id = s->annotator_id,
			.verdict = !order ? "skip" : hi == a ? "a" : "b",
			.shown_first = da < db ? "a" : "b",
			.rationale = note_of(s, s->pos),
			.confidence = NAN,
			.duration_ms = duration_ms,
		};
	}
	action act = {.qidx = s->pos, .duration_ms = duration_ms};
	int rc = write_tx(s, NULL, 0, adds, np, &act);
	free(adds);
	free(better);
	free(worse);
	free(ident);
	if (rc < 0) {
		action_free(&act);
		return rc;
	}
	finish_step(s, &act);
	return ANN_OK;
}

int ann_session_rank(ann_session *s, const size_t *order, size_t n, int64_t duration_ms)
{
	s->err[0] = 0;
	if (s->o.mode != ANN_MODE_RANK)
		return fail(s, ANN_EINVAL, "rankings need rank mode");
	if (!order)
		return fail(s, ANN_EINVAL, "no ranking given");
	size_t q = s->pos;
	return keep_if_busy(s, rank_write(s, order, n, duration_ms), W_RANK, 0, NAN, order, n, duration_ms, q);
}

int ann_session_skip(ann_session *s, int64_t duration_ms)
{
	s->err[0] = 0;
	size_t q = s->pos;
	int rc = s->o.mode == ANN_MODE_RANK ? rank_write(s, NULL, 0, duration_ms)
					    : label_pair(s, ANN_SKIP, NAN, duration_ms);
	return keep_if_busy(s, rc, W_SKIP, ANN_SKIP, NAN, NULL, 0, duration_ms, q);
}

int ann_session_pending(const ann_session *s)
{
	return s->pw.kind ? (s->pw.kind == W_RANK ? ANN_PENDING_RANK : s->pw.label + 1) : 0;
}

int ann_session_retry(ann_session *s)
{
	s->err[0] = 0;
	if (!s->pw.kind)
		return ANN_OK;
	if (s->pos != s->pw.qidx) {
		/* cannot happen: nothing moves the session while a write waits */
		ann_session_cancel_pending(s);
		return fail(s, ANN_ERR, "the waiting label lost its item");
	}
	pending_write w = s->pw;
	s->pw.order = NULL; /* w owns it now */
	int rc;
	switch (w.kind) {
	case W_LABEL: rc = ann_session_label_strength(s, w.label, w.confidence, w.duration_ms); break;
	case W_RANK: rc = ann_session_rank(s, w.order, w.n, w.duration_ms); break;
	default: rc = ann_session_skip(s, w.duration_ms); break;
	}
	free(w.order);
	return rc;
}

void ann_session_cancel_pending(ann_session *s)
{
	free(s->pw.order);
	memset(&s->pw, 0, sizeof s->pw);
}

void ann_session_set_retries(ann_session *s, int retries)
{
	s->o.retries = retries < 0 ? 50 : retries;
}

int ann_session_undo(ann_session *s)
{
	s->err[0] = 0;
	if (s->pw.kind)
		return fail(s, ANN_EBUSY, "a label is waiting for the database");
	if (!s->nundo)
		return fail(s, ANN_ENOUNDO, "nothing to undo");
	action *a = &s->undo[s->nundo - 1];
	store_comparison *adds = xcalloc(a->nrestore ? a->nrestore : 1, sizeof *adds);
	const qent *e = &s->q[a->qidx];
	for (size_t i = 0; i < a->nrestore; i++) {
		const cmp *r = &a->restore[i];
		adds[i] = (store_comparison){
			.prompt_id = e->prompt_id,
			.completion_a = r->a,
			.completion_b = r->b,
			.annotator_id = r->annotator_id,
			.verdict = r->verdict,
			.shown_first = r->shown_first,
			.rationale = r->rationale,
			.confidence = r->confidence,
			.duration_ms = r->duration_ms,
			.inconsistent = r->inconsistent,
			.created_at = r->created_at,
		};
	}
	action tmp = {0};
	int rc = write_tx(s, a->ids, a->nids, adds, a->nrestore, &tmp);
	free(adds);
	free(tmp.ids);
	if (rc < 0)
		return rc;
	if (a->duration_ms >= 0) {
		s->sum_ms -= a->duration_ms;
		s->ntimed--;
	}
	if (a->judged) {
		s->judge_total--;
		s->judge_agree -= a->agreed;
	}
	verdicts_free(s->jv, s->njv);
	s->jv = NULL;
	s->njv = 0;
	size_t q = a->qidx;
	if (a->note)
		note_put(s, q, a->note); /* the note of the undone label, to edit or keep */
	action_free(a);
	s->nundo--;
	set_state(s, q, Q_PENDING);
	drop_item(s);
	s->pos = q;
	return ANN_OK;
}

size_t ann_session_undo_depth(const ann_session *s)
{
	return s->nundo;
}

void ann_session_set_note(ann_session *s, const char *note)
{
	if (s->pos < s->nq)
		note_put(s, s->pos, note);
}

const char *ann_session_note(const ann_session *s)
{
	return s->pos < s->nq ? note_of(s, s->pos) : NULL;
}

/* ---- search ------------------------------------------------------------------------ */

typedef struct search_ctx {
	const char *query;
	int64_t *ids;
	size_t n, cap;
} search_ctx;

static int search_cb(void *ud, const store_prompt *p)
{
	search_ctx *c = ud;
	const char *t = p->text ? p->text : p->messages_json;
	if (!t || !strcasestr(t, c->query))
		return 0;
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 64;
		c->ids = xreallocarray(c->ids, c->cap, sizeof *c->ids);
	}
	c->ids[c->n++] = p->id;
	return 0;
}

static int id_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

int ann_session_search(ann_session *s, const char *query)
{
	s->err[0] = 0;
	if (!query || !*query)
		return fail(s, ANN_EINVAL, "empty search");
	if (s->pw.kind)
		return fail(s, ANN_EBUSY, "a label is waiting for the database");
	search_ctx c = {.query = query};
	int rc = store_prompts_foreach(s->st, s->split, s->source, 0, search_cb, &c);
	if (rc != STORE_OK) {
		free(c.ids);
		return store_fail(s, rc, "searching prompts");
	}
	if (c.n)
		qsort(c.ids, c.n, sizeof *c.ids, id_cmp);
	size_t start = s->pos < s->nq ? s->pos + 1 : 0, i = start, found = (size_t)-1;
	/* forward from the current entry, reading more of the queue as needed,
	 * then from the start */
	for (;;) {
		for (; c.n && i < s->nq && found == (size_t)-1; i++)
			if (s->q[i].state == Q_PENDING &&
			    bsearch(&s->q[i].prompt_id, c.ids, c.n, sizeof *c.ids, id_cmp))
				found = i;
		if (found != (size_t)-1 || s->complete || !c.n)
			break;
		size_t before = s->nq;
		if ((rc = load_chunk(s, 8 * ANN_CHUNK)) < 0) {
			free(c.ids);
			return rc;
		}
		if (s->nq == before)
			break;
	}
	for (i = 0; c.n && found == (size_t)-1 && i < start && i < s->nq; i++)
		if (s->q[i].state == Q_PENDING && bsearch(&s->q[i].prompt_id, c.ids, c.n, sizeof *c.ids, id_cmp))
			found = i;
	if (found == (size_t)-1) {
		rc = fail(s, ANN_ENOTFOUND, "no pending item's prompt contains \"%s\"", query);
	} else {
		if (found != s->pos) {
			drop_item(s);
			s->pos = found;
		}
		rc = ANN_OK;
	}
	free(c.ids);
	return rc;
}

/* ---- figures ---------------------------------------------------------------------------- */

void ann_session_stats(const ann_session *s, ann_stats *out)
{
	memset(out, 0, sizeof *out);
	out->position = s->pos < s->nq ? s->pos + 1 : 0;
	out->total = s->nq;
	out->total_known = s->complete;
	out->remaining = s->npending;
	out->done = s->ndone;
	out->eta_s = -1;
	if (s->ntimed > 0 && s->sum_ms > 0) {
		double per = (double)s->sum_ms / (double)s->ntimed / 1000.0;
		out->per_hour = 3600.0 / per;
		out->eta_s = per * (double)s->npending;
	}
	out->judge_total = s->judge_total;
	out->judge_agree = s->judge_agree;
}

const ann_verdict *ann_session_judge_verdicts(const ann_session *s, size_t *n)
{
	*n = s->njv;
	return s->jv;
}

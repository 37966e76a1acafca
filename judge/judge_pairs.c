/* judge_pairs.c: the pairs of a run and the two-order verdict logic (see
 * judge_pairs.h). No store, no curl. */
#include "config.h"
#include "judge/judge_pairs.h"
#include "util/buf.h"
#include "util/rand.h"
#include "util/xmalloc.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void judge_pairs_init(judge_pair_set *s, long sample, long seed)
{
	memset(s, 0, sizeof *s);
	s->sample = sample;
	s->rng = (uint64_t)seed * 2654435761u + 17;
}

void judge_pairs_free(judge_pair_set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].err);
		free(s->v[i].rationale);
		free(s->v[i].why[0]);
		free(s->v[i].why[1]);
	}
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

void judge_pairs_add(judge_pair_set *s, int64_t prompt_id, int64_t ca, int64_t cb, int64_t retry_id)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		s->v = xreallocarray(s->v, s->cap, sizeof *s->v);
	}
	judge_pair *p = &s->v[s->n++];
	memset(p, 0, sizeof *p);
	p->prompt_id = prompt_id;
	p->ca = ca;
	p->cb = cb;
	p->retry_id = retry_id;
}

void judge_pairs_offer(judge_pair_set *s, int64_t prompt_id, int64_t ca, int64_t cb)
{
	s->seen++;
	if (s->sample > 0 && s->n >= (size_t)s->sample) {
		/* reservoir sampling */
		uint64_t j = util_splitmix64(&s->rng) % s->seen;
		if (j < (uint64_t)s->sample) {
			judge_pair *p = &s->v[j];
			p->prompt_id = prompt_id;
			p->ca = ca;
			p->cb = cb;
		}
		return;
	}
	judge_pairs_add(s, prompt_id, ca, cb, 0);
}

static int cmp_pair(const void *x, const void *y)
{
	const judge_pair *a = x, *b = y;
	if (a->prompt_id != b->prompt_id)
		return a->prompt_id < b->prompt_id ? -1 : 1;
	if (a->ca != b->ca)
		return a->ca < b->ca ? -1 : 1;
	return a->cb < b->cb ? -1 : a->cb > b->cb;
}

void judge_pairs_sort(judge_pair_set *s)
{
	if (s->n)
		qsort(s->v, s->n, sizeof *s->v, cmp_pair);
}

void judge_pairs_limit(judge_pair_set *s, long limit)
{
	if (limit <= 0 || s->n <= (size_t)limit)
		return;
	for (size_t i = (size_t)limit; i < s->n; i++) {
		free(s->v[i].err);
		free(s->v[i].rationale);
		free(s->v[i].why[0]);
		free(s->v[i].why[1]);
	}
	s->n = (size_t)limit;
}

int judge_pair_first_b(int64_t prompt_id, int64_t ca, int64_t cb)
{
	return (int)(util_mix64((uint64_t)prompt_id * 1000003u ^ (uint64_t)ca * 7919u ^ (uint64_t)cb) & 1);
}

void judge_pairs_set_orders(judge_pair_set *s, int norders)
{
	for (size_t i = 0; i < s->n; i++) {
		judge_pair *p = &s->v[i];
		p->first_b = norders == 1 ? judge_pair_first_b(p->prompt_id, p->ca, p->cb) : 0;
	}
}

int judge_pair_b_first(const judge_pair *p, int order)
{
	return order == 1 || p->first_b;
}

char judge_verdict_ab(int verdict, int b_first)
{
	if (verdict == 'C')
		return 't';
	if (verdict == 'A')
		return b_first ? 'b' : 'a';
	if (verdict == 'B')
		return b_first ? 'a' : 'b';
	return 0;
}

const char *judge_verdict_name(char v)
{
	return v == 'a' ? "a" : v == 'b' ? "b" : "tie";
}

void judge_pair_record(judge_pair *p, int order, int verdict)
{
	p->v[order] = judge_verdict_ab(verdict, judge_pair_b_first(p, order));
}

void judge_pair_decide(const judge_pair *p, int norders, judge_decision *d)
{
	memset(d, 0, sizeof *d);
	if (p->failed) {
		d->outcome = JUDGE_PAIR_FAILED;
		d->verdict = "skip";
		d->rationale = p->err ? p->err : "judge error";
	} else if (norders == 2) {
		int agree = p->v[0] == p->v[1];
		d->outcome = agree ? JUDGE_PAIR_CONSISTENT : JUDGE_PAIR_INCONSISTENT;
		d->shown_first = "a";
		d->verdict = agree ? judge_verdict_name(p->v[0]) : "tie";
		d->inconsistent = !agree;
		snprintf(d->buf, sizeof d->buf, "a shown first: %s; b shown first: %s%s%s",
			 judge_verdict_name(p->v[0]), judge_verdict_name(p->v[1]), p->rationale ? "; " : "",
			 p->rationale ? p->rationale : "");
		d->rationale = d->buf;
	} else {
		d->outcome = JUDGE_PAIR_ONE_ORDER;
		d->shown_first = p->first_b ? "b" : "a";
		d->verdict = judge_verdict_name(p->v[0]);
		d->rationale = p->rationale;
	}
}

char *judge_pair_rationale(const judge_pair *p, int norders, const judge_decision *d)
{
	if (d->outcome == JUDGE_PAIR_FAILED || (!p->why[0] && !(norders == 2 && p->why[1])))
		return d->rationale ? xstrdup(d->rationale) : NULL;
	if (norders == 1 && !d->rationale)
		return xstrdup(p->why[0]);
	util_buf b = UTIL_BUF_INIT;
	if (d->rationale)
		util_buf_adds(&b, d->rationale);
	for (int o = 0; o < norders; o++) {
		if (!p->why[o])
			continue;
		util_buf_addf(&b, "%s[%s shown first]\n", b.len ? "\n\n" : "",
			      judge_pair_b_first(p, o) ? "b" : "a");
		util_buf_adds(&b, p->why[o]);
	}
	char *s = util_buf_detach(&b);
	util_buf_free(&b);
	return s;
}

void judge_tally_verdict(judge_tally *t, int verdict)
{
	if (verdict == 'A' || verdict == 'B') {
		t->decisive++;
		t->first_wins += verdict == 'A';
	}
}

void judge_tally_outcome(judge_tally *t, judge_outcome o)
{
	switch (o) {
	case JUDGE_PAIR_FAILED: t->failed_pairs++; return;
	case JUDGE_PAIR_CONSISTENT: t->consistent++; break;
	case JUDGE_PAIR_INCONSISTENT: t->inconsistent++; break;
	case JUDGE_PAIR_ONE_ORDER: break;
	}
	t->judged++;
}

double judge_tally_consistency_rate(const judge_tally *t)
{
	long n = t->consistent + t->inconsistent;
	return n ? (double)t->consistent / (double)n : NAN;
}

double judge_tally_first_position_rate(const judge_tally *t)
{
	return t->decisive ? (double)t->first_wins / (double)t->decisive : NAN;
}

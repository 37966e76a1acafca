/* trainer_loop.c: the training loop (see trainer_loop.h). */
#include "config.h"
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "train/trainer_loop.h"
#include "util/progress.h"
#include "util/rand.h"
#include "util/xmalloc.h"

static void fail(train_loop *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(train_loop *L, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(L->err, sizeof L->err, fmt, ap);
	va_end(ap);
}

long train_loop_total_steps(size_t n, long batch_size, long grad_accum, long epochs, long steps)
{
	long per_step = batch_size * grad_accum;
	long steps_per_epoch = (long)((n + (size_t)per_step - 1) / (size_t)per_step);
	return steps > 0 ? steps : epochs * steps_per_epoch;
}

double train_loop_epoch(const train_loop *L)
{
	return L->n ? (double)L->epoch + (double)L->pos / (double)L->n : 0.0;
}

/* The order of epoch ep: a Fisher-Yates shuffle seeded by (seed, epoch). */
static void epoch_perm(const train_loop *L, long ep, size_t *perm)
{
	uint64_t s = (uint64_t)L->cfg.seed * 0x100000001b3ull + (uint64_t)ep;
	for (size_t i = 0; i < L->n; i++)
		perm[i] = i;
	for (size_t i = L->n; i > 1; i--) {
		size_t j = (size_t)(util_splitmix64(&s) % i);
		size_t t = perm[i - 1];
		perm[i - 1] = perm[j];
		perm[j] = t;
	}
}

int train_evaluate(train_engine *e, const train_loss_cfg *loss, const train_pair *pairs, size_t n,
		   long batch_size, train_loss_batch *out)
{
	double *pc = xmalloc(sizeof(double) * n + 1), *pr = xmalloc(sizeof(double) * n + 1);
	double *rc = xmalloc(sizeof(double) * n + 1), *rr = xmalloc(sizeof(double) * n + 1);
	long *nc = xmalloc(sizeof(long) * n + 1), *nr = xmalloc(sizeof(long) * n + 1);
	int bs = (int)batch_size, rc_ = 0;
	const train_pair **b = xcalloc((size_t)bs, sizeof(*b));
	double lsc = 0, lsr = 0;
	long kc = 0, kr = 0;
	for (size_t i = 0; i < n && !rc_; i += (size_t)bs) {
		int k = (int)(n - i < (size_t)bs ? n - i : (size_t)bs);
		for (int j = 0; j < k; j++)
			b[j] = &pairs[i + j];
		rc_ = train_engine_logps(e, b, k, pc + i, pr + i, nc + i, nr + i);
		const double *ls = train_engine_logit_sums(e, NULL);
		for (int j = 0; !rc_ && j < k; j++) {
			lsc += ls[j];
			lsr += ls[k + j];
			kc += nc[i + j];
			kr += nr[i + j];
		}
	}
	if (!rc_) {
		for (size_t i = 0; i < n; i++) {
			rc[i] = pairs[i].ref_c;
			rr[i] = pairs[i].ref_r;
		}
		train_loss_batch lb = {.B = (int)n, .pc = pc, .pr = pr, .rc = rc, .rr = rr, .nc = nc,
				       .nr = nr};
		if (train_loss_compute(loss, &lb) == 0) {
			/* over every scored token of the set */
			lb.logits_chosen = kc ? lsc / (double)kc : 0;
			lb.logits_rejected = kr ? lsr / (double)kr : 0;
			lb.pc = lb.pr = lb.rc = lb.rr = NULL;
			lb.nc = lb.nr = NULL;
			*out = lb;
		} else {
			rc_ = 1;
		}
	}
	free(pc);
	free(pr);
	free(rc);
	free(rr);
	free(nc);
	free(nr);
	free(b);
	return rc_;
}

/* Evaluate on L's eval pairs (if any) and hand the result to the hook. */
static int evaluate(train_loop *L)
{
	if (!L->neval)
		return 0;
	train_loss_batch m;
	int rc = L->dist ? L->dist->evaluate(L->dist->ud, L->e, L->loss, L->evals, L->neval,
					     L->cfg.batch_size, &m) :
		 train_evaluate(L->e, L->loss, L->evals, L->neval, L->cfg.batch_size, &m);
	if (rc < 0) {
		fail(L, "evaluation: %s", train_engine_errmsg(L->e));
		return TRAIN_LOOP_EFAIL;
	}
	if (rc == 0 && L->hooks.eval)
		L->hooks.eval(L->hooks.ud, L, &m);
	return 0;
}

/* Add a micro-batch's metrics, each divided by the micro-batches of the step. */
static void add_means(train_loss_batch *sum, const train_loss_batch *b, int nmb)
{
	sum->loss += b->loss / nmb;
	sum->reward_chosen += b->reward_chosen / nmb;
	sum->reward_rejected += b->reward_rejected / nmb;
	sum->reward_accuracy += b->reward_accuracy / nmb;
	sum->reward_margin += b->reward_margin / nmb;
	sum->logp_chosen += b->logp_chosen / nmb;
	sum->logp_rejected += b->logp_rejected / nmb;
	sum->logits_chosen += b->logits_chosen / nmb;
	sum->logits_rejected += b->logits_rejected / nmb;
}

/* Loop-private state of one train_loop_run. */
struct run_state {
	size_t *perm;
	const train_pair **batch;
	double t0, tokens, flops;
};

/* One optimizer step: up to grad_accum micro-batches from this epoch, then
 * AdamW. Fills *s. Returns 0 or a TRAIN_LOOP_E* result. */
static int one_step(train_loop *L, struct run_state *rs, train_loop_stats *s)
{
	const train_loop_cfg *c = &L->cfg;
	if (L->pos >= (long)L->n) {
		L->epoch++;
		L->pos = 0;
		epoch_perm(L, L->epoch, rs->perm);
	}
	long bs = c->batch_size, per_step = bs * c->grad_accum;
	long left = (long)L->n - L->pos;
	long take = left < per_step ? left : per_step;
	int nmb = (int)((take + bs - 1) / bs);
	double counts[2] = {0, 0}; /* the step's tokens and FLOPs */
	memset(s, 0, sizeof *s);
	for (int mb = 0; mb < nmb; mb++) {
		int k = (int)(take - (long)mb * bs < bs ? take - (long)mb * bs : bs);
		int lo = L->dist ? (int)((long)k * L->dist->rank / L->dist->size) : 0;
		int hi = L->dist ? (int)((long)k * (L->dist->rank + 1) / L->dist->size) : k;
		for (int j = 0; j < k; j++)
			rs->batch[j] = &L->pairs[rs->perm[L->pos + (long)mb * bs + j]];
		train_loss_batch lb;
		if (L->dist)
			L->dist->begin(L->dist->ud, mb == nmb - 1, rs->batch, k, lo, hi);
		if (train_engine_accumulate(L->e, L->loss, rs->batch + lo, hi - lo, 1.0 / nmb, &lb)) {
			fail(L, "step %ld: %s", L->step + 1, train_engine_errmsg(L->e));
			return TRAIN_LOOP_EFAIL;
		}
		if (!isfinite(lb.loss)) {
			fail(L, "step %ld: the loss is %g", L->step + 1, lb.loss);
			return TRAIN_LOOP_EDIVERGED;
		}
		add_means(&s->m, &lb, nmb);
		counts[0] += (double)train_engine_last_tokens(L->e);
		counts[1] += train_engine_last_flops(L->e);
	}
	if (L->dist && L->dist->sync(L->dist->ud, L->e, counts, 2)) {
		fail(L, "step %ld: %s", L->step + 1, train_engine_errmsg(L->e));
		return TRAIN_LOOP_EFAIL;
	}
	rs->tokens += counts[0];
	rs->flops += counts[1];
	s->lr = train_sched_lr(&c->sched, L->step);
	if (L->dist && L->dist->step ?
		    L->dist->step(L->dist->ud, L->e, &c->adamw, s->lr, c->max_grad_norm, &s->grad_norm) :
		    train_engine_step(L->e, &c->adamw, s->lr, c->max_grad_norm, &s->grad_norm)) {
		fail(L, "step %ld: %s (loss %g)", L->step + 1, train_engine_errmsg(L->e), s->m.loss);
		return TRAIN_LOOP_EDIVERGED;
	}
	L->pos += take;
	L->step++;
	s->tokens = rs->tokens;
	s->flops = rs->flops;
	s->seconds = util_now() - rs->t0;
	return 0;
}

/* After step: evaluate when due, save when due or stopping. Returns 0,
 * TRAIN_LOOP_STOPPED or TRAIN_LOOP_EFAIL. */
static int after_step(train_loop *L)
{
	const train_loop_cfg *c = &L->cfg;
	int rc;
	if (c->eval_every > 0 && L->step % c->eval_every == 0 && L->step < c->total_steps &&
	    (rc = evaluate(L)))
		return rc;
	int stop = L->hooks.stop && L->hooks.stop(L->hooks.ud);
	int due = (c->save_every > 0 && L->step % c->save_every == 0 && L->step < c->total_steps) || stop;
	if (due && L->dist && L->dist->gather)
		L->dist->gather(L->dist->ud, L->e);
	if (due && L->hooks.save) {
		char *err = NULL;
		if (L->hooks.save(L->hooks.ud, L, &err)) {
			fail(L, "cannot save a checkpoint: %s", err ? err : "unknown error");
			free(err);
			return TRAIN_LOOP_EFAIL;
		}
	}
	return stop ? TRAIN_LOOP_STOPPED : 0;
}

int train_loop_run(train_loop *L)
{
	struct run_state rs = {0};
	int rc = 0;
	L->err[0] = 0;
	rs.perm = xmalloc(sizeof(size_t) * L->n + 1);
	rs.batch = xcalloc((size_t)L->cfg.batch_size, sizeof(*rs.batch));
	epoch_perm(L, L->epoch, rs.perm);
	rs.t0 = util_now();
	while (!rc && L->step < L->cfg.total_steps) {
		train_loop_stats s;
		rc = one_step(L, &rs, &s);
		if (rc)
			break;
		if (L->hooks.step)
			L->hooks.step(L->hooks.ud, L, &s);
		rc = after_step(L);
	}
	if (!rc)
		rc = evaluate(L);
	free(rs.perm);
	free(rs.batch);
	return rc;
}

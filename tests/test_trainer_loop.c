/* test_trainer_loop.c: the training loop (train/trainer_loop.h) on the
 * tiny-llama oracle of ../shared/fixtures:
 *   - the step count of epochs and of --steps;
 *   - 5 micro-batches of 1 pair per step reproduce adamw_run (the oracle's
 *     full-batch steps), each step's hook seeing its loss, grad norm and lr;
 *   - evaluation after every eval_every steps and at the end, the save hook
 *     every save_every steps (not at the end), with the position it saves;
 *   - a stop after step 2 saves and returns STOPPED; running on from that
 *     position gives the uninterrupted run's steps exactly, across epochs
 *     of shuffled pairs and short last steps;
 *   - a diverging run (lr 1e38) stops with EDIVERGED naming the step.
 * Skips (saying so) when $DPO_SHARED is absent. */
#include "config.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tests/tap.h"
#include "train/model.h"
#include "train/trainer.h"
#include "train/trainer_data.h"
#include "train/trainer_loop.h"
#include "util/file.h"
#include "util/sha256.h"
#include "util/xmalloc.h"

#define MAXSTEPS 16

/* What the hooks saw. */
typedef struct seen {
	int nstep, neval, nsave;
	long step_at[MAXSTEPS];
	double loss[MAXSTEPS], grad_norm[MAXSTEPS], lr[MAXSTEPS];
	long eval_at[MAXSTEPS];
	long save_at[MAXSTEPS], save_epoch[MAXSTEPS], save_pos[MAXSTEPS];
	long stop_after; /* the stop hook answers 1 from this step on (0: never) */
	const train_loop *L;
} seen;

static void on_step(void *ud, const train_loop *L, const train_loop_stats *s)
{
	seen *w = ud;
	if (w->nstep < MAXSTEPS) {
		w->step_at[w->nstep] = L->step;
		w->loss[w->nstep] = s->m.loss;
		w->grad_norm[w->nstep] = s->grad_norm;
		w->lr[w->nstep] = s->lr;
	}
	w->nstep++;
}

static void on_eval(void *ud, const train_loop *L, const train_loss_batch *m)
{
	seen *w = ud;
	(void)m;
	if (w->neval < MAXSTEPS)
		w->eval_at[w->neval] = L->step;
	w->neval++;
}

static int on_save(void *ud, const train_loop *L, char **err)
{
	seen *w = ud;
	(void)err;
	if (w->nsave < MAXSTEPS) {
		w->save_at[w->nsave] = L->step;
		w->save_epoch[w->nsave] = L->epoch;
		w->save_pos[w->nsave] = L->pos;
	}
	w->nsave++;
	return 0;
}

static int on_stop(void *ud)
{
	seen *w = ud;
	return w->stop_after > 0 && w->L->step >= w->stop_after;
}

static int *ids_of(const cJSON *a, int *n)
{
	*n = cJSON_GetArraySize(a);
	int *v = malloc(sizeof(int) * (*n + 1));
	int i = 0;
	const cJSON *x;
	cJSON_ArrayForEach(x, a) v[i++] = x->valueint;
	return v;
}

static double num(const cJSON *o, const char *k)
{
	return cJSON_GetObjectItemCaseSensitive(o, k)->valuedouble;
}

static double rel(double got, double want)
{
	return fabs(got - want) / (fabs(want) > 0 ? fabs(want) : 1);
}

/* The fixture: pairs with their reference log-probs, the oracle's run. */
typedef struct fixture {
	char policy[4096];
	cJSON *oracle;
	train_pair *pairs;
	int n;
	double beta;
} fixture;

static int load_fixture(const char *shared, fixture *f)
{
	char path[4096], *err = NULL;
	snprintf(path, sizeof path, "%s/fixtures/tiny-llama/oracle.json", shared);
	char *txt = util_read_file(path, NULL);
	f->oracle = txt ? cJSON_Parse(txt) : NULL;
	free(txt);
	if (!TAP_OK(f->oracle != NULL, "oracle.json"))
		return -1;
	const cJSON *jp = cJSON_GetObjectItem(f->oracle, "pairs");
	f->n = cJSON_GetArraySize(jp);
	f->pairs = calloc((size_t)f->n, sizeof(train_pair));
	const train_pair **pp = calloc((size_t)f->n, sizeof(*pp));
	for (int i = 0; i < f->n; i++) {
		const cJSON *x = cJSON_GetArrayItem(jp, i);
		f->pairs[i].prompt = ids_of(cJSON_GetObjectItem(x, "prompt_ids"), &f->pairs[i].np);
		f->pairs[i].chosen = ids_of(cJSON_GetObjectItem(x, "chosen_ids"), &f->pairs[i].nc);
		f->pairs[i].rejected = ids_of(cJSON_GetObjectItem(x, "rejected_ids"), &f->pairs[i].nr);
		pp[i] = &f->pairs[i];
	}
	f->beta = num(f->oracle, "beta");
	snprintf(path, sizeof path, "%s/fixtures/tiny-llama/reference", shared);
	train_model *ref = train_model_load(path, &err);
	int ok = TAP_OK(ref != NULL, "load the reference (%s)", err ? err : "ok");
	if (ok) {
		train_engine *e = train_engine_new(ref);
		double lc[16], lr[16];
		ok = TAP_OK(f->n <= 16 && train_engine_logps(e, pp, f->n, lc, lr, NULL, NULL) == 0,
			    "reference log-probs");
		for (int i = 0; ok && i < f->n; i++) {
			f->pairs[i].ref_c = lc[i];
			f->pairs[i].ref_r = lr[i];
		}
		train_engine_free(e);
		train_model_free(ref);
	}
	free(err);
	free(pp);
	snprintf(f->policy, sizeof f->policy, "%s/fixtures/tiny-llama/policy", shared);
	return ok ? 0 : -1;
}

/* A loop over a freshly loaded policy; free with loop_free. */
static train_loop *loop_new(const fixture *f, const train_loss_cfg *loss, const train_loop_cfg *cfg,
			    seen *w, train_model **mp)
{
	char *err = NULL;
	train_model *m = *mp = train_model_load(f->policy, &err);
	if (!m) {
		tap_diag("%s", err);
		free(err);
		return NULL;
	}
	train_loop *L = calloc(1, sizeof *L);
	L->cfg = *cfg;
	L->e = train_engine_new(m);
	L->loss = loss;
	L->pairs = f->pairs;
	L->n = (size_t)f->n;
	L->hooks = (train_loop_hooks){.ud = w, .step = on_step, .eval = on_eval, .save = on_save,
				      .stop = on_stop};
	memset(w, 0, sizeof *w);
	w->L = L;
	return L;
}

static void loop_free(train_loop *L, train_model *m)
{
	if (!L)
		return;
	train_engine_free(L->e);
	train_model_free(m);
	free(L);
}

static void test_total_steps(void)
{
	TAP_OK(train_loop_total_steps(5, 2, 1, 3, 0) == 9, "5 pairs, 2 a step, 3 epochs: 9 steps");
	TAP_OK(train_loop_total_steps(5, 1, 5, 1, 0) == 1, "5 pairs, 1 x 5 a step: 1 step an epoch");
	TAP_OK(train_loop_total_steps(5, 2, 2, 2, 0) == 4, "5 pairs, 2 x 2 a step, 2 epochs: 4 steps");
	TAP_OK(train_loop_total_steps(5, 8, 1, 1, 7) == 7, "--steps wins over epochs");
}

/* adamw_run with 5 micro-batches of one pair; eval and save cadence. */
static void test_adamw_run(const fixture *f, train_loss_cfg *loss)
{
	const cJSON *ar = cJSON_GetObjectItem(f->oracle, "adamw_run");
	const cJSON *steps = cJSON_GetObjectItem(ar, "steps");
	int ns = cJSON_GetArraySize(steps);
	train_loop_cfg c = {
		.batch_size = 1, .grad_accum = f->n, .seed = 42, .max_grad_norm = num(ar, "max_grad_norm"),
		.adamw = {.beta1 = cJSON_GetArrayItem(cJSON_GetObjectItem(ar, "betas"), 0)->valuedouble,
			  .beta2 = cJSON_GetArrayItem(cJSON_GetObjectItem(ar, "betas"), 1)->valuedouble,
			  .eps = num(ar, "eps"), .weight_decay = num(ar, "weight_decay")},
		.eval_every = 3, .save_every = 4,
	};
	c.total_steps = train_loop_total_steps((size_t)f->n, 1, f->n, 1, ns);
	c.sched = (train_sched){.kind = TRAIN_SCHED_CONSTANT, .lr = num(ar, "lr"), .total_steps = c.total_steps};
	seen w;
	train_model *m;
	train_loop *L = loop_new(f, loss, &c, &w, &m);
	if (!TAP_OK(L != NULL, "adamw_run: a loop over the policy"))
		return;
	L->evals = f->pairs;
	L->neval = (size_t)f->n;
	int rc = train_loop_run(L);
	TAP_OK(rc == TRAIN_LOOP_DONE, "adamw_run: the loop finishes (%d: %s)", rc, L->err);
	TAP_OK(w.nstep == ns && L->step == ns, "adamw_run: %d steps, each seen by the step hook", ns);
	double wl = 0, wg = 0;
	int lr_ok = 1, at_ok = 1;
	for (int s = 0; s < ns && s < w.nstep; s++) {
		const cJSON *st = cJSON_GetArrayItem(steps, s);
		wl = fmax(wl, rel(w.loss[s], num(st, "loss")));
		wg = fmax(wg, rel(w.grad_norm[s], num(st, "grad_norm_before_clip")));
		lr_ok &= w.lr[s] == num(ar, "lr");
		at_ok &= w.step_at[s] == s + 1;
	}
	TAP_OK(wl <= 1e-4, "adamw_run: the losses of 1-pair micro-batches (max rel err %.3g)", wl);
	TAP_OK(wg <= 1e-3, "adamw_run: the grad norms (max rel err %.3g)", wg);
	TAP_OK(lr_ok && at_ok, "adamw_run: the hook sees steps 1.. and the constant lr");
	TAP_OK(w.neval == 3 && w.eval_at[0] == 3 && w.eval_at[1] == 6 && w.eval_at[2] == ns,
	       "evaluations after steps 3 and 6 and at the end (%d)", w.neval);
	TAP_OK(w.nsave == 1 && w.save_at[0] == 4 && w.save_epoch[0] == 3 && w.save_pos[0] == f->n,
	       "a save after step 4 only, at epoch 3, position %d (%d saves)", f->n, w.nsave);
	loop_free(L, m);
}

/* Stop after step 2, then run on: the uninterrupted run's steps. */
static void test_stop_resume(const fixture *f, train_loss_cfg *loss)
{
	train_loop_cfg c = {.batch_size = 2, .grad_accum = 1, .seed = 7, .max_grad_norm = 1,
			    .adamw = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.1}};
	c.total_steps = train_loop_total_steps((size_t)f->n, 2, 1, 3, 0);
	c.sched = (train_sched){.kind = TRAIN_SCHED_LINEAR, .lr = 1e-3, .warmup_steps = 2,
				.total_steps = c.total_steps};
	seen a, b;
	train_model *ma, *mb;
	train_loop *La = loop_new(f, loss, &c, &a, &ma);
	train_loop *Lb = loop_new(f, loss, &c, &b, &mb);
	if (!TAP_OK(La && Lb, "stop: two loops over the policy"))
		return;
	int rc = train_loop_run(La);
	TAP_OK(rc == TRAIN_LOOP_DONE && a.nstep == 9, "uninterrupted: 9 steps over 3 epochs (%d)", rc);
	b.stop_after = 2;
	rc = train_loop_run(Lb);
	TAP_OK(rc == TRAIN_LOOP_STOPPED && Lb->step == 2, "stop after step 2: STOPPED at step %ld", Lb->step);
	TAP_OK(b.nsave == 1 && b.save_at[0] == 2 && b.neval == 0,
	       "stopping saves once, at step 2, and does not evaluate");
	b.stop_after = 0;
	rc = train_loop_run(Lb);
	TAP_OK(rc == TRAIN_LOOP_DONE && Lb->step == 9 && b.nstep == 9, "running on: done at step 9");
	int same = 1;
	for (int s = 0; s < 9; s++)
		same &= a.loss[s] == b.loss[s] && a.grad_norm[s] == b.grad_norm[s] && a.lr[s] == b.lr[s];
	TAP_OK(same, "the stopped and continued run has the uninterrupted one's losses, norms and lrs");
	size_t np = train_model_nparams(ma);
	TAP_OK(!memcmp(train_model_params(ma), train_model_params(mb), np * sizeof(float)),
	       "and the same final weights");
	loop_free(La, ma);
	loop_free(Lb, mb);
}

/* lr 1e38: the second step's loss is not finite. */
static void test_diverged(const fixture *f, train_loss_cfg *loss)
{
	train_loop_cfg c = {.batch_size = f->n, .grad_accum = 1, .total_steps = 6, .seed = 42,
			    .max_grad_norm = 1, .adamw = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8}};
	c.sched = (train_sched){.kind = TRAIN_SCHED_CONSTANT, .lr = 1e38, .total_steps = 6};
	seen w;
	train_model *m;
	train_loop *L = loop_new(f, loss, &c, &w, &m);
	if (!TAP_OK(L != NULL, "diverge: a loop over the policy"))
		return;
	int rc = train_loop_run(L);
	TAP_OK(rc == TRAIN_LOOP_EDIVERGED, "lr 1e38: EDIVERGED (%d)", rc);
	TAP_OK(!strncmp(L->err, "step 2: the loss is", 19), "the message names the step (%s)", L->err);
	TAP_OK(L->step == 1 && w.nstep == 1, "the position stays at the last good step");
	loop_free(L, m);
}

/* train_pair_truncate, table-driven: the prompt is tokens 1..np, the chosen
 * 101.., the rejected 201..; what is left of each. */
static void test_truncation(void)
{
	static const struct {
		const char *what;
		int np, nc, nr;
		long max_len, max_prompt, max_comp;
		int keep_start;
		int np2, nc2, nr2, first_prompt_tok, truncated;
	} t[] = {
		{"fits", 4, 3, 2, 10, 0, 0, 0, 4, 3, 2, 1, 0},
		{"no limits", 40, 30, 20, 0, 0, 0, 0, 40, 30, 20, 1, 0},
		{"completions cut to the room", 4, 8, 5, 10, 0, 0, 0, 4, 6, 5, 1, 1},
		{"keep_end: the prompt keeps its end", 12, 3, 3, 10, 0, 0, 0, 9, 1, 1, 4, 1},
		{"keep_start: the prompt keeps its start", 12, 3, 3, 10, 0, 0, 1, 9, 1, 1, 1, 1},
		{"keep_start, prompt fits: completions cut", 4, 8, 5, 10, 0, 0, 1, 4, 6, 5, 1, 1},
		{"max_prompt_length keeps the end", 12, 3, 3, 0, 5, 0, 0, 5, 3, 3, 8, 1},
		{"max_completion_length keeps the start", 4, 8, 5, 0, 0, 6, 0, 4, 6, 5, 1, 1},
		{"max_completion_length, then max_length", 4, 8, 5, 9, 0, 6, 0, 4, 5, 5, 1, 1},
		{"all three", 12, 8, 5, 10, 6, 3, 0, 6, 3, 3, 7, 1},
	};
	for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
		train_pair p;
		memset(&p, 0, sizeof p);
		p.prompt = malloc(sizeof(int) * (size_t)t[i].np);
		p.chosen = malloc(sizeof(int) * (size_t)t[i].nc);
		p.rejected = malloc(sizeof(int) * (size_t)t[i].nr);
		for (int k = 0; k < t[i].np; k++)
			p.prompt[k] = 1 + k;
		for (int k = 0; k < t[i].nc; k++)
			p.chosen[k] = 101 + k;
		for (int k = 0; k < t[i].nr; k++)
			p.rejected[k] = 201 + k;
		p.np = t[i].np;
		p.nc = t[i].nc;
		p.nr = t[i].nr;
		train_tok_opts o = {.max_length = t[i].max_len, .max_prompt_length = t[i].max_prompt,
				    .max_completion_length = t[i].max_comp, .keep_start = t[i].keep_start};
		train_pair_truncate(&p, &o);
		TAP_OK(p.np == t[i].np2 && p.nc == t[i].nc2 && p.nr == t[i].nr2 &&
			       (p.np == 0 || p.prompt[0] == t[i].first_prompt_tok) && p.chosen[0] == 101 &&
			       p.rejected[0] == 201 && p.truncated == t[i].truncated,
		       "truncation, %s: %d/%d/%d from token %d, truncated %d", t[i].what, p.np, p.nc, p.nr,
		       p.np ? p.prompt[0] : 0, p.truncated);
		free(p.prompt);
		free(p.chosen);
		free(p.rejected);
	}
	/* the settings are in the tokenization fingerprint, and only when set */
	train_tok_opts a = {.max_length = 10}, b = a, c = a;
	b.keep_start = 1;
	c.max_completion_length = 4;
	char fa[65], fb[65], fc[65], fa2[65];
	train_tok_fingerprint("t", "none", &a, fa);
	train_tok_fingerprint("t", "none", &b, fb);
	train_tok_fingerprint("t", "none", &c, fc);
	TAP_OK(strcmp(fa, fb) && strcmp(fa, fc) && strcmp(fb, fc), "keep_start and max_completion_length change the fingerprint");
	char *old = xasprintf("tok=t\nchat=none\neos=%d:%d\nbos=%d:%d\nmax_length=10\nmax_prompt_length=0\n", 0, 0, 0, 0);
	util_sha256_hex(old, strlen(old), fa2);
	free(old);
	TAP_IS_STR(fa, fa2, "without them the fingerprint is what it was");
}

int main(int argc, char **argv)
{
	(void)argc;
	if (!getenv("OMP_WAIT_POLICY")) {
		setenv("OMP_WAIT_POLICY", "passive", 1);
		execv("/proc/self/exe", argv);
	}
	test_total_steps();
	test_truncation();
	const char *shared = tap_shared_dir();
	if (!shared) {
		tap_diag("$DPO_SHARED (../shared) is absent: no oracle fixtures");
		return tap_done();
	}
	fixture f = {0};
	if (load_fixture(shared, &f) == 0) {
		train_loss_cfg loss;
		train_loss_cfg_default(&loss);
		loss.beta = f.beta;
		test_adamw_run(&f, &loss);
		test_stop_resume(&f, &loss);
		test_diverged(&f, &loss);
	}
	for (int i = 0; i < f.n; i++)
		train_pair_free(&f.pairs[i]);
	free(f.pairs);
	cJSON_Delete(f.oracle);
	return tap_done();
}

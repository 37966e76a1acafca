/* test_trainer.c: model-level parity of the DPO trainer against the float64
 * oracles of ../shared/fixtures/tiny-{gpt2,llama,qwen3}:
 *   - reference and policy summed log-probs of every pair (1e-5 relative);
 *   - the mean sigmoid loss (1e-5 relative) and the gradient of every
 *     parameter tensor against grads_sigmoid_mean.safetensors (norm of the
 *     difference over the norm of the reference, 1e-3), and the global
 *     gradient norm (1e-4 relative);
 *   - 8 AdamW steps (adamw_run): every step's loss within 1e-4 relative and
 *     pre-clip gradient norm within 1e-3, and every final parameter tensor
 *     within 1e-3 relative of adamw_final_params.safetensors;
 *   - micro-batches with gradient accumulation give the full-batch gradient.
 * Skips (saying so) when $DPO_SHARED is absent. */
#include "config.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tests/tap.h"
#include "util/file.h"
#include "train/model.h"
#include "train/safetensors.h"
#include "train/trainer.h"

static char *slurp(const char *path)
{
	return util_read_file(path, NULL);
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

static double vec_at(const cJSON *o, const char *k, int i)
{
	return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, k), i)->valuedouble;
}

static double rel(double got, double want)
{
	return fabs(got - want) / (fabs(want) > 0 ? fabs(want) : 1);
}

/* Compare every parameter tensor (in the model's arena layout `arena`)
 * against the file; returns the worst relative error and its tensor name. */
static double compare_tensors(train_model *m, const float *arena, const char *path,
			      char *worst_name, size_t wn, int *missing)
{
	char *err = NULL;
	train_st_file *f = train_st_open(path, &err);
	*missing = 0;
	if (!f) {
		tap_diag("%s", err);
		free(err);
		*missing = 1;
		return INFINITY;
	}
	int nt;
	const train_param *tab = train_model_param_table(m, &nt);
	double worst = 0;
	for (int i = 0; i < nt; i++) {
		const train_st_tensor *t = train_st_find(f, tab[i].name);
		if (!t || t->numel != tab[i].numel) {
			tap_diag("tensor %s missing or of another size in %s", tab[i].name, path);
			(*missing)++;
			continue;
		}
		float *ref = malloc(sizeof(float) * t->numel);
		train_st_read_f32(f, t, ref, &err);
		double dn = 0, rn = 0;
		const float *g = arena + tab[i].offset;
		size_t s0 = tab[i].shape[0], s1 = tab[i].ndim == 2 ? tab[i].shape[1] : 1;
		for (size_t a = 0; a < s0; a++)
			for (size_t b = 0; b < s1; b++) {
				double want = ref[a * s1 + b];
				double got = tab[i].transposed ? g[b * s0 + a] : g[a * s1 + b];
				dn += (got - want) * (got - want);
				rn += want * want;
			}
		double r = sqrt(dn) / (rn > 0 ? sqrt(rn) : 1);
		if (r > worst) {
			worst = r;
			snprintf(worst_name, wn, "%s", tab[i].name);
		}
		free(ref);
	}
	train_st_close(f);
	return worst;
}

static void run_model(const char *shared, const char *name)
{
	char path[4096], *err = NULL;
	snprintf(path, sizeof path, "%s/fixtures/%s/oracle.json", shared, name);
	char *txt = slurp(path);
	cJSON *o = txt ? cJSON_Parse(txt) : NULL;
	free(txt);
	if (!TAP_OK(o != NULL, "%s: oracle.json", name))
		return;
	const cJSON *jp = cJSON_GetObjectItem(o, "pairs");
	int n = cJSON_GetArraySize(jp);
	train_pair *pairs = calloc(n, sizeof(train_pair));
	const train_pair **pp = calloc(n, sizeof(*pp));
	for (int i = 0; i < n; i++) {
		const cJSON *x = cJSON_GetArrayItem(jp, i);
		pairs[i].prompt = ids_of(cJSON_GetObjectItem(x, "prompt_ids"), &pairs[i].np);
		pairs[i].chosen = ids_of(cJSON_GetObjectItem(x, "chosen_ids"), &pairs[i].nc);
		pairs[i].rejected = ids_of(cJSON_GetObjectItem(x, "rejected_ids"), &pairs[i].nr);
		pp[i] = &pairs[i];
	}
	double beta = num(o, "beta");

	/* reference pass with the reference model, which is then freed */
	snprintf(path, sizeof path, "%s/fixtures/%s/reference", shared, name);
	train_model *ref = train_model_load(path, &err);
	if (!TAP_OK(ref != NULL, "%s: load reference (%s)", name, err ? err : "ok"))
		goto out;
	{
		train_engine *e = train_engine_new(ref);
		double lc[16], lr[16];
		long nc[16], nr[16];
		int rc = train_engine_logps(e, pp, n, lc, lr, nc, nr);
		TAP_OK(rc == 0, "%s: reference log-probs computed", name);
		double worst = 0;
		for (int i = 0; i < n; i++) {
			pairs[i].ref_c = lc[i];
			pairs[i].ref_r = lr[i];
			double a = rel(lc[i], vec_at(o, "ref_logps_chosen", i));
			double b = rel(lr[i], vec_at(o, "ref_logps_rejected", i));
			worst = fmax(worst, fmax(a, b));
			if (nc[i] != pairs[i].nc || nr[i] != pairs[i].nr)
				worst = INFINITY;
		}
		TAP_OK(worst <= 1e-5, "%s: reference summed log-probs (max rel err %.3g)", name, worst);
		train_engine_free(e);
		train_model_free(ref);
	}

	snprintf(path, sizeof path, "%s/fixtures/%s/policy", shared, name);
	train_model *m = train_model_load(path, &err);
	if (!TAP_OK(m != NULL, "%s: load policy (%s)", name, err ? err : "ok"))
		goto out;
	train_engine *e = train_engine_new(m);
	train_loss_cfg cfg;
	train_loss_cfg_default(&cfg);
	cfg.beta = beta;
	{
		double lc[16], lr[16], worst = 0;
		train_engine_logps(e, pp, n, lc, lr, NULL, NULL);
		for (int i = 0; i < n; i++)
			worst = fmax(worst, fmax(rel(lc[i], vec_at(o, "policy_logps_chosen", i)),
						 rel(lr[i], vec_at(o, "policy_logps_rejected", i))));
		TAP_OK(worst <= 1e-5, "%s: policy summed log-probs (max rel err %.3g)", name, worst);
	}
	train_loss_batch b;
	int rc = train_engine_accumulate(e, &cfg, pp, n, 1.0, &b);
	TAP_OK(rc == 0, "%s: forward/backward (%s)", name, train_engine_errmsg(e));
	double ml = num(o, "mean_sigmoid_loss");
	TAP_OK(rel(b.loss, ml) <= 1e-5, "%s: mean sigmoid loss %.9g vs %.9g (rel %.3g)", name, b.loss,
	       ml, rel(b.loss, ml));
	TAP_NEAR(b.reward_accuracy, num(o, "rewards_accuracy"), 1e-12, "%s: rewards accuracy", name);
	/* logits/chosen and logits/rejected (TRL: the mean of the logits at
	 * every position that predicts a completion token, over the whole
	 * vocabulary), against full logits sequence by sequence */
	{
		int V = train_model_config(m)->vocab;
		double want[2] = {0, 0};
		long cnt[2] = {0, 0};
		for (int i = 0; i < n; i++)
			for (int side = 0; side < 2; side++) {
				const int *c = side ? pairs[i].rejected : pairs[i].chosen;
				int nc = side ? pairs[i].nr : pairs[i].nc, T = pairs[i].np + nc;
				int *ids = malloc(sizeof(int) * T);
				float *lg = malloc(sizeof(float) * (size_t)T * V);
				memcpy(ids, pairs[i].prompt, sizeof(int) * pairs[i].np);
				memcpy(ids + pairs[i].np, c, sizeof(int) * nc);
				train_model_logits(m, ids, T, lg, NULL);
				for (int t = pairs[i].np - 1; t < T - 1; t++)
					for (int v = 0; v < V; v++)
						want[side] += lg[(size_t)t * V + v];
				cnt[side] += nc;
				free(ids);
				free(lg);
			}
		want[0] /= (double)cnt[0] * V;
		want[1] /= (double)cnt[1] * V;
		TAP_OK(fabs(b.logits_chosen - want[0]) <= 1e-7 + 1e-5 * fabs(want[0]),
		       "%s: logits/chosen %.9g vs %.9g from full logits", name, b.logits_chosen, want[0]);
		TAP_OK(fabs(b.logits_rejected - want[1]) <= 1e-7 + 1e-5 * fabs(want[1]),
		       "%s: logits/rejected %.9g vs %.9g from full logits", name, b.logits_rejected,
		       want[1]);
		TAP_OK(b.logits_chosen != 0 && b.logits_chosen != b.logits_rejected,
		       "%s: the two logit means are filled and differ", name);
	}
	double gn = train_engine_grad_norm(e), ogn = num(o, "grad_global_norm");
	TAP_OK(rel(gn, ogn) <= 1e-4, "%s: grad global norm %.9g vs %.9g (rel %.3g)", name, gn, ogn,
	       rel(gn, ogn));
	char wname[256] = "";
	int missing;
	snprintf(path, sizeof path, "%s/fixtures/%s/grads_sigmoid_mean.safetensors", shared, name);
	double w = compare_tensors(m, train_engine_grads(e), path, wname, sizeof wname, &missing);
	TAP_OK(!missing && w <= 1e-3, "%s: every gradient tensor within 1e-3 (worst %.3g, %s)", name,
	       w, wname);

	/* the same gradients when backward recomputes the logits in chunks */
	{
		size_t np = train_model_nparams(m);
		float *kept = malloc(sizeof(float) * np);
		memcpy(kept, train_engine_grads(e), sizeof(float) * np);
		train_engine_zero_grad(e);
		train_engine_set_logits_budget(e, 0);
		train_engine_accumulate(e, &cfg, pp, n, 1.0, NULL);
		train_engine_set_logits_budget(e, 256);
		w = compare_tensors(m, train_engine_grads(e), path, wname, sizeof wname, &missing);
		TAP_OK(!missing && w <= 1e-3,
		       "%s: gradients with recomputed logits within 1e-3 (worst %.3g, %s)", name, w, wname);
		/* activation checkpointing recomputes each block in backward with
		 * the same kernels on the same input: bit-identical gradients,
		 * and the same loss and metrics */
		size_t full = train_engine_activation_floats(e);
		train_engine_zero_grad(e);
		train_engine_set_checkpointing(e, 1);
		train_loss_batch bk;
		train_engine_accumulate(e, &cfg, pp, n, 1.0, &bk);
		size_t part = train_engine_activation_floats(e);
		int L = train_model_config(m)->n_layer;
		/* one layer's slot plus L block outputs instead of L layers */
		TAP_OK(part < full && full - part > (size_t)(L - 1) * (full / L) / 2,
		       "%s: checkpointing holds %zu activation floats instead of %zu", name, part, full);
		TAP_OK(!memcmp(kept, train_engine_grads(e), sizeof(float) * np),
		       "%s: gradients with checkpointing bit-identical", name);
		TAP_OK(bk.loss == b.loss && bk.logits_chosen == b.logits_chosen,
		       "%s: the same loss with checkpointing (%.17g vs %.17g)", name, bk.loss, b.loss);
		double lk[16], lr[16], lk2[16], lr2[16];
		train_engine_logps(e, pp, n, lk, lr, NULL, NULL);
		train_engine_set_checkpointing(e, 0);
		train_engine_logps(e, pp, n, lk2, lr2, NULL, NULL);
		TAP_OK(!memcmp(lk, lk2, sizeof(double) * n) && !memcmp(lr, lr2, sizeof(double) * n),
		       "%s: the same log-probs with checkpointing", name);
		memcpy(train_engine_grads(e), kept, sizeof(float) * np);
		free(kept);
	}

	/* accumulation: 3 + 2 pairs with the loss scaled per micro-batch size */
	{
		size_t np = train_model_nparams(m);
		float *full = malloc(sizeof(float) * np);
		memcpy(full, train_engine_grads(e), sizeof(float) * np);
		train_engine_zero_grad(e);
		train_engine_accumulate(e, &cfg, pp, 3, 3.0 / n, NULL);
		train_engine_accumulate(e, &cfg, pp + 3, n - 3, (double)(n - 3) / n, NULL);
		const float *g = train_engine_grads(e);
		double dn = 0, rn = 0;
		for (size_t i = 0; i < np; i++) {
			dn += (double)(g[i] - full[i]) * (g[i] - full[i]);
			rn += (double)full[i] * full[i];
		}
		TAP_OK(sqrt(dn / rn) < 1e-5, "%s: accumulated micro-batches equal the full batch (rel %.3g)",
		       name, sqrt(dn / rn));
		free(full);
		train_engine_zero_grad(e);
	}

	/* the AdamW run */
	const cJSON *ar = cJSON_GetObjectItem(o, "adamw_run");
	train_adamw opt = {.beta1 = vec_at(ar, "betas", 0), .beta2 = vec_at(ar, "betas", 1),
			   .eps = num(ar, "eps"), .weight_decay = num(ar, "weight_decay")};
	const cJSON *steps = cJSON_GetObjectItem(ar, "steps");
	double wl = 0, wg = 0;
	int ok = 1;
	for (int s = 0; s < cJSON_GetArraySize(steps); s++) {
		const cJSON *st = cJSON_GetArrayItem(steps, s);
		double norm;
		ok &= train_engine_accumulate(e, &cfg, pp, n, 1.0, &b) == 0;
		ok &= train_engine_step(e, &opt, num(ar, "lr"), num(ar, "max_grad_norm"), &norm) == 0;
		wl = fmax(wl, rel(b.loss, num(st, "loss")));
		wg = fmax(wg, rel(norm, num(st, "grad_norm_before_clip")));
	}
	TAP_OK(ok && wl <= 1e-4, "%s: adamw_run losses (8 steps, max rel err %.3g)", name, wl);
	TAP_OK(ok && wg <= 1e-3, "%s: adamw_run grad norms (max rel err %.3g)", name, wg);
	snprintf(path, sizeof path, "%s/fixtures/%s/adamw_final_params.safetensors", shared, name);
	w = compare_tensors(m, train_model_params(m), path, wname, sizeof wname, &missing);
	TAP_OK(!missing && w <= 1e-3, "%s: final parameters within 1e-3 (worst %.3g, %s)", name, w,
	       wname);
	train_engine_free(e);
	train_model_free(m);
out:
	free(err);
	for (int i = 0; i < n; i++)
		train_pair_free(&pairs[i]);
	free(pairs);
	free(pp);
	cJSON_Delete(o);
}

int main(int argc, char **argv)
{
	/* Tiny models make many short parallel regions; on a busy machine
	 * libgomp's spin-waiting threads then cost more than the work. The
	 * policy is read when the library loads, so re-run once with it set. */
	(void)argc;
	if (!getenv("OMP_WAIT_POLICY")) {
		setenv("OMP_WAIT_POLICY", "passive", 1);
		execv("/proc/self/exe", argv);
	}
	const char *shared = tap_shared_dir();
	if (!shared)
		tap_skip_all("$DPO_SHARED (../shared) is absent: no oracle fixtures");
	run_model(shared, "tiny-gpt2");
	run_model(shared, "tiny-llama");
	run_model(shared, "tiny-qwen3");
	return tap_done();
}

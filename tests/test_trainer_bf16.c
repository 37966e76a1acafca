/* test_trainer_bf16.c: the DPO trainer with bf16 matmuls
 * (train_gemm_set_precision(TRAIN_PREC_BF16)) against the float64 oracles of
 * ../shared/fixtures/tiny-{gpt2,llama,qwen3}, and its 8-step AdamW run
 * against the same run in float32.
 *
 * Tolerances, derived (dpo-train(1) has the same derivation):
 *   u = 2^-9 is the unit roundoff of bf16 (8 significant bits, round to
 *   nearest even): a rounded operand carries a relative error uniform in
 *   [-u, u], standard deviation u/sqrt(3). A matmul rounds both operands,
 *   so each product a_i b_i carries two such errors: sd u sqrt(2/3). Summed
 *   in float32 (its own 2^-24 per add is negligible) over a dot product of
 *   length C, the C errors are independent with zero mean, so the output's
 *   error is u sqrt(2/3) sqrt(C) rms(a_i b_i), while the output itself is of
 *   the same sqrt(C) rms(a_i b_i) scale for uncorrelated rows and columns:
 *   every matmul perturbs its output by a relative eps1 = u sqrt(2/3)
 *   (1.6e-3), whatever C. A logit goes through n = 4L + 1 matmuls (qkv,
 *   attention output, up and down projections per layer, then the
 *   vocabulary projection; attention's own two products, in bf16 too since
 *   train/attention_bf16.c, are left out of n: the bounds stay as they were
 *   and hold with the margins printed); independent perturbations add in quadrature,
 *   times an amplification K = 2 allowed for the norms, softmax and
 *   activations between them:  sd(dz) = K eps1 sqrt(n) z_rms,
 *   z_rms the logits' rms (from the oracle's logits_first_seq). A log-prob
 *   z_t - logsumexp(z) then has sd(d logp) <= sqrt(2) sd(dz) per token, and
 *   a sum over T completion tokens sqrt(T) times that. Checks are at 4 sd:
 *     summed log-prob:  |d| <= 4 sqrt(2T) K eps1 sqrt(4L+1) z_rms.
 *   A gradient tensor has the forward's n matmuls behind it plus the two
 *   backward products of each (3n in all): relative error (norm of the
 *   difference over the norm) <= 4 K eps1 sqrt(3(4L+1)).
 *   The sigmoid loss of beta h has |d loss| <= beta |dh|, h a signed sum of
 *   four summed log-probs: |d loss| <= beta 2 * (4 sd of the longest sum).
 *   AdamW, 8 steps against the same run in float32: each step's loss within
 *   the loss tolerance; the parameters' change from the start (p - p0) is
 *   the sum of 8 Adam updates m/sqrt(v), which follow the gradients'
 *   relative error, but Adam divides each element by its own gradient
 *   scale, so an element whose gradient is near the bf16 noise gets a
 *   larger relative error than the tensor's: we allow a factor A = 2 for
 *   that, ||p16 - p32|| <= A * (gradient tolerance) * ||p32 - p0||, tensor
 *   by tensor (observed up to 1.35 of the gradient tolerance here).
 * Skips when $DPO_SHARED is absent. */
#include "config.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tests/tap.h"
#include "train/matmul_bf16.h"
#include "train/model.h"
#include "train/safetensors.h"
#include "train/trainer.h"
#include "util/file.h"

#define U 0x1p-9
#define AMP 2.0

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

/* worst over tensors of ||got - want|| / ||want - base|| (base NULL: 0);
 * got in the arena layout of m, want from a safetensors file or (path
 * NULL) another arena of m, base an arena of m */
static double tensors_rel(train_model *m, const float *got, const char *path, const float *want,
			  const float *base)
{
	char *err = NULL;
	train_st_file *f = path ? train_st_open(path, &err) : NULL;
	if (path && !f) {
		tap_diag("%s", err);
		free(err);
		return INFINITY;
	}
	int nt;
	const train_param *tab = train_model_param_table(m, &nt);
	double worst = 0;
	for (int i = 0; i < nt; i++) {
		size_t s0 = tab[i].shape[0], s1 = tab[i].ndim == 2 ? tab[i].shape[1] : 1;
		float *ref = malloc(sizeof(float) * s0 * s1);
		if (f) {
			const train_st_tensor *t = train_st_find(f, tab[i].name);
			if (!t || t->numel != s0 * s1 || train_st_read_f32(f, t, ref, &err)) {
				free(ref);
				worst = INFINITY;
				continue;
			}
		}
		double dn = 0, rn = 0;
		const float *g = got + tab[i].offset;
		for (size_t a = 0; a < s0; a++)
			for (size_t b = 0; b < s1; b++) {
				size_t k = tab[i].transposed ? b * s0 + a : a * s1 + b;
				double w = f ? ref[a * s1 + b] : want[tab[i].offset + k];
				double w0 = base ? base[tab[i].offset + k] : 0;
				dn += (g[k] - w) * (g[k] - w);
				rn += (w - w0) * (w - w0);
			}
		free(ref);
		/* a tensor that does not move (GPT-2's zeroed key bias) */
		double r = rn > 0 ? sqrt(dn / rn) : dn > 0 ? INFINITY : 0;
		worst = fmax(worst, r);
	}
	if (f)
		train_st_close(f);
	return worst;
}

/* 8 AdamW steps of the oracle's adamw_run on a fresh policy in precision p;
 * losses to loss[8]; returns the model (caller frees) */
static train_model *adamw_run(const char *dir, const cJSON *ar, const train_loss_cfg *cfg,
			      const train_pair **pp, int n, train_precision p, double *loss)
{
	char *err = NULL;
	train_model *m = train_model_load(dir, &err);
	free(err);
	if (!m)
		return NULL;
	train_gemm_set_precision(p);
	train_engine *e = train_engine_new(m);
	train_adamw opt = {.beta1 = vec_at(ar, "betas", 0), .beta2 = vec_at(ar, "betas", 1),
			   .eps = num(ar, "eps"), .weight_decay = num(ar, "weight_decay")};
	int ns = cJSON_GetArraySize(cJSON_GetObjectItem(ar, "steps"));
	for (int s = 0; s < ns && s < 8; s++) {
		train_loss_batch b;
		double norm;
		train_engine_accumulate(e, cfg, pp, n, 1.0, &b);
		train_engine_step(e, &opt, num(ar, "lr"), num(ar, "max_grad_norm"), &norm);
		loss[s] = b.loss;
	}
	train_engine_free(e);
	train_gemm_set_precision(TRAIN_PREC_F32);
	return m;
}

static void run_model(const char *shared, const char *name)
{
	char path[4096], *err = NULL;
	snprintf(path, sizeof path, "%s/fixtures/%s/oracle.json", shared, name);
	char *txt = util_read_file(path, NULL);
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
	snprintf(path, sizeof path, "%s/fixtures/%s/policy", shared, name);
	train_model *m = train_model_load(path, &err);
	if (!TAP_OK(m != NULL, "%s: load policy (%s)", name, err ? err : "ok"))
		goto out;
	int L = train_model_config(m)->n_layer;
	double zs = 0;
	int nz = 0;
	const cJSON *row, *z;
	cJSON_ArrayForEach(row, cJSON_GetObjectItem(o, "logits_first_seq"))
		cJSON_ArrayForEach(z, row) {
			zs += z->valuedouble * z->valuedouble;
			nz++;
		}
	double eps1 = U * sqrt(2.0 / 3), zrms = sqrt(zs / (nz ? nz : 1));
	double tok = 4 * sqrt(2.0) * AMP * eps1 * sqrt(4.0 * L + 1) * zrms; /* times sqrt(T) */
	double gtol = 4 * AMP * eps1 * sqrt(3.0 * (4 * L + 1));
	double beta = num(o, "beta");

	/* the reference log-probs from the reference model, in bf16 */
	snprintf(path, sizeof path, "%s/fixtures/%s/reference", shared, name);
	train_model *ref = train_model_load(path, &err);
	if (!TAP_OK(ref != NULL, "%s: load reference", name))
		goto out;
	train_gemm_set_precision(TRAIN_PREC_BF16);
	train_engine *e = train_engine_new(ref);
	double lc[16], lr[16], worst = 0, f32diff = 0, maxsum = 0;
	train_engine_logps(e, pp, n, lc, lr, NULL, NULL);
	for (int i = 0; i < n; i++) {
		pairs[i].ref_c = lc[i];
		pairs[i].ref_r = lr[i];
		worst = fmax(worst, fabs(lc[i] - vec_at(o, "ref_logps_chosen", i)) /
					    (tok * sqrt(pairs[i].nc)));
		worst = fmax(worst, fabs(lr[i] - vec_at(o, "ref_logps_rejected", i)) /
					    (tok * sqrt(pairs[i].nr)));
	}
	TAP_OK(worst <= 1, "%s: bf16 reference summed log-probs within %.3g sqrt(T) (worst %.3g of it)",
	       name, tok, worst);
	train_engine_free(e);
	train_model_free(ref);

	/* the policy: log-probs, loss, gradients */
	e = train_engine_new(m);
	train_engine_logps(e, pp, n, lc, lr, NULL, NULL);
	worst = 0;
	for (int i = 0; i < n; i++) {
		double dc = fabs(lc[i] - vec_at(o, "policy_logps_chosen", i));
		double dr = fabs(lr[i] - vec_at(o, "policy_logps_rejected", i));
		worst = fmax(worst, fmax(dc / (tok * sqrt(pairs[i].nc)), dr / (tok * sqrt(pairs[i].nr))));
		f32diff = fmax(f32diff, fmax(dc, dr));
		maxsum = fmax(maxsum, tok * sqrt(pairs[i].nc > pairs[i].nr ? pairs[i].nc : pairs[i].nr));
	}
	TAP_OK(worst <= 1, "%s: bf16 policy summed log-probs within %.3g sqrt(T) (worst %.3g of it)",
	       name, tok, worst);
	/* float32 is within 1e-5 of the oracle (test_trainer): a larger
	 * difference shows the matmuls really ran in bf16 */
	TAP_OK(f32diff > 1e-4, "%s: bf16 differs from float32 (max |d logp| %.3g)", name, f32diff);
	train_loss_cfg cfg;
	train_loss_cfg_default(&cfg);
	cfg.beta = beta;
	train_loss_batch b;
	train_engine_accumulate(e, &cfg, pp, n, 1.0, &b);
	double ltol = beta * 2 * maxsum;
	TAP_OK(fabs(b.loss - num(o, "mean_sigmoid_loss")) <= ltol,
	       "%s: bf16 mean sigmoid loss %.6g vs %.6g (within %.3g)", name, b.loss,
	       num(o, "mean_sigmoid_loss"), ltol);
	snprintf(path, sizeof path, "%s/fixtures/%s/grads_sigmoid_mean.safetensors", shared, name);
	double w = tensors_rel(m, train_engine_grads(e), path, NULL, NULL);
	TAP_OK(w <= gtol, "%s: bf16 gradient tensors within %.3g relative (worst %.3g)", name, gtol, w);
	double gn = train_engine_grad_norm(e), ogn = num(o, "grad_global_norm");
	TAP_OK(fabs(gn - ogn) <= gtol * ogn, "%s: bf16 grad global norm %.6g vs %.6g", name, gn, ogn);
	train_engine_free(e);
	train_gemm_set_precision(TRAIN_PREC_F32);

	/* 8 AdamW steps in bf16 and in float32 from the same start */
	const cJSON *ar = cJSON_GetObjectItem(o, "adamw_run");
	double l16[8] = {0}, l32[8] = {0};
	snprintf(path, sizeof path, "%s/fixtures/%s/policy", shared, name);
	train_model *m16 = adamw_run(path, ar, &cfg, pp, n, TRAIN_PREC_BF16, l16);
	train_model *m32 = adamw_run(path, ar, &cfg, pp, n, TRAIN_PREC_F32, l32);
	if (TAP_OK(m16 && m32, "%s: AdamW runs", name)) {
		double wl = 0, wo = 0;
		const cJSON *steps = cJSON_GetObjectItem(ar, "steps");
		for (int s = 0; s < 8; s++) {
			wl = fmax(wl, fabs(l16[s] - l32[s]));
			wo = fmax(wo, fabs(l16[s] - num(cJSON_GetArrayItem(steps, s), "loss")));
		}
		TAP_OK(wl <= ltol, "%s: 8 bf16 AdamW losses within %.3g of float32's (worst %.3g)",
		       name, ltol, wl);
		TAP_OK(wo <= ltol, "%s: 8 bf16 AdamW losses within %.3g of the oracle's (worst %.3g)",
		       name, ltol, wo);
		double pw = tensors_rel(m16, train_model_params(m16), NULL, train_model_params(m32),
					train_model_params(m));
		TAP_OK(pw <= 2 * gtol, "%s: bf16 AdamW updates within %.3g of float32's, relative "
		       "(worst %.3g)", name, 2 * gtol, pw);
	}
	train_model_free(m16);
	train_model_free(m32);
out:
	train_model_free(m);
	free(err);
	for (int i = 0; i < n; i++)
		train_pair_free(&pairs[i]);
	free(pairs);
	free(pp);
	cJSON_Delete(o);
}

int main(int argc, char **argv)
{
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

/* test_lora.c: LoRA adapters (train/lora.h) on small random Llama (GQA,
 * two layers) and GPT-2 models:
 *   - the backward of one module (with dropout, a fixed mask) against
 *     central finite differences of a weighted sum of its outputs;
 *   - the engine's LoRA gradient of the DPO loss (every A and B, all-linear)
 *     against finite differences of the loss;
 *   - B = 0 leaves the model's log-probs exactly unchanged;
 *   - the merged model's log-probs equal the unmerged ones within 1e-5, and
 *     the trainer's forward equals the model engine's;
 *   - a LoRA step changes A/B only (the base weights are bit-identical);
 *   - save + load round trip; target errors name the module;
 *   - a slice of a micro-batch (an MPI rank's) draws the dropout masks of
 *     the same rows of the whole micro-batch (train_lora_set_rows). */
#include "config.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tests/tap.h"
#include "train/lora.h"
#include "train/model.h"
#include "train/trainer.h"
#include "util/rand.h"

static const char *LLAMA =
	"{\"model_type\":\"llama\",\"hidden_size\":16,\"num_hidden_layers\":2,"
	"\"num_attention_heads\":4,\"num_key_value_heads\":2,\"intermediate_size\":24,"
	"\"vocab_size\":40,\"max_position_embeddings\":32,\"rms_norm_eps\":1e-5,"
	"\"tie_word_embeddings\":false,\"initializer_range\":0.2}";
static const char *GPT2 =
	"{\"model_type\":\"gpt2\",\"n_embd\":16,\"n_layer\":2,\"n_head\":2,\"vocab_size\":40,"
	"\"n_positions\":32,\"initializer_range\":0.2}";

static double urand(uint64_t *s)
{
	return (double)(util_splitmix64(s) >> 11) * (1.0 / 9007199254740992.0) * 2 - 1;
}

static train_lora *make_lora(const train_config *c, const char *targets, int r, double dropout,
			     uint64_t seed)
{
	char *err = NULL;
	train_lora_cfg lc = {.r = r, .alpha = 2.0 * r, .dropout = dropout, .targets = (char *)targets};
	train_lora *lo = train_lora_new(c, &lc, seed, &err);
	if (!lo) {
		tap_diag("train_lora_new: %s", err);
		free(err);
	}
	return lo;
}

/* Fill B (zero after init) with random values so that A gets gradients. */
static void randomize(train_lora *lo, uint64_t seed, double scale)
{
	float *p = train_lora_params(lo);
	for (size_t i = 0; i < train_lora_nparams(lo); i++)
		p[i] = (float)(scale * urand(&seed));
}

/* One module site with dropout: L = sum w . out, out = lora(x) added to 0.
 * Gradients of A, B (arena) and x against central differences (the masks
 * are those of draw 0 throughout). */
static void check_module(const train_config *c, const char *targets, int site, int OC, int nin,
			 const char *what)
{
	int N = 5, r = 3;
	train_lora *lo = make_lora(c, targets, r, 0.3, 11);
	randomize(lo, 5, 0.5);
	train_lora_set_training(lo, 1, 0);
	uint64_t s = 99;
	double *x = malloc(sizeof(double) * N * nin), *w = malloc(sizeof(double) * N * OC);
	float *xf = malloc(sizeof(float) * N * nin), *out = malloc(sizeof(float) * N * OC);
	float *dout = malloc(sizeof(float) * N * OC), *dx = calloc((size_t)N * nin, sizeof(float));
	for (int i = 0; i < N * nin; i++)
		x[i] = urand(&s);
	for (int i = 0; i < N * OC; i++) {
		w[i] = urand(&s);
		dout[i] = (float)w[i];
	}
	/* L(x, params) in float, accumulated in double */
#define LOSS(res)                                                                 \
	do {                                                                      \
		for (int i = 0; i < N * nin; i++)                                 \
			xf[i] = (float)x[i];                                      \
		memset(out, 0, sizeof(float) * N * OC);                           \
		train_lora_forward(lo, 1, site, out, OC, xf, N);                  \
		double acc = 0;                                                   \
		for (int i = 0; i < N * OC; i++)                                  \
			acc += w[i] * out[i];                                     \
		res = acc;                                                        \
	} while (0)
	double L0;
	LOSS(L0);
	(void)L0;
	float *g = train_lora_grads(lo);
	memset(g, 0, sizeof(float) * train_lora_nparams(lo));
	train_lora_backward(lo, 1, site, dx, dout, OC, xf, N);
	/* float32 forward: L has roundoff ~1e-7 * sum|w out| ~ 1e-6; with h =
	 * 1e-2 central differences carry ~1e-4 of it; the function is
	 * bilinear in (A, B) and linear in x, so the truncation error is 0 */
	double h = 1e-2, worst = 0;
	float *p = train_lora_params(lo);
	size_t np = train_lora_nparams(lo);
	for (size_t k = 0; k < np; k += 1 + np / 200) {
		float keep = p[k];
		double lp, lm;
		p[k] = (float)(keep + h);
		LOSS(lp);
		p[k] = (float)(keep - h);
		LOSS(lm);
		p[k] = keep;
		double fd = (lp - lm) / (2 * h), err = fabs(fd - g[k]) / (1e-3 + fabs(fd));
		if (fd != 0 || g[k] != 0)
			worst = err > worst ? err : worst;
	}
	for (int k = 0; k < N * nin; k += 3) {
		double keep = x[k], lp, lm;
		x[k] = keep + h;
		LOSS(lp);
		x[k] = keep - h;
		LOSS(lm);
		x[k] = keep;
		double fd = (lp - lm) / (2 * h), err = fabs(fd - dx[k]) / (1e-3 + fabs(fd));
		worst = err > worst ? err : worst;
	}
#undef LOSS
	TAP_OK(worst < 1e-2, "%s: module backward (dropout 0.3) matches finite differences (worst rel %.2g)",
	       what, worst);
	free(x);
	free(w);
	free(xf);
	free(out);
	free(dout);
	free(dx);
	train_lora_free(lo);
}

/* A few pairs of random tokens (prompt 3, completions 4 and 3). */
static void make_pairs(train_pair *p, int n, int V)
{
	uint64_t s = 7;
	for (int i = 0; i < n; i++) {
		memset(&p[i], 0, sizeof p[i]);
		p[i].np = 3;
		p[i].nc = 4;
		p[i].nr = 3 + (i & 1);
		p[i].prompt = malloc(sizeof(int) * 3);
		p[i].chosen = malloc(sizeof(int) * 4);
		p[i].rejected = malloc(sizeof(int) * 4);
		for (int t = 0; t < 4; t++) {
			if (t < 3)
				p[i].prompt[t] = (int)(util_splitmix64(&s) % V);
			p[i].chosen[t] = (int)(util_splitmix64(&s) % V);
			p[i].rejected[t] = (int)(util_splitmix64(&s) % V);
		}
		p[i].ref_c = -20 + i;
		p[i].ref_r = -18 - i;
	}
}

static double loss_of(train_engine *e, const train_loss_cfg *lc, const train_pair *const *pp, int n)
{
	train_loss_batch out;
	if (train_engine_accumulate(e, lc, pp, n, 1.0, &out))
		return NAN;
	return out.loss;
}

/* The engine's LoRA gradient of the DPO loss against finite differences,
 * then one AdamW step touching A/B only. */
static void check_engine(const char *cfg_json, const char *what)
{
	char *err = NULL;
	train_model *m = train_model_init(cfg_json, strlen(cfg_json), 3, &err);
	const train_config *c = train_model_config(m);
	train_lora *lo = make_lora(c, "all-linear", 2, 0.0, 4);
	randomize(lo, 8, 0.3);
	train_engine *e = train_engine_new_lora(m, lo);
	enum { NP = 3 };
	train_pair pairs[NP];
	make_pairs(pairs, NP, c->vocab);
	const train_pair *pp[NP] = {&pairs[0], &pairs[1], &pairs[2]};
	train_loss_cfg lc;
	train_loss_cfg_default(&lc);
	lc.beta = 0.5;
	train_engine_zero_grad(e);
	loss_of(e, &lc, pp, NP);
	size_t np = train_lora_nparams(lo);
	float *g = malloc(sizeof(float) * np);
	memcpy(g, train_engine_grads(e), sizeof(float) * np);
	TAP_OK(train_engine_nparams(e) == np, "%s: the engine trains the adapter's %zu parameters", what, np);
	/* the loss is ~0.7 with summed log-probs of ~-15: float32 roundoff
	 * ~1e-6 in it, so h = 1e-2 gives ~1e-4 of noise on derivatives of
	 * ~1e-2..1; curvature terms are O(h^2) ~ 1e-4 */
	double h = 1e-2, worst = 0;
	float *p = train_lora_params(lo);
	int checked = 0;
	for (size_t k = 0; k < np; k += 1 + np / 150) {
		float keep = p[k];
		p[k] = (float)(keep + h);
		double lp = loss_of(e, &lc, pp, NP);
		p[k] = (float)(keep - h);
		double lm = loss_of(e, &lc, pp, NP);
		p[k] = keep;
		double fd = (lp - lm) / (2 * h), err = fabs(fd - g[k]) / (2e-3 + fabs(fd));
		worst = err > worst ? err : worst;
		checked++;
	}
	TAP_OK(worst < 2e-2, "%s: LoRA gradient of the DPO loss matches finite differences "
	       "(%d of %zu parameters, worst rel %.2g)", what, checked, np, worst);
	/* a step changes A/B, never the base */
	size_t nb = train_model_nparams(m);
	float *base = malloc(sizeof(float) * nb), *before = malloc(sizeof(float) * np);
	memcpy(base, train_model_params(m), sizeof(float) * nb);
	memcpy(before, p, sizeof(float) * np);
	train_engine_zero_grad(e);
	loss_of(e, &lc, pp, NP);
	train_adamw opt = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01};
	TAP_OK(train_engine_step(e, &opt, 1e-2, 1.0, NULL) == 0, "%s: step", what);
	TAP_OK(!memcmp(base, train_model_params(m), sizeof(float) * nb), "%s: base weights untouched", what);
	TAP_OK(memcmp(before, p, sizeof(float) * np) != 0, "%s: the adapter moved", what);
	free(base);
	free(before);
	free(g);
	for (int i = 0; i < NP; i++)
		train_pair_free(&pairs[i]);
	train_engine_free(e);
	train_lora_free(lo);
	train_model_free(m);
}

/* B = 0 changes nothing; merged == unmerged; trainer forward == engine's;
 * save/load round trip. */
static void check_merge(const char *cfg_json, const char *targets, const char *tmp, const char *what)
{
	char *err = NULL;
	train_model *m = train_model_init(cfg_json, strlen(cfg_json), 5, &err);
	train_model *mm = train_model_init(cfg_json, strlen(cfg_json), 5, &err);
	const train_config *c = train_model_config(m);
	int ids[12] = {1, 5, 9, 22, 7, 8, 30, 31, 2, 17, 3, 11}, T = 12;
	float base[12], with[12], merged[12];
	train_model_logprobs(m, ids, T, base, &err);
	train_lora *lo = make_lora(c, targets, 4, 0.1, 6);
	train_model_set_lora(m, lo);
	train_model_logprobs(m, ids, T, with, &err);
	TAP_OK(!memcmp(base, with, sizeof(float) * (T - 1)), "%s: B = 0 leaves the log-probs unchanged", what);
	randomize(lo, 9, 0.4);
	train_model_logprobs(m, ids, T, with, &err);
	train_lora_merge(lo, mm);
	train_model_logprobs(mm, ids, T, merged, &err);
	double worst = 0, moved = 0;
	for (int t = 0; t < T - 1; t++) {
		worst = fmax(worst, fabs(with[t] - merged[t]));
		moved = fmax(moved, fabs(with[t] - base[t]));
	}
	TAP_OK(moved > 1e-2, "%s: the adapter changes the log-probs (by %.3g)", what, moved);
	TAP_OK(worst <= 1e-5, "%s: merged log-probs equal unmerged within 1e-5 (%.2g)", what, worst);
	/* the trainer's forward (its own kernels and hook) */
	train_model_set_lora(m, NULL);
	train_engine *e = train_engine_new_lora(m, lo);
	train_pair pr = {.prompt = ids, .chosen = ids + 4, .rejected = ids + 4, .np = 4, .nc = 8, .nr = 8};
	const train_pair *pp = &pr;
	double lc = 0, lr = 0, want = 0;
	train_engine_logps(e, &pp, 1, &lc, &lr, NULL, NULL);
	for (int t = 3; t < T - 1; t++)
		want += with[t];
	TAP_NEAR(lc, want, 1e-4 * fabs(want), "%s: the trainer's forward equals the model engine's", what);
	/* save and load */
	TAP_OK(train_lora_save(lo, tmp, "base", &err) == 0, "%s: save", what);
	train_lora *lo2 = train_lora_load(c, tmp, &err);
	TAP_OK(lo2 && train_lora_nparams(lo2) == train_lora_nparams(lo) &&
	       !memcmp(train_lora_params(lo2), train_lora_params(lo), sizeof(float) * train_lora_nparams(lo)),
	       "%s: load gives back the same adapter", what);
	TAP_OK(lo2 && train_lora_config(lo2)->r == 4 && train_lora_config(lo2)->alpha == 8 &&
	       fabs(train_lora_config(lo2)->dropout - 0.1) < 1e-12, "%s: and its settings", what);
	train_lora_free(lo2);
	train_engine_free(e);
	train_lora_free(lo);
	train_model_free(m);
	train_model_free(mm);
}

static void check_targets(void)
{
	train_config c;
	char *err = NULL;
	train_config_parse(LLAMA, strlen(LLAMA), &c, &err);
	TAP_OK(train_lora_check_targets(&c, "q_proj,v_proj", &err) == 0, "q_proj,v_proj accepted");
	TAP_OK(train_lora_check_targets(&c, "self_attn.o_proj", &err) == 0, "a longer suffix is accepted");
	TAP_OK(train_lora_check_targets(&c, "q_proj,lm_head", &err) != 0 && strstr(err, "\"lm_head\""),
	       "lm_head refused, named");
	free(err);
	err = NULL;
	train_lora_cfg lc = {.r = 2, .alpha = 4, .targets = "all-linear"};
	train_lora *lo = train_lora_new(&c, &lc, 1, &err);
	TAP_IS_INT(train_lora_nmodules(lo), 14, "all-linear: 7 modules per layer");
	TAP_IS_STR(train_lora_target_names(lo), "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
		   "all-linear expands to PEFT's names");
	/* A as kaiming_uniform(a=sqrt(5)): within +-1/sqrt(in), spread over it */
	const float *A = train_lora_params(lo);
	double mx = 0;
	for (int i = 0; i < 2 * 16; i++)
		mx = fmax(mx, fabs(A[i]));
	TAP_OK(mx <= 0.25 && mx > 0.15, "A drawn uniformly in +-1/sqrt(16) (max %.3g)", mx);
	train_lora_free(lo);
	lc.r = 0;
	lo = train_lora_new(&c, &lc, 1, &err);
	TAP_OK(!lo && strstr(err, "rank"), "r = 0 refused");
	free(err);
	err = NULL;
	train_config_parse(GPT2, strlen(GPT2), &c, &err);
	TAP_OK(train_lora_check_targets(&c, "q_proj", &err) != 0 && strstr(err, "c_attn"),
	       "GPT-2: q_proj refused, the GPT-2 names listed");
	free(err);
	err = NULL;
	lc = (train_lora_cfg){.r = 2, .alpha = 4, .targets = "c_proj"};
	lo = train_lora_new(&c, &lc, 1, &err);
	TAP_IS_INT(train_lora_nmodules(lo), 4, "GPT-2 c_proj: attention and MLP, as PEFT matches it");
	train_lora_free(lo);
	lc.targets = "mlp.c_proj";
	lo = train_lora_new(&c, &lc, 1, &err);
	TAP_IS_INT(train_lora_nmodules(lo), 2, "GPT-2 mlp.c_proj: the MLP's only");
	train_lora_free(lo);
}

/* A forward and backward over a slice of a micro-batch (train_lora_set_rows:
 * pairs [off, off + n) of ntot, rows padded to T of the whole's Ttot, as an
 * MPI rank runs them) draw the dropout masks of the same rows of the whole
 * micro-batch: the slice's outputs and input gradients equal the whole's
 * rows; without the layout they do not. */
static void check_slices(const train_config *c, const char *what)
{
	enum { NTOT = 3, TT = 4, OC = 16, NIN = 24, R = 3 };
	int N = 2 * NTOT * TT;
	train_lora *lo = make_lora(c, "down_proj", R, 0.5, 21);
	randomize(lo, 8, 0.5);
	uint64_t s = 7;
	float *x = malloc(sizeof(float) * N * NIN), *dout = malloc(sizeof(float) * N * OC);
	float *out = calloc((size_t)N * OC, sizeof(float)), *dx = calloc((size_t)N * NIN, sizeof(float));
	float *xs = malloc(sizeof(float) * N * NIN), *ds = malloc(sizeof(float) * N * OC);
	float *os = malloc(sizeof(float) * N * OC), *dxs = malloc(sizeof(float) * N * NIN);
	for (int i = 0; i < N * NIN; i++)
		x[i] = (float)urand(&s);
	for (int i = 0; i < N * OC; i++)
		dout[i] = (float)urand(&s);
	train_lora_set_training(lo, 1, 5);
	train_lora_forward(lo, 0, TRAIN_LORA_PROJ, out, OC, x, N);
	train_lora_backward(lo, 0, TRAIN_LORA_PROJ, dx, dout, OC, x, N);
	/* slices [0, 1) padded to 2 and [1, 3) padded to 3 (of the whole's 4) */
	const int sl[2][3] = {{0, 1, 2}, {1, 2, 3}};
	double worst = 0, moved = 0;
	for (int layout = 1; layout >= 0; layout--)
		for (int k = 0; k < 2; k++) {
			int off = sl[k][0], n = sl[k][1], T = sl[k][2], rows = 2 * n * T;
			for (int q = 0; q < 2 * n; q++) /* local sequence q: whole's g */
				for (int t = 0; t < T; t++) {
					int g = (q < n ? 0 : NTOT) + off + q % n;
					memcpy(xs + ((size_t)q * T + t) * NIN, x + ((size_t)g * TT + t) * NIN,
					       sizeof(float) * NIN);
					memcpy(ds + ((size_t)q * T + t) * OC, dout + ((size_t)g * TT + t) * OC,
					       sizeof(float) * OC);
				}
			train_lora_set_rows(lo, layout ? n : 0, T, off, NTOT, TT);
			memset(os, 0, sizeof(float) * (size_t)rows * OC);
			memset(dxs, 0, sizeof(float) * (size_t)rows * NIN);
			train_lora_forward(lo, 0, TRAIN_LORA_PROJ, os, OC, xs, rows);
			train_lora_backward(lo, 0, TRAIN_LORA_PROJ, dxs, ds, OC, xs, rows);
			for (int q = 0; q < 2 * n; q++)
				for (int t = 0; t < T; t++) {
					int g = (q < n ? 0 : NTOT) + off + q % n;
					double d = 0;
					for (int i = 0; i < OC; i++)
						d = fmax(d, fabs(os[((size_t)q * T + t) * OC + i] -
								 out[((size_t)g * TT + t) * OC + i]));
					for (int i = 0; i < NIN; i++)
						d = fmax(d, fabs(dxs[((size_t)q * T + t) * NIN + i] -
								 dx[((size_t)g * TT + t) * NIN + i]));
					if (layout)
						worst = fmax(worst, d);
					else
						moved = fmax(moved, d);
				}
		}
	TAP_OK(worst < 1e-5, "%s: a slice of the micro-batch draws the whole's dropout masks (worst %.2g)",
	       what, worst);
	TAP_OK(moved > 1e-3, "%s: ... which the slice's own row numbers would not (%.2g)", what, moved);
	train_lora_free(lo);
	free(x);
	free(dout);
	free(out);
	free(dx);
	free(xs);
	free(ds);
	free(os);
	free(dxs);
}

int main(void)
{
	train_config cl, cg;
	char *err = NULL;
	train_config_parse(LLAMA, strlen(LLAMA), &cl, &err);
	train_config_parse(GPT2, strlen(GPT2), &cg, &err);
	/* k_proj and v_proj sit at row offsets 16 and 24 of the fused QKV (32 rows) */
	check_module(&cl, "k_proj,v_proj", TRAIN_LORA_QKV, 32, 16, "llama k/v_proj");
	check_module(&cl, "down_proj", TRAIN_LORA_PROJ, 16, 24, "llama down_proj");
	check_module(&cg, "c_attn", TRAIN_LORA_QKV, 48, 16, "gpt2 c_attn");
	check_slices(&cl, "llama down_proj");
	check_engine(LLAMA, "llama");
	check_engine(GPT2, "gpt2");
	char *tmp = tap_tmpdir("test_lora");
	check_merge(LLAMA, "all-linear", tmp, "llama");
	check_merge(GPT2, "c_attn,c_fc,c_proj", tmp, "gpt2");
	tap_rmtree(tmp);
	free(tmp);
	check_targets();
	return tap_done();
}

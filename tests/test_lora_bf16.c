/* test_lora_bf16.c: LoRA training over a frozen base held in bf16
 * (train_model_to_bf16, as dpo-train --lora-r --precision bf16 loads it;
 * the trainer reads its matrices through train_gemm_bf16_wb), on Llama
 * (untied), Qwen3 (tied LM head, q/k norms; a vocabulary of two logit
 * chunks, recomputed in backward) and GPT-2 (tied, biases, learned
 * positions) shapes:
 *   - no float32 copy of the base's matrices remains: train_model_params
 *     is NULL, so are the matrix pointers of train_weights, and the model
 *     holds 2 bytes per matrix weight plus 4 per 1-D weight;
 *   - with bf16 matmuls, training on it is bit for bit training on a
 *     float32 base that holds the same (bf16-representable) values: the
 *     same losses and gradient norms step by step, and the same adapter;
 *     with activation checkpointing too (recomputed blocks read the bf16
 *     base the same way);
 *   - against the float32 run on the unrounded base (f32 matmuls), each
 *     step's loss stays within the bf16 tolerance tests/test_trainer_bf16.c
 *     derives: |d loss| <= beta * 2 * 4 sqrt(2T) K eps1 sqrt(4L+1) z_rms,
 *     eps1 = 2^-9 sqrt(2/3), K = 2, T the longest completion, z_rms the rms
 *     of the f32 base's logits; and the losses differ (bf16 did run). */
#include "config.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tests/tap.h"
#include "train/lora.h"
#include "train/matmul_bf16.h"
#include "train/model.h"
#include "train/precision.h"
#include "train/trainer.h"
#include "util/rand.h"

static const char *LLAMA =
	"{\"model_type\":\"llama\",\"hidden_size\":32,\"num_hidden_layers\":2,"
	"\"num_attention_heads\":4,\"num_key_value_heads\":2,\"intermediate_size\":40,"
	"\"vocab_size\":60,\"max_position_embeddings\":32,\"rms_norm_eps\":1e-5,"
	"\"tie_word_embeddings\":false,\"initializer_range\":0.2}";
static const char *QWEN3 =
	"{\"model_type\":\"qwen3\",\"hidden_size\":32,\"num_hidden_layers\":2,"
	"\"num_attention_heads\":4,\"num_key_value_heads\":2,\"head_dim\":8,"
	"\"intermediate_size\":48,\"vocab_size\":4200,\"max_position_embeddings\":32,"
	"\"rms_norm_eps\":1e-6,\"rope_theta\":10000,\"tie_word_embeddings\":true,"
	"\"initializer_range\":0.2}";
static const char *GPT2 =
	"{\"model_type\":\"gpt2\",\"n_embd\":32,\"n_layer\":2,\"n_head\":4,\"vocab_size\":60,"
	"\"n_positions\":32,\"initializer_range\":0.2}";

enum { NP = 3, STEPS = 4, TMAX = 5 };

static void make_pairs(train_pair *p, int V)
{
	uint64_t s = 11;
	for (int i = 0; i < NP; i++) {
		memset(&p[i], 0, sizeof p[i]);
		p[i].np = 3;
		p[i].nc = TMAX;
		p[i].nr = 3 + i;
		p[i].prompt = malloc(sizeof(int) * 3);
		p[i].chosen = malloc(sizeof(int) * TMAX);
		p[i].rejected = malloc(sizeof(int) * TMAX);
		for (int t = 0; t < TMAX; t++) {
			if (t < 3)
				p[i].prompt[t] = (int)(util_splitmix64(&s) % V);
			p[i].chosen[t] = (int)(util_splitmix64(&s) % V);
			p[i].rejected[t] = (int)(util_splitmix64(&s) % V);
		}
		p[i].ref_c = -20 + i;
		p[i].ref_r = -18 - i;
	}
}

static train_model *model(const char *cfg, int round)
{
	char *err = NULL;
	train_model *m = train_model_init(cfg, strlen(cfg), 9, &err);
	if (!m) {
		tap_diag("init: %s", err);
		exit(1);
	}
	if (round) { /* every weight made bf16-representable */
		float *p = train_model_params(m);
		for (size_t i = 0; i < train_model_nparams(m); i++)
			p[i] = train_bf16_to_f32(train_f32_to_bf16(p[i]));
	}
	return m;
}

/* STEPS AdamW steps of a LoRA (all-linear, r 4, dropout 0.1) over m in
 * precision prec: losses[] and gnorm[] per step; the adapter, returned. */
static train_lora *run(train_model *m, train_precision prec, int budget0, int ckpt,
		       double *losses, double *gnorm)
{
	char *err = NULL;
	const train_config *c = train_model_config(m);
	train_lora_cfg lc = {.r = 4, .alpha = 8, .dropout = 0.1,
			     .targets = (char *)"all-linear"};
	train_lora *lo = train_lora_new(c, &lc, 5, &err);
	train_gemm_set_precision(prec);
	train_engine *e = train_engine_new_lora(m, lo);
	if (budget0)
		train_engine_set_logits_budget(e, 0);
	train_engine_set_checkpointing(e, ckpt);
	train_pair pairs[NP];
	make_pairs(pairs, c->vocab);
	const train_pair *pp[NP] = {&pairs[0], &pairs[1], &pairs[2]};
	train_loss_cfg lcf;
	train_loss_cfg_default(&lcf);
	lcf.beta = 0.5;
	train_adamw opt = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01};
	for (int s = 0; s < STEPS; s++) {
		train_loss_batch out;
		losses[s] = NAN;
		if (train_engine_accumulate(e, &lcf, pp, NP, 1.0, &out) == 0)
			losses[s] = out.loss;
		train_engine_step(e, &opt, 5e-2, 1.0, &gnorm[s]);
	}
	for (int i = 0; i < NP; i++)
		train_pair_free(&pairs[i]);
	train_engine_free(e);
	train_gemm_set_precision(TRAIN_PREC_F32);
	return lo;
}

/* rms of the logits of the first pair's chosen sequence under m (f32) */
static double logit_rms(train_model *m)
{
	const train_config *c = train_model_config(m);
	int ids[3 + TMAX];
	train_pair p[NP];
	make_pairs(p, c->vocab);
	memcpy(ids, p[0].prompt, sizeof(int) * 3);
	memcpy(ids + 3, p[0].chosen, sizeof(int) * TMAX);
	for (int i = 0; i < NP; i++)
		train_pair_free(&p[i]);
	size_t n = (size_t)(3 + TMAX) * c->vocab;
	float *lg = malloc(sizeof(float) * n);
	char *err = NULL;
	double s = 0;
	if (train_model_logits(m, ids, 3 + TMAX, lg, &err) == 0)
		for (size_t i = 0; i < n; i++)
			s += (double)lg[i] * lg[i];
	free(lg);
	return sqrt(s / (double)n);
}

static void check(const char *cfg, const char *what, int budget0)
{
	/* the base in bf16, and the f32 base of the same values */
	train_model *h = model(cfg, 1), *f = model(cfg, 1);
	train_model_to_bf16(h);
	const train_weights *w = train_model_weights(h);
	int nt;
	const train_param *tab = train_model_param_table(h, &nt);
	size_t want = 0;
	for (int i = 0; i < nt; i++)
		want += tab[i].numel * (tab[i].ndim == 2 ? 2 : 4);
	TAP_OK(train_model_params(h) == NULL && !w->wte && !w->wqkv && !w->wo && !w->wfc &&
	       !w->wproj && !w->lm_head && train_model_precision(h) == TRAIN_PREC_BF16,
	       "%s: the bf16 base has no float32 matrix", what);
	TAP_OK(train_model_weight_bytes(h) == want && want < 3 * train_model_nparams(f),
	       "%s: it holds %zu bytes (2 per matrix weight, 4 per 1-D weight; f32: %zu)", what,
	       train_model_weight_bytes(h), train_model_weight_bytes(f));

	double lh[STEPS], lf[STEPS], gh[STEPS], gf[STEPS];
	train_lora *ah = run(h, TRAIN_PREC_BF16, budget0, 0, lh, gh);
	train_lora *af = run(f, TRAIN_PREC_BF16, budget0, 0, lf, gf);
	int same = 1;
	for (int s = 0; s < STEPS; s++)
		same &= lh[s] == lf[s] && gh[s] == gf[s];
	TAP_OK(same && isfinite(lh[0]), "%s: bf16 base = f32 base of the same values, bit for bit "
	       "(losses and gradient norms of %d steps; first %.6f, last %.6f)",
	       what, STEPS, lh[0], lh[STEPS - 1]);
	size_t np = train_lora_nparams(ah);
	TAP_OK(!memcmp(train_lora_params(ah), train_lora_params(af), sizeof(float) * np),
	       "%s: ... the same adapter", what);
	TAP_OK(lh[STEPS - 1] < lh[0], "%s: the loss falls (%.4f -> %.4f)", what, lh[0],
	       lh[STEPS - 1]);
	train_lora *ac = run(h, TRAIN_PREC_BF16, budget0, 1, lf, gf);
	same = !memcmp(train_lora_params(ah), train_lora_params(ac), sizeof(float) * np);
	for (int s = 0; s < STEPS; s++)
		same &= lh[s] == lf[s] && gh[s] == gf[s];
	TAP_OK(same, "%s: ... and with --gradient-checkpointing, bit for bit", what);
	train_lora_free(ac);
	train_lora_free(ah);
	train_lora_free(af);
	train_model_free(h);
	train_model_free(f);

	/* against f32 throughout on the unrounded base */
	train_model *u = model(cfg, 0), *hu = model(cfg, 0);
	train_model_to_bf16(hu);
	double z = logit_rms(u);
	const train_config *c = train_model_config(u);
	double eps1 = 0x1p-9 * sqrt(2.0 / 3.0);
	double tol = 0.5 * 2 * 4 * sqrt(2.0 * TMAX) * 2.0 * eps1 * sqrt(4.0 * c->n_layer + 1) * z;
	train_lora *a32 = run(u, TRAIN_PREC_F32, budget0, 0, lf, gf);
	train_lora *a16 = run(hu, TRAIN_PREC_BF16, budget0, 0, lh, gh);
	double d = 0;
	for (int s = 0; s < STEPS; s++)
		d = fmax(d, fabs(lh[s] - lf[s]));
	TAP_OK(d > 0 && d <= tol, "%s: bf16 base vs f32: losses differ by %.3g (0 < d <= %.3g)",
	       what, d, tol);
	train_lora_free(a32);
	train_lora_free(a16);
	train_model_free(u);
	train_model_free(hu);
}

int main(void)
{
	check(LLAMA, "llama", 0);
	check(QWEN3, "qwen3 tied", 1);
	check(GPT2, "gpt2", 0);
	return tap_done();
}

/* trainer.c: model-level forward/backward for DPO and the AdamW update
 * (see trainer.h). */
#include "config.h"
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "train/layers.h"
#include "train/layers_backward.h"
#include "train/attention_bf16.h"
#include "train/matmul_bf16.h"
#include "train/matvec_bf16.h"
#include "train/model_bf16.h"
#include "train/trainer_bf16.h"
#include "train/lora.h"
#include "train/trainer.h"
#include "train/vecmath_bf16.h"
#include "util/xmalloc.h"
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#ifdef HAVE_BLAS
#include <cblas.h>
#undef I /* complex.h's, from cblas.h */
#endif

/* Memory allowed for keeping the vocabulary logits of the scored rows
 * between forward and backward (saves recomputing them); above it the
 * backward recomputes them chunk by chunk and no [rows x V] buffer exists. */
#ifndef TRAIN_LOGITS_BUDGET_MB
#define TRAIN_LOGITS_BUDGET_MB 256
#endif

/* A contiguous run of the parameter arena with one decay setting. */
typedef struct seg {
	size_t off, n;
	int decay;
} seg;

struct train_engine {
	train_model *m;
	const train_config *c;
	size_t np;
	float *grads, *m1, *m2;
	train_weights gw;
	long t;
	seg *segs;
	int nsegs;
	/* activations for the current batch */
	float *acts_mem;
	size_t acts_cap;
	train_acts a;
	/* --gradient-checkpointing: the per-layer activations of a are one
	 * layer's (slot 0, reused by every layer and recomputed in backward);
	 * ckpt_out [L, N, C] keeps each block's output, the next one's input */
	int ckpt;
	float *ckpt_out;
	size_t ckpt_cap;
	/* batch buffers, sized for the largest N seen */
	int *ids, *targets;
	float *dlogp;
	size_t rows_cap;
	/* backward scratch, and the forward's vocabulary projection scratch */
	float *scr, *head;
	size_t scr_cap, head_cap;
	/* the logits of the scored rows, kept from forward for backward when
	 * they fit TRAIN_LOGITS_BUDGET_MB */
	float *logits;
	size_t logits_cap;
	int logits_valid, logits_rows;
	double logits_budget_mb;
	/* per sequence of the last forward: the sum over its scored rows of the
	 * row's mean logit (TRL's logits/chosen and logits/rejected) */
	double *seq_lsum;
	int seq_cap, seq_n;
	double last_flops;
	long last_tokens;
	/* the loss of a batch split over processes (trainer_mpi.c), or NULL */
	train_loss_fn loss_fn;
	void *loss_ud;
	/* told as backward finishes each part of the gradients, or NULL */
	train_grad_ready_fn grad_ready;
	void *ready_ud;
	char err[512];
	train_lora *lora; /* LoRA mode: only the adapter trains (train_engine_new_lora) */
	long nacc;        /* micro-batches accumulated since the last step (dropout draws) */
};

static void set_err(train_engine *e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->err, sizeof(e->err), fmt, ap);
	va_end(ap);
}

void train_pair_free(train_pair *p)
{
	if (!p)
		return;
	free(p->prompt);
	free(p->chosen);
	free(p->rejected);
	p->prompt = p->chosen = p->rejected = NULL;
}

static int seg_cmp(const void *a, const void *b)
{
	const seg *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

train_engine *train_engine_new(train_model *m)
{
	train_engine *e = xcalloc(1, sizeof(*e));
	e->m = m;
	e->c = train_model_config(m);
	e->np = train_model_nparams(m);
	e->grads = xcalloc(e->np ? e->np : 1, sizeof(float));
	e->m1 = xcalloc(e->np ? e->np : 1, sizeof(float));
	e->m2 = xcalloc(e->np ? e->np : 1, sizeof(float));
	train_weights_layout(e->c, e->grads, &e->gw);
	/* decay segments from the parameter table, gaps filled (none expected) */
	int nt = 0;
	const train_param *tab = train_model_param_table(m, &nt);
	seg *s = xcalloc((size_t)nt * 2 + 2, sizeof(seg));
	int ns = 0;
	for (int i = 0; i < nt; i++)
		s[ns++] = (seg){tab[i].offset, tab[i].numel, train_param_decays(tab[i].name, tab[i].ndim)};
	qsort(s, ns, sizeof(seg), seg_cmp);
	seg *all = xcalloc((size_t)ns * 2 + 2, sizeof(seg));
	int na = 0;
	size_t pos = 0;
	for (int i = 0; i < ns; i++) {
		if (s[i].off + s[i].n <= pos)
			continue; /* duplicate view */
		if (s[i].off > pos)
			all[na++] = (seg){pos, s[i].off - pos, 1};
		size_t start = s[i].off > pos ? s[i].off : pos;
		all[na++] = (seg){start, s[i].off + s[i].n - start, s[i].decay};
		pos = s[i].off + s[i].n;
	}
	if (pos < e->np)
		all[na++] = (seg){pos, e->np - pos, 1};
	free(s);
	e->segs = all;
	e->nsegs = na;
	e->err[0] = 0;
	train_gemm_init();
	e->logits_budget_mb = TRAIN_LOGITS_BUDGET_MB;
	return e;
}

train_engine *train_engine_new_lora(train_model *m, train_lora *lo)
{
	train_engine *e = xcalloc(1, sizeof(*e));
	e->m = m;
	e->c = train_model_config(m);
	e->lora = lo;
	e->np = lo ? train_lora_nparams(lo) : 0;
	e->grads = lo ? train_lora_grads(lo) : NULL;
	e->m1 = xcalloc(e->np ? e->np : 1, sizeof(float));
	e->m2 = xcalloc(e->np ? e->np : 1, sizeof(float));
	/* e->gw stays all NULL: no base weight gets a gradient; A and B decay */
	e->segs = xcalloc(1, sizeof(seg));
	e->segs[0] = (seg){0, e->np, 1};
	e->nsegs = e->np ? 1 : 0;
	train_gemm_init();
	e->logits_budget_mb = TRAIN_LOGITS_BUDGET_MB;
	return e;
}

size_t train_engine_nparams(const train_engine *e)
{
	return e->np;
}

void train_engine_free(train_engine *e)
{
	if (!e)
		return;
	if (!e->lora)
		free(e->grads); /* the adapter's own otherwise */
	free(e->m1);
	free(e->m2);
	free(e->segs);
	free(e->acts_mem);
	free(e->ckpt_out);
	free(e->ids);
	free(e->targets);
	free(e->dlogp);
	free(e->scr);
	free(e->head);
	free(e->logits);
	free(e->seq_lsum);
	free(e);
}

const char *train_engine_errmsg(const train_engine *e)
{
	return e->err;
}

float *train_engine_grads(train_engine *e)
{
	return e->grads;
}

float *train_engine_moment1(train_engine *e)
{
	return e->m1;
}

float *train_engine_moment2(train_engine *e)
{
	return e->m2;
}

long train_engine_steps(const train_engine *e)
{
	return e->t;
}

void train_engine_set_steps(train_engine *e, long t)
{
	e->t = t;
}

double train_engine_last_flops(const train_engine *e)
{
	return e->last_flops;
}

long train_engine_last_tokens(const train_engine *e)
{
	return e->last_tokens;
}

void train_engine_set_logits_budget(train_engine *e, double mb)
{
	e->logits_budget_mb = mb;
}

void train_engine_zero_grad(train_engine *e)
{
	if (e->np)
		memset(e->grads, 0, sizeof(float) * e->np);
}

double train_engine_grad_norm(const train_engine *e)
{
	return sqrt(train_sumsq(e->grads, e->np));
}

/* ---- batches ---- */

/* Lay out 2n rows (chosen then rejected) of prompt+completion into e->ids
 * and e->targets; *T gets the padded length. */
static int build_batch(train_engine *e, const train_pair *const *pairs, int n, int *Tout)
{
	const train_config *c = e->c;
	int T = 1;
	for (int i = 0; i < n; i++) {
		const train_pair *p = pairs[i];
		int lc = p->np + p->nc, lr = p->np + p->nr;
		if (lc > T)
			T = lc;
		if (lr > T)
			T = lr;
	}
	if (T > c->max_pos) {
		set_err(e, "a sequence of %d tokens is longer than the model's %d positions (use --max-length)",
			T, c->max_pos);
		return TRAIN_EARG;
	}
	size_t N = (size_t)2 * n * T;
	if (N > e->rows_cap) {
		e->ids = xreallocarray(e->ids, N, sizeof(int));
		e->targets = xreallocarray(e->targets, N, sizeof(int));
		e->dlogp = xreallocarray(e->dlogp, N, sizeof(float));
		e->rows_cap = N;
	}
	long tokens = 0;
	for (int r = 0; r < 2 * n; r++) {
		const train_pair *p = pairs[r % n];
		const int *comp = r < n ? p->chosen : p->rejected;
		int ncomp = r < n ? p->nc : p->nr, len = p->np + ncomp;
		int *ids = e->ids + (size_t)r * T, *tg = e->targets + (size_t)r * T;
		for (int t = 0; t < T; t++) {
			int id = t < p->np ? p->prompt[t] : t < len ? comp[t - p->np] : 0;
			if (id < 0 || id >= c->vocab) {
				set_err(e, "token id %d out of range (vocabulary of %d)", id, c->vocab);
				return TRAIN_EARG;
			}
			ids[t] = id;
		}
		for (int t = 0; t < T; t++) {
			int nx = t + 1;
			tg[t] = nx >= p->np && nx < len && nx >= 1 ? ids[nx] : -1;
		}
		tokens += len;
	}
	e->last_tokens = tokens;
	*Tout = T;
	return 0;
}

static void ensure_acts(train_engine *e, int B, int T)
{
	train_config one = *e->c;
	if (e->ckpt) {
		/* one layer's activations, plus the block outputs */
		one.n_layer = 1;
		size_t out = (size_t)e->c->n_layer * B * T * e->c->dim;
		if (out > e->ckpt_cap) {
			free(e->ckpt_out);
			e->ckpt_out = xmalloc(sizeof(float) * out);
			e->ckpt_cap = out;
		}
	}
	size_t need = train_acts_layout(&one, B, T, NULL, NULL);
	if (need > e->acts_cap) {
		free(e->acts_mem);
		e->acts_mem = xmalloc(sizeof(float) * need);
		e->acts_cap = need;
	}
	train_acts_layout(&one, B, T, e->acts_mem, &e->a);
}

void train_engine_set_checkpointing(train_engine *e, int on)
{
	e->ckpt = on != 0;
	if (!e->ckpt) {
		free(e->ckpt_out);
		e->ckpt_out = NULL;
		e->ckpt_cap = 0;
	}
	/* the next batch lays the arena out again (its size differs) */
	free(e->acts_mem);
	e->acts_mem = NULL;
	e->acts_cap = 0;
}

size_t train_engine_activation_floats(const train_engine *e)
{
	return e->acts_cap + e->ckpt_cap;
}

/* Layer l's output (the input of layer l + 1), N x C, in either mode. */
static float *block_out(const train_engine *e, int l, size_t NC)
{
	return e->ckpt ? e->ckpt_out + (size_t)l * NC : e->a.res2 + (size_t)l * NC;
}

#define OFF(p, n) ((p) ? (p) + (n) : NULL)
/* weight matrix f at offset n, of the f32 weights w or the bf16 ones hw */
#define WAT(f, n) train_wmat_at(w->f, hw->f, (n))
static const train_bf16w no_bf16w;
/* The bf16 matrices of a frozen base held in bf16, else all NULL. */
static const train_bf16w *bf16w(const train_engine *e)
{
	const train_bf16w *h = train_model_bf16_weights(e->m);
	return h ? h : &no_bf16w;
}


/* ---- forward (the model engine's, with threaded GEMMs and a compacted
 * vocabulary projection: only rows with a target are projected) ---- */

static void mm_fwd(float *out, const float *inp, train_wmat W, const float *bias, int N, int C,
		   int OC)
{
	const float *w = W.f;
	if (W.h) {
		train_linear_bf16w_forward(out, inp, W.h, bias, N, C, OC);
		return;
	}
	int gemm = train_gemm_precision() == TRAIN_PREC_BF16; /* every size in bf16 */
#ifdef HAVE_BLAS
	gemm |= train_layers_use_blas && N >= 4 && (size_t)N * C * OC >= 1u << 20;
#endif
	if (gemm) {
		if (bias)
			for (int n = 0; n < N; n++)
				memcpy(out + (size_t)n * OC, bias, sizeof(float) * OC);
		train_gemm(0, 1, N, OC, C, inp, C, w, C, bias ? 1.0f : 0.0f, out, OC);
		return;
	}
	train_matmul_forward(out, inp, w, bias, N, C, OC);
}

static void norm_fwd(const train_config *c, float *out, float *mean, float *rstd, const float *x,
		     const float *w, const float *b, int N)
{
	if (c->arch == TRAIN_ARCH_GPT2)
		train_layernorm_forward(out, mean, rstd, x, w, b, N, c->dim, c->norm_eps);
	else
		train_rmsnorm_forward(out, rstd, x, w, N, c->dim, c->norm_eps);
}

/* Causal GQA attention forward for training (pos0 NULL, S == T), the same
 * function and saved lse as train_attention_forward; with BLAS it works on
 * blocks of ATTF_QB queries with two sgemms (scores, then P.V). */
#define ATTF_QB 64
static void attention_fwd(float *out, float *lse, const float *q, const float *k, const float *v,
			  int B, int T, int NH, int NKV, int hd)
{
	if (train_gemm_precision() == TRAIN_PREC_BF16 && train_attention_bf16_on) { /* bf16 products */
		train_attention_forward_bf16(out, lse, q, k, v, B, T, NH, NKV, hd);
		return;
	}
#ifdef HAVE_BLAS
	if (train_layers_use_blas) {
		float scale = 1.0f / sqrtf((float)hd);
		int group = NH / NKV, ks = NKV * hd, qs = NH * hd;
#pragma omp parallel
		{
			float *P = xmalloc(sizeof(float) * (size_t)ATTF_QB * T);
#pragma omp for collapse(2) schedule(dynamic, 1)
			for (int b = 0; b < B; b++)
				for (int h = 0; h < NH; h++)
					for (int t0 = 0; t0 < T; t0 += ATTF_QB) {
						int nq = T - t0 < ATTF_QB ? T - t0 : ATTF_QB, nk = t0 + nq;
						size_t qo = ((size_t)b * T + t0) * qs + (size_t)h * hd;
						const float *kb = k + (size_t)b * T * ks + (size_t)(h / group) * hd;
						const float *vb = v + (size_t)b * T * ks + (size_t)(h / group) * hd;
						float *L = lse + ((size_t)b * NH + h) * T + t0;
						cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, hd,
							    scale, q + qo, qs, kb, ks, 0.0f, P, nk);
						for (int i = 0; i < nq; i++) {
							float *r = P + (size_t)i * nk;
							int last = t0 + i;
							float mx = -INFINITY;
							for (int j = 0; j <= last; j++)
								mx = r[j] > mx ? r[j] : mx;
							double sum = 0;
							for (int j = 0; j <= last; j++) {
								r[j] = expf(r[j] - mx);
								sum += r[j];
							}
							float inv = (float)(1.0 / sum);
							for (int j = 0; j <= last; j++)
								r[j] *= inv;
							for (int j = last + 1; j < nk; j++)
								r[j] = 0.0f;
							L[i] = mx + (float)log(sum);
						}
						cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, nk,
							    1.0f, P, nk, vb, ks, 0.0f, out + qo, qs);
					}
			free(P);
		}
		return;
	}
#endif
	train_attention_forward(out, lse, q, k, v, NULL, B, T, T, NH, NKV, hd);
}

static void block_forward(train_engine *e, int l, const float *x, int B, int T)
{
	const train_config *c = e->c;
	const train_weights *w = train_model_weights(e->m);
	const train_bf16w *hw = bf16w(e);
	const train_acts *a = &e->a;
	int N = B * T, C = c->dim, NH = c->n_head, NKV = c->n_kv_head, hd = c->head_dim;
	int I = c->ffn;
	size_t QD = (size_t)NH * hd, KD = (size_t)NKV * hd, QKV = QD + 2 * KD;
	size_t F = c->arch == TRAIN_ARCH_GPT2 ? (size_t)I : 2 * (size_t)I;
	size_t NC = (size_t)N * C, Ls = (size_t)l;
	size_t As = e->ckpt ? 0 : Ls; /* the layer's activation slot */
	const float *rc = train_model_rope_cos(e->m), *rs = train_model_rope_sin(e->m);
	/* the outputs backward never reads (the fused qkv before its split,
	 * the two projections added to the residual) take layer 0's slot in
	 * every layer: the other layers' parts of the arena are never touched,
	 * so never resident (1/5 of the activations of a Qwen3-like block) */
	float *ln1 = a->ln1 + As * NC, *qkv = a->qkv, *q = a->q + As * N * QD;
	float *attproj = a->attproj, *mlpproj = a->mlpproj;
	float *k = a->k + As * N * KD, *v = a->v + As * N * KD, *qr = a->qr + As * N * QD;
	float *kr = a->kr + As * N * KD, *atty = a->atty + As * N * QD;
	float *res1 = a->res1 + As * NC, *ln2 = a->ln2 + As * NC, *fch = a->fch + As * N * F;
	float *fch_act = a->fch_act + As * N * I;

	norm_fwd(c, ln1, OFF(a->ln1_mean, As * N), a->ln1_rstd + As * N, x, w->ln1w + Ls * C,
		 OFF(w->ln1b, Ls * C), N);
	mm_fwd(qkv, ln1, WAT(wqkv, Ls * QKV * C), OFF(w->bqkv, Ls * QKV), N, C, (int)QKV);
	train_lora_forward(e->lora, l, TRAIN_LORA_QKV, qkv, (int)QKV, ln1, N);
	train_qkv_split_forward(q, k, v, qkv, N, NH, NKV, hd);
	if (c->qk_norm) {
		train_rmsnorm_forward(qr, a->q_rstd + As * N * NH, q, w->qnorm + Ls * hd, N * NH, hd,
				      c->norm_eps);
		train_rmsnorm_forward(kr, a->k_rstd + As * N * NKV, k, w->knorm + Ls * hd, N * NKV,
				      hd, c->norm_eps);
	} else {
		memcpy(qr, q, sizeof(float) * N * QD);
		memcpy(kr, k, sizeof(float) * N * KD);
	}
	if (rc) {
		train_rope_forward(qr, qr, rc, rs, NULL, B, T, NH, hd);
		train_rope_forward(kr, kr, rc, rs, NULL, B, T, NKV, hd);
	}
	attention_fwd(atty, a->lse + As * N * NH, qr, kr, v, B, T, NH, NKV, hd);
	mm_fwd(attproj, atty, WAT(wo, Ls * C * QD), OFF(w->bo, Ls * C), N, (int)QD, C);
	train_lora_forward(e->lora, l, TRAIN_LORA_O, attproj, C, atty, N);
	train_residual_forward(res1, x, attproj, NC);
	norm_fwd(c, ln2, OFF(a->ln2_mean, As * N), a->ln2_rstd + As * N, res1, w->ln2w + Ls * C,
		 OFF(w->ln2b, Ls * C), N);
	mm_fwd(fch, ln2, WAT(wfc, Ls * F * C), OFF(w->bfc, Ls * F), N, C, (int)F);
	train_lora_forward(e->lora, l, TRAIN_LORA_FC, fch, (int)F, ln2, N);
	if (c->arch == TRAIN_ARCH_GPT2)
		train_gelu_forward_fast(fch_act, fch, (size_t)N * I);
	else
		train_swiglu_forward(fch_act, fch, N, I);
	mm_fwd(mlpproj, fch_act, WAT(wproj, Ls * C * I), OFF(w->bproj, Ls * C), N, I, C);
	train_lora_forward(e->lora, l, TRAIN_LORA_PROJ, mlpproj, C, fch_act, N);
	train_residual_forward(a->res2 + As * NC, res1, mlpproj, NC);
}

/* log p(target) and log-sum-exp of M compacted rows h [M, C], in vocabulary
 * chunks (logits [M, chunk] in scratch). */
static void logprob_fwd(train_engine *e, float *logp, float *lse, double *lsum, const float *h,
			const float *wlm, const uint16_t *wlm16, const int *tg, int M, int C, int V)
{
	int chunk = V < TRAIN_LOGPROB_CHUNK ? V : TRAIN_LOGPROB_CHUNK;
	/* keep the logits [M, V] for backward when they fit the budget, else
	 * reuse one [M, chunk] block per chunk */
	int keep = (double)M * V * sizeof(float) <= e->logits_budget_mb * 1048576.0;
	float *lg = e->head + (size_t)M * C; /* after the compacted rows */
	if (keep) {
		if ((size_t)M * V > e->logits_cap) {
			free(e->logits);
			e->logits = xmalloc(sizeof(float) * (size_t)M * V);
			e->logits_cap = (size_t)M * V;
		}
	}
	e->logits_valid = 0;
	float *mx = xmalloc(sizeof(float) * M), *tv = xmalloc(sizeof(float) * M);
	double *sum = xmalloc(sizeof(double) * M);
	for (int i = 0; i < M; i++) {
		mx[i] = -INFINITY;
		sum[i] = 0;
		tv[i] = 0;
		lsum[i] = 0;
	}
	for (int v0 = 0; v0 < V; v0 += chunk) {
		int cv = V - v0 < chunk ? V - v0 : chunk;
		int ld = cv;
		float *blk = lg;
		if (keep) {
			blk = e->logits + v0;
			ld = V;
		}
#ifdef HAVE_BLAS
		if (train_layers_use_blas && !wlm16)
			train_gemm(0, 1, M, cv, C, h, C, wlm + (size_t)v0 * C, C, 0.0f, blk, ld);
		else
#endif
		if (wlm16) {
			train_gemm_bf16_wb(0, 1, M, cv, C, h, C, wlm16 + (size_t)v0 * C, C, 0.0f, blk, ld);
		} else if (keep) {
			mm_fwd(lg, h, train_wmat_at(wlm, NULL, (size_t)v0 * C), NULL, M, C, cv);
			for (int i = 0; i < M; i++)
				memcpy(blk + (size_t)i * V, lg + (size_t)i * cv, sizeof(float) * cv);
		} else {
			mm_fwd(lg, h, train_wmat_at(wlm, NULL, (size_t)v0 * C), NULL, M, C, cv);
		}
		int vm = train_vecmath_on();
#pragma omp parallel for schedule(static) if ((size_t)M * cv > 16384)
		for (int i = 0; i < M; i++) {
			const float *r = blk + (size_t)i * ld;
			float m = mx[i];
			float s = 0, ls = 0;
			if (vm) { /* bf16: AVX-512 loops (vecmath_bf16.h) */
				m = train_vmax(r, cv, m);
				s = train_vexp_sum(r, cv, m, &ls);
			} else {
				for (int j = 0; j < cv; j++)
					m = r[j] > m ? r[j] : m;
				for (int j = 0; j < cv; j++) {
					s += expf(r[j] - m);
					ls += r[j];
				}
			}
			lsum[i] += ls;
			sum[i] = sum[i] * exp((double)mx[i] - m) + s;
			mx[i] = m;
			if (tg[i] >= v0 && tg[i] < v0 + cv)
				tv[i] = r[tg[i] - v0];
		}
	}
	for (int i = 0; i < M; i++) {
		float l = mx[i] + (float)log(sum[i]);
		logp[i] = tv[i] - l;
		lse[i] = l;
	}
	free(mx);
	free(tv);
	free(sum);
	e->logits_valid = keep;
	e->logits_rows = M;
}

static void model_forward(train_engine *e, int B, int T)
{
	const train_config *c = e->c;
	const train_weights *w = train_model_weights(e->m);
	const train_bf16w *hw = bf16w(e);
	train_acts *a = &e->a;
	int N = B * T, C = c->dim, V = c->vocab;
	size_t NC = (size_t)N * C;
	if (hw->wte)
		train_embedding_bf16_forward(a->encoded, e->ids, hw->wte, hw->wpe, NULL, B, T, C);
	else
		train_embedding_forward(a->encoded, e->ids, w->wte, w->wpe, NULL, B, T, C);
	const float *x = a->encoded;
	for (int l = 0; l < c->n_layer; l++) {
		block_forward(e, l, x, B, T);
		if (e->ckpt)
			memcpy(e->ckpt_out + (size_t)l * NC, a->res2, sizeof(float) * NC);
		x = block_out(e, l, NC);
	}
	norm_fwd(c, a->lnf, a->lnf_mean, a->lnf_rstd, x, w->lnfw, w->lnfb, N);
	int M = 0;
	for (int r = 0; r < N; r++)
		if (e->targets[r] >= 0)
			M++;
	int chunk = V < TRAIN_LOGPROB_CHUNK ? V : TRAIN_LOGPROB_CHUNK;
	size_t need = (size_t)M * C + (size_t)M * chunk + 3 * (size_t)M;
	if (need > e->head_cap) {
		free(e->head);
		e->head = xmalloc(sizeof(float) * need);
		e->head_cap = need;
	}
	float *hc = e->head;
	float *lp = e->head + need - 3 * (size_t)M, *ls = lp + M;
	int *tc = (int *)(ls + M);
	int j = 0;
	for (int r = 0; r < N; r++) {
		a->logp[r] = 0;
		a->logp_lse[r] = 0;
		if (e->targets[r] >= 0) {
			memcpy(hc + (size_t)j * C, a->lnf + (size_t)r * C, sizeof(float) * C);
			tc[j++] = e->targets[r];
		}
	}
	double *lsum = xmalloc(sizeof(double) * (M + 1));
	if (M > 0)
		logprob_fwd(e, lp, ls, lsum, hc, w->lm_head, hw->lm_head, tc, M, C, V);
	if (B > e->seq_cap) {
		free(e->seq_lsum);
		e->seq_lsum = xmalloc(sizeof(double) * B);
		e->seq_cap = B;
	}
	e->seq_n = B;
	memset(e->seq_lsum, 0, sizeof(double) * B);
	j = 0;
	for (int r = 0; r < N; r++)
		if (e->targets[r] >= 0) {
			a->logp[r] = lp[j];
			a->logp_lse[r] = ls[j];
			e->seq_lsum[r / T] += lsum[j] / V;
			j++;
		}
	free(lsum);
}

const double *train_engine_logit_sums(const train_engine *e, int *nseq)
{
	if (nseq)
		*nseq = e->seq_n;
	return e->seq_lsum;
}

/* TRL's logits/chosen and logits/rejected of the last forward over n pairs
 * (chosen rows first): the mean logit over every scored position and the
 * whole vocabulary, cnt[] the scored tokens per sequence. */
static void logit_means(const train_engine *e, int n, const long *cnt, double *mc, double *mr)
{
	double sc = 0, sr = 0;
	long kc = 0, kr = 0;
	for (int i = 0; i < n; i++) {
		sc += e->seq_lsum[i];
		sr += e->seq_lsum[n + i];
		kc += cnt[i];
		kr += cnt[n + i];
	}
	*mc = kc ? sc / (double)kc : 0;
	*mr = kr ? sr / (double)kr : 0;
}

/* Forward 2n rows; summed completion log-probs (double) per row. */
static int forward_rows(train_engine *e, const train_pair *const *pairs, int n, int *Tout,
			double *sum, long *cnt)
{
	int T, rc = build_batch(e, pairs, n, &T);
	if (rc)
		return rc;
	ensure_acts(e, 2 * n, T);
	model_forward(e, 2 * n, T);
	for (int r = 0; r < 2 * n; r++) {
		double s = 0;
		long k = 0;
		for (int t = 0; t < T; t++)
			if (e->targets[(size_t)r * T + t] >= 0) {
				s += e->a.logp[(size_t)r * T + t];
				k++;
			}
		sum[r] = s;
		cnt[r] = k;
	}
	*Tout = T;
	return 0;
}

int train_engine_logps(train_engine *e, const train_pair *const *pairs, int n, double *lc,
		       double *lr, long *nc, long *nr)
{
	double *sum = xmalloc(sizeof(double) * 2 * n);
	long *cnt = xmalloc(sizeof(long) * 2 * n);
	int T;
	int rc = forward_rows(e, pairs, n, &T, sum, cnt);
	if (!rc)
		for (int i = 0; i < n; i++) {
			lc[i] = sum[i];
			lr[i] = sum[n + i];
			if (nc)
				nc[i] = cnt[i];
			if (nr)
				nr[i] = cnt[n + i];
		}
	free(sum);
	free(cnt);
	return rc;
}

/* ---- backward ---- */

static float *scratch(train_engine *e, size_t n)
{
	if (n > e->scr_cap) {
		free(e->scr);
		e->scr = xmalloc(sizeof(float) * n);
		e->scr_cap = n;
	}
	return e->scr;
}

static void norm_backward(const train_config *c, float *dinp, float *dw, float *db,
			  const float *dout, const float *inp, const float *w, const float *mean,
			  const float *rstd, int N)
{
	if (c->arch == TRAIN_ARCH_GPT2)
		train_layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, c->dim);
	else
		train_rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, c->dim);
}

/* train_matmul_backward of a weight W in either storage (bf16: frozen,
 * dw and db NULL). */
static void mm_bwd(float *dinp, float *dw, float *db, const float *dout, const float *inp,
		   train_wmat W, int N, int C, int OC)
{
	if (W.h)
		train_linear_bf16w_backward(dinp, dout, W.h, N, C, OC);
	else
		train_matmul_backward(dinp, dw, db, dout, inp, W.f, N, C, OC);
}

/* Scratch buffers of one block's backward. */
struct bbufs {
	float *dres1, *dfch_act, *dfch, *dln, *datty, *dqr, *dkr, *dv, *dqn, *dkn, *dq, *dk, *dqkv;
};

static void block_backward(train_engine *e, int l, float *dprev, const float *dcur,
			   const float *x, struct bbufs *s, int B, int T)
{
	const train_config *c = e->c;
	const train_weights *w = train_model_weights(e->m);
	const train_bf16w *hw = bf16w(e);
	const train_weights *g = &e->gw;
	const train_acts *a = &e->a;
	int N = B * T, C = c->dim, NH = c->n_head, NKV = c->n_kv_head, hd = c->head_dim;
	int I = c->ffn;
	size_t QD = (size_t)NH * hd, KD = (size_t)NKV * hd, QKV = QD + 2 * KD;
	size_t F = c->arch == TRAIN_ARCH_GPT2 ? (size_t)I : 2 * (size_t)I;
	size_t NC = (size_t)N * C, Ls = (size_t)l;
	size_t As = e->ckpt ? 0 : Ls; /* the layer's activation slot */
	const float *rope_cos = train_model_rope_cos(e->m), *rope_sin = train_model_rope_sin(e->m);

	/* res2 = res1 + mlpproj */
	memcpy(s->dres1, dcur, sizeof(float) * NC);
	/* mlpproj = fch_act . wproj^T + bproj */
	memset(s->dfch_act, 0, sizeof(float) * N * I);
	mm_bwd(s->dfch_act, OFF(g->wproj, Ls * C * I), OFF(g->bproj, Ls * C), dcur,
	       a->fch_act + As * N * I, WAT(wproj, Ls * C * I), N, I, C);
	train_lora_backward(e->lora, l, TRAIN_LORA_PROJ, s->dfch_act, dcur, C,
			    a->fch_act + As * N * I, N);
	memset(s->dfch, 0, sizeof(float) * N * F);
	if (c->arch == TRAIN_ARCH_GPT2)
		train_gelu_backward(s->dfch, a->fch + As * N * F, s->dfch_act, (size_t)N * I);
	else
		train_swiglu_backward(s->dfch, a->fch + As * N * F, s->dfch_act, N, I);
	memset(s->dln, 0, sizeof(float) * NC);
	mm_bwd(s->dln, OFF(g->wfc, Ls * F * C), OFF(g->bfc, Ls * F), s->dfch, a->ln2 + As * NC,
	       WAT(wfc, Ls * F * C), N, C, (int)F);
	train_lora_backward(e->lora, l, TRAIN_LORA_FC, s->dln, s->dfch, (int)F, a->ln2 + As * NC, N);
	norm_backward(c, s->dres1, OFF(g->ln2w, Ls * C), OFF(g->ln2b, Ls * C), s->dln,
		      a->res1 + As * NC, w->ln2w + Ls * C, OFF(a->ln2_mean, As * N), a->ln2_rstd + As * N, N);

	/* res1 = x + attproj */
	memcpy(dprev, s->dres1, sizeof(float) * NC);
	memset(s->datty, 0, sizeof(float) * N * QD);
	mm_bwd(s->datty, OFF(g->wo, Ls * C * QD), OFF(g->bo, Ls * C), s->dres1,
	       a->atty + As * N * QD, WAT(wo, Ls * C * QD), N, (int)QD, C);
	train_lora_backward(e->lora, l, TRAIN_LORA_O, s->datty, s->dres1, C, a->atty + As * N * QD,
			    N);
	memset(s->dqr, 0, sizeof(float) * N * QD);
	memset(s->dkr, 0, sizeof(float) * N * KD);
	memset(s->dv, 0, sizeof(float) * N * KD);
	if (train_gemm_precision() == TRAIN_PREC_BF16 && train_attention_bf16_on)
		train_attention_backward_bf16(s->dqr, s->dkr, s->dv, s->datty, a->qr + As * N * QD,
					      a->kr + As * N * KD, a->v + As * N * KD,
					      a->atty + As * N * QD, a->lse + As * N * NH, B, T, NH,
					      NKV, hd);
	else
		train_attention_backward(s->dqr, s->dkr, s->dv, s->datty, a->qr + As * N * QD,
					 a->kr + As * N * KD, a->v + As * N * KD, a->atty + As * N * QD,
					 a->lse + As * N * NH, NULL, B, T, T, NH, NKV, hd);
	float *dqn = s->dqr, *dkn = s->dkr;
	if (rope_cos) {
		memset(s->dqn, 0, sizeof(float) * N * QD);
		memset(s->dkn, 0, sizeof(float) * N * KD);
		train_rope_backward(s->dqn, s->dqr, rope_cos, rope_sin, NULL, B, T, NH, hd);
		train_rope_backward(s->dkn, s->dkr, rope_cos, rope_sin, NULL, B, T, NKV, hd);
		dqn = s->dqn;
		dkn = s->dkn;
	}
	float *dq = dqn, *dk = dkn;
	if (c->qk_norm) {
		memset(s->dq, 0, sizeof(float) * N * QD);
		memset(s->dk, 0, sizeof(float) * N * KD);
		train_rmsnorm_backward(s->dq, OFF(g->qnorm, Ls * hd), dqn, a->q + As * N * QD,
				       w->qnorm + Ls * hd, a->q_rstd + As * N * NH, N * NH, hd);
		train_rmsnorm_backward(s->dk, OFF(g->knorm, Ls * hd), dkn, a->k + As * N * KD,
				       w->knorm + Ls * hd, a->k_rstd + As * N * NKV, N * NKV, hd);
		dq = s->dq;
		dk = s->dk;
	}
	memset(s->dqkv, 0, sizeof(float) * N * QKV);
	train_qkv_split_backward(s->dqkv, dq, dk, s->dv, N, NH, NKV, hd);
	memset(s->dln, 0, sizeof(float) * NC);
	mm_bwd(s->dln, OFF(g->wqkv, Ls * QKV * C), OFF(g->bqkv, Ls * QKV), s->dqkv,
	       a->ln1 + As * NC, WAT(wqkv, Ls * QKV * C), N, C, (int)QKV);
	train_lora_backward(e->lora, l, TRAIN_LORA_QKV, s->dln, s->dqkv, (int)QKV, a->ln1 + As * NC,
			    N);
	norm_backward(c, dprev, OFF(g->ln1w, Ls * C), OFF(g->ln1b, Ls * C), s->dln, x,
		      w->ln1w + Ls * C, OFF(a->ln1_mean, As * N), a->ln1_rstd + As * N, N);
	/* Without RoPE or a key norm (GPT-2), a key bias adds q.b to every
	 * score of a query row, which softmax ignores: its gradient is exactly
	 * zero (each row of dS sums to 0). Float32 leaves ~1e-9 of roundoff
	 * there, which AdamW (eps 1e-8) would turn into steps of a sizeable
	 * fraction of lr; store the exact value instead. */
	if (g->bqkv && !rope_cos && !c->qk_norm)
		memset(g->bqkv + Ls * QKV + QD, 0, sizeof(float) * KD);
}

/* Backward of the whole model from e->dlogp (per row) into the gradients. */
static void model_backward(train_engine *e, int B, int T)
{
	const train_config *c = e->c;
	const train_weights *w = train_model_weights(e->m);
	const train_acts *a = &e->a;
	int N = B * T, C = c->dim, L = c->n_layer, I = c->ffn, V = c->vocab;
	size_t QD = (size_t)c->n_head * c->head_dim, KD = (size_t)c->n_kv_head * c->head_dim;
	size_t QKV = QD + 2 * KD, NC = (size_t)N * C;
	size_t F = c->arch == TRAIN_ARCH_GPT2 ? (size_t)I : 2 * (size_t)I;

	/* rows that carry a gradient, compacted for the vocabulary projection */
	int M = 0;
	for (int r = 0; r < N; r++)
		if (e->targets[r] >= 0 && e->dlogp[r] != 0.0f)
			M++;
	size_t need = 4 * NC + (size_t)N * (I + F + 4 * QD + 4 * KD + QKV) + 2 * (size_t)M * C +
		      3 * (size_t)M;
	float *p = scratch(e, need);
	float *dA = p, *dB = p + NC;
	struct bbufs s;
	s.dres1 = dB + NC;
	s.dfch_act = s.dres1 + NC;
	s.dfch = s.dfch_act + (size_t)N * I;
	s.dln = s.dfch + (size_t)N * F;
	s.datty = s.dln + NC;
	s.dqr = s.datty + (size_t)N * QD;
	s.dkr = s.dqr + (size_t)N * QD;
	s.dv = s.dkr + (size_t)N * KD;
	s.dqn = s.dv + (size_t)N * KD;
	s.dkn = s.dqn + (size_t)N * QD;
	s.dq = s.dkn + (size_t)N * KD;
	s.dk = s.dq + (size_t)N * QD;
	s.dqkv = s.dk + (size_t)N * KD;
	float *hc = s.dqkv + (size_t)N * QKV;
	float *dhc = hc + (size_t)M * C;
	float *dl = dhc + (size_t)M * C, *lse = dl + M;
	int *tc = (int *)(lse + M);

	int j = 0;
	for (int r = 0; r < N; r++)
		if (e->targets[r] >= 0 && e->dlogp[r] != 0.0f) {
			memcpy(hc + (size_t)j * C, a->lnf + (size_t)r * C, sizeof(float) * C);
			dl[j] = e->dlogp[r];
			lse[j] = a->logp_lse[r];
			tc[j] = e->targets[r];
			j++;
		}
	memset(dhc, 0, sizeof(float) * M * C);
	/* the kept logits are those of the rows with a target; usable when every
	 * such row carries a gradient (the usual case: same compaction) */
	int nt = 0;
	for (int r = 0; r < N; r++)
		nt += e->targets[r] >= 0;
	int kept = M > 0 && e->logits_valid && e->logits_rows == M && nt == M;
	const uint16_t *wlm16 = bf16w(e)->lm_head;
	if (M > 0 && wlm16) /* a frozen bf16 base */
		train_logprob_bf16w_backward(dhc, dl, hc, wlm16, tc, lse, kept ? e->logits : NULL, M,
					     C, V);
	else if (kept)
		train_logprob_backward_logits(dhc, e->gw.lm_head, dl, hc, w->lm_head, tc, lse,
					      e->logits, M, C, V);
	else if (M > 0)
		train_logprob_backward(dhc, e->gw.lm_head, dl, hc, w->lm_head, tc, lse, M, C, V);
	e->logits_valid = 0;
	float *dlnf = s.dln;
	memset(dlnf, 0, sizeof(float) * NC);
	j = 0;
	for (int r = 0; r < N; r++)
		if (e->targets[r] >= 0 && e->dlogp[r] != 0.0f) {
			memcpy(dlnf + (size_t)r * C, dhc + (size_t)j * C, sizeof(float) * C);
			j++;
		}
	/* final norm over the last layer's output */
	const float *xl = L > 0 ? block_out(e, L - 1, NC) : a->encoded;
	memset(dA, 0, sizeof(float) * NC);
	norm_backward(c, dA, e->gw.lnfw, e->gw.lnfb, dlnf, xl, w->lnfw, a->lnf_mean, a->lnf_rstd, N);
	if (e->grad_ready)
		e->grad_ready(e->ready_ud, L);
	float *dcur = dA, *dprev = dB;
	for (int l = L - 1; l >= 0; l--) {
		const float *x = l > 0 ? block_out(e, l - 1, NC) : a->encoded;
		if (e->ckpt) /* the same kernels on the same input: bit-identical */
			block_forward(e, l, x, B, T);
		block_backward(e, l, dprev, dcur, x, &s, B, T);
		if (e->grad_ready)
			e->grad_ready(e->ready_ud, l);
		float *t = dcur;
		dcur = dprev;
		dprev = t;
	}
	if (e->gw.wte)
		train_embedding_backward(e->gw.wte, e->gw.wpe, dcur, e->ids, NULL, B, T, C);
	if (e->grad_ready)
		e->grad_ready(e->ready_ud, -1);
}

/* Matmul and attention FLOPs of one forward over B x T rows (M scored rows). */
static double forward_flops(const train_config *c, int B, int T)
{
	double N = (double)B * T, C = c->dim, I = c->ffn, hd = c->head_dim;
	double QD = c->n_head * hd, KD = c->n_kv_head * hd;
	double F = c->arch == TRAIN_ARCH_GPT2 ? I : 2 * I;
	double per_layer = 2 * N * (C * (QD + 2 * KD) + QD * C + C * F + I * C) +
			   2.0 * 2 * B * c->n_head * hd * (double)T * (T + 1) / 2;
	return c->n_layer * per_layer + 2 * N * C * c->vocab;
}

int train_engine_accumulate(train_engine *e, const train_loss_cfg *cfg,
			    const train_pair *const *pairs, int n, double scale,
			    train_loss_batch *out)
{
	int T = 0, rc;
	double *sum = xmalloc(sizeof(double) * 2 * n + 1);
	long *cnt = xmalloc(sizeof(long) * 2 * n + 1);
	double *rcv = xmalloc(sizeof(double) * 2 * n + 1);
	double *d = xmalloc(sizeof(double) * 2 * n + 1);
	/* no pair here: only a process of a split batch takes part (in the loss) */
	if (e->lora) /* dropout in this forward and its backward: masks by step and micro-batch */
		train_lora_set_training(e->lora, 1, ((uint64_t)e->t << 24) + (uint64_t)e->nacc++);
	rc = n > 0 ? forward_rows(e, pairs, n, &T, sum, cnt) : !e->loss_fn ? TRAIN_EARG : 0;
	if (n == 0)
		e->last_tokens = 0;
	if (n == 0 && rc)
		set_err(e, "an empty batch");
	if (rc)
		goto out;
	for (int i = 0; i < n; i++) {
		rcv[i] = pairs[i]->ref_c;
		rcv[n + i] = pairs[i]->ref_r;
		if (cnt[i] == 0 || cnt[n + i] == 0) {
			set_err(e, "pair %d has an empty completion after truncation", i);
			rc = TRAIN_EARG;
			goto out;
		}
	}
	train_loss_batch b = {.B = n, .pc = sum, .pr = sum + n, .rc = rcv, .rr = rcv + n,
			      .nc = cnt, .nr = cnt + n, .dpc = d, .dpr = d + n};
	/* before the loss: a distributed loss function combines the ranks' */
	logit_means(e, n, cnt, &b.logits_chosen, &b.logits_rejected);
	if (e->loss_fn ? e->loss_fn(e->loss_ud, cfg, &b) != 0 : train_loss_compute(cfg, &b) != 0) {
		set_err(e, "invalid loss configuration");
		rc = TRAIN_EARG;
		goto out;
	}
	for (int r = 0; r < 2 * n; r++)
		for (int t = 0; t < T; t++)
			e->dlogp[(size_t)r * T + t] =
				e->targets[(size_t)r * T + t] >= 0 ? (float)(d[r] * scale) : 0.0f;
	if (n > 0)
		model_backward(e, 2 * n, T);
	e->last_flops = n > 0 ? 3 * forward_flops(e->c, 2 * n, T) : 0;
	if (out) {
		b.dpc = b.dpr = NULL;
		b.pc = b.pr = b.rc = b.rr = NULL;
		b.nc = b.nr = NULL;
		*out = b;
	}
out:
	if (e->lora)
		train_lora_set_training(e->lora, 0, 0);
	free(sum);
	free(cnt);
	free(rcv);
	free(d);
	return rc;
}

void train_engine_set_loss_fn(train_engine *e, train_loss_fn fn, void *ud)
{
	e->loss_fn = fn;
	e->loss_ud = ud;
}

void train_engine_set_grad_ready(train_engine *e, train_grad_ready_fn fn, void *ud)
{
	e->grad_ready = fn;
	e->ready_ud = ud;
}

int train_engine_step(train_engine *e, const train_adamw *opt, double lr, double max_grad_norm,
		      double *grad_norm)
{
	double norm = train_engine_grad_norm(e);
	if (grad_norm)
		*grad_norm = norm;
	float coef;
	if (train_engine_step_start(e, max_grad_norm, norm, &coef))
		return -1;
	/* clipping, the update and zeroing the gradients in one pass, every
	 * segment whole */
	train_engine_step_range(e, opt, lr, coef, 0, SIZE_MAX);
	return 0;
}

int train_engine_step_start(train_engine *e, double max_grad_norm, double norm, float *coef)
{
	if (!isfinite(norm)) {
		set_err(e, "the gradient norm is %g", norm);
		return -1;
	}
	*coef = (float)train_clip_coef(norm, max_grad_norm);
	e->t++;
	e->nacc = 0;
	return 0;
}

void train_engine_step_range(train_engine *e, const train_adamw *opt, double lr, float coef, size_t off,
			     size_t n)
{
	float *params = e->lora ? train_lora_params(e->lora) : train_model_params(e->m);
	for (int i = 0; i < e->nsegs; i++) { /* each segment's part in the range */
		const seg *s = &e->segs[i];
		size_t a = s->off > off ? s->off : off, b = s->off + s->n < off + n ? s->off + s->n : off + n;
		if (a < b)
			train_adamw_step_scaled(opt, params + a, e->grads + a, e->m1 + a, e->m2 + a, b - a, lr,
						e->t, s->decay, coef, 1);
	}
}

/* Nonzero when OpenBLAS should be told to use its AVX-512 kernels. */
static int want_skylakex(void)
{
#if defined(HAVE_BLAS) && (defined(__x86_64__) || defined(__i386__))
	if (getenv("OPENBLAS_CORETYPE"))
		return 0;
	/* CPUID leaf 7: AVX-512 F (ebx bit 16), DQ (17), CD (28), BW (30), VL (31);
	 * and the OS saves the opmask and ZMM state (XCR0 bits 5-7, plus 1-2) */
	unsigned a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) /* OSXSAVE */
		return 0;
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return 0;
	unsigned need = (1u << 16) | (1u << 17) | (1u << 28) | (1u << 30) | (1u << 31);
	if ((b & need) != need)
		return 0;
	unsigned lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	if ((lo & 0xe6) != 0xe6)
		return 0;
	const char *core = openblas_get_corename();
	return core && (!strcasecmp(core, "haswell") || !strncasecmp(core, "zen", 3));
#else
	return 0;
#endif
}

void train_runtime_tune(char **argv)
{
	int changed = 0;
	if (getenv("DPO_NO_REEXEC"))
		return;
	if (want_skylakex()) {
		setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
		changed = 1;
	}
	if (!getenv("OMP_WAIT_POLICY")) {
		setenv("OMP_WAIT_POLICY", "passive", 1);
		changed = 1;
	}
	if (!changed)
		return;
	setenv("DPO_NO_REEXEC", "1", 1); /* once */
	execv("/proc/self/exe", argv);
	/* exec failed: go on as we are */
}

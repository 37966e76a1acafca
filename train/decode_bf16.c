/* decode_bf16.c: a bf16 model's decode step in one parallel region (see
 * decode_bf16.h). */
#include "config.h"
#include "train/decode_bf16.h"
#include "train/layers.h"
#include "train/matvec_bf16.h"
#include "train/model_bf16.h"
#include "train/vecmath_bf16.h"
#include "util/xmalloc.h"

#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

int train_decode_bf16_off;
int train_decode_bf16_claim;

/* Rows of the QKV and MLP up-projection products. */
static int qkv_out(const train_config *c)
{
	return (c->n_head + 2 * c->n_kv_head) * c->head_dim;
}

static int fc_out(const train_config *c)
{
	return c->arch == TRAIN_ARCH_GPT2 ? c->ffn : 2 * c->ffn;
}

int train_decode_bf16_usable(const train_config *c, int nb)
{
	int C = c->dim, QD = c->n_head * c->head_dim;
	return !train_decode_bf16_off && train_matmul_bf16_splits(nb, C, qkv_out(c)) &&
	       train_matmul_bf16_splits(nb, QD, C) && train_matmul_bf16_splits(nb, C, fc_out(c)) &&
	       train_matmul_bf16_splits(nb, c->ffn, C) && train_matmul_bf16_splits(nb, C, c->vocab);
}

/* The layer norm (GPT-2) or RMS norm of N rows, as model.c's norm_fwd. The
 * serial forms of layers.h here and below: this runs inside the region. */
static void norm(const train_config *c, float *out, const float *x, const float *w,
		 const float *b, int N)
{
	train_norm_rows_serial(out, x, w, b, N, c->dim, c->norm_eps, c->arch == TRAIN_ARCH_GPT2);
}

/* x += y over n floats (train_residual_forward's sum). */
static void add(float *x, const float *y, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = x[i] + y[i];
}

/* This thread's share [lo, hi) of n items (thread t of nt). */
static void share(int n, int t, int nt, int *lo, int *hi)
{
	*lo = (int)((long long)n * t / nt);
	*hi = (int)((long long)n * (t + 1) / nt);
}

/* A share's units not yet taken, [lo, hi) as lo | hi << 32, alone in its
 * cache line (64 bytes from the next: the threads take units from their
 * own slots without moving each other's lines). */
typedef struct claim_slot {
	uint64_t w, pad[7];
} claim_slot;

/* A product's units (train_matmul_bf16_range_units) or the attention's
 * (row, KV head) pairs, claimed: each thread owns the units of its share
 * and takes them from the front, in the order train_matmul_bf16_range
 * would run a product's; then it takes the last unit left in another
 * thread's share (the order of train_decode_bf16_claim). slot[v]: share
 * v's. Sets *v to the share and *u to the first unit taken; returns how
 * many were taken (0: none is left). From its own share a thread takes up
 * to 4 at a time, while at least 4 times as many are left: the slot's line
 * has left the cache by the next claim (a product's unit streams 96 KiB or
 * more of weights), so each claim waits for a miss (perf, GPT-2-124M at
 * batch 1: 2.1% of the samples in the claims when units were taken one by
 * one, 1.2% now).
 *
 * Why: a static split leaves the threads waiting for the slowest at every
 * barrier, and on a shared machine one of them is often slowed for a while
 * (on the 2-core Zen 5 VM, GPT-2-124M bf16 decode spent about 15% of its
 * samples in libgomp's barrier). Taking units from the other's end keeps
 * both threads streaming to the end of each product. */
static int claim(claim_slot *slot, int t, int nt, int *v, int *u)
{
	for (int i = 0; i < nt; i++) {
		/* k: 0 the thread's own share, else another's */
		int k = train_decode_bf16_claim == TRAIN_DECODE_CLAIM_OTHERS_FIRST ? (i + 1) % nt : i;
		if (k && train_decode_bf16_claim == TRAIN_DECODE_CLAIM_OWN)
			break;
		int s = (t + k) % nt;
		uint64_t cur = __atomic_load_n(&slot[s].w, __ATOMIC_ACQUIRE);
		for (;;) {
			uint32_t lo = (uint32_t)cur, hi = (uint32_t)(cur >> 32);
			if (lo >= hi)
				break;
			uint32_t n = k == 0 && hi - lo >= 8 ? (hi - lo) / 4 : 1;
			n = n < 4 ? n : 4;
			uint64_t next = k == 0 ? cur + n : (uint64_t)(hi - 1) << 32 | lo;
			if (__atomic_compare_exchange_n(&slot[s].w, &cur, next, 0, __ATOMIC_ACQ_REL,
							__ATOMIC_ACQUIRE)) {
				*v = s;
				*u = k == 0 ? (int)lo : (int)hi - 1;
				return (int)n;
			}
		}
	}
	return 0;
}

/* Thread t's slot of a product of OC output columns: all its units. */
static void claim_init(claim_slot *slot, int OC, int t, int nt)
{
	int lo, hi;
	share(OC, t, nt, &lo, &hi);
	slot[t].w = (uint64_t)train_matmul_bf16_range_units(lo, hi) << 32;
}

/* Thread t's slot of n items (the attention's pairs: one unit each). */
static void claim_init_items(claim_slot *slot, int n, int t, int nt)
{
	int lo, hi;
	share(n, t, nt, &lo, &hi);
	slot[t].w = (uint64_t)(hi - lo) << 32;
}

/* out [N, OC] = inp . W^T + bias, the units this thread claims from slot;
 * act set: act [N, OC] = GELU(out) over those units' columns too. */
static void product(float *out, const float *inp, const uint16_t *w, const float *bias, int N,
		    int C, int OC, claim_slot *slot, int t, int nt, float *act)
{
	int v, u0, taken, lo, hi;
	while ((taken = claim(slot, t, nt, &v, &u0)) > 0) {
		share(OC, v, nt, &lo, &hi); /* the columns of the share taken from */
		for (int u = u0; u < u0 + taken; u++) {
			train_matmul_bf16_range_unit(out, inp, w, bias, N, C, OC, lo, hi, u);
			if (!act)
				continue;
			int start[4], len[4], n = train_matmul_bf16_unit_runs(lo, hi, u, start, len);
			for (int k = 0; k < n; k++)
				for (int r = 0; r < N; r++)
					train_gelu_bf16w_forward(act + (size_t)r * OC + start[k],
								 out + (size_t)r * OC + start[k],
								 (size_t)len[k], 1);
		}
	}
}

/* Batch row b, KV head kh of layer l: its key (q/k-normed, rotated) and
 * value into the cache, then the attention of the query heads that read
 * it into atty [nb, NH * hd]. tmp: hd floats, att: cap floats. */
static void attend(const train_decode_bf16 *d, int l, const float *qkv, float *atty, int b,
		   int kh, float *tmp, float *att)
{
	const train_config *c = d->c;
	const train_weights *w = d->w;
	int NH = c->n_head, NKV = c->n_kv_head, hd = c->head_dim, group = NH / NKV;
	size_t QD = (size_t)NH * hd, KD = (size_t)NKV * hd, rs = (size_t)d->cap * KD;
	const float *r = qkv + (size_t)b * (QD + 2 * KD);
	size_t base = ((size_t)l * d->kv_rows + d->rows[b]) * rs;
	float *kc = d->kc + base, *vc = d->vc + base;
	float *kdst = kc + (size_t)d->pos[b] * KD + (size_t)kh * hd;
	const int *pos = d->pos + b;
	/* the cached keys and values of this head (the weights streamed since
	 * the last step have pushed them out of cache): asked for all at once
	 * here rather than missed one position at a time in the loops below */
	for (int p = 0; p < *pos; p++)
		for (int i = 0; i < hd; i += 16) {
			__builtin_prefetch(kc + (size_t)p * KD + (size_t)kh * hd + i, 0, 3);
			__builtin_prefetch(vc + (size_t)p * KD + (size_t)kh * hd + i, 0, 3);
		}
	if (c->qk_norm)
		train_norm_rows_serial(kdst, r + QD + (size_t)kh * hd, w->knorm + (size_t)l * hd, NULL,
				       1, hd, c->norm_eps, 0);
	else
		memcpy(kdst, r + QD + (size_t)kh * hd, sizeof(float) * hd);
	if (d->rope_cos)
		train_rope_vec_serial(kdst, kdst, d->rope_cos, d->rope_sin, *pos, hd);
	memcpy(vc + (size_t)d->pos[b] * KD + (size_t)kh * hd, r + QD + KD + (size_t)kh * hd,
	       sizeof(float) * hd);
	for (int h = kh * group; h < (kh + 1) * group; h++) {
		if (c->qk_norm)
			train_norm_rows_serial(tmp, r + (size_t)h * hd, w->qnorm + (size_t)l * hd, NULL,
					       1, hd, c->norm_eps, 0);
		else
			memcpy(tmp, r + (size_t)h * hd, sizeof(float) * hd);
		if (d->rope_cos)
			train_rope_vec_serial(tmp, tmp, d->rope_cos, d->rope_sin, *pos, hd);
		train_attention_row(atty + ((size_t)b * NH + h) * hd, tmp, kc + (size_t)kh * hd,
				    vc + (size_t)kh * hd, d->pos[b], (int)KD, hd, att);
	}
}

/* Buffers every thread writes its share of and reads whole. */
struct shared {
	float *qkv, *atty, *attproj, *fch, *act, *mlp;
};

/* Buffers of one thread: its copy of the residual stream and norm output. */
struct own {
	float *x, *ln, *tmp, *att;
};

/* Layer l for thread t of nt (called by every thread of the team). */
static void layer(const train_decode_bf16 *d, int l, const struct shared *s, struct own *o,
		  claim_slot *slots, int t, int nt)
{
	const train_config *c = d->c;
	const train_weights *w = d->w;
	const train_bf16w *h = d->h;
	int N = d->nb, C = c->dim, I = c->ffn, QKV = qkv_out(c), F = fc_out(c);
	int QD = c->n_head * c->head_dim, gpt2 = c->arch == TRAIN_ARCH_GPT2;
	size_t n = (size_t)N * C;

	norm(c, o->ln, o->x, w->ln1w + (size_t)l * C, w->ln1b ? w->ln1b + (size_t)l * C : NULL, N);
	const uint16_t *wqkv = h->wqkv + (size_t)l * QKV * C;
	const float *bqkv = w->bqkv ? w->bqkv + (size_t)l * QKV : NULL;
	int NKV = c->n_kv_head, v, u0, taken, lo, hi;
	product(s->qkv, o->ln, wqkv, bqkv, N, C, QKV, slots, t, nt, NULL);
#pragma omp barrier
	/* the attention of each (row, KV head) pair, claimed as the units */
	while ((taken = claim(slots + nt, t, nt, &v, &u0)) > 0) {
		share(N * NKV, v, nt, &lo, &hi); /* the pairs of the share taken from */
		for (int i = lo + u0; i < lo + u0 + taken; i++)
			attend(d, l, s->qkv, s->atty, i / NKV, i % NKV, o->tmp, o->att);
	}
#pragma omp barrier
	product(s->attproj, s->atty, h->wo + (size_t)l * C * QD, w->bo ? w->bo + (size_t)l * C : NULL,
		N, QD, C, slots + 2 * nt, t, nt, NULL);
#pragma omp barrier
	add(o->x, s->attproj, n);
	norm(c, o->ln, o->x, w->ln2w + (size_t)l * C, w->ln2b ? w->ln2b + (size_t)l * C : NULL, N);
	/* GPT-2's GELU is elementwise: on the columns of each unit (F == I) */
	product(s->fch, o->ln, h->wfc + (size_t)l * F * C, w->bfc ? w->bfc + (size_t)l * F : NULL,
		N, C, F, slots + 3 * nt, t, nt, gpt2 ? s->act : NULL);
#pragma omp barrier
	if (!gpt2) { /* gate and up halves come from different threads */
#pragma omp for schedule(static)
		for (int r = 0; r < N; r++)
			train_swiglu_forward_serial(s->act + (size_t)r * I, s->fch + (size_t)r * F, 1, I);
	}
	product(s->mlp, s->act, h->wproj + (size_t)l * C * I, w->bproj ? w->bproj + (size_t)l * C : NULL,
		N, I, C, slots + 4 * nt, t, nt, NULL);
#pragma omp barrier
	add(o->x, s->mlp, n);
}

void train_decode_bf16_step(const train_decode_bf16 *d, const float *x, float *logits)
{
	const train_config *c = d->c;
	size_t N = (size_t)d->nb, C = (size_t)c->dim, QD = (size_t)c->n_head * c->head_dim;
	struct shared s = {
		.qkv = xmalloc(sizeof(float) * N * qkv_out(c)),
		.atty = xmalloc(sizeof(float) * N * QD),
		.attproj = xmalloc(sizeof(float) * N * C),
		.fch = xmalloc(sizeof(float) * N * fc_out(c)),
		.act = xmalloc(sizeof(float) * N * c->ffn),
		.mlp = xmalloc(sizeof(float) * N * C),
	};
	int maxt = 1;
#ifdef _OPENMP
	maxt = omp_get_max_threads();
#endif
	claim_slot *slots = xmalloc(sizeof(claim_slot) * (size_t)(5 * c->n_layer + 1) * maxt);
	/* a team only where the products are big enough to pay for it (the
	 * threshold of the per-product regions) */
#pragma omp parallel if (N * C * (size_t)qkv_out(c) > 100000)
	{
		int t = 0, nt = 1;
#ifdef _OPENMP
		t = omp_get_thread_num();
		nt = omp_get_num_threads();
#endif
		struct own o = {
			.x = xmalloc(sizeof(float) * N * C),
			.ln = xmalloc(sizeof(float) * N * C),
			.tmp = xmalloc(sizeof(float) * (size_t)c->head_dim),
			.att = xmalloc(sizeof(float) * (size_t)d->cap),
		};
		memcpy(o.x, x, sizeof(float) * N * C);
		/* the slots: 5 a layer (QKV product, attention pairs, output
		 * projection, MLP up and down), then the LM head's */
		for (int l = 0; l < c->n_layer; l++) {
			claim_slot *sl = slots + (size_t)l * 5 * nt;
			claim_init(sl, qkv_out(c), t, nt);
			claim_init_items(sl + nt, (int)N * c->n_kv_head, t, nt);
			claim_init(sl + 2 * nt, (int)C, t, nt);
			claim_init(sl + 3 * nt, fc_out(c), t, nt);
			claim_init(sl + 4 * nt, (int)C, t, nt);
		}
		claim_init(slots + (size_t)c->n_layer * 5 * nt, c->vocab, t, nt);
#pragma omp barrier
		for (int l = 0; l < c->n_layer; l++)
			layer(d, l, &s, &o, slots + (size_t)l * 5 * nt, t, nt);
		norm(c, o.ln, o.x, d->w->lnfw, d->w->lnfb, (int)N);
		product(logits, o.ln, d->h->lm_head, NULL, (int)N, (int)C, c->vocab,
			slots + (size_t)c->n_layer * 5 * nt, t, nt, NULL);
		free(o.x);
		free(o.ln);
		free(o.tmp);
		free(o.att);
	}
	free(slots);
	free(s.qkv);
	free(s.atty);
	free(s.attproj);
	free(s.fch);
	free(s.act);
	free(s.mlp);
}

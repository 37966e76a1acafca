/* attention_bf16.c: training attention with bf16 products (see
 * attention_bf16.h). */
#include "config.h"
#include "train/attention_bf16.h"
#include "train/matmul_bf16.h"
#include "train/vecmath_bf16.h"
#include "util/xmalloc.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define QB TRAIN_ATTN_BF16_QB

int train_attention_bf16_on = 1;

/* scratch words for every product of a block: (M, N, K) is at most
 * (qb, T, hd), (qb, hd, T) or (T, hd, qb), and
 * train_gemm_bf16_scratch_words is nondecreasing in each */
static size_t block_words(int T, int hd)
{
	int qb = T < QB ? T : QB;
	size_t w = train_gemm_bf16_scratch_words(qb, T, hd);
	size_t w2 = train_gemm_bf16_scratch_words(qb, hd, T);
	size_t w3 = train_gemm_bf16_scratch_words(T, hd, qb);
	w = w2 > w ? w2 : w;
	return w3 > w ? w3 : w;
}

/* Scaled, masked softmax of the nq x nk scores in P (row i sees keys
 * 0..t0+i), in place; the rows' log-sum-exp into L. */
static void softmax_rows(float *P, float *L, int nq, int nk, int t0, float scale)
{
	for (int i = 0; i < nq; i++) {
		float *r = P + (size_t)i * nk;
		int n = t0 + i + 1;
		for (int j = 0; j < n; j++)
			r[j] *= scale;
		float mx = train_vmax(r, n, -INFINITY), ls;
		float sum = train_vexp_sum(r, n, mx, &ls);
		train_vexp_scale(r, n, mx, 1.0f / sum);
		for (int j = n; j < nk; j++)
			r[j] = 0.0f;
		L[i] = mx + logf(sum);
	}
}

void train_attention_forward_bf16(float *out, float *lse, const float *q, const float *k,
				  const float *v, int B, int T, int NH, int NKV, int hd)
{
	float scale = 1.0f / sqrtf((float)hd);
	int group = NH / NKV, ks = NKV * hd, qs = NH * hd;
	size_t words = block_words(T, hd);
#pragma omp parallel
	{
		float *P = xmalloc(sizeof(float) * (size_t)QB * T);
		uint32_t *ws = xmalloc(sizeof(uint32_t) * words);
#pragma omp for collapse(2) schedule(dynamic, 1)
		for (int b = 0; b < B; b++)
			for (int h = 0; h < NH; h++) {
				const float *kb = k + (size_t)b * T * ks + (size_t)(h / group) * hd;
				const float *vb = v + (size_t)b * T * ks + (size_t)(h / group) * hd;
				for (int t0 = 0; t0 < T; t0 += QB) {
					int nq = T - t0 < QB ? T - t0 : QB, nk = t0 + nq;
					size_t qo = ((size_t)b * T + t0) * qs + (size_t)h * hd;
					train_gemm_bf16_serial(0, 1, nq, nk, hd, q + qo, qs, kb, ks, 0.0f, P,
							       nk, ws);
					softmax_rows(P, lse + ((size_t)b * NH + h) * T + t0, nq, nk, t0,
						     scale);
					train_gemm_bf16_serial(0, 0, nq, hd, nk, P, nk, vb, ks, 0.0f,
							       out + qo, qs, ws);
				}
			}
		free(P);
		free(ws);
	}
}

/* The per-thread state of the backward: one (batch row, KV head) at a time. */
struct attn_bwd {
	const float *q, *dout, *out, *lse;
	float *dq;
	int T, NH, hd, qs, ks;
	float scale;
	float *P, *dP; /* QB x T */
	uint32_t *ws;
};

/* One block of nq queries from t0 of query head h of batch row b, against
 * the keys kb/vb of its KV head; dk/dv rows of the head at dkb/dvb. */
static void bwd_block(const struct attn_bwd *s, int b, int h, int t0, const float *kb,
		      const float *vb, float *dkb, float *dvb)
{
	int nq = s->T - t0 < QB ? s->T - t0 : QB, nk = t0 + nq;
	size_t qo = ((size_t)b * s->T + t0) * s->qs + (size_t)h * s->hd;
	const float *Q = s->q + qo, *dO = s->dout + qo, *O = s->out + qo;
	const float *L = s->lse + ((size_t)b * s->NH + h) * s->T + t0;
	float *P = s->P, *dP = s->dP;
	train_gemm_bf16_serial(0, 1, nq, nk, s->hd, Q, s->qs, kb, s->ks, 0.0f, P, nk, s->ws);
	train_gemm_bf16_serial(0, 1, nq, nk, s->hd, dO, s->qs, vb, s->ks, 0.0f, dP, nk, s->ws);
	for (int i = 0; i < nq; i++) {
		const float *go = dO + (size_t)i * s->qs, *oo = O + (size_t)i * s->qs;
		float di = 0;
		for (int j = 0; j < s->hd; j++)
			di += go[j] * oo[j];
		float *pr = P + (size_t)i * nk, *dr = dP + (size_t)i * nk;
		int last = t0 + i;
		for (int j = 0; j <= last; j++)
			pr[j] *= s->scale;
		train_vexp_scale(pr, last + 1, L[i], 1.0f);
		for (int j = 0; j <= last; j++)
			dr[j] = pr[j] * (dr[j] - di) * s->scale;
		for (int j = last + 1; j < nk; j++)
			pr[j] = dr[j] = 0.0f;
	}
	train_gemm_bf16_serial(0, 0, nq, s->hd, nk, dP, nk, kb, s->ks, 1.0f, s->dq + qo, s->qs,
			       s->ws);
	train_gemm_bf16_serial(1, 0, nk, s->hd, nq, dP, nk, Q, s->qs, 1.0f, dkb, s->ks, s->ws);
	train_gemm_bf16_serial(1, 0, nk, s->hd, nq, P, nk, dO, s->qs, 1.0f, dvb, s->ks, s->ws);
}

void train_attention_backward_bf16(float *dq, float *dk, float *dv, const float *dout,
				   const float *q, const float *k, const float *v, const float *out,
				   const float *lse, int B, int T, int NH, int NKV, int hd)
{
	int group = NH / NKV, ks = NKV * hd;
	size_t words = block_words(T, hd);
#pragma omp parallel
	{
		struct attn_bwd s = {
			.q = q, .dout = dout, .out = out, .lse = lse, .dq = dq, .T = T, .NH = NH,
			.hd = hd, .qs = NH * hd, .ks = ks, .scale = 1.0f / sqrtf((float)hd),
			.P = xmalloc(sizeof(float) * (size_t)QB * T),
			.dP = xmalloc(sizeof(float) * (size_t)QB * T),
			.ws = xmalloc(sizeof(uint32_t) * words),
		};
		/* a (b, kv head) task owns the dk/dv rows of its head and the dq
		 * of its query heads */
#pragma omp for collapse(2) schedule(dynamic, 1)
		for (int b = 0; b < B; b++)
			for (int kh = 0; kh < NKV; kh++) {
				size_t ko = (size_t)b * T * ks + (size_t)kh * hd;
				for (int h = kh * group; h < (kh + 1) * group; h++)
					for (int t0 = 0; t0 < T; t0 += QB)
						bwd_block(&s, b, h, t0, k + ko, v + ko, dk + ko, dv + ko);
			}
		free(s.P);
		free(s.dP);
		free(s.ws);
	}
}

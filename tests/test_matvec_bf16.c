/* test_matvec_bf16.c: the bf16-weight kernels of train/matvec_bf16.h
 * against their plain reference and against exact (double) products:
 * every kernel choice (auto, plain, AVX-512 widening, vdpbf16ps) with and
 * without BLAS over shapes with tails in every dimension, the embedding and
 * log-prob kernels against the f32 ones on the widened weights, and
 * hand-made values. */
#include "config.h"
#include "tests/tap.h"
#include "train/layers.h"
#include "train/matvec_bf16.h"
#include "train/precision.h"
#include "util/xmalloc.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float frand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((rng >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

static float *randv(size_t n)
{
	float *p = xmalloc(sizeof(float) * (n ? n : 1));
	for (size_t i = 0; i < n; i++)
		p[i] = frand();
	return p;
}

static uint16_t *randw(size_t n)
{
	uint16_t *p = xmalloc(sizeof(uint16_t) * (n ? n : 1));
	for (size_t i = 0; i < n; i++)
		p[i] = train_f32_to_bf16(frand());
	return p;
}

/* The worst |out - exact| / bound over out [N, OC], exact computed in
 * double from x (rounded to bf16 first when xround) and the widened w; the
 * bound is the float error bound of a dot product (Higham):
 * (C + 1) u sum |x_i w_i| + |bias|, u = 2^-24. 1 or less passes. */
static double worst_vs_exact(const float *out, const float *x, const uint16_t *w, const float *b,
			     int N, int C, int OC, int xround)
{
	double worst = 0;
	for (int n = 0; n < N; n++)
		for (int o = 0; o < OC; o++) {
			double e = b ? b[o] : 0.0, mag = b ? fabs(b[o]) : 0.0;
			for (int i = 0; i < C; i++) {
				float xv = x[(size_t)n * C + i];
				if (xround)
					xv = train_bf16_to_f32(train_f32_to_bf16(xv));
				double t = (double)xv * train_bf16_to_f32(w[(size_t)o * C + i]);
				e += t;
				mag += fabs(t);
			}
			double bound = (C + 1) * ldexp(1.0, -24) * mag + 1e-30;
			double r = fabs(out[(size_t)n * OC + o] - e) / bound;
			if (!(r <= worst))
				worst = isnan(r) ? INFINITY : r;
		}
	return worst;
}

static const char *kname[] = {"auto", "plain", "widen", "dot", "sgemm"};

static void test_matmul(void)
{
	static const int Ns[] = {1, 2, 3, 4, 5, 7, 8, 17, 33};
	static const struct { int C, OC; } sh[] = {
		{1, 1}, {7, 3}, {16, 4}, {33, 5}, {64, 65}, {100, 130}, {768, 67}, {3000, 9},
	};
	for (int k = 0; k < 5; k++)
		for (int blas = 0; blas < 2; blas++) {
			train_bf16_kernel = k;
			train_layers_use_blas = blas;
			int bad = 0, cases = 0;
			double worst = 0;
			for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++)
				for (size_t q = 0; q < sizeof Ns / sizeof Ns[0]; q++) {
					int N = Ns[q], C = sh[s].C, OC = sh[s].OC;
					float *x = randv((size_t)N * C), *b = randv(OC);
					uint16_t *w = randw((size_t)OC * C);
					float *o = xmalloc(sizeof(float) * N * OC);
					for (int bias = 0; bias < 2; bias++) {
						train_matmul_bf16_forward(o, x, w, bias ? b : NULL, N, C, OC);
						/* the dot kernel rounds the inputs to
						 * bf16: exact products of those, so
						 * only its summation order differs */
						int xr = k == TRAIN_BF16_KERNEL_DOT &&
							 train_cpu_has_avx512bf16();
						double r = worst_vs_exact(o, x, w, bias ? b : NULL, N, C,
									  OC, xr);
						worst = r > worst ? r : worst;
						bad += !(r <= 1);
						cases++;
					}
					free(x), free(b), free(w), free(o);
				}
			TAP_OK(!bad, "bf16 matmul, kernel %s (%s for N=1), blas=%d: %d cases within the "
				     "float bound of the exact product (worst %.2g of it)",
			       kname[k], train_bf16_kernel_name(1), blas, cases, worst);
		}
	train_bf16_kernel = TRAIN_BF16_KERNEL_AUTO;
	train_layers_use_blas = 1;

	/* the reference itself equals the f32 reference on widened weights */
	int N = 3, C = 45, OC = 11;
	float *x = randv((size_t)N * C), *b = randv(OC), *wf = xmalloc(sizeof(float) * OC * C);
	uint16_t *w = randw((size_t)OC * C);
	float *o1 = xmalloc(sizeof(float) * N * OC), *o2 = xmalloc(sizeof(float) * N * OC);
	train_bf16_to_f32_n(wf, w, (size_t)OC * C);
	train_matmul_bf16_forward_ref(o1, x, w, b, N, C, OC);
	train_matmul_forward_ref(o2, x, wf, b, N, C, OC);
	TAP_OK(!memcmp(o1, o2, sizeof(float) * N * OC),
	       "bf16 reference == f32 reference on the widened weights, bit for bit");
	/* the dot kernel against the unrounded inputs: each product is off by
	 * at most 2^-8 relative (x rounded: 2^-9, weights exact), so the
	 * result is within 2^-8 sum |x w| plus the summation bound */
	train_bf16_kernel = TRAIN_BF16_KERNEL_DOT;
	train_matmul_bf16_forward(o1, x, w, b, N, C, OC);
	train_bf16_kernel = TRAIN_BF16_KERNEL_AUTO;
	int ok = 1;
	for (int n = 0; n < N; n++)
		for (int j = 0; j < OC; j++) {
			double e = b[j], mag = 0;
			for (int i = 0; i < C; i++) {
				double t = (double)x[n * C + i] * wf[j * C + i];
				e += t;
				mag += fabs(t);
			}
			if (fabs(o1[n * OC + j] - e) > ldexp(mag, -8) + (C + 1) * ldexp(mag, -24) + 1e-6)
				ok = 0;
		}
	TAP_OK(ok, "dot kernel within 2^-8 sum|x w| of the exact product on unrounded inputs");
	/* by hand: [1 2 3] . [[0.5 -1 2] [1.5 0 -0.25]]^T + [1 0] = [5.5 0.75] */
	float hx[3] = {1, 2, 3}, hb[2] = {1, 0}, ho[2];
	uint16_t hw[6] = {0x3f00, 0xbf80, 0x4000, 0x3fc0, 0x0000, 0xbe80};
	for (int k = 0; k < 5; k++) {
		train_bf16_kernel = k;
		train_matmul_bf16_forward(ho, hx, hw, hb, 1, 3, 2);
		TAP_OK(ho[0] == 5.5f && ho[1] == 0.75f, "by hand, kernel %s: %g %g", kname[k], ho[0],
		       ho[1]);
	}
	train_bf16_kernel = TRAIN_BF16_KERNEL_AUTO;
	free(x), free(b), free(wf), free(w), free(o1), free(o2);
}

static void test_embed_logprob(void)
{
	int B = 2, T = 3, C = 37, V = 5000, maxT = 8;
	uint16_t *wte = randw((size_t)V * C), *wpe = randw((size_t)maxT * C);
	float *fte = xmalloc(sizeof(float) * V * C), *fpe = xmalloc(sizeof(float) * maxT * C);
	train_bf16_to_f32_n(fte, wte, (size_t)V * C);
	train_bf16_to_f32_n(fpe, wpe, (size_t)maxT * C);
	int ids[6] = {0, 4999, 17, 3, 3, 2500}, pos0[2] = {0, 5};
	float o1[6 * 37], o2[6 * 37];
	for (int gpt2 = 0; gpt2 < 2; gpt2++) {
		train_embedding_bf16_forward(o1, ids, wte, gpt2 ? wpe : NULL, pos0, B, T, C);
		train_embedding_forward_ref(o2, ids, fte, gpt2 ? fpe : NULL, pos0, B, T, C);
		TAP_OK(!memcmp(o1, o2, sizeof o1), "bf16 embedding == f32 on widened tables (wpe %d)",
		       gpt2);
	}
	/* log-probs over a vocabulary of two chunks plus a tail */
	int N = 6, tg[6] = {1, -1, 4999, 4096, 0, 2};
	float lp1[6], lp2[6], ls1[6], ls2[6];
	train_logprob_bf16_forward(lp1, ls1, o1, wte, tg, N, C, V);
	train_logprob_forward_ref(lp2, ls2, o1, fte, tg, N, C, V);
	double worst = 0;
	for (int n = 0; n < N; n++) {
		worst = fmax(worst, fabs(lp1[n] - lp2[n]));
		worst = fmax(worst, fabs(ls1[n] - ls2[n]));
	}
	TAP_OK(worst < 1e-5 && lp1[1] == 0, "bf16 log-probs == f32 reference on widened weights "
					     "(max diff %.2g)", worst);
	free(wte), free(wpe), free(fte), free(fpe);
}

int main(void)
{
	test_matmul();
	test_embed_logprob();
	return tap_done();
}

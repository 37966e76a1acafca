/* test_attention_bf16.c: training attention with bf16 products
 * (train/attention_bf16.h) against the float32 references
 * train_attention_forward_ref / train_attention_backward_ref (which sum in
 * float and double), on shapes that cross the query blocks (64) and the
 * tile edges, with grouped-query heads, on the AVX512-BF16 tile where the
 * CPU has it and the portable one.
 *
 * Tolerances, as tests/test_trainer_bf16.c derives them: a product with
 * both operands rounded to bf16 (u = 2^-9) perturbs its output by a
 * relative eps1 = u sqrt(2/3), independent perturbations add in quadrature,
 * an amplification K = 2 is allowed for the softmax between products, and
 * checks are at 4 sd:
 *   out (scores, then P.V: 2 products): ||d|| / ||ref|| <= 4 K eps1 sqrt(2);
 *   lse (the scores, 1 product): |d| <= 4 K eps1 s_rms, s_rms the rms of
 *     the scaled scores;
 *   dq, dk, dv (the scores and dO.V^T recomputed, then one of dS.K, dS^T.Q,
 *     P^T.dO; D from the reference's out): ||d|| / ||ref|| <= 4 K eps1 sqrt(3).
 * Wrong products (an operand swapped, a transpose or the scale missed, a
 * block skipped) are off by a relative O(1); the test also requires the
 * results to differ from float32 by more than u/16 (relative), i.e. that
 * the products did go through bf16. */
#include "config.h"
#include "tests/tap.h"
#include "train/attention_bf16.h"
#include "train/layers.h"
#include "train/layers_backward.h"
#include "train/matmul_bf16.h"
#include "train/precision.h"
#include "util/xmalloc.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define U 0x1p-9
#define AMP 2.0

static uint64_t rng = 0x2545f4914f6cdd1dull;

static float frand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((rng >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

static float *rand_vec(size_t n, float amp)
{
	float *v = xmalloc(sizeof(float) * n);
	for (size_t i = 0; i < n; i++)
		v[i] = amp * frand();
	return v;
}

/* ||got - want|| / ||want|| */
static double rel(const float *got, const float *want, size_t n)
{
	double d = 0, w = 0;
	for (size_t i = 0; i < n; i++) {
		d += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
		w += (double)want[i] * want[i];
	}
	return sqrt(d / (w + 1e-300));
}

/* rms of the scaled causal scores q.k / sqrt(hd) */
static double score_rms(const float *q, const float *k, int B, int T, int NH, int NKV, int hd)
{
	double s2 = 0, n = 0, sc = 1.0 / sqrt(hd);
	for (int b = 0; b < B; b++)
		for (int h = 0; h < NH; h++)
			for (int t = 0; t < T; t++)
				for (int s = 0; s <= t; s++) {
					const float *qv = q + (((size_t)b * T + t) * NH + h) * hd;
					const float *kv = k + (((size_t)b * T + s) * NKV + h / (NH / NKV)) * hd;
					double d = 0;
					for (int i = 0; i < hd; i++)
						d += (double)qv[i] * kv[i];
					s2 += d * sc * d * sc;
					n++;
				}
	return sqrt(s2 / n);
}

static void check(int B, int T, int NH, int NKV, int hd, float amp, int simd)
{
	double eps1 = U * sqrt(2.0 / 3.0);
	double tol_out = 4 * AMP * eps1 * sqrt(2.0), tol_grad = 4 * AMP * eps1 * sqrt(3.0);
	size_t nq = (size_t)B * T * NH * hd, nk = (size_t)B * T * NKV * hd, nl = (size_t)B * NH * T;
	float *q = rand_vec(nq, amp), *k = rand_vec(nk, amp), *v = rand_vec(nk, 1.0f);
	float *dout = rand_vec(nq, 1.0f);
	float *out = xmalloc(sizeof(float) * nq), *lse = xmalloc(sizeof(float) * nl);
	float *outr = xmalloc(sizeof(float) * nq), *lser = xmalloc(sizeof(float) * nl);
	train_bf16_use_simd = simd;
	const char *tile = train_gemm_bf16_kernel();

	train_attention_forward_ref(outr, lser, q, k, v, NULL, B, T, T, NH, NKV, hd);
	train_attention_forward_bf16(out, lse, q, k, v, B, T, NH, NKV, hd);
	double ro = rel(out, outr, nq), tl = 4 * AMP * eps1 * score_rms(q, k, B, T, NH, NKV, hd);
	double dl = 0;
	for (size_t i = 0; i < nl; i++)
		dl = fmax(dl, fabs((double)lse[i] - lser[i]));
	TAP_OK(ro <= tol_out && ro > U / 16, "%s B%d T%d NH%d NKV%d hd%d: out within %.3g of the "
	       "reference (rel %.3g)", tile, B, T, NH, NKV, hd, tol_out, ro);
	TAP_OK(dl <= tl && dl > 0, "%s B%d T%d: lse within %.3g (max diff %.3g)", tile, B, T, tl,
	       dl);

	/* backward from the reference's out and lse; gradients accumulate
	 * onto a common start */
	float *g0[3] = {rand_vec(nq, 0.1f), rand_vec(nk, 0.1f), rand_vec(nk, 0.1f)};
	size_t n[3] = {nq, nk, nk};
	float *g[3], *gr[3];
	for (int i = 0; i < 3; i++) {
		g[i] = xmalloc(sizeof(float) * n[i]);
		gr[i] = xmalloc(sizeof(float) * n[i]);
		memcpy(g[i], g0[i], sizeof(float) * n[i]);
		memcpy(gr[i], g0[i], sizeof(float) * n[i]);
	}
	train_attention_backward_ref(gr[0], gr[1], gr[2], dout, q, k, v, outr, lser, NULL, B, T, T,
				     NH, NKV, hd);
	train_attention_backward_bf16(g[0], g[1], g[2], dout, q, k, v, outr, lser, B, T, NH, NKV,
				      hd);
	static const char *name[3] = {"dq", "dk", "dv"};
	for (int i = 0; i < 3; i++) {
		/* the change each made to the start, compared */
		for (size_t j = 0; j < n[i]; j++) {
			g[i][j] -= g0[i][j];
			gr[i][j] -= g0[i][j];
		}
		double r = rel(g[i], gr[i], n[i]);
		TAP_OK(r <= tol_grad && r > U / 16, "%s B%d T%d NH%d NKV%d hd%d: %s within %.3g of "
		       "the reference (rel %.3g)", tile, B, T, NH, NKV, hd, name[i], tol_grad, r);
		free(g[i]);
		free(gr[i]);
		free(g0[i]);
	}
	free(q);
	free(k);
	free(v);
	free(dout);
	free(out);
	free(lse);
	free(outr);
	free(lser);
}

int main(void)
{
	static const struct {
		int B, T, NH, NKV, hd;
		float amp;
	} shapes[] = {
		{1, 5, 2, 1, 16, 1.0f},   {2, 150, 4, 2, 32, 1.0f}, {1, 64, 3, 3, 64, 2.0f},
		{2, 200, 2, 1, 24, 3.0f}, {1, 129, 6, 2, 40, 1.5f},
	};
	int nsimd = train_cpu_has_avx512bf16() ? 2 : 1;
	if (nsimd == 1)
		printf("# no AVX512-BF16 here: only the portable tile is tested\n");
	for (int s = 0; s < nsimd; s++)
		for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
			check(shapes[i].B, shapes[i].T, shapes[i].NH, shapes[i].NKV, shapes[i].hd,
			      shapes[i].amp, nsimd == 2 && s == 0);
	train_bf16_use_simd = 1;
	return tap_done();
}

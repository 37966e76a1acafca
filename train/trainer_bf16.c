/* trainer_bf16.c: the trainer's products over a frozen bf16 base (see
 * trainer_bf16.h). */
#include "config.h"
#include "train/trainer_bf16.h"
#include "train/layers.h"
#include "train/matmul_bf16.h"
#include "train/vecmath_bf16.h"
#include "util/xmalloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void train_linear_bf16w_forward(float *out, const float *inp, const uint16_t *w,
				const float *bias, int N, int C, int OC)
{
	if (bias)
		for (int n = 0; n < N; n++)
			memcpy(out + (size_t)n * OC, bias, sizeof(float) * OC);
	train_gemm_bf16_wb(0, 1, N, OC, C, inp, C, w, C, bias ? 1.0f : 0.0f, out, OC);
}

void train_linear_bf16w_backward(float *dinp, const float *dout, const uint16_t *w, int N, int C,
				 int OC)
{
	train_gemm_bf16_wb(0, 0, N, C, OC, dout, OC, w, C, 1.0f, dinp, C);
}

/* The logits z [N, cv] (row stride ld) of vocabulary columns v0.. replaced
 * by dlogits. */
static void to_dlogits(float *z, size_t ld, int cv, int v0, const float *dlogp,
		       const int *targets, const float *lse, int N)
{
	int vm = train_vecmath_on(); /* the exp of train_logprob_backward's bf16 path */
#pragma omp parallel for schedule(static) if ((size_t)N * cv > 16384)
	for (int n = 0; n < N; n++) {
		float *r = z + (size_t)n * ld;
		float g = targets[n] >= 0 ? dlogp[n] : 0.0f, l = lse[n];
		int t = targets[n] - v0;
		if (g == 0.0f)
			memset(r, 0, sizeof(float) * cv);
		else if (vm)
			train_vexp_scale(r, cv, l, -g);
		else
			for (int j = 0; j < cv; j++)
				r[j] = -g * expf(r[j] - l);
		if (g != 0.0f && t >= 0 && t < cv)
			r[t] += g;
	}
}

void train_logprob_bf16w_backward(float *dh, const float *dlogp, const float *h,
				  const uint16_t *wlm, const int *targets, const float *lse,
				  float *logits, int N, int C, int V)
{
	if (logits) {
		to_dlogits(logits, (size_t)V, V, 0, dlogp, targets, lse, N);
		train_linear_bf16w_backward(dh, logits, wlm, N, C, V);
		return;
	}
	int chunk = V < TRAIN_LOGPROB_CHUNK ? V : TRAIN_LOGPROB_CHUNK;
	float *z = xmalloc(sizeof(float) * (size_t)N * chunk);
	for (int v0 = 0; v0 < V; v0 += chunk) {
		int cv = V - v0 < chunk ? V - v0 : chunk;
		const uint16_t *w = wlm + (size_t)v0 * C;
		train_gemm_bf16_wb(0, 1, N, cv, C, h, C, w, C, 0.0f, z, cv);
		to_dlogits(z, (size_t)cv, cv, v0, dlogp, targets, lse, N);
		train_linear_bf16w_backward(dh, z, w, N, C, cv);
	}
	free(z);
}

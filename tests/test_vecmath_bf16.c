/* test_vecmath_bf16.c: the AVX-512 exp and GELU loops of the bf16 training
 * path (train/vecmath_bf16.h) against their scalar references and against
 * double precision, and the switch that picks them (bf16 only).
 *
 * Tolerances: the exp polynomial and its range reduction keep the relative
 * error of train_vexp_ref within 2^-22 of exp (2 ulp at the bottom of a
 * binade); the vector loops compute the same operations, up to the
 * compiler fusing a multiply and an add, so they stay within 4 ulp of the
 * scalar reference; sums are compared with the n * 2^-24 bound of float32
 * summation in another order. */
#include "config.h"
#include "tests/tap.h"
#include "train/matmul_bf16.h"
#include "train/precision.h"
#include "train/vecmath_bf16.h"
#include "util/xmalloc.h"

#include <math.h>
#include <stdint.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float frand(float lo, float hi)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return lo + (hi - lo) * (float)((rng >> 40) * (1.0 / 16777216.0));
}

static void test_exp(void)
{
	double worst = 0;
	for (int i = 0; i <= 400000; i++) {
		float x = -103.0f + (float)i * (191.7f / 400000.0f);
		double e = exp((double)x), got = train_vexp_ref(x);
		double rel = fabs(got - e) / e;
		if (e > 1.2e-38 && rel > worst) /* normal results */
			worst = rel;
	}
	TAP_OK(worst <= ldexp(1.0, -22), "exp reference: relative error %.3g <= 2^-22 on [-87, 88.7]",
	       worst);
	TAP_OK(train_vexp_ref(0.0f) == 1.0f, "exp(0) = 1");
	TAP_OK(train_vexp_ref(-200.0f) == 0.0f && train_vexp_ref(-INFINITY) == 0.0f,
	       "exp underflows to 0");
	TAP_OK(isinf(train_vexp_ref(100.0f)) && isinf(train_vexp_ref(INFINITY)), "exp overflows to inf");
	TAP_OK(isnan(train_vexp_ref(NAN)), "exp(NaN) is NaN");
}

/* the loops against the scalar references */
static void test_loops(void)
{
	static const int lens[] = {1, 5, 16, 17, 33, 100, 4096, 50257};
	int ok_max = 1, ok_sum = 1, ok_scale = 1, ok_edge = 1;
	double worst_sum = 0, worst_scale = 0;
	for (size_t t = 0; t < sizeof lens / sizeof lens[0]; t++) {
		int n = lens[t];
		float *r = xmalloc(sizeof(float) * n), *a = xmalloc(sizeof(float) * n);
		float *b = xmalloc(sizeof(float) * n);
		for (int j = 0; j < n; j++)
			r[j] = frand(-30.0f, 12.0f);
		if (n > 3)
			r[n / 2] = NAN; /* the max skips it, like the scalar loop */
		ok_max &= train_vmax(r, n, -INFINITY) == train_vmax_ref(r, n, -INFINITY);
		ok_max &= train_vmax(r, n, 50.0f) == 50.0f;
		if (n > 3)
			r[n / 2] = 1.0f;
		float m = train_vmax_ref(r, n, -INFINITY);
		float lg, lr;
		float sg = train_vexp_sum(r, n, m, &lg), sr = train_vexp_sum_ref(r, n, m, &lr);
		double e = 0, labs = 0;
		for (int j = 0; j < n; j++) {
			e += exp((double)r[j] - m);
			labs += fabs(r[j]);
		}
		double rel = fabs(sg - e) / e;
		worst_sum = rel > worst_sum ? rel : worst_sum;
		ok_sum &= rel <= (n + 4) * ldexp(1.0, -24) && fabs(sr - e) / e <= (n + 4) * ldexp(1.0, -24);
		ok_sum &= fabs((double)lg - lr) <= 2 * n * ldexp(1.0, -24) * labs;
		for (int j = 0; j < n; j++)
			a[j] = b[j] = r[j];
		if (n > 3) {
			a[0] = b[0] = -500.0f; /* underflow: 0 */
			a[1] = b[1] = NAN;
		}
		train_vexp_scale(a, n, m, -0.75f);
		train_vexp_scale_ref(b, n, m, -0.75f);
		if (n > 3)
			ok_edge &= a[0] == 0.0f && isnan(a[1]) && isnan(b[1]);
		for (int j = n > 3 ? 2 : 0; j < n; j++) {
			double d = fabs((double)a[j] - b[j]) / (fabs(b[j]) + 1e-37);
			worst_scale = d > worst_scale ? d : worst_scale;
		}
		free(r);
		free(a);
		free(b);
	}
	ok_scale = worst_scale <= 4 * ldexp(1.0, -24);
	TAP_OK(ok_max, "vector max = scalar max (NaN skipped, start value kept)");
	TAP_OK(ok_sum, "exp sums within the summation bound of double (worst %.3g)", worst_sum);
	TAP_OK(ok_scale, "exp scale loop within 4 ulp of its reference (worst %.3g)", worst_scale);
	TAP_OK(ok_edge, "exp scale loop: underflow gives 0, NaN stays NaN");
}

static double gelu_d(double x)
{
	return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}

static double gelu_grad_d(double x)
{
	double u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
	double th = tanh(u), du = 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x * x);
	return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * du;
}

static void test_gelu(void)
{
	size_t n = 100003; /* over the threading threshold, with a tail */
	float *x = xmalloc(sizeof(float) * n), *dy = xmalloc(sizeof(float) * n);
	float *y = xmalloc(sizeof(float) * n), *yr = xmalloc(sizeof(float) * n);
	float *dx = xmalloc(sizeof(float) * n), *dxr = xmalloc(sizeof(float) * n);
	for (size_t i = 0; i < n; i++) {
		x[i] = i % 97 == 0 ? frand(-40.0f, 40.0f) : frand(-6.0f, 6.0f);
		dy[i] = frand(-1.0f, 1.0f);
		dx[i] = dxr[i] = frand(-0.5f, 0.5f);
	}
	train_vgelu_forward(y, x, n);
	train_vgelu_forward_ref(yr, x, n);
	train_vgelu_backward(dx, x, dy, n);
	train_vgelu_backward_ref(dxr, x, dy, n);
	double wf = 0, wb = 0, wfd = 0;
	for (size_t i = 0; i < n; i++) {
		double s = 1.0 + fabs(x[i]);
		wf = fmax(wf, fabs((double)y[i] - yr[i]) / s);
		wb = fmax(wb, fabs((double)dx[i] - dxr[i]) / s);
		wfd = fmax(wfd, fabs(y[i] - gelu_d(x[i])) / s);
	}
	/* the backward against double on fresh accumulators */
	for (size_t i = 0; i < n; i++)
		dx[i] = 0;
	train_vgelu_backward(dx, x, dy, n);
	double wg = 0;
	for (size_t i = 0; i < n; i++)
		wg = fmax(wg, fabs(dx[i] - dy[i] * gelu_grad_d(x[i])) / (1.0 + fabs(x[i])));
	TAP_OK(wf <= 8 * ldexp(1.0, -24), "gelu forward loop vs its reference: %.3g", wf);
	TAP_OK(wb <= 8 * ldexp(1.0, -24), "gelu backward loop vs its reference: %.3g", wb);
	TAP_OK(wfd <= 1e-6, "gelu forward vs double: %.3g <= 1e-6 (1 + |x|)", wfd);
	TAP_OK(wg <= 1e-6, "gelu backward vs double: %.3g <= 1e-6 (1 + |x|)", wg);
	free(x);
	free(dy);
	free(y);
	free(yr);
	free(dx);
	free(dxr);
}

int main(void)
{
	test_exp();
	test_loops();
	if (!train_cpu_has_avx512bf16())
		printf("# no AVX512-BF16 here: the loops run their scalar references\n");
	test_gelu();
	train_gemm_set_precision(TRAIN_PREC_F32);
	TAP_OK(!train_vecmath_on(), "f32: the trainer keeps its scalar loops");
	train_gemm_set_precision(TRAIN_PREC_BF16);
	TAP_OK(train_vecmath_on() == train_cpu_has_avx512bf16(),
	       "bf16: the vector loops where the CPU has AVX512-BF16");
	train_bf16_use_simd = 0;
	TAP_OK(!train_vecmath_on(), "bf16 with the portable tile: scalar loops");
	train_bf16_use_simd = 1;
	train_gemm_set_precision(TRAIN_PREC_F32);
	return tap_done();
}

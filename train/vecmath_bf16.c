/* vecmath_bf16.c: AVX-512 exp and GELU loops (see vecmath_bf16.h). */
#include "config.h"
#include "train/vecmath_bf16.h"
#include "train/layers.h"
#include "train/precision.h"

#include <math.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define VM_SIMD 1
#define VM_TARGET __attribute__((target("avx512f,avx512dq")))
#endif

/* exp(x) = 2^n exp(r), n = round(x / ln 2), r = x - n ln 2 in two parts
 * (|r| <= ln2 / 2), exp(r) = 1 + r + r^2 P(r) (Cephes' expf polynomial) */
#define VX_LO -103.9720840454f /* exp below: 0 in float */
#define VX_HI 88.7228393555f   /* exp above: inf */
#define VX_LOG2E 1.44269504088896341f
#define VX_LN2_HI 0.693359375f
#define VX_LN2_LO -2.12194440e-4f
#define VX_P0 1.9875691500e-4f
#define VX_P1 1.3981999507e-3f
#define VX_P2 8.3334519073e-3f
#define VX_P3 4.1665795894e-2f
#define VX_P4 1.6666665459e-1f
#define VX_P5 5.0000001201e-1f
#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f

float train_vexp_ref(float x)
{
	if (x != x)
		return x;
	x = x < VX_LO ? VX_LO : x > VX_HI ? VX_HI : x;
	float n = nearbyintf(x * VX_LOG2E);
	float r = fmaf(-n, VX_LN2_HI, x);
	r = fmaf(-n, VX_LN2_LO, r);
	float p = fmaf(VX_P0, r, VX_P1);
	p = fmaf(p, r, VX_P2);
	p = fmaf(p, r, VX_P3);
	p = fmaf(p, r, VX_P4);
	p = fmaf(p, r, VX_P5);
	p = fmaf(p, r * r, r) + 1.0f;
	return ldexpf(p, (int)n);
}

float train_vmax_ref(const float *r, int n, float m)
{
	for (int j = 0; j < n; j++)
		m = r[j] > m ? r[j] : m;
	return m;
}

float train_vexp_sum_ref(const float *r, int n, float m, float *lsum)
{
	float s = 0, ls = 0;
	for (int j = 0; j < n; j++) {
		s += train_vexp_ref(r[j] - m);
		ls += r[j];
	}
	*lsum = ls;
	return s;
}

void train_vexp_scale_ref(float *r, int n, float sub, float mul)
{
	for (int j = 0; j < n; j++)
		r[j] = mul * train_vexp_ref(r[j] - sub);
}

/* tanh(u) = sign(u) (1 - e) / (1 + e), e = exp(-2|u|) */
static float tanh_ref(float u)
{
	float e = train_vexp_ref(-2.0f * fabsf(u));
	return copysignf((1.0f - e) / (1.0f + e), u);
}

void train_vgelu_forward_ref(float *out, const float *inp, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		float x = inp[i];
		out[i] = 0.5f * x * (1.0f + tanh_ref(GELU_K * (x + GELU_A * x * x * x)));
	}
}

void train_vgelu_backward_ref(float *dinp, const float *inp, const float *dout, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		float x = inp[i];
		float th = tanh_ref(GELU_K * (x + GELU_A * x * x * x));
		float du = GELU_K * (1.0f + 3.0f * GELU_A * x * x);
		dinp[i] += dout[i] * (0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du);
	}
}

#ifdef VM_SIMD
VM_TARGET static inline __m512 vexp(__m512 x)
{
	/* max/min return their second operand when one is NaN: NaN passes */
	x = _mm512_min_ps(_mm512_set1_ps(VX_HI), _mm512_max_ps(_mm512_set1_ps(VX_LO), x));
	__m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(VX_LOG2E)),
					_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(VX_LN2_HI), x);
	r = _mm512_fnmadd_ps(n, _mm512_set1_ps(VX_LN2_LO), r);
	__m512 p = _mm512_fmadd_ps(_mm512_set1_ps(VX_P0), r, _mm512_set1_ps(VX_P1));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VX_P2));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VX_P3));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VX_P4));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VX_P5));
	p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
	return _mm512_scalef_ps(p, n);
}

VM_TARGET static inline __m512 vtanh(__m512 u)
{
	const __m512 one = _mm512_set1_ps(1.0f);
	__m512 a = _mm512_abs_ps(u);
	__m512 e = vexp(_mm512_mul_ps(_mm512_set1_ps(-2.0f), a));
	__m512 t = _mm512_div_ps(_mm512_sub_ps(one, e), _mm512_add_ps(one, e));
	/* the sign of u onto t (t >= 0) */
	return _mm512_castsi512_ps(_mm512_or_si512(
		_mm512_castps_si512(t),
		_mm512_and_si512(_mm512_castps_si512(u), _mm512_set1_epi32((int)0x80000000u))));
}

static inline __mmask16 tail_mask(long left)
{
	return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
}

VM_TARGET static float vmax(const float *r, int n, float m)
{
	__m512 v = _mm512_set1_ps(m);
	for (int j = 0; j < n; j += 16) {
		__mmask16 k = tail_mask(n - j);
		/* max_ps(x, v) is x > v ? x : v, as the scalar loop (v on NaN) */
		__m512 x = _mm512_mask_loadu_ps(v, k, r + j);
		v = _mm512_max_ps(x, v);
	}
	return _mm512_reduce_max_ps(v);
}

VM_TARGET static float vexp_sum(const float *r, int n, float m, float *lsum)
{
	__m512 s = _mm512_setzero_ps(), ls = s, vm = _mm512_set1_ps(m);
	for (int j = 0; j < n; j += 16) {
		__mmask16 k = tail_mask(n - j);
		__m512 x = _mm512_maskz_loadu_ps(k, r + j);
		ls = _mm512_add_ps(ls, x);
		s = _mm512_mask_add_ps(s, k, s, vexp(_mm512_sub_ps(x, vm)));
	}
	*lsum = _mm512_reduce_add_ps(ls);
	return _mm512_reduce_add_ps(s);
}

VM_TARGET static void vexp_scale(float *r, int n, float sub, float mul)
{
	__m512 vs = _mm512_set1_ps(sub), vmul = _mm512_set1_ps(mul);
	for (int j = 0; j < n; j += 16) {
		__mmask16 k = tail_mask(n - j);
		__m512 x = _mm512_maskz_loadu_ps(k, r + j);
		_mm512_mask_storeu_ps(r + j, k, _mm512_mul_ps(vmul, vexp(_mm512_sub_ps(x, vs))));
	}
}

VM_TARGET static void vgelu_fwd(float *out, const float *inp, size_t n)
{
	const __m512 h = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
	const __m512 gk = _mm512_set1_ps(GELU_K), ga = _mm512_set1_ps(GELU_A);
	for (size_t i = 0; i < n; i += 16) {
		__mmask16 k = tail_mask((long)(n - i));
		__m512 x = _mm512_maskz_loadu_ps(k, inp + i);
		__m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
		__m512 th = vtanh(_mm512_mul_ps(gk, _mm512_fmadd_ps(ga, x3, x)));
		__m512 y = _mm512_mul_ps(_mm512_mul_ps(h, x), _mm512_add_ps(one, th));
		_mm512_mask_storeu_ps(out + i, k, y);
	}
}

VM_TARGET static void vgelu_bwd(float *dinp, const float *inp, const float *dout, size_t n)
{
	const __m512 h = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
	const __m512 gk = _mm512_set1_ps(GELU_K), ga = _mm512_set1_ps(GELU_A);
	const __m512 ga3 = _mm512_set1_ps(3.0f * GELU_A);
	for (size_t i = 0; i < n; i += 16) {
		__mmask16 k = tail_mask((long)(n - i));
		__m512 x = _mm512_maskz_loadu_ps(k, inp + i);
		__m512 x2 = _mm512_mul_ps(x, x);
		__m512 th = vtanh(_mm512_mul_ps(gk, _mm512_fmadd_ps(ga, _mm512_mul_ps(x2, x), x)));
		__m512 du = _mm512_mul_ps(gk, _mm512_fmadd_ps(ga3, x2, one));
		__m512 sech2 = _mm512_fnmadd_ps(th, th, one);
		__m512 g = _mm512_add_ps(_mm512_mul_ps(h, _mm512_add_ps(one, th)),
					 _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(h, x), sech2), du));
		__m512 d = _mm512_maskz_loadu_ps(k, dinp + i);
		d = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, dout + i), g, d);
		_mm512_mask_storeu_ps(dinp + i, k, d);
	}
}
#endif

float train_vmax(const float *r, int n, float m)
{
#ifdef VM_SIMD
	if (train_cpu_has_avx512bf16())
		return vmax(r, n, m);
#endif
	return train_vmax_ref(r, n, m);
}

float train_vexp_sum(const float *r, int n, float m, float *lsum)
{
#ifdef VM_SIMD
	if (train_cpu_has_avx512bf16())
		return vexp_sum(r, n, m, lsum);
#endif
	return train_vexp_sum_ref(r, n, m, lsum);
}

void train_vexp_scale(float *r, int n, float sub, float mul)
{
#ifdef VM_SIMD
	if (train_cpu_has_avx512bf16()) {
		vexp_scale(r, n, sub, mul);
		return;
	}
#endif
	train_vexp_scale_ref(r, n, sub, mul);
}

/* the loops in blocks of 4096 values, shared out over the threads */
#define VM_BLK 4096

void train_vgelu_forward(float *out, const float *inp, size_t n)
{
	long nb = (long)((n + VM_BLK - 1) / VM_BLK);
#pragma omp parallel for schedule(static) if (n > 65536)
	for (long b = 0; b < nb; b++) {
		size_t i0 = (size_t)b * VM_BLK, m = n - i0 < VM_BLK ? n - i0 : VM_BLK;
#ifdef VM_SIMD
		if (train_cpu_has_avx512bf16()) {
			vgelu_fwd(out + i0, inp + i0, m);
			continue;
		}
#endif
		train_vgelu_forward_ref(out + i0, inp + i0, m);
	}
}

void train_vgelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
	long nb = (long)((n + VM_BLK - 1) / VM_BLK);
#pragma omp parallel for schedule(static) if (n > 65536)
	for (long b = 0; b < nb; b++) {
		size_t i0 = (size_t)b * VM_BLK, m = n - i0 < VM_BLK ? n - i0 : VM_BLK;
#ifdef VM_SIMD
		if (train_cpu_has_avx512bf16()) {
			vgelu_bwd(dinp + i0, inp + i0, dout + i0, m);
			continue;
		}
#endif
		train_vgelu_backward_ref(dinp + i0, inp + i0, dout + i0, m);
	}
}

void train_gelu_bf16w_forward(float *out, const float *inp, size_t n, int serial)
{
#ifdef VM_SIMD
	if (train_cpu_has_avx512bf16()) {
		if (serial)
			vgelu_fwd(out, inp, n);
		else
			train_vgelu_forward(out, inp, n);
		return;
	}
#endif
	if (serial)
		train_gelu_forward_serial(out, inp, n);
	else
		train_gelu_forward(out, inp, n);
}

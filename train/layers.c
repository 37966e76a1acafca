/* layers.c: forward kernels (see layers.h). Each optimized kernel sits next
 * to its plain reference. */
#include "config.h"
#include "train/layers.h"
#include "util/xmalloc.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef HAVE_BLAS
#include <cblas.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- embedding ---- */

void train_embedding_forward_ref(float *out, const int *ids, const float *wte, const float *wpe,
				 const int *pos0, int B, int T, int C)
{
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++) {
			float *o = out + ((size_t)b * T + t) * C;
			const float *e = wte + (size_t)ids[b * T + t] * C;
			int p = (pos0 ? pos0[b] : 0) + t;
			for (int i = 0; i < C; i++)
				o[i] = e[i] + (wpe ? wpe[(size_t)p * C + i] : 0.0f);
		}
}

void train_embedding_forward(float *out, const int *ids, const float *wte, const float *wpe,
			     const int *pos0, int B, int T, int C)
{
#pragma omp parallel for collapse(2) if ((size_t)B * T * C > 65536)
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++) {
			float *o = out + ((size_t)b * T + t) * C;
			const float *e = wte + (size_t)ids[b * T + t] * C;
			if (wpe) {
				const float *pe = wpe + (size_t)((pos0 ? pos0[b] : 0) + t) * C;
				for (int i = 0; i < C; i++)
					o[i] = e[i] + pe[i];
			} else {
				memcpy(o, e, sizeof(float) * C);
			}
		}
}

/* ---- layernorm ---- */

static void layernorm_row(float *o, float *mean, float *rstd, const float *x, const float *w,
			  const float *bias, int C, float eps)
{
	double m = 0.0;
	for (int i = 0; i < C; i++)
		m += x[i];
	m /= C;
	double v = 0.0;
	for (int i = 0; i < C; i++) {
		double d = x[i] - m;
		v += d * d;
	}
	v /= C;
	float s = (float)(1.0 / sqrt(v + eps));
	float mf = (float)m;
	for (int i = 0; i < C; i++)
		o[i] = (x[i] - mf) * s * w[i] + (bias ? bias[i] : 0.0f);
	if (mean)
		*mean = mf;
	if (rstd)
		*rstd = s;
}

void train_layernorm_forward_ref(float *out, float *mean, float *rstd, const float *inp,
				 const float *weight, const float *bias, int N, int C, float eps)
{
	for (int n = 0; n < N; n++)
		layernorm_row(out + (size_t)n * C, mean ? mean + n : NULL, rstd ? rstd + n : NULL,
			      inp + (size_t)n * C, weight, bias, C, eps);
}

void train_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
			     const float *weight, const float *bias, int N, int C, float eps)
{
#pragma omp parallel for if ((size_t)N * C > 32768)
	for (int n = 0; n < N; n++)
		layernorm_row(out + (size_t)n * C, mean ? mean + n : NULL, rstd ? rstd + n : NULL,
			      inp + (size_t)n * C, weight, bias, C, eps);
}

/* ---- rmsnorm ---- */

static void rmsnorm_row(float *o, float *rstd, const float *x, const float *w, int C, float eps)
{
	double ss = 0.0;
	for (int i = 0; i < C; i++)
		ss += (double)x[i] * x[i];
	float s = (float)(1.0 / sqrt(ss / C + eps));
	for (int i = 0; i < C; i++)
		o[i] = x[i] * s * w[i];
	if (rstd)
		*rstd = s;
}

void train_rmsnorm_forward_ref(float *out, float *rstd, const float *inp, const float *weight,
			       int N, int C, float eps)
{
	for (int n = 0; n < N; n++)
		rmsnorm_row(out + (size_t)n * C, rstd ? rstd + n : NULL, inp + (size_t)n * C, weight,
			    C, eps);
}

void train_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight,
			   int N, int C, float eps)
{
#pragma omp parallel for if ((size_t)N * C > 32768)
	for (int n = 0; n < N; n++)
		rmsnorm_row(out + (size_t)n * C, rstd ? rstd + n : NULL, inp + (size_t)n * C, weight,
			    C, eps);
}

/* ---- matmul ---- */

void train_matmul_forward_ref(float *out, const float *inp, const float *weight,
			      const float *bias, int N, int C, int OC)
{
	for (int n = 0; n < N; n++) {
		const float *x = inp + (size_t)n * C;
		for (int o = 0; o < OC; o++) {
			const float *w = weight + (size_t)o * C;
			float s = bias ? bias[o] : 0.0f;
			for (int i = 0; i < C; i++)
				s += x[i] * w[i];
			out[(size_t)n * OC + o] = s;
		}
	}
}

/* 4 floats as one GCC/Clang vector (an SSE register, the x86-64 baseline;
 * NEON on arm64). Loops below keep two of them per row for 8 lanes. */
typedef float v4f __attribute__((vector_size(16)));

static inline v4f load4(const float *p)
{
	v4f v;
	memcpy(&v, p, sizeof v);
	return v;
}

static inline float hsum(v4f a, v4f b)
{
	v4f v = a + b;
	return (v[0] + v[1]) + (v[2] + v[3]);
}

/* Dot product in 8 lanes. */
static inline float dot8(const float *a, const float *b, int n)
{
	v4f acc0 = {0}, acc1 = {0};
	int i = 0;
	for (; i + 8 <= n; i += 8) {
		acc0 += load4(a + i) * load4(b + i);
		acc1 += load4(a + i + 4) * load4(b + i + 4);
	}
	float s = hsum(acc0, acc1);
	for (; i < n; i++)
		s += a[i] * b[i];
	return s;
}

/* Plain optimized kernel: a tile of 4 input rows shares each weight row, so
 * the weight matrix is read N/4 times instead of N; OpenMP over output
 * columns so that decoding (N small) is spread across threads. */
static void matmul_plain(float *out, const float *inp, const float *weight, const float *bias,
			 int N, int C, int OC)
{
#pragma omp parallel for schedule(static) if ((size_t)N * C * OC > 100000)
	for (int o = 0; o < OC; o++) {
		const float *w = weight + (size_t)o * C;
		float bo = bias ? bias[o] : 0.0f;
		int n = 0;
		for (; n + 4 <= N; n += 4) {
			const float *x0 = inp + (size_t)n * C;
			const float *x1 = x0 + C, *x2 = x1 + C, *x3 = x2 + C;
			v4f a0 = {0}, b0 = {0}, a1 = {0}, b1 = {0}, a2 = {0}, b2 = {0}, a3 = {0},
			    b3 = {0};
			int i = 0;
			for (; i + 8 <= C; i += 8) {
				v4f wa = load4(w + i), wb = load4(w + i + 4);
				a0 += load4(x0 + i) * wa;
				b0 += load4(x0 + i + 4) * wb;
				a1 += load4(x1 + i) * wa;
				b1 += load4(x1 + i + 4) * wb;
				a2 += load4(x2 + i) * wa;
				b2 += load4(x2 + i + 4) * wb;
				a3 += load4(x3 + i) * wa;
				b3 += load4(x3 + i + 4) * wb;
			}
			float s0 = hsum(a0, b0), s1 = hsum(a1, b1), s2 = hsum(a2, b2);
			float s3 = hsum(a3, b3);
			for (; i < C; i++) {
				s0 += x0[i] * w[i];
				s1 += x1[i] * w[i];
				s2 += x2[i] * w[i];
				s3 += x3[i] * w[i];
			}
			out[(size_t)n * OC + o] = s0 + bo;
			out[(size_t)(n + 1) * OC + o] = s1 + bo;
			out[(size_t)(n + 2) * OC + o] = s2 + bo;
			out[(size_t)(n + 3) * OC + o] = s3 + bo;
		}
		for (; n < N; n++)
			out[(size_t)n * OC + o] = dot8(inp + (size_t)n * C, w, C) + bo;
	}
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MATMUL_AVX2 1
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline float hsum256(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* Finish one output: the lanes of acc, the tail j in [i, C) of x . w, bias. */
AVX2 static inline float finish(__m256 acc, const float *x, const float *w, int i, int C, float b)
{
	float s = hsum256(acc);
	for (; i < C; i++)
		s += x[i] * w[i];
	return s + b;
}

/* How far ahead (in floats) the 4-row tiles prefetch their weight rows. */
#define MATMUL_PREFETCH 1024

/* Two output columns o0 and o1 against all N input rows: tiles of 4 rows x
 * 2 columns, so each 8-float load of an input row feeds two FMAs (6 loads
 * for 8 FMAs instead of 10). o0 == o1 is allowed (one column, computed
 * twice). */
AVX2 static void columns2_avx2(float *out, const float *inp, const float *weight, const float *bias, int N,
			       int C, int OC, int o0, int o1)
{
	const float *w0 = weight + (size_t)o0 * C, *w1 = weight + (size_t)o1 * C;
	float b0 = bias ? bias[o0] : 0.0f, b1 = bias ? bias[o1] : 0.0f;
	int n = 0, i;
	for (; n + 4 <= N; n += 4) {
		const float *x0 = inp + (size_t)n * C, *x1 = x0 + C, *x2 = x1 + C, *x3 = x2 + C;
		__m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00;
		__m256 a20 = a00, a21 = a00, a30 = a00, a31 = a00;
		for (i = 0; i + 8 <= C; i += 8) {
			/* this tile computes for long enough that the hardware
			 * prefetcher falls behind: ask for the weights 4 KiB ahead
			 * (one line of each row per 16 floats). Measured on the
			 * GPT-2-124M decode at batch 4: +15%; at one row, where
			 * the loop is memory-bound, it only got in the way. */
			if ((i & 15) == 0) { /* (past a row's end is fine: prefetches never fault) */
				_mm_prefetch((const char *)((uintptr_t)(w0 + i) + 4 * MATMUL_PREFETCH), _MM_HINT_T0);
				_mm_prefetch((const char *)((uintptr_t)(w1 + i) + 4 * MATMUL_PREFETCH), _MM_HINT_T0);
			}
			__m256 v0 = _mm256_loadu_ps(w0 + i), v1 = _mm256_loadu_ps(w1 + i);
			__m256 y0 = _mm256_loadu_ps(x0 + i), y1 = _mm256_loadu_ps(x1 + i);
			__m256 y2 = _mm256_loadu_ps(x2 + i), y3 = _mm256_loadu_ps(x3 + i);
			/* keep the inputs in registers: folded into the FMAs as
			 * memory operands, each would be loaded twice, and loads,
			 * not FMAs, would bound the loop */
			__asm__("" : "+x"(y0), "+x"(y1), "+x"(y2), "+x"(y3));
			a00 = _mm256_fmadd_ps(y0, v0, a00);
			a01 = _mm256_fmadd_ps(y0, v1, a01);
			a10 = _mm256_fmadd_ps(y1, v0, a10);
			a11 = _mm256_fmadd_ps(y1, v1, a11);
			a20 = _mm256_fmadd_ps(y2, v0, a20);
			a21 = _mm256_fmadd_ps(y2, v1, a21);
			a30 = _mm256_fmadd_ps(y3, v0, a30);
			a31 = _mm256_fmadd_ps(y3, v1, a31);
		}
		float *y = out + (size_t)n * OC;
		y[o0] = finish(a00, x0, w0, i, C, b0);
		y[o1] = finish(a01, x0, w1, i, C, b1);
		y[OC + o0] = finish(a10, x1, w0, i, C, b0);
		y[OC + o1] = finish(a11, x1, w1, i, C, b1);
		y[2 * (size_t)OC + o0] = finish(a20, x2, w0, i, C, b0);
		y[2 * (size_t)OC + o1] = finish(a21, x2, w1, i, C, b1);
		y[3 * (size_t)OC + o0] = finish(a30, x3, w0, i, C, b0);
		y[3 * (size_t)OC + o1] = finish(a31, x3, w1, i, C, b1);
	}
	for (; n < N; n++) {
		const float *x0 = inp + (size_t)n * C;
		__m256 a0 = _mm256_setzero_ps(), a1 = a0, c0 = a0, c1 = a0;
		for (i = 0; i + 16 <= C; i += 16) {
			__m256 xa = _mm256_loadu_ps(x0 + i), xb = _mm256_loadu_ps(x0 + i + 8);
			a0 = _mm256_fmadd_ps(xa, _mm256_loadu_ps(w0 + i), a0);
			a1 = _mm256_fmadd_ps(xa, _mm256_loadu_ps(w1 + i), a1);
			c0 = _mm256_fmadd_ps(xb, _mm256_loadu_ps(w0 + i + 8), c0);
			c1 = _mm256_fmadd_ps(xb, _mm256_loadu_ps(w1 + i + 8), c1);
		}
		for (; i + 8 <= C; i += 8) {
			__m256 xa = _mm256_loadu_ps(x0 + i);
			a0 = _mm256_fmadd_ps(xa, _mm256_loadu_ps(w0 + i), a0);
			a1 = _mm256_fmadd_ps(xa, _mm256_loadu_ps(w1 + i), a1);
		}
		out[(size_t)n * OC + o0] = finish(_mm256_add_ps(a0, c0), x0, w0, i, C, b0);
		out[(size_t)n * OC + o1] = finish(_mm256_add_ps(a1, c1), x0, w1, i, C, b1);
	}
}

/* The plain kernel with 8-lane FMA tiles (x86-64 CPUs with AVX2 and FMA,
 * chosen at run time). Each weight row is read once per 4 input rows, so
 * decoding a batch of up to 4 rows costs about one pass over the weights,
 * like one row. Columns go in pairs (o, o + OC/2): the two weight rows are
 * far apart in memory, two separate streams (adjacent rows read side by
 * side ran at half the memory speed here); an odd last column pairs with
 * itself. */
AVX2 static void matmul_avx2(float *out, const float *inp, const float *weight, const float *bias, int N, int C,
			     int OC)
{
	int H = OC / 2, np = H + (OC & 1);
#pragma omp parallel for schedule(static) if ((size_t)N * C * OC > 100000)
	for (int p = 0; p < np; p++) {
		if (p == H)
			columns2_avx2(out, inp, weight, bias, N, C, OC, OC - 1, OC - 1);
		else
			columns2_avx2(out, inp, weight, bias, N, C, OC, p, p + H);
	}
}

static int cpu_has_avx2(void)
{
	static int have = -1;
	if (have < 0) {
		__builtin_cpu_init();
		have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
	}
	return have;
}
#endif

/* Set by the bench and tests: 0 forces the plain kernel even with BLAS. */
int train_layers_use_blas = 1;
int train_layers_use_simd = 1;

void train_set_threads(int n)
{
	if (n <= 0)
		return;
#ifdef _OPENMP
	omp_set_num_threads(n);
#endif
#ifdef HAVE_BLAS
	openblas_set_num_threads(n);
#endif
}

void train_matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
			  int N, int C, int OC)
{
#ifdef HAVE_BLAS
	if (train_layers_use_blas && N >= 16 && (size_t)N * C * OC >= 1u << 20) {
		if (bias) {
			for (int n = 0; n < N; n++)
				memcpy(out + (size_t)n * OC, bias, sizeof(float) * OC);
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight,
			    C, bias ? 1.0f : 0.0f, out, OC);
		return;
	}
#endif
#ifdef MATMUL_AVX2
	if (train_layers_use_simd && cpu_has_avx2()) {
		matmul_avx2(out, inp, weight, bias, N, C, OC);
		return;
	}
#endif
	matmul_plain(out, inp, weight, bias, N, C, OC);
}

/* ---- qkv split ---- */

void train_qkv_split_forward(float *q, float *k, float *v, const float *qkv, int N, int NH,
			     int NKV, int hd)
{
	size_t qn = (size_t)NH * hd, kn = (size_t)NKV * hd, row = qn + 2 * kn;
	for (int n = 0; n < N; n++) {
		const float *r = qkv + (size_t)n * row;
		memcpy(q + (size_t)n * qn, r, sizeof(float) * qn);
		memcpy(k + (size_t)n * kn, r + qn, sizeof(float) * kn);
		memcpy(v + (size_t)n * kn, r + qn + kn, sizeof(float) * kn);
	}
}

/* ---- rope ---- */

double train_round_dtype(double x, int dtype)
{
	float f = (float)x;
	if (dtype == 1) {
		uint32_t u;
		memcpy(&u, &f, 4);
		u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
		memcpy(&f, &u, 4);
		return f;
	}
	if (dtype == 2) {
		/* float16: 11 significant bits; inverse frequencies are in
		 * (0, 1], use the normal/subnormal spacing of that range */
		int e;
		frexp(x, &e);
		double q = ldexp(1.0, (e - 1 < -14 ? -14 : e - 1) - 10);
		return nearbyint(x / q) * q;
	}
	return x;
}

void train_rope_tables_freq(float *cos_tab, float *sin_tab, int maxT, int hd,
			    const double *inv_freq)
{
	int h = hd / 2;
	for (int i = 0; i < h; i++)
		for (int p = 0; p < maxT; p++) {
			double a = p * inv_freq[i];
			cos_tab[(size_t)p * h + i] = (float)cos(a);
			sin_tab[(size_t)p * h + i] = (float)sin(a);
		}
}

void train_rope_tables(float *cos_tab, float *sin_tab, int maxT, int hd, double theta,
		       int inv_freq_dtype)
{
	int h = hd / 2;
	double *inv = xmalloc(sizeof(double) * (h ? h : 1));
	for (int i = 0; i < h; i++)
		inv[i] = train_round_dtype((float)pow(theta, -(2.0 * i) / hd), inv_freq_dtype);
	train_rope_tables_freq(cos_tab, sin_tab, maxT, hd, inv);
	free(inv);
}

static inline void rope_vec(float *o, const float *x, const float *c, const float *s, int h)
{
	for (int i = 0; i < h; i++) {
		float a = x[i], b = x[i + h];
		o[i] = a * c[i] - b * s[i];
		o[i + h] = b * c[i] + a * s[i];
	}
}

void train_rope_forward_ref(float *out, const float *inp, const float *cos_tab,
			    const float *sin_tab, const int *pos0, int B, int T, int H, int hd)
{
	int h = hd / 2;
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++) {
			int p = (pos0 ? pos0[b] : 0) + t;
			for (int j = 0; j < H; j++) {
				size_t off = (((size_t)b * T + t) * H + j) * hd;
				rope_vec(out + off, inp + off, cos_tab + (size_t)p * h,
					 sin_tab + (size_t)p * h, h);
			}
		}
}

void train_rope_forward(float *out, const float *inp, const float *cos_tab, const float *sin_tab,
			const int *pos0, int B, int T, int H, int hd)
{
	int h = hd / 2;
#pragma omp parallel for collapse(2) if ((size_t)B * T * H * hd > 65536)
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++) {
			int p = (pos0 ? pos0[b] : 0) + t;
			for (int j = 0; j < H; j++) {
				size_t off = (((size_t)b * T + t) * H + j) * hd;
				rope_vec(out + off, inp + off, cos_tab + (size_t)p * h,
					 sin_tab + (size_t)p * h, h);
			}
		}
}

/* ---- attention ---- */

/* One query row: scores over keys 0..last, softmax, weighted sum of v.
 * att is scratch of at least last+1 floats. */
static void attn_row(float *o, float *lse, const float *qv, const float *kb, const float *vb,
		     int last, int kstride, int hd, float scale, float *att)
{
	float mx = -INFINITY;
	for (int s = 0; s <= last; s++) {
		float d = dot8(qv, kb + (size_t)s * kstride, hd) * scale;
		att[s] = d;
		if (d > mx)
			mx = d;
	}
	double sum = 0.0;
	for (int s = 0; s <= last; s++) {
		float e = expf(att[s] - mx);
		att[s] = e;
		sum += e;
	}
	float inv = (float)(1.0 / sum);
	for (int s = 0; s <= last; s++)
		att[s] *= inv;
	/* o = sum over s of att[s] * v[s], each element's terms added in the
	 * order of s (as a loop over s adding into o would), 16 elements at a
	 * time held in 4-lane registers over all s; a loop over s storing
	 * into o left GCC to reload and store o for every s (it could not rule
	 * out that o and v overlap). */
	int i = 0;
	for (; i + 16 <= hd; i += 16) {
		v4f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
		for (int s = 0; s <= last; s++) {
			const float *vv = vb + (size_t)s * kstride + i;
			v4f pv = {att[s], att[s], att[s], att[s]};
			a0 = a0 + pv * load4(vv);
			a1 = a1 + pv * load4(vv + 4);
			a2 = a2 + pv * load4(vv + 8);
			a3 = a3 + pv * load4(vv + 12);
		}
		memcpy(o + i, &a0, sizeof a0);
		memcpy(o + i + 4, &a1, sizeof a1);
		memcpy(o + i + 8, &a2, sizeof a2);
		memcpy(o + i + 12, &a3, sizeof a3);
	}
	for (; i < hd; i++) {
		float a = 0.0f;
		for (int s = 0; s <= last; s++)
			a += att[s] * vb[(size_t)s * kstride + i];
		o[i] = a;
	}
	if (lse)
		*lse = mx + (float)log(sum);
}

void train_attention_forward_ref(float *out, float *lse, const float *q, const float *k,
				 const float *v, const int *pos0, int B, int T, int S, int NH,
				 int NKV, int hd)
{
	float scale = 1.0f / sqrtf((float)hd);
	int group = NH / NKV;
	int kstride = NKV * hd;
	for (int b = 0; b < B; b++) {
		int p0 = pos0 ? pos0[b] : 0;
		for (int h = 0; h < NH; h++) {
			int kh = h / group;
			const float *kb = k + (size_t)b * S * kstride + (size_t)kh * hd;
			const float *vb = v + (size_t)b * S * kstride + (size_t)kh * hd;
			for (int t = 0; t < T; t++) {
				int last = p0 + t;
				const float *qv = q + (((size_t)b * T + t) * NH + h) * hd;
				float *o = out + (((size_t)b * T + t) * NH + h) * hd;
				float mx = -INFINITY;
				for (int s = 0; s <= last; s++) {
					float d = 0.0f;
					for (int i = 0; i < hd; i++)
						d += qv[i] * kb[(size_t)s * kstride + i];
					d *= scale;
					if (d > mx)
						mx = d;
				}
				double sum = 0.0;
				for (int s = 0; s <= last; s++) {
					float d = 0.0f;
					for (int i = 0; i < hd; i++)
						d += qv[i] * kb[(size_t)s * kstride + i];
					sum += exp(d * scale - mx);
				}
				for (int i = 0; i < hd; i++)
					o[i] = 0.0f;
				for (int s = 0; s <= last; s++) {
					float d = 0.0f;
					for (int i = 0; i < hd; i++)
						d += qv[i] * kb[(size_t)s * kstride + i];
					float p = (float)(exp(d * scale - mx) / sum);
					for (int i = 0; i < hd; i++)
						o[i] += p * vb[(size_t)s * kstride + i];
				}
				if (lse)
					lse[((size_t)b * NH + h) * T + t] = mx + (float)log(sum);
			}
		}
	}
}

void train_attention_forward(float *out, float *lse, const float *q, const float *k,
			     const float *v, const int *pos0, int B, int T, int S, int NH, int NKV,
			     int hd)
{
	float scale = 1.0f / sqrtf((float)hd);
	int group = NH / NKV;
	int kstride = NKV * hd;
	int maxlast = 0;
	for (int b = 0; b < B; b++) {
		int l = (pos0 ? pos0[b] : 0) + T;
		if (l > maxlast)
			maxlast = l;
	}
#pragma omp parallel if ((size_t)B * NH * T * maxlast * hd > 100000)
	{
		float *att = xmalloc(sizeof(float) * (size_t)(maxlast + 1));
#pragma omp for collapse(3) schedule(dynamic, 4)
		for (int b = 0; b < B; b++)
			for (int h = 0; h < NH; h++)
				for (int t = 0; t < T; t++) {
					int p0 = pos0 ? pos0[b] : 0;
					int kh = h / group;
					const float *kb = k + (size_t)b * S * kstride + (size_t)kh * hd;
					const float *vb = v + (size_t)b * S * kstride + (size_t)kh * hd;
					attn_row(out + (((size_t)b * T + t) * NH + h) * hd,
						 lse ? lse + ((size_t)b * NH + h) * T + t : NULL,
						 q + (((size_t)b * T + t) * NH + h) * hd, kb, vb, p0 + t,
						 kstride, hd, scale, att);
				}
		free(att);
	}
}

void train_attention_row(float *out, const float *q, const float *k, const float *v, int last,
			 int kstride, int hd, float *att)
{
	attn_row(out, NULL, q, k, v, last, kstride, hd, 1.0f / sqrtf((float)hd), att);
}

/* Serial forms for callers already inside a parallel region (an inactive
 * nested region costs microseconds); each computes exactly what its
 * parallel counterpart does. */
/* the loops over the K rows unrolled whole, so that the sums live in
 * registers */
#define NORM_UNROLL _Pragma("GCC unroll 4")

/* K rows (K <= 4, a constant after inlining) of layernorm_row (layer set)
 * or rmsnorm_row: each row's sums in the order and with the expressions of
 * those (so the same bits), the K rows' chains of double additions
 * interleaved. Row by row, each norm waits on one chain of C dependent
 * additions (twice for the layer norm); the batch-4 decode step normalises
 * 4 rows twice a layer in every thread. */
static inline __attribute__((always_inline)) void
norm_rows_k(float *out, const float *inp, const float *w, const float *b, int C, float eps,
	    int layer, const int K)
{
	const float *x[4];
	float *o[4], s[4], mf[4];
	double m[4], v[4];
	NORM_UNROLL
	for (int r = 0; r < K; r++) {
		x[r] = inp + (size_t)r * C;
		o[r] = out + (size_t)r * C;
		m[r] = 0.0;
		v[r] = 0.0;
	}
	if (!layer) {
		for (int i = 0; i < C; i++) {
			NORM_UNROLL
			for (int r = 0; r < K; r++)
				m[r] += (double)x[r][i] * x[r][i];
		}
		NORM_UNROLL
		for (int r = 0; r < K; r++) {
			s[r] = (float)(1.0 / sqrt(m[r] / C + eps));
			for (int i = 0; i < C; i++)
				o[r][i] = x[r][i] * s[r] * w[i];
		}
		return;
	}
	for (int i = 0; i < C; i++) {
		NORM_UNROLL
		for (int r = 0; r < K; r++)
			m[r] += x[r][i];
	}
	NORM_UNROLL
	for (int r = 0; r < K; r++)
		m[r] /= C;
	for (int i = 0; i < C; i++) {
		NORM_UNROLL
		for (int r = 0; r < K; r++) {
			double d = x[r][i] - m[r];
			v[r] += d * d;
		}
	}
	NORM_UNROLL
	for (int r = 0; r < K; r++) {
		v[r] /= C;
		s[r] = (float)(1.0 / sqrt(v[r] + eps));
		mf[r] = (float)m[r];
		for (int i = 0; i < C; i++)
			o[r][i] = (x[r][i] - mf[r]) * s[r] * w[i] + (b ? b[i] : 0.0f);
	}
}

void train_norm_rows_serial(float *out, const float *inp, const float *w, const float *b, int N,
			    int C, float eps, int layer)
{
	for (int n = 0; n < N; n += 4) {
		float *o = out + (size_t)n * C;
		const float *x = inp + (size_t)n * C;
		switch (N - n < 4 ? N - n : 4) {
		case 4:
			norm_rows_k(o, x, w, b, C, eps, layer, 4);
			break;
		case 3:
			norm_rows_k(o, x, w, b, C, eps, layer, 3);
			break;
		case 2:
			norm_rows_k(o, x, w, b, C, eps, layer, 2);
			break;
		default:
			norm_rows_k(o, x, w, b, C, eps, layer, 1);
		}
	}
}

void train_rope_vec_serial(float *out, const float *inp, const float *cos_tab,
			   const float *sin_tab, int pos, int hd)
{
	int h = hd / 2;
	rope_vec(out, inp, cos_tab + (size_t)pos * h, sin_tab + (size_t)pos * h, h);
}

/* ---- gelu ---- */

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

void train_gelu_forward_ref(float *out, const float *inp, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		float x = inp[i];
		out[i] = 0.5f * x * (1.0f + tanhf(GELU_K * (x + 0.044715f * x * x * x)));
	}
}

/* The same function through 0.5 (1 + tanh(u)) = 1 / (1 + exp(-2u)): one
 * expf, several times cheaper than tanhf. Exact in infinite precision; in
 * float it differs from the reference by a few ulp. */
void train_gelu_forward(float *out, const float *inp, size_t n)
{
#pragma omp parallel for if (n > 8192)
	for (size_t i = 0; i < n; i++) {
		float x = inp[i];
		out[i] = x / (1.0f + expf(-2.0f * GELU_K * (x + 0.044715f * x * x * x)));
	}
}

/* ---- swiglu ---- */

void train_gelu_forward_serial(float *out, const float *inp, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		float x = inp[i]; /* the expression of train_gelu_forward */
		out[i] = x / (1.0f + expf(-2.0f * GELU_K * (x + 0.044715f * x * x * x)));
	}
}

void train_swiglu_forward_ref(float *out, const float *inp, int N, int H)
{
	for (int n = 0; n < N; n++)
		for (int i = 0; i < H; i++) {
			float g = inp[(size_t)n * 2 * H + i], u = inp[(size_t)n * 2 * H + H + i];
			out[(size_t)n * H + i] = g / (1.0f + expf(-g)) * u;
		}
}

void train_swiglu_forward(float *out, const float *inp, int N, int H)
{
#pragma omp parallel for if ((size_t)N * H > 65536)
	for (int n = 0; n < N; n++) {
		const float *g = inp + (size_t)n * 2 * H, *u = g + H;
		float *o = out + (size_t)n * H;
		for (int i = 0; i < H; i++)
			o[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
	}
}

void train_swiglu_forward_serial(float *out, const float *inp, int N, int H)
{
	for (int n = 0; n < N; n++) {
		const float *g = inp + (size_t)n * 2 * H, *u = g + H;
		float *o = out + (size_t)n * H;
		for (int i = 0; i < H; i++) /* the expression of train_swiglu_forward */
			o[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
	}
}

/* ---- residual ---- */

void train_residual_forward_ref(float *out, const float *a, const float *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = a[i] + b[i];
}

void train_residual_forward(float *out, const float *a, const float *b, size_t n)
{
#pragma omp parallel for if (n > 65536)
	for (size_t i = 0; i < n; i++)
		out[i] = a[i] + b[i];
}

/* ---- per-token log-prob ---- */

void train_logprob_forward_ref(float *logp, float *lse, const float *h, const float *wlm,
			       const int *targets, int N, int C, int V)
{
	for (int n = 0; n < N; n++) {
		const float *x = h + (size_t)n * C;
		double mx = -INFINITY, tgt = 0.0;
		for (int v = 0; v < V; v++) {
			double d = 0.0;
			for (int i = 0; i < C; i++)
				d += (double)x[i] * wlm[(size_t)v * C + i];
			if (d > mx)
				mx = d;
		}
		double sum = 0.0;
		for (int v = 0; v < V; v++) {
			double d = 0.0;
			for (int i = 0; i < C; i++)
				d += (double)x[i] * wlm[(size_t)v * C + i];
			sum += exp(d - mx);
			if (v == targets[n])
				tgt = d;
		}
		double l = mx + log(sum);
		logp[n] = targets[n] >= 0 ? (float)(tgt - l) : 0.0f;
		if (lse)
			lse[n] = (float)l;
	}
}

void train_logprob_forward(float *logp, float *lse, const float *h, const float *wlm,
			   const int *targets, int N, int C, int V)
{
	int chunk = V < TRAIN_LOGPROB_CHUNK ? V : TRAIN_LOGPROB_CHUNK;
	float *scratch = xmalloc(sizeof(float) * (size_t)N * chunk);
	float *mx = xmalloc(sizeof(float) * (size_t)N);
	double *sum = xmalloc(sizeof(double) * (size_t)N);
	float *tgt = xmalloc(sizeof(float) * (size_t)N);
	for (int n = 0; n < N; n++) {
		mx[n] = -INFINITY;
		sum[n] = 0.0;
		tgt[n] = 0.0f;
	}
	for (int v0 = 0; v0 < V; v0 += chunk) {
		int cv = V - v0 < chunk ? V - v0 : chunk;
		train_matmul_forward(scratch, h, wlm + (size_t)v0 * C, NULL, N, C, cv);
#pragma omp parallel for if ((size_t)N * cv > 16384)
		for (int n = 0; n < N; n++) {
			const float *r = scratch + (size_t)n * cv;
			float m = mx[n];
			for (int j = 0; j < cv; j++)
				if (r[j] > m)
					m = r[j];
			/* online log-sum-exp: rescale the running sum */
			double s = sum[n] * exp((double)mx[n] - m);
			for (int j = 0; j < cv; j++)
				s += exp((double)r[j] - m);
			sum[n] = s;
			mx[n] = m;
			if (targets[n] >= v0 && targets[n] < v0 + cv)
				tgt[n] = r[targets[n] - v0];
		}
	}
	for (int n = 0; n < N; n++) {
		float l = mx[n] + (float)log(sum[n]);
		logp[n] = targets[n] >= 0 ? tgt[n] - l : 0.0f;
		if (lse)
			lse[n] = l;
	}
	free(scratch);
	free(mx);
	free(sum);
	free(tgt);
}

/* matmul_bf16.c: bf16 GEMM with float32 sums (see matmul_bf16.h). */
#include "config.h"
#include "train/matmul_bf16.h"
#ifdef HAVE_DNNL
#include "train/matmul_dnnl.h"
#endif
#include "util/xmalloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define BF16_SIMD 1
#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#endif

/* Register tile MR x NR, packed blocks: KC values of k (KC/2 pairs), NC
 * columns of B, MCB rows of A; a parallel task runs GA x GB panels. */
#define MR 12
#define NR 32
#define KC 1024
#define NC 768
#define MCB 1536
#define GA 4
#define GB 4
/* packing scratch in 32-bit words: an A block then a B block (MCB and NC
 * are multiples of MR and NR) */
#define SCRATCH ((size_t)(MCB + NC) * KC / 2)

int train_bf16_use_simd = 1;

int train_vecmath_on(void)
{
#if defined(__x86_64__) && defined(__GNUC__) /* where vecmath_bf16.c has its loops */
	return train_gemm_precision() == TRAIN_PREC_BF16 && train_bf16_use_simd &&
	       train_cpu_has_avx512bf16();
#else
	return 0;
#endif
}

static train_precision gemm_prec = TRAIN_PREC_F32;

void train_gemm_set_precision(train_precision p)
{
	gemm_prec = train_precision_resolve(p);
}

train_precision train_gemm_precision(void)
{
	return gemm_prec;
}

static int use_simd(void)
{
#ifdef BF16_SIMD
	return train_bf16_use_simd && train_cpu_has_avx512bf16();
#else
	return 0;
#endif
}

const char *train_gemm_bf16_kernel(void)
{
	return use_simd() ? "avx512bf16" : "portable";
}

/* ---- the reference ---- */

void train_gemm_bf16_ref(int ta, int tb, int M, int N, int K, const float *A, int lda,
			 const float *B, int ldb, float beta, float *C, int ldc)
{
	for (int i = 0; i < M; i++)
		for (int j = 0; j < N; j++) {
			double s = 0;
			for (int k = 0; k < K; k++) {
				float a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
				float b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
				s += (double)train_bf16_to_f32(train_f32_to_bf16(a)) *
				     train_bf16_to_f32(train_f32_to_bf16(b));
			}
			float *c = C + (size_t)i * ldc + j;
			*c = (float)(beta == 0.0f ? s : s + (double)beta * *c);
		}
}

void train_gemm_bf16_wb_ref(int ta, int tb, int M, int N, int K, const float *A, int lda,
			    const uint16_t *B, int ldb, float beta, float *C, int ldc)
{
	for (int i = 0; i < M; i++)
		for (int j = 0; j < N; j++) {
			double s = 0;
			for (int k = 0; k < K; k++) {
				float a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
				uint16_t b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
				s += (double)train_bf16_to_f32(train_f32_to_bf16(a)) * train_bf16_to_f32(b);
			}
			float *c = C + (size_t)i * ldc + j;
			*c = (float)(beta == 0.0f ? s : s + (double)beta * *c);
		}
}

/* ---- packing ----
 * A panel of W rows (m of A or n of B) over kc values of k is stored as
 * dst[kp * W + r] = bf16(x(r, 2kp)) | bf16(x(r, 2kp+1)) << 16, with
 * x(r, k) = src[r * sr + k * sk]; rows >= rows and k >= kc are zeros. */

static uint32_t pair_at(const float *src, size_t sr, size_t sk, int r, int k, int kc)
{
	uint32_t lo = train_f32_to_bf16(src[r * sr + k * sk]);
	uint32_t hi = k + 1 < kc ? train_f32_to_bf16(src[r * sr + (k + 1) * sk]) : 0;
	return lo | hi << 16;
}

static void pack_plain(uint32_t *dst, const float *src, size_t sr, size_t sk, int rows, int kc,
		       int W)
{
	int kcp = (kc + 1) / 2;
	for (int kp = 0; kp < kcp; kp++)
		for (int r = 0; r < W; r++)
			dst[(size_t)kp * W + r] = r < rows ? pair_at(src, sr, sk, r, 2 * kp, kc) : 0;
}

#ifdef BF16_SIMD
/* Transpose a 16 x 16 matrix of 32-bit words held in r[0..16). */
BF16_TARGET static inline void transpose16(__m512i r[16])
{
	__m512i t[16];
	for (int i = 0; i < 16; i += 2) {
		t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
		t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
	}
	for (int i = 0; i < 16; i += 4) {
		r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
		r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
		r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
		r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
	}
	/* each 128-bit lane now holds a 4 x 4 block transposed; two rounds of
	 * lane shuffles put the blocks in place */
	for (int i = 0; i < 4; i++) {
		t[i] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0x88);
		t[i + 4] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0xdd);
		t[i + 8] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0x88);
		t[i + 12] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0xdd);
	}
	for (int i = 0; i < 4; i++) {
		r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
		r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
		r[i + 4] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0x88);
		r[i + 12] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0xdd);
	}
}

/* k contiguous (sk == 1): 16 rows x 32 values of k at a time, converted
 * to 16 x 16 pairs and transposed so that each kp gets one store. */
BF16_TARGET static void pack_krow(uint32_t *dst, const float *src, size_t sr, int rows, int kc,
				  int W)
{
	for (int r0 = 0; r0 < W; r0 += 16) {
		int nw = W - r0 < 16 ? W - r0 : 16;
		__mmask16 sm = (__mmask16)((1u << nw) - 1);
		for (int k0 = 0; k0 < kc; k0 += 32) {
			int nv = kc - k0 < 32 ? kc - k0 : 32;
			__mmask16 mlo = nv >= 16 ? 0xffff : (__mmask16)((1u << nv) - 1);
			__mmask16 mhi = nv >= 32 ? 0xffff : nv > 16 ? (__mmask16)((1u << (nv - 16)) - 1) : 0;
			__m512i v[16];
			for (int i = 0; i < 16; i++) {
				if (r0 + i >= rows) {
					v[i] = _mm512_setzero_si512();
					continue;
				}
				const float *p = src + (size_t)(r0 + i) * sr + k0;
				/* the row's next lines, two blocks ahead (the
				 * streams are too many for the hardware to follow) */
				if (k0 + 64 < kc) {
					_mm_prefetch((const char *)(p + 64), _MM_HINT_T0);
					_mm_prefetch((const char *)(p + 80), _MM_HINT_T0);
				}
				__m512 lo = _mm512_maskz_loadu_ps(mlo, p);
				__m512 hi = _mm512_maskz_loadu_ps(mhi, p + 16);
				v[i] = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
			}
			transpose16(v);
			int np = (nv + 1) / 2;
			for (int j = 0; j < np; j++)
				_mm512_mask_storeu_epi32(dst + (size_t)(k0 / 2 + j) * W + r0, sm, v[j]);
		}
	}
}

/* rows contiguous (sr == 1): rows k and k+1 interleaved 16 columns at a
 * time. */
BF16_TARGET static void pack_kcol(uint32_t *dst, const float *src, size_t sk, int rows, int kc,
				  int W)
{
	int kcp = (kc + 1) / 2;
	const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
					     24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
					     16, 0);
	for (int kp = 0; kp < kcp; kp++) {
		const float *p0 = src + (size_t)(2 * kp) * sk;
		const float *p1 = p0 + sk;
		int odd = 2 * kp + 1 < kc;
		for (int r0 = 0; r0 < W; r0 += 16) {
			int nv = rows - r0, nw = W - r0 < 16 ? W - r0 : 16;
			nv = nv < 0 ? 0 : nv > nw ? nw : nv;
			__mmask16 m = (__mmask16)((1u << nv) - 1);
			__m512 x = _mm512_maskz_loadu_ps(m, p0 + r0);
			__m512 y = odd ? _mm512_maskz_loadu_ps(m, p1 + r0) : _mm512_setzero_ps();
			__m512i v = (__m512i)_mm512_cvtne2ps_pbh(y, x);
			v = _mm512_permutexvar_epi16(idx, v);
			_mm512_mask_storeu_epi32(dst + (size_t)kp * W + r0,
						 (__mmask16)((1u << nw) - 1), v);
		}
	}
}

/* pack_kcol over panels p0..p1 of one block (panel p: rows p*W.., at
 * dst + p*W*kcp) at once: each pair of source rows of k is read as one
 * contiguous run across the panels, and the next pair is prefetched (one
 * panel at a time walks down a column, a page per row, where the hardware
 * prefetchers do not follow). */
BF16_TARGET static void pack_kcol_panels(uint32_t *dst, const float *src, size_t sk, int rows,
					 int kc, int W, int p0, int p1)
{
	int kcp = (kc + 1) / 2;
	const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
					     24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
					     16, 0);
	int r_end = p1 * W < rows ? p1 * W : rows;
	for (int kp = 0; kp < kcp; kp++) {
		const float *p0r = src + (size_t)(2 * kp) * sk;
		const float *p1r = p0r + sk;
		int odd = 2 * kp + 1 < kc;
		if (2 * kp + 3 < kc)
			for (int r = p0 * W; r < r_end; r += 16) {
				_mm_prefetch((const char *)(p0r + 2 * sk + r), _MM_HINT_T0);
				_mm_prefetch((const char *)(p1r + 2 * sk + r), _MM_HINT_T0);
			}
		for (int p = p0; p < p1; p++) {
			uint32_t *d = dst + ((size_t)p * kcp + kp) * W;
			for (int c0 = 0; c0 < W; c0 += 16) {
				int r0 = p * W + c0;
				int nv = rows - r0, nw = W - c0 < 16 ? W - c0 : 16;
				nv = nv < 0 ? 0 : nv > nw ? nw : nv;
				__mmask16 m = (__mmask16)((1u << nv) - 1);
				__m512 x = _mm512_maskz_loadu_ps(m, p0r + r0);
				__m512 y = odd ? _mm512_maskz_loadu_ps(m, p1r + r0) : _mm512_setzero_ps();
				__m512i v = (__m512i)_mm512_cvtne2ps_pbh(y, x);
				v = _mm512_permutexvar_epi16(idx, v);
				_mm512_mask_storeu_epi32(d + c0, (__mmask16)((1u << nw) - 1), v);
			}
		}
	}
}
#endif

static void pack_panel(uint32_t *dst, const float *src, size_t sr, size_t sk, int rows, int kc,
		       int W, int simd);

/* Pack panels p0..p1 (of W rows each, rows in all) of a block into dst
 * (panel p at dst + p*W*kcp). */
static void pack_panels(uint32_t *dst, const float *src, size_t sr, size_t sk, int rows, int kc,
			int W, int p0, int p1, int simd)
{
	int kcp = (kc + 1) / 2;
#ifdef BF16_SIMD
	if (simd && sr == 1 && sk != 1) {
		pack_kcol_panels(dst, src, sk, rows, kc, W, p0, p1);
		return;
	}
#endif
	for (int p = p0; p < p1; p++) {
		int n = rows - p * W < W ? rows - p * W : W;
		pack_panel(dst + (size_t)p * W * kcp, src + (size_t)p * W * sr, sr, sk, n, kc, W, simd);
	}
}

static void pack_panel(uint32_t *dst, const float *src, size_t sr, size_t sk, int rows, int kc,
		       int W, int simd)
{
#ifdef BF16_SIMD
	if (simd && sk == 1) {
		pack_krow(dst, src, sr, rows, kc, W);
		return;
	}
	if (simd && sr == 1) {
		pack_kcol(dst, src, sk, rows, kc, W);
		return;
	}
#endif
	(void)simd;
	pack_plain(dst, src, sr, sk, rows, kc, W);
}

/* The same panels from a bf16 operand (train_gemm_bf16_wb): the values
 * are copied, not rounded. */
static void pack_plain_h(uint32_t *dst, const uint16_t *src, size_t sr, size_t sk, int rows,
			 int kc, int W)
{
	int kcp = (kc + 1) / 2;
	for (int kp = 0; kp < kcp; kp++)
		for (int r = 0; r < W; r++) {
			uint32_t v = 0;
			if (r < rows) {
				const uint16_t *x = src + r * sr + (size_t)(2 * kp) * sk;
				v = x[0] | (2 * kp + 1 < kc ? (uint32_t)x[sk] << 16 : 0);
			}
			dst[(size_t)kp * W + r] = v;
		}
}

#ifdef BF16_SIMD
/* k contiguous: a pair is one 32-bit word already; 16 rows x 16 pairs
 * are loaded and transposed as in pack_krow. */
BF16_TARGET static void pack_krow_h(uint32_t *dst, const uint16_t *src, size_t sr, int rows,
				    int kc, int W)
{
	for (int r0 = 0; r0 < W; r0 += 16) {
		int nw = W - r0 < 16 ? W - r0 : 16;
		for (int k0 = 0; k0 < kc; k0 += 32) {
			int nv = kc - k0 < 32 ? kc - k0 : 32;
			__mmask32 m = nv >= 32 ? 0xffffffffu : (__mmask32)((1u << nv) - 1);
			__m512i v[16];
			for (int i = 0; i < 16; i++)
				v[i] = r0 + i < rows ? _mm512_maskz_loadu_epi16(m, src + (size_t)(r0 + i) * sr + k0)
						     : _mm512_setzero_si512();
			transpose16(v);
			for (int j = 0; j < (nv + 1) / 2; j++)
				_mm512_mask_storeu_epi32(dst + (size_t)(k0 / 2 + j) * W + r0,
							 (__mmask16)((1u << nw) - 1), v[j]);
		}
	}
}

/* rows contiguous: rows k and k+1 widened to 32 bits and interleaved. */
BF16_TARGET static void pack_kcol_h(uint32_t *dst, const uint16_t *src, size_t sk, int rows,
				    int kc, int W)
{
	for (int kp = 0; kp < (kc + 1) / 2; kp++) {
		const uint16_t *p0 = src + (size_t)(2 * kp) * sk, *p1 = p0 + sk;
		int odd = 2 * kp + 1 < kc;
		for (int r0 = 0; r0 < W; r0 += 16) {
			int nv = rows - r0, nw = W - r0 < 16 ? W - r0 : 16;
			nv = nv < 0 ? 0 : nv > nw ? nw : nv;
			__mmask16 m = (__mmask16)((1u << nv) - 1);
			__m512i x = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p0 + r0));
			__m512i y = odd ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p1 + r0))
					: _mm512_setzero_si512();
			_mm512_mask_storeu_epi32(dst + (size_t)kp * W + r0, (__mmask16)((1u << nw) - 1),
						 _mm512_or_si512(x, _mm512_slli_epi32(y, 16)));
		}
	}
}
#endif

static void pack_panel_h(uint32_t *dst, const uint16_t *src, size_t sr, size_t sk, int rows,
			 int kc, int W, int simd)
{
#ifdef BF16_SIMD
	if (simd && sk == 1) {
		pack_krow_h(dst, src, sr, rows, kc, W);
		return;
	}
	if (simd && sr == 1) {
		pack_kcol_h(dst, src, sk, rows, kc, W);
		return;
	}
#endif
	(void)simd;
	pack_plain_h(dst, src, sr, sk, rows, kc, W);
}

/* Panels p0..p1 (NR rows each, rows in all) of a bf16 B block. */
static void pack_panels_h(uint32_t *dst, const uint16_t *src, size_t sr, size_t sk, int rows,
			  int kc, int p0, int p1, int simd)
{
	int kcp = (kc + 1) / 2;
	for (int p = p0; p < p1; p++) {
		int n = rows - p * NR < NR ? rows - p * NR : NR;
		pack_panel_h(dst + (size_t)p * NR * kcp, src + (size_t)p * NR * sr, sr, sk, n, kc, NR,
			     simd);
	}
}

/* ---- the MR x NR tile: C[mr, nr] (=|+=) a-panel . b-panel over kcp pairs;
 * first: C = acc + beta C (beta 0: C not read), else C += acc ---- */

static void store_row(float *c, const float *acc, int nr, int first, float beta)
{
	for (int j = 0; j < nr; j++)
		c[j] = first ? (beta == 0.0f ? acc[j] : acc[j] + beta * c[j]) : c[j] + acc[j];
}

static void tile_plain(int kcp, const uint32_t *a, const uint32_t *b, float *c, size_t ldc, int mr,
		       int nr, int first, float beta)
{
	float acc[MR][NR];
	memset(acc, 0, sizeof(acc));
	for (int kp = 0; kp < kcp; kp++) {
		const uint32_t *ap = a + (size_t)kp * MR, *bp = b + (size_t)kp * NR;
		float b0[NR], b1[NR];
		for (int j = 0; j < NR; j++) {
			b0[j] = train_bf16_to_f32((uint16_t)bp[j]);
			b1[j] = train_bf16_to_f32((uint16_t)(bp[j] >> 16));
		}
		for (int i = 0; i < mr; i++) {
			float a0 = train_bf16_to_f32((uint16_t)ap[i]);
			float a1 = train_bf16_to_f32((uint16_t)(ap[i] >> 16));
			/* vdpbf16ps's order: the odd product first, then the even
			 * one (each exact in float32), each sum rounded to
			 * nearest: the same bits as the AVX512-BF16 tile but for
			 * subnormals, which it flushes */
			for (int j = 0; j < NR; j++)
				acc[i][j] = (acc[i][j] + a1 * b1[j]) + a0 * b0[j];
		}
	}
	for (int i = 0; i < mr; i++)
		store_row(c + (size_t)i * ldc, acc[i], nr, first, beta);
}

#ifdef BF16_SIMD
BF16_TARGET static inline void tile_store(float *c, __m512 v, __mmask16 m, int first, float beta)
{
	if (!first)
		v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, c));
	else if (beta != 0.0f)
		v = _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(m, c), v);
	_mm512_mask_storeu_ps(c, m, v);
}

#define BF_ROW(i)                                                                     \
	do {                                                                          \
		__m512bh av = (__m512bh)_mm512_set1_epi32((int)ap[i]);                \
		c##i##a = _mm512_dpbf16_ps(c##i##a, av, b0);                         \
		c##i##b = _mm512_dpbf16_ps(c##i##b, av, b1);                         \
	} while (0)
#define BF_STORE(i)                                                                   \
	do {                                                                          \
		if (i < mr) {                                                         \
			tile_store(c + (size_t)(i) * ldc, c##i##a, m0, first, beta);  \
			if (m1)                                                       \
				tile_store(c + (size_t)(i) * ldc + 16, c##i##b, m1, first, beta); \
		}                                                                     \
	} while (0)

BF16_TARGET static void tile_avx(int kcp, const uint32_t *a, const uint32_t *b, float *c,
				 size_t ldc, int mr, int nr, int first, float beta)
{
	__m512 c0a = _mm512_setzero_ps(), c0b = c0a, c1a = c0a, c1b = c0a, c2a = c0a, c2b = c0a;
	__m512 c3a = c0a, c3b = c0a, c4a = c0a, c4b = c0a, c5a = c0a, c5b = c0a;
	__m512 c6a = c0a, c6b = c0a, c7a = c0a, c7b = c0a, c8a = c0a, c8b = c0a;
	__m512 c9a = c0a, c9b = c0a, c10a = c0a, c10b = c0a, c11a = c0a, c11b = c0a;
	const uint32_t *ap = a;
	/* C is wanted only after the products and is often out of cache:
	 * fetch its lines now, behind them, rather than stall on them then */
	for (int i = 0; i < mr; i++) {
		const float *ci = c + (size_t)i * ldc;
		_mm_prefetch((const char *)ci, _MM_HINT_T0);
		_mm_prefetch((const char *)(ci + nr - 1), _MM_HINT_T0);
		if (nr > 16)
			_mm_prefetch((const char *)(ci + 16), _MM_HINT_T0);
	}
	for (int kp = 0; kp < kcp; kp++) {
		__m512bh b0 = (__m512bh)_mm512_loadu_si512(b);
		__m512bh b1 = (__m512bh)_mm512_loadu_si512(b + 16);
		BF_ROW(0); BF_ROW(1); BF_ROW(2); BF_ROW(3); BF_ROW(4); BF_ROW(5);
		BF_ROW(6); BF_ROW(7); BF_ROW(8); BF_ROW(9); BF_ROW(10); BF_ROW(11);
		ap += MR;
		b += NR;
	}
	__mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
	__mmask16 m1 = nr >= 32 ? 0xffff : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
	BF_STORE(0); BF_STORE(1); BF_STORE(2); BF_STORE(3); BF_STORE(4); BF_STORE(5);
	BF_STORE(6); BF_STORE(7); BF_STORE(8); BF_STORE(9); BF_STORE(10); BF_STORE(11);
}
#endif

typedef void (*tile_fn)(int, const uint32_t *, const uint32_t *, float *, size_t, int, int, int,
			float);

/* ---- the driver ---- */

struct gemm_args {
	int M, N, K, simd;
	const float *A, *B;
	const uint16_t *Bh; /* B in bf16 (train_gemm_bf16_wb), B then NULL */
	size_t ar, ak, br, bk; /* strides of op(A)(m, k) and op(B)(k, n) by (row, k) */
	float beta, *C;
	size_t ldc;
	uint32_t *Ap, *Bp;
	tile_fn tile;
};

/* Tiles of one packed (A block, B block) pair: tasks of GA x GB panels
 * shared out dynamically. */
static void run_tiles(const struct gemm_args *g, int i0, int mb, int j0, int nb, int kc, int first)
{
	int kcp = (kc + 1) / 2, npa = (mb + MR - 1) / MR, npb = (nb + NR - 1) / NR;
	int nga = (npa + GA - 1) / GA, ngb = (npb + GB - 1) / GB;
#pragma omp for schedule(dynamic, 1)
	for (int t = 0; t < nga * ngb; t++) {
		int ga = t % nga, gb = t / nga;
		for (int jb = gb * GB; jb < npb && jb < (gb + 1) * GB; jb++)
			for (int ia = ga * GA; ia < npa && ia < (ga + 1) * GA; ia++) {
				int mr = mb - ia * MR < MR ? mb - ia * MR : MR;
				int nr = nb - jb * NR < NR ? nb - jb * NR : NR;
				float *c = g->C + (size_t)(i0 + ia * MR) * g->ldc + j0 + jb * NR;
				g->tile(kcp, g->Ap + (size_t)ia * MR * kcp, g->Bp + (size_t)jb * NR * kcp,
					c, g->ldc, mr, nr, first, g->beta);
			}
	}
}

/* The length of gemm_blocks' k blocks: K in blocks of equal length (even,
 * at most KC), so no short last block, whose C updates would weigh as much
 * as a full one's. */
static int k_block(int K)
{
	int nkb = (K + KC - 1) / KC, kcb = (K + nkb - 1) / nkb;
	return kcb + (kcb & 1);
}

static void gemm_blocks(const struct gemm_args *g)
{
	int nth = 1; /* packing: one run of panels per thread */
#ifdef _OPENMP
	nth = omp_get_num_threads();
#endif
	int kcb = k_block(g->K);
	for (int i0 = 0; i0 < g->M; i0 += MCB) {
		int mb = g->M - i0 < MCB ? g->M - i0 : MCB;
		int npa = (mb + MR - 1) / MR;
		for (int k0 = 0; k0 < g->K; k0 += kcb) {
			int kc = g->K - k0 < kcb ? g->K - k0 : kcb;
#pragma omp for schedule(static)
			for (int t = 0; t < nth; t++)
				pack_panels(g->Ap, g->A + (size_t)i0 * g->ar + (size_t)k0 * g->ak, g->ar,
					    g->ak, mb, kc, MR, npa * t / nth, npa * (t + 1) / nth, g->simd);
			for (int j0 = 0; j0 < g->N; j0 += NC) {
				int nb = g->N - j0 < NC ? g->N - j0 : NC;
				int npb = (nb + NR - 1) / NR;
#pragma omp for schedule(static)
				for (int t = 0; t < nth; t++) {
					size_t bo = (size_t)j0 * g->br + (size_t)k0 * g->bk;
					if (g->Bh)
						pack_panels_h(g->Bp, g->Bh + bo, g->br, g->bk, nb, kc,
							      npb * t / nth, npb * (t + 1) / nth, g->simd);
					else
						pack_panels(g->Bp, g->B + bo, g->br, g->bk, nb, kc, NR,
							    npb * t / nth, npb * (t + 1) / nth, g->simd);
				}
				run_tiles(g, i0, mb, j0, nb, kc, k0 == 0);
			}
		}
	}
}

/* The blocks of gemm_blocks on the calling thread alone, no OpenMP
 * construct (train_gemm_bf16_serial runs inside the caller's parallel
 * region): the same panels and tiles, so the same sums. */
static void gemm_blocks_serial(const struct gemm_args *g)
{
	int kcb = k_block(g->K);
	for (int i0 = 0; i0 < g->M; i0 += MCB) {
		int mb = g->M - i0 < MCB ? g->M - i0 : MCB;
		int npa = (mb + MR - 1) / MR;
		for (int k0 = 0; k0 < g->K; k0 += kcb) {
			int kc = g->K - k0 < kcb ? g->K - k0 : kcb, kcp = (kc + 1) / 2;
			pack_panels(g->Ap, g->A + (size_t)i0 * g->ar + (size_t)k0 * g->ak, g->ar, g->ak,
				    mb, kc, MR, 0, npa, g->simd);
			for (int j0 = 0; j0 < g->N; j0 += NC) {
				int nb = g->N - j0 < NC ? g->N - j0 : NC;
				int npb = (nb + NR - 1) / NR;
				pack_panels(g->Bp, g->B + (size_t)j0 * g->br + (size_t)k0 * g->bk, g->br,
					    g->bk, nb, kc, NR, 0, npb, g->simd);
				for (int jb = 0; jb < npb; jb++)
					for (int ia = 0; ia < npa; ia++) {
						int mr = mb - ia * MR < MR ? mb - ia * MR : MR;
						int nr = nb - jb * NR < NR ? nb - jb * NR : NR;
						float *c = g->C + (size_t)(i0 + ia * MR) * g->ldc + j0 + jb * NR;
						g->tile(kcp, g->Ap + (size_t)ia * MR * kcp,
							g->Bp + (size_t)jb * NR * kcp, c, g->ldc, mr, nr,
							k0 == 0, g->beta);
					}
			}
		}
	}
}

/* Words of the A and B blocks gemm_blocks_serial packs for M x N x K
 * (bounds, nondecreasing in M, N and K). */
static void serial_words(int M, int N, int K, size_t *aw, size_t *bw)
{
	/* a k block (even length) is at most min(K', KC) + 1 for every
	 * K' <= K: words enough for any product no larger in each dimension */
	size_t kcp = (size_t)((K < KC ? K : KC) + 2) / 2;
	int mb = M < MCB ? M : MCB, nb = N < NC ? N : NC;
	*aw = (size_t)((mb + MR - 1) / MR * MR) * kcp;
	*bw = (size_t)((nb + NR - 1) / NR * NR) * kcp;
}

size_t train_gemm_bf16_scratch_words(int M, int N, int K)
{
	if (M <= 0 || N <= 0 || K <= 0)
		return 1;
	size_t aw, bw;
	serial_words(M, N, K, &aw, &bw);
	return aw + bw;
}

/* C = beta C (C = 0 when beta is 0, whatever C held): a product over an
 * empty K, for both drivers. */
static void scale_c(int M, int N, float beta, float *C, int ldc)
{
	for (int i = 0; i < M; i++)
		for (int j = 0; j < N; j++) {
			float *c = C + (size_t)i * ldc + j;
			*c = beta == 0.0f ? 0.0f : beta * *c;
		}
}

void train_gemm_bf16_serial(int ta, int tb, int M, int N, int K, const float *A, int lda,
			    const float *B, int ldb, float beta, float *C, int ldc,
			    uint32_t *scratch)
{
	if (M <= 0 || N <= 0)
		return;
	if (K <= 0) {
		scale_c(M, N, beta, C, ldc);
		return;
	}
	size_t aw, bw;
	serial_words(M, N, K, &aw, &bw);
	struct gemm_args g = {
		.M = M, .N = N, .K = K, .simd = use_simd(), .A = A, .B = B,
		.ar = ta ? 1 : (size_t)lda, .ak = ta ? (size_t)lda : 1,
		.br = tb ? (size_t)ldb : 1, .bk = tb ? 1 : (size_t)ldb,
		.beta = beta, .C = C, .ldc = (size_t)ldc, .Ap = scratch, .Bp = scratch + aw,
	};
	g.tile = tile_plain;
#ifdef BF16_SIMD
	if (g.simd)
		g.tile = tile_avx;
#endif
	gemm_blocks_serial(&g);
}

/* train_gemm_bf16 with B given in float32 (B) or bf16 (Bh, B NULL). */
static void gemm_drive(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
		       const uint16_t *Bh, int ldb, float beta, float *C, int ldc)
{
	if (M <= 0 || N <= 0)
		return;
	if (K <= 0) {
		scale_c(M, N, beta, C, ldc);
		return;
	}
#ifdef HAVE_DNNL
	if (train_gemm_bf16_dnnl(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc) == 0)
		return; /* oneDNN ran it (matmul_dnnl.h) */
#endif
	struct gemm_args g = {
		.M = M, .N = N, .K = K, .simd = use_simd(), .A = A, .B = B, .Bh = Bh,
		.ar = ta ? 1 : (size_t)lda, .ak = ta ? (size_t)lda : 1,
		.br = tb ? (size_t)ldb : 1, .bk = tb ? 1 : (size_t)ldb,
		.beta = beta, .C = C, .ldc = (size_t)ldc,
	};
	g.tile = tile_plain;
#ifdef BF16_SIMD
	if (g.simd)
		g.tile = tile_avx;
#endif
	int outer = 1, par = 1;
#ifdef _OPENMP
	outer = !omp_in_parallel();
	par = outer && (double)M * N * K >= (double)(1 << 18);
#endif
	/* the packing blocks (4.7 MB): one process-wide buffer, kept (a fresh
	 * one per call would be mapped and faulted in every time), taken by
	 * one call at a time; a call that finds it busy, or runs inside a
	 * parallel region, uses a private one */
	static uint32_t *kept;
	static int busy;
	int mine = outer && !__atomic_exchange_n(&busy, 1, __ATOMIC_ACQUIRE);
	uint32_t *scratch = mine ? kept : NULL;
	if (!scratch)
		scratch = xmalloc(sizeof(uint32_t) * SCRATCH);
	g.Ap = scratch;
	g.Bp = scratch + (size_t)MCB * KC / 2;
#pragma omp parallel if (par)
	gemm_blocks(&g);
	if (mine) {
		kept = scratch;
		__atomic_store_n(&busy, 0, __ATOMIC_RELEASE);
	} else {
		free(scratch);
	}
}

void train_gemm_bf16(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
		     int ldb, float beta, float *C, int ldc)
{
	gemm_drive(ta, tb, M, N, K, A, lda, B, NULL, ldb, beta, C, ldc);
}

void train_gemm_bf16_wb(int ta, int tb, int M, int N, int K, const float *A, int lda,
			const uint16_t *B, int ldb, float beta, float *C, int ldc)
{
	gemm_drive(ta, tb, M, N, K, A, lda, NULL, B, ldb, beta, C, ldc);
}

/* ---- the peak probe ---- */

#ifdef BF16_SIMD
BF16_TARGET static float probe_run(long iters)
{
	/* each step adds 2 * 2^-30 per lane: no overflow, nothing to fold */
	__m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80);
	__m512bh y = (__m512bh)_mm512_set1_epi32(0x30803080);
	__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
	__m512 a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
	for (long i = 0; i < iters; i++) {
		a0 = _mm512_dpbf16_ps(a0, x, y);
		a1 = _mm512_dpbf16_ps(a1, x, y);
		a2 = _mm512_dpbf16_ps(a2, x, y);
		a3 = _mm512_dpbf16_ps(a3, x, y);
		a4 = _mm512_dpbf16_ps(a4, x, y);
		a5 = _mm512_dpbf16_ps(a5, x, y);
		a6 = _mm512_dpbf16_ps(a6, x, y);
		a7 = _mm512_dpbf16_ps(a7, x, y);
		a8 = _mm512_dpbf16_ps(a8, x, y);
		a9 = _mm512_dpbf16_ps(a9, x, y);
		a10 = _mm512_dpbf16_ps(a10, x, y);
		a11 = _mm512_dpbf16_ps(a11, x, y);
		__asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5));
	}
	__m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
				 _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
	s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
	return _mm512_reduce_add_ps(s);
}
#endif

double train_bf16_peak_gflops(double seconds)
{
#if defined(BF16_SIMD) && defined(_OPENMP)
	if (!train_cpu_has_avx512bf16())
		return 0;
	const long chunk = 1L << 18;
	double flops = 0, sink = 0, t0 = omp_get_wtime();
#pragma omp parallel reduction(+ : flops, sink)
	{
		do {
			sink += probe_run(chunk);
			flops += (double)chunk * 12 * 64;
		} while (omp_get_wtime() - t0 < seconds);
	}
	double dt = omp_get_wtime() - t0;
	return sink == -1.0 ? 0 : flops / dt / 1e9;
#else
	(void)seconds;
	return 0;
#endif
}

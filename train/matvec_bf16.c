/* matvec_bf16.c: matmul, embedding and log-prob kernels over bfloat16
 * weights (see matvec_bf16.h). */
#include "config.h"
#include "train/matvec_bf16.h"
#include "train/layers.h"
#include "train/precision.h"
#include "util/xmalloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef HAVE_BLAS
#include <cblas.h>
#endif

int train_bf16_kernel = TRAIN_BF16_KERNEL_AUTO;

/* ---- reference ---- */

void train_matmul_bf16_forward_ref(float *out, const float *inp, const uint16_t *weight,
				   const float *bias, int N, int C, int OC)
{
	for (int n = 0; n < N; n++) {
		const float *x = inp + (size_t)n * C;
		for (int o = 0; o < OC; o++) {
			const uint16_t *w = weight + (size_t)o * C;
			float s = bias ? bias[o] : 0.0f;
			for (int i = 0; i < C; i++)
				s += x[i] * train_bf16_to_f32(w[i]);
			out[(size_t)n * OC + o] = s;
		}
	}
}

/* ---- plain (portable) ---- */

typedef float bf_v4f __attribute__((vector_size(16)));

static inline bf_v4f bf_load4(const float *p)
{
	bf_v4f v;
	memcpy(&v, p, sizeof v);
	return v;
}

/* x . w over n floats in 8 lanes. */
static inline float bf_dot(const float *x, const float *w, int n)
{
	bf_v4f a = {0}, b = {0};
	int i = 0;
	for (; i + 8 <= n; i += 8) {
		a += bf_load4(x + i) * bf_load4(w + i);
		b += bf_load4(x + i + 4) * bf_load4(w + i + 4);
	}
	a += b;
	float s = (a[0] + a[1]) + (a[2] + a[3]);
	for (; i < n; i++)
		s += x[i] * w[i];
	return s;
}

/* Weights widened per chunk of this many columns (a 1 KiB stack buffer). */
#define BF16_CHUNK 256

/* Any CPU: each weight row is widened chunk by chunk into a local buffer
 * that serves up to 4 input rows. */
/* Output column o of the plain kernel, for all N input rows. */
static void plain_col(float *out, const float *inp, const uint16_t *weight, const float *bias,
		      int N, int C, int OC, int o)
{
	const uint16_t *w = weight + (size_t)o * C;
	float buf[BF16_CHUNK];
	for (int n0 = 0; n0 < N; n0 += 4) {
		int nt = N - n0 < 4 ? N - n0 : 4;
		float s[4] = {0, 0, 0, 0};
		for (int c0 = 0; c0 < C; c0 += BF16_CHUNK) {
			int len = C - c0 < BF16_CHUNK ? C - c0 : BF16_CHUNK;
			train_bf16_to_f32_n(buf, w + c0, (size_t)len);
			for (int j = 0; j < nt; j++)
				s[j] += bf_dot(inp + (size_t)(n0 + j) * C + c0, buf, len);
		}
		for (int j = 0; j < nt; j++)
			out[(size_t)(n0 + j) * OC + o] = s[j] + (bias ? bias[o] : 0.0f);
	}
}

static void matmul_plain(float *out, const float *inp, const uint16_t *weight, const float *bias,
			 int N, int C, int OC)
{
#pragma omp parallel for schedule(static) if ((size_t)N * C * OC > 100000)
	for (int o = 0; o < OC; o++)
		plain_col(out, inp, weight, bias, N, C, OC, o);
}

/* ---- AVX-512 ---- */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define BF16_X86 1
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
#define AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
/* the tiles' loops over rows run 1 to 4 times: unrolled whole, so that the
 * accumulators live in registers */
#define BF16_UNROLL _Pragma("GCC unroll 4")
/* How many weights ahead of the one being read the tiles prefetch on each
 * weight row (2 KiB). Decode reads every weight once from memory; with 4
 * input rows a tile computes long enough per cache line that the hardware
 * prefetcher alone leaves the loads waiting (measured on a 2-core Zen 5,
 * GPT-2-124M decode: batch 4 ~20% faster, batch 1 unchanged to ~5%
 * faster; 1 and 4 KiB were slower). A prefetch past the end of the weights
 * is harmless (it never faults). */
#define BF16_PREFETCH 1024

/* Keeps v in a register: without it GCC folds each input load into every
 * FMA that uses it, so a 4 x 4 tile loads its inputs 4 times over and the
 * loads, not the FMAs, bound it (measured on the 2-core Zen 5, 4 input rows
 * over 768-wide weight rows: 52 -> 60 GB/s). Costs nothing else: the same
 * instructions in the same order. */
#define BF16_IN_REGISTER(v) __asm__("" : "+v"(v))

/* 16 bf16 weights widened to float32 (zero-extend to 32 bits, shift left). */
AVX512 static inline __m512 widen16(const uint16_t *p)
{
	__m256i h = _mm256_loadu_si256((const __m256i *)p);
	return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* The same for the first k lanes (others 0). */
AVX512 static inline __m512 widen16_mask(const uint16_t *p, __mmask16 k)
{
	__m256i h = _mm256_maskz_loadu_epi16(k, p);
	return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* Where a tile's columns stop and what comes after them: a tile runs
 * columns [i0, i1) of its weight rows. Unless i1 == C it leaves its sums
 * in keep (16 x 16 floats), and unless i0 == 0 it starts from them; each
 * lane adds its columns in the same order as one tile over [0, C) would,
 * so the result is the same to the bit. Past i1 - BF16_PREFETCH the
 * prefetches move on by jump weights to where the next tile will read
 * (jump 0: on along the row, into the next row, which is what the next
 * group of an unblocked pass reads). */
struct bf16_span {
	int i0, i1;
	float *keep;
	ptrdiff_t jump;
};

/* R weight rows (o, o + step, ...) against NT input rows from n0, over the
 * columns of sp: R x NT accumulators of 16 lanes. R and NT are constants
 * after inlining. */
AVX512 static inline __attribute__((always_inline)) void
tile_widen(float *out, const float *inp, const uint16_t *weight, const float *bias, int C, int OC,
	   int o, int step, int n0, const int R, const int NT, struct bf16_span sp)
{
	__m512 acc[4][4];
	const uint16_t *w[4];
	const float *x[4];
	BF16_UNROLL
	for (int r = 0; r < R; r++) {
		w[r] = weight + (size_t)(o + r * step) * C;
		BF16_UNROLL
		for (int j = 0; j < NT; j++)
			acc[r][j] = sp.i0 ? _mm512_loadu_ps(sp.keep + (r * 4 + j) * 16)
					  : _mm512_setzero_ps();
	}
	BF16_UNROLL
	for (int j = 0; j < NT; j++)
		x[j] = inp + (size_t)(n0 + j) * C;
	int i = sp.i0, end = sp.i1;
	/* 32 columns (one 64-byte line of each weight row) a turn, with a
	 * prefetch BF16_PREFETCH weights ahead on each row; the sums run in
	 * the same order as 16 at a time */
	for (; i + 32 <= end; i += 32) {
		ptrdiff_t ahead = BF16_PREFETCH + (i + BF16_PREFETCH < end ? 0 : sp.jump);
		BF16_UNROLL
		for (int r = 0; r < R; r++)
			_mm_prefetch((const char *)(w[r] + i + ahead), _MM_HINT_T0);
		BF16_UNROLL
		for (int h = 0; h < 32; h += 16) {
			__m512 xv[4];
			BF16_UNROLL
			for (int j = 0; j < NT; j++) {
				xv[j] = _mm512_loadu_ps(x[j] + i + h);
				BF16_IN_REGISTER(xv[j]);
			}
			BF16_UNROLL
			for (int r = 0; r < R; r++) {
				__m512 wv = widen16(w[r] + i + h);
				BF16_UNROLL
				for (int j = 0; j < NT; j++)
					acc[r][j] = _mm512_fmadd_ps(wv, xv[j], acc[r][j]);
			}
		}
	}
	for (; i + 16 <= end; i += 16) {
		__m512 xv[4];
		BF16_UNROLL
		for (int j = 0; j < NT; j++)
			xv[j] = _mm512_loadu_ps(x[j] + i);
		BF16_UNROLL
		for (int r = 0; r < R; r++) {
			__m512 wv = widen16(w[r] + i);
			BF16_UNROLL
			for (int j = 0; j < NT; j++)
				acc[r][j] = _mm512_fmadd_ps(wv, xv[j], acc[r][j]);
		}
	}
	if (i < end) {
		__mmask16 k = (__mmask16)((1u << (end - i)) - 1);
		__m512 xv[4];
		BF16_UNROLL
		for (int j = 0; j < NT; j++)
			xv[j] = _mm512_maskz_loadu_ps(k, x[j] + i);
		BF16_UNROLL
		for (int r = 0; r < R; r++) {
			__m512 wv = widen16_mask(w[r] + i, k);
			BF16_UNROLL
			for (int j = 0; j < NT; j++)
				acc[r][j] = _mm512_fmadd_ps(wv, xv[j], acc[r][j]);
		}
	}
	if (end < C) {
		BF16_UNROLL
		for (int r = 0; r < R; r++)
			BF16_UNROLL
			for (int j = 0; j < NT; j++)
				_mm512_storeu_ps(sp.keep + (r * 4 + j) * 16, acc[r][j]);
		return;
	}
	BF16_UNROLL
	for (int r = 0; r < R; r++) {
		float b = bias ? bias[o + r * step] : 0.0f;
		BF16_UNROLL
		for (int j = 0; j < NT; j++)
			out[(size_t)(n0 + j) * OC + o + r * step] = _mm512_reduce_add_ps(acc[r][j]) + b;
	}
}

/* All input rows against weight rows (o, o + step, ... R of them). */
AVX512 static void rows_widen(float *out, const float *inp, const uint16_t *weight,
			      const float *bias, int N, int C, int OC, int o, int step, int R)
{
	struct bf16_span whole = {0, C, NULL, 0};
	int n0 = 0;
	for (; n0 + 4 <= N; n0 += 4) {
		if (R == 4)
			tile_widen(out, inp, weight, bias, C, OC, o, step, n0, 4, 4, whole);
		else
			tile_widen(out, inp, weight, bias, C, OC, o, step, n0, 1, 4, whole);
	}
	int left = N - n0;
#define BF16_TAIL(NT)                                                                       \
	do {                                                                                \
		if (R == 4)                                                                 \
			tile_widen(out, inp, weight, bias, C, OC, o, step, n0, 4, NT, whole); \
		else                                                                        \
			tile_widen(out, inp, weight, bias, C, OC, o, step, n0, 1, NT, whole); \
	} while (0)
	if (left == 3)
		BF16_TAIL(3);
	else if (left == 2)
		BF16_TAIL(2);
	else if (left == 1)
		BF16_TAIL(1);
#undef BF16_TAIL
}

/* The widening kernel: weight rows in groups of 4 taken a quarter of the
 * matrix apart (four separate memory streams, as the f32 kernel pairs rows
 * half a matrix apart), OpenMP over the groups. */
AVX512 static void matmul_widen(float *out, const float *inp, const uint16_t *weight,
				const float *bias, int N, int C, int OC)
{
	int Q = OC / 4, rest = OC - 4 * Q;
#pragma omp parallel for schedule(static) if ((size_t)N * C * OC > 100000)
	for (int g = 0; g < Q + rest; g++) {
		if (g < Q)
			rows_widen(out, inp, weight, bias, N, C, OC, g, Q, 4);
		else
			rows_widen(out, inp, weight, bias, N, C, OC, 4 * Q + (g - Q), 1, 1);
	}
}

/* Long weight rows (the MLP's down projection, C = 3072 on GPT-2-124M) at
 * 4 input rows or more: the inputs of a tile (4 x C floats, 48 KiB) no
 * longer stay in the 48 KiB L1 beside the weights streaming through it, so
 * every tile read them again from L2, and at 4 input rows that traffic,
 * not the FMAs or the weights, set the pace. So such products run in
 * column blocks of BF16_KBLOCK (4 x 1024 floats: 16 KiB of inputs that
 * stay in L1), over BF16_KGROUPS groups of 4 weight rows at a time, each
 * group's sums kept between blocks; the prefetches run on into the next
 * group's block (without that the blocks were slower than no blocks).
 * Measured on the 2-core Zen 5, GPT-2-124M bf16 decode at batch 4, four
 * alternated rounds: the down projections took 2.10-2.45 against 2.30-2.69
 * Mcycles of TSC per thread and step (batch 1 is unchanged: it never
 * blocks). The sums are those of the unblocked tiles, bit for bit (struct
 * bf16_span). */
#define BF16_KBLOCK 1024
#define BF16_KGROUPS 16

/* Input rows n0 .. n0 + 3 against groups [g0, g1) of a range's Q groups
 * (group g: weight rows o0 + g, o0 + g + Q, ...), block by block. */
AVX512 static void groups_blocked(float *out, const float *inp, const uint16_t *weight,
				  const float *bias, int C, int OC, int o0, int Q, int n0, int g0,
				  int g1)
{
	_Static_assert(BF16_KBLOCK >= BF16_PREFETCH && BF16_KBLOCK % 32 == 0,
		       "a block's prefetches reach into the next tile's block only");
	float keep[BF16_KGROUPS][16 * 16];
	for (int i0 = 0; i0 < C; i0 += BF16_KBLOCK) {
		int i1 = C - i0 < 2 * BF16_KBLOCK ? C : i0 + BF16_KBLOCK;
		for (int g = g0; g < g1; g++) {
			/* the next tile: the next group over this block, or
			 * after the last group the first one over the next
			 * block (on along the row: the last block, then the
			 * next groups) */
			ptrdiff_t jump = 0;
			if (g + 1 < g1)
				jump = (ptrdiff_t)C - (i1 - i0);
			else if (i1 < C)
				jump = -(ptrdiff_t)(g1 - 1 - g0) * C;
			struct bf16_span sp = {i0, i1, keep[g - g0], jump};
			tile_widen(out, inp, weight, bias, C, OC, o0 + g, Q, n0, 4, 4, sp);
		}
		if (i1 == C)
			break;
	}
}

/* Groups [g0, g1) of output columns [o0, o1) (group g: columns o0 + g,
 * o0 + g + Q, ... with Q = (o1 - o0) / 4), and with tail set the last
 * (o1 - o0) % 4 columns, in the calling thread: as matmul_widen does over
 * the whole matrix (each output is computed exactly as there). g0 and g1
 * are multiples of BF16_KGROUPS (or g1 == Q), so that the blocks are those
 * of the whole range. */
AVX512 static void range_widen(float *out, const float *inp, const uint16_t *weight,
			       const float *bias, int N, int C, int OC, int o0, int o1, int g0,
			       int g1, int tail)
{
	int Q = (o1 - o0) / 4, n0 = 0;
	if (C > 2 * BF16_KBLOCK)
		for (; n0 + 4 <= N; n0 += 4)
			for (int g = g0; g < g1; g += BF16_KGROUPS)
				groups_blocked(out, inp, weight, bias, C, OC, o0, Q, n0, g,
					       g + BF16_KGROUPS < g1 ? g + BF16_KGROUPS : g1);
	if (n0 < N)
		for (int g = g0; g < g1; g++)
			rows_widen(out + (size_t)n0 * OC, inp + (size_t)n0 * C, weight, bias,
				   N - n0, C, OC, o0 + g, Q, 4);
	if (tail)
		for (int o = o0 + 4 * Q; o < o1; o++)
			rows_widen(out, inp, weight, bias, N, C, OC, o, 1, 1);
}

/* vdpbf16ps: R weight rows against NT bf16 input rows (xb, rounded once). */
AVX512BF16 static inline __attribute__((always_inline)) void
tile_dot(float *out, const uint16_t *xb, const uint16_t *weight, const float *bias, int C, int OC,
	 int o, int step, int n0, const int R, const int NT)
{
	__m512 acc[4][4];
	const uint16_t *w[4], *x[4];
	BF16_UNROLL
	for (int r = 0; r < R; r++) {
		w[r] = weight + (size_t)(o + r * step) * C;
		BF16_UNROLL
		for (int j = 0; j < NT; j++)
			acc[r][j] = _mm512_setzero_ps();
	}
	BF16_UNROLL
	for (int j = 0; j < NT; j++)
		x[j] = xb + (size_t)(n0 + j) * C;
	for (int i = 0; i < C; i += 32) {
		__mmask32 k = C - i >= 32 ? ~(__mmask32)0 : (__mmask32)((1u << (C - i)) - 1);
		__m512i xv[4];
		BF16_UNROLL
		for (int j = 0; j < NT; j++)
			xv[j] = _mm512_maskz_loadu_epi16(k, x[j] + i);
		BF16_UNROLL
		for (int r = 0; r < R; r++) {
			__m512i wv = _mm512_maskz_loadu_epi16(k, w[r] + i);
			BF16_UNROLL
			for (int j = 0; j < NT; j++)
				acc[r][j] = _mm512_dpbf16_ps(acc[r][j], (__m512bh)wv, (__m512bh)xv[j]);
		}
	}
	BF16_UNROLL
	for (int r = 0; r < R; r++) {
		float b = bias ? bias[o + r * step] : 0.0f;
		BF16_UNROLL
		for (int j = 0; j < NT; j++)
			out[(size_t)(n0 + j) * OC + o + r * step] = _mm512_reduce_add_ps(acc[r][j]) + b;
	}
}

AVX512BF16 static void rows_dot(float *out, const uint16_t *xb, const uint16_t *weight,
				const float *bias, int N, int C, int OC, int o, int step, int R)
{
	int n0 = 0;
	for (; n0 + 4 <= N; n0 += 4) {
		if (R == 4)
			tile_dot(out, xb, weight, bias, C, OC, o, step, n0, 4, 4);
		else
			tile_dot(out, xb, weight, bias, C, OC, o, step, n0, 1, 4);
	}
	int left = N - n0;
#define BF16_TAIL(NT)                                                                       \
	do {                                                                                \
		if (R == 4)                                                                 \
			tile_dot(out, xb, weight, bias, C, OC, o, step, n0, 4, NT);         \
		else                                                                        \
			tile_dot(out, xb, weight, bias, C, OC, o, step, n0, 1, NT);         \
	} while (0)
	if (left == 3)
		BF16_TAIL(3);
	else if (left == 2)
		BF16_TAIL(2);
	else if (left == 1)
		BF16_TAIL(1);
#undef BF16_TAIL
}

/* The vdpbf16ps kernel: the inputs rounded to bf16 (nearest even) once,
 * then the same grouping as matmul_widen. */
AVX512BF16 static void matmul_dot(float *out, const float *inp, const uint16_t *weight,
				  const float *bias, int N, int C, int OC)
{
	uint16_t *xb = xmalloc(sizeof(uint16_t) * (size_t)N * C);
	train_f32_to_bf16_n(xb, inp, (size_t)N * C);
	int Q = OC / 4, rest = OC - 4 * Q;
#pragma omp parallel for schedule(static) if ((size_t)N * C * OC > 100000)
	for (int g = 0; g < Q + rest; g++) {
		if (g < Q)
			rows_dot(out, xb, weight, bias, N, C, OC, g, Q, 4);
		else
			rows_dot(out, xb, weight, bias, N, C, OC, 4 * Q + (g - Q), 1, 1);
	}
	free(xb);
}

static int cpu_has_avx512(void)
{
	static int have = -1;
	if (have < 0) {
		__builtin_cpu_init();
		have = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
		       __builtin_cpu_supports("avx512vl") && !getenv("DPO_NO_AVX512BF16");
	}
	return have;
}
#endif

#ifdef HAVE_BLAS
/* Weight rows per widened block of the sgemm path. */
#define BF16_GEMM_BLOCK 256

/* Many rows: blocks of weight rows widened to float32, then sgemm. The
 * widening is O(OC*C) against the product's O(N*OC*C). */
static void matmul_sgemm(float *out, const float *inp, const uint16_t *weight, const float *bias,
			 int N, int C, int OC)
{
	float *blk = xmalloc(sizeof(float) * BF16_GEMM_BLOCK * (size_t)C);
	for (int o0 = 0; o0 < OC; o0 += BF16_GEMM_BLOCK) {
		int nb = OC - o0 < BF16_GEMM_BLOCK ? OC - o0 : BF16_GEMM_BLOCK;
		/* one thread: an OpenMP team here would still be spinning
		 * while OpenBLAS's threads run the product (measured: 10x
		 * slower on 2 cores) */
		train_bf16_to_f32_n(blk, weight + (size_t)o0 * C, (size_t)nb * C);
		if (bias)
			for (int n = 0; n < N; n++)
				memcpy(out + (size_t)n * OC + o0, bias + o0, sizeof(float) * nb);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, nb, C, 1.0f, inp, C, blk, C,
			    bias ? 1.0f : 0.0f, out + o0, OC);
	}
	free(blk);
}
#endif

/* Whether AUTO takes the sgemm path for this product: many rows on a CPU
 * without AVX-512 (the AVX-512 tiles beat widening + sgemm at any N). */
static int use_sgemm(int N, int C, int OC)
{
#ifdef HAVE_BLAS
#ifdef BF16_X86
	if (cpu_has_avx512())
		return 0;
#endif
	return train_layers_use_blas && N >= 16 && (size_t)N * C * OC >= 1u << 20;
#else
	(void)N, (void)C, (void)OC;
	return 0;
#endif
}

const char *train_bf16_kernel_name(int N)
{
	if (train_bf16_kernel == TRAIN_BF16_KERNEL_PLAIN)
		return "plain";
#ifdef HAVE_BLAS
	if (train_bf16_kernel == TRAIN_BF16_KERNEL_SGEMM)
		return "widen+sgemm";
#endif
#ifdef BF16_X86
	if (train_bf16_kernel == TRAIN_BF16_KERNEL_DOT && train_cpu_has_avx512bf16())
		return "avx512bf16-dot";
	if (train_bf16_kernel == TRAIN_BF16_KERNEL_AUTO && use_sgemm(N, 1024, 1024))
		return "widen+sgemm";
	if (cpu_has_avx512())
		return "avx512-widen";
#else
	if (train_bf16_kernel == TRAIN_BF16_KERNEL_AUTO && use_sgemm(N, 1024, 1024))
		return "widen+sgemm";
#endif
	return "plain";
}

void train_matmul_bf16_forward(float *out, const float *inp, const uint16_t *weight,
			       const float *bias, int N, int C, int OC)
{
	int k = train_bf16_kernel;
	if (k == TRAIN_BF16_KERNEL_PLAIN) {
		matmul_plain(out, inp, weight, bias, N, C, OC);
		return;
	}
#ifdef HAVE_BLAS
	if ((k == TRAIN_BF16_KERNEL_AUTO && use_sgemm(N, C, OC)) || k == TRAIN_BF16_KERNEL_SGEMM) {
		matmul_sgemm(out, inp, weight, bias, N, C, OC);
		return;
	}
#endif
#ifdef BF16_X86
	if (k == TRAIN_BF16_KERNEL_DOT && train_cpu_has_avx512bf16()) {
		matmul_dot(out, inp, weight, bias, N, C, OC);
		return;
	}
	if (cpu_has_avx512()) {
		matmul_widen(out, inp, weight, bias, N, C, OC);
		return;
	}
#endif
	matmul_plain(out, inp, weight, bias, N, C, OC);
}

int train_matmul_bf16_splits(int N, int C, int OC)
{
	int k = train_bf16_kernel;
	if (k == TRAIN_BF16_KERNEL_PLAIN || k == TRAIN_BF16_KERNEL_WIDEN)
		return 1;
	return k == TRAIN_BF16_KERNEL_AUTO && !use_sgemm(N, C, OC);
}

void train_matmul_bf16_range(float *out, const float *inp, const uint16_t *weight,
			     const float *bias, int N, int C, int OC, int o0, int o1)
{
#ifdef BF16_X86
	if (train_bf16_kernel != TRAIN_BF16_KERNEL_PLAIN && cpu_has_avx512()) {
		range_widen(out, inp, weight, bias, N, C, OC, o0, o1, 0, (o1 - o0) / 4, 1);
		return;
	}
#endif
	for (int o = o0; o < o1; o++)
		plain_col(out, inp, weight, bias, N, C, OC, o);
}

/* Groups of 4 output columns in a range's unit (BF16_KGROUPS, so that a
 * unit is whole blocks of groups_blocked). */
#define BF16_UNIT BF16_KGROUPS

int train_matmul_bf16_range_units(int o0, int o1)
{
	int Q = (o1 - o0) / 4;
	return (Q + BF16_UNIT - 1) / BF16_UNIT + (o1 - o0 > 4 * Q);
}

/* Unit u of range [o0, o1): its groups [*g0, *g1) of the range's Q; returns
 * 1 for the tail unit (the last (o1 - o0) % 4 columns, no groups). */
static int unit_groups(int o0, int o1, int u, int *Q, int *g0, int *g1)
{
	*Q = (o1 - o0) / 4;
	if (u >= (*Q + BF16_UNIT - 1) / BF16_UNIT) {
		*g0 = *g1 = *Q;
		return 1;
	}
	*g0 = u * BF16_UNIT;
	*g1 = *g0 + BF16_UNIT < *Q ? *g0 + BF16_UNIT : *Q;
	return 0;
}

int train_matmul_bf16_unit_runs(int o0, int o1, int u, int start[4], int len[4])
{
	int Q, g0, g1;
	if (unit_groups(o0, o1, u, &Q, &g0, &g1)) {
		start[0] = o0 + 4 * Q;
		len[0] = o1 - start[0];
		return 1;
	}
	for (int k = 0; k < 4; k++) {
		start[k] = o0 + g0 + k * Q;
		len[k] = g1 - g0;
	}
	return 4;
}

void train_matmul_bf16_range_unit(float *out, const float *inp, const uint16_t *weight,
				  const float *bias, int N, int C, int OC, int o0, int o1, int u)
{
#ifdef BF16_X86
	if (train_bf16_kernel != TRAIN_BF16_KERNEL_PLAIN && cpu_has_avx512()) {
		int Q, g0, g1, tail = unit_groups(o0, o1, u, &Q, &g0, &g1);
		range_widen(out, inp, weight, bias, N, C, OC, o0, o1, g0, g1, tail);
		return;
	}
#endif
	int start[4], len[4], n = train_matmul_bf16_unit_runs(o0, o1, u, start, len);
	for (int k = 0; k < n; k++)
		for (int o = start[k]; o < start[k] + len[k]; o++)
			plain_col(out, inp, weight, bias, N, C, OC, o);
}

/* ---- embedding ---- */

void train_embedding_bf16_forward(float *out, const int *ids, const uint16_t *wte,
				  const uint16_t *wpe, const int *pos0, int B, int T, int C)
{
#pragma omp parallel for collapse(2) if ((size_t)B * T * C > 65536)
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++) {
			float *o = out + ((size_t)b * T + t) * C;
			const uint16_t *e = wte + (size_t)ids[b * T + t] * C;
			const uint16_t *pe =
				wpe ? wpe + (size_t)((pos0 ? pos0[b] : 0) + t) * C : NULL;
			for (int i = 0; i < C; i++)
				o[i] = train_bf16_to_f32(e[i]) + (pe ? train_bf16_to_f32(pe[i]) : 0.0f);
		}
}

/* ---- log-probs ---- */

void train_logprob_bf16_forward(float *logp, float *lse, const float *h, const uint16_t *wlm,
				const int *targets, int N, int C, int V)
{
	int chunk = V < TRAIN_LOGPROB_CHUNK ? V : TRAIN_LOGPROB_CHUNK;
	float *z = xmalloc(sizeof(float) * (size_t)N * chunk);
	float *mx = xmalloc(sizeof(float) * (size_t)N);
	float *tg = xmalloc(sizeof(float) * (size_t)N);
	double *se = xmalloc(sizeof(double) * (size_t)N);
	for (int n = 0; n < N; n++) {
		mx[n] = -INFINITY;
		tg[n] = 0.0f;
		se[n] = 0.0;
	}
	for (int v0 = 0; v0 < V; v0 += chunk) {
		int cv = V - v0 < chunk ? V - v0 : chunk;
		train_matmul_bf16_forward(z, h, wlm + (size_t)v0 * C, NULL, N, C, cv);
#pragma omp parallel for if ((size_t)N * cv > 16384)
		for (int n = 0; n < N; n++) {
			const float *row = z + (size_t)n * cv;
			float m = mx[n];
			for (int j = 0; j < cv; j++)
				m = row[j] > m ? row[j] : m;
			/* the running sum was relative to the old maximum */
			double s = se[n] * exp((double)mx[n] - m);
			for (int j = 0; j < cv; j++)
				s += exp((double)row[j] - m);
			se[n] = s;
			mx[n] = m;
			if (targets[n] >= v0 && targets[n] < v0 + cv)
				tg[n] = row[targets[n] - v0];
		}
	}
	for (int n = 0; n < N; n++) {
		float l = mx[n] + (float)log(se[n]);
		logp[n] = targets[n] >= 0 ? tg[n] - l : 0.0f;
		if (lse)
			lse[n] = l;
	}
	free(z);
	free(mx);
	free(tg);
	free(se);
}

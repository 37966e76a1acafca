/* test_matmul_bf16.c: the bf16 GEMM (train/matmul_bf16.h) against its plain
 * reference, in the four transpose cases, with beta 0 and 1, on shapes that
 * cross every block edge (MR 12, NR 32, k blocks of up to KC 1024, NC 768, MCB 1536), with the
 * AVX512-BF16 tile (where the CPU has it) and the portable one; plus hand
 * values showing that the inputs really are rounded to bf16, and the
 * train_gemm hook. The variant with a bf16 B operand (train_gemm_bf16_wb)
 * is checked the same way and against train_gemm_bf16 on B widened. The
 * two tiles give the same bits.
 *
 * Tolerance: the optimized kernel and the reference multiply the same bf16
 * values; each product of two 8-bit significands is exact in float32, so
 * they differ only by the float32 summation of K products (the reference
 * sums in double): |got - ref| <= K * 2^-24 * (sum |a_k b_k| + |beta c|),
 * the usual gamma_K bound, checked element by element. */
#include "config.h"
#include "tests/tap.h"
#include "train/layers_backward.h"
#include "train/matmul_bf16.h"
#include "train/precision.h"
#include "util/xmalloc.h"

#include <stdint.h>

static uint64_t rng = 88172645463325252ull;

static float frand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((rng >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

/* the largest |got - want| / bound over C, bound as in the header */
static double worst(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
		    int ldb, float beta, const float *C0, const float *got, const float *want)
{
	double w = 0;
	for (int i = 0; i < M; i++)
		for (int j = 0; j < N; j++) {
			double s = fabs(beta * C0[(size_t)i * N + j]);
			for (int k = 0; k < K; k++)
				s += fabs((ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
					  (double)(tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]));
			double bound = (K + 2) * ldexp(1.0, -24) * s + 1e-30;
			double d = fabs((double)got[(size_t)i * N + j] - want[(size_t)i * N + j]) / bound;
			if (!(d <= w))
				w = isnan(d) ? INFINITY : d;
		}
	return w;
}

/* train_gemm_bf16_serial in exactly the scratch it asks for (ASan sees an
 * overrun): within the bound of the reference R, and, without oneDNN
 * behind train_gemm_bf16, bit for bit its result C (the same panels and
 * tiles on one thread) */
static void check_serial(int ta, int tb, int M, int N, int K, const float *A, int lda,
			 const float *B, int ldb, float beta, const float *C0, const float *C,
			 const float *R)
{
	size_t nc = (size_t)M * N;
	float *S = xmalloc(sizeof(float) * nc);
	uint32_t *ws = xmalloc(sizeof(uint32_t) * train_gemm_bf16_scratch_words(M, N, K));
	memcpy(S, C0, sizeof(float) * nc);
	train_gemm_bf16_serial(ta, tb, M, N, K, A, lda, B, ldb, beta, S, N, ws);
	double w = worst(ta, tb, M, N, K, A, lda, B, ldb, beta, C0, S, R);
	int same = 1;
#ifndef HAVE_DNNL
	same = !memcmp(S, C, sizeof(float) * nc);
#else
	(void)C;
#endif
	TAP_OK(w <= 1.0 && same, "serial M%d N%d K%d ta%d tb%d beta%.0f: within the bound (worst "
	       "%.3g of it)%s", M, N, K, ta, tb, beta, w, same ? "" : ", differs from train_gemm_bf16");
	free(S);
	free(ws);
}

static void check_shape(int M, int N, int K, int simd)
{
	for (int ta = 0; ta < 2; ta++)
		for (int tb = 0; tb < 2; tb++)
			for (int bi = 0; bi < 2; bi++) {
				float beta = (float)bi;
				int lda = ta ? M : K, ldb = tb ? K : N;
				size_t na = (size_t)M * K, nb = (size_t)K * N, nc = (size_t)M * N;
				float *A = xmalloc(sizeof(float) * na), *B = xmalloc(sizeof(float) * nb);
				float *C0 = xmalloc(sizeof(float) * nc), *C = xmalloc(sizeof(float) * nc);
				float *R = xmalloc(sizeof(float) * nc);
				for (size_t i = 0; i < na; i++)
					A[i] = frand();
				for (size_t i = 0; i < nb; i++)
					B[i] = frand();
				for (size_t i = 0; i < nc; i++)
					C0[i] = frand();
				memcpy(C, C0, sizeof(float) * nc);
				memcpy(R, C0, sizeof(float) * nc);
				train_bf16_use_simd = simd;
				train_gemm_bf16(ta, tb, M, N, K, A, lda, B, ldb, beta, C, N);
				train_gemm_bf16_ref(ta, tb, M, N, K, A, lda, B, ldb, beta, R, N);
				double w = worst(ta, tb, M, N, K, A, lda, B, ldb, beta, C0, C, R);
				TAP_OK(w <= 1.0, "%s M%d N%d K%d ta%d tb%d beta%d: within the float32 "
				       "summation bound (worst %.3g of it)",
				       simd ? "simd" : "portable", M, N, K, ta, tb, bi, w);
				check_serial(ta, tb, M, N, K, A, lda, B, ldb, beta, C0, C, R);
				free(A);
				free(B);
				free(C0);
				free(C);
				free(R);
			}
}

/* train_gemm_bf16_wb (B already bf16): within the summation bound of its
 * reference, and bit for bit train_gemm_bf16 on B widened (the packing
 * of a bf16 operand must give the same panels), in the four transpose
 * cases (the trainer uses ta 0: tb 1 forward and LM head, tb 0 dinp). */
static void check_shape_wb(int M, int N, int K, int simd)
{
	for (int ta = 0; ta < 2; ta++)
		for (int tb = 0; tb < 2; tb++)
			for (int bi = 0; bi < 2; bi++) {
				float beta = (float)bi;
				int lda = ta ? M : K, ldb = tb ? K : N;
				size_t na = (size_t)M * K, nb = (size_t)K * N, nc = (size_t)M * N;
				float *A = xmalloc(sizeof(float) * na), *B = xmalloc(sizeof(float) * nb);
				uint16_t *Bh = xmalloc(sizeof(uint16_t) * nb);
				float *C0 = xmalloc(sizeof(float) * nc), *C = xmalloc(sizeof(float) * nc);
				float *R = xmalloc(sizeof(float) * nc), *W = xmalloc(sizeof(float) * nc);
				for (size_t i = 0; i < na; i++)
					A[i] = frand();
				for (size_t i = 0; i < nb; i++) {
					Bh[i] = train_f32_to_bf16(frand());
					B[i] = train_bf16_to_f32(Bh[i]);
				}
				for (size_t i = 0; i < nc; i++)
					C0[i] = frand();
				memcpy(C, C0, sizeof(float) * nc);
				memcpy(R, C0, sizeof(float) * nc);
				memcpy(W, C0, sizeof(float) * nc);
				train_bf16_use_simd = simd;
				train_gemm_bf16_wb(ta, tb, M, N, K, A, lda, Bh, ldb, beta, C, N);
				train_gemm_bf16_wb_ref(ta, tb, M, N, K, A, lda, Bh, ldb, beta, R, N);
				train_gemm_bf16(ta, tb, M, N, K, A, lda, B, ldb, beta, W, N);
				double w = worst(ta, tb, M, N, K, A, lda, B, ldb, beta, C0, C, R);
				TAP_OK(w <= 1.0 && !memcmp(C, W, sizeof(float) * nc),
				       "bf16 B: %s M%d N%d K%d ta%d tb%d beta%d: within the bound "
				       "(worst %.3g of it), equal to train_gemm_bf16 on B widened",
				       simd ? "simd" : "portable", M, N, K, ta, tb, bi, w);
				free(A);
				free(B);
				free(Bh);
				free(C0);
				free(C);
				free(R);
				free(W);
			}
}

/* The portable tile adds each pair's two products as vdpbf16ps does (the
 * odd one, then the even one, each exact in float32 and rounded as it is
 * added), so both tiles give the same bits (inputs away from the
 * denormals vdpbf16ps flushes): a float32 last-bit difference would round
 * some later bf16 input the other way. */
static void check_tiles_equal(int M, int N, int K)
{
	size_t na = (size_t)M * K, nb = (size_t)K * N, nc = (size_t)M * N;
	float *A = xmalloc(sizeof(float) * na), *B = xmalloc(sizeof(float) * nb);
	float *C = xmalloc(sizeof(float) * nc), *P = xmalloc(sizeof(float) * nc);
	for (size_t i = 0; i < na; i++)
		A[i] = frand();
	for (size_t i = 0; i < nb; i++)
		B[i] = frand();
	train_bf16_use_simd = 1;
	train_gemm_bf16(0, 1, M, N, K, A, K, B, K, 0.0f, C, N);
	train_bf16_use_simd = 0;
	train_gemm_bf16(0, 1, M, N, K, A, K, B, K, 0.0f, P, N);
	size_t diff = 0;
	for (size_t i = 0; i < nc; i++)
		diff += memcmp(&C[i], &P[i], sizeof(float)) != 0;
	TAP_OK(diff == 0, "M%d N%d K%d: the portable tile gives the AVX512-BF16 tile's bits "
	       "(%zu of %zu differ)", M, N, K, diff, nc);
	free(A);
	free(B);
	free(C);
	free(P);
}

/* inputs are rounded to bf16 (8 significant bits), ties to even */
static void test_rounding(void)
{
	/* 1 + 3*2^-10 rounds to 1; 1 + 2^-8 is a tie and goes to the even 1;
	 * 1 + 3*2^-8 is a tie and goes to the even 1 + 2^-6 */
	float a[3] = {1.0f + 3 * 0x1p-10f, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f};
	float b[3] = {3.0f, 5.0f, 1.0f};
	float c = 0, r = 0;
	train_gemm_bf16(0, 0, 1, 1, 3, a, 3, b, 1, 0.0f, &c, 1);
	train_gemm_bf16_ref(0, 0, 1, 1, 3, a, 3, b, 1, 0.0f, &r, 1);
	TAP_NEAR(r, 3.0 + 5.0 + 1.0 + 0x1p-6, 0.0, "reference rounds inputs to bf16");
	TAP_NEAR(c, r, 0.0, "kernel rounds inputs to bf16");
	/* K = 0: C = beta C */
	float z[2] = {2.0f, 4.0f};
	train_gemm_bf16(0, 0, 1, 2, 0, a, 1, b, 2, 1.0f, z, 2);
	TAP_OK(z[0] == 2.0f && z[1] == 4.0f, "K 0 with beta 1 keeps C");
	train_gemm_bf16(0, 0, 1, 2, 0, a, 1, b, 2, 0.0f, z, 2);
	TAP_OK(z[0] == 0.0f && z[1] == 0.0f, "K 0 with beta 0 zeroes C");
}

/* train_gemm runs in bf16 after train_gemm_set_precision(BF16), f32 again after F32 */
static void test_hook(void)
{
	int M = 40, N = 70, K = 90;
	float *A = xmalloc(sizeof(float) * M * K), *B = xmalloc(sizeof(float) * K * N);
	float *C = xmalloc(sizeof(float) * M * N), *R = xmalloc(sizeof(float) * M * N);
	for (int i = 0; i < M * K; i++)
		A[i] = frand();
	for (int i = 0; i < K * N; i++)
		B[i] = frand();
	train_gemm_set_precision(TRAIN_PREC_BF16);
	TAP_OK(train_gemm_precision() == TRAIN_PREC_BF16, "precision set to bf16");
	train_gemm(0, 0, M, N, K, A, K, B, N, 0.0f, C, N);
	train_gemm_bf16(0, 0, M, N, K, A, K, B, N, 0.0f, R, N);
	TAP_OK(!memcmp(C, R, sizeof(float) * M * N), "train_gemm in bf16 is train_gemm_bf16");
	train_gemm_set_precision(TRAIN_PREC_F32);
	train_gemm(0, 0, M, N, K, A, K, B, N, 0.0f, C, N);
	double d = 0;
	for (int i = 0; i < M * N; i++)
		d = fmax(d, fabs(C[i] - R[i]));
	TAP_OK(d > 0, "train_gemm in f32 differs from bf16 (max diff %g)", d);
	free(A);
	free(B);
	free(C);
	free(R);
}

int main(void)
{
	static const int shapes[][3] = {
		{1, 1, 1}, {5, 7, 3}, {12, 32, 2}, {13, 33, 17}, {25, 70, 385},
		{37, 65, 800}, {30, 800, 40}, {1600, 20, 30}, {64, 96, 768},
		/* k in several blocks, the last one odd */
		{19, 50, 1031}, {20, 40, 2101},
	};
	int nsimd = train_cpu_has_avx512bf16() ? 2 : 1;
	if (nsimd == 1)
		printf("# no AVX512-BF16 here: only the portable tile is tested\n");
	for (int s = 0; s < nsimd; s++)
		for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
			check_shape(shapes[i][0], shapes[i][1], shapes[i][2], nsimd == 2 && s == 0);
	for (int s = 0; s < nsimd; s++)
		for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
			check_shape_wb(shapes[i][0], shapes[i][1], shapes[i][2], nsimd == 2 && s == 0);
	if (nsimd == 2)
		for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
			check_tiles_equal(shapes[i][0], shapes[i][1], shapes[i][2]);
	train_bf16_use_simd = 1;
	test_rounding();
	test_hook();
	double peak = train_bf16_peak_gflops(0.05);
	TAP_OK(nsimd == 1 ? peak == 0 : peak > 0, "peak probe: %.0f GFLOP/s", peak);
	return tap_done();
}

/* test_matmul_dnnl.c: train_gemm_bf16 through oneDNN (train/matmul_dnnl.h;
 * built only with ./configure --with-dnnl) against the plain double
 * reference (train_gemm_bf16_ref) and against our own tile, in the four
 * transpose cases, beta 0, 1 and 0.5, padded leading dimensions (asked
 * for with train_bf16_use_dnnl 1; off by default); products
 * cut into pieces along M, N and K; and the cases where it must decline
 * (switched off, portable tile forced, small products, inside an OpenMP
 * parallel region), which must still give the right result.
 *
 * Tolerance (as in test_matmul_bf16.c): both sides multiply the same bf16
 * values exactly in float32 and differ only by float32 summation:
 * |got - ref| <= (K + 2) 2^-24 (sum_k |a_k b_k| + |beta c|) per element;
 * oneDNN against our tile: twice that. */
#include "config.h"
#include "tests/tap.h"
#include "train/layers_backward.h"
#include "train/matmul_bf16.h"
#include "train/matmul_dnnl.h"
#include "train/precision.h"
#include "util/xmalloc.h"

#include <stdint.h>

static uint64_t rng = 2463534242ull;

static float frand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((rng >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

typedef struct {
	int ta, tb, M, N, K, lda, ldb, ldc;
	float beta;
	float *A, *B, *C0;
} prod;

static void prod_init(prod *p, int ta, int tb, int M, int N, int K, float beta, int pad)
{
	*p = (prod){ta, tb, M, N, K, (ta ? M : K) + pad, (tb ? K : N) + pad, N + pad, beta,
		    NULL, NULL, NULL};
	size_t na = (size_t)(ta ? K : M) * p->lda, nb = (size_t)(tb ? N : K) * p->ldb;
	size_t nc = (size_t)M * p->ldc;
	p->A = xmalloc(sizeof(float) * na);
	p->B = xmalloc(sizeof(float) * nb);
	p->C0 = xmalloc(sizeof(float) * nc);
	for (size_t i = 0; i < na; i++)
		p->A[i] = frand();
	for (size_t i = 0; i < nb; i++)
		p->B[i] = frand();
	for (size_t i = 0; i < nc; i++)
		p->C0[i] = frand();
}

static void prod_free(prod *p)
{
	free(p->A);
	free(p->B);
	free(p->C0);
}

/* C = C0, then train_gemm_bf16 (or the reference) into it */
static float *run(const prod *p, int ref)
{
	size_t nc = (size_t)p->M * p->ldc;
	float *C = xmalloc(sizeof(float) * nc);
	memcpy(C, p->C0, sizeof(float) * nc);
	if (ref)
		train_gemm_bf16_ref(p->ta, p->tb, p->M, p->N, p->K, p->A, p->lda, p->B, p->ldb,
				    p->beta, C, p->ldc);
	else
		train_gemm_bf16(p->ta, p->tb, p->M, p->N, p->K, p->A, p->lda, p->B, p->ldb, p->beta,
				C, p->ldc);
	return C;
}

/* the largest |got - want| / bound over C (bound in the header); the
 * padding columns must be untouched */
static double worst(const prod *p, const float *got, const float *want)
{
	double w = 0;
	for (int i = 0; i < p->M; i++) {
		for (int j = 0; j < p->N; j++) {
			size_t o = (size_t)i * p->ldc + j;
			double s = fabs(p->beta * (double)p->C0[o]);
			for (int k = 0; k < p->K; k++)
				s += fabs((double)(p->ta ? p->A[(size_t)k * p->lda + i]
							 : p->A[(size_t)i * p->lda + k]) *
					  (p->tb ? p->B[(size_t)j * p->ldb + k]
						 : p->B[(size_t)k * p->ldb + j]));
			double d = fabs((double)got[o] - want[o]) /
				   ((p->K + 2) * ldexp(1.0, -24) * s + 1e-30);
			if (!(d <= w))
				w = isnan(d) ? INFINITY : d;
		}
		for (int j = p->N; j < p->ldc; j++)
			if (got[(size_t)i * p->ldc + j] != p->C0[(size_t)i * p->ldc + j])
				return INFINITY;
	}
	return w;
}

/* one product through oneDNN (want_dnnl: it must take it) against the
 * reference and against our tile */
static void check(const char *what, const prod *p, int want_dnnl)
{
	unsigned long n0 = train_gemm_bf16_dnnl_calls();
	float *got = run(p, 0);
	int took = train_gemm_bf16_dnnl_calls() != n0;
	float *ref = run(p, 1);
	train_bf16_use_dnnl = 0;
	float *ours = run(p, 0);
	train_bf16_use_dnnl = 1;
	double e_ref = worst(p, got, ref), e_ours = worst(p, got, ours);
	TAP_OK(took == want_dnnl, "%s ta %d tb %d %dx%dx%d beta %g: oneDNN %s", what, p->ta, p->tb,
	       p->M, p->N, p->K, p->beta, want_dnnl ? "ran it" : "declined");
	if (!TAP_OK(e_ref <= 1.0, "%s: within the bound of the double reference", what))
		printf("#   error %.3g x the bound\n", e_ref);
	if (!TAP_OK(e_ours <= 2.0, "%s: within twice the bound of our tile", what))
		printf("#   difference %.3g x the bound\n", e_ours);
	free(got);
	free(ref);
	free(ours);
}

int main(void)
{
	if (!train_cpu_has_avx512bf16())
		tap_skip_all("no AVX512-BF16 here: train_gemm_bf16 never hands products to oneDNN");
	static const float betas[3] = {0.0f, 1.0f, 0.5f};
	prod p;
	/* off unless asked for: without DPO_DNNL our tile runs */
	unsetenv("DPO_DNNL");
	prod_init(&p, 0, 1, 200, 131, 300, 0.0f, 1);
	unsigned long n0 = train_gemm_bf16_dnnl_calls();
	free(run(&p, 0));
	TAP_OK(train_gemm_bf16_dnnl_calls() == n0 && train_bf16_use_dnnl == 0,
	       "without DPO_DNNL: off, our tile ran");
	prod_free(&p);
	train_bf16_use_dnnl = 1;
	for (int ta = 0; ta < 2; ta++)
		for (int tb = 0; tb < 2; tb++)
			for (int b = 0; b < 3; b++) {
				prod_init(&p, ta, tb, 200, 131, 300, betas[b], 5);
				check("plain", &p, 1);
				prod_free(&p);
			}
	/* pieces: K over 4096, M (then N) over 2M elements / 4096 */
	prod_init(&p, 1, 0, 1030, 16, 4100, 1.0f, 3);
	check("pieces M, K", &p, 1);
	prod_free(&p);
	prod_init(&p, 0, 1, 16, 1030, 4100, 0.0f, 3);
	check("pieces N, K", &p, 1);
	prod_free(&p);

	/* declines, still right: small; switched off; portable tile forced */
	prod_init(&p, 0, 1, 40, 30, 50, 1.0f, 2);
	check("small", &p, 0);
	prod_free(&p);
	prod_init(&p, 0, 0, 200, 131, 300, 1.0f, 2);
	train_bf16_use_dnnl = 0;
	n0 = train_gemm_bf16_dnnl_calls();
	free(run(&p, 0));
	TAP_OK(train_gemm_bf16_dnnl_calls() == n0, "train_bf16_use_dnnl 0: our tile");
	train_bf16_use_dnnl = 1;
	train_bf16_use_simd = 0;
	check("portable forced", &p, 0);
	train_bf16_use_simd = 1;
	/* inside a parallel region: our tile (one thread's call) */
	float *inner = NULL;
	n0 = train_gemm_bf16_dnnl_calls();
#pragma omp parallel num_threads(2)
	{
#pragma omp single
		inner = run(&p, 0);
	}
	float *ref = run(&p, 1);
	TAP_OK(train_gemm_bf16_dnnl_calls() == n0 && worst(&p, inner, ref) <= 1.0,
	       "inside a parallel region: declined, result within the bound");
	free(inner);
	free(ref);
	/* the trainer's entry: train_gemm in bf16 reaches oneDNN */
	train_gemm_set_precision(TRAIN_PREC_BF16);
	float *C = xmalloc(sizeof(float) * (size_t)p.M * p.ldc);
	memcpy(C, p.C0, sizeof(float) * (size_t)p.M * p.ldc);
	n0 = train_gemm_bf16_dnnl_calls();
	train_gemm(p.ta, p.tb, p.M, p.N, p.K, p.A, p.lda, p.B, p.ldb, p.beta, C, p.ldc);
	TAP_OK(train_gemm_bf16_dnnl_calls() == n0 + 1, "train_gemm in bf16 goes through oneDNN");
	train_gemm_set_precision(TRAIN_PREC_F32);
	free(C);
	prod_free(&p);
	return tap_done();
}

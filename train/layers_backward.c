/* layers_backward.c: backward kernels (see layers_backward.h). Each
 * optimized kernel sits next to its plain reference. */
#include "config.h"
#include "train/layers_backward.h"
#include "train/layers.h"
#include "train/matmul_bf16.h"
#include "train/vecmath_bf16.h"
#include "util/xmalloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef HAVE_BLAS
#include <cblas.h>
#endif

/* Defined in train/layers.c: 0 forces the plain kernels even with BLAS. */
extern int train_layers_use_blas;

#define COLBLOCK 64

#ifdef _OPENMP
#include <omp.h>
#endif

void train_gemm_init(void)
{
#ifdef HAVE_BLAS
	openblas_set_num_threads(1);
#endif
}

/* One block of train_gemm. */
static void gemm_block(int ta, int tb, int M, int N, int K, const float *A, int lda,
		       const float *B, int ldb, float beta, float *C, int ldc)
{
	if (M <= 0 || N <= 0)
		return;
#ifdef HAVE_BLAS
	if (train_layers_use_blas) {
		cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
			    M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
		return;
	}
#endif
	for (int i = 0; i < M; i++) {
		float *c = C + (size_t)i * ldc;
		if (beta == 0.0f)
			memset(c, 0, sizeof(float) * N);
		else if (beta != 1.0f)
			for (int j = 0; j < N; j++)
				c[j] *= beta;
		for (int k = 0; k < K; k++) {
			float a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
			if (a == 0.0f)
				continue;
			if (tb)
				for (int j = 0; j < N; j++)
					c[j] += a * B[(size_t)j * ldb + k];
			else {
				const float *b = B + (size_t)k * ldb;
				for (int j = 0; j < N; j++)
					c[j] += a * b[j];
			}
		}
	}
}

void train_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
		int ldb, float beta, float *C, int ldc)
{
	if (train_gemm_precision() == TRAIN_PREC_BF16) {
		train_gemm_bf16(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
		return;
	}
	int nt = 1;
#ifdef _OPENMP
	if (!omp_in_parallel() && (double)M * N * K >= 1 << 18)
		nt = omp_get_max_threads();
#endif
	if (nt <= 1) {
		gemm_block(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
		return;
	}
	/* split the longer side of C into nt blocks (multiples of 16) */
	int split_n = N >= M;
	int len = split_n ? N : M;
	int blk = (len + nt - 1) / nt;
	blk = (blk + 15) / 16 * 16;
#pragma omp parallel for schedule(static) num_threads(nt)
	for (int i = 0; i < nt; i++) {
		int s0 = i * blk, s1 = s0 + blk < len ? s0 + blk : len;
		if (s0 >= s1)
			continue;
		if (split_n)
			gemm_block(ta, tb, M, s1 - s0, K, A, lda,
				   tb ? B + (size_t)s0 * ldb : B + s0, ldb, beta, C + s0, ldc);
		else
			gemm_block(ta, tb, s1 - s0, N, K, ta ? A + s0 : A + (size_t)s0 * lda, lda, B,
				   ldb, beta, C + (size_t)s0 * ldc, ldc);
	}
}

/* ---- embedding ---- */

void train_embedding_backward_ref(float *dwte, float *dwpe, const float *dout, const int *ids,
				  const int *pos0, int B, int T, int C)
{
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++) {
			const float *g = dout + ((size_t)b * T + t) * C;
			int p = (pos0 ? pos0[b] : 0) + t;
			for (int i = 0; i < C; i++) {
				if (dwte)
					dwte[(size_t)ids[b * T + t] * C + i] += g[i];
				if (dwpe)
					dwpe[(size_t)p * C + i] += g[i];
			}
		}
}

void train_embedding_backward(float *dwte, float *dwpe, const float *dout, const int *ids,
			      const int *pos0, int B, int T, int C)
{
	/* threads own disjoint channel blocks, so repeated ids never race */
#pragma omp parallel for schedule(static) if ((size_t)B * T * C > 65536)
	for (int c0 = 0; c0 < C; c0 += COLBLOCK) {
		int c1 = c0 + COLBLOCK < C ? c0 + COLBLOCK : C;
		for (int b = 0; b < B; b++)
			for (int t = 0; t < T; t++) {
				const float *g = dout + ((size_t)b * T + t) * C;
				if (dwte) {
					float *d = dwte + (size_t)ids[b * T + t] * C;
					for (int i = c0; i < c1; i++)
						d[i] += g[i];
				}
				if (dwpe) {
					float *d = dwpe + (size_t)((pos0 ? pos0[b] : 0) + t) * C;
					for (int i = c0; i < c1; i++)
						d[i] += g[i];
				}
			}
	}
}

/* ---- layernorm ---- */

/* dinp for one row: dx = rstd * (dn - mean(dn) - xhat * mean(dn * xhat)),
 * dn = dout * weight. */
static void layernorm_row_backward(float *dx, const float *g, const float *x, const float *w,
				   float mean, float rstd, int C)
{
	double s1 = 0, s2 = 0;
	for (int i = 0; i < C; i++) {
		float dn = g[i] * w[i];
		float xh = (x[i] - mean) * rstd;
		s1 += dn;
		s2 += dn * xh;
	}
	float m1 = (float)(s1 / C), m2 = (float)(s2 / C);
	for (int i = 0; i < C; i++) {
		float dn = g[i] * w[i];
		float xh = (x[i] - mean) * rstd;
		dx[i] += rstd * (dn - m1 - xh * m2);
	}
}

void train_layernorm_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
				  const float *inp, const float *weight, const float *mean,
				  const float *rstd, int N, int C)
{
	for (int n = 0; n < N; n++) {
		const float *g = dout + (size_t)n * C, *x = inp + (size_t)n * C;
		if (dinp)
			layernorm_row_backward(dinp + (size_t)n * C, g, x, weight, mean[n], rstd[n], C);
		for (int i = 0; i < C; i++) {
			if (dweight)
				dweight[i] += g[i] * (x[i] - mean[n]) * rstd[n];
			if (dbias)
				dbias[i] += g[i];
		}
	}
}

void train_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
			      const float *inp, const float *weight, const float *mean,
			      const float *rstd, int N, int C)
{
	if (dinp) {
#pragma omp parallel for schedule(static) if ((size_t)N * C > 32768)
		for (int n = 0; n < N; n++)
			layernorm_row_backward(dinp + (size_t)n * C, dout + (size_t)n * C,
					       inp + (size_t)n * C, weight, mean[n], rstd[n], C);
	}
	if (dweight || dbias) {
#pragma omp parallel for schedule(static) if ((size_t)N * C > 32768)
		for (int c0 = 0; c0 < C; c0 += COLBLOCK) {
			int c1 = c0 + COLBLOCK < C ? c0 + COLBLOCK : C;
			for (int n = 0; n < N; n++) {
				const float *g = dout + (size_t)n * C, *x = inp + (size_t)n * C;
				float m = mean[n], r = rstd[n];
				for (int i = c0; i < c1; i++) {
					if (dweight)
						dweight[i] += g[i] * (x[i] - m) * r;
					if (dbias)
						dbias[i] += g[i];
				}
			}
		}
	}
}

/* ---- rmsnorm ---- */

/* dx = rstd * (dn - xhat * mean(dn * xhat)), dn = dout * weight. */
static void rmsnorm_row_backward(float *dx, const float *g, const float *x, const float *w,
				 float rstd, int C)
{
	double s = 0;
	for (int i = 0; i < C; i++)
		s += g[i] * w[i] * (x[i] * rstd);
	float m = (float)(s / C);
	for (int i = 0; i < C; i++)
		dx[i] += rstd * (g[i] * w[i] - x[i] * rstd * m);
}

void train_rmsnorm_backward_ref(float *dinp, float *dweight, const float *dout, const float *inp,
				const float *weight, const float *rstd, int N, int C)
{
	for (int n = 0; n < N; n++) {
		const float *g = dout + (size_t)n * C, *x = inp + (size_t)n * C;
		if (dinp)
			rmsnorm_row_backward(dinp + (size_t)n * C, g, x, weight, rstd[n], C);
		if (dweight)
			for (int i = 0; i < C; i++)
				dweight[i] += g[i] * x[i] * rstd[n];
	}
}

void train_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
			    const float *weight, const float *rstd, int N, int C)
{
	if (dinp) {
#pragma omp parallel for schedule(static) if ((size_t)N * C > 32768)
		for (int n = 0; n < N; n++)
			rmsnorm_row_backward(dinp + (size_t)n * C, dout + (size_t)n * C,
					     inp + (size_t)n * C, weight, rstd[n], C);
	}
	if (dweight) {
#pragma omp parallel for schedule(static) if ((size_t)N * C > 32768)
		for (int c0 = 0; c0 < C; c0 += COLBLOCK) {
			int c1 = c0 + COLBLOCK < C ? c0 + COLBLOCK : C;
			for (int n = 0; n < N; n++) {
				const float *g = dout + (size_t)n * C, *x = inp + (size_t)n * C;
				float r = rstd[n];
				for (int i = c0; i < c1; i++)
					dweight[i] += g[i] * x[i] * r;
			}
		}
	}
}

/* ---- matmul ---- */

void train_matmul_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
			       const float *inp, const float *weight, int N, int C, int OC)
{
	for (int n = 0; n < N; n++)
		for (int o = 0; o < OC; o++) {
			float g = dout[(size_t)n * OC + o];
			for (int i = 0; i < C; i++) {
				if (dinp)
					dinp[(size_t)n * C + i] += g * weight[(size_t)o * C + i];
				if (dweight)
					dweight[(size_t)o * C + i] += g * inp[(size_t)n * C + i];
			}
			if (dbias)
				dbias[o] += g;
		}
}

/* Plain kernels: rows of dinp and rows of dweight are each owned by one
 * thread; 4 rows of the other operand share each pass over a row. */
static void matmul_backward_plain(float *dinp, float *dweight, float *dbias, const float *dout,
				  const float *inp, const float *weight, int N, int C, int OC)
{
	if (dinp) {
#pragma omp parallel for schedule(static) if ((size_t)N * C * OC > 100000)
		for (int n = 0; n < N; n++) {
			float *di = dinp + (size_t)n * C;
			const float *g = dout + (size_t)n * OC;
			int o = 0;
			for (; o + 4 <= OC; o += 4) {
				float g0 = g[o], g1 = g[o + 1], g2 = g[o + 2], g3 = g[o + 3];
				const float *w0 = weight + (size_t)o * C, *w1 = w0 + C, *w2 = w1 + C,
					    *w3 = w2 + C;
				for (int i = 0; i < C; i++)
					di[i] += g0 * w0[i] + g1 * w1[i] + g2 * w2[i] + g3 * w3[i];
			}
			for (; o < OC; o++) {
				const float *w = weight + (size_t)o * C;
				for (int i = 0; i < C; i++)
					di[i] += g[o] * w[i];
			}
		}
	}
	if (dweight || dbias) {
#pragma omp parallel for schedule(static) if ((size_t)N * C * OC > 100000)
		for (int o = 0; o < OC; o++) {
			float *dw = dweight ? dweight + (size_t)o * C : NULL;
			float sb = 0;
			int n = 0;
			for (; n + 4 <= N; n += 4) {
				float g0 = dout[(size_t)n * OC + o], g1 = dout[(size_t)(n + 1) * OC + o];
				float g2 = dout[(size_t)(n + 2) * OC + o], g3 = dout[(size_t)(n + 3) * OC + o];
				sb += (g0 + g1) + (g2 + g3);
				if (dw) {
					const float *x0 = inp + (size_t)n * C, *x1 = x0 + C, *x2 = x1 + C,
						    *x3 = x2 + C;
					for (int i = 0; i < C; i++)
						dw[i] += g0 * x0[i] + g1 * x1[i] + g2 * x2[i] + g3 * x3[i];
				}
			}
			for (; n < N; n++) {
				float g = dout[(size_t)n * OC + o];
				sb += g;
				if (dw) {
					const float *x = inp + (size_t)n * C;
					for (int i = 0; i < C; i++)
						dw[i] += g * x[i];
				}
			}
			if (dbias)
				dbias[o] += sb;
		}
	}
}

void train_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
			   const float *inp, const float *weight, int N, int C, int OC)
{
	int gemm = train_gemm_precision() == TRAIN_PREC_BF16; /* every size in bf16 */
#ifdef HAVE_BLAS
	gemm |= train_layers_use_blas && N >= 4 && (size_t)N * C * OC >= 1u << 20;
#endif
	if (gemm) {
		if (dinp)
			train_gemm(0, 0, N, C, OC, dout, OC, weight, C, 1.0f, dinp, C);
		if (dweight)
			train_gemm(1, 0, OC, C, N, dout, OC, inp, C, 1.0f, dweight, C);
		if (dbias) {
			/* column sums in the reference's order (n ascending per
			 * column, so the same bits), a block of columns at a time
			 * in a local array the compiler can vectorize */
#pragma omp parallel for schedule(static) if ((size_t)N * OC > 65536)
			for (int o0 = 0; o0 < OC; o0 += COLBLOCK) {
				int w = o0 + COLBLOCK < OC ? COLBLOCK : OC - o0;
				float acc[COLBLOCK];
				memcpy(acc, dbias + o0, sizeof(float) * w);
				for (int n = 0; n < N; n++) {
					const float *g = dout + (size_t)n * OC + o0;
#pragma omp simd
					for (int o = 0; o < w; o++)
						acc[o] += g[o];
				}
				memcpy(dbias + o0, acc, sizeof(float) * w);
			}
		}
		return;
	}
	matmul_backward_plain(dinp, dweight, dbias, dout, inp, weight, N, C, OC);
}

/* ---- qkv split ---- */

void train_qkv_split_backward(float *dqkv, const float *dq, const float *dk, const float *dv,
			      int N, int NH, int NKV, int hd)
{
	size_t qn = (size_t)NH * hd, kn = (size_t)NKV * hd, row = qn + 2 * kn;
#pragma omp parallel for schedule(static) if ((size_t)N * row > 65536)
	for (int n = 0; n < N; n++) {
		float *r = dqkv + (size_t)n * row;
		const float *a = dq + (size_t)n * qn, *b = dk + (size_t)n * kn, *c = dv + (size_t)n * kn;
		for (size_t i = 0; i < qn; i++)
			r[i] += a[i];
		for (size_t i = 0; i < kn; i++) {
			r[qn + i] += b[i];
			r[qn + kn + i] += c[i];
		}
	}
}

/* ---- rope ---- */

static inline void rope_vec_backward(float *d, const float *g, const float *c, const float *s,
				     int h)
{
	for (int i = 0; i < h; i++) {
		float a = g[i], b = g[i + h];
		d[i] += a * c[i] + b * s[i];
		d[i + h] += b * c[i] - a * s[i];
	}
}

void train_rope_backward_ref(float *dinp, const float *dout, const float *cos_tab,
			     const float *sin_tab, const int *pos0, int B, int T, int H, int hd)
{
	int h = hd / 2;
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++) {
			int p = (pos0 ? pos0[b] : 0) + t;
			for (int j = 0; j < H; j++) {
				size_t off = (((size_t)b * T + t) * H + j) * hd;
				rope_vec_backward(dinp + off, dout + off, cos_tab + (size_t)p * h,
						  sin_tab + (size_t)p * h, h);
			}
		}
}

void train_rope_backward(float *dinp, const float *dout, const float *cos_tab,
			 const float *sin_tab, const int *pos0, int B, int T, int H, int hd)
{
	int h = hd / 2;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * H * hd > 65536)
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++) {
			int p = (pos0 ? pos0[b] : 0) + t;
			for (int j = 0; j < H; j++) {
				size_t off = (((size_t)b * T + t) * H + j) * hd;
				rope_vec_backward(dinp + off, dout + off, cos_tab + (size_t)p * h,
						  sin_tab + (size_t)p * h, h);
			}
		}
}

/* ---- attention ---- */

void train_attention_backward_ref(float *dq, float *dk, float *dv, const float *dout,
				  const float *q, const float *k, const float *v, const float *out,
				  const float *lse, const int *pos0, int B, int T, int S, int NH,
				  int NKV, int hd)
{
	float scale = 1.0f / sqrtf((float)hd);
	int group = NH / NKV;
	size_t ks = (size_t)NKV * hd;
	for (int b = 0; b < B; b++) {
		int p0 = pos0 ? pos0[b] : 0;
		for (int h = 0; h < NH; h++) {
			int kh = h / group;
			for (int t = 0; t < T; t++) {
				size_t qo = (((size_t)b * T + t) * NH + h) * hd;
				const float *qv = q + qo, *go = dout + qo, *ov = out + qo;
				float l = lse[((size_t)b * NH + h) * T + t];
				double D = 0;
				for (int i = 0; i < hd; i++)
					D += (double)go[i] * ov[i];
				for (int s = 0; s <= p0 + t; s++) {
					size_t ko = (size_t)b * S * ks + (size_t)s * ks + (size_t)kh * hd;
					double sc = 0, dp = 0;
					for (int i = 0; i < hd; i++) {
						sc += (double)qv[i] * k[ko + i];
						dp += (double)go[i] * v[ko + i];
					}
					double P = exp(sc * scale - l);
					double ds = P * (dp - D);
					for (int i = 0; i < hd; i++) {
						dv[ko + i] += (float)(P * go[i]);
						dk[ko + i] += (float)(scale * ds * qv[i]);
						dq[qo + i] += (float)(scale * ds * k[ko + i]);
					}
				}
			}
		}
	}
}

static inline float dotf(const float *a, const float *b, int n)
{
	float acc[8] = {0};
	int i = 0;
	for (; i + 8 <= n; i += 8)
		for (int j = 0; j < 8; j++)
			acc[j] += a[i + j] * b[i + j];
	float s = 0.0f;
	for (; i < n; i++)
		s += a[i] * b[i];
	return s + ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

#ifdef HAVE_BLAS
/* Attention backward with matrix products: per (batch row, KV head) task and
 * block of QB queries, over the keys the block can see,
 *   P = exp(Q K^T scale - lse) (0 above the diagonal), dP = dO V^T,
 *   dS = P (dP - D) scale, dQ += dS K, dK += dS^T Q, dV += P^T dO,
 * each product one single-threaded sgemm with the heads' row strides. */
#define ATT_QB 64
static void attention_backward_blas(float *dq, float *dk, float *dv, const float *dout,
				    const float *q, const float *k, const float *v,
				    const float *out, const float *lse, const int *pos0, int B,
				    int T, int S, int NH, int NKV, int hd)
{
	float scale = 1.0f / sqrtf((float)hd);
	int group = NH / NKV;
	int ks = NKV * hd, qs = NH * hd;
	int maxlast = 0;
	for (int b = 0; b < B; b++) {
		int l = (pos0 ? pos0[b] : 0) + T;
		if (l > maxlast)
			maxlast = l;
	}
#pragma omp parallel
	{
		float *P = xmalloc(sizeof(float) * (size_t)ATT_QB * maxlast);
		float *dP = xmalloc(sizeof(float) * (size_t)ATT_QB * maxlast);
		float *D = xmalloc(sizeof(float) * ATT_QB);
#pragma omp for collapse(2) schedule(dynamic, 1)
		for (int b = 0; b < B; b++)
			for (int kh = 0; kh < NKV; kh++) {
				int p0 = pos0 ? pos0[b] : 0;
				const float *kb = k + (size_t)b * S * ks + (size_t)kh * hd;
				const float *vb = v + (size_t)b * S * ks + (size_t)kh * hd;
				float *dkb = dk + (size_t)b * S * ks + (size_t)kh * hd;
				float *dvb = dv + (size_t)b * S * ks + (size_t)kh * hd;
				for (int h = kh * group; h < (kh + 1) * group; h++)
					for (int t0 = 0; t0 < T; t0 += ATT_QB) {
						int nq = T - t0 < ATT_QB ? T - t0 : ATT_QB;
						int nk = p0 + t0 + nq; /* keys seen by the block */
						size_t qo = ((size_t)b * T + t0) * qs + (size_t)h * hd;
						const float *Q = q + qo, *dO = dout + qo, *O = out + qo;
						const float *L = lse + ((size_t)b * NH + h) * T + t0;
						cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, hd,
							    scale, Q, qs, kb, ks, 0.0f, P, nk);
						cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, hd,
							    1.0f, dO, qs, vb, ks, 0.0f, dP, nk);
						for (int i = 0; i < nq; i++) {
							const float *go = dO + (size_t)i * qs, *oo = O + (size_t)i * qs;
							float d = 0;
							for (int j = 0; j < hd; j++)
								d += go[j] * oo[j];
							D[i] = d;
						}
						for (int i = 0; i < nq; i++) {
							float *pr = P + (size_t)i * nk, *dr = dP + (size_t)i * nk;
							int last = p0 + t0 + i;
							float l = L[i], di = D[i];
							for (int j = 0; j <= last; j++) {
								float pv = expf(pr[j] - l);
								pr[j] = pv;
								dr[j] = pv * (dr[j] - di) * scale;
							}
							for (int j = last + 1; j < nk; j++)
								pr[j] = dr[j] = 0.0f;
						}
						cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, nk,
							    1.0f, dP, nk, kb, ks, 1.0f, dq + qo, qs);
						cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hd, nq,
							    1.0f, dP, nk, Q, qs, 1.0f, dkb, ks);
						cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hd, nq,
							    1.0f, P, nk, dO, qs, 1.0f, dvb, ks);
					}
			}
		free(P);
		free(dP);
		free(D);
	}
}
#endif

void train_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
			      const float *k, const float *v, const float *out, const float *lse,
			      const int *pos0, int B, int T, int S, int NH, int NKV, int hd)
{
#ifdef HAVE_BLAS
	if (train_layers_use_blas) {
		attention_backward_blas(dq, dk, dv, dout, q, k, v, out, lse, pos0, B, T, S, NH, NKV,
					hd);
		return;
	}
#endif
	float scale = 1.0f / sqrtf((float)hd);
	int group = NH / NKV;
	size_t ks = (size_t)NKV * hd;
	int maxlast = 0;
	for (int b = 0; b < B; b++) {
		int l = (pos0 ? pos0[b] : 0) + T;
		if (l > maxlast)
			maxlast = l;
	}
#pragma omp parallel if ((size_t)B * NH * T * maxlast * hd > 100000)
	{
		float *P = xmalloc(sizeof(float) * (size_t)(maxlast + 1));
		float *dS = xmalloc(sizeof(float) * (size_t)(maxlast + 1));
		/* (b, kv head) tasks own dk/dv rows of their head and dq of its query heads */
#pragma omp for collapse(2) schedule(dynamic, 1)
		for (int b = 0; b < B; b++)
			for (int kh = 0; kh < NKV; kh++) {
				int p0 = pos0 ? pos0[b] : 0;
				const float *kb = k + (size_t)b * S * ks + (size_t)kh * hd;
				const float *vb = v + (size_t)b * S * ks + (size_t)kh * hd;
				float *dkb = dk + (size_t)b * S * ks + (size_t)kh * hd;
				float *dvb = dv + (size_t)b * S * ks + (size_t)kh * hd;
				for (int h = kh * group; h < (kh + 1) * group; h++)
					for (int t = 0; t < T; t++) {
						size_t qo = (((size_t)b * T + t) * NH + h) * hd;
						const float *qv = q + qo, *go = dout + qo;
						float *dqv = dq + qo;
						float l = lse[((size_t)b * NH + h) * T + t];
						float D = dotf(go, out + qo, hd);
						int last = p0 + t;
						for (int s = 0; s <= last; s++) {
							float p = expf(dotf(qv, kb + (size_t)s * ks, hd) * scale - l);
							P[s] = p;
							dS[s] = p * (dotf(go, vb + (size_t)s * ks, hd) - D) * scale;
						}
						for (int s = 0; s <= last; s++) {
							float p = P[s], ds = dS[s];
							const float *kv = kb + (size_t)s * ks;
							float *dkv = dkb + (size_t)s * ks, *dvv = dvb + (size_t)s * ks;
							for (int i = 0; i < hd; i++) {
								dvv[i] += p * go[i];
								dkv[i] += ds * qv[i];
								dqv[i] += ds * kv[i];
							}
						}
					}
			}
		free(P);
		free(dS);
	}
}

/* ---- gelu ---- */

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f

/* tanh from one expf: about 4x cheaper than tanhf, absolute error ~1e-7
 * (relative error grows only where tanh is tiny, which gelu' does not see). */
static inline float tanh_fast(float u)
{
	float e = expf(-2.0f * fabsf(u));
	return copysignf((1.0f - e) / (1.0f + e), u);
}

static inline float gelu_grad_th(float x, float th)
{
	float du = GELU_K * (1.0f + 3.0f * GELU_A * x * x);
	return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du;
}

static inline float gelu_grad(float x)
{
	float u = GELU_K * (x + GELU_A * x * x * x);
	float th = tanhf(u);
	float du = GELU_K * (1.0f + 3.0f * GELU_A * x * x);
	return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du;
}

void train_gelu_backward_ref(float *dinp, const float *inp, const float *dout, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dinp[i] += dout[i] * gelu_grad(inp[i]);
}

void train_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
	if (train_vecmath_on()) {
		train_vgelu_backward(dinp, inp, dout, n);
		return;
	}
#pragma omp parallel for schedule(static) if (n > 65536)
	for (size_t i = 0; i < n; i++) {
		float x = inp[i];
		dinp[i] += dout[i] * gelu_grad_th(x, tanh_fast(GELU_K * (x + GELU_A * x * x * x)));
	}
}

void train_gelu_forward_fast(float *out, const float *inp, size_t n)
{
	if (train_vecmath_on()) {
		train_vgelu_forward(out, inp, n);
		return;
	}
#pragma omp parallel for schedule(static) if (n > 65536)
	for (size_t i = 0; i < n; i++) {
		float x = inp[i];
		out[i] = 0.5f * x * (1.0f + tanh_fast(GELU_K * (x + GELU_A * x * x * x)));
	}
}

/* ---- swiglu ---- */

static inline void swiglu_grad(float *dg, float *du, float g, float u, float d)
{
	float s = 1.0f / (1.0f + expf(-g));
	*dg += d * u * s * (1.0f + g * (1.0f - s));
	*du += d * g * s;
}

void train_swiglu_backward_ref(float *dinp, const float *inp, const float *dout, int N, int NI)
{
	for (int n = 0; n < N; n++)
		for (int i = 0; i < NI; i++) {
			size_t r = (size_t)n * 2 * NI;
			swiglu_grad(&dinp[r + i], &dinp[r + NI + i], inp[r + i], inp[r + NI + i],
				    dout[(size_t)n * NI + i]);
		}
}

void train_swiglu_backward(float *dinp, const float *inp, const float *dout, int N, int NI)
{
#pragma omp parallel for schedule(static) if ((size_t)N * NI > 65536)
	for (int n = 0; n < N; n++) {
		const float *g = inp + (size_t)n * 2 * NI, *u = g + NI, *d = dout + (size_t)n * NI;
		float *dg = dinp + (size_t)n * 2 * NI, *du = dg + NI;
		for (int i = 0; i < NI; i++)
			swiglu_grad(&dg[i], &du[i], g[i], u[i], d[i]);
	}
}

/* ---- residual ---- */

void train_residual_backward(float *da, float *db, const float *dout, size_t n)
{
#pragma omp parallel for schedule(static) if (n > 65536)
	for (size_t i = 0; i < n; i++) {
		if (da)
			da[i] += dout[i];
		if (db)
			db[i] += dout[i];
	}
}

/* ---- per-token log-prob ---- */

void train_logprob_backward_ref(float *dh, float *dwlm, const float *dlogp, const float *h,
				const float *wlm, const int *targets, const float *lse, int N,
				int C, int V)
{
	for (int n = 0; n < N; n++) {
		if (targets[n] < 0 || dlogp[n] == 0.0f)
			continue;
		const float *x = h + (size_t)n * C;
		for (int v = 0; v < V; v++) {
			const float *w = wlm + (size_t)v * C;
			double d = 0;
			for (int i = 0; i < C; i++)
				d += (double)x[i] * w[i];
			double g = dlogp[n] * ((v == targets[n] ? 1.0 : 0.0) - exp(d - lse[n]));
			for (int i = 0; i < C; i++) {
				if (dh)
					dh[(size_t)n * C + i] += (float)(g * w[i]);
				if (dwlm)
					dwlm[(size_t)v * C + i] += (float)(g * x[i]);
			}
		}
	}
}

void train_logprob_backward(float *dh, float *dwlm, const float *dlogp, const float *h,
			    const float *wlm, const int *targets, const float *lse, int N, int C,
			    int V)
{
	int chunk = V < TRAIN_LOGPROB_CHUNK ? V : TRAIN_LOGPROB_CHUNK;
	float *scratch = xmalloc(sizeof(float) * (size_t)N * chunk);
	int vm = train_vecmath_on();
	for (int v0 = 0; v0 < V; v0 += chunk) {
		int cv = V - v0 < chunk ? V - v0 : chunk;
		const float *w = wlm + (size_t)v0 * C;
		int gemm = train_gemm_precision() == TRAIN_PREC_BF16;
#ifdef HAVE_BLAS
		gemm |= train_layers_use_blas;
#endif
		if (gemm)
			train_gemm(0, 1, N, cv, C, h, C, w, C, 0.0f, scratch, cv);
		else
			train_matmul_forward(scratch, h, w, NULL, N, C, cv);
#pragma omp parallel for schedule(static) if ((size_t)N * cv > 16384)
		for (int n = 0; n < N; n++) {
			float *r = scratch + (size_t)n * cv;
			int t = targets[n];
			float g = t >= 0 ? dlogp[n] : 0.0f, l = lse[n];
			if (g == 0.0f) {
				memset(r, 0, sizeof(float) * cv);
				continue;
			}
			if (vm)
				train_vexp_scale(r, cv, l, -g);
			else
				for (int j = 0; j < cv; j++)
					r[j] = -g * expf(r[j] - l);
			if (t >= v0 && t < v0 + cv)
				r[t - v0] += g;
		}
		train_matmul_backward(dh, dwlm ? dwlm + (size_t)v0 * C : NULL, NULL, scratch, h, w, N,
				      C, cv);
	}
	free(scratch);
}

void train_logprob_backward_logits(float *dh, float *dwlm, const float *dlogp, const float *h,
				   const float *wlm, const int *targets, const float *lse,
				   float *logits, int N, int C, int V)
{
	int vm = train_vecmath_on();
#pragma omp parallel for schedule(static) if ((size_t)N * V > 16384)
	for (int n = 0; n < N; n++) {
		float *r = logits + (size_t)n * V;
		int t = targets[n];
		float g = t >= 0 ? dlogp[n] : 0.0f, l = lse[n];
		if (g == 0.0f) {
			memset(r, 0, sizeof(float) * V);
			continue;
		}
		if (vm) /* bf16: AVX-512 loop (vecmath_bf16.h) */
			train_vexp_scale(r, V, l, -g);
		else
			for (int j = 0; j < V; j++)
				r[j] = -g * expf(r[j] - l);
		r[t] += g;
	}
	train_matmul_backward(dh, dwlm, NULL, logits, h, wlm, N, C, V);
}

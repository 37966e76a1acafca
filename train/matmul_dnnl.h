/* matmul_dnnl.h: train_gemm_bf16 through oneDNN's bf16 matmul (built only
 * with ./configure --with-dnnl; HAVE_DNNL).
 *
 * train_gemm_bf16 (matmul_bf16.h) first offers each product to
 * train_gemm_bf16_dnnl; when it declines, our own AVX512-BF16 tile runs.
 * oneDNN computes the same thing: both float32 operands rounded to bf16
 * (nearest even, by oneDNN reorders into scratch buffers), float32 sums,
 * beta C added through a sum post-op. The primitives (matmul and the two
 * reorders) are kept in a small cache keyed by the shape, the strides,
 * beta and the thread count, so each shape is JIT-compiled once. Large
 * products are cut into pieces so that the bf16 scratch stays under 8 MB
 * whatever the vocabulary (peak memory stays that of float32 training).
 */
#ifndef DPO_TRAIN_MATMUL_DNNL_H
#define DPO_TRAIN_MATMUL_DNNL_H

/* Nonzero (the default): train_gemm_bf16 hands products to oneDNN; 0 keeps
 * them on our own tile (tests and bench_gemm_dnnl compare the two). */
extern int train_bf16_use_dnnl;

/* C[M,N] = beta C + op(A) op(B) in bf16 with float32 sums, the arguments of
 * train_gemm_bf16, through oneDNN. Returns 0 when done, -1 (C untouched)
 * when it declines: use disabled (train_bf16_use_dnnl or
 * train_bf16_use_simd 0), no AVX512-BF16, a small product, a call inside an
 * OpenMP parallel region or while another thread is in here, or oneDNN
 * failing to set up (then it stays off for the process; DPO_NO_DNNL set
 * in the environment does the same, to compare runs of one program).
 * Aborts if oneDNN fails while running, after C was partly written. */
int train_gemm_bf16_dnnl(int ta, int tb, int M, int N, int K, const float *A, int lda,
			 const float *B, int ldb, float beta, float *C, int ldc);

/* Number of products train_gemm_bf16_dnnl has run since the start. */
unsigned long train_gemm_bf16_dnnl_calls(void);

#endif

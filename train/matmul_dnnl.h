/* matmul_dnnl.h: train_gemm_bf16 through oneDNN's bf16 matmul (built only
 * with ./configure --with-dnnl; HAVE_DNNL), off unless asked for.
 *
 * train_gemm_bf16 (matmul_bf16.h) first offers each product to
 * train_gemm_bf16_dnnl; when it declines, our own AVX512-BF16 tile runs.
 * It declines unless DPO_DNNL is set (not "0") in the environment or
 * train_bf16_use_dnnl is 1: on this project's machine our tile measured as
 * fast as oneDNN 2.6 on the GPT-2-124M products (bench/bench_gemm_dnnl.c,
 * README "Measured"), so oneDNN is kept for the comparison and for CPUs
 * where its kernels win. oneDNN computes the same thing: both float32
 * operands rounded to bf16 (nearest even, by oneDNN reorders into scratch
 * buffers), float32 sums, beta C added through a sum post-op. The
 * primitives (matmul and the two reorders) are kept in a small cache keyed
 * by the shape, the strides, beta and the thread count, so each shape is
 * JIT-compiled once. Large products are cut into pieces so that the bf16
 * scratch stays under 8 MB whatever the vocabulary.
 */
#ifndef DPO_TRAIN_MATMUL_DNNL_H
#define DPO_TRAIN_MATMUL_DNNL_H

/* 1: train_gemm_bf16 hands products to oneDNN; 0: never (our tile);
 * -1 (the start value): DPO_DNNL in the environment decides at the first
 * call (set and not "0": 1). Tests and bench_gemm_dnnl set it. */
extern int train_bf16_use_dnnl;

/* C[M,N] = beta C + op(A) op(B) in bf16 with float32 sums, the arguments of
 * train_gemm_bf16, through oneDNN. Returns 0 when done, -1 (C untouched)
 * when it declines: not asked for (train_bf16_use_dnnl), the portable tile
 * forced (train_bf16_use_simd 0), no AVX512-BF16, a small product, a call
 * inside an OpenMP parallel region or while another thread is in here, or
 * oneDNN failing to set up (then it stays off for the process). Aborts if
 * oneDNN fails while running, after C was partly written. */
int train_gemm_bf16_dnnl(int ta, int tb, int M, int N, int K, const float *A, int lda,
			 const float *B, int ldb, float beta, float *C, int ldc);

/* Number of products train_gemm_bf16_dnnl has run since the start. */
unsigned long train_gemm_bf16_dnnl_calls(void);

#endif

/* matmul_bf16.h: mixed-precision GEMM for training (--precision bf16).
 *
 * The products of a Linear layer (forward out = inp.W^T, backward
 * dinp = dout.W and dW += dout^T.inp, and the vocabulary projection) all go
 * through train_gemm (layers_backward.h). With train_gemm_set_precision(
 * TRAIN_PREC_BF16) train_gemm hands them to train_gemm_bf16: both operands
 * are rounded to bfloat16 (nearest even) while being packed, the products
 * are summed in float32, and C stays float32. Nothing else changes
 * precision: callers keep float32 master weights and activations.
 *
 * Kernel: BLIS-style. op(B) is packed in blocks of KC x NC, op(A) in blocks
 * of MCB x KC, as bf16 pairs (two consecutive k of one row/column in one
 * 32-bit word, the layout vdpbf16ps consumes); a 12 x 32 register tile
 * (24 zmm accumulators) runs over each pair of panels. The packing reads
 * the float32 operands directly in any of the four transpose cases, so no
 * bf16 copy of a weight or activation outlives the call (peak memory
 * stays that of float32 training; the scratch is a few MiB). OpenMP splits
 * the packing and the tiles across threads.
 *
 * The AVX512-BF16 tile is compiled with target attributes and chosen at run
 * time (train_cpu_has_avx512bf16); elsewhere a portable tile on the same
 * packed panels computes the same sums (in float32, slower). */
#ifndef DPO_TRAIN_MATMUL_BF16_H
#define DPO_TRAIN_MATMUL_BF16_H
#include <stddef.h>
#include <stdint.h>
#include "train/precision.h"

/* Make train_gemm run in precision p (TRAIN_PREC_F32, the default, or
 * TRAIN_PREC_BF16; auto is resolved first). Process-wide; not thread-safe
 * to change while kernels run. */
void train_gemm_set_precision(train_precision p);

/* The precision train_gemm runs in now (F32 or BF16). */
train_precision train_gemm_precision(void);

/* C[M,N] = beta C + op(A)[M,K] . op(B)[K,N], the arguments of train_gemm
 * (ta/tb nonzero: the operand is stored transposed; lda/ldb/ldc row
 * strides), with A and B rounded to bf16 and float32 sums. beta 0 never
 * reads C. Threads itself with OpenMP unless called inside a parallel
 * region. Packs into a 4.7 MB buffer kept for the process (reused by the
 * next call; a call made while another runs, or inside a parallel region,
 * allocates and frees its own). */
void train_gemm_bf16(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
		     int ldb, float beta, float *C, int ldc);

/* The plain reference of train_gemm_bf16: A and B rounded to bf16 element
 * by element, products summed in double, one thread, no packing. */
void train_gemm_bf16_ref(int ta, int tb, int M, int N, int K, const float *A, int lda,
			 const float *B, int ldb, float beta, float *C, int ldc);

/* train_gemm_bf16 with the B operand already in bf16 (raw bit patterns,
 * e.g. a weight of a model held in bf16, train/model_bf16.h): B is packed
 * as it is (no rounding), A is rounded as in train_gemm_bf16. Bit for bit
 * train_gemm_bf16 on B widened to float32. Used by the trainer for a frozen
 * base held in bf16 (LoRA): forward out = inp.W^T (ta 0, tb 1) and
 * backward dinp = dout.W (ta 0, tb 0), LM head included. Same threading
 * and scratch as train_gemm_bf16. */
void train_gemm_bf16_wb(int ta, int tb, int M, int N, int K, const float *A, int lda,
			const uint16_t *B, int ldb, float beta, float *C, int ldc);

/* The plain reference of train_gemm_bf16_wb (as train_gemm_bf16_ref, B
 * widened exactly). */
void train_gemm_bf16_wb_ref(int ta, int tb, int M, int N, int K, const float *A, int lda,
			    const uint16_t *B, int ldb, float beta, float *C, int ldc);

/* 32-bit words of scratch train_gemm_bf16_serial needs for an M x N x K
 * product (at least 1); enough for any product no larger in M, N and K. */
size_t train_gemm_bf16_scratch_words(int M, int N, int K);

/* train_gemm_bf16 on the calling thread only (no OpenMP construct: it may
 * run inside the caller's parallel region, one call per thread), packing
 * into the caller's scratch of train_gemm_bf16_scratch_words(M, N, K)
 * words. For many small products (attention's, per head and block of
 * queries). Never goes to oneDNN; the same panels and tiles as
 * train_gemm_bf16's own kernel, so the same sums as it without oneDNN. */
void train_gemm_bf16_serial(int ta, int tb, int M, int N, int K, const float *A, int lda,
			    const float *B, int ldb, float beta, float *C, int ldc,
			    uint32_t *scratch);

/* Nonzero (the default): train_gemm_bf16 uses the AVX512-BF16 tile where
 * the CPU has it; 0 forces the portable tile (tests compare the two). */
extern int train_bf16_use_simd;

/* Nonzero when the trainer should use train/vecmath_bf16.h's loops: the
 * GEMM precision is bf16 and the CPU runs AVX-512 (the bf16 tiles' check). */
int train_vecmath_on(void);

/* Name of the tile train_gemm_bf16 uses now: "avx512bf16" or "portable". */
const char *train_gemm_bf16_kernel(void);

/* The register-only vdpbf16ps throughput of this machine in GFLOP/s
 * (2 FLOPs per bf16 product), measured for about `seconds` on every OpenMP
 * thread: 12 independent 512-bit accumulator chains, no memory operands.
 * 0 when the CPU lacks AVX512-BF16. */
double train_bf16_peak_gflops(double seconds);

#endif

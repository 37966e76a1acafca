/* matvec_bf16.h: inference kernels over bfloat16 weights (generation and
 * scoring with --precision bf16).
 *
 * Weights are raw bfloat16 bit patterns (uint16_t, the upper half of a
 * float32), in the layout of train/layers.h ([OC, C], nn.Linear).
 * Activations, biases, accumulators and outputs stay float32: a bf16 value
 * widens to float32 exactly, so with the default kernels a BF16-stored model
 * computes the same products as the f32 engine on the widened weights, only
 * in another summation order.
 *
 * Kernels (train_matmul_bf16_forward picks one at run time):
 *   - decode rows (N < 16): AVX-512 tiles of 4 weight rows x up to 4 input
 *     rows that widen 16 weights at a time (zero-extend, shift left 16) and
 *     FMA them in float32; OpenMP over the weight rows. Memory-bound: reads
 *     each weight once per 4 input rows, 2 bytes a weight.
 *   - optional AVX512-BF16 dot kernel (TRAIN_BF16_KERNEL_DOT): the inputs
 *     rounded to bf16 once, then vdpbf16ps over 32 pairs at a time (inputs
 *     lose 8 bits of mantissa: see the man page for the error it adds);
 *     The same tiles serve many rows (prefill, scoring): each weight row is
 *     then read once per 4 input rows, and the tiles run near the FMA peak;
 *   - many rows on CPUs without AVX-512 (N >= 16, built with BLAS): blocks
 *     of weight rows widened to float32 in a scratch block, then
 *     cblas_sgemm (TRAIN_BF16_KERNEL_SGEMM forces it);
 *   - the plain C fallback (any CPU, any compiler): widens chunks of a
 *     weight row into a local float buffer, then 8-lane dot products.
 * train_matmul_bf16_forward_ref is the plain single-threaded reference they
 * are all tested against (tests/test_matvec_bf16.c). */
#ifndef DPO_TRAIN_MATVEC_BF16_H
#define DPO_TRAIN_MATVEC_BF16_H
#include <stddef.h>
#include <stdint.h>

/* Which kernel train_matmul_bf16_forward uses (tests and benchmarks set it;
 * not thread-safe to change while kernels run). AUTO (the default): the
 * AVX-512 widening tiles where the CPU has AVX-512 F/BW/VL (and
 * DPO_NO_AVX512BF16 is not set), else BLAS for many rows, else the plain
 * kernel. PLAIN forces the portable C kernel; WIDEN the AVX-512 widening
 * tiles; DOT the vdpbf16ps kernel; SGEMM widening + cblas_sgemm (when
 * built with BLAS), for every N. WIDEN and DOT fall back to PLAIN on CPUs
 * without the instructions, SGEMM without BLAS. */
enum { TRAIN_BF16_KERNEL_AUTO = 0, TRAIN_BF16_KERNEL_PLAIN, TRAIN_BF16_KERNEL_WIDEN,
       TRAIN_BF16_KERNEL_DOT, TRAIN_BF16_KERNEL_SGEMM };
extern int train_bf16_kernel;

/* Name of the kernel AUTO picks for N rows on this CPU ("avx512-widen",
 * "widen+sgemm", "plain"): a static string, for benchmarks and --version
 * style reports. */
const char *train_bf16_kernel_name(int N);

/* out [N, OC] = inp [N, C] . weight[OC, C]^T + bias [OC] (bias may be NULL),
 * weight in bf16. out must not alias inp. */
void train_matmul_bf16_forward(float *out, const float *inp, const uint16_t *weight,
			       const float *bias, int N, int C, int OC);
void train_matmul_bf16_forward_ref(float *out, const float *inp, const uint16_t *weight,
				   const float *bias, int N, int C, int OC);

/* Whether train_matmul_bf16_range computes what train_matmul_bf16_forward
 * would for this shape with the current train_bf16_kernel (the widening
 * and plain kernels split by output column; DOT and SGEMM do not). */
int train_matmul_bf16_splits(int N, int C, int OC);

/* Output columns [o0, o1) of train_matmul_bf16_forward (out keeps its
 * [N, OC] layout; other columns untouched), computed by the calling thread
 * alone: a team of threads inside one parallel region splits a product
 * between them without a region of its own. Each value is bit for bit the
 * one train_matmul_bf16_forward gives where train_matmul_bf16_splits. */
void train_matmul_bf16_range(float *out, const float *inp, const uint16_t *weight,
			     const float *bias, int N, int C, int OC, int o0, int o1);

/* The same range in units that threads can share out: a range's outputs
 * fall in train_matmul_bf16_range_units(o0, o1) units (0 for an empty
 * range), and train_matmul_bf16_range_unit computes unit u of them (each
 * value as train_matmul_bf16_range does, bit for bit). Running a range's
 * units in order reads the weights as train_matmul_bf16_range does. Unit u
 * covers the columns of 1 to 4 runs, which train_matmul_bf16_unit_runs
 * writes to start[]/len[] (returning their number). */
int train_matmul_bf16_range_units(int o0, int o1);
int train_matmul_bf16_unit_runs(int o0, int o1, int u, int start[4], int len[4]);
void train_matmul_bf16_range_unit(float *out, const float *inp, const uint16_t *weight,
				  const float *bias, int N, int C, int OC, int o0, int o1, int u);

/* train_embedding_forward over bf16 tables: out [B, T, C] =
 * wte[ids[b,t]] + wpe[pos(b,t)] (wpe may be NULL), widened to float32. */
void train_embedding_bf16_forward(float *out, const int *ids, const uint16_t *wte,
				  const uint16_t *wpe, const int *pos0, int B, int T, int C);

/* train_logprob_forward with a bf16 LM head wlm [V, C]: logp [N] of the
 * targets (-1: 0), lse [N] (may be NULL), in vocabulary chunks of
 * TRAIN_LOGPROB_CHUNK through train_matmul_bf16_forward. */
void train_logprob_bf16_forward(float *logp, float *lse, const float *h, const uint16_t *wlm,
				const int *targets, int N, int C, int V);

#endif

/* layers_backward.h: the backward halves of the kernels of train/layers.h,
 * llm.c style, for the DPO trainer.
 *
 * Conventions (in addition to those of layers.h):
 *   - every backward kernel ACCUMULATES (+=) into its gradient outputs, both
 *     parameter gradients (dweight, dbias, ...) and input gradients (dinp);
 *     the caller zeroes them once per step. Residual branches therefore need
 *     no copies, and gradient accumulation over micro-batches is free;
 *   - a gradient output given as NULL is not computed (e.g. frozen weights);
 *   - inputs are the forward's inputs and saved outputs (mean, rstd, lse),
 *     never modified; gradient outputs must not alias any input;
 *   - train_X_backward is the optimized kernel (OpenMP on outer loops,
 *     cblas_sgemm when HAVE_BLAS), train_X_backward_ref the plain
 *     single-threaded reference; tests/test_layers_grad.c checks both
 *     against finite differences and against each other.
 * Only train_attention_backward and train_logprob_backward allocate
 * (scratch freed before they return); none can fail. */
#ifndef DPO_TRAIN_LAYERS_BACKWARD_H
#define DPO_TRAIN_LAYERS_BACKWARD_H
#include <stddef.h>

/* Row-major single-precision GEMM, C[M,N] = op(A)[M,K] . op(B)[K,N] + beta C,
 * with op(X) = X or X^T (ta, tb nonzero: transposed; lda/ldb/ldc are the
 * row strides of A, B, C as stored). The work is split across the OpenMP
 * threads by blocks of rows or columns of C, each block computed by one
 * cblas_sgemm call (HAVE_BLAS) or a plain loop; OpenBLAS's own threads are
 * not used (see train_gemm_init), so OpenMP and BLAS never compete for
 * cores. Used by the backward kernels and the trainer's forward. After
 * train_gemm_set_precision(TRAIN_PREC_BF16) (train/matmul_bf16.h) every
 * call runs as train_gemm_bf16 instead, and the Linear products of the
 * trainer (train_matmul_backward, the logits) take this path at any size. */
void train_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
		int ldb, float beta, float *C, int ldc);

/* Make OpenBLAS single-threaded for this process (train_gemm does the
 * threading). Called by train_engine_new; harmless without BLAS. */
void train_gemm_init(void);

/* Embedding: dwte[ids[b,t], :] += dout[b,t,:]; dwpe[pos(b,t), :] += dout[b,t,:]
 * (dwpe may be NULL: no learned positions). dout [B, T, C]. */
void train_embedding_backward(float *dwte, float *dwpe, const float *dout, const int *ids,
			      const int *pos0, int B, int T, int C);
void train_embedding_backward_ref(float *dwte, float *dwpe, const float *dout, const int *ids,
				  const int *pos0, int B, int T, int C);

/* LayerNorm: given dout [N, C], the input inp [N, C], weight [C] and the
 * saved mean/rstd [N], accumulate dinp [N, C], dweight [C], dbias [C]. */
void train_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
			      const float *inp, const float *weight, const float *mean,
			      const float *rstd, int N, int C);
void train_layernorm_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
				  const float *inp, const float *weight, const float *mean,
				  const float *rstd, int N, int C);

/* RMSNorm: given dout [N, C], inp [N, C], weight [C], saved rstd [N],
 * accumulate dinp [N, C] and dweight [C]. Also serves Qwen3's q/k norm
 * (N = rows*heads, C = head_dim). */
void train_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
			    const float *weight, const float *rstd, int N, int C);
void train_rmsnorm_backward_ref(float *dinp, float *dweight, const float *dout, const float *inp,
				const float *weight, const float *rstd, int N, int C);

/* Matmul out [N, OC] = inp [N, C] · weight [OC, C]^T + bias:
 *   dinp [N, C] += dout · weight;  dweight [OC, C] += dout^T · inp;
 *   dbias [OC] += column sums of dout. */
void train_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
			   const float *inp, const float *weight, int N, int C, int OC);
void train_matmul_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
			       const float *inp, const float *weight, int N, int C, int OC);

/* QKV split: dqkv [N, (NH+2*NKV)*hd] += the concatenation of dq, dk, dv rows. */
void train_qkv_split_backward(float *dqkv, const float *dq, const float *dk, const float *dv,
			      int N, int NH, int NKV, int hd);

/* RoPE: dinp [B, T, H, hd] += rotation of dout [B, T, H, hd] by -angle. */
void train_rope_backward(float *dinp, const float *dout, const float *cos_tab,
			 const float *sin_tab, const int *pos0, int B, int T, int H, int hd);
void train_rope_backward_ref(float *dinp, const float *dout, const float *cos_tab,
			     const float *sin_tab, const int *pos0, int B, int T, int H, int hd);

/* Causal GQA attention (shapes as train_attention_forward): given dout
 * [B, T, NH, hd], the inputs q, k, v, the forward output out and the saved
 * lse [B, NH, T], accumulate dq [B, T, NH, hd], dk, dv [B, S, NKV, hd].
 * Probabilities are recomputed as exp(q·k*scale - lse); with
 * D_t = dout_t · out_t: dv_s += P_ts dout_t, dS_ts = P_ts (dout_t·v_s - D_t),
 * dq_t += scale sum_s dS_ts k_s, dk_s += scale dS_ts q_t.
 * Threads split the work by (batch row, KV head). */
void train_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
			      const float *k, const float *v, const float *out, const float *lse,
			      const int *pos0, int B, int T, int S, int NH, int NKV, int hd);
void train_attention_backward_ref(float *dq, float *dk, float *dv, const float *dout,
				  const float *q, const float *k, const float *v, const float *out,
				  const float *lse, const int *pos0, int B, int T, int S, int NH,
				  int NKV, int hd);

/* GELU (tanh form): dinp [n] += dout * gelu'(inp). */
void train_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
void train_gelu_backward_ref(float *dinp, const float *inp, const float *dout, size_t n);

/* GELU forward (same function as train_gelu_forward) with tanh computed
 * from one expf: within ~1e-7 of it and several times faster; the trainer's
 * forward uses it, tests/test_layers_grad.c checks it. */
void train_gelu_forward_fast(float *out, const float *inp, size_t n);

/* SwiGLU: inp [N, 2I] (gate | up), dout [N, I]; dinp [N, 2I] +=
 * (dout * up * silu'(gate) | dout * silu(gate)). */
void train_swiglu_backward(float *dinp, const float *inp, const float *dout, int N, int I);
void train_swiglu_backward_ref(float *dinp, const float *inp, const float *dout, int N, int I);

/* Residual out = a + b: da += dout, db += dout (either may be NULL). */
void train_residual_backward(float *da, float *db, const float *dout, size_t n);

/* Per-token log-prob of targets (train_logprob_forward): given dlogp [N],
 * h [N, C], wlm [V, C], targets [N] (-1: no target, row skipped) and the
 * saved lse [N], accumulate dh [N, C] and dwlm [V, C] (either may be NULL):
 *   dlogits[n, v] = dlogp[n] * (1[v == target] - exp(h[n]·wlm[v] - lse[n]))
 *   dh += dlogits · wlm;  dwlm += dlogits^T · h
 * Logits are recomputed TRAIN_LOGPROB_CHUNK vocabulary columns at a time,
 * so no [N, V] buffer exists; scratch is N x chunk floats. Rows whose
 * dlogp is 0 or whose target is -1 cost nothing when the caller leaves them
 * out; the kernel still computes them (compact rows for speed). */
void train_logprob_backward(float *dh, float *dwlm, const float *dlogp, const float *h,
			    const float *wlm, const int *targets, const float *lse, int N, int C,
			    int V);
/* The same when the forward kept the logits: logits [N, V] (row n for h[n],
 * as h[n]·wlm^T) are overwritten with dlogits, then dh += dlogits · wlm and
 * dwlm += dlogits^T · h, with no recomputation (the trainer keeps them when
 * N x V floats fit its budget). */
void train_logprob_backward_logits(float *dh, float *dwlm, const float *dlogp, const float *h,
				   const float *wlm, const int *targets, const float *lse,
				   float *logits, int N, int C, int V);

void train_logprob_backward_ref(float *dh, float *dwlm, const float *dlogp, const float *h,
				const float *wlm, const int *targets, const float *lse, int N,
				int C, int V);

#endif

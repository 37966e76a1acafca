/* attention_bf16.h: training attention with its products in bf16
 * (--precision bf16).
 *
 * The same function, saved lse and gradients as train_attention_forward /
 * train_attention_backward (train/layers.h, train/layers_backward.h) for
 * training (no pos0, S == T), computed per head on blocks of
 * TRAIN_ATTN_BF16_QB queries. Its matrix products (the scores Q.K^T and
 * P.V forward; Q.K^T again, dO.V^T, dS.K, dS^T.Q and P^T.dO backward) go
 * through train_gemm_bf16_serial: operands rounded to bf16 while packed,
 * float32 sums. The scale, the causal mask, the softmax, lse and
 * D = rowsum(dO * O) stay float32 (exp by train/vecmath_bf16.h's loops). Threads split (batch row, head) forward
 * and (batch row, KV head) backward, as the float32 kernels do; each thread
 * owns its scratch (freed before return).
 *
 * Error: each product perturbs its output by a relative ~u sqrt(2/3)
 * (u = 2^-9, see tests/test_trainer_bf16.c); tests/test_attention_bf16.c
 * checks the outputs and gradients against the float32 reference within
 * the tolerance derived there. */
#ifndef DPO_TRAIN_ATTENTION_BF16_H
#define DPO_TRAIN_ATTENTION_BF16_H

/* Nonzero (the default): the trainer runs attention through these
 * functions when train_gemm runs in bf16; 0: through the float32 ones
 * (benchmarks compare the two in one process). */
extern int train_attention_bf16_on;

/* queries per block */
#define TRAIN_ATTN_BF16_QB 64

/* out [B, T, NH, hd], lse [B, NH, T] (not NULL) from q [B, T, NH, hd] and
 * k, v [B, T, NKV, hd]: causal softmax(q.k^T / sqrt(hd)).v per head, as
 * train_attention_forward with pos0 NULL and S = T. */
void train_attention_forward_bf16(float *out, float *lse, const float *q, const float *k,
				  const float *v, int B, int T, int NH, int NKV, int hd);

/* Accumulate dq [B, T, NH, hd], dk, dv [B, T, NKV, hd] (+=) from dout and
 * the forward's q, k, v, out and lse, as train_attention_backward with
 * pos0 NULL and S = T. */
void train_attention_backward_bf16(float *dq, float *dk, float *dv, const float *dout,
				   const float *q, const float *k, const float *v, const float *out,
				   const float *lse, int B, int T, int NH, int NKV, int hd);

#endif

/* layers.h: the forward kernels of the model engine, llm.c style.
 *
 * One set of layer kernels serves inference (dpo-model, dpo-generate) and
 * training (dpo-train, whose backward halves live in train/layers_backward.c).
 * Conventions:
 *   - every tensor is float32, contiguous, row-major; shapes are written in
 *     brackets, e.g. [B, T, C]; N is always B*T (rows of the activation);
 *   - weights use the Hugging Face nn.Linear layout [OC, C] (out, in); GPT-2's
 *     Conv1D [in, out] tensors are transposed once at load time and back at
 *     save time, so every architecture runs the same kernels;
 *   - out may alias inp only where a comment says so;
 *   - "saved" outputs (mean, rstd, lse) are what the backward kernel needs;
 *     they may be NULL when only inference is wanted;
 *   - train_X_forward is the optimized kernel (OpenMP on outer loops, and
 *     cblas_sgemm for big matmuls when HAVE_BLAS); train_X_forward_ref is the
 *     plain single-threaded reference it is tested against
 *     (tests/test_layers.c). Both compute the same function.
 * None of these functions can fail. Only train_attention_forward (a score
 * row per thread) and train_logprob_forward (a logits chunk) allocate
 * scratch memory, freed before they return. */
#ifndef DPO_TRAIN_LAYERS_H
#define DPO_TRAIN_LAYERS_H
#include <stddef.h>

/* Token embedding plus, for GPT-2, learned absolute positions.
 *   out [B, T, C] = wte[ids[b,t], :] + wpe[pos(b,t), :]
 *   ids [B, T] token ids (each in [0, V) — the caller checks);
 *   wte [V, C]; wpe [maxT, C] or NULL (RoPE models have no wpe);
 *   pos0 [B] or NULL: row b's first position (pos(b,t) = pos0[b] + t, or t
 *   when pos0 is NULL). The caller guarantees pos(b,t) < maxT.
 * Backward: dwte[ids] += dout, dwpe[pos] += dout. */
void train_embedding_forward(float *out, const int *ids, const float *wte, const float *wpe,
			     const int *pos0, int B, int T, int C);
void train_embedding_forward_ref(float *out, const int *ids, const float *wte, const float *wpe,
				 const int *pos0, int B, int T, int C);

/* LayerNorm over the last dimension (GPT-2).
 *   out [N, C] = (inp - mean) * rstd * weight + bias
 *   mean [N], rstd [N]: saved for backward (either may be NULL);
 *   rstd = 1 / sqrt(var + eps), var the biased variance; bias may be NULL.
 * out may alias inp. */
void train_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
			     const float *weight, const float *bias, int N, int C, float eps);
void train_layernorm_forward_ref(float *out, float *mean, float *rstd, const float *inp,
				 const float *weight, const float *bias, int N, int C, float eps);

/* RMSNorm over the last dimension (Llama, Mistral, Qwen2, Qwen3).
 *   out [N, C] = inp * rstd * weight,  rstd [N] = 1 / sqrt(mean(inp^2) + eps)
 *   rstd may be NULL. out may alias inp.
 * Qwen3's per-head q_norm/k_norm is this kernel with N = B*T*heads and
 * C = head_dim over a [B, T, heads, head_dim] tensor. */
void train_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight,
			   int N, int C, float eps);
void train_rmsnorm_forward_ref(float *out, float *rstd, const float *inp, const float *weight,
			       int N, int C, float eps);

/* Nonzero (the default): train_matmul_forward calls cblas_sgemm when built
 * with HAVE_BLAS for big products of at least 16 rows (decoding batches of
 * a few rows use the plain kernel, which reads each weight row once per 4
 * input rows). Benchmarks and tests set 0 to time/test the plain
 * kernel. Not thread-safe to change while kernels run. */
extern int train_layers_use_blas;
/* Nonzero (the default): the plain kernel uses its AVX2+FMA variant on
 * x86-64 CPUs that have both (checked at run time); tests set 0 to compare
 * the two. Not thread-safe to change while kernels run. */
extern int train_layers_use_simd;

/* Use n compute threads (n > 0) for OpenMP and, when built with BLAS, for
 * OpenBLAS; n <= 0 leaves the defaults (all cores). */
void train_set_threads(int n);

/* Matrix multiply with optional bias, HF Linear layout.
 *   out [N, OC] = inp [N, C] · weight[OC, C]^T + bias [OC]   (bias may be NULL)
 * out must not alias inp or weight. */
void train_matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
			  int N, int C, int OC);
void train_matmul_forward_ref(float *out, const float *inp, const float *weight,
			      const float *bias, int N, int C, int OC);

/* Split a fused projection output into separate contiguous q, k, v.
 *   qkv [N, (NH + 2*NKV) * hd]: per row q (NH*hd), then k (NKV*hd), then v;
 *   q [N, NH*hd], k [N, NKV*hd], v [N, NKV*hd].
 * Backward: gather dq, dk, dv back into dqkv in the same places. */
void train_qkv_split_forward(float *q, float *k, float *v, const float *qkv, int N, int NH,
			     int NKV, int hd);

/* RoPE tables, HF "default" rope type, rotate-half layout:
 *   inv_freq[i] = theta^(-2i/hd), i in [0, hd/2), as a float32 value
 *   (transformers computes it in float32), then rounded to bfloat16
 *   (inv_freq_dtype 1) or float16 (2) when the model runs in that dtype:
 *   transformers casts the inv_freq buffer with the model, so a BF16
 *   checkpoint really uses the rounded frequencies (0: keep float32);
 *   cos_tab[p, i] = cos(p * inv_freq[i]), sin_tab likewise; both [maxT, hd/2].
 * Angles computed in double, stored as float. */
void train_rope_tables(float *cos_tab, float *sin_tab, int maxT, int hd, double theta,
		       int inv_freq_dtype);

/* x rounded to the nearest float32 value, then to bfloat16 (dtype 1) or
 * float16 (2), ties to even (the float16 branch assumes |x| <= 1); dtype 0:
 * x unchanged. */
double train_round_dtype(double x, int dtype);

/* RoPE tables from explicit inverse frequencies inv_freq [hd/2] (for scaled
 * variants such as Llama 3's): cos_tab[p, i] = cos(p * inv_freq[i]) etc. */
void train_rope_tables_freq(float *cos_tab, float *sin_tab, int maxT, int hd,
			    const double *inv_freq);

/* Rotary position embedding, rotate-half (HF) layout, for one [B, T, H, hd]
 * tensor (queries with H = NH, or keys with H = NKV). For each head vector x
 * at position p = pos0[b] + t (t when pos0 is NULL), with h = hd/2:
 *   out[i]     = x[i] * cos[p,i] - x[i+h] * sin[p,i]
 *   out[i + h] = x[i+h] * cos[p,i] + x[i] * sin[p,i]      for i in [0, h)
 * out may alias inp. Backward is the same rotation by -angle (needs only the
 * tables): din[i] = dout[i]*cos + dout[i+h]*sin, din[i+h] = dout[i+h]*cos - dout[i]*sin. */
void train_rope_forward(float *out, const float *inp, const float *cos_tab, const float *sin_tab,
			const int *pos0, int B, int T, int H, int hd);
void train_rope_forward_ref(float *out, const float *inp, const float *cos_tab,
			    const float *sin_tab, const int *pos0, int B, int T, int H, int hd);

/* Causal multi-head attention with grouped-query heads (GQA).
 *   q   [B, T, NH, hd]   queries (already normed/rotated);
 *   k,v [B, S, NKV, hd]  keys/values, batch stride S*NKV*hd (S >= pos0[b]+T:
 *                        S = T in training, the cache capacity when decoding);
 *   out [B, T, NH, hd]   softmax(q·k^T / sqrt(hd)) · v per head;
 *   lse [B, NH, T]       saved: log-sum-exp of each row of scaled scores,
 *                        so backward recomputes P = exp(q·k*scale - lse)
 *                        without storing [T, T] probabilities (may be NULL);
 *   pos0 [B] or NULL: query t of row b is at position pos0[b] + t and attends
 *                        to key positions 0 .. pos0[b] + t inclusive.
 * Query head h reads KV head h / (NH / NKV); NH must be a multiple of NKV.
 * out must not alias q, k or v. */
void train_attention_forward(float *out, float *lse, const float *q, const float *k,
			     const float *v, const int *pos0, int B, int T, int S, int NH, int NKV,
			     int hd);
void train_attention_forward_ref(float *out, float *lse, const float *q, const float *k,
				 const float *v, const int *pos0, int B, int T, int S, int NH,
				 int NKV, int hd);
/* One query vector q [hd] of train_attention_forward against keys and
 * values 0..last (k and v point at one head's first row, rows kstride
 * floats apart): out [hd], computed exactly as there. att is scratch of at
 * least last + 1 floats. */
void train_attention_row(float *out, const float *q, const float *k, const float *v, int last,
			 int kstride, int hd, float *att);

/* Serial forms (no OpenMP region: for callers inside one) computing exactly
 * what the parallel functions do: N rows of train_layernorm_forward (layer
 * set; b may be NULL) or of train_rmsnorm_forward (layer 0), without mean
 * or rstd; one head vector of train_rope_forward at position pos (out may
 * alias inp); train_gelu_forward; train_swiglu_forward. */
void train_norm_rows_serial(float *out, const float *inp, const float *w, const float *b, int N,
			    int C, float eps, int layer);
void train_rope_vec_serial(float *out, const float *inp, const float *cos_tab,
			   const float *sin_tab, int pos, int hd);
void train_gelu_forward_serial(float *out, const float *inp, size_t n);
void train_swiglu_forward_serial(float *out, const float *inp, int N, int H);

/* GELU, GPT-2's "gelu_new" tanh approximation, elementwise over n values:
 *   out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
 * out may alias inp. */
void train_gelu_forward(float *out, const float *inp, size_t n);
void train_gelu_forward_ref(float *out, const float *inp, size_t n);

/* SwiGLU gate (Llama/Qwen MLP) over a fused gate/up projection:
 *   inp [N, 2*H]: per row gate (H values) then up (H values), H = intermediate size;
 *   out [N, H] = silu(gate) * up, silu(x) = x / (1 + exp(-x)).
 * out must not alias inp. */
void train_swiglu_forward(float *out, const float *inp, int N, int H);
void train_swiglu_forward_ref(float *out, const float *inp, int N, int H);

/* Residual add: out [n] = a + b. out may alias a or b. */
void train_residual_forward(float *out, const float *a, const float *b, size_t n);
void train_residual_forward_ref(float *out, const float *a, const float *b, size_t n);

/* Vocabulary chunk used by train_logprob_forward (columns of logits computed
 * at once); backward should recompute logits in chunks of the same size. */
#define TRAIN_LOGPROB_CHUNK 4096

/* Per-token log-probability of a target token, computed in vocabulary
 * chunks so that no [N, V] logits buffer exists (151k-token vocabularies).
 *   h [N, C]       final hidden states (after the final norm);
 *   wlm [V, C]     LM head (== wte when tied);
 *   targets [N]    target ids, or -1 for "no target" (logp[n] = 0);
 *   logp [N]       log softmax(h[n]·wlm^T)[targets[n]];
 *   lse [N]        saved: log-sum-exp of row n's logits (may be NULL).
 * Backward: dlogits[n, v] = dlogp[n] * (1[v == target] - exp(logit[n,v] - lse[n])),
 * with logits recomputed chunk by chunk from h and wlm.
 * Allocates a scratch block of N * TRAIN_LOGPROB_CHUNK floats per call. */
void train_logprob_forward(float *logp, float *lse, const float *h, const float *wlm,
			   const int *targets, int N, int C, int V);
void train_logprob_forward_ref(float *logp, float *lse, const float *h, const float *wlm,
			       const int *targets, int N, int C, int V);

#endif

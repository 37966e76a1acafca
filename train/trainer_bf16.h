/* trainer_bf16.h: the trainer's products over a frozen base held in bf16.
 *
 * LoRA training with --precision bf16 loads the base with
 * train_model_load_prec (or converts it with train_model_to_bf16): its
 * matrices exist only in bfloat16 (train/model_bf16.h) and no float32 copy
 * of them is kept. The base is frozen, so of the three products of a
 * Linear layer only two run: forward out = inp.W^T and backward
 * dinp = dout.W (no dW). Both go through train_gemm_bf16_wb, which packs
 * the bf16 weight as it is: the same panels, and so the same sums, as
 * train_gemm_bf16 on a float32 weight holding those values. Activations,
 * accumulators and gradients stay float32.
 * Used by trainer.c only. */
#ifndef DPO_TRAIN_TRAINER_BF16_H
#define DPO_TRAIN_TRAINER_BF16_H
#include <stddef.h>
#include <stdint.h>

/* A weight matrix of the trainer: float32 (f) or bf16 (h); the other is NULL. */
typedef struct train_wmat {
	const float *f;
	const uint16_t *h;
} train_wmat;

/* The matrix starting off elements into f or h (whichever is not NULL). */
static inline train_wmat train_wmat_at(const float *f, const uint16_t *h, size_t off)
{
	train_wmat w = {f ? f + off : NULL, h ? h + off : NULL};
	return w;
}

/* out [N, OC] = inp [N, C] . w^T + bias (bias [OC] may be NULL), w [OC, C]
 * bf16. */
void train_linear_bf16w_forward(float *out, const float *inp, const uint16_t *w,
				const float *bias, int N, int C, int OC);

/* dinp [N, C] += dout [N, OC] . w, w [OC, C] bf16 (the input gradient of
 * train_linear_bf16w_forward; a frozen weight gets none). */
void train_linear_bf16w_backward(float *dinp, const float *dout, const uint16_t *w, int N, int C,
				 int OC);

/* train_logprob_backward (train/layers_backward.h) for a frozen bf16 LM
 * head wlm [V, C]: dh [N, C] += dlogits . wlm, dlogits[n, v] = dlogp[n]
 * (1[v == targets[n]] - exp(logit - lse[n])). With logits [N, V] (the
 * forward's, kept) they are overwritten with dlogits; with logits NULL they
 * are recomputed TRAIN_LOGPROB_CHUNK columns at a time (scratch N x chunk,
 * freed before return). */
void train_logprob_bf16w_backward(float *dh, const float *dlogp, const float *h,
				  const uint16_t *wlm, const int *targets, const float *lse,
				  float *logits, int N, int C, int V);

#endif

/* decode_bf16.h: one decode step (one new token per batch row, with the KV
 * cache) of a model held in bf16, run as a single OpenMP parallel region.
 *
 * The layer-by-layer path (model.c: block_forward) opens a parallel region
 * for every matrix product, about 50 per GPT-2-124M step, each a fork and a
 * join of the team. Here the team is formed once per step. Every product's
 * output columns, and the attention's (row, KV head) pairs, are cut into
 * units (train_matmul_bf16_range_units) over even shares, one a thread;
 * each thread runs its own share's units and then takes over the last
 * units of a slower thread's share (train_decode_bf16_claim). Each thread
 * keeps its own copy of the residual stream and of the norms' outputs (a
 * few KiB, recomputed by every thread instead of shared), so the only
 * barriers left are the ones the data needs: after the QKV product, the
 * attention, the output projection, the MLP up-projection (plus one for
 * SwiGLU, whose halves come from two threads' units) and the
 * down-projection: 5 or 6 per layer, and one at the start of the step (once
 * every thread has set its slots of the claims).
 *
 * Every value is computed by the same functions, in the same order, as the
 * layer-by-layer path: the logits and the cache are bit for bit the same
 * (tests/test_decode_bf16.c), so a row's tokens do not depend on the batch
 * it is decoded in, nor on the path. Used by model.c (train_model_decode)
 * for bf16 models without a LoRA adapter when train_decode_bf16_usable. */
#ifndef DPO_TRAIN_DECODE_BF16_H
#define DPO_TRAIN_DECODE_BF16_H
#include "train/model.h"

struct train_bf16w;

/* What one step reads and writes (all owned by the caller). */
typedef struct train_decode_bf16 {
	const train_config *c;
	const train_weights *w;          /* the 1-D float32 parameters */
	const struct train_bf16w *h;     /* the bf16 matrices */
	const float *rope_cos, *rope_sin; /* rotary tables, NULL for none */
	float *kc, *vc;                  /* the cache, [L, kv_rows, cap, NKV * hd] */
	int kv_rows, cap;
	const int *rows;                 /* [nb] cache row of each batch row */
	const int *pos;                  /* [nb] position of each row's new token */
	int nb;
} train_decode_bf16;

/* 0 (the default): train_model_decode takes this path where it can; 1:
 * never (tests and benchmarks compare the two; not thread-safe to change
 * while a decode runs). */
extern int train_decode_bf16_off;

/* How the threads share out the products and the attention of a step
 * (tests compare them; not thread-safe to change while a decode runs).
 * TRAIN_DECODE_CLAIM_STEAL (0, the default): each thread runs the units of
 * its own share in order, then takes the last units left in the others'.
 * OWN: its own share only (the static split). OTHERS_FIRST: the others'
 * units first, from their ends, then its own (every thread runs units of
 * other shares). The logits are the same in each. */
enum { TRAIN_DECODE_CLAIM_STEAL = 0, TRAIN_DECODE_CLAIM_OWN, TRAIN_DECODE_CLAIM_OTHERS_FIRST };
extern int train_decode_bf16_claim;

/* Whether the single-region step can run nb rows of a model of config c
 * with the current bf16 kernel (train_matmul_bf16_splits for every product)
 * and train_decode_bf16_off is 0. */
int train_decode_bf16_usable(const train_config *c, int nb);

/* The step: x [nb, C] the embedded new tokens (read only); writes each
 * row's keys and values at its position in the cache and the logits
 * [nb, V]. Does not advance any cache length. */
void train_decode_bf16_step(const train_decode_bf16 *d, const float *x, float *logits);

#endif

/* model_bf16.h: a model's weights held in bfloat16 for inference
 * (--precision bf16 on dpo-model, dpo-generate, dpo-eval).
 *
 * The matrices (every 2-D parameter: embeddings, projections, LM head) live
 * in one bf16 arena, 2 bytes a weight; the 1-D parameters (norm weights and
 * biases, a small share of the bytes) stay float32 in a second arena, so the
 * norms run exactly as in the f32 engine. Each parameter keeps its order and
 * contiguity, so the train_weights pointers of the f32 layout map one to one
 * (train_weights fields for matrices are NULL; train_bf16w has them).
 * A BF16-stored checkpoint is held bit for bit; F32 (or F16) weights are
 * rounded to the nearest bf16 (ties to even) once, at load.
 * Used by model.c only; see train_model_load_prec in model.h. */
#ifndef DPO_TRAIN_MODEL_BF16_H
#define DPO_TRAIN_MODEL_BF16_H
#include <stddef.h>
#include <stdint.h>

#include "train/model.h"
#include "train/safetensors.h"

/* The bf16 matrices (same shapes as the train_weights fields; NULL where
 * the architecture has none; lm_head == wte when tied). */
typedef struct train_bf16w {
	uint16_t *wte, *wpe, *wqkv, *wo, *wfc, *wproj, *lm_head;
} train_bf16w;

typedef struct train_bf16 train_bf16;

/* Storage for the parameters of table tab[n] (whose offsets index the f32
 * layout at probe, an allocation of train_weights_layout(c) floats that is
 * only used for pointer arithmetic, never read or written). Fills *w with
 * float32 pointers for the 1-D parameters and NULL for the matrices.
 * Returns the storage (zeroed; caller frees with train_bf16_free). */
train_bf16 *train_bf16_new(const train_config *c, const float *probe, const train_param *tab,
			   int n, train_weights *w);
void train_bf16_free(train_bf16 *b);

/* The bf16 matrix pointers (owned by b). */
const train_bf16w *train_bf16_weights(const train_bf16 *b);

/* Bytes of parameter storage held (both arenas). */
size_t train_bf16_bytes(const train_bf16 *b);

/* Arena i of b (0: the bf16 matrices, 1: the float32 1-D parameters) and
 * its size in bytes in *bytes; NULL (and 0) for any other i. Owned by b. */
void *train_bf16_arena(train_bf16 *b, int i, size_t *bytes);

/* Fill parameter p (an entry of the table given to train_bf16_new) from
 * float32 values src (p->numel of them, in the arena's layout, i.e. already
 * transposed where p->transposed): 1-D parameters copied, matrices rounded
 * to bf16. */
void train_bf16_set(train_bf16 *b, const train_param *p, const float *src);

/* Load parameter p from tensor t of safetensors file f (HF layout; GPT-2
 * Conv1D tensors transposed): BF16 copied exactly, other dtypes converted
 * through float32. Returns 0 or TRAIN_EUNSUP with *err (caller frees)
 * naming the tensor and dtype. */
int train_bf16_load(train_bf16 *b, const train_st_file *f, const train_st_tensor *t,
		    const train_param *p, char **err);

/* Widen parameter p back to float32 into dst (p->numel floats, the arena's
 * layout). */
void train_bf16_get(const train_bf16 *b, const train_param *p, float *dst);

#endif

/* trainer.h: model-level DPO training over the model engine (model.h):
 * forward with saved activations, summed completion log-probs, backward
 * through every layer into a gradient arena laid out like the parameters,
 * and the AdamW update with global-norm clipping.
 *
 * A batch of n pairs is run as 2n sequences (the chosen completions, then
 * the rejected ones), each prompt + completion, right-padded to the longest.
 * Position t of a sequence predicts token t+1; only completion tokens are
 * scored (prompt and padding have no target), so padding never changes a
 * real token's log-prob (attention is causal).
 *
 * Memory: the activation arena is sized for the largest batch seen
 * (2n x T rows); backward keeps only one layer's activation gradients at a
 * time (no gradient arena for activations), and the vocabulary projection
 * is recomputed in chunks (train_logprob_backward). */
#ifndef DPO_TRAIN_TRAINER_H
#define DPO_TRAIN_TRAINER_H
#include <stddef.h>
#include <stdint.h>
#include "train/loss.h"
#include "train/model.h"
#include "train/optim.h"

/* A tokenized preference pair. The id arrays are owned by whoever built
 * the pair (train_pair_free frees those made by the trainer's readers). */
typedef struct train_pair {
	int *prompt, *chosen, *rejected;
	int np, nc, nr;          /* token counts */
	double ref_c, ref_r;     /* reference summed log-probs (filled by the reference pass) */
	int64_t prompt_id, chosen_id, rejected_id; /* store ids (0 when not from the store) */
	int truncated;           /* shortened by --max-length / --max-prompt-length */
} train_pair;

/* Free the arrays of a pair (not the pair itself). NULL allowed. */
void train_pair_free(train_pair *p);

typedef struct train_engine train_engine;

/* A training engine over model m (borrowed: the caller keeps it alive and
 * frees it after the engine). Allocates the gradient and AdamW moment
 * arenas (3 x the parameters). m must hold float32 weights (the master
 * weights; not train_model_to_bf16's). Never NULL. */
train_engine *train_engine_new(train_model *m);
/* A LoRA engine (train/lora.h) over model m: the base weights are frozen
 * (no gradient or moment arenas for them, no weight gradients computed),
 * the adapter lo (borrowed) is added to every forward and only its A/B
 * train: train_engine_grads, moments, step and the norm are the adapter's
 * (train_engine_nparams floats). lo NULL: a forward-only engine
 * (train_engine_logps of the frozen model; no accumulate or step).
 * m may be held in bf16 (train_model_load_prec, train_model_to_bf16): its
 * products then read the bf16 matrices (train/trainer_bf16.h), in bf16
 * whatever train_gemm's precision. */
struct train_lora;
train_engine *train_engine_new_lora(train_model *m, struct train_lora *lo);
/* Floats of the trained parameters (of the gradient and moment arenas):
 * the model's, or the adapter's in LoRA mode. */
size_t train_engine_nparams(const train_engine *e);
/* Free the engine (NULL allowed); the model is untouched. */
void train_engine_free(train_engine *e);

/* The message of the last error ("" if none). Owned by the engine. */
const char *train_engine_errmsg(const train_engine *e);

/* Summed completion log-probs of pairs[0..n) under the model (forward only):
 * lc[i], lr[i] for chosen and rejected; tokens scored into nc[i], nr[i]
 * (either may be NULL). Returns 0, or a negative TRAIN_E* code (message in
 * train_engine_errmsg) for an id out of range or a sequence longer than
 * the model's max_position_embeddings. */
int train_engine_logps(train_engine *e, const train_pair *const *pairs, int n, double *lc,
		       double *lr, long *nc, long *nr);

/* One micro-batch: forward, loss (cfg; ref log-probs from the pairs),
 * backward, gradients ACCUMULATED into the gradient arena with the loss
 * scaled by `scale` (1/grad_accum). The batch metrics (unscaled loss,
 * rewards, log-probs) go to *out (its input/derivative pointers are
 * ignored). Returns 0 or a negative code (message in errmsg). */
int train_engine_accumulate(train_engine *e, const train_loss_cfg *cfg,
			    const train_pair *const *pairs, int n, double scale,
			    train_loss_batch *out);

/* The loss of a batch split over processes (data parallelism,
 * trainer_mpi.h): called by train_engine_accumulate in place of
 * train_loss_compute, with b holding this process's n pairs (pc, pr, rc,
 * rr, nc, nr; n may be 0). It fills b's loss and metrics for the whole
 * batch and dpc/dpr for this process's pairs. Returns 0 or -1. */
typedef int (*train_loss_fn)(void *ud, const train_loss_cfg *cfg, train_loss_batch *b);

/* Use fn (with ud) for the loss of every train_engine_accumulate; NULL:
 * train_loss_compute on the micro-batch alone (one process). With fn set,
 * accumulate also takes n == 0 (no forward or backward, fn only). */
void train_engine_set_loss_fn(train_engine *e, train_loss_fn fn, void *ud);

/* Told during backward as parts of the gradient arena get their final
 * values for the micro-batch (for starting their sum over processes while
 * backward goes on): stage n_layer once the final norm (and an untied
 * lm_head) are done, stage l after block l (n_layer-1 down to 0), stage -1
 * after the embeddings (tied lm_head included). */
typedef void (*train_grad_ready_fn)(void *ud, int stage);

/* Call fn (with ud) at those points of every backward; NULL: never. */
void train_engine_set_grad_ready(train_engine *e, train_grad_ready_fn fn, void *ud);

/* Memory (MiB) allowed for keeping the vocabulary logits of the scored rows
 * from forward to backward (default 256); when a batch needs more, or with
 * 0, backward recomputes them in chunks and no [rows x V] buffer exists. */
void train_engine_set_logits_budget(train_engine *e, double mb);

/* Activation (gradient) checkpointing on (nonzero) or off (the default):
 * when on, forward keeps only each block's input and one layer's
 * activations, and backward recomputes each block before its backward
 * (one more forward per step; the gradients are bit-identical). */
void train_engine_set_checkpointing(train_engine *e, int on);

/* Floats held for activations (the arena and, with checkpointing, the
 * block outputs), as sized by the largest batch so far. */
size_t train_engine_activation_floats(const train_engine *e);

/* Zero the gradient arena. */
void train_engine_zero_grad(train_engine *e);

/* The gradient arena (train_model_nparams floats, same layout as the
 * parameters; owned by the engine). */
float *train_engine_grads(train_engine *e);

/* The global L2 norm of the gradient arena (in double). */
double train_engine_grad_norm(const train_engine *e);

/* Clip the gradients to max_grad_norm (<= 0: no clipping) as
 * torch.nn.utils.clip_grad_norm_ does, then take one AdamW step with
 * learning rate lr on every parameter (weight decay only on tensors that
 * decay: train_param_decays), then zero the gradients. The pre-clip norm
 * goes to *grad_norm (may be NULL). Returns 0, or -1 when the gradient norm
 * is not finite (nothing is changed; message in errmsg). */
int train_engine_step(train_engine *e, const train_adamw *opt, double lr, double max_grad_norm,
		      double *grad_norm);

/* train_engine_step in parts, for a sharded optimizer (trainer_mpi.h):
 * train_engine_step_start takes the step given the whole gradient's L2
 * norm (computed by the caller): AdamW's t advances and *coef gets the
 * clipping factor; -1 when norm is not finite (nothing changed; message in
 * errmsg). Then train_engine_step_range updates the parameters [off,
 * off + n) of the arena with the same arithmetic as train_engine_step and
 * zeroes their gradients; the caller covers the ranges it owns and zeroes
 * the other gradients (off 0, n SIZE_MAX: every segment, as train_engine_step). */
int train_engine_step_start(train_engine *e, double max_grad_norm, double norm, float *coef);
void train_engine_step_range(train_engine *e, const train_adamw *opt, double lr, float coef, size_t off,
			     size_t n);

/* Number of optimizer steps taken (AdamW's t), and setting it on resume. */
long train_engine_steps(const train_engine *e);
void train_engine_set_steps(train_engine *e, long t);

/* The AdamW moment arenas (train_model_nparams floats each; owned by the
 * engine), for checkpoints. */
float *train_engine_moment1(train_engine *e);
float *train_engine_moment2(train_engine *e);

/* Floating-point operations of the last train_engine_accumulate (forward
 * + backward, matmuls and attention), for the GFLOP/s of progress lines
 * and benchmarks. */
double train_engine_last_flops(const train_engine *e);

/* Per sequence of the last accumulate or logps call (2n sequences: the
 * chosen completions, then the rejected), the sum over its scored positions
 * of the position's mean logit (over the vocabulary); *nseq gets 2n. Owned by the
 * engine, valid until its next call. */
const double *train_engine_logit_sums(const train_engine *e, int *nseq);

/* Tokens (rows that are not padding) of the last accumulate or logps call. */
long train_engine_last_tokens(const train_engine *e);

/* Runtime settings that libraries read only when they load, applied by
 * re-executing the running program (argv, through /proc/self/exe) once,
 * only for variables the user has not set:
 *   OMP_WAIT_POLICY=passive: idle OpenMP threads sleep instead of spinning;
 *     a training step runs thousands of parallel regions and single-threaded
 *     sections in between, and spinning threads take cores from the working
 *     ones when the machine is shared (measured: 17% of CPU time spent
 *     spinning on a busy 2-core machine);
 *   OPENBLAS_CORETYPE=SkylakeX when the CPU has AVX-512 (F, DQ, CD, BW, VL)
 *     but OpenBLAS picked an AVX2 kernel set (0.3.21 runs AMD Zen 4 with its
 *     Haswell kernels, at half the sgemm speed).
 * Returns (doing nothing) when nothing needs changing, when DPO_NO_REEXEC
 * is set, or when exec fails. Call it first thing in main. */
void train_runtime_tune(char **argv);

#endif

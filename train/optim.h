/* optim.h: AdamW, learning-rate schedules and gradient clipping for the
 * DPO trainer, matching PyTorch's torch.optim.AdamW, torch's
 * clip_grad_norm_ and the schedules of Hugging Face transformers. */
#ifndef DPO_TRAIN_OPTIM_H
#define DPO_TRAIN_OPTIM_H
#include <stddef.h>

/* AdamW hyper-parameters (PyTorch defaults: betas 0.9/0.999, eps 1e-8). */
typedef struct train_adamw {
	double beta1, beta2, eps;
	double weight_decay;
} train_adamw;

/* One AdamW step on n parameters, PyTorch's single-tensor algorithm:
 *   p *= 1 - lr*wd (decoupled; wd = 0 for tensors that do not decay);
 *   m = beta1 m + (1-beta1) g;  v = beta2 v + (1-beta2) g^2;
 *   p -= lr/(1-beta1^t) * m / (sqrt(v)/sqrt(1-beta2^t) + eps)
 * t is the 1-based step count after this update. m and v (zero before the
 * first step) are updated in place. decay selects whether weight_decay
 * applies to this tensor. */
void train_adamw_step(const train_adamw *o, float *p, const float *g, float *m, float *v, size_t n,
		      double lr, long t, int decay);

/* The same step with the gradient used as gscale * g (clipping folded in),
 * and g zeroed afterwards when zero_grad is set: one pass over memory
 * instead of three. */
void train_adamw_step_scaled(const train_adamw *o, float *p, float *g, float *m, float *v,
			     size_t n, double lr, long t, int decay, float gscale, int zero_grad);

/* Whether a parameter tensor gets weight decay: not biases, not norm
 * weights (decided by rank 1, or a name containing "bias" or "norm" or
 * GPT-2's "ln_"). name may be NULL. */
int train_param_decays(const char *name, int rank);

/* Learning-rate schedules. */
enum train_sched_kind { TRAIN_SCHED_CONSTANT, TRAIN_SCHED_LINEAR, TRAIN_SCHED_COSINE };

typedef struct train_sched {
	enum train_sched_kind kind;
	double lr;          /* peak learning rate */
	long warmup_steps;  /* linear warmup from 0 over this many steps */
	long total_steps;   /* optimizer steps of the whole run */
} train_sched;

/* Parse "constant", "linear" or "cosine"; -1 if unknown. */
int train_sched_parse(const char *name);

/* Warmup steps from a ratio of total steps, as transformers does:
 * ceil(ratio * total). */
long train_warmup_from_ratio(double ratio, long total_steps);

/* The learning rate used by optimizer step `step` (0-based), as the
 * transformers LambdaLR schedules give it: warmup step/warmup, then
 * constant 1, linear decay (total-step)/(total-warmup) to 0, or cosine
 * 0.5 (1 + cos(pi * progress)); times lr. */
double train_sched_lr(const train_sched *s, long step);

/* Sum of squares of n floats, accumulated in double. */
double train_sumsq(const float *g, size_t n);

/* torch.nn.utils.clip_grad_norm_'s factor for a total norm:
 * min(1, max_norm / (norm + 1e-6)); 1 when max_norm <= 0 (no clipping). */
double train_clip_coef(double norm, double max_norm);

/* g[i] *= s. */
void train_scale(float *g, size_t n, float s);

#endif

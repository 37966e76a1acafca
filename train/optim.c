/* optim.c: AdamW, schedules, clipping (see optim.h). */
#include "config.h"
#include <math.h>
#include <string.h>
#include "train/optim.h"

void train_adamw_step_scaled(const train_adamw *o, float *p, float *g, float *m, float *v, size_t n,
			double lr, long t, int decay, float gscale, int zero_grad)
{
	double bc1 = 1.0 - pow(o->beta1, (double)t);
	double bc2 = 1.0 - pow(o->beta2, (double)t);
	float step_size = (float)(lr / bc1);
	float bc2_sqrt = (float)sqrt(bc2);
	float shrink = decay ? (float)(1.0 - lr * o->weight_decay) : 1.0f;
	float b2 = (float)o->beta2, eps = (float)o->eps;
	float w1 = (float)(1.0 - o->beta1), w2 = (float)(1.0 - o->beta2);
#pragma omp parallel for simd schedule(static) if (n > 65536)
	for (size_t i = 0; i < n; i++) {
		float gi = g[i] * gscale;
		float mi = m[i] + w1 * (gi - m[i]);
		float vi = v[i] * b2 + w2 * gi * gi;
		m[i] = mi;
		v[i] = vi;
		float denom = sqrtf(vi) / bc2_sqrt + eps;
		p[i] = p[i] * shrink - step_size * mi / denom;
		g[i] = zero_grad ? 0.0f : g[i];
	}
}

void train_adamw_step(const train_adamw *o, float *p, const float *g, float *m, float *v, size_t n,
		      double lr, long t, int decay)
{
	train_adamw_step_scaled(o, p, (float *)g, m, v, n, lr, t, decay, 1.0f, 0);
}

int train_param_decays(const char *name, int rank)
{
	if (rank <= 1)
		return 0;
	if (name && (strstr(name, "bias") || strstr(name, "norm") || strstr(name, "ln_")))
		return 0;
	return 1;
}

int train_sched_parse(const char *name)
{
	if (!strcmp(name, "constant"))
		return TRAIN_SCHED_CONSTANT;
	if (!strcmp(name, "linear"))
		return TRAIN_SCHED_LINEAR;
	if (!strcmp(name, "cosine"))
		return TRAIN_SCHED_COSINE;
	return -1;
}

long train_warmup_from_ratio(double ratio, long total_steps)
{
	if (ratio <= 0)
		return 0;
	return (long)ceil(ratio * (double)total_steps);
}

double train_sched_lr(const train_sched *s, long step)
{
	double w = (double)s->warmup_steps, f;
	if (step < s->warmup_steps)
		return s->lr * (double)step / (w > 1 ? w : 1);
	double rest = (double)(s->total_steps - s->warmup_steps);
	if (rest < 1)
		rest = 1;
	switch (s->kind) {
	case TRAIN_SCHED_LINEAR:
		f = (double)(s->total_steps - step) / rest;
		if (f < 0)
			f = 0;
		break;
	case TRAIN_SCHED_COSINE: {
		double prog = (double)(step - s->warmup_steps) / rest;
		f = 0.5 * (1.0 + cos(M_PI * prog));
		if (f < 0)
			f = 0;
		break;
	}
	default:
		f = 1;
	}
	return s->lr * f;
}

double train_sumsq(const float *g, size_t n)
{
	double s = 0;
#pragma omp parallel for simd reduction(+ : s) schedule(static) if (n > 65536)
	for (size_t i = 0; i < n; i++)
		s += (double)g[i] * g[i];
	return s;
}

double train_clip_coef(double norm, double max_norm)
{
	if (max_norm <= 0)
		return 1.0;
	double c = max_norm / (norm + 1e-6);
	return c < 1.0 ? c : 1.0;
}

void train_scale(float *g, size_t n, float s)
{
	if (s == 1.0f)
		return;
#pragma omp parallel for schedule(static) if (n > 65536)
	for (size_t i = 0; i < n; i++)
		g[i] *= s;
}

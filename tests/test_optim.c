/* test_optim.c: AdamW, lr schedules and clipping on small hand-computed cases. */
#include "config.h"
#include <math.h>
#include "tests/tap.h"
#include "train/optim.h"

/* AdamW in double from the textbook form (bias-corrected moments),
 * written independently of optim.c. */
static void adamw_double(double *p, const double *g, double *m, double *v, int n, double lr,
			 double b1, double b2, double eps, double wd, int t)
{
	for (int i = 0; i < n; i++) {
		p[i] -= lr * wd * p[i];
		m[i] = b1 * m[i] + (1 - b1) * g[i];
		v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
		double mh = m[i] / (1 - pow(b1, t)), vh = v[i] / (1 - pow(b2, t));
		p[i] -= lr * mh / (sqrt(vh) + eps);
	}
}

int main(void)
{
	train_adamw o = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.0};

	/* step 1 without decay moves every weight by lr * sign(g) (up to eps) */
	{
		float p[3] = {1.0f, -2.0f, 0.5f}, g[3] = {0.3f, -4.0f, 1e-3f}, m[3] = {0}, v[3] = {0};
		train_adamw_step(&o, p, g, m, v, 3, 0.01, 1, 1);
		TAP_NEAR(p[0], 1.0 - 0.01, 1e-6, "step 1: p0 -= lr");
		TAP_NEAR(p[1], -2.0 + 0.01, 1e-6, "step 1: p1 += lr (negative grad)");
		TAP_NEAR(p[2], 0.5 - 0.01 * 1e-3 / (1e-3 + 1e-8), 1e-6, "step 1: small grad, eps matters little");
		TAP_NEAR(m[0], 0.03, 1e-8, "m = (1-b1) g");
		TAP_NEAR(v[1], 0.016, 1e-8, "v = (1-b2) g^2");
	}
	/* decoupled weight decay, then 5 steps against the double version */
	{
		enum { N = 4 };
		float p[N] = {0.5f, -0.25f, 2.0f, 0.0f}, m[N] = {0}, v[N] = {0};
		double pd[N] = {0.5, -0.25, 2.0, 0.0}, md[N] = {0}, vd[N] = {0};
		o.weight_decay = 0.1;
		double worst = 0;
		for (int t = 1; t <= 5; t++) {
			float g[N];
			double gd[N];
			for (int i = 0; i < N; i++) {
				g[i] = (float)(0.1 * (i + 1) * (t % 2 ? 1 : -0.5) + 0.01 * t);
				gd[i] = g[i];
			}
			train_adamw_step(&o, p, g, m, v, N, 1e-2, t, 1);
			adamw_double(pd, gd, md, vd, N, 1e-2, 0.9, 0.999, 1e-8, 0.1, t);
		}
		for (int i = 0; i < N; i++)
			if (fabs(p[i] - pd[i]) > worst)
				worst = fabs(p[i] - pd[i]);
		TAP_OK(worst < 1e-6, "5 AdamW steps with weight decay match double (max abs err %.3g)", worst);
		/* no decay for a tensor that does not decay: p only moves by the Adam term */
		float q[1] = {3.0f}, g[1] = {0.0f}, mq[1] = {0}, vq[1] = {0};
		train_adamw_step(&o, q, g, mq, vq, 1, 0.1, 1, 0);
		TAP_NEAR(q[0], 3.0, 0, "decay off: zero grad leaves the weight");
		train_adamw_step(&o, q, g, mq, vq, 1, 0.1, 1, 1);
		TAP_NEAR(q[0], 3.0 * (1 - 0.1 * 0.1), 1e-6, "decay on: p *= 1 - lr*wd");
		o.weight_decay = 0;
	}
	/* which tensors decay */
	TAP_IS_INT(train_param_decays("model.layers.0.mlp.up_proj.weight", 2), 1, "matrix decays");
	TAP_IS_INT(train_param_decays("transformer.h.0.attn.c_attn.bias", 1), 0, "bias does not");
	TAP_IS_INT(train_param_decays("model.layers.0.input_layernorm.weight", 1), 0, "norm weight does not");
	TAP_IS_INT(train_param_decays("transformer.wte.weight", 2), 1, "embedding decays");
	TAP_IS_INT(train_param_decays("model.layers.0.self_attn.q_norm.weight", 1), 0, "q_norm does not");

	/* schedules */
	train_sched s = {.kind = TRAIN_SCHED_CONSTANT, .lr = 2.0, .warmup_steps = 4, .total_steps = 10};
	TAP_NEAR(train_sched_lr(&s, 0), 0.0, 0, "constant warmup step 0");
	TAP_NEAR(train_sched_lr(&s, 2), 1.0, 1e-15, "constant warmup half");
	TAP_NEAR(train_sched_lr(&s, 4), 2.0, 0, "constant after warmup");
	TAP_NEAR(train_sched_lr(&s, 9), 2.0, 0, "constant at end");
	s.kind = TRAIN_SCHED_LINEAR;
	s.warmup_steps = 2;
	TAP_NEAR(train_sched_lr(&s, 1), 1.0, 1e-15, "linear warmup");
	TAP_NEAR(train_sched_lr(&s, 6), 1.0, 1e-15, "linear (10-6)/8 * 2");
	TAP_NEAR(train_sched_lr(&s, 10), 0.0, 0, "linear reaches 0");
	s.kind = TRAIN_SCHED_COSINE;
	s.warmup_steps = 0;
	TAP_NEAR(train_sched_lr(&s, 0), 2.0, 1e-15, "cosine starts at lr");
	TAP_NEAR(train_sched_lr(&s, 5), 1.0, 1e-12, "cosine midpoint");
	TAP_NEAR(train_sched_lr(&s, 10), 0.0, 1e-12, "cosine end");
	TAP_IS_INT(train_warmup_from_ratio(0.1, 25), 3, "warmup ratio rounds up");
	TAP_IS_INT(train_warmup_from_ratio(0, 25), 0, "no warmup");
	TAP_IS_INT(train_sched_parse("cosine"), TRAIN_SCHED_COSINE, "parse cosine");
	TAP_IS_INT(train_sched_parse("step"), -1, "parse unknown");

	/* clipping */
	float g[2] = {3.0f, 4.0f};
	double norm = sqrt(train_sumsq(g, 2));
	TAP_NEAR(norm, 5.0, 0, "norm");
	double c = train_clip_coef(norm, 1.0);
	TAP_NEAR(c, 1.0 / (5.0 + 1e-6), 1e-15, "clip coef max/(norm+1e-6)");
	TAP_NEAR(train_clip_coef(0.5, 1.0), 1.0, 0, "no clip under the max");
	TAP_NEAR(train_clip_coef(50, 0), 1.0, 0, "max 0 disables clipping");
	train_scale(g, 2, (float)c);
	TAP_NEAR(sqrt(train_sumsq(g, 2)), 1.0, 1e-6, "clipped norm is 1");
	return tap_done();
}

/* test_loss.c: DPO losses against the float64 oracle rows of
 * ../shared/fixtures/tiny-* /oracle.json, and their derivatives against
 * central finite differences. */
#include "config.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tests/tap.h"
#include "util/file.h"
#include "train/loss.h"

static char *slurp(const char *path)
{
	return util_read_file(path, NULL);
}

static int get_vec(const cJSON *o, const char *key, double *out, int max)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
	int n = 0;
	const cJSON *x;
	cJSON_ArrayForEach(x, a)
	{
		if (n < max)
			out[n] = x->valuedouble;
		n++;
	}
	return n;
}

static double relerr(double got, double want)
{
	double d = fabs(got - want), s = fabs(want);
	return s > 0 ? d / s : d;
}

static void oracle_model(const char *shared, const char *model)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/fixtures/%s/oracle.json", shared, model);
	char *txt = slurp(path);
	if (!TAP_OK(txt != NULL, "%s: read oracle.json", model))
		return;
	cJSON *o = cJSON_Parse(txt);
	free(txt);
	if (!TAP_OK(o != NULL, "%s: parse oracle.json", model))
		return;
	double pc[16], pr[16], rc[16], rr[16], want[16];
	int B = get_vec(o, "policy_logps_chosen", pc, 16);
	get_vec(o, "policy_logps_rejected", pr, 16);
	get_vec(o, "ref_logps_chosen", rc, 16);
	get_vec(o, "ref_logps_rejected", rr, 16);
	double beta = cJSON_GetObjectItem(o, "beta")->valuedouble;
	const cJSON *lp = cJSON_GetObjectItem(o, "losses_per_pair");
	const cJSON *row;
	cJSON_ArrayForEach(row, lp)
	{
		/* key "<type>_ls<e>" */
		char name[64];
		snprintf(name, sizeof(name), "%s", row->string);
		char *us = strstr(name, "_ls");
		if (!TAP_OK(us != NULL, "%s: row key %s parses", model, row->string))
			continue;
		double e = atof(us + 3);
		*us = 0;
		int t = train_loss_parse(name);
		if (!TAP_OK(t >= 0, "%s: loss %s known", model, name))
			continue;
		train_loss_cfg cfg;
		train_loss_cfg_default(&cfg);
		cfg.beta = beta;
		cfg.label_smoothing = e;
		int n = get_vec(lp, row->string, want, 16);
		double worst = 0;
		for (int i = 0; i < B && i < n; i++) {
			double L = train_loss_pair(&cfg, t, pc[i], pr[i], rc[i], rr[i], 1, 1, NULL, NULL);
			double r = relerr(L, want[i]);
			if (r > worst)
				worst = r;
		}
		TAP_OK(n == B && worst <= 1e-5, "%s: losses_per_pair %s (%d pairs, max rel err %.3g)",
		       model, row->string, n, worst);
	}

	/* batch: mean sigmoid loss, rewards, accuracy */
	train_loss_cfg cfg;
	train_loss_cfg_default(&cfg);
	cfg.beta = beta;
	double wc[16], wr[16], losses[16];
	get_vec(o, "rewards_chosen", wc, 16);
	get_vec(o, "rewards_rejected", wr, 16);
	train_loss_batch b = {.B = B, .pc = pc, .pr = pr, .rc = rc, .rr = rr, .losses = losses};
	TAP_OK(train_loss_compute(&cfg, &b) == 0, "%s: batch compute", model);
	double ml = cJSON_GetObjectItem(o, "mean_sigmoid_loss")->valuedouble;
	TAP_OK(relerr(b.loss, ml) <= 1e-5, "%s: mean_sigmoid_loss %.12g vs %.12g", model, b.loss, ml);
	double mc = 0, mr = 0, acc = 0;
	for (int i = 0; i < B; i++) {
		mc += wc[i] / B;
		mr += wr[i] / B;
		acc += (wc[i] > wr[i]) / (double)B;
		double c = beta * (pc[i] - rc[i]), r = beta * (pr[i] - rr[i]);
		TAP_OK(relerr(c, wc[i]) <= 1e-5 && relerr(r, wr[i]) <= 1e-5,
		       "%s: pair %d rewards chosen %.9g/%.9g rejected %.9g/%.9g", model, i, c, wc[i], r,
		       wr[i]);
	}
	TAP_OK(relerr(b.reward_chosen, mc) <= 1e-9 && relerr(b.reward_rejected, mr) <= 1e-9,
	       "%s: mean rewards", model);
	double oacc = cJSON_GetObjectItem(o, "rewards_accuracy")->valuedouble;
	TAP_NEAR(b.reward_accuracy, oacc, 1e-12, "%s: rewards_accuracy", model);
	TAP_NEAR(b.reward_accuracy, acc, 1e-12, "%s: accuracy from oracle rewards", model);
	TAP_NEAR(b.reward_margin, mc - mr, 1e-9, "%s: margin", model);
	cJSON_Delete(o);
}

/* Finite-difference check of d loss / d pc_i, d pr_i for a config. */
static void fd_check(const char *what, const train_loss_cfg *cfg)
{
	enum { B = 4 };
	double pc[B] = {-40.5, -12.25, -80.0, -5.5}, pr[B] = {-42.0, -11.0, -70.5, -9.75};
	double rc[B] = {-41.0, -12.0, -79.0, -6.0}, rr[B] = {-41.5, -12.5, -71.0, -9.0};
	long nc[B] = {10, 4, 20, 3}, nr[B] = {11, 5, 17, 2};
	double dpc[B], dpr[B];
	train_loss_batch b = {.B = B, .pc = pc, .pr = pr, .rc = rc, .rr = rr, .nc = nc, .nr = nr,
			      .dpc = dpc, .dpr = dpr};
	if (!TAP_OK(train_loss_compute(cfg, &b) == 0, "%s: compute", what))
		return;
	double worst = 0;
	const double eps = 1e-5;
	for (int i = 0; i < B; i++) {
		for (int side = 0; side < 2; side++) {
			double *x = side ? &pr[i] : &pc[i];
			double x0 = *x;
			train_loss_batch bp = b, bm = b;
			bp.dpc = bp.dpr = bm.dpc = bm.dpr = NULL;
			*x = x0 + eps;
			train_loss_compute(cfg, &bp);
			*x = x0 - eps;
			train_loss_compute(cfg, &bm);
			*x = x0;
			double fd = (bp.loss - bm.loss) / (2 * eps);
			double an = side ? dpr[i] : dpc[i];
			/* the hinge kink is not crossed by these points */
			double err = fabs(fd - an) / (fabs(fd) + 1e-6);
			if (err > worst)
				worst = err;
		}
	}
	TAP_OK(worst < 1e-6, "%s: derivatives match central differences (max rel err %.3g)", what,
	       worst);
}

int main(void)
{
	train_loss_cfg cfg;
	const char *bad = NULL;

	/* parsing */
	train_loss_cfg_default(&cfg);
	TAP_IS_INT(train_loss_parse("ipo"), TRAIN_LOSS_IPO, "parse ipo");
	TAP_IS_INT(train_loss_parse("nope"), -1, "parse unknown");
	TAP_IS_INT(train_loss_parse_list(&cfg, "sigmoid,sft", NULL), 0, "parse list");
	TAP_IS_INT(cfg.n, 2, "list has two");
	TAP_IS_INT(cfg.type[1], TRAIN_LOSS_SFT, "second is sft");
	TAP_IS_INT(train_loss_parse_list(&cfg, "sigmoid,bogus", &bad), -1, "bad list");
	TAP_IS_STR(bad, "bogus", "bad name located");
	train_loss_parse_list(&cfg, "sigmoid,sft", NULL);
	TAP_IS_INT(train_loss_parse_weights(&cfg, "1,0.5"), 0, "weights");
	TAP_NEAR(cfg.weight[1], 0.5, 0, "weight value");
	TAP_IS_INT(train_loss_parse_weights(&cfg, "1"), -1, "weight count must match");
	TAP_IS_INT(train_loss_parse_weights(&cfg, "1,x"), -1, "weight must be a number");

	/* hand-checked values */
	train_loss_cfg_default(&cfg);
	TAP_NEAR(train_loss_pair(&cfg, TRAIN_LOSS_SIGMOID, -1, -1, -1, -1, 1, 1, NULL, NULL), log(2.0),
		 1e-15, "sigmoid at h=0 is log 2");
	TAP_NEAR(train_loss_pair(&cfg, TRAIN_LOSS_HINGE, -1, -6, -1, -1, 1, 1, NULL, NULL), 0.5, 1e-15,
		 "hinge 1 - 0.1*5");
	TAP_NEAR(train_loss_pair(&cfg, TRAIN_LOSS_IPO, -1, -11, -1, -1, 1, 1, NULL, NULL), 25.0, 1e-12,
		 "ipo (h - 1/(2b))^2 = (10 - 5)^2");
	TAP_NEAR(train_loss_pair(&cfg, TRAIN_LOSS_SFT, -6, 0, 0, 0, 3, 1, NULL, NULL), 2.0, 1e-15,
		 "sft per token");
	cfg.simpo_gamma = 0;
	TAP_NEAR(train_loss_pair(&cfg, TRAIN_LOSS_SIMPO, -6, -6, 0, 0, 3, 3, NULL, NULL), log(2.0),
		 1e-15, "simpo equal averages, gamma 0");
	TAP_NEAR(train_loss_pair(&cfg, TRAIN_LOSS_SIGMOID, 0, -2e4, 0, 0, 1, 1, NULL, NULL), 0.0,
		 1e-300, "sigmoid saturates without overflow");
	TAP_OK(isfinite(train_loss_pair(&cfg, TRAIN_LOSS_SIGMOID, -2e4, 0, 0, 0, 1, 1, NULL, NULL)),
	       "sigmoid large negative finite");

	/* derivatives */
	static const struct {
		const char *name;
		const char *losses;
		const char *weights;
		double e;
		int ipo_norm;
	} fd[] = {
		{"sigmoid", "sigmoid", NULL, 0, 0},
		{"cdpo e=0.1", "sigmoid", NULL, 0.1, 0},
		{"robust e=0.1", "robust", NULL, 0.1, 0},
		{"hinge", "hinge", NULL, 0, 0},
		{"ipo", "ipo", NULL, 0, 0},
		{"ipo length-normalised", "ipo", NULL, 0, 1},
		{"sft", "sft", NULL, 0, 0},
		{"simpo", "simpo", NULL, 0, 0},
		{"simpo e=0.2", "simpo", NULL, 0.2, 0},
		{"sigmoid+sft (RPO)", "sigmoid,sft", "1,0.7", 0, 0},
		{"sigmoid+hinge+ipo", "sigmoid,hinge,ipo", "0.5,0.25,0.125", 0.05, 0},
	};
	for (size_t i = 0; i < sizeof(fd) / sizeof(fd[0]); i++) {
		train_loss_cfg_default(&cfg);
		cfg.beta = 0.2;
		cfg.label_smoothing = fd[i].e;
		cfg.ipo_length_norm = fd[i].ipo_norm;
		train_loss_parse_list(&cfg, fd[i].losses, NULL);
		if (fd[i].weights)
			train_loss_parse_weights(&cfg, fd[i].weights);
		fd_check(fd[i].name, &cfg);
	}

	/* sft over the batch is token-weighted */
	{
		train_loss_cfg_default(&cfg);
		train_loss_parse_list(&cfg, "sft", NULL);
		double pc[2] = {-10, -2}, pr[2] = {0, 0};
		long nc[2] = {4, 1}, nr[2] = {1, 1};
		train_loss_batch b = {.B = 2, .pc = pc, .pr = pr, .nc = nc, .nr = nr};
		train_loss_compute(&cfg, &b);
		TAP_NEAR(b.loss, 12.0 / 5.0, 1e-15, "sft batch = -sum(pc)/sum(nc)");
	}
	/* invalid configs */
	{
		train_loss_cfg_default(&cfg);
		double pc[1] = {-1}, pr[1] = {-2}, rc[1] = {-1}, rr[1] = {-1};
		train_loss_batch b = {.B = 1, .pc = pc, .pr = pr, .rc = rc, .rr = rr};
		cfg.beta = 0;
		TAP_IS_INT(train_loss_compute(&cfg, &b), -1, "beta 0 rejected");
		cfg.beta = 0.1;
		cfg.label_smoothing = 0.5;
		TAP_IS_INT(train_loss_compute(&cfg, &b), -1, "smoothing 0.5 rejected");
		cfg.label_smoothing = 0;
		train_loss_parse_list(&cfg, "simpo", NULL);
		TAP_IS_INT(train_loss_compute(&cfg, &b), -1, "simpo without lengths rejected");
	}

	const char *shared = tap_shared_dir();
	if (shared) {
		oracle_model(shared, "tiny-gpt2");
		oracle_model(shared, "tiny-llama");
		oracle_model(shared, "tiny-qwen3");
	} else {
		tap_diag("SKIP oracle checks: $DPO_SHARED (../shared) is absent");
	}
	return tap_done();
}

/* metrics.c: the metric name tables of metrics.h. */
#include "config.h"
#include "store/metrics.h"
#include <string.h>

const char *const store_metric_train[STORE_METRIC_NTRAIN] = {
	[STORE_METRIC_LOSS] = "loss",
	[STORE_METRIC_GRAD_NORM] = "grad_norm",
	[STORE_METRIC_LEARNING_RATE] = "learning_rate",
	[STORE_METRIC_REWARDS_CHOSEN] = "rewards/chosen",
	[STORE_METRIC_REWARDS_REJECTED] = "rewards/rejected",
	[STORE_METRIC_REWARDS_ACCURACIES] = "rewards/accuracies",
	[STORE_METRIC_REWARDS_MARGINS] = "rewards/margins",
	[STORE_METRIC_LOGPS_CHOSEN] = "logps/chosen",
	[STORE_METRIC_LOGPS_REJECTED] = "logps/rejected",
	[STORE_METRIC_LOGITS_CHOSEN] = "logits/chosen",
	[STORE_METRIC_LOGITS_REJECTED] = "logits/rejected",
};

const char *const store_metric_eval[STORE_METRIC_NEVAL] = {
	[STORE_METRIC_EVAL_ACCURACY_BASELINE] = "eval/accuracy_baseline",
	[STORE_METRIC_EVAL_ACCURACY_POLICY] = "eval/accuracy_policy",
	[STORE_METRIC_EVAL_WIN_RATE] = "eval/win_rate",
	[STORE_METRIC_EVAL_WIN_RATE_LO] = "eval/win_rate_lo",
	[STORE_METRIC_EVAL_WIN_RATE_HI] = "eval/win_rate_hi",
	[STORE_METRIC_EVAL_KL] = "eval/kl",
	[STORE_METRIC_EVAL_BETA] = "eval/beta",
};

int store_metric_train_on_eval(int id)
{
	return id != STORE_METRIC_GRAD_NORM && id != STORE_METRIC_LEARNING_RATE;
}

int store_metric_index(const char *const *names, int n, const char *name)
{
	for (int i = 0; name && i < n; i++)
		if (!strcmp(names[i], name))
			return i;
	return -1;
}

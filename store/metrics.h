/* metrics.h: the names of the metrics that dpo-train and dpo-eval record
 * with store_metric_add and that store/report.c draws, declared once. The
 * programs and the report index the tables below by these ids instead of
 * repeating the strings or matching them by position. (dpo-judge's
 * run-level counters are its own and not listed here.) */
#ifndef DPO_STORE_METRICS_H
#define DPO_STORE_METRICS_H

/* dpo-train, one value per logged step (TRL's names). */
enum store_metric_train_id {
	STORE_METRIC_LOSS,               /* "loss" */
	STORE_METRIC_GRAD_NORM,          /* "grad_norm" (training steps only) */
	STORE_METRIC_LEARNING_RATE,      /* "learning_rate" (training steps only) */
	STORE_METRIC_REWARDS_CHOSEN,     /* "rewards/chosen" */
	STORE_METRIC_REWARDS_REJECTED,   /* "rewards/rejected" */
	STORE_METRIC_REWARDS_ACCURACIES, /* "rewards/accuracies" */
	STORE_METRIC_REWARDS_MARGINS,    /* "rewards/margins" */
	STORE_METRIC_LOGPS_CHOSEN,       /* "logps/chosen" */
	STORE_METRIC_LOGPS_REJECTED,     /* "logps/rejected" */
	STORE_METRIC_LOGITS_CHOSEN,      /* "logits/chosen": mean logit over completion positions and vocabulary */
	STORE_METRIC_LOGITS_REJECTED,    /* "logits/rejected" */
	STORE_METRIC_NTRAIN
};

/* The names of the ids above, in their order. */
extern const char *const store_metric_train[STORE_METRIC_NTRAIN];

/* On the eval pairs dpo-train records the same metrics with this prefix
 * ("eval_loss", "eval_rewards/margins"), all but those of training steps
 * only (store_metric_train_on_eval). */
#define STORE_METRIC_TRAIN_EVAL_PREFIX "eval_"

/* Whether metric id is also measured on the eval pairs (not grad_norm or
 * learning_rate): 1 or 0. */
int store_metric_train_on_eval(int id);

/* dpo-eval, run-level (step -1). */
enum store_metric_eval_id {
	STORE_METRIC_EVAL_ACCURACY_BASELINE, /* "eval/accuracy_baseline": the checker's, 0..1 */
	STORE_METRIC_EVAL_ACCURACY_POLICY,   /* "eval/accuracy_policy" */
	STORE_METRIC_EVAL_WIN_RATE,          /* "eval/win_rate": policy vs baseline, ties half */
	STORE_METRIC_EVAL_WIN_RATE_LO,       /* "eval/win_rate_lo": its 95% Wilson interval */
	STORE_METRIC_EVAL_WIN_RATE_HI,       /* "eval/win_rate_hi" */
	STORE_METRIC_EVAL_KL,                /* "eval/kl": sampled KL to the baseline, nats */
	STORE_METRIC_EVAL_BETA,              /* "eval/beta": the policy's training beta */
	STORE_METRIC_NEVAL
};

/* The names of the ids above, in their order. */
extern const char *const store_metric_eval[STORE_METRIC_NEVAL];

/* dpo-eval, best-of-N from the baseline's samples: one value per N, the
 * step being N. */
#define STORE_METRIC_BON_ACCURACY "eval/bon_accuracy"
#define STORE_METRIC_BON_KL "eval/bon_kl"

/* The index of name in names[0..n-1], or -1 (e.g.
 * store_metric_index(store_metric_eval, STORE_METRIC_NEVAL, m->name)). */
int store_metric_index(const char *const *names, int n, const char *name);

#endif

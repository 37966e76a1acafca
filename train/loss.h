/* loss.h: the preference losses of the DPO trainer, on summed completion
 * log-probabilities, with their derivatives.
 *
 * Every loss works on a batch of B pairs. For pair i the inputs are the
 * policy's summed log-probs of the chosen and rejected completions (pc, pr),
 * the reference model's (rc, rr) and the completion lengths in tokens
 * (nc, nr). With h = (pc - pr) - (rc - rr) and z = beta * h:
 *   sigmoid  -(1-e) logsig(z) - e logsig(-z)           (e = label smoothing; cDPO)
 *   robust   (-(1-e) logsig(z) + e logsig(-z)) / (1 - 2e)
 *   hinge    relu(1 - z)
 *   ipo      (h - 1/(2 beta))^2, h on summed log-probs, or on per-token
 *            averages (pc/nc etc.) when ipo_length_norm is set
 *   sft      negative log-likelihood of the chosen completions per token,
 *            over the whole batch: -sum(pc) / sum(nc) (TRL's nll_loss)
 *   simpo    reference-free: z = beta (pc/nc - pr/nr) - gamma, then the
 *            sigmoid form with label smoothing
 * The batch loss is the mean over pairs (sft: the token-weighted mean), and
 * several losses combine as sum_k weight_k * loss_k (TRL's list form).
 * Implicit rewards are beta (pc - rc) and beta (pr - rr); for a config made
 * only of simpo they are beta pc/nc and beta pr/nr (SimPO's rewards).
 * Everything is computed in double. */
#ifndef DPO_TRAIN_LOSS_H
#define DPO_TRAIN_LOSS_H

enum train_loss_type {
	TRAIN_LOSS_SIGMOID,
	TRAIN_LOSS_ROBUST,
	TRAIN_LOSS_HINGE,
	TRAIN_LOSS_IPO,
	TRAIN_LOSS_SFT,
	TRAIN_LOSS_SIMPO,
	TRAIN_LOSS_NTYPES
};

#define TRAIN_LOSS_MAX 8 /* losses combined at most */

typedef struct train_loss_cfg {
	int n;                             /* number of losses combined (>= 1) */
	enum train_loss_type type[TRAIN_LOSS_MAX];
	double weight[TRAIN_LOSS_MAX];     /* 1.0 each unless --loss-weights */
	double beta;                       /* default 0.1 */
	double label_smoothing;            /* e, in [0, 0.5) */
	double simpo_gamma;                /* SimPO's target margin (default 0.5) */
	int ipo_length_norm;               /* ipo on per-token averages */
} train_loss_cfg;

/* One batch: inputs (arrays of B) and outputs. */
typedef struct train_loss_batch {
	int B;
	const double *pc, *pr;     /* policy summed log-probs [B] */
	const double *rc, *rr;     /* reference summed log-probs [B] (unused by sft/simpo; may be NULL then) */
	const long *nc, *nr;       /* completion lengths in tokens [B] (may be NULL when no loss needs them) */
	/* outputs */
	double loss;               /* weighted batch loss */
	double *dpc, *dpr;         /* [B] d loss / d pc_i, d pr_i (may be NULL) */
	double *losses;            /* [B] per-pair weighted loss (may be NULL; sft counts as -pc_i/nc_i) */
	double reward_chosen;      /* mean implicit reward of chosen */
	double reward_rejected;
	double reward_accuracy;    /* fraction of pairs with reward_chosen > reward_rejected */
	double reward_margin;      /* mean (chosen - rejected) reward */
	double logp_chosen;        /* mean pc */
	double logp_rejected;      /* mean pr */
	/* TRL's logits/chosen, logits/rejected: the mean logit over every
	 * scored completion position and the whole vocabulary. Filled by the
	 * trainer (train_engine_accumulate, train_evaluate), not by
	 * train_loss_compute, which leaves them as they are. */
	double logits_chosen, logits_rejected;
} train_loss_batch;

/* Set cfg to one sigmoid loss with TRL's defaults (beta 0.1, no smoothing,
 * gamma 0.5). */
void train_loss_cfg_default(train_loss_cfg *cfg);

/* Parse a loss name ("sigmoid", "robust", "hinge", "ipo", "sft", "simpo").
 * Returns the type, or -1 for an unknown name. */
int train_loss_parse(const char *name);

/* The name of a loss type (static string). */
const char *train_loss_name(enum train_loss_type t);

/* Parse a comma-separated list of names into cfg->type/n (weights set to
 * 1). Returns 0, or -1 for an unknown name or too many (then *bad points
 * into s at the offending name, when bad is not NULL). */
int train_loss_parse_list(train_loss_cfg *cfg, const char *s, const char **bad);

/* Parse a comma-separated list of weights into cfg->weight; the count must
 * equal cfg->n. Returns 0 or -1. */
int train_loss_parse_weights(train_loss_cfg *cfg, const char *s);

/* Nonzero when some loss of cfg needs reference log-probs. */
int train_loss_needs_ref(const train_loss_cfg *cfg);

/* Compute the batch loss, its derivatives w.r.t. pc and pr and the metrics
 * into b. Returns 0, or -1 when cfg is invalid (beta <= 0, e out of range,
 * n out of range) or a length needed is missing or zero. */
int train_loss_compute(const train_loss_cfg *cfg, train_loss_batch *b);

/* Per-pair value of one loss type alone (no weighting), for tests and the
 * oracle rows: returns the loss and writes d/dpc and d/dpr (may be NULL).
 * sft here is -pc/nc. */
double train_loss_pair(const train_loss_cfg *cfg, enum train_loss_type t, double pc, double pr,
		       double rc, double rr, long nc, long nr, double *dpc, double *dpr);

#endif

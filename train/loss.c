/* loss.c: DPO-family losses on summed log-probs (see loss.h). */
#include "config.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "train/loss.h"

static const char *const loss_names[TRAIN_LOSS_NTYPES] = {
	[TRAIN_LOSS_SIGMOID] = "sigmoid", [TRAIN_LOSS_ROBUST] = "robust",
	[TRAIN_LOSS_HINGE] = "hinge",     [TRAIN_LOSS_IPO] = "ipo",
	[TRAIN_LOSS_SFT] = "sft",         [TRAIN_LOSS_SIMPO] = "simpo",
};

void train_loss_cfg_default(train_loss_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->n = 1;
	cfg->type[0] = TRAIN_LOSS_SIGMOID;
	cfg->weight[0] = 1.0;
	cfg->beta = 0.1;
	cfg->label_smoothing = 0.0;
	cfg->simpo_gamma = 0.5;
}

int train_loss_parse(const char *name)
{
	for (int i = 0; i < TRAIN_LOSS_NTYPES; i++)
		if (!strcmp(name, loss_names[i]))
			return i;
	return -1;
}

const char *train_loss_name(enum train_loss_type t)
{
	return (unsigned)t < TRAIN_LOSS_NTYPES ? loss_names[t] : "?";
}

int train_loss_parse_list(train_loss_cfg *cfg, const char *s, const char **bad)
{
	int n = 0;
	const char *p = s;
	for (;;) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		char name[32];
		int t = -1;
		if (len > 0 && len < sizeof(name)) {
			memcpy(name, p, len);
			name[len] = 0;
			t = train_loss_parse(name);
		}
		if (t < 0 || n >= TRAIN_LOSS_MAX) {
			if (bad)
				*bad = p;
			return -1;
		}
		cfg->type[n] = t;
		cfg->weight[n] = 1.0;
		n++;
		if (!e)
			break;
		p = e + 1;
	}
	cfg->n = n;
	return 0;
}

int train_loss_parse_weights(train_loss_cfg *cfg, const char *s)
{
	int n = 0;
	const char *p = s;
	double w[TRAIN_LOSS_MAX];
	for (;;) {
		char *end;
		if (n >= TRAIN_LOSS_MAX)
			return -1;
		w[n] = strtod(p, &end);
		if (end == p || !isfinite(w[n]))
			return -1;
		n++;
		if (*end == 0)
			break;
		if (*end != ',')
			return -1;
		p = end + 1;
	}
	if (n != cfg->n)
		return -1;
	memcpy(cfg->weight, w, sizeof(double) * n);
	return 0;
}

int train_loss_needs_ref(const train_loss_cfg *cfg)
{
	for (int k = 0; k < cfg->n; k++)
		if (cfg->type[k] != TRAIN_LOSS_SFT && cfg->type[k] != TRAIN_LOSS_SIMPO)
			return 1;
	return 0;
}

/* log(sigmoid(z)), stable for large |z|. */
static double logsig(double z)
{
	return z >= 0 ? -log1p(exp(-z)) : z - log1p(exp(z));
}

static double sig(double z)
{
	if (z >= 0)
		return 1.0 / (1.0 + exp(-z));
	double e = exp(z);
	return e / (1.0 + e);
}

double train_loss_pair(const train_loss_cfg *cfg, enum train_loss_type t, double pc, double pr,
		       double rc, double rr, long nc, long nr, double *dpc, double *dpr)
{
	double b = cfg->beta, e = cfg->label_smoothing;
	double L = 0, dh = 0; /* dL/dh where h is the type's log-ratio difference */
	double sc = 1, sr = 1; /* dh/dpc, -dh/dpr */
	switch (t) {
	case TRAIN_LOSS_SIGMOID:
	case TRAIN_LOSS_ROBUST:
	case TRAIN_LOSS_HINGE: {
		double h = (pc - pr) - (rc - rr), z = b * h;
		if (t == TRAIN_LOSS_SIGMOID) {
			L = -(1 - e) * logsig(z) - e * logsig(-z);
			dh = b * (-(1 - e) * sig(-z) + e * sig(z));
		} else if (t == TRAIN_LOSS_ROBUST) {
			L = (-(1 - e) * logsig(z) + e * logsig(-z)) / (1 - 2 * e);
			dh = b * (-(1 - e) * sig(-z) - e * sig(z)) / (1 - 2 * e);
		} else {
			L = 1 - z > 0 ? 1 - z : 0;
			dh = 1 - z > 0 ? -b : 0;
		}
		break;
	}
	case TRAIN_LOSS_IPO: {
		double h;
		if (cfg->ipo_length_norm) {
			sc = 1.0 / (double)nc;
			sr = 1.0 / (double)nr;
			h = (pc - rc) * sc - (pr - rr) * sr;
		} else {
			h = (pc - pr) - (rc - rr);
		}
		double d = h - 1.0 / (2 * b);
		L = d * d;
		dh = 2 * d;
		break;
	}
	case TRAIN_LOSS_SFT:
		L = -pc / (double)nc;
		if (dpc)
			*dpc = -1.0 / (double)nc;
		if (dpr)
			*dpr = 0;
		return L;
	case TRAIN_LOSS_SIMPO: {
		sc = 1.0 / (double)nc;
		sr = 1.0 / (double)nr;
		double z = b * (pc * sc - pr * sr) - cfg->simpo_gamma;
		L = -(1 - e) * logsig(z) - e * logsig(-z);
		dh = b * (-(1 - e) * sig(-z) + e * sig(z));
		break;
	}
	default:
		abort();
	}
	if (dpc)
		*dpc = dh * sc;
	if (dpr)
		*dpr = -dh * sr;
	return L;
}

int train_loss_compute(const train_loss_cfg *cfg, train_loss_batch *b)
{
	int B = b->B;
	if (cfg->n < 1 || cfg->n > TRAIN_LOSS_MAX || !(cfg->beta > 0) ||
	    !(cfg->label_smoothing >= 0 && cfg->label_smoothing < 0.5) || B < 1)
		return -1;
	int need_len = 0, only_simpo = 1;
	for (int k = 0; k < cfg->n; k++) {
		enum train_loss_type t = cfg->type[k];
		if ((unsigned)t >= TRAIN_LOSS_NTYPES)
			return -1;
		if (t == TRAIN_LOSS_SFT || t == TRAIN_LOSS_SIMPO ||
		    (t == TRAIN_LOSS_IPO && cfg->ipo_length_norm))
			need_len = 1;
		if (t != TRAIN_LOSS_SIMPO)
			only_simpo = 0;
	}
	if (train_loss_needs_ref(cfg) && (!b->rc || !b->rr))
		return -1;
	if (need_len) {
		if (!b->nc || !b->nr)
			return -1;
		for (int i = 0; i < B; i++)
			if (b->nc[i] <= 0 || b->nr[i] <= 0)
				return -1;
	}
	double total_nc = 0;
	if (b->nc)
		for (int i = 0; i < B; i++)
			total_nc += (double)b->nc[i];

	double loss = 0, rw_c = 0, rw_r = 0, acc = 0, lc = 0, lr = 0;
	for (int i = 0; i < B; i++) {
		double rc = b->rc ? b->rc[i] : 0, rr = b->rr ? b->rr[i] : 0;
		long nc = b->nc ? b->nc[i] : 0, nr = b->nr ? b->nr[i] : 0;
		double li = 0, gc = 0, gr = 0;
		for (int k = 0; k < cfg->n; k++) {
			double dc, dr, w = cfg->weight[k];
			double L = train_loss_pair(cfg, cfg->type[k], b->pc[i], b->pr[i], rc, rr, nc,
						   nr, &dc, &dr);
			li += w * L;
			if (cfg->type[k] == TRAIN_LOSS_SFT) {
				/* token-weighted over the batch: -sum(pc)/sum(nc) */
				loss += w * (-b->pc[i]) / total_nc;
				gc += w * (-1.0 / total_nc);
			} else {
				loss += w * L / B;
				gc += w * dc / B;
				gr += w * dr / B;
			}
		}
		if (b->losses)
			b->losses[i] = li;
		if (b->dpc)
			b->dpc[i] = gc;
		if (b->dpr)
			b->dpr[i] = gr;
		double c, r;
		if (only_simpo) {
			c = cfg->beta * b->pc[i] / (double)nc;
			r = cfg->beta * b->pr[i] / (double)nr;
		} else {
			c = cfg->beta * (b->pc[i] - rc);
			r = cfg->beta * (b->pr[i] - rr);
		}
		rw_c += c;
		rw_r += r;
		acc += c > r ? 1.0 : 0.0;
		lc += b->pc[i];
		lr += b->pr[i];
	}
	b->loss = loss;
	b->reward_chosen = rw_c / B;
	b->reward_rejected = rw_r / B;
	b->reward_accuracy = acc / B;
	b->reward_margin = (rw_c - rw_r) / B;
	b->logp_chosen = lc / B;
	b->logp_rejected = lr / B;
	return 0;
}

/* test_model_parity.c: the model engine against the Hugging Face oracles in
 * $DPO_SHARED/fixtures (see its README): logits and per-token log-probs
 * within 1e-4, summed log-probs, greedy ids exact, for tiny-gpt2,
 * tiny-llama, tiny-qwen3 (policy and reference), the BF16 sharded
 * tiny-llama, and the real tiny GPT-2 (50257 vocabulary) loads and runs. */
#include "config.h"
#include "tests/tap.h"
#include "util/file.h"
#include "train/model.h"
#include "util/xmalloc.h"

#include <cjson/cJSON.h>

static cJSON *load_json(const char *path)
{
	size_t n;
	char *buf = util_read_file(path, &n);
	if (!buf)
		return NULL;
	cJSON *j = cJSON_ParseWithLength(buf, n);
	free(buf);
	return j;
}

static int *ids_of(const cJSON *arr, int *n)
{
	*n = cJSON_GetArraySize(arr);
	int *ids = xmalloc(sizeof(int) * (*n ? *n : 1));
	int i = 0;
	for (const cJSON *e = arr->child; e; e = e->next)
		ids[i++] = e->valueint;
	return ids;
}

/* prompt_ids ++ completion ids of pair p ("chosen_ids"/"rejected_ids"). */
static int *pair_seq(const cJSON *pair, const char *which, int *n, int *np)
{
	int a, b;
	int *p = ids_of(cJSON_GetObjectItem(pair, "prompt_ids"), &a);
	int *c = ids_of(cJSON_GetObjectItem(pair, which), &b);
	int *s = xmalloc(sizeof(int) * (a + b));
	memcpy(s, p, sizeof(int) * a);
	memcpy(s + a, c, sizeof(int) * b);
	free(p);
	free(c);
	*n = a + b;
	*np = a;
	return s;
}

/* Summed completion log-prob and max per-token error vs want (may be NULL). */
static double completion_logp(const train_model *m, const cJSON *pair, const char *which,
			      const cJSON *want, double *maxerr)
{
	int n, np;
	int *s = pair_seq(pair, which, &n, &np);
	float *lp = xmalloc(sizeof(float) * n);
	char *err = NULL;
	double sum = 0.0;
	*maxerr = 0.0;
	if (train_model_logprobs(m, s, n, lp, &err)) {
		tap_diag("logprobs: %s", err);
		free(err);
		sum = NAN;
		*maxerr = INFINITY;
	} else {
		const cJSON *w = want ? want->child : NULL;
		for (int t = np - 1; t < n - 1; t++) {
			sum += lp[t];
			if (want) {
				double e = w ? fabs(lp[t] - w->valuedouble) : INFINITY;
				if (e > *maxerr)
					*maxerr = e;
				w = w ? w->next : NULL;
			}
		}
	}
	free(lp);
	free(s);
	return sum;
}

static void check_model(const char *shared, const char *name)
{
	char *dir = xasprintf("%s/fixtures/%s/policy", shared, name);
	char *rdir = xasprintf("%s/fixtures/%s/reference", shared, name);
	char *opath = xasprintf("%s/fixtures/%s/oracle.json", shared, name);
	char *err = NULL;
	cJSON *o = load_json(opath);
	train_model *m = train_model_load(dir, &err);
	train_model *r = train_model_load(rdir, &err);
	if (!TAP_OK(o && m && r, "%s: load policy, reference and oracle", name)) {
		tap_diag("%s", err ? err : "oracle.json unreadable");
		goto out;
	}
	const train_config *c = train_model_config(m);

	/* logits of the first sequence */
	int T;
	int *ids = ids_of(cJSON_GetObjectItem(o, "logits_first_seq_ids"), &T);
	float *logits = xmalloc(sizeof(float) * T * c->vocab);
	double maxerr = 0.0;
	if (train_model_logits(m, ids, T, logits, &err) == 0) {
		int t = 0;
		for (const cJSON *row = cJSON_GetObjectItem(o, "logits_first_seq")->child; row;
		     row = row->next, t++) {
			int v = 0;
			for (const cJSON *x = row->child; x; x = x->next, v++) {
				double e = fabs(logits[(size_t)t * c->vocab + v] - x->valuedouble);
				if (e > maxerr)
					maxerr = e;
			}
		}
	} else {
		maxerr = INFINITY;
	}
	TAP_OK(maxerr <= 1e-4, "%s: logits_first_seq within 1e-4 (max error %.3g)", name, maxerr);

	/* KV-cache logits of the last position equal the full forward */
	train_kv *kv = train_kv_new(m, 1, T);
	float *last = xmalloc(sizeof(float) * c->vocab);
	int half = T / 2;
	double kverr = 0.0;
	if (train_model_prefill(m, kv, 0, ids, half, last) ||
	    train_model_prefill(m, kv, 0, ids + half, T - half - 1, last)) {
		kverr = INFINITY;
	} else {
		int row = 0;
		if (train_model_decode(m, kv, &row, ids + T - 1, 1, last))
			kverr = INFINITY;
		for (int v = 0; v < c->vocab && isfinite(kverr); v++) {
			double e = fabs(last[v] - logits[(size_t)(T - 1) * c->vocab + v]);
			if (e > kverr)
				kverr = e;
		}
	}
	TAP_OK(kverr <= 1e-4, "%s: prefill+decode logits match the full forward (max %.3g)",
	       name, kverr);
	train_kv_free(kv);
	free(last);
	free(logits);
	free(ids);

	/* per-token and summed log-probs */
	const cJSON *pairs = cJSON_GetObjectItem(o, "pairs");
	const cJSON *ptl = cJSON_GetObjectItem(o, "per_token_logps_chosen")->child;
	const cJSON *pc = cJSON_GetObjectItem(o, "policy_logps_chosen")->child;
	const cJSON *pr = cJSON_GetObjectItem(o, "policy_logps_rejected")->child;
	const cJSON *rc = cJSON_GetObjectItem(o, "ref_logps_chosen")->child;
	const cJSON *rr = cJSON_GetObjectItem(o, "ref_logps_rejected")->child;
	int i = 0;
	for (const cJSON *p = pairs->child; p; p = p->next, i++) {
		double e1, e2;
		double s = completion_logp(m, p, "chosen_ids", ptl, &e1);
		TAP_OK(e1 <= 1e-4, "%s pair %d: per_token_logps_chosen within 1e-4 (max %.3g)", name,
		       i, e1);
		TAP_NEAR(s, pc->valuedouble, 1e-3, "%s pair %d: policy_logps_chosen", name, i);
		s = completion_logp(m, p, "rejected_ids", NULL, &e2);
		TAP_NEAR(s, pr->valuedouble, 1e-3, "%s pair %d: policy_logps_rejected", name, i);
		s = completion_logp(r, p, "chosen_ids", NULL, &e2);
		TAP_NEAR(s, rc->valuedouble, 1e-3, "%s pair %d: ref_logps_chosen", name, i);
		s = completion_logp(r, p, "rejected_ids", NULL, &e2);
		TAP_NEAR(s, rr->valuedouble, 1e-3, "%s pair %d: ref_logps_rejected", name, i);
		ptl = ptl->next;
		pc = pc->next;
		pr = pr->next;
		rc = rc->next;
		rr = rr->next;
	}

	/* greedy decoding with the KV cache */
	const cJSON *g = cJSON_GetObjectItem(o, "greedy");
	int np, nw;
	int *pids = ids_of(cJSON_GetObjectItem(g, "prompt_ids"), &np);
	int *want = ids_of(cJSON_GetObjectItem(g, "new_ids"), &nw);
	kv = train_kv_new(m, 1, np + nw);
	last = xmalloc(sizeof(float) * c->vocab);
	int same = train_model_prefill(m, kv, 0, pids, np, last) == 0, first_bad = -1;
	for (int k = 0; k < nw && same; k++) {
		int best = 0, row = 0;
		for (int v = 1; v < c->vocab; v++)
			if (last[v] > last[best])
				best = v;
		if (best != want[k]) {
			same = 0;
			first_bad = k;
			break;
		}
		if (k + 1 < nw && train_model_decode(m, kv, &row, &best, 1, last))
			same = 0;
	}
	if (!TAP_OK(same, "%s: %d greedy ids exact", name, nw))
		tap_diag("first mismatch at %d", first_bad);
	train_kv_free(kv);
	free(last);
	free(pids);
	free(want);
out:
	free(err);
	cJSON_Delete(o);
	train_model_free(m);
	train_model_free(r);
	free(dir);
	free(rdir);
	free(opath);
}

static void check_bf16(const char *shared)
{
	char *dir = xasprintf("%s/fixtures/tiny-llama-bf16-sharded", shared);
	char *opath = xasprintf("%s/oracle_dtype.json", dir);
	char *err = NULL;
	cJSON *o = load_json(opath);
	train_model *m = train_model_load(dir, &err);
	if (TAP_OK(o && m, "bf16 sharded: load")) {
		TAP_IS_STR(train_model_dtype(m), "BF16", "bf16 sharded: dtype");
		const cJSON *ptl = cJSON_GetObjectItem(o, "per_token_logps_chosen")->child;
		const cJSON *sum = cJSON_GetObjectItem(o, "logp_sum_chosen")->child;
		int i = 0;
		for (const cJSON *p = cJSON_GetObjectItem(o, "pairs")->child; p;
		     p = p->next, i++) {
			double e;
			double s = completion_logp(m, p, "chosen_ids", ptl, &e);
			TAP_OK(e <= 1e-4, "bf16 pair %d: per-token log-probs within 1e-4 (max %.3g)",
			       i, e);
			TAP_NEAR(s, sum->valuedouble, 1e-3, "bf16 pair %d: logp_sum_chosen", i);
			ptl = ptl->next;
			sum = sum->next;
		}
	} else {
		tap_diag("%s", err ? err : "oracle_dtype.json unreadable");
	}
	free(err);
	train_model_free(m);
	cJSON_Delete(o);
	free(dir);
	free(opath);
}

static void check_real_gpt2(const char *shared)
{
	char *dir = xasprintf("%s/data/models/tiny-gpt2", shared);
	char *err = NULL;
	train_model *m = train_model_load(dir, &err);
	if (TAP_OK(m, "real tiny-gpt2 loads")) {
		const train_config *c = train_model_config(m);
		TAP_IS_INT(c->vocab, 50257, "real tiny-gpt2 vocabulary");
		int ids[] = {15496, 995, 50256, 0, 318};
		float lp[4];
		int ok = train_model_logprobs(m, ids, 5, lp, &err) == 0;
		for (int i = 0; i < 4 && ok; i++)
			ok = isfinite(lp[i]) && lp[i] < 0;
		TAP_OK(ok, "real tiny-gpt2 scores a sequence (finite log-probs)");
	} else {
		tap_diag("%s", err);
	}
	free(err);
	train_model_free(m);
	free(dir);
}

int main(void)
{
	const char *shared = tap_shared_dir();
	if (!shared)
		tap_skip_all("$DPO_SHARED (../shared) is absent: no oracle fixtures");
	check_model(shared, "tiny-gpt2");
	check_model(shared, "tiny-llama");
	check_model(shared, "tiny-qwen3");
	check_bf16(shared);
	check_real_gpt2(shared);
	return tap_done();
}

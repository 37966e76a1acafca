/* margins.c: DPO implicit-reward margins with the engine (see margins.h). */
#include "config.h"
#include "annotate/margins.h"
#include "train/chat.h"
#include "train/model.h"
#include "train/tokenizer.h"
#include "train/trainer.h"
#include "train/trainer_data.h"
#include "util/cli.h"
#include "util/progress.h"
#include "util/xmalloc.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* dpo-train's default --max-length */
#define ANN_MARGIN_MAX_LENGTH 1024
/* pairs written to the cache per transaction */
#define ANN_MARGIN_BATCH 32

typedef struct engine {
	train_tokenizer *tok;
	train_chat *chat;
	train_model *pol, *ref;
	train_tok_opts to;
	char tok_fp[65];
} engine;

static void engine_close(engine *e)
{
	train_model_free(e->pol);
	train_model_free(e->ref);
	train_chat_free(e->chat);
	train_tokenizer_free(e->tok);
}

/* Load the tokenizer (the policy's), chat renderer and both models, and
 * settle the tokenization as dpo-train does by default. */
static int engine_open(engine *e, const ann_margin_opts *o, char **err)
{
	char *why = NULL;
	memset(e, 0, sizeof *e);
	if (!(e->tok = train_tokenizer_load(o->policy_dir, &why)))
		goto fail;
	if (o->chat_format || train_tokenizer_chat_template(e->tok)) {
		e->chat = train_chat_new(e->tok, o->chat_format, &why);
		if (!e->chat && o->chat_format)
			goto fail;
		free(why); /* only conversations need it; they say so */
		why = NULL;
	}
	if (!(e->pol = train_model_load(o->policy_dir, &why)) || !(e->ref = train_model_load(o->reference_dir, &why)))
		goto fail;
	const train_config *pc = train_model_config(e->pol), *rc = train_model_config(e->ref);
	if (pc->vocab != rc->vocab) {
		why = xasprintf("the policy (%s) and the reference (%s) have different vocabularies (%d and %d tokens)",
				o->policy_dir, o->reference_dir, pc->vocab, rc->vocab);
		goto fail;
	}
	int max_pos = pc->max_pos < rc->max_pos ? pc->max_pos : rc->max_pos;
	e->to.append_eos = 1;
	e->to.add_bos = 0;
	e->to.max_length = max_pos < ANN_MARGIN_MAX_LENGTH ? max_pos : ANN_MARGIN_MAX_LENGTH;
	e->to.eos_id = train_tokenizer_eos_id(e->tok) >= 0 ? train_tokenizer_eos_id(e->tok) :
		       pc->n_eos > 0 ? pc->eos[0] : -1;
	e->to.bos_id = train_tokenizer_bos_id(e->tok) >= 0 ? train_tokenizer_bos_id(e->tok) : pc->bos;
	train_tok_fingerprint(train_tokenizer_fingerprint(e->tok), e->chat ? train_chat_describe(e->chat) : NULL,
			      &e->to, e->tok_fp);
	return 0;
fail:
	*err = why ? why : xstrdup("cannot load the models");
	engine_close(e);
	return -1;
}

/* Summed log-prob of c[0..nc) after p[0..np) under m into *out. */
static int seq_logp(const train_model *m, const int *p, int np, const int *c, int nc, double *out, char **err)
{
	*out = 0;
	if (nc <= 0)
		return 0;
	int T = np + nc;
	int *ids = xmalloc(sizeof(int) * (size_t)T);
	float *lp = xmalloc(sizeof(float) * (size_t)T);
	memcpy(ids, p, sizeof(int) * (size_t)np);
	memcpy(ids + np, c, sizeof(int) * (size_t)nc);
	int rc = train_model_logprobs(m, ids, T, lp, err);
	if (!rc)
		for (int t = np - 1; t < T - 1; t++)
			*out += lp[t];
	free(lp);
	free(ids);
	return rc ? -1 : 0;
}

/* The texts of one pair, copied from the store. */
typedef struct texts {
	int64_t a, b;
	char *prompt, *messages, *ta, *tb;
} texts;

static int prompt_cb(void *ud, const store_prompt *p)
{
	texts *t = ud;
	t->prompt = p->text ? xstrdup(p->text) : NULL;
	t->messages = p->messages_json ? xstrdup(p->messages_json) : NULL;
	return 0;
}

static int completion_cb(void *ud, const store_completion *c)
{
	texts *t = ud;
	if (c->id == t->a)
		t->ta = xstrdup(c->text ? c->text : "");
	else if (c->id == t->b)
		t->tb = xstrdup(c->text ? c->text : "");
	return 0;
}

static void texts_free(texts *t)
{
	free(t->prompt);
	free(t->messages);
	free(t->ta);
	free(t->tb);
}

/* The margin of pair p (beta not applied) into *m: tokenized as dpo-train
 * tokenizes a pair (a as chosen, b as rejected), scored by both models. */
static int pair_margin(store *st, engine *e, const store_pair_ref *p, double *m, char **err)
{
	texts t = {.a = p->completion_a, .b = p->completion_b};
	train_raw_pair raw = {0};
	train_pair tp = {0};
	int rc = -1;
	if (store_prompt_get(st, p->prompt_id, prompt_cb, &t) != STORE_OK ||
	    store_completions_foreach(st, p->prompt_id, 0, completion_cb, &t) != STORE_OK) {
		*err = xasprintf("%s: %s", store_path(st), store_errmsg(st));
		goto out;
	}
	if (!t.ta || !t.tb) {
		*err = xasprintf("prompt %lld: completion %lld or %lld is missing", (long long)p->prompt_id,
				 (long long)p->completion_a, (long long)p->completion_b);
		goto out;
	}
	char *why = NULL;
	if (t.messages && train_msgs_parse(t.messages, &raw.pmsgs, &raw.npmsgs, &why))
		goto bad;
	raw.prompt = t.messages ? NULL : xstrdup(t.prompt ? t.prompt : "");
	raw.chosen = t.ta;
	raw.rejected = t.tb;
	t.ta = t.tb = NULL;
	if (train_raw_tokenize(&raw, e->tok, e->chat, &e->to, &tp, &why))
		goto bad;
	double pa, pb, ra, rb;
	if (seq_logp(e->pol, tp.prompt, tp.np, tp.chosen, tp.nc, &pa, &why) ||
	    seq_logp(e->pol, tp.prompt, tp.np, tp.rejected, tp.nr, &pb, &why) ||
	    seq_logp(e->ref, tp.prompt, tp.np, tp.chosen, tp.nc, &ra, &why) ||
	    seq_logp(e->ref, tp.prompt, tp.np, tp.rejected, tp.nr, &rb, &why))
		goto bad;
	*m = (pa - ra) - (pb - rb);
	rc = 0;
	goto out;
bad:
	*err = xasprintf("prompt %lld (completions %lld and %lld): %s", (long long)p->prompt_id,
			 (long long)p->completion_a, (long long)p->completion_b, why ? why : "cannot score");
	free(why);
out:
	train_pair_free(&tp);
	train_raw_free(&raw);
	texts_free(&t);
	return rc;
}

typedef struct cached {
	store_margin *v;
	size_t n, cap;
} cached;

static int cached_cb(void *ud, const store_margin *m)
{
	cached *c = ud;
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 256;
		c->v = xreallocarray(c->v, c->cap, sizeof *c->v);
	}
	c->v[c->n++] = *m;
	return 0;
}

static int cached_cmp(const void *x, const void *y)
{
	const store_margin *p = x, *q = y;
	if (p->completion_a != q->completion_a)
		return p->completion_a < q->completion_a ? -1 : 1;
	return p->completion_b < q->completion_b ? -1 : p->completion_b > q->completion_b;
}

/* Fill out[i] from the cache where it holds the pair (read in one scan);
 * need[i] marks the misses. Returns the number of hits, or -1 with *err. */
static long from_cache(store *st, const engine *e, const store_pair_ref *pairs, size_t n, double beta,
		       ann_margin *out, char *need, char **err)
{
	store_margin_key k = {train_model_fingerprint(e->pol), train_model_fingerprint(e->ref), e->tok_fp, 0, 0};
	cached c = {0};
	if (store_margins_foreach(st, &k, cached_cb, &c) < 0) {
		*err = xasprintf("%s: %s", store_path(st), store_errmsg(st));
		free(c.v);
		return -1;
	}
	long hits = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t a = pairs[i].completion_a, b = pairs[i].completion_b;
		store_margin probe = {a < b ? a : b, a < b ? b : a, 0};
		const store_margin *m = c.n ? bsearch(&probe, c.v, c.n, sizeof *c.v, cached_cmp) : NULL;
		out[i] = (ann_margin){a, b, NAN};
		need[i] = !m;
		if (m) {
			out[i].margin = beta * (a < b ? m->margin : -m->margin);
			hits++;
		}
	}
	free(c.v);
	return hits;
}

int ann_margins_compute(store *st, const ann_margin_opts *o, const store_pair_ref *pairs, size_t n,
			ann_margin *out, ann_margin_counts *k, char **err)
{
	engine e;
	int rc = -1, intx = 0;
	char *need = xcalloc(n ? n : 1, 1);
	util_progress *pg = NULL;
	*err = NULL;
	memset(k, 0, sizeof *k);
	if (engine_open(&e, o, err)) {
		free(need);
		return -1;
	}
	long hits = from_cache(st, &e, pairs, n, o->beta, out, need, err);
	if (hits < 0)
		goto out;
	k->cached = (size_t)hits;
	size_t miss = n - k->cached;
	int cache = !store_readonly(st);
	if (miss && !o->quiet)
		pg = util_progress_new("margins", (double)miss, "pairs");
	for (size_t i = 0; i < n; i++) {
		if (!need[i])
			continue;
		if (util_interrupted()) {
			*err = xstrdup("interrupted (the margins computed so far are cached)");
			goto out;
		}
		double m;
		if (pair_margin(st, &e, &pairs[i], &m, err))
			goto out;
		out[i].margin = o->beta * m;
		k->computed++;
		if (cache && !intx && store_begin(st) == STORE_OK)
			intx = 1;
		store_margin_key key = {train_model_fingerprint(e.pol), train_model_fingerprint(e.ref), e.tok_fp,
					pairs[i].completion_a, pairs[i].completion_b};
		if (intx && store_margin_put(st, &key, m) != STORE_OK) {
			*err = xasprintf("%s: %s", store_path(st), store_errmsg(st));
			goto out;
		}
		if (intx && (k->computed % ANN_MARGIN_BATCH == 0 || k->computed == miss)) {
			intx = 0;
			if (store_commit(st) != STORE_OK) {
				*err = xasprintf("%s: %s", store_path(st), store_errmsg(st));
				goto out;
			}
		}
		util_progress_update(pg, (double)k->computed, NULL);
	}
	rc = 0;
out:
	if (intx && store_commit(st) != STORE_OK && !*err) { /* keep what was computed */
		*err = xasprintf("%s: %s", store_path(st), store_errmsg(st));
		rc = -1;
	}
	if (pg) {
		util_progress_finish(pg);
		util_progress_free(pg);
	}
	engine_close(&e);
	free(need);
	return rc;
}

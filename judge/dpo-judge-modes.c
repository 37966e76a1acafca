/* dpo-judge-modes.c: the run of dpo-judge --mode rating and --mode rank
 * (judge_modes.h): choosing what to ask, one engine loop, and storing the
 * ratings or the comparisons a ranking implies. */
#include "config.h"
#include "judge/judge_modes.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/cli.h"
#include "util/progress.h"
#include "util/xmalloc.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The same seed as dpo-judge's pairwise requests: a rerun builds the same
 * request and hits the cache. */
#define MODE_NONCE_SEED 0x64706f6a75646765ULL

/* One request: a completion to rate, or the completions of a prompt to rank. */
typedef struct unit {
	int64_t prompt_id;
	int64_t *cids;      /* rating: the one completion; rank: all, in id order */
	int nc;
	int64_t partner;    /* rating: the claim's other completion (0: unclaimed) */
	int order[JUDGE_RANK_MAX]; /* rank: letter j shows cids[order[j]] */
	int claimed;
} unit;

typedef struct mreq {
	judge_job job;
	size_t unit;
	char nonce[17];
	char hash[65];
	struct mreq *prev, *next;
} mreq;

typedef struct mctx {
	const judge_mode_run *r;
	judge_mode_result *out;
	char *cache_url;    /* the URL with the mode: part of the cache key */
	unit *u;
	size_t nu, next;
	judge_engine *eng;
	util_progress *prog;
	mreq *inflight;
	long failed_shown;
	/* the texts of one prompt */
	int64_t cur_prompt;
	char *ptext;
	int64_t *tids;
	char **texts;
	size_t nt;
} mctx;

/* ---- what to ask --------------------------------------------------------- */

typedef struct idlist {
	int64_t *v;
	size_t n;
} idlist;

static int on_prompt_id(void *ud, const store_prompt *p)
{
	idlist *l = ud;
	l->v = xreallocarray(l->v, l->n + 1, sizeof *l->v);
	l->v[l->n++] = p->id;
	return 0;
}

static int on_completion_id(void *ud, const store_completion *c)
{
	return on_prompt_id(ud, &(store_prompt){.id = c->id});
}

typedef struct pair_count {
	int64_t judge;
	long n;
} pair_count;

static int on_comparison(void *ud, const store_comparison *c)
{
	pair_count *pc = ud;
	pc->n += c->annotator_id == pc->judge;
	return 0;
}

static void add_unit(mctx *m, int64_t prompt_id, const int64_t *cids, int nc, int64_t partner)
{
	m->u = xreallocarray(m->u, m->nu + 1, sizeof *m->u);
	unit *u = &m->u[m->nu++];
	memset(u, 0, sizeof *u);
	u->prompt_id = prompt_id;
	u->cids = xmalloc(sizeof *u->cids * (size_t)nc);
	memcpy(u->cids, cids, sizeof *u->cids * (size_t)nc);
	u->nc = nc;
	u->partner = partner;
	if (m->r->mode == JUDGE_MODE_RANK)
		judge_rank_order(m->r->seed, prompt_id, nc, u->order);
}

/* Nonzero when the judge has rated completion c on every aspect. */
static int rated(mctx *m, int64_t c)
{
	const judge_mode_run *r = m->r;
	size_t na = r->naspects ? r->naspects : 1;
	for (size_t i = 0; i < na; i++)
		if (store_rating_get(r->st, c, r->annotator_id, r->naspects ? r->aspects[i] : "overall", NULL) !=
		    STORE_OK)
			return 0;
	return 1;
}

/* The pending units, in prompt then completion order, at most r->limit. */
static int choose_units(mctx *m)
{
	const judge_mode_run *r = m->r;
	idlist prompts = {0}, cs = {0};
	int rc = 0;
	if (store_prompts_foreach(r->st, r->split, r->source, 0, on_prompt_id, &prompts) != STORE_OK)
		rc = -1;
	for (size_t i = 0; !rc && i < prompts.n && (r->limit <= 0 || (long)m->nu < r->limit); i++) {
		cs.n = 0;
		if (store_completions_foreach(r->st, prompts.v[i], 0, on_completion_id, &cs) != STORE_OK) {
			rc = -1;
			break;
		}
		if (r->mode == JUDGE_MODE_RATING) {
			for (size_t k = 0; k < cs.n && (r->limit <= 0 || (long)m->nu < r->limit); k++)
				if (!rated(m, cs.v[k]))
					add_unit(m, prompts.v[i], &cs.v[k], 1, cs.n > 1 ? cs.v[(k + 1) % cs.n] : 0);
			continue;
		}
		if (cs.n < 2)
			continue;
		if (cs.n > JUDGE_RANK_MAX) {
			util_warn("prompt %lld: %zu completions; --mode rank shows at most %d (not ranked)",
				  (long long)prompts.v[i], cs.n, JUDGE_RANK_MAX);
			continue;
		}
		pair_count pc = {r->annotator_id, 0};
		if (store_comparisons_foreach(r->st, prompts.v[i], on_comparison, &pc) != STORE_OK) {
			rc = -1;
			break;
		}
		if (pc.n < (long)(cs.n * (cs.n - 1) / 2))
			add_unit(m, prompts.v[i], cs.v, (int)cs.n, 0);
	}
	free(prompts.v);
	free(cs.v);
	if (rc)
		m->out->store_failed = 1;
	return rc;
}

/* ---- claims ---------------------------------------------------------------- */

/* The claims of unit u: rank, each pair of its completions; rating, the
 * completion with its partner under a scope of its own (a claim names two
 * completions). f: store_claim_try (got: all held) or release. */
static int unit_claims(mctx *m, unit *u, int take)
{
	const judge_mode_run *r = m->r;
	char scope[512];
	int all = 1;
	for (int i = 0; i < u->nc; i++) {
		for (int j = i + 1; j < u->nc || (u->partner && j == 1 && i == 0); j++) {
			store_claim cl = {u->cids[i], j < u->nc ? u->cids[j] : u->partner, r->claim_scope,
					  r->claim_owner, 0};
			if (r->mode == JUDGE_MODE_RATING) {
				snprintf(scope, sizeof scope, "%s/rating/%lld", r->claim_scope, (long long)u->cids[0]);
				cl.scope = scope;
			}
			int got = 1;
			if (!take)
				store_claim_release(r->st, &cl);
			else if (store_claim_try(r->st, &cl, 1, &got) != STORE_OK)
				got = 1; /* the store cannot claim: the work goes on */
			all &= got;
			if (r->mode == JUDGE_MODE_RATING)
				return all;
		}
	}
	return all;
}

/* ---- requests ------------------------------------------------------------ */

static int on_text(void *ud, const store_completion *c)
{
	mctx *m = ud;
	m->tids = xreallocarray(m->tids, m->nt + 1, sizeof *m->tids);
	m->texts = xreallocarray(m->texts, m->nt + 1, sizeof *m->texts);
	m->tids[m->nt] = c->id;
	m->texts[m->nt++] = xstrdup(c->text);
	return 0;
}

static int on_ptext(void *ud, const store_prompt *p)
{
	mctx *m = ud;
	m->ptext = p->text ? xstrdup(p->text) : judge_messages_text(p->messages_json);
	return 0;
}

static void drop_texts(mctx *m)
{
	for (size_t i = 0; i < m->nt; i++)
		free(m->texts[i]);
	free(m->texts);
	free(m->tids);
	free(m->ptext);
	m->texts = NULL;
	m->tids = NULL;
	m->ptext = NULL;
	m->nt = 0;
	m->cur_prompt = 0;
}

static const char *text_of(mctx *m, int64_t id)
{
	for (size_t i = 0; i < m->nt; i++)
		if (m->tids[i] == id)
			return m->texts[i];
	return NULL;
}

/* Fill q's body for its unit. Returns 0, or -1 when a text is missing. */
static int build(mctx *m, mreq *q)
{
	const judge_mode_run *r = m->r;
	unit *u = &m->u[q->unit];
	const char *shown[JUDGE_RANK_MAX + 1];
	if (m->cur_prompt != u->prompt_id) {
		drop_texts(m);
		if (store_prompt_get(r->st, u->prompt_id, on_ptext, m) != STORE_OK ||
		    store_completions_foreach(r->st, u->prompt_id, 0, on_text, m) != STORE_OK)
			return -1;
		m->cur_prompt = u->prompt_id;
	}
	shown[0] = m->ptext;
	for (int j = 0; j < u->nc; j++)
		if (!(shown[j + 1] = text_of(m, u->cids[r->mode == JUDGE_MODE_RANK ? u->order[j] : j])))
			return -1;
	judge_nonce(MODE_NONCE_SEED, shown, (size_t)u->nc + 1, q->nonce);
	judge_fields f = {m->ptext, shown[1], NULL, NULL, q->nonce, 0, (int)r->mode, shown + 1, (size_t)u->nc,
			  r->aspects, r->naspects};
	util_buf prompt = UTIL_BUF_INIT, b = UTIL_BUF_INIT;
	judge_template_render(r->tmpl, &f, &prompt);
	judge_request_body(r->provider, &r->prm, util_buf_str(&prompt), &b);
	util_buf_free(&prompt);
	judge_cache_key(m->cache_url, b.data, b.len, q->hash);
	q->job.url = r->url;
	q->job.headers = r->headers;
	q->job.body_len = b.len;
	q->job.body = util_buf_detach(&b);
	util_buf_free(&b);
	q->job.est_tokens = (double)q->job.body_len / 4.0 + (double)r->prm.max_tokens;
	q->job.ud = q;
	return 0;
}

static void mreq_free(mreq *q)
{
	if (!q)
		return;
	free(q->job.body);
	judge_job_clear(&q->job);
	free(q);
}

/* ---- answers -------------------------------------------------------------- */

/* What an answer says: the scores (rating) or levels (rank). */
typedef struct verdict {
	int score[JUDGE_ASPECTS_MAX];
	int level[JUDGE_RANK_MAX];
	char *text;        /* the answer text */
	judge_usage usage;
} verdict;

/* Parse body into v. Returns 1 with a score or ranking, 0 without one (err
 * says why), -1 when the body is malformed (worth another try). */
static int read_answer(mctx *m, mreq *q, const char *body, size_t n, verdict *v, char *err, size_t errsz)
{
	const judge_mode_run *r = m->r;
	unit *u = &m->u[q->unit];
	judge_reply rep;
	memset(v, 0, sizeof *v);
	int prc = judge_reply_parse(r->provider, body, n, &rep, err, errsz);
	if (prc != JUDGE_OK)
		return prc == JUDGE_EINVAL ? -1 : 0;
	v->usage = rep.usage;
	v->text = rep.text;
	size_t tl = strlen(rep.text);
	int ok = 1;
	if (r->mode == JUDGE_MODE_RANK) {
		ok = judge_ranking_find(rep.text, tl, q->nonce, u->nc, v->level);
		if (!ok)
			snprintf(err, errsz, "the judge's answer has no ranking of the %d answers ([[B > A ...]])",
				 u->nc);
	} else {
		size_t na = r->naspects ? r->naspects : 1;
		for (size_t i = 0; ok && i < na; i++) {
			v->score[i] = judge_rating_find(rep.text, tl, q->nonce, r->naspects ? r->aspects[i] : NULL, 1,
							r->naspects ? 5 : 10);
			if (!v->score[i]) {
				ok = 0;
				if (r->naspects)
					snprintf(err, errsz, "the judge's answer has no score for %s ([[%s: N]], 1 to 5)",
						 r->aspects[i], r->aspects[i]);
				else
					snprintf(err, errsz, "the judge's answer has no score ([[N]], 1 to 10)");
			}
		}
	}
	if (!ok && rep.cut)
		snprintf(err, errsz, "the answer stopped at the token limit before its %s (raise --max-tokens)",
			 r->mode == JUDGE_MODE_RANK ? "ranking" : "score");
	return ok;
}

static int store_fail(mctx *m)
{
	if (!m->out->store_failed)
		util_warn("%s", store_errmsg(m->r->st));
	m->out->store_failed = 1;
	return 1;
}

/* The rationale of a ranking: the ranking, the completion each letter
 * showed, and the judge's explanation. Malloc'ed. */
static char *rank_rationale(const unit *u, const verdict *v)
{
	util_buf b = UTIL_BUF_INIT;
	char *rk = judge_ranking_text(v->level, u->nc);
	util_buf_addf(&b, "rank: %s (", rk);
	free(rk);
	for (int j = 0; j < u->nc; j++)
		util_buf_addf(&b, "%s%c: completion %lld", j ? ", " : "", (char)('A' + j),
			      (long long)u->cids[u->order[j]]);
	util_buf_adds(&b, ")");
	if (v->text && strspn(v->text, " \t\r\n") < strlen(v->text)) {
		size_t tl = strlen(v->text);
		if (tl > JUDGE_EXPLANATION_MAX) { /* cut at a character */
			tl = JUDGE_EXPLANATION_MAX;
			while (tl > 0 && ((unsigned char)v->text[tl] & 0xC0) == 0x80)
				tl--;
		}
		util_buf_adds(&b, "\n\njudge: ");
		util_buf_add(&b, v->text, tl);
	}
	char *s = util_buf_detach(&b);
	util_buf_free(&b);
	return s;
}

/* Store what v says about unit u (in the caller's transaction). */
static int store_labels(mctx *m, const unit *u, const verdict *v)
{
	const judge_mode_run *r = m->r;
	int created = 0;
	if (r->mode == JUDGE_MODE_RATING) {
		size_t na = r->naspects ? r->naspects : 1;
		for (size_t i = 0; i < na; i++) {
			if (store_rating_add(r->st, u->cids[0], r->annotator_id, r->naspects ? r->aspects[i] : "overall",
					     v->score[i], 1, r->naspects ? 5 : 10, r->run_id, &created) != STORE_OK)
				return store_fail(m);
			m->out->labels += created;
		}
		return 0;
	}
	int pos[JUDGE_RANK_MAX]; /* the letter of each completion (index in id order) */
	for (int j = 0; j < u->nc; j++)
		pos[u->order[j]] = j;
	char *why = rank_rationale(u, v);
	int rc = 0;
	for (int i = 0; !rc && i < u->nc; i++)
		for (int k = i + 1; !rc && k < u->nc; k++) {
			int li = v->level[pos[i]], lk = v->level[pos[k]];
			store_comparison c = {0};
			c.prompt_id = u->prompt_id;
			c.completion_a = u->cids[i];
			c.completion_b = u->cids[k];
			c.annotator_id = r->annotator_id;
			c.verdict = li < lk ? "a" : lk < li ? "b" : "tie";
			c.shown_first = pos[i] < pos[k] ? "a" : "b";
			c.rationale = why;
			c.confidence = NAN;
			c.duration_ms = -1;
			c.run_id = r->run_id;
			if (store_comparison_add(r->st, &c, NULL, &created) != STORE_OK)
				rc = store_fail(m);
			m->out->labels += created;
		}
	free(why);
	return rc;
}

static void note_failure(mctx *m, const unit *u, const char *msg)
{
	m->out->failed++;
	if (m->failed_shown < 5) {
		if (m->prog && isatty(2))
			fputc('\n', stderr);
		if (m->r->mode == JUDGE_MODE_RANK)
			util_warn("prompt %lld: %s", (long long)u->prompt_id, msg);
		else
			util_warn("prompt %lld, completion %lld: %s", (long long)u->prompt_id, (long long)u->cids[0],
				  msg);
	} else if (m->failed_shown == 5) {
		util_warn("(more failures are not shown)");
	}
	m->failed_shown++;
}

static void count_usage(mctx *m, const judge_usage *us)
{
	judge_mode_result *o = m->out;
	o->in_tok += us->input_tokens;
	o->out_tok += us->output_tokens;
	o->reason_tok += us->reasoning_tokens;
	if (m->r->cost_known)
		o->cost += (double)us->input_tokens * m->r->price_in / 1e6 +
			   (double)us->output_tokens * m->r->price_out / 1e6;
}

/* q finished (from the engine, or from the cache when cached is not NULL:
 * its body). Takes q. Returns nonzero to stop the run. */
static int finish(mctx *m, mreq *q, const char *cached)
{
	const judge_mode_run *r = m->r;
	unit *u = &m->u[q->unit];
	int rc = 0;
	if (!cached && q->job.fatal) {
		m->out->fatal = 1;
		m->out->unreachable = q->job.unreachable;
		snprintf(m->out->fatal_msg, sizeof m->out->fatal_msg, "%s", q->job.errmsg);
		if (u->claimed)
			unit_claims(m, u, 0);
		mreq_free(q);
		return 1;
	}
	if (!cached && !q->job.ok) {
		m->out->errors++;
		note_failure(m, u, q->job.errmsg);
	} else {
		verdict v;
		char err[512] = "";
		const char *body = cached ? cached : util_buf_str(&q->job.response);
		int ok = read_answer(m, q, body, strlen(body), &v, err, sizeof err) == 1;
		if (!cached) {
			count_usage(m, &v.usage);
			if (m->eng && (v.usage.input_tokens || v.usage.output_tokens))
				judge_engine_tokens_used(m->eng, q->job.est_tokens -
									  (double)(v.usage.input_tokens + v.usage.output_tokens));
		}
		if (!ok) {
			m->out->errors++;
			note_failure(m, u, err[0] ? err : "the judge's answer has no score or ranking");
		} else if (store_begin(r->st) != STORE_OK) {
			rc = store_fail(m);
		} else {
			if (!cached && store_cache_put(r->st, q->hash, body, "{}") != STORE_OK)
				rc = store_fail(m);
			if (!rc)
				rc = store_labels(m, u, &v);
			if (!rc && store_commit(r->st) != STORE_OK)
				rc = store_fail(m);
			if (rc)
				store_rollback(r->st);
			else
				m->out->done++;
		}
		free(v.text);
	}
	if (u->claimed)
		unit_claims(m, u, 0);
	mreq_free(q);
	return rc;
}

/* ---- engine callbacks ----------------------------------------------------- */

static judge_job *cb_next(void *ud)
{
	mctx *m = ud;
	while (m->next < m->nu && !m->out->fatal && !m->out->store_failed) {
		size_t i = m->next++;
		unit *u = &m->u[i];
		if (m->r->claim_owner) {
			if (!unit_claims(m, u, 1)) {
				unit_claims(m, u, 0);
				m->out->claimed_elsewhere++;
				m->out->units--;
				continue;
			}
			u->claimed = 1;
		}
		mreq *q = xcalloc(1, sizeof *q);
		q->unit = i;
		if (build(m, q)) {
			snprintf(q->job.errmsg, sizeof q->job.errmsg, "cannot read the prompt or its completions");
			if (finish(m, q, NULL))
				return NULL;
			continue;
		}
		char *cached = NULL;
		if (store_cache_get(m->r->st, q->hash, &cached) == STORE_OK) {
			verdict v;
			char err[64];
			int ok = read_answer(m, q, cached, strlen(cached), &v, err, sizeof err) == 1;
			free(v.text);
			if (ok) {
				m->out->cached++;
				int stop = finish(m, q, cached);
				free(cached);
				if (stop)
					return NULL;
				continue;
			}
			free(cached);
		}
		q->next = m->inflight;
		if (q->next)
			q->next->prev = q;
		m->inflight = q;
		return &q->job;
	}
	return NULL;
}

static void unlink_q(mctx *m, mreq *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else
		m->inflight = q->next;
	if (q->next)
		q->next->prev = q->prev;
	q->prev = q->next = NULL;
}

static int cb_done(void *ud, judge_job *job)
{
	mctx *m = ud;
	unlink_q(m, job->ud);
	int rc = finish(m, job->ud, NULL);
	if (m->prog)
		util_progress_update(m->prog, (double)(m->out->done + m->out->failed), NULL);
	return rc;
}

static int cb_accept(void *ud, judge_job *job)
{
	mctx *m = ud;
	verdict v;
	int rc = read_answer(m, job->ud, util_buf_str(&job->response), job->response.len, &v, job->errmsg,
			     sizeof job->errmsg);
	free(v.text);
	if (rc >= 0)
		job->errmsg[0] = '\0';
	return rc < 0;
}

static void cb_retry(void *ud, judge_job *job, double delay_ms)
{
	mctx *m = ud;
	(void)job;
	(void)delay_ms;
	m->out->retries++;
}

static int cb_tick(void *ud)
{
	mctx *m = ud;
	if (m->prog)
		util_progress_update(m->prog, (double)(m->out->done + m->out->failed), NULL);
	return m->out->store_failed;
}

int judge_modes_run(const judge_mode_run *r, judge_mode_result *out)
{
	mctx m;
	int rc = JUDGE_OK;
	memset(&m, 0, sizeof m);
	memset(out, 0, sizeof *out);
	m.r = r;
	m.out = out;
	m.cache_url = xasprintf("%s mode=%s", r->url, judge_mode_name(r->mode));
	if (choose_units(&m)) {
		util_warn("%s", store_errmsg(r->st));
		rc = JUDGE_ERR;
		goto out;
	}
	out->units = (long)m.nu;
	m.eng = judge_engine_new(&r->eo);
	util_catch_interrupts();
	if (!r->quiet && m.nu)
		m.prog = util_progress_new(r->mode == JUDGE_MODE_RANK ? "ranking" : "rating", (double)m.nu, "req");
	judge_engine_cbs cbs = {cb_next, cb_done, cb_tick, cb_retry, cb_accept, &m};
	int erc = judge_engine_run(m.eng, &cbs);
	out->sent = judge_engine_sent(m.eng);
	out->retries += judge_engine_resends(m.eng);
	if (m.prog)
		util_progress_finish(m.prog);
	if (erc == JUDGE_EINTR)
		rc = JUDGE_EINTR;
	else if (erc || out->fatal || out->store_failed)
		rc = JUDGE_ERR;
out:
	while (m.inflight) {
		mreq *q = m.inflight;
		unlink_q(&m, q);
		if (m.u[q->unit].claimed)
			unit_claims(&m, &m.u[q->unit], 0);
		mreq_free(q);
	}
	judge_engine_free(m.eng);
	util_progress_free(m.prog);
	drop_texts(&m);
	for (size_t i = 0; i < m.nu; i++)
		free(m.u[i].cids);
	free(m.u);
	free(m.cache_url);
	return rc;
}

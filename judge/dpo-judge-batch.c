/* dpo-judge-batch.c: dpo-judge --batch and --batch-status, a part of
 * dpo-judge.c (which includes it after its request and result code: a
 * batch request is built, answered from the cache, parsed and stored by
 * the same functions as a request sent one at a time).
 *
 * --batch hands the requests a run would send to the provider's batch API
 * (OpenAI Batch: a JSONL file uploaded to /files, then /batches;
 * Anthropic Message Batches: /v1/messages/batches) at half the price,
 * polls it until it ends, and reads the results back as if each had come
 * from the normal path. The batch and its requests are kept in the store
 * (store/batches.h) and its pairs are claimed by it, so that a run
 * stopped while the batch is pending (Ctrl-C, a crash) picks it up when
 * run again, and a concurrent normal run leaves its pairs alone. */
#include "judge/judge_batch.h"
#include "store/batches.h"
#include <time.h>

/* The claims of a pending batch last for its completion window (24 h) and
 * a day to collect it. */
#define BATCH_CLAIM_TTL_S (48 * 3600.0)
/* Requests and bytes in one batch at most (OpenAI's limits are 50,000 and
 * 200 MB; Anthropic's are larger). */
#define BATCH_MAX_REQUESTS 50000
#define BATCH_MAX_BYTES (190u << 20)

/* One request of the batch being collected. */
typedef struct bitem {
	char *custom_id;
	int64_t prompt_id, ca, cb;
	int order;
	char key[65];
	size_t pair;                /* in c->pairs */
	judge_batch_result res;     /* its result (custom_id NULL: none came) */
} bitem;

/* The batch a run submits or picks up. */
typedef struct bstate {
	ctx *c;
	struct curl_slist *auth;    /* the key headers (no Content-Type) */
	struct curl_slist *json;    /* auth and Content-Type: application/json */
	int64_t id;                 /* in the store */
	char *remote_id;            /* the provider's */
	char *owner;                /* of the batch's claims */
	char *created_at;
	bitem *items;
	size_t n, cap;
	long finished_before;       /* pairs finished while submitting (all from the cache) */
} bstate;

/* ---- options and endpoints ---------------------------------------------------- */

/* Combinations of the batch options; called by parse_options. */
static void batch_check_options(const opts *o)
{
	if (o->batch && o->batch_status)
		util_cli_usage_error(&cli, "--batch and --batch-status exclude each other");
	if (o->batch_wait && !o->batch_status)
		util_cli_usage_error(&cli, "--wait goes with --batch-status (--batch waits anyway)");
	if (o->batch && o->provider != JUDGE_PROVIDER_OPENAI && o->provider != JUDGE_PROVIDER_ANTHROPIC)
		util_cli_usage_error(&cli, "--batch needs --provider openai or anthropic (not %s)", o->provider_name);
}

/* The key headers of provider p for key (NULL: none). */
static struct curl_slist *batch_auth_headers(judge_provider p, const char *key)
{
	struct curl_slist *h = curl_slist_append(NULL, "Expect:");
	if (key && *key) {
		char *line = xasprintf("%s%s", p == JUDGE_PROVIDER_ANTHROPIC ? "x-api-key: " : "Authorization: Bearer ",
				       key);
		h = curl_slist_append(h, line);
		memset(line, 0, strlen(line));
		free(line);
	}
	if (p == JUDGE_PROVIDER_ANTHROPIC)
		h = curl_slist_append(h, "anthropic-version: 2023-06-01");
	return h;
}

/* Perform one call of the batch API: method on base + path (or on path
 * itself when it is a URL). Returns judge_http_call's value; a message in
 * c->fatal_msg on failure. */
static int batch_http(ctx *c, const char *base, const char *method, const char *path, const void *headers,
		      const char *body, size_t n, const char *upload, util_buf *resp)
{
	char *url = strstr(path, "://") ? xstrdup(path) : xasprintf("%s%s", base, path);
	judge_http h = {method, url, headers, body, n, upload, c->o->timeout, (int)c->o->max_retries, c->o->backoff};
	long status = 0;
	int rc = judge_http_call(&h, resp, &status, c->fatal_msg, sizeof c->fatal_msg);
	redact(c->fatal_msg, sizeof c->fatal_msg, c->api_key);
	free(url);
	return rc;
}

/* The path of batch id (status), for provider p. Malloc'ed. */
static char *batch_path(judge_provider p, const char *id)
{
	char *e = curl_easy_escape(NULL, id, 0);
	char *s = xasprintf(p == JUDGE_PROVIDER_ANTHROPIC ? "/v1/messages/batches/%s" : "/batches/%s", e ? e : id);
	curl_free(e);
	return s;
}

/* ---- the store's rows ------------------------------------------------------------ */

static void row_from_info(store_batch *b, const judge_batch_info *bi)
{
	b->status = bi->status;
	b->total = bi->total;
	b->succeeded = bi->succeeded;
	b->failed = bi->failed;
	b->output_ref = bi->output_ref;
	b->error_ref = bi->error_ref;
}

/* A copy of a pending batch row (the first one store_batches_foreach
 * finds for the run's judge and API base). */
typedef struct brow {
	ctx *c;
	int found;
	int64_t id;
	char *remote_id, *created_at, *stale_ids;
	util_buf stale;             /* ids of rows never submitted (a crash while submitting) */
} brow;

static int on_pending(void *ud, const store_batch *b)
{
	brow *r = ud;
	if (strcmp(b->base_url, r->c->base))
		return 0;
	if (!b->remote_id) {
		util_buf_add(&r->stale, &b->id, sizeof b->id);
		return 0;
	}
	if (!r->found) {
		r->found = 1;
		r->id = b->id;
		r->remote_id = xstrdup(b->remote_id);
		r->created_at = xstrdup(b->created_at ? b->created_at : "");
	}
	return 0;
}

/* Find the judge's pending batch (dropping rows that never reached the
 * provider and whose process is gone). Returns 0 (bs->remote_id set when
 * there is one), or 1. */
static int batch_find_pending(bstate *bs)
{
	ctx *c = bs->c;
	brow r = {.c = c, .stale = UTIL_BUF_INIT};
	int rc = 0;
	if (store_batches_foreach(c->st, c->claim_scope, 1, on_pending, &r) != STORE_OK) {
		rc = store_fail(c, "cannot read the batches");
		goto out;
	}
	for (size_t i = 0; i + sizeof(int64_t) <= r.stale.len; i += sizeof(int64_t)) {
		int64_t id;
		memcpy(&id, r.stale.data + i, sizeof id);
		char *owner = xasprintf("%s#batch%lld", c->claim_scope, (long long)id);
		long live = 0;
		int src = store_batch_claims_live(c->st, owner, &live);
		if (src == STORE_OK && live) { /* another process is submitting it */
			free(owner);
			continue;
		}
		if (src == STORE_OK)
			src = store_batch_release_claims(c->st, owner);
		free(owner);
		if (src != STORE_OK || store_batch_delete(c->st, id) != STORE_OK) {
			rc = store_fail(c, "cannot drop a batch that was never submitted");
			goto out;
		}
	}
	if (r.found) {
		bs->id = r.id;
		bs->remote_id = r.remote_id;
		bs->created_at = r.created_at;
		bs->owner = xasprintf("%s#batch%lld", c->claim_scope, (long long)r.id);
		r.remote_id = r.created_at = NULL;
	}
out:
	util_buf_free(&r.stale);
	free(r.remote_id);
	free(r.created_at);
	return rc;
}

/* ---- submitting ------------------------------------------------------------------ */

/* Put the requests of pair i that the cache cannot answer into the batch
 * (payload, and the store's rows); a pair the cache answers completely,
 * or one that cannot be judged, finishes here as in a normal run. Returns
 * 0, or 1 when the run must stop. */
static int batch_add_pair(bstate *bs, size_t i, util_buf *payload, long *nitems)
{
	ctx *c = bs->c;
	judge_pair *p = &c->pairs.v[i];
	req *rs[2] = {NULL, NULL};
	int cached[2] = {0, 0}, ncached = 0, rc = 0;
	p->t0 = util_now();
	p->issued = c->norders;
	for (int o = 0; o < c->norders; o++) {
		req *r = rs[o] = xcalloc(1, sizeof *r);
		const char *why = NULL;
		r->pair = i;
		r->order = o;
		if (build_request(c, r, &why)) {
			/* the pair cannot be judged: it fails as in a normal run */
			snprintf(r->job.errmsg, sizeof r->job.errmsg, "%s", why);
			p->outstanding = 1;
			rs[o] = NULL;
			rc = request_done(c, r, 1);
			goto out;
		}
		char *hit = NULL;
		if (store_cache_get(c->st, r->hash, &hit) == STORE_OK) {
			cached[o] = !parse_answer(c, r, hit, strlen(hit)) && r->verdict;
			ncached += cached[o];
			free(hit);
		}
	}
	if (ncached == c->norders) {
		p->outstanding = c->norders;
		for (int o = 0; o < c->norders && !rc; o++) {
			c->cached++;
			rs[o]->job.ok = 1;
			rc = request_done(c, rs[o], 1);
			rs[o] = NULL;
		}
		bs->finished_before++;
		goto out;
	}
	if (tx_begin(c)) { /* committed with the next claim */
		rc = 1;
		goto out;
	}
	for (int o = 0; o < c->norders; o++) {
		if (cached[o])
			continue; /* read from the cache again when the batch is collected */
		req *r = rs[o];
		char cid[JUDGE_BATCH_ID_MAX];
		judge_batch_custom_id(p->ca, p->cb, o, r->hash, cid);
		store_batch_item it = {cid, p->prompt_id, p->ca, p->cb, o, r->hash};
		if (store_batch_item_add(c->st, bs->id, &it) != STORE_OK) {
			rc = store_fail(c, "cannot record a batch request");
			goto out;
		}
		if (c->o->provider == JUDGE_PROVIDER_ANTHROPIC && *nitems)
			util_buf_addc(payload, ',');
		judge_batch_request(c->o->provider, cid, "/v1/chat/completions", r->job.body, r->job.body_len, payload);
		(*nitems)++;
	}
out:
	req_free(rs[0]);
	req_free(rs[1]);
	return rc;
}

/* Send the payload to the provider: upload and create (OpenAI) or create
 * (Anthropic). Returns 0 with *bi filled, or nonzero (message in
 * c->fatal_msg). */
static int batch_send(bstate *bs, const util_buf *payload, judge_batch_info *bi)
{
	ctx *c = bs->c;
	util_buf resp = UTIL_BUF_INIT;
	char err[256];
	int rc;
	if (c->o->provider == JUDGE_PROVIDER_ANTHROPIC) {
		rc = batch_http(c, c->base, "POST", "/v1/messages/batches", bs->json, payload->data, payload->len, NULL,
				&resp);
	} else {
		rc = batch_http(c, c->base, "POST", "/files", bs->auth, payload->data, payload->len, "batch.jsonl", &resp);
		cJSON *f = rc ? NULL : cJSON_ParseWithLength(resp.data, resp.len);
		const cJSON *fj = cJSON_GetObjectItemCaseSensitive(f, "id");
		const char *fid = cJSON_IsString(fj) ? fj->valuestring : NULL;
		if (!rc && !fid) {
			snprintf(c->fatal_msg, sizeof c->fatal_msg, "%s/files: the answer has no file \"id\"", c->base);
			rc = JUDGE_ERR;
		}
		if (!rc) {
			util_buf req = UTIL_BUF_INIT;
			util_buf_adds(&req, "{\"input_file_id\":");
			util_buf_add_json_string(&req, fid, strlen(fid));
			util_buf_adds(&req, ",\"endpoint\":\"/v1/chat/completions\",\"completion_window\":\"24h\"}");
			rc = batch_http(c, c->base, "POST", "/batches", bs->json, req.data, req.len, NULL, &resp);
			util_buf_free(&req);
		}
		cJSON_Delete(f);
	}
	if (!rc && judge_batch_info_parse(c->o->provider, resp.data, resp.len, bi, err, sizeof err)) {
		snprintf(c->fatal_msg, sizeof c->fatal_msg, "%s: creating the batch: %s", c->base, err);
		rc = JUDGE_ERR;
	}
	util_buf_free(&resp);
	return rc;
}

/* Give up a batch that was not created: its claims and rows go. */
static void batch_abandon(bstate *bs)
{
	ctx *c = bs->c;
	tx_commit(c);
	if (store_batch_release_claims(c->st, bs->owner) != STORE_OK || store_batch_delete(c->st, bs->id) != STORE_OK)
		store_fail(c, "cannot drop the batch");
}

/* Claim the chosen pairs, build their requests and submit what the cache
 * cannot answer as one batch. Returns 0 (bs->remote_id NULL when nothing
 * was left to send), or 1 (c->fatal or c->store_failed says why). */
static int batch_submit(bstate *bs)
{
	ctx *c = bs->c;
	store_batch row = {.provider = judge_provider_name(c->o->provider), .scope = c->claim_scope,
			   .base_url = c->base, .status = "submitting"};
	if (tx_begin(c) || store_batch_add(c->st, &row, &bs->id) != STORE_OK || tx_commit(c))
		return store_fail(c, "cannot record the batch");
	bs->owner = xasprintf("%s#batch%lld", c->claim_scope, (long long)bs->id);
	free(c->claim_owner); /* pair_finished releases this owner's claims */
	c->claim_owner = xstrdup(bs->owner);
	util_buf payload = UTIL_BUF_INIT;
	long nitems = 0, left = 0;
	int rc = 0;
	if (c->o->provider == JUDGE_PROVIDER_ANTHROPIC)
		util_buf_adds(&payload, "{\"requests\":[");
	for (size_t i = 0; i < c->pairs.n && !rc && !c->store_failed; i++) {
		if (nitems + c->norders > BATCH_MAX_REQUESTS || payload.len > BATCH_MAX_BYTES) {
			left = (long)(c->pairs.n - i);
			break;
		}
		if (!claim_pair(c, i, 1)) { /* one at a time: the batch may stop at its size */
			c->claimed_elsewhere++;
			continue;
		}
		rc = batch_add_pair(bs, i, &payload, &nitems);
	}
	if (c->o->provider == JUDGE_PROVIDER_ANTHROPIC)
		util_buf_adds(&payload, "]}");
	if (!rc && !c->store_failed)
		rc = tx_commit(c);
	if (rc || c->store_failed || nitems == 0) {
		batch_abandon(bs);
		util_buf_free(&payload);
		return rc || c->store_failed;
	}
	if (left)
		util_warn("%ld pairs do not fit in one batch (%d requests, %u MB at most): run again once this one "
			  "is in", left, BATCH_MAX_REQUESTS, BATCH_MAX_BYTES >> 20);
	judge_batch_info bi;
	rc = batch_send(bs, &payload, &bi);
	util_buf_free(&payload);
	if (rc) {
		c->fatal = 1;
		batch_abandon(bs);
		return 1;
	}
	c->sent = nitems;
	row.id = bs->id;
	row.remote_id = bi.id;
	row_from_info(&row, &bi);
	if (tx_begin(c) || store_batch_update(c->st, &row) != STORE_OK ||
	    store_batch_detach_claims(c->st, bs->owner, BATCH_CLAIM_TTL_S) != STORE_OK || tx_commit(c))
		rc = store_fail(c, "cannot record the batch");
	bs->remote_id = xstrdup(bi.id);
	if (!c->o->quiet)
		fprintf(stderr, "dpo-judge: submitted batch %s: %ld requests (%ld pairs answered from the cache)\n",
			term_name(bi.id), nitems, bs->finished_before);
	judge_batch_info_free(&bi);
	return rc;
}

/* ---- polling --------------------------------------------------------------------- */

/* Sleep s seconds unless interrupted; nonzero when interrupted. */
static int batch_nap(double s)
{
	for (double left = s; left > 0; left -= 0.05) {
		if (util_interrupted())
			return 1;
		struct timespec ts = {0, (long)((left < 0.05 ? left : 0.05) * 1e9)};
		nanosleep(&ts, NULL);
	}
	return util_interrupted();
}

/* Poll batch remote_id of provider p at base until it ends, recording its
 * status in row id of the store. Returns 0 with *bi filled (free it),
 * JUDGE_EINTR, or JUDGE_ERR (c->fatal_msg). */
static int batch_poll(ctx *c, judge_provider p, const char *base, const void *headers, int64_t id,
		      const char *remote_id, judge_batch_info *bi)
{
	char *path = batch_path(p, remote_id);
	util_buf resp = UTIL_BUF_INIT;
	char err[256], last[160] = "";
	int rc;
	memset(bi, 0, sizeof *bi);
	for (;;) {
		if ((rc = batch_http(c, base, "GET", path, headers, NULL, 0, NULL, &resp)))
			break;
		if (judge_batch_info_parse(p, resp.data, resp.len, bi, err, sizeof err)) {
			snprintf(c->fatal_msg, sizeof c->fatal_msg, "batch %s: %s", remote_id, err);
			rc = JUDGE_ERR;
			break;
		}
		store_batch row = {.id = id};
		row_from_info(&row, bi);
		if (store_batch_update(c->st, &row) != STORE_OK) {
			snprintf(c->fatal_msg, sizeof c->fatal_msg, "%s", store_errmsg(c->st));
			rc = JUDGE_ERR;
			break;
		}
		char now[160];
		snprintf(now, sizeof now, "%s, %ld of %ld requests done, %ld failed", bi->status, bi->succeeded + bi->failed,
			 bi->total, bi->failed);
		if (!c->o->quiet && strcmp(now, last)) { /* term_name holds one name at a time */
			fprintf(stderr, "dpo-judge: batch %s: ", term_name(remote_id));
			fprintf(stderr, "%s\n", term_name(now));
		}
		snprintf(last, sizeof last, "%s", now);
		if (bi->ended)
			break;
		judge_batch_info_free(bi);
		if (batch_nap(c->o->poll_interval)) {
			rc = JUDGE_EINTR;
			break;
		}
	}
	if (rc)
		judge_batch_info_free(bi);
	util_buf_free(&resp);
	free(path);
	return rc;
}

/* ---- collecting ------------------------------------------------------------------ */

static int on_item(void *ud, const store_batch_item *it)
{
	bstate *bs = ud;
	if (bs->n == bs->cap) {
		bs->cap = bs->cap ? bs->cap * 2 : 64;
		bs->items = xreallocarray(bs->items, bs->cap, sizeof *bs->items);
	}
	bitem *b = &bs->items[bs->n++];
	memset(b, 0, sizeof *b);
	b->custom_id = xstrdup(it->custom_id);
	b->prompt_id = it->prompt_id;
	b->ca = it->completion_a;
	b->cb = it->completion_b;
	b->order = it->order;
	snprintf(b->key, sizeof b->key, "%s", it->cache_key);
	return 0;
}

/* Items by custom_id (qsort/bsearch of an index of pointers). */
static int cmp_item_ptr(const void *a, const void *b)
{
	return strcmp((*(bitem *const *)a)->custom_id, (*(bitem *const *)b)->custom_id);
}

/* The item with custom_id id in byid[0..n) (sorted by custom_id), or NULL. */
static bitem *find_item(bitem **byid, size_t n, const char *id)
{
	bitem key = {.custom_id = (char *)id}, *kp = &key;
	bitem **hit = bsearch(&kp, byid, n, sizeof *byid, cmp_item_ptr);
	return hit ? *hit : NULL;
}

/* Read the results file ref ("output file" or "error file": what) into
 * the items. Every line is checked before anything is written. Returns 0,
 * or 1 with a message naming the batch and the line in c->fatal_msg. */
static int batch_read_results(bstate *bs, bitem **byid, const char *ref, const char *what)
{
	ctx *c = bs->c;
	judge_provider p = c->o->provider;
	util_buf resp = UTIL_BUF_INIT;
	char *path = NULL;
	if (p == JUDGE_PROVIDER_ANTHROPIC) {
		path = xstrdup(ref);
	} else {
		char *e = curl_easy_escape(NULL, ref, 0);
		path = xasprintf("/files/%s/content", e ? e : ref);
		curl_free(e);
	}
	int rc = batch_http(c, c->base, "GET", path, bs->auth, NULL, 0, NULL, &resp) ? 1 : 0;
	const char *s = util_buf_str(&resp), *end = s + resp.len;
	for (long line = 1; !rc && s < end; line++) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t len = nl ? (size_t)(nl - s) : (size_t)(end - s);
		const char *next = nl ? nl + 1 : end;
		while (len && (s[len - 1] == '\r' || s[len - 1] == ' '))
			len--;
		judge_batch_result r;
		char err[200];
		bitem *it = NULL;
		if (len && judge_batch_result_parse(p, s, len, &r, err, sizeof err)) {
			rc = 1;
		} else if (len && !(it = find_item(byid, bs->n, r.custom_id))) {
			snprintf(err, sizeof err, "custom_id \"%.80s\" is not a request of the batch", r.custom_id);
			judge_batch_result_free(&r);
			rc = 1;
		} else if (it && it->res.custom_id) {
			snprintf(err, sizeof err, "custom_id \"%.80s\" has two results", r.custom_id);
			judge_batch_result_free(&r);
			rc = 1;
		} else if (it) {
			it->res = r;
		}
		if (rc)
			snprintf(c->fatal_msg, sizeof c->fatal_msg, "batch %s: %s line %ld: %s", bs->remote_id, what, line,
				 err);
		s = next;
	}
	util_buf_free(&resp);
	free(path);
	return rc;
}

/* The index in c->pairs of the pair of it: a pair chosen by this run, or
 * one added for the batch (a batch picked up from an earlier run). */
static size_t batch_pair_of(bstate *bs, const bitem *it, size_t nchosen, size_t *hint)
{
	ctx *c = bs->c;
	judge_pair_set *s = &c->pairs;
	/* items come by pair, mostly in the order the pairs were chosen */
	for (size_t k = 0; k < s->n; k++) {
		size_t i = (*hint + k) % s->n;
		if (s->v[i].ca == it->ca && s->v[i].cb == it->cb && (i >= nchosen || s->v[i].issued))
			return *hint = i;
	}
	judge_pairs_add(s, it->prompt_id, it->ca, it->cb, 0);
	judge_pair *p = &s->v[s->n - 1];
	p->first_b = c->norders == 1 ? judge_pair_first_b(p->prompt_id, p->ca, p->cb) : 0;
	return s->n - 1;
}

/* Why order o of pair p cannot be taken from it (NULL: it can). r is the
 * request rebuilt (its nonce and cache key); with no item the answer must
 * come from the cache. Fills r's answer; *cached says it came from there. */
static const char *batch_answer(bstate *bs, const bitem *it, req *r, int *cached)
{
	ctx *c = bs->c;
	*cached = 0;
	if (!it) {
		char *hit = NULL;
		if (store_cache_get(c->st, r->hash, &hit) != STORE_OK)
			return "its answer is no longer in the request cache";
		int bad = parse_answer(c, r, hit, strlen(hit));
		free(hit);
		if (bad || !r->verdict)
			return "its cached answer has no verdict";
		r->job.ok = *cached = 1;
		return NULL;
	}
	if (strcmp(r->hash, it->key))
		return "the request differs from the one in the batch (the texts changed)";
	if (!it->res.custom_id)
		return "no result came back for it";
	if (!it->res.ok)
		return it->res.error;
	util_buf_adds(&r->job.response, it->res.body);
	r->job.ok = parse_answer(c, r, it->res.body, strlen(it->res.body)) == 0;
	return NULL;
}

/* Store the answers of the pair whose items are bs->items[lo..hi): a
 * comparison when every order has an answer (through request_done, as in
 * a normal run); otherwise the pair stays unlabelled (the answers that did
 * come are cached and paid for). Returns 0, or 1 when the run must stop. */
static int batch_finish_pair(bstate *bs, size_t lo, size_t hi, long *unlabeled)
{
	ctx *c = bs->c;
	size_t pi = bs->items[lo].pair;
	req *rs[2] = {NULL, NULL};
	const bitem *its[2] = {NULL, NULL};
	const char *fail = NULL;
	int cached[2] = {0, 0}, rc = 0, fo = 0;
	for (size_t k = lo; k < hi; k++)
		if (bs->items[k].order >= 0 && bs->items[k].order < c->norders)
			its[bs->items[k].order] = &bs->items[k];
	for (int o = 0; o < c->norders; o++) {
		req *r = rs[o] = xcalloc(1, sizeof *r);
		const char *why = NULL;
		r->pair = pi;
		r->order = o;
		const char *f = build_request(c, r, &why) ? why : batch_answer(bs, its[o], r, &cached[o]);
		if (f && !fail) {
			fail = f;
			fo = o;
		}
	}
	judge_pair *p = &c->pairs.v[pi];
	if (fail) {
		for (int o = 0; o < c->norders; o++)
			if (its[o] && rs[o]->job.ok && !cached[o]) { /* paid for: counted and cached */
				util_buf meta = UTIL_BUF_INIT;
				record_usage(c, rs[o], &meta);
				if (rs[o]->verdict && (tx_begin(c) || store_cache_put(c->st, rs[o]->hash,
										util_buf_str(&rs[o]->job.response),
										util_buf_str(&meta)) != STORE_OK))
					rc = store_fail(c, "cannot write the request cache");
				util_buf_free(&meta);
			}
		if ((*unlabeled)++ < 5)
			util_warn("prompt %lld, completions %lld and %lld: not labelled: %s%s", (long long)p->prompt_id,
				  (long long)p->ca, (long long)p->cb, c->norders == 2 ? (fo ? "b shown first: " : "a shown first: ") : "",
				  fail);
		c->errors++;
		goto out;
	}
	p->t0 = util_now();
	p->issued = c->norders;
	p->outstanding = c->norders;
	for (int o = 0; o < c->norders && !rc; o++) {
		c->cached += cached[o];
		rc = request_done(c, rs[o], cached[o]);
		rs[o] = NULL;
	}
out:
	req_free(rs[0]);
	req_free(rs[1]);
	return rc;
}

/* Read the results of the ended batch (bi) and store them. Returns 0, or
 * 1 (c->fatal_msg or the store's message says why). */
static int batch_collect(bstate *bs, const judge_batch_info *bi)
{
	ctx *c = bs->c;
	bitem **byid = NULL;
	long unlabeled = 0;
	int rc = 0;
	if (store_batch_items_foreach(c->st, bs->id, on_item, bs) != STORE_OK)
		return store_fail(c, "cannot read the batch's requests");
	byid = xreallocarray(NULL, bs->n ? bs->n : 1, sizeof *byid);
	for (size_t i = 0; i < bs->n; i++)
		byid[i] = &bs->items[i];
	qsort(byid, bs->n, sizeof *byid, cmp_item_ptr);
	if ((bi->output_ref && batch_read_results(bs, byid, bi->output_ref, "output file")) ||
	    (bi->error_ref && batch_read_results(bs, byid, bi->error_ref, "error file"))) {
		c->fatal = 1;
		rc = 1;
		goto out;
	}
	/* requests with no result: the batch's own fate says why */
	for (size_t i = 0; i < bs->n; i++)
		if (!bs->items[i].res.custom_id && strcmp(bi->status, "completed") && strcmp(bi->status, "ended")) {
			bs->items[i].res.custom_id = xstrdup(bs->items[i].custom_id);
			bs->items[i].res.error = xasprintf("the batch %s%s%s", bi->status, bi->message ? ": " : "",
							   bi->message ? bi->message : "");
		}
	size_t nchosen = c->pairs.n, hint = 0;
	for (size_t i = 0; i < bs->n; i++)
		bs->items[i].pair = batch_pair_of(bs, &bs->items[i], nchosen, &hint);
	c->requests = (long)bs->n;
	for (size_t lo = 0, hi; lo < bs->n && !rc; lo = hi) {
		for (hi = lo + 1; hi < bs->n && bs->items[hi].pair == bs->items[lo].pair; hi++)
			;
		rc = batch_finish_pair(bs, lo, hi, &unlabeled);
		c->done_requests += (long)(hi - lo);
	}
	c->batch_unlabeled = unlabeled;
	if (unlabeled > 5)
		util_warn("(%ld more pairs not labelled)", unlabeled - 5);
	if (unlabeled)
		util_warn("%ld pairs of batch %s were not labelled (failed or expired there): they are free again; "
			  "judge them with another run", unlabeled, bs->remote_id);
	if (rc || c->store_failed)
		goto out;
	store_batch row = {.id = bs->id, .collected = 1};
	row_from_info(&row, bi);
	if (tx_begin(c) || store_batch_update(c->st, &row) != STORE_OK ||
	    store_batch_release_claims(c->st, bs->owner) != STORE_OK || tx_commit(c))
		rc = store_fail(c, "cannot record the batch as collected");
out:
	free(byid);
	return rc;
}

/* ---- the run ---------------------------------------------------------------------- */

static void bstate_free(bstate *bs)
{
	for (size_t i = 0; i < bs->n; i++) {
		free(bs->items[i].custom_id);
		judge_batch_result_free(&bs->items[i].res);
	}
	free(bs->items);
	curl_slist_free_all(bs->auth);
	curl_slist_free_all(bs->json);
	free(bs->remote_id);
	free(bs->owner);
	free(bs->created_at);
}

/* dpo-judge --batch: pick up the judge's pending batch or submit one for
 * the chosen pairs, wait for it and store its answers. Returns 0,
 * JUDGE_EINTR (the batch stays submitted), or nonzero (c->fatal,
 * c->store_failed). */
static int batch_run(ctx *c)
{
	bstate bs = {.c = c};
	judge_batch_info bi;
	int rc = 0;
	memset(&bi, 0, sizeof bi);
	util_catch_interrupts();
	c->start = util_now();
	bs.auth = batch_auth_headers(c->o->provider, c->api_key);
	bs.json = batch_auth_headers(c->o->provider, c->api_key);
	bs.json = curl_slist_append(bs.json, "Content-Type: application/json");
	if (batch_find_pending(&bs)) {
		rc = 1;
		goto out;
	}
	if (bs.remote_id) {
		/* its pairs are the batch's, not those the options choose now */
		judge_pairs_free(&c->pairs);
		judge_pairs_init(&c->pairs, 0, 0);
		free(c->claim_owner);
		c->claim_owner = xstrdup(bs.owner);
		if (!c->o->quiet)
			fprintf(stderr, "dpo-judge: picking up batch %s (submitted %s)\n", term_name(bs.remote_id),
				bs.created_at);
	} else if (batch_submit(&bs) || !bs.remote_id) {
		rc = c->fatal || c->store_failed;
		goto out;
	}
	rc = batch_poll(c, c->o->provider, c->base, bs.auth, bs.id, bs.remote_id, &bi);
	if (rc == JUDGE_EINTR) {
		util_warn("interrupted: batch %s stays submitted; run the same command again to collect its answers "
			  "(dpo-judge --batch-status --wait shows its progress)", term_name(bs.remote_id));
		goto out;
	}
	if (rc) {
		c->fatal = 1;
		util_warn("batch %s stays submitted; run the same command again to collect its answers",
			  term_name(bs.remote_id));
		goto out;
	}
	rc = batch_collect(&bs, &bi);
	if (!c->o->quiet && !rc)
		fprintf(stderr, "dpo-judge: collected batch %s: %ld answered, %ld failed\n", term_name(bs.remote_id),
			bi.succeeded, bi.failed);
out:
	judge_batch_info_free(&bi);
	bstate_free(&bs);
	return rc;
}

/* ---- --batch-status ---------------------------------------------------------------- */

typedef struct blist {
	const opts *o;
	util_buf out;
	int n;
	/* --wait: the batches still running */
	int64_t *ids;
	char **remote, **provider, **base;
	size_t nwait;
} blist;

static int on_list(void *ud, const store_batch *b)
{
	blist *l = ud;
	const char *state = b->collected ? "collected" : !b->remote_id ? "not submitted" : "pending";
	if (l->o->json) {
		util_buf_adds(&l->out, l->n ? ",{" : "{");
		util_buf_addf(&l->out, "\"id\":%lld,\"batch\":", (long long)b->id);
		if (b->remote_id)
			util_buf_add_json_string(&l->out, b->remote_id, strlen(b->remote_id));
		else
			util_buf_adds(&l->out, "null");
		const char *f[][2] = {{"provider", b->provider}, {"status", b->status}, {"state", state},
				      {"judge", b->scope}, {"created", b->created_at}, {"updated", b->updated_at}};
		for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
			util_buf_addf(&l->out, ",\"%s\":", f[i][0]);
			util_buf_add_json_string(&l->out, f[i][1] ? f[i][1] : "", f[i][1] ? strlen(f[i][1]) : 0);
		}
		util_buf_addf(&l->out, ",\"total\":%ld,\"succeeded\":%ld,\"failed\":%ld}", b->total, b->succeeded,
			      b->failed);
	} else {
		util_buf esc = UTIL_BUF_INIT, esc2 = UTIL_BUF_INIT;
		if (!l->n)
			util_buf_addf(&l->out, "%-4s %-32s %-9s %-12s %9s %7s %-20s %-13s %s\n", "ID", "BATCH", "PROVIDER",
				      "STATUS", "DONE/ALL", "FAILED", "CREATED", "STATE", "JUDGE");
		char done[48];
		snprintf(done, sizeof done, "%ld/%ld", b->succeeded + b->failed, b->total);
		util_buf_addf(&l->out, "%-4lld %-32s %-9s %-12s %9s %7ld %-20s %-13s ", (long long)b->id,
			      b->remote_id ? util_term_escape(b->remote_id, &esc) : "-", b->provider,
			      util_term_escape(b->status, &esc2), done, b->failed, b->created_at ? b->created_at : "", state);
		util_buf_reset(&esc);
		util_buf_addf(&l->out, "%s\n", util_term_escape(b->scope, &esc));
		util_buf_free(&esc);
		util_buf_free(&esc2);
	}
	l->n++;
	return 0;
}

static int on_wait(void *ud, const store_batch *b)
{
	blist *l = ud;
	judge_provider p;
	if (!b->remote_id || judge_provider_parse(b->provider, &p) ||
	    judge_batch_status_ended(p, b->status))
		return 0;
	l->ids = xreallocarray(l->ids, l->nwait + 1, sizeof *l->ids);
	l->remote = xreallocarray(l->remote, l->nwait + 1, sizeof *l->remote);
	l->provider = xreallocarray(l->provider, l->nwait + 1, sizeof *l->provider);
	l->base = xreallocarray(l->base, l->nwait + 1, sizeof *l->base);
	l->ids[l->nwait] = b->id;
	l->remote[l->nwait] = xstrdup(b->remote_id);
	l->provider[l->nwait] = xstrdup(b->provider);
	l->base[l->nwait] = xstrdup(b->base_url);
	l->nwait++;
	return 0;
}

/* --wait: poll every listed batch that has not ended. Returns an exit
 * status. */
static int batch_wait_all(ctx *c, blist *l)
{
	int rc = UTIL_EXIT_OK;
	util_catch_interrupts();
	for (size_t i = 0; i < l->nwait && rc != UTIL_EXIT_INTERRUPTED; i++) {
		judge_provider p;
		judge_provider_parse(l->provider[i], &p);
		const char *env = c->o->key_env ? c->o->key_env
						: p == JUDGE_PROVIDER_ANTHROPIC ? "ANTHROPIC_API_KEY" : "OPENAI_API_KEY";
		const char *key = getenv(env);
		c->api_key = key && *key ? xstrdup(key) : NULL;
		struct curl_slist *h = batch_auth_headers(p, c->api_key);
		judge_batch_info bi;
		int prc = batch_poll(c, p, l->base[i], h, l->ids[i], l->remote[i], &bi);
		if (prc == JUDGE_EINTR) {
			util_warn("interrupted: the batches stay submitted");
			rc = UTIL_EXIT_INTERRUPTED;
		} else if (prc) {
			util_warn("%s", c->fatal_msg);
			rc = UTIL_EXIT_FAIL;
		} else {
			judge_batch_info_free(&bi);
		}
		curl_slist_free_all(h);
		if (c->api_key)
			memset(c->api_key, 0, strlen(c->api_key));
		free(c->api_key);
		c->api_key = NULL;
	}
	return rc;
}

/* dpo-judge --batch-status [--wait]: list the store's batches (with
 * --wait once those still running have ended). Returns an exit status. */
static int batch_status_main(opts *o)
{
	ctx c;
	blist l = {.o = o, .out = UTIL_BUF_INIT};
	int rc = UTIL_EXIT_FAIL;
	memset(&c, 0, sizeof c);
	c.o = o;
	c.st = store_new();
	if (store_open_existing(c.st, util_db_path(o->db)) != STORE_OK) {
		util_warn("%s", store_errmsg(c.st));
		goto out;
	}
	if (o->batch_wait) {
		if (store_batches_foreach(c.st, NULL, 1, on_wait, &l) != STORE_OK) {
			util_warn("%s: %s", util_db_path(o->db), store_errmsg(c.st));
			goto out;
		}
		rc = batch_wait_all(&c, &l);
		if (rc)
			goto out;
	}
	if (store_batches_foreach(c.st, NULL, 0, on_list, &l) != STORE_OK) {
		util_warn("%s: %s", util_db_path(o->db), store_errmsg(c.st));
		goto out;
	}
	if (o->json)
		printf("[%s]\n", util_buf_str(&l.out));
	else if (l.n)
		fputs(util_buf_str(&l.out), stdout);
	else if (!o->quiet)
		printf("no batches in %s\n", util_db_path(o->db));
	rc = UTIL_EXIT_OK;
out:
	for (size_t i = 0; i < l.nwait; i++) {
		free(l.remote[i]);
		free(l.provider[i]);
		free(l.base[i]);
	}
	free(l.ids);
	free(l.remote);
	free(l.provider);
	free(l.base);
	util_buf_free(&l.out);
	store_free(c.st);
	return rc;
}

/* judge_batch.c: provider batches for dpo-judge --batch (judge_batch.h). */
#include "config.h"
#include "judge/judge_batch.h"
#include "util/cli.h"
#include "util/xmalloc.h"
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void judge_batch_custom_id(int64_t ca, int64_t cb, int order, const char *cache_key,
			   char out[JUDGE_BATCH_ID_MAX])
{
	snprintf(out, JUDGE_BATCH_ID_MAX, "c%" PRId64 "_%" PRId64 "_o%d_%.16s", ca, cb, order,
		 cache_key ? cache_key : "");
}

void judge_batch_request(judge_provider p, const char *custom_id, const char *path, const char *body, size_t n,
			 util_buf *out)
{
	util_buf_adds(out, "{\"custom_id\":");
	util_buf_add_json_string(out, custom_id, strlen(custom_id));
	if (p == JUDGE_PROVIDER_ANTHROPIC) {
		util_buf_adds(out, ",\"params\":");
		util_buf_add(out, body, n);
		util_buf_addc(out, '}');
		return;
	}
	util_buf_adds(out, ",\"method\":\"POST\",\"url\":");
	util_buf_add_json_string(out, path, strlen(path));
	util_buf_adds(out, ",\"body\":");
	util_buf_add(out, body, n);
	util_buf_adds(out, "}\n");
}

/* ---- batch objects ---------------------------------------------------- */

int judge_batch_status_ended(judge_provider p, const char *status)
{
	static const char *const final[] = {"completed", "failed", "expired", "cancelled"};
	if (!status)
		return 0;
	if (p == JUDGE_PROVIDER_ANTHROPIC)
		return !strcmp(status, "ended");
	for (size_t i = 0; i < sizeof final / sizeof *final; i++)
		if (!strcmp(status, final[i]))
			return 1;
	return 0;
}

static const char *jstr(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) && v->valuestring ? v->valuestring : NULL;
}

static long jlong(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e15 ? (long)v->valuedouble : 0;
}

static char *jdup(const cJSON *o, const char *name)
{
	const char *s = jstr(o, name);
	return s && *s ? xstrdup(s) : NULL;
}

/* OpenAI's batch errors: {"errors": {"data": [{"message": ...}]}}, the
 * first message. */
static char *openai_batch_errors(const cJSON *o)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "errors");
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(e, "data");
	const cJSON *first = cJSON_IsArray(d) ? cJSON_GetArrayItem(d, 0) : NULL;
	return first ? jdup(first, "message") : NULL;
}

int judge_batch_info_parse(judge_provider p, const char *body, size_t n, judge_batch_info *bi, char *err,
			   size_t errsz)
{
	memset(bi, 0, sizeof *bi);
	cJSON *o = cJSON_ParseWithLength(body, n);
	int anth = p == JUDGE_PROVIDER_ANTHROPIC, rc = JUDGE_OK;
	const char *id = jstr(o, "id"), *st = jstr(o, anth ? "processing_status" : "status");
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "request_counts");
	if (!cJSON_IsObject(o) || !id || !*id || !st) {
		snprintf(err, errsz, "the batch object has no \"id\" and \"%s\"", anth ? "processing_status" : "status");
		rc = JUDGE_EINVAL;
		goto out;
	}
	snprintf(bi->id, sizeof bi->id, "%s", id);
	snprintf(bi->status, sizeof bi->status, "%s", st);
	bi->ended = judge_batch_status_ended(p, st);
	if (anth) {
		bi->succeeded = jlong(k, "succeeded");
		bi->failed = jlong(k, "errored") + jlong(k, "canceled") + jlong(k, "expired");
		bi->total = jlong(k, "processing") + bi->succeeded + bi->failed;
		bi->output_ref = jdup(o, "results_url");
	} else {
		bi->total = jlong(k, "total");
		bi->succeeded = jlong(k, "completed");
		bi->failed = jlong(k, "failed");
		bi->output_ref = jdup(o, "output_file_id");
		bi->error_ref = jdup(o, "error_file_id");
		bi->message = openai_batch_errors(o);
	}
out:
	cJSON_Delete(o);
	return rc;
}

void judge_batch_info_free(judge_batch_info *bi)
{
	free(bi->output_ref);
	free(bi->error_ref);
	free(bi->message);
	bi->output_ref = bi->error_ref = bi->message = NULL;
}

/* ---- results lines ---------------------------------------------------- */

/* An error object's message: {"message"} or {"error": {"message"}} or a
 * string; "" when none. */
static const char *error_text(const cJSON *e)
{
	if (cJSON_IsString(e))
		return e->valuestring;
	const char *m = jstr(e, "message");
	if (m)
		return m;
	const cJSON *in = cJSON_GetObjectItemCaseSensitive(e, "error");
	return in && in != e ? error_text(in) : "";
}

static int openai_result(const cJSON *o, judge_batch_result *r)
{
	const cJSON *resp = cJSON_GetObjectItemCaseSensitive(o, "response");
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
	const cJSON *sc = cJSON_GetObjectItemCaseSensitive(resp, "status_code");
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(resp, "body");
	if (cJSON_IsObject(e)) {
		const char *code = jstr(e, "code");
		if (code && !strcmp(code, "batch_expired"))
			r->error = xstrdup("expired");
		else
			r->error = xasprintf("%s%s%s", code ? code : "error", ": ", error_text(e));
		return 0;
	}
	if (!cJSON_IsObject(resp) || !cJSON_IsNumber(sc))
		return -1;
	long status = (long)sc->valuedouble;
	if (status >= 200 && status < 300 && cJSON_IsObject(b)) {
		char *t = cJSON_PrintUnformatted(b);
		r->body = xstrdup(t);
		cJSON_free(t);
		r->ok = 1;
	} else {
		r->error = xasprintf("HTTP %ld: %s", status, b ? error_text(b) : "no body");
	}
	return 0;
}

static int anthropic_result(const cJSON *o, judge_batch_result *r)
{
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(o, "result");
	const char *type = jstr(res, "type");
	if (!type)
		return -1;
	if (!strcmp(type, "succeeded")) {
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(res, "message");
		if (!cJSON_IsObject(m))
			return -1;
		char *t = cJSON_PrintUnformatted(m);
		r->body = xstrdup(t);
		cJSON_free(t);
		r->ok = 1;
	} else if (!strcmp(type, "errored")) {
		r->error = xasprintf("errored: %s", error_text(cJSON_GetObjectItemCaseSensitive(res, "error")));
	} else {
		r->error = xstrdup(type); /* expired, canceled */
	}
	return 0;
}

int judge_batch_result_parse(judge_provider p, const char *line, size_t n, judge_batch_result *r, char *err,
			     size_t errsz)
{
	memset(r, 0, sizeof *r);
	cJSON *o = cJSON_ParseWithLength(line, n);
	const char *id = jstr(o, "custom_id");
	int rc = JUDGE_OK;
	if (!cJSON_IsObject(o)) {
		snprintf(err, errsz, "not a JSON object");
		rc = JUDGE_EINVAL;
	} else if (!id || !*id) {
		snprintf(err, errsz, "no \"custom_id\"");
		rc = JUDGE_EINVAL;
	} else {
		r->custom_id = xstrdup(id);
		int bad = p == JUDGE_PROVIDER_ANTHROPIC ? anthropic_result(o, r) : openai_result(o, r);
		if (bad) {
			snprintf(err, errsz, "custom_id %.*s: no %s", 80, id,
				 p == JUDGE_PROVIDER_ANTHROPIC ? "\"result\" with a type" : "\"response\" or \"error\"");
			judge_batch_result_free(r);
			rc = JUDGE_EINVAL;
		}
	}
	cJSON_Delete(o);
	return rc;
}

void judge_batch_result_free(judge_batch_result *r)
{
	free(r->custom_id);
	free(r->body);
	free(r->error);
	memset(r, 0, sizeof *r);
}

/* ---- HTTP ------------------------------------------------------------- */

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
	util_buf_add(ud, p, size * n);
	return size * n;
}

/* One try: 0 with *status, or a curl error code (message in err). */
static CURLcode http_try(const judge_http *h, util_buf *resp, long *status, char *err, size_t errsz)
{
	CURL *e = curl_easy_init();
	if (!e) {
		snprintf(err, errsz, "cannot start curl");
		return CURLE_FAILED_INIT;
	}
	char cerr[CURL_ERROR_SIZE] = "";
	curl_mime *mime = NULL;
	util_buf_reset(resp);
	curl_easy_setopt(e, CURLOPT_URL, h->url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, (struct curl_slist *)h->headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, resp);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	/* no redirects: the key headers would go to whatever host it names */
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	if (h->timeout_s > 0)
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(h->timeout_s * 1000));
	if (!strcmp(h->method, "POST") && h->upload_name) {
		mime = curl_mime_init(e);
		curl_mimepart *part = curl_mime_addpart(mime);
		curl_mime_name(part, "purpose");
		curl_mime_data(part, "batch", CURL_ZERO_TERMINATED);
		part = curl_mime_addpart(mime);
		curl_mime_name(part, "file");
		curl_mime_data(part, h->body, h->body_len);
		curl_mime_filename(part, h->upload_name);
		curl_mime_type(part, "application/jsonl");
		curl_easy_setopt(e, CURLOPT_MIMEPOST, mime);
	} else if (!strcmp(h->method, "POST")) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, h->body ? h->body : "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(h->body ? h->body_len : 0));
	}
	CURLcode cc = curl_easy_perform(e);
	if (cc == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
	else
		snprintf(err, errsz, "%s: %s", h->url, cerr[0] ? cerr : curl_easy_strerror(cc));
	curl_mime_free(mime);
	curl_easy_cleanup(e);
	return cc;
}

/* Sleep ms milliseconds unless interrupted; nonzero when interrupted. */
static int nap(double ms)
{
	for (double left = ms; left > 0; left -= 50) {
		if (util_interrupted())
			return 1;
		struct timespec ts = {0, (long)((left < 50 ? left : 50) * 1e6)};
		nanosleep(&ts, NULL);
	}
	return util_interrupted();
}

int judge_http_call(const judge_http *h, util_buf *resp, long *status, char *err, size_t errsz)
{
	double delay = h->backoff_ms > 0 ? h->backoff_ms : 500;
	for (int attempt = 0;; attempt++) {
		*status = 0;
		CURLcode cc = http_try(h, resp, status, err, errsz);
		int transient = cc == CURLE_OPERATION_TIMEDOUT ||
				cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR || cc == CURLE_GOT_NOTHING ||
				cc == CURLE_PARTIAL_FILE;
		if (cc == CURLE_OK && *status >= 200 && *status < 300)
			return JUDGE_OK;
		if (cc == CURLE_OK) {
			char *m = judge_error_message(util_buf_str(resp), resp->len);
			snprintf(err, errsz, "%s %s: HTTP %ld: %s", h->method, h->url, *status, m);
			free(m);
		}
		if (attempt >= h->max_retries || (cc == CURLE_OK ? !judge_status_retryable(*status) : !transient))
			return JUDGE_ERR;
		if (nap(delay))
			return JUDGE_EINTR;
		delay = delay * 2 > 60000 ? 60000 : delay * 2;
	}
}

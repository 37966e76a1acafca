/* judge_batch.h: the pieces of dpo-judge --batch that need no database:
 * the requests of a provider batch (OpenAI Batch API JSONL lines,
 * Anthropic Message Batches request objects), the batch object the
 * provider reports (status, counts, where the results are), one line of
 * the results, and the few HTTP calls around them (judge_batch.c).
 *
 * Conventions as judge.h: 0 or a negative JUDGE_E* code; strings handed
 * in are borrowed for the call. */
#ifndef DPO_JUDGE_BATCH_H
#define DPO_JUDGE_BATCH_H
#include "judge/judge.h"
#include "util/buf.h"
#include <stddef.h>
#include <stdint.h>

/* The longest custom_id judge_batch_custom_id makes, with the NUL
 * (Anthropic allows 64 characters of [A-Za-z0-9_-]). */
#define JUDGE_BATCH_ID_MAX 65

/* The custom_id of one request: "c<ca>_<cb>_o<order>_<the first 16 hex
 * digits of the cache key>" (the pair, its order and the cache key, at
 * most 64 characters, all allowed by both providers). */
void judge_batch_custom_id(int64_t ca, int64_t cb, int order, const char *cache_key,
			   char out[JUDGE_BATCH_ID_MAX]);

/* Append one request to out. OpenAI: a JSONL line {"custom_id", "method":
 * "POST", "url": path, "body"} and a newline. Anthropic: an object
 * {"custom_id", "params"} (the caller joins them into {"requests": [...]}).
 * body[0..n) is the request body the normal path sends (JSON, copied as
 * is). */
void judge_batch_request(judge_provider p, const char *custom_id, const char *path, const char *body, size_t n,
			 util_buf *out);

/* What the provider says about a batch. */
typedef struct judge_batch_info {
	char id[128];         /* the provider's batch id */
	char status[32];      /* OpenAI: validating, in_progress, finalizing, completed,
				 failed, expired, cancelling, cancelled; Anthropic:
				 in_progress, canceling, ended */
	int ended;            /* no request will change any more */
	long total, succeeded, failed; /* failed: errored, expired, canceled */
	char *output_ref;     /* OpenAI output_file_id, Anthropic results_url (malloc'ed) or NULL */
	char *error_ref;      /* OpenAI error_file_id (malloc'ed) or NULL */
	char *message;        /* OpenAI: the batch's errors (a failed batch), malloc'ed or NULL */
} judge_batch_info;

/* Nonzero when a batch's status is final: OpenAI completed, failed,
 * expired, cancelled; Anthropic ended. */
int judge_batch_status_ended(judge_provider p, const char *status);

/* Parse a batch object (the answer to creating or polling a batch) into
 * *bi (free with judge_batch_info_free). Returns 0, or JUDGE_EINVAL with a
 * message when the body is no such object. */
int judge_batch_info_parse(judge_provider p, const char *body, size_t n, judge_batch_info *bi, char *err,
			   size_t errsz);
/* Free bi's strings (bi itself is the caller's). */
void judge_batch_info_free(judge_batch_info *bi);

/* One line of a batch's results. */
typedef struct judge_batch_result {
	char *custom_id;      /* malloc'ed */
	int ok;               /* answered: body is the response (as the normal path gets it) */
	char *body;           /* malloc'ed when ok */
	char *error;          /* why not when !ok (malloc'ed): "expired", "canceled",
				 "HTTP 400: message", "errored: message" */
} judge_batch_result;

/* Parse one results line (OpenAI output or error file, Anthropic results)
 * of n bytes. Returns 0 with *r filled (free with
 * judge_batch_result_free), or JUDGE_EINVAL with a message when the line
 * is not a result (not JSON, no custom_id, no response or result). */
int judge_batch_result_parse(judge_provider p, const char *line, size_t n, judge_batch_result *r, char *err,
			     size_t errsz);
/* Free r's strings (r itself is the caller's) and clear it. */
void judge_batch_result_free(judge_batch_result *r);

/* ---- HTTP ------------------------------------------------------------- */

/* One HTTP call. */
typedef struct judge_http {
	const char *method;         /* "GET" or "POST" */
	const char *url;
	const void *headers;        /* a struct curl_slist * (borrowed) */
	const char *body;           /* POST: the body (JSON), or with upload_name a file */
	size_t body_len;
	const char *upload_name;    /* POST multipart/form-data: file=body as this name, purpose=batch */
	double timeout_s;
	int max_retries;            /* for 408/409/429/5xx and transient transfer errors */
	double backoff_ms;          /* before the first retry; doubles */
} judge_http;

/* Perform h; the answer's body goes to resp (reset first), its status to
 * *status. Returns 0 for a 2xx answer; JUDGE_ERR with a message (the URL,
 * the status and the provider's message, or the transfer error) otherwise;
 * JUDGE_EINTR when an interrupt arrived while waiting to retry. */
int judge_http_call(const judge_http *h, util_buf *resp, long *status, char *err, size_t errsz);

#endif

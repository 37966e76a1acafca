/* judge_request.c: what one of dpo-judge's requests sends (the verifier's
 * stdin, a conversation as prompt text), its cache key, and what its answer
 * says. */
#include "config.h"
#include "judge/judge.h"
#include "util/sha256.h"
#include "util/xmalloc.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *judge_messages_text(const char *messages_json)
{
	util_buf b = UTIL_BUF_INIT;
	cJSON *j = cJSON_Parse(messages_json ? messages_json : "[]");
	const cJSON *m;
	cJSON_ArrayForEach(m, j)
	{
		const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "role");
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(m, "content");
		if (!cJSON_IsString(r) || !cJSON_IsString(t))
			continue;
		if (b.len)
			util_buf_adds(&b, "\n\n");
		util_buf_addf(&b, "%s: %s", r->valuestring, t->valuestring);
	}
	cJSON_Delete(j);
	char *s = util_buf_detach(&b);
	util_buf_free(&b);
	return s;
}

void judge_exec_body(const judge_fields *f, const char *messages_json, int64_t prompt_id, int64_t first_id,
		     int64_t second_id, util_buf *out)
{
	util_buf_adds(out, "{\"prompt\":");
	util_buf_add_json_string(out, f->prompt, strlen(f->prompt));
	if (messages_json) {
		util_buf_adds(out, ",\"messages\":");
		util_buf_adds(out, messages_json);
	}
	util_buf_adds(out, ",\"response_a\":");
	util_buf_add_json_string(out, f->response_a, strlen(f->response_a));
	util_buf_adds(out, ",\"response_b\":");
	util_buf_add_json_string(out, f->response_b, strlen(f->response_b));
	if (f->reference) {
		util_buf_adds(out, ",\"reference\":");
		util_buf_add_json_string(out, f->reference, strlen(f->reference));
	}
	util_buf_addf(out, ",\"prompt_id\":%lld,\"completion_a\":%lld,\"completion_b\":%lld}\n",
		      (long long)prompt_id, (long long)first_id, (long long)second_id);
}

void judge_cache_key(const char *url, const char *body, size_t n, char out[65])
{
	util_sha256 h;
	util_sha256_init(&h);
	util_sha256_update(&h, "POST ", 5);
	util_sha256_update(&h, url, strlen(url));
	util_sha256_update(&h, "\n", 1);
	util_sha256_update(&h, body, n);
	util_sha256_final_hex(&h, out);
}

/* A verifier's stdout: a word, or a JSON object with "verdict" (and maybe
 * "rationale"). */
static int parse_exec(const char *body, size_t n, judge_answer *a, char *err, size_t errsz)
{
	size_t lo = 0;
	while (lo < n && (body[lo] == ' ' || body[lo] == '\n' || body[lo] == '\r' || body[lo] == '\t'))
		lo++;
	if (lo < n && body[lo] == '{') {
		cJSON *j = cJSON_ParseWithLength(body + lo, n - lo);
		const cJSON *rat = cJSON_GetObjectItemCaseSensitive(j, "rationale");
		if (cJSON_IsString(rat) && rat->valuestring)
			a->rationale = xstrdup(rat->valuestring);
		cJSON_Delete(j);
		a->verdict = judge_verdict_json(body + lo, n - lo);
	} else {
		a->verdict = judge_verdict_word(body + lo, n - lo);
	}
	if (a->verdict)
		return 0;
	const char *nl = memchr(body + lo, '\n', n - lo);
	int k = (int)(nl ? (size_t)(nl - (body + lo)) : n - lo);
	snprintf(err, errsz, "the verifier printed \"%.*s\"; expected A, B, C or {\"verdict\": \"A\"}",
		 k > 80 ? 80 : k, body + lo);
	return -1;
}

/* A copy of s cut to JUDGE_EXPLANATION_MAX bytes at a character boundary
 * (marked "[...]" when cut); NULL for an empty or blank s. */
static char *explanation_of(const char *s)
{
	size_t n = strlen(s), k = n;
	if (!n || strspn(s, " \t\r\n") == n)
		return NULL;
	if (n <= JUDGE_EXPLANATION_MAX)
		return xstrdup(s);
	k = JUDGE_EXPLANATION_MAX - 6;
	while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
		k--;
	return xasprintf("%.*s [...]", (int)k, s);
}

/* The "reasoning" member of a JSON verdict, or NULL. */
static char *json_reasoning(const char *s)
{
	char *r = NULL;
	cJSON *j = cJSON_Parse(s);
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "reasoning");
	if (cJSON_IsString(m) && m->valuestring)
		r = explanation_of(m->valuestring);
	cJSON_Delete(j);
	return r;
}

int judge_answer_parse(judge_provider p, const char *body, size_t n, const char *nonce, int json_verdict,
		       judge_answer *a, char *err, size_t errsz)
{
	memset(a, 0, sizeof *a);
	if (p == JUDGE_PROVIDER_EXEC)
		return parse_exec(body, n, a, err, errsz);
	judge_reply rep;
	int prc = judge_reply_parse(p, body, n, &rep, err, errsz);
	if (prc != JUDGE_OK) {
		/* a broken body is retried; a well-formed one without an answer
		 * would come back the same, so the pair fails */
		return prc == JUDGE_EINVAL ? -1 : 0;
	}
	a->usage = rep.usage;
	if (rep.structured || json_verdict)
		a->verdict = judge_verdict_json(rep.text, strlen(rep.text));
	if (!a->verdict && !rep.structured)
		a->verdict = judge_verdict_find(rep.text, strlen(rep.text), nonce);
	if (!a->verdict && rep.cut)
		snprintf(err, errsz, "the answer stopped at the token limit before its verdict "
				     "(raise --max-tokens)");
	if (rep.structured || (json_verdict && a->verdict))
		a->explanation = json_reasoning(rep.text);
	else
		a->explanation = explanation_of(rep.text);
	free(rep.text);
	return 0;
}

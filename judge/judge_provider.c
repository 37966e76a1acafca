/* judge_provider.c: request bodies and response parsing for the OpenAI chat
 * completions API (and the servers that speak it) and Anthropic's messages
 * API. */
#include "config.h"
#include "judge/judge.h"
#include "util/xmalloc.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *judge_provider_name(judge_provider p)
{
	switch (p) {
	case JUDGE_PROVIDER_OPENAI: return "openai";
	case JUDGE_PROVIDER_ANTHROPIC: return "anthropic";
	case JUDGE_PROVIDER_AZURE: return "azure";
	case JUDGE_PROVIDER_EXEC: return "exec";
	}
	return "?";
}

int judge_provider_parse(const char *name, judge_provider *p)
{
	if (!strcmp(name, "openai"))
		*p = JUDGE_PROVIDER_OPENAI;
	else if (!strcmp(name, "anthropic"))
		*p = JUDGE_PROVIDER_ANTHROPIC;
	else if (!strcmp(name, "azure"))
		*p = JUDGE_PROVIDER_AZURE;
	else if (!strcmp(name, "exec"))
		*p = JUDGE_PROVIDER_EXEC;
	else
		return JUDGE_EINVAL;
	return JUDGE_OK;
}

/* The JSON schema of a structured verdict. */
static const char verdict_schema[] =
	"{\"type\":\"object\",\"properties\":{\"reasoning\":{\"type\":\"string\"},"
	"\"verdict\":{\"type\":\"string\",\"enum\":[\"A\",\"B\",\"C\"]}},"
	"\"required\":[\"reasoning\",\"verdict\"],\"additionalProperties\":false}";

static void add_num(util_buf *out, double v)
{
	util_buf_addf(out, "%.17g", v);
}

/* Merge the members of src into dst: objects merge member by member,
 * anything else replaces what dst had. */
static void merge_json(cJSON *dst, const cJSON *src)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, src)
	{
		cJSON *cur = cJSON_GetObjectItemCaseSensitive(dst, it->string);
		if (cJSON_IsObject(cur) && cJSON_IsObject(it)) {
			merge_json(cur, it);
			continue;
		}
		cJSON *copy = cJSON_Duplicate(it, 1);
		if (!copy)
			abort();
		if (cur)
			cJSON_ReplaceItemInObjectCaseSensitive(dst, it->string, copy);
		else
			cJSON_AddItemToObject(dst, it->string, copy);
	}
}

void judge_request_body(judge_provider p, const judge_params *prm, const char *user_text,
			util_buf *out)
{
	int oa = p == JUDGE_PROVIDER_OPENAI || p == JUDGE_PROVIDER_AZURE;
	size_t start = out->len;
	util_buf_adds(out, "{\"model\":");
	util_buf_add_json_string(out, prm->model ? prm->model : "", strlen(prm->model ? prm->model : ""));
	util_buf_addf(out, ",\"%s\":%ld", oa && prm->max_completion_tokens ? "max_completion_tokens" : "max_tokens",
		      prm->max_tokens);
	if (!prm->no_temperature) {
		util_buf_adds(out, ",\"temperature\":");
		add_num(out, prm->temperature);
	}
	if (oa && prm->reasoning_effort) {
		util_buf_adds(out, ",\"reasoning_effort\":");
		util_buf_add_json_string(out, prm->reasoning_effort, strlen(prm->reasoning_effort));
	}
	if (!oa && prm->system) {
		util_buf_adds(out, ",\"system\":");
		util_buf_add_json_string(out, prm->system, strlen(prm->system));
	}
	util_buf_adds(out, ",\"messages\":[");
	if (oa && prm->system) {
		util_buf_adds(out, "{\"role\":\"system\",\"content\":");
		util_buf_add_json_string(out, prm->system, strlen(prm->system));
		util_buf_adds(out, "},");
	}
	util_buf_adds(out, "{\"role\":\"user\",\"content\":");
	util_buf_add_json_string(out, user_text, strlen(user_text));
	util_buf_adds(out, "}]");
	if (prm->json_verdict && oa) {
		util_buf_adds(out, ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
				   "{\"name\":\"verdict\",\"strict\":true,\"schema\":");
		util_buf_adds(out, verdict_schema);
		util_buf_adds(out, "}}");
	} else if (prm->json_verdict && p == JUDGE_PROVIDER_ANTHROPIC) {
		util_buf_adds(out, ",\"tools\":[{\"name\":\"record_verdict\",\"description\":"
				   "\"Record the final verdict of the comparison.\",\"input_schema\":");
		util_buf_adds(out, verdict_schema);
		util_buf_adds(out, "}],\"tool_choice\":{\"type\":\"tool\",\"name\":\"record_verdict\"}");
	}
	util_buf_addc(out, '}');
	if (prm->extra_body) {
		cJSON *body = cJSON_ParseWithLength(out->data + start, out->len - start);
		cJSON *extra = cJSON_Parse(prm->extra_body);
		if (cJSON_IsObject(body) && cJSON_IsObject(extra)) {
			merge_json(body, extra);
			char *txt = cJSON_PrintUnformatted(body);
			if (!txt)
				abort();
			out->len = start;
			util_buf_adds(out, txt);
			cJSON_free(txt);
		}
		cJSON_Delete(body);
		cJSON_Delete(extra);
	}
}

static long get_long(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 ||
	    v->valuedouble > 1e15)
		return 0;
	return (long)v->valuedouble;
}

int judge_reply_parse(judge_provider p, const char *body, size_t n, judge_reply *r, char *err,
		      size_t errsz)
{
	int rc = JUDGE_EINVAL;
	cJSON *j = NULL;
	const cJSON *usage;

	memset(r, 0, sizeof *r);
	j = cJSON_ParseWithLength(body, n);
	if (!j || !cJSON_IsObject(j)) {
		snprintf(err, errsz, "the response is not a JSON object");
		goto out;
	}
	rc = JUDGE_ERR; /* JSON, but not the expected shape */
	usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
	if (p == JUDGE_PROVIDER_OPENAI || p == JUDGE_PROVIDER_AZURE) {
		const cJSON *ch = cJSON_GetObjectItemCaseSensitive(j, "choices");
		const cJSON *c0 = cJSON_IsArray(ch) ? cJSON_GetArrayItem(ch, 0) : NULL;
		const cJSON *msg = cJSON_IsObject(c0) ? cJSON_GetObjectItemCaseSensitive(c0, "message") : NULL;
		const cJSON *content = cJSON_IsObject(msg) ? cJSON_GetObjectItemCaseSensitive(msg, "content") : NULL;
		if (!cJSON_IsString(content) || !content->valuestring) {
			snprintf(err, errsz, "the response has no string choices[0].message.content");
			goto out;
		}
		r->text = xstrdup(content->valuestring);
		const cJSON *fr = cJSON_GetObjectItemCaseSensitive(c0, "finish_reason");
		r->cut = cJSON_IsString(fr) && !strcmp(fr->valuestring, "length");
		if (cJSON_IsObject(usage)) {
			const cJSON *det = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens_details");
			long prompt = get_long(usage, "prompt_tokens"), compl = get_long(usage, "completion_tokens");
			long total = get_long(usage, "total_tokens");
			long reason = cJSON_IsObject(det) ? get_long(det, "reasoning_tokens") : 0;
			/* OpenAI counts reasoning tokens in completion_tokens; a
			 * server whose completion_tokens leaves them out (fewer
			 * than the reasoning tokens, or a total above prompt +
			 * completion) is billed for them all the same */
			if (reason > compl)
				compl += reason;
			if (total > prompt + compl)
				compl = total - prompt;
			r->usage.input_tokens = prompt;
			r->usage.output_tokens = compl;
			r->usage.reasoning_tokens = reason;
		}
	} else if (p == JUDGE_PROVIDER_ANTHROPIC) {
		const cJSON *content = cJSON_GetObjectItemCaseSensitive(j, "content");
		const cJSON *it;
		util_buf text = UTIL_BUF_INIT;
		int have = 0;
		if (!cJSON_IsArray(content)) {
			snprintf(err, errsz, "the response has no content array");
			goto out;
		}
		cJSON_ArrayForEach(it, content)
		{
			const cJSON *type = cJSON_GetObjectItemCaseSensitive(it, "type");
			if (!cJSON_IsString(type))
				continue;
			if (!strcmp(type->valuestring, "tool_use")) {
				const cJSON *in = cJSON_GetObjectItemCaseSensitive(it, "input");
				if (cJSON_IsObject(in)) {
					char *s = cJSON_PrintUnformatted(in);
					util_buf_free(&text);
					r->text = xstrdup(s);
					cJSON_free(s);
					r->structured = 1;
					have = 2;
					break;
				}
			} else if (!strcmp(type->valuestring, "text")) {
				const cJSON *t = cJSON_GetObjectItemCaseSensitive(it, "text");
				if (cJSON_IsString(t) && t->valuestring) {
					util_buf_adds(&text, t->valuestring);
					have = 1;
				}
			}
		}
		if (have == 1)
			r->text = util_buf_detach(&text);
		util_buf_free(&text);
		if (!have) {
			snprintf(err, errsz, "the response has no text or tool_use content");
			goto out;
		}
		const cJSON *sr = cJSON_GetObjectItemCaseSensitive(j, "stop_reason");
		r->cut = cJSON_IsString(sr) && !strcmp(sr->valuestring, "max_tokens");
		if (cJSON_IsObject(usage)) {
			r->usage.input_tokens = get_long(usage, "input_tokens");
			r->usage.output_tokens = get_long(usage, "output_tokens");
		}
	} else {
		snprintf(err, errsz, "no JSON reply format for this provider");
		goto out;
	}
	rc = JUDGE_OK;
out:
	cJSON_Delete(j);
	return rc;
}

char *judge_error_message(const char *body, size_t n)
{
	char *msg = NULL;
	cJSON *j = body ? cJSON_ParseWithLength(body, n) : NULL;
	if (cJSON_IsObject(j)) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
		const cJSON *m = NULL;
		if (cJSON_IsObject(e))
			m = cJSON_GetObjectItemCaseSensitive(e, "message");
		else if (cJSON_IsString(e))
			m = e;
		if (!m)
			m = cJSON_GetObjectItemCaseSensitive(j, "message");
		if (cJSON_IsString(m) && m->valuestring)
			msg = xstrdup(m->valuestring);
	}
	cJSON_Delete(j);
	if (!msg) {
		size_t k = n > 300 ? 300 : n;
		msg = xstrndup(body ? body : "", body ? k : 0);
		for (char *s = msg; *s; s++)
			if ((unsigned char)*s < 0x20)
				*s = ' ';
		if (!*msg) {
			free(msg);
			msg = xstrdup("(empty response body)");
		}
	}
	return msg;
}

int judge_status_retryable(long status)
{
	return status == 408 || status == 409 || status == 429 || (status >= 500 && status <= 599);
}

long judge_parse_retry_after(const char *v, long now_epoch)
{
	char *end;
	while (*v == ' ' || *v == '\t')
		v++;
	if (!*v)
		return -1;
	if (isdigit((unsigned char)*v)) {
		double s = strtod(v, &end);
		while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
			end++;
		if (!*end && isfinite(s) && s >= 0 && s < 1e7)
			return (long)(s * 1000.0 + 0.5);
	}
	time_t t = curl_getdate(v, NULL);
	if (t == (time_t)-1)
		return -1;
	long d = (long)t - now_epoch;
	return d > 0 ? d * 1000 : 0;
}

/* judge_identity.c: a judge's identity (provider, model, template hash and
 * parameters): the annotator every comparison of the judge belongs to. */
#include "config.h"
#include "judge/judge.h"
#include "util/sha256.h"
#include "util/xmalloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *judge_identity_params(judge_provider p, const judge_params *prm, int swap, const char *refs_hash)
{
	util_buf b = UTIL_BUF_INIT;
	if (p == JUDGE_PROVIDER_EXEC) {
		util_buf_addf(&b, "{\"swap\":%s", swap ? "true" : "false");
	} else {
		util_buf_addf(&b, "{\"temperature\":%.17g,\"max_tokens\":%ld,\"json_verdict\":%s,\"swap\":%s",
			      prm->temperature, prm->max_tokens, prm->json_verdict ? "true" : "false",
			      swap ? "true" : "false");
		/* only when set, so that the judges of earlier runs keep their names */
		if (prm->reasoning_effort)
			util_buf_addf(&b, ",\"reasoning_effort\":\"%s\"", prm->reasoning_effort);
		if (prm->system) {
			char h[65];
			util_sha256_hex(prm->system, strlen(prm->system), h);
			util_buf_addf(&b, ",\"system\":\"%s\"", h);
		}
		if (prm->extra_body) {
			util_buf_adds(&b, ",\"extra_body\":");
			util_buf_add_json_string(&b, prm->extra_body, strlen(prm->extra_body));
		}
	}
	if (refs_hash)
		util_buf_addf(&b, ",\"references\":\"%s\"", refs_hash);
	util_buf_addc(&b, '}');
	char *s = util_buf_detach(&b);
	util_buf_free(&b);
	return s;
}

char *judge_identity_name(judge_provider p, const char *model, const char *template_hash, const char *params)
{
	char h[65];
	char *mat = xasprintf("%s\n%s\n%s\n%s", judge_provider_name(p), model, template_hash, params);
	util_sha256_hex(mat, strlen(mat), h);
	free(mat);
	return xasprintf("judge:%s:%s:%.12s", judge_provider_name(p), model, h);
}

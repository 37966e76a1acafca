/* fuzz_jinja.c: libFuzzer target for the Jinja interpreter of chat
 * templates (train/jinja.h): an arbitrary template, and arbitrary data for
 * its variables. The input is the template, optionally followed by a NUL
 * byte and a JSON object of variables; without one (or when it is not
 * JSON) a fixed conversation is rendered. Parsing must fail cleanly or
 * succeed, and rendering must end (no crash, hang or unbounded memory):
 * the limits here are small so that a loop or a recursion hits them fast. */
#include "config.h"
#include "train/jinja.h"
#include "util/xmalloc.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char default_vars[] =
	"{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
	" {\"role\": \"user\", \"content\": \"Hi <think>x</think>\"},"
	" {\"role\": \"assistant\", \"content\": \"Yo\", \"tool_calls\": [{\"function\":"
	" {\"name\": \"f\", \"arguments\": {\"a\": [1, 2.5, null, true]}}}]}],"
	" \"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	const char *nul = memchr(s, 0, size);
	size_t tlen = nul ? (size_t)(nul - s) : size;
	cJSON *vars = NULL;
	if (nul) {
		char *js = xstrndup(nul + 1, size - tlen - 1);
		vars = cJSON_Parse(js);
		free(js);
	}
	if (!cJSON_IsObject(vars)) {
		cJSON_Delete(vars);
		vars = cJSON_Parse(default_vars);
	}
	char *err = NULL, *out = NULL;
	train_jinja *t = train_jinja_parse(s, tlen, "fuzz", &err);
	if (t) {
		struct tm now;
		memset(&now, 0, sizeof now);
		now.tm_year = 124;
		now.tm_mon = 6;
		now.tm_mday = 26;
		train_jinja_opts o = {&now, 8u << 20, 20000, 20};
		int rc = train_jinja_render(t, vars, &o, &out, &err);
		if ((rc == 0) != (out != NULL) || (rc != 0 && !err))
			abort(); /* the interface's promise */
		train_jinja_free(t);
	} else if (!err) {
		abort();
	}
	free(out);
	free(err);
	cJSON_Delete(vars);
	return 0;
}

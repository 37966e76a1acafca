/* bench_jinja.c: rendering conversations with a real chat template (the
 * Jinja interpreter, train/jinja.h) against tokenizing the rendered texts
 * (train/tokenizer.h), CPU time of one thread, in the same run: rendering should cost a
 * small fraction of tokenizing. Prints both times and their ratio, and
 * checks the renderings against the oracle's texts.
 *
 *   bench_jinja [N [TEMPLATE [TOKENIZER_DIR]]]
 *
 * Defaults: 100000 conversations, the 200 pairs of
 * $DPO_SHARED/data/ultrafeedback-binarized-sample/eval_clean.jsonl in turn
 * as a user turn (the prompt) and an assistant turn (the chosen answer),
 * rendered as training renders them (no generation prompt); the Qwen3
 * template of $DPO_SHARED/fixtures/chat-templates, the Qwen tokenizer of
 * $DPO_SHARED/fixtures/tokenizer-qwen. The six conversations of that
 * folder's oracle.json are rendered first and checked against the oracle.
 * Exits 0 with a SKIP line when the files are absent. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "train/jinja.h"
#include "train/tokenizer.h"
#include "util/file.h"
#include "util/xmalloc.h"

#define NCONV 6
#define NDATA 200

/* Up to NDATA conversations {user: prompt, assistant: chosen} of the JSONL
 * file at path as render variables into v; returns how many. */
static int load_data(const char *path, cJSON **v)
{
	size_t len;
	char *text = util_read_file(path, &len);
	int k = 0;
	for (char *line = text, *nl; line && *line && k < NDATA; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		cJSON *j = cJSON_Parse(line);
		const cJSON *p = cJSON_GetObjectItem(j, "prompt"), *c = cJSON_GetObjectItem(j, "chosen");
		if (cJSON_IsString(p) && cJSON_IsString(c)) {
			cJSON *m = cJSON_CreateArray(), *u = cJSON_CreateObject(), *a = cJSON_CreateObject();
			cJSON_AddStringToObject(u, "role", "user");
			cJSON_AddStringToObject(u, "content", p->valuestring);
			cJSON_AddStringToObject(a, "role", "assistant");
			cJSON_AddStringToObject(a, "content", c->valuestring);
			cJSON_AddItemToArray(m, u);
			cJSON_AddItemToArray(m, a);
			v[k] = cJSON_CreateObject();
			cJSON_AddItemToObject(v[k], "messages", m);
			cJSON_AddBoolToObject(v[k], "add_generation_prompt", 0);
			cJSON_AddStringToObject(v[k], "bos_token", "");
			cJSON_AddStringToObject(v[k], "eos_token", "<|im_end|>");
			k++;
		}
		cJSON_Delete(j);
	}
	free(text);
	return k;
}

/* CPU seconds of this thread: the machine may be busy with other work, and
 * both sides run on this one thread. */
static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	const char *sh = getenv("DPO_SHARED");
	if (!sh)
		sh = "../shared";
	long n = argc > 1 ? atol(argv[1]) : 100000;
	char *tpath = argc > 2 ? xstrdup(argv[2])
			       : xasprintf("%s/fixtures/chat-templates/Qwen-Qwen3-0.6B.jinja", sh);
	char *tokdir = argc > 3 ? xstrdup(argv[3]) : xasprintf("%s/fixtures/tokenizer-qwen", sh);
	char *opath = xasprintf("%s/fixtures/chat-templates/oracle.json", sh);
	size_t tlen, olen;
	char *tpl = util_read_file(tpath, &tlen), *otext = util_read_file(opath, &olen);
	char *err = NULL;
	train_tokenizer *tok = tpl && otext ? train_tokenizer_load(tokdir, &err) : NULL;
	if (!tok) {
		printf("SKIP bench_jinja: %s\n", err ? err : "no template or oracle under $DPO_SHARED");
		free(err);
		free(tpl);
		free(otext);
		free(tpath);
		free(tokdir);
		free(opath);
		return 0;
	}
	train_jinja *t = train_jinja_parse(tpl, tlen, "chat_template", &err);
	if (!t) {
		fprintf(stderr, "bench_jinja: %s\n", err);
		return 1;
	}
	cJSON *oracle = cJSON_Parse(otext);
	cJSON *vars[NCONV];
	const char *want[NCONV] = {NULL};
	const cJSON *convs = cJSON_GetObjectItem(oracle, "conversations"), *c;
	int k = 0;
	cJSON_ArrayForEach(c, convs)
	{
		if (k == NCONV)
			break;
		vars[k] = cJSON_CreateObject();
		cJSON_AddItemToObject(vars[k], "messages",
				      cJSON_Duplicate(cJSON_GetObjectItem(c, "messages"), 1));
		cJSON_AddBoolToObject(vars[k], "add_generation_prompt", 1);
		cJSON_AddStringToObject(vars[k], "bos_token", "");
		cJSON_AddStringToObject(vars[k], "eos_token", "<|im_end|>");
		k++;
	}
	cJSON_ArrayForEach(c, cJSON_GetObjectItem(oracle, "cases"))
	{
		int conv = cJSON_GetObjectItem(c, "conversation")->valueint;
		if (!strcmp(cJSON_GetObjectItem(c, "template")->valuestring, "Qwen-Qwen3-0.6B.jinja") &&
		    cJSON_IsTrue(cJSON_GetObjectItem(c, "add_generation_prompt")) &&
		    !cJSON_GetArraySize(cJSON_GetObjectItem(c, "extra")) && conv >= 1 && conv <= NCONV)
			want[conv - 1] = cJSON_GetObjectItem(c, "text")->valuestring;
	}
	struct tm now;
	memset(&now, 0, sizeof now);
	now.tm_year = 124;
	now.tm_mon = 6;
	now.tm_mday = 26;
	train_jinja_opts o = {&now, 0, 0, 0};
	int same = 1;
	for (int i = 0; i < k; i++) {
		char *text = NULL;
		if (train_jinja_render(t, vars[i], &o, &text, &err)) {
			fprintf(stderr, "bench_jinja: %s\n", err);
			return 1;
		}
		if (strstr(tpath, "Qwen-Qwen3-0.6B.jinja") && (!want[i] || strcmp(text, want[i])))
			same = 0;
		free(text);
	}
	char *dpath = xasprintf("%s/data/ultrafeedback-binarized-sample/eval_clean.jsonl", sh);
	cJSON *data[NDATA];
	int nd = load_data(dpath, data);
	printf("conversations: %s\n", nd ? dpath : "the oracle's six (no data file)");
	free(dpath);
	char **texts = xcalloc((size_t)n, sizeof *texts);
	size_t bytes = 0;
	double t0 = cpu_now();
	for (long i = 0; i < n; i++) {
		if (train_jinja_render(t, nd ? data[i % nd] : vars[i % k], &o, &texts[i], &err)) {
			fprintf(stderr, "bench_jinja: %s\n", err);
			return 1;
		}
		bytes += strlen(texts[i]);
	}
	double render = cpu_now() - t0;
	size_t ntok = 0;
	t0 = cpu_now();
	for (long i = 0; i < n; i++) {
		int32_t *ids = NULL;
		size_t m = 0;
		if (train_tokenizer_encode(tok, texts[i], strlen(texts[i]), &ids, &m)) {
			fprintf(stderr, "bench_jinja: %s\n", train_tokenizer_errmsg(tok));
			return 1;
		}
		ntok += m;
		free(ids);
	}
	double encode = cpu_now() - t0;
	printf("render %ld conversations (%.1f MB): %.3f s (%.1f us each)\n", n, bytes / 1e6, render,
	       render / (double)n * 1e6);
	printf("tokenize them (%zu tokens): %.3f s (%.1f us each)\n", ntok, encode,
	       encode / (double)n * 1e6);
	printf("render / tokenize = %.3f%s\n", encode > 0 ? render / encode : 0.0,
	       same ? "" : "  (renderings differ from the oracle!)");
	for (long i = 0; i < n; i++)
		free(texts[i]);
	free(texts);
	for (int i = 0; i < k; i++)
		cJSON_Delete(vars[i]);
	for (int i = 0; i < nd; i++)
		cJSON_Delete(data[i]);
	cJSON_Delete(oracle);
	train_jinja_free(t);
	train_tokenizer_free(tok);
	free(tpl);
	free(otext);
	free(tpath);
	free(tokdir);
	free(opath);
	return same ? 0 : 1;
}

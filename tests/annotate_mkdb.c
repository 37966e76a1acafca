/* annotate_mkdb: builds a test database for dpo-annotate's tests through
 * the store API (not installed).
 *
 *   annotate_mkdb DB FILE [--judge] [--disagree]
 *
 * FILE holds one candidates record per line: {"prompt": "text" or
 * [{"role", "content"}...], "completions": ["text", ...], "source": "name"}
 * (source optional, default "test"). --judge adds a verdict "a" by the judge
 * "judge:test" on every pair; --disagree adds opposite verdicts by the
 * humans "h1" (a) and "h2" (b) on the first pair of every prompt. */
#include "config.h"
#include "store/store.h"
#include "util/lineread.h"
#include "util/xmalloc.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int die(const char *what, store *st)
{
	fprintf(stderr, "annotate_mkdb: %s: %s\n", what, st ? store_errmsg(st) : "");
	return 1;
}

int main(int argc, char **argv)
{
	int judge = 0, disagree = 0;
	if (argc < 3) {
		fprintf(stderr, "usage: annotate_mkdb DB FILE [--judge] [--disagree]\n");
		return 2;
	}
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--judge"))
			judge = 1;
		else if (!strcmp(argv[i], "--disagree"))
			disagree = 1;
		else {
			fprintf(stderr, "annotate_mkdb: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	store *st = store_new();
	if (store_open(st, argv[1]) != STORE_OK)
		return die(argv[1], st);
	util_lineread *r = util_lineread_open(argv[2]);
	if (!r) {
		perror(argv[2]);
		return 1;
	}
	store_generator g = {.kind = "import", .name = "annotate-test"};
	store_annotator ja = {.kind = "judge", .name = "judge:test", .provider = "test", .model = "test",
			      .template_hash = "0", .params_json = "{}"};
	store_annotator h1 = {.kind = "human", .name = "h1"}, h2 = {.kind = "human", .name = "h2"};
	int64_t gid, jid, h1id, h2id;
	if (store_begin(st) || store_generator_id(st, &g, &gid) || store_annotator_id(st, &ja, &jid) ||
	    store_annotator_id(st, &h1, &h1id) || store_annotator_id(st, &h2, &h2id))
		return die("setup", st);
	const char *line;
	size_t len;
	while (util_lineread_next(r, &line, &len) == 1) {
		if (!len)
			continue;
		cJSON *j = cJSON_ParseWithLength(line, len);
		cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "prompt");
		cJSON *cs = cJSON_GetObjectItemCaseSensitive(j, "completions");
		cJSON *src = cJSON_GetObjectItemCaseSensitive(j, "source");
		if (!j || !p || !cJSON_IsArray(cs)) {
			fprintf(stderr, "annotate_mkdb: %s:%ld: expected {\"prompt\", \"completions\"}\n", argv[2],
				util_lineread_lineno(r));
			return 1;
		}
		const char *source = cJSON_IsString(src) ? src->valuestring : "test";
		int64_t pid;
		int rc;
		if (cJSON_IsString(p)) {
			rc = store_prompt_add(st, p->valuestring, NULL, 0, source, NULL, &pid, NULL);
		} else {
			int n = cJSON_GetArraySize(p);
			store_msg *m = xcalloc((size_t)n + 1, sizeof *m);
			for (int i = 0; i < n; i++) {
				cJSON *e = cJSON_GetArrayItem(p, i);
				m[i].role = cJSON_GetObjectItemCaseSensitive(e, "role")->valuestring;
				m[i].content = cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring;
			}
			rc = store_prompt_add(st, NULL, m, (size_t)n, source, NULL, &pid, NULL);
			free(m);
		}
		if (rc)
			return die("prompt", st);
		int n = cJSON_GetArraySize(cs);
		int64_t *ids = xcalloc((size_t)n + 1, sizeof *ids);
		for (int i = 0; i < n; i++)
			if (store_completion_add(st, pid, cJSON_GetArrayItem(cs, i)->valuestring, gid, &ids[i], NULL))
				return die("completion", st);
		for (int i = 0; i < n; i++)
			for (int k = i + 1; k < n; k++) {
				int64_t a = ids[i] < ids[k] ? ids[i] : ids[k], b = ids[i] < ids[k] ? ids[k] : ids[i];
				store_comparison c = {.prompt_id = pid, .completion_a = a, .completion_b = b,
						      .confidence = NAN, .duration_ms = -1};
				if (judge) {
					c.annotator_id = jid;
					c.verdict = "a";
					if (store_comparison_add(st, &c, NULL, NULL))
						return die("judge verdict", st);
				}
				if (disagree && i == 0 && k == 1) {
					c.annotator_id = h1id;
					c.verdict = "a";
					if (store_comparison_add(st, &c, NULL, NULL))
						return die("h1 verdict", st);
					c.annotator_id = h2id;
					c.verdict = "b";
					if (store_comparison_add(st, &c, NULL, NULL))
						return die("h2 verdict", st);
				}
			}
		free(ids);
		cJSON_Delete(j);
	}
	util_lineread_close(r);
	if (store_commit(st))
		return die("commit", st);
	store_free(st);
	return 0;
}

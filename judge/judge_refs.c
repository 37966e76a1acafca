/* judge_refs.c: reference answers for {{reference}} (--references). */
#include "config.h"
#include "judge/judge.h"
#include "util/sha256.h"
#include "util/xmalloc.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct judge_refs {
	char **prompt;      /* plain prompt text, or NULL */
	int64_t *prompt_id; /* or -1 */
	char **text;
	size_t n;
};

void judge_refs_free(judge_refs *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++) {
		free(r->prompt[i]);
		free(r->text[i]);
	}
	free(r->prompt);
	free(r->prompt_id);
	free(r->text);
	free(r);
}

/* Add the entry of one line; -1 when it is not one. */
static int add_line(judge_refs *r, const char *line, size_t len)
{
	cJSON *j = cJSON_ParseWithLength(line, len);
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "prompt");
	const cJSON *pid = cJSON_GetObjectItemCaseSensitive(j, "prompt_id");
	const cJSON *ref = cJSON_GetObjectItemCaseSensitive(j, "reference");
	if (!cJSON_IsObject(j) || !cJSON_IsString(ref) || !(cJSON_IsString(p) || cJSON_IsNumber(pid))) {
		cJSON_Delete(j);
		return -1;
	}
	r->prompt = xreallocarray(r->prompt, r->n + 1, sizeof *r->prompt);
	r->prompt_id = xreallocarray(r->prompt_id, r->n + 1, sizeof *r->prompt_id);
	r->text = xreallocarray(r->text, r->n + 1, sizeof *r->text);
	r->prompt[r->n] = cJSON_IsString(p) ? xstrdup(p->valuestring) : NULL;
	r->prompt_id[r->n] = cJSON_IsNumber(pid) ? (int64_t)pid->valuedouble : -1;
	r->text[r->n] = xstrdup(ref->valuestring);
	r->n++;
	cJSON_Delete(j);
	return 0;
}

judge_refs *judge_refs_load(const char *path, char hash[65], char *err, size_t errsz)
{
	FILE *f = fopen(path, "rb");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	long lineno = 0;
	util_sha256 h;
	if (!f) {
		snprintf(err, errsz, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	judge_refs *r = xcalloc(1, sizeof *r);
	util_sha256_init(&h);
	while ((len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		util_sha256_update(&h, line, (size_t)len);
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len > 0 && add_line(r, line, (size_t)len)) {
			snprintf(err, errsz,
				 "%s:%ld: expected an object with a string \"reference\" and a string "
				 "\"prompt\" or a number \"prompt_id\"",
				 path, lineno);
			judge_refs_free(r);
			r = NULL;
			break;
		}
	}
	free(line);
	fclose(f);
	if (r)
		util_sha256_final_hex(&h, hash);
	return r;
}

size_t judge_refs_count(const judge_refs *r)
{
	return r ? r->n : 0;
}

const char *judge_refs_find(const judge_refs *r, int64_t prompt_id, const char *text)
{
	for (size_t i = 0; i < judge_refs_count(r); i++) {
		if (r->prompt_id[i] == prompt_id)
			return r->text[i];
		if (r->prompt[i] && text && !strcmp(r->prompt[i], text))
			return r->text[i];
	}
	return NULL;
}

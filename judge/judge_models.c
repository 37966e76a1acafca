/* judge_models.c: the per-model request shaping table (share/judge/
 * models.json): which limit field a model takes, whether it takes a
 * temperature and a reasoning effort. */
#include "config.h"
#include "judge/judge.h"
#include "util/file.h"
#include "util/xmalloc.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
	char *key;            /* a model name, or a prefix ending in '*' */
	judge_model_shape shape;
} entry;

struct judge_models {
	entry *v;
	size_t n;
};

static void set_entry(judge_models *m, const char *key, const judge_model_shape *sh)
{
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->v[i].key, key)) {
			m->v[i].shape = *sh;
			return;
		}
	m->v = xreallocarray(m->v, m->n + 1, sizeof *m->v);
	m->v[m->n].key = xstrdup(key);
	m->v[m->n].shape = *sh;
	m->n++;
}

/* One entry's object into *sh. Returns 0, or -1 naming the bad member in
 * *what. */
static int parse_shape(const cJSON *o, judge_model_shape *sh, const char **what)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, "max_tokens_field");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "temperature");
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "reasoning_effort");
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "default_max_tokens");
	memset(sh, 0, sizeof *sh);
	sh->temperature = 1;
	sh->reasoning_effort = 1;
	if (f) {
		if (cJSON_IsString(f) && !strcmp(f->valuestring, "max_completion_tokens"))
			sh->max_completion_tokens = 1;
		else if (!cJSON_IsString(f) || strcmp(f->valuestring, "max_tokens")) {
			*what = "\"max_tokens_field\" (max_tokens or max_completion_tokens)";
			return -1;
		}
	}
	if (t) {
		if (!cJSON_IsBool(t)) {
			*what = "\"temperature\" (true or false)";
			return -1;
		}
		sh->temperature = cJSON_IsTrue(t);
	}
	if (r) {
		if (!cJSON_IsBool(r)) {
			*what = "\"reasoning_effort\" (true or false)";
			return -1;
		}
		sh->reasoning_effort = cJSON_IsTrue(r);
	}
	if (d) {
		if (!cJSON_IsNumber(d) || d->valuedouble < 1 || d->valuedouble > 1e9 ||
		    d->valuedouble != (double)(long)d->valuedouble) {
			*what = "\"default_max_tokens\" (a whole number, 1 or more)";
			return -1;
		}
		sh->default_max_tokens = (long)d->valuedouble;
	}
	return 0;
}

judge_models *judge_models_parse(const char *text, size_t n, const char *name, const judge_models *base,
				char *err, size_t errsz)
{
	judge_models *m = xcalloc(1, sizeof *m);
	cJSON *j = NULL;
	const cJSON *it;

	if (base)
		for (size_t i = 0; i < base->n; i++)
			set_entry(m, base->v[i].key, &base->v[i].shape);
	j = cJSON_ParseWithLength(text, n);
	if (!cJSON_IsObject(j)) {
		snprintf(err, errsz, "%s: not a JSON object of models", name);
		goto fail;
	}
	cJSON_ArrayForEach(it, j)
	{
		judge_model_shape sh;
		const char *what = "an object";
		if (!it->string || it->string[0] == '_' || !strcmp(it->string, "date"))
			continue;
		if (!cJSON_IsObject(it) || parse_shape(it, &sh, &what)) {
			snprintf(err, errsz, "%s: model \"%s\": expected %s", name, it->string, what);
			goto fail;
		}
		set_entry(m, it->string, &sh);
	}
	cJSON_Delete(j);
	return m;
fail:
	cJSON_Delete(j);
	judge_models_free(m);
	return NULL;
}

judge_models *judge_models_load(const char *path, const judge_models *base, char *err, size_t errsz)
{
	size_t n;
	char *text = util_read_file(path, &n);
	if (!text) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return NULL;
	}
	judge_models *m = judge_models_parse(text, n, path, base, err, errsz);
	free(text);
	return m;
}

void judge_models_free(judge_models *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].key);
	free(m->v);
	free(m);
}

int judge_models_lookup(const judge_models *m, const char *model, judge_model_shape *sh)
{
	const entry *best = NULL;
	size_t bestlen = 0;
	memset(sh, 0, sizeof *sh);
	sh->temperature = 1;
	sh->reasoning_effort = 1;
	if (!m || !model)
		return -1;
	for (size_t i = 0; i < m->n; i++) {
		const char *k = m->v[i].key;
		size_t l = strlen(k);
		if (!strcmp(k, model)) {
			best = &m->v[i];
			break;
		}
		if (l > 0 && k[l - 1] == '*' && l - 1 >= bestlen && !strncmp(k, model, l - 1)) {
			best = &m->v[i];
			bestlen = l - 1;
		}
	}
	if (!best)
		return -1;
	*sh = best->shape;
	return 0;
}

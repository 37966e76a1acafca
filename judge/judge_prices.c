/* judge_prices.c: the per-model price table (USD per million tokens). */
#include "config.h"
#include "judge/judge.h"
#include "util/xmalloc.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct price {
	char *model;
	double in, out;
} price;

struct judge_prices {
	price *v;
	size_t n;
	char *date;
};

static void set_price(judge_prices *p, const char *model, double in, double out)
{
	for (size_t i = 0; i < p->n; i++)
		if (!strcmp(p->v[i].model, model)) {
			p->v[i].in = in;
			p->v[i].out = out;
			return;
		}
	p->v = xreallocarray(p->v, p->n + 1, sizeof *p->v);
	p->v[p->n].model = xstrdup(model);
	p->v[p->n].in = in;
	p->v[p->n].out = out;
	p->n++;
}

judge_prices *judge_prices_load(const char *path, const judge_prices *base, char *err, size_t errsz)
{
	judge_prices *p = xcalloc(1, sizeof *p);
	util_buf b = UTIL_BUF_INIT;
	cJSON *j = NULL;
	const cJSON *it;
	char chunk[4096];
	size_t r;
	FILE *f;

	if (base) {
		for (size_t i = 0; i < base->n; i++)
			set_price(p, base->v[i].model, base->v[i].in, base->v[i].out);
		p->date = base->date ? xstrdup(base->date) : NULL;
	}
	f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		goto fail;
	}
	while ((r = fread(chunk, 1, sizeof chunk, f)) > 0)
		util_buf_add(&b, chunk, r);
	fclose(f);
	j = cJSON_ParseWithLength(util_buf_str(&b), b.len);
	if (!cJSON_IsObject(j)) {
		snprintf(err, errsz, "%s: not a JSON object of model prices", path);
		goto fail;
	}
	cJSON_ArrayForEach(it, j)
	{
		if (!it->string || it->string[0] == '_')
			continue;
		if (!strcmp(it->string, "date")) {
			if (!cJSON_IsString(it)) {
				snprintf(err, errsz, "%s: \"date\" must be a string", path);
				goto fail;
			}
			free(p->date);
			p->date = xstrdup(it->valuestring);
			continue;
		}
		const cJSON *in = cJSON_GetObjectItemCaseSensitive(it, "input");
		const cJSON *out = cJSON_GetObjectItemCaseSensitive(it, "output");
		if (!cJSON_IsObject(it) || !cJSON_IsNumber(in) || !cJSON_IsNumber(out) ||
		    !isfinite(in->valuedouble) || !isfinite(out->valuedouble) || in->valuedouble < 0 ||
		    out->valuedouble < 0) {
			snprintf(err, errsz,
				 "%s: model \"%s\": expected {\"input\": number, \"output\": number} "
				 "(USD per 1M tokens)",
				 path, it->string);
			goto fail;
		}
		set_price(p, it->string, in->valuedouble, out->valuedouble);
	}
	cJSON_Delete(j);
	util_buf_free(&b);
	return p;
fail:
	cJSON_Delete(j);
	util_buf_free(&b);
	judge_prices_free(p);
	return NULL;
}

void judge_prices_free(judge_prices *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i].model);
	free(p->v);
	free(p->date);
	free(p);
}

int judge_prices_lookup(const judge_prices *p, const char *model, double *in, double *out)
{
	const price *best = NULL;
	size_t bestlen = 0;
	if (!p || !model)
		return -1;
	for (size_t i = 0; i < p->n; i++) {
		size_t l = strlen(p->v[i].model);
		if (!strcmp(p->v[i].model, model)) {
			best = &p->v[i];
			break;
		}
		if (l > bestlen && !strncmp(p->v[i].model, model, l) && model[l] && strchr("-_@:", model[l])) {
			best = &p->v[i];
			bestlen = l;
		}
	}
	if (!best)
		return -1;
	*in = best->in;
	*out = best->out;
	return 0;
}

const char *judge_prices_date(const judge_prices *p)
{
	return p ? p->date : NULL;
}

/* gen_cli.c: sampling options shared by dpo-model generate and dpo-generate. */
#include "config.h"
#include "train/gen_cli.h"
#include "util/cli.h"
#include "util/xmalloc.h"
#include <stdlib.h>
#include <string.h>

void train_gen_cli_init(train_gen_cli *g, long max_new)
{
	memset(g, 0, sizeof *g);
	train_sampling_default(&g->sampling);
	g->max_new = max_new;
}

int train_gen_cli_option(train_gen_cli *g, int code, const char *arg)
{
	long topk;
	switch (code) {
	case TRAIN_GEN_OPT_GREEDY: g->sampling.greedy = 1; return 1;
	case TRAIN_GEN_OPT_TEMP: util_parse_double("--temperature", arg, &g->sampling.temperature); return 1;
	case TRAIN_GEN_OPT_TOPP: util_parse_double("--top-p", arg, &g->sampling.top_p); return 1;
	case TRAIN_GEN_OPT_MINP: util_parse_double("--min-p", arg, &g->sampling.min_p); return 1;
	case TRAIN_GEN_OPT_SEED: util_parse_long("--seed", arg, &g->seed); return 1;
	case TRAIN_GEN_OPT_MAX: util_parse_long("--max-new-tokens", arg, &g->max_new); return 1;
	case TRAIN_GEN_OPT_TOPK:
		util_parse_long("--top-k", arg, &topk);
		if (topk < 0 || topk > 1 << 30)
			util_usage_error("--top-k must be >= 0");
		g->sampling.top_k = (int)topk;
		return 1;
	case TRAIN_GEN_OPT_STOP:
		g->stops = xreallocarray(g->stops, (size_t)g->nstops + 1, sizeof *g->stops);
		g->stops[g->nstops++] = arg;
		return 1;
	}
	return 0;
}

void train_gen_cli_check(const train_gen_cli *g)
{
	if (g->max_new < 1 || g->max_new > 1 << 20)
		util_usage_error("--max-new-tokens must be >= 1");
	const char *bad = train_sampling_check(&g->sampling);
	if (bad)
		util_usage_error("%s", bad);
}

int train_gen_cli_stop(void *ctx, int row, const int32_t *ids, int n)
{
	const train_gen_cli *g = ctx;
	(void)row;
	if (g->interrupted && g->interrupted())
		return 1;
	if (!g->nstops || !g->tok)
		return 0;
	char *text = train_tokenizer_decode(g->tok, ids, (size_t)n);
	int hit = 0;
	for (int i = 0; i < g->nstops && !hit; i++)
		hit = strstr(text, g->stops[i]) != NULL;
	free(text);
	return hit;
}

char *train_gen_cli_cut(const train_gen_cli *g, char *text)
{
	char *cut = NULL;
	for (int i = 0; i < g->nstops; i++) {
		char *h = strstr(text, g->stops[i]);
		if (h && (!cut || h < cut))
			cut = h;
	}
	if (cut)
		*cut = '\0';
	return text;
}

void train_gen_cli_free(train_gen_cli *g)
{
	free(g->stops);
	g->stops = NULL;
	g->nstops = 0;
}

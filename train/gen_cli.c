/* gen_cli.c: the sampling options shared by dpo-model generate,
 * dpo-generate and dpo-eval (see gen_cli.h). */
#include "config.h"
#include "train/gen_cli.h"
#include "train/chat.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

const util_opt train_gen_cli_opts[] = {
	UTIL_OPT_HEADING("Sampling:"),
	{"greedy", 0, UTIL_OPT_FLAG, offsetof(train_gen_cli, greedy),
	 .help = "always the most likely token (--temperature,\n--top-k, --top-p and --min-p are ignored)"},
	{"temperature", 0, UTIL_OPT_FLOAT, offsetof(train_gen_cli, temperature), .def = "1",
	 .range = "(0, inf)", .arg = "T", .help = "divide the logits by T"},
	{"top-k", 0, UTIL_OPT_INT, offsetof(train_gen_cli, top_k), .def = "0", .range = "[0, inf)",
	 .arg = "K", .help = "keep the K most likely tokens,\n0 for all"},
	{"top-p", 0, UTIL_OPT_FLOAT, offsetof(train_gen_cli, top_p), .def = "1", .range = "(0, 1]",
	 .arg = "P", .help = "keep the most likely tokens whose probabilities\nsum to P, 1 for all"},
	{"min-p", 0, UTIL_OPT_FLOAT, offsetof(train_gen_cli, min_p), .def = "0", .range = "[0, 1)",
	 .arg = "P", .help = "drop the tokens less likely than P times the\nmost likely one, 0 for none"},
	UTIL_OPT_SEED(train_gen_cli, seed, "0"),
	{"max-new-tokens", 0, UTIL_OPT_INT, offsetof(train_gen_cli, max_new),
	 .def = TRAIN_GEN_MAX_NEW_DEFAULT, .range = "[1, 1048576]",
	 .help = "at most N new tokens per completion"},
	{"stop", 0, UTIL_OPT_LIST, offsetof(train_gen_cli, stop), .arg = "STR",
	 .help = "end a completion at STR, cut before it\n(repeatable)"},
	UTIL_OPT_HEADING("Chat template:"),
	TRAIN_GEN_OPT_CHAT_VAR(train_gen_cli, chat_vars),
	UTIL_OPT_HEADING("Precision:"),
	TRAIN_GEN_OPT_PRECISION(train_gen_cli, precision),
	UTIL_OPT_TABLE_END,
};

train_sampling train_gen_cli_sampling(const train_gen_cli *g)
{
	train_sampling s;
	train_sampling_default(&s);
	s.greedy = g->greedy;
	s.temperature = g->temperature;
	s.top_k = g->top_k > INT_MAX ? INT_MAX : (int)g->top_k;
	s.top_p = g->top_p;
	s.min_p = g->min_p;
	return s;
}

const char *train_gen_cli_chat_var_check(const char *const *v, int n)
{
	for (int i = 0; i < n; i++) {
		const char *bad = train_chat_var_check(v[i]);
		if (bad)
			return bad;
	}
	return NULL;
}

const char *train_gen_cli_check(const train_gen_cli *g)
{
	const char *bad = train_gen_cli_chat_var_check(g->chat_vars.v, g->chat_vars.n);
	if (bad)
		return bad;
	for (int i = 0; i < g->stop.n; i++)
		if (!g->stop.v[i][0])
			return "--stop: expected a string, got \"\" (it would end every completion at once)";
	if (g->max_new < 1)
		return "--max-new-tokens: expected at least 1";
	/* the table's ranges hold unless a caller set the fields itself */
	train_sampling s = train_gen_cli_sampling(g);
	return train_sampling_check(&s);
}

train_gen_opts train_gen_cli_gen_opts(train_gen_cli *g, int batch)
{
	train_gen_opts o = {.sampling = train_gen_cli_sampling(g),
			    .max_new = g->max_new > INT_MAX ? INT_MAX : (int)g->max_new,
			    .batch = batch};
	if (g->stop.n || g->interrupted) {
		o.stop = train_gen_cli_stop;
		o.ctx = g;
	}
	return o;
}

train_gen_params train_gen_cli_params(const train_gen_cli *g, int chat_plain, const char *chat_format)
{
	return (train_gen_params){.sampling = train_gen_cli_sampling(g), .seed = g->seed,
				  .max_new = g->max_new, .stops = g->stop.v, .nstops = g->stop.n,
				  .chat_plain = chat_plain, .chat_format = chat_format,
				  .chat_vars = g->chat_vars.v, .n_chat_vars = g->chat_vars.n,
				  .precision = train_precision_resolve(g->precision) == TRAIN_PREC_BF16
						       ? "bf16" : NULL};
}

int train_gen_cli_stop(void *ctx, int row, const int32_t *ids, int n)
{
	const train_gen_cli *g = ctx;
	(void)row;
	if (g->interrupted && g->interrupted())
		return 1;
	if (!g->stop.n || !g->tok)
		return 0;
	char *text = train_tokenizer_decode(g->tok, ids, (size_t)n);
	int hit = 0;
	for (int i = 0; i < g->stop.n && !hit; i++)
		hit = strstr(text, g->stop.v[i]) != NULL;
	free(text);
	return hit;
}

char *train_gen_cli_cut(const train_gen_cli *g, char *text)
{
	char *cut = NULL;
	for (int i = 0; i < g->stop.n; i++) {
		char *h = strstr(text, g->stop.v[i]);
		if (h && (!cut || h < cut))
			cut = h;
	}
	if (cut)
		*cut = '\0';
	return text;
}

int train_gen_cli_chat_format(void *target, const char *value, char *err, size_t errlen)
{
	train_chat_format f;
	if (train_chat_format_parse(value, &f)) {
		snprintf(err, errlen, "expected one of %s, got \"%s\"", train_chat_format_names(), value);
		return -1;
	}
	*(const char **)target = value;
	return 0;
}

int train_gen_cli_precision(void *target, const char *value, char *err, size_t errlen)
{
	if (train_precision_parse(value, (train_precision *)target)) {
		snprintf(err, errlen, "expected f32, bf16 or auto, got \"%s\"", value ? value : "");
		return -1;
	}
	return 0;
}

void train_gen_run_params(const util_cli *cli, const char *extra, util_buf *b)
{
	size_t start = b->len;
	util_cli_params_json(cli, b);
	if (!extra || !*extra)
		return;
	/* reopen the object: drop its '}' and add the members */
	b->len--;
	b->data[b->len] = '\0';
	if (b->len - start > 1)
		util_buf_adds(b, ", ");
	util_buf_adds(b, extra);
	util_buf_addc(b, '}');
}

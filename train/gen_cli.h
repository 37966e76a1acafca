/* gen_cli.h: the sampling options that `dpo-model generate` and
 * `dpo-generate` share (--greedy, --temperature, --top-k, --top-p, --min-p,
 * --seed, --max-new-tokens, --stop), their checks, and the stop-string
 * handling during and after generation. */
#ifndef DPO_TRAIN_GEN_CLI_H
#define DPO_TRAIN_GEN_CLI_H
#include "train/sample.h"
#include "train/tokenizer.h"

/* getopt_long codes of the shared options; programs number their own below
 * TRAIN_GEN_OPT_FIRST. */
enum {
	TRAIN_GEN_OPT_FIRST = 0x1000,
	TRAIN_GEN_OPT_GREEDY = TRAIN_GEN_OPT_FIRST,
	TRAIN_GEN_OPT_TEMP,
	TRAIN_GEN_OPT_TOPK,
	TRAIN_GEN_OPT_TOPP,
	TRAIN_GEN_OPT_MINP,
	TRAIN_GEN_OPT_SEED,
	TRAIN_GEN_OPT_MAX,
	TRAIN_GEN_OPT_STOP,
};

/* The struct option entries of the shared options, for a program's table. */
#define TRAIN_GEN_LONG_OPTIONS                                                 \
	{"greedy", no_argument, NULL, TRAIN_GEN_OPT_GREEDY},                   \
	{"temperature", required_argument, NULL, TRAIN_GEN_OPT_TEMP},          \
	{"top-k", required_argument, NULL, TRAIN_GEN_OPT_TOPK},                \
	{"top-p", required_argument, NULL, TRAIN_GEN_OPT_TOPP},                \
	{"min-p", required_argument, NULL, TRAIN_GEN_OPT_MINP},                \
	{"seed", required_argument, NULL, TRAIN_GEN_OPT_SEED},                 \
	{"max-new-tokens", required_argument, NULL, TRAIN_GEN_OPT_MAX},        \
	{"stop", required_argument, NULL, TRAIN_GEN_OPT_STOP}

typedef struct train_gen_cli {
	train_sampling sampling;
	long seed;
	long max_new;
	const char **stops;      /* the --stop strings (pointers into argv) */
	int nstops;
	train_tokenizer *tok;    /* set before generating: decodes for the stop check */
	int (*interrupted)(void); /* optional: when it returns nonzero every row ends */
} train_gen_cli;

/* Defaults: sampling at temperature 1, seed 0, max_new new tokens. */
void train_gen_cli_init(train_gen_cli *g, long max_new);
/* Apply option code (one of TRAIN_GEN_OPT_*) with argument arg. Returns 1
 * when the code is a shared option, 0 otherwise. A bad value exits with
 * status 2 naming the option. */
int train_gen_cli_option(train_gen_cli *g, int code, const char *arg);
/* Check the ranges once every option is read; exits with status 2 on a bad
 * combination. */
void train_gen_cli_check(const train_gen_cli *g);
/* A train_gen_opts stop callback (ctx is the train_gen_cli): ends a row
 * whose decoded text contains a stop string, or every row once
 * g->interrupted() is nonzero. */
int train_gen_cli_stop(void *ctx, int row, const int32_t *ids, int n);
/* Cut text (modified in place) at its earliest stop string; returns text. */
char *train_gen_cli_cut(const train_gen_cli *g, char *text);
/* Free what init and the options allocated (not the tokenizer). */
void train_gen_cli_free(train_gen_cli *g);

#endif

/* sample.h: token sampling (temperature, top-k, top-p, min-p; greedy) and
 * batched generation with the KV cache of train/model.h. Tokenizer-free:
 * stop strings are checked by a caller-supplied callback. */
#ifndef DPO_TRAIN_SAMPLE_H
#define DPO_TRAIN_SAMPLE_H
#include <stdint.h>

#include "train/model.h"

/* Sampling parameters. Filters apply in the order of transformers'
 * generate(): temperature, then top-k, then top-p, then min-p. */
typedef struct train_sampling {
	int greedy;          /* 1: argmax, everything else ignored */
	double temperature;  /* > 0 (1 = unchanged) */
	int top_k;           /* 0 = off */
	double top_p;        /* in (0, 1]; 1 = off */
	double min_p;        /* in [0, 1); 0 = off */
} train_sampling;

/* Defaults: not greedy, temperature 1, no filter. */
void train_sampling_default(train_sampling *s);

/* Check the ranges above; returns NULL when valid, else a static message
 * naming the bad field. */
const char *train_sampling_check(const train_sampling *s);

/* A small deterministic PRNG (xoshiro256**). */
typedef struct train_rng {
	uint64_t s[4];
} train_rng;

/* Seed r from seed (any value). */
void train_rng_seed(train_rng *r, uint64_t seed);
/* Next 64 random bits. */
uint64_t train_rng_next(train_rng *r);
/* Uniform double in [0, 1). */
double train_rng_uniform(train_rng *r);

/* Pick a token from logits [V] under s with r (r unused when greedy).
 * Never fails: with every logit -inf or NaN it returns the argmax (0). */
int train_sample_token(const float *logits, int V, const train_sampling *s, train_rng *r);

/* Why a generated sequence ended. */
typedef enum { TRAIN_FINISH_LENGTH = 0, TRAIN_FINISH_EOS, TRAIN_FINISH_STOP } train_finish;

/* Name of a finish reason: "length", "eos", "stop". */
const char *train_finish_name(train_finish f);

typedef struct train_gen_opts {
	train_sampling sampling;
	int max_new;          /* new tokens per row, >= 1 */
	const int32_t *eos;   /* ids that end a row (not included in the output) */
	int n_eos;
	/* Called after each new token of row with its n generated ids so far;
	 * return 1 to end the row with TRAIN_FINISH_STOP. May be NULL. */
	int (*stop)(void *ctx, int row, const int32_t *ids, int n);
	void *ctx;
	int batch;            /* rows decoded together (0 = all) */
} train_gen_opts;

typedef struct train_gen_result {
	int32_t *ids;         /* generated ids (caller frees) */
	int n;
	train_finish finish;
	int32_t end_id;       /* the EOS id that ended the row (not in ids) when finish is
			       * TRAIN_FINISH_EOS, else -1 */
} train_gen_result;

/* Generate for nb prompts (prompts[i] of plen[i] >= 1 ids), row i sampling
 * with its own generator seeded by seeds[i], so a row's output does not
 * depend on the other rows. Rows are prefilled one by one (a prompt equal
 * to an earlier row's of the same batch is not run again: that row's cache
 * is copied) and decoded in batches of opts->batch. Results into out[nb]
 * (caller frees each .ids).
 * Returns 0, or a negative TRAIN_E* code with *err (caller frees) for a bad
 * id or a prompt longer than the context. */
int train_generate(const train_model *m, int nb, const int32_t *const *prompts, const int *plen,
		   const uint64_t *seeds, const train_gen_opts *opts, train_gen_result *out,
		   char **err);

#endif

/* margins.h: DPO implicit-reward margins of annotation pairs for
 * dpo-annotate --order uncertain --policy DIR --reference DIR.
 *
 * margin = beta * [(log pi(a) - log ref(a)) - (log pi(b) - log ref(b))],
 * log p(y) being the sum of y's token log-probs given the prompt. Prompts
 * and completions are tokenized as dpo-train tokenizes pairs from the store
 * (train_raw_tokenize with dpo-train's default settings: the policy's
 * tokenizer, its chat template for conversations, EOS appended to each
 * completion, no BOS, at most 1024 tokens or the model's context), and
 * scored by the engine (train_model_logprobs). Only public headers of
 * train/ are used; this module is linked into dpo-annotate alone, so the
 * session model and its tests stay free of the engine.
 *
 * Margins are cached in the store (store_margin_get/put) by the pair and the
 * fingerprints of the policy, the reference and the tokenization: a second
 * start computes nothing. */
#ifndef DPO_ANN_MARGINS_H
#define DPO_ANN_MARGINS_H
#include <stddef.h>
#include "annotate/session.h"
#include "store/store.h"

typedef struct ann_margin_opts {
	const char *policy_dir, *reference_dir;
	double beta;          /* the scale of the reported margins (> 0) */
	const char *chat_format; /* NULL: the policy tokenizer's template */
	int quiet;            /* no progress line on stderr */
} ann_margin_opts;

/* What ann_margins_compute did. */
typedef struct ann_margin_counts {
	size_t cached;    /* read from the store's cache */
	size_t computed;  /* computed now (and cached when the store is writable) */
} ann_margin_counts;

/* The margins of pairs[0..n) into out[0..n) (same order; margin of
 * completion_a over completion_b, beta applied), from the cache or
 * computed with the engine (progress on stderr unless quiet). Returns 0, or
 * -1 with a message in *err (caller frees). Ctrl-C (util_interrupted) stops
 * it with -1 and "interrupted"; what was computed is cached. */
int ann_margins_compute(store *st, const ann_margin_opts *o, const store_pair_ref *pairs, size_t n,
			ann_margin *out, ann_margin_counts *k, char **err);

#endif

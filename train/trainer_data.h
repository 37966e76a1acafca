/* trainer_data.h: the trainer's data: TRL-format JSONL preference pairs
 * (standard, conversational or pre-tokenized), tokenization of prompt and
 * completions (separately, then concatenated), EOS appending, truncation,
 * and a fingerprint of the tokenized data set.
 *
 * A JSONL line holds an object with
 *   "prompt":   a string, or a list of {"role", "content"} messages;
 *   "chosen", "rejected": strings, or lists of messages (the assistant
 *               turn(s) that follow the prompt);
 * or, already tokenized, "prompt_ids", "chosen_ids", "rejected_ids": lists
 * of token ids (used as they are: no EOS is appended to them unless asked).
 * Conversational prompts are rendered with the model's chat template and
 * the generation prompt; conversational completions are the text the
 * template adds after that prompt. */
#ifndef DPO_TRAIN_TRAINER_DATA_H
#define DPO_TRAIN_TRAINER_DATA_H
#include <stddef.h>
#include "store/store.h"
#include "train/chat.h"
#include "train/tokenizer.h"
#include "train/trainer.h"

/* One parsed line before tokenization. Every pointer is owned by the
 * struct (train_raw_free). */
typedef struct train_raw_pair {
	char *prompt;              /* plain prompt, or NULL */
	store_msg *pmsgs;          /* conversational prompt, or NULL */
	size_t npmsgs;
	char *chosen, *rejected;   /* plain completions, or NULL */
	store_msg *cmsgs, *rmsgs;  /* conversational completions, or NULL */
	size_t ncmsgs, nrmsgs;
	int has_ids;               /* pre-tokenized: the three arrays below */
	int *prompt_ids, *chosen_ids, *rejected_ids;
	int np, nc, nr;
} train_raw_pair;

/* Parse one JSON line (len bytes, need not be NUL-terminated) into *out
 * (zeroed first). Returns 0, or -1 with a message in *err (caller frees)
 * naming the field and what was expected, e.g. `field "chosen" must be a
 * string or a list of messages`. Fuzzed by fuzz/fuzz_train_jsonl.c. */
int train_raw_parse(const char *line, size_t len, train_raw_pair *out, char **err);

/* Parse a JSON array of {"role","content"} messages (as the store hands
 * out) into a new array *msgs of *n messages whose strings are owned by the
 * array (free with train_msgs_free). Returns 0 or -1 with *err. */
int train_msgs_parse(const char *json, store_msg **msgs, size_t *n, char **err);
void train_msgs_free(store_msg *msgs, size_t n);

/* Free what a raw pair owns (not the struct). NULL allowed. */
void train_raw_free(train_raw_pair *r);

/* Tokenization settings (part of the tokenization fingerprint). */
typedef struct train_tok_opts {
	int append_eos;          /* append the EOS id to each completion (TRL) */
	int add_bos;             /* prepend the BOS id to the prompt */
	long max_length;         /* prompt + completion at most (<= 0: no limit) */
	long max_prompt_length;  /* prompt at most, keeping its end (<= 0: no limit) */
	long max_completion_length; /* each completion at most, keeping its start (<= 0: no limit) */
	int keep_start;          /* over max_length the sequence keeps its start (TRL's
				  * truncation_mode="keep_start"); 0: keep_end */
	int eos_id, bos_id;      /* ids used by append_eos / add_bos (-1: none) */
} train_tok_opts;

/* Tokenize a raw pair into *out (zeroed first; its arrays are new, caller
 * frees with train_pair_free). tok is needed unless the pair is
 * pre-tokenized; chat is needed for conversational pairs (may be NULL
 * otherwise). Truncation follows train_pair_truncate. Returns 0, or -1
 * with *err (caller frees). */
int train_raw_tokenize(const train_raw_pair *r, train_tokenizer *tok, train_chat *chat,
		       const train_tok_opts *o, train_pair *out, char **err);

/* Apply the length limits: the prompt keeps its last max_prompt_length
 * tokens and each completion its first max_completion_length; then if
 * prompt + the longer completion exceeds max_length, the completions keep
 * their first max_length - prompt tokens, and when that would leave fewer
 * than one completion token the prompt is cut further: keeping its end
 * (keep_end, the default) or its start (keep_start: the sequence keeps its
 * first max_length tokens). Sets p->truncated when anything was cut. */
void train_pair_truncate(train_pair *p, const train_tok_opts *o);

/* A fingerprint of the tokenization: SHA-256 hex (65 bytes with the NUL)
 * of the tokenizer fingerprint (or "pretokenized"), the chat format name
 * (or "none") and the options. */
void train_tok_fingerprint(const char *tokenizer_fp, const char *chat_format,
			   const train_tok_opts *o, char out[65]);

/* A fingerprint of a tokenized data set (ids of every pair, in order). */
void train_data_fingerprint(const train_pair *pairs, size_t n, char out[65]);

/* Read a TRL JSONL file (path; "-" is stdin; .gz allowed) into a new array
 * *pairs of *n tokenized pairs (caller frees each with train_pair_free and
 * the array with free). *ntrunc gets the number truncated. Returns 0, or -1
 * with *err like "pairs.jsonl:17: field \"chosen\" must be ...". */
int train_read_jsonl(const char *path, train_tokenizer *tok, train_chat *chat,
		     const train_tok_opts *o, train_pair **pairs, size_t *n, long *ntrunc,
		     char **err);

#endif

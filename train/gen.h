/* gen.h: what generating from a model means, in one place for
 * `dpo-model generate`, dpo-generate and dpo-eval (library train/libgen.a):
 *   - how a prompt becomes token ids: plain text is encoded and the
 *     tokenizer's BOS put in front once (when add_bos_token says so and the
 *     text does not already start with it); a conversation, or plain text
 *     under --chat, is rendered with the chat template, whose own BOS text is
 *     the only BOS (train/chat.h);
 *   - which ids end a completion: config.json's eos_token_id (an id or a
 *     list), generation_config.json's eos_token_id when the model folder has
 *     one (what transformers' generate() stops at), the tokenizer's EOS, and,
 *     for a prompt rendered with the chat template, the template's
 *     end-of-turn token (<|im_end|>, <|eot_id|>, ...);
 *   - the canonical sampling parameters that, with the model fingerprint,
 *     identify a generator in the store (store_generator.params_json).
 * Token ids are int32_t throughout. Errors are returned as messages (caller
 * frees), never printed.
 */
#ifndef DPO_TRAIN_GEN_H
#define DPO_TRAIN_GEN_H
#include <stddef.h>
#include <stdint.h>

#include "store/store.h" /* store_msg {role, content}; header only, no link dependency */
#include "train/chat.h"
#include "train/model.h"
#include "train/sample.h"
#include "train/tokenizer.h"
#include "util/buf.h"

/* The most ids an end-of-sequence set holds: config.json's and
 * generation_config.json's lists (TRAIN_MAX_EOS each), the tokenizer's EOS
 * and the chat template's end-of-turn token. */
#define TRAIN_GEN_MAX_EOS (2 * TRAIN_MAX_EOS + 2)

/* The ids that end a completion of model m: config.json's eos_token_id,
 * generation_config.json's eos_token_id when train_model_dir(m) has that
 * file, the EOS of tok, and the id of train_chat_turn_end(chat) when chat is
 * not NULL (for a prompt rendered with that template). m, tok and chat may
 * each be NULL (then they add nothing). Each id appears once, in that order,
 * at most cap of them; they go to out and their count to *n. Returns 0, or
 * -1 with a message naming the file and field in *err (caller frees) when
 * generation_config.json cannot be read or its eos_token_id is not an id or
 * a list of ids. */
int train_gen_eos_ids(const train_model *m, const train_tokenizer *tok, const train_chat *chat,
		      int32_t *out, size_t cap, size_t *n, char **err);

/* Whether a prompt of n ids can be continued by model m: 0 when 1 <= n and
 * n + 1 <= the context length, else -1 with a message in *err (caller
 * frees): "the prompt is empty (no tokens)" or "N tokens do not fit the
 * context of M". */
int train_gen_prompt_fits(const train_model *m, size_t n, char **err);

/* Turns prompts into ids and knows their end-of-sequence sets. */
typedef struct train_gen_encoder train_gen_encoder;

/* An encoder for tok (borrowed; it must outlive the encoder) and model m
 * (borrowed, may be NULL when only the ids are needed: the EOS sets then
 * hold the tokenizer's ids only). chat_format names the template family
 * (train_chat_format_parse's names) or is NULL to detect it from the
 * tokenizer's template; chat_plain 1 renders plain-text prompts as one user
 * turn too. The chat template is loaded at once when chat_format or
 * chat_plain asks for it (so a bad name or a missing template is reported
 * here), else at the first conversation. Returns a new encoder (free with
 * train_gen_encoder_free), or NULL with a message in *err (caller frees)
 * for: a chat_format that is not a known name (checked first; a caller can
 * tell this usage error by train_chat_format_parse failing on it), a bad
 * generation_config.json, no usable template. */
train_gen_encoder *train_gen_encoder_new(const train_model *m, train_tokenizer *tok,
					 const char *chat_format, int chat_plain, char **err);

/* Set the chat template variables of the encoder's conversations: n
 * "NAME=VALUE" settings (--chat-var, checked by train_gen_cli_check;
 * borrowed, they must outlive the encoder), applied to its chat renderer
 * now or when it is made. */
void train_gen_encoder_set_chat_vars(train_gen_encoder *e, const char *const *v, int n);

/* Free the encoder (NULL is allowed); the tokenizer and model are not. */
void train_gen_encoder_free(train_gen_encoder *e);

/* The chat template in use, or NULL while none was needed. Owned by the
 * encoder. */
const train_chat *train_gen_encoder_chat(const train_gen_encoder *e);

/* One encoded prompt. */
typedef struct train_gen_prompt {
	int32_t *ids;        /* the prompt's ids (owned: train_gen_prompt_free) */
	size_t n;
	int chat;            /* 1 when rendered with the chat template */
	const int32_t *eos;  /* the ids that end a completion of this prompt (owned by the
			      * encoder: valid until train_gen_encoder_free) */
	int n_eos;
} train_gen_prompt;

/* Encode one prompt: plain text (messages_json NULL) or a conversation as
 * the store keeps it, a JSON list of {"role", "content"} (text NULL). Plain
 * text goes through the chat template when the encoder was made with
 * chat_plain, else it is encoded with BOS as described at the top. Fills
 * *out (free its ids with train_gen_prompt_free). Does not check the length
 * (train_gen_prompt_fits). Returns 0, or -1 with a message in *err (caller
 * frees): invalid UTF-8, a bad message list, no usable chat template. */
int train_gen_encode_prompt(train_gen_encoder *e, const char *text, const char *messages_json,
			    train_gen_prompt *out, char **err);

/* Encode a conversation of n messages (always through the chat template,
 * with the opening of the assistant turn appended). As
 * train_gen_encode_prompt otherwise. */
int train_gen_encode_messages(train_gen_encoder *e, const store_msg *msgs, size_t n,
			      train_gen_prompt *out, char **err);

/* Free p->ids and clear *p. NULL is allowed. */
void train_gen_prompt_free(train_gen_prompt *p);

/* What identifies how completions were sampled, besides the model. */
typedef struct train_gen_params {
	train_sampling sampling;
	long seed;                /* the base seed */
	long max_new;             /* --max-new-tokens */
	const char *const *stops; /* --stop strings (nstops of them) */
	int nstops;
	int chat_plain;           /* --chat: plain prompts rendered as a user turn */
	const char *chat_format;  /* --chat-format as given, or NULL */
	const char *const *chat_vars; /* --chat-var NAME=VALUE settings (n_chat_vars) */
	int n_chat_vars;
	const char *precision;    /* "bf16" when the model runs in bf16, else NULL */
} train_gen_params;

/* Append to b the canonical JSON of p, the generator's params_json: keys
 * sorted, numbers as %.17g or integers, no spaces:
 *   {"greedy":false,"max_new_tokens":256,"min_p":0,"seed":0,"stop":[],
 *    "temperature":1,"top_k":0,"top_p":1}
 * which is dpo-generate's identity since its first version. Two keys are
 * added only when set, so that every generator made without them keeps
 * its identity: "chat":true (before "greedy") with chat_plain, and
 * "chat_format":"NAME" (after "chat"; the canonical name, e.g. "qwen" gives
 * "chatml") with chat_format; a third, "chat_vars":["NAME=VALUE",...] (after
 * "chat_format", in the order given), with chat template variables; a fourth,
 * "precision":"bf16" (after "min_p"), when the model runs in bf16. Every value above changes the text, so two
 * runs share a generator exactly when they sample the same way. */
void train_gen_params_json(util_buf *b, const train_gen_params *p);

#endif

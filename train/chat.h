/* chat.h: chat templates rendered natively (library train/libtok.a).
 *
 * The Jinja chat template of a model is not interpreted; its family is
 * recognised by characteristic substrings and rendered by C code:
 *   chatml   ChatML as in Qwen2/Qwen2.5/Qwen3 (<|im_start|>role\n...<|im_end|>\n),
 *            including a default system message when the template has one
 *   llama3   Llama-3 (<|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>)
 *   zephyr   Zephyr / TinyLlama-chat (<|user|>\n...</s>\n)
 *   llama2   Llama-2 chat ([INST] with <<SYS>> system block)
 *   mistral  Mistral instruct ([INST] ... [/INST] without <<SYS>>)
 * An unknown template is an error naming `--chat-format NAME` as the
 * override. The rendered text contains the special tokens as text (BOS
 * included where the family puts one); encode it with
 * train_tokenizer_encode, which matches them as added tokens, and do NOT
 * prepend another BOS (train_chat_encode does exactly this).
 */
#ifndef DPO_TRAIN_CHAT_H
#define DPO_TRAIN_CHAT_H
#include <stddef.h>
#include <stdint.h>

#include "store/store.h" /* store_msg {role, content}; header only, no link dependency */
#include "train/tokenizer.h"

typedef enum train_chat_format {
	TRAIN_CHAT_CHATML = 1,
	TRAIN_CHAT_LLAMA3,
	TRAIN_CHAT_ZEPHYR,
	TRAIN_CHAT_LLAMA2,
	TRAIN_CHAT_MISTRAL,
} train_chat_format;

enum {
	TRAIN_CHAT_EFORMAT = -2, /* unknown template or format name */
	TRAIN_CHAT_EINPUT = -3,  /* bad message list (unknown role, NULL field) */
};

typedef struct train_chat train_chat;

/* The format called name ("chatml" or "qwen", "llama3", "zephyr",
 * "llama2", "mistral"; case-insensitive) into *out. Returns 0, or
 * TRAIN_CHAT_EFORMAT when the name is unknown. */
int train_chat_format_parse(const char *name, train_chat_format *out);

/* The canonical name of a format ("chatml", ...). Static string. */
const char *train_chat_format_name(train_chat_format f);

/* A comma-separated list of the accepted names, for --help. Static. */
const char *train_chat_format_names(void);

/* Recognise the family of a Jinja chat template. Returns 0 and sets *out,
 * or TRAIN_CHAT_EFORMAT with a message in *err (caller frees; err may be
 * NULL) that names `--chat-format NAME` as the override. */
int train_chat_detect(const char *jinja, train_chat_format *out, char **err);

/* A renderer for tok. format_name overrides detection (NULL: detect from
 * train_tokenizer_chat_template(tok); a tokenizer without a template is
 * then an error too). A ChatML template's default system message (Qwen2,
 * Qwen2.5) is used when the conversation has none. tok is borrowed
 * (train_chat_encode encodes with it) and must outlive the handle. Returns
 * a new handle (free with train_chat_free) or NULL with a message in *err
 * (caller frees; err may be NULL). */
train_chat *train_chat_new(train_tokenizer *tok, const char *format_name, char **err);

/* Free the handle. NULL is allowed. */
void train_chat_free(train_chat *c);

/* The format in use. */
train_chat_format train_chat_get_format(const train_chat *c);

/* Render n messages (roles "system", "user", "assistant") into a new string
 * in *text (caller frees). add_generation_prompt appends the opening of an
 * assistant turn (for [INST] formats nothing is needed and nothing is
 * added). Returns 0, or TRAIN_CHAT_EINPUT (message in train_chat_errmsg)
 * for an unknown role or NULL content. */
int train_chat_render(train_chat *c, const store_msg *msgs, size_t n, int add_generation_prompt,
		      char **text);

/* Render as above and encode with the tokenizer (no extra BOS: the
 * template's own BOS text is part of the rendering). *ids (caller frees)
 * and *nids as for train_tokenizer_encode. Returns 0 or a negative code
 * (message in train_chat_errmsg). */
int train_chat_encode(train_chat *c, const store_msg *msgs, size_t n, int add_generation_prompt,
		      int32_t **ids, size_t *nids);

/* train_chat_encode of a conversation given as the store keeps it: a JSON
 * array of {"role", "content"} objects (store_prompt.messages_json).
 * Returns 0, or TRAIN_CHAT_EINPUT when it is not such an array (message in
 * train_chat_errmsg) or as train_chat_encode. */
int train_chat_encode_json(train_chat *c, const char *messages_json, int add_generation_prompt,
			   int32_t **ids, size_t *nids);

/* The text that ends an assistant turn in this format ("<|im_end|>",
 * "<|eot_id|>", or the EOS token), useful as an extra stop string; never
 * NULL. Owned by the handle. */
const char *train_chat_turn_end(const train_chat *c);

/* The message of the last error ("" when none). Owned by the handle. */
const char *train_chat_errmsg(const train_chat *c);

#endif

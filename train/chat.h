/* chat.h: chat templates (library train/libtok.a).
 *
 * A model whose tokenizer files carry a chat template (tokenizer_config.json
 * "chat_template", a string or the "default" of a list of named templates,
 * or chat_template.jinja) is rendered by interpreting that Jinja template
 * (train/jinja.h) as transformers' apply_chat_template does, with the
 * variables messages, add_generation_prompt, bos_token, eos_token and those
 * set with train_chat_set_var (--chat-var), e.g. Qwen3's enable_thinking.
 *
 * Without a template, or when a format is named (--chat-format), one of
 * five families is rendered by C code instead:
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
	TRAIN_CHAT_JINJA, /* the model's own template, of none of the families */
} train_chat_format;

enum {
	TRAIN_CHAT_EFORMAT = -2, /* unknown template or format name */
	TRAIN_CHAT_EINPUT = -3,  /* bad message list (unknown role, NULL field) */
	TRAIN_CHAT_ETEMPLATE = -4, /* the template failed (raise_exception, error in it) */
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

/* A renderer for tok. With format_name NULL the tokenizer's template
 * (train_tokenizer_chat_template) is interpreted; a tokenizer without one
 * is an error, and so is a template that does not parse. format_name
 * names a family rendered by C code instead (the fallback); a ChatML
 * template's default system message (Qwen2, Qwen2.5) is then used when the
 * conversation has none. tok is borrowed
 * (train_chat_encode encodes with it) and must outlive the handle. Returns
 * a new handle (free with train_chat_free) or NULL with a message in *err
 * (caller frees; err may be NULL). */
train_chat *train_chat_new(train_tokenizer *tok, const char *format_name, char **err);

/* Free the handle. NULL is allowed. */
void train_chat_free(train_chat *c);

/* The format in use: the named one, or for a template the family it is
 * recognised as (train_chat_detect), TRAIN_CHAT_JINJA when none. */
train_chat_format train_chat_get_format(const train_chat *c);

/* Nonzero when c interprets the tokenizer's Jinja template. */
int train_chat_uses_template(const train_chat *c);

/* What renders, for fingerprints and messages: the family name, or for a
 * template "jinja:" and the first 16 hex digits of its SHA-256. Owned by
 * the handle. */
const char *train_chat_describe(const train_chat *c);

/* Set the template variable name to value (--chat-var NAME=VALUE): value
 * is read as JSON when it is JSON (true, 3, "x", [..], {..}), else taken
 * as a string. A later setting of a name replaces the earlier. The family
 * renderers ignore the variables. Returns 0, or TRAIN_CHAT_EINPUT for a
 * name that is not an identifier or one the renderer sets itself
 * (messages, add_generation_prompt); message in train_chat_errmsg. */
int train_chat_set_var(train_chat *c, const char *name, const char *value);

/* NULL when assignment is a usable "NAME=VALUE" (NAME an identifier other
 * than messages and add_generation_prompt), else a static message naming
 * --chat-var, for a usage error. */
const char *train_chat_var_check(const char *assignment);

/* The help text of --chat-var. */
#define TRAIN_CHAT_VAR_HELP                                                                     \
	"set the chat template variable NAME to VALUE\n(JSON, else a string; repeatable), e.g.\n"  \
	"enable_thinking=false"

/* train_chat_set_var of "NAME=VALUE". Returns as train_chat_set_var, or
 * TRAIN_CHAT_EINPUT when there is no '='. */
int train_chat_set_assignment(train_chat *c, const char *assignment);

/* Render n messages (roles "system", "user", "assistant", and "tool" for a
 * template) into a new string in *text (caller frees).
 * add_generation_prompt appends the opening of an assistant turn (for
 * [INST] formats nothing is needed and nothing is added). Returns 0, or
 * TRAIN_CHAT_EINPUT (message in train_chat_errmsg) for an unknown role or
 * NULL content, or TRAIN_CHAT_ETEMPLATE when the template fails (its own
 * raise_exception message, e.g. "System role not supported"). */
int train_chat_render(train_chat *c, const store_msg *msgs, size_t n, int add_generation_prompt,
		      char **text);

/* Render as above and encode with the tokenizer (no extra BOS: the
 * template's own BOS text is part of the rendering). *ids (caller frees)
 * and *nids as for train_tokenizer_encode. Returns 0 or a negative code
 * (message in train_chat_errmsg). */
int train_chat_encode(train_chat *c, const store_msg *msgs, size_t n, int add_generation_prompt,
		      int32_t **ids, size_t *nids);

/* train_chat_encode of a conversation given as the store keeps it: a JSON
 * array of {"role", "content"} objects (store_prompt.messages_json). A
 * template sees every member of the objects (reasoning_content,
 * tool_calls, ...). Returns 0, or TRAIN_CHAT_EINPUT when it is not such an
 * array (message in train_chat_errmsg) or as train_chat_encode. */
int train_chat_encode_json(train_chat *c, const char *messages_json, int add_generation_prompt,
			   int32_t **ids, size_t *nids);

/* Render such a JSON array (as train_chat_encode_json) into a new string
 * *text (caller frees). Returns as train_chat_render. */
int train_chat_render_json(train_chat *c, const char *messages_json, int add_generation_prompt,
			   char **text);

/* The text that ends an assistant turn in this format ("<|im_end|>",
 * "<|eot_id|>", or the EOS token), useful as an extra stop string; never
 * NULL. Owned by the handle. */
const char *train_chat_turn_end(const train_chat *c);

/* The message of the last error ("" when none). Owned by the handle. */
const char *train_chat_errmsg(const train_chat *c);

#endif

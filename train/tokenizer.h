/* tokenizer.h: Hugging Face tokenizers in C (library train/libtok.a).
 *
 * Supported: byte-level BPE as in GPT-2, Qwen2/Qwen3 and Llama-3
 * (tokenizer.json with a ByteLevel pre-tokenizer, or Split(regex) +
 * ByteLevel(use_regex false), optionally in a Sequence, optional NFC
 * normalizer), GPT-2's vocab.json + merges.txt layout, and the
 * Llama-2/Mistral/TinyLlama family (Prepend("▁") + Replace(" " -> "▁")
 * normalizer or a Metaspace pre-tokenizer, BPE with byte_fallback and unk).
 * Added tokens (tokenizer.json "added_tokens") are matched in the raw text
 * before pre-tokenization, also inside ordinary text.
 *
 * A handle is not safe for concurrent use by several threads (encode keeps a
 * cache); give each thread its own handle or serialise calls.
 */
#ifndef DPO_TRAIN_TOKENIZER_H
#define DPO_TRAIN_TOKENIZER_H
#include <stddef.h>
#include <stdint.h>

typedef struct train_tokenizer train_tokenizer;

/* Error codes returned by the functions below (0 is success). */
enum {
	TRAIN_TOK_EIO = -1,     /* a file could not be read */
	TRAIN_TOK_EFORMAT = -2, /* a file is malformed or unsupported */
	TRAIN_TOK_EINPUT = -3,  /* bad input text (invalid UTF-8) or bad id */
};

/* Load the tokenizer of a Hugging Face model directory: dir/tokenizer.json,
 * or dir/vocab.json + dir/merges.txt when there is no tokenizer.json; plus
 * dir/tokenizer_config.json when present (bos/eos/pad tokens, add_bos_token,
 * chat_template, added_tokens_decoder) and dir/chat_template.jinja (takes precedence
 * over the config's chat_template). Returns a new handle (free with
 * train_tokenizer_free), or NULL with a message naming the file and field in
 * *err (caller frees *err; err may be NULL). */
train_tokenizer *train_tokenizer_load(const char *dir, char **err);

/* The files of a tokenizer (or model) directory that a model directory made
 * from it carries along, so that it holds everything the input had (see
 * DESIGN.md, "Files a trained model directory holds"): the tokenizer in
 * either layout, its configuration, special tokens, chat template,
 * generation settings and a SentencePiece model. NULL-terminated. */
extern const char *const train_tokenizer_files[];

/* Copy each file of train_tokenizer_files present in folder from into folder
 * to (util_copy_file: a failed copy leaves what to held). Returns how many
 * were copied, or -1 when a copy failed, with a message naming the first
 * failure in *err (caller frees); the other files are copied all the same. */
int train_tokenizer_copy_files(const char *from, const char *to, char **err);

/* Like train_tokenizer_load but from explicit files: json_path is a
 * tokenizer.json (any file name, e.g. tokenizer.legacy-merges.json);
 * config_path is a tokenizer_config.json or NULL. Same ownership rules. */
train_tokenizer *train_tokenizer_load_files(const char *json_path, const char *config_path,
					    char **err);

/* Load GPT-2's two-file layout from explicit paths: vocab.json (token ->
 * id) and merges.txt ("a b" per line, an optional "#version" first line):
 * byte-level BPE. These files do not say how to pre-tokenize; style does:
 * "gpt2" (the GPT-2 regex), "qwen2" (NFC + the Qwen2 regex, as
 * transformers' Qwen2Tokenizer), or NULL to choose from the config's
 * "tokenizer_class" (a class name containing "Qwen2" means "qwen2", else
 * "gpt2"). Vocabulary entries spelled "<|...|>" are taken as special added
 * tokens. config_path may be NULL. Same ownership rules as
 * train_tokenizer_load. */
train_tokenizer *train_tokenizer_load_vocab_merges(const char *vocab_path, const char *merges_path,
						   const char *config_path, const char *style,
						   char **err);

/* Parse a tokenizer.json held in memory (len bytes, need not be
 * NUL-terminated); name is used in messages. Returns a handle or NULL with
 * *err set (caller frees). Used by the fuzz target. */
train_tokenizer *train_tokenizer_from_json(const char *json, size_t len, const char *name,
					   char **err);

/* Free the handle. NULL is allowed. */
void train_tokenizer_free(train_tokenizer *tok);

/* Encode len bytes of UTF-8 text (no BOS/EOS is added). On success returns 0
 * and stores a new array of *n ids in *ids (caller frees; may be NULL when
 * *n is 0). Returns TRAIN_TOK_EINPUT for invalid UTF-8 (message in
 * train_tokenizer_errmsg, with the byte offset). */
int train_tokenizer_encode(train_tokenizer *tok, const char *text, size_t len, int32_t **ids,
			   size_t *n);

/* Decode n ids into a new NUL-terminated string (caller frees). For
 * byte-level tokenizers this is the exact inverse of encode (up to the
 * normalizer: with NFC, text comes back in NFC); for the
 * Llama-2 family it applies the tokenizer's decoder (▁ -> space, byte
 * fallback, strip of the one leading space). Invalid UTF-8 byte sequences
 * produced by the tokens become U+FFFD. Ids out of range are skipped.
 * Never returns NULL. */
char *train_tokenizer_decode(train_tokenizer *tok, const int32_t *ids, size_t n);

/* As train_tokenizer_decode, and stores the length in bytes in *len (the
 * text may contain NUL bytes when the input did). */
char *train_tokenizer_decode_len(train_tokenizer *tok, const int32_t *ids, size_t n, size_t *len);

/* Append to *out (a growable array of *outlen bytes, caller frees) the raw
 * bytes that token id stands for, without any context-dependent step (no
 * leading-space strip, no U+FFFD replacement): byte-level tokens give their
 * bytes, "<0xNN>" byte-fallback tokens give that byte, "▁" gives a space,
 * added tokens give their content. Useful for streaming output and stop
 * strings. Returns 0, or TRAIN_TOK_EINPUT for an id out of range. */
int train_tokenizer_token_bytes(const train_tokenizer *tok, int32_t id, char **out,
				size_t *outlen);

/* Number of ids (model vocabulary and added tokens: the largest id + 1). */
size_t train_tokenizer_vocab_size(const train_tokenizer *tok);

/* The token string of id as stored in the vocabulary (byte-level tokens in
 * their "Ġ" form), or NULL when id is out of range or unused. Owned by the
 * handle. */
const char *train_tokenizer_token(const train_tokenizer *tok, int32_t id);

/* The id of a token string (vocabulary or added token), or -1. */
int32_t train_tokenizer_token_id(const train_tokenizer *tok, const char *token);

/* Whether id is an added token marked "special" (1) or not (0). */
int train_tokenizer_is_special(const train_tokenizer *tok, int32_t id);

/* Special ids from tokenizer_config.json (or, in the two-file layout,
 * <|endoftext|> when present); -1 when the tokenizer has none. */
int32_t train_tokenizer_bos_id(const train_tokenizer *tok);
int32_t train_tokenizer_eos_id(const train_tokenizer *tok);
int32_t train_tokenizer_pad_id(const train_tokenizer *tok);
int32_t train_tokenizer_unk_id(const train_tokenizer *tok);

/* 1 when a BOS id should be prepended to a sequence fed to the model
 * (tokenizer_config.json "add_bos_token" true and a BOS token exists),
 * else 0. */
int train_tokenizer_add_bos(const train_tokenizer *tok);

/* The chat template text (chat_template.jinja, else tokenizer_config.json
 * "chat_template", the "default" one when it is a list), or NULL. Owned by
 * the handle. */
const char *train_tokenizer_chat_template(const train_tokenizer *tok);

/* The token strings of the BOS/EOS tokens, or NULL. Owned by the handle. */
const char *train_tokenizer_bos_token(const train_tokenizer *tok);
const char *train_tokenizer_eos_token(const train_tokenizer *tok);

/* A fingerprint of the tokenizer: 64 lowercase hex digits of the SHA-256 of
 * the files it was loaded from (each file's name and contents, in load
 * order). Owned by the handle. */
const char *train_tokenizer_fingerprint(const train_tokenizer *tok);

/* A short description of the tokenizer kind: "byte-level BPE" or
 * "BPE with byte fallback". Static string. */
const char *train_tokenizer_kind(const train_tokenizer *tok);

/* The message of the last error on this handle ("" when none). Owned by the
 * handle, valid until the next call. */
const char *train_tokenizer_errmsg(const train_tokenizer *tok);

/* Enable (1, the default) or disable (0) the pre-token cache; returns the
 * previous setting. The benchmark uses it to measure the baseline. */
int train_tokenizer_set_cache(train_tokenizer *tok, int on);

#endif

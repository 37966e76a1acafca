/* gen.c: prompt encoding, end-of-sequence sets and the generator identity
 * shared by dpo-model generate, dpo-generate and dpo-eval (see gen.h). */
#include "config.h"
#include "train/gen.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/file.h"
#include "util/xmalloc.h"

/* Add id to set[*n] unless it is there already or the set is full. */
static void add_id(int32_t *set, size_t cap, size_t *n, int64_t id)
{
	if (id < 0 || id > INT32_MAX)
		return;
	for (size_t i = 0; i < *n; i++)
		if (set[i] == (int32_t)id)
			return;
	if (*n < cap)
		set[(*n)++] = (int32_t)id;
}

/* A generation_config.json eos_token_id value: an id, a list of ids, or
 * null. Returns 0, or -1 for anything else. */
static int add_json_ids(const cJSON *v, int32_t *set, size_t cap, size_t *n)
{
	if (!v || cJSON_IsNull(v))
		return 0;
	if (cJSON_IsNumber(v)) {
		if (v->valuedouble < 0 || v->valuedouble > INT32_MAX ||
		    floor(v->valuedouble) != v->valuedouble)
			return -1;
		add_id(set, cap, n, (int64_t)v->valuedouble);
		return 0;
	}
	if (!cJSON_IsArray(v))
		return -1;
	for (const cJSON *e = v->child; e; e = e->next)
		if (!cJSON_IsNumber(e) || add_json_ids(e, set, cap, n))
			return -1;
	return 0;
}

/* The eos_token_id of dir/generation_config.json into the set; a missing
 * file adds nothing. */
static int generation_config_eos(const char *dir, int32_t *set, size_t cap, size_t *n, char **err)
{
	char *path = xasprintf("%s/generation_config.json", dir);
	size_t len = 0;
	char *text = util_read_file(path, &len);
	int rc = 0;
	if (!text) {
		if (errno != ENOENT) {
			*err = xasprintf("%s: %s", path, strerror(errno));
			rc = -1;
		}
		free(path);
		return rc;
	}
	cJSON *root = cJSON_ParseWithLength(text, len);
	if (!cJSON_IsObject(root)) {
		*err = xasprintf("%s: not a JSON object", path);
		rc = -1;
	} else if (add_json_ids(cJSON_GetObjectItemCaseSensitive(root, "eos_token_id"), set, cap,
				n)) {
		*err = xasprintf("%s: field \"eos_token_id\" must be a token id or a list of token ids",
				 path);
		rc = -1;
	}
	cJSON_Delete(root);
	free(text);
	free(path);
	return rc;
}

int train_gen_eos_ids(const train_model *m, const train_tokenizer *tok, const train_chat *chat,
		      int32_t *out, size_t cap, size_t *n, char **err)
{
	*n = 0;
	if (m) {
		const train_config *c = train_model_config(m);
		for (int i = 0; i < c->n_eos; i++)
			add_id(out, cap, n, c->eos[i]);
		const char *dir = train_model_dir(m);
		if (dir && generation_config_eos(dir, out, cap, n, err))
			return -1;
	}
	if (tok)
		add_id(out, cap, n, train_tokenizer_eos_id(tok));
	if (tok && chat)
		add_id(out, cap, n, train_tokenizer_token_id(tok, train_chat_turn_end(chat)));
	return 0;
}

int train_gen_prompt_fits(const train_model *m, size_t n, char **err)
{
	int ctx = train_model_config(m)->max_pos;
	if (n < 1) {
		*err = xstrdup("the prompt is empty (no tokens)");
		return -1;
	}
	if (n + 1 > (size_t)ctx) {
		*err = xasprintf("%zu tokens do not fit the context of %d", n, ctx);
		return -1;
	}
	return 0;
}

struct train_gen_encoder {
	const train_model *m;
	train_tokenizer *tok;
	char *chat_format;   /* as given, or NULL */
	int chat_plain;
	train_chat *chat;    /* NULL until needed */
	const char *const *chat_vars; /* --chat-var settings (borrowed) */
	int n_chat_vars;
	int32_t eos_plain[TRAIN_GEN_MAX_EOS], eos_chat[TRAIN_GEN_MAX_EOS];
	size_t n_plain, n_chat;
};

/* Load the chat template (once) and the EOS set of its prompts. */
static int need_chat(train_gen_encoder *e, char **err)
{
	if (e->chat)
		return 0;
	train_chat *c = train_chat_new(e->tok, e->chat_format, err);
	if (!c)
		return -1;
	for (int i = 0; i < e->n_chat_vars; i++) {
		if (train_chat_set_assignment(c, e->chat_vars[i])) {
			*err = xstrdup(train_chat_errmsg(c));
			train_chat_free(c);
			return -1;
		}
	}
	if (train_gen_eos_ids(e->m, e->tok, c, e->eos_chat, TRAIN_GEN_MAX_EOS, &e->n_chat, err)) {
		train_chat_free(c);
		return -1;
	}
	e->chat = c;
	return 0;
}

train_gen_encoder *train_gen_encoder_new(const train_model *m, train_tokenizer *tok,
					 const char *chat_format, int chat_plain, char **err)
{
	train_chat_format f;
	if (chat_format && train_chat_format_parse(chat_format, &f)) {
		*err = xasprintf("unknown chat format \"%s\" (expected one of %s)", chat_format,
				 train_chat_format_names());
		return NULL;
	}
	train_gen_encoder *e = xcalloc(1, sizeof *e);
	e->m = m;
	e->tok = tok;
	e->chat_format = chat_format ? xstrdup(chat_format) : NULL;
	e->chat_plain = chat_plain;
	if (train_gen_eos_ids(m, tok, NULL, e->eos_plain, TRAIN_GEN_MAX_EOS, &e->n_plain, err) ||
	    ((chat_format || chat_plain) && need_chat(e, err))) {
		train_gen_encoder_free(e);
		return NULL;
	}
	return e;
}

void train_gen_encoder_set_chat_vars(train_gen_encoder *e, const char *const *v, int n)
{
	e->chat_vars = v;
	e->n_chat_vars = n;
	for (int i = 0; e->chat && i < n; i++)
		train_chat_set_assignment(e->chat, v[i]); /* checked by train_gen_cli_check */
}

void train_gen_encoder_free(train_gen_encoder *e)
{
	if (!e)
		return;
	train_chat_free(e->chat);
	free(e->chat_format);
	free(e);
}

const train_chat *train_gen_encoder_chat(const train_gen_encoder *e)
{
	return e->chat;
}

static void set_chat_result(train_gen_encoder *e, int32_t *ids, size_t n, train_gen_prompt *out)
{
	out->ids = ids;
	out->n = n;
	out->chat = 1;
	out->eos = e->eos_chat;
	out->n_eos = (int)e->n_chat;
}

int train_gen_encode_messages(train_gen_encoder *e, const store_msg *msgs, size_t n,
			      train_gen_prompt *out, char **err)
{
	memset(out, 0, sizeof *out);
	if (need_chat(e, err))
		return -1;
	int32_t *ids = NULL;
	size_t nids = 0;
	if (train_chat_encode(e->chat, msgs, n, 1, &ids, &nids)) {
		*err = xstrdup(train_chat_errmsg(e->chat));
		free(ids);
		return -1;
	}
	set_chat_result(e, ids, nids, out);
	return 0;
}

int train_gen_encode_prompt(train_gen_encoder *e, const char *text, const char *messages_json,
			    train_gen_prompt *out, char **err)
{
	memset(out, 0, sizeof *out);
	if (messages_json) {
		if (need_chat(e, err))
			return -1;
		int32_t *ids = NULL;
		size_t nids = 0;
		if (train_chat_encode_json(e->chat, messages_json, 1, &ids, &nids)) {
			*err = xstrdup(train_chat_errmsg(e->chat));
			free(ids);
			return -1;
		}
		set_chat_result(e, ids, nids, out);
		return 0;
	}
	if (!text) {
		*err = xstrdup("the prompt has neither text nor messages");
		return -1;
	}
	if (e->chat_plain) {
		store_msg msg = {"user", text};
		return train_gen_encode_messages(e, &msg, 1, out, err);
	}
	int32_t *enc = NULL;
	size_t ne = 0;
	if (train_tokenizer_encode(e->tok, text, strlen(text), &enc, &ne)) {
		*err = xstrdup(train_tokenizer_errmsg(e->tok));
		free(enc);
		return -1;
	}
	int32_t bos = train_tokenizer_add_bos(e->tok) ? train_tokenizer_bos_id(e->tok) : -1;
	int add = bos >= 0 && !(ne > 0 && enc[0] == bos); /* BOS once */
	out->ids = xmalloc(sizeof(int32_t) * (ne + 1));
	if (add)
		out->ids[0] = bos;
	if (ne)
		memcpy(out->ids + add, enc, sizeof(int32_t) * ne);
	out->n = ne + (size_t)add;
	out->chat = 0;
	out->eos = e->eos_plain;
	out->n_eos = (int)e->n_plain;
	free(enc);
	return 0;
}

void train_gen_prompt_free(train_gen_prompt *p)
{
	if (!p)
		return;
	free(p->ids);
	memset(p, 0, sizeof *p);
}

void train_gen_params_json(util_buf *b, const train_gen_params *p)
{
	const train_sampling *s = &p->sampling;
	util_buf_addc(b, '{');
	if (p->chat_plain)
		util_buf_adds(b, "\"chat\":true,");
	if (p->chat_format) {
		train_chat_format f;
		const char *name = p->chat_format;
		if (!train_chat_format_parse(p->chat_format, &f))
			name = train_chat_format_name(f);
		util_buf_adds(b, "\"chat_format\":");
		util_buf_add_json_string(b, name, strlen(name));
		util_buf_addc(b, ',');
	}
	if (p->n_chat_vars > 0) {
		util_buf_adds(b, "\"chat_vars\":[");
		for (int i = 0; i < p->n_chat_vars; i++) {
			if (i)
				util_buf_addc(b, ',');
			util_buf_add_json_string(b, p->chat_vars[i], strlen(p->chat_vars[i]));
		}
		util_buf_adds(b, "],");
	}
	util_buf_addf(b, "\"greedy\":%s,\"max_new_tokens\":%ld,\"min_p\":%.17g,",
		      s->greedy ? "true" : "false", p->max_new, s->min_p);
	if (p->precision)
		util_buf_addf(b, "\"precision\":\"%s\",", p->precision);
	util_buf_addf(b, "\"seed\":%ld,\"stop\":[", p->seed);
	for (int i = 0; i < p->nstops; i++) {
		if (i)
			util_buf_addc(b, ',');
		util_buf_add_json_string(b, p->stops[i], strlen(p->stops[i]));
	}
	util_buf_addf(b, "],\"temperature\":%.17g,\"top_k\":%d,\"top_p\":%.17g}", s->temperature,
		      s->top_k, s->top_p);
}

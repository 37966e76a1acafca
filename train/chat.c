/* chat.c: chat templates: the tokenizer's Jinja template interpreted
 * (train/jinja.h), or one of the families rendered by C code (see chat.h). */
#include "train/chat.h"
#include "train/jinja.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/buf.h"
#include "util/sha256.h"
#include "util/xmalloc.h"

struct train_chat {
	train_tokenizer *tok;
	train_chat_format fmt;
	char *bos, *eos;        /* token texts ("" when the tokenizer has none) */
	char *default_system;   /* ChatML: system message used when none is given */
	char *preamble;         /* Llama-3.1+: text opening the system turn */
	char *turn_end;
	char *err;
	train_jinja *tpl;       /* the template interpreted, or NULL: the family's C code */
	cJSON *vars;            /* --chat-var settings (an object) */
	char *describe;
};

static const struct {
	const char *name;
	train_chat_format fmt;
} names[] = {
	{"chatml", TRAIN_CHAT_CHATML}, {"qwen", TRAIN_CHAT_CHATML},
	{"llama3", TRAIN_CHAT_LLAMA3}, {"zephyr", TRAIN_CHAT_ZEPHYR},
	{"llama2", TRAIN_CHAT_LLAMA2}, {"mistral", TRAIN_CHAT_MISTRAL},
};

#define FORMAT_LIST "chatml (or qwen), llama3, zephyr, llama2, mistral"

int train_chat_format_parse(const char *name, train_chat_format *out)
{
	for (size_t i = 0; name && i < sizeof names / sizeof *names; i++) {
		if (!strcasecmp(name, names[i].name)) {
			*out = names[i].fmt;
			return 0;
		}
	}
	return TRAIN_CHAT_EFORMAT;
}

const char *train_chat_format_name(train_chat_format f)
{
	switch (f) {
	case TRAIN_CHAT_CHATML:
		return "chatml";
	case TRAIN_CHAT_LLAMA3:
		return "llama3";
	case TRAIN_CHAT_ZEPHYR:
		return "zephyr";
	case TRAIN_CHAT_LLAMA2:
		return "llama2";
	case TRAIN_CHAT_MISTRAL:
		return "mistral";
	case TRAIN_CHAT_JINJA:
		return "jinja";
	}
	return "unknown";
}

const char *train_chat_format_names(void)
{
	return FORMAT_LIST;
}

int train_chat_detect(const char *jinja, train_chat_format *out, char **err)
{
	if (!jinja || !*jinja) {
		if (err)
			*err = xstrdup("the tokenizer has no chat template (tokenizer_config.json "
				       "\"chat_template\" or chat_template.jinja); pass --chat-format "
				       "NAME, NAME one of " FORMAT_LIST);
		return TRAIN_CHAT_EFORMAT;
	}
	/* the most specific markers first */
	if (strstr(jinja, "<|start_header_id|>") && strstr(jinja, "<|eot_id|>"))
		*out = TRAIN_CHAT_LLAMA3;
	else if (strstr(jinja, "<|im_start|>") && strstr(jinja, "<|im_end|>"))
		*out = TRAIN_CHAT_CHATML;
	else if (strstr(jinja, "<|user|>") && strstr(jinja, "<|assistant|>"))
		*out = TRAIN_CHAT_ZEPHYR;
	else if (strstr(jinja, "[INST]") && strstr(jinja, "<<SYS>>"))
		*out = TRAIN_CHAT_LLAMA2;
	else if (strstr(jinja, "[INST]") && strstr(jinja, "[/INST]"))
		*out = TRAIN_CHAT_MISTRAL;
	else {
		if (err)
			*err = xstrdup("unrecognised chat template (not ChatML/Qwen, Llama-3, Zephyr, "
				       "Llama-2 or Mistral); pass --chat-format NAME, NAME one of "
				       FORMAT_LIST);
		return TRAIN_CHAT_EFORMAT;
	}
	return 0;
}

/* ChatML templates of Qwen2/Qwen2.5 insert a default system message when the
 * conversation has none: a string literal '<|im_start|>system\n...<|im_end|>'
 * in the template. Returns it (caller frees) or NULL. */
static char *chatml_default_system(const char *jinja)
{
	static const char mark[] = "<|im_start|>system";
	for (const char *p = jinja; (p = strstr(p, mark)); p += sizeof mark - 1) {
		if (p == jinja || (p[-1] != '\'' && p[-1] != '"'))
			continue;
		char quote = p[-1];
		const char *q = p + sizeof mark - 1;
		if (q[0] == '\\' && q[1] == 'n')
			q += 2;
		else if (q[0] == '\n')
			q++;
		else
			continue;
		const char *end = strstr(q, "<|im_end|>");
		const char *qe = strchr(q, quote);
		if (!end || (qe && qe < end) || end == q)
			continue;
		util_buf b = UTIL_BUF_INIT;
		for (const char *s = q; s < end; s++) {
			if (s[0] == '\\' && s + 1 < end) {
				s++;
				util_buf_addc(&b, s[0] == 'n' ? '\n' : s[0] == 't' ? '\t' : s[0]);
			} else {
				util_buf_addc(&b, s[0]);
			}
		}
		return util_buf_detach(&b);
	}
	return NULL;
}

/* Read a template string literal's text from p up to a newline (written
 * as the two characters \n or as a real newline) or a quote. */
static char *literal_line(const char *p)
{
	size_t n = 0;
	while (p[n] && p[n] != '\n' && p[n] != '"' && p[n] != '\'' &&
	       !(p[n] == '\\' && p[n + 1] == 'n'))
		n++;
	return xstrndup(p, n);
}

/* Llama-3.1/3.2 templates always open with a system turn that starts with
 * "Cutting Knowledge Date: ...\nToday Date: ...\n\n". The date is the
 * template's fixed default (date_string), so renderings are reproducible
 * (transformers may put today's date there instead). Returns the preamble
 * (caller frees) or NULL. */
static char *llama3_preamble(const char *jinja)
{
	static const char k[] = "Cutting Knowledge Date: ", d[] = "date_string = \"";
	const char *p = strstr(jinja, k);
	if (!p)
		return NULL;
	char *know = literal_line(p + sizeof k - 1);
	const char *q = strstr(jinja, d);
	char *date = q ? literal_line(q + sizeof d - 1) : xstrdup("26 Jul 2024");
	char *r = xasprintf("Cutting Knowledge Date: %s\nToday Date: %s\n\n", know, date);
	free(know);
	free(date);
	return r;
}

/* The renderer of the tokenizer's own template (format_name NULL). */
static train_chat *template_new(train_tokenizer *tok, char **err)
{
	const char *tpl = train_tokenizer_chat_template(tok);
	train_chat_format f;
	if (!tpl || !*tpl) {
		train_chat_detect(tpl, &f, err); /* the message naming --chat-format */
		return NULL;
	}
	char *jerr = NULL;
	train_jinja *j = train_jinja_parse(tpl, strlen(tpl), "chat_template", &jerr);
	if (!j) {
		if (err)
			*err = xasprintf("the tokenizer's chat template does not parse: %s (pass "
					 "--chat-format NAME to use a built-in format, NAME one of %s)",
					 jerr, FORMAT_LIST);
		free(jerr);
		return NULL;
	}
	train_chat *c = xcalloc(1, sizeof *c);
	c->tok = tok;
	c->tpl = j;
	c->fmt = train_chat_detect(tpl, &f, NULL) ? TRAIN_CHAT_JINJA : f;
	const char *bos = train_tokenizer_bos_token(tok), *eos = train_tokenizer_eos_token(tok);
	c->bos = xstrdup(bos ? bos : "");
	c->eos = xstrdup(eos ? eos : "");
	c->turn_end = xstrdup(c->fmt == TRAIN_CHAT_CHATML ? "<|im_end|>"
			      : c->fmt == TRAIN_CHAT_LLAMA3 ? "<|eot_id|>"
			      : *c->eos ? c->eos : "</s>");
	char hex[65];
	util_sha256_hex(tpl, strlen(tpl), hex);
	c->describe = xasprintf("jinja:%.16s", hex);
	c->vars = cJSON_CreateObject();
	return c;
}

train_chat *train_chat_new(train_tokenizer *tok, const char *format_name, char **err)
{
	train_chat_format f;
	if (!format_name)
		return template_new(tok, err);
	if (train_chat_format_parse(format_name, &f)) {
		if (err)
			*err = xasprintf("unknown chat format \"%s\" (expected one of %s)", format_name,
					 FORMAT_LIST);
		return NULL;
	}
	train_chat *c = xcalloc(1, sizeof *c);
	c->vars = cJSON_CreateObject();
	c->tok = tok;
	c->fmt = f;
	const char *bos = train_tokenizer_bos_token(tok), *eos = train_tokenizer_eos_token(tok);
	c->bos = xstrdup(bos ? bos : "");
	c->eos = xstrdup(eos ? eos : "");
	/* the default system message comes from the model's own ChatML
	 * template, also when the format was named explicitly */
	const char *tpl = train_tokenizer_chat_template(tok);
	train_chat_format det;
	if (f == TRAIN_CHAT_CHATML && tpl && !train_chat_detect(tpl, &det, NULL) &&
	    det == TRAIN_CHAT_CHATML)
		c->default_system = chatml_default_system(tpl);
	if (f == TRAIN_CHAT_LLAMA3 && tpl && !train_chat_detect(tpl, &det, NULL) &&
	    det == TRAIN_CHAT_LLAMA3)
		c->preamble = llama3_preamble(tpl);
	/* Llama-3 templates write the BOS token first; a config that names
	 * none still has <|begin_of_text|> in a Llama-3 vocabulary */
	if (f == TRAIN_CHAT_LLAMA3 && !*c->bos &&
	    train_tokenizer_token_id(tok, "<|begin_of_text|>") >= 0) {
		free(c->bos);
		c->bos = xstrdup("<|begin_of_text|>");
	}
	switch (f) {
	case TRAIN_CHAT_CHATML:
		c->turn_end = xstrdup("<|im_end|>");
		break;
	case TRAIN_CHAT_LLAMA3:
		c->turn_end = xstrdup("<|eot_id|>");
		break;
	default:
		c->turn_end = xstrdup(*c->eos ? c->eos : "</s>");
		break;
	}
	c->describe = xstrdup(train_chat_format_name(f));
	return c;
}

void train_chat_free(train_chat *c)
{
	if (!c)
		return;
	free(c->bos);
	free(c->eos);
	free(c->default_system);
	free(c->preamble);
	free(c->turn_end);
	free(c->err);
	free(c->describe);
	train_jinja_free(c->tpl);
	cJSON_Delete(c->vars);
	free(c);
}

train_chat_format train_chat_get_format(const train_chat *c)
{
	return c->fmt;
}

int train_chat_uses_template(const train_chat *c)
{
	return c->tpl != NULL;
}

const char *train_chat_describe(const train_chat *c)
{
	return c->describe;
}

const char *train_chat_turn_end(const train_chat *c)
{
	return c->turn_end;
}

const char *train_chat_errmsg(const train_chat *c)
{
	return c->err ? c->err : "";
}

static void set_err(train_chat *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(train_chat *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *m = xvasprintf(fmt, ap);
	va_end(ap);
	free(c->err);
	c->err = m;
}

/* The content with leading and trailing whitespace removed (as Jinja's
 * trim / Python's strip for ASCII whitespace). */
static void add_trimmed(util_buf *b, const char *s)
{
	size_t n = strlen(s);
	while (n && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	util_buf_add(b, s, n);
}

enum { R_SYSTEM, R_USER, R_ASSISTANT };

static int role_of(const char *r)
{
	if (!r)
		return -1;
	if (!strcmp(r, "system"))
		return R_SYSTEM;
	if (!strcmp(r, "user"))
		return R_USER;
	if (!strcmp(r, "assistant"))
		return R_ASSISTANT;
	return -1;
}

static void render_chatml(train_chat *c, const store_msg *m, size_t n, int gen, util_buf *b)
{
	if (c->default_system && (n == 0 || strcmp(m[0].role, "system")))
		util_buf_addf(b, "<|im_start|>system\n%s<|im_end|>\n", c->default_system);
	for (size_t i = 0; i < n; i++)
		util_buf_addf(b, "<|im_start|>%s\n%s<|im_end|>\n", m[i].role, m[i].content);
	if (gen)
		util_buf_adds(b, "<|im_start|>assistant\n");
}

static void render_llama3(train_chat *c, const store_msg *m, size_t n, int gen, util_buf *b)
{
	size_t i = 0;
	util_buf_adds(b, c->bos);
	if (c->preamble) {
		util_buf_adds(b, "<|start_header_id|>system<|end_header_id|>\n\n");
		util_buf_adds(b, c->preamble);
		if (n && !strcmp(m[0].role, "system")) {
			add_trimmed(b, m[0].content);
			i = 1;
		}
		util_buf_adds(b, "<|eot_id|>");
	}
	for (; i < n; i++) {
		util_buf_addf(b, "<|start_header_id|>%s<|end_header_id|>\n\n", m[i].role);
		add_trimmed(b, m[i].content);
		util_buf_adds(b, "<|eot_id|>");
	}
	if (gen)
		util_buf_adds(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static void render_zephyr(train_chat *c, const store_msg *m, size_t n, int gen, util_buf *b)
{
	for (size_t i = 0; i < n; i++)
		util_buf_addf(b, "<|%s|>\n%s%s\n", m[i].role, m[i].content, c->eos);
	if (gen)
		util_buf_adds(b, "<|assistant|>\n");
}

/* Llama-2: <s>[INST] <<SYS>>\n{sys}\n<</SYS>>\n\n{user} [/INST] {answer} </s>
 * Mistral: <s>[INST] {user} [/INST]{answer}</s>[INST] ... (a system message
 * goes before the first user message, separated by a blank line). */
static int render_inst(train_chat *c, const store_msg *m, size_t n, util_buf *b)
{
	int llama2 = c->fmt == TRAIN_CHAT_LLAMA2;
	const char *sys = NULL;
	size_t i = 0;
	if (n && role_of(m[0].role) == R_SYSTEM) {
		sys = m[0].content;
		i = 1;
	}
	if (!llama2)
		util_buf_adds(b, c->bos);
	int want_user = 1;
	for (; i < n; i++) {
		int r = role_of(m[i].role);
		if (r == R_SYSTEM || (r == R_USER) != want_user) {
			set_err(c, "message %zu: %s format needs alternating user/assistant messages "
				   "(after an optional first system message), got \"%s\"", i + 1,
				train_chat_format_name(c->fmt), m[i].role);
			return TRAIN_CHAT_EINPUT;
		}
		if (r == R_USER) {
			if (llama2) {
				/* the system block joins the first user message, and
				 * the whole is stripped */
				util_buf u = UTIL_BUF_INIT;
				if (sys)
					util_buf_addf(&u, "<<SYS>>\n%s\n<</SYS>>\n\n", sys);
				util_buf_adds(&u, m[i].content);
				util_buf_adds(b, c->bos);
				util_buf_adds(b, "[INST] ");
				add_trimmed(b, util_buf_str(&u));
				util_buf_adds(b, " [/INST]");
				util_buf_free(&u);
			} else {
				util_buf_adds(b, "[INST] ");
				if (sys) {
					util_buf_adds(b, sys);
					util_buf_adds(b, "\n\n");
				}
				util_buf_adds(b, m[i].content);
				util_buf_adds(b, " [/INST]");
			}
			sys = NULL;
		} else if (llama2) {
			util_buf_addc(b, ' ');
			add_trimmed(b, m[i].content);
			util_buf_addc(b, ' ');
			util_buf_adds(b, c->eos);
		} else {
			util_buf_adds(b, m[i].content);
			util_buf_adds(b, c->eos);
		}
		want_user = !want_user;
	}
	return 0;
}

int train_chat_set_var(train_chat *c, const char *name, const char *value)
{
	int ok = name && *name && !isdigit((unsigned char)*name);
	for (const char *p = name; ok && *p; p++)
		ok = isalnum((unsigned char)*p) || *p == '_';
	if (!ok || !strcmp(name, "messages") || !strcmp(name, "add_generation_prompt")) {
		set_err(c, "chat variable \"%s\": %s", name ? name : "",
			ok ? "is set by the renderer itself" : "not a template variable name");
		return TRAIN_CHAT_EINPUT;
	}
	cJSON *v = cJSON_Parse(value ? value : "");
	if (!v)
		v = cJSON_CreateString(value ? value : "");
	cJSON_DeleteItemFromObjectCaseSensitive(c->vars, name);
	cJSON_AddItemToObject(c->vars, name, v);
	return 0;
}

const char *train_chat_var_check(const char *a)
{
	const char *eq = strchr(a, '=');
	size_t len = eq ? (size_t)(eq - a) : 0;
	int ok = len > 0 && !isdigit((unsigned char)a[0]);
	for (size_t k = 0; ok && k < len; k++)
		ok = isalnum((unsigned char)a[k]) || a[k] == '_';
	if (!ok)
		return "--chat-var: expected NAME=VALUE, NAME a template variable (letters, digits, _)";
	if ((len == 8 && !strncmp(a, "messages", 8)) || (len == 21 && !strncmp(a, "add_generation_prompt", 21)))
		return "--chat-var: messages and add_generation_prompt are set by the renderer";
	return NULL;
}

int train_chat_set_assignment(train_chat *c, const char *assignment)
{
	const char *eq = assignment ? strchr(assignment, '=') : NULL;
	if (!eq) {
		set_err(c, "chat variable \"%s\": expected NAME=VALUE", assignment ? assignment : "");
		return TRAIN_CHAT_EINPUT;
	}
	char *name = xstrndup(assignment, (size_t)(eq - assignment));
	int rc = train_chat_set_var(c, name, eq + 1);
	free(name);
	return rc;
}

/* Render the template with messages (a JSON array, consumed). */
static int render_template(train_chat *c, cJSON *messages, int gen, char **text)
{
	cJSON *vars = cJSON_CreateObject();
	cJSON_AddItemToObject(vars, "messages", messages);
	cJSON_AddBoolToObject(vars, "add_generation_prompt", gen != 0);
	cJSON_AddStringToObject(vars, "bos_token", c->bos);
	cJSON_AddStringToObject(vars, "eos_token", c->eos);
	for (const cJSON *v = c->vars->child; v; v = v->next) {
		cJSON_DeleteItemFromObjectCaseSensitive(vars, v->string);
		cJSON_AddItemToObject(vars, v->string, cJSON_Duplicate(v, 1));
	}
	char *err = NULL;
	int rc = train_jinja_render(c->tpl, vars, NULL, text, &err);
	cJSON_Delete(vars);
	if (rc) {
		set_err(c, "%s", err ? err : "the chat template failed");
		free(err);
		return TRAIN_CHAT_ETEMPLATE;
	}
	return 0;
}

int train_chat_render(train_chat *c, const store_msg *msgs, size_t n, int gen, char **text)
{
	*text = NULL;
	for (size_t i = 0; i < n; i++) {
		int r = role_of(msgs[i].role);
		if ((r < 0 && !(c->tpl && msgs[i].role && !strcmp(msgs[i].role, "tool"))) ||
		    !msgs[i].content) {
			set_err(c, "message %zu: %s", i + 1,
				!msgs[i].content ? "content is missing"
						 : "role must be \"system\", \"user\" or \"assistant\"");
			return TRAIN_CHAT_EINPUT;
		}
	}
	if (c->tpl) {
		cJSON *m = cJSON_CreateArray();
		for (size_t i = 0; i < n; i++) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "role", msgs[i].role);
			cJSON_AddStringToObject(o, "content", msgs[i].content);
			cJSON_AddItemToArray(m, o);
		}
		return render_template(c, m, gen, text);
	}
	util_buf b = UTIL_BUF_INIT;
	int rc = 0;
	switch (c->fmt) {
	case TRAIN_CHAT_CHATML:
		render_chatml(c, msgs, n, gen, &b);
		break;
	case TRAIN_CHAT_LLAMA3:
		render_llama3(c, msgs, n, gen, &b);
		break;
	case TRAIN_CHAT_ZEPHYR:
		render_zephyr(c, msgs, n, gen, &b);
		break;
	case TRAIN_CHAT_LLAMA2:
	case TRAIN_CHAT_MISTRAL:
		rc = render_inst(c, msgs, n, &b);
		break;
	case TRAIN_CHAT_JINJA: /* only with a template (above) */
		break;
	}
	if (rc) {
		util_buf_free(&b);
		return rc;
	}
	*text = util_buf_detach(&b);
	return 0;
}

int train_chat_encode(train_chat *c, const store_msg *msgs, size_t n, int gen, int32_t **ids,
		      size_t *nids)
{
	char *text = NULL;
	*ids = NULL;
	*nids = 0;
	int rc = train_chat_render(c, msgs, n, gen, &text);
	if (rc)
		return rc;
	rc = train_tokenizer_encode(c->tok, text, strlen(text), ids, nids);
	if (rc)
		set_err(c, "%s", train_tokenizer_errmsg(c->tok));
	free(text);
	return rc;
}

/* The messages of a JSON conversation (a new array, caller deletes), or NULL
 * with the message in c when it is not a list of {"role": string, ...}. */
static cJSON *parse_messages(train_chat *c, const char *messages_json)
{
	cJSON *root = cJSON_Parse(messages_json ? messages_json : "");
	if (!cJSON_IsArray(root)) {
		cJSON_Delete(root);
		set_err(c, "the messages are not a JSON list");
		return NULL;
	}
	size_t i = 0;
	for (const cJSON *m = root->child; m; m = m->next, i++) {
		if (!cJSON_IsObject(m) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(m, "role"))) {
			set_err(c, "message %zu: not an object with a \"role\" string", i + 1);
			cJSON_Delete(root);
			return NULL;
		}
	}
	return root;
}

/* The messages of root as store_msg (pointing into root; caller frees the
 * array). */
static store_msg *as_store_msgs(const cJSON *root, size_t *n)
{
	store_msg *msgs = xcalloc((size_t)cJSON_GetArraySize(root) + 1, sizeof *msgs);
	size_t nm = 0;
	for (const cJSON *m = root->child; m; m = m->next) {
		const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "role");
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(m, "content");
		msgs[nm].role = cJSON_IsString(r) ? r->valuestring : NULL;
		msgs[nm].content = cJSON_IsString(t) ? t->valuestring : NULL;
		nm++;
	}
	*n = nm;
	return msgs;
}

int train_chat_render_json(train_chat *c, const char *messages_json, int gen, char **text)
{
	*text = NULL;
	cJSON *root = parse_messages(c, messages_json);
	if (!root)
		return TRAIN_CHAT_EINPUT;
	if (c->tpl)
		return render_template(c, root, gen, text);
	size_t nm;
	store_msg *msgs = as_store_msgs(root, &nm);
	int rc = train_chat_render(c, msgs, nm, gen, text);
	free(msgs);
	cJSON_Delete(root);
	return rc;
}

int train_chat_encode_json(train_chat *c, const char *messages_json, int gen, int32_t **ids, size_t *nids)
{
	*ids = NULL;
	*nids = 0;
	char *text = NULL;
	int rc = train_chat_render_json(c, messages_json, gen, &text);
	if (rc)
		return rc;
	rc = train_tokenizer_encode(c->tok, text, strlen(text), ids, nids);
	if (rc)
		set_err(c, "%s", train_tokenizer_errmsg(c->tok));
	free(text);
	return rc;
}

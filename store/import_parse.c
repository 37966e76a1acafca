/* import_parse.c: the parser layer of the dataset importer: one JSON line in,
 * one store_record (or a reason) out. No database. See import.h. */
#include "store/import.h"
#include "store/import_int.h"
#include "util/buf.h"
#include "util/utf8.h"
#include "util/xmalloc.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A growable list of messages. */
typedef struct msglist {
	store_msg *v;
	size_t n, cap;
} msglist;

struct store_import_parser {
	store_import_format fmt;   /* as asked */
	store_import_format cur;   /* in use: fmt, or the one detected */
	char variant[64];
	cJSON *root;               /* the current line's tree */
	msglist prompt, side[2];   /* prompt; chosen and rejected conversations */
	store_rec_completion *comps;
	size_t ncomps, capcomps;
	store_rec_label *labels;
	size_t nlabels, caplabels;
	double *scores;
	size_t capscores;
	char **strs;               /* strings made for the current line */
	size_t nstrs, capstrs;
	const char *prompt_text;
	int presumed;              /* cur was set by store_import_parser_presume */
	imp_extra *x;              /* ratings, feedback, annotator (import_judgments.c) */
	int ndropped;              /* empty completions left out of the record */
	util_buf dropped;          /* which, for store_import_parser_dropped */
	util_buf err;
	util_buf tmp;
};

static const char *const fmt_names[] = {
	[STORE_IMPORT_AUTO] = "auto",
	[STORE_IMPORT_TRL] = "trl",
	[STORE_IMPORT_HH] = "hh",
	[STORE_IMPORT_ULTRAFEEDBACK] = "ultrafeedback",
	[STORE_IMPORT_SHAREGPT] = "sharegpt",
	[STORE_IMPORT_PROMPTS] = "prompts",
	[STORE_IMPORT_CANDIDATES] = "candidates",
	[STORE_IMPORT_MTBENCH] = "mt-bench",
	[STORE_IMPORT_MTBENCH_SINGLE] = "mt-bench-single",
	[STORE_IMPORT_ALPACAEVAL] = "alpaca-eval",
	[STORE_IMPORT_KTO] = "kto",
};

#define HH_ASSISTANT "\n\nAssistant:"
#define HH_HUMAN "\n\nHuman:"

int store_import_format_from_name(const char *name, store_import_format *fmt)
{
	for (size_t i = 0; i < sizeof fmt_names / sizeof fmt_names[0]; i++)
		if (name && !strcmp(name, fmt_names[i])) {
			*fmt = (store_import_format)i;
			return STORE_OK;
		}
	return STORE_EINVAL;
}

const char *store_import_format_name(store_import_format fmt)
{
	if ((size_t)fmt < sizeof fmt_names / sizeof fmt_names[0])
		return fmt_names[fmt];
	return "?";
}

store_import_parser *store_import_parser_new(store_import_format fmt)
{
	store_import_parser *p = xcalloc(1, sizeof *p);
	p->fmt = p->cur = fmt;
	p->x = imp_extra_new();
	return p;
}

static void reset_line(store_import_parser *p)
{
	cJSON_Delete(p->root);
	p->root = NULL;
	for (size_t i = 0; i < p->nstrs; i++)
		free(p->strs[i]);
	p->nstrs = 0;
	p->prompt.n = p->side[0].n = p->side[1].n = 0;
	p->ncomps = p->nlabels = 0;
	p->prompt_text = NULL;
	imp_extra_reset(p->x);
	p->ndropped = 0;
	util_buf_reset(&p->dropped);
	util_buf_reset(&p->err);
}

void store_import_parser_free(store_import_parser *p)
{
	if (!p)
		return;
	reset_line(p);
	free(p->strs);
	free(p->prompt.v);
	free(p->side[0].v);
	free(p->side[1].v);
	free(p->comps);
	free(p->labels);
	free(p->scores);
	imp_extra_free(p->x);
	util_buf_free(&p->err);
	util_buf_free(&p->dropped);
	util_buf_free(&p->tmp);
	free(p);
}

const char *store_import_parser_errmsg(const store_import_parser *p)
{
	return util_buf_str(&p->err);
}

int store_import_parser_dropped(const store_import_parser *p, const char **why)
{
	if (why)
		*why = util_buf_str(&p->dropped);
	return p->ndropped;
}

store_import_format store_import_parser_format(const store_import_parser *p)
{
	return p->cur;
}

const char *store_import_parser_variant(const store_import_parser *p)
{
	return p->variant;
}

/* ---- helpers ---------------------------------------------------------------- */

static int fail(store_import_parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(store_import_parser *p, const char *fmt, ...)
{
	va_list ap;
	util_buf_reset(&p->err);
	va_start(ap, fmt);
	char *s = xvasprintf(fmt, ap);
	va_end(ap);
	util_buf_adds(&p->err, s);
	free(s);
	return STORE_EINVAL;
}

/* Keep s (malloc'ed) until the next line; returns it. */
static char *keep(store_import_parser *p, char *s)
{
	if (p->nstrs == p->capstrs) {
		p->capstrs = p->capstrs ? 2 * p->capstrs : 16;
		p->strs = xreallocarray(p->strs, p->capstrs, sizeof *p->strs);
	}
	p->strs[p->nstrs++] = s;
	return s;
}

static store_msg *msg_push(msglist *l)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 8;
		l->v = xreallocarray(l->v, l->cap, sizeof *l->v);
	}
	return &l->v[l->n++];
}

static int add_completion(store_import_parser *p, const char *text, const char *model)
{
	if (p->ncomps == p->capcomps) {
		p->capcomps = p->capcomps ? 2 * p->capcomps : 8;
		p->comps = xreallocarray(p->comps, p->capcomps, sizeof *p->comps);
	}
	p->comps[p->ncomps].text = text;
	p->comps[p->ncomps].model = model;
	return (int)p->ncomps++;
}

static void add_label(store_import_parser *p, int a, int b, const char *verdict)
{
	if (p->nlabels == p->caplabels) {
		p->caplabels = p->caplabels ? 2 * p->caplabels : 8;
		p->labels = xreallocarray(p->labels, p->caplabels, sizeof *p->labels);
	}
	p->labels[p->nlabels].a = a;
	p->labels[p->nlabels].b = b;
	p->labels[p->nlabels].verdict = verdict;
	p->labels[p->nlabels].has_scores = 0;
	p->labels[p->nlabels].score_a = p->labels[p->nlabels].score_b = 0;
	p->labels[p->nlabels].chosen = NULL;
	p->labels[p->nlabels].has_confidence = 0;
	p->labels[p->nlabels].confidence = 0;
	p->nlabels++;
}

static cJSON *get(const cJSON *obj, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(obj, name);
}

static int is_present(const cJSON *v)
{
	return v && !cJSON_IsNull(v);
}

/* The required string field name of obj into *out. */
static int need_string(store_import_parser *p, const cJSON *obj, const char *name, const char **out)
{
	const cJSON *v = get(obj, name);
	if (!is_present(v))
		return fail(p, "field \"%s\" is missing", name);
	if (!cJSON_IsString(v))
		return fail(p, "field \"%s\" must be a string", name);
	*out = v->valuestring;
	return STORE_OK;
}

static int nonempty(store_import_parser *p, const char *text, const char *what)
{
	if (!*text)
		return fail(p, "%s is empty", what);
	return STORE_OK;
}

/* Map a role name to the canonical static string, or NULL. */
static const char *canon_role(const char *r)
{
	if (!strcmp(r, "system"))
		return "system";
	if (!strcmp(r, "user") || !strcmp(r, "human"))
		return "user";
	if (!strcmp(r, "assistant") || !strcmp(r, "gpt"))
		return "assistant";
	return NULL;
}

/* Content: a string, or a list of text parts ({"type": "text", "text"|"value":
 * str}) joined without separator. */
static int get_content(store_import_parser *p, const cJSON *c, const char *path, const char **out)
{
	if (cJSON_IsString(c)) {
		*out = c->valuestring;
		return STORE_OK;
	}
	if (!cJSON_IsArray(c))
		return fail(p, "field \"%s\" must be a string or a list of text parts", path);
	int n = cJSON_GetArraySize(c);
	util_buf_reset(&p->tmp);
	int i = 0;
	const cJSON *part;
	const char *single = NULL;
	cJSON_ArrayForEach(part, c) {
		const cJSON *type = get(part, "type");
		const cJSON *t = get(part, "text");
		if (!t)
			t = get(part, "value");
		if (!cJSON_IsObject(part) || (type && !(cJSON_IsString(type) && !strcmp(type->valuestring, "text"))) ||
		    !cJSON_IsString(t))
			return fail(p, "field \"%s[%d]\" must be a text part {\"type\": \"text\", \"text\": string}",
				    path, i);
		if (n == 1) /* the common case: no copy */
			single = t->valuestring;
		else
			util_buf_adds(&p->tmp, t->valuestring);
		i++;
	}
	*out = single ? single : keep(p, util_buf_detach(&p->tmp));
	return STORE_OK;
}

/* One message object: {"role", "content"} or ShareGPT's {"from", "value"}. */
static int get_message(store_import_parser *p, const cJSON *m, const char *path, store_msg *out)
{
	if (!cJSON_IsObject(m))
		return fail(p, "field \"%s\" must be a message object {\"role\", \"content\"}", path);
	const cJSON *role = get(m, "role");
	const char *rkey = "role", *ckey = "content";
	if (!role) {
		role = get(m, "from");
		rkey = "from";
		ckey = "value";
	}
	if (!role)
		return fail(p, "field \"%s\" must have a \"role\" (or \"from\")", path);
	if (!cJSON_IsString(role))
		return fail(p, "field \"%s.%s\" must be a string", path, rkey);
	out->role = canon_role(role->valuestring);
	if (!out->role)
		return fail(p, "field \"%s.%s\" must be \"system\", \"user\" or \"assistant\" (or \"human\", \"gpt\"), got \"%s\"",
			    path, rkey, role->valuestring);
	const cJSON *c = get(m, ckey);
	if (!c && !strcmp(ckey, "content")) {
		c = get(m, "value");
		ckey = "value";
	}
	if (!c)
		return fail(p, "field \"%s.%s\" is missing", path, rkey[0] == 'r' ? "content" : "value");
	if (!is_present(c))
		return fail(p, "field \"%s.%s\" is missing", path, ckey);
	char sub[160];
	snprintf(sub, sizeof sub, "%s.%s", path, ckey);
	return get_content(p, c, sub, &out->content);
}

/* A non-empty list of messages into l. */
static int get_msglist(store_import_parser *p, const cJSON *arr, const char *name, msglist *l)
{
	l->n = 0;
	if (!cJSON_IsArray(arr))
		return fail(p, "field \"%s\" must be a list of messages", name);
	const cJSON *m;
	int i = 0;
	char path[128];
	cJSON_ArrayForEach(m, arr) {
		snprintf(path, sizeof path, "%s[%d]", name, i++);
		int rc = get_message(p, m, path, msg_push(l));
		if (rc)
			return rc;
	}
	if (l->n == 0)
		return fail(p, "field \"%s\" must not be empty", name);
	return STORE_OK;
}

/* A prompt field: a non-empty string, or a list of messages. */
static int get_prompt(store_import_parser *p, const cJSON *v, const char *name)
{
	if (cJSON_IsString(v)) {
		p->prompt_text = v->valuestring;
		return nonempty(p, v->valuestring, "field \"prompt\"");
	}
	if (cJSON_IsArray(v))
		return get_msglist(p, v, name, &p->prompt);
	return fail(p, "field \"%s\" must be a string or a list of messages", name);
}

static int msg_equal(const store_msg *a, const store_msg *b)
{
	return !strcmp(a->role, b->role) && !strcmp(a->content, b->content);
}

/* Split two whole conversations (chosen in side[0], rejected in side[1]) into
 * their shared prompt (all but the last message; must be identical and
 * non-empty), copied to p->prompt, and two final assistant messages, returned
 * as completions. names are the fields, for messages. */
static int split_implicit(store_import_parser *p, const char *const names[2], const char *text[2])
{
	for (int s = 0; s < 2; s++) {
		msglist *l = &p->side[s];
		if (l->v[l->n - 1].role[0] != 'a')
			return fail(p, "field \"%s\" must end with an assistant message", names[s]);
		if (l->n < 2)
			return fail(p, "field \"%s\" has no prompt: it holds only the assistant message", names[s]);
		text[s] = l->v[l->n - 1].content;
	}
	size_t n0 = p->side[0].n - 1, n1 = p->side[1].n - 1;
	for (size_t i = 0; i < n0 && i < n1; i++)
		if (!msg_equal(&p->side[0].v[i], &p->side[1].v[i]))
			return fail(p, "the prompts of \"%s\" and \"%s\" differ (message %zu)", names[0], names[1], i);
	if (n0 != n1)
		return fail(p, "the prompts of \"%s\" and \"%s\" differ (%zu and %zu messages before the answer)",
			    names[0], names[1], n0, n1);
	p->prompt.n = 0;
	for (size_t i = 0; i < n0; i++)
		*msg_push(&p->prompt) = p->side[0].v[i];
	return STORE_OK;
}

/* Two completions (chosen, rejected) labelled with verdict. */
static int add_pair(store_import_parser *p, const char *chosen, const char *rejected, const char *verdict,
		    const char *const names[2])
{
	int rc;
	char what[64];
	snprintf(what, sizeof what, "field \"%s\"", names[0]);
	if ((rc = nonempty(p, chosen, what)))
		return rc;
	snprintf(what, sizeof what, "field \"%s\"", names[1]);
	if ((rc = nonempty(p, rejected, what)))
		return rc;
	if (!strcmp(chosen, rejected))
		return fail(p, "%s and %s are identical", names[0], names[1]);
	add_completion(p, chosen, NULL);
	add_completion(p, rejected, NULL);
	add_label(p, 0, 1, verdict);
	return STORE_OK;
}

/* chosen/rejected of TRL and binarized UltraFeedback: strings, single
 * assistant messages, or whole conversations (implicit prompt). The prompt
 * field, when present, is the prompt; a conversation's prefix must then
 * match it. *conv is set when any part was a list of messages. */
static int get_pair_sides(store_import_parser *p, const cJSON *root, const char *text[2], int *conv,
			  int *implicit)
{
	static const char *const names[2] = {"chosen", "rejected"};
	const cJSON *prompt = get(root, "prompt");
	const cJSON *side[2] = {get(root, "chosen"), get(root, "rejected")};
	int rc, whole = 0;
	*conv = 0;
	*implicit = 0;
	for (int s = 0; s < 2; s++) {
		if (!is_present(side[s]))
			return fail(p, "field \"%s\" is missing", names[s]);
		if (cJSON_IsString(side[s])) {
			text[s] = side[s]->valuestring;
		} else if (cJSON_IsArray(side[s])) {
			if ((rc = get_msglist(p, side[s], names[s], &p->side[s])))
				return rc;
			*conv = 1;
			if (p->side[s].n >= 2)
				whole |= 1 << s;
		} else if (cJSON_IsObject(side[s])) {
			store_msg m;
			if ((rc = get_message(p, side[s], names[s], &m)))
				return rc;
			p->side[s].n = 0;
			*msg_push(&p->side[s]) = m;
			*conv = 1;
		} else {
			return fail(p, "field \"%s\" must be a string or a list of messages", names[s]);
		}
	}
	if (whole == 3) {
		/* two whole conversations: the shared prefix is the prompt */
		if ((rc = split_implicit(p, names, text)))
			return rc;
		*implicit = 1;
		if (!is_present(prompt))
			return STORE_OK;
		if (cJSON_IsString(prompt)) {
			if (p->prompt.n != 1 || p->prompt.v[0].role[0] != 'u' ||
			    strcmp(p->prompt.v[0].content, prompt->valuestring))
				return fail(p, "field \"prompt\" does not match the conversation in \"chosen\"");
			p->prompt.n = 0;
			return get_prompt(p, prompt, "prompt");
		}
		if (!cJSON_IsArray(prompt))
			return fail(p, "field \"prompt\" must be a string or a list of messages");
		msglist saved = p->prompt;
		p->prompt = (msglist){0};
		rc = get_msglist(p, prompt, "prompt", &p->prompt);
		int same = !rc && saved.n == p->prompt.n;
		for (size_t i = 0; same && i < saved.n; i++)
			same = msg_equal(&saved.v[i], &p->prompt.v[i]);
		free(saved.v);
		if (rc)
			return rc;
		if (!same)
			return fail(p, "field \"prompt\" does not match the conversation in \"chosen\"");
		return STORE_OK;
	}
	if (whole) {
		int s = whole == 1; /* the side that is not a whole conversation */
		return fail(p, "field \"%s\" must be a whole conversation like \"%s\"", names[s], names[!s]);
	}
	for (int s = 0; s < 2; s++) {
		if (cJSON_IsString(side[s]))
			continue;
		if (p->side[s].v[0].role[0] != 'a')
			return fail(p, "field \"%s\" must be a string or an assistant message", names[s]);
		text[s] = p->side[s].v[0].content;
	}
	if (!is_present(prompt)) {
		if (!*conv)
			return fail(p, "field \"prompt\" is missing (records without one need \"chosen\" and \"rejected\" as whole conversations, or --format hh for HH-RLHF transcripts)");
		return fail(p, "field \"prompt\" is missing");
	}
	if (cJSON_IsArray(prompt))
		*conv = 1;
	return get_prompt(p, prompt, "prompt");
}

/* ---- formats ------------------------------------------------------------------ */

static void set_variant(store_import_parser *p, const char *v)
{
	if (!p->variant[0])
		snprintf(p->variant, sizeof p->variant, "%s", v);
}

static int parse_trl(store_import_parser *p, const cJSON *root)
{
	static const char *const names[2] = {"chosen", "rejected"};
	const char *text[2];
	int conv, implicit, rc;
	if ((rc = get_pair_sides(p, root, text, &conv, &implicit)))
		return rc;
	if ((rc = add_pair(p, text[0], text[1], "a", names)))
		return rc;
	set_variant(p, implicit ? "trl (implicit prompt)" : conv ? "trl (conversational)" : "trl (standard)");
	return STORE_OK;
}

/* Split one HH transcript into prompt length and completion. */
static int hh_split(store_import_parser *p, const char *name, const char *t, size_t *plen, const char **compl)
{
	const char *last = NULL;
	size_t alen = strlen(HH_ASSISTANT);
	if (strncmp(t, HH_HUMAN, strlen(HH_HUMAN)))
		return fail(p, "field \"%s\" must start with \"\\n\\nHuman:\"", name);
	for (const char *s = t; (s = strstr(s, HH_ASSISTANT)); s += alen)
		last = s;
	if (!last)
		return fail(p, "field \"%s\" has no \"\\n\\nAssistant:\" turn", name);
	*plen = (size_t)(last - t) + alen;
	/* The completion keeps every byte after "Assistant:", the usual leading
	 * space included, so that prompt + completion is the transcript (and
	 * the split is TRL's extract_prompt's wherever the two responses
	 * begin differently). */
	const char *c = t + *plen;
	if (!c[c[0] == ' '])
		return fail(p, "the final response of \"%s\" is empty", name);
	*compl = c;
	return STORE_OK;
}

static int parse_hh(store_import_parser *p, const cJSON *root)
{
	static const char *const names[2] = {"chosen", "rejected"};
	const char *t[2], *c[2];
	size_t plen[2];
	int rc;
	for (int s = 0; s < 2; s++) {
		if ((rc = need_string(p, root, names[s], &t[s])))
			return rc;
	}
	for (int s = 0; s < 2; s++)
		if ((rc = hh_split(p, names[s], t[s], &plen[s], &c[s])))
			return rc;
	if (plen[0] != plen[1] || memcmp(t[0], t[1], plen[0])) {
		size_t i = 0;
		while (i < plen[0] && i < plen[1] && t[0][i] == t[1][i])
			i++;
		return fail(p, "the prompts of \"chosen\" and \"rejected\" differ (from byte %zu on)", i + 1);
	}
	if (!strcmp(c[0], c[1]))
		return fail(p, "chosen and rejected are identical");
	p->prompt_text = keep(p, xstrndup(t[0], plen[0]));
	add_completion(p, c[0], NULL);
	add_completion(p, c[1], NULL);
	add_label(p, 0, 1, "a");
	set_variant(p, "hh");
	return STORE_OK;
}

/* A rating: a number, or a string holding one ("N/A" and other text: none). */
static int rating_value(const cJSON *v, double *out)
{
	if (cJSON_IsNumber(v)) {
		*out = v->valuedouble;
		return isfinite(*out);
	}
	if (cJSON_IsString(v)) {
		char *end;
		double d = strtod(v->valuestring, &end);
		if (end != v->valuestring && !*end && isfinite(d)) {
			*out = d;
			return 1;
		}
	}
	return 0;
}

/* The mean rating of one UltraFeedback completion: the mean of the aspect
 * ratings in "annotations" / "ratings", else "fine-grained_score", else
 * "overall_score". */
static int uf_score(store_import_parser *p, const cJSON *c, int i, double *score)
{
	double sum = 0, r;
	int n = 0;
	const char *keys[2] = {"annotations", "ratings"};
	for (int k = 0; k < 2; k++) {
		const cJSON *a = get(c, keys[k]), *v;
		if (!is_present(a))
			continue;
		if (!cJSON_IsObject(a) && !cJSON_IsArray(a))
			return fail(p, "field \"completions[%d].%s\" must be an object of aspect ratings", i, keys[k]);
		cJSON_ArrayForEach(v, a) {
			/* an aspect: a rating, {"Rating": r, ...}, or a list of those */
			int list = cJSON_IsArray(v);
			for (const cJSON *one = list ? v->child : v; one; one = list ? one->next : NULL) {
				const cJSON *x = one;
				if (cJSON_IsObject(one)) {
					x = get(one, "Rating");
					if (!x)
						x = get(one, "rating");
				}
				if (x && rating_value(x, &r)) {
					sum += r;
					n++;
				}
			}
		}
	}
	if (n) {
		*score = sum / n;
		return STORE_OK;
	}
	const char *fallback[2] = {"fine-grained_score", "overall_score"};
	for (int k = 0; k < 2; k++) {
		const cJSON *v = get(c, fallback[k]);
		if (is_present(v)) {
			if (!rating_value(v, score))
				return fail(p, "field \"completions[%d].%s\" must be a number", i, fallback[k]);
			return STORE_OK;
		}
	}
	return fail(p, "field \"completions[%d]\" has no ratings (expected \"annotations\", \"ratings\", \"fine-grained_score\" or \"overall_score\")",
		    i);
}

static int parse_uf_raw(store_import_parser *p, const cJSON *root)
{
	const cJSON *instr = get(root, "instruction");
	int rc;
	if (!is_present(instr))
		instr = get(root, "prompt");
	if (!is_present(instr))
		return fail(p, "field \"instruction\" is missing");
	if (!cJSON_IsString(instr))
		return fail(p, "field \"%s\" must be a string", instr->string);
	p->prompt_text = instr->valuestring;
	if ((rc = nonempty(p, p->prompt_text, "the instruction")))
		return rc;
	const cJSON *comps = get(root, "completions"), *c;
	if (!cJSON_IsArray(comps))
		return fail(p, "field \"completions\" must be a list of completion objects");
	int n = cJSON_GetArraySize(comps), i = 0;
	if (n == 0)
		return fail(p, "field \"completions\" must not be empty");
	if ((size_t)n > p->capscores) {
		p->capscores = (size_t)n;
		p->scores = xreallocarray(p->scores, p->capscores, sizeof *p->scores);
	}
	cJSON_ArrayForEach(c, comps) {
		if (!cJSON_IsObject(c))
			return fail(p, "field \"completions[%d]\" must be an object with \"response\"", i);
		const cJSON *resp = get(c, "response"), *model = get(c, "model");
		if (!is_present(resp))
			return fail(p, "field \"completions[%d].response\" is missing", i);
		if (!cJSON_IsString(resp))
			return fail(p, "field \"completions[%d].response\" must be a string", i);
		if (!*resp->valuestring)
			return fail(p, "field \"completions[%d].response\" is empty", i);
		if (is_present(model) && !cJSON_IsString(model))
			return fail(p, "field \"completions[%d].model\" must be a string", i);
		if ((rc = uf_score(p, c, i, &p->scores[i])))
			return rc;
		for (size_t j = 0; j < p->ncomps; j++)
			if (!strcmp(p->comps[j].text, resp->valuestring))
				return fail(p, "completions[%zu] and completions[%d] have the same response", j, i);
		add_completion(p, resp->valuestring, is_present(model) ? model->valuestring : NULL);
		if ((rc = imp_uf_ratings(p, p->x, c, i)))
			return rc;
		i++;
	}
	for (int a = 0; a < n; a++)
		for (int b = a + 1; b < n; b++) {
			add_label(p, a, b, p->scores[a] > p->scores[b] ? "a" : p->scores[a] < p->scores[b] ? "b" : "tie");
			store_rec_label *l = &p->labels[p->nlabels - 1];
			l->has_scores = 1;
			l->score_a = p->scores[a];
			l->score_b = p->scores[b];
		}
	set_variant(p, "ultrafeedback (raw)");
	return STORE_OK;
}

static int uf_score_field(store_import_parser *p, const cJSON *root, const char *name, const cJSON **out)
{
	const cJSON *v = get(root, name), *meta = get(root, "metadata");
	if (!is_present(v) && cJSON_IsObject(meta))
		v = get(meta, name);
	*out = is_present(v) ? v : NULL;
	if (*out && (!cJSON_IsNumber(*out) || !isfinite((*out)->valuedouble)))
		return fail(p, "field \"%s\" must be a number", name);
	return STORE_OK;
}

static int parse_uf_binarized(store_import_parser *p, const cJSON *root)
{
	static const char *const names[2] = {"chosen", "rejected"};
	const char *text[2];
	const cJSON *sc, *sr;
	int conv, implicit, rc;
	if ((rc = get_pair_sides(p, root, text, &conv, &implicit)))
		return rc;
	if ((rc = uf_score_field(p, root, "score_chosen", &sc)) || (rc = uf_score_field(p, root, "score_rejected", &sr)))
		return rc;
	if (!sc != !sr)
		return fail(p, "field \"%s\" is missing", sc ? "score_rejected" : "score_chosen");
	const char *verdict = "a";
	if (sc)
		verdict = sc->valuedouble > sr->valuedouble ? "a" : sc->valuedouble < sr->valuedouble ? "b" : "tie";
	if ((rc = add_pair(p, text[0], text[1], verdict, names)))
		return rc;
	/* the scores go with the comparison, and so does the side the file
	 * called chosen: with equal scores the verdict is a tie */
	store_rec_label *l = &p->labels[p->nlabels - 1];
	l->chosen = "a";
	if (sc) {
		l->has_scores = 1;
		l->score_a = sc->valuedouble;
		l->score_b = sr->valuedouble;
	}
	set_variant(p, "ultrafeedback (binarized)");
	return STORE_OK;
}

static int parse_ultrafeedback(store_import_parser *p, const cJSON *root)
{
	if (is_present(get(root, "completions")))
		return parse_uf_raw(p, root);
	return parse_uf_binarized(p, root);
}

/* One side of a ShareGPT DPO record: an assistant message object or a string. */
static int sharegpt_side(store_import_parser *p, const cJSON *root, const char *name, const char **text)
{
	const cJSON *v = get(root, name);
	store_msg m;
	int rc;
	if (!is_present(v))
		return fail(p, "field \"%s\" is missing", name);
	if (cJSON_IsString(v)) {
		*text = v->valuestring;
		return STORE_OK;
	}
	if (!cJSON_IsObject(v))
		return fail(p, "field \"%s\" must be a message object {\"from\": \"gpt\", \"value\": string}", name);
	if ((rc = get_message(p, v, name, &m)))
		return rc;
	if (m.role[0] != 'a')
		return fail(p, "field \"%s\" must be an assistant message (from \"gpt\")", name);
	*text = m.content;
	return STORE_OK;
}

static int parse_sharegpt(store_import_parser *p, const cJSON *root)
{
	static const char *const names[2] = {"chosen", "rejected"};
	static const char *const v1names[2] = {"chosen_messages", "rejected_messages"};
	const char *text[2];
	int rc;
	const cJSON *conv = get(root, "conversations");
	if (!is_present(conv) && (get(root, "chosen_messages") || get(root, "rejected_messages"))) {
		for (int s = 0; s < 2; s++) {
			const cJSON *v = get(root, v1names[s]);
			if (!is_present(v))
				return fail(p, "field \"%s\" is missing", v1names[s]);
			if ((rc = get_msglist(p, v, v1names[s], &p->side[s])))
				return rc;
		}
		if ((rc = split_implicit(p, v1names, text)))
			return rc;
		if ((rc = add_pair(p, text[0], text[1], "a", v1names)))
			return rc;
		set_variant(p, "sharegpt (llama-factory v1)");
		return STORE_OK;
	}
	if (!is_present(conv))
		return fail(p, "field \"conversations\" is missing");
	const cJSON *sys = get(root, "system");
	if (is_present(sys)) {
		if (!cJSON_IsString(sys))
			return fail(p, "field \"system\" must be a string");
		if (*sys->valuestring)
			*msg_push(&p->prompt) = (store_msg){"system", sys->valuestring};
	}
	msglist tail = {0};
	rc = get_msglist(p, conv, "conversations", &tail);
	for (size_t i = 0; !rc && i < tail.n; i++)
		*msg_push(&p->prompt) = tail.v[i];
	free(tail.v);
	if (rc)
		return rc;
	for (int s = 0; s < 2; s++)
		if ((rc = sharegpt_side(p, root, names[s], &text[s])))
			return rc;
	if ((rc = add_pair(p, text[0], text[1], "a", names)))
		return rc;
	set_variant(p, "sharegpt");
	return STORE_OK;
}

static int get_prompt_or_messages(store_import_parser *p, const cJSON *root)
{
	const cJSON *v = get(root, "prompt");
	if (is_present(v))
		return get_prompt(p, v, "prompt");
	v = get(root, "messages");
	if (is_present(v))
		return get_msglist(p, v, "messages", &p->prompt);
	return fail(p, "field \"prompt\" (or \"messages\") is missing");
}

static int parse_prompts(store_import_parser *p, const cJSON *root)
{
	int rc = get_prompt_or_messages(p, root);
	if (!rc)
		set_variant(p, "prompts");
	return rc;
}

static int parse_candidates(store_import_parser *p, const cJSON *root)
{
	int rc = get_prompt_or_messages(p, root), i = 0;
	if (rc)
		return rc;
	const cJSON *comps = get(root, "completions"), *c;
	if (!is_present(comps))
		return fail(p, "field \"completions\" is missing");
	if (!cJSON_IsArray(comps))
		return fail(p, "field \"completions\" must be a list of strings or {\"text\", \"model\"} objects");
	cJSON_ArrayForEach(c, comps) {
		const char *text, *model = NULL;
		if (cJSON_IsString(c)) {
			text = c->valuestring;
		} else if (cJSON_IsObject(c)) {
			const cJSON *t = get(c, "text"), *m = get(c, "model");
			if (!is_present(t))
				return fail(p, "field \"completions[%d].text\" is missing", i);
			if (!cJSON_IsString(t))
				return fail(p, "field \"completions[%d].text\" must be a string", i);
			if (is_present(m) && !cJSON_IsString(m))
				return fail(p, "field \"completions[%d].model\" must be a string", i);
			text = t->valuestring;
			model = is_present(m) ? m->valuestring : NULL;
		} else {
			return fail(p, "field \"completions[%d]\" must be a string or a {\"text\", \"model\"} object", i);
		}
		if (!*text) { /* that completion goes, not the record */
			util_buf_addf(&p->dropped, "%sfield \"completions[%d]\"%s", p->ndropped ? ", " : "", i,
				      model && *model ? " of model " : "");
			if (model && *model)
				util_buf_adds(&p->dropped, model);
			p->ndropped++;
			i++;
			continue;
		}
		if (model && !*model)
			model = NULL;
		add_completion(p, text, model);
		i++;
	}
	if (i == 0)
		return fail(p, "field \"completions\" must not be empty");
	if (p->ndropped)
		util_buf_addf(&p->dropped, " %s empty: not imported (the rest of the record was)",
			      p->ndropped == 1 ? "is" : "are");
	set_variant(p, "candidates");
	return STORE_OK;
}

/* ---- detection -------------------------------------------------------------------- */

/* Whether fmt's records carry labels (comparisons, ratings or binary
 * feedback), which a prompts or candidates import would drop. */
static int labelled(store_import_format fmt)
{
	return fmt != STORE_IMPORT_AUTO && fmt != STORE_IMPORT_PROMPTS && fmt != STORE_IMPORT_CANDIDATES;
}

static int looks_hh(const cJSON *v)
{
	return cJSON_IsString(v) && !strncmp(v->valuestring, HH_HUMAN, strlen(HH_HUMAN)) &&
	       strstr(v->valuestring, HH_ASSISTANT);
}

static store_import_format detect(const cJSON *root)
{
	const cJSON *meta = get(root, "metadata");
	store_import_format judged = imp_detect_judgments(root);
	if (judged != STORE_IMPORT_AUTO)
		return judged;
	if (get(root, "conversations") || get(root, "chosen_messages") || get(root, "rejected_messages"))
		return STORE_IMPORT_SHAREGPT;
	const cJSON *comps = get(root, "completions");
	if (comps) {
		const cJSON *c;
		if (get(root, "instruction"))
			return STORE_IMPORT_ULTRAFEEDBACK;
		cJSON_ArrayForEach(c, comps)
			if (cJSON_IsObject(c) && (get(c, "annotations") || get(c, "ratings") ||
						  get(c, "overall_score") || get(c, "fine-grained_score") ||
						  get(c, "response")))
				return STORE_IMPORT_ULTRAFEEDBACK;
		return STORE_IMPORT_CANDIDATES;
	}
	if (get(root, "chosen") || get(root, "rejected")) {
		if (get(root, "score_chosen") || get(root, "score_rejected") ||
		    (cJSON_IsObject(meta) && (get(meta, "score_chosen") || get(meta, "score_rejected"))))
			return STORE_IMPORT_ULTRAFEEDBACK;
		if (!get(root, "prompt") && (looks_hh(get(root, "chosen")) || looks_hh(get(root, "rejected"))))
			return STORE_IMPORT_HH;
		return STORE_IMPORT_TRL;
	}
	if (get(root, "prompt") || get(root, "messages"))
		return STORE_IMPORT_PROMPTS;
	return STORE_IMPORT_AUTO;
}

static const char *const detect_help =
	"cannot tell the format from the fields (expected \"chosen\" and \"rejected\", \"conversations\", "
	"\"completions\", \"prompt\" or \"messages\"); use --format";

/* ---- entry points -------------------------------------------------------------------- */

/* Nonzero when the JSON text holds the escape \u0000 (which cJSON would turn
 * into a silently truncated string). */
static int has_nul_escape(const char *s, size_t n)
{
	const char *end = s + n, *q = s;
	while ((q = memmem(q, (size_t)(end - q), "u0000", 5))) {
		size_t k = 0;
		while (q - k > s && q[-(ptrdiff_t)k - 1] == '\\')
			k++;
		if (k & 1)
			return 1;
		q += 5;
	}
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first key that appears twice in one object of the tree v, or NULL.
 * (cJSON keeps both and lookups see the first; Python's json keeps the
 * last: either way a value would be lost without a word.) */
static const char *dup_key(const cJSON *v)
{
	const cJSON *c;
	if (cJSON_IsObject(v)) {
		size_t n = 0;
		cJSON_ArrayForEach(c, v)
			n++;
		if (n > 1 && n <= 16) {
			for (const cJSON *a = v->child; a; a = a->next)
				for (const cJSON *b = a->next; b; b = b->next)
					if (!strcmp(a->string, b->string))
						return a->string;
		} else if (n > 16) {
			const char **names = xreallocarray(NULL, n, sizeof *names), *d = NULL;
			size_t i = 0;
			cJSON_ArrayForEach(c, v)
				names[i++] = c->string;
			qsort(names, n, sizeof *names, cmp_names);
			for (i = 1; i < n && !d; i++)
				if (!strcmp(names[i - 1], names[i]))
					d = names[i];
			free(names);
			if (d)
				return d;
		}
	}
	if (cJSON_IsObject(v) || cJSON_IsArray(v))
		cJSON_ArrayForEach(c, v) {
			const char *d = dup_key(c);
			if (d)
				return d;
		}
	return NULL;
}

/* Parse the JSON object of one line into p->root. */
static int parse_json(store_import_parser *p, const char *line, size_t len)
{
	size_t bad;
	if (len >= 3 && !memcmp(line, "\xEF\xBB\xBF", 3)) {
		line += 3;
		len -= 3;
	}
	if (!util_utf8_valid(line, len, &bad))
		return fail(p, "invalid UTF-8 at byte %zu", bad + 1);
	const char *nul = memchr(line, '\0', len);
	if (nul)
		return fail(p, "a NUL byte at byte %zu", (size_t)(nul - line) + 1);
	if (has_nul_escape(line, len))
		return fail(p, "a string holds a NUL character (\\u0000)");
	const char *end = NULL;
	p->root = cJSON_ParseWithLengthOpts(line, len, &end, 0);
	if (!p->root) {
		size_t at = end && end >= line && end <= line + len ? (size_t)(end - line) : 0;
		return fail(p, "invalid JSON near byte %zu", at + 1);
	}
	for (const char *q = end; q < line + len; q++)
		if (*q != ' ' && *q != '\t' && *q != '\r' && *q != '\n')
			return fail(p, "invalid JSON: text after the object at byte %zu", (size_t)(q - line) + 1);
	if (!cJSON_IsObject(p->root))
		return fail(p, "expected a JSON object");
	const char *d = dup_key(p->root);
	if (d)
		return fail(p, "duplicate key \"%s\" in one object (readers disagree on which value counts)", d);
	return STORE_OK;
}

int store_import_detect(const char *line, size_t len, store_import_format *fmt)
{
	store_import_parser *p = store_import_parser_new(STORE_IMPORT_AUTO);
	int rc = parse_json(p, line, len);
	*fmt = rc ? STORE_IMPORT_AUTO : detect(p->root);
	store_import_parser_free(p);
	if (!rc && *fmt == STORE_IMPORT_AUTO)
		rc = STORE_EINVAL;
	return rc;
}

static int parse_as(store_import_parser *p, store_import_format fmt)
{
	switch (fmt) {
	case STORE_IMPORT_TRL: return parse_trl(p, p->root);
	case STORE_IMPORT_HH: return parse_hh(p, p->root);
	case STORE_IMPORT_ULTRAFEEDBACK: return parse_ultrafeedback(p, p->root);
	case STORE_IMPORT_SHAREGPT: return parse_sharegpt(p, p->root);
	case STORE_IMPORT_PROMPTS: return parse_prompts(p, p->root);
	case STORE_IMPORT_CANDIDATES: return parse_candidates(p, p->root);
	case STORE_IMPORT_MTBENCH:
	case STORE_IMPORT_MTBENCH_SINGLE:
	case STORE_IMPORT_ALPACAEVAL:
	case STORE_IMPORT_KTO: return imp_parse_judgments(p, p->x, fmt, p->root);
	case STORE_IMPORT_AUTO: break;
	}
	return fail(p, "%s", detect_help);
}

void store_import_parser_presume(store_import_parser *p, store_import_format fmt)
{
	if (p->fmt == STORE_IMPORT_AUTO && p->cur == STORE_IMPORT_AUTO && fmt != STORE_IMPORT_AUTO) {
		p->cur = fmt;
		p->presumed = 1;
	}
}

/* The record's own id in its file, for provenance: the first of
 * question_id, source_index, id and prompt_id that is a string or a
 * number (an integer printed as one), or NULL. */
static const char *record_id(store_import_parser *p)
{
	static const char *const names[] = {"question_id", "source_index", "id", "prompt_id"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		const cJSON *v = get(p->root, names[i]);
		if (cJSON_IsString(v))
			return v->valuestring;
		if (cJSON_IsNumber(v)) {
			double d = v->valuedouble;
			if (d == (double)(long long)d && d > -9e15 && d < 9e15)
				return keep(p, xasprintf("%lld", (long long)d));
			return keep(p, xasprintf("%.17g", d));
		}
	}
	return NULL;
}

int store_import_parse(store_import_parser *p, const char *line, size_t len, store_record *rec)
{
	int rc;
	memset(rec, 0, sizeof *rec);
	reset_line(p);
	if ((rc = parse_json(p, line, len)))
		return rc;
	store_import_format fmt = p->cur;
	if (fmt == STORE_IMPORT_AUTO) {
		fmt = detect(p->root);
		if (fmt == STORE_IMPORT_AUTO)
			return fail(p, "%s", detect_help);
	}
	if ((rc = parse_as(p, fmt))) {
		if (p->fmt == STORE_IMPORT_AUTO && p->cur != STORE_IMPORT_AUTO) {
			store_import_format here = detect(p->root);
			if (here != p->cur)
				util_buf_addf(&p->err, " (this record looks like %s, but the file's %s %s)",
					      here == STORE_IMPORT_AUTO ? "no known format" : fmt_names[here],
					      p->presumed ? "first records are mostly" : "first record was",
					      fmt_names[p->cur]);
		}
		return rc;
	}
	/* Detected from the first records as prompts or candidates, a record
	 * with preference fields would lose them. */
	if (p->fmt == STORE_IMPORT_AUTO && !labelled(fmt)) {
		store_import_format here = detect(p->root);
		if (labelled(here))
			return fail(p, "this record holds preferences (it looks like %s), but the file's first record "
				    "was %s: use --format", fmt_names[here], fmt_names[fmt]);
	}
	p->cur = fmt;
	rec->prompt_text = p->prompt_text;
	if (!p->prompt_text) {
		rec->messages = p->prompt.v;
		rec->nmessages = p->prompt.n;
	}
	rec->completions = p->comps;
	rec->ncompletions = p->ncomps;
	rec->labels = p->labels;
	rec->nlabels = p->nlabels;
	if (labelled(fmt))
		imp_extra_finish(p->x, p->root, rec);
	rec->record_id = record_id(p);
	return STORE_OK;
}

/* ---- lent to import_judgments.c (import_int.h) ------------------------------------ */

int imp_fail(store_import_parser *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = xvasprintf(fmt, ap);
	va_end(ap);
	fail(p, "%s", s);
	free(s);
	return STORE_EINVAL;
}

char *imp_keep(store_import_parser *p, char *s)
{
	return keep(p, s);
}

int imp_add_completion(store_import_parser *p, const char *text, const char *model)
{
	return add_completion(p, text, model);
}

store_rec_label *imp_add_label(store_import_parser *p, int a, int b, const char *verdict)
{
	add_label(p, a, b, verdict);
	return &p->labels[p->nlabels - 1];
}

void imp_set_prompt_text(store_import_parser *p, const char *text)
{
	p->prompt_text = text;
}

void imp_set_prompt_messages(store_import_parser *p, const store_msg *m, size_t n)
{
	p->prompt.n = 0;
	for (size_t i = 0; i < n; i++)
		*msg_push(&p->prompt) = m[i];
}

int imp_messages(store_import_parser *p, const cJSON *arr, const char *name, int slot, const store_msg **msgs,
		 size_t *n)
{
	int rc = get_msglist(p, arr, name, &p->side[slot]);
	*msgs = p->side[slot].v;
	*n = p->side[slot].n;
	return rc;
}

int imp_content(store_import_parser *p, const cJSON *c, const char *path, const char **out)
{
	return get_content(p, c, path, out);
}

void imp_set_variant(store_import_parser *p, const char *v)
{
	set_variant(p, v);
}

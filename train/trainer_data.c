/* trainer_data.c: JSONL preference pairs, tokenization, truncation (see
 * trainer_data.h). */
#include "config.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "train/trainer_data.h"
#include "util/lineread.h"
#include "util/sha256.h"
#include "util/xmalloc.h"

void train_msgs_free(store_msg *msgs, size_t n)
{
	if (!msgs)
		return;
	for (size_t i = 0; i < n; i++) {
		free((char *)msgs[i].role);
		free((char *)msgs[i].content);
	}
	free(msgs);
}

void train_raw_free(train_raw_pair *r)
{
	if (!r)
		return;
	free(r->prompt);
	free(r->chosen);
	free(r->rejected);
	train_msgs_free(r->pmsgs, r->npmsgs);
	train_msgs_free(r->cmsgs, r->ncmsgs);
	train_msgs_free(r->rmsgs, r->nrmsgs);
	free(r->prompt_ids);
	free(r->chosen_ids);
	free(r->rejected_ids);
	memset(r, 0, sizeof(*r));
}

/* Messages from a cJSON array; -1 with *err (naming field) on a bad shape. */
static int msgs_from(const cJSON *a, const char *field, store_msg **out, size_t *n, char **err)
{
	size_t k = (size_t)cJSON_GetArraySize(a), i = 0;
	store_msg *m = xcalloc(k ? k : 1, sizeof(store_msg));
	const cJSON *x;
	cJSON_ArrayForEach(x, a)
	{
		const cJSON *role = cJSON_GetObjectItemCaseSensitive(x, "role");
		const cJSON *content = cJSON_GetObjectItemCaseSensitive(x, "content");
		if (!cJSON_IsObject(x) || !cJSON_IsString(role) || !cJSON_IsString(content)) {
			*err = xasprintf("field \"%s\": message %zu must be an object with string \"role\" and \"content\"",
					 field, i + 1);
			train_msgs_free(m, i);
			return -1;
		}
		if (strcmp(role->valuestring, "system") && strcmp(role->valuestring, "user") &&
		    strcmp(role->valuestring, "assistant")) {
			*err = xasprintf("field \"%s\": message %zu has role \"%s\" (expected system, user or assistant)",
					 field, i + 1, role->valuestring);
			train_msgs_free(m, i);
			return -1;
		}
		m[i].role = xstrdup(role->valuestring);
		m[i].content = xstrdup(content->valuestring);
		i++;
	}
	*out = m;
	*n = i;
	return 0;
}

int train_msgs_parse(const char *json, store_msg **msgs, size_t *n, char **err)
{
	cJSON *a = cJSON_Parse(json);
	int rc;
	if (!cJSON_IsArray(a)) {
		*err = xstrdup("messages must be a JSON array of {\"role\", \"content\"} objects");
		rc = -1;
	} else {
		rc = msgs_from(a, "messages", msgs, n, err);
	}
	cJSON_Delete(a);
	return rc;
}

static int ids_from(const cJSON *a, const char *field, int **out, int *n, char **err)
{
	int k = cJSON_GetArraySize(a), i = 0;
	int *v = xmalloc(sizeof(int) * (size_t)(k ? k : 1));
	const cJSON *x;
	cJSON_ArrayForEach(x, a)
	{
		if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > INT32_MAX ||
		    x->valuedouble != (double)(int)x->valuedouble) {
			*err = xasprintf("field \"%s\": item %d must be a non-negative integer token id",
					 field, i + 1);
			free(v);
			return -1;
		}
		v[i++] = (int)x->valuedouble;
	}
	*out = v;
	*n = i;
	return 0;
}

/* A string or a list of messages. */
static int text_or_msgs(const cJSON *o, const char *field, char **text, store_msg **msgs,
			size_t *n, char **err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
	if (!v) {
		*err = xasprintf("missing field \"%s\"", field);
		return -1;
	}
	if (cJSON_IsString(v)) {
		*text = xstrdup(v->valuestring);
		return 0;
	}
	if (cJSON_IsArray(v))
		return msgs_from(v, field, msgs, n, err);
	*err = xasprintf("field \"%s\" must be a string or a list of messages", field);
	return -1;
}

int train_raw_parse(const char *line, size_t len, train_raw_pair *out, char **err)
{
	memset(out, 0, sizeof(*out));
	cJSON *o = cJSON_ParseWithLength(line, len);
	int rc = -1;
	if (!cJSON_IsObject(o)) {
		*err = xstrdup("not a JSON object");
		goto out;
	}
	const cJSON *pi = cJSON_GetObjectItemCaseSensitive(o, "prompt_ids");
	if (pi) {
		const cJSON *ci = cJSON_GetObjectItemCaseSensitive(o, "chosen_ids");
		const cJSON *ri = cJSON_GetObjectItemCaseSensitive(o, "rejected_ids");
		const char *bad = !cJSON_IsArray(pi) ? "prompt_ids" : !cJSON_IsArray(ci) ? "chosen_ids" :
				  !cJSON_IsArray(ri) ? "rejected_ids" : NULL;
		if (bad) {
			*err = xasprintf("field \"%s\" must be a list of token ids", bad);
			goto out;
		}
		if (ids_from(pi, "prompt_ids", &out->prompt_ids, &out->np, err) ||
		    ids_from(ci, "chosen_ids", &out->chosen_ids, &out->nc, err) ||
		    ids_from(ri, "rejected_ids", &out->rejected_ids, &out->nr, err))
			goto out;
		out->has_ids = 1;
		rc = 0;
		goto out;
	}
	if (text_or_msgs(o, "prompt", &out->prompt, &out->pmsgs, &out->npmsgs, err) ||
	    text_or_msgs(o, "chosen", &out->chosen, &out->cmsgs, &out->ncmsgs, err) ||
	    text_or_msgs(o, "rejected", &out->rejected, &out->rmsgs, &out->nrmsgs, err))
		goto out;
	if (out->prompt && (out->cmsgs || out->rmsgs)) {
		*err = xstrdup("field \"prompt\" is a string but the completions are lists of messages "
			       "(use messages for the prompt too)");
		goto out;
	}
	rc = 0;
out:
	if (rc)
		train_raw_free(out);
	cJSON_Delete(o);
	return rc;
}

/* ---- tokenization ---- */

static int encode(train_tokenizer *tok, const char *text, int **ids, int *n, const char *what,
		  char **err)
{
	int32_t *v = NULL;
	size_t k = 0;
	if (train_tokenizer_encode(tok, text, strlen(text), &v, &k) != 0) {
		*err = xasprintf("%s: %s", what, train_tokenizer_errmsg(tok));
		return -1;
	}
	int *o = xmalloc(sizeof(int) * (k + 2));
	for (size_t i = 0; i < k; i++)
		o[i] = v[i];
	free(v);
	*ids = o;
	*n = (int)k;
	return 0;
}

/* The text a chat template adds after the prompt for the completion msgs. */
static int completion_text(train_chat *chat, const store_msg *pm, size_t np, const store_msg *cm,
			   size_t nc, const char *field, char **out, char **err)
{
	char *pre = NULL, *full = NULL;
	store_msg *all = xcalloc(np + nc + 1, sizeof(store_msg));
	memcpy(all, pm, sizeof(store_msg) * np);
	memcpy(all + np, cm, sizeof(store_msg) * nc);
	int rc = -1;
	if (train_chat_render(chat, pm, np, 1, &pre) || train_chat_render(chat, all, np + nc, 0, &full)) {
		*err = xasprintf("field \"%s\": %s", field, train_chat_errmsg(chat));
		goto out;
	}
	size_t lp = strlen(pre);
	if (strncmp(full, pre, lp) != 0) {
		*err = xasprintf("field \"%s\": the chat template does not render the completion as a "
				 "continuation of the prompt", field);
		goto out;
	}
	*out = xstrdup(full + lp);
	rc = 0;
out:
	free(pre);
	free(full);
	free(all);
	return rc;
}

static int *copy_ids(const int *v, int n, int extra)
{
	int *o = xmalloc(sizeof(int) * (size_t)(n + extra + 1));
	if (n)
		memcpy(o, v, sizeof(int) * n);
	return o;
}

int train_raw_tokenize(const train_raw_pair *r, train_tokenizer *tok, train_chat *chat,
		       const train_tok_opts *o, train_pair *out, char **err)
{
	memset(out, 0, sizeof(*out));
	char *ptext = NULL, *ctext = NULL, *rtext = NULL;
	int rc = -1;
	if ((o->append_eos && o->eos_id < 0) || (o->add_bos && o->bos_id < 0)) {
		*err = xstrdup(o->append_eos && o->eos_id < 0 ?
				       "the tokenizer has no EOS token to append (use --no-append-eos)" :
				       "the tokenizer has no BOS token");
		return -1;
	}
	if (r->has_ids) {
		out->prompt = copy_ids(r->prompt_ids, r->np, 1);
		out->chosen = copy_ids(r->chosen_ids, r->nc, 1);
		out->rejected = copy_ids(r->rejected_ids, r->nr, 1);
		out->np = r->np;
		out->nc = r->nc;
		out->nr = r->nr;
	} else {
		if (!tok) {
			*err = xstrdup("no tokenizer to encode text");
			return -1;
		}
		if (r->pmsgs) {
			if (!chat) {
				*err = xstrdup("a conversational pair needs a chat template (--chat-format)");
				goto out;
			}
			if (train_chat_render(chat, r->pmsgs, r->npmsgs, 1, &ptext)) {
				*err = xasprintf("field \"prompt\": %s", train_chat_errmsg(chat));
				goto out;
			}
			if (r->cmsgs) {
				if (completion_text(chat, r->pmsgs, r->npmsgs, r->cmsgs, r->ncmsgs, "chosen",
						    &ctext, err))
					goto out;
			} else {
				ctext = xstrdup(r->chosen);
			}
			if (r->rmsgs) {
				if (completion_text(chat, r->pmsgs, r->npmsgs, r->rmsgs, r->nrmsgs,
						    "rejected", &rtext, err))
					goto out;
			} else {
				rtext = xstrdup(r->rejected);
			}
		} else {
			ptext = xstrdup(r->prompt);
			ctext = xstrdup(r->chosen);
			rtext = xstrdup(r->rejected);
		}
		if (encode(tok, ptext, &out->prompt, &out->np, "field \"prompt\"", err) ||
		    encode(tok, ctext, &out->chosen, &out->nc, "field \"chosen\"", err) ||
		    encode(tok, rtext, &out->rejected, &out->nr, "field \"rejected\"", err))
			goto out;
	}
	if (o->add_bos) {
		memmove(out->prompt + 1, out->prompt, sizeof(int) * out->np);
		out->prompt[0] = o->bos_id;
		out->np++;
	}
	if (o->append_eos) {
		out->chosen[out->nc++] = o->eos_id;
		out->rejected[out->nr++] = o->eos_id;
	}
	if (out->nc == 0 || out->nr == 0) {
		*err = xstrdup(out->nc == 0 ? "field \"chosen\" is empty" : "field \"rejected\" is empty");
		goto out;
	}
	train_pair_truncate(out, o);
	rc = 0;
out:
	free(ptext);
	free(ctext);
	free(rtext);
	if (rc)
		train_pair_free(out);
	return rc;
}

void train_pair_truncate(train_pair *p, const train_tok_opts *o)
{
	if (o->max_prompt_length > 0 && p->np > o->max_prompt_length) {
		int cut = p->np - (int)o->max_prompt_length;
		memmove(p->prompt, p->prompt + cut, sizeof(int) * (p->np - cut));
		p->np -= cut;
		p->truncated = 1;
	}
	if (o->max_completion_length > 0) {
		if (p->nc > o->max_completion_length) {
			p->nc = (int)o->max_completion_length;
			p->truncated = 1;
		}
		if (p->nr > o->max_completion_length) {
			p->nr = (int)o->max_completion_length;
			p->truncated = 1;
		}
	}
	if (o->max_length <= 0)
		return;
	int longest = p->nc > p->nr ? p->nc : p->nr;
	if (p->np + longest <= o->max_length)
		return;
	p->truncated = 1;
	if (p->np + 1 > o->max_length) {
		/* leave one completion token: the prompt keeps its end, or
		 * (keep_start) its start */
		int keep = (int)o->max_length - 1;
		if (keep < 0)
			keep = 0;
		int cut = p->np - keep;
		if (!o->keep_start)
			memmove(p->prompt, p->prompt + cut, sizeof(int) * keep);
		p->np = keep;
	}
	int room = (int)o->max_length - p->np;
	if (p->nc > room)
		p->nc = room;
	if (p->nr > room)
		p->nr = room;
}

void train_tok_fingerprint(const char *tokenizer_fp, const char *chat_format,
			   const train_tok_opts *o, char out[65])
{
	char *s = xasprintf("tok=%s\nchat=%s\neos=%d:%d\nbos=%d:%d\nmax_length=%ld\nmax_prompt_length=%ld\n",
			    tokenizer_fp ? tokenizer_fp : "pretokenized",
			    chat_format ? chat_format : "none", o->append_eos, o->eos_id, o->add_bos,
			    o->bos_id, o->max_length, o->max_prompt_length);
	/* the newer settings only when set, so that a fingerprint (and the
	 * reference log-prob cache keyed by it) stays what it was without them */
	if (o->max_completion_length > 0 || o->keep_start) {
		char *t = xasprintf("%smax_completion_length=%ld\ntruncation=%s\n", s, o->max_completion_length,
				    o->keep_start ? "keep_start" : "keep_end");
		free(s);
		s = t;
	}
	util_sha256_hex(s, strlen(s), out);
	free(s);
}

void train_data_fingerprint(const train_pair *pairs, size_t n, char out[65])
{
	util_sha256 h;
	util_sha256_init(&h);
	for (size_t i = 0; i < n; i++) {
		const train_pair *p = &pairs[i];
		int32_t lens[3] = {p->np, p->nc, p->nr};
		util_sha256_update(&h, lens, sizeof(lens));
		util_sha256_update(&h, p->prompt, sizeof(int) * p->np);
		util_sha256_update(&h, p->chosen, sizeof(int) * p->nc);
		util_sha256_update(&h, p->rejected, sizeof(int) * p->nr);
	}
	util_sha256_final_hex(&h, out);
}

int train_read_jsonl(const char *path, train_tokenizer *tok, train_chat *chat,
		     const train_tok_opts *o, train_pair **pairs, size_t *n, long *ntrunc,
		     char **err)
{
	util_lineread *r = util_lineread_open(path);
	if (!r) {
		*err = xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	train_pair *v = NULL;
	size_t k = 0, cap = 0;
	long trunc = 0;
	const char *line;
	size_t len;
	int st, rc = 0;
	while ((st = util_lineread_next(r, &line, &len)) == 1) {
		size_t i = 0;
		while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
			i++;
		if (i == len)
			continue; /* blank line */
		train_raw_pair raw;
		char *e = NULL;
		if (train_raw_parse(line, len, &raw, &e) != 0) {
			*err = xasprintf("%s:%ld: %s", path, util_lineread_lineno(r), e);
			free(e);
			rc = -1;
			break;
		}
		if (k == cap) {
			cap = cap ? cap * 2 : 64;
			v = xreallocarray(v, cap, sizeof(train_pair));
		}
		if (train_raw_tokenize(&raw, tok, chat, o, &v[k], &e) != 0) {
			*err = xasprintf("%s:%ld: %s", path, util_lineread_lineno(r), e);
			free(e);
			train_raw_free(&raw);
			rc = -1;
			break;
		}
		trunc += v[k].truncated;
		k++;
		train_raw_free(&raw);
	}
	if (st < 0 && rc == 0) {
		*err = xasprintf("%s: %s", path, util_lineread_error(r));
		rc = -1;
	}
	util_lineread_close(r);
	if (rc == 0 && k == 0) {
		*err = xasprintf("%s: no preference pairs", path);
		rc = -1;
	}
	if (rc) {
		for (size_t i = 0; i < k; i++)
			train_pair_free(&v[i]);
		free(v);
		return -1;
	}
	*pairs = v;
	*n = k;
	if (ntrunc)
		*ntrunc = trunc;
	return 0;
}

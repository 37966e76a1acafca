/* import_judgments.c: the parsers of labels made by other tools: MT-Bench
 * pairwise judgments and single grading, AlpacaEval annotations, KTO binary
 * feedback, and the ratings of raw UltraFeedback records. One JSON object
 * in (already parsed by import_parse.c), the record's prompt, completions
 * and labels set through import_int.h, its ratings, feedback and annotator
 * kept here. See import.h for the layouts. */
#include "store/import_int.h"
#include "util/buf.h"
#include "util/xmalloc.h"
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct imp_extra {
	store_rec_rating *ratings;
	size_t nratings, capratings;
	store_rec_feedback fb;       /* KTO: one per record */
	int has_fb;
	const char *annotator;       /* borrowed from the record, or in name */
	const char *kind;            /* static, or NULL */
	util_buf name;               /* a judge named by a list, joined by '/' */
};

imp_extra *imp_extra_new(void)
{
	return xcalloc(1, sizeof(imp_extra));
}

void imp_extra_reset(imp_extra *x)
{
	x->nratings = 0;
	x->has_fb = 0;
	x->annotator = x->kind = NULL;
	util_buf_reset(&x->name);
}

void imp_extra_free(imp_extra *x)
{
	if (!x)
		return;
	free(x->ratings);
	util_buf_free(&x->name);
	free(x);
}

static const cJSON *get(const cJSON *obj, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(obj, name);
}

static int present(const cJSON *v)
{
	return v && !cJSON_IsNull(v);
}

static void add_rating(imp_extra *x, int completion, const char *aspect, double value, double lo, double hi)
{
	if (x->nratings == x->capratings) {
		x->capratings = x->capratings ? 2 * x->capratings : 8;
		x->ratings = xreallocarray(x->ratings, x->capratings, sizeof *x->ratings);
	}
	x->ratings[x->nratings++] = (store_rec_rating){completion, aspect, value, lo, hi};
}

/* A required non-empty string field. */
static int need_text(store_import_parser *p, const cJSON *root, const char *name, const char **out)
{
	const cJSON *v = get(root, name);
	if (!present(v))
		return imp_fail(p, "field \"%s\" is missing", name);
	if (!cJSON_IsString(v))
		return imp_fail(p, "field \"%s\" must be a string", name);
	if (!*v->valuestring)
		return imp_fail(p, "field \"%s\" is empty", name);
	*out = v->valuestring;
	return STORE_OK;
}

/* An optional string field (NULL when absent, null or empty). */
static int opt_text(store_import_parser *p, const cJSON *root, const char *name, const char **out)
{
	const cJSON *v = get(root, name);
	*out = NULL;
	if (!present(v))
		return STORE_OK;
	if (!cJSON_IsString(v))
		return imp_fail(p, "field \"%s\" must be a string", name);
	if (*v->valuestring)
		*out = v->valuestring;
	return STORE_OK;
}

/* The annotator named by field `name` of root: a string, or (MT-Bench's
 * judges) a list of strings joined with '/', e.g. "gpt-4/pair-v2". */
static int annotator_field(store_import_parser *p, imp_extra *x, const cJSON *root, const char *name)
{
	const cJSON *v = get(root, name), *e;
	if (!present(v))
		return STORE_OK;
	if (cJSON_IsString(v)) {
		if (*v->valuestring)
			x->annotator = v->valuestring;
		return STORE_OK;
	}
	if (!cJSON_IsArray(v))
		return imp_fail(p, "field \"%s\" must be a string or a list of strings", name);
	cJSON_ArrayForEach(e, v) {
		if (!cJSON_IsString(e))
			return imp_fail(p, "field \"%s\" must be a string or a list of strings", name);
		util_buf_addf(&x->name, "%s%s", x->name.len ? "/" : "", e->valuestring);
	}
	if (x->name.len)
		x->annotator = util_buf_str(&x->name);
	return STORE_OK;
}

/* MT-Bench's judges: a model judge is named by a list (["gpt-4",
 * "pair-v2"]) or a name starting with "gpt" or "claude"; anyone else
 * (author_0, expert_12) is a human. */
static const char *mtbench_kind(const cJSON *judge, const char *name)
{
	if (cJSON_IsArray(judge) || !strncasecmp(name, "gpt", 3) || !strncasecmp(name, "claude", 6))
		return "judge";
	return "human";
}

/* The index of the turn-th assistant message of msgs (turn 0: the last),
 * or -1. */
static long assistant_at(const store_msg *m, size_t n, long turn)
{
	long seen = 0, last = -1;
	for (size_t i = 0; i < n; i++)
		if (m[i].role[0] == 'a') {
			last = (long)i;
			if (++seen == turn)
				return last;
		}
	return turn ? -1 : last;
}

/* The optional "turn" field: a whole number from 1, or 0 when absent. */
static int turn_field(store_import_parser *p, const cJSON *root, long *turn)
{
	const cJSON *t = get(root, "turn");
	*turn = 0;
	if (!present(t))
		return STORE_OK;
	if (!cJSON_IsNumber(t) || t->valuedouble < 1 || t->valuedouble > 1000 || t->valuedouble != floor(t->valuedouble))
		return imp_fail(p, "field \"turn\" must be a whole number from 1");
	*turn = (long)t->valuedouble;
	return STORE_OK;
}

/* ---- MT-Bench pairwise judgments --------------------------------------------- */

static int mtbench_winner(store_import_parser *p, const cJSON *root, const char **verdict)
{
	static const char *const map[][2] = {
		{"model_a", "a"}, {"model_b", "b"}, {"tie", "tie"}, {"tie (bothbad)", "both_bad"},
	};
	const cJSON *w = get(root, "winner");
	if (!present(w))
		return imp_fail(p, "field \"winner\" is missing");
	for (size_t i = 0; cJSON_IsString(w) && i < sizeof map / sizeof map[0]; i++)
		if (!strcmp(w->valuestring, map[i][0])) {
			*verdict = map[i][1];
			return STORE_OK;
		}
	return imp_fail(p, "field \"winner\" must be \"model_a\", \"model_b\", \"tie\" or \"tie (bothbad)\"");
}

static int parse_mtbench(store_import_parser *p, imp_extra *x, const cJSON *root)
{
	static const char *const conv[2] = {"conversation_a", "conversation_b"};
	static const char *const model[2] = {"model_a", "model_b"};
	const store_msg *m[2];
	size_t n[2];
	long turn, at[2];
	const char *verdict = NULL, *who[2];
	int rc;
	if ((rc = need_text(p, root, model[0], &who[0])) || (rc = need_text(p, root, model[1], &who[1])) ||
	    (rc = mtbench_winner(p, root, &verdict)) || (rc = turn_field(p, root, &turn)))
		return rc;
	for (int s = 0; s < 2; s++) {
		const cJSON *c = get(root, conv[s]);
		if (!present(c))
			return imp_fail(p, "field \"%s\" is missing", conv[s]);
		if ((rc = imp_messages(p, c, conv[s], s, &m[s], &n[s])))
			return rc;
		at[s] = assistant_at(m[s], n[s], turn);
		if (at[s] < 0 && turn)
			return imp_fail(p, "field \"%s\" has no assistant message for turn %ld", conv[s], turn);
		if (at[s] < 0)
			return imp_fail(p, "field \"%s\" has no assistant message", conv[s]);
		if (at[s] == 0)
			return imp_fail(p, "field \"%s\" has no prompt before its answer", conv[s]);
		if (!*m[s][at[s]].content)
			return imp_fail(p, "the answer of \"%s\" is empty", conv[s]);
	}
	/* A later turn's answers each follow their own model's earlier
	 * answers (MT-Bench's turn 2 judges whole conversations): unless
	 * those agree, the two are answers to different prompts, and a pair
	 * of them would teach a preference between texts no one prompt led
	 * to. Refused. */
	for (long i = 0; i < at[0] || i < at[1]; i++)
		if (i >= at[0] || i >= at[1] || strcmp(m[0][i].role, m[1][i].role) ||
		    strcmp(m[0][i].content, m[1][i].content))
			return imp_fail(p, "the conversations before the judged answer differ (message %ld): %s (a later "
					"turn after different answers is two prompts)", i,
					i < at[0] && i < at[1] && !strcmp(m[0][i].role, "assistant") &&
							!strcmp(m[1][i].role, "assistant")
						? "the judged answers follow different earlier answers, so they are not "
						  "two answers to one prompt"
						: "a label needs two answers to one prompt");
	if (!strcmp(m[0][at[0]].content, m[1][at[1]].content))
		return imp_fail(p, "the two answers are identical");
	imp_set_prompt_messages(p, m[0], (size_t)at[0]);
	imp_add_completion(p, m[0][at[0]].content, who[0]);
	imp_add_completion(p, m[1][at[1]].content, who[1]);
	imp_add_label(p, 0, 1, verdict);
	if ((rc = annotator_field(p, x, root, "judge")))
		return rc;
	if (x->annotator)
		x->kind = mtbench_kind(get(root, "judge"), x->annotator);
	imp_set_variant(p, "mt-bench (pairwise judgments)");
	return STORE_OK;
}

/* ---- MT-Bench single grading -------------------------------------------------- */

/* The text between the first `from` at or after s and the next `to`, as a
 * kept copy, or NULL. *end is set past `to`. */
static const char *between(store_import_parser *p, const char *s, const char *from, const char *to,
			   const char **end)
{
	const char *a = strstr(s, from), *b;
	if (!a)
		return NULL;
	a += strlen(from);
	if (!(b = strstr(a, to)))
		return NULL;
	*end = b + strlen(to);
	return imp_keep(p, xstrndup(a, (size_t)(b - a)));
}

/* FastChat's single-answer judge prompt: "[Question]\n{q}\n\n[The Start of
 * ..." (one turn), or the multi-turn one with "### User:\n{q}\n\n###
 * Assistant A:\n{a}" per turn. The prompt (text, or messages for turn 2
 * on) and the graded answer. */
static int single_from_prompt(store_import_parser *p, const char *up, const char **answer)
{
	const char *end, *q, *a;
	const char *conv = strstr(up, "<|The Start of Assistant A's Conversation with User|>");
	if (!conv) {
		q = between(p, up, "[Question]\n", "\n\n[The Start of", &end);
		a = q ? between(p, end - strlen("[The Start of"), "[The Start of Assistant's Answer]\n",
				"\n[The End of Assistant's Answer]", &end)
		      : NULL;
		if (!q || !a)
			return imp_fail(p, "field \"user_prompt\" holds no \"[Question]\" and \"[The Start of "
					"Assistant's Answer]\" (FastChat's single-v1 judge prompt); give \"question\" "
					"and \"answer\" instead");
		imp_set_prompt_text(p, q);
		*answer = a;
		return STORE_OK;
	}
	store_msg m[64];
	size_t n = 0;
	const char *s = conv;
	while (n + 2 <= sizeof m / sizeof m[0] && (q = between(p, s, "### User:\n", "\n\n### Assistant A:\n", &end))) {
		const char *next = strstr(end, "\n\n### User:\n");
		const char *stop = strstr(end, "\n\n<|The End of Assistant A's Conversation with User|>");
		if (!stop)
			break;
		if (!next || next > stop)
			next = stop;
		m[n++] = (store_msg){"user", q};
		m[n++] = (store_msg){"assistant", imp_keep(p, xstrndup(end, (size_t)(next - end)))};
		s = next;
	}
	if (n < 2)
		return imp_fail(p, "field \"user_prompt\" holds no \"### User:\" and \"### Assistant A:\" turns "
				"(FastChat's multi-turn judge prompt); give \"question\" and \"answer\" instead");
	*answer = m[n - 1].content;
	if (n == 2)
		imp_set_prompt_text(p, m[0].content);
	else
		imp_set_prompt_messages(p, m, n - 1);
	return STORE_OK;
}

static int parse_mtbench_single(store_import_parser *p, imp_extra *x, const cJSON *root)
{
	const char *model, *answer = NULL, *q = NULL;
	const cJSON *sc = get(root, "score");
	int rc;
	if ((rc = need_text(p, root, "model", &model)))
		return rc;
	if (!present(sc))
		return imp_fail(p, "field \"score\" is missing");
	if (!cJSON_IsNumber(sc))
		return imp_fail(p, "field \"score\" must be a number");
	if (sc->valuedouble == -1)
		return imp_fail(p, "field \"score\" is -1: the judge's grade could not be read");
	if (!(sc->valuedouble >= 1 && sc->valuedouble <= 10))
		return imp_fail(p, "field \"score\" must be between 1 and 10, not %g", sc->valuedouble);
	if ((rc = opt_text(p, root, "question", &q)) || (rc = opt_text(p, root, "answer", &answer)))
		return rc;
	if (q || answer) {
		if (!q || !answer)
			return imp_fail(p, "field \"%s\" is missing", q ? "answer" : "question");
		imp_set_prompt_text(p, q);
	} else {
		const char *up;
		if ((rc = need_text(p, root, "user_prompt", &up)) || (rc = single_from_prompt(p, up, &answer)))
			return rc;
	}
	if (!*answer)
		return imp_fail(p, "the answer is empty");
	imp_add_completion(p, answer, model);
	add_rating(x, 0, "score", sc->valuedouble, 1, 10);
	if ((rc = annotator_field(p, x, root, "judge")))
		return rc;
	if (x->annotator)
		x->kind = mtbench_kind(get(root, "judge"), x->annotator);
	imp_set_variant(p, "mt-bench-single (ratings)");
	return STORE_OK;
}

/* ---- AlpacaEval annotations ------------------------------------------------------ */

/* preference p: 1 (output_1), 2 (output_2), in between (weighted), 0 (a
 * tie, as older AlpacaEval files say). */
static int alpaca_verdict(store_import_parser *p, const cJSON *root, const char **verdict, double *confidence)
{
	const cJSON *v = get(root, "preference");
	if (!present(v))
		return imp_fail(p, "field \"preference\" is missing (the annotator gave none)");
	double x = v->valuedouble;
	if (!cJSON_IsNumber(v) || !(x == 0 || (x >= 1 && x <= 2)))
		return imp_fail(p, "field \"preference\" must be a number from 1 to 2 (or 0 for a tie)");
	if (x == 0)
		x = 1.5;
	*verdict = x < 1.5 ? "a" : x > 1.5 ? "b" : "tie";
	*confidence = fabs(x - 1.5) * 2;
	return STORE_OK;
}

static int parse_alpacaeval(store_import_parser *p, imp_extra *x, const cJSON *root)
{
	const char *instr, *input, *out[2], *gen[2], *verdict = NULL;
	double conf = 0;
	int rc;
	if ((rc = need_text(p, root, "instruction", &instr)) || (rc = opt_text(p, root, "input", &input)) ||
	    (rc = need_text(p, root, "output_1", &out[0])) || (rc = need_text(p, root, "output_2", &out[1])) ||
	    (rc = opt_text(p, root, "generator_1", &gen[0])) || (rc = opt_text(p, root, "generator_2", &gen[1])) ||
	    (rc = alpaca_verdict(p, root, &verdict, &conf)))
		return rc;
	if (!strcmp(out[0], out[1]))
		return imp_fail(p, "output_1 and output_2 are identical");
	/* AlpacaFarm's records may carry an input: it follows the instruction */
	imp_set_prompt_text(p, input ? imp_keep(p, xasprintf("%s\n\n%s", instr, input)) : instr);
	imp_add_completion(p, out[0], gen[0]);
	imp_add_completion(p, out[1], gen[1]);
	store_rec_label *l = imp_add_label(p, 0, 1, verdict);
	l->has_confidence = 1;
	l->confidence = conf;
	if ((rc = annotator_field(p, x, root, "annotator")))
		return rc;
	if (x->annotator)
		x->kind = "judge";
	imp_set_variant(p, "alpaca-eval (annotations)");
	return STORE_OK;
}

/* ---- KTO binary feedback ------------------------------------------------------------ */

static const cJSON *kto_label(const cJSON *root, const char **name)
{
	*name = "kto_tag";
	const cJSON *v = get(root, "kto_tag");
	if (!v) {
		*name = "label";
		v = get(root, "label");
	}
	return v;
}

/* TRL's {"prompt", "completion", "label"}: strings, or (conversational)
 * a list of messages and a list holding one assistant message. */
static int kto_trl(store_import_parser *p, const cJSON *root, const char **text)
{
	const cJSON *pr = get(root, "prompt"), *c = get(root, "completion");
	const store_msg *m;
	size_t n;
	int rc;
	if (!present(pr))
		return imp_fail(p, "field \"prompt\" is missing");
	if (cJSON_IsString(pr)) {
		if (!*pr->valuestring)
			return imp_fail(p, "field \"prompt\" is empty");
		imp_set_prompt_text(p, pr->valuestring);
	} else if (cJSON_IsArray(pr)) {
		if ((rc = imp_messages(p, pr, "prompt", 0, &m, &n)))
			return rc;
		imp_set_prompt_messages(p, m, n);
	} else {
		return imp_fail(p, "field \"prompt\" must be a string or a list of messages");
	}
	if (!present(c))
		return imp_fail(p, "field \"completion\" is missing");
	if (cJSON_IsString(c)) {
		*text = c->valuestring;
		imp_set_variant(p, cJSON_IsString(pr) ? "kto (trl)" : "kto (trl conversational)");
		return STORE_OK;
	}
	if (!cJSON_IsArray(c))
		return imp_fail(p, "field \"completion\" must be a string or a list of one assistant message");
	if ((rc = imp_messages(p, c, "completion", 1, &m, &n)))
		return rc;
	if (n != 1 || m[0].role[0] != 'a')
		return imp_fail(p, "field \"completion\" must hold one assistant message");
	*text = m[0].content;
	imp_set_variant(p, "kto (trl conversational)");
	return STORE_OK;
}

/* LLaMA-Factory's {"messages"|"conversations", "system"?}: the last
 * message (the assistant's) is the completion, the rest the prompt. */
static int kto_llamafactory(store_import_parser *p, const cJSON *root, const char **text)
{
	const char *name = get(root, "messages") ? "messages" : "conversations", *sys;
	const store_msg *m;
	size_t n;
	int rc;
	if ((rc = opt_text(p, root, "system", &sys)) || (rc = imp_messages(p, get(root, name), name, 0, &m, &n)))
		return rc;
	if (m[n - 1].role[0] != 'a')
		return imp_fail(p, "field \"%s\" must end with the assistant's answer", name);
	if (n < 2)
		return imp_fail(p, "field \"%s\" has no prompt before its answer", name);
	*text = m[n - 1].content;
	if (sys) {
		store_msg *all = xreallocarray(NULL, n, sizeof *all);
		all[0] = (store_msg){"system", sys};
		memcpy(all + 1, m, (n - 1) * sizeof *all);
		imp_set_prompt_messages(p, all, n);
		free(all);
	} else {
		imp_set_prompt_messages(p, m, n - 1);
	}
	imp_set_variant(p, "kto (llama-factory)");
	return STORE_OK;
}

static int parse_kto(store_import_parser *p, imp_extra *x, const cJSON *root)
{
	const char *lname, *text = NULL;
	const cJSON *l = kto_label(root, &lname);
	int rc;
	if (!present(l))
		return imp_fail(p, "field \"label\" (or \"kto_tag\") is missing");
	if (!cJSON_IsBool(l))
		return imp_fail(p, "field \"%s\" must be true or false", lname);
	if (present(get(root, "completion")) || !(get(root, "messages") || get(root, "conversations")))
		rc = kto_trl(p, root, &text);
	else
		rc = kto_llamafactory(p, root, &text);
	if (rc)
		return rc;
	if (!*text)
		return imp_fail(p, "the completion is empty");
	x->fb = (store_rec_feedback){imp_add_completion(p, text, NULL), cJSON_IsTrue(l)};
	x->has_fb = 1;
	return STORE_OK;
}

/* ---- detection, dispatch, UltraFeedback ratings -------------------------------------- */

store_import_format imp_detect_judgments(const cJSON *root)
{
	if (get(root, "model_a") && get(root, "model_b") && (get(root, "winner") || get(root, "conversation_a")))
		return STORE_IMPORT_MTBENCH;
	if (get(root, "output_1") && get(root, "output_2"))
		return STORE_IMPORT_ALPACAEVAL;
	if (get(root, "model") && get(root, "score") && (get(root, "user_prompt") || get(root, "judge")))
		return STORE_IMPORT_MTBENCH_SINGLE;
	if (get(root, "kto_tag") ||
	    (cJSON_IsBool(get(root, "label")) &&
	     (get(root, "completion") || get(root, "messages") || get(root, "conversations"))))
		return STORE_IMPORT_KTO;
	return STORE_IMPORT_AUTO;
}

int imp_parse_judgments(store_import_parser *p, imp_extra *x, store_import_format fmt, const cJSON *root)
{
	switch (fmt) {
	case STORE_IMPORT_MTBENCH: return parse_mtbench(p, x, root);
	case STORE_IMPORT_MTBENCH_SINGLE: return parse_mtbench_single(p, x, root);
	case STORE_IMPORT_ALPACAEVAL: return parse_alpacaeval(p, x, root);
	case STORE_IMPORT_KTO: return parse_kto(p, x, root);
	default: return imp_fail(p, "not a format of judgments: %s", store_import_format_name(fmt));
	}
}

/* A rating: a number, or a string holding one ("N/A" and other text: none). */
static int number_of(const cJSON *v, double *out)
{
	char *end;
	if (cJSON_IsNumber(v)) {
		*out = v->valuedouble;
		return isfinite(*out);
	}
	if (cJSON_IsString(v)) {
		*out = strtod(v->valuestring, &end);
		return end != v->valuestring && !*end && isfinite(*out);
	}
	return 0;
}

/* One aspect of "annotations": {"Rating": r, ...}, a bare rating, or a list
 * of those (their mean). Returns whether there was a rating. */
static int aspect_rating(const cJSON *v, double *out)
{
	double sum = 0, r;
	int n = 0, list = cJSON_IsArray(v);
	for (const cJSON *one = list ? v->child : v; one; one = list ? one->next : NULL) {
		const cJSON *x = one;
		if (cJSON_IsObject(one) && !(x = get(one, "Rating")))
			x = get(one, "rating");
		if (x && number_of(x, &r)) {
			sum += r;
			n++;
		}
	}
	if (n)
		*out = sum / n;
	return n > 0;
}

int imp_uf_ratings(store_import_parser *p, imp_extra *x, const cJSON *c, int i)
{
	static const char *const keys[2] = {"annotations", "ratings"};
	static const struct {
		const char *name;
		double hi;
	} scores[2] = {{"fine-grained_score", 5}, {"overall_score", 10}};
	double r;
	for (int k = 0; k < 2; k++) {
		const cJSON *a = get(c, keys[k]), *v;
		if (!cJSON_IsObject(a))
			continue; /* a list has no aspect names (its mean still ranks the pairs) */
		cJSON_ArrayForEach(v, a) {
			if (!aspect_rating(v, &r))
				continue;
			if (!(r >= 1 && r <= 5))
				return imp_fail(p, "field \"completions[%d].%s.%s\": rating %g is outside 1..5", i,
						keys[k], v->string, r);
			add_rating(x, i, v->string, r, 1, 5);
		}
	}
	for (int k = 0; k < 2; k++) {
		const cJSON *v = get(c, scores[k].name);
		if (!present(v) || !number_of(v, &r))
			continue;
		if (!(r >= 1 && r <= scores[k].hi))
			return imp_fail(p, "field \"completions[%d].%s\": %g is outside 1..%g", i, scores[k].name, r,
					scores[k].hi);
		add_rating(x, i, scores[k].name, r, 1, scores[k].hi);
	}
	return STORE_OK;
}

void imp_extra_finish(imp_extra *x, const cJSON *root, store_record *rec)
{
	if (!x->annotator) {
		const cJSON *a = get(root, "annotator"), *j = get(root, "judge");
		if (cJSON_IsString(a) && *a->valuestring) {
			x->annotator = a->valuestring;
			x->kind = NULL; /* the importer's --annotator-kind, or human */
		} else if (cJSON_IsString(j) && *j->valuestring) {
			x->annotator = j->valuestring;
			x->kind = "judge";
		}
	}
	rec->annotator = x->annotator;
	rec->annotator_kind = x->kind;
	rec->ratings = x->ratings;
	rec->nratings = x->nratings;
	rec->feedback = x->has_fb ? &x->fb : NULL;
	rec->nfeedback = x->has_fb ? 1 : 0;
}

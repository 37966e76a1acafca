/* judge_template.c: judging prompt templates with {{placeholders}}. */
#include "config.h"
#include "judge/judge.h"
#include "judge/judge_modes.h"
#include "util/sha256.h"
#include "util/xmalloc.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum seg_kind { SEG_TEXT, SEG_PROMPT, SEG_A, SEG_B, SEG_REF, SEG_VERDICT, SEG_ONE, SEG_LIST };

typedef struct seg {
	enum seg_kind kind;
	size_t off, len; /* SEG_TEXT: slice of the template text */
} seg;

struct judge_template {
	char *text;
	seg *segs;
	size_t nsegs;
	int uses_ref;
	int mode;     /* judge_mode */
	char *system; /* the {{#system}} section, or NULL */
	size_t sys_lo, sys_hi; /* its lines in text (not rendered); equal: none */
	char hash[65];
};

static const struct {
	const char *name;
	enum seg_kind kind;
} placeholders[] = {
	{"prompt", SEG_PROMPT},         {"response_a", SEG_A},
	{"response_b", SEG_B},          {"reference", SEG_REF},
	{"verdict_format", SEG_VERDICT},
	{"response", SEG_ONE},          {"responses", SEG_LIST},
};

static void add_seg(judge_template *t, enum seg_kind k, size_t off, size_t len)
{
	if (k == SEG_TEXT && len == 0)
		return;
	t->segs = xreallocarray(t->segs, t->nsegs + 1, sizeof *t->segs);
	t->segs[t->nsegs].kind = k;
	t->segs[t->nsegs].off = off;
	t->segs[t->nsegs].len = len;
	t->nsegs++;
}

/* A text segment of t->text[lo..hi) without the system section. */
static void add_text(judge_template *t, size_t lo, size_t hi)
{
	if (t->sys_hi > t->sys_lo && lo <= t->sys_lo && t->sys_hi <= hi) {
		add_seg(t, SEG_TEXT, lo, t->sys_lo - lo);
		lo = t->sys_hi;
	}
	add_seg(t, SEG_TEXT, lo, hi - lo);
}

static long line_of(const char *s, size_t off)
{
	long line = 1;
	for (size_t i = 0; i < off; i++)
		line += s[i] == '\n';
	return line;
}

/* Nonzero when the line at s (up to '\n' or the end) is mark alone. */
static int line_is(const char *s, const char *mark)
{
	size_t ml = strlen(mark);
	return !strncmp(s, mark, ml) && (s[ml] == '\n' || s[ml] == '\0' || (s[ml] == '\r' && s[ml + 1] == '\n'));
}

/* t->text: text; its "{{#system}}" ... "{{/system}}" lines (t->sys_lo to
 * t->sys_hi, left out of the rendering) hold t->system. Returns 0, or -1
 * with a message. */
static int split_system(judge_template *t, const char *text, const char *name, char *err, size_t errsz)
{
	const char *open = NULL, *close = NULL;
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (!open && line_is(l, "{{#system}}"))
			open = l;
		else if (open && line_is(l, "{{/system}}")) {
			close = l;
			break;
		}
	}
	t->text = xstrdup(text);
	if (!open)
		return 0;
	if (!close) {
		snprintf(err, errsz, "%s:%ld: \"{{#system}}\" without a \"{{/system}}\" line", name,
			 line_of(text, (size_t)(open - text)));
		return -1;
	}
	const char *body = strchr(open, '\n') + 1, *after = strchr(close, '\n');
	after = after ? after + 1 : close + strlen(close);
	size_t bl = (size_t)(close - body);
	while (bl > 0 && (body[bl - 1] == '\n' || body[bl - 1] == '\r'))
		bl--;
	t->system = xstrndup(body, bl);
	if (strstr(t->system, "{{")) {
		snprintf(err, errsz, "%s:%ld: the system section takes no placeholders", name,
			 line_of(text, (size_t)(open - text)) + 1);
		return -1;
	}
	t->sys_lo = (size_t)(open - text);
	t->sys_hi = (size_t)(after - text);
	return 0;
}

judge_template *judge_template_parse(const char *text, const char *name, char *err, size_t errsz)
{
	judge_template *t = xcalloc(1, sizeof *t);
	int have_a = 0, have_b = 0, have_one = 0, have_list = 0;
	size_t n = strlen(text), pos = 0, lit = 0;

	if (!name)
		name = "template";
	util_sha256_hex(text, n, t->hash);
	if (split_system(t, text, name, err, errsz))
		goto fail;
	n = strlen(t->text);
	while (pos < n) {
		const char *o = strstr(t->text + pos, "{{");
		if (!o)
			break;
		size_t at = (size_t)(o - t->text);
		if (t->sys_hi > t->sys_lo && at >= t->sys_lo && at < t->sys_hi) {
			pos = t->sys_hi; /* the system section: no placeholders there */
			continue;
		}
		const char *c = strstr(o + 2, "}}");
		if (!c) {
			snprintf(err, errsz, "%s:%ld: \"{{\" without a closing \"}}\"", name,
				 line_of(t->text, at));
			goto fail;
		}
		size_t nl = (size_t)(c - o - 2);
		int found = -1;
		for (size_t i = 0; i < sizeof placeholders / sizeof *placeholders; i++)
			if (strlen(placeholders[i].name) == nl && !memcmp(o + 2, placeholders[i].name, nl))
				found = (int)i;
		if (found < 0) {
			snprintf(err, errsz,
				 "%s:%ld: unknown placeholder \"{{%.*s}}\" (expected prompt, response_a, "
				 "response_b, reference or verdict_format)",
				 name, line_of(t->text, at), (int)(nl > 40 ? 40 : nl), o + 2);
			goto fail;
		}
		add_text(t, lit, at);
		enum seg_kind k = placeholders[found].kind;
		add_seg(t, k, 0, 0);
		have_a |= k == SEG_A;
		have_b |= k == SEG_B;
		have_one |= k == SEG_ONE;
		have_list |= k == SEG_LIST;
		t->uses_ref |= k == SEG_REF;
		pos = lit = (size_t)(c - t->text) + 2;
	}
	add_text(t, lit, n);
	t->mode = have_one ? JUDGE_MODE_RATING : have_list ? JUDGE_MODE_RANK : JUDGE_MODE_PAIRWISE;
	if ((have_a || have_b) + have_one + have_list != 1 || have_a != have_b) {
		snprintf(err, errsz,
			 "%s: the template must use both {{response_a}} and {{response_b}} (pairwise), "
			 "or {{response}} (rating), or {{responses}} (rank), and no other of them",
			 name);
		goto fail;
	}
	return t;
fail:
	judge_template_free(t);
	return NULL;
}

judge_template *judge_template_load(const char *path, char *err, size_t errsz)
{
	FILE *f = fopen(path, "rb");
	util_buf b = UTIL_BUF_INIT;
	char chunk[4096];
	size_t r;
	judge_template *t = NULL;

	if (!f) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return NULL;
	}
	while ((r = fread(chunk, 1, sizeof chunk, f)) > 0)
		util_buf_add(&b, chunk, r);
	if (ferror(f)) {
		snprintf(err, errsz, "%s: read error", path);
	} else if (memchr(util_buf_str(&b), '\0', b.len)) {
		snprintf(err, errsz, "%s: the template contains a NUL byte", path);
	} else {
		t = judge_template_parse(util_buf_str(&b), path, err, errsz);
	}
	fclose(f);
	util_buf_free(&b);
	return t;
}

void judge_template_free(judge_template *t)
{
	if (!t)
		return;
	free(t->text);
	free(t->system);
	free(t->segs);
	free(t);
}

const char *judge_template_hash(const judge_template *t)
{
	return t->hash;
}

int judge_template_uses_reference(const judge_template *t)
{
	return t->uses_ref;
}

int judge_template_mode(const judge_template *t)
{
	return t->mode;
}

const char *judge_template_system(const judge_template *t)
{
	return t->system;
}

static void embed(util_buf *out, const char *s, const char *nonce)
{
	util_buf_addf(out, "<<<BEGIN %s>>>\n", nonce ? nonce : "");
	util_buf_adds(out, s ? s : "");
	util_buf_addf(out, "\n<<<END %s>>>", nonce ? nonce : "");
}

/* {{verdict_format}} of the rating and rank modes. */
static void mode_format(const judge_fields *f, util_buf *out)
{
	if (f->mode == JUDGE_MODE_RANK) {
		util_buf_addf(out, "End with your ranking alone on the last line: the letters A to %c, each "
				   "once, best first, joined by \">\" and wrapped in double square brackets, "
				   "for example [[%s]]. Join two letters with \"=\" only when you cannot tell "
				   "them apart, as in [[%s]].",
			      (char)('A' + (f->nresponses ? f->nresponses - 1 : 0)),
			      f->nresponses > 2 ? "B > C > A" : "B > A", f->nresponses > 2 ? "A = C > B" : "A = B");
	} else if (!f->naspects) {
		util_buf_adds(out, "End with your score alone on the last line: a whole number from 1 (useless) "
				   "to 10 (excellent) in double square brackets, for example [[7]].");
	} else {
		util_buf_adds(out, "End with one line per aspect, each giving a whole number from 1 (very poor) "
				   "to 5 (excellent) in double square brackets, in this order:");
		for (size_t k = 0; k < f->naspects; k++)
			util_buf_addf(out, "\n[[%s: N]]", f->aspects[k]);
	}
}

void judge_template_render(const judge_template *t, const judge_fields *f, util_buf *out)
{
	for (size_t i = 0; i < t->nsegs; i++) {
		const seg *s = &t->segs[i];
		switch (s->kind) {
		case SEG_TEXT: util_buf_add(out, t->text + s->off, s->len); break;
		case SEG_PROMPT: embed(out, f->prompt, f->nonce); break;
		case SEG_A: embed(out, f->response_a, f->nonce); break;
		case SEG_B: embed(out, f->response_b, f->nonce); break;
		case SEG_REF: embed(out, f->reference, f->nonce); break;
		case SEG_ONE: embed(out, f->response_a, f->nonce); break;
		case SEG_LIST:
			for (size_t k = 0; k < f->nresponses && k < JUDGE_RANK_MAX; k++) {
				util_buf_addf(out, "%sResponse %c:\n", k ? "\n\n" : "", (char)('A' + k));
				embed(out, f->responses[k], f->nonce);
			}
			break;
		case SEG_VERDICT:
			if (f->mode != JUDGE_MODE_PAIRWISE)
				mode_format(f, out);
			else if (f->json_verdict)
				util_buf_adds(out,
					      "Reply with a JSON object only: {\"reasoning\": \"<your short "
					      "explanation>\", \"verdict\": \"A\"}, where verdict is \"A\" "
					      "when Response A is better, \"B\" when Response B is better, and "
					      "\"C\" when neither is better.");
			else
				util_buf_adds(out,
					      "Finish with your decision alone on the last line, written as "
					      "exactly one of: [[A]] (Response A is better), [[B]] (Response B "
					      "is better) or [[C]] (neither is better).");
			break;
		}
	}
}

void judge_nonce(uint64_t seed, const char *const *texts, size_t n, char out[17])
{
	for (uint32_t round = 0;; round++) {
		util_sha256 c;
		unsigned char d[32], sb[8];
		char hex[65];
		util_sha256_init(&c);
		util_sha256_update(&c, "dpo-judge nonce", 16);
		for (int i = 0; i < 8; i++)
			sb[i] = (unsigned char)(seed >> (8 * i));
		util_sha256_update(&c, sb, 8);
		unsigned char rb[4] = {(unsigned char)round, (unsigned char)(round >> 8),
				       (unsigned char)(round >> 16), (unsigned char)(round >> 24)};
		util_sha256_update(&c, rb, 4);
		for (size_t i = 0; i < n; i++) {
			if (!texts[i])
				continue;
			util_sha256_update(&c, texts[i], strlen(texts[i]) + 1);
		}
		util_sha256_final(&c, d);
		for (int i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", d[i]);
		memcpy(out, hex, 16);
		out[16] = '\0';
		int clash = 0;
		for (size_t i = 0; i < n && !clash; i++)
			clash = texts[i] && strstr(texts[i], out);
		if (!clash)
			return;
	}
}

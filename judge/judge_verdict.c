/* judge_verdict.c: finding the judge's final verdict in its answer. */
#include "config.h"
#include "judge/judge.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "util/xmalloc.h"
#include "judge/judge_modes.h"

/* Parse "[[ X ]]" starting at text[i] (text[i] == '['): X is A, B, C or
 * "tie" (any case, blanks around it allowed). Returns the verdict
 * character or 0, and the length of the token in *len. */
static int token_at(const char *t, size_t n, size_t i, size_t *len)
{
	size_t j = i;
	int c;
	if (j + 1 >= n || t[j] != '[' || t[j + 1] != '[')
		return 0;
	j += 2;
	while (j < n && (t[j] == ' ' || t[j] == '\t'))
		j++;
	if (j >= n)
		return 0;
	if (j + 3 <= n && !strncasecmp(t + j, "tie", 3)) {
		c = 'C';
		j += 3;
	} else {
		c = toupper((unsigned char)t[j]);
		if (c != 'A' && c != 'B' && c != 'C')
			return 0;
		j++;
	}
	while (j < n && (t[j] == ' ' || t[j] == '\t'))
		j++;
	if (j + 1 >= n || t[j] != ']' || t[j + 1] != ']')
		return 0;
	*len = j + 2 - i;
	return c;
}

/* token_at as a judge_token_fn. */
static int verdict_token(const char *t, size_t n, size_t i, size_t *len, void *ud)
{
	(void)ud;
	return token_at(t, n, i, len);
}

/* Mask values: what a byte of the answer is part of. */
enum { M_TEXT = 0, M_QUOTED = 1, M_ECHO = 2 };

/* Mark the regions between "BEGIN <nonce>" and "END <nonce>" (or the end
 * of the text) as M_ECHO. */
static void mask_echoes(const char *text, size_t n, const char *nonce, unsigned char *m)
{
	char begin[40], end[40];
	size_t bl, el, pos = 0;
	if (!nonce || !*nonce || strlen(nonce) >= 30)
		return;
	bl = (size_t)snprintf(begin, sizeof begin, "BEGIN %s", nonce);
	el = (size_t)snprintf(end, sizeof end, "END %s", nonce);
	while (pos < n) {
		const char *b = memmem(text + pos, n - pos, begin, bl);
		if (!b)
			break;
		size_t lo = (size_t)(b - text);
		const char *e = memmem(text + lo + bl, n - lo - bl, end, el);
		size_t hi = e ? (size_t)(e - text) + el : n;
		memset(m + lo, M_ECHO, hi - lo);
		pos = hi;
	}
}

/* The end of the line starting at i (the index of its '\n', or n). */
static size_t line_end(const char *t, size_t n, size_t i)
{
	const char *nl = memchr(t + i, '\n', n - i);
	return nl ? (size_t)(nl - t) : n;
}

/* Nonzero when t[lo..hi) holds only blanks. */
static int blank(const char *t, size_t lo, size_t hi)
{
	for (size_t i = lo; i < hi; i++)
		if (!isspace((unsigned char)t[i]))
			return 0;
	return 1;
}

/* The closing delimiter of a quote opened at t[i] (of length *ol), or NULL
 * when t[i] opens none: '"', '`' or U+201C (closed by U+201D). */
static const char *quote_close(const char *t, size_t n, size_t i, size_t *ol)
{
	if (t[i] == '"') {
		*ol = 1;
		return "\"";
	}
	if (t[i] == '`') {
		*ol = 1;
		return "`";
	}
	if (i + 3 <= n && !memcmp(t + i, "\xe2\x80\x9c", 3)) {
		*ol = 3;
		return "\xe2\x80\x9d";
	}
	return NULL;
}

/* The end (exclusive) of a single-quoted span that opens at t[i] on the
 * line t[ls..le), or 0. A straight or curly single quote opens only at the
 * start of the line or after a blank or '(' (so the apostrophes of "B's"
 * and "don't" open nothing) and closes at the next one on the line that
 * no letter or digit follows. */
static size_t single_quote_end(const char *t, size_t ls, size_t le, size_t i)
{
	size_t ol;
	if (t[i] == '\'')
		ol = 1;
	else if (i + 3 <= le && !memcmp(t + i, "\xe2\x80\x98", 3))
		ol = 3;
	else
		return 0;
	if (i > ls && !isspace((unsigned char)t[i - 1]) && t[i - 1] != '(')
		return 0;
	for (size_t k = i + ol; k < le; k++) {
		size_t cl = t[k] == '\'' ? 1 : k + 3 <= le && !memcmp(t + k, "\xe2\x80\x99", 3) ? 3 : 0;
		if (cl && k > i + ol && (k + cl >= le || !isalnum((unsigned char)t[k + cl])))
			return k + cl;
	}
	return 0;
}

/* Mark quoted material as M_QUOTED: fenced code blocks (``` or ~~~
 * lines), blockquote lines (starting with '>'), text between a pair of
 * double quotes or backticks within one paragraph (an opening quote with
 * no closing one before the next blank line quotes nothing), and single
 * quotes within one line (single_quote_end). Echoed regions stay as they
 * are. */
static void mask_quotes(const char *t, size_t n, unsigned char *m)
{
	int fence = 0;
	size_t para_end = 0;
	for (size_t ls = 0; ls < n;) {
		size_t le = line_end(t, n, ls), s = ls;
		while (s < le && (t[s] == ' ' || t[s] == '\t'))
			s++;
		int is_fence = le - s >= 3 && (!memcmp(t + s, "```", 3) || !memcmp(t + s, "~~~", 3));
		if (fence || is_fence || (s < le && t[s] == '>')) {
			for (size_t i = ls; i <= le && i < n; i++) /* the newline too */
				if (m[i] == M_TEXT)
					m[i] = M_QUOTED;
			if (is_fence)
				fence = !fence;
			ls = le + 1;
			continue;
		}
		/* quotes pair up within the paragraph that holds this line */
		if (ls >= para_end) {
			size_t p = ls;
			do {
				p = line_end(t, n, p);
				if (p >= n)
					break;
				p++;
			} while (p < n && !blank(t, p, line_end(t, n, p)));
			para_end = p > n ? n : p;
		}
		for (size_t i = ls; i < le; i++) {
			size_t ol;
			size_t se = m[i] == M_TEXT ? single_quote_end(t, ls, le, i) : 0;
			if (se) {
				for (size_t k = i; k < se; k++)
					if (m[k] == M_TEXT)
						m[k] = M_QUOTED;
				i = se - 1;
				continue;
			}
			const char *cl = m[i] == M_TEXT ? quote_close(t, n, i, &ol) : NULL;
			if (!cl)
				continue;
			size_t cll = strlen(cl);
			const char *c = i + ol < para_end ? memmem(t + i + ol, para_end - i - ol, cl, cll) : NULL;
			if (!c)
				continue;
			size_t hi = (size_t)(c - t) + cll;
			for (size_t k = i; k < hi; k++)
				if (m[k] == M_TEXT)
					m[k] = M_QUOTED;
			i = hi - 1;
			if (hi > le)
				le = line_end(t, n, hi - 1 < n ? hi - 1 : n); /* the quote ran on: go on after it */
		}
		ls = le + 1;
	}
}

/* The verdict of the last non-empty line outside echoed regions when the
 * line is a verdict token alone, maybe decorated (bold, italics,
 * backticks, quotes, a final period) but not inside a fence, a blockquote
 * or a quote opened on an earlier line; else 0. */
static int last_line_verdict(const char *t, size_t n, const unsigned char *m, judge_token_fn fn, void *ud)
{
	size_t hi = n;
	while (hi > 0) {
		size_t lo = hi;
		while (lo > 0 && t[lo - 1] != '\n')
			lo--;
		int empty = 1;
		for (size_t i = lo; i < hi && empty; i++)
			if (m[i] != M_ECHO && !isspace((unsigned char)t[i]))
				empty = 0;
		if (!empty) {
			/* a quote that began on an earlier line (a quoted bait
			 * running onto the last line) is not the judge's own */
			int quoted_before = lo > 0 && m[lo - 1] == M_QUOTED;
			while (lo < hi && (isspace((unsigned char)t[lo]) || strchr("*_`\"", t[lo])))
				lo++;
			while (hi > lo && (isspace((unsigned char)t[hi - 1]) || strchr("*_`\".", t[hi - 1])))
				hi--;
			size_t len;
			if (lo < hi && m[lo] != M_ECHO) {
				int c = fn(t, n, lo, &len, ud);
				if (c && lo + len == hi && !(quoted_before && m[lo] == M_QUOTED))
					return c;
			}
			return 0;
		}
		if (lo == 0)
			break;
		hi = lo - 1;
	}
	return 0;
}

int judge_verdict_find(const char *text, size_t n, const char *nonce)
{
	return judge_token_find(text, n, nonce, verdict_token, NULL);
}

int judge_token_find(const char *text, size_t n, const char *nonce, judge_token_fn fn, void *ud)
{
	int found = 0;
	if (!text || !n)
		return 0;
	unsigned char *m = xcalloc(n, 1);
	mask_echoes(text, n, nonce, m);
	mask_quotes(text, n, m);
	found = last_line_verdict(text, n, m, fn, ud);
	for (size_t i = n; !found && i > 0;) {
		i--;
		size_t len;
		if (text[i] != '[' || m[i] != M_TEXT)
			continue;
		int c = fn(text, n, i, &len, ud);
		if (c && !memchr(m + i, M_QUOTED, len) && !memchr(m + i, M_ECHO, len))
			found = c;
	}
	free(m);
	return found;
}

int judge_verdict_word(const char *s, size_t n)
{
	size_t lo = 0, hi = n;
	if (!s)
		return 0;
	while (lo < hi && isspace((unsigned char)s[lo]))
		lo++;
	while (hi > lo && isspace((unsigned char)s[hi - 1]))
		hi--;
	if (hi - lo >= 4 && s[lo] == '[' && s[lo + 1] == '[' && s[hi - 1] == ']' && s[hi - 2] == ']') {
		lo += 2;
		hi -= 2;
		while (lo < hi && isspace((unsigned char)s[lo]))
			lo++;
		while (hi > lo && isspace((unsigned char)s[hi - 1]))
			hi--;
	}
	if (hi - lo == 1) {
		int c = toupper((unsigned char)s[lo]);
		return c == 'A' || c == 'B' || c == 'C' ? c : 0;
	}
	if (hi - lo == 3 && !strncasecmp(s + lo, "tie", 3))
		return 'C';
	return 0;
}

int judge_verdict_json(const char *s, size_t n)
{
	int v = 0;
	if (!s)
		return 0;
	cJSON *j = cJSON_ParseWithLength(s, n);
	if (!j)
		return 0;
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "verdict");
	if (cJSON_IsObject(j) && cJSON_IsString(m) && m->valuestring)
		v = judge_verdict_word(m->valuestring, strlen(m->valuestring));
	cJSON_Delete(j);
	return v;
}

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

/* A skipped span [lo, hi) of the text. */
typedef struct span {
	size_t lo, hi;
} span;

/* Parse "[[ X ]]" starting at text[i] (text[i] == '['); returns the
 * verdict character or 0, and the length of the token in *len. */
static int token_at(const char *t, size_t n, size_t i, size_t *len)
{
	size_t j = i;
	if (j + 1 >= n || t[j] != '[' || t[j + 1] != '[')
		return 0;
	j += 2;
	while (j < n && (t[j] == ' ' || t[j] == '\t'))
		j++;
	if (j >= n)
		return 0;
	int c = toupper((unsigned char)t[j]);
	if (c != 'A' && c != 'B' && c != 'C')
		return 0;
	j++;
	while (j < n && (t[j] == ' ' || t[j] == '\t'))
		j++;
	if (j + 1 >= n || t[j] != ']' || t[j + 1] != ']')
		return 0;
	*len = j + 2 - i;
	return c;
}

int judge_verdict_find(const char *text, size_t n, const char *nonce)
{
	span *sp = NULL;
	size_t nsp = 0, cap = 0;
	char begin[40], end[40];
	size_t bl = 0, el = 0;
	int found = 0;

	if (!text)
		return 0;
	if (nonce && *nonce && strlen(nonce) < 30) {
		bl = (size_t)snprintf(begin, sizeof begin, "BEGIN %s", nonce);
		el = (size_t)snprintf(end, sizeof end, "END %s", nonce);
		size_t pos = 0;
		while (pos < n) {
			const char *b = memmem(text + pos, n - pos, begin, bl);
			if (!b)
				break;
			size_t lo = (size_t)(b - text);
			const char *e = memmem(text + lo + bl, n - lo - bl, end, el);
			size_t hi = e ? (size_t)(e - text) + el : n;
			if (nsp == cap) {
				cap = cap ? cap * 2 : 8;
				sp = xreallocarray(sp, cap, sizeof *sp);
			}
			sp[nsp].lo = lo;
			sp[nsp].hi = hi;
			nsp++;
			pos = hi;
		}
	}
	/* Scan backwards; skip spans from the last one down. */
	size_t k = nsp;
	size_t i = n;
	while (i > 0) {
		i--;
		while (k > 0 && sp[k - 1].lo > i)
			k--;
		if (k > 0 && i >= sp[k - 1].lo && i < sp[k - 1].hi) {
			if (sp[k - 1].lo == 0)
				break;
			i = sp[k - 1].lo; /* loop decrements to just before the span */
			continue;
		}
		if (text[i] != '[')
			continue;
		size_t len;
		int c = token_at(text, n, i, &len);
		/* the token must lie wholly outside any span */
		if (c && !(k < nsp && i + len > sp[k].lo)) {
			found = c;
			break;
		}
	}
	free(sp);
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

/* judge_modes.c: the answers of --mode rating and --mode rank (scores and
 * rankings, found by the verdict rule), the order a ranking request shows,
 * and the mode's part of the judge's identity. See judge_modes.h. */
#include "config.h"
#include "judge/judge_modes.h"
#include "util/buf.h"
#include "util/sha256.h"
#include "util/xmalloc.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const mode_names[] = {"pairwise", "rating", "rank"};

const char *judge_mode_name(judge_mode m)
{
	return (unsigned)m < 3 ? mode_names[m] : "?";
}

int judge_mode_parse(const char *name, judge_mode *m)
{
	for (int i = 0; i < 3; i++)
		if (name && !strcmp(name, mode_names[i])) {
			*m = (judge_mode)i;
			return 0;
		}
	return JUDGE_EINVAL;
}

static size_t skip_blanks(const char *t, size_t n, size_t j)
{
	while (j < n && (t[j] == ' ' || t[j] == '\t'))
		j++;
	return j;
}

/* A whole number of at most 3 digits at t[j..): its value (or -1) and the
 * index after it in *end. */
static int number_at(const char *t, size_t n, size_t j, size_t *end)
{
	int v = 0, d = 0;
	while (j < n && isdigit((unsigned char)t[j]) && d < 4) {
		v = v * 10 + (t[j] - '0');
		j++;
		d++;
	}
	*end = j;
	return d >= 1 && d <= 3 ? v : -1;
}

typedef struct rating_spec {
	const char *aspect;
	int lo, hi;
} rating_spec;

/* "[[ N ]]", "[[ N/HI ]]" or, with an aspect, "[[ ASPECT: N ]]". */
static int rating_token(const char *t, size_t n, size_t i, size_t *len, void *ud)
{
	const rating_spec *s = ud;
	size_t j = i, e;
	if (j + 1 >= n || t[j] != '[' || t[j + 1] != '[')
		return 0;
	j = skip_blanks(t, n, j + 2);
	if (s->aspect) {
		size_t al = strlen(s->aspect);
		if (j + al > n || strncasecmp(t + j, s->aspect, al))
			return 0;
		j = skip_blanks(t, n, j + al);
		if (j >= n || (t[j] != ':' && t[j] != '='))
			return 0;
		j = skip_blanks(t, n, j + 1);
	}
	int v = number_at(t, n, j, &e);
	if (v < s->lo || v > s->hi)
		return 0;
	j = skip_blanks(t, n, e);
	if (j < n && t[j] == '/') {
		int m = number_at(t, n, skip_blanks(t, n, j + 1), &e);
		if (m != s->hi)
			return 0;
		j = skip_blanks(t, n, e);
	}
	if (j + 1 >= n || t[j] != ']' || t[j + 1] != ']')
		return 0;
	*len = j + 2 - i;
	return v;
}

int judge_rating_find(const char *text, size_t n, const char *nonce, const char *aspect, int lo, int hi)
{
	rating_spec s = {aspect && *aspect ? aspect : NULL, lo < 1 ? 1 : lo, hi};
	if (s.hi < s.lo)
		return 0;
	return judge_token_find(text, n, nonce, rating_token, &s);
}

typedef struct rank_spec {
	int k;
	int level[JUDGE_RANK_MAX];
} rank_spec;

/* "[[ X op Y op ... ]]" with op '>' or '=' and each of k letters once. */
static int rank_token(const char *t, size_t n, size_t i, size_t *len, void *ud)
{
	rank_spec *s = ud;
	int lv[JUDGE_RANK_MAX], seen = 0, level = 0;
	size_t j = i;
	for (int x = 0; x < s->k; x++)
		lv[x] = -1;
	if (j + 1 >= n || t[j] != '[' || t[j + 1] != '[')
		return 0;
	j += 2;
	for (;;) {
		j = skip_blanks(t, n, j);
		if (j >= n || !isalpha((unsigned char)t[j]))
			return 0;
		int x = toupper((unsigned char)t[j]) - 'A';
		if (x < 0 || x >= s->k || lv[x] >= 0)
			return 0;
		lv[x] = level;
		seen++;
		j = skip_blanks(t, n, j + 1);
		if (j < n && (t[j] == '>' || t[j] == '=')) {
			level += t[j] == '>';
			j++;
			continue;
		}
		break;
	}
	if (seen != s->k || j + 1 >= n || t[j] != ']' || t[j + 1] != ']')
		return 0;
	/* levels dense from 0: ties share one, the next group comes after */
	memcpy(s->level, lv, sizeof(int) * (size_t)s->k);
	*len = j + 2 - i;
	return 1;
}

int judge_ranking_find(const char *text, size_t n, const char *nonce, int k, int level[])
{
	rank_spec s;
	if (k < 2 || k > JUDGE_RANK_MAX)
		return 0;
	memset(&s, 0, sizeof s);
	s.k = k;
	if (!judge_token_find(text, n, nonce, rank_token, &s))
		return 0;
	memcpy(level, s.level, sizeof(int) * (size_t)k);
	return 1;
}

char *judge_ranking_text(const int level[], int k)
{
	util_buf b = UTIL_BUF_INIT;
	int maxl = 0;
	for (int x = 0; x < k; x++)
		maxl = level[x] > maxl ? level[x] : maxl;
	for (int l = 0; l <= maxl; l++) {
		int first = 1;
		for (int x = 0; x < k; x++) {
			if (level[x] != l)
				continue;
			if (b.len)
				util_buf_adds(&b, first ? " > " : " = ");
			util_buf_addc(&b, (char)('A' + x));
			first = 0;
		}
	}
	char *s = util_buf_detach(&b);
	util_buf_free(&b);
	return s ? s : xstrdup("");
}

void judge_rank_order(uint64_t seed, int64_t prompt_id, int k, int order[])
{
	unsigned char d[32];
	char in[64];
	int len = snprintf(in, sizeof in, "dpo-judge rank %llu %lld", (unsigned long long)seed,
			   (long long)prompt_id);
	util_sha256 c;
	util_sha256_init(&c);
	util_sha256_update(&c, in, (size_t)len);
	util_sha256_final(&c, d);
	uint64_t x = 0;
	for (int i = 0; i < 8; i++)
		x = x << 8 | d[i];
	for (int i = 0; i < k; i++)
		order[i] = i;
	/* Fisher-Yates driven by splitmix64 from the hash */
	for (int i = k - 1; i > 0; i--) {
		x += 0x9e3779b97f4a7c15ULL;
		uint64_t z = x;
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		z ^= z >> 31;
		int j = (int)(z % (uint64_t)(i + 1));
		int tmp = order[i];
		order[i] = order[j];
		order[j] = tmp;
	}
}

char *judge_mode_identity(char *params, judge_mode m, const char *const *aspects, size_t naspects)
{
	if (m == JUDGE_MODE_PAIRWISE || !params)
		return params;
	size_t n = strlen(params);
	util_buf b = UTIL_BUF_INIT;
	if (n && params[n - 1] == '}')
		n--;
	util_buf_add(&b, params, n);
	util_buf_addf(&b, ",\"mode\":\"%s\"", judge_mode_name(m));
	if (m == JUDGE_MODE_RATING && naspects) {
		util_buf_adds(&b, ",\"aspects\":[");
		for (size_t i = 0; i < naspects; i++) {
			if (i)
				util_buf_addc(&b, ',');
			util_buf_add_json_string(&b, aspects[i], strlen(aspects[i]));
		}
		util_buf_addc(&b, ']');
	}
	util_buf_addc(&b, '}');
	free(params);
	char *s = util_buf_detach(&b);
	util_buf_free(&b);
	return s;
}

int judge_aspects_parse(const char *list, char **out, char *err, size_t errsz)
{
	int n = 0;
	const char *p = list;
	for (;;) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		int ok = l > 0 && l <= 40;
		for (size_t i = 0; ok && i < l; i++)
			ok = isalnum((unsigned char)p[i]) || p[i] == '_' || p[i] == '-';
		if (!ok) {
			snprintf(err, errsz, "aspect %d of \"%s\": expected a name of letters, digits, '_' or '-'",
				 n + 1, list);
			goto fail;
		}
		for (int i = 0; i < n; i++)
			if (strlen(out[i]) == l && !strncasecmp(out[i], p, l)) {
				snprintf(err, errsz, "aspect \"%.*s\" is listed twice", (int)l, p);
				goto fail;
			}
		if (n == JUDGE_ASPECTS_MAX) {
			snprintf(err, errsz, "at most %d aspects", JUDGE_ASPECTS_MAX);
			goto fail;
		}
		out[n++] = xstrndup(p, l);
		if (!e)
			return n;
		p = e + 1;
	}
fail:
	judge_aspects_free(out, n);
	return -1;
}

void judge_aspects_free(char **names, int n)
{
	for (int i = 0; i < n; i++)
		free(names[i]);
}

/* cmdline.c: quoting and redacting a command line for the record. */
#include "util/cmdline.h"
#include <ctype.h>
#include <string.h>
#include <strings.h>

void util_shell_quote(const char *s, util_buf *out)
{
	static const char safe[] = "_@%+=:,./-";
	int plain = *s != '\0';
	for (const char *p = s; *p && plain; p++)
		plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			strchr(safe, *p);
	if (plain) {
		util_buf_adds(out, s);
		return;
	}
	util_buf_addc(out, '\'');
	for (const char *p = s; *p; p++) {
		if (*p == '\'')
			util_buf_adds(out, "'\\''");
		else
			util_buf_addc(out, *p);
	}
	util_buf_addc(out, '\'');
}

/* ---- names of secrets ---- */

static int word_is(const char *w, size_t n, const char *x)
{
	return n == strlen(x) && !strncasecmp(w, x, n);
}

static int word_ends(const char *w, size_t n, const char *x)
{
	size_t k = strlen(x);
	return n >= k && !strncasecmp(w + n - k, x, k);
}

/* Whether an option or variable name (n bytes, without the dashes) names
 * a secret: one of its words (split at - and _) is or ends with key,
 * token, secret, password or passwd, and its last word is not env, file or
 * path. */
static int secret_name(const char *name, size_t n)
{
	static const char *const secret[] = {"key", "token", "secret", "password", "passwd"};
	int found = 0;
	size_t i = 0;
	while (i < n) {
		size_t j = i;
		while (j < n && name[j] != '-' && name[j] != '_')
			j++;
		size_t wl = j - i;
		if (j == n && (word_is(name + i, wl, "env") || word_is(name + i, wl, "file") ||
			       word_is(name + i, wl, "path")))
			return 0;
		for (size_t k = 0; k < sizeof secret / sizeof secret[0]; k++)
			if (wl && word_ends(name + i, wl, secret[k]))
				found = 1;
		i = j + 1;
	}
	return found;
}

/* Whether c may be part of an option or variable name. */
static int name_char(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '_';
}

static int quote_char(char c)
{
	return c == '\'' || c == '"';
}

static int space_char(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* ---- redaction inside a text ---- */

/* Find the case-insensitive needle in s at or after from; NULL if absent. */
static const char *find_ci(const char *s, const char *needle)
{
	size_t n = strlen(needle);
	for (; *s; s++)
		if (!strncasecmp(s, needle, n))
			return s;
	return NULL;
}

/* Mask header values: "Authorization: Bearer X" and "x-api-key: X". */
static void redact_headers(const char *s, util_buf *out)
{
	static const char *const names[] = {"authorization:", "api-key:"};
	const char *p = s;
	for (;;) {
		const char *hit = NULL;
		size_t hl = 0;
		int auth = 0;
		for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
			const char *h = find_ci(p, names[k]);
			if (h && (!hit || h < hit)) {
				hit = h;
				hl = strlen(names[k]);
				auth = k == 0;
			}
		}
		if (!hit)
			break;
		/* the start of the header's name (x-api-key, proxy-authorization) */
		const char *nb = hit;
		while (nb > s && name_char(nb[-1]))
			nb--;
		char quote = nb > s && quote_char(nb[-1]) ? nb[-1] : 0;
		const char *v = hit + hl;
		while (*v == ' ' || *v == '\t')
			v++;
		const char *end = v;
		while (*end && *end != '\n' && *end != '\r' && (!quote || *end != quote))
			end++;
		if (auth) { /* keep the scheme: "Bearer ", "Basic " */
			const char *w = v;
			while (w < end && isalpha((unsigned char)*w))
				w++;
			if (w > v && w < end && *w == ' ' && w + 1 < end && !space_char(w[1]))
				v = w + 1;
		}
		util_buf_add(out, p, (size_t)(v - p));
		if (end > v)
			util_buf_adds(out, UTIL_REDACTED);
		p = end;
	}
	util_buf_adds(out, p);
}

/* Mask the passwords of URLs: scheme://user:password@host. */
static void redact_urls(const char *s, util_buf *out)
{
	const char *p = s, *q;
	while ((q = strstr(p, "://"))) {
		const char *a = q + 3, *end = a;
		while (*end && !strchr("/?#'\"", *end) && !space_char(*end))
			end++;
		const char *at = NULL;
		for (const char *x = a; x < end; x++)
			if (*x == '@')
				at = x;
		const char *colon = at ? memchr(a, ':', (size_t)(at - a)) : NULL;
		if (colon && at > colon + 1) {
			util_buf_add(out, p, (size_t)(colon + 1 - p));
			util_buf_adds(out, UTIL_REDACTED);
			p = at;
		} else {
			util_buf_add(out, p, (size_t)(end - p));
			p = end;
		}
	}
	util_buf_adds(out, p);
}

/* Mask, word by word (words split at white space, quotes around a word
 * set aside), "--secret-option VALUE", "--secret-option=VALUE" and
 * "SECRET_NAME=VALUE". */
static void redact_words(const char *s, util_buf *out)
{
	int pending = 0; /* the previous word was a secret option without a value */
	const char *p = s;
	while (*p) {
		if (space_char(*p)) {
			util_buf_addc(out, *p++);
			continue;
		}
		const char *w = p, *we = p;
		while (*we && !space_char(*we))
			we++;
		p = we;
		/* the word's core, without quotes around it */
		const char *c = w, *ce = we;
		while (c < ce && quote_char(*c))
			c++;
		while (ce > c && quote_char(ce[-1]))
			ce--;
		util_buf_add(out, w, (size_t)(c - w));
		const char *mask_from = NULL;
		if (pending && !(ce - c >= 2 && c[0] == '-' && c[1] == '-')) {
			mask_from = c;
			pending = 0;
		} else {
			pending = 0;
			const char *n = c;
			while (n < ce && *n == '-')
				n++;
			const char *ne = n;
			while (ne < ce && name_char(*ne))
				ne++;
			int dashed = n > c;
			if (ne > n && secret_name(n, (size_t)(ne - n))) {
				if (ne < ce && *ne == '=')
					mask_from = ne + 1;
				else if (dashed && ne == ce)
					pending = 1;
			}
		}
		if (mask_from && mask_from < ce) {
			util_buf_add(out, c, (size_t)(mask_from - c));
			util_buf_adds(out, UTIL_REDACTED);
		} else {
			util_buf_add(out, c, (size_t)(ce - c));
		}
		util_buf_add(out, ce, (size_t)(we - ce));
	}
}

/* Append text with every kind of secret above masked. */
static void redact_text(const char *s, util_buf *out)
{
	util_buf a = UTIL_BUF_INIT, b = UTIL_BUF_INIT;
	redact_headers(s, &a);
	redact_urls(util_buf_str(&a), &b);
	redact_words(util_buf_str(&b), out);
	util_buf_free(&a);
	util_buf_free(&b);
}

void util_cmdline_quote(int argc, char *const *argv, util_buf *out)
{
	util_buf arg = UTIL_BUF_INIT;
	int pending = 0; /* the previous argument was a secret option without a value */
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i] ? argv[i] : "";
		util_buf_reset(&arg);
		if (i == 0) {
			const char *slash = strrchr(a, '/');
			util_buf_adds(&arg, slash && slash[1] ? slash + 1 : a);
		} else {
			int option = a[0] == '-' && a[1] == '-';
			if (pending && !option) {
				util_buf_adds(&arg, *a ? UTIL_REDACTED : "");
				pending = 0;
			} else if (option) {
				pending = 0;
				const char *n = a + 2, *eq = strchr(n, '=');
				size_t nl = eq ? (size_t)(eq - n) : strlen(n);
				if (secret_name(n, nl)) {
					if (eq) {
						util_buf_add(&arg, a, (size_t)(eq + 1 - a));
						util_buf_adds(&arg, eq[1] ? UTIL_REDACTED : "");
					} else {
						util_buf_adds(&arg, a);
						pending = 1;
					}
				} else if (eq) {
					util_buf_add(&arg, a, (size_t)(eq + 1 - a));
					redact_text(eq + 1, &arg);
				} else {
					util_buf_adds(&arg, a);
				}
			} else {
				redact_text(a, &arg);
			}
		}
		if (i)
			util_buf_addc(out, ' ');
		util_shell_quote(util_buf_str(&arg), out);
	}
	util_buf_free(&arg);
}

/* buf.c: growable NUL-terminated byte buffer. */
#include "util/buf.h"
#include "util/xmalloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void util_buf_grow(util_buf *b, size_t n)
{
	if (b->len + n + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < b->len + n + 1)
		cap *= 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

void util_buf_add(util_buf *b, const void *p, size_t n)
{
	util_buf_grow(b, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void util_buf_adds(util_buf *b, const char *s)
{
	util_buf_add(b, s, strlen(s));
}

void util_buf_addc(util_buf *b, char c)
{
	util_buf_grow(b, 1);
	b->data[b->len++] = c;
	b->data[b->len] = '\0';
}

void util_buf_addf(util_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	util_buf_grow(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void util_buf_add_json_string(util_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	util_buf_grow(b, n + 2);
	util_buf_addc(b, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '"': util_buf_add(b, "\\\"", 2); break;
		case '\\': util_buf_add(b, "\\\\", 2); break;
		case '\n': util_buf_add(b, "\\n", 2); break;
		case '\r': util_buf_add(b, "\\r", 2); break;
		case '\t': util_buf_add(b, "\\t", 2); break;
		case '\b': util_buf_add(b, "\\b", 2); break;
		case '\f': util_buf_add(b, "\\f", 2); break;
		default:
			if (c < 0x20) {
				char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
				util_buf_add(b, e, 6);
			} else {
				util_buf_addc(b, (char)c);
			}
		}
	}
	util_buf_addc(b, '"');
}

void util_buf_reset(util_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

char *util_buf_detach(util_buf *b)
{
	char *s = b->data ? b->data : xstrdup("");
	b->data = NULL;
	b->len = b->cap = 0;
	return s;
}

const char *util_buf_str(const util_buf *b)
{
	return b->data ? b->data : "";
}

void util_buf_free(util_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

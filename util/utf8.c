/* utf8.c: UTF-8 decoding, validation and encoding (see utf8.h). */
#include "util/utf8.h"
#include <string.h>

int util_utf8_decode(const char *str, size_t n, uint32_t *cp)
{
	const unsigned char *s = (const unsigned char *)str;
	if (n == 0)
		return 0;
	unsigned char c = s[0];
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	/* the range of the second byte narrows for E0 (no overlongs), ED (no
	 * surrogates), F0 (no overlongs) and F4 (nothing past U+10FFFF) */
	unsigned char lo = 0x80, hi = 0xBF;
	int need;
	uint32_t v;
	if (c >= 0xC2 && c <= 0xDF) {
		need = 1;
		v = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 2;
		v = c & 0x0F;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 3;
		v = c & 0x07;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	} else {
		return -1;
	}
	for (int i = 1; i <= need; i++) {
		if ((size_t)i >= n)
			return -i;
		unsigned char d = s[i];
		if (i == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF))
			return -i;
		v = (v << 6) | (d & 0x3F);
	}
	*cp = v;
	return need + 1;
}

int util_utf8_valid(const char *s, size_t n, size_t *bad_at)
{
	size_t i = 0;
	while (i < n) {
		/* fast path over ASCII, eight bytes at a time */
		while (i + 8 <= n) {
			uint64_t w;
			memcpy(&w, s + i, 8);
			if (w & 0x8080808080808080ull)
				break;
			i += 8;
		}
		if (i >= n)
			break;
		uint32_t cp;
		int l = util_utf8_decode(s + i, n - i, &cp);
		if (l < 0) {
			if (bad_at)
				*bad_at = i;
			return 0;
		}
		i += (size_t)l;
	}
	return 1;
}

size_t util_utf8_encode(uint32_t cp, char out[4])
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

const char *util_term_escape(const char *s, util_buf *out)
{
	if (!s)
		s = "(null)";
	size_t n = strlen(s), i = 0;
	util_buf_grow(out, n);
	while (i < n) {
		uint32_t cp = 0;
		int k = util_utf8_decode(s + i, n - i, &cp);
		if (k <= 0) {
			util_buf_addf(out, "\\x%02x", (unsigned char)s[i]);
			i++;
		} else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f)) {
			util_buf_addf(out, "\\x%02x", (unsigned)cp);
			i += (size_t)k;
		} else {
			util_buf_add(out, s + i, (size_t)k);
			i += (size_t)k;
		}
	}
	out->data[out->len] = 0; /* grown above, so allocated even for "" */
	return util_buf_str(out);
}

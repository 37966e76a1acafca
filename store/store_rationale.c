/* store_rationale.c: a comparison's rationale (a judge's explanation can
 * run to tens of KiB) is stored compressed when it is long: a BLOB of its
 * first line (at most RATIONALE_HEAD bytes, kept readable so that SQL on
 * the column, such as the position statistics' prefix matches, still
 * works), a NUL, "DPOZ", the text's length (4 bytes, little-endian) and
 * the whole text deflated by zlib. Shorter rationales stay TEXT. Readers
 * get the text back through store_rationale_decode. See store.h. */
#include "config.h"
#include "store/store_int.h"
#include "util/xmalloc.h"
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define RATIONALE_HEAD 200
#define RATIONALE_MAGIC "DPOZ"

int store_rationale_encode(const char *text, util_buf *out)
{
	size_t n = text ? strlen(text) : 0;
	if (n < STORE_RATIONALE_ZMIN || n > 0xffffffffu)
		return 0;
	const char *nl = memchr(text, '\n', n);
	size_t head = nl ? (size_t)(nl - text) : n;
	if (head > RATIONALE_HEAD)
		head = RATIONALE_HEAD;
	uLongf zl = compressBound((uLong)n);
	unsigned char *z = xmalloc(zl);
	int ok = compress2(z, &zl, (const Bytef *)text, (uLong)n, 6) == Z_OK;
	if (ok && head + 9 + zl < n) {
		unsigned char len[4] = {(unsigned char)n, (unsigned char)(n >> 8), (unsigned char)(n >> 16),
					(unsigned char)(n >> 24)};
		util_buf_add(out, text, head);
		util_buf_add(out, "\0" RATIONALE_MAGIC, 5);
		util_buf_add(out, len, 4);
		util_buf_add(out, z, zl);
	} else {
		ok = 0;
	}
	free(z);
	return ok;
}

int store_rationale_decode(const void *data, size_t n, util_buf *out)
{
	const unsigned char *p = data;
	const unsigned char *nul = n ? memchr(p, '\0', n) : NULL;
	size_t h = nul ? (size_t)(nul - p) : n;
	if (!nul || n - h < 9 || memcmp(p + h + 1, RATIONALE_MAGIC, 4)) {
		util_buf_add(out, data, n); /* plain text */
		return 0;
	}
	const unsigned char *l = p + h + 5;
	uLongf len = (uLongf)l[0] | (uLongf)l[1] << 8 | (uLongf)l[2] << 16 | (uLongf)l[3] << 24;
	size_t at = out->len;
	util_buf_grow(out, (size_t)len + 1);
	uLongf got = len;
	if (uncompress((Bytef *)out->data + at, &got, p + h + 9, (uLong)(n - h - 9)) != Z_OK || got != len) {
		out->len = at;
		util_buf_add(out, data, h); /* damaged: the readable head at least */
		util_buf_adds(out, " [the rest of this rationale cannot be decompressed]");
		return -1;
	}
	out->len = at + (size_t)len;
	out->data[out->len] = '\0';
	return 1;
}

void store__bind_rationale(sqlite3_stmt *s, int i, const char *text)
{
	util_buf b = UTIL_BUF_INIT;
	if (store_rationale_encode(text, &b))
		sqlite3_bind_blob(s, i, b.data, (int)b.len, SQLITE_TRANSIENT);
	else
		store__bind_text(s, i, text);
	util_buf_free(&b);
}

const char *store__col_rationale(sqlite3_stmt *s, int i, util_buf *b)
{
	if (sqlite3_column_type(s, i) != SQLITE_BLOB)
		return store__col_text(s, i);
	const void *d = sqlite3_column_blob(s, i);
	int n = sqlite3_column_bytes(s, i);
	util_buf_reset(b);
	store_rationale_decode(d, n > 0 ? (size_t)n : 0, b);
	return util_buf_str(b);
}

/* fuzz_import_split.c: libFuzzer target over the streaming JSON array
 * splitter (store/import_stream.h). The first byte sets the size of the
 * pieces the rest is fed in; the same input fed whole must split the same
 * way, every element must start with a byte that is not white space and
 * end with one, and element lines never go back. */
#include "store/import_stream.h"
#include "util/buf.h"
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Split data in pieces of step bytes; the elements and the result go to out. */
static void split(const char *data, size_t n, size_t step, util_buf *out)
{
	store_jsplit s;
	int rc = 0;
	long last_line = 0;
	store_jsplit_init(&s);
	for (size_t off = 0; off < n && rc >= 0; off += step) {
		size_t len = n - off < step ? n - off : step, pos = 0;
		while (pos < len && (rc = store_jsplit_next(&s, data + off, len, &pos)) == 1) {
			const util_buf *e = &s.elem;
			assert(e->len > 0 && e->data[e->len] == '\0');
			assert(!is_space(e->data[0]) && !is_space(e->data[e->len - 1]));
			assert(s.elem_line >= last_line && s.elem_line <= s.line);
			last_line = s.elem_line;
			util_buf_addf(out, "%ld:", s.elem_line);
			util_buf_add(out, e->data, e->len);
			util_buf_addc(out, '\n');
		}
		assert(pos <= len);
	}
	if (rc >= 0)
		rc = store_jsplit_finish(&s);
	if (rc < 0) {
		assert(s.err[0]);
		util_buf_addf(out, "!%ld:%s", s.line, s.err);
	}
	store_jsplit_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = (size_t)data[0] % 17 + 1;
	const char *in = (const char *)data + 1;
	size_t n = size - 1;
	util_buf a = UTIL_BUF_INIT, b = UTIL_BUF_INIT;
	split(in, n, step, &a);
	split(in, n, n ? n : 1, &b);
	assert(a.len == b.len && (!a.len || !memcmp(a.data, b.data, a.len)));
	util_buf_free(&a);
	util_buf_free(&b);
	return 0;
}

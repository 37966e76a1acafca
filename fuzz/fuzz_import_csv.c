/* fuzz_import_csv.c: libFuzzer target over the CSV/TSV reader
 * (store/import_stream.h). The first byte picks the delimiter (its low bit)
 * and the size of the pieces the rest is fed in; the rows read in pieces
 * must be the rows read whole, rows' lines never go back, and every field
 * lies inside the row's buffer. */
#include "store/import_stream.h"
#include "util/buf.h"
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void add_row(const store_csv *c, util_buf *out)
{
	util_buf_addf(out, "%ld:%zu:", c->row_line, c->nfields);
	assert(c->nfields >= 1);
	for (size_t i = 0; i < c->nfields; i++) {
		size_t len;
		const char *f = store_csv_field(c, i, &len);
		assert(f >= c->data.data && f + len < c->data.data + c->data.len + 1 && f[len] == '\0');
		util_buf_add(out, f, len);
		util_buf_addc(out, '\x1f');
	}
	util_buf_addc(out, '\n');
}

static void read_all(const char *in, size_t n, char delim, size_t step, util_buf *out)
{
	store_csv c;
	int rc = 0;
	long last = 0;
	store_csv_init(&c, delim);
	for (size_t off = 0; off < n && rc >= 0; off += step) {
		size_t len = n - off < step ? n - off : step, pos = 0;
		while (pos < len && rc >= 0)
			if ((rc = store_csv_next(&c, in + off, len, &pos)) == 1) {
				assert(c.row_line >= last);
				last = c.row_line;
				add_row(&c, out);
			}
	}
	if (rc >= 0 && (rc = store_csv_finish(&c)) == 1)
		add_row(&c, out);
	if (rc < 0) {
		assert(c.err[0]);
		util_buf_addf(out, "!%ld:%s", c.line, c.err);
	}
	store_csv_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	char delim = data[0] & 1 ? '\t' : ',';
	size_t step = (size_t)(data[0] >> 1) % 13 + 1;
	const char *in = (const char *)data + 1;
	size_t n = size - 1;
	util_buf a = UTIL_BUF_INIT, b = UTIL_BUF_INIT;
	read_all(in, n, delim, step, &a);
	read_all(in, n, delim, n ? n : 1, &b);
	assert(a.len == b.len && (!a.len || !memcmp(a.data, b.data, a.len)));
	util_buf_free(&a);
	util_buf_free(&b);
	return 0;
}

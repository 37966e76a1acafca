/* fuzz_import_path.c: libFuzzer target over field paths and --map
 * (store/import_stream.h, store/import.h). The input's first line is a
 * --map spec (also tried as a lone field path), the rest a JSON record: a
 * path that compiles evaluates to a value or says why not, and a map that
 * is made either rewrites the record into a JSON object or says why not. */
#include "store/import.h"
#include "store/import_stream.h"
#include "util/buf.h"
#include "util/xmalloc.h"
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data, *nl = memchr(s, '\n', size);
	size_t speclen = nl ? (size_t)(nl - s) : size;
	if (memchr(s, '\0', speclen))
		return 0;
	char *spec = xstrndup(s, speclen);
	const char *rec = nl ? nl + 1 : "";
	size_t reclen = nl ? size - speclen - 1 : 0;
	char err[512];

	store_fpath p;
	cJSON *root = cJSON_ParseWithLength(rec, reclen);
	if (!store_fpath_compile(spec, &p, err, sizeof err)) {
		util_buf why = UTIL_BUF_INIT;
		assert(p.nseg > 0);
		const cJSON *v = store_fpath_eval(&p, root, &why);
		assert(v || why.len > 0);
		util_buf_free(&why);
	} else {
		assert(err[0]);
	}
	store_fpath_free(&p);
	cJSON_Delete(root);

	store_import_map *m = NULL;
	int kind;
	if (!store_import_map_new(spec, NULL, NULL, &m, &kind, err, sizeof err)) {
		util_buf out = UTIL_BUF_INIT, why = UTIL_BUF_INIT;
		int rc = store__map_apply(m, rec, reclen, &out, &why);
		if (rc == 0) {
			cJSON *o = cJSON_ParseWithLength(out.data, out.len);
			assert(cJSON_IsObject(o));
			cJSON_Delete(o);
		} else if (rc < 0) {
			assert(why.len > 0);
		}
		util_buf_free(&out);
		util_buf_free(&why);
		store_import_map_free(m);
	} else {
		assert(!m && err[0]);
	}
	free(spec);
	return 0;
}

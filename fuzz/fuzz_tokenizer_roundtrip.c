/* fuzz_tokenizer_roundtrip.c: libFuzzer target for encode/decode. For valid
 * UTF-8 input, decode(encode(x)) must equal x on the byte-level tokenizer of
 * tests/data/tokenizer/tiny; invalid UTF-8 must be rejected with an error.
 * On tests/data/tokenizer/split (NFC + Split regex + ByteLevel) it must
 * give back the NFC form of x. The same input also goes through the
 * byte-fallback tokenizer of
 * tests/data/tokenizer/family (no round-trip claim there: unknown
 * characters become <unk>), which must not crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "train/tokenizer.h"

#ifndef TOK_DATA
#define TOK_DATA "tests/data/tokenizer"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static train_tokenizer *tiny, *family, *split;

static train_tokenizer *load(const char *name)
{
	char path[4096], *err = NULL;
	snprintf(path, sizeof path, "%s/%s", TOK_DATA, name);
	train_tokenizer *t = train_tokenizer_load(path, &err);
	if (!t) {
		fprintf(stderr, "fuzz_tokenizer_roundtrip: %s\n", err);
		abort();
	}
	return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!tiny) {
		tiny = load("tiny");
		family = load("family");
		split = load("split");
	}
	int32_t *ids = NULL;
	size_t n = 0;
	int rc = train_tokenizer_encode(tiny, (const char *)data, size, &ids, &n);
	if (rc == 0) {
		size_t blen = 0;
		char *back = train_tokenizer_decode_len(tiny, ids, n, &blen);
		if (blen != size || memcmp(back, data, size))
			abort(); /* not an exact inverse */
		free(back);
	} else if (rc != TRAIN_TOK_EINPUT) {
		abort();
	}
	free(ids);
	ids = NULL;
	if (rc == 0 && train_tokenizer_encode(split, (const char *)data, size, &ids, &n) == 0) {
		utf8proc_uint8_t *nfc = NULL;
		utf8proc_ssize_t nl = size ? utf8proc_map(data, (utf8proc_ssize_t)size, &nfc,
							  UTF8PROC_STABLE | UTF8PROC_COMPOSE)
					   : 0;
		size_t blen = 0;
		char *back = train_tokenizer_decode_len(split, ids, n, &blen);
		if (nl < 0 || blen != (size_t)nl || (nl && memcmp(back, nfc, blen)))
			abort(); /* not NFC(x) */
		free(back);
		free(nfc);
	}
	free(ids);
	ids = NULL;
	if (train_tokenizer_encode(family, (const char *)data, size, &ids, &n) == 0)
		free(train_tokenizer_decode(family, ids, n));
	free(ids);
	return 0;
}

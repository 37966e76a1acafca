/* fuzz_tokenizer_json.c: libFuzzer target for tokenizer.json parsing. Any
 * input must either load (and then encode and decode a fixed text without
 * trouble) or fail with a message; never crash or leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "train/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *err = NULL;
	train_tokenizer *t = train_tokenizer_from_json((const char *)data, size, "fuzz", &err);
	if (!t) {
		if (!err || !*err)
			abort(); /* a failure must say why */
		free(err);
		return 0;
	}
	static const char text[] = "Hello world, it's  a test\n\t\xC3\xA9\xE4\xBD\xA0 <|endoftext|> 123";
	int32_t *ids = NULL;
	size_t n = 0;
	if (train_tokenizer_encode(t, text, sizeof text - 1, &ids, &n) == 0) {
		for (size_t i = 0; i < n; i++)
			if (ids[i] < 0 || (size_t)ids[i] >= train_tokenizer_vocab_size(t))
				abort();
		free(train_tokenizer_decode(t, ids, n));
	}
	free(ids);
	int32_t some[] = {0, 1, 2, 3, 100, -1, 1 << 30};
	free(train_tokenizer_decode(t, some, sizeof some / sizeof *some));
	train_tokenizer_free(t);
	return 0;
}

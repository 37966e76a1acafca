/* fuzz_safetensors.c: the safetensors header parser and dtype conversion
 * on arbitrary bytes. Any input must give a parsed file or an error. */
#include "config.h"
#include "train/safetensors.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *err = NULL;
	train_st_file *f = train_st_parse(data, size, "fuzz", &err);
	if (!f) {
		free(err);
		return 0;
	}
	for (int i = 0; i < train_st_count(f); i++) {
		const train_st_tensor *t = train_st_get(f, i);
		if (t->numel > (1u << 20))
			continue;
		float *out = malloc(sizeof(float) * (t->numel ? t->numel : 1));
		if (train_st_read_f32(f, t, out, &err))
			free(err);
		err = NULL;
		free(out);
	}
	train_st_close(f);
	return 0;
}

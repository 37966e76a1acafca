/* fuzz_config.c: config.json parsing on arbitrary bytes, then the weight
 * and activation layouts of whatever parses. */
#include "config.h"
#include "train/model.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	train_config c;
	char *err = NULL;
	if (train_config_parse((const char *)data, size, &c, &err)) {
		free(err);
		return 0;
	}
	/* sizes only (base NULL): must not overflow or crash */
	size_t n = train_weights_layout(&c, NULL, NULL);
	size_t a = train_acts_layout(&c, 1, c.max_pos < 4 ? c.max_pos : 4, NULL, NULL);
	if (n == 0 || a == 0)
		abort();
	return 0;
}

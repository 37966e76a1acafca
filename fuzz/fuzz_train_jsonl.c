/* fuzz_train_jsonl.c: the trainer's TRL JSONL line parser
 * (train_raw_parse), the message-list parser (train_msgs_parse), and for
 * pre-tokenized lines the tokenization, EOS/BOS and truncation steps. */
#include "config.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "train/trainer_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	train_raw_pair r;
	char *err = NULL;
	if (train_raw_parse((const char *)data, size, &r, &err) == 0) {
		if (r.has_ids) {
			/* the options come from the first bytes so that all paths are reached */
			train_tok_opts o = {
				.append_eos = size > 0 && (data[0] & 1),
				.add_bos = size > 0 && (data[0] & 2),
				.max_length = size > 1 ? data[1] % 40 : 0,
				.max_prompt_length = size > 2 ? data[2] % 20 : 0,
				.eos_id = 0,
				.bos_id = 1,
			};
			train_pair p;
			if (train_raw_tokenize(&r, NULL, NULL, &o, &p, &err) == 0)
				train_pair_free(&p);
			else
				free(err);
			err = NULL;
		}
		train_raw_free(&r);
	} else {
		free(err);
	}
	/* the same bytes as a message list (NUL-terminated copy) */
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = 0;
	store_msg *m = NULL;
	size_t n = 0;
	err = NULL;
	if (train_msgs_parse(s, &m, &n, &err) == 0)
		train_msgs_free(m, n);
	else
		free(err);
	free(s);
	return 0;
}

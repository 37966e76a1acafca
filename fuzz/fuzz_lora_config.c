/* fuzz_lora_config.c: adapter_config.json parsing on arbitrary bytes; what
 * parses is then checked against a small Llama and a small GPT-2 config
 * (target selection and the adapter's layout). */
#include "config.h"
#include "train/lora.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	train_lora_cfg cfg;
	char *err = NULL;
	if (train_lora_config_parse((const char *)data, size, &cfg, &err)) {
		if (!err)
			abort(); /* a failure always says why */
		free(err);
		return 0;
	}
	if (cfg.r > 64)
		cfg.r = 64; /* keep the arenas small */
	static const char *const cfgs[] = {
		"{\"model_type\":\"llama\",\"hidden_size\":8,\"num_hidden_layers\":2,"
		"\"num_attention_heads\":2,\"num_key_value_heads\":1,\"intermediate_size\":12,"
		"\"vocab_size\":16,\"max_position_embeddings\":8}",
		"{\"model_type\":\"gpt2\",\"n_embd\":8,\"n_layer\":2,\"n_head\":2,\"vocab_size\":16,"
		"\"n_positions\":8}"};
	for (int i = 0; i < 2; i++) {
		train_config c;
		char *e = NULL;
		if (train_config_parse(cfgs[i], strlen(cfgs[i]), &c, &e))
			abort();
		train_lora *lo = train_lora_new(&c, &cfg, 1, &e);
		if (!lo && !e)
			abort();
		if (lo && train_lora_nparams(lo) == 0)
			abort();
		train_lora_free(lo);
		free(e);
	}
	train_lora_cfg_clear(&cfg);
	return 0;
}

/* dpo-model-lora.h: dpo-model's LoRA parts: the merge-lora command and
 * --adapter for score and generate. */
#ifndef DPO_TRAIN_DPO_MODEL_LORA_H
#define DPO_TRAIN_DPO_MODEL_LORA_H
#include "train/lora.h"
#include "util/opt.h"

/* dpo-model merge-lora BASE ADAPTER --out DIR: exit status. */
int train_cli_merge_lora(int argc, char **argv);
/* Its command line (for dpo-model's --help). */
extern util_cli train_cli_merge_lora_cli;

/* Load the adapter in dir (NULL: none) for m and add it to m's forwards;
 * exits 1 with the message on a bad adapter. Returns the adapter (caller
 * frees it after m is done with it) or NULL. */
train_lora *train_cli_attach_adapter(train_model *m, const char *dir);

/* The --adapter option's help text. */
#define TRAIN_CLI_ADAPTER_HELP "a LoRA adapter (PEFT's adapter_config.json and\n" \
	"adapter_model.safetensors) to run on the model,\nunmerged"
#endif

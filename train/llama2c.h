/* llama2c.h: import checkpoints of Karpathy's llama2.c (float32 "version 0"
 * .bin files) into the model engine as Llama models. */
#ifndef DPO_TRAIN_LLAMA2C_H
#define DPO_TRAIN_LLAMA2C_H

#include "train/model.h"

/* Read a llama2.c checkpoint (header: dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size (negative: separate classifier), seq_len; then the
 * float32 weights) and return an equivalent Llama model: q/k rows are
 * reordered from llama2.c's interleaved RoPE pairs to the HF rotate-half
 * layout; rope theta 10000, RMSNorm eps 1e-5, BOS 1, EOS 2. Save it with
 * train_model_save. Returns NULL with *err (caller frees) on a file that is
 * not such a checkpoint (the size must match the header exactly). */
train_model *train_llama2c_import(const char *path, char **err);

#endif

/* model.h: the model engine. Loads a Hugging Face model directory (gpt2,
 * llama, mistral, qwen2, qwen3; safetensors F32/BF16/F16, single file or
 * sharded), runs it on the CPU with the kernels of train/layers.h, saves it
 * back in the same layout.
 *
 * Memory model (llm.c style): all parameters live in ONE float arena; each
 * tensor is an offset into it. train_weights holds typed pointers into an
 * arena laid out by train_weights_layout(), so the trainer can allocate a
 * gradient (or AdamW moment) arena of train_model_nparams() floats and call
 * train_weights_layout() on it to get the same named pointers. Activations
 * are a second arena laid out by train_acts_layout() for a given B and T.
 *
 * Internal layout (not the HF layout): per layer, q/k/v projections are fused
 * into one [QKV, C] matrix (QKV = (NH + 2*NKV) * hd: q rows, then k, then v),
 * and Llama's gate/up projections into one [2*I, C] matrix (gate rows, then
 * up). Every weight is [OC, C] (nn.Linear). Each HF tensor is a contiguous
 * slice of the arena, except GPT-2 Conv1D tensors, which are the transpose of
 * theirs (train_param.transposed). */
#ifndef DPO_TRAIN_MODEL_H
#define DPO_TRAIN_MODEL_H
#include <stddef.h>
#include <stdint.h>

#include "train/precision.h"

/* Error codes (negative); the message is in the err string. */
enum {
	TRAIN_EIO = -1,      /* file missing or unreadable */
	TRAIN_EFORMAT = -2,  /* malformed config.json or safetensors */
	TRAIN_EUNSUP = -3,   /* unsupported architecture, dtype, feature */
	TRAIN_EMISSING = -4, /* missing tensor */
	TRAIN_ESHAPE = -5,   /* tensor of the wrong shape */
	TRAIN_EARG = -6,     /* bad argument (token id out of range, too long) */
};

typedef enum { TRAIN_ARCH_GPT2 = 1, TRAIN_ARCH_LLAMA, TRAIN_ARCH_MISTRAL, TRAIN_ARCH_QWEN2,
	       TRAIN_ARCH_QWEN3 } train_arch;

#define TRAIN_MAX_EOS 8

/* The parsed config.json. */
typedef struct train_config {
	train_arch arch;
	char model_type[16];    /* "gpt2", "llama", "mistral", "qwen2", "qwen3" */
	int vocab;              /* V */
	int dim;                /* C: hidden_size / n_embd */
	int n_layer;            /* L */
	int n_head;             /* NH */
	int n_kv_head;          /* NKV (== NH without GQA) */
	int head_dim;           /* hd (may differ from C / NH) */
	int ffn;                /* I: intermediate_size / n_inner (4C default) */
	int max_pos;            /* max_position_embeddings / n_positions */
	float norm_eps;         /* layer_norm_epsilon / rms_norm_eps */
	double rope_theta;      /* 0 for GPT-2 */
	int rope_llama3;        /* Llama 3 rope scaling (frequency bands): */
	double rope_factor, rope_low_freq, rope_high_freq, rope_orig_max;
	double init_range;      /* initializer_range (0.02 default) */
	int tied;               /* tie_word_embeddings */
	int qkv_bias;           /* q/k/v biases (GPT-2, Qwen2, attention_bias) */
	int o_bias;             /* output projection bias (GPT-2, Llama attention_bias) */
	int mlp_bias;           /* MLP biases (GPT-2, Llama mlp_bias) */
	int qk_norm;            /* Qwen3 per-head q_norm/k_norm */
	int n_eos;              /* eos_token_id, int or list */
	int eos[TRAIN_MAX_EOS];
	int bos;                /* bos_token_id or -1 */
} train_config;

/* Parse config.json text (len bytes, need not be NUL-terminated) into *cfg.
 * Returns 0, or a negative TRAIN_E* code with a message in *err (caller
 * frees). Fuzzed by fuzz/fuzz_config.c. */
int train_config_parse(const char *json, size_t len, train_config *cfg, char **err);

/* Pointers into a parameter arena ([L, ...] blocks are per-layer stacked).
 * Absent tensors (depending on the architecture) are NULL. */
typedef struct train_weights {
	float *wte;    /* [V, C] */
	float *wpe;    /* [maxT, C] GPT-2 only */
	float *ln1w;   /* [L, C] */
	float *ln1b;   /* [L, C] GPT-2 only */
	float *wqkv;   /* [L, QKV, C] */
	float *bqkv;   /* [L, QKV] if qkv_bias */
	float *qnorm;  /* [L, hd] Qwen3 */
	float *knorm;  /* [L, hd] Qwen3 */
	float *wo;     /* [L, C, NH*hd] */
	float *bo;     /* [L, C] if o_bias */
	float *ln2w;   /* [L, C] */
	float *ln2b;   /* [L, C] GPT-2 only */
	float *wfc;    /* [L, F, C], F = I (GPT-2 c_fc) or 2*I (gate then up) */
	float *bfc;    /* [L, F] if mlp_bias */
	float *wproj;  /* [L, C, I] */
	float *bproj;  /* [L, C] if mlp_bias */
	float *lnfw;   /* [C] */
	float *lnfb;   /* [C] GPT-2 only */
	float *lm_head;/* [V, C]; == wte when tied (not a separate parameter) */
} train_weights;

/* Lay out the parameter arena for cfg at base (may be NULL to only count)
 * and fill *w (may be NULL). Returns the number of floats of the arena. */
size_t train_weights_layout(const train_config *cfg, float *base, train_weights *w);

/* Activations saved by train_model_forward for backward (N = B*T rows).
 * Per-layer arrays are [L, ...] stacked. */
typedef struct train_acts {
	int B, T;
	float *encoded;  /* [N, C]     embedding output = residual into layer 0 */
	float *ln1;      /* [L, N, C]  */
	float *ln1_mean; /* [L, N]     GPT-2 only */
	float *ln1_rstd; /* [L, N]     */
	float *qkv;      /* [L, N, QKV] fused projection (+ bias) */
	float *q;        /* [L, N, NH*hd]  split q (before q_norm/rope) */
	float *k;        /* [L, N, NKV*hd] split k (before k_norm/rope) */
	float *v;        /* [L, N, NKV*hd] */
	float *q_rstd;   /* [L, N*NH]  Qwen3 only */
	float *k_rstd;   /* [L, N*NKV] Qwen3 only */
	float *qr;       /* [L, N, NH*hd]  q after q_norm and rope (attention input) */
	float *kr;       /* [L, N, NKV*hd] k after k_norm and rope */
	float *lse;      /* [L, B, NH, T] attention log-sum-exp */
	float *atty;     /* [L, N, NH*hd] attention output (before wo) */
	float *attproj;  /* [L, N, C]  wo output */
	float *res1;     /* [L, N, C]  residual after attention */
	float *ln2;      /* [L, N, C]  */
	float *ln2_mean; /* [L, N]     GPT-2 only */
	float *ln2_rstd; /* [L, N]     */
	float *fch;      /* [L, N, F]  wfc output (GPT-2: pre-gelu; else gate|up) */
	float *fch_act;  /* [L, N, I]  gelu(fch) or silu(gate)*up */
	float *mlpproj;  /* [L, N, C]  wproj output */
	float *res2;     /* [L, N, C]  residual after the MLP (layer output) */
	float *lnf;      /* [N, C]     final norm output */
	float *lnf_mean; /* [N]        GPT-2 only */
	float *lnf_rstd; /* [N]        */
	float *logp;     /* [N]        log p(target) (0 where target < 0) */
	float *logp_lse; /* [N]        log-sum-exp of the logits */
} train_acts;

/* Lay out an activation arena for cfg and B x T tokens at base (may be NULL
 * to count) and fill *a (may be NULL). Returns the number of floats. */
size_t train_acts_layout(const train_config *cfg, int B, int T, float *base, train_acts *a);

/* One parameter as Hugging Face names and shapes it. */
typedef struct train_param {
	const char *name;   /* HF tensor name, e.g. "model.layers.0.self_attn.q_proj.weight" */
	int ndim;           /* 1 or 2 */
	int64_t shape[2];   /* HF shape (as in the safetensors file) */
	size_t offset;      /* floats from the start of the parameter arena */
	size_t numel;
	int transposed;     /* 1: the arena holds [shape[1], shape[0]] (GPT-2 Conv1D) */
} train_param;

typedef struct train_model train_model;

/* Load a model directory: config.json plus model.safetensors or
 * model.safetensors.index.json with its shards. Weights are converted to
 * float32 in one arena. Returns the model (caller frees with
 * train_model_free), or NULL with a message in *err (caller frees) naming
 * the file/tensor and what was expected. */
train_model *train_model_load(const char *dir, char **err);

/* Create a model from config.json text with random weights: normal(0,
 * init_range) for matrices and embeddings, ones for norm weights, zeros for
 * biases (GPT-2's c_proj weights scaled by 1/sqrt(2L) like HF). The same
 * seed gives the same weights for any number of threads. Returns NULL with
 * *err (caller frees) on a bad config. */
train_model *train_model_init(const char *config_json, size_t len, uint64_t seed, char **err);

/* Free everything (NULL allowed). */
void train_model_free(train_model *m);

/* Write config.json (the input's, with "dtype"/"torch_dtype" set to
 * "float32") and model.safetensors (F32; the input's tensor names, shapes
 * and layouts, GPT-2 Conv1D transposed back, tied lm_head omitted) to dir
 * (created if missing; a stale model.safetensors.index.json there is
 * removed). Each file is written to a temporary name, fsynced and renamed.
 * Returns 0 or a negative code with *err (caller frees). */
int train_model_save(const train_model *m, const char *dir, char **err);

/* The parsed config (owned by the model). */
const train_config *train_model_config(const train_model *m);
/* Weight pointers into the parameter arena (owned by the model; the trainer
 * may write through them). */
const train_weights *train_model_weights(const train_model *m);
/* The parameter arena and its size in floats. */
float *train_model_params(train_model *m);
size_t train_model_nparams(const train_model *m);
/* The parameter table: *n entries, owned by the model, in file order. */
const train_param *train_model_param_table(const train_model *m, int *n);
/* Number of trainable scalars (== train_model_nparams). */
size_t train_model_param_count(const train_model *m);
/* The dtype of the loaded weights ("F32", "BF16", "F16"; "F32" after init). */
const char *train_model_dtype(const train_model *m);
/* SHA-256 hex over config.json and the weight files (index and shards in
 * name order), the model's identity. Computed at load; after init or once
 * weights change, over the serialised config + F32 weights. Owned by the model. */
const char *train_model_fingerprint(const train_model *m);
/* The directory the model was loaded from (NULL after init). */
const char *train_model_dir(const train_model *m);
/* config.json as train_model_save writes it (owned by the model). */
const char *train_model_config_json(const train_model *m);

/* Add LoRA adapter lo (train/lora.h; borrowed, must fit m's config) to
 * every forward of m from now on: train_model_forward, logprobs, logits,
 * prefill, decode (not the trainer's engine, which has its own hook).
 * NULL removes it. The weights are unchanged (train_lora_merge merges). */
struct train_lora;
void train_model_set_lora(train_model *m, struct train_lora *lo);
/* The same, the model taking lo over (freed by train_model_free). */
void train_model_own_lora(train_model *m, struct train_lora *lo);

/* RoPE tables of the model ([max_pos, hd/2] each; NULL for GPT-2). */
const float *train_model_rope_cos(const train_model *m);
const float *train_model_rope_sin(const train_model *m);

/* Full forward over B sequences of T tokens saving every activation in a
 * (laid out with train_acts_layout for the same B, T): ids [B*T], targets
 * [B*T] (-1 = none; usually ids shifted by one). Fills a->logp/logp_lse.
 * Returns 0, or TRAIN_EARG if an id is out of range or T > max_pos. */
int train_model_forward(const train_model *m, train_acts *a, const int *ids, const int *targets,
			int B, int T);

/* Convenience: log p(ids[t+1] | ids[0..t]) for t in [0, T-1), one sequence,
 * written to logp[T-1]. Allocates its own activations. Returns 0 or TRAIN_EARG
 * with *err. */
int train_model_logprobs(const train_model *m, const int *ids, int T, float *logp, char **err);

/* Full logits [T, V] of one sequence (tests; small models only). */
int train_model_logits(const train_model *m, const int *ids, int T, float *logits, char **err);

/* KV cache for batched generation: B rows, each up to cap tokens. */
typedef struct train_kv train_kv;

/* A cache for B rows of up to cap tokens (cap <= max_pos). Caller frees. */
train_kv *train_kv_new(const train_model *m, int B, int cap);
void train_kv_free(train_kv *kv);
/* Forget row b's tokens (length 0). */
void train_kv_reset(train_kv *kv, int b);
/* Tokens held by row b. */
int train_kv_len(const train_kv *kv, int b);
/* Row dst becomes a copy of row src (its tokens' keys and values and its
 * length): what prefilling dst with src's tokens would give, bit for bit,
 * without running the model again. */
void train_kv_copy(train_kv *kv, int dst, int src);

/* Append n tokens to row b of the cache and write the logits of the last
 * one to logits [V]. Returns 0 or TRAIN_EARG (id out of range, cache full). */
int train_model_prefill(const train_model *m, train_kv *kv, int b, const int *ids, int n,
			float *logits);

/* One decoding step for the nb rows listed in rows[] (each receives one
 * token ids[i]); writes logits [nb, V]. Returns 0 or TRAIN_EARG. */
int train_model_decode(const train_model *m, train_kv *kv, const int *rows, const int *ids,
		       int nb, float *logits);

/* train_model_load in a given precision: TRAIN_PREC_AUTO resolves with
 * train_precision_resolve. f32 is train_model_load. bf16 holds the 2-D
 * weights (embeddings, projections, LM head) in bfloat16 for inference
 * (train/model_bf16.h): BF16-stored tensors bit for bit, others rounded to
 * nearest even once; 1-D weights stay float32. A bf16 model runs every
 * forward (forward, logprobs, logits, prefill, decode) through the kernels
 * of train/matvec_bf16.h; it has no f32 arena: train_model_params returns
 * NULL, train_model_weights has NULL matrix pointers, and
 * train_model_save fails with TRAIN_EUNSUP (it is not for training).
 * Returns as train_model_load. */
train_model *train_model_load_prec(const char *dir, train_precision prec, char **err);

/* Convert a float32 model (e.g. from train_model_init) to the bf16
 * inference storage in place, rounding its 2-D weights to bf16 (nearest
 * even) and freeing the f32 arena; the fingerprint stays the f32 one. No-op
 * on a bf16 model. */
void train_model_to_bf16(train_model *m);

/* TRAIN_PREC_BF16 for a model held in bf16, else TRAIN_PREC_F32. */
train_precision train_model_precision(const train_model *m);

/* The bf16 matrices of a model held in bf16 (struct train_bf16w of
 * train/model_bf16.h, owned by the model), NULL for a float32 model. The
 * trainer reads a frozen LoRA base through them. */
struct train_bf16w;
const struct train_bf16w *train_model_bf16_weights(const train_model *m);

/* Bytes of parameter storage the model holds (4 per parameter in f32;
 * 2 per matrix weight plus 4 per 1-D weight in bf16). */
size_t train_model_weight_bytes(const train_model *m);

/* Block i (from 0) of the weight storage of m and its size in bytes in
 * *bytes: f32, the parameter arena; bf16, the bf16 matrices then the
 * float32 1-D weights. NULL (and 0) past the last. Owned by the model; for
 * copying a model whole (train_model_blank, MPI). */
void *train_model_storage(train_model *m, int i, size_t *bytes);

/* A model of config_json (len bytes) with zeroed weights held in
 * precision prec (as train_model_load_prec), to receive those of a model
 * loaded elsewhere through train_model_storage: dtype is that model's
 * stored dtype (its RoPE tables follow it) and fingerprint (may be NULL:
 * computed when asked) its identity. Returns the model (caller frees) or
 * NULL with *err (caller frees) on a bad config. */
train_model *train_model_blank(const char *config_json, size_t len, const char *dtype,
			       train_precision prec, const char *fingerprint, char **err);

#endif

/* lora.h: LoRA adapters (low-rank updates of the linear layers) in PEFT's
 * format, for training with a frozen base model and for running or merging
 * a saved adapter.
 *
 * A targeted linear module W [out, in] computes
 *   y = W x + scale * B (A dropout(x)),  scale = alpha / r
 * (alpha / sqrt(r) for rsLoRA adapters), A [r, in], B [out, r]. Modules are
 * named as Hugging Face names them: GPT-2 c_attn, c_proj (attention and
 * MLP), c_fc; Llama/Mistral/Qwen q_proj, k_proj, v_proj, o_proj, gate_proj,
 * up_proj, down_proj; "all-linear" is all of them (never lm_head, as PEFT).
 * A target matches a module whose path equals it or ends with "." + it.
 *
 * In the engine's fused layout (model.h) a module is a slice of output rows
 * of one of four matmuls per layer (a "site"): q/k/v of the fused QKV
 * projection, gate/up of the fused MLP input projection. The adapter's
 * parameters (every A then B, module by module) live in one float arena.
 *
 * Files: adapter_config.json (PEFT's LoraConfig keys) and
 * adapter_model.safetensors with keys
 * "base_model.model.<module path>.lora_A.weight" / ".lora_B.weight". */
#ifndef DPO_TRAIN_LORA_H
#define DPO_TRAIN_LORA_H
#include <stddef.h>
#include <stdint.h>
#include "train/model.h"
#include "train/precision.h"
#include "util/sha256.h"

/* The four matmuls of a block that modules can sit on. */
enum train_lora_site {
	TRAIN_LORA_QKV = 0, /* fused q/k/v projection (input: ln1 output) */
	TRAIN_LORA_O,       /* attention output projection (input: attention output) */
	TRAIN_LORA_FC,      /* MLP input projection(s) (input: ln2 output) */
	TRAIN_LORA_PROJ,    /* MLP output projection (input: activation) */
	TRAIN_LORA_NSITES
};

/* Settings of an adapter. */
typedef struct train_lora_cfg {
	int r;              /* rank (>= 1) */
	double alpha;       /* lora_alpha */
	double dropout;     /* lora_dropout in [0, 1) */
	int rslora;         /* use_rslora: scale alpha / sqrt(r) */
	char *targets;      /* comma-separated module names or "all-linear" (owned) */
	char *base;         /* base_model_name_or_path (owned, may be NULL) */
} train_lora_cfg;

/* Free the strings of cfg (not cfg itself). */
void train_lora_cfg_clear(train_lora_cfg *cfg);

/* Parse adapter_config.json text (len bytes) into *cfg (strings owned by
 * cfg; clear it after). Refuses what this engine cannot run: a peft_type
 * other than LORA, DoRA, bias other than "none", rank/alpha patterns,
 * layers_to_transform, regex target_modules. Returns 0 or TRAIN_EFORMAT /
 * TRAIN_EUNSUP with *err (caller frees). Fuzzed by fuzz/fuzz_lora_config.c. */
int train_lora_config_parse(const char *json, size_t len, train_lora_cfg *cfg, char **err);

typedef struct train_lora train_lora;

/* Check a --lora-targets value against model config c without building
 * anything: 0, or -1 with *err (caller frees) naming the bad target and the
 * module names there are. */
int train_lora_check_targets(const train_config *c, const char *targets, char **err);

/* A new adapter for a model of config c: the modules targets select, A
 * drawn as PEFT's kaiming_uniform(a=sqrt(5)) does (uniform in
 * +-1/sqrt(in)) from seed, B zero. cfg is copied. Returns NULL with *err
 * (caller frees) for a bad rank, dropout or target. Free with
 * train_lora_free. */
train_lora *train_lora_new(const train_config *c, const train_lora_cfg *cfg, uint64_t seed,
			   char **err);

/* Load the adapter in dir (adapter_config.json, adapter_model.safetensors)
 * for a model of config c, checking every tensor's name and shape.
 * Returns NULL with *err (caller frees) naming the file and key. */
train_lora *train_lora_load(const train_config *c, const char *dir, char **err);

/* Write adapter_config.json and adapter_model.safetensors (F32) to dir
 * (created if missing), each atomically; base_model_name_or_path is base
 * (NULL: the cfg's). Returns 0 or -1 with *err (caller frees). */
int train_lora_save(const train_lora *lo, const char *dir, const char *base, char **err);

/* Free the adapter (NULL allowed). */
void train_lora_free(train_lora *lo);

/* The settings (owned by lo). */
const train_lora_cfg *train_lora_config(const train_lora *lo);
/* Number of modules adapted, and the comma-separated module names that the
 * targets expand to (PEFT's target_modules as saved; owned by lo). */
int train_lora_nmodules(const train_lora *lo);
const char *train_lora_target_names(const train_lora *lo);

/* The parameter arena (every module's A then B) and its size in floats;
 * the gradient arena of the same layout (allocated zeroed on first call). */
float *train_lora_params(train_lora *lo);
size_t train_lora_nparams(const train_lora *lo);
float *train_lora_grads(train_lora *lo);

/* Whether forwards apply dropout (training) or not (evaluation, the
 * default). With dropout the masks are a function of the seed, draw and the
 * element: the same draw gives the same masks (the trainer draws by step
 * and micro-batch, so a resumed run repeats them); backward uses the masks
 * of the forward's draw. */
void train_lora_set_training(train_lora *lo, int on, uint64_t draw);
/* The dropout seed (train_lora_new's; 0 after load). */
void train_lora_set_seed(train_lora *lo, uint64_t seed);

/* Data parallelism (trainer_mpi.c): the training forwards that follow run
 * pairs [off, off + n) of a micro-batch of ntot pairs (the engine's rows:
 * n chosen then n rejected, each padded to T; the whole micro-batch's to
 * Ttot), so their dropout masks are drawn as for the same elements of the
 * whole micro-batch in one process. n 0: not a slice (the default). */
void train_lora_set_rows(train_lora *lo, int n, int T, int off, int ntot, int Ttot);

/* Add the adapter's output for layer l, site s to out [N, OC] (OC the
 * site's full output width), the matmul's input being inp [N, in]. Saves
 * what backward needs (for the last N). No-op when no module sits there. */
void train_lora_forward(train_lora *lo, int l, int s, float *out, int OC, const float *inp, int N);

/* Backward of train_lora_forward for the same l, s, inp, N (after that
 * forward): accumulates dA, dB into the gradient arena and adds the
 * adapter's input gradient to dinp [N, in]; dout [N, OC]. */
void train_lora_backward(train_lora *lo, int l, int s, float *dinp, const float *dout, int OC,
			 const float *inp, int N);

/* PEFT's default target modules of c's architecture: "c_attn" (GPT-2),
 * "q_proj,v_proj" (the others). Static string. */
const char *train_lora_default_targets(const train_config *c);

/* base_model_name_or_path of the adapter in dir (new string, caller frees),
 * or NULL with *err (caller frees) when there is none or no adapter. */
char *train_lora_dir_base(const char *dir, char **err);

/* Feed the adapter's identity (its settings and parameters) to h (the
 * fingerprint of a model running it). */
void train_lora_hash(const train_lora *lo, util_sha256 *h);

/* Load the model in dir, or, when dir is an adapter (adapter_config.json
 * and no config.json), its base (base_model_name_or_path) with the
 * adapter added unmerged and owned by the model; the fingerprint covers the
 * adapter. NULL with *err (caller frees). */
train_model *train_lora_model_load(const char *dir, char **err);
/* The same with the base held in precision prec (train_model_load_prec:
 * bf16 keeps the base's matrices in bfloat16; the adapter stays f32). */
train_model *train_lora_model_load_prec(const char *dir, train_precision prec, char **err);

/* Merge the adapter into m's weights in place: W += scale * B A. */
void train_lora_merge(const train_lora *lo, train_model *m);

#endif

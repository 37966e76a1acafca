/* config.c: parse a Hugging Face config.json into train_config. */
#include "config.h"
#include "train/model.h"
#include "util/xmalloc.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* Integer field: 0 and *out set when present and valid, 1 when absent (or
 * null), -1 when of the wrong type/range. */
static int get_int(const cJSON *root, const char *key, int *out)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
	if (!j || cJSON_IsNull(j))
		return 1;
	if (!cJSON_IsNumber(j))
		return -1;
	double d = j->valuedouble;
	if (!(d >= -1 && d <= 1e9) || floor(d) != d)
		return -1;
	*out = (int)d;
	return 0;
}

static int get_num(const cJSON *root, const char *key, double *out)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
	if (!j || cJSON_IsNull(j))
		return 1;
	if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble))
		return -1;
	*out = j->valuedouble;
	return 0;
}

static int get_bool(const cJSON *root, const char *key, int *out)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
	if (!j || cJSON_IsNull(j))
		return 1;
	if (!cJSON_IsBool(j))
		return -1;
	*out = cJSON_IsTrue(j);
	return 0;
}

/* What went wrong while reading config.json: either a message, or the name of
 * a field that is missing (missing = 1) or has a bad value. Each section's
 * parser fills it and returns -1, so that every message has one wording. */
struct cfg_err {
	int rc;          /* TRAIN_EFORMAT or TRAIN_EUNSUP */
	char *msg;       /* owned */
	const char *bad; /* the field at fault, when msg is NULL */
	int missing;
};

static int fail_msg(struct cfg_err *e, int rc, char *msg)
{
	e->rc = rc;
	e->msg = msg;
	return -1;
}

static int fail_field(struct cfg_err *e, const char *field, int missing)
{
	e->rc = TRAIN_EFORMAT;
	e->bad = field;
	e->missing = missing;
	return -1;
}

/* A required positive integer. */
static int req_int(const cJSON *root, const char *key, int *out, struct cfg_err *e)
{
	int r = get_int(root, key, out);
	if (r != 0 || *out <= 0)
		return fail_field(e, key, r > 0);
	return 0;
}

/* An optional field read with fn: absent leaves *ptr, a bad value fails. */
#define OPT(fn, key, ptr)                                                                   \
	do {                                                                                \
		if (fn(root, key, ptr) < 0)                                                 \
			return fail_field(e, key, 0);                                       \
	} while (0)

static int parse_gpt2(const cJSON *root, train_config *cfg, struct cfg_err *e)
{
	if (req_int(root, "n_embd", &cfg->dim, e) || req_int(root, "n_layer", &cfg->n_layer, e) ||
	    req_int(root, "n_head", &cfg->n_head, e))
		return -1;
	cfg->n_kv_head = cfg->n_head;
	cfg->ffn = 4 * cfg->dim;
	OPT(get_int, "n_inner", &cfg->ffn);
	if (get_int(root, "n_positions", &cfg->max_pos) != 0 && get_int(root, "n_ctx", &cfg->max_pos) != 0)
		return fail_field(e, "n_positions", 1);
	double eps = 1e-5;
	OPT(get_num, "layer_norm_epsilon", &eps);
	cfg->norm_eps = (float)eps;
	cfg->tied = 1;
	OPT(get_bool, "tie_word_embeddings", &cfg->tied);
	if (!cfg->tied)
		return fail_msg(e, TRAIN_EUNSUP,
				xstrdup("config.json: GPT-2 with tie_word_embeddings false is not supported"));
	cfg->qkv_bias = cfg->o_bias = cfg->mlp_bias = 1;
	const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "activation_function");
	if (act && (!cJSON_IsString(act) ||
		    (strcmp(act->valuestring, "gelu_new") && strcmp(act->valuestring, "gelu_pytorch_tanh"))))
		return fail_msg(e, TRAIN_EUNSUP,
				xstrdup("config.json: field \"activation_function\": only \"gelu_new\" "
					"is supported for gpt2"));
	int flag = 0;
	OPT(get_bool, "scale_attn_by_inverse_layer_idx", &flag);
	if (flag)
		return fail_msg(e, TRAIN_EUNSUP, xstrdup("config.json: scale_attn_by_inverse_layer_idx is not supported"));
	cfg->head_dim = cfg->n_head ? cfg->dim / cfg->n_head : 0;
	if (cfg->dim % cfg->n_head)
		return fail_msg(e, TRAIN_EFORMAT, xstrdup("config.json: n_embd must be a multiple of n_head"));
	return 0;
}

/* rope_theta, and rope_parameters (transformers 5) or rope_scaling (older
 * files): "default", or Llama 3's frequency bands. */
static int parse_rope(const cJSON *root, train_config *cfg, struct cfg_err *e)
{
	cfg->rope_theta = 10000.0;
	const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
	if (rp && !cJSON_IsNull(rp) && !cJSON_IsObject(rp))
		return fail_field(e, "rope_parameters", 0);
	if (cJSON_IsObject(rp) && get_num(rp, "rope_theta", &cfg->rope_theta) < 0)
		return fail_field(e, "rope_parameters.rope_theta", 0);
	OPT(get_num, "rope_theta", &cfg->rope_theta);
	const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
	if (!rs || cJSON_IsNull(rs))
		rs = rp;
	if (rs && !cJSON_IsNull(rs)) {
		const cJSON *ty = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
		if (!ty)
			ty = cJSON_GetObjectItemCaseSensitive(rs, "type");
		const char *tn = cJSON_IsString(ty) ? ty->valuestring : NULL;
		if (ty && !tn)
			return fail_field(e, "rope_type", 0);
		if (tn && !strcmp(tn, "llama3")) {
			double f = 0, lo = 0, hi = 0, om = 0;
			if (get_num(rs, "factor", &f) || get_num(rs, "low_freq_factor", &lo) ||
			    get_num(rs, "high_freq_factor", &hi) ||
			    get_num(rs, "original_max_position_embeddings", &om) || !(f > 0) || !(lo > 0) ||
			    !(hi > lo) || !(om > 0))
				return fail_msg(e, TRAIN_EFORMAT,
						xstrdup("config.json: llama3 rope scaling needs factor, "
							"low_freq_factor < high_freq_factor and "
							"original_max_position_embeddings"));
			cfg->rope_llama3 = 1;
			cfg->rope_factor = f;
			cfg->rope_low_freq = lo;
			cfg->rope_high_freq = hi;
			cfg->rope_orig_max = om;
		} else if (tn && strcmp(tn, "default")) {
			return fail_msg(e, TRAIN_EUNSUP,
					xasprintf("config.json: rope type \"%.32s\" is not supported "
						  "(only \"default\" and \"llama3\")", tn));
		}
	}
	if (!(cfg->rope_theta > 0))
		return fail_field(e, "rope_theta", 0);
	return 0;
}

/* llama, mistral, qwen2, qwen3: the fields they share and their biases. */
static int parse_decoder(const cJSON *root, train_config *cfg, struct cfg_err *e)
{
	if (req_int(root, "hidden_size", &cfg->dim, e) || req_int(root, "num_hidden_layers", &cfg->n_layer, e) ||
	    req_int(root, "num_attention_heads", &cfg->n_head, e) || req_int(root, "intermediate_size", &cfg->ffn, e))
		return -1;
	cfg->n_kv_head = cfg->n_head;
	OPT(get_int, "num_key_value_heads", &cfg->n_kv_head);
	cfg->head_dim = cfg->dim / cfg->n_head;
	OPT(get_int, "head_dim", &cfg->head_dim);
	cfg->max_pos = 2048;
	OPT(get_int, "max_position_embeddings", &cfg->max_pos);
	double eps = 1e-6;
	OPT(get_num, "rms_norm_eps", &eps);
	cfg->norm_eps = (float)eps;
	if (parse_rope(root, cfg, e))
		return -1;
	const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
	if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu")))
		return fail_msg(e, TRAIN_EUNSUP, xstrdup("config.json: field \"hidden_act\": only \"silu\" is supported"));
	cfg->tied = 0;
	OPT(get_bool, "tie_word_embeddings", &cfg->tied);
	int ab = 0, mb = 0;
	OPT(get_bool, "attention_bias", &ab);
	OPT(get_bool, "mlp_bias", &mb);
	switch (cfg->arch) {
	case TRAIN_ARCH_LLAMA:
		cfg->qkv_bias = cfg->o_bias = ab;
		cfg->mlp_bias = mb;
		break;
	case TRAIN_ARCH_MISTRAL:
		break;
	case TRAIN_ARCH_QWEN2:
		cfg->qkv_bias = 1;
		break;
	case TRAIN_ARCH_QWEN3:
		cfg->qkv_bias = cfg->o_bias = ab;
		cfg->qk_norm = 1;
		break;
	default:
		break;
	}
	/* sliding-window attention equals full attention within the window:
	 * support sequences up to the window length */
	int sw = 0, use_sw = cfg->arch == TRAIN_ARCH_MISTRAL;
	OPT(get_bool, "use_sliding_window", &use_sw);
	OPT(get_int, "sliding_window", &sw);
	if (use_sw && sw > 0 && sw < cfg->max_pos)
		cfg->max_pos = sw;
	if (cfg->head_dim <= 0 || cfg->head_dim % 2)
		return fail_msg(e, TRAIN_EFORMAT, xstrdup("config.json: field \"head_dim\" must be a positive even number"));
	return 0;
}

/* Sizes every architecture must respect, then initializer_range and the
 * bos/eos token ids (eos may be one id or a list). */
static int parse_common(const cJSON *root, train_config *cfg, struct cfg_err *e)
{
	if (cfg->ffn <= 0 || cfg->max_pos <= 0)
		return fail_field(e, cfg->ffn <= 0 ? "intermediate_size" : "max_position_embeddings", 0);
	if (cfg->n_kv_head <= 0 || cfg->n_head % cfg->n_kv_head)
		return fail_msg(e, TRAIN_EFORMAT,
				xstrdup("config.json: num_attention_heads must be a multiple of num_key_value_heads"));
	/* keep every size well inside int arithmetic of the kernels */
	if (cfg->dim > 65536 || cfg->ffn > 262144 || cfg->n_head > 1024 || cfg->head_dim > 1024 ||
	    cfg->n_layer > 1024 || cfg->vocab > 4000000 || cfg->max_pos > 1 << 20 ||
	    (double)cfg->vocab * cfg->dim > 4e9)
		return fail_msg(e, TRAIN_EUNSUP, xstrdup("config.json: model dimensions out of the supported range"));
	double ir = 0.02;
	OPT(get_num, "initializer_range", &ir);
	cfg->init_range = ir > 0 ? ir : 0.02;
	OPT(get_int, "bos_token_id", &cfg->bos);
	const cJSON *eos = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
	if (cJSON_IsNumber(eos)) {
		int v;
		if (get_int(root, "eos_token_id", &v) != 0 || v < 0)
			return fail_field(e, "eos_token_id", 0);
		cfg->eos[cfg->n_eos++] = v;
	} else if (cJSON_IsArray(eos)) {
		for (const cJSON *x = eos->child; x; x = x->next) {
			if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 1e9 ||
			    floor(x->valuedouble) != x->valuedouble)
				return fail_field(e, "eos_token_id", 0);
			if (cfg->n_eos < TRAIN_MAX_EOS)
				cfg->eos[cfg->n_eos++] = (int)x->valuedouble;
		}
	} else if (eos && !cJSON_IsNull(eos)) {
		return fail_field(e, "eos_token_id", 0);
	}
	return 0;
}
#undef OPT

/* model_type, one of the supported architectures. */
static int parse_arch(const cJSON *root, train_config *cfg, struct cfg_err *e)
{
	static const struct {
		const char *name;
		train_arch arch;
	} archs[] = {
		{"gpt2", TRAIN_ARCH_GPT2},       {"llama", TRAIN_ARCH_LLAMA}, {"mistral", TRAIN_ARCH_MISTRAL},
		{"qwen2", TRAIN_ARCH_QWEN2},     {"qwen3", TRAIN_ARCH_QWEN3},
	};
	const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
	if (!cJSON_IsString(mt))
		return fail_msg(e, TRAIN_EFORMAT, xstrdup("config.json: field \"model_type\" missing or not a string"));
	for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
		if (!strcmp(mt->valuestring, archs[i].name)) {
			cfg->arch = archs[i].arch;
			snprintf(cfg->model_type, sizeof cfg->model_type, "%s", archs[i].name);
		}
	if (!cfg->arch)
		return fail_msg(e, TRAIN_EUNSUP,
				xasprintf("config.json: unsupported architecture \"%.64s\" (expected gpt2, "
					  "llama, mistral, qwen2 or qwen3)", mt->valuestring));
	return 0;
}

int train_config_parse(const char *json, size_t len, train_config *cfg, char **err)
{
	struct cfg_err e = {TRAIN_EFORMAT, NULL, NULL, 0};
	int rc = 0;
	cJSON *root = cJSON_ParseWithLength(json, len);
	memset(cfg, 0, sizeof *cfg);
	if (!root || !cJSON_IsObject(root)) {
		rc = fail_msg(&e, TRAIN_EFORMAT, xstrdup("config.json: not a JSON object"));
		goto out;
	}
	if ((rc = parse_arch(root, cfg, &e)))
		goto out;
	cfg->bos = -1;
	cfg->init_range = 0.02;
	if ((rc = req_int(root, "vocab_size", &cfg->vocab, &e)))
		goto out;
	rc = cfg->arch == TRAIN_ARCH_GPT2 ? parse_gpt2(root, cfg, &e) : parse_decoder(root, cfg, &e);
	if (!rc)
		rc = parse_common(root, cfg, &e);
out:
	cJSON_Delete(root);
	if (!rc)
		return 0;
	if (!e.msg)
		e.msg = xasprintf(e.missing ? "config.json: field \"%s\" missing" : "config.json: field \"%s\" has a bad value",
				  e.bad);
	if (err)
		*err = e.msg;
	else
		free(e.msg);
	return e.rc;
}

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

int train_config_parse(const char *json, size_t len, train_config *cfg, char **err)
{
	int rc = TRAIN_EFORMAT;
	char *msg = NULL;
	const char *bad = NULL; /* the field at fault */
	cJSON *root = cJSON_ParseWithLength(json, len);
	memset(cfg, 0, sizeof *cfg);
	if (!root || !cJSON_IsObject(root)) {
		msg = xstrdup("config.json: not a JSON object");
		goto out;
	}
	const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
	if (!cJSON_IsString(mt)) {
		msg = xstrdup("config.json: field \"model_type\" missing or not a string");
		goto out;
	}
	static const struct { const char *name; train_arch arch; } archs[] = {
		{"gpt2", TRAIN_ARCH_GPT2}, {"llama", TRAIN_ARCH_LLAMA},
		{"mistral", TRAIN_ARCH_MISTRAL}, {"qwen2", TRAIN_ARCH_QWEN2},
		{"qwen3", TRAIN_ARCH_QWEN3},
	};
	for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
		if (!strcmp(mt->valuestring, archs[i].name)) {
			cfg->arch = archs[i].arch;
			snprintf(cfg->model_type, sizeof cfg->model_type, "%s", archs[i].name);
		}
	if (!cfg->arch) {
		rc = TRAIN_EUNSUP;
		msg = xasprintf("config.json: unsupported architecture \"%.64s\" (expected gpt2, "
				"llama, mistral, qwen2 or qwen3)", mt->valuestring);
		goto out;
	}
	int r;
	cfg->bos = -1;
	cfg->init_range = 0.02;
#define REQ_INT(key, field)                                                                 \
	do {                                                                                \
		if ((r = get_int(root, key, &cfg->field)) != 0 || cfg->field <= 0) {        \
			bad = key;                                                          \
			goto badfield;                                                      \
		}                                                                           \
	} while (0)
#define OPT(fn, key, ptr)                                                                   \
	do {                                                                                \
		if (fn(root, key, ptr) < 0) {                                               \
			bad = key;                                                          \
			r = -1;                                                             \
			goto badfield;                                                      \
		}                                                                           \
	} while (0)
	REQ_INT("vocab_size", vocab);
	if (cfg->arch == TRAIN_ARCH_GPT2) {
		REQ_INT("n_embd", dim);
		REQ_INT("n_layer", n_layer);
		REQ_INT("n_head", n_head);
		cfg->n_kv_head = cfg->n_head;
		cfg->ffn = 4 * cfg->dim;
		OPT(get_int, "n_inner", &cfg->ffn);
		if (get_int(root, "n_positions", &cfg->max_pos) != 0 &&
		    get_int(root, "n_ctx", &cfg->max_pos) != 0) {
			bad = "n_positions";
			r = 1;
			goto badfield;
		}
		double eps = 1e-5;
		OPT(get_num, "layer_norm_epsilon", &eps);
		cfg->norm_eps = (float)eps;
		cfg->tied = 1;
		OPT(get_bool, "tie_word_embeddings", &cfg->tied);
		if (!cfg->tied) {
			rc = TRAIN_EUNSUP;
			msg = xstrdup("config.json: GPT-2 with tie_word_embeddings false is not supported");
			goto out;
		}
		cfg->qkv_bias = cfg->o_bias = cfg->mlp_bias = 1;
		const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "activation_function");
		if (act && (!cJSON_IsString(act) || (strcmp(act->valuestring, "gelu_new") &&
						     strcmp(act->valuestring, "gelu_pytorch_tanh")))) {
			rc = TRAIN_EUNSUP;
			msg = xstrdup("config.json: field \"activation_function\": only \"gelu_new\" "
				      "is supported for gpt2");
			goto out;
		}
		int flag = 0;
		OPT(get_bool, "scale_attn_by_inverse_layer_idx", &flag);
		if (flag) {
			rc = TRAIN_EUNSUP;
			msg = xstrdup("config.json: scale_attn_by_inverse_layer_idx is not supported");
			goto out;
		}
		cfg->head_dim = cfg->n_head ? cfg->dim / cfg->n_head : 0;
		if (cfg->dim % cfg->n_head) {
			msg = xstrdup("config.json: n_embd must be a multiple of n_head");
			goto out;
		}
	} else {
		REQ_INT("hidden_size", dim);
		REQ_INT("num_hidden_layers", n_layer);
		REQ_INT("num_attention_heads", n_head);
		REQ_INT("intermediate_size", ffn);
		cfg->n_kv_head = cfg->n_head;
		OPT(get_int, "num_key_value_heads", &cfg->n_kv_head);
		cfg->head_dim = cfg->dim / cfg->n_head;
		OPT(get_int, "head_dim", &cfg->head_dim);
		cfg->max_pos = 2048;
		OPT(get_int, "max_position_embeddings", &cfg->max_pos);
		double eps = 1e-6;
		OPT(get_num, "rms_norm_eps", &eps);
		cfg->norm_eps = (float)eps;
		cfg->rope_theta = 10000.0;
		/* rope_parameters (transformers 5) or rope_scaling (older files):
		 * "default", or Llama 3's frequency bands */
		const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
		if (rp && !cJSON_IsNull(rp) && !cJSON_IsObject(rp)) {
			bad = "rope_parameters";
			r = -1;
			goto badfield;
		}
		if (cJSON_IsObject(rp) && get_num(rp, "rope_theta", &cfg->rope_theta) < 0) {
			bad = "rope_parameters.rope_theta";
			r = -1;
			goto badfield;
		}
		OPT(get_num, "rope_theta", &cfg->rope_theta);
		const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
		if (!rs || cJSON_IsNull(rs))
			rs = rp;
		if (rs && !cJSON_IsNull(rs)) {
			const cJSON *ty = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
			if (!ty)
				ty = cJSON_GetObjectItemCaseSensitive(rs, "type");
			const char *tn = cJSON_IsString(ty) ? ty->valuestring : NULL;
			if (ty && !tn) {
				bad = "rope_type";
				r = -1;
				goto badfield;
			}
			if (tn && !strcmp(tn, "llama3")) {
				double f = 0, lo = 0, hi = 0, om = 0;
				if (get_num(rs, "factor", &f) || get_num(rs, "low_freq_factor", &lo) ||
				    get_num(rs, "high_freq_factor", &hi) ||
				    get_num(rs, "original_max_position_embeddings", &om) || !(f > 0) ||
				    !(lo > 0) || !(hi > lo) || !(om > 0)) {
					msg = xstrdup("config.json: llama3 rope scaling needs factor, "
						      "low_freq_factor < high_freq_factor and "
						      "original_max_position_embeddings");
					goto out;
				}
				cfg->rope_llama3 = 1;
				cfg->rope_factor = f;
				cfg->rope_low_freq = lo;
				cfg->rope_high_freq = hi;
				cfg->rope_orig_max = om;
			} else if (tn && strcmp(tn, "default")) {
				rc = TRAIN_EUNSUP;
				msg = xasprintf("config.json: rope type \"%.32s\" is not supported "
						"(only \"default\" and \"llama3\")", tn);
				goto out;
			}
		}
		if (!(cfg->rope_theta > 0)) {
			bad = "rope_theta";
			r = -1;
			goto badfield;
		}
		const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
		if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu"))) {
			rc = TRAIN_EUNSUP;
			msg = xstrdup("config.json: field \"hidden_act\": only \"silu\" is supported");
			goto out;
		}
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
		/* sliding-window attention equals full attention within the
		 * window: support sequences up to the window length */
		int sw = 0, use_sw = cfg->arch == TRAIN_ARCH_MISTRAL;
		OPT(get_bool, "use_sliding_window", &use_sw);
		OPT(get_int, "sliding_window", &sw);
		if (use_sw && sw > 0 && sw < cfg->max_pos)
			cfg->max_pos = sw;
		if (cfg->head_dim <= 0 || cfg->head_dim % 2) {
			msg = xstrdup("config.json: field \"head_dim\" must be a positive even number");
			goto out;
		}
	}
	if (cfg->ffn <= 0 || cfg->max_pos <= 0) {
		bad = cfg->ffn <= 0 ? "intermediate_size" : "max_position_embeddings";
		r = -1;
		goto badfield;
	}
	if (cfg->n_kv_head <= 0 || cfg->n_head % cfg->n_kv_head) {
		msg = xstrdup("config.json: num_attention_heads must be a multiple of "
			      "num_key_value_heads");
		goto out;
	}
	/* keep every size well inside int arithmetic of the kernels */
	if (cfg->dim > 65536 || cfg->ffn > 262144 || cfg->n_head > 1024 || cfg->head_dim > 1024 ||
	    cfg->n_layer > 1024 || cfg->vocab > 4000000 || cfg->max_pos > 1 << 20 ||
	    (double)cfg->vocab * cfg->dim > 4e9) {
		rc = TRAIN_EUNSUP;
		msg = xstrdup("config.json: model dimensions out of the supported range");
		goto out;
	}
	double ir = 0.02;
	OPT(get_num, "initializer_range", &ir);
	cfg->init_range = ir > 0 ? ir : 0.02;
	OPT(get_int, "bos_token_id", &cfg->bos);
	const cJSON *eos = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
	if (cJSON_IsNumber(eos)) {
		int v;
		if (get_int(root, "eos_token_id", &v) != 0 || v < 0) {
			bad = "eos_token_id";
			r = -1;
			goto badfield;
		}
		cfg->eos[cfg->n_eos++] = v;
	} else if (cJSON_IsArray(eos)) {
		for (const cJSON *e = eos->child; e; e = e->next) {
			if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 1e9 ||
			    floor(e->valuedouble) != e->valuedouble) {
				bad = "eos_token_id";
				r = -1;
				goto badfield;
			}
			if (cfg->n_eos < TRAIN_MAX_EOS)
				cfg->eos[cfg->n_eos++] = (int)e->valuedouble;
		}
	} else if (eos && !cJSON_IsNull(eos)) {
		bad = "eos_token_id";
		r = -1;
		goto badfield;
	}
	rc = 0;
	goto out;
badfield:
	if (r > 0)
		msg = xasprintf("config.json: field \"%s\" missing", bad);
	else
		msg = xasprintf("config.json: field \"%s\" has a bad value", bad);
out:
	cJSON_Delete(root);
	if (rc && err)
		*err = msg;
	else
		free(msg);
	return rc;
}

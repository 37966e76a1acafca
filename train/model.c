/* model.c: weights layout, loading, init, saving and the forward passes. */
#include "config.h"
#include "train/model.h"
#include "train/layers.h"
#include "train/decode_bf16.h"
#include "train/matvec_bf16.h"
#include "train/vecmath_bf16.h"
#include "train/model_bf16.h"
#include "train/lora.h"
#include "train/safetensors.h"
#include "util/buf.h"
#include "util/file.h"
#include "util/rand.h"
#include "util/sha256.h"
#include "util/xmalloc.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct train_model {
	train_config cfg;
	char *config_json;      /* config.json as written out by save */
	char *dir;              /* NULL after init */
	char dtype[12];
	float *params;
	size_t nparams;
	train_weights w;
	train_param *table;
	int ntable;
	float *rope_cos, *rope_sin;
	char fingerprint[65];
	train_bf16 *bf;         /* bf16 inference storage (params NULL), or NULL */
	struct train_lora *lora; /* adapter added to every forward */
	int owns_lora;           /* freed with the model (train_lora_model_load) */
};

/* ---- layout ---- */

static size_t qkv_rows(const train_config *c)
{
	return (size_t)(c->n_head + 2 * c->n_kv_head) * c->head_dim;
}

static size_t fc_rows(const train_config *c)
{
	return c->arch == TRAIN_ARCH_GPT2 ? (size_t)c->ffn : 2 * (size_t)c->ffn;
}

/* Hand out n floats of the arena (NULL pointers when base is NULL or n == 0). */
static float *take(float *base, size_t *off, size_t n)
{
	float *p = base && n ? base + *off : NULL;
	*off += n;
	return p;
}

size_t train_weights_layout(const train_config *c, float *base, train_weights *w)
{
	train_weights tmp;
	size_t off = 0, L = c->n_layer, C = c->dim, V = c->vocab, I = c->ffn;
	size_t QKV = qkv_rows(c), F = fc_rows(c), A = (size_t)c->n_head * c->head_dim;
	int gpt2 = c->arch == TRAIN_ARCH_GPT2;
	if (!w)
		w = &tmp;
	memset(w, 0, sizeof *w);
	w->wte = take(base, &off, V * C);
	w->wpe = take(base, &off, gpt2 ? (size_t)c->max_pos * C : 0);
	w->ln1w = take(base, &off, L * C);
	w->ln1b = take(base, &off, gpt2 ? L * C : 0);
	w->wqkv = take(base, &off, L * QKV * C);
	w->bqkv = take(base, &off, c->qkv_bias ? L * QKV : 0);
	w->qnorm = take(base, &off, c->qk_norm ? L * c->head_dim : 0);
	w->knorm = take(base, &off, c->qk_norm ? L * c->head_dim : 0);
	w->wo = take(base, &off, L * C * A);
	w->bo = take(base, &off, c->o_bias ? L * C : 0);
	w->ln2w = take(base, &off, L * C);
	w->ln2b = take(base, &off, gpt2 ? L * C : 0);
	w->wfc = take(base, &off, L * F * C);
	w->bfc = take(base, &off, c->mlp_bias ? L * F : 0);
	w->wproj = take(base, &off, L * C * I);
	w->bproj = take(base, &off, c->mlp_bias ? L * C : 0);
	w->lnfw = take(base, &off, C);
	w->lnfb = take(base, &off, gpt2 ? C : 0);
	if (c->tied)
		w->lm_head = w->wte;
	else
		w->lm_head = take(base, &off, V * C);
	return off;
}

size_t train_acts_layout(const train_config *c, int B, int T, float *base, train_acts *a)
{
	train_acts tmp;
	size_t off = 0, L = c->n_layer, C = c->dim, N = (size_t)B * T, I = c->ffn;
	size_t QKV = qkv_rows(c), F = fc_rows(c);
	size_t QD = (size_t)c->n_head * c->head_dim, KD = (size_t)c->n_kv_head * c->head_dim;
	int gpt2 = c->arch == TRAIN_ARCH_GPT2;
	if (!a)
		a = &tmp;
	memset(a, 0, sizeof *a);
	a->B = B;
	a->T = T;
	a->encoded = take(base, &off, N * C);
	a->ln1 = take(base, &off, L * N * C);
	a->ln1_mean = take(base, &off, gpt2 ? L * N : 0);
	a->ln1_rstd = take(base, &off, L * N);
	a->qkv = take(base, &off, L * N * QKV);
	a->q = take(base, &off, L * N * QD);
	a->k = take(base, &off, L * N * KD);
	a->v = take(base, &off, L * N * KD);
	a->q_rstd = take(base, &off, c->qk_norm ? L * N * c->n_head : 0);
	a->k_rstd = take(base, &off, c->qk_norm ? L * N * c->n_kv_head : 0);
	a->qr = take(base, &off, L * N * QD);
	a->kr = take(base, &off, L * N * KD);
	a->lse = take(base, &off, L * N * c->n_head);
	a->atty = take(base, &off, L * N * QD);
	a->attproj = take(base, &off, L * N * C);
	a->res1 = take(base, &off, L * N * C);
	a->ln2 = take(base, &off, L * N * C);
	a->ln2_mean = take(base, &off, gpt2 ? L * N : 0);
	a->ln2_rstd = take(base, &off, L * N);
	a->fch = take(base, &off, L * N * F);
	a->fch_act = take(base, &off, L * N * I);
	a->mlpproj = take(base, &off, L * N * C);
	a->res2 = take(base, &off, L * N * C);
	a->lnf = take(base, &off, N * C);
	a->lnf_mean = take(base, &off, gpt2 ? N : 0);
	a->lnf_rstd = take(base, &off, N);
	a->logp = take(base, &off, N);
	a->logp_lse = take(base, &off, N);
	return off;
}

/* ---- parameter table ---- */

static void add_param(train_model *m, int *cap, const char *name, int ndim, int64_t d0,
		      int64_t d1, const float *p, int transposed)
{
	if (m->ntable == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		m->table = xreallocarray(m->table, *cap, sizeof *m->table);
	}
	train_param *t = &m->table[m->ntable++];
	t->name = xstrdup(name);
	t->ndim = ndim;
	t->shape[0] = d0;
	t->shape[1] = ndim == 2 ? d1 : 0;
	t->numel = (size_t)d0 * (ndim == 2 ? (size_t)d1 : 1);
	t->offset = (size_t)(p - m->params);
	t->transposed = transposed;
}

static void build_table(train_model *m)
{
	const train_config *c = &m->cfg;
	const train_weights *w = &m->w;
	int cap = 0;
	char name[160];
	size_t C = c->dim, I = c->ffn, QKV = qkv_rows(c), F = fc_rows(c);
	size_t QD = (size_t)c->n_head * c->head_dim, KD = (size_t)c->n_kv_head * c->head_dim;
	int hd = c->head_dim;
	if (c->arch == TRAIN_ARCH_GPT2) {
		add_param(m, &cap, "transformer.wte.weight", 2, c->vocab, C, w->wte, 0);
		add_param(m, &cap, "transformer.wpe.weight", 2, c->max_pos, C, w->wpe, 0);
		for (int l = 0; l < c->n_layer; l++) {
#define P(suffix, nd, d0, d1, ptr, tr)                                                      \
	do {                                                                                \
		snprintf(name, sizeof name, "transformer.h.%d.%s", l, suffix);              \
		add_param(m, &cap, name, nd, d0, d1, ptr, tr);                              \
	} while (0)
			P("ln_1.weight", 1, C, 0, w->ln1w + l * C, 0);
			P("ln_1.bias", 1, C, 0, w->ln1b + l * C, 0);
			P("attn.c_attn.weight", 2, C, QKV, w->wqkv + l * QKV * C, 1);
			P("attn.c_attn.bias", 1, QKV, 0, w->bqkv + l * QKV, 0);
			P("attn.c_proj.weight", 2, C, C, w->wo + l * C * C, 1);
			P("attn.c_proj.bias", 1, C, 0, w->bo + l * C, 0);
			P("ln_2.weight", 1, C, 0, w->ln2w + l * C, 0);
			P("ln_2.bias", 1, C, 0, w->ln2b + l * C, 0);
			P("mlp.c_fc.weight", 2, C, I, w->wfc + l * I * C, 1);
			P("mlp.c_fc.bias", 1, I, 0, w->bfc + l * I, 0);
			P("mlp.c_proj.weight", 2, I, C, w->wproj + l * C * I, 1);
			P("mlp.c_proj.bias", 1, C, 0, w->bproj + l * C, 0);
#undef P
		}
		add_param(m, &cap, "transformer.ln_f.weight", 1, C, 0, w->lnfw, 0);
		add_param(m, &cap, "transformer.ln_f.bias", 1, C, 0, w->lnfb, 0);
		return;
	}
	add_param(m, &cap, "model.embed_tokens.weight", 2, c->vocab, C, w->wte, 0);
	for (int l = 0; l < c->n_layer; l++) {
#define P(suffix, nd, d0, d1, ptr)                                                          \
	do {                                                                                \
		snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix);               \
		add_param(m, &cap, name, nd, d0, d1, ptr, 0);                               \
	} while (0)
		const float *wq = w->wqkv + l * QKV * C;
		P("input_layernorm.weight", 1, C, 0, w->ln1w + l * C);
		P("self_attn.q_proj.weight", 2, QD, C, wq);
		P("self_attn.k_proj.weight", 2, KD, C, wq + QD * C);
		P("self_attn.v_proj.weight", 2, KD, C, wq + (QD + KD) * C);
		if (c->qkv_bias) {
			const float *bq = w->bqkv + l * QKV;
			P("self_attn.q_proj.bias", 1, QD, 0, bq);
			P("self_attn.k_proj.bias", 1, KD, 0, bq + QD);
			P("self_attn.v_proj.bias", 1, KD, 0, bq + QD + KD);
		}
		if (c->qk_norm) {
			P("self_attn.q_norm.weight", 1, hd, 0, w->qnorm + l * hd);
			P("self_attn.k_norm.weight", 1, hd, 0, w->knorm + l * hd);
		}
		P("self_attn.o_proj.weight", 2, C, QD, w->wo + l * C * QD);
		if (c->o_bias)
			P("self_attn.o_proj.bias", 1, C, 0, w->bo + l * C);
		P("post_attention_layernorm.weight", 1, C, 0, w->ln2w + l * C);
		P("mlp.gate_proj.weight", 2, I, C, w->wfc + l * F * C);
		P("mlp.up_proj.weight", 2, I, C, w->wfc + l * F * C + I * C);
		P("mlp.down_proj.weight", 2, C, I, w->wproj + l * C * I);
		if (c->mlp_bias) {
			P("mlp.gate_proj.bias", 1, I, 0, w->bfc + l * F);
			P("mlp.up_proj.bias", 1, I, 0, w->bfc + l * F + I);
			P("mlp.down_proj.bias", 1, C, 0, w->bproj + l * C);
		}
#undef P
	}
	add_param(m, &cap, "model.norm.weight", 1, C, 0, w->lnfw, 0);
	if (!c->tied)
		add_param(m, &cap, "lm_head.weight", 2, c->vocab, C, w->lm_head, 0);
}

/* Allocate the arena, table and rope tables for m->cfg. */
static void model_alloc(train_model *m)
{
	m->nparams = train_weights_layout(&m->cfg, NULL, NULL);
	/* streamed whole at every decode step and training step: in huge
	 * pages */
	m->params = xcalloc_huge(m->nparams ? m->nparams : 1, sizeof(float));
	train_weights_layout(&m->cfg, m->params, &m->w);
	build_table(m);
	snprintf(m->dtype, sizeof m->dtype, "F32");
}

/* model_alloc for bf16 inference: the f32 arena is only laid out (never
 * touched) to get the table's offsets, then replaced by bf16 storage. */
static void model_alloc_bf16(train_model *m)
{
	m->nparams = train_weights_layout(&m->cfg, NULL, NULL);
	m->params = xmalloc(sizeof(float) * (m->nparams ? m->nparams : 1));
	train_weights_layout(&m->cfg, m->params, &m->w);
	build_table(m);
	snprintf(m->dtype, sizeof m->dtype, "F32");
	m->bf = train_bf16_new(&m->cfg, m->params, m->table, m->ntable, &m->w);
	free(m->params);
	m->params = NULL;
}

/* RoPE tables for the weights' dtype (see train_rope_tables). */
static void model_rope(train_model *m)
{
	if (m->cfg.arch == TRAIN_ARCH_GPT2)
		return;
	size_t n = (size_t)m->cfg.max_pos * (m->cfg.head_dim / 2);
	int dt = !strcmp(m->dtype, "BF16") ? 1 : !strcmp(m->dtype, "F16") ? 2 : 0;
	free(m->rope_cos);
	free(m->rope_sin);
	m->rope_cos = xmalloc(sizeof(float) * n);
	m->rope_sin = xmalloc(sizeof(float) * n);
	if (!m->cfg.rope_llama3) {
		train_rope_tables(m->rope_cos, m->rope_sin, m->cfg.max_pos, m->cfg.head_dim,
				  m->cfg.rope_theta, dt);
		return;
	}
	/* Llama 3: low frequencies (long wavelengths) divided by factor, high
	 * ones kept, a linear blend in between (in wavelength units of the
	 * original context) */
	const train_config *c = &m->cfg;
	int h = c->head_dim / 2;
	double *inv = xmalloc(sizeof(double) * h);
	double lo_wl = c->rope_orig_max / c->rope_low_freq;
	double hi_wl = c->rope_orig_max / c->rope_high_freq;
	for (int i = 0; i < h; i++) {
		double f = (float)pow(c->rope_theta, -(2.0 * i) / c->head_dim);
		double wl = 2 * M_PI / f;
		if (wl > lo_wl) {
			f /= c->rope_factor;
		} else if (wl >= hi_wl) {
			double sm = (c->rope_orig_max / wl - c->rope_low_freq) /
				    (c->rope_high_freq - c->rope_low_freq);
			f = (1 - sm) * f / c->rope_factor + sm * f;
		}
		inv[i] = train_round_dtype((float)f, dt);
	}
	train_rope_tables_freq(m->rope_cos, m->rope_sin, c->max_pos, c->head_dim, inv);
	free(inv);
}

void train_model_free(train_model *m)
{
	if (!m)
		return;
	for (int i = 0; i < m->ntable; i++)
		free((char *)m->table[i].name);
	free(m->table);
	free(m->params);
	train_bf16_free(m->bf);
	free(m->rope_cos);
	free(m->rope_sin);
	free(m->config_json);
	free(m->dir);
	if (m->owns_lora)
		train_lora_free(m->lora);
	free(m);
}

/* config.json with "dtype"/"torch_dtype" set to float32 (we save F32). */
static char *normalise_config(const char *json, size_t len)
{
	cJSON *root = cJSON_ParseWithLength(json, len);
	if (!root)
		return xstrndup(json, len);
	const char *keys[] = {"dtype", "torch_dtype"};
	for (int i = 0; i < 2; i++)
		if (cJSON_GetObjectItemCaseSensitive(root, keys[i]))
			cJSON_ReplaceItemInObjectCaseSensitive(root, keys[i],
							       cJSON_CreateString("float32"));
	char *p = cJSON_Print(root);
	char *s = xasprintf("%s\n", p);
	cJSON_free(p);
	cJSON_Delete(root);
	return s;
}

/* ---- loading ---- */

static char *read_file(const char *path, size_t *len, char **err)
{
	char *text = util_read_file(path, len);
	if (!text)
		*err = xasprintf("%s: %s", path, strerror(errno));
	return text;
}

/* Shard file names listed by an index (unique, sorted). */
static int read_index(const char *dir, char ***names, int *n, char **err)
{
	char *path = xasprintf("%s/model.safetensors.index.json", dir);
	size_t len;
	int rc = TRAIN_EFORMAT;
	char *text = read_file(path, &len, err);
	cJSON *root = NULL;
	*names = NULL;
	*n = 0;
	if (!text) {
		rc = TRAIN_EIO;
		goto out;
	}
	root = cJSON_ParseWithLength(text, len);
	const cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
	if (!cJSON_IsObject(wm)) {
		*err = xasprintf("%s: expected an object with \"weight_map\"", path);
		goto out;
	}
	for (const cJSON *e = wm->child; e; e = e->next) {
		if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || !e->valuestring[0] ||
		    e->valuestring[0] == '.') {
			*err = xasprintf("%s: weight_map[\"%s\"]: expected a file name in the same "
					 "folder", path, e->string ? e->string : "");
			goto out;
		}
		int seen = 0;
		for (int i = 0; i < *n; i++)
			if (!strcmp((*names)[i], e->valuestring))
				seen = 1;
		if (!seen) {
			*names = xreallocarray(*names, *n + 1, sizeof **names);
			(*names)[(*n)++] = xstrdup(e->valuestring);
		}
	}
	for (int i = 0; i < *n; i++)
		for (int j = i + 1; j < *n; j++)
			if (strcmp((*names)[i], (*names)[j]) > 0) {
				char *t = (*names)[i];
				(*names)[i] = (*names)[j];
				(*names)[j] = t;
			}
	rc = 0;
out:
	cJSON_Delete(root);
	free(text);
	free(path);
	return rc;
}

static void hash_file(util_sha256 *h, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char buf[1 << 16];
	ssize_t r;
	if (fd < 0)
		return;
	while ((r = read(fd, buf, sizeof buf)) > 0)
		util_sha256_update(h, buf, (size_t)r);
	close(fd);
}

/* Copy tensor t (HF layout) into the arena slot of param p, checking shape. */
static int load_param(train_model *m, const train_st_file *f, const char *fname,
		      const train_st_tensor *t, const train_param *p, char **err)
{
	int ok = t->ndim == p->ndim && t->shape[0] == p->shape[0] &&
		 (p->ndim == 1 || t->shape[1] == p->shape[1]);
	if (!ok) {
		util_buf b = UTIL_BUF_INIT;
		util_buf_addf(&b, "%s: tensor \"%s\": shape [", fname, p->name);
		for (int i = 0; i < t->ndim; i++)
			util_buf_addf(&b, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
		util_buf_addf(&b, "], expected [%lld", (long long)p->shape[0]);
		if (p->ndim == 2)
			util_buf_addf(&b, ", %lld", (long long)p->shape[1]);
		util_buf_adds(&b, "]");
		*err = util_buf_detach(&b);
		return TRAIN_ESHAPE;
	}
	if (m->bf) {
		char *e2 = NULL;
		if (train_bf16_load(m->bf, f, t, p, &e2)) {
			*err = xasprintf("%s: %s", fname, e2);
			free(e2);
			return TRAIN_EUNSUP;
		}
		return 0;
	}
	float *dst = m->params + p->offset;
	if (!p->transposed) {
		char *e2 = NULL;
		if (train_st_read_f32(f, t, dst, &e2)) {
			*err = xasprintf("%s: %s", fname, e2);
			free(e2);
			return TRAIN_EUNSUP;
		}
		return 0;
	}
	float *tmp = xmalloc(sizeof(float) * p->numel);
	char *e2 = NULL;
	if (train_st_read_f32(f, t, tmp, &e2)) {
		*err = xasprintf("%s: %s", fname, e2);
		free(e2);
		free(tmp);
		return TRAIN_EUNSUP;
	}
	size_t rows = (size_t)p->shape[0], cols = (size_t)p->shape[1];
	for (size_t r = 0; r < rows; r++)
		for (size_t c = 0; c < cols; c++)
			dst[c * rows + r] = tmp[r * cols + c];
	free(tmp);
	return 0;
}

static train_model *model_load(const char *dir, int bf16, char **err)
{
	train_model *m = xcalloc(1, sizeof *m);
	char *path = NULL, *text = NULL;
	char **shards = NULL;
	int nshards = 0, rc = 0;
	train_st_file **files = NULL;
	size_t len;
	*err = NULL;

	path = xasprintf("%s/config.json", dir);
	text = read_file(path, &len, err);
	if (!text)
		goto fail;
	char *cerr = NULL;
	if (train_config_parse(text, len, &m->cfg, &cerr)) {
		*err = xasprintf("%s/%s", dir, cerr);
		free(cerr);
		goto fail;
	}
	m->config_json = normalise_config(text, len);
	m->dir = xstrdup(dir);
	free(path);
	path = xasprintf("%s/model.safetensors", dir);
	if (access(path, F_OK) == 0) {
		shards = xmalloc(sizeof *shards);
		shards[0] = xstrdup("model.safetensors");
		nshards = 1;
	} else {
		free(path);
		path = xasprintf("%s/model.safetensors.index.json", dir);
		if (access(path, F_OK) != 0) {
			*err = xasprintf("%s: no model.safetensors or model.safetensors.index.json",
					 dir);
			goto fail;
		}
		if (read_index(dir, &shards, &nshards, err))
			goto fail;
		if (nshards == 0) {
			*err = xasprintf("%s: empty weight_map", path);
			goto fail;
		}
	}
	files = xcalloc(nshards, sizeof *files);
	for (int i = 0; i < nshards; i++) {
		free(path);
		path = xasprintf("%s/%s", dir, shards[i]);
		if (!(files[i] = train_st_open(path, err)))
			goto fail;
	}
	if (bf16)
		model_alloc_bf16(m);
	else
		model_alloc(m);
	/* every parameter must be found in some shard */
	int dtype_set = 0, nbare = 0;
	for (int i = 0; i < m->ntable; i++) {
		const train_param *p = &m->table[i];
		const train_st_tensor *t = NULL;
		int fi;
		for (fi = 0; fi < nshards && !t; fi++)
			t = train_st_find(files[fi], p->name);
		fi--;
		if (!t && m->cfg.arch == TRAIN_ARCH_GPT2) {
			/* GPT2Model files name tensors without "transformer." */
			const char *bare = p->name + strlen("transformer.");
			for (fi = 0; fi < nshards && !t; fi++)
				t = train_st_find(files[fi], bare);
			fi--;
			nbare += t != NULL;
		}
		if (!t) {
			*err = xasprintf("%s: missing tensor \"%s\"", dir, p->name);
			rc = TRAIN_EMISSING;
			goto fail;
		}
		free(path);
		path = xasprintf("%s/%s", dir, shards[fi]);
		if ((rc = load_param(m, files[fi], path, t, p, err)))
			goto fail;
		if (!dtype_set) {
			snprintf(m->dtype, sizeof m->dtype, "%s", t->dtype_name);
			dtype_set = 1;
		}
	}
	if (nbare) {
		/* save under the names the input used */
		for (int i = 0; i < m->ntable; i++) {
			const char *n = m->table[i].name;
			if (!strncmp(n, "transformer.", 12)) {
				m->table[i].name = xstrdup(n + 12);
				free((char *)n);
			}
		}
	}
	model_rope(m);
	for (int i = 0; i < nshards; i++)
		train_st_close(files[i]);
	free(files);
	for (int i = 0; i < nshards; i++)
		free(shards[i]);
	free(shards);
	free(path);
	free(text);
	return m;
fail:
	(void)rc;
	if (files)
		for (int i = 0; i < nshards; i++)
			train_st_close(files[i]);
	free(files);
	for (int i = 0; i < nshards; i++)
		free(shards[i]);
	free(shards);
	free(path);
	free(text);
	train_model_free(m);
	if (!*err)
		*err = xasprintf("%s: cannot load model", dir);
	return NULL;
}

/* ---- init ---- */

static double uniform01(uint64_t *s)
{
	return ((util_splitmix64(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* Normal(0, std) values, in chunks of 65536 with their own generator
 * (seeded from *s and the chunk index), so the result is the same for any
 * number of threads. */
static void fill_normal(float *p, size_t n, double std, uint64_t *s)
{
	const size_t chunk = 65536;
	uint64_t base = util_splitmix64(s);
	size_t nch = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (n > 4 * chunk)
	for (size_t c = 0; c < nch; c++) {
		uint64_t st = base ^ (0x9e3779b97f4a7c15ull * (c + 1));
		size_t end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
		for (size_t i = c * chunk; i < end; i += 2) {
			double u1 = uniform01(&st), u2 = uniform01(&st);
			double r = sqrt(-2.0 * log(u1));
			p[i] = (float)(std * r * cos(2 * M_PI * u2));
			if (i + 1 < end)
				p[i + 1] = (float)(std * r * sin(2 * M_PI * u2));
		}
	}
}

train_model *train_model_init(const char *config_json, size_t len, uint64_t seed, char **err)
{
	train_model *m = xcalloc(1, sizeof *m);
	char *cerr = NULL;
	if (train_config_parse(config_json, len, &m->cfg, &cerr)) {
		*err = cerr;
		free(m);
		return NULL;
	}
	m->config_json = normalise_config(config_json, len);
	model_alloc(m);
	model_rope(m);
	uint64_t s = seed ^ 0x6a09e667f3bcc908ull;
	double std = m->cfg.init_range;
	for (int i = 0; i < m->ntable; i++) {
		const train_param *p = &m->table[i];
		float *d = m->params + p->offset;
		const char *n = p->name;
		size_t nl = strlen(n);
		int is_norm = strstr(n, "norm") || strstr(n, "ln_");
		if (nl > 5 && !strcmp(n + nl - 5, ".bias")) {
			memset(d, 0, sizeof(float) * p->numel);
		} else if (is_norm) {
			for (size_t k = 0; k < p->numel; k++)
				d[k] = 1.0f;
		} else if (m->cfg.arch == TRAIN_ARCH_GPT2 && strstr(n, "c_proj.weight")) {
			fill_normal(d, p->numel, std / sqrt(2.0 * m->cfg.n_layer), &s);
		} else {
			fill_normal(d, p->numel, std, &s);
		}
	}
	return m;
}

/* ---- saving ---- */

static int write_text_atomic(const char *path, const char *text, char **err)
{
	if (util_write_file_atomic(path, text, strlen(text)) == 0)
		return 0;
	*err = xasprintf("%s: %s", path, strerror(errno));
	return -1;
}

int train_model_save(const train_model *m, const char *dir, char **err)
{
	if (m->bf) {
		*err = xstrdup("the model is held in bf16 for inference: cannot save it");
		return TRAIN_EUNSUP;
	}
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		*err = xasprintf("%s: %s", dir, strerror(errno));
		return TRAIN_EIO;
	}
	char *path = xasprintf("%s/config.json", dir);
	int rc = write_text_atomic(path, m->config_json, err);
	free(path);
	if (rc)
		return TRAIN_EIO;
	train_st_out *o = xcalloc(m->ntable, sizeof *o);
	for (int i = 0; i < m->ntable; i++) {
		const train_param *p = &m->table[i];
		o[i].name = p->name;
		o[i].ndim = p->ndim;
		o[i].shape[0] = p->shape[0];
		o[i].shape[1] = p->shape[1];
		if (p->transposed)
			o[i].transpose_src = m->params + p->offset;
		else
			o[i].data = m->params + p->offset;
	}
	path = xasprintf("%s/model.safetensors", dir);
	rc = train_st_write(path, o, m->ntable, err) ? TRAIN_EIO : 0;
	free(path);
	free(o);
	/* a stale index from an earlier sharded save would shadow nothing
	 * (model.safetensors wins at load), but remove it to avoid confusion */
	if (!rc) {
		path = xasprintf("%s/model.safetensors.index.json", dir);
		unlink(path);
		free(path);
	}
	return rc;
}

/* ---- accessors ---- */

void train_model_set_lora(train_model *m, struct train_lora *lo)
{
	if (m->owns_lora && m->lora != lo)
		train_lora_free(m->lora);
	m->lora = lo;
	m->owns_lora = 0;
	m->fingerprint[0] = 0; /* the adapter is part of the identity */
}

void train_model_own_lora(train_model *m, struct train_lora *lo)
{
	train_model_set_lora(m, lo);
	m->owns_lora = 1;
}

const train_config *train_model_config(const train_model *m)
{
	return &m->cfg;
}

const train_weights *train_model_weights(const train_model *m)
{
	return &m->w;
}

float *train_model_params(train_model *m)
{
	return m->params;
}

size_t train_model_nparams(const train_model *m)
{
	return m->nparams;
}

size_t train_model_param_count(const train_model *m)
{
	return m->nparams;
}

const train_param *train_model_param_table(const train_model *m, int *n)
{
	*n = m->ntable;
	return m->table;
}

const char *train_model_dtype(const train_model *m)
{
	return m->dtype;
}

const char *train_model_dir(const train_model *m)
{
	return m->dir;
}

const char *train_model_config_json(const train_model *m)
{
	return m->config_json;
}

const float *train_model_rope_cos(const train_model *m)
{
	return m->rope_cos;
}

const float *train_model_rope_sin(const train_model *m)
{
	return m->rope_sin;
}

const char *train_model_fingerprint(const train_model *m)
{
	train_model *mm = (train_model *)m; /* computed once, cached */
	if (mm->fingerprint[0])
		return mm->fingerprint;
	util_sha256 h;
	util_sha256_init(&h);
	if (m->dir) {
		char *p = xasprintf("%s/config.json", m->dir);
		hash_file(&h, p);
		free(p);
		p = xasprintf("%s/model.safetensors", m->dir);
		if (access(p, F_OK) == 0) {
			hash_file(&h, p);
		} else {
			char **names = NULL, *e = NULL;
			int n = 0;
			free(p);
			p = xasprintf("%s/model.safetensors.index.json", m->dir);
			hash_file(&h, p);
			if (read_index(m->dir, &names, &n, &e) == 0)
				for (int i = 0; i < n; i++) {
					char *q = xasprintf("%s/%s", m->dir, names[i]);
					hash_file(&h, q);
					free(q);
				}
			free(e);
			for (int i = 0; i < n; i++)
				free(names[i]);
			free(names);
		}
		free(p);
	} else {
		util_sha256_update(&h, m->config_json, strlen(m->config_json));
		size_t bytes;
		const void *blk;
		for (int i = 0; (blk = train_model_storage(mm, i, &bytes)); i++)
			util_sha256_update(&h, blk, bytes);
	}
	if (m->lora)
		train_lora_hash(m->lora, &h);
	util_sha256_final_hex(&h, mm->fingerprint);
	return mm->fingerprint;
}

/* ---- forward ---- */

/* Buffers of one transformer block for N = B*T rows. */
struct block_bufs {
	float *ln1, *ln1_mean, *ln1_rstd, *qkv, *q, *k, *v, *q_rstd, *k_rstd, *qr, *kr, *lse;
	float *atty, *attproj, *res1, *ln2, *ln2_mean, *ln2_rstd, *fch, *fch_act, *mlpproj, *res2;
};

/* Where attention reads keys/values from when a KV cache is used. */
struct kv_target {
	float *kc, *vc;   /* this layer's cache [rows, cap, NKV*hd] */
	int cap;
	const int *rows;  /* cache row of each batch row */
	const int *pos;   /* position of each batch row's first token */
	int identity;     /* rows[i] == i for all i */
};

static void norm_fwd(const train_config *c, float *out, float *mean, float *rstd,
		     const float *x, const float *w, const float *b, int N)
{
	if (c->arch == TRAIN_ARCH_GPT2)
		train_layernorm_forward(out, mean, rstd, x, w, b, N, c->dim, c->norm_eps);
	else
		train_rmsnorm_forward(out, rstd, x, w, N, c->dim, c->norm_eps);
}

/* out = inp . W^T + bias, W the f32 matrix w32 + off, or for a bf16 model
 * the bf16 one w16 + off. */
static void lin(const train_model *m, float *out, const float *inp, const float *w32,
		const uint16_t *w16, size_t off, const float *bias, int N, int C, int OC)
{
	if (m->bf)
		train_matmul_bf16_forward(out, inp, w16 + off, bias, N, C, OC);
	else
		train_matmul_forward(out, inp, w32 + off, bias, N, C, OC);
}

static const train_bf16w no_bf16w;

/* The bf16 matrices of m (all NULL for an f32 model). */
static const train_bf16w *bfw(const train_model *m)
{
	return m->bf ? train_bf16_weights(m->bf) : &no_bf16w;
}

/* The token (+ position) embedding of either storage. */
static void embed(const train_model *m, float *out, const int *ids, const int *pos, int B, int T)
{
	if (m->bf)
		train_embedding_bf16_forward(out, ids, bfw(m)->wte, bfw(m)->wpe, pos, B, T, m->cfg.dim);
	else
		train_embedding_forward(out, ids, m->w.wte, m->w.wpe, pos, B, T, m->cfg.dim);
}

static void block_forward(const train_model *m, int l, struct block_bufs *o, const float *x,
			  int B, int T, const struct kv_target *kv)
{
	const train_config *c = &m->cfg;
	const train_weights *w = &m->w;
	int N = B * T, C = c->dim, NH = c->n_head, NKV = c->n_kv_head, hd = c->head_dim;
	int I = c->ffn;
	size_t QKV = qkv_rows(c), F = fc_rows(c), QD = (size_t)NH * hd, KD = (size_t)NKV * hd;
	const int *pos0 = kv ? kv->pos : NULL;

	norm_fwd(c, o->ln1, o->ln1_mean, o->ln1_rstd, x, w->ln1w + (size_t)l * C,
		 w->ln1b ? w->ln1b + (size_t)l * C : NULL, N);
	const train_bf16w *h = bfw(m);
	lin(m, o->qkv, o->ln1, w->wqkv, h->wqkv, l * QKV * C,
	    w->bqkv ? w->bqkv + l * QKV : NULL, N, C, (int)QKV);
	train_lora_forward(m->lora, l, TRAIN_LORA_QKV, o->qkv, (int)QKV, o->ln1, N);
	train_qkv_split_forward(o->q, o->k, o->v, o->qkv, N, NH, NKV, hd);
	if (c->qk_norm) {
		train_rmsnorm_forward(o->qr, o->q_rstd, o->q, w->qnorm + (size_t)l * hd, N * NH, hd,
				      c->norm_eps);
		train_rmsnorm_forward(o->kr, o->k_rstd, o->k, w->knorm + (size_t)l * hd, N * NKV, hd,
				      c->norm_eps);
	} else {
		memcpy(o->qr, o->q, sizeof(float) * N * QD);
		memcpy(o->kr, o->k, sizeof(float) * N * KD);
	}
	if (m->rope_cos) {
		train_rope_forward(o->qr, o->qr, m->rope_cos, m->rope_sin, pos0, B, T, NH, hd);
		train_rope_forward(o->kr, o->kr, m->rope_cos, m->rope_sin, pos0, B, T, NKV, hd);
	}
	if (!kv) {
		train_attention_forward(o->atty, o->lse, o->qr, o->kr, o->v, NULL, B, T, T, NH, NKV,
					hd);
	} else {
		size_t rs = (size_t)kv->cap * KD;
		for (int b = 0; b < B; b++)
			for (int t = 0; t < T; t++) {
				size_t dst = kv->rows[b] * rs + (size_t)(kv->pos[b] + t) * KD;
				memcpy(kv->kc + dst, o->kr + ((size_t)b * T + t) * KD, sizeof(float) * KD);
				memcpy(kv->vc + dst, o->v + ((size_t)b * T + t) * KD, sizeof(float) * KD);
			}
		if (kv->identity) {
			train_attention_forward(o->atty, NULL, o->qr, kv->kc, kv->vc, kv->pos, B, T,
						kv->cap, NH, NKV, hd);
		} else {
			for (int b = 0; b < B; b++)
				train_attention_forward(o->atty + (size_t)b * T * QD, NULL,
							o->qr + (size_t)b * T * QD,
							kv->kc + kv->rows[b] * rs,
							kv->vc + kv->rows[b] * rs, kv->pos + b, 1, T,
							kv->cap, NH, NKV, hd);
		}
	}
	lin(m, o->attproj, o->atty, w->wo, h->wo, (size_t)l * C * QD,
	    w->bo ? w->bo + (size_t)l * C : NULL, N, (int)QD, C);
	train_lora_forward(m->lora, l, TRAIN_LORA_O, o->attproj, C, o->atty, N);
	train_residual_forward(o->res1, x, o->attproj, (size_t)N * C);
	norm_fwd(c, o->ln2, o->ln2_mean, o->ln2_rstd, o->res1, w->ln2w + (size_t)l * C,
		 w->ln2b ? w->ln2b + (size_t)l * C : NULL, N);
	lin(m, o->fch, o->ln2, w->wfc, h->wfc, l * F * C, w->bfc ? w->bfc + l * F : NULL, N, C,
	    (int)F);
	train_lora_forward(m->lora, l, TRAIN_LORA_FC, o->fch, (int)F, o->ln2, N);
	if (c->arch == TRAIN_ARCH_GPT2 && m->bf)
		train_gelu_bf16w_forward(o->fch_act, o->fch, (size_t)N * I, 0);
	else if (c->arch == TRAIN_ARCH_GPT2)
		train_gelu_forward(o->fch_act, o->fch, (size_t)N * I);
	else
		train_swiglu_forward(o->fch_act, o->fch, N, I);
	lin(m, o->mlpproj, o->fch_act, w->wproj, h->wproj, (size_t)l * C * I,
	    w->bproj ? w->bproj + (size_t)l * C : NULL, N, I, C);
	train_lora_forward(m->lora, l, TRAIN_LORA_PROJ, o->mlpproj, C, o->fch_act, N);
	train_residual_forward(o->res2, o->res1, o->mlpproj, (size_t)N * C);
}

static int check_ids(const train_config *c, const int *ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= c->vocab)
			return -1;
	return 0;
}

int train_model_forward(const train_model *m, train_acts *a, const int *ids, const int *targets,
			int B, int T)
{
	const train_config *c = &m->cfg;
	size_t N = (size_t)B * T, C = c->dim, QKV = qkv_rows(c), F = fc_rows(c);
	size_t QD = (size_t)c->n_head * c->head_dim, KD = (size_t)c->n_kv_head * c->head_dim;
	if (T > c->max_pos || T <= 0 || B <= 0 || check_ids(c, ids, N))
		return TRAIN_EARG;
	for (size_t i = 0; i < N; i++)
		if (targets && targets[i] >= c->vocab)
			return TRAIN_EARG;
	embed(m, a->encoded, ids, NULL, B, T);
	const float *x = a->encoded;
	for (int l = 0; l < c->n_layer; l++) {
		struct block_bufs o = {
			.ln1 = a->ln1 + l * N * C,
			.ln1_mean = a->ln1_mean ? a->ln1_mean + l * N : NULL,
			.ln1_rstd = a->ln1_rstd + l * N,
			.qkv = a->qkv + l * N * QKV,
			.q = a->q + l * N * QD,
			.k = a->k + l * N * KD,
			.v = a->v + l * N * KD,
			.q_rstd = a->q_rstd ? a->q_rstd + l * N * c->n_head : NULL,
			.k_rstd = a->k_rstd ? a->k_rstd + l * N * c->n_kv_head : NULL,
			.qr = a->qr + l * N * QD,
			.kr = a->kr + l * N * KD,
			.lse = a->lse + l * N * c->n_head,
			.atty = a->atty + l * N * QD,
			.attproj = a->attproj + l * N * C,
			.res1 = a->res1 + l * N * C,
			.ln2 = a->ln2 + l * N * C,
			.ln2_mean = a->ln2_mean ? a->ln2_mean + l * N : NULL,
			.ln2_rstd = a->ln2_rstd + l * N,
			.fch = a->fch + l * N * F,
			.fch_act = a->fch_act + l * N * c->ffn,
			.mlpproj = a->mlpproj + l * N * C,
			.res2 = a->res2 + l * N * C,
		};
		block_forward(m, l, &o, x, B, T, NULL);
		x = o.res2;
	}
	norm_fwd(c, a->lnf, a->lnf_mean, a->lnf_rstd, x, m->w.lnfw, m->w.lnfb, (int)N);
	int *tg = NULL;
	if (!targets) {
		tg = xmalloc(sizeof(int) * N);
		for (size_t i = 0; i < N; i++)
			tg[i] = -1;
	}
	if (m->bf)
		train_logprob_bf16_forward(a->logp, a->logp_lse, a->lnf, bfw(m)->lm_head,
					   targets ? targets : tg, (int)N, (int)C, c->vocab);
	else
		train_logprob_forward(a->logp, a->logp_lse, a->lnf, m->w.lm_head,
				      targets ? targets : tg, (int)N, (int)C, c->vocab);
	free(tg);
	return 0;
}

int train_model_logprobs(const train_model *m, const int *ids, int T, float *logp, char **err)
{
	const train_config *c = &m->cfg;
	if (T < 2 || T > c->max_pos) {
		*err = xasprintf("sequence of %d tokens (expected 2 to %d)", T, c->max_pos);
		return TRAIN_EARG;
	}
	size_t n = train_acts_layout(c, 1, T, NULL, NULL);
	float *arena = xmalloc(sizeof(float) * n);
	train_acts a;
	train_acts_layout(c, 1, T, arena, &a);
	int *tg = xmalloc(sizeof(int) * T);
	for (int t = 0; t < T; t++)
		tg[t] = t + 1 < T ? ids[t + 1] : -1;
	int rc = train_model_forward(m, &a, ids, tg, 1, T);
	if (rc)
		*err = xasprintf("token id out of range (vocabulary %d)", c->vocab);
	else
		memcpy(logp, a.logp, sizeof(float) * (T - 1));
	free(tg);
	free(arena);
	return rc;
}

int train_model_logits(const train_model *m, const int *ids, int T, float *logits, char **err)
{
	const train_config *c = &m->cfg;
	if (T < 1 || T > c->max_pos) {
		*err = xasprintf("sequence of %d tokens (expected 1 to %d)", T, c->max_pos);
		return TRAIN_EARG;
	}
	size_t n = train_acts_layout(c, 1, T, NULL, NULL);
	float *arena = xmalloc(sizeof(float) * n);
	train_acts a;
	train_acts_layout(c, 1, T, arena, &a);
	int rc = train_model_forward(m, &a, ids, NULL, 1, T);
	if (rc)
		*err = xasprintf("token id out of range (vocabulary %d)", c->vocab);
	else
		lin(m, logits, a.lnf, m->w.lm_head, bfw(m)->lm_head, 0, NULL, T, c->dim, c->vocab);
	free(arena);
	return rc;
}

/* ---- KV cache ---- */

struct train_kv {
	int B, cap, L;
	size_t kd;
	float *k, *v;  /* [L, B, cap, KD] */
	int *len;
};

train_kv *train_kv_new(const train_model *m, int B, int cap)
{
	const train_config *c = &m->cfg;
	train_kv *kv = xcalloc(1, sizeof *kv);
	if (cap > c->max_pos)
		cap = c->max_pos;
	kv->B = B;
	kv->cap = cap;
	kv->L = c->n_layer;
	kv->kd = (size_t)c->n_kv_head * c->head_dim;
	size_t n = (size_t)kv->L * B * cap * kv->kd;
	kv->k = xmalloc(sizeof(float) * (n ? n : 1));
	kv->v = xmalloc(sizeof(float) * (n ? n : 1));
	kv->len = xcalloc(B, sizeof(int));
	return kv;
}

void train_kv_free(train_kv *kv)
{
	if (!kv)
		return;
	free(kv->k);
	free(kv->v);
	free(kv->len);
	free(kv);
}

void train_kv_reset(train_kv *kv, int b)
{
	kv->len[b] = 0;
}

int train_kv_len(const train_kv *kv, int b)
{
	return kv->len[b];
}

void train_kv_copy(train_kv *kv, int dst, int src)
{
	assert(dst >= 0 && dst < kv->B && src >= 0 && src < kv->B);
	size_t row = (size_t)kv->cap * kv->kd, n = (size_t)kv->len[src] * kv->kd;
	if (dst != src)
		for (int l = 0; l < kv->L; l++) {
			size_t base = (size_t)l * kv->B * row;
			memcpy(kv->k + base + dst * row, kv->k + base + src * row, sizeof(float) * n);
			memcpy(kv->v + base + dst * row, kv->v + base + src * row, sizeof(float) * n);
		}
	kv->len[dst] = kv->len[src];
}

/* One new token for each of nb rows of a bf16 model in one parallel region
 * (decode_bf16.h): the same logits and cache as the layer-by-layer path. */
static void decode_bf16(const train_model *m, train_kv *kv, const int *rows, const int *pos,
			const int *ids, int nb, float *logits)
{
	float *x = xmalloc(sizeof(float) * nb * m->cfg.dim);
	embed(m, x, ids, pos, nb, 1);
	train_decode_bf16 d = {.c = &m->cfg, .w = &m->w, .h = bfw(m), .rope_cos = m->rope_cos,
			       .rope_sin = m->rope_sin, .kc = kv->k, .vc = kv->v, .kv_rows = kv->B,
			       .cap = kv->cap, .rows = rows, .pos = pos, .nb = nb};
	train_decode_bf16_step(&d, x, logits);
	free(x);
}

/* Run nb rows of T tokens through the model with the cache; logits of each
 * row's last token into logits [nb, V]. */
static int cached_forward(const train_model *m, train_kv *kv, const int *rows, const int *ids,
			  int nb, int T, float *logits)
{
	const train_config *c = &m->cfg;
	size_t N = (size_t)nb * T, C = c->dim, QKV = qkv_rows(c), F = fc_rows(c);
	size_t QD = (size_t)c->n_head * c->head_dim, KD = kv->kd;
	if (check_ids(c, ids, N))
		return TRAIN_EARG;
	int *pos = xmalloc(sizeof(int) * nb);
	int identity = 1;
	for (int i = 0; i < nb; i++) {
		if (rows[i] < 0 || rows[i] >= kv->B || kv->len[rows[i]] + T > kv->cap) {
			free(pos);
			return TRAIN_EARG;
		}
		pos[i] = kv->len[rows[i]];
		if (rows[i] != i)
			identity = 0;
	}
	for (int i = 0; i < nb; i++)
		for (int j = 0; j < i; j++)
			if (rows[i] == rows[j]) {
				free(pos);
				return TRAIN_EARG;
			}
	if (T == 1 && m->bf && !m->lora && train_decode_bf16_usable(c, nb)) {
		decode_bf16(m, kv, rows, pos, ids, nb, logits);
		for (int i = 0; i < nb; i++)
			kv->len[rows[i]] += 1;
		free(pos);
		return 0;
	}
	/* one layer's worth of buffers, reused by every layer */
	size_t per = N * (C * 7 + QKV + 3 * QD + 3 * KD + F + c->ffn) + N * (4 + c->n_head);
	float *arena = xmalloc(sizeof(float) * per), *p = arena;
	struct block_bufs o;
#define TAKE(field, n) (o.field = p, p += (n))
	TAKE(ln1, N * C);
	TAKE(ln1_mean, N);
	TAKE(ln1_rstd, N);
	TAKE(qkv, N * QKV);
	TAKE(q, N * QD);
	TAKE(k, N * KD);
	TAKE(v, N * KD);
	o.q_rstd = o.k_rstd = NULL;
	TAKE(qr, N * QD);
	TAKE(kr, N * KD);
	o.lse = NULL;
	TAKE(atty, N * QD);
	TAKE(attproj, N * C);
	TAKE(res1, N * C);
	TAKE(ln2, N * C);
	TAKE(ln2_mean, N);
	TAKE(ln2_rstd, N);
	TAKE(fch, N * F);
	TAKE(fch_act, N * c->ffn);
	TAKE(mlpproj, N * C);
	float *x;
	TAKE(res2, N * C);
	x = p;
	p += N * C;
#undef TAKE
	embed(m, x, ids, pos, nb, T);
	for (int l = 0; l < c->n_layer; l++) {
		struct kv_target t = {
			.kc = kv->k + (size_t)l * kv->B * kv->cap * KD,
			.vc = kv->v + (size_t)l * kv->B * kv->cap * KD,
			.cap = kv->cap, .rows = rows, .pos = pos, .identity = identity,
		};
		block_forward(m, l, &o, x, nb, T, &t);
		memcpy(x, o.res2, sizeof(float) * N * C);
	}
	/* final norm of each row's last token, then the LM head */
	float *last = o.ln1; /* reuse: nb x C */
	for (int i = 0; i < nb; i++)
		memcpy(o.res1 + (size_t)i * C, x + ((size_t)i * T + T - 1) * C, sizeof(float) * C);
	norm_fwd(c, last, NULL, NULL, o.res1, m->w.lnfw, m->w.lnfb, nb);
	lin(m, logits, last, m->w.lm_head, bfw(m)->lm_head, 0, NULL, nb, (int)C, c->vocab);
	for (int i = 0; i < nb; i++)
		kv->len[rows[i]] += T;
	free(arena);
	free(pos);
	return 0;
}

int train_model_prefill(const train_model *m, train_kv *kv, int b, const int *ids, int n,
			float *logits)
{
	if (n <= 0)
		return TRAIN_EARG;
	return cached_forward(m, kv, &b, ids, 1, n, logits);
}

int train_model_decode(const train_model *m, train_kv *kv, const int *rows, const int *ids,
		       int nb, float *logits)
{
	if (nb <= 0)
		return TRAIN_EARG;
	return cached_forward(m, kv, rows, ids, nb, 1, logits);
}

/* ---- precision ---- */

train_model *train_model_load(const char *dir, char **err)
{
	return model_load(dir, 0, err);
}

train_model *train_model_load_prec(const char *dir, train_precision prec, char **err)
{
	return model_load(dir, train_precision_resolve(prec) == TRAIN_PREC_BF16, err);
}

void train_model_to_bf16(train_model *m)
{
	if (m->bf)
		return;
	train_model_fingerprint(m); /* cached while the f32 weights exist */
	train_weights w;
	m->bf = train_bf16_new(&m->cfg, m->params, m->table, m->ntable, &w);
	for (int i = 0; i < m->ntable; i++)
		train_bf16_set(m->bf, &m->table[i], m->params + m->table[i].offset);
	m->w = w;
	free(m->params);
	m->params = NULL;
}

train_precision train_model_precision(const train_model *m)
{
	return m->bf ? TRAIN_PREC_BF16 : TRAIN_PREC_F32;
}

const struct train_bf16w *train_model_bf16_weights(const train_model *m)
{
	return m->bf ? train_bf16_weights(m->bf) : NULL;
}

size_t train_model_weight_bytes(const train_model *m)
{
	return m->bf ? train_bf16_bytes(m->bf) : m->nparams * sizeof(float);
}

void *train_model_storage(train_model *m, int i, size_t *bytes)
{
	if (m->bf)
		return train_bf16_arena(m->bf, i, bytes);
	*bytes = i == 0 ? m->nparams * sizeof(float) : 0;
	return i == 0 ? m->params : NULL;
}

train_model *train_model_blank(const char *config_json, size_t len, const char *dtype,
			       train_precision prec, const char *fingerprint, char **err)
{
	train_model *m = xcalloc(1, sizeof *m);
	if (train_config_parse(config_json, len, &m->cfg, err)) {
		free(m);
		return NULL;
	}
	m->config_json = normalise_config(config_json, len);
	if (train_precision_resolve(prec) == TRAIN_PREC_BF16)
		model_alloc_bf16(m);
	else
		model_alloc(m);
	snprintf(m->dtype, sizeof m->dtype, "%s", dtype ? dtype : "F32");
	snprintf(m->fingerprint, sizeof m->fingerprint, "%s", fingerprint ? fingerprint : "");
	model_rope(m);
	return m;
}

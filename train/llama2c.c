/* llama2c.c: import a llama2.c checkpoint (the original "version 0" float32
 * format: seven int32 header fields, then the weights) as a Llama model. */
#include "config.h"
#include "train/llama2c.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Read n floats at *pos of buf (len bytes) into dst (may be NULL to skip). */
static int take(const unsigned char *buf, size_t len, size_t *pos, float *dst, size_t n)
{
	if (n > (len - *pos) / 4)
		return -1;
	if (dst)
		memcpy(dst, buf + *pos, n * 4);
	*pos += n * 4;
	return 0;
}

/* llama2.c rotates adjacent pairs (x[2i], x[2i+1]); HF rotates halves
 * (x[i], x[i + hd/2]). Reorder the rows of each head of a [heads*hd, dim]
 * projection so that the HF kernel computes the same function. */
static void permute_heads(float *dst, const float *src, int heads, int hd, int dim)
{
	for (int h = 0; h < heads; h++)
		for (int i = 0; i < hd / 2; i++) {
			const float *r0 = src + ((size_t)h * hd + 2 * i) * dim;
			const float *r1 = src + ((size_t)h * hd + 2 * i + 1) * dim;
			memcpy(dst + ((size_t)h * hd + i) * dim, r0, sizeof(float) * dim);
			memcpy(dst + ((size_t)h * hd + i + hd / 2) * dim, r1, sizeof(float) * dim);
		}
}

train_model *train_llama2c_import(const char *path, char **err)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	size_t len = 0, cap = 0, r;
	train_model *m = NULL;
	char *cfg = NULL;
	float *tmp = NULL;
	if (!f) {
		*err = xasprintf("%s: %s", path, strerror(errno));
		return NULL;
	}
	do {
		if (len == cap)
			buf = xrealloc(buf, cap = cap ? 2 * cap : 1 << 20);
		r = fread(buf + len, 1, cap - len, f);
		len += r;
	} while (r > 0);
	fclose(f);
	if (len < 28) {
		*err = xasprintf("%s: too short for a llama2.c checkpoint", path);
		goto out;
	}
	int32_t h[7];
	memcpy(h, buf, sizeof h);
	int dim = h[0], hidden = h[1], L = h[2], NH = h[3], NKV = h[4], V = abs(h[5]), S = h[6];
	int shared = h[5] > 0;
	if (dim <= 0 || hidden <= 0 || L <= 0 || NH <= 0 || NKV <= 0 || V <= 0 || S <= 0 ||
	    dim > 65536 || hidden > 262144 || L > 1024 || NH > 1024 || V > 4000000 || S > 1 << 20 ||
	    dim % NH || NH % NKV || (dim / NH) % 2) {
		*err = xasprintf("%s: not a llama2.c checkpoint (header %d %d %d %d %d %d %d)", path,
				 h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
		goto out;
	}
	int hd = dim / NH;
	size_t qd = (size_t)NH * hd, kd = (size_t)NKV * hd;
	size_t want = (size_t)V * dim + (size_t)L * (2 * dim + qd * dim + 2 * kd * dim +
						      dim * qd + 3 * (size_t)hidden * dim) +
		      dim + (size_t)S * hd + (shared ? 0 : (size_t)V * dim);
	if ((len - 28) != want * 4) {
		*err = xasprintf("%s: %zu bytes of weights, expected %zu for the header's shape "
				 "(only the float32 version-0 format is supported)",
				 path, len - 28, want * 4);
		goto out;
	}
	cfg = xasprintf("{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\","
			"\"vocab_size\":%d,\"hidden_size\":%d,\"intermediate_size\":%d,"
			"\"num_hidden_layers\":%d,\"num_attention_heads\":%d,"
			"\"num_key_value_heads\":%d,\"head_dim\":%d,\"max_position_embeddings\":%d,"
			"\"rms_norm_eps\":1e-05,\"rope_theta\":10000.0,\"tie_word_embeddings\":%s,"
			"\"hidden_act\":\"silu\",\"attention_bias\":false,\"mlp_bias\":false,"
			"\"bos_token_id\":1,\"eos_token_id\":2,\"torch_dtype\":\"float32\"}",
			V, dim, hidden, L, NH, NKV, hd, S, shared ? "true" : "false");
	m = train_model_init(cfg, strlen(cfg), 0, err);
	if (!m)
		goto out;
	const train_weights *w = train_model_weights(m);
	size_t pos = 28, QKV = qd + 2 * kd;
	tmp = xmalloc(sizeof(float) * qd * dim);
	take(buf, len, &pos, w->wte, (size_t)V * dim);
	take(buf, len, &pos, w->ln1w, (size_t)L * dim);
	for (int l = 0; l < L; l++) {
		take(buf, len, &pos, tmp, qd * dim);
		permute_heads(w->wqkv + l * QKV * dim, tmp, NH, hd, dim);
	}
	for (int l = 0; l < L; l++) {
		take(buf, len, &pos, tmp, kd * dim);
		permute_heads(w->wqkv + l * QKV * dim + qd * dim, tmp, NKV, hd, dim);
	}
	for (int l = 0; l < L; l++)
		take(buf, len, &pos, w->wqkv + l * QKV * dim + (qd + kd) * dim, kd * dim);
	take(buf, len, &pos, w->wo, (size_t)L * dim * qd);
	take(buf, len, &pos, w->ln2w, (size_t)L * dim);
	for (int l = 0; l < L; l++) /* w1: gate */
		take(buf, len, &pos, w->wfc + (size_t)l * 2 * hidden * dim, (size_t)hidden * dim);
	take(buf, len, &pos, w->wproj, (size_t)L * dim * hidden); /* w2: down */
	for (int l = 0; l < L; l++) /* w3: up */
		take(buf, len, &pos, w->wfc + ((size_t)l * 2 + 1) * hidden * dim,
		     (size_t)hidden * dim);
	take(buf, len, &pos, w->lnfw, dim);
	take(buf, len, &pos, NULL, (size_t)S * hd); /* freq_cis_real and _imag */
	if (!shared)
		take(buf, len, &pos, w->lm_head, (size_t)V * dim);
out:
	free(tmp);
	free(cfg);
	free(buf);
	return m;
}

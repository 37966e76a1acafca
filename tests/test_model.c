/* test_model.c: config.json parsing, init/save/load round trips for every
 * architecture (GPT-2's Conv1D transposition included), sharded loading,
 * load errors that name the tensor, layouts, sampling and generation. */
#include "config.h"
#include "tests/tap.h"
#include "train/model.h"
#include "train/safetensors.h"
#include "train/sample.h"
#include "util/xmalloc.h"

#include <dirent.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static const char *cfg_gpt2 =
	"{\"model_type\":\"gpt2\",\"vocab_size\":97,\"n_embd\":32,\"n_layer\":2,\"n_head\":4,"
	"\"n_positions\":64,\"n_inner\":null,\"layer_norm_epsilon\":1e-5,\"eos_token_id\":96,"
	"\"torch_dtype\":\"bfloat16\"}";
static const char *cfg_llama =
	"{\"model_type\":\"llama\",\"vocab_size\":101,\"hidden_size\":32,\"num_hidden_layers\":2,"
	"\"num_attention_heads\":4,\"num_key_value_heads\":2,\"intermediate_size\":48,"
	"\"max_position_embeddings\":64,\"rms_norm_eps\":1e-5,\"rope_theta\":10000.0,"
	"\"tie_word_embeddings\":false,\"eos_token_id\":[1,2],\"initializer_range\":0.1}";
static const char *cfg_qwen2 =
	"{\"model_type\":\"qwen2\",\"vocab_size\":80,\"hidden_size\":24,\"num_hidden_layers\":1,"
	"\"num_attention_heads\":3,\"num_key_value_heads\":1,\"intermediate_size\":40,"
	"\"max_position_embeddings\":32,\"rms_norm_eps\":1e-6,\"rope_theta\":1000000.0,"
	"\"tie_word_embeddings\":true,\"eos_token_id\":3}";
static const char *cfg_qwen3 =
	"{\"model_type\":\"qwen3\",\"vocab_size\":90,\"hidden_size\":32,\"num_hidden_layers\":2,"
	"\"num_attention_heads\":4,\"num_key_value_heads\":2,\"head_dim\":16,"
	"\"intermediate_size\":40,\"max_position_embeddings\":48,\"rms_norm_eps\":1e-6,"
	"\"rope_parameters\":{\"rope_theta\":1000000.0,\"rope_type\":\"default\"},"
	"\"tie_word_embeddings\":true,\"eos_token_id\":0}";

static void test_config(void)
{
	train_config c;
	char *err = NULL;
	TAP_OK(train_config_parse(cfg_gpt2, strlen(cfg_gpt2), &c, &err) == 0 &&
		       c.arch == TRAIN_ARCH_GPT2 && c.ffn == 128 && c.head_dim == 8 && c.tied &&
		       c.qkv_bias && c.n_eos == 1 && c.eos[0] == 96 && c.max_pos == 64,
	       "gpt2 config (n_inner null -> 4C, tied, biases)");
	TAP_OK(train_config_parse(cfg_llama, strlen(cfg_llama), &c, &err) == 0 &&
		       c.n_kv_head == 2 && c.head_dim == 8 && !c.tied && !c.qkv_bias &&
		       c.n_eos == 2 && c.eos[1] == 2 && c.rope_theta == 10000.0 &&
		       c.init_range == 0.1,
	       "llama config (GQA, eos list, top-level rope_theta)");
	TAP_OK(train_config_parse(cfg_qwen2, strlen(cfg_qwen2), &c, &err) == 0 && c.qkv_bias &&
		       !c.o_bias && c.tied && c.rope_theta == 1e6,
	       "qwen2 config (q/k/v biases)");
	TAP_OK(train_config_parse(cfg_qwen3, strlen(cfg_qwen3), &c, &err) == 0 && c.qk_norm &&
		       c.head_dim == 16 && c.dim == 32 && c.rope_theta == 1e6,
	       "qwen3 config (head_dim != hidden/heads, rope_parameters)");
	static const struct { const char *json, *want; int code; } bad[] = {
		{"{\"model_type\":\"bert\"}", "unsupported architecture \"bert\"", TRAIN_EUNSUP},
		{"[]", "not a JSON object", TRAIN_EFORMAT},
		{"{\"vocab_size\":3}", "\"model_type\"", TRAIN_EFORMAT},
		{"{\"model_type\":\"llama\",\"vocab_size\":10}", "\"hidden_size\" missing",
		 TRAIN_EFORMAT},
		{"{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":\"8\"}",
		 "\"hidden_size\" has a bad value", TRAIN_EFORMAT},
		{"{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":8,\"num_hidden_layers\":1,"
		 "\"num_attention_heads\":3,\"num_key_value_heads\":2,\"intermediate_size\":8}",
		 "multiple of", TRAIN_EFORMAT},
		{"{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":8,\"num_hidden_layers\":1,"
		 "\"num_attention_heads\":2,\"intermediate_size\":8,\"rope_scaling\":{\"rope_type\":"
		 "\"llama3\"}}",
		 "llama3 rope scaling needs", TRAIN_EFORMAT},
		{"{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":8,\"num_hidden_layers\":1,"
		 "\"num_attention_heads\":2,\"intermediate_size\":8,\"rope_parameters\":{\"rope_type\":"
		 "\"yarn\",\"rope_theta\":10000}}",
		 "rope type \"yarn\" is not supported", TRAIN_EUNSUP},
		{"{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":8,\"num_hidden_layers\":1,"
		 "\"num_attention_heads\":2,\"intermediate_size\":8,\"hidden_act\":\"gelu\"}",
		 "hidden_act", TRAIN_EUNSUP},
		{"{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":8,\"num_hidden_layers\":1,"
		 "\"num_attention_heads\":2,\"intermediate_size\":8,\"eos_token_id\":\"x\"}",
		 "eos_token_id", TRAIN_EFORMAT},
		{"{\"model_type\":\"gpt2\",\"vocab_size\":10,\"n_embd\":8,\"n_layer\":1,\"n_head\":3,"
		 "\"n_positions\":8}",
		 "multiple of n_head", TRAIN_EFORMAT},
		{"{\"model_type\":\"gpt2\",\"vocab_size\":10,\"n_embd\":8,\"n_layer\":1,\"n_head\":2}",
		 "\"n_positions\" missing", TRAIN_EFORMAT},
		{"{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":8,\"num_hidden_layers\":1,"
		 "\"num_attention_heads\":2,\"intermediate_size\":8,\"head_dim\":3}",
		 "head_dim", TRAIN_EFORMAT},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err = NULL;
		int rc = train_config_parse(bad[i].json, strlen(bad[i].json), &c, &err);
		if (!TAP_OK(rc == bad[i].code && err && strstr(err, bad[i].want),
			    "bad config %zu: error mentions %s", i, bad[i].want))
			tap_diag("rc %d, error: %s", rc, err ? err : "(none)");
		free(err);
	}
}

/* Llama 3 rope scaling (Llama-3.2-1B's numbers): high frequencies kept,
 * low ones divided by the factor. */
static void test_llama3_rope(void)
{
	const char *cfg =
		"{\"model_type\":\"llama\",\"vocab_size\":16,\"hidden_size\":128,"
		"\"num_hidden_layers\":1,\"num_attention_heads\":2,\"intermediate_size\":8,"
		"\"max_position_embeddings\":1100,\"rope_theta\":500000.0,\"rope_scaling\":{"
		"\"factor\":32.0,\"high_freq_factor\":4.0,\"low_freq_factor\":1.0,"
		"\"original_max_position_embeddings\":8192,\"rope_type\":\"llama3\"}}";
	char *err = NULL;
	train_model *m = train_model_init(cfg, strlen(cfg), 1, &err);
	if (!TAP_OK(m, "llama3 rope config")) {
		tap_diag("%s", err);
		free(err);
		return;
	}
	const float *cs = train_model_rope_cos(m);
	int h = 32, p = 1000;
	double f0 = 1.0, f31 = (float)pow(500000.0, -62.0 / 64) / 32.0;
	TAP_NEAR(cs[(size_t)p * h + 0], cos(p * f0), 1e-6, "llama3 rope: highest frequency kept");
	TAP_NEAR(cs[(size_t)p * h + 31], cos(p * f31), 1e-6,
		 "llama3 rope: lowest frequency divided by the factor");
	/* i = 20: wavelength 2 pi / 500000^(-40/64) = 23,000 > 8192: divided */
	double f20 = (float)pow(500000.0, -40.0 / 64);
	TAP_NEAR(cs[(size_t)p * h + 20], cos(p * f20 / 32), 1e-6, "llama3 rope: i=20 divided");
	/* i = 14: wavelength ~ 1,600 < 2048 = 8192/4: kept */
	double f14 = (float)pow(500000.0, -28.0 / 64);
	TAP_NEAR(cs[(size_t)p * h + 14], cos(p * f14), 1e-6, "llama3 rope: i=14 kept");
	/* i = 16: wavelength ~ 4,000, between: a blend */
	double f16 = (float)pow(500000.0, -32.0 / 64), wl = 2 * M_PI / f16;
	double sm = (8192 / wl - 1) / 3, fb = (1 - sm) * f16 / 32 + sm * f16;
	TAP_NEAR(cs[(size_t)p * h + 16], cos(p * fb), 1e-5, "llama3 rope: i=16 blended");
	train_model_free(m);
}

/* init gives the same weights with 1 and with 2 threads (big tensors are
 * filled in parallel chunks) */
static void test_init_threads(void)
{
	const char *cfg =
		"{\"model_type\":\"qwen2\",\"vocab_size\":5000,\"hidden_size\":64,"
		"\"num_hidden_layers\":1,\"num_attention_heads\":4,\"intermediate_size\":96,"
		"\"max_position_embeddings\":32}";
	char *err = NULL;
#ifdef _OPENMP
	omp_set_num_threads(1);
#endif
	train_model *a = train_model_init(cfg, strlen(cfg), 11, &err);
#ifdef _OPENMP
	omp_set_num_threads(2);
#endif
	train_model *b = train_model_init(cfg, strlen(cfg), 11, &err);
	TAP_OK(a && b && !memcmp(train_model_params(a), train_model_params(b),
				 sizeof(float) * train_model_nparams(a)),
	       "init: same weights with 1 and 2 threads");
	/* mean ~ 0, std ~ 0.02 over the embedding (320,000 values) */
	const float *w = train_model_weights(a)->wte;
	double s1 = 0, s2 = 0;
	for (int i = 0; i < 320000; i++) {
		s1 += w[i];
		s2 += (double)w[i] * w[i];
	}
	TAP_NEAR(s1 / 320000, 0.0, 2e-4, "init: embedding mean 0");
	TAP_NEAR(sqrt(s2 / 320000), 0.02, 2e-4, "init: embedding std 0.02 (default range)");
	train_model_free(a);
	train_model_free(b);
}

/* A batched forward (B = 3) gives each row the log-probs of its own
 * single-sequence forward, for every architecture. */
static void test_batched_forward(const char *name, const char *cfg)
{
	char *err = NULL;
	train_model *m = train_model_init(cfg, strlen(cfg), 5, &err);
	const train_config *c = train_model_config(m);
	enum { B = 3, T = 11 };
	int ids[B * T], tg[B * T];
	for (int i = 0; i < B * T; i++)
		ids[i] = (i * 37 + 3) % c->vocab;
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++)
			tg[b * T + t] = t + 1 < T ? ids[b * T + t + 1] : -1;
	size_t n = train_acts_layout(c, B, T, NULL, NULL);
	float *arena = xmalloc(sizeof(float) * n);
	train_acts a;
	train_acts_layout(c, B, T, arena, &a);
	int rc = train_model_forward(m, &a, ids, tg, B, T);
	double maxd = 0;
	for (int b = 0; b < B && rc == 0; b++) {
		float lp[T - 1];
		train_model_logprobs(m, ids + b * T, T, lp, &err);
		for (int t = 0; t < T - 1; t++)
			maxd = fmax(maxd, fabs(lp[t] - a.logp[b * T + t]));
	}
	TAP_OK(rc == 0 && maxd < 1e-5, "%s: batched forward equals per-row forward (max %.3g)", name,
	       maxd);
	ids[4] = c->vocab;
	TAP_IS_INT(train_model_forward(m, &a, ids, tg, B, T), TRAIN_EARG,
		   "%s: id out of range rejected", name);
	free(arena);
	train_model_free(m);
}

/* Log-probs of a fixed sequence. */
static void seq_logp(const train_model *m, float *lp, int T)
{
	int ids[16];
	char *err = NULL;
	for (int i = 0; i < T; i++)
		ids[i] = (i * 13 + 5) % train_model_config(m)->vocab;
	if (train_model_logprobs(m, ids, T, lp, &err)) {
		tap_diag("%s", err);
		free(err);
	}
}

static void test_roundtrip(const char *name, const char *cfg)
{
	char *err = NULL, *dir = tap_tmpdir("dpo-model");
	train_model *m = train_model_init(cfg, strlen(cfg), 42, &err);
	train_model *m2 = train_model_init(cfg, strlen(cfg), 42, &err);
	if (!TAP_OK(m && m2, "%s: init", name)) {
		tap_diag("%s", err);
		free(err);
		return;
	}
	TAP_OK(!memcmp(train_model_params(m), train_model_params(m2),
		       sizeof(float) * train_model_nparams(m)),
	       "%s: same seed, same weights", name);
	TAP_IS_STR(train_model_fingerprint(m), train_model_fingerprint(m2),
		   "%s: same seed, same fingerprint", name);
	train_model_free(m2);
	/* the parameter table covers the arena exactly once */
	int n;
	const train_param *t = train_model_param_table(m, &n);
	size_t total = 0;
	int inside = 1;
	for (int i = 0; i < n; i++) {
		total += t[i].numel;
		inside &= t[i].offset + t[i].numel <= train_model_nparams(m);
	}
	TAP_OK(inside && total == train_model_nparams(m),
	       "%s: parameter table covers the arena (%zu floats)", name, total);
	TAP_IS_INT(train_weights_layout(train_model_config(m), NULL, NULL), train_model_nparams(m),
		   "%s: train_weights_layout size", name);
	TAP_OK(train_model_save(m, dir, &err) == 0, "%s: save", name);
	train_model *r = train_model_load(dir, &err);
	if (TAP_OK(r, "%s: load what was saved", name)) {
		TAP_OK(!memcmp(train_model_params(m), train_model_params(r),
			       sizeof(float) * train_model_nparams(m)),
		       "%s: weights identical after save/load", name);
		float a[15], b[15];
		seq_logp(m, a, 16);
		seq_logp(r, b, 16);
		TAP_OK(!memcmp(a, b, sizeof a), "%s: log-probs identical after save/load", name);
		int ok = 1;
		for (int i = 0; i < 15; i++)
			ok &= isfinite(a[i]) && a[i] < 0;
		TAP_OK(ok, "%s: log-probs finite and negative", name);
	} else {
		tap_diag("%s", err);
		free(err);
		err = NULL;
	}
	train_model_free(r);
	train_model_free(m);
	tap_rmtree(dir);
	free(dir);
}

/* The HF layout: GPT-2 c_attn is [in, out] in the file. */
static void test_gpt2_layout(void)
{
	char *err = NULL, *dir = tap_tmpdir("dpo-model");
	train_model *m = train_model_init(cfg_gpt2, strlen(cfg_gpt2), 1, &err);
	train_model_save(m, dir, &err);
	char *p = xasprintf("%s/model.safetensors", dir);
	train_st_file *f = train_st_open(p, &err);
	const train_st_tensor *t = f ? train_st_find(f, "transformer.h.0.attn.c_attn.weight") : NULL;
	TAP_OK(t && t->shape[0] == 32 && t->shape[1] == 96,
	       "gpt2 c_attn saved as [in, out] = [32, 96]");
	TAP_OK(f && !train_st_find(f, "lm_head.weight"), "gpt2 tied lm_head not saved");
	if (t) {
		float *w = xmalloc(sizeof(float) * t->numel);
		train_st_read_f32(f, t, w, &err);
		const float *a = train_model_weights(m)->wqkv; /* [96, 32] */
		/* file [i][o] == arena [o][i] */
		TAP_OK(w[5 * 96 + 70] == a[70 * 32 + 5], "gpt2 Conv1D transposed at save");
		free(w);
	}
	/* the same tensors under GPT2Model's bare names ("h.0...", "wte.weight") */
	if (f) {
		int n = train_st_count(f);
		train_st_out *o = xcalloc(n, sizeof *o);
		float **bufs = xcalloc(n, sizeof *bufs);
		for (int i = 0; i < n; i++) {
			const train_st_tensor *x = train_st_get(f, i);
			bufs[i] = xmalloc(sizeof(float) * x->numel);
			train_st_read_f32(f, x, bufs[i], &err);
			o[i] = (train_st_out){x->name + strlen("transformer."), x->ndim,
					      {x->shape[0], x->ndim > 1 ? x->shape[1] : 0}, bufs[i], NULL};
		}
		char *d2 = tap_tmpdir("dpo-model"), *d3 = tap_tmpdir("dpo-model");
		char *p2 = xasprintf("%s/model.safetensors", d2);
		char *c2 = xasprintf("%s/config.json", d2);
		FILE *cf = fopen(c2, "w");
		fputs(cfg_gpt2, cf);
		fclose(cf);
		train_st_write(p2, o, n, &err);
		train_model *b = train_model_load(d2, &err);
		TAP_OK(b && !memcmp(train_model_params(b), train_model_params(m),
				    sizeof(float) * train_model_nparams(m)),
		       "gpt2 with bare tensor names loads the same weights");
		if (b)
			train_model_save(b, d3, &err);
		char *p3 = xasprintf("%s/model.safetensors", d3);
		train_st_file *f3 = train_st_open(p3, &err);
		TAP_OK(f3 && train_st_find(f3, "h.1.mlp.c_fc.weight") && train_st_find(f3, "wte.weight") &&
			       !train_st_find(f3, "transformer.wte.weight"),
		       "gpt2 saved under the bare names it was loaded with");
		train_st_close(f3);
		train_model_free(b);
		for (int i = 0; i < n; i++)
			free(bufs[i]);
		free(bufs);
		free(o);
		tap_rmtree(d2);
		tap_rmtree(d3);
		free(d2);
		free(d3);
		free(p2);
		free(p3);
		free(c2);
	}
	train_st_close(f);
	char *cj = xasprintf("%s/config.json", dir);
	size_t len = 0;
	FILE *fp = fopen(cj, "r");
	char buf[4096];
	len = fp ? fread(buf, 1, sizeof buf - 1, fp) : 0;
	buf[len] = 0;
	if (fp)
		fclose(fp);
	TAP_OK(strstr(buf, "\"float32\"") && !strstr(buf, "bfloat16"),
	       "saved config.json says float32");
	free(cj);
	free(p);
	train_model_free(m);
	tap_rmtree(dir);
	free(dir);
}

/* Write model m's tensors minus/plus edits to dir as safetensors. */
static void write_edited(const train_model *m, const char *dir, const char *drop,
			 const char *reshape)
{
	int n;
	const train_param *t = train_model_param_table(m, &n);
	train_st_out *o = xcalloc(n, sizeof *o);
	int k = 0;
	float *base = train_model_params((train_model *)m);
	for (int i = 0; i < n; i++) {
		if (drop && !strcmp(t[i].name, drop))
			continue;
		o[k].name = t[i].name;
		o[k].ndim = t[i].ndim;
		o[k].shape[0] = t[i].shape[0];
		o[k].shape[1] = t[i].shape[1];
		o[k].data = base + t[i].offset;
		if (reshape && !strcmp(t[i].name, reshape) && t[i].ndim == 2) {
			o[k].shape[0] = t[i].shape[1];
			o[k].shape[1] = t[i].shape[0];
		}
		k++;
	}
	char *p = xasprintf("%s/model.safetensors", dir), *err = NULL;
	train_st_write(p, o, k, &err);
	free(err);
	free(p);
	free(o);
}

static void test_errors(void)
{
	char *err = NULL, *dir = tap_tmpdir("dpo-model");
	train_model *m = train_model_init(cfg_llama, strlen(cfg_llama), 7, &err);
	train_model_save(m, dir, &err);
	const char *q = "model.layers.1.self_attn.k_proj.weight";
	write_edited(m, dir, q, NULL);
	train_model *r = train_model_load(dir, &err);
	TAP_OK(!r && err && strstr(err, "missing tensor") && strstr(err, q),
	       "missing tensor named: %s", err ? err : "");
	free(err);
	err = NULL;
	write_edited(m, dir, NULL, "model.layers.0.mlp.down_proj.weight");
	r = train_model_load(dir, &err);
	TAP_OK(!r && err && strstr(err, "down_proj") && strstr(err, "shape [48, 32], expected [32, 48]"),
	       "wrong shape named: %s", err ? err : "");
	free(err);
	err = NULL;
	/* an I64 tensor where a float is expected */
	char *p = xasprintf("%s/model.safetensors", dir);
	unlink(p);
	r = train_model_load(dir, &err);
	TAP_OK(!r && err && strstr(err, "no model.safetensors"), "no weights file: %s",
	       err ? err : "");
	free(err);
	err = NULL;
	FILE *f = fopen(p, "wb");
	const char *h = "{\"model.embed_tokens.weight\":{\"dtype\":\"I64\",\"shape\":[101,32],"
			"\"data_offsets\":[0,25856]}}";
	uint64_t hl = strlen(h);
	fwrite(&hl, 8, 1, f);
	fwrite(h, 1, hl, f);
	for (int i = 0; i < 25856; i++)
		fputc(0, f);
	fclose(f);
	r = train_model_load(dir, &err);
	TAP_OK(!r && err && strstr(err, "unsupported dtype I64") && strstr(err, "embed_tokens"),
	       "unsupported dtype named: %s", err ? err : "");
	free(err);
	err = NULL;
	f = fopen(p, "wb");
	fwrite("\x10\0\0\0\0\0\0\0{not json at all", 1, 24, f);
	fclose(f);
	r = train_model_load(dir, &err);
	TAP_OK(!r && err && strstr(err, "model.safetensors") && strstr(err, "JSON"),
	       "corrupt header names the file: %s", err ? err : "");
	free(err);
	err = NULL;
	char *cj = xasprintf("%s/config.json", dir);
	f = fopen(cj, "w");
	fputs("{\"model_type\":\"t5\"}", f);
	fclose(f);
	r = train_model_load(dir, &err);
	TAP_OK(!r && err && strstr(err, "config.json") && strstr(err, "unsupported architecture"),
	       "unsupported architecture: %s", err ? err : "");
	free(err);
	free(cj);
	free(p);
	train_model_free(m);
	tap_rmtree(dir);
	free(dir);
}

static void test_sharded(void)
{
	char *err = NULL, *dir = tap_tmpdir("dpo-model");
	train_model *m = train_model_init(cfg_qwen3, strlen(cfg_qwen3), 9, &err);
	train_model_save(m, dir, &err);
	char *p = xasprintf("%s/model.safetensors", dir);
	unlink(p);
	int n;
	const train_param *t = train_model_param_table(m, &n);
	float *base = train_model_params(m);
	FILE *idx;
	char *ip = xasprintf("%s/model.safetensors.index.json", dir);
	idx = fopen(ip, "w");
	fputs("{\"metadata\":{},\"weight_map\":{", idx);
	for (int s = 0; s < 2; s++) {
		train_st_out *o = xcalloc(n, sizeof *o);
		int k = 0;
		for (int i = s; i < n; i += 2) {
			o[k] = (train_st_out){t[i].name, t[i].ndim, {t[i].shape[0], t[i].shape[1]},
					      base + t[i].offset, NULL};
			fprintf(idx, "%s\"%s\":\"model-%05d-of-00002.safetensors\"",
				i ? "," : "", t[i].name, s + 1);
			k++;
		}
		char *sp = xasprintf("%s/model-%05d-of-00002.safetensors", dir, s + 1);
		train_st_write(sp, o, k, &err);
		free(sp);
		free(o);
	}
	fputs("}}", idx);
	fclose(idx);
	train_model *r = train_model_load(dir, &err);
	if (TAP_OK(r, "sharded model loads")) {
		TAP_OK(!memcmp(base, train_model_params(r), sizeof(float) * train_model_nparams(m)),
		       "sharded weights identical");
		TAP_OK(strlen(train_model_fingerprint(r)) == 64, "sharded fingerprint");
	} else {
		tap_diag("%s", err);
		free(err);
		err = NULL;
	}
	train_model_free(r);
	idx = fopen(ip, "w");
	fputs("{\"weight_map\":{\"x\":\"../etc/passwd\"}}", idx);
	fclose(idx);
	r = train_model_load(dir, &err);
	TAP_OK(!r && err && strstr(err, "weight_map"), "index naming a path outside: %s",
	       err ? err : "");
	free(err);
	free(ip);
	free(p);
	train_model_free(m);
	tap_rmtree(dir);
	free(dir);
}

static void test_sampling(void)
{
	float lg[6] = {1.0f, 3.0f, 2.9f, -1.0f, 0.5f, 2.0f};
	train_sampling s;
	train_rng r;
	train_sampling_default(&s);
	s.greedy = 1;
	TAP_IS_INT(train_sample_token(lg, 6, &s, &r), 1, "greedy picks the argmax");
	train_sampling_default(&s);
	s.top_k = 1;
	train_rng_seed(&r, 5);
	int ok = 1;
	for (int i = 0; i < 50; i++)
		ok &= train_sample_token(lg, 6, &s, &r) == 1;
	TAP_OK(ok, "top-k 1 is greedy");
	/* top-k 2: only ids 1 and 2 */
	s.top_k = 2;
	int seen[6] = {0};
	for (int i = 0; i < 400; i++)
		seen[train_sample_token(lg, 6, &s, &r)]++;
	TAP_OK(seen[1] && seen[2] && seen[1] + seen[2] == 400, "top-k 2 keeps the two best");
	/* top-p: p(1)=0.34.., p(2)=0.31..; 0.5 keeps exactly {1, 2} */
	train_sampling_default(&s);
	s.top_p = 0.5;
	memset(seen, 0, sizeof seen);
	for (int i = 0; i < 400; i++)
		seen[train_sample_token(lg, 6, &s, &r)]++;
	TAP_OK(seen[1] && seen[2] && seen[1] + seen[2] == 400, "top-p 0.5 keeps {1, 2}");
	/* min-p 0.5: p/pmax >= 0.5 -> ids 1 (1), 2 (0.90), 5 (0.37 no) */
	train_sampling_default(&s);
	s.min_p = 0.5;
	memset(seen, 0, sizeof seen);
	for (int i = 0; i < 400; i++)
		seen[train_sample_token(lg, 6, &s, &r)]++;
	TAP_OK(seen[1] && seen[2] && seen[1] + seen[2] == 400, "min-p 0.5 keeps {1, 2}");
	/* plain sampling visits everything, frequencies near softmax */
	train_sampling_default(&s);
	memset(seen, 0, sizeof seen);
	for (int i = 0; i < 20000; i++)
		seen[train_sample_token(lg, 6, &s, &r)]++;
	double z = 0;
	for (int i = 0; i < 6; i++)
		z += exp(lg[i]);
	TAP_NEAR(seen[1] / 20000.0, exp(3.0) / z, 0.02, "sampling frequency of the best id");
	TAP_OK(seen[3] > 0, "sampling reaches the least likely id");
	/* low temperature concentrates */
	s.temperature = 0.01;
	memset(seen, 0, sizeof seen);
	for (int i = 0; i < 200; i++)
		seen[train_sample_token(lg, 6, &s, &r)]++;
	TAP_OK(seen[1] > 180, "temperature 0.01 is nearly greedy (%d/200)", seen[1]);
	train_sampling_default(&s);
	s.top_p = 0;
	TAP_OK(train_sampling_check(&s) != NULL, "top-p 0 rejected");
	s.top_p = 1;
	s.temperature = 0;
	TAP_OK(train_sampling_check(&s) != NULL, "temperature 0 rejected");
}

/* The sampler as it was before its radix sort (qsort by descending logit,
 * ties by lower id): the reference the fast one must match draw for draw. */
typedef struct ref_cand {
	float logit;
	int id;
} ref_cand;

static int ref_desc(const void *a, const void *b)
{
	const ref_cand *x = a, *y = b;
	if (x->logit != y->logit)
		return x->logit > y->logit ? -1 : 1;
	return x->id - y->id;
}

static int ref_sample(const float *logits, int V, const train_sampling *s, train_rng *r)
{
	int best = 0;
	for (int v = 1; v < V; v++)
		if (logits[v] > logits[best])
			best = v;
	if (s->greedy || !isfinite(logits[best]))
		return best;
	ref_cand *c = xmalloc(sizeof *c * V);
	double *p = xmalloc(sizeof *p * V), invt = 1.0 / s->temperature, mx = logits[best] * invt;
	int sorted = s->top_k > 0 || s->top_p < 1.0, n = 0;
	for (int v = 0; v < V; v++) {
		double z = logits[v] * invt;
		if (!(z > -INFINITY) || (sorted && z - mx < -27.6))
			continue;
		c[n].logit = (float)z;
		c[n++].id = v;
	}
	if (sorted) {
		qsort(c, n, sizeof *c, ref_desc);
		if (s->top_k > 0 && s->top_k < n)
			n = s->top_k;
	}
	double total = 0.0;
	for (int i = 0; i < n; i++)
		total += p[i] = exp((double)c[i].logit - mx);
	if (s->top_p < 1.0) {
		double cum = 0.0;
		for (int i = 0; i < n; i++)
			if ((cum += p[i] / total) >= s->top_p) {
				n = i + 1;
				break;
			}
	}
	if (s->min_p > 0.0) {
		int k = 0;
		for (int i = 0; i < n; i++)
			if (p[i] >= s->min_p) {
				p[k] = p[i];
				c[k++] = c[i];
			}
		n = k;
	}
	total = 0.0;
	for (int i = 0; i < n; i++)
		total += p[i];
	int tok = best;
	double u = train_rng_uniform(r) * total, acc = 0.0;
	for (int i = 0; i < n; i++) {
		acc += p[i];
		tok = c[i].id;
		if (u < acc)
			break;
	}
	free(c);
	free(p);
	return tok;
}

/* train_sample_token against ref_sample over GPT-2's vocabulary size:
 * near-uniform logits (a random model's), spread ones (a trained model's),
 * logits on a grid of 0.25 (many ties, +0 and -0 among them), some -inf,
 * and logits that overflow float at a tiny temperature; each with top-k,
 * top-p, min-p and temperature settings, the same seeds. */
static void test_sampling_fast(void)
{
	enum { V = 50257, DRAWS = 12 };
	static const struct {
		int top_k;
		double top_p, min_p, temperature;
	} set[] = {{0, 1, 0, 1},   {0, 0.9, 0, 1},    {40, 1, 0, 1},    {0, 0.5, 0, 0.7},
		   {5, 0.95, 0, 1}, {0, 1, 0.05, 1},  {0, 0.9, 0.01, 1.3}, {1, 1, 0, 1}};
	float *lg = xmalloc(sizeof(float) * V);
	train_rng g;
	train_rng_seed(&g, 11);
	for (int kind = 0; kind < 5; kind++) {
		for (int v = 0; v < V; v++) {
			double u1 = train_rng_uniform(&g) + 1e-12, u2 = train_rng_uniform(&g);
			double nrm = sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
			lg[v] = kind == 0   ? (float)(0.1 * nrm)
				: kind == 1 ? (float)(3.0 * nrm)
				: kind == 2 ? (float)(0.25 * floor(4 * nrm)) * (v % 3 ? 1.0f : -1.0f)
				: kind == 3 ? (v % 7 ? (float)(2.0 * nrm) : -INFINITY)
					    : (float)(1e3 * nrm);
		}
		int same = 1, cases = 0;
		for (size_t k = 0; k < sizeof set / sizeof set[0]; k++) {
			train_sampling s;
			train_sampling_default(&s);
			s.top_k = set[k].top_k;
			s.top_p = set[k].top_p;
			s.min_p = set[k].min_p;
			s.temperature = kind == 4 ? 1e-36 : set[k].temperature;
			train_rng a, b;
			train_rng_seed(&a, 100 + k);
			train_rng_seed(&b, 100 + k);
			for (int d = 0; d < DRAWS; d++, cases++) {
				int x = train_sample_token(lg, V, &s, &a), y = ref_sample(lg, V, &s, &b);
				if (x != y && same) {
					tap_diag("logits %d, setting %zu, draw %d: %d, reference %d", kind, k,
					     d, x, y);
					same = 0;
				}
			}
		}
		static const char *const what[] = {"near-uniform", "spread", "on a grid (ties, -0)",
						   "with -inf", "overflowing float at temperature 1e-36"};
		TAP_OK(same, "%s logits, %d draws: the sampler draws what the qsort reference does",
		       what[kind], cases);
	}
	/* greedy: the first index of the greatest logit, NaN never chosen
	 * (index 0 when it is NaN), over lengths that leave tails of the
	 * 16-wide pass */
	{
		float nan = NAN, inf = INFINITY;
		static float big[40];
		for (int v = 0; v < 40; v++)
			big[v] = (float)(v % 7);
		big[33] = 9.0f;
		big[38] = 9.0f;
		const struct {
			const float *x;
			int n;
		} g[] = {
			{(float[]){nan, 1, 2}, 3},          {(float[]){1, nan, 3, 3}, 4},
			{(float[]){-inf, -inf}, 2},         {(float[]){-0.0f, 0.0f, -1}, 3},
			{(float[]){0.0f, -0.0f}, 2},        {(float[]){1, 5, 5, 2}, 4},
			{(float[]){7}, 1},                  {(float[]){-inf, inf, 3, inf}, 4},
			{big, 17},                          {big, 40},
			{big + 1, 39},                      {(float[]){-1, -1, -1, -1, -1, -1}, 6},
		};
		int all = 1;
		for (size_t k = 0; k < sizeof g / sizeof g[0]; k++) {
			train_sampling sg;
			train_sampling_default(&sg);
			sg.greedy = 1;
			train_rng a, b;
			train_rng_seed(&a, 1);
			train_rng_seed(&b, 1);
			int x = train_sample_token(g[k].x, g[k].n, &sg, &a);
			int y = ref_sample(g[k].x, g[k].n, &sg, &b);
			if (x != y) {
				tap_diag("greedy case %zu: %d, reference %d", k, x, y);
				all = 0;
			}
		}
		TAP_OK(all, "greedy: the index the reference's loop picks in 12 cases (NaN, ties, "
			    "-0, infinities, tails)");
	}
	/* all tied: top-k 5 keeps the 5 lowest ids */
	for (int v = 0; v < V; v++)
		lg[v] = 0.5f;
	train_sampling s;
	train_sampling_default(&s);
	s.top_k = 5;
	train_rng_seed(&g, 3);
	int low = 1;
	for (int d = 0; d < 200; d++)
		low &= train_sample_token(lg, V, &s, &g) < 5;
	TAP_OK(low, "all logits tied: top-k 5 keeps ids 0-4");
	free(lg);
}

static int stop_at_3(void *ctx, int row, const int *ids, int n)
{
	(void)ctx;
	(void)row;
	return n >= 3 && ids[n - 1] % 2 == 0;
}

static void test_generate(void)
{
	char *err = NULL;
	train_model *m = train_model_init(cfg_llama, strlen(cfg_llama), 3, &err);
	int p0[] = {5, 6, 7, 8}, p1[] = {9}, p2[] = {10, 11, 12, 13, 14, 15, 16};
	const int *prompts[] = {p0, p1, p2};
	int plen[] = {4, 1, 7};
	uint64_t seeds[] = {1, 2, 3};
	train_gen_opts o = {.max_new = 12};
	train_sampling_default(&o.sampling);
	o.sampling.temperature = 0.9;
	train_gen_result a[3], b[3], c[3];
	TAP_OK(train_generate(m, 3, prompts, plen, seeds, &o, a, &err) == 0, "generate batch 3");
	o.batch = 1;
	TAP_OK(train_generate(m, 3, prompts, plen, seeds, &o, b, &err) == 0, "generate batch 1");
	o.batch = 0;
	TAP_OK(train_generate(m, 3, prompts, plen, seeds, &o, c, &err) == 0, "generate again");
	int same = 1, same_ab = 1;
	for (int i = 0; i < 3; i++) {
		same &= a[i].n == c[i].n && !memcmp(a[i].ids, c[i].ids, sizeof(int) * a[i].n);
		same_ab &= a[i].n == b[i].n && !memcmp(a[i].ids, b[i].ids, sizeof(int) * a[i].n);
	}
	TAP_OK(same, "same seeds, same output");
	TAP_OK(same_ab, "a row's output does not depend on batching");
	TAP_OK(a[0].n == 12 && a[0].finish == TRAIN_FINISH_LENGTH, "max-new-tokens ends a row");
	for (int i = 0; i < 3; i++) {
		free(a[i].ids);
		free(b[i].ids);
		free(c[i].ids);
	}
	/* repeated prompts (K completions of one prompt; one a copy at
	 * another address): prefilled once and the cache row copied, the
	 * same output as each row alone */
	{
		int p0c[] = {5, 6, 7, 8};
		const int *rep[] = {p0, p1, p0c, p0, p2, p1};
		int rlen[] = {4, 1, 4, 4, 7, 1};
		uint64_t rseed[] = {1, 2, 3, 4, 5, 6};
		train_gen_result r6[6], r1[6];
		o.batch = 0;
		int ok = train_generate(m, 6, rep, rlen, rseed, &o, r6, &err) == 0;
		o.batch = 1;
		ok &= train_generate(m, 6, rep, rlen, rseed, &o, r1, &err) == 0;
		o.batch = 0;
		for (int i = 0; i < 6; i++) {
			ok &= r6[i].n == r1[i].n && !memcmp(r6[i].ids, r1[i].ids, sizeof(int) * r6[i].n);
			free(r6[i].ids);
			free(r1[i].ids);
		}
		TAP_OK(ok, "repeated prompts in a batch: the same output as each row alone");
	}
	/* EOS: make the first sampled id an EOS */
	o.sampling.greedy = 1;
	TAP_OK(train_generate(m, 1, prompts, plen, seeds, &o, a, &err) == 0, "greedy");
	int eos = a[0].ids[2];
	o.eos = &eos;
	o.n_eos = 1;
	TAP_OK(train_generate(m, 1, prompts, plen, seeds, &o, b, &err) == 0 && b[0].n <= 2 &&
		       b[0].finish == TRAIN_FINISH_EOS,
	       "stops at EOS (not included)");
	free(a[0].ids);
	free(b[0].ids);
	o.n_eos = 0;
	o.stop = stop_at_3;
	TAP_OK(train_generate(m, 1, prompts, plen, seeds, &o, a, &err) == 0 &&
		       (a[0].finish == TRAIN_FINISH_STOP ? a[0].ids[a[0].n - 1] % 2 == 0 : 1),
	       "stop callback ends a row");
	free(a[0].ids);
	int badp[] = {500};
	const int *bp[] = {badp};
	int one = 1;
	err = NULL;
	TAP_OK(train_generate(m, 1, bp, &one, seeds, &o, a, &err) < 0 && err,
	       "out-of-range prompt id rejected");
	free(err);
	train_model_free(m);
}

int main(void)
{
	test_config();
	test_llama3_rope();
	test_init_threads();
	test_batched_forward("gpt2", cfg_gpt2);
	test_batched_forward("llama", cfg_llama);
	test_batched_forward("qwen2", cfg_qwen2);
	test_batched_forward("qwen3", cfg_qwen3);
	test_roundtrip("gpt2", cfg_gpt2);
	test_roundtrip("llama", cfg_llama);
	test_roundtrip("qwen2", cfg_qwen2);
	test_roundtrip("qwen3", cfg_qwen3);
	test_gpt2_layout();
	test_errors();
	test_sharded();
	test_sampling();
	test_sampling_fast();
	test_generate();
	return tap_done();
}

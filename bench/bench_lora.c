/* bench_lora.c: one DPO training step (policy forward + backward on chosen
 * and rejected, fixed reference log-probs, AdamW) with full fine-tuning
 * (--lora-r 0) or a LoRA adapter (--lora-r R on --targets) on a randomly
 * initialised model: GPT-2-shaped (--arch gpt2, MLP width --ffn) or Qwen3-shaped (--arch
 * qwen3: GQA with --kv-heads, head_dim 128, SwiGLU --ffn, tied). Prints one
 * JSON line: tokens/s, s/step, peak RSS (of this process: run one
 * configuration per process), trained and total parameters.
 * --precision bf16 runs the matmuls in bf16 (dpo-train --precision bf16);
 * with LoRA the frozen base is then held in bf16 only (converted once
 * after the f32 init, as dpo-train loads it). The model is made in f32
 * first, so "peak_rss_mb" is the high-water mark of the training steps
 * alone (reset through /proc/self/clear_refs once the model is ready);
 * "setup_peak_rss_mb" includes the f32 init.
 *   bench_lora [--arch gpt2] [--layers 12] [--d 768] [--heads 12] [--kv-heads 12]
 *              [--ffn 3072] [--vocab 50257] [--seq 256] [--steps 2] [--threads 2]
 *              [--lora-r 0] [--targets all-linear] [--precision f32]
 *              [--gradient-checkpointing] */
#include "config.h"
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef HAVE_BLAS
#include <cblas.h>
#endif
#include "train/lora.h"
#include "train/matmul_bf16.h"
#include "train/model.h"
#include "train/trainer.h"
#include "util/progress.h"
#include "util/xmalloc.h"

static char *model_config(const char *arch, long layers, long d, long heads, long kv, long ffn,
			  long vocab)
{
	if (!strcmp(arch, "gpt2"))
		return xasprintf("{\"model_type\": \"gpt2\", \"n_layer\": %ld, \"n_embd\": %ld, "
				 "\"n_head\": %ld, \"n_inner\": %ld, \"vocab_size\": %ld, "
				 "\"n_positions\": 1024, \"tie_word_embeddings\": true, "
				 "\"initializer_range\": 0.02}",
				 layers, d, heads, ffn, vocab);
	return xasprintf("{\"model_type\": \"qwen3\", \"num_hidden_layers\": %ld, \"hidden_size\": %ld, "
			 "\"num_attention_heads\": %ld, \"num_key_value_heads\": %ld, \"head_dim\": 128, "
			 "\"intermediate_size\": %ld, \"vocab_size\": %ld, \"max_position_embeddings\": 4096, "
			 "\"rope_theta\": 1000000, \"rms_norm_eps\": 1e-6, \"tie_word_embeddings\": true, "
			 "\"initializer_range\": 0.02}",
			 layers, d, heads, kv, ffn, vocab);
}

/* The process's peak resident set (VmHWM) in MB; reset: set it to the
 * current RSS. */
static double hwm_mb(int reset)
{
	double kb = 0;
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, "VmHWM:", 6))
			kb = strtod(line + 6, NULL);
	if (f)
		fclose(f);
	if (reset && (f = fopen("/proc/self/clear_refs", "w"))) {
		fputs("5", f);
		fclose(f);
	}
	return kb / 1024.0;
}

/* One pair of seq tokens (a quarter prompt) of random ids. */
static void make_pair(train_pair *p, long seq, long vocab)
{
	uint64_t s = 12345;
	int np = (int)(seq / 4);
	p->np = np;
	p->nc = p->nr = (int)seq - np;
	p->prompt = xmalloc(sizeof(int) * np);
	p->chosen = xmalloc(sizeof(int) * p->nc);
	p->rejected = xmalloc(sizeof(int) * p->nr);
#define NEXT() (int)(((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 33) % (uint64_t)vocab)
	for (int t = 0; t < np; t++)
		p->prompt[t] = NEXT();
	for (int t = 0; t < p->nc; t++) {
		p->chosen[t] = NEXT();
		p->rejected[t] = NEXT();
	}
#undef NEXT
	p->ref_c = -300;
	p->ref_r = -301;
}

int main(int argc, char **argv)
{
	train_runtime_tune(argv);
	long layers = 12, d = 768, heads = 12, kv = 12, ffn = 3072, vocab = 50257, seq = 256, steps = 2,
	     threads = 2, r = 0;
	const char *arch = "gpt2", *targets = "all-linear", *precision = "f32";
	static const struct option lo[] = {
		{"arch", 1, 0, 'a'},  {"layers", 1, 0, 'l'},   {"d", 1, 0, 'd'},       {"heads", 1, 0, 'H'},
		{"kv-heads", 1, 0, 'k'}, {"ffn", 1, 0, 'f'},   {"vocab", 1, 0, 'v'},   {"seq", 1, 0, 's'},
		{"steps", 1, 0, 'n'}, {"threads", 1, 0, 't'}, {"lora-r", 1, 0, 'r'}, {"targets", 1, 0, 'T'},
		{"precision", 1, 0, 'p'}, {"gradient-checkpointing", 0, 0, 'g'}, {0, 0, 0, 0},
	};
	int c, ckpt = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		long v = optarg ? strtol(optarg, NULL, 10) : 0;
		switch (c) {
		case 'a': arch = optarg; break;
		case 'T': targets = optarg; break;
		case 'p': precision = optarg; break;
		case 'g': ckpt = 1; break;
		case 'l': layers = v; break;
		case 'd': d = v; break;
		case 'H': heads = v; break;
		case 'k': kv = v; break;
		case 'f': ffn = v; break;
		case 'v': vocab = v; break;
		case 's': seq = v; break;
		case 'n': steps = v; break;
		case 't': threads = v; break;
		case 'r': r = v; break;
		default: fprintf(stderr, "usage: see bench/bench_lora.c\n"); return 2;
		}
	}
#ifdef _OPENMP
	omp_set_num_threads((int)threads);
#endif
#ifdef HAVE_BLAS
	openblas_set_num_threads((int)threads);
#endif
	train_precision prec = TRAIN_PREC_F32;
	if (train_precision_parse(precision, &prec)) {
		fprintf(stderr, "bench_lora: --precision f32|bf16|auto\n");
		return 2;
	}
	prec = train_precision_resolve(prec);
	train_gemm_set_precision(prec);
	char *cfg = model_config(arch, layers, d, heads, kv, ffn, vocab), *err = NULL;
	train_model *m = train_model_init(cfg, strlen(cfg), 0, &err);
	if (!m) {
		fprintf(stderr, "bench_lora: %s\n", err);
		return 1;
	}
	train_lora *ad = NULL;
	if (r > 0) {
		train_lora_cfg lc = {.r = (int)r, .alpha = 2.0 * r, .targets = (char *)targets};
		ad = train_lora_new(train_model_config(m), &lc, 1, &err);
		if (!ad) {
			fprintf(stderr, "bench_lora: %s\n", err);
			return 1;
		}
	}
	if (ad && prec == TRAIN_PREC_BF16) /* the frozen base in bf16 only */
		train_model_to_bf16(m);
	double setup_mb = hwm_mb(1);
	train_engine *e = ad ? train_engine_new_lora(m, ad) : train_engine_new(m);
	train_engine_set_checkpointing(e, ckpt);
	train_pair p;
	make_pair(&p, seq, vocab);
	const train_pair *bp = &p;
	train_loss_cfg lcf;
	train_loss_cfg_default(&lcf);
	train_adamw opt = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01};
	double t0 = 0;
	for (long it = 0; it <= steps; it++) {
		if (it == 1)
			t0 = util_now(); /* the first step warms up */
		if (train_engine_accumulate(e, &lcf, &bp, 1, 1.0, NULL)) {
			fprintf(stderr, "bench_lora: %s\n", train_engine_errmsg(e));
			return 1;
		}
		train_engine_step(e, &opt, 1e-4, 1.0, NULL);
	}
	double dt = (util_now() - t0) / (double)steps;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double peak = hwm_mb(0);
	if (peak <= 0) /* no /proc: the whole run's */
		peak = ru.ru_maxrss / 1024.0;
	printf("{\"arch\": \"%s\", \"precision\": \"%s\", \"lora_r\": %ld, \"ckpt\": %d, \"threads\": %ld, "
	       "\"tokens_per_s\": %.1f, \"s_per_step\": %.3f, \"peak_rss_mb\": %.0f, "
	       "\"setup_peak_rss_mb\": %.0f, \"weight_mb\": %.0f, \"trained_params\": %zu, "
	       "\"params\": %zu}\n",
	       arch, train_precision_name(prec), r, ckpt, threads, 2.0 * seq / dt, dt, peak,
	       setup_mb, train_model_weight_bytes(m) / 1048576.0,
	       train_engine_nparams(e), train_model_nparams(m));
	train_pair_free(&p);
	train_engine_free(e);
	train_lora_free(ad);
	train_model_free(m);
	free(cfg);
	return 0;
}

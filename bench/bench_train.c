/* bench_train.c: speed of one DPO training step (policy forward + backward
 * on chosen and rejected, fixed reference log-probs, AdamW) on a randomly
 * initialised GPT-2-shaped model, the same work as
 * ../shared/bench/torch_dpo_bench.py: 2*pairs sequences of seq tokens, the
 * first quarter of each is the prompt. Prints one JSON line with tokens/s,
 * GFLOP/s (the torch script's formula, so the two compare), s/step and
 * peak RSS.
 *   bench_train [--layers 12] [--d 768] [--heads 12] [--vocab 50257]
 *               [--pairs 1] [--seq 256] [--steps 3] [--threads 2]
 *               [--checkpointing 0|1] [--precision f32|bf16] */
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
#include "train/matmul_bf16.h"
#include "train/model.h"
#include "train/trainer.h"
#include "util/progress.h"
#include "util/xmalloc.h"

static const char *blas_core(void)
{
#ifdef HAVE_BLAS
	return openblas_get_corename();
#else
	return "none";
#endif
}

int main(int argc, char **argv)
{
	train_runtime_tune(argv);
	long layers = 12, d = 768, heads = 12, vocab = 50257, pairs = 1, seq = 256, steps = 3,
	     threads = 2, ckpt = 0;
	static const struct option lo[] = {
		{"layers", 1, 0, 'l'}, {"d", 1, 0, 'd'},     {"heads", 1, 0, 'H'},
		{"vocab", 1, 0, 'v'},  {"pairs", 1, 0, 'p'}, {"seq", 1, 0, 's'},
		{"steps", 1, 0, 'n'},  {"threads", 1, 0, 't'}, {"checkpointing", 1, 0, 'k'},
		{"precision", 1, 0, 'P'},
		{0, 0, 0, 0},
	};
	int c;
	train_precision prec = TRAIN_PREC_F32;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		long v = optarg ? strtol(optarg, NULL, 10) : 0;
		switch (c) {
		case 'l': layers = v; break;
		case 'd': d = v; break;
		case 'H': heads = v; break;
		case 'v': vocab = v; break;
		case 'p': pairs = v; break;
		case 's': seq = v; break;
		case 'n': steps = v; break;
		case 't': threads = v; break;
		case 'k': ckpt = v; break;
		case 'P':
			if (train_precision_parse(optarg, &prec))
				c = '?';
			break;
		default: break;
		}
		if (c == '?') {
			fprintf(stderr, "usage: bench_train [--layers N] [--d N] [--heads N] [--vocab N] [--pairs N] [--seq N] [--steps N] [--threads N] [--checkpointing 0|1] [--precision f32|bf16|auto]\n");
			return 2;
		}
	}
	train_gemm_set_precision(prec);
#ifdef _OPENMP
	omp_set_num_threads((int)threads);
#endif
#ifdef HAVE_BLAS
	openblas_set_num_threads((int)threads);
#endif
	char *cfg = xasprintf("{\"model_type\": \"gpt2\", \"architectures\": [\"GPT2LMHeadModel\"], "
			      "\"n_layer\": %ld, \"n_embd\": %ld, \"n_head\": %ld, \"vocab_size\": %ld, "
			      "\"n_positions\": 1024, \"layer_norm_epsilon\": 1e-5, "
			      "\"activation_function\": \"gelu_new\", \"tie_word_embeddings\": true, "
			      "\"initializer_range\": 0.02, \"eos_token_id\": 0, \"bos_token_id\": 0}",
			      layers, d, heads, vocab);
	char *err = NULL;
	train_model *m = train_model_init(cfg, strlen(cfg), 0, &err);
	if (!m) {
		fprintf(stderr, "bench_train: %s\n", err);
		return 1;
	}
	train_engine *e = train_engine_new(m);
	train_engine_set_checkpointing(e, (int)ckpt);
	int np = (int)(seq / 4);
	train_pair *pp = xcalloc((size_t)pairs, sizeof(train_pair));
	const train_pair **bp = xcalloc((size_t)pairs, sizeof(*bp));
	uint64_t s = 12345;
	for (long i = 0; i < pairs; i++) {
		train_pair *p = &pp[i];
		p->np = np;
		p->nc = p->nr = (int)seq - np;
		p->prompt = xmalloc(sizeof(int) * np);
		p->chosen = xmalloc(sizeof(int) * p->nc);
		p->rejected = xmalloc(sizeof(int) * p->nr);
		for (int t = 0; t < np; t++)
			p->prompt[t] = (int)((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 33) % (int)vocab;
		for (int t = 0; t < p->nc; t++) {
			p->chosen[t] = (int)((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 33) % (int)vocab;
			p->rejected[t] = (int)((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 33) % (int)vocab;
		}
		p->ref_c = -300 - (double)i;
		p->ref_r = -301 + (double)i;
		bp[i] = p;
	}
	train_loss_cfg lc;
	train_loss_cfg_default(&lc);
	train_adamw opt = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01};
	double loss = 0, t0 = 0;
	struct rusage ru0;
	for (long it = 0; it <= steps; it++) {
		if (it == 1) {
			t0 = util_now(); /* the first step warms up */
			getrusage(RUSAGE_SELF, &ru0);
		}
		train_loss_batch b;
		if (train_engine_accumulate(e, &lc, bp, (int)pairs, 1.0, &b)) {
			fprintf(stderr, "bench_train: %s\n", train_engine_errmsg(e));
			return 1;
		}
		train_engine_step(e, &opt, 1e-6, 1.0, NULL);
		loss = b.loss;
	}
	double dt = (util_now() - t0) / (double)steps;
	struct rusage ru1;
	getrusage(RUSAGE_SELF, &ru1);
	double cpu = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) + (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
		     1e-6 * ((ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) + (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec));
	cpu /= (double)steps;
	/* where the time goes: forward alone, forward + backward, the update */
	double tf = util_now();
	double lcv[64], lrv[64];
	train_engine_logps(e, bp, (int)(pairs < 64 ? pairs : 64), lcv, lrv, NULL, NULL);
	tf = util_now() - tf;
	double tb = util_now();
	train_engine_accumulate(e, &lc, bp, (int)pairs, 1.0, NULL);
	tb = util_now() - tb;
	double tu = util_now();
	train_engine_step(e, &opt, 1e-6, 1.0, NULL);
	tu = util_now() - tu;
	fprintf(stderr, "bench_train: forward %.3f s, forward+backward %.3f s, AdamW %.3f s\n", tf, tb, tu);
	double tokens = 2.0 * pairs * seq;
	double nparams = (double)train_model_nparams(m);
	double flops = 6 * nparams * tokens + 12.0 * layers * d * seq * seq * 2 * pairs * 0.5 * 3;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"impl\": \"dpo\", \"precision\": \"%s\", \"blas\": \"%s\", \"threads\": %ld, \"params\": %.0f, \"tokens_per_step\": %.0f, "
	       "\"s_per_step\": %.3f, \"cpu_s_per_step\": %.3f, \"tokens_per_s\": %.1f, \"gflops\": %.1f, \"peak_rss_mb\": %.0f, "
	       "\"loss\": %.6f}\n",
	       train_precision_name(train_gemm_precision()), blas_core(), threads, nparams, tokens, dt, cpu, tokens / dt, flops / dt / 1e9, ru.ru_maxrss / 1024.0, loss);
	for (long i = 0; i < pairs; i++)
		train_pair_free(&pp[i]);
	free(pp);
	free(bp);
	train_engine_free(e);
	train_model_free(m);
	free(cfg);
	return 0;
}

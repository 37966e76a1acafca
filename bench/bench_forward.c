/* bench_forward.c: speed of the model engine on a randomly initialised
 * model (default: GPT-2 124M's shape, tests/data/model/gpt2-124m.json).
 *
 * Printed, all measured in this run:
 *   - memory bandwidth (GB/s), a multi-threaded streaming read;
 *   - decode tokens/s at batch 1 and batch 4 with the KV cache, next to the
 *     batch-1 bandwidth bound (bandwidth / bytes of weights read per step);
 *     goals: batch 1 >= 0.8 of the bound, batch 4 >= 3x batch 1;
 *   - forward (scoring) tokens/s with cblas_sgemm vs the plain built-in
 *     matmul kernel, and their ratio.
 * Usage: bench_forward [CONFIG.json] [--threads N] [--steps N] [--seq T] */
#include "config.h"
#include "train/layers.h"
#include "train/model.h"
#include "util/file.h"
#include "util/progress.h"
#include "util/xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static char *slurp(const char *path, size_t *len)
{
	char *text = util_read_file(path, len);
	if (!text) {
		perror(path);
		exit(1);
	}
	return text;
}

/* GB/s of a streaming read of a 512 MiB buffer (best of 3). */
static double bandwidth(void)
{
	size_t n = (512u << 20) / sizeof(float);
	float *a = xmalloc(n * sizeof(float));
#pragma omp parallel for
	for (size_t i = 0; i < n; i++)
		a[i] = (float)(i & 7);
	double best = 0, sink = 0;
	for (int r = 0; r < 3; r++) {
		double t0 = util_now(), s = 0;
#pragma omp parallel for reduction(+ : s)
		for (size_t i = 0; i < n; i++)
			s += a[i];
		double dt = util_now() - t0;
		sink += s;
		if (n * sizeof(float) / dt / 1e9 > best)
			best = n * sizeof(float) / dt / 1e9;
	}
	free(a);
	if (sink < 0)
		printf("#\n");
	return best;
}

/* Decode tokens/s for nb rows: prefill 8 tokens each, then steps steps. */
static double decode_rate(const train_model *m, int nb, int steps)
{
	const train_config *c = train_model_config(m);
	train_kv *kv = train_kv_new(m, nb, 8 + steps + 1);
	float *logits = xmalloc(sizeof(float) * c->vocab * nb);
	int prompt[8] = {464, 2068, 7586, 21831, 18045, 625, 262, 16931};
	int rows[16], ids[16];
	for (int i = 0; i < nb; i++) {
		for (int k = 0; k < 8; k++)
			prompt[k] = (prompt[k] + i) % c->vocab;
		train_model_prefill(m, kv, i, prompt, 8, logits);
		rows[i] = i;
		ids[i] = (100 + i) % c->vocab;
	}
	train_model_decode(m, kv, rows, ids, nb, logits); /* warm-up */
	double t0 = util_now();
	for (int s = 0; s < steps; s++) {
		for (int i = 0; i < nb; i++)
			ids[i] = (ids[i] * 31 + 7) % c->vocab;
		train_model_decode(m, kv, rows, ids, nb, logits);
	}
	double dt = util_now() - t0;
	train_kv_free(kv);
	free(logits);
	return nb * steps / dt;
}

/* Scoring forward tokens/s for one sequence of T tokens (best of reps). */
static double forward_rate(const train_model *m, int T, int reps)
{
	const train_config *c = train_model_config(m);
	int *ids = xmalloc(sizeof(int) * T);
	float *lp = xmalloc(sizeof(float) * T);
	char *err = NULL;
	for (int t = 0; t < T; t++)
		ids[t] = (t * 977 + 11) % c->vocab;
	double best = 0;
	for (int r = 0; r < reps; r++) {
		double t0 = util_now();
		if (train_model_logprobs(m, ids, T, lp, &err)) {
			fprintf(stderr, "bench_forward: %s\n", err);
			exit(1);
		}
		double rate = T / (util_now() - t0);
		if (rate > best)
			best = rate;
	}
	free(ids);
	free(lp);
	return best;
}

int main(int argc, char **argv)
{
	const char *cfgpath = NULL;
	int steps = 16, T = 128, threads = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--seq") && i + 1 < argc)
			T = atoi(argv[++i]);
		else if (argv[i][0] != '-')
			cfgpath = argv[i];
		else {
			fprintf(stderr, "usage: bench_forward [CONFIG.json] [--threads N] [--steps N] "
					"[--seq T]\n");
			return 2;
		}
	}
	train_set_threads(threads);
#ifdef _OPENMP
	threads = omp_get_max_threads();
#else
	threads = 1;
#endif
	char *def = NULL;
	if (!cfgpath) {
		const char *src = getenv("top_srcdir");
		def = xasprintf("%s/tests/data/model/gpt2-124m.json", src ? src : ".");
		cfgpath = def;
	}
	size_t len;
	char *text = slurp(cfgpath, &len), *err = NULL;
	double t0 = util_now();
	train_model *m = train_model_init(text, len, 1, &err);
	if (!m) {
		fprintf(stderr, "bench_forward: %s: %s\n", cfgpath, err);
		return 1;
	}
	const train_config *c = train_model_config(m);
	printf("model: %s %s, %zu parameters (init %.1fs), %d threads\n", cfgpath, c->model_type,
	       train_model_param_count(m), util_now() - t0, threads);

	double bw = bandwidth();
	/* bytes read per decode step: every weight once, except the position
	 * table (one row) */
	double bytes = (double)train_model_nparams(m) * sizeof(float);
	if (train_model_weights(m)->wpe)
		bytes -= (double)c->max_pos * c->dim * sizeof(float);
	double bound = bw * 1e9 / bytes;
	printf("memory bandwidth:        %8.2f GB/s  (weights %.0f MB/step -> bound %.2f tok/s)\n",
	       bw, bytes / 1e6, bound);
	double d1 = decode_rate(m, 1, steps);
	double d4 = decode_rate(m, 4, steps);
	printf("decode batch 1:          %8.2f tok/s  = %.2f of the bandwidth bound (goal >= 0.8)\n",
	       d1, d1 / bound);
	printf("decode batch 4:          %8.2f tok/s  = %.2fx batch 1 (goal >= 3x)\n", d4, d4 / d1);
#ifdef HAVE_BLAS
	train_layers_use_blas = 1;
	double fb = forward_rate(m, T, 2);
	train_layers_use_blas = 0;
	double fp = forward_rate(m, T, 2);
	train_layers_use_blas = 1;
	printf("forward T=%d, BLAS:     %8.2f tok/s\n", T, fb);
	printf("forward T=%d, plain:    %8.2f tok/s\n", T, fp);
	printf("BLAS / plain:            %8.2fx\n", fb / fp);
#else
	double fp = forward_rate(m, T, 2);
	printf("forward T=%d, plain:    %8.2f tok/s (built without BLAS)\n", T, fp);
#endif
	train_model_free(m);
	free(text);
	free(def);
	return 0;
}

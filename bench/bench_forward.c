/* bench_forward.c: speed of the model engine on a randomly initialised
 * model (default: GPT-2 124M's shape, tests/data/model/gpt2-124m.json).
 *
 * Printed, all measured in this run:
 *   - memory bandwidth (GB/s), a multi-threaded streaming read;
 *   - decode tokens/s at batch 1 and batch 4 with the KV cache, next to the
 *     batch-1 bandwidth bound (bandwidth / bytes of weights read per step);
 *     goals: batch 1 >= 0.8 of the bound, batch 4 >= 3x batch 1;
 *   - forward (scoring) tokens/s with cblas_sgemm vs the plain built-in
 *     matmul kernel, and their ratio;
 *   - the same model held in bf16 (train_model_to_bf16): decode at batch 1
 *     and 4 against the bf16 bound (bandwidth / bf16 weight bytes per step,
 *     the bandwidth probed again just before and the better probe taken;
 *     goals as above, and about 2x the f32 batch-1 rate), with the GB/s the
 *     decode itself read, with the widening kernel and the vdpbf16ps one,
 *     and the scoring forward.
 * Usage: bench_forward [CONFIG.json] [--threads N] [--steps N] [--seq T] */
#include "config.h"
#include "train/layers.h"
#include "train/matvec_bf16.h"
#include "train/model.h"
#include "train/precision.h"
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

/* 4 floats as one vector; the probe keeps 8 of them as independent sums. */
typedef float bw_v4f __attribute__((vector_size(16)));

/* Sum of a[lo..hi) (hi - lo a multiple of 64 floats, 64-byte aligned) in 8
 * independent 16-byte sums. */
static float sum_v4(const float *a, size_t lo, size_t hi)
{
	bw_v4f acc[8] = {{0}};
	for (size_t i = lo; i < hi; i += 32)
		for (int k = 0; k < 8; k++)
			acc[k] += *(const bw_v4f *)(a + i + 4 * k);
	for (int k = 1; k < 8; k++)
		acc[0] += acc[k];
	return acc[0][0] + acc[0][1] + acc[0][2] + acc[0][3];
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define PROBE_AVX2 1
/* The same with 32-byte loads (CPUs with AVX2: one core issues fewer loads
 * for the same bytes, so the probe is less likely to be core-bound), in
 * four streams. */
__attribute__((target("avx2"))) static float sum_v8(const float *a, size_t lo, size_t hi)
{
	__m256 acc[8];
	for (int k = 0; k < 8; k++)
		acc[k] = _mm256_setzero_ps();
	/* four streams at once (the quarters of the range), as the matmul
	 * kernel reads two or more weight rows far apart: more misses in
	 * flight than one sequential stream */
	size_t q = (hi - lo) / 4 / 16 * 16;
	for (size_t i = lo; i < lo + q; i += 16)
		for (int k = 0; k < 8; k++)
			acc[k] = _mm256_add_ps(acc[k], _mm256_load_ps(a + i + (size_t)(k >> 1) * q + 8 * (k & 1)));
	for (size_t i = lo + 4 * q; i < hi; i += 8)
		acc[0] = _mm256_add_ps(acc[0], _mm256_load_ps(a + i));
	for (int k = 1; k < 8; k++)
		acc[0] = _mm256_add_ps(acc[0], acc[k]);
	float r[8];
	_mm256_storeu_ps(r, acc[0]);
	return r[0] + r[1] + r[2] + r[3] + r[4] + r[5] + r[6] + r[7];
}
#endif

/* GB/s of a streaming read of a 512 MiB buffer, by the same threads as the
 * model: each thread sums its own contiguous chunk into 8 independent
 * vector accumulators, so the loop is bound by memory, not by the latency
 * of a chain of additions. The best of 5 runs with 16-byte loads in one
 * stream and (with AVX2) 5 with 32-byte loads in four streams. */
static double bandwidth(void)
{
	size_t n = (512u << 20) / sizeof(float);
	float *a = aligned_alloc(64, n * sizeof(float));
	if (!a) {
		perror("bench_forward");
		exit(1);
	}
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++)
		a[i] = (float)(i & 7);
	double best = 0;
	float sink = 0;
	int wide = 0;
#ifdef PROBE_AVX2
	__builtin_cpu_init();
	wide = __builtin_cpu_supports("avx2");
#endif
	for (int r = 0; r < (wide ? 10 : 5); r++) {
		double t0 = util_now();
		float s = 0;
#pragma omp parallel reduction(+ : s)
		{
			size_t lo = 0, hi = n;
#ifdef _OPENMP
			size_t nt = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
			lo = n * t / nt / 64 * 64;
			hi = n * (t + 1) / nt / 64 * 64;
#endif
#ifdef PROBE_AVX2
			if (r >= 5)
				s += sum_v8(a, lo, hi);
			else
#endif
				s += sum_v4(a, lo, hi);
		}
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

/* Resident set of this process in MB (/proc/self/status VmRSS; 0 where
 * there is none). */
static double rss_mb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	double kb = 0;
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, "VmRSS:", 6))
			kb = atof(line + 6);
	if (f)
		fclose(f);
	return kb / 1024;
}

/* Decode tokens/s for nb rows: prefill 8 tokens each, then steps steps;
 * the best of 5 rounds (the machine is shared: the best round is the one
 * least disturbed). */
static double decode_rate(const train_model *m, int nb, int steps)
{
	const train_config *c = train_model_config(m);
	train_kv *kv = train_kv_new(m, nb, 8 + steps + 1);
	float *logits = xmalloc(sizeof(float) * c->vocab * nb);
	double best = 0;
	for (int round = 0; round < 5; round++) {
		int prompt[8] = {464, 2068, 7586, 21831, 18045, 625, 262, 16931};
		int rows[16], ids[16];
		for (int i = 0; i < nb; i++) {
			for (int k = 0; k < 8; k++)
				prompt[k] = (prompt[k] + i) % c->vocab;
			train_kv_reset(kv, i);
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
		double rate = nb * steps / (util_now() - t0);
		if (rate > best)
			best = rate;
	}
	train_kv_free(kv);
	free(logits);
	return best;
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
	double t0 = util_now(), rss0 = rss_mb();
	train_model *m = train_model_init(text, len, 1, &err);
	double rss32 = rss_mb() - rss0;
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
	double fp_best = fb > fp ? fb : fp;
#else
	double fp = forward_rate(m, T, 2);
	printf("forward T=%d, plain:    %8.2f tok/s (built without BLAS)\n", T, fp);
	double fp_best = fp;
#endif
	train_model_free(m);

	/* the bf16 rows: the same weights rounded to bf16 */
	rss0 = rss_mb();
	m = train_model_init(text, len, 1, &err);
	train_model_to_bf16(m);
	printf("resident weights:        %8.0f MB f32, %.0f MB bf16 (%.2fx)\n", rss32,
	       rss_mb() - rss0, (rss_mb() - rss0) / rss32);
	double bbytes = (double)train_model_weight_bytes(m);
	if (train_model_weights(m)->ln1b) /* GPT-2: wpe [max_pos, C] in bf16, one row read */
		bbytes -= (double)c->max_pos * c->dim * 2;
	c = train_model_config(m);
	/* the probe again, next to the bf16 rows (the other programs on a
	 * shared machine change the bandwidth within a run): the bound takes
	 * the better of the two probes */
	double bw2 = bandwidth();
	double bbw = bw2 > bw ? bw2 : bw;
	double bbound = bbw * 1e9 / bbytes;
	printf("memory bandwidth again:  %8.2f GB/s  (the bf16 bound uses %.2f)\n", bw2, bbw);
	printf("bf16 weights:            %8.0f MB/step -> bound %.2f tok/s (kernel %s)\n",
	       bbytes / 1e6, bbound, train_bf16_kernel_name(1));
	double b1 = decode_rate(m, 1, steps);
	double b4 = decode_rate(m, 4, steps);
	/* what the decode itself read: weight bytes per step x steps/s */
	printf("bf16 decode batch 1:     %8.2f tok/s  = %.2f of the bf16 bound (goal >= 0.8), %.2fx f32"
	       " (reads %.1f GB/s)\n", b1, b1 / bbound, b1 / d1, b1 * bbytes / 1e9);
	printf("bf16 decode batch 4:     %8.2f tok/s  = %.2fx bf16 batch 1 (goal >= 3x), %.2fx f32"
	       " (reads %.1f GB/s)\n", b4, b4 / b1, b4 / d4, b4 / 4 * bbytes / 1e9);
	if (train_cpu_has_avx512bf16()) {
		train_bf16_kernel = TRAIN_BF16_KERNEL_DOT;
		double t1 = decode_rate(m, 1, steps), t4 = decode_rate(m, 4, steps);
		train_bf16_kernel = TRAIN_BF16_KERNEL_AUTO;
		printf("bf16 decode, vdpbf16ps:  %8.2f tok/s batch 1 (%.2f of the bound), %.2f batch 4\n",
		       t1, t1 / bbound, t4);
	}
	double fbf = forward_rate(m, T, 2);
	printf("bf16 forward T=%d:      %8.2f tok/s  = %.2fx f32 (kernel %s)\n", T, fbf,
	       fbf / fp_best, train_bf16_kernel_name(T));
	train_model_free(m);
	free(text);
	free(def);
	return 0;
}

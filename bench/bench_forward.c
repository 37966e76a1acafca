/* bench_forward.c: speed of the model engine on a randomly initialised
 * model (default: GPT-2 124M's shape, tests/data/model/gpt2-124m.json).
 *
 * Printed, all measured in this run:
 *   - memory bandwidth (GB/s), a multi-threaded streaming read, alone;
 *   - decode tokens/s at batch 1 and batch 4 with the KV cache, next to the
 *     batch-1 bandwidth bound (bandwidth / bytes of weights read per step);
 *     goals: batch 1 >= 0.8 of the bound, batch 4 >= 3x batch 1. The bound
 *     takes the best bandwidth any probe of the run read: the stand-alone
 *     one and one before each decode round, streaming as many bytes as the
 *     round reads (decode_rates). On a shared machine a probe taken only
 *     apart from the decode can catch a worse moment than the decode's
 *     best round and flatter the ratio (a stand-alone probe of ~0.15 s
 *     against 5 rounds of decode spread over seconds);
 *   - forward (scoring) tokens/s with cblas_sgemm vs the plain built-in
 *     matmul kernel, and their ratio;
 *   - the same model held in bf16 (train_model_to_bf16): decode at batch 1
 *     and 4 against the bf16 bound (bandwidth / bf16 weight bytes per step,
 *     the best probe of the run as above; goals as above, and about 2x the
 *     f32 batch-1 rate), with the GB/s the decode itself read; the same
 *     through one parallel region per product instead of one per step
 *     (train_decode_bf16_off), with static shares instead of claimed units
 *     (train_decode_bf16_claim: best and median of interleaved rounds) and
 *     with the vdpbf16ps kernel; generation (train_generate: prefill, decode
 *     steps and the draws) against decode batch 4; the scoring forward.
 * Usage: bench_forward [CONFIG.json] [--threads N] [--steps N] [--seq T] */
#include "config.h"
#include "train/decode_bf16.h"
#include "train/layers.h"
#include "train/matvec_bf16.h"
#include "train/model.h"
#include "train/precision.h"
#include "train/sample.h"
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
	for (size_t i = lo; i < lo + q; i += 16) {
		/* 2 KiB ahead on each stream, as the bf16 decode tiles read
		 * theirs (BF16_PREFETCH): without it the decode read more than
		 * the best probe of its run (47.4 GB/s against 38.8); with it
		 * the probe's best of 30 passes went from 42.3 to 46.7 GB/s
		 * (interleaved, same process, load ~3). The decode's products
		 * run back to back still read up to 60 GB/s there: the bound
		 * may remain low on this machine */
		for (int k = 0; k < 4; k++)
			_mm_prefetch((const char *)(a + i + (size_t)k * q) + 2048, _MM_HINT_T0);
		for (int k = 0; k < 8; k++)
			acc[k] = _mm256_add_ps(acc[k], _mm256_load_ps(a + i + (size_t)(k >> 1) * q + 8 * (k & 1)));
	}
	for (size_t i = lo + 4 * q; i < hi; i += 8)
		acc[0] = _mm256_add_ps(acc[0], _mm256_load_ps(a + i));
	for (int k = 1; k < 8; k++)
		acc[0] = _mm256_add_ps(acc[0], acc[k]);
	float r[8];
	_mm256_storeu_ps(r, acc[0]);
	return r[0] + r[1] + r[2] + r[3] + r[4] + r[5] + r[6] + r[7];
}
#endif

/* The probe's buffer: 512 MiB, allocated and written once. */
static float *probe_buf;
static const size_t probe_n = (512u << 20) / sizeof(float);
static float probe_sink;
/* The best GB/s any probe of this run read (the bounds use it). */
static double probe_best;

static void probe_init(void)
{
	probe_buf = aligned_alloc(64, probe_n * sizeof(float));
	if (!probe_buf) {
		perror("bench_forward");
		exit(1);
	}
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < probe_n; i++)
		probe_buf[i] = (float)(i & 7);
}

/* GB/s of a streaming read of at least `bytes` (whole passes over the
 * probe buffer), by the same threads as the model: each thread sums its own
 * contiguous chunk into 8 independent vector accumulators, so the loop is
 * bound by memory, not by the latency of a chain of additions. wide: 32-byte
 * loads in four streams (CPUs with AVX2: one core issues fewer loads for
 * the same bytes, so the probe is less likely to be core-bound), else
 * 16-byte loads in one stream. */
static double probe_read(double bytes, int wide)
{
	size_t n = probe_n;
	int passes = 0;
	double t0 = util_now();
	do {
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
			if (wide)
				s += sum_v8(probe_buf, lo, hi);
			else
#endif
				s += sum_v4(probe_buf, lo, hi);
		}
		probe_sink += s;
		passes++;
	} while ((double)passes * n * sizeof(float) < bytes);
	double gbs = (double)passes * n * sizeof(float) / (util_now() - t0) / 1e9;
	if (gbs > probe_best)
		probe_best = gbs;
	return gbs;
}

/* Whether the probe uses the 32-byte loads (the better of the two where the
 * CPU has AVX2). */
static int probe_wide(void)
{
#ifdef PROBE_AVX2
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2");
#else
	return 0;
#endif
}

/* The stand-alone probe: the best of 5 single passes with each load width. */
static double bandwidth(void)
{
	double best = 0;
	for (int r = 0; r < (probe_wide() ? 10 : 5); r++) {
		double b = probe_read(0, r >= 5);
		if (b > best)
			best = b;
	}
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

/* One decode round of nb rows on kv: prefill 8 tokens each, a warm-up
 * step, then (after a probe streaming as many bytes as the round's steps
 * read of the weights, step_bytes each, when probe is set) steps timed
 * steps. Returns the round's tokens/s. */
static double decode_round(const train_model *m, train_kv *kv, float *logits, int nb, int steps,
			   double step_bytes, int probe)
{
	const train_config *c = train_model_config(m);
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
	if (probe)
		probe_read(step_bytes * steps, probe_wide());
	double t0 = util_now();
	for (int s = 0; s < steps; s++) {
		for (int i = 0; i < nb; i++)
			ids[i] = (ids[i] * 31 + 7) % c->vocab;
		train_model_decode(m, kv, rows, ids, nb, logits);
	}
	return nb * steps / (util_now() - t0);
}

/* Decode tokens/s at batch 1 (*r1) and batch 4 (*r4): the best of 5
 * rounds each (decode_round), the two sizes' rounds alternating. The
 * machine is shared: the best round is the one least disturbed, and
 * alternating gives both sizes the same stretch of its time, so that a
 * busy stretch does not fall on one side of the ratio only (as it can
 * when each size's rounds run as one block). With probe set, each round is preceded by a
 * probe that streams as many bytes as the round reads, by the same
 * threads and for about as long: the probes sample the same stretch as the
 * rounds, so that the best probe of the run (the bound) and the best round
 * (the rate) both estimate what the machine gives when least disturbed. */
static void decode_rates(const train_model *m, int steps, double step_bytes, int probe, double *r1,
			 double *r4)
{
	const train_config *c = train_model_config(m);
	train_kv *kv = train_kv_new(m, 4, 8 + steps + 1);
	float *logits = xmalloc(sizeof(float) * c->vocab * 4);
	*r1 = *r4 = 0;
	for (int round = 0; round < 5; round++) {
		double a = decode_round(m, kv, logits, 1, steps, step_bytes, probe);
		double b = decode_round(m, kv, logits, 4, steps, step_bytes, probe);
		*r1 = a > *r1 ? a : *r1;
		*r4 = b > *r4 ? b : *r4;
	}
	train_kv_free(kv);
	free(logits);
}

/* Tokens/s of train_generate: K = 4 completions of one 8-token prompt, 32
 * new tokens each (no end-of-sequence id, so all 32), sampling at top-p
 * top_p (1: plain), the best of 3 rounds. Besides the decode steps it draws
 * each row's token from the full vocabulary and prefills the prompt. */
static double gen_rate(const train_model *m, double top_p)
{
	const train_config *c = train_model_config(m);
	int32_t prompt[8] = {464, 2068, 7586, 21831, 18045, 625, 262, 16931};
	for (int k = 0; k < 8; k++)
		prompt[k] %= c->vocab;
	const int32_t *prompts[4] = {prompt, prompt, prompt, prompt};
	int plen[4] = {8, 8, 8, 8};
	uint64_t seeds[4] = {1, 2, 3, 4};
	train_gen_opts o = {.max_new = 32};
	train_sampling_default(&o.sampling);
	o.sampling.top_p = top_p;
	double best = 0;
	for (int r = 0; r < 3; r++) {
		train_gen_result out[4];
		char *err = NULL;
		double t0 = util_now();
		if (train_generate(m, 4, prompts, plen, seeds, &o, out, &err)) {
			fprintf(stderr, "bench_forward: generate: %s\n", err);
			free(err);
			return 0;
		}
		double rate = 4 * 32 / (util_now() - t0);
		best = rate > best ? rate : best;
		for (int i = 0; i < 4; i++)
			free(out[i].ids);
	}
	return best;
}

#define CLAIM_ROUNDS 9

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The single-region step with units claimed (train_decode_bf16_claim's
 * default) against static shares, at batch 1 and 4: r[c][s][i] the
 * tokens/s of round i, sorted (c: 0 claimed, 1 static; s: 0 batch 1, 1
 * batch 4), the four kinds of round interleaved. Taking units over helps
 * where a thread is slowed for a while, which the best of a few rounds
 * leaves out: hence the medians too. */
static void claim_rates(const train_model *m, int steps, double r[2][2][CLAIM_ROUNDS])
{
	const train_config *c = train_model_config(m);
	train_kv *kv = train_kv_new(m, 4, 8 + steps + 1);
	float *logits = xmalloc(sizeof(float) * c->vocab * 4);
	for (int i = 0; i < CLAIM_ROUNDS; i++)
		for (int s = 0; s < 2; s++)
			for (int k = 0; k < 2; k++) {
				train_decode_bf16_claim = k ? TRAIN_DECODE_CLAIM_OWN
							    : TRAIN_DECODE_CLAIM_STEAL;
				r[k][s][i] = decode_round(m, kv, logits, s ? 4 : 1, steps, 0, 0);
			}
	train_decode_bf16_claim = TRAIN_DECODE_CLAIM_STEAL;
	for (int k = 0; k < 2; k++)
		for (int s = 0; s < 2; s++)
			qsort(r[k][s], CLAIM_ROUNDS, sizeof(double), cmp_double);
	train_kv_free(kv);
	free(logits);
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

	probe_init();
	double bw = bandwidth();
	/* bytes read per decode step: every weight once, except the position
	 * table (one row) */
	double bytes = (double)train_model_nparams(m) * sizeof(float);
	if (train_model_weights(m)->wpe)
		bytes -= (double)c->max_pos * c->dim * sizeof(float);
	printf("memory bandwidth:        %8.2f GB/s  stand-alone probe (weights %.0f MB/step -> "
	       "%.2f tok/s)\n", bw, bytes / 1e6, bw * 1e9 / bytes);
	/* the bound: the best probe of the run so far, the stand-alone one
	 * and those between the decode rounds (see decode_rates) */
	double d1, d4;
	decode_rates(m, steps, bytes, 1, &d1, &d4);
	double bound = probe_best * 1e9 / bytes;
	printf("decode batch 1:          %8.2f tok/s  = %.2f of the bandwidth bound (goal >= 0.8; "
	       "bound %.2f tok/s from %.2f GB/s, the best probe so far)\n", d1, d1 / bound, bound,
	       probe_best);
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
	/* as above: the bound from the best probe of the run, after all the
	 * bf16 decode rounds; the same step through one parallel region per
	 * product (the path before train/decode_bf16.c) in the same stretch */
	double b1, b4, o1, o4;
	decode_rates(m, steps, bbytes, 1, &b1, &b4);
	train_decode_bf16_off = 1;
	decode_rates(m, steps, bbytes, 1, &o1, &o4);
	train_decode_bf16_off = 0;
	double cl[2][2][CLAIM_ROUNDS];
	claim_rates(m, steps, cl);
	double bbound = probe_best * 1e9 / bbytes;
	printf("bf16 weights:            %8.0f MB/step -> bound %.2f tok/s from %.2f GB/s, the best "
	       "probe of the run (kernel %s)\n", bbytes / 1e6, bbound, probe_best,
	       train_bf16_kernel_name(1));
	/* what the decode itself read: weight bytes per step x steps/s */
	printf("bf16 decode batch 1:     %8.2f tok/s  = %.2f of the bf16 bound (goal >= 0.8), %.2fx f32"
	       " (reads %.1f GB/s)\n", b1, b1 / bbound, b1 / d1, b1 * bbytes / 1e9);
	printf("bf16 decode batch 4:     %8.2f tok/s  = %.2fx bf16 batch 1 (goal >= 3x), %.2fx f32"
	       " (reads %.1f GB/s)\n", b4, b4 / b1, b4 / d4, b4 / 4 * bbytes / 1e9);
	printf("bf16 decode, one region per product: %.2f tok/s batch 1 (%.2f of the bound), %.2f "
	       "batch 4 (%.2fx); one region per step / per product: %.2fx, %.2fx\n", o1,
	       o1 / bbound, o4, o4 / o1, b1 / o1, b4 / o4);
	printf("bf16 decode, static shares: batch 1 %.2f tok/s (median %.2f), batch 4 %.2f (median "
	       "%.2f); units claimed / static, %d interleaved rounds: batch 1 %.2fx (median %.2fx), "
	       "batch 4 %.2fx (median %.2fx)\n", cl[1][0][CLAIM_ROUNDS - 1],
	       cl[1][0][CLAIM_ROUNDS / 2], cl[1][1][CLAIM_ROUNDS - 1], cl[1][1][CLAIM_ROUNDS / 2],
	       CLAIM_ROUNDS, cl[0][0][CLAIM_ROUNDS - 1] / cl[1][0][CLAIM_ROUNDS - 1],
	       cl[0][0][CLAIM_ROUNDS / 2] / cl[1][0][CLAIM_ROUNDS / 2],
	       cl[0][1][CLAIM_ROUNDS - 1] / cl[1][1][CLAIM_ROUNDS - 1],
	       cl[0][1][CLAIM_ROUNDS / 2] / cl[1][1][CLAIM_ROUNDS / 2]);
	if (train_cpu_has_avx512bf16()) {
		train_bf16_kernel = TRAIN_BF16_KERNEL_DOT;
		double t1, t4;
		decode_rates(m, steps, bbytes, 0, &t1, &t4);
		train_bf16_kernel = TRAIN_BF16_KERNEL_AUTO;
		printf("bf16 decode, vdpbf16ps:  %8.2f tok/s batch 1 (%.2f of the bound), %.2f batch 4\n",
		       t1, t1 / bbound, t4);
	}
	double g1 = gen_rate(m, 1.0), g9 = gen_rate(m, 0.9);
	printf("bf16 generate, 4 completions of a prompt (32 tokens each, with the prefill and "
	       "the draws): %.2f tok/s sampling plainly = %.2f of decode batch 4, %.2f at top-p 0.9 = "
	       "%.2f\n", g1, g1 / b4, g9, g9 / b4);
	double fbf = forward_rate(m, T, 2);
	printf("bf16 forward T=%d:      %8.2f tok/s  = %.2fx f32 (kernel %s)\n", T, fbf,
	       fbf / fp_best, train_bf16_kernel_name(T));
	train_model_free(m);
	free(text);
	free(def);
	free(probe_buf);
	if (probe_sink < 0)
		printf("#\n");
	return 0;
}

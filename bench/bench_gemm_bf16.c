/* bench_gemm_bf16.c: GFLOP/s of the bf16 GEMM (train/matmul_bf16.h) on the
 * three products of GPT-2-124M's Linear layers (1 pair x 256 tokens = 512
 * rows), against train_gemm in float32 (OpenBLAS sgemm per thread) and the
 * register-only vdpbf16ps peak, measured in the same run.
 *   bench_gemm_bf16 [--rows 512] [--reps 5] [--threads 2]
 *   bench_gemm_bf16 --peak [--threads 2]    only the peak: two numbers,
 *       GFLOP/s of wall time, and GFLOP per CPU-second of one thread (which
 *       a loaded machine does not change: compare a step's FLOPs per
 *       CPU-second with it) */
#include "config.h"
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "train/layers.h"
#include "train/layers_backward.h"
#include "train/matmul_bf16.h"
#include "train/trainer.h"
#include "util/progress.h"
#include "util/xmalloc.h"

static double cpu_now(void)
{
	struct rusage r;
	getrusage(RUSAGE_SELF, &r);
	return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
	       1e-6 * (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec);
}

/* GFLOP/s of the best of reps calls; *per_cpu: GFLOP per CPU-second over
 * all of them (what a loaded machine changes least) */
static double timed(int prec, int ta, int tb, int M, int N, int K, const float *A, int lda,
		    const float *B, int ldb, float *C, int reps, double *per_cpu)
{
	train_gemm_set_precision(prec ? TRAIN_PREC_BF16 : TRAIN_PREC_F32);
	train_gemm(ta, tb, M, N, K, A, lda, B, ldb, 0.0f, C, N); /* warm-up */
	double best = 1e30, c0 = cpu_now();
	for (int r = 0; r < reps; r++) {
		double t0 = util_now();
		train_gemm(ta, tb, M, N, K, A, lda, B, ldb, 1.0f, C, N);
		double dt = util_now() - t0;
		best = dt < best ? dt : best;
	}
	double cpu = cpu_now() - c0;
	*per_cpu = cpu > 0 ? 2.0 * M * N * K * reps / cpu / 1e9 : 0;
	return 2.0 * M * N * K / best / 1e9;
}

int main(int argc, char **argv)
{
	/* the trainer's runtime (passive OpenMP waits, OpenBLAS's kernels), so
	 * that CPU time is spent as in a training step */
	train_runtime_tune(argv);
	int rows = 512, reps = 5, threads = 2, peak_only = 0, c;
	static const struct option lo[] = {{"rows", 1, 0, 'r'}, {"reps", 1, 0, 'n'},
					   {"threads", 1, 0, 't'}, {"peak", 0, 0, 'k'},
					   {0, 0, 0, 0}};
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		int v = optarg ? atoi(optarg) : 0;
		if (c == 'k')
			peak_only = 1;
		else if (c == 'r')
			rows = v;
		else if (c == 'n')
			reps = v;
		else if (c == 't')
			threads = v;
		else {
			fprintf(stderr, "usage: bench_gemm_bf16 [--peak] [--rows N] [--reps N] [--threads N]\n");
			return 2;
		}
	}
	train_set_threads(threads);
	train_gemm_init();
	struct rusage r0, r1;
	getrusage(RUSAGE_SELF, &r0);
	double t0 = util_now();
	double peak = train_bf16_peak_gflops(peak_only ? 1.0 : 0.5);
	double wall = util_now() - t0;
	getrusage(RUSAGE_SELF, &r1);
	double cpu = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) +
		     1e-6 * (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec);
	double peak_cpu = cpu > 0 ? peak * wall / cpu : 0;
	if (peak_only) {
		printf("%.1f %.1f\n", peak, peak_cpu);
		return 0;
	}
	printf("bf16 peak (register-only vdpbf16ps, %d threads): %.0f GFLOP/s, %.0f GFLOP per "
	       "CPU-second; tile: %s\n", threads, peak, peak_cpu, train_gemm_bf16_kernel());
	/* (OC, C) of qkv, attention out, fc, proj and a vocabulary chunk */
	static const int lin[][2] = {{2304, 768}, {768, 768}, {3072, 768}, {768, 3072}, {4096, 768}};
	double sum32 = 0, sum16 = 0, sumc16 = 0;
	int n = 0;
	for (size_t l = 0; l < sizeof lin / sizeof lin[0]; l++) {
		int OC = lin[l][0], C = lin[l][1], N = rows;
		float *inp = xmalloc(sizeof(float) * N * C), *w = xmalloc(sizeof(float) * OC * C);
		float *out = xmalloc(sizeof(float) * N * OC), *din = xmalloc(sizeof(float) * N * C);
		float *dw = xmalloc(sizeof(float) * OC * C);
		for (size_t i = 0; i < (size_t)N * C; i++)
			inp[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
		for (size_t i = 0; i < (size_t)OC * C; i++)
			w[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
		for (size_t i = 0; i < (size_t)N * OC; i++)
			out[i] = 0.001f;
		static const char *what[] = {"fwd  out=inp.W^T", "bwd  dinp=dout.W", "bwd  dW=dout^T.inp"};
		for (int p = 0; p < 3; p++) {
			double g[2], gc[2];
			for (int prec = 0; prec < 2; prec++) {
				if (p == 0)
					g[prec] = timed(prec, 0, 1, N, OC, C, inp, C, w, C, out, reps, &gc[prec]);
				else if (p == 1)
					g[prec] = timed(prec, 0, 0, N, C, OC, out, OC, w, C, din, reps, &gc[prec]);
				else
					g[prec] = timed(prec, 1, 0, OC, C, N, out, OC, inp, C, dw, reps, &gc[prec]);
			}
			printf("%-20s OC %4d C %4d: f32 %6.1f GFLOP/s  bf16 %6.1f GFLOP/s  (%.2fx f32, "
			       "%.0f%% of the bf16 peak; by CPU time %.0f%%)\n",
			       what[p], OC, C, g[0], g[1], g[1] / g[0], peak > 0 ? 100 * g[1] / peak : 0,
			       peak_cpu > 0 ? 100 * gc[1] / peak_cpu : 0);
			sumc16 += gc[1];
			sum32 += g[0];
			sum16 += g[1];
			n++;
		}
		free(inp);
		free(w);
		free(out);
		free(din);
		free(dw);
	}
	printf("mean: f32 %.1f GFLOP/s, bf16 %.1f GFLOP/s (%.2fx; %.0f%% of the bf16 peak; by CPU "
	       "time %.0f%%)\n", sum32 / n, sum16 / n, sum16 / sum32, peak > 0 ? 100 * sum16 / n / peak : 0,
	       peak_cpu > 0 ? 100 * sumc16 / n / peak_cpu : 0);
	return 0;
}

/* test_layers_grad.c: finite-difference gradient checks of every backward
 * kernel of train/layers_backward.h, on tiny shapes.
 *
 * For each layer, with a fixed random vector r, the scalar L = sum_i r_i y_i
 * of the layer output y is computed by a double-precision forward written
 * here (and checked against the float kernel of train/layers.c, so that it
 * is the same function). The gradient of L w.r.t. each input is estimated by
 * central differences in double, (L(x+h) - L(x-h)) / 2h with h = 1e-5, whose
 * error is O(h^2) ~ 1e-10 relative: negligible. The float32 backward kernels
 * (reference and optimized), given dout = r and the float forward's saved
 * values, must match it to a relative error (norm of the difference over
 * norm of the estimate, per input tensor) below 1e-4. Justification: the
 * kernels accumulate at most ~100 float32 products per output (unit
 * roundoff 6e-8), so honest rounding stays around 1e-6, and the saved float
 * values (mean, rstd, lse) are within 1e-7 relative; a cancellation factor
 * of 10 still leaves 10x headroom, while any wrong term gives an error of
 * order 1. Optimized and reference kernels must agree within 1e-5 (same
 * math, different summation order), also on shapes large enough to take the
 * OpenMP and BLAS paths. Gradient buffers are pre-filled with 0.5 and the
 * 0.5 subtracted afterwards, which checks that kernels accumulate. */
#include "config.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "tests/tap.h"
#include "train/layers.h"
#include "train/layers_backward.h"

extern int train_layers_use_blas;

/* ---- deterministic random numbers ---- */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double urand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) / 9007199254740992.0;
}
static void fill(float *x, size_t n, double lo, double hi)
{
	for (size_t i = 0; i < n; i++)
		x[i] = (float)(lo + (hi - lo) * urand());
}

#define MAXIN 4
/* A layer under test. The ctx holds dims; the forward gets inputs in double
 * (fwd_d) or float (fwd_f, which also fills saved values into ctx). */
typedef struct layer {
	const char *name;
	int nin;
	size_t len[MAXIN];
	int diff[MAXIN];          /* differentiable input? */
	size_t nout;
	double lo[MAXIN], hi[MAXIN]; /* input value ranges */
	void (*fwd_d)(struct layer *L, double *const *in, double *out);
	void (*fwd_f)(struct layer *L, float *const *in, float *out);
	void (*bwd)(struct layer *L, int ref, float *const *grad, const float *dout,
		    float *const *in, const float *out);
	int B, T, S, C, OC, NH, NKV, hd, V, N, I;
	int *ids, *pos0, *targets;
	float *cos_tab, *sin_tab;
	float saved1[4096], saved2[4096];
	size_t sample;            /* check at most this many elements per input (0: all) */
} layer;

/* ---- layer definitions: double forward, float forward, backward ---- */

static void emb_fd(layer *L, double *const *in, double *out)
{
	for (int b = 0; b < L->B; b++)
		for (int t = 0; t < L->T; t++)
			for (int i = 0; i < L->C; i++)
				out[((size_t)b * L->T + t) * L->C + i] =
					in[0][(size_t)L->ids[b * L->T + t] * L->C + i] +
					in[1][(size_t)(L->pos0[b] + t) * L->C + i];
}
static void emb_ff(layer *L, float *const *in, float *out)
{
	train_embedding_forward(out, L->ids, in[0], in[1], L->pos0, L->B, L->T, L->C);
}
static void emb_bw(layer *L, int ref, float *const *g, const float *dout, float *const *in,
		   const float *out)
{
	(void)in;
	(void)out;
	(ref ? train_embedding_backward_ref : train_embedding_backward)(g[0], g[1], dout, L->ids,
									 L->pos0, L->B, L->T, L->C);
}

static void ln_fd(layer *L, double *const *in, double *out)
{
	for (int n = 0; n < L->N; n++) {
		const double *x = in[0] + (size_t)n * L->C;
		double m = 0, v = 0;
		for (int i = 0; i < L->C; i++)
			m += x[i];
		m /= L->C;
		for (int i = 0; i < L->C; i++)
			v += (x[i] - m) * (x[i] - m);
		v /= L->C;
		double r = 1 / sqrt(v + 1e-5);
		for (int i = 0; i < L->C; i++)
			out[(size_t)n * L->C + i] = (x[i] - m) * r * in[1][i] + in[2][i];
	}
}
static void ln_ff(layer *L, float *const *in, float *out)
{
	train_layernorm_forward(out, L->saved1, L->saved2, in[0], in[1], in[2], L->N, L->C, 1e-5f);
}
static void ln_bw(layer *L, int ref, float *const *g, const float *dout, float *const *in,
		  const float *out)
{
	(void)out;
	(ref ? train_layernorm_backward_ref : train_layernorm_backward)(
		g[0], g[1], g[2], dout, in[0], in[1], L->saved1, L->saved2, L->N, L->C);
}

static void rms_fd(layer *L, double *const *in, double *out)
{
	for (int n = 0; n < L->N; n++) {
		const double *x = in[0] + (size_t)n * L->C;
		double ss = 0;
		for (int i = 0; i < L->C; i++)
			ss += x[i] * x[i];
		double r = 1 / sqrt(ss / L->C + 1e-6);
		for (int i = 0; i < L->C; i++)
			out[(size_t)n * L->C + i] = x[i] * r * in[1][i];
	}
}
static void rms_ff(layer *L, float *const *in, float *out)
{
	train_rmsnorm_forward(out, L->saved1, in[0], in[1], L->N, L->C, 1e-6f);
}
static void rms_bw(layer *L, int ref, float *const *g, const float *dout, float *const *in,
		   const float *out)
{
	(void)out;
	(ref ? train_rmsnorm_backward_ref : train_rmsnorm_backward)(g[0], g[1], dout, in[0], in[1],
								     L->saved1, L->N, L->C);
}

static void mm_fd(layer *L, double *const *in, double *out)
{
	for (int n = 0; n < L->N; n++)
		for (int o = 0; o < L->OC; o++) {
			double s = in[2][o];
			for (int i = 0; i < L->C; i++)
				s += in[0][(size_t)n * L->C + i] * in[1][(size_t)o * L->C + i];
			out[(size_t)n * L->OC + o] = s;
		}
}
static void mm_ff(layer *L, float *const *in, float *out)
{
	train_matmul_forward(out, in[0], in[1], in[2], L->N, L->C, L->OC);
}
static void mm_bw(layer *L, int ref, float *const *g, const float *dout, float *const *in,
		  const float *out)
{
	(void)out;
	(ref ? train_matmul_backward_ref : train_matmul_backward)(g[0], g[1], g[2], dout, in[0],
								   in[1], L->N, L->C, L->OC);
}

static void qkv_fd(layer *L, double *const *in, double *out)
{
	/* out = q | k | v, each contiguous */
	size_t qn = (size_t)L->NH * L->hd, kn = (size_t)L->NKV * L->hd, row = qn + 2 * kn;
	double *q = out, *k = out + L->N * qn, *v = k + L->N * kn;
	for (int n = 0; n < L->N; n++)
		for (size_t i = 0; i < row; i++) {
			double x = in[0][n * row + i];
			if (i < qn)
				q[n * qn + i] = x;
			else if (i < qn + kn)
				k[n * kn + i - qn] = x;
			else
				v[n * kn + i - qn - kn] = x;
		}
}
static void qkv_ff(layer *L, float *const *in, float *out)
{
	size_t qn = (size_t)L->NH * L->hd, kn = (size_t)L->NKV * L->hd;
	train_qkv_split_forward(out, out + L->N * qn, out + L->N * qn + L->N * kn, in[0], L->N,
				L->NH, L->NKV, L->hd);
}
static void qkv_bw(layer *L, int ref, float *const *g, const float *dout, float *const *in,
		   const float *out)
{
	(void)ref;
	(void)in;
	(void)out;
	size_t qn = (size_t)L->NH * L->hd, kn = (size_t)L->NKV * L->hd;
	train_qkv_split_backward(g[0], dout, dout + L->N * qn, dout + L->N * qn + L->N * kn, L->N,
				 L->NH, L->NKV, L->hd);
}

static void rope_fd(layer *L, double *const *in, double *out)
{
	int h = L->hd / 2;
	for (int b = 0; b < L->B; b++)
		for (int t = 0; t < L->T; t++) {
			int p = L->pos0[b] + t;
			for (int j = 0; j < L->NH; j++) {
				size_t off = (((size_t)b * L->T + t) * L->NH + j) * L->hd;
				for (int i = 0; i < h; i++) {
					double c = L->cos_tab[p * h + i], s = L->sin_tab[p * h + i];
					double a = in[0][off + i], bb = in[0][off + i + h];
					out[off + i] = a * c - bb * s;
					out[off + i + h] = bb * c + a * s;
				}
			}
		}
}
static void rope_ff(layer *L, float *const *in, float *out)
{
	train_rope_forward(out, in[0], L->cos_tab, L->sin_tab, L->pos0, L->B, L->T, L->NH, L->hd);
}
static void rope_bw(layer *L, int ref, float *const *g, const float *dout, float *const *in,
		    const float *out)
{
	(void)in;
	(void)out;
	(ref ? train_rope_backward_ref : train_rope_backward)(g[0], dout, L->cos_tab, L->sin_tab,
							       L->pos0, L->B, L->T, L->NH, L->hd);
}

static void att_fd(layer *L, double *const *in, double *out)
{
	int group = L->NH / L->NKV, hd = L->hd;
	size_t ks = (size_t)L->NKV * hd;
	double scale = 1 / sqrt((double)hd);
	for (int b = 0; b < L->B; b++)
		for (int h = 0; h < L->NH; h++)
			for (int t = 0; t < L->T; t++) {
				int last = (L->pos0 ? L->pos0[b] : 0) + t;
				const double *q = in[0] + (((size_t)b * L->T + t) * L->NH + h) * hd;
				double sc[256], mx = -INFINITY, sum = 0;
				for (int s = 0; s <= last; s++) {
					const double *k = in[1] + (size_t)b * L->S * ks + s * ks + (h / group) * hd;
					double d = 0;
					for (int i = 0; i < hd; i++)
						d += q[i] * k[i];
					sc[s] = d * scale;
					if (sc[s] > mx)
						mx = sc[s];
				}
				for (int s = 0; s <= last; s++)
					sum += exp(sc[s] - mx);
				double *o = out + (((size_t)b * L->T + t) * L->NH + h) * hd;
				for (int i = 0; i < hd; i++)
					o[i] = 0;
				for (int s = 0; s <= last; s++) {
					const double *v = in[2] + (size_t)b * L->S * ks + s * ks + (h / group) * hd;
					double p = exp(sc[s] - mx) / sum;
					for (int i = 0; i < hd; i++)
						o[i] += p * v[i];
				}
			}
}
static void att_ff(layer *L, float *const *in, float *out)
{
	train_attention_forward(out, L->saved1, in[0], in[1], in[2], L->pos0, L->B, L->T, L->S,
				L->NH, L->NKV, L->hd);
}
static void att_bw(layer *L, int ref, float *const *g, const float *dout, float *const *in,
		   const float *out)
{
	(ref ? train_attention_backward_ref : train_attention_backward)(
		g[0], g[1], g[2], dout, in[0], in[1], in[2], out, L->saved1, L->pos0, L->B, L->T,
		L->S, L->NH, L->NKV, L->hd);
}

static void gelu_fd(layer *L, double *const *in, double *out)
{
	for (size_t i = 0; i < L->nout; i++) {
		double x = in[0][i];
		out[i] = 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
	}
}
static void gelu_ff(layer *L, float *const *in, float *out)
{
	train_gelu_forward(out, in[0], L->nout);
}
static void gelu_bw(layer *L, int ref, float *const *g, const float *dout, float *const *in,
		    const float *out)
{
	(void)out;
	(ref ? train_gelu_backward_ref : train_gelu_backward)(g[0], in[0], dout, L->nout);
}

static void gelf_ff(layer *L, float *const *in, float *out)
{
	train_gelu_forward_fast(out, in[0], L->nout);
}

static void swi_fd(layer *L, double *const *in, double *out)
{
	for (int n = 0; n < L->N; n++)
		for (int i = 0; i < L->I; i++) {
			double g = in[0][(size_t)n * 2 * L->I + i], u = in[0][(size_t)n * 2 * L->I + L->I + i];
			out[(size_t)n * L->I + i] = g / (1 + exp(-g)) * u;
		}
}
static void swi_ff(layer *L, float *const *in, float *out)
{
	train_swiglu_forward(out, in[0], L->N, L->I);
}
static void swi_bw(layer *L, int ref, float *const *g, const float *dout, float *const *in,
		   const float *out)
{
	(void)out;
	(ref ? train_swiglu_backward_ref : train_swiglu_backward)(g[0], in[0], dout, L->N, L->I);
}

static void res_fd(layer *L, double *const *in, double *out)
{
	for (size_t i = 0; i < L->nout; i++)
		out[i] = in[0][i] + in[1][i];
}
static void res_ff(layer *L, float *const *in, float *out)
{
	train_residual_forward(out, in[0], in[1], L->nout);
}
static void res_bw(layer *L, int ref, float *const *g, const float *dout, float *const *in,
		   const float *out)
{
	(void)ref;
	(void)in;
	(void)out;
	train_residual_backward(g[0], g[1], dout, L->nout);
}

static void lp_fd(layer *L, double *const *in, double *out)
{
	for (int n = 0; n < L->N; n++) {
		if (L->targets[n] < 0) {
			out[n] = 0;
			continue;
		}
		double mx = -INFINITY, tg = 0, sum = 0;
		double *lg = malloc(sizeof(double) * L->V);
		for (int v = 0; v < L->V; v++) {
			double d = 0;
			for (int i = 0; i < L->C; i++)
				d += in[0][(size_t)n * L->C + i] * in[1][(size_t)v * L->C + i];
			lg[v] = d;
			if (d > mx)
				mx = d;
			if (v == L->targets[n])
				tg = d;
		}
		for (int v = 0; v < L->V; v++)
			sum += exp(lg[v] - mx);
		free(lg);
		out[n] = tg - mx - log(sum);
	}
}
static void lp_ff(layer *L, float *const *in, float *out)
{
	train_logprob_forward(out, L->saved1, in[0], in[1], L->targets, L->N, L->C, L->V);
}
static void lp_bw(layer *L, int ref, float *const *g, const float *dout, float *const *in,
		  const float *out)
{
	(void)out;
	(ref ? train_logprob_backward_ref : train_logprob_backward)(
		g[0], g[1], dout, in[0], in[1], L->targets, L->saved1, L->N, L->C, L->V);
}

/* the backward from kept logits (computed here as the forward keeps them) */
static void lpk_bw(layer *L, int ref, float *const *g, const float *dout, float *const *in,
		   const float *out)
{
	(void)out;
	if (ref) {
		train_logprob_backward_ref(g[0], g[1], dout, in[0], in[1], L->targets, L->saved1,
					   L->N, L->C, L->V);
		return;
	}
	float *lg = malloc(sizeof(float) * (size_t)L->N * L->V);
	train_matmul_forward_ref(lg, in[0], in[1], NULL, L->N, L->C, L->V);
	train_logprob_backward_logits(g[0], g[1], dout, in[0], in[1], L->targets, L->saved1, lg,
				      L->N, L->C, L->V);
	free(lg);
}

/* ---- the harness ---- */

static double dot_d(const double *a, const double *b, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

/* Run the finite-difference check (fd != 0) and/or the optimized-vs-reference
 * comparison of layer L. */
static void check_layer(layer *L, int fd)
{
	float *in[MAXIN], *gref[MAXIN], *gopt[MAXIN];
	double *ind[MAXIN];
	for (int j = 0; j < L->nin; j++) {
		in[j] = malloc(sizeof(float) * L->len[j]);
		fill(in[j], L->len[j], L->lo[j], L->hi[j]);
		ind[j] = malloc(sizeof(double) * L->len[j]);
		for (size_t i = 0; i < L->len[j]; i++)
			ind[j][i] = in[j][i];
		gref[j] = malloc(sizeof(float) * L->len[j]);
		gopt[j] = malloc(sizeof(float) * L->len[j]);
		for (size_t i = 0; i < L->len[j]; i++)
			gref[j][i] = gopt[j][i] = 0.5f;
	}
	float *r = malloc(sizeof(float) * L->nout), *out = malloc(sizeof(float) * L->nout);
	double *rd = malloc(sizeof(double) * L->nout), *outd = malloc(sizeof(double) * L->nout);
	fill(r, L->nout, -1, 1);
	for (size_t i = 0; i < L->nout; i++)
		rd[i] = r[i];

	/* float forward (also fills the saved values) vs the double forward */
	L->fwd_f(L, in, out);
	if (fd) {
		L->fwd_d(L, ind, outd);
		double num = 0, den = 0;
		for (size_t i = 0; i < L->nout; i++) {
			num += (out[i] - outd[i]) * (out[i] - outd[i]);
			den += outd[i] * outd[i];
		}
		double e = sqrt(num / (den > 0 ? den : 1));
		TAP_OK(e < 1e-5, "%s: float forward matches the double forward (rel %.2g)", L->name, e);
	}
	L->bwd(L, 1, gref, r, in, out);
	L->bwd(L, 0, gopt, r, in, out);
	for (int j = 0; j < L->nin; j++) {
		if (!L->diff[j])
			continue;
		double num = 0, den = 0;
		for (size_t i = 0; i < L->len[j]; i++) {
			gref[j][i] -= 0.5f;
			gopt[j][i] -= 0.5f;
			num += (double)(gref[j][i] - gopt[j][i]) * (gref[j][i] - gopt[j][i]);
			den += (double)gref[j][i] * gref[j][i];
		}
		double e = sqrt(num / (den > 0 ? den : 1));
		TAP_OK(e < 1e-5, "%s: input %d optimized == reference (rel %.2g)", L->name, j, e);
		if (!fd)
			continue;
		/* central differences in double */
		const double h = 1e-5;
		size_t n = L->len[j], step = 1;
		if (L->sample && n > L->sample)
			step = n / L->sample;
		double en = 0, ed = 0, ef = 0;
		size_t ns = 0;
		for (size_t i = (step > 1 ? (size_t)(urand() * step) : 0); i < n; i += step) {
			ns++;
			double x0 = ind[j][i];
			ind[j][i] = x0 + h;
			L->fwd_d(L, ind, outd);
			double lp = dot_d(outd, rd, L->nout);
			ind[j][i] = x0 - h;
			L->fwd_d(L, ind, outd);
			double lm = dot_d(outd, rd, L->nout);
			ind[j][i] = x0;
			double g = (lp - lm) / (2 * h);
			en += (g - gref[j][i]) * (g - gref[j][i]);
			ef += (g - gopt[j][i]) * (g - gopt[j][i]);
			ed += g * g;
		}
		/* With sampling (large tensors), errors are measured against the
		 * RMS of the whole gradient tensor: a sample of entries that are
		 * all near zero would otherwise compare float noise with nothing.
		 * Without sampling this is exactly norm(diff) / norm(fd). */
		if (ns < n) {
			double full = 0;
			for (size_t i = 0; i < n; i++)
				full += (double)gref[j][i] * gref[j][i];
			ed = full * (double)ns / (double)n;
		}
		double er = sqrt(en / (ed > 0 ? ed : 1)), eo = sqrt(ef / (ed > 0 ? ed : 1));
		TAP_OK(ed > 0 && er < 1e-4 && eo < 1e-4,
		       "%s: d/d input %d matches central differences (ref %.2g, opt %.2g, |g| %.3g)",
		       L->name, j, er, eo, sqrt(ed));
	}
	for (int j = 0; j < L->nin; j++) {
		free(in[j]);
		free(ind[j]);
		free(gref[j]);
		free(gopt[j]);
	}
	free(r);
	free(out);
	free(rd);
	free(outd);
}

int main(void)
{
	int ids[16] = {3, 1, 4, 1, 5, 9, 2, 6, 0, 3, 3, 7};
	int pos0[4] = {0, 2, 1, 0};
	int pos0z[2] = {0, 0}, pos0r[2] = {0, 3};
	int targets[8] = {5, -1, 0, 36, 17, 2};
	int tbig[4] = {4097, 12, -1, 4100};
	float cos_tab[64 * 8], sin_tab[64 * 8];
	train_rope_tables(cos_tab, sin_tab, 64, 16, 10000.0, 0);

	layer Ls[32];
	int nl = 0;
#define ADD(...) Ls[nl++] = (layer){__VA_ARGS__}
	/* embedding: B=2, T=3, C=5, V=10, maxT=6 */
	ADD(.name = "embedding", .nin = 2, .len = {50, 30}, .diff = {1, 1}, .nout = 30,
	    .lo = {-1, -1}, .hi = {1, 1}, .fwd_d = emb_fd, .fwd_f = emb_ff, .bwd = emb_bw, .B = 2,
	    .T = 3, .C = 5, .ids = ids, .pos0 = pos0);
	/* layernorm N=4, C=7 */
	ADD(.name = "layernorm", .nin = 3, .len = {28, 7, 7}, .diff = {1, 1, 1}, .nout = 28,
	    .lo = {-2, 0.5, -1}, .hi = {2, 1.5, 1}, .fwd_d = ln_fd, .fwd_f = ln_ff, .bwd = ln_bw,
	    .N = 4, .C = 7);
	ADD(.name = "rmsnorm", .nin = 2, .len = {28, 7}, .diff = {1, 1}, .nout = 28, .lo = {-2, 0.5},
	    .hi = {2, 1.5}, .fwd_d = rms_fd, .fwd_f = rms_ff, .bwd = rms_bw, .N = 4, .C = 7);
	/* q/k norm shape: rows*heads x head_dim */
	ADD(.name = "rmsnorm (per head)", .nin = 2, .len = {96, 16}, .diff = {1, 1}, .nout = 96,
	    .lo = {-2, 0.5}, .hi = {2, 1.5}, .fwd_d = rms_fd, .fwd_f = rms_ff, .bwd = rms_bw, .N = 6,
	    .C = 16);
	ADD(.name = "matmul+bias", .nin = 3, .len = {15, 30, 6}, .diff = {1, 1, 1}, .nout = 18,
	    .lo = {-1, -1, -1}, .hi = {1, 1, 1}, .fwd_d = mm_fd, .fwd_f = mm_ff, .bwd = mm_bw, .N = 3,
	    .C = 5, .OC = 6);
	ADD(.name = "matmul+bias (tiles of 4)", .nin = 3, .len = {72, 108, 12}, .diff = {1, 1, 1},
	    .nout = 72, .lo = {-1, -1, -1}, .hi = {1, 1, 1}, .fwd_d = mm_fd, .fwd_f = mm_ff,
	    .bwd = mm_bw, .N = 8, .C = 9, .OC = 9);
	/* qkv split N=2, NH=4, NKV=2, hd=2: row 16 */
	ADD(.name = "qkv split", .nin = 1, .len = {32}, .diff = {1}, .nout = 32, .lo = {-1},
	    .hi = {1}, .fwd_d = qkv_fd, .fwd_f = qkv_ff, .bwd = qkv_bw, .N = 2, .NH = 4, .NKV = 2,
	    .hd = 2);
	/* rope B=2, T=3, H=2, hd=16, positions offset by pos0 */
	ADD(.name = "rope", .nin = 1, .len = {192}, .diff = {1}, .nout = 192, .lo = {-1}, .hi = {1},
	    .fwd_d = rope_fd, .fwd_f = rope_ff, .bwd = rope_bw, .B = 2, .T = 3, .NH = 2, .hd = 16,
	    .pos0 = pos0, .cos_tab = cos_tab, .sin_tab = sin_tab);
	/* attention: MHA B=2, T=4, NH=2, hd=4; GQA NH=4, NKV=2; decoding-style pos0 with S > T */
	ADD(.name = "attention (MHA)", .nin = 3, .len = {64, 64, 64}, .diff = {1, 1, 1}, .nout = 64,
	    .lo = {-1, -1, -1}, .hi = {1, 1, 1}, .fwd_d = att_fd, .fwd_f = att_ff, .bwd = att_bw,
	    .B = 2, .T = 4, .S = 4, .NH = 2, .NKV = 2, .hd = 4);
	ADD(.name = "attention (GQA 4/2)", .nin = 3, .len = {120, 60, 60}, .diff = {1, 1, 1},
	    .nout = 120, .lo = {-1.5, -1.5, -1}, .hi = {1.5, 1.5, 1}, .fwd_d = att_fd,
	    .fwd_f = att_ff, .bwd = att_bw, .B = 2, .T = 5, .S = 5, .NH = 4, .NKV = 2, .hd = 3);
	ADD(.name = "attention (pos0, S > T)", .nin = 3, .len = {48, 80, 80}, .diff = {1, 1, 1},
	    .nout = 48, .lo = {-1, -1, -1}, .hi = {1, 1, 1}, .fwd_d = att_fd, .fwd_f = att_ff,
	    .bwd = att_bw, .B = 2, .T = 3, .S = 5, .NH = 2, .NKV = 1, .hd = 4, .pos0 = pos0);
	ADD(.name = "gelu_new", .nin = 1, .len = {40}, .diff = {1}, .nout = 40, .lo = {-4}, .hi = {4},
	    .fwd_d = gelu_fd, .fwd_f = gelu_ff, .bwd = gelu_bw);
	ADD(.name = "gelu_new (fast forward)", .nin = 1, .len = {40}, .diff = {1}, .nout = 40,
	    .lo = {-4}, .hi = {4}, .fwd_d = gelu_fd, .fwd_f = gelf_ff, .bwd = gelu_bw);
	ADD(.name = "gelu_new (wide range)", .nin = 1, .len = {60}, .diff = {1}, .nout = 60,
	    .lo = {-12}, .hi = {12}, .fwd_d = gelu_fd, .fwd_f = gelf_ff, .bwd = gelu_bw);
	ADD(.name = "swiglu", .nin = 1, .len = {30}, .diff = {1}, .nout = 15, .lo = {-4}, .hi = {4},
	    .fwd_d = swi_fd, .fwd_f = swi_ff, .bwd = swi_bw, .N = 3, .I = 5);
	ADD(.name = "residual", .nin = 2, .len = {12, 12}, .diff = {1, 1}, .nout = 12, .lo = {-1, -1},
	    .hi = {1, 1}, .fwd_d = res_fd, .fwd_f = res_ff, .bwd = res_bw);
	/* log-prob: a small vocabulary, and one above the chunk size (sampled) */
	ADD(.name = "logprob (V=37)", .nin = 2, .len = {48, 296}, .diff = {1, 1}, .nout = 6,
	    .lo = {-1, -1}, .hi = {1, 1}, .fwd_d = lp_fd, .fwd_f = lp_ff, .bwd = lp_bw, .N = 6,
	    .C = 8, .V = 37, .targets = targets);
	ADD(.name = "logprob (V=4101, 2 chunks)", .nin = 2, .len = {16, 4101 * 4}, .diff = {1, 1},
	    .nout = 4, .lo = {-1, -1}, .hi = {1, 1}, .fwd_d = lp_fd, .fwd_f = lp_ff, .bwd = lp_bw,
	    .N = 4, .C = 4, .V = 4101, .targets = tbig, .sample = 150);
	ADD(.name = "logprob from kept logits (V=37)", .nin = 2, .len = {48, 296}, .diff = {1, 1},
	    .nout = 6, .lo = {-1, -1}, .hi = {1, 1}, .fwd_d = lp_fd, .fwd_f = lp_ff, .bwd = lpk_bw,
	    .N = 6, .C = 8, .V = 37, .targets = targets);
	for (int i = 0; i < nl; i++)
		check_layer(&Ls[i], 1);

	/* larger shapes: OpenMP, BLAS and tiling paths vs the reference */
	static int bigids[2 * 64];
	for (int i = 0; i < 128; i++)
		bigids[i] = (i * 37) % 100;
	static int bigt[96];
	for (int i = 0; i < 96; i++)
		bigt[i] = i % 7 == 0 ? -1 : (i * 131) % 5000;
	nl = 0;
	ADD(.name = "embedding (big)", .nin = 2, .len = {100 * 128, 64 * 128}, .diff = {1, 1},
	    .nout = 128 * 128, .fwd_f = emb_ff, .bwd = emb_bw, .lo = {-1, -1}, .hi = {1, 1}, .B = 2,
	    .T = 64, .C = 128, .ids = bigids, .pos0 = pos0z);
	ADD(.name = "layernorm (big)", .nin = 3, .len = {300 * 200, 200, 200}, .diff = {1, 1, 1},
	    .nout = 300 * 200, .lo = {-2, 0.5, -1}, .hi = {2, 1.5, 1}, .fwd_f = ln_ff, .bwd = ln_bw,
	    .N = 300, .C = 200);
	ADD(.name = "rmsnorm (big)", .nin = 2, .len = {300 * 200, 200}, .diff = {1, 1},
	    .nout = 300 * 200, .lo = {-2, 0.5}, .hi = {2, 1.5}, .fwd_f = rms_ff, .bwd = rms_bw,
	    .N = 300, .C = 200);
	ADD(.name = "matmul (big, BLAS path)", .nin = 3, .len = {66 * 130, 129 * 130, 129},
	    .diff = {1, 1, 1}, .nout = 66 * 129, .lo = {-1, -1, -1}, .hi = {1, 1, 1}, .fwd_f = mm_ff,
	    .bwd = mm_bw, .N = 66, .C = 130, .OC = 129);
	/* T = 100: two query blocks of the BLAS kernel */
	ADD(.name = "attention (big)", .nin = 3,
	    .len = {2 * 100 * 6 * 16, 2 * 100 * 2 * 16, 2 * 100 * 2 * 16}, .diff = {1, 1, 1},
	    .nout = 2 * 100 * 6 * 16, .lo = {-1, -1, -1}, .hi = {1, 1, 1}, .fwd_f = att_ff,
	    .bwd = att_bw, .B = 2, .T = 100, .S = 100, .NH = 6, .NKV = 2, .hd = 16);
	ADD(.name = "rope (big)", .nin = 1, .len = {2 * 60 * 4 * 16}, .diff = {1},
	    .nout = 2 * 60 * 4 * 16, .lo = {-1}, .hi = {1}, .fwd_f = rope_ff, .bwd = rope_bw, .B = 2,
	    .T = 60, .NH = 4, .hd = 16, .pos0 = pos0r, .cos_tab = cos_tab, .sin_tab = sin_tab);
	ADD(.name = "gelu (big)", .nin = 1, .len = {70000}, .diff = {1}, .nout = 70000, .lo = {-4},
	    .hi = {4}, .fwd_f = gelu_ff, .bwd = gelu_bw);
	ADD(.name = "swiglu (big)", .nin = 1, .len = {2 * 200 * 200}, .diff = {1}, .nout = 200 * 200,
	    .lo = {-4}, .hi = {4}, .fwd_f = swi_ff, .bwd = swi_bw, .N = 200, .I = 200);
	ADD(.name = "logprob (big)", .nin = 2, .len = {96 * 16, 5000 * 16}, .diff = {1, 1},
	    .nout = 96, .lo = {-1, -1}, .hi = {1, 1}, .fwd_f = lp_ff, .bwd = lp_bw, .N = 96, .C = 16,
	    .V = 5000, .targets = bigt);
	ADD(.name = "logprob from kept logits (big)", .nin = 2, .len = {96 * 16, 5000 * 16},
	    .diff = {1, 1}, .nout = 96, .lo = {-1, -1}, .hi = {1, 1}, .fwd_f = lp_ff, .bwd = lpk_bw,
	    .N = 96, .C = 16, .V = 5000, .targets = bigt);
	for (int i = 0; i < nl; i++)
		check_layer(&Ls[i], 0);
	/* the plain kernels behind the BLAS ones: matmul and attention */
	train_layers_use_blas = 0;
	Ls[3].name = "matmul (big, plain kernel)";
	check_layer(&Ls[3], 0);
	Ls[4].name = "attention (big, plain kernel)";
	check_layer(&Ls[4], 0);
	layer att = {.name = "attention (GQA 4/2, plain kernel)", .nin = 3, .len = {120, 60, 60},
		     .diff = {1, 1, 1}, .nout = 120, .lo = {-1.5, -1.5, -1}, .hi = {1.5, 1.5, 1},
		     .fwd_d = att_fd, .fwd_f = att_ff, .bwd = att_bw, .B = 2, .T = 5, .S = 5,
		     .NH = 4, .NKV = 2, .hd = 3};
	check_layer(&att, 1);
	train_layers_use_blas = 1;
	return tap_done();
}

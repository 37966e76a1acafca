/* test_layers.c: every optimized forward kernel of train/layers.h equals its
 * plain reference (with the BLAS path on and off), plus a few hand-computed
 * values so that the references themselves are checked. */
#include "config.h"
#include "tests/tap.h"
#include "train/layers.h"
#include "train/precision.h"
#include "util/xmalloc.h"

#include <stdint.h>

static uint64_t rng = 88172645463325252ull;

static float frand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((rng >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

static float *randv(size_t n, float scale)
{
	float *p = xmalloc(sizeof(float) * (n ? n : 1));
	for (size_t i = 0; i < n; i++)
		p[i] = frand() * scale;
	return p;
}

/* max |a - b| / (1 + |b|) */
static double maxrel(const float *a, const float *b, size_t n)
{
	double m = 0.0;
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)a[i] - b[i]) / (1.0 + fabs(b[i]));
		if (!(d <= m))
			m = isnan(d) ? INFINITY : d;
	}
	return m;
}

static const struct { int B, T, C, OC; } shapes[] = {
	{1, 1, 8, 8}, {1, 5, 7, 3}, {2, 9, 33, 65}, {3, 17, 64, 130}, {4, 33, 128, 256},
};
#define NSHAPES (int)(sizeof shapes / sizeof shapes[0])

static void test_matmul(void)
{
	/* blas 0 / 1 with the SIMD kernel, then blas 0 with the portable one */
	for (int mode = 0; mode < 3; mode++) {
		int blas = mode == 1, simd = mode < 2;
		train_layers_use_blas = blas;
		train_layers_use_simd = simd;
		for (int s = 0; s < NSHAPES; s++) {
			int N = shapes[s].B * shapes[s].T, C = shapes[s].C, OC = shapes[s].OC;
			float *x = randv((size_t)N * C, 1), *w = randv((size_t)OC * C, 1);
			float *b = randv(OC, 1);
			float *o1 = xmalloc(sizeof(float) * N * OC), *o2 = xmalloc(sizeof(float) * N * OC);
			for (int bias = 0; bias < 2; bias++) {
				train_matmul_forward(o1, x, w, bias ? b : NULL, N, C, OC);
				train_matmul_forward_ref(o2, x, w, bias ? b : NULL, N, C, OC);
				TAP_OK(maxrel(o1, o2, (size_t)N * OC) < 1e-5,
				       "matmul N=%d C=%d OC=%d bias=%d blas=%d simd=%d", N, C, OC, bias, blas, simd);
			}
			free(x), free(w), free(b), free(o1), free(o2);
		}
	}
	/* long inputs (an MLP's 3072 and more), with a tail that is not a
	 * multiple of 8. Over thousands of terms two float summation orders
	 * differ by more than 1e-5, so both kernels are held to the float error
	 * bound of a dot product (Higham): |y - exact| <= C u sum |x_i w_i|,
	 * u = 2^-24, with the exact value in double. */
	static const struct { int N, C, OC; } longc[] = {{4, 3072, 40}, {10, 2500, 33}, {3, 3000, 17}};
	train_layers_use_blas = 0;
	for (size_t k = 0; k < sizeof longc / sizeof longc[0]; k++) {
		int N = longc[k].N, C = longc[k].C, OC = longc[k].OC;
		float *x = randv((size_t)N * C, 1), *w = randv((size_t)OC * C, 1), *b = randv(OC, 1);
		float *o1 = xmalloc(sizeof(float) * N * OC), *o2 = xmalloc(sizeof(float) * N * OC);
		train_matmul_forward(o1, x, w, b, N, C, OC);
		train_matmul_forward_ref(o2, x, w, b, N, C, OC);
		double worst[2] = {0, 0};
		for (int n = 0; n < N; n++)
			for (int o = 0; o < OC; o++) {
				double e = b[o], mag = fabs(b[o]);
				for (int i = 0; i < C; i++) {
					double t = (double)x[(size_t)n * C + i] * w[(size_t)o * C + i];
					e += t;
					mag += fabs(t);
				}
				double bound = (C + 1) * ldexp(1.0, -24) * mag;
				worst[0] = fmax(worst[0], fabs(o1[(size_t)n * OC + o] - e) / bound);
				worst[1] = fmax(worst[1], fabs(o2[(size_t)n * OC + o] - e) / bound);
			}
		TAP_OK(worst[0] <= 1 && worst[1] <= 1,
		       "matmul, long inputs: N=%d C=%d OC=%d within the float bound (kernel %.2g, reference %.2g "
		       "of it)", N, C, OC, worst[0], worst[1]);
		free(x), free(w), free(b), free(o1), free(o2);
	}
	train_layers_use_blas = 1;
	train_layers_use_simd = 1;
	/* a hand-computed value: [1 2] . [[3 4] [5 6]]^T + [1 -1] = [12 16] */
	float x[2] = {1, 2}, w[4] = {3, 4, 5, 6}, b[2] = {1, -1}, o[2];
	train_matmul_forward_ref(o, x, w, b, 1, 2, 2);
	TAP_OK(o[0] == 12 && o[1] == 16, "matmul reference by hand");
}

static void test_norms(void)
{
	for (int s = 0; s < NSHAPES; s++) {
		int N = shapes[s].B * shapes[s].T, C = shapes[s].C;
		float *x = randv((size_t)N * C, 3), *w = randv(C, 1), *b = randv(C, 1);
		float *o1 = xmalloc(sizeof(float) * N * C), *o2 = xmalloc(sizeof(float) * N * C);
		float *m1 = xmalloc(sizeof(float) * N), *m2 = xmalloc(sizeof(float) * N);
		float *r1 = xmalloc(sizeof(float) * N), *r2 = xmalloc(sizeof(float) * N);
		train_layernorm_forward(o1, m1, r1, x, w, b, N, C, 1e-5f);
		train_layernorm_forward_ref(o2, m2, r2, x, w, b, N, C, 1e-5f);
		TAP_OK(maxrel(o1, o2, (size_t)N * C) < 1e-6 && maxrel(m1, m2, N) < 1e-6 &&
			       maxrel(r1, r2, N) < 1e-6,
		       "layernorm N=%d C=%d", N, C);
		train_rmsnorm_forward(o1, r1, x, w, N, C, 1e-6f);
		train_rmsnorm_forward_ref(o2, r2, x, w, N, C, 1e-6f);
		TAP_OK(maxrel(o1, o2, (size_t)N * C) < 1e-6 && maxrel(r1, r2, N) < 1e-6,
		       "rmsnorm N=%d C=%d", N, C);
		/* the serial form (the bf16 decode step's, rows up to 4 at a
		 * time): the parallel functions' values bit for bit */
		train_layernorm_forward(o1, NULL, NULL, x, w, b, N, C, 1e-5f);
		train_norm_rows_serial(o2, x, w, b, N, C, 1e-5f, 1);
		TAP_OK(!memcmp(o1, o2, sizeof(float) * N * C), "layernorm N=%d C=%d: serial form, same bits",
		       N, C);
		train_layernorm_forward(o1, NULL, NULL, x, w, NULL, N, C, 1e-5f);
		train_norm_rows_serial(o2, x, w, NULL, N, C, 1e-5f, 1);
		TAP_OK(!memcmp(o1, o2, sizeof(float) * N * C),
		       "layernorm N=%d C=%d, no bias: serial form, same bits", N, C);
		train_rmsnorm_forward(o1, NULL, x, w, N, C, 1e-6f);
		train_norm_rows_serial(o2, x, w, NULL, N, C, 1e-6f, 0);
		TAP_OK(!memcmp(o1, o2, sizeof(float) * N * C), "rmsnorm N=%d C=%d: serial form, same bits",
		       N, C);
		/* o2 the reference again (the serial checks used it), for the
		 * in-place check */
		train_rmsnorm_forward_ref(o2, r2, x, w, N, C, 1e-6f);
		/* in place */
		memcpy(o1, x, sizeof(float) * N * C);
		train_rmsnorm_forward(o1, NULL, o1, w, N, C, 1e-6f);
		TAP_OK(maxrel(o1, o2, (size_t)N * C) < 1e-6, "rmsnorm in place N=%d C=%d", N, C);
		free(x), free(w), free(b), free(o1), free(o2), free(m1), free(m2), free(r1), free(r2);
	}
	/* by hand: x = [1 3], mean 2, var 1, rstd = 1/sqrt(1+eps) */
	float x[2] = {1, 3}, w[2] = {1, 1}, o[2], mean, rstd;
	train_layernorm_forward_ref(o, &mean, &rstd, x, w, NULL, 1, 2, 0.0f);
	TAP_OK(mean == 2 && fabsf(o[0] + 1) < 1e-6 && fabsf(o[1] - 1) < 1e-6,
	       "layernorm reference by hand");
	train_rmsnorm_forward_ref(o, &rstd, x, w, 1, 2, 0.0f);
	TAP_NEAR(o[1], 3 / sqrt(5.0), 1e-6, "rmsnorm reference by hand");
}

static void test_attention(void)
{
	static const struct { int B, T, NH, NKV, hd, past; } cs[] = {
		{1, 1, 1, 1, 4, 0}, {1, 7, 4, 2, 16, 0}, {2, 13, 4, 4, 8, 0}, {3, 9, 8, 2, 16, 5},
		{2, 1, 6, 3, 32, 40}, {1, 64, 4, 1, 64, 0},
	};
	for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
		int B = cs[i].B, T = cs[i].T, NH = cs[i].NH, NKV = cs[i].NKV, hd = cs[i].hd;
		int S = T + cs[i].past + 3;
		int pos0[3] = {cs[i].past, cs[i].past > 0 ? cs[i].past - 1 : 0, 0};
		size_t qn = (size_t)B * T * NH * hd, kn = (size_t)B * S * NKV * hd;
		float *q = randv(qn, 2), *k = randv(kn, 2), *v = randv(kn, 1);
		float *o1 = xmalloc(sizeof(float) * qn), *o2 = xmalloc(sizeof(float) * qn);
		float *l1 = xmalloc(sizeof(float) * B * NH * T), *l2 = xmalloc(sizeof(float) * B * NH * T);
		train_attention_forward(o1, l1, q, k, v, cs[i].past ? pos0 : NULL, B, T, S, NH, NKV, hd);
		train_attention_forward_ref(o2, l2, q, k, v, cs[i].past ? pos0 : NULL, B, T, S, NH,
					    NKV, hd);
		TAP_OK(maxrel(o1, o2, qn) < 1e-5 && maxrel(l1, l2, (size_t)B * NH * T) < 1e-5,
		       "attention B=%d T=%d NH=%d NKV=%d hd=%d past=%d", B, T, NH, NKV, hd,
		       cs[i].past);
		free(q), free(k), free(v), free(o1), free(o2), free(l1), free(l2);
	}
	/* by hand: the first query sees only the first key: out = v0, lse = q.k0/sqrt(hd) */
	float q[2] = {1, 1}, k[4] = {2, 0, 0, 0}, v[4] = {5, 6, 7, 8}, o[2], l;
	train_attention_forward_ref(o, &l, q, k, v, NULL, 1, 1, 2, 1, 1, 2);
	TAP_OK(o[0] == 5 && o[1] == 6 && fabsf(l - 2 / sqrtf(2)) < 1e-6,
	       "attention reference by hand (causal mask)");
}

static void test_pointwise(void)
{
	size_t n = 100003;
	float *x = randv(n, 4), *y = randv(n, 4), *o1 = xmalloc(sizeof(float) * n);
	float *o2 = xmalloc(sizeof(float) * n);
	train_gelu_forward(o1, x, n);
	train_gelu_forward_ref(o2, x, n);
	/* the optimized kernel evaluates x * sigmoid(2u) instead of
	 * 0.5 x (1 + tanh(u)), equal in exact arithmetic: they must agree to
	 * within a few float roundings (one ulp of 1.0 is 1.2e-7) */
	double gd = maxrel(o1, o2, n);
	TAP_OK(gd <= 6e-7, "gelu: fast form within 5 ulp of the tanh form (max %.2g)", gd);
	float g[3] = {0, 1, -30}, go[3];
	for (int fast = 0; fast < 2; fast++) {
		(fast ? train_gelu_forward : train_gelu_forward_ref)(go, g, 3);
		TAP_OK(go[0] == 0 && fabsf(go[1] - 0.841192f) < 1e-5 && fabsf(go[2]) < 1e-6,
		       "gelu (tanh approximation) by hand, %s form", fast ? "fast" : "reference");
	}
	train_residual_forward(o1, x, y, n);
	train_residual_forward_ref(o2, x, y, n);
	TAP_OK(maxrel(o1, o2, n) == 0, "residual");
	int N = 37, H = 1351; /* inp [N, 2H] fits in n */
	train_swiglu_forward(o1, x, N, H);
	train_swiglu_forward_ref(o2, x, N, H);
	TAP_OK(maxrel(o1, o2, (size_t)N * H) == 0, "swiglu");
	float sg[2] = {1, 2}, so;
	train_swiglu_forward_ref(&so, sg, 1, 1);
	TAP_NEAR(so, 2 / (1 + exp(-1.0)), 1e-6, "swiglu by hand: silu(1) * 2");
	free(x), free(y), free(o1), free(o2);
}

static void test_rope_embed(void)
{
	int B = 2, T = 11, H = 3, hd = 16, maxT = 64, C = 24, V = 50;
	float *cs = xmalloc(sizeof(float) * maxT * hd / 2), *sn = xmalloc(sizeof(float) * maxT * hd / 2);
	train_rope_tables(cs, sn, maxT, hd, 10000.0, 0);
	TAP_OK(cs[0] == 1 && sn[0] == 0 && fabsf(cs[hd / 2] - cosf(1)) < 1e-7,
	       "rope tables: position 0 is the identity, position 1 angle 1 for i=0");
	size_t n = (size_t)B * T * H * hd;
	float *x = randv(n, 1), *o1 = xmalloc(sizeof(float) * n), *o2 = xmalloc(sizeof(float) * n);
	int pos0[2] = {3, 40};
	train_rope_forward(o1, x, cs, sn, pos0, B, T, H, hd);
	train_rope_forward_ref(o2, x, cs, sn, pos0, B, T, H, hd);
	TAP_OK(maxrel(o1, o2, n) == 0, "rope");
	memcpy(o1, x, sizeof(float) * n);
	train_rope_forward(o1, o1, cs, sn, pos0, B, T, H, hd);
	TAP_OK(maxrel(o1, o2, n) == 0, "rope in place");
	/* rotation keeps the norm of each pair */
	double d = 0;
	for (size_t i = 0; i < n; i += hd)
		for (int j = 0; j < hd / 2; j++) {
			double a = x[i + j] * x[i + j] + x[i + j + hd / 2] * x[i + j + hd / 2];
			double b = o1[i + j] * o1[i + j] + o1[i + j + hd / 2] * o1[i + j + hd / 2];
			d = fmax(d, fabs(a - b));
		}
	TAP_OK(d < 1e-5, "rope rotates pairs (i, i + hd/2)");
	float bt[2], bs[2];
	train_rope_tables(bt, bs, 1, 4, 10000.0, 1);
	TAP_OK(bt[0] == 1, "rope tables with bf16 inverse frequencies");
	free(x), free(o1), free(o2);

	int ids[22];
	for (int i = 0; i < B * T; i++)
		ids[i] = (i * 7) % V;
	float *wte = randv((size_t)V * C, 1), *wpe = randv((size_t)maxT * C, 1);
	float *e1 = xmalloc(sizeof(float) * B * T * C), *e2 = xmalloc(sizeof(float) * B * T * C);
	for (int k = 0; k < 2; k++) {
		train_embedding_forward(e1, ids, wte, k ? wpe : NULL, pos0, B, T, C);
		train_embedding_forward_ref(e2, ids, wte, k ? wpe : NULL, pos0, B, T, C);
		TAP_OK(maxrel(e1, e2, (size_t)B * T * C) == 0, "embedding (positions %d)", k);
	}
	TAP_OK(e1[C + 1] == wte[7 * C + 1] + wpe[4 * C + 1], "embedding by hand");
	free(wte), free(wpe), free(e1), free(e2), free(cs), free(sn);
}

static void test_logprob(void)
{
	static const struct { int N, C, V; } cs[] = {
		{1, 4, 5}, {7, 16, 1000}, {5, 32, 4096}, {9, 24, 4097}, {3, 8, 10000},
	};
	for (int blas = 0; blas < 2; blas++) {
		train_layers_use_blas = blas;
		for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
			int N = cs[i].N, C = cs[i].C, V = cs[i].V;
			float *h = randv((size_t)N * C, 2), *w = randv((size_t)V * C, 1);
			int *tg = xmalloc(sizeof(int) * N);
			for (int n = 0; n < N; n++)
				tg[n] = n == 1 ? -1 : (n * 911 + 3) % V;
			float *l1 = xmalloc(sizeof(float) * N), *l2 = xmalloc(sizeof(float) * N);
			float *s1 = xmalloc(sizeof(float) * N), *s2 = xmalloc(sizeof(float) * N);
			train_logprob_forward(l1, s1, h, w, tg, N, C, V);
			train_logprob_forward_ref(l2, s2, h, w, tg, N, C, V);
			TAP_OK(maxrel(l1, l2, N) < 1e-5 && maxrel(s1, s2, N) < 1e-5,
			       "logprob N=%d C=%d V=%d blas=%d (chunked vs full)", N, C, V, blas);
			if (N > 1)
				TAP_OK(l1[1] == 0, "logprob: target -1 gives 0");
			free(h), free(w), free(tg), free(l1), free(l2), free(s1), free(s2);
		}
	}
	train_layers_use_blas = 1;
	/* uniform logits: log p = -log V */
	float h[2] = {0, 0}, w[6] = {1, 2, 3, 4, 5, 6}, lp, ls;
	int t = 2;
	train_logprob_forward(&lp, &ls, h, w, &t, 1, 2, 3);
	TAP_NEAR(lp, -log(3.0), 1e-6, "logprob by hand: uniform over 3");
}

/* bf16 rounding: table of float32 bit patterns and their nearest-even
 * bfloat16, the parser, and the bulk conversions against the scalar ones. */
static void test_precision(void)
{
	static const struct { uint32_t in; uint16_t want; } t[] = {
		{ 0x3f800000u, 0x3f80 },	/* 1.0 exact */
		{ 0x3f808000u, 0x3f80 },	/* tie, even below */
		{ 0x3f818000u, 0x3f82 },	/* tie, odd below: up */
		{ 0x3f808001u, 0x3f81 },	/* just above the tie */
		{ 0x3f807fffu, 0x3f80 },	/* just below the tie */
		{ 0xbf808001u, 0xbf81 },	/* negative */
		{ 0x7f7fffffu, 0x7f80 },	/* FLT_MAX rounds to +inf */
		{ 0x7f800000u, 0x7f80 },	/* +inf */
		{ 0x7fc00000u, 0x7fc0 },	/* quiet NaN */
		{ 0x7f800001u, 0x7fc0 },	/* signalling NaN stays NaN */
		{ 0x00000001u, 0x0000 },	/* tiny denormal */
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		union { uint32_t u; float f; } v = { t[i].in };
		TAP_IS_INT(train_f32_to_bf16(v.f), t[i].want, "bf16(0x%08x)", (unsigned)t[i].in);
	}
	TAP_OK(train_bf16_to_f32(0x4049) == 3.140625f, "bf16 0x4049 widens to 3.140625");
	train_precision p = TRAIN_PREC_F32;
	TAP_OK(!train_precision_parse("bf16", &p) && p == TRAIN_PREC_BF16, "parse bf16");
	TAP_OK(!train_precision_parse("AUTO", &p) && p == TRAIN_PREC_AUTO, "parse AUTO");
	TAP_OK(!train_precision_parse("fp32", &p) && p == TRAIN_PREC_F32, "parse fp32");
	TAP_OK(train_precision_parse("bf15", &p) == -1 && p == TRAIN_PREC_F32, "bf15 refused");
	train_precision r = train_precision_resolve(TRAIN_PREC_AUTO);
	TAP_OK(r == (train_cpu_has_avx512bf16() ? TRAIN_PREC_BF16 : TRAIN_PREC_F32),
	       "auto resolves to %s", train_precision_name(r));
	enum { N = 1000 };
	float *x = randv(N, 100.0f), *back = xmalloc(sizeof(float) * N);
	uint16_t *h = xmalloc(sizeof(uint16_t) * N);
	train_f32_to_bf16_n(h, x, N);
	train_bf16_to_f32_n(back, h, N);
	int same = 1;
	for (int i = 0; i < N; i++)
		if (h[i] != train_f32_to_bf16(x[i]) || back[i] != train_bf16_to_f32(h[i]) ||
		    fabsf(back[i] - x[i]) > fabsf(x[i]) * (1.0f / 256))
			same = 0;
	TAP_OK(same, "bulk conversions equal the scalar ones, within 2^-8 relative");
	free(x);
	free(back);
	free(h);
}

int main(void)
{
	test_precision();
	test_matmul();
	test_norms();
	test_attention();
	test_pointwise();
	test_rope_embed();
	test_logprob();
	return tap_done();
}

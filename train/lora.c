/* lora.c: LoRA adapters in PEFT's format (see lora.h). */
#include "config.h"
#include "train/lora.h"
#include "train/layers.h"
#include "train/safetensors.h"
#include "util/buf.h"
#include "util/file.h"
#include "util/rand.h"
#include "util/xmalloc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifdef HAVE_BLAS
#include <cblas.h>
#undef I /* complex.h's, from cblas.h */
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#define MAX_KINDS 7

/* One kind of module of an architecture: its name, the site it sits on
 * and its slice of the site's output rows. */
typedef struct kind {
	const char *name;  /* "q_proj", "c_attn", ... */
	const char *path;  /* module path with %d for the layer */
	int site;
	size_t off, nout, nin; /* output rows [off, off + nout), input width */
} kind;

/* One adapted module. */
typedef struct lmod {
	int layer, site;
	size_t off, nout, nin;
	size_t a, b;       /* offsets of A [r, nin] and B [nout, r] in the arena */
	char *path;        /* "model.layers.0.self_attn.q_proj" */
	float *u;          /* saved scale * A x~ [N, r] of the last forward */
	size_t ucap;
} lmod;

struct train_lora {
	train_lora_cfg cfg;
	train_config mc;
	int nmods;
	lmod *mods;
	int *first, *count; /* per (layer, site): index of its first module, how many */
	float *params, *grads;
	size_t np;
	float scale;
	char *names;        /* the kinds adapted, comma-separated */
	int training;
	uint64_t seed, drop_draw; /* dropout masks: hash of (seed, draw, module, element) */
	/* train_lora_set_rows: a slice of a bigger micro-batch (rows.n 0: not) */
	struct { int n, T, off, ntot, Ttot; } rows;
	float *xs, *dx;     /* scratch [N, in] */
	size_t xs_cap, dx_cap;
};

void train_lora_cfg_clear(train_lora_cfg *cfg)
{
	if (!cfg)
		return;
	free(cfg->targets);
	free(cfg->base);
	cfg->targets = cfg->base = NULL;
}

/* The linear modules of an architecture, in PEFT's (module tree) order. */
static int arch_kinds(const train_config *c, kind *k)
{
	size_t C = (size_t)c->dim, I = (size_t)c->ffn;
	size_t QD = (size_t)c->n_head * c->head_dim, KD = (size_t)c->n_kv_head * c->head_dim;
	if (c->arch == TRAIN_ARCH_GPT2) {
		k[0] = (kind){"c_attn", "transformer.h.%d.attn.c_attn", TRAIN_LORA_QKV, 0, QD + 2 * KD, C};
		k[1] = (kind){"c_proj", "transformer.h.%d.attn.c_proj", TRAIN_LORA_O, 0, C, QD};
		k[2] = (kind){"c_fc", "transformer.h.%d.mlp.c_fc", TRAIN_LORA_FC, 0, I, C};
		k[3] = (kind){"c_proj", "transformer.h.%d.mlp.c_proj", TRAIN_LORA_PROJ, 0, C, I};
		return 4;
	}
	k[0] = (kind){"q_proj", "model.layers.%d.self_attn.q_proj", TRAIN_LORA_QKV, 0, QD, C};
	k[1] = (kind){"k_proj", "model.layers.%d.self_attn.k_proj", TRAIN_LORA_QKV, QD, KD, C};
	k[2] = (kind){"v_proj", "model.layers.%d.self_attn.v_proj", TRAIN_LORA_QKV, QD + KD, KD, C};
	k[3] = (kind){"o_proj", "model.layers.%d.self_attn.o_proj", TRAIN_LORA_O, 0, C, QD};
	k[4] = (kind){"gate_proj", "model.layers.%d.mlp.gate_proj", TRAIN_LORA_FC, 0, I, C};
	k[5] = (kind){"up_proj", "model.layers.%d.mlp.up_proj", TRAIN_LORA_FC, I, I, C};
	k[6] = (kind){"down_proj", "model.layers.%d.mlp.down_proj", TRAIN_LORA_PROJ, 0, C, I};
	return 7;
}

/* Whether target t (len n) names module path p: equal, or p ends with "." t. */
static int target_matches(const char *p, const char *t, size_t n)
{
	size_t lp = strlen(p);
	if (lp == n && !memcmp(p, t, n))
		return 1;
	return lp > n && p[lp - n - 1] == '.' && !memcmp(p + lp - n, t, n);
}

/* Mark in sel[] the kinds that targets selects (a target matching the path
 * of layer 0's module, or its layer-free suffix). -1 with *err for a target
 * that matches nothing. */
static int select_kinds(const train_config *c, const char *targets, int *sel, char **err)
{
	kind k[MAX_KINDS];
	int nk = arch_kinds(c, k), any = 0;
	memset(sel, 0, sizeof(int) * MAX_KINDS);
	if (!targets || !*targets) {
		*err = xstrdup("no target modules given");
		return -1;
	}
	if (!strcmp(targets, "all-linear")) {
		for (int i = 0; i < nk; i++)
			sel[i] = 1;
		return 0;
	}
	const char *s = targets;
	while (*s) {
		const char *e = strchr(s, ',');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		int hit = 0;
		for (int i = 0; n && i < nk; i++) {
			/* the path without "...%d." : "attn.c_proj", "self_attn.q_proj" */
			const char *tail = strstr(k[i].path, "%d.") + 3;
			if (target_matches(tail, s, n)) {
				sel[i] = 1;
				hit = 1;
			}
		}
		if (!hit) {
			util_buf b = UTIL_BUF_INIT;
			for (int i = 0; i < nk; i++)
				if (!strstr(util_buf_str(&b), k[i].name))
					util_buf_addf(&b, "%s%s", b.len ? ", " : "", k[i].name);
			*err = xasprintf("\"%.*s\" is no linear module of a %s model (there are %s, or all-linear)",
					 (int)n, s, c->model_type, util_buf_str(&b));
			util_buf_free(&b);
			return -1;
		}
		any = 1;
		s += n;
		if (*s == ',')
			s++;
	}
	if (!any) {
		*err = xstrdup("no target modules given");
		return -1;
	}
	return 0;
}

int train_lora_check_targets(const train_config *c, const char *targets, char **err)
{
	int sel[MAX_KINDS];
	return select_kinds(c, targets, sel, err);
}

static int check_cfg(const train_lora_cfg *cfg, char **err)
{
	if (cfg->r < 1 || cfg->r > 65536) {
		*err = xasprintf("LoRA rank r = %d (expected 1 to 65536)", cfg->r);
		return -1;
	}
	if (!(cfg->dropout >= 0 && cfg->dropout < 1)) {
		*err = xasprintf("LoRA dropout %g (expected [0, 1))", cfg->dropout);
		return -1;
	}
	if (!isfinite(cfg->alpha)) {
		*err = xasprintf("LoRA alpha %g is not finite", cfg->alpha);
		return -1;
	}
	return 0;
}

/* The adapter's structure for cfg (parameters zero). NULL with *err. */
static train_lora *lora_build(const train_config *c, const train_lora_cfg *cfg, char **err)
{
	int sel[MAX_KINDS];
	kind k[MAX_KINDS];
	int nk = arch_kinds(c, k);
	if (check_cfg(cfg, err) || select_kinds(c, cfg->targets, sel, err))
		return NULL;
	train_lora *lo = xcalloc(1, sizeof *lo);
	lo->cfg.r = cfg->r;
	lo->cfg.alpha = cfg->alpha;
	lo->cfg.dropout = cfg->dropout;
	lo->cfg.rslora = cfg->rslora;
	lo->cfg.targets = xstrdup(cfg->targets);
	lo->cfg.base = cfg->base ? xstrdup(cfg->base) : NULL;
	lo->mc = *c;
	lo->scale = (float)(cfg->rslora ? cfg->alpha / sqrt(cfg->r) : cfg->alpha / cfg->r);
	int per = 0;
	util_buf names = UTIL_BUF_INIT;
	for (int i = 0; i < nk; i++)
		if (sel[i]) {
			per++;
			if (!strstr(util_buf_str(&names), k[i].name))
				util_buf_addf(&names, "%s%s", names.len ? "," : "", k[i].name);
		}
	lo->names = util_buf_detach(&names);
	lo->nmods = per * c->n_layer;
	lo->mods = xcalloc(lo->nmods ? lo->nmods : 1, sizeof(lmod));
	size_t nsl = (size_t)c->n_layer * TRAIN_LORA_NSITES;
	lo->first = xcalloc(nsl ? nsl : 1, sizeof(int));
	lo->count = xcalloc(nsl ? nsl : 1, sizeof(int));
	size_t off = 0, r = (size_t)cfg->r;
	int j = 0;
	for (int l = 0; l < c->n_layer; l++)
		for (int s = 0; s < TRAIN_LORA_NSITES; s++) {
			lo->first[l * TRAIN_LORA_NSITES + s] = j;
			for (int i = 0; i < nk; i++) {
				if (!sel[i] || k[i].site != s)
					continue;
				lmod *m = &lo->mods[j++];
				m->layer = l;
				m->site = s;
				m->off = k[i].off;
				m->nout = k[i].nout;
				m->nin = k[i].nin;
				m->a = off;
				off += r * m->nin;
				m->b = off;
				off += m->nout * r;
				m->path = xasprintf(k[i].path, l);
				lo->count[l * TRAIN_LORA_NSITES + s]++;
			}
		}
	lo->np = off;
	lo->params = xcalloc(off ? off : 1, sizeof(float));
	return lo;
}

train_lora *train_lora_new(const train_config *c, const train_lora_cfg *cfg, uint64_t seed,
			   char **err)
{
	train_lora *lo = lora_build(c, cfg, err);
	if (!lo)
		return NULL;
	lo->seed = seed;
	/* kaiming_uniform_(a=sqrt(5)) on [r, in]: gain sqrt(2/(1+5)), bound
	 * gain * sqrt(3 / in) = 1 / sqrt(in); B stays zero */
	uint64_t s = util_mix64(seed ^ 0x4c6f5241ull);
	for (int i = 0; i < lo->nmods; i++) {
		const lmod *m = &lo->mods[i];
		double bound = 1.0 / sqrt((double)m->nin);
		float *A = lo->params + m->a;
		for (size_t k = 0; k < (size_t)cfg->r * m->nin; k++) {
			double u = (double)(util_splitmix64(&s) >> 11) * (1.0 / 9007199254740992.0);
			A[k] = (float)((2 * u - 1) * bound);
		}
	}
	return lo;
}

void train_lora_free(train_lora *lo)
{
	if (!lo)
		return;
	for (int i = 0; i < lo->nmods; i++) {
		free(lo->mods[i].path);
		free(lo->mods[i].u);
	}
	free(lo->mods);
	free(lo->first);
	free(lo->count);
	free(lo->params);
	free(lo->grads);
	free(lo->names);
	free(lo->xs);
	free(lo->dx);
	train_lora_cfg_clear(&lo->cfg);
	free(lo);
}

const train_lora_cfg *train_lora_config(const train_lora *lo)
{
	return &lo->cfg;
}

int train_lora_nmodules(const train_lora *lo)
{
	return lo->nmods;
}

const char *train_lora_target_names(const train_lora *lo)
{
	return lo->names;
}

float *train_lora_params(train_lora *lo)
{
	return lo->params;
}

size_t train_lora_nparams(const train_lora *lo)
{
	return lo->np;
}

float *train_lora_grads(train_lora *lo)
{
	if (!lo->grads)
		lo->grads = xcalloc(lo->np ? lo->np : 1, sizeof(float));
	return lo->grads;
}

void train_lora_set_training(train_lora *lo, int on, uint64_t draw)
{
	lo->training = on;
	lo->drop_draw = draw;
}

void train_lora_set_seed(train_lora *lo, uint64_t seed)
{
	lo->seed = seed;
}

void train_lora_set_rows(train_lora *lo, int n, int T, int off, int ntot, int Ttot)
{
	lo->rows.n = n;
	lo->rows.T = T;
	lo->rows.off = off;
	lo->rows.ntot = ntot;
	lo->rows.Ttot = Ttot;
}

/* ---- forward and backward ---- */

/* C[M,N] = alpha op(A) op(B) + beta C, row-major (op: transposed when ta /
 * tb), the rows of C split across the OpenMP threads when big enough. */
static void gemm_rows(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
		      const float *B, int ldb, float beta, float *C, int ldc)
{
#ifdef HAVE_BLAS
	if (train_layers_use_blas) {
		cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
			    M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
		return;
	}
#endif
	for (int i = 0; i < M; i++) {
		float *c = C + (size_t)i * ldc;
		for (int j = 0; j < N; j++) {
			float acc = 0;
			for (int k = 0; k < K; k++)
				acc += (ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
				       (tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
			c[j] = alpha * acc + (beta == 0.0f ? 0.0f : beta * c[j]);
		}
	}
}

static void gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
		 const float *B, int ldb, float beta, float *C, int ldc)
{
	int nt = 1;
#ifdef _OPENMP
	if (!omp_in_parallel() && (double)M * N * K >= 1 << 18 && M >= 32)
		nt = omp_get_max_threads();
#endif
	if (nt <= 1) {
		gemm_rows(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
		return;
	}
	int blk = (M + nt - 1) / nt;
#pragma omp parallel for schedule(static) num_threads(nt)
	for (int i = 0; i < nt; i++) {
		int s0 = i * blk, s1 = s0 + blk < M ? s0 + blk : M;
		if (s0 < s1)
			gemm_rows(ta, tb, s1 - s0, N, K, alpha, ta ? A + s0 : A + (size_t)s0 * lda, lda,
				  B, ldb, beta, C + (size_t)s0 * ldc, ldc);
	}
}

static float *grow(float **p, size_t *cap, size_t n)
{
	if (n > *cap) {
		free(*p);
		*p = xmalloc(sizeof(float) * n);
		*cap = n;
	}
	return *p;
}

/* The dropout multiplier of element (row n, column i) of module j's input
 * in the current draw: 0 or 1/(1-p). */
static inline float keep_mul(const train_lora *lo, int j, size_t idx, float inv, uint64_t thr)
{
	uint64_t h = util_mix64(lo->seed ^ util_mix64(lo->drop_draw * 1000003ull + (uint64_t)j) ^
				 (idx * 0x9e3779b97f4a7c15ull));
	return h >= thr ? inv : 0.0f;
}

/* The element the mask is drawn for at element i of an input of N rows of
 * nin: i itself, or, for a slice (train_lora_set_rows) of N = 2 n T rows,
 * the same element's index in the whole micro-batch's 2 ntot Ttot rows. */
static inline size_t mask_index(const train_lora *lo, size_t i, int N, size_t nin)
{
	if (!lo->rows.n || (size_t)N != 2 * (size_t)lo->rows.n * (size_t)lo->rows.T)
		return i;
	size_t row = i / nin, col = i % nin, T = (size_t)lo->rows.T, n = (size_t)lo->rows.n;
	size_t seq = row / T, t = row % T, side = seq >= n, p = seq - side * n;
	size_t g = side * (size_t)lo->rows.ntot + (size_t)lo->rows.off + p;
	return (g * (size_t)lo->rows.Ttot + t) * nin + col;
}

/* x~ = dropout(x) of module j into lo->xs, or x itself without dropout. */
static const float *dropped(train_lora *lo, int j, const float *x, int N, size_t nin)
{
	if (!lo->training || lo->cfg.dropout <= 0)
		return x;
	float *xs = grow(&lo->xs, &lo->xs_cap, (size_t)N * nin);
	float inv = (float)(1.0 / (1.0 - lo->cfg.dropout));
	uint64_t thr = (uint64_t)(lo->cfg.dropout * 18446744073709551615.0);
	size_t n = (size_t)N * nin;
#pragma omp parallel for schedule(static) if (n > 65536)
	for (size_t i = 0; i < n; i++)
		xs[i] = x[i] * keep_mul(lo, j, mask_index(lo, i, N, nin), inv, thr);
	return xs;
}

void train_lora_forward(train_lora *lo, int l, int s, float *out, int OC, const float *inp, int N)
{
	if (!lo || l >= lo->mc.n_layer)
		return;
	int idx = l * TRAIN_LORA_NSITES + s, r = lo->cfg.r;
	for (int j = lo->first[idx]; j < lo->first[idx] + lo->count[idx]; j++) {
		lmod *m = &lo->mods[j];
		float *u = grow(&m->u, &m->ucap, (size_t)N * r);
		const float *x = dropped(lo, j, inp, N, m->nin);
		/* u = x~ A^T, scaled; out[:, off..] += u B^T */
		gemm(0, 1, N, r, (int)m->nin, lo->scale, x, (int)m->nin, lo->params + m->a, (int)m->nin,
		     0.0f, u, r);
		gemm(0, 1, N, (int)m->nout, r, 1.0f, u, r, lo->params + m->b, r, 1.0f, out + m->off, OC);
	}
}

void train_lora_backward(train_lora *lo, int l, int s, float *dinp, const float *dout, int OC,
			 const float *inp, int N)
{
	if (!lo || l >= lo->mc.n_layer)
		return;
	int idx = l * TRAIN_LORA_NSITES + s, r = lo->cfg.r;
	float *g = train_lora_grads(lo);
	for (int j = lo->first[idx]; j < lo->first[idx] + lo->count[idx]; j++) {
		lmod *m = &lo->mods[j];
		int nin = (int)m->nin, nout = (int)m->nout;
		const float *G = dout + m->off;
		/* dB += G^T u (u already scaled) */
		gemm(1, 0, nout, r, N, 1.0f, G, OC, m->u, r, 1.0f, g + m->b, r);
		/* du = scale * G B [N, r] (reuses u: not needed any more) */
		float *du = m->u;
		gemm(0, 0, N, r, nout, lo->scale, G, OC, lo->params + m->b, r, 0.0f, du, r);
		/* dA += du^T x~ */
		const float *x = dropped(lo, j, inp, N, m->nin);
		gemm(1, 0, r, nin, N, 1.0f, du, r, x, nin, 1.0f, g + m->a, nin);
		/* dinp += dropout'(du A) */
		if (!lo->training || lo->cfg.dropout <= 0) {
			gemm(0, 0, N, nin, r, 1.0f, du, r, lo->params + m->a, nin, 1.0f, dinp, nin);
			continue;
		}
		size_t n = (size_t)N * nin;
		float *dx = grow(&lo->dx, &lo->dx_cap, n);
		gemm(0, 0, N, nin, r, 1.0f, du, r, lo->params + m->a, nin, 0.0f, dx, nin);
		float inv = (float)(1.0 / (1.0 - lo->cfg.dropout));
		uint64_t thr = (uint64_t)(lo->cfg.dropout * 18446744073709551615.0);
#pragma omp parallel for schedule(static) if (n > 65536)
		for (size_t i = 0; i < n; i++)
			dinp[i] += dx[i] * keep_mul(lo, j, mask_index(lo, i, N, m->nin), inv, thr);
	}
}

void train_lora_merge(const train_lora *lo, train_model *m)
{
	const train_config *c = &lo->mc;
	const train_weights *w = train_model_weights(m);
	size_t C = (size_t)c->dim, I = (size_t)c->ffn;
	size_t QKV = ((size_t)c->n_head + 2 * (size_t)c->n_kv_head) * c->head_dim;
	size_t QD = (size_t)c->n_head * c->head_dim;
	size_t F = c->arch == TRAIN_ARCH_GPT2 ? I : 2 * I;
	int r = lo->cfg.r;
	for (int j = 0; j < lo->nmods; j++) {
		const lmod *md = &lo->mods[j];
		size_t l = (size_t)md->layer;
		float *W = NULL;
		switch (md->site) {
		case TRAIN_LORA_QKV: W = w->wqkv + l * QKV * C; break;
		case TRAIN_LORA_O: W = w->wo + l * C * QD; break;
		case TRAIN_LORA_FC: W = w->wfc + l * F * C; break;
		default: W = w->wproj + l * C * I; break;
		}
		W += md->off * md->nin;
		const float *A = lo->params + md->a, *B = lo->params + md->b;
#pragma omp parallel for schedule(static)
		for (size_t o = 0; o < md->nout; o++)
			for (size_t i = 0; i < md->nin; i++) {
				double sum = 0;
				for (int k = 0; k < r; k++)
					sum += (double)B[o * r + k] * A[(size_t)k * md->nin + i];
				W[o * md->nin + i] += (float)(lo->scale * sum);
			}
	}
}

/* ---- files ---- */

int train_lora_config_parse(const char *json, size_t len, train_lora_cfg *cfg, char **err)
{
	int rc = TRAIN_EFORMAT;
	memset(cfg, 0, sizeof *cfg);
	cJSON *j = cJSON_ParseWithLength(json, len);
	if (!cJSON_IsObject(j)) {
		*err = xstrdup("not a JSON object");
		goto out;
	}
	const cJSON *pt = cJSON_GetObjectItemCaseSensitive(j, "peft_type");
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "r");
	const cJSON *al = cJSON_GetObjectItemCaseSensitive(j, "lora_alpha");
	const cJSON *dr = cJSON_GetObjectItemCaseSensitive(j, "lora_dropout");
	const cJSON *tm = cJSON_GetObjectItemCaseSensitive(j, "target_modules");
	const cJSON *bm = cJSON_GetObjectItemCaseSensitive(j, "base_model_name_or_path");
	if (!cJSON_IsString(pt) || strcmp(pt->valuestring, "LORA")) {
		*err = xstrdup("\"peft_type\" is not \"LORA\"");
		goto out;
	}
	if (!cJSON_IsNumber(r) || r->valuedouble != floor(r->valuedouble) || r->valuedouble < 1 ||
	    r->valuedouble > 65536) {
		*err = xstrdup("\"r\": expected an integer from 1 to 65536");
		goto out;
	}
	cfg->r = (int)r->valuedouble;
	cfg->alpha = cJSON_IsNumber(al) ? al->valuedouble : 8;
	cfg->dropout = cJSON_IsNumber(dr) ? dr->valuedouble : 0;
	if (!(cfg->dropout >= 0 && cfg->dropout < 1)) {
		*err = xstrdup("\"lora_dropout\": expected a number in [0, 1)");
		goto out;
	}
	cfg->rslora = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "use_rslora"));
	rc = TRAIN_EUNSUP;
	static const char *const off[] = {"use_dora", "layers_to_transform", "modules_to_save"};
	for (size_t i = 0; i < sizeof off / sizeof *off; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, off[i]);
		if (v && !cJSON_IsNull(v) && !cJSON_IsFalse(v)) {
			*err = xasprintf("\"%s\" is not supported", off[i]);
			goto out;
		}
	}
	static const char *const pats[] = {"rank_pattern", "alpha_pattern"};
	for (size_t i = 0; i < 2; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, pats[i]);
		if (v && !cJSON_IsNull(v) && !(cJSON_IsObject(v) && !v->child)) {
			*err = xasprintf("\"%s\" is not supported", pats[i]);
			goto out;
		}
	}
	const cJSON *bias = cJSON_GetObjectItemCaseSensitive(j, "bias");
	if (bias && !(cJSON_IsString(bias) && !strcmp(bias->valuestring, "none"))) {
		*err = xstrdup("\"bias\": only \"none\" is supported");
		goto out;
	}
	util_buf t = UTIL_BUF_INIT;
	if (cJSON_IsString(tm) && !strcmp(tm->valuestring, "all-linear")) {
		util_buf_adds(&t, "all-linear");
	} else if (cJSON_IsArray(tm)) {
		const cJSON *e;
		cJSON_ArrayForEach(e, tm) {
			if (!cJSON_IsString(e) || !*e->valuestring || strchr(e->valuestring, ',')) {
				util_buf_free(&t);
				*err = xstrdup("\"target_modules\": expected a list of module names");
				rc = TRAIN_EFORMAT;
				goto out;
			}
			util_buf_addf(&t, "%s%s", t.len ? "," : "", e->valuestring);
		}
	}
	if (!t.len) {
		util_buf_free(&t);
		*err = xstrdup("\"target_modules\": expected a non-empty list of module names "
			       "(regular expressions are not supported)");
		goto out;
	}
	cfg->targets = util_buf_detach(&t);
	if (cJSON_IsString(bm))
		cfg->base = xstrdup(bm->valuestring);
	rc = 0;
out:
	if (rc)
		train_lora_cfg_clear(cfg);
	cJSON_Delete(j);
	return rc;
}

/* The "r", "lora_alpha", ... document. */
static char *config_json(const train_lora *lo, const char *base)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddItemToObject(j, "alpha_pattern", cJSON_CreateObject());
	cJSON_AddNullToObject(j, "auto_mapping");
	if (base)
		cJSON_AddStringToObject(j, "base_model_name_or_path", base);
	else
		cJSON_AddNullToObject(j, "base_model_name_or_path");
	cJSON_AddStringToObject(j, "bias", "none");
	cJSON_AddBoolToObject(j, "fan_in_fan_out", lo->mc.arch == TRAIN_ARCH_GPT2);
	cJSON_AddBoolToObject(j, "inference_mode", 1);
	cJSON_AddBoolToObject(j, "init_lora_weights", 1);
	cJSON_AddNullToObject(j, "layers_pattern");
	cJSON_AddNullToObject(j, "layers_to_transform");
	cJSON_AddNumberToObject(j, "lora_alpha", lo->cfg.alpha);
	cJSON_AddNumberToObject(j, "lora_dropout", lo->cfg.dropout);
	cJSON_AddNullToObject(j, "modules_to_save");
	cJSON_AddStringToObject(j, "peft_type", "LORA");
	cJSON_AddNumberToObject(j, "r", lo->cfg.r);
	cJSON_AddItemToObject(j, "rank_pattern", cJSON_CreateObject());
	cJSON_AddNullToObject(j, "revision");
	cJSON *tm = cJSON_AddArrayToObject(j, "target_modules");
	char *names = xstrdup(lo->names), *save = NULL;
	for (char *t = strtok_r(names, ",", &save); t; t = strtok_r(NULL, ",", &save))
		cJSON_AddItemToArray(tm, cJSON_CreateString(t));
	free(names);
	cJSON_AddStringToObject(j, "task_type", "CAUSAL_LM");
	cJSON_AddBoolToObject(j, "use_dora", 0);
	cJSON_AddBoolToObject(j, "use_rslora", lo->cfg.rslora);
	char *s = cJSON_Print(j);
	cJSON_Delete(j);
	size_t n = strlen(s);
	s = xrealloc(s, n + 2);
	s[n] = '\n';
	s[n + 1] = 0;
	return s;
}

int train_lora_save(const train_lora *lo, const char *dir, const char *base, char **err)
{
	int rc = -1;
	char *path = NULL, *js = NULL;
	train_st_out *o = xcalloc((size_t)2 * lo->nmods + 1, sizeof *o);
	char **names = xcalloc((size_t)2 * lo->nmods + 1, sizeof *names);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		*err = xasprintf("%s: %s", dir, strerror(errno));
		goto out;
	}
	for (int j = 0; j < lo->nmods; j++) {
		const lmod *m = &lo->mods[j];
		names[2 * j] = xasprintf("base_model.model.%s.lora_A.weight", m->path);
		names[2 * j + 1] = xasprintf("base_model.model.%s.lora_B.weight", m->path);
		o[2 * j] = (train_st_out){names[2 * j], 2, {lo->cfg.r, (int64_t)m->nin},
					  lo->params + m->a, NULL};
		o[2 * j + 1] = (train_st_out){names[2 * j + 1], 2, {(int64_t)m->nout, lo->cfg.r},
					      lo->params + m->b, NULL};
	}
	path = xasprintf("%s/adapter_model.safetensors", dir);
	if (train_st_write(path, o, 2 * lo->nmods, err))
		goto out;
	free(path);
	path = xasprintf("%s/adapter_config.json", dir);
	js = config_json(lo, base ? base : lo->cfg.base);
	if (util_write_file_atomic(path, js, strlen(js))) {
		*err = xasprintf("%s: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	for (int j = 0; j < 2 * lo->nmods; j++)
		free(names[j]);
	free(names);
	free(o);
	free(path);
	free(js);
	return rc;
}

/* Read module tensors of f into lo; -1 with *err naming the key. */
static int read_tensors(train_lora *lo, const train_st_file *f, const char *path, char **err)
{
	int used = 0;
	for (int j = 0; j < lo->nmods; j++) {
		const lmod *m = &lo->mods[j];
		for (int ab = 0; ab < 2; ab++) {
			char *key = xasprintf("base_model.model.%s.lora_%c.weight", m->path, ab ? 'B' : 'A');
			const train_st_tensor *t = train_st_find(f, key);
			int64_t d0 = ab ? (int64_t)m->nout : lo->cfg.r, d1 = ab ? lo->cfg.r : (int64_t)m->nin;
			int rc = 0;
			if (!t) {
				*err = xasprintf("%s: no tensor %s", path, key);
				rc = -1;
			} else if (t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1) {
				*err = xasprintf("%s: %s has the wrong shape (expected [%lld, %lld])", path,
						 key, (long long)d0, (long long)d1);
				rc = -1;
			} else if (train_st_read_f32(f, t, lo->params + (ab ? m->b : m->a), err)) {
				rc = -1;
			}
			free(key);
			if (rc)
				return -1;
			used++;
		}
	}
	for (int i = 0; i < train_st_count(f); i++) {
		const char *n = train_st_get(f, i)->name;
		if (strstr(n, "lora_") && (strstr(n, ".lora_A.") || strstr(n, ".lora_B.")))
			continue;
		*err = xasprintf("%s: unexpected tensor %s (only lora_A/lora_B weights are supported)", path, n);
		return -1;
	}
	if (train_st_count(f) != used) {
		*err = xasprintf("%s: %d tensors, expected %d for target modules %s", path, train_st_count(f),
				 used, lo->cfg.targets);
		return -1;
	}
	return 0;
}

const char *train_lora_default_targets(const train_config *c)
{
	return c->arch == TRAIN_ARCH_GPT2 ? "c_attn" : "q_proj,v_proj";
}

char *train_lora_dir_base(const char *dir, char **err)
{
	char *path = xasprintf("%s/adapter_config.json", dir), *e = NULL, *base = NULL;
	size_t len = 0;
	char *text = util_read_file(path, &len);
	train_lora_cfg cfg;
	if (!text) {
		*err = xasprintf("%s: %s", path, strerror(errno));
	} else if (train_lora_config_parse(text, len, &cfg, &e)) {
		*err = xasprintf("%s: %s", path, e);
	} else {
		if (cfg.base && *cfg.base) {
			base = cfg.base;
			cfg.base = NULL;
		} else {
			*err = xasprintf("%s: no base_model_name_or_path", path);
		}
		train_lora_cfg_clear(&cfg);
	}
	free(e);
	free(text);
	free(path);
	return base;
}

void train_lora_hash(const train_lora *lo, util_sha256 *h)
{
	char *js = config_json(lo, NULL);
	util_sha256_update(h, js, strlen(js));
	util_sha256_update(h, lo->params, sizeof(float) * lo->np);
	free(js);
}

train_model *train_lora_model_load(const char *dir, char **err)
{
	return train_lora_model_load_prec(dir, TRAIN_PREC_F32, err);
}

train_model *train_lora_model_load_prec(const char *dir, train_precision prec, char **err)
{
	char *cfg = xasprintf("%s/config.json", dir), *ad = xasprintf("%s/adapter_config.json", dir);
	struct stat sb;
	int adapter = stat(cfg, &sb) != 0 && stat(ad, &sb) == 0;
	free(cfg);
	free(ad);
	if (!adapter)
		return train_model_load_prec(dir, prec, err);
	char *base = train_lora_dir_base(dir, err);
	if (!base)
		return NULL;
	train_model *m = train_model_load_prec(base, prec, err);
	free(base);
	if (!m)
		return NULL;
	train_lora *lo = train_lora_load(train_model_config(m), dir, err);
	if (!lo) {
		train_model_free(m);
		return NULL;
	}
	train_model_own_lora(m, lo);
	return m;
}

train_lora *train_lora_load(const train_config *c, const char *dir, char **err)
{
	train_lora *lo = NULL;
	train_st_file *f = NULL;
	train_lora_cfg cfg;
	memset(&cfg, 0, sizeof cfg);
	char *path = xasprintf("%s/adapter_config.json", dir), *text = NULL, *e = NULL;
	size_t len = 0;
	text = util_read_file(path, &len);
	if (!text) {
		*err = xasprintf("%s: %s", path, strerror(errno));
		goto out;
	}
	if (train_lora_config_parse(text, len, &cfg, &e)) {
		*err = xasprintf("%s: %s", path, e);
		goto out;
	}
	lo = lora_build(c, &cfg, &e);
	if (!lo) {
		*err = xasprintf("%s: %s", path, e);
		goto out;
	}
	free(path);
	path = xasprintf("%s/adapter_model.safetensors", dir);
	f = train_st_open(path, err);
	if (!f || read_tensors(lo, f, path, err)) {
		train_lora_free(lo);
		lo = NULL;
	}
out:
	train_st_close(f);
	train_lora_cfg_clear(&cfg);
	free(e);
	free(text);
	free(path);
	return lo;
}

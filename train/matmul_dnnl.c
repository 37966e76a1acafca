/* matmul_dnnl.c: train_gemm_bf16 through oneDNN (see matmul_dnnl.h). */
#include "config.h"
#include "train/matmul_dnnl.h"
#include "train/matmul_bf16.h"
#include "util/xmalloc.h"

#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Pieces: at most KP values of k, and at most BUDGET elements of each bf16
 * operand (4 MB each: 512 rows of k = 4096 fit); products under MIN_MACS
 * multiply-adds stay on our tile (a oneDNN call costs some microseconds
 * more). */
#define KP 4096
#define BUDGET ((size_t)2 << 20)
#define MIN_MACS ((double)(1 << 21))
#define NCACHE 64

int train_bf16_use_dnnl = -1; /* DPO_DNNL decides at the first call */

/* the primitives of one piece shape */
typedef struct {
	int ta, tb, M, N, K, lda, ldb, ldc, nt;
	float beta;
	unsigned long used; /* 0: a free slot */
	dnnl_memory_desc_t a32, b32, a16, b16, c;
	dnnl_primitive_t mm, ra, rb;
} dn_entry;

static pthread_mutex_t dn_lock = PTHREAD_MUTEX_INITIALIZER;
static int dn_state; /* 0 not tried, 1 ready, -1 off for the process */
static dnnl_engine_t dn_eng;
static dnnl_stream_t dn_strm;
static dn_entry dn_cache[NCACHE];
static unsigned long dn_tick, dn_calls;
static void *dn_abuf, *dn_bbuf;
static size_t dn_acap, dn_bcap;

unsigned long train_gemm_bf16_dnnl_calls(void)
{
	return dn_calls;
}

/* a rows x cols matrix, row-major with leading dimension ld, or stored
 * transposed (cols x rows) */
static dnnl_status_t md_2d(dnnl_memory_desc_t *md, int rows, int cols, int trans, int ld,
			   dnnl_data_type_t dt)
{
	dnnl_dims_t dims = {rows, cols}, str = {trans ? 1 : ld, trans ? ld : 1};
	return dnnl_memory_desc_init_by_strides(md, 2, dims, dt, str);
}

static dnnl_status_t make_reorder(dnnl_primitive_t *p, const dnnl_memory_desc_t *from,
				  const dnnl_memory_desc_t *to)
{
	dnnl_primitive_desc_t pd;
	dnnl_status_t s = dnnl_reorder_primitive_desc_create(&pd, from, dn_eng, to, dn_eng, NULL);
	if (s != dnnl_success)
		return s;
	s = dnnl_primitive_create(p, pd);
	dnnl_primitive_desc_destroy(pd);
	return s;
}

static void entry_free(dn_entry *e)
{
	if (e->mm)
		dnnl_primitive_destroy(e->mm);
	if (e->ra)
		dnnl_primitive_destroy(e->ra);
	if (e->rb)
		dnnl_primitive_destroy(e->rb);
	e->mm = e->ra = e->rb = NULL;
	e->used = 0;
}

/* the primitives of e's shape: f32 views of the pieces, dense bf16 copies
 * in the same orientation, the matmul with a sum post-op when beta != 0 */
static dnnl_status_t entry_build(dn_entry *e)
{
	dnnl_status_t s;
	dnnl_primitive_attr_t attr = NULL;
	dnnl_post_ops_t po = NULL;
	dnnl_primitive_desc_t pd = NULL;
	dnnl_matmul_desc_t mmd;
	if ((s = md_2d(&e->a32, e->M, e->K, e->ta, e->lda, dnnl_f32)) != dnnl_success ||
	    (s = md_2d(&e->b32, e->K, e->N, e->tb, e->ldb, dnnl_f32)) != dnnl_success ||
	    (s = md_2d(&e->a16, e->M, e->K, e->ta, e->ta ? e->M : e->K, dnnl_bf16)) !=
		    dnnl_success ||
	    (s = md_2d(&e->b16, e->K, e->N, e->tb, e->tb ? e->K : e->N, dnnl_bf16)) !=
		    dnnl_success ||
	    (s = md_2d(&e->c, e->M, e->N, 0, e->ldc, dnnl_f32)) != dnnl_success)
		goto out;
	if ((s = make_reorder(&e->ra, &e->a32, &e->a16)) != dnnl_success ||
	    (s = make_reorder(&e->rb, &e->b32, &e->b16)) != dnnl_success)
		goto out;
	if ((s = dnnl_matmul_desc_init(&mmd, &e->a16, &e->b16, NULL, &e->c)) != dnnl_success ||
	    (s = dnnl_primitive_attr_create(&attr)) != dnnl_success)
		goto out;
	if (e->beta != 0.0f &&
	    ((s = dnnl_post_ops_create(&po)) != dnnl_success ||
	     (s = dnnl_post_ops_append_sum(po, e->beta)) != dnnl_success ||
	     (s = dnnl_primitive_attr_set_post_ops(attr, po)) != dnnl_success))
		goto out;
	if ((s = dnnl_primitive_desc_create(&pd, &mmd, attr, dn_eng, NULL)) != dnnl_success)
		goto out;
	s = dnnl_primitive_create(&e->mm, pd);
out:
	if (pd)
		dnnl_primitive_desc_destroy(pd);
	if (po)
		dnnl_post_ops_destroy(po);
	if (attr)
		dnnl_primitive_attr_destroy(attr);
	if (s != dnnl_success)
		entry_free(e);
	return s;
}

/* the cached entry of a piece shape (key in *k), built when absent (the
 * least recently used slot goes); NULL when oneDNN cannot build it */
static dn_entry *entry_get(const dn_entry *k)
{
	dn_entry *lru = &dn_cache[0];
	for (int i = 0; i < NCACHE; i++) {
		dn_entry *e = &dn_cache[i];
		if (e->used && e->ta == k->ta && e->tb == k->tb && e->M == k->M && e->N == k->N &&
		    e->K == k->K && e->lda == k->lda && e->ldb == k->ldb && e->ldc == k->ldc &&
		    e->nt == k->nt && e->beta == k->beta) {
			e->used = ++dn_tick;
			return e;
		}
		if (e->used < lru->used)
			lru = e;
	}
	entry_free(lru);
	*lru = *k;
	lru->mm = lru->ra = lru->rb = NULL;
	if (entry_build(lru) != dnnl_success)
		return NULL;
	lru->used = ++dn_tick;
	return lru;
}

static void exec_or_die(dnnl_primitive_t p, dnnl_memory_t *m, const int *which, int n)
{
	dnnl_exec_arg_t args[3];
	for (int i = 0; i < n; i++) {
		args[i].arg = which[i];
		args[i].memory = m[i];
	}
	if (dnnl_primitive_execute(p, dn_strm, n, args) != dnnl_success ||
	    dnnl_stream_wait(dn_strm) != dnnl_success) {
		fprintf(stderr, "dpo: oneDNN failed while running a bf16 matmul\n");
		abort();
	}
}

/* runs primitive p over the buffers, wrapping each in a memory object of
 * the matching descriptor */
static void run_prim(dnnl_primitive_t p, int n, const int *which, const dnnl_memory_desc_t **md,
		     void **buf)
{
	dnnl_memory_t m[3];
	for (int i = 0; i < n; i++)
		if (dnnl_memory_create(&m[i], md[i], dn_eng, buf[i]) != dnnl_success) {
			fprintf(stderr, "dpo: oneDNN could not wrap a matmul operand\n");
			abort();
		}
	exec_or_die(p, m, which, n);
	for (int i = 0; i < n; i++)
		dnnl_memory_destroy(m[i]);
}

typedef struct {
	int ta, tb, M, N, K, lda, ldb, ldc, nt, mc, nc, kc;
	float beta;
	const float *A, *B;
	float *C;
} dn_call;

/* pass 0: builds (or finds) the primitives of every piece, C untouched;
 * returns -1 when one fails. pass 1: runs the pieces. */
static int run_pieces(const dn_call *c, int pass)
{
	static const int rd[2] = {DNNL_ARG_FROM, DNNL_ARG_TO};
	static const int mmarg[3] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST};
	for (int k0 = 0; k0 < c->K; k0 += c->kc)
		for (int m0 = 0; m0 < c->M; m0 += c->mc)
			for (int n0 = 0; n0 < c->N; n0 += c->nc) {
				dn_entry key = {
					.ta = c->ta, .tb = c->tb, .lda = c->lda, .ldb = c->ldb,
					.ldc = c->ldc, .nt = c->nt, .beta = k0 ? 1.0f : c->beta,
					.M = c->M - m0 < c->mc ? c->M - m0 : c->mc,
					.N = c->N - n0 < c->nc ? c->N - n0 : c->nc,
					.K = c->K - k0 < c->kc ? c->K - k0 : c->kc,
				};
				dn_entry *e = entry_get(&key);
				if (!e)
					return -1;
				if (pass == 0)
					continue;
				const float *a = c->ta ? c->A + (size_t)k0 * c->lda + m0
						       : c->A + (size_t)m0 * c->lda + k0;
				const float *b = c->tb ? c->B + (size_t)n0 * c->ldb + k0
						       : c->B + (size_t)k0 * c->ldb + n0;
				if (n0 == 0) /* the A piece serves every n piece */
					run_prim(e->ra, 2, rd,
						 (const dnnl_memory_desc_t *[]){&e->a32, &e->a16},
						 (void *[]){(void *)a, dn_abuf});
				run_prim(e->rb, 2, rd, (const dnnl_memory_desc_t *[]){&e->b32, &e->b16},
					 (void *[]){(void *)b, dn_bbuf});
				run_prim(e->mm, 3, mmarg,
					 (const dnnl_memory_desc_t *[]){&e->a16, &e->b16, &e->c},
					 (void *[]){dn_abuf, dn_bbuf, c->C + (size_t)m0 * c->ldc + n0});
			}
	return 0;
}

static int dn_start(void)
{
	if (dn_state)
		return dn_state;
	dn_state = -1;
	if (dnnl_engine_create(&dn_eng, dnnl_cpu, 0) != dnnl_success)
		return dn_state;
	if (dnnl_stream_create(&dn_strm, dn_eng, dnnl_stream_default_flags) != dnnl_success) {
		dnnl_engine_destroy(dn_eng);
		return dn_state;
	}
	return dn_state = 1;
}

static void grow(void **buf, size_t *cap, size_t bytes)
{
	if (bytes <= *cap)
		return;
	free(*buf);
	*buf = xmalloc(bytes);
	*cap = bytes;
}

int train_gemm_bf16_dnnl(int ta, int tb, int M, int N, int K, const float *A, int lda,
			 const float *B, int ldb, float beta, float *C, int ldc)
{
	int nt = 1, rc = -1;
	dn_call c = {ta, tb, M, N, K, lda, ldb, ldc, 0, 0, 0, 0, beta, A, B, C};
	if (train_bf16_use_dnnl < 0) {
		const char *v = getenv("DPO_DNNL");
		train_bf16_use_dnnl = v && *v && strcmp(v, "0") != 0;
	}
	if (!train_bf16_use_dnnl || !train_bf16_use_simd || !train_cpu_has_avx512bf16() ||
	    M <= 0 || N <= 0 || K <= 0 || (double)M * N * K < MIN_MACS)
		return -1;
#ifdef _OPENMP
	if (omp_in_parallel())
		return -1;
	nt = omp_get_max_threads();
#endif
	if (pthread_mutex_trylock(&dn_lock) != 0)
		return -1;
	if (dn_start() < 0)
		goto out;
	c.nt = nt;
	c.kc = K < KP ? K : KP;
	size_t most = BUDGET / (size_t)c.kc;
	c.mc = (size_t)M < most ? M : (int)most;
	c.nc = (size_t)N < most ? N : (int)most;
	if (run_pieces(&c, 0) < 0) {
		dn_state = -1; /* oneDNN cannot do it here: our tile from now on */
		goto out;
	}
	grow(&dn_abuf, &dn_acap, sizeof(uint16_t) * (size_t)c.mc * c.kc);
	grow(&dn_bbuf, &dn_bcap, sizeof(uint16_t) * (size_t)c.kc * c.nc);
	run_pieces(&c, 1);
	dn_calls++;
	rc = 0;
out:
	pthread_mutex_unlock(&dn_lock);
	return rc;
}

/* trainer_mpi.c: data-parallel training over MPI (see trainer_mpi.h). */
#include "config.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef HAVE_BLAS
#include <cblas.h>
#endif
#ifdef HAVE_MPI
#include <mpi.h>
#endif
#include "train/trainer_mpi.h"
#include "util/progress.h"
#include "util/cli.h"
#include "util/xmalloc.h"

/* Gradient buckets of the sums: each tensor's part of one layer (or a
 * whole tensor outside the layers), at most 1 Mi floats (4 MiB) each. During
 * the backward of a step's last micro-batch, a bucket is posted (MPI_Ireduce
 * to its owner when the optimizer is sharded, else MPI_Iallreduce) as soon
 * as backward is done with its layer, and the
 * posted ones are advanced after each layer (MPI_Testall), so the sums of
 * the last layers travel while the first ones are still computed; before
 * the optimizer step the rest is posted and everything waited for. */
#define BUCKET_FLOATS ((size_t)1 << 20)
/* The most bytes one MPI call moves (its counts are ints). */
#define CHUNK_BYTES ((size_t)1 << 30)

static struct {
	int rank, size;
	int started;           /* MPI_Init was called */
	double allreduce_s;    /* time spent summing gradients */
	size_t np;             /* the gradient arena's floats */
	train_loop_dist dist;
	/* the buckets, in the order every rank posts them */
	struct bucket {
		size_t off, n;
		int stage;     /* posted once backward reached it (train_grad_ready_fn) */
		int root;      /* sharded: the rank that owns it (its sum goes there) */
	} *bk;
	int nbk, nposted;
	int armed;             /* the step's last micro-batch: post during backward */
	float *grads;
	/* the sharded optimizer (ZeRO stage 1, see train_mpi_attach): each
	 * bucket has an owner rank, which alone steps its parameters */
	int sharded;
	size_t *own_off, *own_n; /* this rank's buckets */
	int nown;
	float *params, *m1, *m2;
	double sumsq;          /* the step's squared gradient norm, all shards */
	train_lora *lora;      /* --lora-r: the adapter that trains (train_mpi_share_lora) */
#ifdef HAVE_MPI
	MPI_Request *req;
#endif
} S = {.rank = 0, .size = 1};

int train_mpi_started(void)
{
	return S.started;
}

int train_mpi_rank(void)
{
	return S.rank;
}

int train_mpi_size(void)
{
	return S.size;
}

double train_mpi_allreduce_seconds(void)
{
	return S.allreduce_s;
}

/* Nonzero when a launcher started this process as a rank of a job. */
static int launched(int *size)
{
	const char *v[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
	for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
		const char *s = getenv(v[i]);
		if (s && atoi(s) > 0) {
			*size = atoi(s);
			return 1;
		}
	}
	if (getenv("PMIX_RANK")) {
		*size = 0; /* unknown until MPI says */
		return 1;
	}
	return 0;
}

#ifdef HAVE_MPI
/* Threads per rank: the cores of the host (those this rank may run on)
 * divided by the ranks on it, unless OMP_NUM_THREADS says. */
static void rank_threads(void)
{
	const char *ls = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
	if (getenv("OMP_NUM_THREADS") || S.size < 2)
		return;
	long cores = sysconf(_SC_NPROCESSORS_ONLN), local = ls && atoi(ls) > 0 ? atoi(ls) : S.size;
	long t = cores > 0 ? cores / local : 1;
#ifdef _OPENMP
	if (omp_get_num_procs() < cores) /* bound by the launcher */
		t = omp_get_num_procs();
#endif
	if (t < 1)
		t = 1;
#ifdef _OPENMP
	omp_set_num_threads((int)t);
#endif
#ifdef HAVE_BLAS
	openblas_set_num_threads((int)t);
#endif
}

/* on_exit: a rank that ends well (--help, --version) leaves MPI properly;
 * one that fails does not, so that mpirun ends the whole job (a finalize
 * would wait for ranks that wait for this one). */
static void exit_finalize(int status, void *ud)
{
	(void)ud;
	if (status == 0)
		train_mpi_finalize();
}

int train_mpi_init(int *argc, char ***argv)
{
	int size = 0;
	if (!launched(&size))
		return 0;
	/* Open MPI's nonblocking reduce of big buffers defaults to a chain of
	 * small segments, each needing a progress call: the sharded
	 * optimizer's gradient sums took seconds a step. The binomial tree
	 * sends each bucket whole (unless the user chose). */
	setenv("OMPI_MCA_coll_libnbc_ireduce_algorithm", "2", 0);
	MPI_Init(argc, argv);
	S.started = 1;
	on_exit(exit_finalize, NULL);
	MPI_Comm_rank(MPI_COMM_WORLD, &S.rank);
	MPI_Comm_size(MPI_COMM_WORLD, &S.size);
	rank_threads();
	return S.rank;
}

void train_mpi_finalize(void)
{
	if (S.started)
		MPI_Finalize();
	S.started = 0;
	free(S.bk);
	free(S.req);
	free(S.own_off);
	free(S.own_n);
	S.bk = NULL;
	S.req = NULL;
	S.own_off = S.own_n = NULL;
}

int train_mpi_any(int flag)
{
	int any = flag != 0;
	if (S.size > 1)
		MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD);
	return any;
}

void train_mpi_bcast(void *buf, size_t len)
{
	if (S.size < 2)
		return;
	for (size_t off = 0; off < len; off += CHUNK_BYTES) {
		size_t k = len - off < CHUNK_BYTES ? len - off : CHUNK_BYTES;
		MPI_Bcast((char *)buf + off, (int)k, MPI_BYTE, 0, MPI_COMM_WORLD);
	}
}

/* Sum n doubles over the ranks, in place. */
static void sum_doubles(double *v, size_t n)
{
	for (size_t off = 0; off < n; off += CHUNK_BYTES / sizeof(double)) {
		size_t k = n - off < CHUNK_BYTES / sizeof(double) ? n - off : CHUNK_BYTES / sizeof(double);
		MPI_Allreduce(MPI_IN_PLACE, v + off, (int)k, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
	}
}

/* Gather every rank's n * w doubles (n may differ by rank) in rank order
 * into a new array (caller frees); *total gets the sum of the n. */
static double *allgather_rows(const double *mine, int n, int w, int *total)
{
	int *cnt = xmalloc(sizeof(int) * (size_t)S.size), *dis = xmalloc(sizeof(int) * (size_t)S.size);
	int k = n * w;
	MPI_Allgather(&k, 1, MPI_INT, cnt, 1, MPI_INT, MPI_COMM_WORLD);
	int sum = 0;
	for (int r = 0; r < S.size; r++) {
		dis[r] = sum;
		sum += cnt[r];
	}
	double *all = xmalloc(sizeof(double) * (size_t)sum + 1);
	MPI_Allgatherv(mine, k, MPI_DOUBLE, all, cnt, dis, MPI_DOUBLE, MPI_COMM_WORLD);
	*total = sum / w;
	free(cnt);
	free(dis);
	return all;
}

#else /* no MPI: one process */

int train_mpi_init(int *argc, char ***argv)
{
	int size = 0;
	(void)argc;
	(void)argv;
	if (launched(&size) && size != 1) {
		fprintf(stderr, "dpo-train: started by mpirun with %d ranks, but built without MPI "
				"(configure --with-mpi)\n", size);
		exit(1);
	}
	return 0;
}

void train_mpi_finalize(void)
{
}

int train_mpi_any(int flag)
{
	return flag != 0;
}

void train_mpi_bcast(void *buf, size_t len)
{
	(void)buf;
	(void)len;
}

static void sum_doubles(double *v, size_t n)
{
	(void)v;
	(void)n;
}

static double *allgather_rows(const double *mine, int n, int w, int *total)
{
	double *all = xmalloc(sizeof(double) * (size_t)n * (size_t)w + 1);
	memcpy(all, mine, sizeof(double) * (size_t)n * (size_t)w);
	*total = n;
	return all;
}

#endif

void train_mpi_check_same(const char *text)
{
	if (S.size < 2)
		return;
	uint64_t len = strlen(text);
	train_mpi_bcast(&len, sizeof len);
	char *t0 = xmalloc((size_t)len + 1);
	if (S.rank == 0)
		memcpy(t0, text, (size_t)len);
	train_mpi_bcast(t0, (size_t)len);
	t0[len] = 0;
	int differs = strcmp(t0, text) != 0;
	free(t0);
	if (train_mpi_any(differs) && differs)
		util_die("rank %d: the run's options differ from rank 0's (a config file or environment of "
			 "its own on that host?)", S.rank);
}

train_model *train_mpi_share_model(train_model *m)
{
	if (S.size < 2)
		return m;
	/* rank 0's config length, precision held (a frozen LoRA base or a
	 * --ref-model in bf16 is sent as it is held: no rank widens it to
	 * f32), stored dtype (the RoPE tables follow it) and identity */
	struct {
		uint64_t len;
		int32_t bf16;
		char dtype[12], fp[65];
	} h;
	memset(&h, 0, sizeof h);
	if (S.rank == 0) {
		h.len = strlen(train_model_config_json(m));
		h.bf16 = train_model_precision(m) == TRAIN_PREC_BF16;
		snprintf(h.dtype, sizeof h.dtype, "%s", train_model_dtype(m));
		snprintf(h.fp, sizeof h.fp, "%s", train_model_fingerprint(m));
	}
	train_mpi_bcast(&h, sizeof h);
	char *json = xmalloc((size_t)h.len + 1);
	if (S.rank == 0)
		memcpy(json, train_model_config_json(m), (size_t)h.len);
	train_mpi_bcast(json, (size_t)h.len);
	json[h.len] = 0;
	if (S.rank != 0) {
		char *err = NULL;
		m = train_model_blank(json, (size_t)h.len, h.dtype,
				      h.bf16 ? TRAIN_PREC_BF16 : TRAIN_PREC_F32, h.fp, &err);
		if (!m)
			util_die("rank %d: the model's config from rank 0: %s", S.rank, err);
	}
	free(json);
	void *blk;
	size_t bytes;
	for (int i = 0; (blk = train_model_storage(m, i, &bytes)); i++)
		train_mpi_bcast(blk, bytes);
	return m;
}

train_lora *train_mpi_share_lora(train_lora *lo, const train_config *c, uint64_t seed)
{
	if (S.size < 2)
		return S.lora = lo;
	/* rank 0's settings: r, alpha, dropout, rslora, the targets' length */
	double v[5] = {0, 0, 0, 0, 0};
	const train_lora_cfg *lc = S.rank == 0 ? train_lora_config(lo) : NULL;
	if (lc) {
		v[0] = lc->r;
		v[1] = lc->alpha;
		v[2] = lc->dropout;
		v[3] = lc->rslora;
		v[4] = (double)strlen(lc->targets ? lc->targets : "");
	}
	train_mpi_bcast(v, sizeof v);
	char *targets = xmalloc((size_t)v[4] + 1);
	if (lc)
		memcpy(targets, lc->targets ? lc->targets : "", (size_t)v[4]);
	train_mpi_bcast(targets, (size_t)v[4]);
	targets[(size_t)v[4]] = 0;
	if (S.rank != 0) {
		char *err = NULL;
		train_lora_cfg cfg = {.r = (int)v[0], .alpha = v[1], .dropout = v[2], .rslora = (int)v[3],
				      .targets = targets};
		lo = train_lora_new(c, &cfg, seed, &err);
		if (!lo)
			util_die("rank %d: the LoRA adapter of rank 0: %s", S.rank, err);
	}
	free(targets);
	/* the A of a new adapter are drawn alike everywhere; a resumed one's
	 * weights are rank 0's */
	train_mpi_bcast(train_lora_params(lo), sizeof(float) * train_lora_nparams(lo));
	return S.lora = lo;
}

/* Append len bytes to the growing buffer *b (size *n, capacity *cap). */
static void put(char **b, size_t *n, size_t *cap, const void *p, size_t len)
{
	if (*n + len > *cap) {
		*cap = 2 * (*n + len) + 256;
		*b = xrealloc(*b, *cap);
	}
	memcpy(*b + *n, p, len);
	*n += len;
}

/* The next len bytes of b at *off. */
static void get(const char *b, size_t *off, void *p, size_t len)
{
	memcpy(p, b + *off, len);
	*off += len;
}

/* A new copy of count ints at b + *off. */
static int *get_ids(const char *b, size_t *off, int count)
{
	int *v = xmalloc(sizeof(int) * (size_t)count + 1);
	get(b, off, v, sizeof(int) * (size_t)count);
	return v;
}

void train_mpi_share_pairs(train_pair **pairs, size_t *n)
{
	if (S.size < 2)
		return;
	char *b = NULL;
	size_t len = 0, cap = 0;
	uint64_t hdr[2] = {*n, 0};
	if (S.rank == 0) {
		for (size_t i = 0; i < *n; i++) {
			const train_pair *p = &(*pairs)[i];
			put(&b, &len, &cap, p, sizeof *p); /* counts, refs, ids (pointers unused) */
			put(&b, &len, &cap, p->prompt, sizeof(int) * (size_t)p->np);
			put(&b, &len, &cap, p->chosen, sizeof(int) * (size_t)p->nc);
			put(&b, &len, &cap, p->rejected, sizeof(int) * (size_t)p->nr);
		}
		hdr[1] = len;
	}
	train_mpi_bcast(hdr, sizeof hdr);
	if (S.rank != 0)
		b = xmalloc((size_t)hdr[1] + 1);
	train_mpi_bcast(b, (size_t)hdr[1]);
	if (S.rank != 0) {
		*n = (size_t)hdr[0];
		*pairs = xcalloc(*n ? *n : 1, sizeof(train_pair));
		size_t off = 0;
		for (size_t i = 0; i < *n; i++) {
			train_pair *p = &(*pairs)[i];
			get(b, &off, p, sizeof *p);
			p->prompt = get_ids(b, &off, p->np);
			p->chosen = get_ids(b, &off, p->nc);
			p->rejected = get_ids(b, &off, p->nr);
		}
	}
	free(b);
}

void train_mpi_share_state(train_engine *e, const train_model *m, train_loop *L)
{
	if (S.size < 2)
		return;
	int64_t v[4] = {train_engine_steps(e), L->step, L->epoch, L->pos};
	train_mpi_bcast(v, sizeof v);
	train_engine_set_steps(e, (long)v[0]);
	L->step = (long)v[1];
	L->epoch = (long)v[2];
	L->pos = (long)v[3];
	size_t np = train_engine_nparams(e); /* the model's, or the adapter's */
	(void)m;
	train_mpi_bcast(train_engine_moment1(e), sizeof(float) * np);
	train_mpi_bcast(train_engine_moment2(e), sizeof(float) * np);
}

void train_mpi_share_refs(train_pair *pairs, size_t n)
{
	if (S.size < 2)
		return;
	double *v = xmalloc(sizeof(double) * 2 * n + 1);
	for (size_t i = 0; i < n; i++) {
		v[2 * i] = pairs[i].ref_c;
		v[2 * i + 1] = pairs[i].ref_r;
	}
	train_mpi_bcast(v, sizeof(double) * 2 * n);
	for (size_t i = 0; i < n; i++) {
		pairs[i].ref_c = v[2 * i];
		pairs[i].ref_r = v[2 * i + 1];
	}
	free(v);
}

void train_mpi_ref_split(const char *need, size_t n, char *mine)
{
	size_t nmiss = 0, j = 0;
	for (size_t i = 0; i < n; i++)
		nmiss += need[i] != 0;
	size_t lo = nmiss * (size_t)S.rank / (size_t)S.size;
	size_t hi = nmiss * ((size_t)S.rank + 1) / (size_t)S.size;
	for (size_t i = 0; i < n; i++) {
		mine[i] = need[i] && j >= lo && j < hi;
		j += need[i] != 0;
	}
}

void train_mpi_ref_gather(train_pair *pairs, size_t n, const char *need, const char *mine,
			  long *cnt)
{
	if (S.size < 2)
		return;
	/* each value comes from one rank and is zero on the others: the sum is
	 * exact */
	double *v = xcalloc(4 * n + 1, sizeof(double));
	for (size_t i = 0; i < n; i++)
		if (mine[i] || (!need[i] && S.rank == 0)) {
			v[4 * i] = pairs[i].ref_c;
			v[4 * i + 1] = pairs[i].ref_r;
			v[4 * i + 2] = need[i] ? (double)cnt[2 * i] : 0;
			v[4 * i + 3] = need[i] ? (double)cnt[2 * i + 1] : 0;
		}
	sum_doubles(v, 4 * n);
	for (size_t i = 0; i < n; i++) {
		pairs[i].ref_c = v[4 * i];
		pairs[i].ref_r = v[4 * i + 1];
		if (need[i]) {
			cnt[2 * i] = (long)v[4 * i + 2];
			cnt[2 * i + 1] = (long)v[4 * i + 3];
		}
	}
	free(v);
}

/* ---- the loop's hooks ---- */

/* train_loss_fn: gather the micro-batch's log-probs and lengths from every
 * rank (in rank order, which is the micro-batch's order), compute the loss
 * of the whole micro-batch and keep this rank's derivatives. */
static int mpi_loss(void *ud, const train_loss_cfg *cfg, train_loss_batch *b)
{
	(void)ud;
	int n = b->B, N = 0, rank_off = 0, rc;
	double *mine = xmalloc(sizeof(double) * 6 * (size_t)n + 1);
	for (int i = 0; i < n; i++) {
		double *r = mine + 6 * i;
		r[0] = b->pc[i];
		r[1] = b->pr[i];
		r[2] = b->rc ? b->rc[i] : 0;
		r[3] = b->rr ? b->rr[i] : 0;
		r[4] = b->nc ? (double)b->nc[i] : 0;
		r[5] = b->nr ? (double)b->nr[i] : 0;
	}
	double *all = allgather_rows(mine, n, 6, &N);
	/* logits/chosen and logits/rejected: this rank's means weighted by its
	 * tokens, summed over the ranks */
	double lg[4] = {0, 0, 0, 0};
	for (int i = 0; i < n; i++) {
		lg[2] += b->nc ? (double)b->nc[i] : 0;
		lg[3] += b->nr ? (double)b->nr[i] : 0;
	}
	lg[0] = b->logits_chosen * lg[2];
	lg[1] = b->logits_rejected * lg[3];
#ifdef HAVE_MPI
	MPI_Allreduce(MPI_IN_PLACE, lg, 4, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
#endif
	/* where this rank's pairs start: the ranks before it, in slice order */
	int *ns = xmalloc(sizeof(int) * (size_t)S.size);
#ifdef HAVE_MPI
	MPI_Allgather(&n, 1, MPI_INT, ns, 1, MPI_INT, MPI_COMM_WORLD);
#else
	ns[0] = n;
#endif
	for (int r = 0; r < S.rank; r++)
		rank_off += ns[r];
	double *v = xmalloc(sizeof(double) * 6 * (size_t)N + 1);
	long *len = xmalloc(sizeof(long) * 2 * (size_t)N + 1);
	for (int i = 0; i < N; i++)
		for (int k = 0; k < 4; k++)
			v[(size_t)k * N + i] = all[6 * i + k];
	for (int i = 0; i < N; i++) {
		len[i] = (long)all[6 * i + 4];
		len[N + i] = (long)all[6 * i + 5];
	}
	train_loss_batch g = {.B = N, .pc = v, .pr = v + N, .rc = v + 2 * N, .rr = v + 3 * N,
			      .nc = len, .nr = len + N, .dpc = v + 4 * N, .dpr = v + 5 * N};
	rc = train_loss_compute(cfg, &g);
	if (!rc) {
		double *dpc = b->dpc, *dpr = b->dpr;
		const double *pc = b->pc, *pr = b->pr, *rcv = b->rc, *rr = b->rr;
		const long *nc = b->nc, *nr = b->nr;
		*b = g;
		b->B = n;
		b->pc = pc;
		b->pr = pr;
		b->rc = rcv;
		b->rr = rr;
		b->nc = nc;
		b->nr = nr;
		b->dpc = dpc;
		b->dpr = dpr;
		b->losses = NULL;
		b->logits_chosen = lg[2] > 0 ? lg[0] / lg[2] : 0;
		b->logits_rejected = lg[3] > 0 ? lg[1] / lg[3] : 0;
		for (int i = 0; i < n; i++) {
			if (dpc)
				dpc[i] = g.dpc[rank_off + i];
			if (dpr)
				dpr[i] = g.dpr[rank_off + i];
		}
	}
	free(mine);
	free(all);
	free(ns);
	free(v);
	free(len);
	return rc ? -1 : 0;
}

#ifdef HAVE_MPI
/* Post the buckets not yet posted while their stage is at least stage. */
static void post_until(int stage)
{
	while (S.nposted < S.nbk && S.bk[S.nposted].stage >= stage) {
		const struct bucket *b = &S.bk[S.nposted];
		float *g = S.grads + b->off;
		if (S.sharded) /* the sum to its owner only */
			MPI_Ireduce(b->root == S.rank ? MPI_IN_PLACE : g, b->root == S.rank ? g : NULL,
				    (int)b->n, MPI_FLOAT, MPI_SUM, b->root, MPI_COMM_WORLD,
				    &S.req[S.nposted]);
		else
			MPI_Iallreduce(MPI_IN_PLACE, g, (int)b->n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
				       &S.req[S.nposted]);
		S.nposted++;
	}
}
#endif

/* train_grad_ready_fn: in a step's last micro-batch, post what backward
 * has finished and move the posted sums along. */
static void mpi_grad_ready(void *ud, int stage)
{
	(void)ud;
	if (!S.armed)
		return;
#ifdef HAVE_MPI
	double t0 = util_now();
	int done;
	post_until(stage);
	if (S.nposted)
		MPI_Testall(S.nposted, S.req, &done, MPI_STATUSES_IGNORE);
	S.allreduce_s += util_now() - t0;
#else
	(void)stage;
#endif
}

/* The rows' padded length of the engine's batch of pairs mb[0..k) (as its
 * build_batch pads them: the longest prompt + completion, at least 1). */
static int padded_len(const train_pair *const *mb, int k)
{
	int T = 1;
	for (int i = 0; i < k; i++) {
		int lc = mb[i]->np + mb[i]->nc, lr = mb[i]->np + mb[i]->nr;
		T = lc > T ? lc : T;
		T = lr > T ? lr : T;
	}
	return T;
}

/* train_loop_dist's begin: arm the posting during the last micro-batch;
 * an adapter's dropout masks drawn as for the whole micro-batch. */
static void mpi_begin(void *ud, int last, const train_pair *const *mb, int k, int lo, int hi)
{
	(void)ud;
	S.armed = last;
	if (S.lora && hi > lo)
		train_lora_set_rows(S.lora, hi - lo, padded_len(mb + lo, hi - lo), lo, k,
				    padded_len(mb, k));
}

/* train_loop_dist's sync: the rest of the buckets posted, all waited for;
 * the step's counts summed. */
static int mpi_sync(void *ud, train_engine *e, double *counts, int nc)
{
	(void)ud;
	(void)e;
	double t0 = util_now();
#ifdef HAVE_MPI
	post_until(-2);
	MPI_Waitall(S.nposted, S.req, MPI_STATUSES_IGNORE);
	/* with the counts, the squares of this rank's buckets' summed
	 * gradients (sharded): the whole gradient's squared norm */
	double *v = xmalloc(sizeof(double) * ((size_t)nc + 1));
	memcpy(v, counts, sizeof(double) * (size_t)nc);
	v[nc] = 0;
	for (int i = 0; i < S.nown; i++)
		v[nc] += train_sumsq(S.grads + S.own_off[i], S.own_n[i]);
	MPI_Allreduce(MPI_IN_PLACE, v, nc + 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
	memcpy(counts, v, sizeof(double) * (size_t)nc);
	S.sumsq = v[nc];
	free(v);
#else
	(void)counts;
	(void)nc;
#endif
	S.nposted = 0;
	S.armed = 0;
	S.allreduce_s += util_now() - t0;
	return 0;
}

/* Add the buckets of grads[off, off+n) at stage. */
static void add_buckets(size_t off, size_t n, int stage)
{
	for (size_t k = 0; k < n; k += BUCKET_FLOATS) {
		S.bk = xreallocarray(S.bk, (size_t)S.nbk + 1, sizeof *S.bk);
		S.bk[S.nbk++] = (struct bucket){off + k, n - k < BUCKET_FLOATS ? n - k : BUCKET_FLOATS, stage, 0};
	}
}

/* The buckets of model m's gradient arena g, in posting order: the final
 * norm and an untied lm_head, then each layer from the last, then the
 * embeddings. The tensors' sizes come from the arena's layout (in its
 * order); should they not add up, all of it is summed at the end. */
static void plan_buckets(const train_model *m, float *g)
{
	const train_config *c = train_model_config(m);
	train_weights w;
	size_t total = train_weights_layout(c, g, &w), L = (size_t)c->n_layer;
	enum { EMB = -1, HEAD = -2, LAYER = -3 };
	/* the arena's tensors in layout order, with where they belong */
	const float *t[] = {w.wte, w.wpe, w.ln1w, w.ln1b, w.wqkv, w.bqkv, w.qnorm, w.knorm, w.wo, w.bo,
			    w.ln2w, w.ln2b, w.wfc, w.bfc, w.wproj, w.bproj, w.lnfw, w.lnfb,
			    c->tied ? NULL : w.lm_head};
	const int kind[] = {EMB, EMB, LAYER, LAYER, LAYER, LAYER, LAYER, LAYER, LAYER, LAYER,
			    LAYER, LAYER, LAYER, LAYER, LAYER, LAYER, HEAD, HEAD, HEAD};
	enum { NT = sizeof t / sizeof *t };
	size_t off[NT], len[NT], sum = 0;
	int ok = total == S.np && L > 0;
	for (int i = 0; i < NT; i++) {
		off[i] = t[i] ? (size_t)(t[i] - g) : 0;
		len[i] = 0;
	}
	for (int i = 0; i < NT; i++) {
		if (!t[i])
			continue;
		size_t next = total;
		for (int j = i + 1; j < NT; j++)
			if (t[j]) {
				next = off[j];
				break;
			}
		len[i] = next - off[i];
		sum += len[i];
		if (kind[i] == LAYER && len[i] % L)
			ok = 0;
	}
	S.nbk = 0;
	if (!ok || sum != total) {
		add_buckets(0, S.np, -2);
		return;
	}
	for (int i = 0; i < NT; i++)
		if (t[i] && kind[i] == HEAD)
			add_buckets(off[i], len[i], (int)L);
	for (int l = (int)L - 1; l >= 0; l--)
		for (int i = 0; i < NT; i++)
			if (t[i] && kind[i] == LAYER)
				add_buckets(off[i] + (size_t)l * (len[i] / L), len[i] / L, l);
	for (int i = 0; i < NT; i++)
		if (t[i] && kind[i] == EMB)
			add_buckets(off[i], len[i], -1);
}

/* train_loop_dist's evaluate: each rank scores a contiguous block of the
 * pairs, the log-probs are gathered and the loss computed over them all
 * (as train_evaluate). */
static int mpi_evaluate(void *ud, train_engine *e, const train_loss_cfg *loss, const train_pair *pairs,
			size_t n, long batch_size, train_loss_batch *out)
{
	(void)ud;
	size_t lo = n * (size_t)S.rank / (size_t)S.size, hi = n * ((size_t)S.rank + 1) / (size_t)S.size;
	int k = (int)(hi - lo), bs = (int)batch_size, rc = 0, N = 0;
	double lg[4] = {0, 0, 0, 0}; /* logit sums and tokens, chosen and rejected */
	double *v = xmalloc(sizeof(double) * 4 * (size_t)k + 1);
	double *lc = xmalloc(sizeof(double) * (size_t)bs), *lr = xmalloc(sizeof(double) * (size_t)bs);
	long *nc = xmalloc(sizeof(long) * (size_t)bs), *nr = xmalloc(sizeof(long) * (size_t)bs);
	const train_pair **b = xcalloc((size_t)bs, sizeof(*b));
	for (int i = 0; i < k && !rc; i += bs) {
		int m = k - i < bs ? k - i : bs;
		for (int j = 0; j < m; j++)
			b[j] = &pairs[lo + (size_t)i + (size_t)j];
		rc = train_engine_logps(e, b, m, lc, lr, nc, nr);
		const double *ls = train_engine_logit_sums(e, NULL);
		for (int j = 0; !rc && j < m; j++) {
			lg[0] += ls[j];
			lg[1] += ls[m + j];
			lg[2] += (double)nc[j];
			lg[3] += (double)nr[j];
		}
		for (int j = 0; !rc && j < m; j++) {
			double *r = v + 4 * (i + j);
			r[0] = lc[j];
			r[1] = lr[j];
			r[2] = (double)nc[j];
			r[3] = (double)nr[j];
		}
	}
	if (train_mpi_any(rc != 0)) {
		rc = rc ? rc : TRAIN_EARG; /* the message is on the rank that failed */
		goto out;
	}
	double *all = allgather_rows(v, k, 4, &N);
#ifdef HAVE_MPI
	MPI_Allreduce(MPI_IN_PLACE, lg, 4, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
#endif
	double *d = xmalloc(sizeof(double) * 4 * (size_t)N + 1);
	long *len = xmalloc(sizeof(long) * 2 * (size_t)N + 1);
	for (int i = 0; i < N; i++) {
		d[i] = all[4 * i];
		d[N + i] = all[4 * i + 1];
		len[i] = (long)all[4 * i + 2];
		len[N + i] = (long)all[4 * i + 3];
		d[2 * N + i] = pairs[i].ref_c;
		d[3 * N + i] = pairs[i].ref_r;
	}
	train_loss_batch lb = {.B = N, .pc = d, .pr = d + N, .rc = d + 2 * N, .rr = d + 3 * N,
			       .nc = len, .nr = len + N};
	if (train_loss_compute(loss, &lb) == 0) {
		lb.logits_chosen = lg[2] > 0 ? lg[0] / lg[2] : 0;
		lb.logits_rejected = lg[3] > 0 ? lg[1] / lg[3] : 0;
		lb.pc = lb.pr = lb.rc = lb.rr = NULL;
		lb.nc = lb.nr = NULL;
		*out = lb;
	} else {
		rc = 1;
	}
	free(all);
	free(d);
	free(len);
out:
	free(v);
	free(lc);
	free(lr);
	free(nc);
	free(nr);
	free(b);
	return rc;
}

/* train_loop_dist's step, sharded: AdamW on this rank's buckets (their
 * gradients summed here by the reduces), each bucket's parameters
 * broadcast by its owner as soon as they are updated; the gradients of the
 * others' buckets zeroed. */
static int mpi_step(void *ud, train_engine *e, const train_adamw *opt, double lr, double max_grad_norm,
		    double *grad_norm)
{
	(void)ud;
	double norm = sqrt(S.sumsq);
	float coef;
	if (grad_norm)
		*grad_norm = norm;
	/* the norm is the same on every rank: all fail or none */
	if (train_engine_step_start(e, max_grad_norm, norm, &coef))
		return -1;
#ifdef HAVE_MPI
	double ta = 0;
	for (int i = 0; i < S.nbk; i++) {
		const struct bucket *b = &S.bk[i];
		if (b->root == S.rank)
			train_engine_step_range(e, opt, lr, coef, b->off, b->n);
		else
			memset(S.grads + b->off, 0, sizeof(float) * b->n);
		double t0 = util_now();
		int done;
		MPI_Ibcast(S.params + b->off, (int)b->n, MPI_FLOAT, b->root, MPI_COMM_WORLD, &S.req[i]);
		MPI_Testall(i + 1, S.req, &done, MPI_STATUSES_IGNORE);
		ta += util_now() - t0;
	}
	double t0 = util_now();
	MPI_Waitall(S.nbk, S.req, MPI_STATUSES_IGNORE);
	S.allreduce_s += ta + util_now() - t0;
#else
	(void)opt;
	(void)lr;
#endif
	return 0;
}

/* train_loop_dist's gather, sharded: AdamW's moments of every bucket from
 * its owner (rank 0 writes the checkpoint). */
static void mpi_gather(void *ud, train_engine *e)
{
	(void)ud;
	(void)e;
#ifdef HAVE_MPI
	for (int i = 0; i < S.nbk; i++) {
		const struct bucket *b = &S.bk[i];
		if (b->root == 0)
			continue;
		MPI_Bcast(S.m1 + b->off, (int)b->n, MPI_FLOAT, b->root, MPI_COMM_WORLD);
		MPI_Bcast(S.m2 + b->off, (int)b->n, MPI_FLOAT, b->root, MPI_COMM_WORLD);
	}
#endif
}

/* Shard the optimizer (full fine-tuning; not an adapter, small): each
 * bucket, in posting order, goes to the rank with the fewest parameters so
 * far, so that the ranks share the sums both in all and while backward
 * runs. */
static void plan_shards(train_engine *e, train_model *m)
{
	S.sharded = !S.lora && train_model_params(m);
	if (!S.sharded)
		return;
	size_t *load = xcalloc((size_t)S.size, sizeof(size_t));
	S.own_off = xmalloc(sizeof(size_t) * (size_t)S.nbk);
	S.own_n = xmalloc(sizeof(size_t) * (size_t)S.nbk);
	S.nown = 0;
	for (int i = 0; i < S.nbk; i++) {
		struct bucket *b = &S.bk[i];
		b->root = 0;
		for (int r = 1; r < S.size; r++)
			if (load[r] < load[b->root])
				b->root = r;
		load[b->root] += b->n;
		if (b->root == S.rank) {
			S.own_off[S.nown] = b->off;
			S.own_n[S.nown++] = b->n;
		}
	}
	free(load);
	S.params = train_model_params(m);
	S.m1 = train_engine_moment1(e);
	S.m2 = train_engine_moment2(e);
}

void train_mpi_attach(train_engine *e, train_model *m, train_loop *L)
{
	if (S.size < 2)
		return;
	S.np = train_engine_nparams(e);
	S.grads = train_engine_grads(e);
	S.nbk = 0;
	if (S.lora) /* the adapter's gradients (small): summed after backward */
		add_buckets(0, S.np, -2);
	else
		plan_buckets(m, S.grads);
	plan_shards(e, m);
#ifdef HAVE_MPI
	S.req = xmalloc(sizeof(MPI_Request) * (size_t)S.nbk);
#endif
	S.dist = (train_loop_dist){.rank = S.rank, .size = S.size, .begin = mpi_begin, .sync = mpi_sync,
				   .evaluate = mpi_evaluate, .step = S.sharded ? mpi_step : NULL,
				   .gather = S.sharded ? mpi_gather : NULL};
	train_engine_set_loss_fn(e, mpi_loss, NULL);
	train_engine_set_grad_ready(e, mpi_grad_ready, NULL);
	L->dist = &S.dist;
}

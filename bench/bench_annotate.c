/* bench_annotate: next-item latency of dpo-annotate's session model on a
 * store with about a million pairs, against the same measurement on a
 * 1k-pair store in the same run (the baseline).
 *
 *   bench_annotate [--prompts N] [--k K] [--labels N] [--dir DIR]
 *
 * The big store has N prompts (default 100000) with K completions each
 * (default 5: 10 pairs per prompt, 1,000,000 pairs), built through the store
 * API in one transaction. "Next-item latency" is what an annotator waits for
 * after a key: the label committed (its own transaction) plus the next item
 * fetched (prompt, completions, the comparisons of its prompt for the overlap
 * recheck). Measured over --labels labels (default 1000) in sequential and
 * in random order; the time to open a session (reading the queue) is shown
 * too. Goal: <= 5 ms per item on the big store. */
#include "config.h"
#include "annotate/session.h"
#include "store/store.h"
#include "util/progress.h"
#include "util/xmalloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void die(store *st, const char *what)
{
	fprintf(stderr, "bench_annotate: %s: %s\n", what, st ? store_errmsg(st) : "");
	exit(1);
}

static void build(const char *path, long nprompts, int k)
{
	store *st = store_new();
	if (store_open(st, path) != STORE_OK)
		die(st, path);
	store_generator g = {.kind = "import", .name = "bench"};
	int64_t gid;
	double t0 = util_now();
	if (store_begin(st) || store_generator_id(st, &g, &gid))
		die(st, "setup");
	char text[256];
	for (long i = 0; i < nprompts; i++) {
		int64_t pid;
		snprintf(text, sizeof text,
			 "Benchmark prompt %ld: explain, in a few sentences, why the sky looks blue at noon.", i);
		if (store_prompt_add(st, text, NULL, 0, "bench", NULL, &pid, NULL))
			die(st, "prompt");
		for (int j = 0; j < k; j++) {
			snprintf(text, sizeof text,
				 "Completion %d of prompt %ld: sunlight scatters off air molecules, and blue light "
				 "scatters the most, so the sky looks blue.", j, i);
			if (store_completion_add(st, pid, text, gid, NULL, NULL))
				die(st, "completion");
		}
	}
	if (store_commit(st))
		die(st, "commit");
	fprintf(stderr, "bench_annotate: built %s: %ld prompts x %d completions = %ld pairs in %.1f s\n", path,
		nprompts, k, nprompts * k * (k - 1) / 2, util_now() - t0);
	store_free(st);
}

static int dcmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

typedef struct dist {
	double mean, p50, p99, max; /* ms */
} dist;

typedef struct result {
	double open_s;        /* session open: queue read */
	dist total, commit, fetch;
} result;

static dist summarize(double *v, long n)
{
	dist d;
	double sum = 0;
	qsort(v, (size_t)n, sizeof *v, dcmp);
	for (long i = 0; i < n; i++)
		sum += v[i];
	d.mean = sum / (double)n;
	d.p50 = v[n / 2];
	d.p99 = v[(long)((double)(n - 1) * 0.99)];
	d.max = v[n - 1];
	return d;
}

/* Label `labels` items in a fresh session of annotator `who`; the latency of
 * each step is label (commit) + fetch of the next item. */
static result measure(const char *path, const char *who, int order, long labels)
{
	store *st = store_new();
	if (store_open(st, path) != STORE_OK)
		die(st, path);
	ann_options o = {.annotator = who, .order = order, .overlap = 1, .seed = 7, .retries = -1};
	double t0 = util_now();
	ann_session *s = ann_session_new(st, &o);
	if (ann_session_load(s) != ANN_OK) {
		fprintf(stderr, "bench_annotate: %s\n", ann_session_errmsg(s));
		exit(1);
	}
	if (!ann_session_current(s)) {
		fprintf(stderr, "bench_annotate: empty queue\n");
		exit(1);
	}
	result r = {.open_s = util_now() - t0};
	double *lat = xcalloc((size_t)labels, sizeof *lat), *com = xcalloc((size_t)labels, sizeof *com),
	       *fet = xcalloc((size_t)labels, sizeof *fet);
	long n = 0;
	for (; n < labels; n++) {
		double a = util_now();
		if (ann_session_label(s, n % 2 ? ANN_LEFT : ANN_RIGHT, 1000) != ANN_OK) {
			fprintf(stderr, "bench_annotate: label: %s\n", ann_session_errmsg(s));
			exit(1);
		}
		double b = util_now();
		const ann_item *it = ann_session_current(s);
		double c = util_now();
		lat[n] = (c - a) * 1000.0;
		com[n] = (b - a) * 1000.0;
		fet[n] = (c - b) * 1000.0;
		if (!it)
			break;
	}
	if (n < labels)
		n++;
	r.total = summarize(lat, n);
	r.commit = summarize(com, n);
	r.fetch = summarize(fet, n);
	free(lat);
	free(com);
	free(fet);
	ann_session_free(s);
	store_free(st);
	return r;
}

static void rm_db(const char *path)
{
	char *p;
	unlink(path);
	p = xasprintf("%s-wal", path);
	unlink(p);
	free(p);
	p = xasprintf("%s-shm", path);
	unlink(p);
	free(p);
}

int main(int argc, char **argv)
{
	long nprompts = 100000, labels = 1000;
	int k = 5;
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--prompts"))
			nprompts = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--k"))
			k = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--labels"))
			labels = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--dir"))
			dir = argv[i + 1];
		else {
			fprintf(stderr, "usage: bench_annotate [--prompts N] [--k K] [--labels N] [--dir DIR]\n");
			return 2;
		}
	}
	if (nprompts < 1 || k < 2 || labels < 1) {
		fprintf(stderr, "bench_annotate: bad sizes\n");
		return 2;
	}
	char *big = xasprintf("%s/bench_annotate_big_%d.db", dir, (int)getpid());
	char *small = xasprintf("%s/bench_annotate_small_%d.db", dir, (int)getpid());
	long small_prompts = 1000 / (k * (k - 1) / 2);
	if (small_prompts < 1)
		small_prompts = 1;
	build(small, small_prompts, k);
	build(big, nprompts, k);
	long big_pairs = nprompts * k * (k - 1) / 2, small_pairs = small_prompts * k * (k - 1) / 2;
	long small_labels = labels < small_pairs / 2 ? labels : small_pairs / 2;

	static const char *const names[2] = {"sequential", "random"};
	int fail = 0;
	printf("bench_annotate: next-item latency in ms = label committed (own transaction) + next item fetched\n");
	printf("%-10s %-8s %8s %7s | %-27s | %-27s | %-27s\n", "order", "store", "pairs", "open_s",
	       "total mean/p50/p99", "commit mean/p50/p99", "fetch mean/p50/p99");
	for (int ord = 0; ord < 2; ord++) {
		char who[32];
		snprintf(who, sizeof who, "bench-%s", names[ord]);
		result rr[2];
		rr[0] = measure(small, who, ord, small_labels);
		rr[1] = measure(big, who, ord, labels);
		for (int w = 0; w < 2; w++) {
			const result *r = &rr[w];
			printf("%-10s %-8s %8ld %7.3f | %8.3f %8.3f %8.3f | %8.3f %8.3f %8.3f | %8.3f %8.3f %8.3f\n",
			       names[ord], w ? "big" : "baseline", w ? big_pairs : small_pairs, r->open_s,
			       r->total.mean, r->total.p50, r->total.p99, r->commit.mean, r->commit.p50,
			       r->commit.p99, r->fetch.mean, r->fetch.p50, r->fetch.p99);
		}
		printf("%-10s ratio big/baseline: total mean %.2f, fetch mean %.2f; max total %.1f ms; "
		       "goal mean <= 5 ms on %ld pairs: %s\n",
		       names[ord], rr[1].total.mean / rr[0].total.mean, rr[1].fetch.mean / rr[0].fetch.mean,
		       rr[1].total.max, big_pairs, rr[1].total.mean <= 5.0 ? "met" : "NOT met");
		if (rr[1].total.mean > 5.0)
			fail = 1;
	}
	rm_db(big);
	rm_db(small);
	free(big);
	free(small);
	return fail;
}

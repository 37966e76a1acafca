/* bench_tokenizer.c: encode throughput (MB/s of English text, one core) of
 * the real GPT-2 tokenizer, with the pre-token cache (the normal path) and
 * without it (the baseline: the same BPE on every pre-token), measured in
 * the same run on the same text; prints both and their ratio, and checks
 * that both give the same ids.
 *
 *   bench_tokenizer [TOKENIZER_DIR [TEXT_FILE [MEGABYTES]]]
 *
 * Defaults: $DPO_SHARED/data/models/gpt2-tokenizer-hf and
 * $DPO_SHARED/data/tinystories-sample/tinystories_sample.txt, repeated to
 * 4 MB. Exits 0 with a SKIP line when the files are absent. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/tokenizer.h"
#include "util/buf.h"
#include "util/file.h"
#include "util/progress.h"
#include "util/xmalloc.h"

static double run(train_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n)
{
	double t0 = util_now();
	if (train_tokenizer_encode(t, text, len, ids, n)) {
		fprintf(stderr, "bench_tokenizer: %s\n", train_tokenizer_errmsg(t));
		exit(1);
	}
	return util_now() - t0;
}

int main(int argc, char **argv)
{
	const char *sh = getenv("DPO_SHARED");
	char *dir = argc > 1 ? xstrdup(argv[1])
			     : xasprintf("%s/data/models/gpt2-tokenizer-hf", sh ? sh : "../shared");
	char *file = argc > 2 ? xstrdup(argv[2])
			      : xasprintf("%s/data/tinystories-sample/tinystories_sample.txt",
					  sh ? sh : "../shared");
	double mb = argc > 3 ? atof(argv[3]) : 4.0;
	util_buf sample = UTIL_BUF_INIT;
	if (!(sample.data = util_read_file(file, &sample.len))) {
		printf("SKIP bench_tokenizer: no text file %s\n", file);
		free(dir);
		free(file);
		return 0;
	}
	sample.cap = sample.len + 1;
	char *err = NULL;
	train_tokenizer *t = train_tokenizer_load(dir, &err);
	if (!t) {
		printf("SKIP bench_tokenizer: %s\n", err);
		free(err);
		free(dir);
		free(file);
		util_buf_free(&sample);
		return 0;
	}
	util_buf text = UTIL_BUF_INIT;
	size_t want = (size_t)(mb * 1e6), copies = 0;
	while (sample.len && text.len < want) {
		util_buf_add(&text, sample.data, sample.len);
		util_buf_addc(&text, '\n');
		copies++;
	}
	int32_t *a = NULL, *b = NULL;
	size_t na = 0, nb = 0;
	/* the cached path starts cold: the cache fills during this run */
	train_tokenizer_set_cache(t, 1);
	double tc = run(t, text.data, text.len, &a, &na);
	train_tokenizer_set_cache(t, 0);
	double tb = run(t, text.data, text.len, &b, &nb);
	/* the same text one line per call, as prompts and completions are
	 * encoded (cache on, warm from the first run) */
	train_tokenizer_set_cache(t, 1);
	size_t nl = 0;
	double t0 = util_now();
	for (const char *p = text.data, *end = text.data + text.len; p < end;) {
		const char *e = memchr(p, '\n', (size_t)(end - p));
		size_t l = e ? (size_t)(e - p) + 1 : (size_t)(end - p);
		int32_t *ids = NULL;
		size_t n = 0;
		run(t, p, l, &ids, &n);
		nl += n;
		free(ids);
		p += l;
	}
	double tl = util_now() - t0;
	double mbs_c = text.len / 1e6 / tc, mbs_b = text.len / 1e6 / tb;
	printf("bench_tokenizer: %s, %.2f MB of English text (%s x %zu), one thread\n", dir,
	       text.len / 1e6, file, copies);
	printf("encode with pre-token cache: %8.2f MB/s  (%zu tokens, %.3f s)\n", mbs_c, na, tc);
	printf("baseline, cache disabled:    %8.2f MB/s  (%zu tokens, %.3f s)\n", mbs_b, nb, tb);
	printf("ratio cache/baseline: %.2f\n", mbs_c / mbs_b);
	printf("line by line, cache on:      %8.2f MB/s  (%zu tokens, %.3f s)\n",
	       text.len / 1e6 / tl, nl, tl);
	int same = na == nb && !memcmp(a, b, na * sizeof *a);
	printf("ids identical: %s; goal >= 1 MB/s per core: %s\n", same ? "yes" : "NO",
	       mbs_c >= 1.0 ? "met" : "NOT MET");
	free(a);
	free(b);
	util_buf_free(&text);
	util_buf_free(&sample);
	train_tokenizer_free(t);
	free(dir);
	free(file);
	return same ? 0 : 1;
}

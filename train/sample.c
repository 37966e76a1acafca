/* sample.c: sampling filters and batched generation. */
#include "config.h"
#include "train/sample.h"
#include "util/rand.h"
#include "util/xmalloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void train_sampling_default(train_sampling *s)
{
	s->greedy = 0;
	s->temperature = 1.0;
	s->top_k = 0;
	s->top_p = 1.0;
	s->min_p = 0.0;
}

const char *train_sampling_check(const train_sampling *s)
{
	if (s->greedy)
		return NULL;
	if (!(s->temperature > 0) || !isfinite(s->temperature))
		return "temperature must be > 0 (use --greedy for argmax decoding)";
	if (s->top_k < 0)
		return "top-k must be >= 0";
	if (!(s->top_p > 0 && s->top_p <= 1))
		return "top-p must be in (0, 1]";
	if (!(s->min_p >= 0 && s->min_p < 1))
		return "min-p must be in [0, 1)";
	return NULL;
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void train_rng_seed(train_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = util_splitmix64(&seed);
}

uint64_t train_rng_next(train_rng *r)
{
	uint64_t *s = r->s;
	uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return res;
}

double train_rng_uniform(train_rng *r)
{
	return (train_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

typedef struct cand {
	float logit;
	int id;
} cand;

/* Sorts c [n] by descending logit, ties by ascending id, given in
 * ascending id order, through tmp [n]: a stable LSD radix sort on the
 * floats' bits, 3 digits of 11 bits, all three counted in one pass, a
 * digit skipped where every key has the same one. Why not qsort: over
 * GPT-2's 50257 tokens it took 12-15 ms a draw, about three batch-4 decode
 * steps, and top-k or top-p sampling sorts at every token; this takes a
 * fraction of a millisecond. The logits are finite or +inf (the caller
 * leaves out NaN and -inf); -0 sorts as +0, so that equal floats are ties
 * as they compare. */
static void sort_desc(cand *c, cand *tmp, int n)
{
	enum { BITS = 11, BINS = 1 << BITS };
	uint32_t count[3][BINS] = {{0}}; /* 24 KiB */
	for (int i = 0; i < n; i++) { /* the key rides in the logit's place */
		uint32_t u = 0;
		if (c[i].logit != 0.0f)
			memcpy(&u, &c[i].logit, sizeof u);
		/* ascending order of the floats as unsigned, then reversed */
		u = ~(u & 0x80000000u ? ~u : u | 0x80000000u);
		memcpy(&c[i].logit, &u, sizeof u);
		for (int d = 0; d < 3; d++)
			count[d][(u >> (BITS * d)) & (BINS - 1)]++;
	}
	cand *src = c, *dst = tmp;
	for (int d = 0; d < 3; d++) {
		uint32_t *cnt = count[d], sum = 0;
		int same = 0;
		for (int b = 0; b < BINS; b++) {
			same |= cnt[b] == (uint32_t)n;
			uint32_t k = cnt[b];
			cnt[b] = sum; /* where the digit's run starts */
			sum += k;
		}
		if (same)
			continue;
		for (int i = 0; i < n; i++) {
			uint32_t k;
			memcpy(&k, &src[i].logit, sizeof k);
			dst[cnt[(k >> (BITS * d)) & (BINS - 1)]++] = src[i];
		}
		cand *t = src;
		src = dst;
		dst = t;
	}
	if (src != c)
		memcpy(c, src, sizeof(cand) * (size_t)n);
	for (int i = 0; i < n; i++) { /* the keys back to the floats */
		uint32_t u;
		memcpy(&u, &c[i].logit, sizeof u);
		u = ~u;
		u = u & 0x80000000u ? u & 0x7fffffffu : ~u;
		memcpy(&c[i].logit, &u, sizeof u);
	}
}

/* The first index of the greatest logit, NaNs never chosen (0 when
 * logits[0] is NaN), as `if (logits[v] > logits[best]) best = v` over v
 * would give. Why not that loop: each step waits on the load of
 * logits[best] it just chose (about 7 cycles a token, 0.1 ms over 50257
 * tokens at every draw); here 16 running maxima are independent, then one
 * pass finds the first index holding their maximum (equal floats compare
 * equal, -0 and +0 too, as in the loop). */
static int argmax(const float *logits, int V)
{
	if (V < 1 || isnan(logits[0]))
		return 0;
	float m[16];
	for (int j = 0; j < 16; j++)
		m[j] = logits[0];
	int v = 0;
	for (; v + 16 <= V; v += 16)
		for (int j = 0; j < 16; j++)
			m[j] = logits[v + j] > m[j] ? logits[v + j] : m[j];
	for (; v < V; v++)
		m[0] = logits[v] > m[0] ? logits[v] : m[0];
	for (int j = 1; j < 16; j++)
		m[0] = m[j] > m[0] ? m[j] : m[0];
	for (v = 0; v < V; v++)
		if (logits[v] == m[0])
			break;
	return v;
}

/* train_sample_token with caller-owned scratch: c [2 V] candidates (the
 * second half for sorting), p [V] probabilities (reused across calls, so
 * that a draw does not map and fault in fresh pages for them each time:
 * that cost more than the draw). */
static int sample_token(const float *logits, int V, const train_sampling *s, train_rng *r,
			cand *c, double *p)
{
	int best = argmax(logits, V);
	if (s->greedy || !isfinite(logits[best]))
		return best;
	double invt = 1.0 / s->temperature;
	double mx = logits[best] * invt;
	int sorted = s->top_k > 0 || s->top_p < 1.0;
	int n = 0;
	for (int v = 0; v < V; v++) {
		double z = logits[v] * invt;
		/* with sorting ahead, drop tokens whose probability relative to
		 * the best is below 1e-12: their total mass is negligible */
		if (!(z > -INFINITY) || (sorted && z - mx < -27.6))
			continue;
		c[n].logit = (float)z;
		c[n].id = v;
		n++;
	}
	if (sorted) {
		sort_desc(c, c + V, n);
		if (s->top_k > 0 && s->top_k < n)
			n = s->top_k;
	}
	double total = 0.0;
	for (int i = 0; i < n; i++) {
		p[i] = exp((double)c[i].logit - mx);
		total += p[i];
	}
	if (s->top_p < 1.0) {
		double cum = 0.0;
		int keep = n;
		for (int i = 0; i < n; i++) {
			cum += p[i] / total;
			if (cum >= s->top_p) {
				keep = i + 1;
				break;
			}
		}
		n = keep;
	}
	if (s->min_p > 0.0) {
		/* relative to the most probable token: p = 1 at mx */
		int k = 0;
		for (int i = 0; i < n; i++)
			if (p[i] >= s->min_p) {
				p[k] = p[i];
				c[k] = c[i];
				k++;
			}
		n = k;
	}
	total = 0.0;
	for (int i = 0; i < n; i++)
		total += p[i];
	int tok = best;
	double u = train_rng_uniform(r) * total, acc = 0.0;
	for (int i = 0; i < n; i++) {
		acc += p[i];
		tok = c[i].id;
		if (u < acc)
			break;
	}
	return tok;
}

int train_sample_token(const float *logits, int V, const train_sampling *s, train_rng *r)
{
	if (s->greedy)
		return sample_token(logits, V, s, r, NULL, NULL);
	cand *c = xmalloc(sizeof(cand) * 2 * (V > 0 ? V : 1));
	double *p = xmalloc(sizeof(double) * (V > 0 ? V : 1));
	int tok = sample_token(logits, V, s, r, c, p);
	free(c);
	free(p);
	return tok;
}

const char *train_finish_name(train_finish f)
{
	switch (f) {
	case TRAIN_FINISH_EOS:
		return "eos";
	case TRAIN_FINISH_STOP:
		return "stop";
	default:
		return "length";
	}
}

int train_generate(const train_model *m, int nb, const int32_t *const *prompts, const int *plen,
		   const uint64_t *seeds, const train_gen_opts *o, train_gen_result *out,
		   char **err)
{
	const train_config *c = train_model_config(m);
	int V = c->vocab, rc = 0;
	int batch = o->batch > 0 && o->batch < nb ? o->batch : nb;
	memset(out, 0, sizeof *out * nb);
	for (int i = 0; i < nb; i++) {
		if (plen[i] < 1 || plen[i] + 1 > c->max_pos) {
			*err = xasprintf("prompt %d: %d tokens (expected 1 to %d)", i, plen[i],
					 c->max_pos - 1);
			return TRAIN_EARG;
		}
		out[i].ids = xmalloc(sizeof(int32_t) * (o->max_new > 0 ? o->max_new : 1));
		out[i].end_id = -1;
	}
	float *logits = xmalloc(sizeof(float) * V * batch);
	int *rows = xmalloc(sizeof(int) * batch), *next = xmalloc(sizeof(int) * batch);
	int *slot_of = xmalloc(sizeof(int) * batch); /* prompt index of each cache row */
	int *drawn = xmalloc(sizeof(int) * batch);   /* the id drawn for each active row */
	/* each thread's draw scratch (none for greedy decoding) */
	int nthr = 1;
#ifdef _OPENMP
	nthr = omp_get_max_threads();
#endif
	size_t nscr = o->sampling.greedy ? 1 : (size_t)nthr * V;
	cand *scr_c = xmalloc(sizeof(cand) * 2 * nscr);
	double *scr_p = xmalloc(sizeof(double) * nscr);
	train_rng *rng = xmalloc(sizeof(train_rng) * nb);
	for (int i = 0; i < nb; i++)
		train_rng_seed(&rng[i], seeds ? seeds[i] : (uint64_t)i);
	for (int b0 = 0; b0 < nb; b0 += batch) {
		int nrow = nb - b0 < batch ? nb - b0 : batch, cap = 0;
		for (int i = 0; i < nrow; i++) {
			int need = plen[b0 + i] + o->max_new;
			if (need > cap)
				cap = need;
		}
		if (cap > c->max_pos)
			cap = c->max_pos;
		train_kv *kv = train_kv_new(m, nrow, cap);
		int active = 0;
		for (int i = 0; i < nrow; i++) {
			int p = b0 + i, same = -1;
			/* a prompt already prefilled in this batch (the K
			 * completions of one prompt): its cache row and logits
			 * copied, the same bits without reading every weight
			 * again */
			for (int e = 0; e < i && same < 0; e++)
				if (plen[b0 + e] == plen[p] &&
				    !memcmp(prompts[b0 + e], prompts[p], sizeof(int32_t) * plen[p]))
					same = e;
			if (same >= 0) {
				train_kv_copy(kv, i, same);
				memcpy(logits + (size_t)i * V, logits + (size_t)same * V, sizeof(float) * V);
			} else if (train_model_prefill(m, kv, i, prompts[p], plen[p],
						       logits + (size_t)i * V)) {
				*err = xasprintf("prompt %d: token id out of range (vocabulary %d)", p, V);
				rc = TRAIN_EARG;
				train_kv_free(kv);
				goto out;
			}
			rows[active] = i;
			slot_of[i] = p;
			active++;
		}
		/* logits of active row j are at logits + j*V */
		while (active > 0) {
			int nact = 0;
			/* the rows' draws first, in parallel: each row has its
			 * own generator, so the ids do not depend on the
			 * threads (a draw over a large vocabulary costs about
			 * as much as a batch-1 decode step) */
#pragma omp parallel for schedule(static, 1) if (active > 1 && !o->sampling.greedy)
			for (int j = 0; j < active; j++) {
				size_t t = 0;
#ifdef _OPENMP
				t = (size_t)omp_get_thread_num();
#endif
				t = o->sampling.greedy ? 0 : t * V;
				drawn[j] = sample_token(logits + (size_t)j * V, V, &o->sampling,
							&rng[slot_of[rows[j]]], scr_c + 2 * t, scr_p + t);
			}
			for (int j = 0; j < active; j++) {
				int row = rows[j], p = slot_of[row];
				train_gen_result *res = &out[p];
				int tok = drawn[j];
				int done = 0;
				for (int e = 0; e < o->n_eos; e++)
					if (tok == o->eos[e]) {
						res->finish = TRAIN_FINISH_EOS;
						res->end_id = tok;
						done = 1;
					}
				if (!done) {
					res->ids[res->n++] = tok;
					if (o->stop && o->stop(o->ctx, p, res->ids, res->n)) {
						res->finish = TRAIN_FINISH_STOP;
						done = 1;
					} else if (res->n >= o->max_new ||
						   train_kv_len(kv, row) + 1 > cap) {
						res->finish = TRAIN_FINISH_LENGTH;
						done = 1;
					}
				}
				if (!done) {
					rows[nact] = row;
					next[nact] = tok;
					nact++;
				}
			}
			active = nact;
			if (active && train_model_decode(m, kv, rows, next, active, logits)) {
				*err = xstrdup("decoding failed");
				rc = TRAIN_EARG;
				train_kv_free(kv);
				goto out;
			}
		}
		train_kv_free(kv);
	}
out:
	if (rc)
		for (int i = 0; i < nb; i++) {
			free(out[i].ids);
			out[i].ids = NULL;
			out[i].n = 0;
		}
	free(logits);
	free(rows);
	free(next);
	free(slot_of);
	free(drawn);
	free(scr_c);
	free(scr_p);
	free(rng);
	return rc;
}

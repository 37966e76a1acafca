/* test_decode_bf16.c: the single-region bf16 decode step (train/decode_bf16.c)
 * against the layer-by-layer path it replaces, on randomly initialised
 * models big enough for a team of 2 threads (GPT-2: layer norm, GELU,
 * biases, learned positions; Llama: GQA, RoPE, SwiGLU; Mistral with 3 KV
 * heads, an odd number of (row, KV head) pairs at batch 1; Qwen3: q/k
 * norms; Llama with one KV head, fewer than the threads):
 *   - each step's logits bit for bit equal to the layer-by-layer path's,
 *     at batch 4 with rows at different positions and in a shuffled cache
 *     order, with the AVX-512 (where the CPU has it) and the plain kernels;
 *   - a row decoded alone gives the same logits as in the batch of 4;
 *   - the same with each way of sharing out the products
 *     (train_decode_bf16_claim: static shares, taking the others' units
 *     when done, others' units first);
 *   - train_matmul_bf16_range's columns equal train_matmul_bf16_forward's,
 *     and so do a range's units run in reverse order, whose runs cover each
 *     column of the range once. */
#include "config.h"
#include "tests/tap.h"
#include "train/decode_bf16.h"
#include "train/layers.h"
#include "train/matvec_bf16.h"
#include "train/model.h"
#include "util/xmalloc.h"

#include <stdlib.h>
#include <string.h>

#define NB 4
#define STEPS 5

static const char *const configs[] = {
	"{\"model_type\":\"gpt2\",\"vocab_size\":700,\"n_embd\":256,\"n_layer\":2,\"n_head\":4,"
	"\"n_positions\":64}",
	"{\"model_type\":\"llama\",\"vocab_size\":700,\"hidden_size\":256,\"intermediate_size\":600,"
	"\"num_hidden_layers\":2,\"num_attention_heads\":8,\"num_key_value_heads\":2,"
	"\"max_position_embeddings\":64}",
	/* 3 KV heads: an odd number of attention pairs at batch 1 */
	"{\"model_type\":\"mistral\",\"vocab_size\":700,\"hidden_size\":384,\"intermediate_size\":"
	"500,\"num_hidden_layers\":2,\"num_attention_heads\":6,\"num_key_value_heads\":3,"
	"\"max_position_embeddings\":64}",
	"{\"model_type\":\"qwen3\",\"vocab_size\":700,\"hidden_size\":256,\"intermediate_size\":600,"
	"\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,\"head_dim\":"
	"64,\"max_position_embeddings\":64}",
	/* one KV head, fewer than the threads */
	"{\"model_type\":\"llama\",\"vocab_size\":700,\"hidden_size\":256,\"intermediate_size\":600,"
	"\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":1,"
	"\"max_position_embeddings\":64}",
};

/* Prefill cache row r of kv with prompt i (3 + 2i tokens). */
static void prefill(const train_model *m, train_kv *kv, int r, int i, float *logits)
{
	int ids[16];
	for (int k = 0; k < 3 + 2 * i; k++)
		ids[k] = (k * 37 + i * 11 + 5) % train_model_config(m)->vocab;
	train_kv_reset(kv, r);
	train_model_prefill(m, kv, r, ids, 3 + 2 * i, logits);
}

/* STEPS decode steps of the 4 rows (cache order rows[]) through both paths
 * and row 1 alone: returns the number of logits that differ. */
static long compare_paths(const train_model *m)
{
	const train_config *c = train_model_config(m);
	size_t V = (size_t)c->vocab;
	train_kv *a = train_kv_new(m, NB, 32), *b = train_kv_new(m, NB, 32), *one = train_kv_new(m, 1, 32);
	float *la = xmalloc(sizeof(float) * NB * V), *lb = xmalloc(sizeof(float) * NB * V);
	float *l1 = xmalloc(sizeof(float) * V);
	int rows[NB] = {2, 0, 3, 1}, ids[NB];
	long bad = 0;
	for (int i = 0; i < NB; i++) {
		prefill(m, a, i, i, la);
		prefill(m, b, i, i, lb);
		ids[i] = 17 * i + 3;
	}
	prefill(m, one, 0, 1, l1); /* cache row 1's prompt, alone */
	for (int s = 0; s < STEPS; s++) {
		int r0 = 0, id1 = 0;
		train_decode_bf16_off = 0;
		train_model_decode(m, a, rows, ids, NB, la);
		train_decode_bf16_off = 1;
		train_model_decode(m, b, rows, ids, NB, lb);
		train_decode_bf16_off = 0;
		for (int i = 0; i < NB; i++)
			if (rows[i] == 1)
				id1 = ids[i], r0 = i;
		train_model_decode(m, one, (int[]){0}, &id1, 1, l1);
		bad += memcmp(la, lb, sizeof(float) * NB * V) != 0;
		bad += memcmp(l1, la + (size_t)r0 * V, sizeof(float) * V) != 0;
		for (int i = 0; i < NB; i++)
			ids[i] = (ids[i] * 31 + 7 + s) % c->vocab;
	}
	train_kv_free(a);
	train_kv_free(b);
	train_kv_free(one);
	free(la);
	free(lb);
	free(l1);
	return bad;
}

/* Shapes for check_range: short rows; rows long enough to run in column
 * blocks (C > 2048 in matvec_bf16.c), with a last block that ends in 16
 * columns and a masked 5, a range of more than 16 groups of 4 weight rows,
 * and batches with a remainder of rows after the blocks of 4; ranges of
 * several units, blocked and not. */
static const struct {
	int N, C, OC;
} range_shapes[] = {{3, 200, 77}, {4, 2085, 77}, {5, 3072, 150}, {8, 2400, 70}, {1, 3072, 40},
		    {4, 3072, 300}, {2, 768, 530}};

static void check_range(void)
{
	for (size_t s = 0; s < sizeof range_shapes / sizeof range_shapes[0]; s++) {
		int N = range_shapes[s].N, C = range_shapes[s].C, OC = range_shapes[s].OC;
		uint16_t *w = xmalloc(sizeof(uint16_t) * C * OC);
		float *x = xmalloc(sizeof(float) * N * C), *bias = xmalloc(sizeof(float) * OC);
		float *full = xmalloc(sizeof(float) * N * OC), *part = xmalloc(sizeof(float) * N * OC);
		srand(3);
		for (int i = 0; i < C * OC; i++)
			w[i] = train_f32_to_bf16((float)rand() / RAND_MAX - 0.5f);
		for (int i = 0; i < N * C; i++)
			x[i] = (float)rand() / RAND_MAX - 0.5f;
		for (int i = 0; i < OC; i++)
			bias[i] = 0.01f * i;
		for (int k = 0; k < 2; k++) {
			train_bf16_kernel = k ? TRAIN_BF16_KERNEL_PLAIN : TRAIN_BF16_KERNEL_AUTO;
			train_matmul_bf16_forward(full, x, w, bias, N, C, OC);
			memset(part, 0, sizeof(float) * N * OC);
			int cut[] = {0, 5, 6, OC / 2, OC};
			for (int j = 0; j < 4; j++)
				train_matmul_bf16_range(part, x, w, bias, N, C, OC, cut[j], cut[j + 1]);
			TAP_OK(!memcmp(full, part, sizeof(float) * N * OC),
			       "%s kernel, %d x %d x %d: column ranges equal the whole product",
			       k ? "plain" : "auto", N, C, OC);
			/* the same ranges in units, each range's backwards */
			memset(part, 0, sizeof(float) * N * OC);
			int *seen = xcalloc((size_t)OC, sizeof(int)), units = 0;
			for (int j = 0; j < 4; j++) {
				int n = train_matmul_bf16_range_units(cut[j], cut[j + 1]);
				units += n;
				for (int u = n - 1; u >= 0; u--) {
					train_matmul_bf16_range_unit(part, x, w, bias, N, C, OC, cut[j],
								     cut[j + 1], u);
					int start[4], len[4];
					int r = train_matmul_bf16_unit_runs(cut[j], cut[j + 1], u, start, len);
					for (int q = 0; q < r; q++)
						for (int o = start[q]; o < start[q] + len[q]; o++)
							seen[o] += o >= cut[j] && o < cut[j + 1] ? 1 : 100;
				}
			}
			int once = 1;
			for (int o = 0; o < OC; o++)
				once &= seen[o] == 1;
			free(seen);
			TAP_OK(!memcmp(full, part, sizeof(float) * N * OC) && once,
			       "%s kernel, %d x %d x %d: %d units, run backwards, equal the whole product "
			       "and their runs cover each column once", k ? "plain" : "auto", N, C, OC,
			       units);
		}
		train_bf16_kernel = TRAIN_BF16_KERNEL_AUTO;
		free(w);
		free(x);
		free(bias);
		free(full);
		free(part);
	}
}

int main(void)
{
	train_set_threads(2);
	check_range();
	TAP_OK(train_matmul_bf16_range_units(7, 7) == 0 && train_matmul_bf16_range_units(7, 10) == 1 &&
	       train_matmul_bf16_range_units(0, 64) == 1 && train_matmul_bf16_range_units(0, 65) == 2 &&
	       train_matmul_bf16_range_units(0, 68) == 2,
	       "units: none in an empty range; 16 groups of 4 columns a unit, and one for a tail");
	for (size_t k = 0; k < sizeof configs / sizeof configs[0]; k++) {
		char *err = NULL;
		train_model *m = train_model_init(configs[k], strlen(configs[k]), 5, &err);
		if (!m) {
			TAP_OK(0, "init: %s", err);
			free(err);
			continue;
		}
		train_model_to_bf16(m);
		const train_config *c = train_model_config(m);
		for (int plain = 0; plain < 2; plain++) {
			train_bf16_kernel = plain ? TRAIN_BF16_KERNEL_PLAIN : TRAIN_BF16_KERNEL_AUTO;
			TAP_OK(train_decode_bf16_usable(c, NB), "%s, %s kernel: the single-region step is used",
			       c->model_type, plain ? "plain" : "auto");
			static const char *const claims[] = {"taking the others' units when done",
							     "static shares", "others' units first"};
			for (int cl = 0; cl < 3; cl++) {
				train_decode_bf16_claim = cl;
				long bad = compare_paths(m);
				TAP_OK(bad == 0, "%s, %s kernel, %s: logits equal the layer-by-layer "
				       "path's and a row decoded alone (%ld of %d comparisons differ)",
				       c->model_type, plain ? "plain" : "auto", claims[cl], bad, 2 * STEPS);
			}
			train_decode_bf16_claim = TRAIN_DECODE_CLAIM_STEAL;
		}
		train_bf16_kernel = TRAIN_BF16_KERNEL_DOT;
		TAP_OK(!train_decode_bf16_usable(c, NB), "%s: not used with the vdpbf16ps kernel",
		       c->model_type);
		train_bf16_kernel = TRAIN_BF16_KERNEL_AUTO;
		train_model_free(m);
	}
	return tap_done();
}

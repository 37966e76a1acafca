/* test_model_llama2c.c: import the llama2.c checkpoint stories260K and
 * decode greedily from BOS; the text must be the known story opening. The
 * token pieces are read from llama2.c's tok512.bin (score, length, bytes). */
#include "config.h"
#include "tests/tap.h"
#include "train/llama2c.h"
#include "train/model.h"
#include "train/sample.h"
#include "util/buf.h"
#include "util/xmalloc.h"

#include <stdint.h>

static char **read_pieces(const char *path, int n)
{
	FILE *f = fopen(path, "rb");
	int32_t maxlen;
	if (!f || fread(&maxlen, 4, 1, f) != 1) {
		if (f)
			fclose(f);
		return NULL;
	}
	char **p = xcalloc(n, sizeof *p);
	for (int i = 0; i < n; i++) {
		float score;
		int32_t len;
		if (fread(&score, 4, 1, f) != 1 || fread(&len, 4, 1, f) != 1 || len < 0 || len > 64)
			break;
		p[i] = xcalloc(1, (size_t)len + 1);
		if (fread(p[i], 1, (size_t)len, f) != (size_t)len)
			break;
	}
	fclose(f);
	return p;
}

int main(void)
{
	const char *shared = tap_shared_dir();
	if (!shared)
		tap_skip_all("$DPO_SHARED (../shared) is absent: no llama2.c checkpoint");
	char *ck = xasprintf("%s/data/models/stories260K/stories260K.bin", shared);
	char *tk = xasprintf("%s/data/models/stories260K/tok512.bin", shared);
	char *err = NULL;
	train_model *m = train_llama2c_import(ck, &err);
	if (!TAP_OK(m, "import stories260K")) {
		tap_diag("%s", err);
		return tap_done();
	}
	const train_config *c = train_model_config(m);
	TAP_OK(c->n_layer == 5 && c->n_head == 8 && c->n_kv_head == 4 && c->vocab == 512 &&
		       c->tied,
	       "shape from the header (5 layers, 8 heads, 4 kv heads, 512 tokens, shared classifier)");
	int bos = 1;
	const int *pp = &bos;
	int one = 1;
	uint64_t seed = 0;
	train_gen_opts o = {.max_new = 40};
	train_sampling_default(&o.sampling);
	o.sampling.greedy = 1;
	train_gen_result r;
	TAP_OK(train_generate(m, 1, &pp, &one, &seed, &o, &r, &err) == 0, "greedy from BOS");
	char **pieces = read_pieces(tk, 512);
	util_buf b = UTIL_BUF_INIT;
	for (int i = 0; pieces && i < r.n; i++) {
		const char *p = pieces[r.ids[i]] ? pieces[r.ids[i]] : "";
		unsigned byte;
		if (i == 0 && p[0] == ' ')
			p++; /* after BOS the leading space is dropped */
		if (sscanf(p, "<0x%02X>", &byte) == 1)
			util_buf_addc(&b, (char)byte);
		else
			util_buf_adds(&b, p);
	}
	const char *want = "Once upon a time, there was a little girl named Lily";
	if (!TAP_OK(!strncmp(util_buf_str(&b), want, strlen(want)), "text starts with \"%s\"", want))
		tap_diag("got: %s", util_buf_str(&b));
	else
		tap_diag("%s", util_buf_str(&b));
	for (int i = 0; pieces && i < 512; i++)
		free(pieces[i]);
	free(pieces);
	util_buf_free(&b);
	free(r.ids);
	err = NULL;
	train_model *bad = train_llama2c_import(tk, &err);
	TAP_OK(!bad && err && strstr(err, "tok512.bin"), "a non-checkpoint is an error: %s",
	       err ? err : "");
	free(err);
	train_model_free(m);
	free(ck);
	free(tk);
	return tap_done();
}

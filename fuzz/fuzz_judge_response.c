/* fuzz_judge_response.c: libFuzzer target for what dpo-judge reads back from
 * a judge: both providers' response JSON, error bodies, Retry-After values,
 * the verdict extraction (quoted material, the last line) and the answer
 * with its explanation; and the request shaping table (models.json). The
 * first byte picks the provider, whether a boundary nonce is used and
 * whether a JSON verdict was asked for; the rest is the response body.
 * The raw bytes also go through the scores and rankings of --mode rating
 * and rank (judge_modes.h). */
#include "config.h"
#include "judge/judge.h"
#include "judge/judge_modes.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	judge_provider p = (data[0] & 1) ? JUDGE_PROVIDER_ANTHROPIC : JUDGE_PROVIDER_OPENAI;
	const char *nonce = (data[0] & 2) ? "0123456789abcdef" : NULL;
	const char *body = (const char *)data + 1;
	size_t n = size - 1;
	char err[256];
	judge_reply r;

	if (judge_reply_parse(p, body, n, &r, err, sizeof err) == JUDGE_OK) {
		int v = judge_verdict_find(r.text, strlen(r.text), nonce);
		if (v && v != 'A' && v != 'B' && v != 'C')
			abort();
		v = judge_verdict_json(r.text, strlen(r.text));
		if (v && v != 'A' && v != 'B' && v != 'C')
			abort();
		free(r.text);
	}
	/* the whole answer: verdict, usage, explanation */
	judge_answer a;
	judge_answer_parse(p, body, n, nonce, (data[0] & 4) != 0, &a, err, sizeof err);
	if (a.verdict && a.verdict != 'A' && a.verdict != 'B' && a.verdict != 'C')
		abort();
	if (a.explanation && strlen(a.explanation) > JUDGE_EXPLANATION_MAX)
		abort();
	free(a.rationale);
	free(a.explanation);
	/* the bytes as a model table */
	judge_models *m = judge_models_parse(body, n, "fuzz", NULL, err, sizeof err);
	judge_model_shape sh;
	judge_models_lookup(m, "gpt-5-mini", &sh);
	judge_models_free(m);
	/* the raw bytes as an answer text, a verdict word, an error body */
	int v = judge_verdict_find(body, n, nonce);
	if (v && v != 'A' && v != 'B' && v != 'C')
		abort();
	judge_verdict_word(body, n);
	/* scores (1-10, an aspect on 1-5) and rankings of 2..26 answers */
	v = judge_rating_find(body, n, nonce, NULL, 1, 10);
	if (v < 0 || v > 10)
		abort();
	v = judge_rating_find(body, n, nonce, "honesty", 1, 5);
	if (v < 0 || v > 5)
		abort();
	int lv[JUDGE_RANK_MAX], nk = 2 + (data[0] >> 3) % (JUDGE_RANK_MAX - 1);
	if (judge_ranking_find(body, n, nonce, nk, lv)) {
		for (int i = 0; i < nk; i++)
			if (lv[i] < 0 || lv[i] >= nk)
				abort();
		free(judge_ranking_text(lv, nk));
	}
	free(judge_error_message(body, n));
	/* a Retry-After header value (NUL-terminated copy) */
	char hv[64];
	size_t k = n < sizeof hv - 1 ? n : sizeof hv - 1;
	memcpy(hv, body, k);
	hv[k] = '\0';
	judge_parse_retry_after(hv, 1700000000);
	return 0;
}

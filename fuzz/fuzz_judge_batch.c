/* fuzz_judge_batch.c: libFuzzer target for what dpo-judge --batch reads
 * back from a provider: a results line (OpenAI output/error files,
 * Anthropic results) and a batch object. The first byte picks the
 * provider; the rest is the line. A parsed answer also goes through
 * judge_answer_parse, as dpo-judge does with it. */
#include "config.h"
#include "judge/judge_batch.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	judge_provider p = (data[0] & 1) ? JUDGE_PROVIDER_ANTHROPIC : JUDGE_PROVIDER_OPENAI;
	const char *line = (const char *)data + 1;
	size_t n = size - 1;
	char err[256];
	judge_batch_result r;
	if (judge_batch_result_parse(p, line, n, &r, err, sizeof err) == JUDGE_OK) {
		if (!r.custom_id || (r.ok && !r.body) || (!r.ok && !r.error))
			abort();
		if (r.ok) {
			judge_answer a;
			judge_answer_parse(p, r.body, strlen(r.body), NULL, (data[0] & 2) != 0, &a, err, sizeof err);
			free(a.rationale);
			free(a.explanation);
		}
		judge_batch_result_free(&r);
	}
	judge_batch_info bi;
	if (judge_batch_info_parse(p, line, n, &bi, err, sizeof err) == JUDGE_OK) {
		if (!bi.id[0] || bi.total < 0 || bi.succeeded < 0 || bi.failed < 0)
			abort();
		judge_batch_info_free(&bi);
	}
	return 0;
}

/* fuzz_import.c: libFuzzer target over the import parser layer
 * (store/import.h). The first byte picks the format (auto and every named
 * one); the rest is JSON Lines, parsed line by line with one parser so that
 * auto-detection carries over from line to line. Every record that parses is
 * checked for the invariants store_add_record relies on (labels, ratings,
 * binary feedback and annotator too: the formats of import_judgments.c). */
#include "store/import.h"
#include "util/utf8.h"
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_record(const store_record *r)
{
	assert(!!r->prompt_text != !!r->messages);
	if (r->prompt_text)
		assert(util_utf8_valid(r->prompt_text, strlen(r->prompt_text), NULL));
	for (size_t i = 0; i < r->nmessages; i++) {
		const char *role = r->messages[i].role;
		assert(!strcmp(role, "system") || !strcmp(role, "user") || !strcmp(role, "assistant"));
		assert(util_utf8_valid(r->messages[i].content, strlen(r->messages[i].content), NULL));
	}
	for (size_t i = 0; i < r->ncompletions; i++) {
		assert(r->completions[i].text[0]);
		assert(util_utf8_valid(r->completions[i].text, strlen(r->completions[i].text), NULL));
	}
	for (size_t i = 0; i < r->nlabels; i++) {
		const store_rec_label *l = &r->labels[i];
		assert(l->a >= 0 && l->b >= 0 && (size_t)l->a < r->ncompletions && (size_t)l->b < r->ncompletions);
		assert(strcmp(r->completions[l->a].text, r->completions[l->b].text));
		assert(!strcmp(l->verdict, "a") || !strcmp(l->verdict, "b") || !strcmp(l->verdict, "tie") ||
		       !strcmp(l->verdict, "both_bad"));
		assert(!l->has_confidence || (l->confidence >= 0 && l->confidence <= 1));
	}
	for (size_t i = 0; i < r->nratings; i++) {
		const store_rec_rating *x = &r->ratings[i];
		assert(x->completion >= 0 && (size_t)x->completion < r->ncompletions);
		assert(x->aspect && util_utf8_valid(x->aspect, strlen(x->aspect), NULL));
		assert(x->scale_min < x->scale_max && x->value >= x->scale_min && x->value <= x->scale_max);
	}
	for (size_t i = 0; i < r->nfeedback; i++)
		assert(r->feedback[i].completion >= 0 && (size_t)r->feedback[i].completion < r->ncompletions &&
		       (r->feedback[i].good == 0 || r->feedback[i].good == 1));
	if (r->annotator)
		assert(r->annotator[0] && util_utf8_valid(r->annotator, strlen(r->annotator), NULL));
}

/* How many formats there are (auto included). */
static int nformats(void)
{
	int n = 0;
	while (strcmp(store_import_format_name((store_import_format)n), "?"))
		n++;
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	store_import_format fmt = (store_import_format)(data[0] % nformats());
	const char *s = (const char *)data + 1, *end = (const char *)data + size;
	store_import_parser *p = store_import_parser_new(fmt);
	int first = 1;
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t len = (size_t)((nl ? nl : end) - s);
		store_record rec;
		store_import_format det;
		if (first) {
			store_import_detect(s, len, &det);
			first = 0;
		}
		if (store_import_parse(p, s, len, &rec) == STORE_OK)
			check_record(&rec);
		else
			assert(store_import_parser_errmsg(p)[0]);
		s += len + 1;
	}
	store_import_parser_free(p);
	return 0;
}

/* fuzz_annotate_text: dpo-annotate's text layer on arbitrary bytes: UTF-8
 * decoding, wrapping and the word diff. Input: one byte of width, then two
 * texts separated by the first NUL. Checks the layout invariants and aborts
 * when one breaks: every line fits its width (or is one character), lines
 * are in order and never overlap, and the diff marks only word characters. */
#include "config.h"
#include "annotate/text.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_wrap(const ann_text *t, int width)
{
	ann_line *lines = NULL;
	size_t cap = 0;
	size_t n = ann_wrap(t->w, t->n, width, &lines, &cap);
	size_t prev_end = 0;
	if (n == 0)
		abort();
	for (size_t i = 0; i < n; i++) {
		const ann_line *l = &lines[i];
		if (l->start > l->end || l->end > t->n || l->start < prev_end)
			abort();
		if ((int)ann_wcswidth(t->w + l->start, l->end - l->start) > width && l->end - l->start > 1)
			abort();
		for (size_t k = l->start; k < l->end; k++)
			if (t->w[k] == L'\n')
				abort();
		prev_end = l->end;
	}
	free(lines);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int width = 1 + data[0] % 120;
	const uint8_t *rest = data + 1;
	size_t n = size - 1;
	const uint8_t *nul = memchr(rest, 0, n);
	size_t na = nul ? (size_t)(nul - rest) : n;
	char *a = malloc(na + 1);
	memcpy(a, rest, na);
	a[na] = 0;
	size_t nb = nul ? n - na - 1 : 0;
	char *b = malloc(nb + 1);
	if (nb)
		memcpy(b, nul + 1, nb);
	b[nb] = 0;

	ann_text ta = {0}, tb = {0};
	ann_text_add_utf8(&ta, a, 0);
	ann_text_add_utf8(&tb, b, ANN_MARK_HEAD);
	for (size_t i = 0; i < ta.n; i++)
		if (ta.w[i] < 0x20 && ta.w[i] != L'\n')
			abort(); /* control characters never reach the screen */
	check_wrap(&ta, width);
	check_wrap(&tb, width);
	ann_worddiff(&ta, &tb, (size_t)(data[0] & 1 ? 64 : 0));
	for (size_t i = 0; i < ta.n; i++)
		if ((ta.mark[i] & ANN_MARK_DIFF) && (ta.w[i] == L' ' || ta.w[i] == L'\n'))
			abort();
	for (size_t i = 0; i < tb.n; i++)
		if (!(tb.mark[i] & ANN_MARK_HEAD))
			abort(); /* the diff keeps the other attributes */
	ann_text_free(&ta);
	ann_text_free(&tb);
	free(a);
	free(b);
	return 0;
}

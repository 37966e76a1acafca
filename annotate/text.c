/* text.c: decoding, widths, wrapping and word diff for dpo-annotate (see text.h). */
#include "config.h"
#include "annotate/text.h"
#include "util/utf8.h"
#include "util/xmalloc.h"
#include <stdint.h>
#include <string.h>
#include <utf8proc.h>

static void text_push(ann_text *t, wchar_t c, unsigned char mark)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 256;
		t->w = xreallocarray(t->w, t->cap, sizeof *t->w);
		t->mark = xrealloc(t->mark, t->cap);
	}
	t->w[t->n] = c;
	t->mark[t->n] = mark;
	t->n++;
}

void ann_text_add_utf8(ann_text *t, const char *str, unsigned char mark)
{
	if (!str)
		return;
	for (size_t at = 0, n = strlen(str); at < n;) {
		uint32_t u;
		int len = util_utf8_decode(str + at, n - at, &u);
		long cp = len > 0 ? (long)u : -1; /* each bad byte becomes one U+FFFD */
		at += len > 0 ? (size_t)len : 1;
		if (cp == '\t') {
			for (int i = 0; i < 4; i++)
				text_push(t, L' ', mark);
			continue;
		}
		if (cp == '\r')
			continue;
		if (cp < 0 || (cp < 0x20 && cp != '\n') || (cp >= 0x7f && cp < 0xa0))
			cp = 0xfffd;
		else if (cp != '\n' && utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_CN)
			cp = 0xfffd; /* unassigned: terminals disagree on its width */
		text_push(t, (wchar_t)cp, mark);
	}
}

void ann_text_reset(ann_text *t)
{
	t->n = 0;
}

void ann_text_free(ann_text *t)
{
	free(t->w);
	free(t->mark);
	memset(t, 0, sizeof *t);
}

int ann_wcwidth(wchar_t c)
{
	if (c == L'\n')
		return 0;
	int w = utf8proc_charwidth((utf8proc_int32_t)c);
	if (w < 0)
		return 1;
	return w > 2 ? 2 : w;
}

size_t ann_wcswidth(const wchar_t *w, size_t n)
{
	size_t cols = 0;
	for (size_t i = 0; i < n; i++)
		cols += (size_t)ann_wcwidth(w[i]);
	return cols;
}

static void line_push(ann_line **lines, size_t *cap, size_t *nl, size_t a, size_t b)
{
	if (*nl == *cap) {
		*cap = *cap ? 2 * *cap : 64;
		*lines = xreallocarray(*lines, *cap, sizeof **lines);
	}
	(*lines)[(*nl)++] = (ann_line){a, b};
}

size_t ann_wrap(const wchar_t *w, size_t n, int width, ann_line **lines, size_t *cap)
{
	size_t nl = 0, start = 0, brk = 0;
	int col = 0;
	if (width < 1)
		width = 1;
	for (size_t i = 0; i < n; i++) {
		wchar_t c = w[i];
		if (c == L'\n') {
			line_push(lines, cap, &nl, start, i);
			start = brk = i + 1;
			col = 0;
			continue;
		}
		int cw = ann_wcwidth(c);
		if (col + cw > width) {
			if (c == L' ') {
				/* the space that overflows ends the line and vanishes */
				line_push(lines, cap, &nl, start, i);
				start = brk = i + 1;
				col = 0;
				continue;
			}
			if (brk > start) {
				line_push(lines, cap, &nl, start, brk);
				start = brk;
				col = (int)ann_wcswidth(w + start, i - start);
			}
			if (col + cw > width && i > start) {
				/* no room even after the word break: cut here */
				line_push(lines, cap, &nl, start, i);
				start = brk = i;
				col = 0;
			}
		}
		col += cw;
		if (c == L' ')
			brk = i + 1;
	}
	if (start < n || nl == 0 || (n > 0 && w[n - 1] == L'\n'))
		line_push(lines, cap, &nl, start, n);
	return nl;
}

/* ---- word diff ------------------------------------------------------------------ */

typedef struct word {
	size_t start, end;
	uint64_t hash;
} word;

static int is_space(wchar_t c)
{
	return c == L' ' || c == L'\n' || c == L'\t' || c == 0x3000 || c == 0xa0;
}

static word *split_words(const ann_text *t, size_t *nw)
{
	word *v = NULL;
	size_t n = 0, cap = 0;
	for (size_t i = 0; i < t->n;) {
		while (i < t->n && is_space(t->w[i]))
			i++;
		if (i >= t->n)
			break;
		size_t s = i;
		uint64_t h = 0xcbf29ce484222325ull;
		while (i < t->n && !is_space(t->w[i])) {
			h ^= (uint64_t)t->w[i];
			h *= 0x100000001b3ull;
			i++;
		}
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			v = xreallocarray(v, cap, sizeof *v);
		}
		v[n++] = (word){s, i, h};
	}
	*nw = n;
	return v;
}

static int word_eq(const ann_text *a, const word *x, const ann_text *b, const word *y)
{
	size_t l = x->end - x->start;
	return x->hash == y->hash && l == y->end - y->start &&
	       !wmemcmp(a->w + x->start, b->w + y->start, l);
}

static void mark_word(ann_text *t, const word *x)
{
	for (size_t i = x->start; i < x->end; i++)
		t->mark[i] |= ANN_MARK_DIFF;
}

void ann_text_clear_diff(ann_text *t)
{
	for (size_t i = 0; i < t->n; i++)
		t->mark[i] &= (unsigned char)~ANN_MARK_DIFF;
}

size_t ann_worddiff(ann_text *a, ann_text *b, size_t max_cells)
{
	size_t na, nb, common = 0;
	word *wa = split_words(a, &na), *wb = split_words(b, &nb);
	size_t lo = 0;
	if (!max_cells)
		max_cells = (size_t)4 << 20;
	while (lo < na && lo < nb && word_eq(a, &wa[lo], b, &wb[lo]))
		lo++;
	size_t ea = na, eb = nb;
	while (ea > lo && eb > lo && word_eq(a, &wa[ea - 1], b, &wb[eb - 1])) {
		ea--;
		eb--;
	}
	common = lo + (na - ea);
	size_t n = ea - lo, m = eb - lo;
	if (n && m && (n + 1) > max_cells / (m + 1)) {
		for (size_t i = lo; i < ea; i++)
			mark_word(a, &wa[i]);
		for (size_t j = lo; j < eb; j++)
			mark_word(b, &wb[j]);
	} else if (n || m) {
		/* L[i][j]: LCS length of a-words [lo+i, ea) and b-words [lo+j, eb) */
		size_t cols = m + 1;
		uint32_t *L = xcalloc((n + 1) * cols, sizeof *L);
		for (size_t i = n; i-- > 0;)
			for (size_t j = m; j-- > 0;) {
				if (word_eq(a, &wa[lo + i], b, &wb[lo + j]))
					L[i * cols + j] = L[(i + 1) * cols + j + 1] + 1;
				else {
					uint32_t d = L[(i + 1) * cols + j], r = L[i * cols + j + 1];
					L[i * cols + j] = d >= r ? d : r;
				}
			}
		size_t i = 0, j = 0;
		while (i < n && j < m) {
			if (word_eq(a, &wa[lo + i], b, &wb[lo + j])) {
				common++;
				i++;
				j++;
			} else if (L[(i + 1) * cols + j] >= L[i * cols + j + 1]) {
				mark_word(a, &wa[lo + i++]);
			} else {
				mark_word(b, &wb[lo + j++]);
			}
		}
		for (; i < n; i++)
			mark_word(a, &wa[lo + i]);
		for (; j < m; j++)
			mark_word(b, &wb[lo + j]);
		free(L);
	}
	free(wa);
	free(wb);
	return common;
}

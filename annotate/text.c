/* text.c: decoding, widths, wrapping and word diff for dpo-annotate (see text.h). */
#include "config.h"
#include "annotate/text.h"
#include "util/utf8.h"
#include "util/xmalloc.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include <wchar.h>

/* Whether the C library's wcwidth() describes the characters (a UTF-8
 * locale, as dpo-annotate sets for curses): it is what ncurses draws by. */
static int libc_widths(void)
{
	return MB_CUR_MAX > 1;
}

/* Can c be drawn as itself? Not when the terminal's width table (wcwidth)
 * does not know it, nor when it is an invisible format character (ZWJ,
 * ZWSP, bidi controls, BOM...): drawn raw those attach to, or reorder, the
 * next cell. Without a UTF-8 locale: not when utf8proc calls it unassigned. */
static int drawable(long cp)
{
	utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
	if (libc_widths()) {
		int w = wcwidth((wchar_t)cp);
		return w > 0 || (w == 0 && cat != UTF8PROC_CATEGORY_CF);
	}
	return cat != UTF8PROC_CATEGORY_CN && cat != UTF8PROC_CATEGORY_CF;
}

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
		else if (cp != '\n' && !drawable(cp))
			cp = 0xfffd; /* a visible placeholder of one column */
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
	int w = libc_widths() ? wcwidth(c) : utf8proc_charwidth((utf8proc_int32_t)c);
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

/* Myers' O((n+m)D) shortest edit script between the words wa[0..n) of a and
 * wb[0..m) of b: marks the words of a it deletes in dela[] and the words of
 * b it inserts in insb[]. Gives up (returns -1, marking nothing) when the
 * script needs more than dmax edits; 0 when done. The furthest-reaching x
 * of every diagonal is kept for each d, (dmax+1)^2 entries at most. */
static int myers(const ann_text *a, const word *wa, size_t n, const ann_text *b, const word *wb, size_t m,
		 size_t dmax, unsigned char *dela, unsigned char *insb)
{
	if (dmax > n + m)
		dmax = n + m;
	size_t off = dmax + 1;
	size_t *v = xcalloc(2 * dmax + 3, sizeof *v);
	size_t *trace = NULL, tcap = 0;
	size_t dend = (size_t)-1;
	for (size_t d = 0; d <= dmax && dend == (size_t)-1; d++) {
		size_t base = d * d; /* row d: diagonals -d..d at base + k + d */
		if (base + 2 * d + 1 > tcap) {
			tcap = (base + 2 * d + 1) * 2;
			trace = xreallocarray(trace, tcap, sizeof *trace);
		}
		for (long k = -(long)d; k <= (long)d; k += 2) {
			size_t x;
			if (k == -(long)d || (k != (long)d && v[off + k - 1] < v[off + k + 1]))
				x = v[off + k + 1]; /* down: a word of b inserted */
			else
				x = v[off + k - 1] + 1; /* right: a word of a deleted */
			size_t y = (size_t)((long)x - k);
			while (x < n && y < m && word_eq(a, &wa[x], b, &wb[y])) {
				x++;
				y++;
			}
			v[off + k] = x;
			trace[base + (size_t)(k + (long)d)] = x;
			if (x >= n && y >= m) {
				dend = d;
				break;
			}
		}
	}
	free(v);
	if (dend == (size_t)-1) {
		free(trace);
		return -1;
	}
	/* walk back from (n, m): each step d came from diagonal k+1 (down) or k-1 (right) of row d-1 */
	size_t x = n, y = m;
	for (size_t d = dend; d > 0; d--) {
		long k = (long)x - (long)y;
		const size_t *prev = trace + (d - 1) * (d - 1) + (d - 1); /* prev[j]: diagonal j of row d-1 */
		int down = k == -(long)d || (k != (long)d && prev[k - 1] < prev[k + 1]);
		long pk = down ? k + 1 : k - 1;
		size_t px = prev[pk], py = (size_t)((long)px - pk);
		if (down)
			insb[py] = 1;
		else
			dela[px] = 1;
		x = px;
		y = py;
	}
	free(trace);
	return 0;
}

size_t ann_worddiff_bounded(ann_text *a, ann_text *b, size_t max_cost, int *approx)
{
	size_t na, nb, common;
	word *wa = split_words(a, &na), *wb = split_words(b, &nb);
	size_t lo = 0;
	if (!max_cost)
		max_cost = (size_t)4 << 20;
	if (approx)
		*approx = 0;
	while (lo < na && lo < nb && word_eq(a, &wa[lo], b, &wb[lo]))
		lo++;
	size_t ea = na, eb = nb;
	while (ea > lo && eb > lo && word_eq(a, &wa[ea - 1], b, &wb[eb - 1])) {
		ea--;
		eb--;
	}
	common = lo + (na - ea);
	size_t n = ea - lo, m = eb - lo;
	/* the edit-count bound: (dmax+1)^2 trace entries and dmax*(n+m) steps
	 * within max_cost (times 16 for the steps) */
	size_t dmax = 0;
	while ((dmax + 2) * (dmax + 2) <= max_cost && (dmax + 1) * (n + m + 1) <= 16 * max_cost)
		dmax++;
	unsigned char *dela = xcalloc(n + 1, 1), *insb = xcalloc(m + 1, 1);
	if (n + m && myers(a, wa + lo, n, b, wb + lo, m, dmax, dela, insb) < 0) {
		/* too different to align within the bound: the whole middle */
		memset(dela, 1, n);
		memset(insb, 1, m);
		if (approx)
			*approx = 1;
	}
	for (size_t i = 0; i < n; i++) {
		if (dela[i])
			mark_word(a, &wa[lo + i]);
		else
			common++;
	}
	for (size_t j = 0; j < m; j++)
		if (insb[j])
			mark_word(b, &wb[lo + j]);
	free(dela);
	free(insb);
	free(wa);
	free(wb);
	return common;
}

size_t ann_worddiff(ann_text *a, ann_text *b, size_t max_cells)
{
	return ann_worddiff_bounded(a, b, max_cells, NULL);
}

/* text.h: text layout for dpo-annotate, without curses: UTF-8 decoding to
 * wide characters, display widths, word wrapping to a column count, and a
 * word-level diff (LCS over words).
 *
 * Widths: in a UTF-8 locale (dpo-annotate sets one) the C library's
 * wcwidth(), the table ncurses draws by, so that layout and drawing agree;
 * otherwise utf8proc's. */
#ifndef DPO_ANN_TEXT_H
#define DPO_ANN_TEXT_H
#include <stddef.h>
#include <wchar.h>

/* Per-character attributes of an ann_text. */
enum {
	ANN_MARK_DIFF = 1,   /* part of a word not in the other text */
	ANN_MARK_HEAD = 2,   /* a heading (role of a turn, a completion title) */
	ANN_MARK_DIM = 4,    /* secondary text */
};

/* A decoded text: w[0..n) code points with one attribute byte each. */
typedef struct ann_text {
	wchar_t *w;
	unsigned char *mark;
	size_t n, cap;
} ann_text;

/* One display line: characters [start, end) of the text. */
typedef struct ann_line {
	size_t start, end;
} ann_line;

/* Append UTF-8 string s (NULL: nothing) to t with attribute mark. Invalid
 * bytes become U+FFFD, tabs become four spaces, carriage returns are
 * dropped, and other control characters (except newline), invisible format
 * characters (ZWJ, ZWSP, bidi controls, BOM: Unicode category Cf of no
 * width) and characters the width table does not know (wcwidth -1, as
 * emoji newer than the C library) become the visible placeholder U+FFFD, so
 * that everything appended is drawn as wide as it is laid out. */
void ann_text_add_utf8(ann_text *t, const char *s, unsigned char mark);
/* Empty the text (memory kept). */
void ann_text_reset(ann_text *t);
/* Free the memory of t (the struct itself is the caller's). */
void ann_text_free(ann_text *t);

/* Display columns of c: 0 (combining), 1 or 2 (wide). */
int ann_wcwidth(wchar_t c);
/* Display columns of w[0..n). */
size_t ann_wcswidth(const wchar_t *w, size_t n);

/* Wrap w[0..n) into lines at most width (>= 1) columns wide: breaks after
 * spaces where possible, inside a word when it is longer than a line, and
 * at every newline (not included in any line). An empty text is one empty
 * line. Lines go to *lines (grown with xrealloc; *cap is its capacity;
 * caller frees); returns their number. */
size_t ann_wrap(const wchar_t *w, size_t n, int width, ann_line **lines, size_t *cap);

/* Mark with ANN_MARK_DIFF the characters of words of a that are not in a
 * longest common subsequence of the words of a and b, and the same in b.
 * Words are maximal runs of non-space characters, compared exactly. After
 * trimming the common start and end, the middle is aligned with Myers'
 * O((n+m)D) diff (D: words inserted plus deleted), so two long texts that
 * differ in a few words have only those marked. The work is bounded by
 * max_cost (0: a built-in 4M): D may reach about sqrt(max_cost), and
 * D*(n+m) 16*max_cost; past that the whole differing middle is marked and
 * *approx (when not NULL) is set to 1 (else 0). Returns the number of common
 * words. */
size_t ann_worddiff_bounded(ann_text *a, ann_text *b, size_t max_cost, int *approx);
/* ann_worddiff_bounded without the indicator. */
size_t ann_worddiff(ann_text *a, ann_text *b, size_t max_cells);
/* Clear the ANN_MARK_DIFF bits of t. */
void ann_text_clear_diff(ann_text *t);

#endif

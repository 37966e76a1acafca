/* test_annotate_text.c: unit tests of dpo-annotate's text layout (UTF-8
 * decoding, display widths, wrapping, word diff) and screen layout (side by
 * side vs stacked, 80x24) without curses. */
#include "config.h"
#include "annotate/session.h"
#include "annotate/text.h"
#include "annotate/ui.h"
#include "store/store.h"
#include "tests/tap.h"
#include "util/buf.h"
#include "util/progress.h"
#include "util/utf8.h"
#include "util/xmalloc.h"
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>
#include <wchar.h>

/* The wrapped lines of s at width, joined with "|" (as UTF-8). */
static char *wrap_str(const char *s, int width)
{
	ann_text t = {0};
	ann_line *lines = NULL;
	size_t cap = 0;
	ann_text_add_utf8(&t, s, 0);
	size_t n = ann_wrap(t.w, t.n, width, &lines, &cap);
	char *out = xcalloc(t.n * 4 + n + 1, 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (i)
			out[o++] = '|';
		for (size_t k = lines[i].start; k < lines[i].end; k++)
			o += util_utf8_encode((uint32_t)t.w[k], out + o);
	}
	free(lines);
	ann_text_free(&t);
	return out;
}

static void test_wrap(void)
{
	static const struct {
		const char *in;
		int width;
		const char *want;
	} cases[] = {
		{"", 10, ""},
		{"hello", 10, "hello"},
		{"hello world", 5, "hello|world"},
		{"hello world", 8, "hello |world"},
		{"hello world", 11, "hello world"},
		{"abcdefghij", 4, "abcd|efgh|ij"},
		{"a\nb\n\nc", 10, "a|b||c"},
		{"line\n", 10, "line|"},
		{"one two three four", 9, "one two |three |four"},
		{"tab\there", 20, "tab    here"},
		{"日本語のテキスト", 6, "日本語|のテキ|スト"},
		{"ab日本", 3, "ab|日|本"},
		{"x 日本語", 4, "x |日本|語"},
		{"café au lait", 4, "café|au |lait"},
		{"e\xcc\x81t\xc3\xa9", 2, "e\xcc\x81t|\xc3\xa9"}, /* combining accent takes no column */
		{"bad\xff byte", 20, "bad\xef\xbf\xbd byte"},
		{"ctl\x01x", 20, "ctl\xef\xbf\xbdx"},
		{"cr\r\nlf", 20, "cr|lf"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *got = wrap_str(cases[i].in, cases[i].width);
		TAP_IS_STR(got, cases[i].want, "wrap case %zu at width %d", i, cases[i].width);
		free(got);
	}
	/* no line is ever wider than the width */
	const char *long_text = "Lorem ipsum dolor sit amet, 日本語 consectetur adipiscing elit, sed do "
				"eiusmod tempor incididunt ut labore et dolore magna aliqua. Supercalifragilistic";
	ann_text t = {0};
	ann_text_add_utf8(&t, long_text, 0);
	ann_line *lines = NULL;
	size_t cap = 0;
	int ok = 1;
	size_t chars = 0;
	for (int w = 1; w < 40; w++) {
		size_t n = ann_wrap(t.w, t.n, w, &lines, &cap);
		size_t covered = 0;
		for (size_t k = 0; k < n; k++) {
			int cols = (int)ann_wcswidth(t.w + lines[k].start, lines[k].end - lines[k].start);
			ok &= cols <= w || (w == 1 && lines[k].end - lines[k].start == 1);
			covered += lines[k].end - lines[k].start;
		}
		chars = covered;
		ok &= covered + 32 >= t.n; /* only overflowing spaces are dropped */
	}
	TAP_OK(ok, "wrapped lines fit their width at every width 1..39 (%zu chars)", chars);
	free(lines);
	ann_text_free(&t);
	TAP_IS_INT(ann_wcwidth(L'a'), 1, "ASCII is one column");
	TAP_IS_INT(ann_wcwidth(0x65e5), 2, "CJK is two columns");
	TAP_IS_INT(ann_wcwidth(0x301), 0, "combining accent is zero columns");
	TAP_IS_INT(ann_wcwidth(0x1f600), 2, "emoji is two columns");
}

/* Format characters and characters the terminal's width table does not
 * know are drawn as a visible placeholder; every character that reaches the
 * screen has the width wcwidth() (what ncurses draws by) gives it. */
static void test_drawable(int utf8)
{
	if (!utf8) {
		TAP_SKIP(1, "no C.UTF-8 locale");
		return;
	}
	static const struct {
		const char *in, *want;
	} cases[] = {
		{"a\xe2\x80\x8d\xe6\x97\xa5", "a\xef\xbf\xbd\xe6\x97\xa5"},           /* ZWJ before CJK */
		{"b\xe2\x80\x8bz", "b\xef\xbf\xbdz"},                                 /* ZWSP */
		{"c\xe2\x80\xaeX\xe2\x80\xac", "c\xef\xbf\xbdX\xef\xbf\xbd"},         /* RLO ... PDF */
		{"\xe2\x81\xa6x\xe2\x81\xa9", "\xef\xbf\xbdx\xef\xbf\xbd"},           /* LRI ... PDI */
		{"\xef\xbb\xbfstart", "\xef\xbf\xbdstart"},                           /* BOM */
		{"e\xe2\x80\x8e", "e\xef\xbf\xbd"},                                   /* LRM */
		{"soft\xc2\xadhyphen", "soft\xc2\xadhyphen"},                         /* width 1: kept */
		{"e\xcc\x81", "e\xcc\x81"},                                           /* combining: kept */
		{"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"},                             /* U+1F600: kept */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *got = wrap_str(cases[i].in, 80);
		TAP_IS_STR(got, cases[i].want, "drawable case %zu", i);
		free(got);
	}
	/* U+1FAE8 (Unicode 15): itself where the C library knows it, else the placeholder */
	ann_text t = {0};
	ann_text_add_utf8(&t, "\xf0\x9f\xab\xa8", 0);
	TAP_OK(t.n == 1 && (wcwidth(0x1fae8) > 0 ? t.w[0] == 0x1fae8 : t.w[0] == 0xfffd),
	       "a Unicode 15 emoji is drawn as itself or as the placeholder, never as a blank (wcwidth %d)",
	       wcwidth(0x1fae8));
	TAP_IS_INT(ann_wcwidth(t.w[0]), wcwidth(t.w[0]), "... as wide as wcwidth says");
	/* every code point: what comes out has wcwidth >= 0, is not an
	 * invisible format character, and ann_wcwidth agrees with wcwidth */
	long bad = 0, first_bad = -1;
	for (long cp = 0x20; cp <= 0x10ffff; cp++) {
		if (cp >= 0xd800 && cp <= 0xdfff)
			continue;
		char u[5] = {0};
		util_utf8_encode((uint32_t)cp, u);
		ann_text_reset(&t);
		ann_text_add_utf8(&t, u, 0);
		wchar_t c = t.w[0];
		int w = wcwidth(c);
		int fmt0 = w == 0 && utf8proc_category((utf8proc_int32_t)c) == UTF8PROC_CATEGORY_CF;
		if (t.n != 1 || w < 0 || fmt0 || ann_wcwidth(c) != w) {
			if (first_bad < 0)
				first_bad = cp;
			bad++;
		}
	}
	TAP_IS_INT(bad, 0, "every code point comes out drawable at its wcwidth (first bad: %lx)", first_bad);
	ann_text_free(&t);
}

/* The words of s marked as changed, joined with spaces. */
static char *diff_words(const ann_text *t)
{
	char *out = xcalloc(t->n + 2, 1);
	size_t o = 0;
	int in = 0;
	for (size_t i = 0; i < t->n; i++) {
		if (t->mark[i] & ANN_MARK_DIFF) {
			if (!in && o)
				out[o++] = ' ';
			out[o++] = t->w[i] < 0x80 ? (char)t->w[i] : '?';
			in = 1;
		} else {
			in = 0;
		}
	}
	return out;
}

static void test_diff(void)
{
	static const struct {
		const char *a, *b;
		const char *want_a, *want_b;
		size_t common;
	} cases[] = {
		{"same words here", "same words here", "", "", 3},
		{"the cat sat", "the dog sat", "cat", "dog", 2},
		{"a b c d", "a c d e", "b", "e", 3},
		{"", "new words", "", "new words", 0},
		{"old words", "", "old words", "", 0},
		{"one  two\nthree", "one two three", "", "", 3},
		{"x y z", "z y x", "x y", "y x", 1},
		{"The answer is 4.", "The answer is four.", "4.", "four.", 3},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		ann_text a = {0}, b = {0};
		ann_text_add_utf8(&a, cases[i].a, 0);
		ann_text_add_utf8(&b, cases[i].b, 0);
		size_t common = ann_worddiff(&a, &b, 0);
		char *ga = diff_words(&a), *gb = diff_words(&b);
		TAP_IS_INT(common, cases[i].common, "diff case %zu: common words", i);
		TAP_IS_STR(ga, cases[i].want_a, "diff case %zu: changed in a", i);
		TAP_IS_STR(gb, cases[i].want_b, "diff case %zu: changed in b", i);
		free(ga);
		free(gb);
		ann_text_clear_diff(&a);
		ga = diff_words(&a);
		TAP_IS_STR(ga, "", "diff case %zu: cleared", i);
		free(ga);
		ann_text_free(&a);
		ann_text_free(&b);
	}
	/* too big for the table: the differing middle is marked whole */
	ann_text a = {0}, b = {0};
	ann_text_add_utf8(&a, "keep p q r keep", 0);
	ann_text_add_utf8(&b, "keep x q y keep", 0);
	size_t common = ann_worddiff(&a, &b, 4);
	char *ga = diff_words(&a);
	TAP_IS_STR(ga, "p q r", "over the cell limit: whole middle marked");
	TAP_IS_INT(common, 2, "over the cell limit: only the common ends count");
	free(ga);
	ann_text_free(&a);
	ann_text_free(&b);
}

/* Long texts of n words "wI" with a few edits: the diff marks exactly the
 * edited words (table-driven), in bounded work; texts too different for
 * the bound are marked whole with the indicator set. */
static void test_diff_long(void)
{
	static const struct {
		size_t n;
		const char *edits; /* "c@POS" change, "i@POS" insert before, "d@POS" delete, space separated */
		size_t max_cost;
		const char *want_a, *want_b;
		int approx;
	} cases[] = {
		{3000, "c@40 c@2960", 0, "w40 w2960", "X40 X2960", 0},
		{3000, "c@1 c@2998", 0, "w1 w2998", "X1 X2998", 0},
		{5000, "i@2500", 0, "", "X2500", 0},
		{5000, "d@10 d@4990", 0, "w10 w4990", "", 0},
		{4000, "c@5 i@2000 d@3995", 0, "w5 w3995", "X5 X2000", 0},
		{20000, "c@100 c@19900", 0, "w100 w19900", "X100 X19900", 0},
		/* 4 edits need D = 6 (change = delete + insert); a bound of D < 6 falls back */
		{200, "c@10 c@150 i@100", 30, "*", "*", 1},
	};
	for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
		util_buf A = UTIL_BUF_INIT, B = UTIL_BUF_INIT;
		size_t n = cases[ci].n;
		char *kind = xcalloc(n + 1, 1);
		for (const char *e = cases[ci].edits; *e;) {
			char op = e[0];
			size_t pos = strtoul(e + 2, (char **)&e, 10);
			kind[pos] = op;
			while (*e == ' ')
				e++;
		}
		for (size_t i = 0; i < n; i++) {
			if (kind[i] == 'i')
				util_buf_addf(&B, "X%zu ", i);
			util_buf_addf(&A, "w%zu ", i);
			if (kind[i] == 'c')
				util_buf_addf(&B, "X%zu ", i);
			else if (kind[i] != 'd')
				util_buf_addf(&B, "w%zu ", i);
		}
		ann_text a = {0}, b = {0};
		ann_text_add_utf8(&a, util_buf_str(&A), 0);
		ann_text_add_utf8(&b, util_buf_str(&B), 0);
		int approx = -1;
		double t0 = util_now();
		ann_worddiff_bounded(&a, &b, cases[ci].max_cost, &approx);
		double dt = util_now() - t0;
		char *ga = diff_words(&a), *gb = diff_words(&b);
		TAP_IS_INT(approx, cases[ci].approx, "long diff %zu (%zu words, %s): indicator", ci, n, cases[ci].edits);
		if (!strcmp(cases[ci].want_a, "*")) {
			/* the whole middle, first edit to last: w10..w150 */
			size_t words = 1;
			for (const char *c = ga; *c; c++)
				words += *c == ' ';
			TAP_OK(!strncmp(ga, "w10 w11 ", 8) && strlen(ga) > 9 && !strcmp(ga + strlen(ga) - 9, "w149 w150"),
			       "long diff %zu: past the bound the whole middle is marked", ci);
			TAP_IS_INT(words, 141, "long diff %zu: 141 words marked", ci);
		} else {
			TAP_IS_STR(ga, cases[ci].want_a, "long diff %zu: only the edited words of a marked", ci);
			TAP_IS_STR(gb, cases[ci].want_b, "long diff %zu: only the edited words of b marked", ci);
		}
		TAP_OK(dt < 0.5, "long diff %zu: %.3f s", ci, dt);
		free(ga);
		free(gb);
		free(kind);
		ann_text_free(&a);
		ann_text_free(&b);
		util_buf_free(&A);
		util_buf_free(&B);
	}
	/* two long texts with nothing in common: bounded time, then the fallback */
	util_buf A = UTIL_BUF_INIT, B = UTIL_BUF_INIT;
	for (int i = 0; i < 30000; i++) {
		util_buf_addf(&A, "w%d ", i);
		util_buf_addf(&B, "y%d ", i);
	}
	ann_text a = {0}, b = {0};
	ann_text_add_utf8(&a, util_buf_str(&A), 0);
	ann_text_add_utf8(&b, util_buf_str(&B), 0);
	int approx = 0;
	double t0 = util_now();
	size_t common = ann_worddiff_bounded(&a, &b, 0, &approx);
	double dt = util_now() - t0;
	TAP_OK(approx == 1 && common == 0, "30000 words with nothing in common: fallback indicated");
	TAP_OK(dt < 2.0, "... after bounded work (%.3f s)", dt);
	ann_text_free(&a);
	ann_text_free(&b);
	util_buf_free(&A);
	util_buf_free(&B);
}

static void test_layout(void)
{
	char path[] = "/tmp/dpo-test-annlayout-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0) {
		printf("Bail out! mkstemp\n");
		exit(1);
	}
	close(fd);
	unlink(path);
	store *st = store_new();
	int64_t pid, gid;
	store_generator g = {.kind = "import", .name = "layout"};
	if (store_open(st, path) || store_generator_id(st, &g, &gid) ||
	    store_prompt_add(st, "A prompt long enough to need two lines on a narrow screen, or even three of them.",
			     NULL, 0, "t", NULL, &pid, NULL) ||
	    store_completion_add(st, pid, "left text with 日本語", gid, NULL, NULL) ||
	    store_completion_add(st, pid, "right text", gid, NULL, NULL)) {
		printf("Bail out! fixture: %s\n", store_errmsg(st));
		exit(1);
	}
	ann_options o = {.annotator = "lay", .overlap = 1, .retries = -1};
	ann_session *s = ann_session_new(st, &o);
	ann_session_load(s);
	ann_ui ui;
	ann_ui_init(&ui, s, ANN_MODE_PAIR, "lay", 0, 0, NULL);
	ann_ui_prepare(&ui, 24, 80);
	const ann_pane *l = &ui.pane[ANN_PANE_LEFT], *r = &ui.pane[ANN_PANE_RIGHT], *p = &ui.pane[ANN_PANE_PROMPT];
	TAP_OK(!ui.too_small && !ui.side_by_side, "80x24: stacked");
	TAP_OK(l->body.w == 80 && r->body.w == 80, "80x24: both panes full width");
	TAP_OK(r->body.y > l->body.y + l->body.h - 1, "80x24: right pane below the left one");
	TAP_IS_INT(p->body.y, 1, "prompt under the header");
	TAP_IS_INT(p->body.h, 2, "prompt takes the lines it needs");
	TAP_OK(r->body.y + r->body.h <= 22, "80x24: panes end above the info and status lines");
	TAP_OK(l->body.h >= 2 && r->body.h >= 2, "80x24: both panes have room (%d, %d)", l->body.h, r->body.h);
	ann_ui_prepare(&ui, 30, 120);
	TAP_OK(ui.side_by_side, "120x30: side by side");
	TAP_OK(l->body.y == r->body.y && r->body.x > l->body.x + l->body.w - 1, "120x30: right pane beside the left");
	TAP_IS_INT(l->body.w + r->body.w + 1, 120, "120x30: widths plus separator fill the screen");
	ann_ui_prepare(&ui, 24, 80);
	TAP_OK(!ui.side_by_side, "shrinking back to 80 columns stacks again");
	ann_ui_prepare(&ui, 5, 20);
	TAP_OK(ui.too_small, "a tiny terminal is reported too small");
	char status[256];
	ann_ui_prepare(&ui, 24, 80);
	ann_ui_status(&ui, status, sizeof status);
	TAP_OK(strstr(status, "lay") && strstr(status, "item 1/1") && strstr(status, "done 0/1"),
	       "status line: annotator, position, done/total (%s)", status);
	ann_ui_free(&ui);
	ann_session_free(s);
	store_free(st);
	unlink(path);
	char *wal = xasprintf("%s-wal", path), *shm = xasprintf("%s-shm", path);
	unlink(wal);
	unlink(shm);
	free(wal);
	free(shm);
}

/* Line li of pane p as UTF-8 (caller frees). */
static char *pane_line(const ann_pane *p, size_t li)
{
	char *out = xcalloc((p->lines[li].end - p->lines[li].start) * 4 + 1, 1);
	size_t o = 0;
	for (size_t k = p->lines[li].start; k < p->lines[li].end; k++)
		o += util_utf8_encode((uint32_t)p->text.w[k], out + o);
	return out;
}

/* The prompt pane opens at the end of a long conversation (the turn the
 * completions answer), HH transcripts shown as H:/A: turns without their
 * leading blank lines, chat prompts with their roles. */
static void test_prompt_end(void)
{
	char path[] = "/tmp/dpo-test-annprompt-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0) {
		printf("Bail out! mkstemp\n");
		exit(1);
	}
	close(fd);
	unlink(path);
	util_buf hh = UTIL_BUF_INIT;
	for (int i = 1; i <= 8; i++)
		util_buf_addf(&hh, "\n\nHuman: Question number %d about bridges, with enough words to wrap over more than "
			      "one line of an eighty column terminal.\n\nAssistant: Answer number %d: wood, then stone, "
			      "then iron and steel, over many centuries of trial and error.", i, i);
	util_buf_adds(&hh, "\n\nHuman: FINAL TURN: which bridge first?\n\nAssistant:");
	store *st = store_new();
	int64_t pid, pid2, gid;
	store_generator g = {.kind = "import", .name = "prompt-end"};
	store_msg chat[] = {{"user", "Opening question?"}, {"assistant", "An answer."}, {"user", "Last question?"}};
	if (store_open(st, path) || store_generator_id(st, &g, &gid) ||
	    store_prompt_add(st, util_buf_str(&hh), NULL, 0, "t", NULL, &pid, NULL) ||
	    store_completion_add(st, pid, "Visit the Pont du Gard.", gid, NULL, NULL) ||
	    store_completion_add(st, pid, "The Brooklyn Bridge.", gid, NULL, NULL) ||
	    store_prompt_add(st, NULL, chat, 3, "t", NULL, &pid2, NULL) ||
	    store_completion_add(st, pid2, "Yes.", gid, NULL, NULL) ||
	    store_completion_add(st, pid2, "No.", gid, NULL, NULL)) {
		printf("Bail out! fixture: %s\n", store_errmsg(st));
		exit(1);
	}
	util_buf_free(&hh);
	ann_options o = {.annotator = "pe", .overlap = 1, .retries = -1};
	ann_session *s = ann_session_new(st, &o);
	ann_session_load(s);
	ann_ui ui;
	ann_ui_init(&ui, s, ANN_MODE_PAIR, "pe", 0, 0, NULL);
	ann_ui_prepare(&ui, 24, 80);
	const ann_pane *p = &ui.pane[ANN_PANE_PROMPT];
	char *first = pane_line(p, 0), *last = pane_line(p, p->nlines - 1);
	TAP_OK(!strncmp(first, "H: Question number 1 ", 21), "HH: no leading blank lines, H: role (%s)", first);
	TAP_IS_STR(last, "H: FINAL TURN: which bridge first?", "HH: the final human turn is the last line");
	free(first);
	free(last);
	int hh_marks = 0;
	for (size_t i = 0; i < p->nlines; i++) {
		char *l = pane_line(p, i);
		hh_marks += strstr(l, "Human:") || strstr(l, "Assistant:");
		free(l);
	}
	TAP_IS_INT(hh_marks, 0, "HH: no raw Human:/Assistant: markers");
	TAP_OK(p->nlines > (size_t)p->body.h, "80x24: the dialogue is longer than the pane (%zu lines)", p->nlines);
	TAP_IS_INT(p->scroll + p->body.h, (long)p->nlines, "80x24: the prompt pane shows its end");
	TAP_OK(p->body.h > (24 - 3) / 3, "the prompt takes the rows the short completions leave (%d)", p->body.h);
	const ann_pane *l = &ui.pane[ANN_PANE_LEFT], *r = &ui.pane[ANN_PANE_RIGHT];
	TAP_OK(l->body.h >= (int)l->nlines && r->body.h >= (int)r->nlines, "both completions shown whole");
	TAP_OK(r->body.y + r->body.h <= 22, "panes end above the info and status lines");
	ann_session_label(s, ANN_TIE, 0);
	ann_ui_prepare(&ui, 24, 80);
	const char *want[] = {"user: Opening question?", "assistant: An answer.", "user: Last question?"};
	TAP_IS_INT(p->nlines, 3, "chat: one line per turn");
	for (size_t i = 0; i < 3 && i < p->nlines; i++) {
		char *line = pane_line(p, i);
		TAP_IS_STR(line, want[i], "chat: turn %zu with its role", i + 1);
		free(line);
	}
	ann_ui_free(&ui);
	ann_session_free(s);
	store_free(st);
	unlink(path);
	char *wal = xasprintf("%s-wal", path), *shm = xasprintf("%s-shm", path);
	unlink(wal);
	unlink(shm);
	free(wal);
	free(shm);
}

int main(void)
{
	int utf8 = setlocale(LC_ALL, "C.UTF-8") != NULL;
	test_wrap();
	test_drawable(utf8);
	test_diff();
	test_diff_long();
	test_layout();
	test_prompt_end();
	return tap_done();
}

/* view.c: draws the main screen of dpo-annotate from its ui state (curses).
 * Views only draw: they never change the session or the ui state. */
#include "config.h"
#include "annotate/ui.h"
#include <curses.h>
#include <stdio.h>
#include <string.h>

enum { CP_HEADER = 1, CP_DIFF, CP_HEAD, CP_STATUS, CP_FOCUS, CP_ERROR, CP_DIM };

static int colors_on;

void ann_view_init_colors(ann_ui *ui)
{
	colors_on = 0;
	if (!ui->color || !has_colors() || start_color() == ERR) {
		ui->color = 0;
		return;
	}
	use_default_colors();
	init_pair(CP_HEADER, COLOR_BLACK, COLOR_CYAN);
	init_pair(CP_DIFF, COLOR_BLACK, COLOR_YELLOW);
	init_pair(CP_HEAD, COLOR_CYAN, -1);
	init_pair(CP_STATUS, COLOR_BLACK, COLOR_WHITE);
	init_pair(CP_FOCUS, COLOR_YELLOW, -1);
	init_pair(CP_ERROR, COLOR_RED, -1);
	init_pair(CP_DIM, COLOR_BLUE, -1);
	colors_on = 1;
}

static attr_t attr_of(unsigned char mark)
{
	attr_t a = 0;
	if (mark & ANN_MARK_DIFF)
		a |= colors_on ? COLOR_PAIR(CP_DIFF) : (A_REVERSE | A_BOLD);
	else if (mark & ANN_MARK_HEAD)
		a |= A_BOLD | (colors_on ? COLOR_PAIR(CP_HEAD) : 0);
	else if (mark & ANN_MARK_DIM)
		a |= A_DIM;
	return a;
}

/* Draw characters [a, b) of t at (y, x) with their attributes (extra added). */
static void draw_run(int y, int x, const ann_text *t, size_t a, size_t b, attr_t extra)
{
	move(y, x);
	for (size_t i = a; i < b;) {
		size_t j = i;
		while (j < b && t->mark[j] == t->mark[i])
			j++;
		attr_t at = attr_of(t->mark[i]) | extra;
		attron(at);
		addnwstr(t->w + i, (int)(j - i));
		attroff(at);
		i = j;
	}
}

/* Draw UTF-8 text s at (y, x) in at most w columns, filling the rest with
 * spaces when fill is set. */
static void draw_str(int y, int x, int w, const char *s, attr_t at, int fill)
{
	ann_text t = {0};
	ann_text_add_utf8(&t, s, 0);
	size_t n = 0;
	int cols = 0;
	while (n < t.n && t.w[n] != L'\n' && cols + ann_wcwidth(t.w[n]) <= w)
		cols += ann_wcwidth(t.w[n++]);
	attron(at);
	move(y, x);
	if (n)
		addnwstr(t.w, (int)n);
	for (; fill && cols < w; cols++)
		addch(' ');
	attroff(at);
	ann_text_free(&t);
}

static void draw_pane(const ann_pane *p)
{
	for (int r = 0; r < p->body.h; r++) {
		size_t li = (size_t)p->scroll + (size_t)r;
		if (li >= p->nlines)
			break;
		draw_run(p->body.y + r, p->body.x, &p->text, p->lines[li].start, p->lines[li].end, 0);
	}
}

static void draw_title(const ann_ui *ui, int which)
{
	const ann_pane *p = &ui->pane[which];
	if (!p->title.h)
		return;
	char buf[256];
	int more = (int)p->nlines > p->body.h;
	if (more)
		snprintf(buf, sizeof buf, "%s %s  lines %d-%d/%zu", which == ui->focus ? "▶" : "─", p->title_str,
			 p->scroll + 1, p->scroll + p->body.h < (int)p->nlines ? p->scroll + p->body.h : (int)p->nlines,
			 p->nlines);
	else
		snprintf(buf, sizeof buf, "%s %s", which == ui->focus ? "▶" : "─", p->title_str);
	attr_t at = A_BOLD | A_UNDERLINE;
	if (which == ui->focus)
		at = A_BOLD | (colors_on ? COLOR_PAIR(CP_FOCUS) : A_REVERSE);
	draw_str(p->title.y, p->title.x, p->title.w, buf, at, 1);
}

static void draw_header(const ann_ui *ui)
{
	char buf[512];
	const ann_pane *pp = &ui->pane[ANN_PANE_PROMPT];
	char more[64] = "";
	if ((int)pp->nlines > pp->body.h)
		snprintf(more, sizeof more, " | prompt lines %d-%d/%zu", pp->scroll + 1,
			 pp->scroll + pp->body.h < (int)pp->nlines ? pp->scroll + pp->body.h : (int)pp->nlines,
			 pp->nlines);
	if (ui->item)
		snprintf(buf, sizeof buf, "%s dpo-annotate | prompt #%lld | %s | %s%s%s",
			 ui->focus == ANN_PANE_PROMPT ? "▶" : " ", (long long)ui->item->prompt_id, ui->item->split,
			 ui->item->source, !ui->diff_on ? "" : ui->diff_approx ? " | diff: too different, middle marked" : " | diff", more);
	else
		snprintf(buf, sizeof buf, "  dpo-annotate%s", more);
	draw_str(0, 0, ui->cols, buf, colors_on ? COLOR_PAIR(CP_HEADER) | A_BOLD : A_REVERSE, 1);
}

static void draw_info(const ann_ui *ui)
{
	const ann_rect *r = &ui->info;
	if (ui->input != ANN_INPUT_NONE) {
		const char *label = ui->input == ANN_INPUT_NOTE ? "Note (Enter keeps, Esc cancels): "
								: "Search prompts (Enter, Esc): ";
		draw_str(r->y, 0, r->w, label, A_BOLD, 0);
		int x = (int)strlen(label);
		int room = r->w - x - 1;
		size_t start = 0;
		while (start < ui->inlen && (int)ann_wcswidth(ui->inbuf + start, ui->inlen - start) > room)
			start++;
		move(r->y, x);
		if (ui->inlen > start)
			addnwstr(ui->inbuf + start, (int)(ui->inlen - start));
		return;
	}
	if (ui->msg[0]) {
		attr_t at = ui->msg_error ? (A_BOLD | (colors_on ? COLOR_PAIR(CP_ERROR) : 0)) : 0;
		draw_str(r->y, 0, r->w, ui->msg, at, 0);
		return;
	}
	const char *hint = !ui->item ? "u undo  q quit  ? help"
			   : ui->mode == ANN_MODE_RANK
				   ? "1-9 pick best  u undo  s skip  n note  Tab focus  j/k scroll  ? help  q quit"
			   : ui->strength
				   ? "1/2 slightly  !/@ much better  t tie  x both bad  s skip  u undo  n note  ? help  q quit"
				   : "1/← left  2/→ right  t tie  x both bad  s skip  u undo  n note  d diff  ? help  q quit";
	draw_str(r->y, 0, r->w, hint, A_DIM, 0);
}

void ann_view_draw(const ann_ui *ui)
{
	erase();
	curs_set(0);
	if (ui->too_small) {
		draw_str(0, 0, ui->cols, "Terminal too small for dpo-annotate (need 30x10).", A_BOLD, 0);
		draw_str(1, 0, ui->cols, "Enlarge it, or press q to quit.", 0, 0);
		return;
	}
	draw_header(ui);
	draw_pane(&ui->pane[ANN_PANE_PROMPT]);
	if (ui->item) {
		draw_title(ui, ANN_PANE_LEFT);
		draw_pane(&ui->pane[ANN_PANE_LEFT]);
		if (ui->mode != ANN_MODE_RANK) {
			draw_title(ui, ANN_PANE_RIGHT);
			draw_pane(&ui->pane[ANN_PANE_RIGHT]);
		}
		if (ui->side_by_side) {
			const ann_pane *l = &ui->pane[ANN_PANE_LEFT];
			for (int y = l->title.y; y < l->body.y + l->body.h; y++)
				mvaddnwstr(y, l->body.w, L"│", 1);
		}
	}
	draw_info(ui);
	char status[512];
	ann_ui_status(ui, status, sizeof status);
	draw_str(ui->status.y, 0, ui->cols, status, colors_on ? COLOR_PAIR(CP_STATUS) : A_REVERSE, 1);
	if (ui->overlay != ANN_OVERLAY_NONE)
		ann_view_overlay(ui);
	if (ui->input != ANN_INPUT_NONE) {
		int y, x;
		getyx(stdscr, y, x);
		move(y, x);
		curs_set(1);
	}
}

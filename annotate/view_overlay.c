/* view_overlay.c: draws the help and guidelines overlays of dpo-annotate
 * over the main screen (curses). Only draws. */
#include "config.h"
#include "annotate/ui.h"
#include <curses.h>

void ann_view_overlay(const ann_ui *ui)
{
	const ann_pane *p = &ui->ov;
	int top = p->title.y, left = p->title.x, w = p->title.w, h = p->body.h + 2;
	if (w < 4 || h < 3)
		return;
	for (int y = top; y < top + h; y++) {
		move(y, left);
		for (int x = 0; x < w; x++)
			addch(' ');
	}
	/* box-drawing characters as text: ACS line drawing is unreliable in
	 * UTF-8 terminals (tmux, screen) */
	for (int x = 1; x < w - 1; x++) {
		mvaddnwstr(top, left + x, L"─", 1);
		mvaddnwstr(top + h - 1, left + x, L"─", 1);
	}
	for (int y = 1; y < h - 1; y++) {
		mvaddnwstr(top + y, left, L"│", 1);
		mvaddnwstr(top + y, left + w - 1, L"│", 1);
	}
	mvaddnwstr(top, left, L"┌", 1);
	mvaddnwstr(top, left + w - 1, L"┐", 1);
	mvaddnwstr(top + h - 1, left, L"└", 1);
	mvaddnwstr(top + h - 1, left + w - 1, L"┘", 1);
	attron(A_BOLD);
	mvaddnstr(top, left + 2, p->title_str, w - 4);
	attroff(A_BOLD);
	for (int r = 0; r < p->body.h; r++) {
		size_t li = (size_t)p->scroll + (size_t)r;
		if (li >= p->nlines)
			break;
		move(p->body.y + r, p->body.x);
		for (size_t i = p->lines[li].start; i < p->lines[li].end;) {
			size_t j = i;
			while (j < p->lines[li].end && p->text.mark[j] == p->text.mark[i])
				j++;
			attr_t at = p->text.mark[i] & ANN_MARK_HEAD ? A_BOLD : 0;
			attron(at);
			addnwstr(p->text.w + i, (int)(j - i));
			attroff(at);
			i = j;
		}
	}
}

/* keys.c: key handling of dpo-annotate. Handlers change the ui state and the
 * session and return ANN_KEY_* flags; they never draw (the loop in
 * dpo-annotate.c draws). curses.h is included for its KEY_* codes only. */
#include "config.h"
#include "annotate/ui.h"
#include "util/buf.h"
#include "util/utf8.h"
#include <curses.h>
#include <math.h>
#include <string.h>

#define DONE (ANN_KEY_HANDLED | ANN_KEY_REDRAW)

/* Append the UTF-8 encoding of w[0..n) to b. */
static void wide_to_utf8(util_buf *b, const wchar_t *w, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char o[4];
		util_buf_add(b, o, util_utf8_encode((uint32_t)w[i], o));
	}
}

/* Decode UTF-8 s (NULL: nothing) into w (at most max characters; invalid
 * bytes are dropped); returns the number written. */
static size_t utf8_to_wide(wchar_t *w, size_t max, const char *s)
{
	size_t n = 0, len = s ? strlen(s) : 0;
	for (size_t at = 0; at < len && n < max;) {
		uint32_t u;
		int k = util_utf8_decode(s + at, len - at, &u);
		if (k <= 0) {
			at++;
			continue;
		}
		at += (size_t)k;
		w[n++] = (wchar_t)u;
	}
	return n;
}

static int64_t elapsed_ms(const ann_ui *ui)
{
	double d = ui->now() - ui->shown_at;
	return d < 0 ? 0 : (int64_t)(d * 1000.0 + 0.5);
}

static const char *label_name(int label)
{
	switch (label) {
	case ANN_LEFT: return "left better";
	case ANN_RIGHT: return "right better";
	case ANN_TIE: return "tie";
	case ANN_BOTH_BAD: return "both bad";
	default: return "skipped";
	}
}

static void judge_message(ann_ui *ui, int label)
{
	size_t n;
	const ann_verdict *v = ann_session_judge_verdicts(ui->s, &n);
	util_buf b = UTIL_BUF_INIT;
	util_buf_addf(&b, "Saved: %s.", label_name(label));
	if (!n)
		util_buf_adds(&b, " No judge verdict on this pair.");
	for (size_t i = 0; i < n; i++)
		util_buf_addf(&b, " Judge %s: %s.", v[i].annotator, v[i].verdict);
	ann_ui_message(ui, 0, "%s", util_buf_str(&b));
	util_buf_free(&b);
}

/* Label the item; conf is the strength of a left/right verdict (NAN: none). */
static int do_label_conf(ann_ui *ui, int label, double conf)
{
	if (!ui->item)
		return ANN_KEY_HANDLED;
	int rc = label == ANN_SKIP ? ann_session_skip(ui->s, elapsed_ms(ui))
				   : ann_session_label_strength(ui->s, label, conf, elapsed_ms(ui));
	if (rc == ANN_EBUSY) {
		ann_ui_waiting(ui);
		return DONE;
	}
	if (rc < 0) {
		ann_ui_message(ui, 1, "Not saved: %s", ann_session_errmsg(ui->s));
		return DONE;
	}
	if (ui->show_judge && label != ANN_SKIP)
		judge_message(ui, label);
	else if (!isnan(conf))
		ann_ui_message(ui, 0, "Saved: %s %s better.", label == ANN_LEFT ? "left" : "right",
			       conf >= ANN_CONF_MUCH ? "much" : "slightly");
	else
		ann_ui_message(ui, 0, "Saved: %s.", label_name(label));
	ui->dirty = 1;
	return DONE;
}

static int do_label(ann_ui *ui, int label)
{
	return do_label_conf(ui, label, NAN);
}

/* A left/right key: with --strength, much (shifted: ! @ Shift-arrows) or
 * slightly better; else a plain verdict. */
static int do_side(ann_ui *ui, int label, int much)
{
	if (!ui->strength)
		return much ? 0 : do_label(ui, label);
	return do_label_conf(ui, label, much ? ANN_CONF_MUCH : ANN_CONF_SLIGHTLY);
}

static int do_undo(ann_ui *ui)
{
	if (ann_session_pending(ui->s)) {
		ann_session_cancel_pending(ui->s);
		ui->wait_since = 0;
		ann_ui_message(ui, 0, "The label waiting for the database is taken back (it was never stored).");
		return DONE;
	}
	if (ui->mode == ANN_MODE_RANK && ui->nrank > 0) {
		ui->nrank--;
		ui->dirty = 1;
		ann_ui_message(ui, 0, "Pick taken back.");
		return DONE;
	}
	int rc = ann_session_undo(ui->s);
	if (rc == ANN_ENOUNDO)
		ann_ui_message(ui, 1, "Nothing to undo in this session.");
	else if (rc < 0)
		ann_ui_message(ui, 1, "Undo failed: %s", ann_session_errmsg(ui->s));
	else
		ann_ui_message(ui, 0, "Undone (%zu more step%s possible).", ann_session_undo_depth(ui->s),
			       ann_session_undo_depth(ui->s) == 1 ? "" : "s");
	ui->dirty = 1;
	return DONE;
}

static int do_rank_pick(ann_ui *ui, size_t idx)
{
	const ann_item *it = ui->item;
	if (!it)
		return ANN_KEY_HANDLED;
	if (it->ncands > ANN_RANK_MAX) {
		ann_ui_message(ui, 1, "This prompt has %zu completions; only %d can be ranked here. Press s to skip.",
			       it->ncands, ANN_RANK_MAX);
		return DONE;
	}
	if (idx >= it->ncands) {
		ann_ui_message(ui, 1, "There is no completion %zu.", idx + 1);
		return DONE;
	}
	for (size_t i = 0; i < ui->nrank; i++)
		if (ui->rank[i] == idx) {
			ann_ui_message(ui, 1, "Completion %zu is ranked already (u takes a pick back).", idx + 1);
			return DONE;
		}
	ui->rank[ui->nrank++] = idx;
	ui->dirty = 1;
	if (ui->nrank + 1 < it->ncands) {
		ann_ui_message(ui, 0, "#%zu: completion %zu. Now the best of the rest.", ui->nrank, idx + 1);
		return DONE;
	}
	/* the last one left is the worst */
	size_t order[ANN_RANK_MAX];
	unsigned char used[ANN_RANK_MAX] = {0};
	for (size_t i = 0; i < ui->nrank; i++) {
		order[i] = ui->rank[i];
		used[ui->rank[i]] = 1;
	}
	size_t n = ui->nrank;
	for (size_t i = 0; i < it->ncands; i++)
		if (!used[i])
			order[n++] = i;
	int rc = ann_session_rank(ui->s, order, n, elapsed_ms(ui));
	if (rc == ANN_EBUSY) {
		ann_ui_waiting(ui);
		return DONE;
	}
	if (rc < 0) {
		ui->nrank--;
		ann_ui_message(ui, 1, "Not saved: %s", ann_session_errmsg(ui->s));
		return DONE;
	}
	char buf[64] = "";
	size_t off = 0;
	for (size_t i = 0; i < n; i++)
		off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%zu", i ? " > " : "", order[i] + 1);
	ann_ui_message(ui, 0, "Saved ranking %s (%zu comparisons).", buf, n * (n - 1) / 2);
	return DONE;
}

/* q: quit, unless a label waits for the database: then try it once more,
 * and if it still waits, say so and quit only on a second q. */
static int quit_key(ann_ui *ui)
{
	if (!ann_session_pending(ui->s) || ui->quit_armed)
		return ANN_KEY_HANDLED | ANN_KEY_QUIT;
	if (ann_ui_tick(ui) && !ann_session_pending(ui->s))
		return ANN_KEY_HANDLED | ANN_KEY_QUIT;
	ui->quit_armed = 1;
	ann_ui_message(ui, 1, "A label is still waiting for the database: q again quits without it, any other key waits.");
	return DONE;
}

static int scroll_by(ann_ui *ui, int delta, int absolute)
{
	ann_pane *p = ui->overlay != ANN_OVERLAY_NONE ? &ui->ov : &ui->pane[ui->focus];
	int max = (int)p->nlines - p->body.h;
	if (max < 0)
		max = 0;
	int to = absolute ? delta : p->scroll + delta;
	if (to > max)
		to = max;
	if (to < 0)
		to = 0;
	p->scroll = to;
	return DONE;
}

static int page(const ann_ui *ui)
{
	const ann_pane *p = ui->overlay != ANN_OVERLAY_NONE ? &ui->ov : &ui->pane[ui->focus];
	return p->body.h > 2 ? p->body.h - 1 : 1;
}

/* Scrolling keys shared by panes and overlays; 0 when ch is not one. */
static int scroll_key(ann_ui *ui, int is_key, int ch)
{
	if (is_key) {
		switch (ch) {
		case KEY_UP: return scroll_by(ui, -1, 0);
		case KEY_DOWN: return scroll_by(ui, 1, 0);
		case KEY_PPAGE: return scroll_by(ui, -page(ui), 0);
		case KEY_NPAGE: return scroll_by(ui, page(ui), 0);
		case KEY_HOME: return scroll_by(ui, 0, 1);
		case KEY_END: return scroll_by(ui, 1 << 30, 1);
		}
		return 0;
	}
	switch (ch) {
	case 'k': return scroll_by(ui, -1, 0);
	case 'j': return scroll_by(ui, 1, 0);
	case ' ': return scroll_by(ui, page(ui), 0);
	}
	return 0;
}

static void focus_move(ann_ui *ui, int dir)
{
	int order[ANN_NPANES], n = 0;
	order[n++] = ANN_PANE_PROMPT;
	if (ui->item) {
		order[n++] = ANN_PANE_LEFT;
		if (ui->mode != ANN_MODE_RANK)
			order[n++] = ANN_PANE_RIGHT;
	}
	int at = 0;
	for (int i = 0; i < n; i++)
		if (order[i] == ui->focus)
			at = i;
	ui->focus = order[(at + dir + n) % n];
}

static int input_key(ann_ui *ui, int is_key, int ch)
{
	if (!is_key && ch == 27) {
		ann_ui_message(ui, 0, "%s", ui->input == ANN_INPUT_NOTE ? "Note unchanged." : "Search cancelled.");
		ui->input = ANN_INPUT_NONE;
		return DONE;
	}
	if ((!is_key && (ch == '\n' || ch == '\r')) || (is_key && ch == KEY_ENTER)) {
		util_buf b = UTIL_BUF_INIT;
		wide_to_utf8(&b, ui->inbuf, ui->inlen);
		const char *text = util_buf_str(&b);
		if (ui->input == ANN_INPUT_NOTE) {
			ann_session_set_note(ui->s, text);
			ann_ui_message(ui, 0, "%s", *text ? "Note kept: it goes with this item's label." : "Note cleared.");
		} else if (*text) {
			int rc = ann_session_search(ui->s, text);
			if (rc == ANN_OK)
				ann_ui_message(ui, 0, "Found \"%s\".", text);
			else
				ann_ui_message(ui, 1, "%s", ann_session_errmsg(ui->s));
			ui->dirty = 1;
		}
		util_buf_free(&b);
		ui->input = ANN_INPUT_NONE;
		return DONE;
	}
	if ((is_key && ch == KEY_BACKSPACE) || (!is_key && (ch == 127 || ch == 8))) {
		if (ui->inlen)
			ui->inlen--;
		return DONE;
	}
	if (!is_key && ch == 21) { /* Ctrl-U: clear */
		ui->inlen = 0;
		return DONE;
	}
	if (!is_key && ch >= 32 && ch != 127 && ui->inlen < ANN_INPUT_MAX) {
		ui->inbuf[ui->inlen++] = (wchar_t)ch;
		ui->inbuf[ui->inlen] = 0;
		return DONE;
	}
	return ANN_KEY_HANDLED;
}

int ann_keys_handle(ann_ui *ui, int is_key, int ch)
{
	int r;
	if (!(!is_key && ch == 'q'))
		ui->quit_armed = 0;
	if (is_key && ch == KEY_RESIZE)
		return DONE;
	if (ui->too_small) {
		/* nothing on the screen to act on: only q (and Ctrl-C) leave */
		if (!is_key && ch == 'q')
			return quit_key(ui);
		return DONE;
	}
	if (ui->input != ANN_INPUT_NONE)
		return input_key(ui, is_key, ch);
	if (ui->overlay != ANN_OVERLAY_NONE) {
		if ((r = scroll_key(ui, is_key, ch)))
			return r;
		ui->overlay = ANN_OVERLAY_NONE;
		ui->ov.scroll = 0;
		return DONE;
	}
	if ((r = scroll_key(ui, is_key, ch)))
		return r;
	if (is_key) {
		switch (ch) {
		case KEY_LEFT:
		case KEY_SLEFT:
			return ui->mode == ANN_MODE_RANK ? ANN_KEY_HANDLED : do_side(ui, ANN_LEFT, ch == KEY_SLEFT);
		case KEY_RIGHT:
		case KEY_SRIGHT:
			return ui->mode == ANN_MODE_RANK ? ANN_KEY_HANDLED : do_side(ui, ANN_RIGHT, ch == KEY_SRIGHT);
		case KEY_BTAB:
			focus_move(ui, -1);
			return DONE;
		}
		return 0;
	}
	if (ui->mode == ANN_MODE_RANK && ch >= '1' && ch <= '9')
		return do_rank_pick(ui, (size_t)(ch - '1'));
	switch (ch) {
	case '1':
	case '!':
		return ui->mode == ANN_MODE_RANK ? ANN_KEY_HANDLED : do_side(ui, ANN_LEFT, ch == '!');
	case '2':
	case '@':
		return ui->mode == ANN_MODE_RANK ? ANN_KEY_HANDLED : do_side(ui, ANN_RIGHT, ch == '@');
	case 't':
		return ui->mode == ANN_MODE_RANK ? ANN_KEY_HANDLED : do_label(ui, ANN_TIE);
	case 'x':
		return ui->mode == ANN_MODE_RANK ? ANN_KEY_HANDLED : do_label(ui, ANN_BOTH_BAD);
	case 's':
		return do_label(ui, ANN_SKIP);
	case 'u':
		return do_undo(ui);
	case 'n':
		if (!ui->item)
			return ANN_KEY_HANDLED;
		/* the item's note so far (written earlier, or brought back by
		 * undo or review) is there to edit */
		ui->input = ANN_INPUT_NOTE;
		ui->inlen = utf8_to_wide(ui->inbuf, ANN_INPUT_MAX, ann_session_note(ui->s));
		ui->inbuf[ui->inlen] = 0;
		return DONE;
	case '/':
		ui->input = ANN_INPUT_SEARCH;
		ui->inlen = 0;
		ui->inbuf[0] = 0;
		return DONE;
	case 'd':
		if (ui->mode == ANN_MODE_RANK)
			return ANN_KEY_HANDLED;
		ui->diff_on = !ui->diff_on;
		ui->dirty = 1;
		ann_ui_message(ui, 0, "Word diff %s.", ui->diff_on ? "on" : "off");
		return DONE;
	case '\t':
		focus_move(ui, 1);
		return DONE;
	case '?':
		ui->overlay = ANN_OVERLAY_HELP;
		ui->ov.scroll = 0;
		return DONE;
	case 'g':
		ui->overlay = ANN_OVERLAY_GUIDELINES;
		ui->ov.scroll = 0;
		return DONE;
	case 12: /* Ctrl-L */
		return DONE | ANN_KEY_REPAINT;
	case 'q':
		return quit_key(ui);
	}
	return 0;
}

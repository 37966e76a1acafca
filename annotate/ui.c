/* ui.c: screen state and layout of dpo-annotate, without curses (see ui.h). */
#include "config.h"
#include "annotate/ui.h"
#include "util/progress.h"
#include "util/xmalloc.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const ann_keyhelp ann_key_help[] = {
	{"1  Left", "the left (upper) completion is better"},
	{"2  Right", "the right (lower) completion is better"},
	{"! @  Shift-arrows", "(--strength) left/right much better; 1 2 then: slightly"},
	{"t", "tie: both equally good"},
	{"x", "both are bad"},
	{"s", "skip (stored as a skip, not offered again)"},
	{"u", "undo the last label; repeat to go further back (or take back one waiting for the database)"},
	{"n", "note (rationale) on this item; shows its note to edit"},
	{"1..9  (rank mode)", "pick the best remaining; u takes a pick back"},
	{"d", "word-level diff highlight on/off"},
	{"Tab  Shift-Tab", "move the focus between the panes"},
	{"Up Down  j k", "scroll the focused pane by a line"},
	{"PgUp PgDn  Space", "scroll the focused pane by a page"},
	{"Home End", "top or bottom of the focused pane"},
	{"/", "search prompts; go to the next pending match"},
	{"g", "show the guidelines (--guidelines FILE)"},
	{"?", "show this help"},
	{"Ctrl-L", "redraw the screen"},
	{"q  Ctrl-C", "quit (every label is already saved)"},
	{NULL, NULL},
};

static double default_now(void)
{
	return util_now();
}

void ann_ui_init(ann_ui *ui, ann_session *s, int mode, const char *annotator, int show_judge,
		 int color, const char *guidelines)
{
	memset(ui, 0, sizeof *ui);
	ui->s = s;
	ui->mode = mode;
	ui->annotator = annotator;
	ui->show_judge = show_judge;
	ui->color = color;
	ui->guidelines = guidelines;
	ui->focus = ANN_PANE_LEFT;
	ui->dirty = 1;
	ui->item_key[0] = -2;
	ui->now = default_now;
}

static void pane_free(ann_pane *p)
{
	ann_text_free(&p->text);
	free(p->lines);
	p->lines = NULL;
	p->nlines = p->cap = 0;
}

void ann_ui_free(ann_ui *ui)
{
	for (int i = 0; i < ANN_NPANES; i++)
		pane_free(&ui->pane[i]);
	pane_free(&ui->ov);
}

void ann_ui_message(ann_ui *ui, int error, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ui->msg, sizeof ui->msg, fmt, ap);
	va_end(ap);
	ui->msg_error = error;
}

/* ---- texts ----------------------------------------------------------------------- */

/* Append s[0..n) to t without its leading blank lines and trailing
 * whitespace (HH transcripts open with "\n\n"). */
static void add_trimmed(ann_text *t, const char *s, size_t n, unsigned char mark)
{
	size_t a = 0;
	for (size_t i = 0; i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'); i++)
		if (s[i] == '\n')
			a = i + 1;
	while (n > a && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		n--;
	if (a > 0 || n < strlen(s)) {
		char *c = xstrndup(s + a, n - a);
		ann_text_add_utf8(t, c, mark);
		free(c);
	} else {
		ann_text_add_utf8(t, s, mark);
	}
}

/* The next HH role marker ("\n\nHuman:" or "\n\nAssistant:") in s, its
 * length in *len and which it is in *human; NULL when there is none. */
static const char *hh_next(const char *s, size_t *len, int *human)
{
	const char *h = strstr(s, "\n\nHuman:"), *a = strstr(s, "\n\nAssistant:");
	if (!h && !a)
		return NULL;
	*human = h && (!a || h < a);
	*len = *human ? sizeof "\n\nHuman:" - 1 : sizeof "\n\nAssistant:" - 1;
	return *human ? h : a;
}

/* Is text an HH transcript ("\n\nHuman: ... \n\nAssistant: ...")? */
static int is_hh(const char *text)
{
	return !strncmp(text + strspn(text, "\n"), "Human:", 6) && strstr(text, "\n\nAssistant:") != NULL;
}

/* An HH transcript turn by turn as "H: ..." and "A: ...", without the empty
 * final "Assistant:" that the completions answer. */
static void add_hh(ann_text *t, const char *text)
{
	const char *body = text + strspn(text, "\n") + 6;
	int human = 1, first = 1;
	for (;;) {
		size_t nlen = 0;
		int nhuman = 0;
		const char *next = hh_next(body, &nlen, &nhuman);
		size_t blen = next ? (size_t)(next - body) : strlen(body);
		size_t lead = strspn(body, " ");
		if (next || blen > lead) {
			if (!first)
				ann_text_add_utf8(t, "\n", 0);
			ann_text_add_utf8(t, human ? "H: " : "A: ", ANN_MARK_HEAD);
			add_trimmed(t, body + lead, blen > lead ? blen - lead : 0, 0);
			first = 0;
		}
		if (!next)
			break;
		body = next + nlen;
		human = nhuman;
	}
}

static void build_prompt(ann_ui *ui, const ann_item *it)
{
	ann_text *t = &ui->pane[ANN_PANE_PROMPT].text;
	ann_text_reset(t);
	if (!it) {
		char buf[256];
		ann_stats st;
		ann_session_stats(ui->s, &st);
		snprintf(buf, sizeof buf,
			 "Nothing left to label: %zu labeled in this session.\n\n"
			 "Press u to undo the last label, q to quit.",
			 st.done);
		ann_text_add_utf8(t, buf, ANN_MARK_HEAD);
		return;
	}
	for (size_t i = 0; i < it->nturns; i++) {
		const char *c = it->turns[i].content;
		if (i)
			ann_text_add_utf8(t, "\n", 0);
		if (it->nturns == 1 && !strcmp(it->turns[i].role, "user") && is_hh(c)) {
			add_hh(t, c);
			continue;
		}
		if (it->nturns > 1 || strcmp(it->turns[i].role, "user")) {
			ann_text_add_utf8(t, it->turns[i].role, ANN_MARK_HEAD);
			ann_text_add_utf8(t, ": ", ANN_MARK_HEAD);
		}
		add_trimmed(t, c, strlen(c), 0);
	}
	if (ui->mode == ANN_MODE_REVIEW) {
		ann_text_add_utf8(t, "\n\nVerdicts on this pair:", ANN_MARK_HEAD);
		for (size_t i = 0; i < it->nverdicts; i++) {
			const ann_verdict *v = &it->verdicts[i];
			char *line = xasprintf("\n  %s (%s): %s", v->annotator, v->kind, v->verdict);
			ann_text_add_utf8(t, line, ANN_MARK_DIM);
			free(line);
			if (v->rationale) {
				ann_text_add_utf8(t, " — ", ANN_MARK_DIM);
				ann_text_add_utf8(t, v->rationale, ANN_MARK_DIM);
			}
		}
	}
}

static int rank_of(const ann_ui *ui, size_t idx)
{
	for (size_t r = 0; r < ui->nrank; r++)
		if (ui->rank[r] == idx)
			return (int)r + 1;
	return 0;
}

static void build_cands(ann_ui *ui, const ann_item *it)
{
	ann_text *l = &ui->pane[ANN_PANE_LEFT].text, *r = &ui->pane[ANN_PANE_RIGHT].text;
	ann_text_reset(l);
	ann_text_reset(r);
	if (!it)
		return;
	if (ui->mode == ANN_MODE_RANK) {
		for (size_t i = 0; i < it->ncands; i++) {
			char head[64];
			int rk = rank_of(ui, i);
			if (rk)
				snprintf(head, sizeof head, "%s[%zu]  ranked #%d\n", i ? "\n\n" : "", i + 1, rk);
			else
				snprintf(head, sizeof head, "%s[%zu]\n", i ? "\n\n" : "", i + 1);
			ann_text_add_utf8(l, head, ANN_MARK_HEAD);
			ann_text_add_utf8(l, it->cands[i].text, rk ? ANN_MARK_DIM : 0);
		}
		return;
	}
	ann_text_add_utf8(l, it->cands[0].text, 0);
	ann_text_add_utf8(r, it->cands[1].text, 0);
	ui->diff_approx = 0;
	if (ui->diff_on)
		ann_worddiff_bounded(l, r, 0, &ui->diff_approx);
}

static void build_overlay(ann_ui *ui)
{
	ann_text *t = &ui->ov.text;
	ann_text_reset(t);
	if (ui->overlay == ANN_OVERLAY_HELP) {
		snprintf(ui->ov.title_str, sizeof ui->ov.title_str, " Keys (arrows scroll, any other key closes) ");
		for (const ann_keyhelp *k = ann_key_help; k->keys; k++) {
			char *line = xasprintf("%s%-18s", k == ann_key_help ? "" : "\n", k->keys);
			ann_text_add_utf8(t, line, ANN_MARK_HEAD);
			ann_text_add_utf8(t, k->what, 0);
			free(line);
		}
	} else {
		snprintf(ui->ov.title_str, sizeof ui->ov.title_str,
			 " Guidelines (arrows scroll, any other key closes) ");
		ann_text_add_utf8(t, ui->guidelines ? ui->guidelines : "No guidelines: start with --guidelines FILE.", 0);
	}
}

/* ---- layout ---------------------------------------------------------------------------- */

static void wrap_pane(ann_pane *p)
{
	int w = p->body.w > 0 ? p->body.w : 1;
	p->nlines = ann_wrap(p->text.w, p->text.n, w, &p->lines, &p->cap);
	int max = (int)p->nlines - p->body.h;
	if (p->scroll > max)
		p->scroll = max;
	if (p->scroll < 0)
		p->scroll = 0;
}

/* The rows the wrapped text of p needs at width w (wraps p at that width). */
static int wrapped_rows(ann_pane *p, int w)
{
	p->nlines = ann_wrap(p->text.w, p->text.n, w > 0 ? w : 1, &p->lines, &p->cap);
	return (int)p->nlines;
}

/* The rows the completions need to be shown whole at cols columns, titles
 * included. */
static int cands_need(ann_ui *ui, int cols)
{
	ann_pane *l = &ui->pane[ANN_PANE_LEFT], *r = &ui->pane[ANN_PANE_RIGHT];
	if (ui->mode == ANN_MODE_RANK)
		return 1 + wrapped_rows(l, cols);
	if (ui->side_by_side) {
		int lw = (cols - 1) / 2, nl = wrapped_rows(l, lw), nr = wrapped_rows(r, cols - 1 - lw);
		return 1 + (nl > nr ? nl : nr);
	}
	return 2 + wrapped_rows(l, cols) + wrapped_rows(r, cols);
}

static void titles(ann_ui *ui, const ann_item *it)
{
	ann_pane *l = &ui->pane[ANN_PANE_LEFT], *r = &ui->pane[ANN_PANE_RIGHT];
	l->title_str[0] = r->title_str[0] = 0;
	if (!it)
		return;
	if (ui->mode == ANN_MODE_RANK) {
		char picks[64] = "";
		size_t off = 0;
		for (size_t i = 0; i < ui->nrank && off < sizeof picks - 8; i++)
			off += (size_t)snprintf(picks + off, sizeof picks - off, "%s%zu", i ? " > " : "", ui->rank[i] + 1);
		if (it->ncands > ANN_RANK_MAX)
			snprintf(l->title_str, sizeof l->title_str,
				 "%zu completions: more than %d cannot be ranked here (s skips)", it->ncands,
				 ANN_RANK_MAX);
		else
			snprintf(l->title_str, sizeof l->title_str, "%zu completions: press the number of the best remaining%s%s",
				 it->ncands, ui->nrank ? "  | so far: " : "", picks);
		return;
	}
	snprintf(l->title_str, sizeof l->title_str, "%s [1/Left]", ui->side_by_side ? "Left" : "Upper (left)");
	snprintf(r->title_str, sizeof r->title_str, "%s [2/Right]", ui->side_by_side ? "Right" : "Lower (right)");
}

void ann_ui_prepare(ann_ui *ui, int rows, int cols)
{
	const ann_item *it = ann_session_current(ui->s);
	if (!it && ann_session_errmsg(ui->s)[0])
		ann_ui_message(ui, 1, "%s", ann_session_errmsg(ui->s));
	int64_t key[3] = {-1, -1, -1};
	if (it) {
		key[0] = (int64_t)it->index;
		key[1] = it->prompt_id;
		key[2] = it->cands[0].id;
	}
	int changed = memcmp(key, ui->item_key, sizeof key) != 0;
	if (changed) {
		memcpy(ui->item_key, key, sizeof key);
		for (int i = 0; i < ANN_NPANES; i++)
			ui->pane[i].scroll = 0;
		/* the prompt opens at its end: the turn the completions answer
		 * (wrap_pane clamps this to the last page; scroll up for the rest) */
		ui->pane[ANN_PANE_PROMPT].scroll = 1 << 30;
		ui->nrank = 0;
		ui->shown_at = ui->now();
	}
	ui->item = it;
	if (!it)
		ui->focus = ANN_PANE_PROMPT;
	else if (ui->focus == ANN_PANE_RIGHT && ui->mode == ANN_MODE_RANK)
		ui->focus = ANN_PANE_LEFT;
	if (changed || ui->dirty) {
		build_prompt(ui, it);
		build_cands(ui, it);
		ui->dirty = 0;
	}

	ui->rows = rows;
	ui->cols = cols;
	ui->too_small = rows < 10 || cols < 30;
	ui->side_by_side = ui->mode != ANN_MODE_RANK && cols >= ANN_SIDE_BY_SIDE_COLS;
	titles(ui, it);
	ui->header = (ann_rect){0, 0, 1, cols};
	ui->status = (ann_rect){rows - 1, 0, 1, cols};
	ui->info = (ann_rect){rows - 2, 0, 1, cols};
	for (int i = 0; i < ANN_NPANES; i++)
		ui->pane[i].title = ui->pane[i].body = (ann_rect){0, 0, 0, 0};
	if (ui->too_small)
		return;

	int H = rows - 3, top = 1;
	ann_pane *pp = &ui->pane[ANN_PANE_PROMPT], *l = &ui->pane[ANN_PANE_LEFT], *r = &ui->pane[ANN_PANE_RIGHT];
	int cmin = ui->mode == ANN_MODE_RANK || ui->side_by_side ? 4 : 6;
	if (!it)
		cmin = 0;
	/* the prompt takes what it needs, up to a third of the screen or what
	 * the completions leave empty, whichever is more (all of it when done) */
	pp->body = (ann_rect){top, 0, H, cols};
	pp->nlines = ann_wrap(pp->text.w, pp->text.n, cols, &pp->lines, &pp->cap);
	int hp = (int)pp->nlines;
	int cap = it ? (H / 3 > 3 ? H / 3 : 3) : H;
	int need = it ? cands_need(ui, cols) : 0;
	if (it && H - need > cap)
		cap = H - need;
	if (hp > cap)
		hp = cap;
	if (hp > H - cmin)
		hp = H - cmin;
	if (hp < 1)
		hp = 1;
	pp->body.h = hp;
	wrap_pane(pp);
	if (ui->overlay != ANN_OVERLAY_NONE) {
		build_overlay(ui);
		ui->ov.title = (ann_rect){1, 2, 1, cols - 4};
		ui->ov.body = (ann_rect){2, 3, rows - 5, cols - 6};
		wrap_pane(&ui->ov);
	}
	if (!it)
		return;
	int y0 = top + hp, hc = H - hp;
	if (ui->mode == ANN_MODE_RANK) {
		l->title = (ann_rect){y0, 0, 1, cols};
		l->body = (ann_rect){y0 + 1, 0, hc - 1, cols};
	} else if (ui->side_by_side) {
		int lw = (cols - 1) / 2, rw = cols - 1 - lw;
		l->title = (ann_rect){y0, 0, 1, lw};
		r->title = (ann_rect){y0, lw + 1, 1, rw};
		l->body = (ann_rect){y0 + 1, 0, hc - 1, lw};
		r->body = (ann_rect){y0 + 1, lw + 1, hc - 1, rw};
	} else {
		/* two stacked panes: each gets what it needs when both fit, else
		 * the shorter one what it needs up to half and the other the rest */
		int avail = hc - 2, nl = wrapped_rows(l, cols), nr = wrapped_rows(r, cols);
		int h1 = (avail + 1) / 2;
		if (nl + nr <= avail)
			h1 = nl + (avail - nl - nr) / 2;
		else if (nl < h1)
			h1 = nl;
		else if (nr < avail - h1)
			h1 = avail - nr;
		if (h1 < 1)
			h1 = 1;
		if (h1 > avail - 1)
			h1 = avail - 1;
		int h2 = avail - h1;
		l->title = (ann_rect){y0, 0, 1, cols};
		l->body = (ann_rect){y0 + 1, 0, h1, cols};
		r->title = (ann_rect){y0 + 1 + h1, 0, 1, cols};
		r->body = (ann_rect){y0 + 2 + h1, 0, h2, cols};
	}
	wrap_pane(l);
	if (ui->mode != ANN_MODE_RANK)
		wrap_pane(r);
}

static const char *pending_name(int p)
{
	switch (p - 1) {
	case ANN_LEFT: return "left better";
	case ANN_RIGHT: return "right better";
	case ANN_TIE: return "tie";
	case ANN_BOTH_BAD: return "both bad";
	case ANN_SKIP: return "skip";
	}
	return "ranking";
}

void ann_ui_waiting(ann_ui *ui)
{
	if (!ui->wait_since)
		ui->wait_since = ui->now();
	ann_ui_message(ui, 1, "Waiting for the database… (%s kept, retried until saved; u takes it back, q quits)",
		       pending_name(ann_session_pending(ui->s)));
}

int ann_ui_tick(ann_ui *ui)
{
	int p = ann_session_pending(ui->s);
	if (!p)
		return 0;
	int rc = ann_session_retry(ui->s);
	if (rc == ANN_EBUSY) {
		if (ui->quit_armed) /* keep saying what a second q does */
			ann_ui_message(ui, 1, "A label is still waiting (%.0f s): q again quits without it, "
				       "any other key waits.", ui->now() - ui->wait_since);
		else
			ann_ui_message(ui, 1, "Waiting for the database… %.0f s (%s kept, retried until saved; "
				       "u takes it back, q quits)", ui->now() - ui->wait_since, pending_name(p));
		return 1;
	}
	ui->wait_since = 0;
	ui->dirty = 1;
	if (rc < 0)
		ann_ui_message(ui, 1, "Not saved: %s", ann_session_errmsg(ui->s));
	else
		ann_ui_message(ui, 0, "Saved: %s (the database is free again).", pending_name(p));
	return 1;
}

void ann_ui_status(const ann_ui *ui, char *out, size_t n)
{
	ann_stats st;
	char eta[16] = "-", rate[32] = "-", judge[48] = "", total[32];
	ann_session_stats(ui->s, &st);
	if (st.eta_s >= 0)
		util_format_duration(st.eta_s, eta, sizeof eta);
	if (st.per_hour > 0)
		snprintf(rate, sizeof rate, "%.0f/h", st.per_hour);
	snprintf(total, sizeof total, "%zu%s", st.total, st.total_known ? "" : "+");
	if (ui->show_judge) {
		if (st.judge_total)
			snprintf(judge, sizeof judge, " | judge agree %ld/%ld %.0f%%", st.judge_agree,
				 st.judge_total, 100.0 * (double)st.judge_agree / (double)st.judge_total);
		else
			snprintf(judge, sizeof judge, " | judge agree -");
	}
	const char *mode = ui->mode == ANN_MODE_REVIEW ? "review " : ui->mode == ANN_MODE_RANK ? "rank " : "";
	if (st.position)
		snprintf(out, n, " %s%s | item %zu/%s | done %zu/%s | %s | ETA %s%s%s%s | ? help", mode,
			 ui->annotator, st.position, total, st.done, total, rate, eta, judge,
			 ann_session_note(ui->s) ? " | note set" : "",
			 ann_session_pending(ui->s) ? " | waiting for the database…" : "");
	else
		snprintf(out, n, " %s%s | finished | done %zu/%s | %s%s | ? help", mode, ui->annotator, st.done,
			 total, rate, judge);
}

/* ui.h: the screen state of dpo-annotate and its layout, without curses.
 *
 * One loop (dpo-annotate.c) owns the screen: it calls ann_ui_prepare to
 * lay the screen out for the current item and terminal size, a view
 * (view.c, view_overlay.c) to draw, and ann_keys_handle for each key. Key
 * handlers change this state and the session, and return ANN_KEY_* flags;
 * they never draw. Views only draw. */
#ifndef DPO_ANN_UI_H
#define DPO_ANN_UI_H
#include <stddef.h>
#include <stdint.h>
#include <wchar.h>
#include "annotate/session.h"
#include "annotate/text.h"

/* Flags returned by key handlers. */
enum {
	ANN_KEY_HANDLED = 1, /* the key meant something */
	ANN_KEY_REDRAW = 2,  /* the screen must be drawn again */
	ANN_KEY_QUIT = 4,    /* leave the program */
	ANN_KEY_REPAINT = 8, /* repaint every cell (the terminal may hold garbage) */
};

/* Panes that scroll. In rank mode ANN_PANE_LEFT holds every completion. */
enum { ANN_PANE_PROMPT, ANN_PANE_LEFT, ANN_PANE_RIGHT, ANN_NPANES };

enum { ANN_OVERLAY_NONE, ANN_OVERLAY_HELP, ANN_OVERLAY_GUIDELINES };
enum { ANN_INPUT_NONE, ANN_INPUT_NOTE, ANN_INPUT_SEARCH };

/* Terminal width from which the two completions sit side by side. */
#define ANN_SIDE_BY_SIDE_COLS 100
/* Completions a ranking can order with the digit keys. */
#define ANN_RANK_MAX 9
/* Longest note or search text, in characters. */
#define ANN_INPUT_MAX 400

typedef struct ann_rect {
	int y, x, h, w;
} ann_rect;

typedef struct ann_pane {
	ann_text text;
	ann_line *lines;
	size_t nlines, cap;
	ann_rect title; /* h == 0: no title row */
	ann_rect body;  /* h == 0: hidden */
	char title_str[160];
	int scroll;     /* first line shown */
} ann_pane;

/* One key of the help screen. */
typedef struct ann_keyhelp {
	const char *keys, *what;
} ann_keyhelp;

/* The keys, for the help screen and the manual; ends with {NULL, NULL}. */
extern const ann_keyhelp ann_key_help[];

typedef struct ann_ui {
	ann_session *s;        /* borrowed */
	int mode;              /* enum ann_mode */
	const char *annotator; /* borrowed */
	int show_judge;
	int strength;          /* --strength: 1/2 slightly, ! @ (Shift) much better */
	int color;             /* colours allowed (the view decides if the terminal has them) */
	const char *guidelines; /* text of --guidelines, or NULL (borrowed) */

	int rows, cols;
	int too_small;         /* the terminal cannot hold the layout */
	int side_by_side;
	int focus;             /* ANN_PANE_* */
	int diff_on;
	int diff_approx;       /* the diff gave up aligning (texts too different) */
	ann_pane pane[ANN_NPANES];
	ann_rect header, info, status;

	const ann_item *item;  /* current item, NULL when done */
	int dirty;             /* the item or its texts must be rebuilt */
	int64_t item_key[3];   /* identifies the item the texts were built for */
	double shown_at;       /* when the current item first appeared (util_now) */
	size_t rank[ANN_RANK_MAX]; /* rank mode: display indexes picked, best first */
	size_t nrank;

	int overlay;           /* ANN_OVERLAY_* */
	ann_pane ov;           /* the overlay's text */

	int input;             /* ANN_INPUT_* */
	wchar_t inbuf[ANN_INPUT_MAX + 1];
	size_t inlen;

	double wait_since;     /* a label waits for the database since then (0: none) */
	int quit_armed;        /* q pressed once while a label waits */

	char msg[512];         /* the info line's message ("" for the hint) */
	int msg_error;
	double (*now)(void);   /* clock (util_now; tests may replace it) */
} ann_ui;

/* Set up ui for session s (borrowed). Free with ann_ui_free. */
void ann_ui_init(ann_ui *ui, ann_session *s, int mode, const char *annotator, int show_judge,
		 int color, const char *guidelines);
/* Free what ann_ui_init and ann_ui_prepare allocated (not ui itself). */
void ann_ui_free(ann_ui *ui);

/* Lay the screen out for a rows x cols terminal and the session's current
 * item: rebuild the texts when the item changed or ui->dirty is set, wrap
 * them to their panes and clamp the scroll positions. Draws nothing. */
void ann_ui_prepare(ann_ui *ui, int rows, int cols);

/* Set the info line's message (printf style). */
void ann_ui_message(ann_ui *ui, int error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A label just found the database locked (the session keeps it): note
 * when the wait began and say so on the info line. */
void ann_ui_waiting(ann_ui *ui);
/* Idle work of the loop: retry a label waiting for the database, updating
 * the message. Returns 1 when the screen should be drawn again. */
int ann_ui_tick(ann_ui *ui);

/* Format the status line into out (n bytes). */
void ann_ui_status(const ann_ui *ui, char *out, size_t n);

/* Handle one key: ch is a character (is_key 0) or a curses KEY_* code
 * (is_key 1). Changes ui and the session; never draws. Returns ANN_KEY_*. */
int ann_keys_handle(ann_ui *ui, int is_key, int ch);

/* Draw the whole screen from ui (curses; view.c). */
void ann_view_draw(const ann_ui *ui);
/* Draw the help or guidelines overlay on top (view_overlay.c). */
void ann_view_overlay(const ann_ui *ui);
/* Set up colours if ui->color and the terminal has them (view.c). */
void ann_view_init_colors(ann_ui *ui);

#endif

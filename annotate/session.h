/* session.h: the annotation session model of dpo-annotate: the work queue,
 * the item on screen, labels, undo, overlap rules, rank mode and review.
 *
 * It talks to the store (store.h) and never to the terminal: everything here
 * is unit-tested without curses. Every label is committed to the store the
 * moment it is made, so quitting or a crash loses nothing already labeled,
 * and a new session resumes at the first pair this annotator has not judged.
 *
 * Conventions: functions return ANN_OK (0) or a negative ANN_E* code; the
 * handle keeps a message for the last error (ann_session_errmsg). */
#ifndef DPO_ANN_SESSION_H
#define DPO_ANN_SESSION_H
#include <stddef.h>
#include <stdint.h>
#include "store/store.h"

typedef struct ann_session ann_session;

enum {
	ANN_OK = 0,
	ANN_ERR = -1,       /* store failure; see ann_session_errmsg */
	ANN_EBUSY = -2,     /* the database stayed locked through every retry */
	ANN_EINVAL = -3,    /* bad argument (message says which) */
	ANN_ENOITEM = -4,   /* no current item (queue finished) */
	ANN_ENOUNDO = -5,   /* nothing to undo in this session */
	ANN_ENOTFOUND = -6, /* search found nothing */
};

enum ann_mode {
	ANN_MODE_PAIR,   /* label two completions */
	ANN_MODE_RANK,   /* order the K completions of a prompt */
	ANN_MODE_REVIEW, /* settle pairs on which annotators disagree */
};

/* Uncertain: first the pairs a judge labelled inconsistently across the two
 * orders, then those on which judges disagree, then those with the smallest
 * |DPO implicit-reward margin| (ann_session_set_margins), then the rest; each
 * group in the sequential order. */
enum ann_order { ANN_ORDER_SEQUENTIAL, ANN_ORDER_RANDOM, ANN_ORDER_UNCERTAIN };

/* A verdict as the annotator sees it, relative to the screen. */
enum ann_label {
	ANN_LEFT,     /* the left (first shown) completion is better */
	ANN_RIGHT,    /* the right (second shown) one is better */
	ANN_TIE,
	ANN_BOTH_BAD,
	ANN_SKIP,
};

/* How long a session's claim on the pair it shows lives (seconds); it is
 * renewed while the pair stays on screen, and expires when the session
 * dies. */
#define ANN_CLAIM_TTL_S 240

typedef struct ann_options {
	const char *annotator; /* human annotator name (required) */
	int mode;              /* enum ann_mode */
	int order;             /* enum ann_order */
	uint64_t seed;         /* queue order (random) and left/right placement */
	const char *split;     /* NULL: any */
	const char *source;    /* NULL: any */
	int overlap;           /* each pair goes to up to this many humans (>= 1) */
	long limit;            /* at most this many queue entries (<= 0: all) */
	int show_judge;        /* reveal judge verdicts after each label */
	int retries;           /* extra tries of a write on STORE_EBUSY (< 0: default 50) */
	/* pair mode: the share of the queue (0 <= r < 1) made of gold items
	 * (store_gold_add) this annotator has not labelled, mixed in at
	 * positions and in an order fixed by the seed, shown like any pair and
	 * to every annotator whatever the overlap; 0: none */
	double gold_rate;
} ann_options;

/* One turn of the prompt (a plain prompt is one "user" turn). */
typedef struct ann_turn {
	char *role;
	char *content;
} ann_turn;

/* One completion on screen, in display order. */
typedef struct ann_cand {
	int64_t id;
	char *text;
	char *generator;
} ann_cand;

/* A verdict already given on the shown pair (review mode, judge reveal),
 * relative to the screen: verdict is "left", "right", "tie", "both bad" or
 * "skip". */
typedef struct ann_verdict {
	char *annotator;
	char *kind;      /* "human", "judge" or "import" */
	char *verdict;
	char *rationale; /* or NULL */
} ann_verdict;

/* The item on screen. Owned by the session; valid until the next call that
 * moves the session (label, rank, undo, search, goto). */
typedef struct ann_item {
	size_t index;           /* position in the queue, 0-based */
	int64_t prompt_id;
	char *split, *source;
	ann_turn *turns;
	size_t nturns;
	ann_cand *cands;        /* pair/review: [0] left, [1] right; rank: all K */
	size_t ncands;
	ann_verdict *verdicts;  /* review: every verdict given on the pair */
	size_t nverdicts;
} ann_item;

/* Figures for the status line. */
typedef struct ann_stats {
	size_t position;       /* 1-based index of the current item, 0 when done */
	size_t total;          /* queue entries read so far */
	int total_known;       /* the whole queue has been read (total is final) */
	size_t done;           /* entries labeled in this session (skips included) */
	size_t remaining;      /* entries still to do */
	double per_hour;       /* labels per hour of labeling time (0 when unknown) */
	double eta_s;          /* seconds to finish at that rate (-1 when unknown) */
	long judge_total;      /* show-judge: labels that had a judge verdict */
	long judge_agree;      /* ... on which the human agreed with the judge */
} ann_stats;

/* A new session on an open store (borrowed; must outlive the session) with
 * options o (copied). Never NULL; load it with ann_session_load. */
ann_session *ann_session_new(store *st, const ann_options *o);
/* Free the session. NULL is allowed. Labels are already in the store. */
void ann_session_free(ann_session *s);
/* The message of the last error, "" if none. Owned by the session. */
const char *ann_session_errmsg(const ann_session *s);

/* Register the annotator and build the queue: pair mode, the pairs this
 * annotator has not judged and that fewer than `overlap` humans have
 * judged; rank mode, the prompts with such a pair; review mode, the pairs on
 * which humans disagree that this annotator has not settled. Then go to the
 * first available entry. Returns ANN_OK or a code. */
int ann_session_load(ann_session *s);

/* One pair's DPO implicit-reward margin (any scale; only |margin| counts). */
typedef struct ann_margin {
	int64_t completion_a, completion_b;
	double margin;
} ann_margin;

/* The pairs of the loaded queue, gold items aside, in queue order: a new
 * array (caller frees) of *n entries. For computing their margins. */
store_pair_ref *ann_session_queue_pairs(const ann_session *s, size_t *n);

/* Use margins m[0..n) (copied; the pair in either order) to order the queue
 * (ANN_ORDER_UNCERTAIN): call after ann_session_load and before any label;
 * the session goes back to the first entry. ANN_EINVAL after a label. */
int ann_session_set_margins(ann_session *s, const ann_margin *m, size_t n);

/* 1 when queue entry index (ann_item.index) is a gold item, else 0 (for
 * tests and statistics; the screen shows gold items like any other). */
int ann_session_entry_is_gold(const ann_session *s, size_t index);

/* Read up to about chunk (0: a default) more queue entries from the store
 * (sequential order reads the queue in chunks as the session advances; call
 * this when idle to learn the total). Returns 1 when more remain, 0 when
 * the whole queue is read, or a negative code. */
int ann_session_load_more(ann_session *s, size_t chunk);
/* Nonzero once the whole queue has been read. */
int ann_session_loaded_all(const ann_session *s);

/* The item on screen, or NULL when nothing is left (or on a store error:
 * then ann_session_errmsg is not empty). Fetching it (prompt,
 * completions, verdicts) is the "next-item" cost. Owned by the session. */
const ann_item *ann_session_current(ann_session *s);

/* Label the current pair (pair and review modes) with `label`, taking
 * duration_ms (-1: unknown) to decide. The note set with ann_session_set_note
 * becomes the rationale and is cleared. Committed at once; then the session
 * moves to the next available entry. ANN_ENOITEM when done, ANN_EINVAL in
 * rank mode. */
int ann_session_label(ann_session *s, int label, int64_t duration_ms);

/* ann_session_label with a strength: confidence (0..1, or NAN for none) is
 * stored with a left or right verdict (dpo-annotate --strength: 1.0 "much
 * better", 0.75 "slightly better"); other labels store none. */
int ann_session_label_strength(ann_session *s, int label, double confidence, int64_t duration_ms);
#define ANN_CONF_MUCH 1.0
#define ANN_CONF_SLIGHTLY 0.75

/* Rank the current item (rank mode): order[0..n) are display indexes into
 * item->cands, best first, each exactly once (n == ncands). Stored, in one
 * transaction, as the n(n-1)/2 implied comparisons. */
int ann_session_rank(ann_session *s, const size_t *order, size_t n, int64_t duration_ms);

/* Skip the current item: stored as "skip" comparisons (so a new session
 * does not offer it again), then move on. Works in every mode. */
int ann_session_skip(ann_session *s, int64_t duration_ms);

/* A label (or rank, or skip) that found the database locked past the
 * retries returns ANN_EBUSY and is kept, waiting: the item stays current,
 * nothing is stored yet, and ann_session_retry tries it again. A new label
 * of the item replaces the waiting one; undo and search refuse (ANN_EBUSY)
 * while one waits. */

/* What waits for the database: 0 nothing, else ANN_LEFT + 1 ..
 * ANN_SKIP + 1 for a label or skip, ANN_PENDING_RANK for a ranking. */
int ann_session_pending(const ann_session *s);
#define ANN_PENDING_RANK 100
/* Try the waiting write once more: ANN_OK when it is stored (the session
 * moved on) or none waits, ANN_EBUSY while the database stays locked (it
 * keeps waiting), another code on a failure (then it is dropped). */
int ann_session_retry(ann_session *s);
/* Forget the waiting write (nothing of it was stored). */
void ann_session_cancel_pending(ann_session *s);
/* Change the extra tries of a write on STORE_EBUSY (< 0: the default 50);
 * dpo-annotate sets 0 once loaded, and retries from its loop. */
void ann_session_set_retries(ann_session *s, int retries);

/* Undo the last label (or rank, or skip) of this session: its comparisons
 * are deleted (a review label restores the verdict it replaced) and the
 * session goes back to that item. Any number of steps. ANN_ENOUNDO when
 * nothing is left to undo. */
int ann_session_undo(ann_session *s);
/* Number of steps ann_session_undo can still take. */
size_t ann_session_undo_depth(const ann_session *s);

/* Set (copied) or clear (NULL or "") the note attached to the next label. */
void ann_session_set_note(ann_session *s, const char *note);
/* The pending note, or NULL. Owned by the session. */
const char *ann_session_note(const ann_session *s);

/* Go to the next pending entry (after the current one, wrapping) whose
 * prompt contains query (ASCII case-insensitive; conversations are searched
 * in their JSON form). ANN_ENOTFOUND (position unchanged) when none. */
int ann_session_search(ann_session *s, const char *query);

/* Figures for the status line. */
void ann_session_stats(const ann_session *s, ann_stats *out);

/* After a label with show_judge: the judges' verdicts on the pair just
 * labeled (relative to how it was shown), *n set to their count. Owned by
 * the session, valid until the next label/undo. */
const ann_verdict *ann_session_judge_verdicts(const ann_session *s, size_t *n);

/* The implied comparisons of a ranking: for order[0..n) (best first), writes
 * the n(n-1)/2 pairs (better, worse) into better[]/worse[] (as values of
 * order[]) and returns their number. */
size_t ann_rank_implied(const size_t *order, size_t n, size_t *better, size_t *worse);

/* Whether pair (a, b) of prompt p is shown with a on the left under seed:
 * a stable coin flip, the same in every session. */
int ann_left_is_a(uint64_t seed, int64_t prompt_id, int64_t a, int64_t b);

/* A stable 64-bit seed from a string (the default seed of an annotator). */
uint64_t ann_seed_from_string(const char *s);

#endif

/* progress.h: a progress line on stderr with rate and ETA. It redraws in
 * place when stderr is a terminal; otherwise it prints a line every few
 * seconds (see DESIGN.md). */
#ifndef DPO_PROGRESS_H
#define DPO_PROGRESS_H

typedef struct util_progress util_progress;

/* Start a progress line labelled label (copied); total may be 0 (unknown).
 * unit names what is counted ("pairs", "req"). Caller frees with _free. */
util_progress *util_progress_new(const char *label, double total, const char *unit);
/* Set the amount done and redraw if due. extra (may be NULL) is appended.
 * A NULL p (no progress wanted, e.g. -q) does nothing; so does _finish. */
void util_progress_update(util_progress *p, double done, const char *extra);
/* Draw the final state and end the line. */
void util_progress_finish(util_progress *p);
/* Free (NULL allowed). Does not print. */
void util_progress_free(util_progress *p);
/* Format seconds as "1h02m", "3m05s" or "12s" into out (at least 16 bytes). */
void util_format_duration(double seconds, char *out, unsigned long n);
/* Monotonic time in seconds. */
double util_now(void);

#endif

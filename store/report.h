/* report.h: an HTML report of a preference store (part of store/libstore.a).
 *
 * One self-contained page: inline CSS and SVG, no script, no external
 * reference. Sections: counts, the label distribution (overall and per
 * annotator), annotator agreement (Cohen's kappa per pair of annotators,
 * Krippendorff's alpha), the judges' position bias and consistency across
 * the two orders, the training curves of every "train" run (loss,
 * rewards/margins, rewards/accuracies) and the results of "eval" runs. */
#ifndef DPO_STORE_REPORT_H
#define DPO_STORE_REPORT_H
#include "store/store.h"
#include "util/buf.h"

/* Append the report of the open store st to out; title (may be NULL) goes
 * into the page title and heading. Returns STORE_OK or the store's error
 * code (message in store_errmsg). */
int store_report_html(store *st, const char *title, util_buf *out);

/* Append s to out with &, <, >, " and ' escaped for HTML text and attribute
 * values. NULL appends nothing. */
void store_report_escape(util_buf *out, const char *s);

/* Append the report's section on gold items (store_gold.c): per annotator,
 * verdicts on gold items and the share that named the known answer.
 * Nothing when the store has no gold item. STORE_OK or a code. */
int store_report_gold_html(store *st, util_buf *out);

#endif

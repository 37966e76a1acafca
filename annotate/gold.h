/* gold.h: reading gold items for dpo-annotate --gold: pairs with a known
 * answer, in any shape `dpo-db import` reads a labelled pair in (TRL
 * prompt/chosen/rejected, HH, UltraFeedback binarized, ShareGPT, ...), parsed
 * by the import parser (store/import.h). Curses-free. */
#ifndef DPO_ANN_GOLD_H
#define DPO_ANN_GOLD_H
#include "store/store.h"

/* Add the gold items of the JSON Lines file at path (plain or gzip) to the
 * store: each record's prompt and its two completions (reused when already
 * there; new prompts go to split "gold", source "gold"), and the pair marked
 * with store_gold_add, the chosen completion as the answer. The record's
 * label itself is not stored as a comparison. All in one transaction:
 * nothing is written when a line fails. *added / *known (may be NULL) get
 * the items new to the store and those marked already. Returns 0, or -1
 * with a message (caller frees) naming the file and line in *err. */
int ann_gold_import(store *st, const char *path, long *added, long *known, char **err);

#endif

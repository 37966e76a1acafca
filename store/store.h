/* store.h: the SQLite preference store, the only code in dpo that writes SQL.
 *
 * One file holds prompts, completions (with who generated them), annotators
 * (humans, judges, imports), comparisons (every label is one), derived
 * preference pairs, runs and metrics, the judge's request cache and the
 * trainer's reference log-prob cache. See ../shared/DESIGN.md.
 *
 * Conventions: functions return STORE_OK (0) or a negative STORE_E* code;
 * the handle keeps a human-readable message for the last error
 * (store_errmsg). Strings passed in are copied; strings handed out are owned
 * as each comment says. */
#ifndef DPO_STORE_H
#define DPO_STORE_H
#include <stddef.h>
#include <stdint.h>

typedef struct store store;

enum {
	STORE_OK = 0,
	STORE_ERR = -1,       /* generic failure; see store_errmsg */
	STORE_EBUSY = -2,     /* the database stayed locked past the busy timeout */
	STORE_ENOTFOUND = -3, /* no such row */
	STORE_EINVAL = -4,    /* bad argument or bad data (message says which) */
	STORE_ECORRUPT = -5,  /* not a dpo database, or damaged */
	STORE_EVERSION = -6,  /* written by a newer dpo (schema version too high) */
};

/* ---- a record to import: one prompt, its completions, and labels ------- */

/* One message of a conversation. */
typedef struct store_msg {
	const char *role;    /* "system", "user" or "assistant" */
	const char *content;
} store_msg;

/* One completion of the record's prompt. */
typedef struct store_rec_completion {
	const char *text;
	const char *model;   /* who generated it, or NULL (then the import source) */
} store_rec_completion;

/* One label between two of the record's completions (indexes into
 * completions[]). verdict is "a" (a better), "b", "tie" or "both_bad". */
typedef struct store_rec_label {
	int a, b;
	const char *verdict;
} store_rec_label;

/* A parsed input record. Either prompt_text or (messages, nmessages) is set.
 * All pointers are borrowed for the duration of the call. */
typedef struct store_record {
	const char *prompt_text;
	const store_msg *messages;
	size_t nmessages;
	const store_rec_completion *completions;
	size_t ncompletions;
	const store_rec_label *labels;
	size_t nlabels;
} store_record;

/* Counters filled by store_add_record (added to, never reset). */
typedef struct store_import_counts {
	long records;             /* records seen */
	long prompts_new, prompts_dup;
	long completions_new, completions_dup;
	long comparisons_new, comparisons_dup;
} store_import_counts;

/* ---- opening ------------------------------------------------------------ */

/* A new, closed handle. Never NULL. Free with store_free. */
store *store_new(void);
/* Open (and create if missing) the database at path: WAL, foreign keys, a
 * busy timeout, and the schema migrated to the current version. Returns
 * STORE_OK or a negative code (message in store_errmsg). */
int store_open(store *st, const char *path);
/* Close the database and free the handle. NULL is allowed. */
void store_free(store *st);
/* The message of the last error, "" if none. Owned by the handle. */
const char *store_errmsg(const store *st);
/* The schema version this build writes. */
int store_schema_version(void);

/* ---- transactions ------------------------------------------------------- */

/* Start an immediate (write) transaction. Returns STORE_OK or a code. */
int store_begin(store *st);
/* Commit the open transaction. */
int store_commit(store *st);
/* Roll back the open transaction (safe to call when none is open). */
int store_rollback(store *st);

/* ---- importing ---------------------------------------------------------- */

/* Add one parsed record from import source `source` (e.g. "hh-rlhf") into
 * split `split` (NULL: "train"). Prompts and completions already present
 * (same content hash) are reused and counted as duplicates; each label
 * becomes a comparison by annotator "import:<source>" unless that
 * comparison exists already. Must run inside store_begin/store_commit.
 * Returns STORE_OK or STORE_EINVAL (message names the bad field). */
int store_add_record(store *st, const store_record *rec, const char *source,
		     const char *split, store_import_counts *counts);

#endif

/* provenance.h: where the store's rows came from, and taking them back.
 *
 * Every `dpo-db import` FILE is a run of kind "import" (runs table) with the
 * file it read (import_files: absolute path, size, SHA-256 of its bytes,
 * format, source, split), its options as the run's params and its counts
 * as the run's summary. Each imported record leaves provenance rows: which
 * prompt, completions and comparisons it referred to, from which line (the
 * record's index in a JSON array) and with the file's own id of the record
 * (question_id, source_index, id or prompt_id), and whether it added them.
 * store_remove takes back what a run, a source or an annotator added. */
#ifndef DPO_STORE_PROVENANCE_H
#define DPO_STORE_PROVENANCE_H
#include "store/store.h"
#include "util/buf.h"

/* The file of an import run. */
typedef struct store_import_file_info {
	const char *path;   /* absolute path, or "-" for standard input */
	long long size;     /* bytes, or -1 (standard input) */
	const char *sha256; /* 64 hex digits of the file's bytes, or NULL (standard input) */
	const char *source; /* the source name the import uses */
	const char *split;  /* the split of new prompts */
} store_import_file_info;

/* SHA-256 of the bytes of the file at path (as stored: a .gz is hashed
 * compressed) into hex, its size into *size. 0, or -1 with errno set. */
int store_file_sha256(const char *path, char hex[65], long long *size);

/* Start an import run (store_run_start with kind "import": the command
 * line argv[0..argc-1], params_json the options) and record its file, in
 * one transaction of its own (none may be open). The id goes to *run_id.
 * STORE_OK or a code (message in the handle). */
int store_import_run_begin(store *st, int argc, char **argv, const char *params_json,
			   const store_import_file_info *fi, int64_t *run_id);
/* Record the size and SHA-256 (hex) of an import run's file, hashed while
 * it was imported. Own transaction (or the caller's). STORE_OK or a code. */
int store_import_run_file_hash(store *st, int64_t run_id, long long size, const char *sha256);
/* End an import run: its status ("ok", "failed" or "interrupted"), the
 * format used (may be NULL) and the summary JSON (counts). Own
 * transaction. STORE_OK or a code. */
int store_import_run_end(store *st, int64_t run_id, const char *status, const char *format,
			 const char *summary_json);

/* An import run's file as handed to callbacks (strings valid during the
 * callback; format NULL until the run ended). */
typedef int (*store_import_file_cb)(void *ud, int64_t run_id, const store_import_file_info *fi,
				    const char *format);
/* Visit the files of every import run, in run id order. */
int store_import_files_foreach(store *st, store_import_file_cb cb, void *ud);

/* ---- remove ------------------------------------------------------------------ */

/* What to take back: exactly one of run_id (> 0), source and annotator. */
typedef struct store_remove_spec {
	int64_t run_id;        /* the comparisons this run made, and the prompts and
				* completions its records added */
	const char *source;    /* every import run of this source, and the rows of
				* annotator import:SOURCE, generator (import, SOURCE)
				* and prompts of this source that no run recorded
				* (imported before provenance was kept) */
	const char *annotator; /* the comparisons of this annotator (labels only) */
} store_remove_spec;

/* What store_remove deletes (or would). */
typedef struct store_remove_counts {
	long runs;        /* runs whose rows are taken back */
	long comparisons, completions, prompts, annotators, generators;
	long kept_prompts, kept_completions; /* added by them but still referred to */
} store_remove_counts;

/* Called with the counts before anything is deleted; nonzero: stop (the
 * transaction is rolled back and store_remove returns that value). */
typedef int (*store_remove_cb)(void *ud, const store_remove_counts *c);

/* In one transaction: delete the comparisons the spec names, then the
 * completions and prompts the removed runs added (source: also those of
 * the source that no run recorded) that nothing else refers to any more
 * (another run's records, comparisons or completions that stay), then the
 * annotators and generators left with no rows by it, and the removed runs'
 * provenance. A prompt or completion a removed run added but another run's
 * records also had stays, and goes to that (earliest) run: its source and
 * split, or the generator that run credited, replace the removed run's
 * where the row still has them. The per-prompt counters are recomputed.
 * cb (may be NULL) hears the counts first; with dry_run nothing is written
 * (the transaction is rolled back). *out (may be NULL) gets the counts.
 * STORE_ENOTFOUND for a run, source or annotator that does not exist
 * (a source: no import run, prompt or import label of it), STORE_EINVAL
 * for a spec that names none or several. The run rows themselves stay. */
int store_remove(store *st, const store_remove_spec *spec, int dry_run, store_remove_cb cb, void *ud,
		 store_remove_counts *out);

/* ---- export metadata ----------------------------------------------------------- */

/* Append the provenance of pair p as a JSON object to b: {"source",
 * "score_chosen", "score_rejected" (the first comparison with scores,
 * mapped to p's chosen and rejected; null when none), "votes": {"chosen",
 * "rejected", "tie", "both_bad", "skip"}, "annotators": [{"name", "kind",
 * "verdict" (chosen/rejected/tie/both_bad/skip), "score_chosen",
 * "score_rejected", "run"}], "runs": [run ids, ascending]}. Every key is
 * always there (null or empty when unknown). STORE_OK or a code. */
int store_pair_meta(store *st, const store_pair *p, util_buf *b);

/* Which prompt kinds have a/b verdicts (could make a pair) in split (NULL:
 * all): bit 1 plain text, bit 2 conversation, into *mask. */
int store_labelled_prompt_kinds(store *st, const char *split, int *mask);

#endif

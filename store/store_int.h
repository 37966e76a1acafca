/* store_int.h: private to the store library (the store sources and its unit tests).
 * The handle, the prepared-statement cache and the error helpers. */
#ifndef DPO_STORE_INT_H
#define DPO_STORE_INT_H
#include "store/store.h"
#include "util/buf.h"
#include <sqlite3.h>

/* Hot-path statements, prepared once per handle (see STMT_SQL in store.c). */
enum store_stmt_id {
	SS_PROMPT_INSERT,
	SS_PROMPT_BY_HASH,
	SS_PROMPT_GET,
	SS_COMPLETION_INSERT,
	SS_COMPLETION_BY_HASH,
	SS_COMPLETION_PROMPT,
	SS_COMPLETION_TEXT,
	SS_GENERATOR_INSERT,
	SS_GENERATOR_FIND,
	SS_ANNOTATOR_INSERT,
	SS_ANNOTATOR_FIND,
	SS_COMPARISON_INSERT,
	SS_COMPARISON_FIND,
	SS_COMPARISON_DELETE,
	SS_PAIR_VOTES,
	SS_CACHE_GET,
	SS_CACHE_PUT,
	SS_REFLOGP_GET,
	SS_REFLOGP_PUT,
	SS_METRIC_ADD,
	SS_PROMPT_COUNTS,
	SS_PAIR_LABELED,
	SS_ANNOTATOR_KIND,
	SS_COMPARISON_ROW,
	SS_RATING_INSERT,
	SS_FEEDBACK_INSERT,
	SS_COMPLETION_CREDIT,
	SS_PROV_ADD,
	SS_COUNT
};

/* A small memo of name -> id (import generators/annotators), cleared on
 * rollback because the rows it points at may be gone. */
typedef struct store_memo {
	char *key;
	int64_t id;
} store_memo;

#define STORE_MEMO_N 16
#define STORE_KEPT_N 16

struct store {
	sqlite3 *db;
	char *path;
	char err[1024];
	sqlite3_stmt *stmt[SS_COUNT];
	store_memo gen_memo[STORE_MEMO_N];
	store_memo ann_memo[STORE_MEMO_N];
	util_buf scratch; /* canonical serialisations */
	char now[32];     /* cached created_at */
	long now_sec;
	int bulk_fk_off;  /* a bulk import turned foreign_keys off */
	int64_t open_run; /* the run this process started and has not ended (0: none) */
	long open_run_pid; /* the process that started it (a forked child does not close it) */
	int old_schema;   /* opened at an older version (store__open_version, tests):
			   * completion_generators may be missing */
	struct store_defer *defer; /* rows a bulk import writes in batches (store_defer.c) */
	int defer_on;
	struct {            /* statements kept by their SQL's address (store__stmt_borrow) */
		const char *sql;
		sqlite3_stmt *s;
	} kept[STORE_KEPT_N];
};

/* Set the handle's message and return code. */
int store__err(store *st, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Set the message from the SQLite error of the handle ("what: sqlite message")
 * and return the matching STORE_E* code. */
int store__dberr(store *st, const char *what);
/* The cached statement id, reset and with its bindings cleared; NULL on a
 * prepare error (message set). Call sqlite3_reset when done. */
sqlite3_stmt *store__stmt(store *st, enum store_stmt_id id);
/* Prepare a one-off statement (caller finalizes); NULL on error (message set). */
sqlite3_stmt *store__prepare(store *st, const char *sql);
/* A prepared statement for sql, a string that lives as long as the
 * program (a literal: statements are kept by its address), reset with no
 * bindings; NULL on error (message set). Give it back with
 * store__stmt_return; a nested borrow of the same sql (a callback calling
 * back into the store) gets a statement of its own. */
sqlite3_stmt *store__stmt_borrow(store *st, const char *sql);
/* Give back s, borrowed for sql: reset and kept for the next borrow (or
 * finalized when no place is free). NULL s is allowed. */
void store__stmt_return(store *st, const char *sql, sqlite3_stmt *s);
/* Execute SQL without results; STORE_OK or a code. */
int store__exec(store *st, const char *sql);
/* Current UTC time as ISO 8601, cached per second; owned by the handle. */
const char *store__now(store *st);
/* SQL for a prompt's counters as the store keeps them (P: the SQL naming
 * the prompt's id): its completions, and its pairs with a human or import
 * label (a skip is no label). store_check compares them, merge and remove
 * recount with them. */
#define STORE__N_COMPLETIONS_SQL(P) "(SELECT count(*) FROM completions c WHERE c.prompt_id = " P ")"
#define STORE__N_LABELED_PAIRS_SQL(P)                                                                   \
	"(SELECT count(*) FROM (SELECT DISTINCT x.completion_a, x.completion_b FROM comparisons x "     \
	"JOIN annotators a ON a.id = x.annotator_id WHERE x.prompt_id = " P " AND a.kind <> 'judge' " \
	"AND x.verdict <> 'skip'))"

/* SQL true when comparison row C (an alias) is not of a gold item
 * (store_gold.c): their labels stay out of pairs, review and agreement. */
#define STORE__NOT_GOLD_SQL(C)                                                                   \
	"NOT EXISTS (SELECT 1 FROM gold g WHERE g.completion_a = " C ".completion_a AND g.completion_b = " \
	C ".completion_b)"

/* PRAGMA application_id of a dpo store ("DPO1"). */
#define STORE__APPLICATION_ID 0x44504f31
/* "file:PATH?QUERY" (e.g. "immutable=1", "mode=ro"), with the characters
 * a URI path cannot hold percent-encoded. Caller frees. */
char *store__file_uri(const char *path, const char *query);
/* The fingerprint of a prompt whose text is the n bytes at text: of a text
 * prompt, and of a conversation of one user message with that content (one
 * canonical form, so that both are the same prompt). Into hash (32 bytes). */
void store__text_prompt_hash(const char *text, size_t n, unsigned char hash[32]);
/* Write a 32-byte hash (a BLOB column) as 64 hex digits; "" when blob is
 * NULL or not 32 bytes. */
void store__hex(const void *blob, int n, char hex[65]);
/* Bind a string or NULL. */
void store__bind_text(sqlite3_stmt *s, int i, const char *v);
/* Column text or NULL. */
const char *store__col_text(sqlite3_stmt *s, int i);
/* Bind a comparison's rationale, compressed when long (store_rationale.c). */
void store__bind_rationale(sqlite3_stmt *s, int i, const char *text);
/* A rationale column as text (decompressed into b when stored compressed;
 * valid until the next call with b), or NULL. */
const char *store__col_rationale(sqlite3_stmt *s, int i, util_buf *b);
/* Begin an immediate transaction unless one is open; *started says whether
 * this call began it (then finish with store__tx_end). */
int store__tx_auto(store *st, int *started);
/* Commit (rc == STORE_OK) or roll back a transaction begun by store__tx_auto
 * when started; returns rc, or the commit's error. */
int store__tx_end(store *st, int started, int rc);
/* Forget the name -> id memos (after a rollback). */
void store__memo_clear(store *st);

/* A bulk import's transaction (store_import_file): begin an immediate
 * transaction with foreign-key enforcement off (the importer only refers to
 * rows it found or inserted itself under the write lock, so the lookups are
 * redundant). Must not be called inside a transaction. STORE_OK or a code
 * (message set; nothing left open). */
int store__bulk_begin(store *st);
/* Commit a bulk import and turn foreign keys back on. On failure the
 * transaction is rolled back (see store_commit). STORE_OK or a code. */
int store__bulk_commit(store *st);
/* Roll back a bulk import and turn foreign keys back on. */
int store__bulk_rollback(store *st);

/* Stop watching the open run (store_runs.c): util_die no longer closes it.
 * Called when the handle closes. */
void store__run_forget(store *st);
/* Whether a run recorded as running by process pid on host, started as
 * proc_start (may be NULL), is gone: 1 when host is this machine and the
 * process no longer exists, is a zombie, or is another process with the
 * same id; 0 when it runs, or when that cannot be known (another host, no
 * pid recorded). */
int store__run_gone(int64_t pid, const char *host, const char *proc_start);
/* Live claims (not expired, their process not gone) of one owner (by_owner)
 * or one scope into *n (store_claims.c). STORE_OK or a code. */
int store__claims_count_live(store *st, int by_owner, const char *key, long *n);
/* This process's identity as runs and claims record it: pid, host name
 * ("" when unknown) and start token (NULL when /proc cannot tell). The
 * strings are static. */
void store__self_identity(long *pid, const char **host, const char **tok);
/* Whether a running row's process can be checked from here (a pid and this
 * host's name recorded). */
int store__run_checkable(const store_run *r);
/* Append store_check's lines about runs to out: counts by status as read,
 * the runs abandoned by a process that is gone, and those that cannot be
 * checked. Informational: never a failure. STORE_OK or a read error. */
int store__check_runs(store *st, util_buf *out);

/* Check a record's ratings, feedback and annotator (store_ratings.c)
 * before anything of it is written: STORE_OK or STORE_EINVAL (message set). */
int store__record_extras_check(store *st, const store_record *rec);
/* Write a record's ratings and feedback (store_add_record): ids[i] is the
 * id of rec->completions[i], ann_id the annotator; counts are added to. */
int store__record_extras_add(store *st, const store_record *rec, int64_t prompt_id, const int64_t *ids,
			     int64_t ann_id, store_import_counts *counts);
/* Hand store_stats_foreach's "ratings" and "feedback" sections to cb. */
int store__stats_ratings(store *st, int (*cb)(void *, const store_stat *), void *ud);
/* Record that the record rec (its run_id, line and record_id) referred to
 * row row_id of kind ("prompt", "completion" or "comparison"); created:
 * the record added it; generator_id: for a completion, whom the record
 * credited (else 0). The prompt comes first and starts the record's row,
 * written by store__prov_end. Nothing when rec->run_id is 0
 * (store_defer.c). */
int store__prov_add(store *st, const store_record *rec, const char *kind, int64_t row_id, int created,
		    int64_t generator_id);
/* The end of record rec: its provenance row (provenance_records: the prompt
 * and the items store__prov_add gathered) is written, or queued during a
 * bulk import. Nothing when rec->run_id is 0. STORE_OK or a code. */
int store__prov_end(store *st, const store_record *rec);

/* Credit completion_id to generator_id too (completion_generators; nothing
 * if already). Deferred during a bulk import (store_defer.c). */
int store__credit_add(store *st, int64_t completion_id, int64_t generator_id);
/* From now on store__prov_add and store__credit_add rows are buffered and
 * written in batches (a bulk import: nothing reads them back before the
 * commit). */
void store__defer_start(store *st);
/* Write the buffered rows and stop buffering. STORE_OK or a code. */
int store__defer_flush(store *st);
/* Forget the buffered rows (the transaction rolled back), stop buffering. */
void store__defer_drop(store *st);
/* Free the buffers and statements (closing the store). */
void store__defer_free(store *st);

/* Open path migrated only up to schema version `version` (tests build older
 * layouts with it). */
int store__open_version(store *st, const char *path, int version);

#endif

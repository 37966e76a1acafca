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
	/* the scores the source gave a and b (e.g. UltraFeedback's
	 * score_chosen/score_rejected), when has_scores */
	int has_scores;
	double score_a, score_b;
	/* which of a and b the file called chosen ("a" or "b"), or NULL:
	 * kept with the comparison, so that a tie keeps the file's order */
	const char *chosen;
	/* how sure the annotator was (0..1, e.g. from AlpacaEval's weighted
	 * preference), when has_confidence */
	int has_confidence;
	double confidence;
} store_rec_label;

/* A numeric score an annotator gave one of the record's completions
 * (completion: index into completions[]) on one aspect, on the scale
 * [scale_min, scale_max] (e.g. UltraFeedback's helpfulness 1..5). */
typedef struct store_rec_rating {
	int completion;
	const char *aspect;
	double value, scale_min, scale_max;
} store_rec_rating;

/* Binary feedback on one completion (KTO: unpaired preference): good is 1
 * (desirable) or 0 (undesirable). */
typedef struct store_rec_feedback {
	int completion;
	int good;
} store_rec_feedback;

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
	/* Optional content hashes computed ahead by store_record_hash (e.g. on
	 * another thread): 32 bytes for a text prompt (unused for messages),
	 * and 32 per completion. NULL: store_add_record computes them. */
	const unsigned char *prompt_hash;
	const unsigned char *completion_hashes;
	/* Who gave the labels, ratings and feedback: annotator name and kind
	 * ("human", "judge" or "import"); NULL name: "import:<source>". */
	const char *annotator;
	const char *annotator_kind;
	const store_rec_rating *ratings;
	size_t nratings;
	const store_rec_feedback *feedback;
	size_t nfeedback;
	/* Provenance (store/provenance.h): the import run the record belongs
	 * to (0: none kept), its line in the file (the record's 1-based index
	 * in a JSON array), and the file's own id of the record (question_id,
	 * source_index, id or prompt_id), or NULL. */
	int64_t run_id;
	long line;
	const char *record_id;
} store_record;

/* Compute the content hashes store_add_record would: into prompt_hash (32
 * bytes; only for a text prompt, else left alone) and completion_hashes (32
 * bytes per completion; NULL texts are skipped). Needs no store; safe to
 * call from any thread. Both buffers are the caller's. */
void store_record_hash(const store_record *rec, unsigned char *prompt_hash, unsigned char *completion_hashes);

/* Counters filled by store_add_record (added to, never reset). */
typedef struct store_import_counts {
	long records;             /* records seen */
	long prompts_new, prompts_dup;
	long completions_new, completions_dup;
	long comparisons_new, comparisons_dup;
	/* labels of a pair this source had already labelled with another
	 * verdict (A>B, later B>A): the first verdict is kept, and the later
	 * one is counted here, not as a duplicate */
	long comparisons_conflict;
	/* ratings and binary feedback: the same value again is a duplicate;
	 * another value from the same annotator (same completion and aspect)
	 * is a conflict, and the first value stays */
	long ratings_new, ratings_dup, ratings_conflict;
	long feedback_new, feedback_dup, feedback_conflict;
} store_import_counts;

/* ---- opening ------------------------------------------------------------ */

/* A new, closed handle. Never NULL. Free with store_free. */
store *store_new(void);
/* Open (and create if missing) the database at path: WAL, foreign keys, a
 * busy timeout, and the schema migrated to the current version (inside one
 * transaction). Returns STORE_OK, STORE_EVERSION for a database of a newer
 * dpo, STORE_ECORRUPT for a file that is not a dpo database (not SQLite,
 * damaged, or another program's), or another negative code; the message
 * (store_errmsg) names the path. On failure the handle stays closed and can
 * be opened again. */
int store_open(store *st, const char *path);
/* Open the database at path as store_open does, but never create it: for
 * the commands that only read (and those that add to a store made by
 * dpo-db init/import or dpo-generate). A missing file is STORE_ENOTFOUND
 * with the message "PATH: no such database (create one with dpo-db init or
 * dpo-db import)". */
int store_open_existing(store *st, const char *path);
/* 1 when the open store cannot be written (opened read-only: read-only
 * file, folder or media), else 0 (also when it is not open). */
int store_readonly(const store *st);
/* Open an existing database as store_open_existing does, for commands that
 * only read: where it cannot be written (read-only media or folder) and its
 * -shm file cannot be created, fall back to an immutable read-only open, and
 * say so on stderr (also when it is opened read-only at all). Writes on such
 * a handle fail; a database that needs migrating cannot be opened so. */
int store_open_read(store *st, const char *path);
/* Close the database and free the handle. NULL is allowed. */
void store_free(store *st);
/* The message of the last error, "" if none. Owned by the handle. */
const char *store_errmsg(const store *st);
/* The schema version this build writes. */
int store_schema_version(void);

/* ---- transactions ------------------------------------------------------- */

/* How long a write waits for another process's write transaction before
 * failing with STORE_EBUSY, in milliseconds (default 30000; 0: fail at once). */
int store_set_busy_timeout(store *st, int ms);

/* Start an immediate (write) transaction: it waits up to the busy timeout
 * for another writer. Returns STORE_OK, STORE_EBUSY or a code. */
int store_begin(store *st);
/* Commit the open transaction. */
int store_commit(store *st);
/* Roll back the open transaction (safe to call when none is open). */
int store_rollback(store *st);

/* ---- importing ---------------------------------------------------------- */

/* Add one parsed record from import source `source` (e.g. "hh-rlhf") into
 * split `split` (NULL: "train"). Prompts and completions already present
 * (same content hash) are reused and counted as duplicates; each label
 * becomes a comparison by annotator rec->annotator (of kind
 * rec->annotator_kind, default "human"), or "import:<source>", unless that
 * comparison exists already (a duplicate when its verdict is the same, a
 * conflict, counted in comparisons_conflict, when it differs; either way
 * the stored verdict stays); ratings and feedback go to their tables under
 * the same annotator. Must run inside store_begin/store_commit.
 * Returns STORE_OK or STORE_EINVAL (message names the bad field). */
int store_add_record(store *st, const store_record *rec, const char *source,
		     const char *split, store_import_counts *counts);

/* ---- identities ---------------------------------------------------------- */

/* Who generated completions: a model (name + fingerprint + sampling params as
 * canonical JSON) or an import source (kind "import", name = source). */
typedef struct store_generator {
	const char *kind;        /* "model" or "import" */
	const char *name;
	const char *fingerprint; /* model fingerprint, or NULL */
	const char *params_json; /* sampling parameters as JSON, or NULL */
} store_generator;

/* Find or create the generator row; its id goes to *id. */
int store_generator_id(store *st, const store_generator *g, int64_t *id);

/* Who labels: a human (name), a judge (provider + model + template hash +
 * params; name is a readable identity string built by the caller), or an
 * import ("import:<source>"). Names are unique. */
typedef struct store_annotator {
	const char *kind;          /* "human", "judge" or "import" */
	const char *name;
	const char *provider;      /* judges only, else NULL */
	const char *model;         /* judges only */
	const char *template_hash; /* judges only */
	const char *params_json;   /* judges only */
} store_annotator;

/* Find (by name) or create the annotator row; its id goes to *id. */
int store_annotator_id(store *st, const store_annotator *a, int64_t *id);

/* ---- prompts and completions ------------------------------------------------ */

/* Add a prompt (plain text, or messages when msgs != NULL) from source
 * (NULL: "manual") into split (NULL: "train"). An identical prompt (same
 * content hash: SHA-256 of "text\0" + text, or of the compact JSON array of
 * {"role", "content"} messages; a conversation of one user message has the
 * hash of its text, so it is the same prompt as that text) is reused, keeping its first source and
 * split: *created is set to 0 and its id returned. id/created may be NULL.
 * STORE_EINVAL for both or neither of text/msgs, or a bad role. */
int store_prompt_add(store *st, const char *text, const store_msg *msgs, size_t nmsgs,
		     const char *source, const char *split, int64_t *id, int *created);

/* Add a completion of prompt_id by generator_id; an identical text for the
 * same prompt (same SHA-256) is reused (*created = 0). id/created may be
 * NULL. STORE_EINVAL when the prompt or generator does not exist. Runs in
 * its own transaction unless one is open (as do the other single-row
 * writes below). */
int store_completion_add(store *st, int64_t prompt_id, const char *text, int64_t generator_id,
			 int64_t *id, int *created);

/* A prompt as handed to callbacks; every pointer is valid only during the
 * callback. Exactly one of text and messages_json is non-NULL. */
typedef struct store_prompt {
	int64_t id;
	const char *hash;
	const char *text;          /* plain prompt, or NULL */
	const char *messages_json; /* conversation as a JSON array of {role, content}, or NULL */
	const char *source;
	const char *split;
} store_prompt;

/* Callbacks return 0 to go on, nonzero to stop the iteration early (the
 * iterating function then returns that value). */
typedef int (*store_prompt_cb)(void *ud, const store_prompt *p);

/* Visit prompts in id order, filtered by split and source (NULL: any), at
 * most limit (<= 0: all). */
int store_prompts_foreach(store *st, const char *split, const char *source, long limit,
			  store_prompt_cb cb, void *ud);

/* Look up one prompt by id and hand it to cb. STORE_ENOTFOUND if absent. */
int store_prompt_get(store *st, int64_t id, store_prompt_cb cb, void *ud);

/* A completion as handed to callbacks (pointers valid during the callback). */
typedef struct store_completion {
	int64_t id, prompt_id, generator_id;
	const char *text;
	const char *hash;
	const char *generator; /* generator name */
} store_completion;

typedef int (*store_completion_cb)(void *ud, const store_completion *c);

/* Visit the completions of prompt_id in id order, only those of
 * generator_id when it is > 0. */
int store_completions_foreach(store *st, int64_t prompt_id, int64_t generator_id,
			      store_completion_cb cb, void *ud);

/* Count the completions of prompt_id (of generator_id when > 0) into *n. */
int store_completions_count(store *st, int64_t prompt_id, int64_t generator_id, long *n);

/* ---- comparisons (every label is one) ---------------------------------------- */

/* One judgment of two completions of one prompt by one annotator. The store
 * keeps completion_a < completion_b: store_comparison_add swaps a/b (and
 * the verdict and shown_first with them) when given the other order. */
typedef struct store_comparison {
	int64_t id;            /* set by the store */
	int64_t prompt_id;
	int64_t completion_a, completion_b;
	int64_t annotator_id;
	const char *verdict;     /* "a", "b", "tie", "both_bad" or "skip" */
	const char *shown_first; /* which was shown first/left: "a", "b", or NULL (unknown) */
	const char *rationale;   /* or NULL */
	double confidence;       /* 0..1, or NAN when not given */
	int64_t duration_ms;     /* time taken to decide, or -1 */
	int inconsistent;        /* judge verdicts disagreed across the two orders */
	int64_t run_id;          /* the run that produced it, or 0 */
	const char *created_at;  /* ISO 8601 UTC; NULL on add means now */
	const char *annotator;   /* annotator name (filled when iterating) */
	const char *annotator_kind; /* "human", "judge" or "import" (filled when iterating) */
} store_comparison;

/* Add a comparison. If this annotator already judged this pair, nothing is
 * written, *created is 0 and *id is the existing row (use
 * store_comparison_delete first to replace). id/created may be NULL.
 * STORE_EINVAL for a bad verdict or shown_first, a confidence outside 0..1,
 * a completion compared with itself, or completions not both of prompt_id.
 * May be called from inside an iteration callback. */
int store_comparison_add(store *st, const store_comparison *c, int64_t *id, int *created);

/* Delete one comparison by id (undo). STORE_ENOTFOUND if absent. */
int store_comparison_delete(store *st, int64_t id);

typedef int (*store_comparison_cb)(void *ud, const store_comparison *c);

/* Visit comparisons of prompt_id (all when 0) in id order. */
int store_comparisons_foreach(store *st, int64_t prompt_id, store_comparison_cb cb, void *ud);

/* ---- work queues for judges and annotators ------------------------------------- */

/* An unordered pair of completions of one prompt (completion_a < completion_b). */
typedef struct store_pair_ref {
	int64_t prompt_id, completion_a, completion_b;
} store_pair_ref;

typedef int (*store_pair_ref_cb)(void *ud, const store_pair_ref *p);

/* Which pairs to hand out. */
typedef struct store_queue_filter {
	const char *split;      /* NULL: any */
	const char *source;     /* NULL: any */
	int64_t annotator_id;   /* skip pairs this annotator has judged (0: none) */
	int include_labeled;    /* 0: skip pairs with a human or import comparison */
	int max_annotations;    /* > 0: skip pairs already judged by this many humans */
	long limit;             /* <= 0: all */
	int64_t after_prompt_id; /* > 0: start after this prompt (resume a scan cheaply) */
	/* an annotator's name: when it has assignments (dpo-db assign), only
	 * the pairs assigned to it; NULL or none: every pair */
	const char *assigned_to;
} store_queue_filter;

/* Visit, in (prompt id, a, b) order, every pair of completions of prompts
 * with two or more completions that passes the filter. With
 * include_labeled 0 the prompts are found through an index of prompts that
 * still have a pair without a human or import label, so the next item
 * comes without a scan however much is labelled; the other filters are
 * checked per prompt (use after_prompt_id to resume a long scan). cb may
 * add comparisons. */
int store_queue_foreach(store *st, const store_queue_filter *f, store_pair_ref_cb cb, void *ud);

/* Visit pairs on which two or more human annotators gave different
 * non-skip verdicts (for review). */
int store_disagreements_foreach(store *st, const char *split, store_pair_ref_cb cb, void *ud);

/* ---- preference pairs (derived, never stored) ------------------------------------ */

/* Resolution policies: "majority", "humans-over-judges", "unanimous",
 * "consistent-judge". Ties, both-bad and skips never make a pair. */
typedef struct store_pair {
	int64_t prompt_id, chosen_id, rejected_id;
	const char *prompt_text;          /* or NULL */
	const char *prompt_messages_json; /* or NULL */
	const char *chosen, *rejected;
	const char *split, *source;
	int n_annotations;                /* a/b votes that agree with the result */
} store_pair;

typedef int (*store_pair_cb)(void *ud, const store_pair *p);

/* Visit the resolved pairs of split (NULL: all) under policy (NULL:
 * "majority"), only those with at least min_annotations deciding
 * comparisons, in a stable order: by prompt id, then within a prompt by the
 * content hash of the chosen, then of the rejected completion (content, not
 * ids, so that export -> import -> export keeps the order). STORE_EINVAL for
 * an unknown policy. */
int store_pairs_foreach(store *st, const char *split, const char *policy, int min_annotations,
			store_pair_cb cb, void *ud);

/* Count the pairs store_pairs_foreach would visit into *n (without reading
 * any text). */
int store_pairs_count(store *st, const char *split, const char *policy, int min_annotations, long *n);
/* store_pairs_count, and into *tied_dropped (may be NULL) the pairs with a
 * tie verdict that the policy makes no pair of: what an export under it
 * leaves out for a tie (e.g. UltraFeedback pairs with equal scores). */
int store_pairs_count_ties(store *st, const char *split, const char *policy, int min_annotations, long *n,
			   long *tied_dropped);

/* The policy names, NULL-terminated (for usage text and statistics). */
extern const char *const store_policies[];

/* ---- runs and metrics ----------------------------------------------------------- */

/* Runs: one row per invocation of a program that changes the store or
 * measures something (generate, judge, train, eval). A run records its
 * kind, command line (quoted, secrets masked), parameters, start and end,
 * status, and the process that runs it (pid, host name, a token of the
 * process's start time, so that a reused pid is told apart).
 *
 * Lifecycle: store_run_start, then store_run_end with "ok", "failed" or
 * "interrupted" (a caught SIGINT/SIGTERM). Until then util_die (util/cli.h)
 * closes the run as "failed" (it rolls back an open transaction first).
 * A process killed outright leaves its row "running"; readers
 * (store_run_get, store_runs_foreach, store_stats_foreach, store_check) on
 * the same host see that the process is gone and report the run as
 * "interrupted" (store_run.abandoned = 1). That is computed on each read and
 * never written back: reading stays read-only. A run of another host (a
 * store on a shared disk) reads "running": its process cannot be checked
 * from here; so does a run recorded before schema version 4 (no pid). */

/* Record the start of a run of kind ("generate", "judge", "train", "eval",
 * "import") by this process: the command line is argv[0..argc-1] quoted
 * and with secrets masked by util_cmdline_quote (util/cmdline.h);
 * params_json may be NULL. The new id goes to *run_id (may be NULL). From
 * now until store_run_end of this id (or the handle's store_free),
 * util_die ends the run as "failed"; a handle watches one run (its latest).
 * Returns STORE_OK, STORE_EINVAL (no kind, no argv, store not open) or a
 * database error code. */
int store_run_start(store *st, const char *kind, int argc, char **argv, const char *params_json,
		    int64_t *run_id);
/* store_run_start with a command line already built by the caller (who
 * masks its secrets); command must not be NULL. */
int store_run_begin(store *st, const char *kind, const char *command, const char *params_json,
		    int64_t *run_id);
/* Take over run run_id of kind (e.g. a training resumed from a checkpoint
 * of it) for this process: it reads "running" again, with this process as
 * its owner, and util_die closes it as store_run_start's do. STORE_ENOTFOUND
 * when there is no such run of that kind; STORE_EBUSY, naming the process,
 * when the run is still running in a live process. */
int store_run_continue(store *st, int64_t run_id, const char *kind);
/* Record the end of a run with status "ok", "failed" or "interrupted" and an
 * optional JSON summary; util_die stops watching it. STORE_EINVAL for
 * another status, STORE_ENOTFOUND for an unknown run. */
int store_run_end(store *st, int64_t run_id, const char *status, const char *summary_json);
/* Record one metric value of a run at a step (step -1 for run-level). The
 * names dpo-train and dpo-eval write are in store/metrics.h. */
int store_metric_add(store *st, int64_t run_id, long step, const char *name, double value);

/* ---- claims ---------------------------------------------------------------- */

/* Claims let concurrent workers share one queue: a worker claims a pair
 * before it shows (or sends) it, and a pair may be claimed while its
 * labels in the claim's scope plus the live claims of other owners stay
 * below the overlap. A claim lives until it expires (renew it while the
 * pair is worked on), is released, or its process is seen gone on this
 * host: a crashed worker's claims free themselves. A label takes the
 * place of its claim (release it once the label is stored); deleting the
 * label (undo) frees the slot. */
#define STORE_CLAIM_TTL_S 300.0 /* a claim's life when ttl_s is 0 */

typedef struct store_claim {
	int64_t completion_a, completion_b; /* the pair, in either order */
	/* whose labels count against the overlap: "human" (every human
	 * annotator's verdicts but skip), or one annotator's name (a judge) */
	const char *scope;
	const char *owner;  /* who claims: an annotator, a judge run */
	double ttl_s;       /* seconds until the claim expires (0: STORE_CLAIM_TTL_S) */
} store_claim;

/* Claim a pair for c->owner when its labels in c->scope plus the other
 * owners' live claims are fewer than overlap (>= 1), and owner has not
 * labelled (or skipped) it nor holds it through another live process (one
 * annotator in two terminals sees a pair in one of them only). *got: 1 when owner holds the claim now (also
 * when it held one: then renewed), else 0. Inside the caller's
 * transaction if one is open, else in one of its own. STORE_EINVAL for a
 * bad claim; database codes (STORE_EBUSY) otherwise. */
int store_claim_try(store *st, const store_claim *c, int overlap, int *got);
/* Push back the expiry of owner's claim on the pair. STORE_ENOTFOUND when
 * the claim is gone (expired and dropped by another worker). */
int store_claim_renew(store *st, const store_claim *c);
/* Drop owner's claim on the pair (none is fine). */
int store_claim_release(store *st, const store_claim *c);
/* Drop every claim owner holds through this process (at exit). */
int store_claims_release_all(store *st, const char *owner);
/* How many live claims scope has now, into *n. */
int store_claims_live(store *st, const char *scope, long *n);

/* ---- assignments --------------------------------------------------------------- */

/* Pre-assigned work, as Label Studio distributes tasks: which annotator is
 * to label which pair. An annotator with assignments is offered those pairs
 * only (store_queue_filter.assigned_to). */
#define STORE_ASSIGN_MAX 256

typedef struct store_assign_counts {
	long assignments_new;            /* rows added */
	long pairs_short;                /* pairs left below the overlap: too few annotators not yet on them */
	long added[STORE_ASSIGN_MAX];    /* per annotator (in the order given): new assignments */
	long pending[STORE_ASSIGN_MAX];  /* per annotator: assigned and not yet labelled, afterwards */
} store_assign_counts;

/* Assign every pair (of split, NULL: all) that has fewer than overlap human
 * labels to annotators not yet on it (labelled, skipped or assigned), until
 * labels plus open assignments reach overlap: each pair to the annotators
 * with the fewest open assignments (ties rotate), so every annotator gets a
 * fair share. Running it again (after more data, or more labels) adds only
 * what is missing. n annotators (1..STORE_ASSIGN_MAX, distinct names),
 * overlap 1..n. One transaction; dry_run rolls it back after counting.
 * *k is overwritten. */
int store_assign(store *st, const char *const *names, int n, int overlap, const char *split, int dry_run,
		 store_assign_counts *k);
/* How many assignments annotator has (labelled or not), into *n. */
int store_assigned_count(store *st, const char *annotator, long *n);

/* ---- merging another store -------------------------------------------------- */

/* What store_merge added (or, in a dry run, would add). */
typedef struct store_merge_counts {
	long prompts_new, prompts_dup;
	long completions_new, completions_dup;
	long annotators_new;
	long comparisons_new, comparisons_dup;
	long comparisons_conflict; /* same annotator and pair, another verdict */
	long conflicts_taken;      /* ... of which the other store's (later) label was kept */
	long runs_new, metrics_new;
	long ratings_new, feedback_new;
	long ratings_conflict, feedback_conflict; /* theirs differ from ours (ours kept) */
	long gold_new;             /* gold marks (pairs with a known answer) */
} store_merge_counts;

/* A conflict as handed to the callback (pointers valid during the call). */
typedef struct store_merge_conflict {
	const char *annotator;
	int64_t prompt_id;          /* ours */
	const char *prompt_hash;    /* hex */
	const char *here_verdict, *here_at;   /* our label: verdict, created_at */
	const char *other_verdict, *other_at; /* the other store's, in our pair order */
	const char *other_path;
	int kept_other;             /* 1: the other's label is later and replaces ours */
} store_merge_conflict;
typedef void (*store_merge_conflict_cb)(void *ud, const store_merge_conflict *c);

/* Bring the store at path (a dpo store of the same schema version, opened
 * read-only: it is never changed) into st: prompts, completions,
 * generators, annotators, labels (verdict, time, shown order, note, scores),
 * runs and their metrics, each matched by what identifies it (content
 * hashes, names), so merging twice adds nothing. A label the same annotator
 * gave the same pair in both with another verdict is a conflict: the later
 * one is kept, and each is handed to cb (may be NULL). Import runs bring
 * their files and provenance (what store_remove takes back for a run).
 * Ratings and binary feedback come too (where both have one, ours stays;
 * counted where theirs differs),
 * and gold marks; a pair marked gold in both with other answers fails the
 * merge (STORE_EINVAL, nothing written). All in one transaction (the
 * caller must not hold one); dry_run rolls it back after counting. Caches,
 * claims and assignments are not merged. Returns STORE_OK, STORE_ECORRUPT (not a dpo store),
 * STORE_EVERSION (another schema version), or an error; *k is overwritten. */
int store_merge(store *st, const char *path, int dry_run, store_merge_counts *k, store_merge_conflict_cb cb,
		void *ud);

/* A run as handed to callbacks (pointers valid during the callback). */
typedef struct store_run {
	int64_t id;
	const char *kind, *command;
	const char *params_json;  /* or NULL */
	const char *started_at;
	const char *ended_at;     /* NULL while running, and for an abandoned run */
	const char *status;       /* "running", "ok", "failed" or "interrupted" (also an abandoned run) */
	const char *summary_json; /* or NULL */
	int64_t pid;              /* the process that ran it; 0 when not recorded (before schema 4) */
	const char *host;         /* its host name, or NULL */
	int abandoned;            /* 1: the row says "running" but its process is gone (status reads
				   * "interrupted") */
} store_run;

typedef int (*store_run_cb)(void *ud, const store_run *r);

/* Hand run run_id to cb. STORE_ENOTFOUND if absent; else cb's value. */
int store_run_get(store *st, int64_t run_id, store_run_cb cb, void *ud);
/* Visit runs of kind (NULL: all) in id order. */
int store_runs_foreach(store *st, const char *kind, store_run_cb cb, void *ud);

/* One metric value (name valid during the callback; value NAN if NULL). */
typedef struct store_metric {
	int64_t run_id;
	long step;
	const char *name;
	double value;
} store_metric;

typedef int (*store_metric_cb)(void *ud, const store_metric *m);

/* Visit the metrics of run_id (only those called name when not NULL),
 * ordered by name, then step. Adding the same (run, name, step) twice
 * keeps the last value. */
int store_metrics_foreach(store *st, int64_t run_id, const char *name, store_metric_cb cb, void *ud);

/* ---- judge request cache -------------------------------------------------------- */

/* Look up a cached response by request hash. On a hit *response gets a
 * malloc'ed copy (caller frees) and STORE_OK is returned; on a miss
 * STORE_ENOTFOUND. */
int store_cache_get(store *st, const char *request_hash, char **response);
/* Store (or replace) the response to a request. meta_json (model, tokens,
 * cost; never a key) may be NULL. */
int store_cache_put(store *st, const char *request_hash, const char *response, const char *meta_json);

/* ---- reference log-prob cache ---------------------------------------------------- */

/* Key: reference-model fingerprint + tokenisation fingerprint (tokenizer
 * hash, chat format, truncation settings) + prompt id + completion id. */
typedef struct store_reflogp_key {
	const char *ref_fingerprint;
	const char *tok_fingerprint;
	int64_t prompt_id, completion_id;
} store_reflogp_key;

/* Fetch a cached summed log-prob and its token count; STORE_ENOTFOUND on a miss. */
int store_reflogp_get(store *st, const store_reflogp_key *k, double *logp, long *ntokens);
/* Store a summed log-prob and its token count. */
int store_reflogp_put(store *st, const store_reflogp_key *k, double logp, long ntokens);

/* ---- maintenance, statistics, splits ----------------------------------------------- */

/* Check integrity (PRAGMA integrity_check), foreign keys, the schema
 * version and the store's per-prompt counters; a human-readable report
 * (caller frees, also on failure) goes to *report. STORE_ECORRUPT when a
 * check fails. */
int store_check(store *st, char **report);

/* What store_split reassigns. */
typedef struct store_split_args {
	double test_fraction;
	uint64_t seed;
	/* The splits whose prompts are reassigned (n_from names; duplicates are
	 * fine); n_from 0: only "train". No other prompt ever changes split. */
	const char *const *from;
	int n_from;
	int dry_run; /* count what would move, write nothing */
} store_split_args;

/* One line of store_split's outcome, per split in the store, in name order:
 * a split that is reassigned reports twice, to "test" and to "train", with
 * the number of its prompts that go (or would go) there (from == to: they
 * stay); a split that is not reassigned reports once with to NULL and all
 * its prompts (left alone). Nonzero stops. */
typedef int (*store_split_cb)(void *ud, const char *from, const char *to, long n);

/* Reassign the prompts of the splits a->from to "test" or "train",
 * deterministically from each prompt's content hash and the seed, with about
 * test_fraction of them in "test"; prompts of any other split are never
 * touched. The numbers of prompts in "train" and "test" afterwards (over the
 * whole store; with dry_run, what they would be) go to *n_train / *n_test
 * (may be NULL); cb (may be NULL) hears the moves. STORE_ENOTFOUND, naming
 * the splits there are, when no prompt is in a split a->from names (other
 * than train and test). */
int store_split(store *st, const store_split_args *a, store_split_cb cb, void *ud, long *n_train, long *n_test);

/* The path the store was opened with, or NULL when closed. Owned by the handle. */
const char *store_path(const store *st);

/* ---- statistics ------------------------------------------------------------------ */

/* One statistic: a count in a section, e.g. ("split", "train", "prompts", 12).
 * Sections and their columns, in this order:
 *   "total"         key "all": prompts, completions, comparisons, annotators, generators
 *   "split"         key split name: prompts, completions, comparisons
 *   "source"        key source: prompts, completions, comparisons (of the prompts from
 *                   that source), labels (comparisons that source's import labelled, on
 *                   any prompt; a source with labels only has a row too)
 *   "annotator"     key annotator name (detail = kind): comparisons, a, b, tie, both_bad, skip
 *   "verdict"       key verdict: comparisons
 *   "position_bias" key annotator name (detail = kind): n (a/b wins with the shown order
 *                   known, one per judgment: a judge run in both orders made two per
 *                   comparison), first (those won by the completion shown first)
 *   "pairs"         key policy name: pairs (resolvable pairs, all splits)
 *   "tied_pairs"    key policy name: dropped (pairs with a tie verdict the policy makes
 *                   no pair of: what its export leaves out for a tie)
 *   "runs"          key status, always all four: "running", "ok", "failed", "interrupted":
 *                   runs (as read: an abandoned run counts as interrupted); key
 *                   "interrupted" also: abandoned (those left "running" by a process
 *                   that is gone); key "running" also: unchecked (those whose process
 *                   cannot be checked from here: another host, or no pid recorded)
 *   "ratings"       key aspect: ratings, completions, annotators (only aspects rated)
 *   "feedback"      key "all": feedback, good, bad (binary feedback, KTO)
 * Strings are valid during the callback. */
typedef struct store_stat {
	const char *section, *key, *detail, *column;
	long value;
} store_stat;

typedef int (*store_stat_cb)(void *ud, const store_stat *s);

/* Compute the statistics above and hand them to cb one by one. */
int store_stats_foreach(store *st, store_stat_cb cb, void *ud);

/* The splits that hold prompts, by name, as ("split", name, NULL, "prompts", count). */
int store_splits_foreach(store *st, store_stat_cb cb, void *ud);

/* ---- agreement ------------------------------------------------------------------- */

/* Verdict categories for agreement statistics. */
enum { STORE_CAT_A, STORE_CAT_B, STORE_CAT_TIE, STORE_CAT_BOTH_BAD, STORE_NCAT };

/* The category of a verdict string, or -1 (skip or unknown). */
int store_verdict_category(const char *verdict);

/* Cohen's kappa from a STORE_NCAT x STORE_NCAT contingency table (rows:
 * rater 1, columns: rater 2). NAN when the table is empty; 1 when both
 * raters agree on every item even if chance agreement is 1. */
double store_cohen_kappa(const long (*table)[STORE_NCAT]);

/* Krippendorff's alpha (nominal) from per-unit category counts: units[u][k]
 * = how many raters put unit u in category k. Units with fewer than two
 * ratings are ignored. NAN when there are no pairable values; 1 when every
 * pairable value falls in one category (no disagreement is possible). */
double store_krippendorff_alpha(const long (*units)[STORE_NCAT], size_t nunits);

/* The same measures on which completion was preferred. The order inside a
 * pair (a/b by storage, or the display order) carries no information, so
 * each pair counts in both orientations: half of it as labelled, half with
 * a and b exchanged (ties and both_bad stay). The marginals are then
 * symmetric in a and b: two raters agreeing on 8 of 10 pairs, no ties,
 * get kappa (0.8 - 0.5) / (1 - 0.5) = 0.6 however the pairs are stored.
 * store_pref_kappa takes the table as counted (each item once);
 * store_pref_alpha the units as counted, and sets *agreement (if not NULL)
 * to the observed share of agreeing value pairs (sum of o[c][c] / n) and
 * *values to n, the pairable values. */
double store_pref_kappa(const long (*table)[STORE_NCAT]);
double store_pref_alpha(const long (*units)[STORE_NCAT], size_t nunits, double *agreement, double *values);

/* Raw agreement of a table: the share of items on its diagonal (NAN when
 * empty); *n (if not NULL) = items. */
double store_table_agreement(const long (*table)[STORE_NCAT], long *n);

/* One labelled pair for agreement: every non-skip verdict on it. Handed in
 * (prompt id, a, b) order; arrays are valid during the callback. */
typedef struct store_pair_votes {
	int64_t prompt_id, completion_a, completion_b;
	size_t n;
	const int64_t *annotator_ids;
	const char *const *annotator_names;
	const char *const *annotator_kinds;
	const int *categories; /* STORE_CAT_* */
} store_pair_votes;

typedef int (*store_pair_votes_cb)(void *ud, const store_pair_votes *v);

/* Visit every pair with at least one non-skip verdict (one verdict per
 * annotator: the comparisons table guarantees it). */
int store_votes_foreach(store *st, store_pair_votes_cb cb, void *ud);

/* ---- ratings and binary feedback (store_ratings.c) ------------------------------ */

/* One binary label (KTO) as handed to callbacks; pointers are valid during
 * the callback. Exactly one of prompt_text and prompt_messages_json is set. */
typedef struct store_feedback {
	int64_t prompt_id, completion_id, annotator_id;
	const char *prompt_text;          /* or NULL */
	const char *prompt_messages_json; /* or NULL */
	const char *completion;
	const char *annotator, *split;
	int good;                         /* 1 desirable, 0 undesirable */
} store_feedback;

typedef int (*store_feedback_cb)(void *ud, const store_feedback *f);

/* Visit the binary feedback of prompts of split (NULL: all) by prompt id,
 * then completion id, then annotator id. Returns STORE_OK, cb's nonzero
 * value, or a code. */
int store_feedback_foreach(store *st, const char *split, store_feedback_cb cb, void *ud);

/* What store_derive_pairs does. */
typedef struct store_derive_args {
	const char *aspect;  /* the ratings to use (required) */
	double min_margin;   /* a pair needs this difference at least (and more than 0) */
	int all;             /* every pair with the margin, not best vs one lower */
	uint64_t seed;       /* the choice of the lower one (best vs one) */
	int dry_run;         /* count, write nothing */
	int64_t run_id;      /* the run the comparisons are of (0: none) */
} store_derive_args;

typedef struct store_derive_counts {
	long prompts;        /* prompts with two or more completions rated on the aspect */
	long pairs;          /* pairs derived */
	long pairs_new;      /* of those, comparisons added (0 with dry_run) */
	long pairs_existing; /* of those, already there from an earlier run */
} store_derive_counts;

/* Derive comparisons from the ratings of one aspect (UltraFeedback's
 * binarization). A completion's value is the mean of its ratings on the
 * aspect (over annotators). Per prompt, completions are taken in order of
 * content hash; best is the first with the highest value. Without all:
 * one pair, best vs the candidate at index k of those whose value is lower
 * by at least min_margin (and by more than 0), k = the first 8 bytes
 * (big-endian) of SHA-256 of "<seed>:<prompt hash hex>" modulo their
 * number. With all: every two completions whose values differ by at least
 * min_margin (and by more than 0). Each pair becomes a comparison (the
 * higher value wins) by annotator "ratings:<aspect>" of kind import, all in
 * one transaction. STORE_EINVAL without an aspect or with a negative
 * margin; STORE_ENOTFOUND when no completion is rated on the aspect
 * (message lists the aspects there are). */
int store_derive_pairs(store *st, const store_derive_args *a, store_derive_counts *out);

/* ---- uncertain pairs and gold items (store_gold.c) ------------------------------ */

/* What the judges left unsure about one pair, for dpo-annotate --order
 * uncertain: inconsistent (a judge's verdicts differed between the two
 * orders it saw the pair in) and judges_disagree (two judges gave different
 * verdicts, neither of them inconsistent; skips aside). */
typedef struct store_pair_doubt {
	int64_t prompt_id, completion_a, completion_b;
	int inconsistent, judges_disagree;
} store_pair_doubt;

typedef int (*store_pair_doubt_cb)(void *ud, const store_pair_doubt *d);

/* Visit, in (prompt id, a, b) order, every pair with an inconsistent judge
 * verdict or judges disagreeing. Returns STORE_OK, cb's nonzero value, or a
 * code. */
int store_judge_doubts_foreach(store *st, store_pair_doubt_cb cb, void *ud);

/* Key of a cached DPO implicit-reward margin: the fingerprints of the
 * policy, of the reference and of the tokenization, and the pair (either
 * order; the store keeps a < b). */
typedef struct store_margin_key {
	const char *policy_fp, *reference_fp, *tok_fp;
	int64_t completion_a, completion_b;
} store_margin_key;

/* Fetch the cached margin of the pair: (log pi(a) - log ref(a)) - (log pi(b)
 * - log ref(b)) for the key's a and b as given (the sign follows the order
 * asked), beta not applied. STORE_ENOTFOUND on a miss. */
int store_margin_get(store *st, const store_margin_key *k, double *margin);
/* Store (or replace) the margin of the key's a over its b, as above. */
int store_margin_put(store *st, const store_margin_key *k, double margin);
/* One cached margin as handed to callbacks: of completion_a over
 * completion_b (a < b), beta not applied. */
typedef struct store_margin {
	int64_t completion_a, completion_b;
	double margin;
} store_margin;
typedef int (*store_margin_cb)(void *ud, const store_margin *m);
/* Visit every cached margin of the three fingerprints (k's pair is
 * ignored), in (a, b) order: one scan instead of a lookup per pair. */
int store_margins_foreach(store *st, const store_margin_key *k, store_margin_cb cb, void *ud);

/* A gold item: a pair with a known answer (answer "a": completion_a is the
 * better one, "b": completion_b). Pointers valid during the callback. */
typedef struct store_gold {
	int64_t prompt_id, completion_a, completion_b;
	const char *answer;
	const char *source; /* where it came from (a file name), or NULL */
} store_gold;

typedef int (*store_gold_cb)(void *ud, const store_gold *g);

/* Mark pair (better, worse) of prompt_id as a gold item: better is the
 * known answer. The pair leaves the normal queues (store_queue_foreach),
 * exports and resolved pairs (store_pairs_foreach and its counts), review
 * (store_disagreements_foreach) and agreement (store_votes_foreach). A pair
 * marked already keeps its row (*created 0; may be NULL); STORE_EINVAL when
 * it is marked with the other answer, or the completions are not two of
 * prompt_id. */
int store_gold_add(store *st, int64_t prompt_id, int64_t better, int64_t worse, const char *source,
		   int *created);
/* Visit the gold items in (prompt id, a, b) order. */
int store_gold_foreach(store *st, store_gold_cb cb, void *ud);
/* How many gold items the store holds, into *n. */
int store_gold_count(store *st, long *n);

/* One annotator's record on gold items: n verdicts (skips aside) on them,
 * correct of which named the known answer (a tie or "both bad" is wrong). */
typedef struct store_gold_score {
	int64_t annotator_id;
	const char *annotator, *kind;
	long n, correct;
} store_gold_score;

typedef int (*store_gold_score_cb)(void *ud, const store_gold_score *g);

/* Visit every annotator with a verdict on a gold item, by name. */
int store_gold_scores_foreach(store *st, store_gold_score_cb cb, void *ud);

/* ---- long rationales (store_rationale.c) ------------------------------------ */

/* A comparison's rationale of STORE_RATIONALE_ZMIN bytes or more is stored
 * zlib-compressed (a BLOB that keeps its first line readable for SQL);
 * store_comparisons_foreach hands it back as text. */
#define STORE_RATIONALE_ZMIN 4096
struct util_buf; /* util/buf.h */

/* Append the stored form of a long text to out: returns 1 when it was
 * compressed, 0 (nothing appended) when it stays plain text. */
int store_rationale_encode(const char *text, struct util_buf *out);
/* Append the text of a stored rationale data[0..n) to out: 1 when it was
 * compressed, 0 when it was plain (copied), -1 when its compressed part is
 * damaged (its first line and a note are appended). */
int store_rationale_decode(const void *data, size_t n, struct util_buf *out);

/* One rating by annotator_id (a judge) in run run_id (0: none): the value
 * of completion_id on aspect, in [scale_min, scale_max]. A rating already
 * there for the completion, annotator and aspect is kept; *created says
 * whether this one was added (may be NULL). STORE_EINVAL for a bad scale
 * or value. */
int store_rating_add(store *st, int64_t completion_id, int64_t annotator_id, const char *aspect, double value,
		     double scale_min, double scale_max, int64_t run_id, int *created);
/* The value annotator_id gave completion_id on aspect into *value (may be
 * NULL); STORE_ENOTFOUND when there is none. */
int store_rating_get(store *st, int64_t completion_id, int64_t annotator_id, const char *aspect, double *value);

#endif

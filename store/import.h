/* import.h: reading preference datasets (JSON Lines) into the store.
 *
 * Two layers. The parser layer needs no database: a store_import_parser
 * turns one JSON line into a store_record (borrowed pointers, valid until the
 * next parse) or an error message naming the field and what was expected.
 * The file layer (store_import_file) streams a file, plain or gzip, through
 * store_add_record inside one transaction.
 *
 * Formats (store_import_format):
 *   trl            {"prompt","chosen","rejected"} as strings (standard) or
 *                  lists of {role, content} (conversational); without
 *                  "prompt", chosen/rejected are whole conversations whose
 *                  shared prefix is the prompt (implicit prompt).
 *   hh             Anthropic HH-RLHF {"chosen","rejected"} transcripts. The
 *                  prompt is kept as plain text, byte for byte, through the
 *                  last "\n\nAssistant:"; the completion is the rest, its
 *                  leading space included, so prompt + completion is the
 *                  transcript byte for byte.
 *   ultrafeedback  raw ({"instruction"|"prompt", "completions": [{"response",
 *                  "model", "annotations"|"ratings"|"fine-grained_score"|
 *                  "overall_score"}]}: every pair becomes a comparison by mean
 *                  rating) or binarized ({"prompt","chosen","rejected",
 *                  "score_chosen","score_rejected"}, scores possibly inside
 *                  "metadata"; equal scores give a tie).
 *   sharegpt       ShareGPT / LLaMA-Factory DPO ({"conversations": [{from,
 *                  value}], "chosen": {from, value}, "rejected": {...},
 *                  optional "system"}) and LLaMA-Factory v1
 *                  ({"chosen_messages","rejected_messages"}).
 *   prompts        {"prompt": str|messages} or {"messages": [...]}: prompts
 *                  only, no completions.
 *   candidates     {"prompt"|"messages", "completions": [str | {"text",
 *                  "model"?}]}: completions without labels.
 * Labels and ratings made by other tools (import_judgments.c):
 *   mt-bench       MT-Bench pairwise judgments (human or GPT-4):
 *                  {"model_a","model_b","winner","judge","conversation_a",
 *                  "conversation_b","turn"}: the judged answer is the
 *                  turn-th assistant message (default: the last), the
 *                  prompt the messages before it (the same on both sides);
 *                  winner model_a/model_b/tie/"tie (bothbad)" gives a, b,
 *                  tie or both_bad; the judge is the annotator.
 *   mt-bench-single MT-Bench single grading {"model","judge","score"} with
 *                  the question and answer in "user_prompt" (FastChat's
 *                  judge prompt) or in "question" and "answer": a rating
 *                  "score" on 1..10 by the judge.
 *   alpaca-eval    AlpacaEval annotations {"instruction","output_1",
 *                  "output_2","generator_1","generator_2","annotator",
 *                  "preference"}: preference p in [1, 2] (0: a tie) gives
 *                  output_1 for p < 1.5, output_2 for p > 1.5, a tie for
 *                  1.5, with confidence |p - 1.5| * 2; the annotator is a
 *                  judge.
 *   kto            binary feedback: TRL's {"prompt","completion","label":
 *                  bool} and LLaMA-Factory's {"messages"|"conversations",
 *                  "kto_tag"|"label": bool} (the last, assistant, message
 *                  is the completion): one completion with a good/bad mark.
 * Every label says a = chosen, b = rejected. Raw UltraFeedback records also
 * give their ratings (each aspect's "Rating" on 1..5, "fine-grained_score"
 * on 1..5, "overall_score" on 1..10). A record's string field "annotator"
 * (or "judge") names who labelled it. */
#ifndef DPO_STORE_IMPORT_H
#define DPO_STORE_IMPORT_H
#include <stddef.h>
#include <stdio.h>
#include "store/store.h"

typedef enum store_import_format {
	STORE_IMPORT_AUTO = 0,
	STORE_IMPORT_TRL,
	STORE_IMPORT_HH,
	STORE_IMPORT_ULTRAFEEDBACK,
	STORE_IMPORT_SHAREGPT,
	STORE_IMPORT_PROMPTS,
	STORE_IMPORT_CANDIDATES,
	STORE_IMPORT_MTBENCH,
	STORE_IMPORT_MTBENCH_SINGLE,
	STORE_IMPORT_ALPACAEVAL,
	STORE_IMPORT_KTO,
} store_import_format;

/* How the records are laid out in a file: detected (a JSON array when the
 * first non-space byte is '[', CSV/TSV by a .csv/.tsv extension, else JSON
 * Lines), or given. */
typedef enum store_import_container {
	STORE_IMPORT_CONTAINER_AUTO = 0,
	STORE_IMPORT_CONTAINER_JSONL,
	STORE_IMPORT_CONTAINER_CSV,
	STORE_IMPORT_CONTAINER_TSV,
} store_import_container;

/* A field map (--map FIELD=PATH,...) with an optional joined file (--join
 * FILE --on KEY): each record is rewritten to the fields the formats read
 * before it is parsed. Read-only once made. */
typedef struct store_import_map store_import_map;

/* Make a map from spec ("prompt=instruction,completion=output,model=generator";
 * NULL or "" for none) and, when join_path is not NULL, the records of
 * join_path (JSON Lines or a JSON array) indexed by the value at key_path in
 * each: a PATH that starts with "join:" is read from the joined record whose
 * key equals the record's. Under a join without a prompt in spec, the prompt
 * is the joined record's turns[0] (FastChat / arena-hard questions), prompt
 * or instruction; without a completion, a record with "choices" gives
 * choices[0].turns[0] credited to its model_id (their model answers).
 * Returns 0 with *out set (free with store_import_map_free), -1 with the
 * reason in err and STORE_IMPORT_MAP_USAGE set in *why_kind for a spec
 * error (a usage error), 0 there for a file error. */
#define STORE_IMPORT_MAP_USAGE 1
int store_import_map_new(const char *spec, const char *join_path, const char *key_path, store_import_map **out,
			 int *why_kind, char *err, size_t errlen);
/* Free a map. NULL is allowed. */
void store_import_map_free(store_import_map *m);

/* Parse a format name ("auto", "trl", "hh", "ultrafeedback", "sharegpt",
 * "prompts", "candidates", "mt-bench", "mt-bench-single", "alpaca-eval",
 * "kto") into *fmt. Returns STORE_OK or STORE_EINVAL. */
int store_import_format_from_name(const char *name, store_import_format *fmt);
/* The name of a format (a static string; "?" past the last one). */
const char *store_import_format_name(store_import_format fmt);

/* ---- parser layer (no database) ------------------------------------------- */

typedef struct store_import_parser store_import_parser;

/* A new parser for fmt. With STORE_IMPORT_AUTO the first record that parses
 * fixes the format (see store_import_parser_format) and every later record
 * must match it. Never NULL; free with store_import_parser_free. */
store_import_parser *store_import_parser_new(store_import_format fmt);
/* Free the parser. NULL is allowed. */
void store_import_parser_free(store_import_parser *p);

/* Under STORE_IMPORT_AUTO, before any record: take fmt as detected (as if
 * its record came first), e.g. from a look at the first records of a file.
 * Otherwise nothing happens. */
void store_import_parser_presume(store_import_parser *p, store_import_format fmt);
/* Parse one line (len bytes, need not be NUL-terminated) into *rec. Every
 * pointer in *rec is owned by the parser and valid until the next call or
 * store_import_parser_free. Returns STORE_OK, or STORE_EINVAL with the reason
 * (e.g. `field "chosen" must be a string or a list of messages`, or
 * `duplicate key "chosen" in one object`) in store_import_parser_errmsg. A failed line does not fix an auto format. */
int store_import_parse(store_import_parser *p, const char *line, size_t len, store_record *rec);
/* The reason the last parse failed ("" if it did not). Owned by the parser. */
const char *store_import_parser_errmsg(const store_import_parser *p);
/* How many empty completions the last parse left out of its record (a
 * candidates record keeps its other completions, or only its prompt), and
 * in *why (when not NULL; owned by the parser) which, e.g. `field
 * "completions[1]" of model m is empty: not imported ...`. */
int store_import_parser_dropped(const store_import_parser *p, const char **why);
/* The format in use: the one given, or the one detected (AUTO until the
 * first record parses). */
store_import_format store_import_parser_format(const store_import_parser *p);
/* A readable description of the layout seen first, e.g. "trl (standard)",
 * "sharegpt (llama-factory v1)"; "" before any record. Owned by the parser. */
const char *store_import_parser_variant(const store_import_parser *p);

/* Detect the format of one line from its fields alone, without validating
 * the values. Returns STORE_OK with *fmt set, or STORE_EINVAL when the line is
 * not a JSON object or matches no format (then *fmt is AUTO). */
int store_import_detect(const char *line, size_t len, store_import_format *fmt);

/* ---- file layer ------------------------------------------------------------ */

/* Called every few thousand lines and at the end. Returning nonzero stops
 * the import: the file's transaction is rolled back and store_import_file
 * returns STORE_ERR with "FILE:LINE: interrupted" (e.g. on Ctrl-C). */
typedef int (*store_import_progress_cb)(void *ud, long lines, unsigned long long bytes);

typedef struct store_import_opts {
	store_import_format format;  /* AUTO to detect per file */
	const char *source;          /* NULL: the file's base name without extensions */
	const char *split;           /* NULL: "train" */
	/* NULL: the first bad record aborts the import and nothing of the file
	 * is kept. Otherwise each bad line is written here as one JSON object
	 * {"file","line","reason","record"} and the rest is imported. */
	FILE *rejects;
	/* Who labelled the records that do not name their annotator: NULL,
	 * "import:<source>" */
	const char *annotator;
	/* The kind of those ("human" (default), "judge" or "import"), and,
	 * when not NULL, of the annotators records name themselves */
	const char *annotator_kind;
	store_import_progress_cb progress; /* may be NULL */
	void *progress_ud;
	store_import_container container; /* AUTO: detect per file */
	const store_import_map *map;      /* NULL: the records as they are */
	/* the import run (store_import_run_begin, provenance.h) whose
	 * provenance the records leave; 0: none */
	int64_t run_id;
} store_import_opts;

typedef struct store_import_result {
	store_import_counts counts;   /* what store_add_record reported */
	long lines;                   /* lines read, blank ones included */
	long rejected;                /* lines written to opts.rejects */
	/* empty completions left out of records that were imported (each
	 * written to opts.rejects too, when given) */
	long completions_dropped;
	char container[16];           /* "jsonl", "json array", "csv", "tsv" */
	/* the lines of the first few labels that conflicted with a verdict
	 * the source had given the pair before (counts.comparisons_conflict
	 * has them all) */
	long conflict_lines[5];
	int nconflict_lines;
	store_import_format format;   /* the format used (detected under AUTO) */
	char variant[64];             /* see store_import_parser_variant */
	char source[256];             /* the source name used */
	char errmsg[1024];            /* on failure: "FILE:LINE: reason" or "FILE: reason" */
} store_import_result;

/* Import one file (path, "-" for standard input; gzip is detected) into st
 * in one transaction (store_begin .. store_commit; the caller must not hold
 * one open). Under STORE_IMPORT_AUTO the format is detected from the first
 * batch of records, not the first alone: if they mix prompts (or candidates)
 * with one format of pairs, the file is of that format and its prompt-only
 * lines are bad records. On any error the transaction is rolled back, leaving the
 * database as before, and a negative code is returned with the message in
 * res->errmsg. A file with no records is an error ("no records"), and so is
 * one whose every record went to opts.rejects. Aborting on a bad record, the
 * message counts the good records before it and suggests --skip-bad; a read
 * error (e.g. a truncated gzip stream, or data after it) counts the lines
 * read. *res is overwritten. */
int store_import_file(store *st, const char *path, const store_import_opts *opts,
		      store_import_result *res);

/* The default source name of path: its base name without the extensions
 * .gz, .jsonl, .json, .ndjson, .jl, .txt, .csv and .tsv ("stdin" for "-"). Caller frees. */
char *store_import_default_source(const char *path);

#endif

/* import_int.h: private to the importer's parser files: what import_parse.c
 * lends the parsers of judgments, ratings and binary feedback
 * (import_judgments.c), and what they give back. */
#ifndef DPO_STORE_IMPORT_INT_H
#define DPO_STORE_IMPORT_INT_H
#include "store/import.h"
#include <cjson/cJSON.h>

/* ---- from import_parse.c: the current record of the parser -------------- */

/* Set the parser's message (printf-like); returns STORE_EINVAL. */
int imp_fail(store_import_parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Keep s (malloc'ed) until the next line; returns it. */
char *imp_keep(store_import_parser *p, char *s);
/* Add a completion (text and model borrowed); returns its index. */
int imp_add_completion(store_import_parser *p, const char *text, const char *model);
/* Add a label between completions a and b; returns it (valid until the
 * next label is added) so that scores or confidence can be set. */
store_rec_label *imp_add_label(store_import_parser *p, int a, int b, const char *verdict);
/* The record's prompt: plain text (borrowed), or a copy of n messages. */
void imp_set_prompt_text(store_import_parser *p, const char *text);
void imp_set_prompt_messages(store_import_parser *p, const store_msg *m, size_t n);
/* A non-empty list of messages (role/content or from/value) in field name
 * of the record, parsed into the parser's scratch list `slot` (0 or 1):
 * *msgs and *n point into it until the next line. */
int imp_messages(store_import_parser *p, const cJSON *arr, const char *name, int slot, const store_msg **msgs,
		 size_t *n);
/* A message's content: a string, or a list of text parts (joined). */
int imp_content(store_import_parser *p, const cJSON *c, const char *path, const char **out);
/* Set the variant shown for the file (the first record's). */
void imp_set_variant(store_import_parser *p, const char *v);

/* ---- from import_judgments.c ---------------------------------------------- */

/* The ratings, feedback and annotator of the current record. */
typedef struct imp_extra imp_extra;

/* A new, empty set (never NULL); clear it for the next line; free it. */
imp_extra *imp_extra_new(void);
void imp_extra_reset(imp_extra *x);
void imp_extra_free(imp_extra *x);

/* The format of a record of the formats of import_judgments.c (mt-bench,
 * mt-bench-single, alpaca-eval, kto) from its fields, or AUTO. */
store_import_format imp_detect_judgments(const cJSON *root);
/* Parse root as fmt (one of those formats) into the parser's record and x. */
int imp_parse_judgments(store_import_parser *p, imp_extra *x, store_import_format fmt, const cJSON *root);
/* The ratings of completion i of a raw UltraFeedback record (object c):
 * each aspect's "Rating" (1..5; a list of them: their mean; "N/A": none),
 * "fine-grained_score" (1..5) and "overall_score" (1..10). */
int imp_uf_ratings(store_import_parser *p, imp_extra *x, const cJSON *c, int i);
/* Hand x's ratings, feedback and annotator to rec; a record that names no
 * annotator itself gets root's string field "annotator" (human, unless
 * the format says otherwise) or "judge" (a judge), if it has one. */
void imp_extra_finish(imp_extra *x, const cJSON *root, store_record *rec);

#endif

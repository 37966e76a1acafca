/* judge_modes.h: dpo-judge beyond pairwise verdicts: grading one answer
 * (--mode rating: a score from 1 to 10, or 1 to 5 per aspect) and ranking
 * the K answers of a prompt in one request (--mode rank, stored as the
 * K(K-1)/2 comparisons it implies). The parsers follow the verdict rule of
 * judge_verdict_find (a token outside quoted material; one alone on the
 * last non-empty line wins). The run itself: dpo-judge-modes.c. */
#ifndef DPO_JUDGE_MODES_H
#define DPO_JUDGE_MODES_H
#include "judge/judge.h"
#include <stddef.h>
#include <stdint.h>

typedef enum judge_mode {
	JUDGE_MODE_PAIRWISE = 0,
	JUDGE_MODE_RATING,
	JUDGE_MODE_RANK,
} judge_mode;

/* "pairwise", "rating", "rank". */
const char *judge_mode_name(judge_mode m);
/* Parse a mode name; returns 0 and sets *m, or JUDGE_EINVAL. */
int judge_mode_parse(const char *name, judge_mode *m);

/* The most answers one ranking request shows (the letters A..Z). */
#define JUDGE_RANK_MAX 26
/* The most aspects one rating request asks for. */
#define JUDGE_ASPECTS_MAX 16

/* A token parser for judge_token_find: when t[i..) starts a token, return
 * a nonzero value and set *len to its length; else return 0. ud: the
 * parser's own data (a parser may write a result there when it returns
 * nonzero: the last such call is the token found). */
typedef int (*judge_token_fn)(const char *t, size_t n, size_t i, size_t *len, void *ud);

/* The final token of text[0..n) by the verdict rule of judge_verdict_find
 * (defined in judge_verdict.c): tokens in quoted material or echoed
 * regions (nonce) do not count; a token alone on the last non-empty line
 * wins, else the last token outside quoted material. Returns fn's value
 * for that token, or 0 when there is none. */
int judge_token_find(const char *text, size_t n, const char *nonce, judge_token_fn fn, void *ud);

/* The judge's score in text[0..n): "[[N]]" or "[[N/MAX]]" (MAX == hi),
 * N a whole number in [lo, hi], blanks inside the brackets allowed. With
 * aspect not NULL the token is "[[ASPECT: N]]" (the aspect name in any
 * case; ':' or '='). Returns N, or 0 when there is no such token (lo must
 * be >= 1). */
int judge_rating_find(const char *text, size_t n, const char *nonce, const char *aspect, int lo, int hi);

/* The judge's ranking of k answers (2 <= k <= JUDGE_RANK_MAX, labelled A,
 * B, ...) in text[0..n): "[[C > A > B]]", best first; '=' between two
 * letters ties them ("[[A = C > B]]"); each of the k letters exactly once
 * (either case), blanks allowed. On success returns 1 and sets level[i]
 * for letter i (0: the best; tied letters share a level); else returns 0
 * (level untouched). */
int judge_ranking_find(const char *text, size_t n, const char *nonce, int k, int level[]);

/* The ranking level[0..k) as text: "C > A = B" (ties as '=', letters in
 * order within a tie). Malloc'ed. */
char *judge_ranking_text(const int level[], int k);

/* The permutation of k answers a prompt's ranking request shows: order[j]
 * is the index (into the prompt's answers in id order) of the answer
 * labelled with letter j. Deterministic in seed and prompt_id. */
void judge_rank_order(uint64_t seed, int64_t prompt_id, int k, int order[]);

/* The judge's identity params (judge_identity_params) with the mode added
 * for a mode other than pairwise: {...,"mode":"rating","aspects":["x"]}.
 * Takes params (malloc'ed) and returns the new text (malloc'ed). */
char *judge_mode_identity(char *params, judge_mode m, const char *const *aspects, size_t naspects);

/* Split a comma-separated aspect list into at most JUDGE_ASPECTS_MAX
 * names (letters, digits, '_' and '-'; no duplicates) in out (malloc'ed
 * copies; free with judge_aspects_free). Returns the count, or -1 with a
 * message in err. */
int judge_aspects_parse(const char *list, char **out, char *err, size_t errsz);
/* Free names from judge_aspects_parse. */
void judge_aspects_free(char **names, int n);

/* ---- a run of --mode rating or rank (dpo-judge-modes.c) ----------------- */

struct store;

/* What dpo-judge hands the run (all borrowed for the call). */
typedef struct judge_mode_run {
	struct store *st;
	judge_mode mode;
	const char *const *aspects;    /* rating: 1-5 per aspect; naspects 0: "overall" 1-10 */
	size_t naspects;
	const judge_template *tmpl;
	judge_provider provider;
	judge_params prm;
	const char *url;
	const void *headers;           /* a struct curl_slist * */
	judge_engine_opts eo;
	int64_t annotator_id, run_id;
	const char *claim_scope, *claim_owner;
	const char *split, *source;
	long limit;                    /* > 0: at most this many requests */
	uint64_t seed;                 /* rank: the order the answers are shown in */
	double price_in, price_out;    /* USD per 1M tokens, when cost_known */
	int cost_known, quiet;
	const char *api_key;           /* redacted from messages */
} judge_mode_run;

/* What it did. */
typedef struct judge_mode_result {
	long units;        /* requests to make (completions to rate, prompts to rank) */
	long done;         /* of those, answered with a score or ranking */
	long failed;       /* answered without one (a failed parse) or failed */
	long labels;       /* ratings or comparisons stored */
	long sent, cached, retries, errors, claimed_elsewhere;
	long in_tok, out_tok, reason_tok;
	double cost;
	int fatal, unreachable, store_failed;
	char fatal_msg[600];
} judge_mode_result;

/* Rate (one request per completion not yet rated by the judge on every
 * aspect) or rank (one request per prompt with two to JUDGE_RANK_MAX
 * completions that has a pair the judge has not compared) the pending
 * items, with the request cache and claims as for pairs. Ratings go to
 * the ratings table (aspect "overall" on 1..10, or each aspect on 1..5);
 * a ranking becomes one comparison per pair not yet compared (ties:
 * "tie"), its rationale the ranking, the letters shown and the judge's
 * explanation. An answer without a score or ranking stores nothing.
 * Returns 0, JUDGE_EINTR, or JUDGE_ERR (out says why: fatal,
 * store_failed). */
int judge_modes_run(const judge_mode_run *r, judge_mode_result *out);

#endif

/* judge.h: the pieces of dpo-judge that need no database: verdict
 * extraction, prompt templates, provider request/response formats, a
 * request's verifier input, cache key and answer, reference answers, retry
 * and rate-limit arithmetic, the price table, and the request engine (one
 * curl multi loop that also drives local verifier processes). The pairs of
 * a run and their verdicts: judge_pairs.h.
 *
 * Conventions: functions return 0 or a negative JUDGE_E* code; strings
 * handed in are borrowed for the call unless a comment says otherwise. */
#ifndef DPO_JUDGE_H
#define DPO_JUDGE_H
#include <stddef.h>
#include <stdint.h>
#include "util/buf.h"

enum {
	JUDGE_OK = 0,
	JUDGE_ERR = -1,     /* generic failure; a message says what */
	JUDGE_EINVAL = -2,  /* bad input (template, JSON that does not parse) */
	JUDGE_EINTR = -5,   /* interrupted (SIGINT/SIGTERM) */
};

/* ---- verdicts ----------------------------------------------------------- */

/* Verdict characters: 'A' (first shown better), 'B' (second shown better),
 * 'C' (tie); 0 when none. */

/* Find the judge's own final verdict in text[0..n): "[[A]]", "[[B]]",
 * "[[C]]" or "[[tie]]" (case-insensitive, blanks inside the brackets
 * allowed). Quoted material is never a verdict: regions from
 * "BEGIN <nonce>" to "END <nonce>" (or the end of the text; nonce NULL or
 * "": none), fenced code blocks, blockquote lines ("> ..."), text
 * between a pair of double quotes (ASCII or curly) or backticks within one
 * paragraph, and single quotes (straight or curly) within one line, opened
 * at the start or after a blank or '(' (apostrophes quote nothing). When the last non-empty line is a verdict token alone (maybe
 * bold, italic, in backticks or quotes, with a final period) that verdict
 * wins; otherwise the last token outside quoted material. Returns 'A',
 * 'B', 'C' or 0 (none: a failed parse). */
int judge_verdict_find(const char *text, size_t n, const char *nonce);

/* Parse a verdict given as a word: "A", "B", "C", "tie" (case-insensitive,
 * surrounding blanks and one pair of [[ ]] allowed). Returns 'A', 'B', 'C'
 * or 0. */
int judge_verdict_word(const char *s, size_t n);

/* Parse the verdict of a structured (JSON) answer: an object with a string
 * member "verdict" as accepted by judge_verdict_word. Returns 'A', 'B', 'C'
 * or 0 (not JSON, no such member, or a bad value). */
int judge_verdict_json(const char *s, size_t n);

/* ---- templates ---------------------------------------------------------- */

typedef struct judge_template judge_template;

/* The fields a template can use. Any may be NULL (renders as ""). */
typedef struct judge_fields {
	const char *prompt;
	const char *response_a; /* shown first */
	const char *response_b; /* shown second */
	const char *reference;
	const char *nonce;      /* boundary marker nonce, see judge_nonce */
	int json_verdict;       /* {{verdict_format}} asks for JSON instead of [[X]] */
	/* --mode rating and rank (judge_modes.h): {{response}} is response_a */
	int mode;               /* a judge_mode: what {{verdict_format}} asks for */
	const char *const *responses; /* {{responses}}: shown as Response A, B, ... */
	size_t nresponses;
	const char *const *aspects; /* rating: a 1-5 score per aspect; none: 1-10 */
	size_t naspects;
} judge_fields;

/* Parse template text (copied). Placeholders are {{prompt}},
 * {{response_a}}, {{response_b}}, {{response}}, {{responses}},
 * {{reference}} and {{verdict_format}}. prompt and responses are embedded
 * between "BEGIN <nonce>" and "END <nonce>" marker lines, as is the
 * reference. A template uses {{response_a}} and {{response_b}} (pairwise),
 * or {{response}} alone (rating), or {{responses}} alone (rank); an
 * unknown {{name}} is an error. A section from a line "{{#system}}" to a
 * line "{{/system}}" is the template's system message (no placeholders
 * inside), left out of what is rendered.
 * Returns NULL and writes a message into err (size errsz) naming the line. */
judge_template *judge_template_parse(const char *text, const char *name, char *err, size_t errsz);
/* Read and parse a template file. Returns NULL with a message on error. */
judge_template *judge_template_load(const char *path, char *err, size_t errsz);
/* Free a template (NULL allowed). */
void judge_template_free(judge_template *t);
/* SHA-256 (64 hex digits) of the template text. Owned by the template. */
const char *judge_template_hash(const judge_template *t);
/* Nonzero when the template uses {{reference}}. */
int judge_template_uses_reference(const judge_template *t);
/* The judge_mode (judge_modes.h) the template's placeholders are for. */
int judge_template_mode(const judge_template *t);
/* The template's system section, or NULL. Owned by the template. */
const char *judge_template_system(const judge_template *t);
/* Render into out (appended). */
void judge_template_render(const judge_template *t, const judge_fields *f, util_buf *out);

/* Derive a boundary nonce (16 hex digits + NUL) for one request from a seed
 * and the texts it embeds; the nonce is chosen so that it occurs in none of
 * texts[0..n) (NULL entries are skipped). Deterministic, so that a rerun
 * builds the same request (and hits the request cache), and unpredictable
 * to whoever wrote a response without the other texts and the seed. */
void judge_nonce(uint64_t seed, const char *const *texts, size_t n, char out[17]);

/* ---- providers ---------------------------------------------------------- */

typedef enum judge_provider {
	JUDGE_PROVIDER_OPENAI,
	JUDGE_PROVIDER_ANTHROPIC,
	JUDGE_PROVIDER_EXEC,
	JUDGE_PROVIDER_AZURE,     /* Azure OpenAI: OpenAI's formats, its own URLs and key header */
} judge_provider;

/* "openai", "anthropic", "exec", "azure". */
const char *judge_provider_name(judge_provider p);
/* Parse a provider name; returns 0 and sets *p, or JUDGE_EINVAL. */
int judge_provider_parse(const char *name, judge_provider *p);

/* Request parameters. */
typedef struct judge_params {
	const char *model;
	double temperature;
	long max_tokens;
	int json_verdict;
	/* request shaping (see judge_models_lookup); zero: the classic body */
	int no_temperature;           /* send no temperature */
	int max_completion_tokens;    /* OpenAI: the limit as max_completion_tokens */
	const char *reasoning_effort; /* OpenAI: reasoning_effort; NULL: none */
	const char *system;           /* a system message; NULL: none */
	const char *extra_body;       /* a JSON object merged into the body; NULL: none */
} judge_params;

/* Append the JSON request body for one rendered judging prompt to out.
 * OpenAI (and Azure): chat/completions with the system message (when
 * prm->system) and one user message; "max_tokens" or, with
 * max_completion_tokens, "max_completion_tokens"; "temperature" unless
 * no_temperature; "reasoning_effort" when set; json_verdict: a
 * response_format json_schema with "reasoning" and "verdict". Anthropic:
 * /v1/messages with "system" when set and one user message (json_verdict:
 * a forced tool "record_verdict" whose input holds "reasoning" and
 * "verdict"). Last, the members of prm->extra_body (a JSON object; ignored
 * when it is not one) are merged in: objects member by member, anything
 * else replacing what the body had. */
void judge_request_body(judge_provider p, const judge_params *prm, const char *user_text,
			util_buf *out);

/* Token usage of one response. */
typedef struct judge_usage {
	long input_tokens, output_tokens; /* output includes reasoning tokens */
	long reasoning_tokens;            /* usage.completion_tokens_details.reasoning_tokens */
} judge_usage;

/* A parsed response. */
typedef struct judge_reply {
	char *text;       /* the answer text (or the tool input JSON); caller frees */
	int structured;   /* text is a JSON verdict object (tool use) */
	int cut;          /* the answer stopped at the token limit (finish_reason "length",
			     stop_reason "max_tokens") */
	judge_usage usage;
} judge_reply;

/* Parse a successful (HTTP 200) response body. On success fills *r (free
 * r->text) and returns 0. Returns JUDGE_EINVAL when the body is not a JSON
 * object (malformed or truncated: worth retrying), JUDGE_ERR when it is one
 * without the expected fields; err gets a message either way. */
int judge_reply_parse(judge_provider p, const char *body, size_t n, judge_reply *r, char *err,
		      size_t errsz);

/* Extract a human-readable message from an error response body (the
 * provider's error.message, else the body itself shortened). Returns a
 * malloc'ed string. */
char *judge_error_message(const char *body, size_t n);

/* Nonzero when an HTTP status is worth retrying: 408, 409, 429, 5xx (529
 * included). */
int judge_status_retryable(long status);

/* Parse a Retry-After value (delta seconds, possibly fractional, or an HTTP
 * date, relative to now_epoch) into milliseconds; -1 if unparseable. */
long judge_parse_retry_after(const char *v, long now_epoch);

/* ---- one request and its answer (judge_request.c) ----------------------- */

/* A conversation (a JSON array of {"role", "content"} objects) as prompt
 * text: "role: content" paragraphs separated by blank lines. Malloc'ed. */
char *judge_messages_text(const char *messages_json);

/* Append the exec provider's request to out: one line of JSON with
 * "prompt", "messages" (when messages_json is not NULL: the prompt as a
 * conversation), "response_a" (shown first), "response_b", "reference"
 * (when f->reference is not NULL) and the store ids "prompt_id",
 * "completion_a" (first_id: the one shown first) and "completion_b". */
void judge_exec_body(const judge_fields *f, const char *messages_json, int64_t prompt_id, int64_t first_id,
		     int64_t second_id, util_buf *out);

/* The request cache key (64 hex digits and a NUL): SHA-256 of "POST ",
 * url, "\n" and the body. Headers (where the API key lives) are never part
 * of it. Changing it would make every judge cache miss. */
void judge_cache_key(const char *url, const char *body, size_t n, char out[65]);

/* What one answer says. */
typedef struct judge_answer {
	int verdict;        /* 'A', 'B', 'C'; 0 when none */
	judge_usage usage;  /* tokens, from an API's answer */
	char *rationale;    /* a verifier's JSON "rationale" (malloc'ed), or NULL */
	char *explanation;  /* an API judge's own words (malloc'ed), or NULL: the answer
			       text, or a JSON verdict's "reasoning"; at most
			       JUDGE_EXPLANATION_MAX bytes (cut at a character) */
} judge_answer;

/* The longest explanation kept per answer, in bytes. */
#define JUDGE_EXPLANATION_MAX 16384

/* Read the body of a successful try (HTTP 2xx, exit status 0). nonce: the
 * request's marker nonce (judge_verdict_find); json_verdict: the request
 * asked for a JSON verdict. Returns -1 when the answer is malformed: an
 * API body that is not a JSON object (worth another try) or a verifier's
 * output that is no verdict; err says what. Otherwise returns 0 and sets
 * a->verdict, 0 when the answer has none (then err says why if the API's
 * body lacked the expected fields, and is left alone if the text just had
 * no verdict token, or says that the answer was cut at the token limit
 * when it was). Free a->rationale and a->explanation. */
int judge_answer_parse(judge_provider p, const char *body, size_t n, const char *nonce, int json_verdict,
		       judge_answer *a, char *err, size_t errsz);

/* ---- the judge's identity (judge_identity.c) ---------------------------- */

/* A judge is its provider, model, template hash and these parameters: for
 * exec {"swap":B}, else {"temperature":X,"max_tokens":N,"json_verdict":B,
 * "swap":B}, then, each only when set, "reasoning_effort", "system" (the
 * SHA-256 of the system message) and "extra_body" (its text as a string),
 * then "references" (the references file's SHA-256) when refs_hash is not
 * NULL. prm->model is not used. Malloc'ed. The text is
 * part of the identity: changing it would make every judge a new one that
 * judges every pair again. */
char *judge_identity_params(judge_provider p, const judge_params *prm, int swap, const char *refs_hash);
/* The judge's annotator name: "judge:PROVIDER:MODEL:" and the first 12 hex
 * digits of the SHA-256 of provider, model, template hash and params on
 * four lines. Malloc'ed. */
char *judge_identity_name(judge_provider p, const char *model, const char *template_hash, const char *params);

/* ---- reference answers (judge_refs.c) ----------------------------------- */

typedef struct judge_refs judge_refs;

/* Load --references: JSON Lines of {"prompt": TEXT, "reference": TEXT} or
 * {"prompt_id": N, "reference": TEXT} (blank lines skipped). hash gets the
 * file's SHA-256 (part of the judge's identity). Returns NULL with a
 * message naming the file (and line) in err. */
judge_refs *judge_refs_load(const char *path, char hash[65], char *err, size_t errsz);
/* The reference of a prompt: the first entry with its id or, when text is
 * not NULL, its exact text. NULL when there is none. r may be NULL. */
const char *judge_refs_find(const judge_refs *r, int64_t prompt_id, const char *text);
/* Entries loaded (0 for NULL). */
size_t judge_refs_count(const judge_refs *r);
/* Free (NULL allowed). */
void judge_refs_free(judge_refs *r);

/* ---- backoff and token buckets ----------------------------------------- */

/* Delay before retry number attempt (1 for the first retry): when
 * retry_after_ms >= 0 the server's value is used as is (capped at
 * max_ms * 10); otherwise base_ms * 2^(attempt-1), capped at max_ms, with
 * "equal jitter": half fixed, half scaled by u in [0,1). */
double judge_backoff_ms(int attempt, double base_ms, double max_ms, long retry_after_ms, double u);

/* A token bucket: rate units per second, burst capacity. */
typedef struct judge_bucket {
	double rate, capacity, level, last;
} judge_bucket;

/* Start full at time now (seconds). rate <= 0 means unlimited. */
void judge_bucket_init(judge_bucket *b, double rate, double capacity, double now);
/* Try to take n units at time now. Returns 0 and debits (the level may go
 * below zero when n exceeds the capacity and the bucket was full), or
 * returns the seconds to wait before trying again. */
double judge_bucket_take(judge_bucket *b, double n, double now);
/* Adjust by delta units (positive: give back, negative: charge more). */
void judge_bucket_adjust(judge_bucket *b, double delta, double now);

/* ---- prices ------------------------------------------------------------- */

typedef struct judge_prices judge_prices;

/* Load a price table: a JSON object mapping model names to
 * {"input": USD per 1M input tokens, "output": USD per 1M output tokens};
 * keys starting with "_" are comments, "date" (a string) says when the
 * prices were taken. Returns NULL with a message. When base is not NULL
 * the file's entries are added over a copy of base (and its date, unless
 * the file has one). */
judge_prices *judge_prices_load(const char *path, const judge_prices *base, char *err, size_t errsz);
/* Free (NULL allowed). */
void judge_prices_free(judge_prices *p);
/* Prices of model: an exact entry, else the longest entry that is a prefix
 * of model followed by '-', '_', '@' or ':' (so "gpt-4o-mini-2024-07-18"
 * finds "gpt-4o-mini", and "gpt-4o" does not find "gpt-4"). Returns 0 and
 * sets *in, *out (USD per 1M tokens), or -1 when unknown. */
int judge_prices_lookup(const judge_prices *p, const char *model, double *in, double *out);
/* The table's "date", or NULL. Owned by the table. */
const char *judge_prices_date(const judge_prices *p);

/* ---- request shaping per model (judge_models.c) ----------------------- */

/* What a model's requests may carry. */
typedef struct judge_model_shape {
	int max_completion_tokens; /* the limit goes in max_completion_tokens */
	int temperature;           /* a temperature is accepted */
	int reasoning_effort;      /* a reasoning_effort is accepted */
	long default_max_tokens;   /* the answer limit when --max-tokens is not given; 0: none */
} judge_model_shape;

typedef struct judge_models judge_models;

/* Load a model table: a JSON object whose keys are model names, or
 * prefixes ending in '*' ("gpt-5*"), mapping to {"max_tokens_field":
 * "max_tokens"|"max_completion_tokens", "temperature": BOOL,
 * "reasoning_effort": BOOL, "default_max_tokens": N} (members left out:
 * max_tokens, true, true, none);
 * keys starting with "_" and "date" are not models. When base is not NULL
 * the file's entries are added over a copy of base. Returns NULL with a
 * message naming the file (and the model). */
judge_models *judge_models_load(const char *path, const judge_models *base, char *err, size_t errsz);
/* The same from text[0..n), messages naming name instead of a path. */
judge_models *judge_models_parse(const char *text, size_t n, const char *name, const judge_models *base,
				char *err, size_t errsz);
/* Free (NULL allowed). */
void judge_models_free(judge_models *m);
/* The shape of model's requests: an exact entry, else the longest prefix
 * entry that matches. Returns 0, or -1 when no entry matches (m may be
 * NULL); *sh is set either way (no match: max_tokens, temperature and
 * reasoning effort accepted). */
int judge_models_lookup(const judge_models *m, const char *model, judge_model_shape *sh);

/* ---- the request engine ------------------------------------------------ */

typedef struct judge_engine judge_engine;

/* What one request is. The caller fills the request part before handing
 * it to the engine and owns the structure; the engine fills the result. */
typedef struct judge_job {
	/* request */
	const char *url;          /* HTTP: POST target (borrowed until done) */
	const void *headers;      /* HTTP: a struct curl_slist * (borrowed) */
	const char *command;      /* exec: run with /bin/sh -c (borrowed) */
	char *body;               /* request body / exec stdin; owned by the caller */
	size_t body_len;
	double est_tokens;        /* for the --tpm bucket */
	void *ud;                 /* caller data */
	/* result */
	long status;              /* HTTP status, or exec exit status */
	util_buf response;        /* the response body / exec stdout */
	int attempts;             /* tries made */
	int ok;                   /* 1: success (HTTP 200 / exit 0) */
	int fatal;                /* the run must stop (see errmsg) */
	int unreachable;          /* fatal: no server ever answered (errmsg: why, e.g.
				     "connection refused") */
	int sends;                /* times the request left (all tries, re-sends included) */
	char errmsg[512];         /* why it failed */
	/* engine-private */
	void *priv;
} judge_job;

typedef struct judge_engine_opts {
	int concurrency;          /* requests in flight at most (>= 1) */
	double rpm, tpm;          /* <= 0: unlimited */
	double timeout_s;         /* per try, whole transfer */
	int max_retries;
	double backoff_base_ms, backoff_max_ms;
	uint64_t seed;            /* jitter */
	size_t max_response;      /* bytes; a larger response is an error */
	int http2;                /* 0: HTTP/1.1 only; 1: HTTP/2 where TLS negotiates it
				     (ALPN), HTTP/1.1 on http://; 2: HTTP/2 on http:// too
				     (prior knowledge). Only HTTP/2 waits to multiplex:
				     over HTTP/1.1 every request gets a connection at once */
} judge_engine_opts;

/* The defaults of the engine options that dpo-judge exposes: its option
 * table shows them (as text) and judge_engine_opts_default uses them, so
 * the program and the library cannot disagree. */
#define JUDGE_ENGINE_CONCURRENCY 16
#define JUDGE_ENGINE_TIMEOUT_S 120
#define JUDGE_ENGINE_MAX_RETRIES 6
#define JUDGE_ENGINE_BACKOFF_MS 500

/* Defaults: concurrency 16, no limits, timeout 120 s, 6 retries, backoff
 * 500 ms doubling up to 60 s, 4 MiB responses, HTTP/2 (the JUDGE_ENGINE_*
 * values above). */
void judge_engine_opts_default(judge_engine_opts *o);

/* Callbacks. next: hand out the next job (or NULL when there is none for
 * now; the engine asks again later). done: a job has finished (ok, failed
 * after retries, or fatal); return nonzero to stop the run. tick: called
 * at least every 100 ms; return nonzero to stop. retry: informs that job
 * will be retried after delay_ms (may be NULL). A job finishes with
 * ok = 1, or ok = 0 and errmsg set (fatal = 1 when the run must stop: a
 * non-retryable HTTP status, a curl error that is not transient, a
 * verifier that cannot be run). */
typedef struct judge_engine_cbs {
	judge_job *(*next)(void *ud);
	int (*done)(void *ud, judge_job *job);
	int (*tick)(void *ud);
	void (*retry)(void *ud, judge_job *job, double delay_ms);
	/* accept: a try succeeded (HTTP 2xx, exit status 0); return 0 to take
	 * it, or nonzero after writing job->errmsg to count it as failed (an
	 * HTTP request is then retried, a verifier is not). May be NULL. */
	int (*accept)(void *ud, judge_job *job);
	void *ud;
} judge_engine_cbs;

/* A new engine (curl multi handle). Never NULL; aborts if curl cannot start. */
judge_engine *judge_engine_new(const judge_engine_opts *o);
/* Free (NULL allowed); jobs still running are aborted. */
void judge_engine_free(judge_engine *e);
/* Run until next returns NULL with nothing in flight, a callback asks to
 * stop, or an interrupt arrives (util_interrupted): returns 0, the
 * callback's nonzero value, or JUDGE_EINTR. next is asked for up to
 * concurrency jobs ahead of free slots (while requests are out), and a
 * finished request's done comes after the requests replacing it were
 * sent. Jobs in flight or asked for ahead when it stops are abandoned
 * (never passed to done); the caller still owns them. */
int judge_engine_run(judge_engine *e, const judge_engine_cbs *cb);
/* Counters: retries (the engine's and libcurl's re-sends); requests that
 * left (an HTTP request once its headers were written, whatever its
 * tries; a verifier once started); libcurl's re-sends alone (a reused
 * connection reset before any answer, the request sent again on a new
 * one: the engine counts the try once, the server saw it twice). */
long judge_engine_retries(const judge_engine *e);
long judge_engine_sent(const judge_engine *e);
long judge_engine_resends(const judge_engine *e);
/* Correct the --tpm bucket once a response tells the real token count:
 * delta = estimated - actual tokens (positive gives tokens back). */
void judge_engine_tokens_used(judge_engine *e, double delta);
/* Reset a job's result part before (re)submitting it. */
void judge_job_reset(judge_job *j);
/* Free a job's response buffer and engine state (not body or ud). */
void judge_job_clear(judge_job *j);

#endif

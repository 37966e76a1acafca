/* dpo-judge: label pairs of completions in the store with an LLM judge
 * (OpenAI-compatible or Anthropic API) or a local verifier program. */
#include "config.h"
#include "judge/judge.h"
#include "judge/judge_pairs.h"
#include "judge/judge_modes.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/cli.h"
#include "util/file.h"
#include "util/opt.h"
#include "util/progress.h"
#include "util/sha256.h"
#include "util/utf8.h"
#include "util/xmalloc.h"
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The nonce seed is fixed: the same pair always gives the same request, so
 * reruns hit the request cache. */
#define NONCE_SEED 0x64706f6a75646765ULL

/* The options, as opts_table fills them (random_n: --pairs; provider: from
 * provider_name once parsed). */
typedef struct opts {
	const char *db, *provider_name, *model, *base_url, *key_env, *command, *template_path;
	const char *references, *prices_path, *split, *source;
	const char *models_path, *reasoning_effort, *extra_body, *system, *deployment, *api_version;
	judge_provider provider;
	double temperature;
	long max_tokens, limit, concurrency, max_retries, seed, random_n;
	double rpm, tpm, timeout, backoff;
	int json_verdict, swap, include_labeled, retry_failed, dry_run, json, quiet, no_http2, http2;
	const char *mode_name, *aspects; /* --mode, --aspects (judge_modes.h) */
	judge_mode mode;
	char *aspect_v[JUDGE_ASPECTS_MAX];
	int naspects;
	int batch, batch_status, batch_wait; /* dpo-judge-batch.c */
	double poll_interval;
} opts;

/* One request (one order of one pair). */
typedef struct req {
	judge_job job;
	size_t pair;
	int order;          /* 0: a shown first, 1: b shown first */
	char nonce[17];
	char hash[65];
	int verdict;        /* 'A', 'B', 'C' or 0 */
	judge_usage usage;
	char *rationale;
	char *explanation;  /* the judge's own words */
	struct req *prev, *next; /* the list of requests handed to the engine */
} req;

typedef struct ctx {
	opts *o;
	store *st;
	judge_template *tmpl;
	judge_prices *prices;
	judge_refs *refs;
	char *url, *base;            /* the POST target; the API base (for messages) */
	struct curl_slist *headers;
	judge_models *models;
	judge_model_shape shape;     /* of o->model */
	char *system, *extra_body;   /* --system and --extra-body, read */
	char *api_key;
	int64_t annotator_id, run_id;
	/* claims (store_claim_try): a pair is claimed before its first request,
	 * scope the judge's name, owner this run, so that two runs of one
	 * judge on one store split the pairs instead of paying twice */
	char *claim_scope, *claim_owner;
	long claimed_elsewhere;
	/* pairs [0, claim_end) have been through store_claim_try (claim_pair);
	 * claim_lost[i]: another run has pair i */
	size_t claim_end;
	unsigned char *claim_lost;
	long batch_unlabeled;        /* --batch: pairs whose requests failed there */
	judge_pair_set pairs;
	size_t next_pair;
	int norders;
	/* prompt cache: the prompt and the completions of one prompt */
	int64_t cur_prompt;
	char *cur_text, *cur_messages;
	int64_t *cids;
	char **ctexts;
	size_t nc;
	/* transactions */
	int in_tx;
	double tx_start;
	/* counters */
	long requests, cached, sent, done_requests, errors, retries;
	judge_tally t;
	long in_tok, out_tok, reason_tok, failed_shown;
	double cost;
	int cost_known;
	double price_in, price_out;
	util_progress *prog;
	judge_engine *eng;
	req *inflight;
	int fatal, unreachable;
	char fatal_msg[600];
	int store_failed;
	double start;
} ctx;

/* ---- the command line ---------------------------------------------------------- */

/* The JUDGE_ENGINE_* defaults (judge.h) as the table's text. */
#define STR_(x) #x
#define STR(x) STR_(x)
/* Azure OpenAI's api-version when neither --api-version nor
 * $OPENAI_API_VERSION gives one (a GA version). */
#define AZURE_API_VERSION "2024-10-21"

/* --pairs all|random:N into the sample size (0: all). */
static int parse_pairs(void *target, const char *v, char *err, size_t errlen)
{
	long *n = target;
	char *end;
	if (!strcmp(v, "all")) {
		*n = 0;
		return 0;
	}
	if (!strncmp(v, "random:", 7)) {
		errno = 0;
		*n = strtol(v + 7, &end, 10);
		if (!errno && end != v + 7 && !*end && *n >= 1)
			return 0;
	}
	snprintf(err, errlen, "expected all or random:N with N >= 1, got \"%s\"", v);
	return -1;
}

static const util_opt opts_table[] = {
	UTIL_OPT_HEADING("Judge:"),
	{"provider", 0, UTIL_OPT_ENUM, offsetof(opts, provider_name), .def = "openai",
	 .choices = "openai|anthropic|azure|exec", .arg = "NAME",
	 .help = "openai (default; any OpenAI-compatible server), anthropic,\n"
		 "azure (Azure OpenAI), exec"},
	{"model", 0, UTIL_OPT_STRING, offsetof(opts, model), .arg = "NAME",
	 .help = "model to ask (required for openai and anthropic)"},
	{"base-url", 0, UTIL_OPT_STRING, offsetof(opts, base_url), .arg = "URL",
	 .help = "API base (default $OPENAI_BASE_URL or https://api.openai.com/v1;\n"
		 "anthropic: $ANTHROPIC_BASE_URL or https://api.anthropic.com)"},
	{"api-key-env", 0, UTIL_OPT_STRING, offsetof(opts, key_env), .arg = "NAME",
	 .help = "read the key from $NAME (default OPENAI_API_KEY / ANTHROPIC_API_KEY /\n"
		 "AZURE_OPENAI_API_KEY)"},
	{"deployment", 0, UTIL_OPT_STRING, offsetof(opts, deployment), .arg = "NAME",
	 .help = "azure: the deployment (default: --model); --base-url is the resource\n"
		 "(https://NAME.openai.azure.com, default $AZURE_OPENAI_ENDPOINT)"},
	{"api-version", 0, UTIL_OPT_STRING, offsetof(opts, api_version), .arg = "DATE",
	 .help = "azure: the api-version query (default $OPENAI_API_VERSION or " AZURE_API_VERSION ")"},
	{"command", 0, UTIL_OPT_STRING, offsetof(opts, command), .arg = "CMD",
	 .help = "exec: program run per request (sh -c); reads a JSON object with\n"
		 "prompt, response_a, response_b on stdin, prints A, B, C or\n"
		 "{\"verdict\": \"A\"} on stdout"},
	{"template", 0, UTIL_OPT_PATH, offsetof(opts, template_path), .def = "pairwise.txt", .arg = "FILE",
	 .help = "judging prompt template (default: pairwise.txt from the data folder,\n"
		 "rating.txt or rank.txt with --mode; a bare name such as\n"
		 "pairwise-reference is looked up there)"},
	{"mode", 0, UTIL_OPT_ENUM, offsetof(opts, mode_name), .def = "pairwise", .arg = "MODE",
	 .choices = "pairwise|rating|rank",
	 .help = "pairwise (default): a verdict per pair; rating: a 1-10 score per\n"
		 "completion (ratings table); rank: one request orders a prompt's\n"
		 "completions, stored as the pairs it implies"},
	{"aspects", 0, UTIL_OPT_STRING, offsetof(opts, aspects), .arg = "LIST",
	 .help = "rating: a 1-5 score per aspect (comma-separated, e.g.\n"
		 "helpfulness,honesty) instead of one 1-10 score"},
	{"references", 0, UTIL_OPT_PATH, offsetof(opts, references), .arg = "FILE",
	 .help = "JSONL of {\"prompt\" or \"prompt_id\", \"reference\"} for {{reference}}"},
	{"json-verdict", 0, UTIL_OPT_FLAG, offsetof(opts, json_verdict),
	 .help = "ask for a structured (JSON) verdict"},
	{"swap", 0, UTIL_OPT_FLAG, offsetof(opts, swap), .def = "true",
	 .help = "judge both orders of each pair (default)"},
	{"no-swap", 0, UTIL_OPT_FLAG_OFF, offsetof(opts, swap), .flags = UTIL_OPT_NOPARAM,
	 .help = "judge one order per pair"},
	{"temperature", 0, UTIL_OPT_FLOAT, offsetof(opts, temperature), .def = "0", .range = "[0, 2]",
	 .help = "sampling temperature"},
	{"max-tokens", 0, UTIL_OPT_INT, offsetof(opts, max_tokens), .def = "1024", .range = "[1, inf)",
	 .help = "answer length limit (sent as max_completion_tokens to the models\n"
		 "that want it, see --models)"},
	{"reasoning-effort", 0, UTIL_OPT_ENUM, offsetof(opts, reasoning_effort), .arg = "LEVEL",
	 .choices = "none|minimal|low|medium|high",
	 .help = "reasoning models: the reasoning_effort to ask for (default: none sent)"},
	{"system", 0, UTIL_OPT_STRING, offsetof(opts, system), .arg = "TEXT|@FILE",
	 .help = "a system message before the judging prompt"},
	{"extra-body", 0, UTIL_OPT_STRING, offsetof(opts, extra_body), .arg = "JSON|@FILE",
	 .help = "a JSON object merged into every request body"},
	{"models", 0, UTIL_OPT_PATH, offsetof(opts, models_path), .arg = "FILE",
	 .help = "request shaping table over the default models.json"},

	UTIL_OPT_HEADING("What to judge:"),
	UTIL_OPT_DB(opts, db),
	{"pairs", 0, UTIL_OPT_CALL, offsetof(opts, random_n), .def = "all", .arg = "all|random:N",
	 .call = parse_pairs, .help = "every pending pair, or N of them chosen with --seed"},
	{"split", 0, UTIL_OPT_STRING, offsetof(opts, split), .arg = "NAME", .help = "only prompts of this split"},
	{"source", 0, UTIL_OPT_STRING, offsetof(opts, source), .arg = "NAME",
	 .help = "only prompts from this source"},
	{"limit", 0, UTIL_OPT_INT, offsetof(opts, limit), .def = "0", .range = "[0, inf)",
	 .help = "at most N pairs (default 0: all)"},
	{"include-labeled", 0, UTIL_OPT_FLAG, offsetof(opts, include_labeled),
	 .help = "also judge pairs humans or imports labeled"},
	{"retry-failed", 0, UTIL_OPT_FLAG, offsetof(opts, retry_failed),
	 .help = "judge again only the pairs that failed before"},
	UTIL_OPT_SEED(opts, seed, "0"),

	UTIL_OPT_HEADING("Engine:"),
	{"concurrency", 0, UTIL_OPT_INT, offsetof(opts, concurrency), .def = STR(JUDGE_ENGINE_CONCURRENCY),
	 .range = "[1, 4096]", .help = "requests in flight"},
	{"rpm", 0, UTIL_OPT_FLOAT, offsetof(opts, rpm), .def = "0", .range = "[0, inf)", .arg = "N",
	 .help = "requests per minute at most (default 0: no limit)"},
	{"tpm", 0, UTIL_OPT_FLOAT, offsetof(opts, tpm), .def = "0", .range = "[0, inf)", .arg = "N",
	 .help = "tokens per minute at most (default 0: no limit)"},
	{"timeout", 0, UTIL_OPT_FLOAT, offsetof(opts, timeout), .def = STR(JUDGE_ENGINE_TIMEOUT_S),
	 .range = "(0, inf)", .arg = "SEC", .help = "limit of one try"},
	{"max-retries", 0, UTIL_OPT_INT, offsetof(opts, max_retries), .def = STR(JUDGE_ENGINE_MAX_RETRIES),
	 .range = "[0, 100]", .help = "retries per request"},
	{"backoff", 0, UTIL_OPT_FLOAT, offsetof(opts, backoff), .def = STR(JUDGE_ENGINE_BACKOFF_MS),
	 .range = "[0, 60000]", .arg = "MS",
	 .help = "delay before the first retry (default " STR(JUDGE_ENGINE_BACKOFF_MS)
		 "; doubles each time,\nat most 60 s, with jitter; a Retry-After header wins)"},
	{"no-http2", 0, UTIL_OPT_FLAG, offsetof(opts, no_http2), .help = "use HTTP/1.1 only"},
	{"http2", 0, UTIL_OPT_FLAG, offsetof(opts, http2),
	 .help = "use HTTP/2 on http:// too (prior knowledge) and wait to multiplex;\n"
		 "by default HTTP/2 only where TLS negotiates it"},
	{"prices", 0, UTIL_OPT_PATH, offsetof(opts, prices_path), .arg = "FILE",
	 .help = "price table overriding the default one"},

	UTIL_OPT_HEADING("Batch:"),
	{"batch", 0, UTIL_OPT_FLAG, offsetof(opts, batch),
	 .help = "send the requests as one provider batch (openai, anthropic: half the\n"
		 "price, answers within 24 h) and wait for it; rerun to pick it up"},
	{"batch-status", 0, UTIL_OPT_FLAG, offsetof(opts, batch_status), .flags = UTIL_OPT_NOPARAM | UTIL_OPT_NOCONFIG,
	 .help = "list the store's batches and exit"},
	{"wait", 0, UTIL_OPT_FLAG, offsetof(opts, batch_wait), .flags = UTIL_OPT_NOPARAM | UTIL_OPT_NOCONFIG,
	 .help = "with --batch-status: first wait until the running batches end"},
	{"poll-interval", 0, UTIL_OPT_FLOAT, offsetof(opts, poll_interval), .def = "30", .range = "(0, 86400]",
	 .arg = "SEC", .help = "seconds between two looks at a batch"},

	UTIL_OPT_HEADING("Output:"),
	{"dry-run", 0, UTIL_OPT_FLAG, offsetof(opts, dry_run), .flags = UTIL_OPT_NOPARAM | UTIL_OPT_NOCONFIG,
	 .help = "print requests, tokens and cost; send nothing"},
	UTIL_OPT_JSON(opts, json),
	UTIL_OPT_QUIET(opts, quiet),
	UTIL_OPT_TABLE_END,
};

static util_cli cli = {
	.name = "dpo-judge",
	.synopsis = "[OPTIONS]",
	.summary = "Label pairs of completions in the store with an LLM judge or a local verifier.",
	.footer = "Keys are read from the environment only and never printed or stored.\n"
		  "Defaults may be set in the config file's section [dpo-judge] ($DPO_CONFIG,\n"
		  "else $XDG_CONFIG_HOME/dpo/config); the command line overrides them.\n"
		  "Exit status: 0 done, 1 failure, 2 usage error, 130 interrupted (rerun to resume).\n",
	.opts = opts_table,
};

/* --mode and --aspects, and what the rating and rank modes do not take
 * (exits 2 on a usage error). */
static void parse_mode_options(opts *o)
{
	char err[256];
	judge_mode_parse(o->mode_name, &o->mode); /* the table allows only known names */
	if (o->aspects && o->mode != JUDGE_MODE_RATING)
		util_cli_usage_error(&cli, "--aspects is only for --mode rating");
	if (o->aspects && (o->naspects = judge_aspects_parse(o->aspects, o->aspect_v, err, sizeof err)) < 0)
		util_cli_usage_error(&cli, "--aspects: %s", err);
	if (o->mode == JUDGE_MODE_PAIRWISE)
		return;
	if (o->batch)
		util_cli_usage_error(&cli, "--batch is for pairwise judging only (not --mode %s)", o->mode_name);
	if (o->provider == JUDGE_PROVIDER_EXEC || o->json_verdict || o->references || o->dry_run ||
	    o->retry_failed || o->include_labeled || o->random_n)
		util_cli_usage_error(&cli, "--mode %s does not take --provider exec, --json-verdict, --references, "
				     "--dry-run, --retry-failed, --include-labeled or --pairs random:N", o->mode_name);
	if (util_cli_source(&cli, "template") == UTIL_OPT_FROM_DEFAULT)
		o->template_path = o->mode == JUDGE_MODE_RATING ? "rating.txt" : "rank.txt";
}
static void batch_check_options(const opts *o); /* dpo-judge-batch.c */

/* Parse the command line into o (exits 0 on --help/--version, 2 on a usage
 * error): the table, then the checks that combine options. */
static void parse_options(opts *o, int argc, char **argv)
{
	memset(o, 0, sizeof *o);
	util_cli_parse(&cli, o, argc, argv);
	judge_provider_parse(o->provider_name, &o->provider); /* the table allows only known names */
	batch_check_options(o);
	if (o->batch_status)
		return; /* needs only --db */
	if (o->provider == JUDGE_PROVIDER_EXEC) {
		if (!o->command || !*o->command)
			util_cli_usage_error(&cli, "--provider exec needs --command CMD");
		if (o->json_verdict || util_cli_source(&cli, "template") != UTIL_OPT_FROM_DEFAULT)
			util_cli_usage_error(&cli, "--json-verdict and --template do not apply to --provider exec");
	} else {
		if (o->command)
			util_cli_usage_error(&cli, "--command is only for --provider exec");
		if (!o->model || !*o->model)
			util_cli_usage_error(&cli, "--model is required for --provider %s", o->provider_name);
	}
	if (o->http2 && o->no_http2)
		util_cli_usage_error(&cli, "--http2 and --no-http2 exclude each other");
	if (o->provider != JUDGE_PROVIDER_AZURE && (o->deployment || o->api_version))
		util_cli_usage_error(&cli, "--deployment and --api-version are only for --provider azure");
	if (o->provider == JUDGE_PROVIDER_EXEC && (o->system || o->extra_body || o->reasoning_effort))
		util_cli_usage_error(&cli, "--system, --extra-body and --reasoning-effort do not apply to --provider exec");
	parse_mode_options(o);
}

/* ---- helpers ---------------------------------------------------------------- */

/* A data file by name: as given when it names a path or exists here, else
 * from the judge/ folder of util_datadir() ($DPO_DATADIR or $(pkgdatadir)). */
static char *find_data_file(const char *name)
{
	if (strchr(name, '/') || access(name, R_OK) == 0)
		return xstrdup(name);
	char *p = xasprintf("%s/judge/%s", util_datadir(), name);
	if (access(p, R_OK) == 0)
		return p;
	free(p);
	p = xasprintf("%s/judge/%s.txt", util_datadir(), name);
	if (access(p, R_OK) == 0)
		return p;
	free(p);
	return xstrdup(name);
}

/* Replace every occurrence of the key in s by "[redacted]". */
static void redact(char *s, size_t cap, const char *key)
{
	if (!key || strlen(key) < 4)
		return;
	char *p;
	size_t kl = strlen(key);
	while ((p = strstr(s, key))) {
		util_buf b = UTIL_BUF_INIT;
		util_buf_add(&b, s, (size_t)(p - s));
		util_buf_adds(&b, "[redacted]");
		util_buf_adds(&b, p + kl);
		snprintf(s, cap, "%s", util_buf_str(&b));
		util_buf_free(&b);
	}
}

static int store_fail(ctx *c, const char *what)
{
	if (!c->store_failed)
		util_warn("%s: %s: %s", util_db_path(c->o->db), what, store_errmsg(c->st));
	c->store_failed = 1;
	return 1;
}

static int tx_begin(ctx *c)
{
	if (c->in_tx)
		return 0;
	if (store_begin(c->st) != STORE_OK)
		return store_fail(c, "cannot start a transaction");
	c->in_tx = 1;
	c->tx_start = util_now();
	return 0;
}

static int tx_commit(ctx *c)
{
	if (!c->in_tx)
		return 0;
	c->in_tx = 0;
	if (store_commit(c->st) != STORE_OK)
		return store_fail(c, "cannot commit");
	return 0;
}

/* ---- loading texts -------------------------------------------------------------- */

static int on_prompt(void *ud, const store_prompt *p)
{
	ctx *c = ud;
	free(c->cur_text);
	free(c->cur_messages);
	c->cur_messages = p->messages_json ? xstrdup(p->messages_json) : NULL;
	c->cur_text = p->text ? xstrdup(p->text) : judge_messages_text(p->messages_json);
	return 0;
}

static int on_completion(void *ud, const store_completion *cp)
{
	ctx *c = ud;
	c->cids = xreallocarray(c->cids, c->nc + 1, sizeof *c->cids);
	c->ctexts = xreallocarray(c->ctexts, c->nc + 1, sizeof *c->ctexts);
	c->cids[c->nc] = cp->id;
	c->ctexts[c->nc] = xstrdup(cp->text);
	c->nc++;
	return 0;
}

static void drop_prompt(ctx *c)
{
	for (size_t i = 0; i < c->nc; i++)
		free(c->ctexts[i]);
	free(c->ctexts);
	free(c->cids);
	c->ctexts = NULL;
	c->cids = NULL;
	c->nc = 0;
	free(c->cur_text);
	free(c->cur_messages);
	c->cur_text = c->cur_messages = NULL;
	c->cur_prompt = 0;
}

static int load_prompt(ctx *c, int64_t id)
{
	if (c->cur_prompt == id)
		return 0;
	drop_prompt(c);
	if (store_prompt_get(c->st, id, on_prompt, c) != STORE_OK ||
	    store_completions_foreach(c->st, id, 0, on_completion, c) != STORE_OK)
		return store_fail(c, "cannot read a prompt");
	c->cur_prompt = id;
	return 0;
}

static const char *completion_text(ctx *c, int64_t id)
{
	for (size_t i = 0; i < c->nc; i++)
		if (c->cids[i] == id)
			return c->ctexts[i];
	return NULL;
}

/* ---- building requests ---------------------------------------------------------- */

/* The request parameters of the run: the options shaped for the model. */
static void fill_params(const ctx *c, judge_params *prm)
{
	const opts *o = c->o;
	memset(prm, 0, sizeof *prm);
	prm->model = o->model;
	prm->temperature = o->temperature;
	prm->max_tokens = o->max_tokens;
	prm->json_verdict = o->json_verdict;
	prm->no_temperature = !c->shape.temperature;
	prm->max_completion_tokens = c->shape.max_completion_tokens;
	prm->reasoning_effort = o->reasoning_effort;
	prm->system = c->system;
	prm->extra_body = c->extra_body;
}

/* Fill r's body for order r->order of pair p. Returns 0, or -1 when the
 * pair cannot be judged (message in *why). */
static int build_request(ctx *c, req *r, const char **why)
{
	judge_pair *p = &c->pairs.v[r->pair];
	const char *ta, *tb, *first, *second, *ref = NULL;
	int64_t id1, id2;
	util_buf b = UTIL_BUF_INIT;

	if (load_prompt(c, p->prompt_id)) {
		*why = "cannot read the prompt";
		return -1;
	}
	ta = completion_text(c, p->ca);
	tb = completion_text(c, p->cb);
	if (!ta || !tb) {
		*why = "a completion of the pair is missing";
		return -1;
	}
	int b_first = judge_pair_b_first(p, r->order);
	first = b_first ? tb : ta;
	second = b_first ? ta : tb;
	id1 = b_first ? p->cb : p->ca;
	id2 = b_first ? p->ca : p->cb;
	if (judge_refs_count(c->refs) || (c->tmpl && judge_template_uses_reference(c->tmpl))) {
		ref = judge_refs_find(c->refs, p->prompt_id, c->cur_text);
		if (!ref && c->tmpl && judge_template_uses_reference(c->tmpl)) {
			*why = "no reference answer for this prompt in --references";
			return -1;
		}
	}
	judge_fields f = {c->cur_text, first, second, ref, NULL, c->o->json_verdict, 0, NULL, 0, NULL, 0};
	if (c->o->provider == JUDGE_PROVIDER_EXEC) {
		judge_exec_body(&f, c->cur_messages, p->prompt_id, id1, id2, &b);
		r->job.command = c->o->command;
	} else {
		const char *texts[4] = {c->cur_text, first, second, ref};
		util_buf prompt = UTIL_BUF_INIT;
		judge_params prm;
		fill_params(c, &prm);
		judge_nonce(NONCE_SEED, texts, 4, r->nonce);
		f.nonce = r->nonce;
		judge_template_render(c->tmpl, &f, &prompt);
		judge_request_body(c->o->provider, &prm, util_buf_str(&prompt), &b);
		util_buf_free(&prompt);
		judge_cache_key(c->url, b.data, b.len, r->hash);
		r->job.url = c->url;
		r->job.headers = c->headers;
	}
	r->job.body_len = b.len;
	r->job.body = util_buf_detach(&b);
	util_buf_free(&b);
	r->job.est_tokens = (double)r->job.body_len / 4.0 + (double)c->o->max_tokens;
	r->job.ud = r;
	return 0;
}

static void req_free(req *r)
{
	if (!r)
		return;
	free(r->job.body);
	judge_job_clear(&r->job);
	free(r->rationale);
	free(r->explanation);
	free(r);
}

/* ---- results ---------------------------------------------------------------------- */

/* Parse a successful answer into r (verdict, usage, rationale). Returns 0,
 * or -1 with a message in r->job.errmsg when the answer is malformed. */
static int parse_answer(ctx *c, req *r, const char *body, size_t n)
{
	judge_answer a;
	int rc = judge_answer_parse(c->o->provider, body, n, r->nonce, c->o->json_verdict, &a, r->job.errmsg,
				    sizeof r->job.errmsg);
	r->verdict = a.verdict;
	r->usage = a.usage;
	if (a.rationale && !r->rationale)
		r->rationale = a.rationale;
	else
		free(a.rationale);
	free(r->explanation);
	r->explanation = a.explanation;
	return rc;
}

static int cb_accept(void *ud, judge_job *job)
{
	ctx *c = ud;
	req *r = job->ud;
	return parse_answer(c, r, util_buf_str(&job->response), job->response.len) ? 1 : 0;
}

static void cb_retry(void *ud, judge_job *job, double delay_ms)
{
	ctx *c = ud;
	(void)job;
	(void)delay_ms;
	c->retries++;
}

/* All requests of pair p have finished: write its comparison. */
static int pair_finished(ctx *c, judge_pair *p)
{
	store_comparison cmp;
	judge_decision d;
	int created = 0;

	judge_pair_decide(p, c->norders, &d);
	judge_tally_outcome(&c->t, d.outcome);
	memset(&cmp, 0, sizeof cmp);
	cmp.prompt_id = p->prompt_id;
	cmp.completion_a = p->ca;
	cmp.completion_b = p->cb;
	cmp.annotator_id = c->annotator_id;
	cmp.verdict = d.verdict;
	cmp.shown_first = d.shown_first;
	cmp.inconsistent = d.inconsistent;
	cmp.confidence = NAN;
	cmp.duration_ms = (int64_t)((util_now() - p->t0) * 1000);
	cmp.run_id = c->run_id;
	if (tx_begin(c))
		return 1;
	char *why = judge_pair_rationale(p, c->norders, &d);
	cmp.rationale = why;
	int arc = store_comparison_add(c->st, &cmp, NULL, &created);
	free(why);
	if (arc != STORE_OK)
		return store_fail(c, "cannot add a comparison");
	if (c->claim_owner) { /* the label takes the claim's place */
		store_claim cl = {p->ca, p->cb, c->claim_scope, c->claim_owner, 0};
		store_claim_release(c->st, &cl);
	}
	free(p->err);
	free(p->rationale);
	free(p->why[0]);
	free(p->why[1]);
	p->err = p->rationale = p->why[0] = p->why[1] = NULL;
	return 0;
}

static void record_usage(ctx *c, req *r, util_buf *meta)
{
	c->in_tok += r->usage.input_tokens;
	c->out_tok += r->usage.output_tokens;
	c->reason_tok += r->usage.reasoning_tokens;
	double cost = 0;
	if (c->cost_known) {
		cost = (double)r->usage.input_tokens * c->price_in / 1e6 +
		       (double)r->usage.output_tokens * c->price_out / 1e6;
		c->cost += cost;
	}
	util_buf_adds(meta, "{\"model\":");
	util_buf_add_json_string(meta, c->o->model, strlen(c->o->model));
	util_buf_addf(meta, ",\"input_tokens\":%ld,\"output_tokens\":%ld", r->usage.input_tokens,
		      r->usage.output_tokens);
	if (r->usage.reasoning_tokens)
		util_buf_addf(meta, ",\"reasoning_tokens\":%ld", r->usage.reasoning_tokens);
	if (c->cost_known)
		util_buf_addf(meta, ",\"cost_usd\":%.17g", cost);
	util_buf_addc(meta, '}');
}

/* A request finished (from the engine or from the cache). Takes r. */
static int request_done(ctx *c, req *r, int from_cache)
{
	judge_pair *p = &c->pairs.v[r->pair];
	int rc = 0;

	c->done_requests++;
	if (r->job.fatal && !from_cache) {
		c->fatal = 1;
		c->unreachable = r->job.unreachable;
		snprintf(c->fatal_msg, sizeof c->fatal_msg, "%s", r->job.errmsg);
		redact(c->fatal_msg, sizeof c->fatal_msg, c->api_key);
		req_free(r);
		return 1;
	}
	if (r->job.ok && !from_cache && c->o->provider != JUDGE_PROVIDER_EXEC) {
		util_buf meta = UTIL_BUF_INIT;
		record_usage(c, r, &meta);
		if (c->eng && (r->usage.input_tokens || r->usage.output_tokens))
			judge_engine_tokens_used(c->eng, r->job.est_tokens - (double)(r->usage.input_tokens +
										       r->usage.output_tokens));
		/* only answers that carried a verdict are worth keeping */
		if (r->verdict) {
			if (tx_begin(c) ||
			    store_cache_put(c->st, r->hash, util_buf_str(&r->job.response), util_buf_str(&meta)) !=
				    STORE_OK)
				rc = store_fail(c, "cannot write the request cache");
		}
		util_buf_free(&meta);
	}
	if (r->job.ok && !r->verdict) {
		if (!r->job.errmsg[0])
			snprintf(r->job.errmsg, sizeof r->job.errmsg,
				 "the judge's answer has no final verdict ([[A]], [[B]] or [[C]])");
		r->job.ok = 0;
	}
	if (!r->job.ok) {
		c->errors++;
		if (!p->failed) {
			p->failed = 1;
			redact(r->job.errmsg, sizeof r->job.errmsg, c->api_key);
			p->err = xasprintf("judge error: %s", r->job.errmsg);
			if (c->failed_shown < 5) {
				if (c->prog && isatty(2))
					fputc('\n', stderr);
				util_warn("prompt %lld, completions %lld and %lld: %s", (long long)p->prompt_id,
					  (long long)p->ca, (long long)p->cb, r->job.errmsg);
			} else if (c->failed_shown == 5) {
				util_warn("(more failures are not shown; see the comparisons' rationale)");
			}
			c->failed_shown++;
		}
	} else {
		judge_pair_record(p, r->order, r->verdict);
		judge_tally_verdict(&c->t, r->verdict);
		if (r->rationale && !p->rationale)
			p->rationale = xstrdup(r->rationale);
		if (r->explanation && r->order < 2 && !p->why[r->order]) {
			p->why[r->order] = r->explanation;
			r->explanation = NULL;
		}
	}
	p->outstanding--;
	if (p->outstanding == 0 && p->issued == c->norders && !rc)
		rc = pair_finished(c, p);
	req_free(r);
	return rc;
}

/* ---- engine callbacks ------------------------------------------------------------ */

/* Pairs claimed in one transaction: one commit (WAL pages of the claims
 * table and index) per CLAIM_AHEAD pairs, or per --concurrency pairs when
 * that is more (the engine asks for a slot-load of requests ahead),
 * instead of one per pair, the store's main cost per request at high
 * concurrency. Two runs then split the work in blocks of this size. */
#define CLAIM_AHEAD 16

/* Claim pair i (c->pairs.v[i]) for this run before its first request: 1
 * when this run may judge it (also when the store cannot take the claim:
 * the work goes on), 0 when another run of the judge holds it or labelled
 * it. Claims are taken for the next `ahead` pairs from i at once and
 * committed at once, so the other runs see them before any answer. */
static int claim_pair(ctx *c, size_t i, size_t ahead)
{
	if (!c->claim_owner)
		return 1;
	if (i >= c->claim_end) {
		if (!c->claim_lost)
			c->claim_lost = xcalloc(c->pairs.n + 1, 1);
		if (tx_begin(c))
			return 1;
		size_t end = i + ahead < c->pairs.n ? i + ahead : c->pairs.n;
		for (size_t k = i; k < end; k++) {
			const judge_pair *p = &c->pairs.v[k];
			store_claim cl = {p->ca, p->cb, c->claim_scope, c->claim_owner, 0};
			int got = 0;
			if (store_claim_try(c->st, &cl, 1, &got) != STORE_OK)
				got = 1;
			c->claim_lost[k] = !got;
		}
		c->claim_end = end;
		if (tx_commit(c))
			return 1;
	}
	return !c->claim_lost[i];
}

static judge_job *cb_next(void *ud)
{
	ctx *c = ud;
	while (c->next_pair < c->pairs.n && !c->fatal && !c->store_failed) {
		judge_pair *p = &c->pairs.v[c->next_pair];
		size_t ahead = c->o->concurrency > CLAIM_AHEAD ? (size_t)c->o->concurrency : CLAIM_AHEAD;
		if (p->issued == 0 && !claim_pair(c, c->next_pair, ahead)) {
			c->next_pair++; /* another run of this judge has it */
			c->claimed_elsewhere++;
			c->requests -= c->norders;
			continue;
		}
		req *r = xcalloc(1, sizeof *r);
		const char *why = NULL;
		r->pair = c->next_pair;
		r->order = p->issued;
		if (p->issued == 0)
			p->t0 = util_now();
		p->issued++;
		p->outstanding++;
		if (p->issued == c->norders)
			c->next_pair++;
		if (build_request(c, r, &why)) {
			snprintf(r->job.errmsg, sizeof r->job.errmsg, "%s", why);
			if (request_done(c, r, 1))
				return NULL;
			continue;
		}
		if (r->job.url) {
			char *cached = NULL;
			if (store_cache_get(c->st, r->hash, &cached) == STORE_OK) {
				int bad = parse_answer(c, r, cached, strlen(cached));
				free(cached);
				if (!bad && r->verdict) {
					c->cached++;
					r->job.ok = 1;
					if (request_done(c, r, 1))
						return NULL;
					continue;
				}
				r->verdict = 0;
				r->usage.input_tokens = r->usage.output_tokens = 0;
				r->job.errmsg[0] = '\0';
			}
		}
		r->next = c->inflight;
		if (r->next)
			r->next->prev = r;
		c->inflight = r;
		return &r->job;
	}
	return NULL;
}

static void unlink_req(ctx *c, req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		c->inflight = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

static int cb_done(void *ud, judge_job *job)
{
	ctx *c = ud;
	unlink_req(c, job->ud);
	return request_done(c, job->ud, 0);
}

static void progress(ctx *c)
{
	char extra[128];
	if (!c->prog)
		return;
	snprintf(extra, sizeof extra, "%ld errors, %ld retries", c->errors, c->retries);
	util_progress_update(c->prog, (double)c->done_requests, extra);
}

static int cb_tick(void *ud)
{
	ctx *c = ud;
	if (c->in_tx && util_now() - c->tx_start >= 0.05)
		if (tx_commit(c))
			return 1;
	progress(c);
	return c->store_failed;
}

/* ---- choosing pairs ---------------------------------------------------------------- */

static int choose_pairs(ctx *c)
{
	const opts *o = c->o;
	judge_pair_query q = {
		.judge_id = c->annotator_id,
		.retry_failed = o->retry_failed,
		.split = o->split,
		.source = o->source,
		.include_labeled = o->include_labeled,
		.sample = o->random_n,
		.seed = o->seed,
		.limit = o->limit,
		.norders = c->norders,
	};
	if (judge_pairs_choose(c->st, &q, &c->pairs) != STORE_OK)
		return store_fail(c, o->retry_failed ? "cannot read comparisons" : "cannot read the queue of pairs");
	if (o->retry_failed && !o->dry_run) {
		/* the failed comparisons make way for the new ones */
		if (tx_begin(c))
			return 1;
		for (size_t i = 0; i < c->pairs.n; i++)
			if (store_comparison_delete(c->st, c->pairs.v[i].retry_id) != STORE_OK)
				return store_fail(c, "cannot remove a failed comparison");
		if (tx_commit(c))
			return 1;
	}
	return 0;
}

/* ---- summary ---------------------------------------------------------------------- */

static void json_num(util_buf *b, const char *name, double v, int first)
{
	util_buf_addf(b, "%s\"%s\":", first ? "" : ",", name);
	if (isfinite(v))
		util_buf_addf(b, "%.17g", v);
	else
		util_buf_adds(b, "null");
}

static char *summary_json(ctx *c, double wall, const char *status)
{
	util_buf b = UTIL_BUF_INIT;
	util_buf_adds(&b, "{\"status\":");
	util_buf_add_json_string(&b, status, strlen(status));
	json_num(&b, "pairs", (double)c->pairs.n, 0);
	json_num(&b, "judged", (double)c->t.judged, 0);
	json_num(&b, "consistent", c->norders == 2 ? (double)c->t.consistent : NAN, 0);
	json_num(&b, "inconsistent", c->norders == 2 ? (double)c->t.inconsistent : NAN, 0);
	json_num(&b, "consistency_rate", c->norders == 2 ? judge_tally_consistency_rate(&c->t) : NAN, 0);
	json_num(&b, "first_position_win_rate", judge_tally_first_position_rate(&c->t), 0);
	json_num(&b, "failed_pairs", (double)c->t.failed_pairs, 0);
	json_num(&b, "errors", (double)c->errors, 0);
	json_num(&b, "retries", (double)c->retries, 0);
	json_num(&b, "requests", (double)c->requests, 0);
	json_num(&b, "sent", (double)c->sent, 0);
	json_num(&b, "cached", (double)c->cached, 0);
	util_buf_addf(&b, ",\"tokens\":{\"input\":%ld,\"output\":%ld,\"reasoning\":%ld}", c->in_tok, c->out_tok,
		      c->reason_tok);
	json_num(&b, "cost_usd", c->cost_known ? c->cost : NAN, 0);
	json_num(&b, "wall_s", wall, 0);
	util_buf_addc(&b, '}');
	char *s = util_buf_detach(&b);
	util_buf_free(&b);
	return s;
}

/* s (a model name) with its control characters escaped for the terminal;
 * valid until the next call. */
static const char *term_name(const char *s)
{
	static util_buf b;
	util_buf_reset(&b);
	return util_term_escape(s, &b);
}

static void print_summary(ctx *c, double wall)
{
	const judge_tally *t = &c->t;
	long pj = t->consistent + t->inconsistent;
	printf("judged %ld of %zu pairs", t->judged, c->pairs.n);
	if (t->failed_pairs)
		printf(", %ld failed (rerun with --retry-failed)", t->failed_pairs);
	printf(" in %.1f s\n", wall);
	if (c->norders == 2 && pj)
		printf("consistency: %ld consistent, %ld inconsistent (%.1f%%)\n", t->consistent,
		       t->inconsistent, 100.0 * (double)t->consistent / (double)pj);
	if (t->decisive)
		printf("first-position win rate: %.1f%% of %ld decisive verdicts\n",
		       100.0 * (double)t->first_wins / (double)t->decisive, t->decisive);
	printf("requests: %ld sent, %ld from cache, %ld retries, %ld errors\n", c->sent, c->cached,
	       c->retries, c->errors);
	if (c->claimed_elsewhere)
		printf("%ld pairs left to another run of this judge on the store (claimed there)\n",
		       c->claimed_elsewhere);
	if (c->o->provider != JUDGE_PROVIDER_EXEC) {
		printf("tokens: %ld input, %ld output", c->in_tok, c->out_tok);
		if (c->reason_tok)
			printf(" (%ld reasoning)", c->reason_tok);
		if (c->cost_known)
			printf("; cost $%.4f\n", c->cost);
		else
			printf("; cost unknown (no price for %s)\n", term_name(c->o->model));
	}
}

/* ---- dry run ----------------------------------------------------------------------- */

static int dry_run(ctx *c)
{
	long nreq = 0, ncached = 0;
	double in_tok = 0, out_tok = 0;
	for (size_t i = 0; i < c->pairs.n; i++) {
		for (int o = 0; o < c->norders; o++) {
			req r;
			const char *why;
			memset(&r, 0, sizeof r);
			r.pair = i;
			r.order = o;
			if (build_request(c, &r, &why)) {
				util_warn("prompt %lld, completions %lld and %lld: %s",
					  (long long)c->pairs.v[i].prompt_id, (long long)c->pairs.v[i].ca,
					  (long long)c->pairs.v[i].cb, why);
				continue;
			}
			char *cached = NULL;
			if (r.job.url && store_cache_get(c->st, r.hash, &cached) == STORE_OK) {
				ncached++;
				free(cached);
			} else {
				nreq++;
				if (r.job.url) {
					in_tok += (double)r.job.body_len / 4.0;
					out_tok += (double)c->o->max_tokens;
				}
			}
			free(r.job.body);
		}
	}
	double cost = c->cost_known ? in_tok * c->price_in / 1e6 + out_tok * c->price_out / 1e6 : NAN;
	if (c->o->json) {
		util_buf b = UTIL_BUF_INIT;
		util_buf_adds(&b, "{\"dry_run\":true");
		json_num(&b, "pairs", (double)c->pairs.n, 0);
		json_num(&b, "requests", (double)nreq, 0);
		json_num(&b, "cached", (double)ncached, 0);
		json_num(&b, "estimated_input_tokens", floor(in_tok), 0);
		json_num(&b, "max_output_tokens", out_tok, 0);
		json_num(&b, "estimated_cost_usd", cost, 0);
		util_buf_adds(&b, "}\n");
		fputs(util_buf_str(&b), stdout);
		util_buf_free(&b);
	} else {
		printf("dry run: %zu pairs, %ld requests to send (%ld answered from the cache)\n", c->pairs.n,
		       nreq, ncached);
		if (c->o->provider != JUDGE_PROVIDER_EXEC) {
			printf("estimated tokens: about %.0f input, at most %.0f output\n", in_tok, out_tok);
			if (c->cost_known) {
				/* term_name's buffer holds one name at a time */
				const char *date = judge_prices_date(c->prices);
				util_buf db = UTIL_BUF_INIT;
				if (date)
					util_term_escape(date, &db);
				printf("estimated cost: at most $%.4f (%s at $%g in / $%g out per 1M tokens)%s%s\n",
				       cost, term_name(c->o->model), c->price_in, c->price_out,
				       date ? " by the price table of " : "", date ? util_buf_str(&db) : "");
				util_buf_free(&db);
			} else {
				printf("estimated cost: unknown (no price for %s; see --prices)\n", term_name(c->o->model));
			}
		}
		printf("nothing was sent\n");
	}
	return 0;
}

/* ---- the phases of a run ------------------------------------------------------------ */

/* TEXT, or the contents of FILE for "@FILE" (malloc'ed); NULL with a
 * message naming the option when the file cannot be read. */
static char *text_or_file(const char *opt, const char *v)
{
	if (v[0] != '@')
		return xstrdup(v);
	char *t = util_read_file(v + 1, NULL);
	if (!t)
		util_warn("--%s: %s: %s", opt, v + 1, strerror(errno));
	return t;
}

/* The model table (models.json, then --models over it), the model's
 * shape, --system and --extra-body. Returns an exit status: 0, 1 when a
 * file cannot be read, 2 for an option the model does not take. */
static int load_shaping(ctx *c)
{
	const opts *o = c->o;
	char err[512];
	char *mp = find_data_file("models.json");
	judge_models *base = judge_models_load(mp, NULL, err, sizeof err);
	free(mp);
	if (!base && !o->models_path)
		util_warn("warning: %s; every model gets max_tokens and temperature", err);
	if (o->models_path) {
		c->models = judge_models_load(o->models_path, base, err, sizeof err);
		judge_models_free(base);
		if (!c->models) {
			util_warn("%s", err);
			return UTIL_EXIT_FAIL;
		}
	} else {
		c->models = base;
	}
	judge_models_lookup(c->models, o->model, &c->shape);
	/* reasoning spends the answer's limit too: such models get a larger
	 * default (the judge's identity has the limit in force) */
	if (c->shape.default_max_tokens > 0 && util_cli_source(&cli, "max-tokens") <= UTIL_OPT_FROM_DEFAULT)
		c->o->max_tokens = c->shape.default_max_tokens;
	if (o->provider == JUDGE_PROVIDER_ANTHROPIC) {
		/* the table describes OpenAI-format APIs */
		c->shape.max_completion_tokens = 0;
		c->shape.temperature = 1;
	}
	if (o->reasoning_effort && (o->provider == JUDGE_PROVIDER_ANTHROPIC || !c->shape.reasoning_effort)) {
		util_warn("--reasoning-effort: %s takes no reasoning_effort%s", term_name(o->model),
			  o->provider == JUDGE_PROVIDER_ANTHROPIC ? " (anthropic: use --extra-body for thinking)"
								   : " (see --models)");
		return UTIL_EXIT_USAGE;
	}
	if (!c->shape.temperature && util_cli_source(&cli, "temperature") > UTIL_OPT_FROM_DEFAULT)
		util_warn("warning: %s takes no temperature; --temperature is not sent", term_name(o->model));
	if (o->system && !(c->system = text_or_file("system", o->system)))
		return UTIL_EXIT_FAIL;
	if (!o->system && c->tmpl && judge_template_system(c->tmpl)) /* --system wins */
		c->system = xstrdup(judge_template_system(c->tmpl));
	if (o->extra_body) {
		if (!(c->extra_body = text_or_file("extra-body", o->extra_body)))
			return UTIL_EXIT_FAIL;
		cJSON *j = cJSON_Parse(c->extra_body);
		int ok = cJSON_IsObject(j);
		if (ok) {
			/* canonical text: part of the judge's identity */
			char *t = cJSON_PrintUnformatted(j);
			free(c->extra_body);
			c->extra_body = xstrdup(t);
			cJSON_free(t);
		}
		cJSON_Delete(j);
		if (!ok) {
			util_warn("--extra-body: %s is not a JSON object", o->extra_body[0] == '@' ? o->extra_body + 1 : "the value");
			return UTIL_EXIT_USAGE;
		}
	}
	return UTIL_EXIT_OK;
}

/* The template, the references and the price table. Returns an exit status:
 * 0 when loaded, 1 (or 2 for a missing --references) with a message. */
static int load_inputs(ctx *c, char *refs_hash)
{
	const opts *o = c->o;
	char err[512];
	if (o->provider != JUDGE_PROVIDER_EXEC) {
		char *tpath = find_data_file(o->template_path);
		c->tmpl = judge_template_load(tpath, err, sizeof err);
		int usage = c->tmpl && judge_template_uses_reference(c->tmpl) && !o->references;
		if (c->tmpl && judge_template_mode(c->tmpl) != (int)o->mode) {
			util_warn("%s: the template is for --mode %s, not %s", tpath,
				  judge_mode_name((judge_mode)judge_template_mode(c->tmpl)), judge_mode_name(o->mode));
			usage = 1;
		}
		if (!c->tmpl)
			util_warn("%s", err);
		else if (usage && judge_template_mode(c->tmpl) == (int)o->mode)
			util_warn("%s: the template uses {{reference}}; give --references FILE", tpath);
		free(tpath);
		if (!c->tmpl || usage)
			return usage ? UTIL_EXIT_USAGE : UTIL_EXIT_FAIL;
	}
	if (o->references && !(c->refs = judge_refs_load(o->references, refs_hash, err, sizeof err))) {
		util_warn("%s", err);
		return UTIL_EXIT_FAIL;
	}
	if (o->provider != JUDGE_PROVIDER_EXEC) {
		char *pp = find_data_file("prices.json");
		judge_prices *base = judge_prices_load(pp, NULL, err, sizeof err);
		free(pp);
		if (!base && !o->prices_path)
			util_warn("warning: %s; costs are not counted", err);
		if (o->prices_path) {
			c->prices = judge_prices_load(o->prices_path, base, err, sizeof err);
			judge_prices_free(base);
			if (!c->prices) {
				util_warn("%s", err);
				return UTIL_EXIT_FAIL;
			}
		} else {
			c->prices = base;
		}
		c->cost_known = judge_prices_lookup(c->prices, o->model, &c->price_in, &c->price_out) == 0;
		return load_shaping(c);
	}
	return UTIL_EXIT_OK;
}

/* The URL of Azure OpenAI's chat completions for base (bl bytes): base is
 * the resource (https://NAME.openai.azure.com) or already a deployment's
 * URL (.../openai/deployments/NAME). Malloc'ed. */
static char *azure_url(const opts *o, const char *base, size_t bl)
{
	const char *env_ver = getenv("OPENAI_API_VERSION");
	const char *ver = o->api_version ? o->api_version : env_ver && *env_ver ? env_ver : AZURE_API_VERSION;
	util_buf b = UTIL_BUF_INIT;
	util_buf_add(&b, base, bl);
	if (!memmem(base, bl, "/openai/deployments/", 20)) {
		const char *dep = o->deployment ? o->deployment : o->model;
		char *e = curl_easy_escape(NULL, dep, 0);
		util_buf_addf(&b, "/openai/deployments/%s", e ? e : dep);
		curl_free(e);
	}
	char *v = curl_easy_escape(NULL, ver, 0);
	util_buf_addf(&b, "/chat/completions?api-version=%s", v ? v : ver);
	curl_free(v);
	char *s = util_buf_detach(&b);
	util_buf_free(&b);
	return s;
}

/* The API's URL, key and headers (nothing for exec). Returns 0, or 1 (2
 * for a usage error) with a message when the key or the endpoint is
 * missing. */
static int setup_endpoint(ctx *c)
{
	const opts *o = c->o;
	judge_provider pv = o->provider;
	if (pv == JUDGE_PROVIDER_EXEC)
		return 0;
	static const struct {
		judge_provider p;
		const char *base_env, *def, *path, *key_env, *key_header;
	} api[] = {
		{JUDGE_PROVIDER_OPENAI, "OPENAI_BASE_URL", "https://api.openai.com/v1", "/chat/completions",
		 "OPENAI_API_KEY", "Authorization: Bearer "},
		{JUDGE_PROVIDER_ANTHROPIC, "ANTHROPIC_BASE_URL", "https://api.anthropic.com", "/v1/messages",
		 "ANTHROPIC_API_KEY", "x-api-key: "},
		{JUDGE_PROVIDER_AZURE, "AZURE_OPENAI_ENDPOINT", NULL, NULL, "AZURE_OPENAI_API_KEY", "api-key: "},
	};
	size_t k = 0;
	while (api[k].p != pv)
		k++;
	const char *env_base = getenv(api[k].base_env);
	const char *def = api[k].def;
	const char *base = o->base_url ? o->base_url : env_base && *env_base ? env_base : def;
	if (!base) {
		util_warn("--provider azure needs --base-url https://RESOURCE.openai.azure.com "
			  "(or $AZURE_OPENAI_ENDPOINT)");
		return 2;
	}
	size_t bl = strlen(base);
	while (bl > 0 && base[bl - 1] == '/')
		bl--;
	c->base = xstrndup(base, bl);
	c->url = api[k].path ? xasprintf("%.*s%s", (int)bl, base, api[k].path) : azure_url(o, base, bl);
	const char *kenv = o->key_env ? o->key_env : api[k].key_env;
	const char *key = getenv(kenv);
	if (key && *key) {
		c->api_key = xstrdup(key);
	} else if (!o->dry_run && (!def || !strcmp(base, def) || o->key_env)) {
		util_warn("$%s is not set; the API key is read from the environment", kenv);
		return 1;
	}
	c->headers = curl_slist_append(c->headers, "Content-Type: application/json");
	c->headers = curl_slist_append(c->headers, "Expect:");
	if (c->api_key) {
		char *h = xasprintf("%s%s", api[k].key_header, c->api_key);
		c->headers = curl_slist_append(c->headers, h);
		memset(h, 0, strlen(h));
		free(h);
	}
	if (pv == JUDGE_PROVIDER_ANTHROPIC)
		c->headers = curl_slist_append(c->headers, "anthropic-version: 2023-06-01");
	return 0;
}

/* The judge's annotator row, from its identity: provider, model (for exec
 * the command unless --model names it), template hash and params. Sets
 * c->annotator_id and *name. Returns 0, or 1 with a message. */
static int register_judge(ctx *c, const char *params, char **name)
{
	const opts *o = c->o;
	char th[65];
	const char *model = o->provider == JUDGE_PROVIDER_EXEC ? (o->model ? o->model : o->command) : o->model;
	if (c->tmpl)
		snprintf(th, sizeof th, "%s", judge_template_hash(c->tmpl));
	else
		util_sha256_hex(o->command, strlen(o->command), th);
	*name = judge_identity_name(o->provider, model, th, params);
	store_annotator a = {"judge", *name, judge_provider_name(o->provider), model, th, params};
	if (o->dry_run && tx_begin(c))
		return 1;
	if (store_annotator_id(c->st, &a, &c->annotator_id) != STORE_OK) {
		util_warn("%s: %s", util_db_path(o->db), store_errmsg(c->st));
		return 1;
	}
	return 0;
}

/* Judge the chosen pairs with the engine; returns judge_engine_run's value. */
static int run_engine(ctx *c)
{
	const opts *o = c->o;
	judge_engine_opts eo;
	judge_engine_opts_default(&eo); /* what the table does not set: backoff cap, response size */
	eo.concurrency = (int)o->concurrency;
	eo.rpm = o->rpm;
	eo.tpm = o->tpm;
	eo.timeout_s = o->timeout;
	eo.max_retries = (int)o->max_retries;
	eo.backoff_base_ms = o->backoff;
	eo.http2 = o->no_http2 ? 0 : o->http2 ? 2 : 1;
	eo.seed = (uint64_t)o->seed + 1;
	c->eng = judge_engine_new(&eo);
	util_catch_interrupts();
	if (!o->quiet && c->requests)
		c->prog = util_progress_new("judging", (double)c->requests, "req");
	c->start = util_now();
	judge_engine_cbs cbs = {cb_next, cb_done, cb_tick, cb_retry, cb_accept, c};
	int erc = judge_engine_run(c->eng, &cbs);
	/* what actually left, and libcurl's silent re-sends as retries */
	c->sent = judge_engine_sent(c->eng);
	c->retries += judge_engine_resends(c->eng);
	tx_commit(c);
	if (c->prog) {
		progress(c);
		util_progress_finish(c->prog);
	}
	return erc;
}

/* The run's metrics (in a transaction left open for the run's end). Returns
 * 0, or 1 with a message. */
static int record_metrics(ctx *c, double wall)
{
	const judge_tally *t = &c->t;
	struct {
		const char *n;
		double v;
	} m[] = {
		{"judged", (double)t->judged},
		{"consistent", (double)t->consistent},
		{"inconsistent", (double)t->inconsistent},
		{"failed_pairs", (double)t->failed_pairs},
		{"errors", (double)c->errors},
		{"retries", (double)c->retries},
		{"requests_sent", (double)c->sent},
		{"requests_cached", (double)c->cached},
		{"input_tokens", (double)c->in_tok},
		{"output_tokens", (double)c->out_tok},
		{"reasoning_tokens", (double)c->reason_tok},
		{"cost_usd", c->cost_known ? c->cost : NAN},
		{"consistency_rate", judge_tally_consistency_rate(t)},
		{"first_position_win_rate", judge_tally_first_position_rate(t)},
		{"wall_s", wall},
	};
	int mrc = tx_begin(c);
	for (size_t i = 0; !mrc && i < sizeof m / sizeof *m; i++)
		if (isfinite(m[i].v) && store_metric_add(c->st, c->run_id, -1, m[i].n, m[i].v) != STORE_OK)
			mrc = store_fail(c, "cannot record metrics");
	return mrc;
}

/* The summary on stdout, and what to do next on stderr. */
static void report(ctx *c, int erc, const char *summary, double wall)
{
	if (c->o->json)
		printf("%s\n", summary);
	else
		print_summary(c, wall);
	if (c->unreachable)
		util_warn("cannot reach %s (%s)", c->base, c->fatal_msg);
	else if (c->fatal)
		util_warn("stopping: %s", c->fatal_msg);
	if (erc == JUDGE_EINTR)
		util_warn("interrupted: %ld pairs saved; run the same command again to judge the rest",
			  c->t.judged + c->t.failed_pairs);
	else if (c->t.failed_pairs && !c->fatal)
		util_warn("%ld pairs failed; rerun with --retry-failed to try them again", c->t.failed_pairs);
}

static void ctx_free(ctx *c)
{
	free(c->claim_lost);
	while (c->inflight) {
		req *r = c->inflight;
		unlink_req(c, r);
		req_free(r);
	}
	if (c->in_tx)
		store_rollback(c->st);
	free(c->claim_scope);
	free(c->claim_owner);
	judge_engine_free(c->eng);
	store_free(c->st);
	judge_template_free(c->tmpl);
	judge_prices_free(c->prices);
	judge_models_free(c->models);
	free(c->system);
	free(c->extra_body);
	free(c->base);
	judge_refs_free(c->refs);
	drop_prompt(c);
	judge_pairs_free(&c->pairs);
	curl_slist_free_all(c->headers);
	if (c->api_key) {
		memset(c->api_key, 0, strlen(c->api_key));
		free(c->api_key);
	}
	util_progress_free(c->prog);
	free(c->url);
}

/* --mode rating or rank (dpo-judge-modes.c): the run, its record and its
 * summary. Returns the exit status. */
static int run_mode(ctx *c, int argc, char **argv, const char *params, const char *name)
{
	const opts *o = c->o;
	judge_mode_run r = {.st = c->st, .mode = o->mode, .aspects = (const char *const *)o->aspect_v,
			    .naspects = (size_t)o->naspects, .tmpl = c->tmpl, .provider = o->provider,
			    .url = c->url, .headers = c->headers, .annotator_id = c->annotator_id,
			    .split = o->split, .source = o->source, .limit = o->limit, .seed = (uint64_t)o->seed,
			    .price_in = c->price_in, .price_out = c->price_out, .cost_known = c->cost_known,
			    .quiet = o->quiet, .api_key = c->api_key};
	judge_mode_result res;
	fill_params(c, &r.prm);
	judge_engine_opts_default(&r.eo);
	r.eo.concurrency = (int)o->concurrency;
	r.eo.rpm = o->rpm;
	r.eo.tpm = o->tpm;
	r.eo.timeout_s = o->timeout;
	r.eo.max_retries = (int)o->max_retries;
	r.eo.backoff_base_ms = o->backoff;
	r.eo.http2 = o->no_http2 ? 0 : o->http2 ? 2 : 1;
	r.eo.seed = (uint64_t)o->seed + 1;
	if (store_run_start(c->st, "judge", argc, argv, params, &c->run_id) != STORE_OK) {
		util_warn("%s: %s", util_db_path(o->db), store_errmsg(c->st));
		return UTIL_EXIT_FAIL;
	}
	r.run_id = c->run_id;
	c->claim_scope = xstrdup(name);
	c->claim_owner = xasprintf("%s#run%lld", name, (long long)c->run_id);
	r.claim_scope = c->claim_scope;
	r.claim_owner = c->claim_owner;
	double t0 = util_now();
	int erc = judge_modes_run(&r, &res);
	store_claims_release_all(c->st, c->claim_owner);
	const char *status = erc == JUDGE_EINTR ? "interrupted" : erc ? "failed" : "ok";
	int rc = erc == JUDGE_EINTR ? UTIL_EXIT_INTERRUPTED : erc || res.failed ? UTIL_EXIT_FAIL : UTIL_EXIT_OK;
	redact(res.fatal_msg, sizeof res.fatal_msg, c->api_key);
	util_buf b = UTIL_BUF_INIT;
	util_buf_addf(&b, "{\"status\":\"%s\",\"mode\":\"%s\"", status, judge_mode_name(o->mode));
	json_num(&b, "requests", (double)res.units, 0);
	json_num(&b, "judged", (double)res.done, 0);
	json_num(&b, "failed", (double)res.failed, 0);
	json_num(&b, o->mode == JUDGE_MODE_RANK ? "comparisons" : "ratings", (double)res.labels, 0);
	json_num(&b, "sent", (double)res.sent, 0);
	json_num(&b, "cached", (double)res.cached, 0);
	json_num(&b, "retries", (double)res.retries, 0);
	json_num(&b, "errors", (double)res.errors, 0);
	json_num(&b, "claimed_elsewhere", (double)res.claimed_elsewhere, 0);
	util_buf_addf(&b, ",\"tokens\":{\"input\":%ld,\"output\":%ld,\"reasoning\":%ld}", res.in_tok,
		      res.out_tok, res.reason_tok);
	json_num(&b, "cost_usd", c->cost_known ? res.cost : NAN, 0);
	json_num(&b, "wall_s", util_now() - t0, 0);
	util_buf_addc(&b, '}');
	const struct {
		const char *n;
		double v;
	} m[] = {{"judged", (double)res.done},           {"failed", (double)res.failed},
		 {"labels", (double)res.labels},          {"errors", (double)res.errors},
		 {"retries", (double)res.retries},        {"requests_sent", (double)res.sent},
		 {"requests_cached", (double)res.cached}, {"input_tokens", (double)res.in_tok},
		 {"output_tokens", (double)res.out_tok},  {"reasoning_tokens", (double)res.reason_tok},
		 {"cost_usd", c->cost_known ? res.cost : NAN}, {"wall_s", util_now() - t0}};
	for (size_t i = 0; !res.store_failed && i < sizeof m / sizeof *m; i++)
		if (isfinite(m[i].v) && store_metric_add(c->st, c->run_id, -1, m[i].n, m[i].v) != STORE_OK)
			res.store_failed = 1;
	if (!res.store_failed && store_run_end(c->st, c->run_id, status, util_buf_str(&b)) != STORE_OK) {
		util_warn("%s: %s", util_db_path(o->db), store_errmsg(c->st));
		rc = UTIL_EXIT_FAIL;
	}
	if (o->json)
		printf("%s\n", util_buf_str(&b));
	else
		printf("%s %ld of %ld requests (%ld %s stored), %ld failed; %ld sent, %ld from cache, %ld retries\n",
		       o->mode == JUDGE_MODE_RANK ? "ranked" : "rated", res.done, res.units, res.labels,
		       o->mode == JUDGE_MODE_RANK ? "comparisons" : "ratings", res.failed, res.sent, res.cached,
		       res.retries);
	util_buf_free(&b);
	if (res.unreachable)
		util_warn("cannot reach %s (%s)", c->base, res.fatal_msg);
	else if (res.fatal)
		util_warn("stopping: %s", res.fatal_msg);
	else if (erc == JUDGE_EINTR)
		util_warn("interrupted: %ld answers saved; run the same command again to ask for the rest", res.done);
	else if (res.failed)
		util_warn("%ld requests gave no %s; run the same command again to ask again", res.failed,
			  o->mode == JUDGE_MODE_RANK ? "ranking" : "score");
	return rc;
}
#include "judge/dpo-judge-batch.c"

/* ---- main ------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	opts o;
	ctx c;
	char refs_hash[65];
	int rc = UTIL_EXIT_FAIL, erc = 0;
	char *params = NULL, *name = NULL, *summary = NULL;
	const char *status = "failed";

	util_set_progname("dpo-judge");
	parse_options(&o, argc, argv);
	if (o.batch_status) {
		rc = batch_status_main(&o);
		util_cli_free(&cli);
		return rc;
	}
	memset(&c, 0, sizeof c);
	c.o = &o;
	c.norders = o.swap ? 2 : 1;
	c.st = store_new();

	/* template, references, prices; endpoint and key */
	int lrc = load_inputs(&c, refs_hash);
	if (o.batch) { /* batch requests cost half */
		c.price_in /= 2;
		c.price_out /= 2;
	}
	if (lrc) {
		rc = lrc;
		goto out;
	}
	int erc0 = setup_endpoint(&c);
	if (erc0) {
		rc = erc0;
		goto out;
	}

	/* the store and the judge's identity */
	if (store_open_existing(c.st, util_db_path(o.db)) != STORE_OK) {
		util_warn("%s", store_errmsg(c.st));
		goto out;
	}
	judge_params prm;
	fill_params(&c, &prm);
	params = judge_identity_params(o.provider, &prm, o.swap, o.references ? refs_hash : NULL);
	params = judge_mode_identity(params, o.mode, (const char *const *)o.aspect_v, (size_t)o.naspects);
	if (register_judge(&c, params, &name))
		goto out;
	if (o.mode != JUDGE_MODE_PAIRWISE) {
		rc = run_mode(&c, argc, argv, params, name);
		goto out;
	}
	if (choose_pairs(&c))
		goto out;
	c.requests = (long)c.pairs.n * c.norders;
	if (o.dry_run) {
		rc = dry_run(&c) ? UTIL_EXIT_FAIL : UTIL_EXIT_OK;
		store_rollback(c.st);
		c.in_tx = 0;
		goto out;
	}

	if (store_run_start(c.st, "judge", argc, argv, params, &c.run_id) != STORE_OK) {
		util_warn("%s: %s", util_db_path(o.db), store_errmsg(c.st));
		goto out;
	}
	c.claim_scope = xstrdup(name);
	c.claim_owner = xasprintf("%s#run%lld", name, (long long)c.run_id);
	erc = o.batch ? batch_run(&c) : run_engine(&c);
	store_claims_release_all(c.st, c.claim_owner);
	double wall = util_now() - c.start;
	if (erc == JUDGE_EINTR) {
		status = "interrupted";
		rc = UTIL_EXIT_INTERRUPTED;
	} else if (c.fatal || c.store_failed || erc) {
		status = "failed";
		rc = UTIL_EXIT_FAIL;
	} else {
		status = "ok";
		rc = c.t.failed_pairs || c.batch_unlabeled ? UTIL_EXIT_FAIL : UTIL_EXIT_OK;
	}
	summary = summary_json(&c, wall, status);
	if (!c.store_failed) {
		int mrc = record_metrics(&c, wall);
		if (!mrc && store_run_end(c.st, c.run_id, status, summary) != STORE_OK)
			mrc = store_fail(&c, "cannot record the run");
		if (!mrc)
			tx_commit(&c);
		else
			rc = UTIL_EXIT_FAIL;
	}
	report(&c, erc, summary, wall);
out:
	ctx_free(&c);
	util_cli_free(&cli);
	judge_aspects_free(o.aspect_v, o.naspects);
	free(params);
	free(name);
	free(summary);
	return rc;
}

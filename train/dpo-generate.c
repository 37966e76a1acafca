/* dpo-generate: sample K completions per prompt of the store from a model
 * (the reference policy) and store them with their provenance. */
#include "config.h"
#include "store/store.h"
#include "train/chat.h"
#include "train/gen.h"
#include "train/gen_cli.h"
#include "train/layers.h"
#include "train/lora.h"
#include "train/model.h"
#include "train/sample.h"
#include "train/tokenizer.h"
#include "util/buf.h"
#include "util/cli.h"
#include "util/progress.h"
#include "util/rand.h"
#include "util/utf8.h"
#include "util/xmalloc.h"

#include <cjson/cJSON.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The command line: every option, its default and range, in one table. */
struct opts {
	const char *db, *model, *split, *name, *chat_format;
	long n, limit, batch, threads;
	int chat, json, quiet;
	train_gen_cli gen;
};

static const util_opt opts_table[] = {
	UTIL_OPT_DB(struct opts, db),
	{"model", 0, UTIL_OPT_PATH, offsetof(struct opts, model), .arg = "DIR",
	 .help = "Hugging Face model folder, with its tokenizer\n(required)"},
	{"n", 0, UTIL_OPT_INT, offsetof(struct opts, n), .def = "2", .range = "[1, 10000]", .arg = "K",
	 .help = "completions per prompt"},
	{"split", 0, UTIL_OPT_STRING, offsetof(struct opts, split), .arg = "S",
	 .help = "only prompts of split S"},
	{"limit", 0, UTIL_OPT_INT, offsetof(struct opts, limit), .def = "0", .range = "[0, inf)",
	 .help = "only the first N prompts (in id order),\n0 for all"},
	{"batch", 0, UTIL_OPT_INT, offsetof(struct opts, batch), .def = "4", .range = "[1, 256]",
	 .help = "sequences decoded together"},
	{"name", 0, UTIL_OPT_STRING, offsetof(struct opts, name), .arg = "NAME",
	 .help = "generator name (default: the model folder's name)"},
	{"chat", 0, UTIL_OPT_FLAG, offsetof(struct opts, chat),
	 .help = "render plain-text prompts as a user turn too\n"
		 "(conversations always use the chat template)"},
	TRAIN_GEN_OPT_CHAT_FORMAT(struct opts, chat_format,
				  "template family (default: detected from the\n"
				  "tokenizer's template):\n" TRAIN_GEN_CHAT_FORMAT_NAMES),
	UTIL_OPT_THREADS(struct opts, threads),
	UTIL_OPT_JSON(struct opts, json),
	UTIL_OPT_QUIET(struct opts, quiet),
	UTIL_OPT_INCLUDE_TABLE(struct opts, gen, train_gen_cli_opts),
	UTIL_OPT_TABLE_END,
};

static util_cli cli = {
	.name = "dpo-generate",
	.synopsis = "[--db PATH] --model DIR [--n K] [OPTIONS]",
	.summary = "Sample completions from a model for every prompt of the store that has fewer\n"
		   "than K completions from this model, and store them with their provenance\n"
		   "(model fingerprint, sampling parameters, seed). Rerunning continues where the\n"
		   "last run stopped.",
	.footer = "Each completion's seed derives from --seed, the prompt's content and the\n"
		  "completion's index, so the same command stores the same texts, whatever\n"
		  "--batch. Defaults may be set in the config file's section [dpo-generate]\n"
		  "($DPO_CONFIG, else $XDG_CONFIG_HOME/dpo/config).\n"
		  "\n"
		  "Exit status: 0 success, 1 failure, 2 usage error, 130 interrupted (rerun the\n"
		  "same command to resume).\n",
	.opts = opts_table,
};

/* One prompt that lacks completions. */
struct job {
	int64_t id;
	char *hash;
	char *text;          /* plain prompt or NULL */
	char *messages_json; /* or NULL */
	long have, need;
};

struct collect {
	store *st;
	int64_t gen_id;
	long k;
	struct job *jobs;
	size_t n, cap;
	int failed;
};

static int collect_cb(void *ud, const store_prompt *p)
{
	struct collect *c = ud;
	long have = 0;
	if (store_completions_count(c->st, p->id, c->gen_id, &have)) {
		c->failed = 1;
		return 1;
	}
	if (have >= c->k)
		return 0;
	if (c->n == c->cap)
		c->jobs = xreallocarray(c->jobs, c->cap = c->cap ? 2 * c->cap : 64, sizeof *c->jobs);
	struct job *j = &c->jobs[c->n++];
	j->id = p->id;
	j->hash = xstrdup(p->hash ? p->hash : "");
	j->text = p->text ? xstrdup(p->text) : NULL;
	j->messages_json = p->messages_json ? xstrdup(p->messages_json) : NULL;
	j->have = have;
	j->need = c->k - have;
	return 0;
}

/* The seed of completion index k of a prompt: a function of the base seed,
 * the prompt's content hash and k only. */
static uint64_t row_seed(uint64_t base, const char *hash, long k)
{
	uint64_t h = 1469598103934665603ull;
	for (const char *p = hash; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return util_mix64(util_mix64(base) ^ h ^ util_mix64((uint64_t)k));
}

/* One dpo-generate run: what each phase makes for the next. */
struct gen {
	struct opts o;
	train_model *m;
	train_tokenizer *tok;
	train_gen_encoder *enc;
	char *name;           /* the generator's name */
	util_buf identity;    /* its canonical sampling parameters (train_gen_params_json) */
	store *st;
	const char *dbpath;
	int64_t gen_id, run_id;
	struct collect col;   /* the prompts that lack completions */
	train_gen_opts go;
	long done, stored, dups, skipped, tokens;
	double t0, secs;
	int failed, interrupted;
};

static void parse_options(struct opts *o, int argc, char **argv)
{
	util_cli_parse(&cli, o, argc, argv);
	if (!o->model)
		util_cli_usage_error(&cli, "--model DIR is required");
	const char *bad = train_gen_cli_check(&o->gen);
	if (bad)
		util_cli_usage_error(&cli, "%s", bad);
	if (o->gen.greedy && o->n > 1)
		util_warn("--greedy with --n %ld: identical completions are stored once", o->n);
	train_set_threads(o->threads > 0 ? (int)o->threads : 0);
}

/* The model, its tokenizer, the prompt encoder, the generator's name and
 * identity. */
static void load(struct gen *g)
{
	const struct opts *o = &g->o;
	char *err = NULL;
	g->m = train_lora_model_load_prec(o->model, o->gen.precision, &err); /* an adapter too */
	if (!g->m)
		util_die("%s", err);
	g->tok = train_tokenizer_load(o->model, &err);
	if (!g->tok)
		util_die("%s", err ? err : "cannot load the tokenizer");
	/* with --chat, the template is checked now rather than at the first
	 * prompt (a bad --chat-format name never gets here) */
	g->enc = train_gen_encoder_new(g->m, g->tok, o->chat_format, o->chat, &err);
	if (!g->enc)
		util_die("%s", err);
	train_gen_encoder_set_chat_vars(g->enc, o->gen.chat_vars.v, o->gen.chat_vars.n);
	if (o->name) {
		g->name = xstrdup(o->name);
	} else {
		char *dir = xstrdup(o->model);
		size_t len = strlen(dir);
		while (len > 1 && dir[len - 1] == '/')
			dir[--len] = '\0';
		g->name = xstrdup(basename(dir));
		free(dir);
	}
	/* canonical sampling parameters (sorted keys): with the model
	 * fingerprint, the generator's identity; a rerun finds it again */
	train_gen_params gp = train_gen_cli_params(&o->gen, o->chat, o->chat_format);
	train_gen_params_json(&g->identity, &gp);
}

/* Open the store, find or make the generator, list the prompts that lack
 * completions from it and start the run. */
static void open_store(struct gen *g, int argc, char **argv)
{
	g->st = store_new();
	g->dbpath = util_db_path(g->o.db);
	if (store_open(g->st, g->dbpath))
		util_die("%s: %s", g->dbpath, store_errmsg(g->st));
	store_generator sg = {"model", g->name, train_model_fingerprint(g->m),
			      util_buf_str(&g->identity)};
	if (store_generator_id(g->st, &sg, &g->gen_id))
		util_die("%s: %s", g->dbpath, store_errmsg(g->st));
	g->col = (struct collect){g->st, g->gen_id, g->o.n, NULL, 0, 0, 0};
	if (store_prompts_foreach(g->st, g->o.split, NULL, g->o.limit, collect_cb, &g->col) ||
	    g->col.failed)
		util_die("%s: %s", g->dbpath, store_errmsg(g->st));
	util_buf extra = UTIL_BUF_INIT, params = UTIL_BUF_INIT;
	util_buf_addf(&extra, "\"fingerprint\": \"%s\"", train_model_fingerprint(g->m));
	train_gen_run_params(&cli, util_buf_str(&extra), &params);
	if (store_run_start(g->st, "generate", argc, argv, util_buf_str(&params), &g->run_id))
		util_die("%s: %s", g->dbpath, store_errmsg(g->st));
	util_buf_free(&extra);
	util_buf_free(&params);
}

/* Store the nr rows sampled for job j in one transaction. Returns 0, or -1
 * (warned) when the store failed. */
static int store_rows(struct gen *g, const struct job *j, const train_gen_result *res, int nr)
{
	if (store_begin(g->st)) {
		util_warn("%s: %s", g->dbpath, store_errmsg(g->st));
		return -1;
	}
	int ok = 1;
	for (int r = 0; r < nr && ok; r++) {
		char *text = train_tokenizer_decode(g->tok, res[r].ids, res[r].n);
		if (res[r].finish == TRAIN_FINISH_STOP)
			train_gen_cli_cut(&g->o.gen, text);
		int created = 0;
		if (store_completion_add(g->st, j->id, text, g->gen_id, NULL, &created))
			ok = 0;
		else if (created)
			g->stored++;
		else
			g->dups++;
		g->tokens += res[r].n;
		free(text);
	}
	if (!ok || store_commit(g->st)) {
		util_warn("%s: %s", g->dbpath, store_errmsg(g->st));
		store_rollback(g->st);
		return -1;
	}
	return 0;
}

/* Sample the completions job j lacks (its rows decode together, in
 * batches) and store them. A prompt that cannot be encoded or sampled is
 * skipped with a warning. Returns 0, 1 when interrupted (nothing of it
 * stored), -1 when the store failed. */
static int generate_job(struct gen *g, const struct job *j)
{
	char *err = NULL;
	train_gen_prompt prompt = {0};
	if (train_gen_encode_prompt(g->enc, j->text, j->messages_json, &prompt, &err) ||
	    train_gen_prompt_fits(g->m, prompt.n, &err)) {
		util_warn("prompt %lld: %s (skipped)", (long long)j->id, err);
		free(err);
		train_gen_prompt_free(&prompt);
		g->skipped++;
		return 0;
	}
	train_gen_opts o = g->go;
	o.eos = prompt.eos; /* a conversation also ends at the template's end of turn */
	o.n_eos = prompt.n_eos;
	int nr = (int)j->need, rc = 0;
	const int32_t **pp = xmalloc(sizeof(*pp) * nr);
	int *pl = xmalloc(sizeof(int) * nr);
	uint64_t *seeds = xmalloc(sizeof(uint64_t) * nr);
	train_gen_result *res = xcalloc(nr, sizeof *res);
	for (int r = 0; r < nr; r++) {
		pp[r] = prompt.ids;
		pl[r] = (int)prompt.n;
		seeds[r] = row_seed((uint64_t)g->o.gen.seed, j->hash, j->have + r);
	}
	int gr = train_generate(g->m, nr, pp, pl, seeds, &o, res, &err);
	if (util_interrupted()) {
		rc = 1; /* this prompt was in flight: store nothing of it */
	} else if (gr) {
		util_warn("prompt %lld: %s (skipped)", (long long)j->id, err);
		g->skipped++;
	} else {
		rc = store_rows(g, j, res, nr);
	}
	free(err);
	for (int r = 0; r < nr; r++)
		free(res[r].ids);
	free(res);
	free(seeds);
	free(pl);
	free(pp);
	train_gen_prompt_free(&prompt);
	return rc;
}

/* One prompt at a time, each committed as soon as it is done: an
 * interruption loses at most the prompt in flight. */
static void generate_all(struct gen *g)
{
	g->o.gen.tok = g->tok;
	g->o.gen.interrupted = util_interrupted; /* end every row now; the job is discarded */
	g->go = train_gen_cli_gen_opts(&g->o.gen, (int)g->o.batch);
	util_catch_interrupts();
	util_progress *pr = g->o.quiet ? NULL : util_progress_new("generate", (double)g->col.n, "prompts");
	g->t0 = util_now();
	for (size_t ji = 0; ji < g->col.n; ji++) {
		if (util_interrupted()) {
			g->interrupted = 1;
			break;
		}
		int rc = generate_job(g, &g->col.jobs[ji]);
		if (rc) {
			g->interrupted = rc > 0;
			g->failed = rc < 0;
			break;
		}
		g->done++;
		char extra[64];
		double dt = util_now() - g->t0;
		snprintf(extra, sizeof extra, "%.1f tok/s", dt > 0 ? g->tokens / dt : 0.0);
		util_progress_update(pr, (double)g->done, extra);
	}
	util_progress_finish(pr);
	util_progress_free(pr);
	g->secs = util_now() - g->t0;
}

/* End the run with its summary, print it, and say how to resume. */
static void record_and_print(struct gen *g)
{
	double rate = g->secs > 0 ? g->tokens / g->secs : 0.0;
	util_buf sum = UTIL_BUF_INIT;
	util_buf_addf(&sum, "{\"generator_id\":%lld,\"prompts_pending\":%zu,\"prompts_done\":%ld,"
		      "\"completions_stored\":%ld,\"duplicates\":%ld,\"prompts_skipped\":%ld,"
		      "\"tokens\":%ld,\"seconds\":%.3f,\"tokens_per_s\":%.2f}",
		      (long long)g->gen_id, g->col.n, g->done, g->stored, g->dups, g->skipped,
		      g->tokens, g->secs, rate);
	const char *status = g->failed ? "failed" : g->interrupted ? "interrupted" : "ok";
	if (store_run_end(g->st, g->run_id, status, util_buf_str(&sum)))
		util_warn("%s: %s", g->dbpath, store_errmsg(g->st));
	if (g->o.json)
		printf("%s\n", util_buf_str(&sum));
	else {
		util_buf e = UTIL_BUF_INIT; /* the generator's name to a terminal: controls escaped */
		printf("generator %lld (%s): %ld prompts, %ld completions stored, %ld duplicates, "
		       "%ld skipped, %ld tokens in %.1fs (%.1f tok/s)\n",
		       (long long)g->gen_id, util_term_escape(g->name, &e), g->done, g->stored, g->dups, g->skipped,
		       g->tokens, g->secs, rate);
		util_buf_free(&e);
	}
	if (g->interrupted)
		util_warn("interrupted after %ld of %zu prompts; rerun the same command to resume",
			  g->done, g->col.n);
	util_buf_free(&sum);
}

static void gen_free(struct gen *g)
{
	for (size_t i = 0; i < g->col.n; i++) {
		free(g->col.jobs[i].hash);
		free(g->col.jobs[i].text);
		free(g->col.jobs[i].messages_json);
	}
	free(g->col.jobs);
	util_buf_free(&g->identity);
	store_free(g->st);
	train_gen_encoder_free(g->enc);
	train_tokenizer_free(g->tok);
	train_model_free(g->m);
	free(g->name);
	util_cli_free(&cli);
}

int main(int argc, char **argv)
{
	struct gen g = {0};
	util_set_progname("dpo-generate");
	parse_options(&g.o, argc, argv);
	load(&g);
	open_store(&g, argc, argv);
	generate_all(&g);
	record_and_print(&g);
	int rc = g.failed ? UTIL_EXIT_FAIL : g.interrupted ? UTIL_EXIT_INTERRUPTED : UTIL_EXIT_OK;
	gen_free(&g);
	return rc;
}

/* dpo-generate: sample K completions per prompt of the store from a model
 * (the reference policy) and store them with their provenance. */
#include "config.h"
#include "store/store.h"
#include "train/chat.h"
#include "train/gen.h"
#include "train/gen_cli.h"
#include "train/layers.h"
#include "train/model.h"
#include "train/sample.h"
#include "train/tokenizer.h"
#include "util/buf.h"
#include "util/cli.h"
#include "util/progress.h"
#include "util/rand.h"
#include "util/xmalloc.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: dpo-generate [--db PATH] --model DIR --n K [OPTIONS]\n"
		"Sample completions from a model for every prompt of the store that has fewer\n"
		"than K completions from this model, and store them with their provenance\n"
		"(model fingerprint, sampling parameters, seed). Rerunning continues where the\n"
		"last run stopped.\n"
		"\n"
		"  --db PATH            database (default $DPO_DB, else ./dpo.db)\n"
		"  --model DIR          Hugging Face model folder (with its tokenizer)\n"
		"  --n K                completions per prompt (default 2)\n"
		"  --split S            only prompts of split S\n"
		"  --limit N            only the first N prompts (in id order)\n"
		"  --batch N            sequences decoded together (default 4)\n"
		"  --name NAME          generator name (default: the model folder's name)\n"
		"  --chat               render plain-text prompts as a user turn too\n"
		"                       (conversations always use the chat template)\n"
		"  --chat-format NAME   template family (%s)\n"
		"  --greedy | --temperature T (default 1) | --top-k K | --top-p P | --min-p P\n"
		"  --seed S             base seed (default 0); each completion's seed derives\n"
		"                       from it, the prompt and the completion's index\n"
		"  --max-new-tokens N   (default 256)   --stop STR (repeatable)\n"
		"  --threads N          compute threads (default: all cores)\n"
		"  --json               print the summary as one JSON object\n"
		"  -h, --help           this text       --version   print the version\n"
		"Exit status: 0 success, 1 failure, 2 usage error, 130 interrupted (rerun to resume).\n",
		train_chat_format_names());
}

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

int main(int argc, char **argv)
{
	enum { O_DB = 256, O_MODEL, O_N, O_SPLIT, O_LIMIT, O_BATCH, O_NAME, O_CHAT, O_FMT,
	       O_THREADS,
	       O_JSON, O_VERSION };
	static const struct option opts[] = {
		{"db", required_argument, NULL, O_DB},
		{"model", required_argument, NULL, O_MODEL},
		{"n", required_argument, NULL, O_N},
		{"split", required_argument, NULL, O_SPLIT},
		{"limit", required_argument, NULL, O_LIMIT},
		{"batch", required_argument, NULL, O_BATCH},
		{"name", required_argument, NULL, O_NAME},
		{"chat", no_argument, NULL, O_CHAT},
		{"chat-format", required_argument, NULL, O_FMT},
		TRAIN_GEN_LONG_OPTIONS,
		{"threads", required_argument, NULL, O_THREADS},
		{"json", no_argument, NULL, O_JSON},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, O_VERSION},
		{0}};
	const char *db = NULL, *mdir = NULL, *split = NULL, *name = NULL, *fmt = NULL;
	long k = 2, limit = 0, batch = 4, threads = 0;
	int chat_plain = 0, json = 0, c;
	train_gen_cli gc;
	train_gen_cli_init(&gc, 256);
	gc.interrupted = util_interrupted; /* end every row now; the caller discards them */
	util_set_progname("dpo-generate");
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_DB: db = optarg; break;
		case O_MODEL: mdir = optarg; break;
		case O_N: util_parse_long("--n", optarg, &k); break;
		case O_SPLIT: split = optarg; break;
		case O_LIMIT: util_parse_long("--limit", optarg, &limit); break;
		case O_BATCH: util_parse_long("--batch", optarg, &batch); break;
		case O_NAME: name = optarg; break;
		case O_CHAT: chat_plain = 1; break;
		case O_FMT: fmt = optarg; break;
		case O_THREADS: util_parse_long("--threads", optarg, &threads); break;
		case O_JSON: json = 1; break;
		case 'h': usage(stdout); return 0;
		case O_VERSION: util_print_version(); return 0;
		default:
			if (!train_gen_cli_option(&gc, c, optarg))
				util_usage_error("bad option");
		}
	}
	if (optind != argc)
		util_usage_error("unexpected argument '%s'", argv[optind]);
	if (!mdir)
		util_usage_error("--model DIR is required");
	if (k < 1 || k > 10000)
		util_usage_error("--n must be between 1 and 10000");
	if (batch < 1 || batch > 256)
		util_usage_error("--batch must be between 1 and 256");
	train_gen_cli_check(&gc);
	const train_sampling s = gc.sampling;
	if (s.greedy && k > 1)
		util_warn("--greedy with --n %ld: identical completions are stored once", k);
	train_set_threads(threads > 0 && threads < 4096 ? (int)threads : 0);

	char *err = NULL;
	train_model *m = train_model_load(mdir, &err);
	if (!m)
		util_die("%s", err);
	train_tokenizer *tok = train_tokenizer_load(mdir, &err);
	if (!tok)
		util_die("%s", err ? err : "cannot load the tokenizer");
	/* a --chat-format name (and with --chat, the template) is checked now
	 * rather than at the first prompt */
	train_gen_encoder *enc = train_gen_encoder_new(m, tok, fmt, chat_plain, &err);
	if (!enc) {
		train_chat_format f;
		if (fmt && train_chat_format_parse(fmt, &f))
			util_usage_error("%s", err);
		util_die("%s", err);
	}
	char *mcopy = xstrdup(mdir);
	size_t ml = strlen(mcopy);
	while (ml > 1 && mcopy[ml - 1] == '/')
		mcopy[--ml] = '\0';
	char *gname = xstrdup(name ? name : basename(mcopy));

	/* canonical sampling parameters (sorted keys): with the model
	 * fingerprint, the generator's identity */
	util_buf pj = UTIL_BUF_INIT;
	train_gen_params gp = {.sampling = s, .seed = gc.seed, .max_new = gc.max_new,
			       .stops = gc.stops, .nstops = gc.nstops, .chat_plain = chat_plain,
			       .chat_format = fmt};
	train_gen_params_json(&pj, &gp);

	store *st = store_new();
	const char *dbpath = util_db_path(db);
	if (store_open(st, dbpath))
		util_die("%s: %s", dbpath, store_errmsg(st));
	store_generator g = {"model", gname, train_model_fingerprint(m), util_buf_str(&pj)};
	int64_t gen_id, run_id = 0;
	if (store_generator_id(st, &g, &gen_id))
		util_die("%s: %s", dbpath, store_errmsg(st));
	struct collect col = {st, gen_id, k, NULL, 0, 0, 0};
	if (store_prompts_foreach(st, split, NULL, limit, collect_cb, &col) || col.failed)
		util_die("%s: %s", dbpath, store_errmsg(st));

	util_buf rp = UTIL_BUF_INIT;
	util_buf_adds(&rp, "{\"model\":");
	util_buf_add_json_string(&rp, mdir, strlen(mdir));
	util_buf_addf(&rp, ",\"fingerprint\":\"%s\",\"n\":%ld,\"sampling\":%s}",
		      train_model_fingerprint(m), k, util_buf_str(&pj));
	if (store_run_start(st, "generate", argc, argv, util_buf_str(&rp), &run_id))
		util_die("%s: %s", dbpath, store_errmsg(st));

	gc.tok = tok;
	train_gen_opts o = {.sampling = s, .max_new = (int)gc.max_new,
			    .stop = train_gen_cli_stop, .ctx = &gc, .batch = (int)batch};

	util_catch_interrupts();
	util_progress *pr = util_progress_new("generate", (double)col.n, "prompts");
	long done = 0, stored = 0, dups = 0, skipped = 0, tokens = 0;
	double t0 = util_now();
	int rc = 0, interrupted = 0;
	/* one prompt at a time (its K rows decode together, in batches), committed
	 * as soon as it is done: an interruption loses at most this prompt */
	for (size_t ji = 0; ji < col.n; ji++) {
		if (util_interrupted()) {
			interrupted = 1;
			break;
		}
		struct job *j = &col.jobs[ji];
		train_gen_prompt prompt = {0};
		if (train_gen_encode_prompt(enc, j->text, j->messages_json, &prompt, &err) ||
		    train_gen_prompt_fits(m, prompt.n, &err)) {
			util_warn("prompt %lld: %s (skipped)", (long long)j->id, err);
			free(err);
			err = NULL;
			train_gen_prompt_free(&prompt);
			skipped++;
			continue;
		}
		o.eos = prompt.eos; /* a conversation also ends at the template's end of turn */
		o.n_eos = prompt.n_eos;
		int nr = (int)j->need;
		const int32_t **pp = xmalloc(sizeof(*pp) * nr);
		int *pl = xmalloc(sizeof(int) * nr);
		uint64_t *seeds = xmalloc(sizeof(uint64_t) * nr);
		train_gen_result *res = xcalloc(nr, sizeof *res);
		for (int r = 0; r < nr; r++) {
			pp[r] = prompt.ids;
			pl[r] = (int)prompt.n;
			seeds[r] = row_seed((uint64_t)gc.seed, j->hash, j->have + r);
		}
		int gr = train_generate(m, nr, pp, pl, seeds, &o, res, &err);
		if (util_interrupted()) {
			/* this prompt was in flight: store nothing of it */
			interrupted = 1;
			free(err);
			err = NULL;
		} else if (gr) {
			util_warn("prompt %lld: %s (skipped)", (long long)j->id, err);
			free(err);
			err = NULL;
			skipped++;
		} else if (store_begin(st) == 0) {
			int ok = 1;
			for (int r = 0; r < nr && ok; r++) {
				char *text = train_tokenizer_decode(tok, res[r].ids, res[r].n);
				if (res[r].finish == TRAIN_FINISH_STOP)
					train_gen_cli_cut(&gc, text);
				int created = 0;
				if (store_completion_add(st, j->id, text, gen_id, NULL, &created))
					ok = 0;
				else if (created)
					stored++;
				else
					dups++;
				tokens += res[r].n;
				free(text);
			}
			if (!ok || store_commit(st)) {
				util_warn("%s: %s", dbpath, store_errmsg(st));
				store_rollback(st);
				rc = 1;
			}
		} else {
			util_warn("%s: %s", dbpath, store_errmsg(st));
			rc = 1;
		}
		for (int r = 0; r < nr; r++)
			free(res[r].ids);
		free(res);
		free(seeds);
		free(pl);
		free(pp);
		train_gen_prompt_free(&prompt);
		if (rc || interrupted)
			break;
		done++;
		char extra[64];
		double dt = util_now() - t0;
		snprintf(extra, sizeof extra, "%.1f tok/s", dt > 0 ? tokens / dt : 0.0);
		util_progress_update(pr, (double)done, extra);
	}
	util_progress_finish(pr);
	util_progress_free(pr);
	double secs = util_now() - t0;
	util_buf sum = UTIL_BUF_INIT;
	util_buf_addf(&sum, "{\"generator_id\":%lld,\"prompts_pending\":%zu,\"prompts_done\":%ld,"
		      "\"completions_stored\":%ld,\"duplicates\":%ld,\"prompts_skipped\":%ld,"
		      "\"tokens\":%ld,\"seconds\":%.3f,\"tokens_per_s\":%.2f}",
		      (long long)gen_id, col.n, done, stored, dups, skipped, tokens, secs,
		      secs > 0 ? tokens / secs : 0.0);
	const char *status = rc ? "failed" : interrupted ? "interrupted" : "ok";
	if (store_run_end(st, run_id, status, util_buf_str(&sum)))
		util_warn("%s: %s", dbpath, store_errmsg(st));
	if (json)
		printf("%s\n", util_buf_str(&sum));
	else
		printf("generator %lld (%s): %ld prompts, %ld completions stored, %ld duplicates, "
		       "%ld skipped, %ld tokens in %.1fs (%.1f tok/s)\n",
		       (long long)gen_id, gname, done, stored, dups, skipped, tokens, secs,
		       secs > 0 ? tokens / secs : 0.0);
	if (interrupted)
		util_warn("interrupted after %ld of %zu prompts; rerun the same command to resume",
			  done, col.n);
	for (size_t i = 0; i < col.n; i++) {
		free(col.jobs[i].hash);
		free(col.jobs[i].text);
		free(col.jobs[i].messages_json);
	}
	free(col.jobs);
	util_buf_free(&sum);
	util_buf_free(&rp);
	util_buf_free(&pj);
	store_free(st);
	train_gen_encoder_free(enc);
	train_tokenizer_free(tok);
	train_model_free(m);
	free(gname);
	free(mcopy);
	train_gen_cli_free(&gc);
	return rc ? UTIL_EXIT_FAIL : interrupted ? UTIL_EXIT_INTERRUPTED : 0;
}

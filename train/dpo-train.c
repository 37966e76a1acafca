/* dpo-train: train a policy with DPO (and related preference losses) on a
 * CPU, from the store's resolved pairs or a TRL-format JSONL file. See
 * man/dpo-train.1. */
#include "config.h"
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef HAVE_BLAS
#include <cblas.h>
#endif
#include "store/metrics.h"
#include "store/store.h"
#include "train/chat.h"
#include "train/loss.h"
#include "train/model.h"
#include "train/optim.h"
#include "train/tokenizer.h"
#include "train/trainer.h"
#include "train/trainer_data.h"
#include "util/buf.h"
#include "util/cli.h"
#include "util/cmdline.h"
#include "util/file.h"
#include "util/progress.h"
#include "util/rand.h"
#include "util/sha256.h"
#include "util/xmalloc.h"

/* ---- options ---- */

struct opts {
	const char *model, *ref_model, *from_jsonl, *eval_jsonl, *db, *split, *eval_split, *resolve;
	int from_db;
	long min_annotations;
	const char *loss, *loss_weights;
	double beta, label_smoothing, simpo_gamma;
	int ipo_length_norm;
	double lr, weight_decay, beta1, beta2, adam_eps, max_grad_norm, warmup_ratio;
	long warmup_steps;
	const char *schedule;
	long batch_size, grad_accum, epochs, steps, seed;
	long max_length, max_prompt_length;
	int no_append_eos, add_bos;
	const char *chat_format;
	const char *log_json;
	long log_every, save_every, eval_every;
	const char *resume, *out;
	long threads;
	int quiet;
	const char *beta_sweep;
};

enum {
	O_MODEL = 256, O_REF, O_JSONL, O_EVAL_JSONL, O_FROM_DB, O_DB, O_SPLIT, O_EVAL_SPLIT,
	O_RESOLVE, O_MIN_ANN, O_LOSS, O_LOSS_WEIGHTS, O_BETA, O_LS, O_GAMMA, O_IPO_NORM, O_LR,
	O_WD, O_B1, O_B2, O_EPS, O_MAXGN, O_WR, O_WS, O_SCHED, O_BS, O_GA, O_EPOCHS, O_STEPS,
	O_SEED, O_MAXLEN, O_MAXPL, O_NOEOS, O_BOS, O_CHAT, O_LOGJSON, O_LOGEVERY, O_SAVEEVERY,
	O_EVALEVERY, O_RESUME, O_OUT, O_THREADS, O_QUIET, O_VERSION, O_SWEEP
};

static const struct option longopts[] = {
	{"model", required_argument, 0, O_MODEL},
	{"ref-model", required_argument, 0, O_REF},
	{"from-jsonl", required_argument, 0, O_JSONL},
	{"eval-jsonl", required_argument, 0, O_EVAL_JSONL},
	{"from-db", no_argument, 0, O_FROM_DB},
	{"db", required_argument, 0, O_DB},
	{"split", required_argument, 0, O_SPLIT},
	{"eval-split", required_argument, 0, O_EVAL_SPLIT},
	{"resolve", required_argument, 0, O_RESOLVE},
	{"min-annotations", required_argument, 0, O_MIN_ANN},
	{"loss", required_argument, 0, O_LOSS},
	{"loss-weights", required_argument, 0, O_LOSS_WEIGHTS},
	{"beta", required_argument, 0, O_BETA},
	{"label-smoothing", required_argument, 0, O_LS},
	{"simpo-gamma", required_argument, 0, O_GAMMA},
	{"ipo-length-norm", no_argument, 0, O_IPO_NORM},
	{"lr", required_argument, 0, O_LR},
	{"weight-decay", required_argument, 0, O_WD},
	{"adam-beta1", required_argument, 0, O_B1},
	{"adam-beta2", required_argument, 0, O_B2},
	{"adam-eps", required_argument, 0, O_EPS},
	{"max-grad-norm", required_argument, 0, O_MAXGN},
	{"warmup-ratio", required_argument, 0, O_WR},
	{"warmup-steps", required_argument, 0, O_WS},
	{"schedule", required_argument, 0, O_SCHED},
	{"batch-size", required_argument, 0, O_BS},
	{"grad-accum", required_argument, 0, O_GA},
	{"epochs", required_argument, 0, O_EPOCHS},
	{"steps", required_argument, 0, O_STEPS},
	{"seed", required_argument, 0, O_SEED},
	{"max-length", required_argument, 0, O_MAXLEN},
	{"max-prompt-length", required_argument, 0, O_MAXPL},
	{"no-append-eos", no_argument, 0, O_NOEOS},
	{"add-bos", no_argument, 0, O_BOS},
	{"chat-format", required_argument, 0, O_CHAT},
	{"log-json", required_argument, 0, O_LOGJSON},
	{"log-every", required_argument, 0, O_LOGEVERY},
	{"save-every", required_argument, 0, O_SAVEEVERY},
	{"eval-every", required_argument, 0, O_EVALEVERY},
	{"resume", required_argument, 0, O_RESUME},
	{"out", required_argument, 0, O_OUT},
	{"beta-sweep", required_argument, 0, O_SWEEP},
	{"threads", required_argument, 0, O_THREADS},
	{"quiet", no_argument, 0, O_QUIET},
	{"help", no_argument, 0, 'h'},
	{"version", no_argument, 0, O_VERSION},
	{0, 0, 0, 0},
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: dpo-train (--from-db | --from-jsonl FILE) --model DIR --out DIR [options]\n"
		"       dpo-train --resume CHECKPOINT --out DIR (same data options) [options]\n"
		"Train a causal language model on preference pairs with DPO, on the CPU.\n"
		"\n"
		"Data:\n"
		"  --from-db               the store's resolved pairs (--db, --split, --resolve)\n"
		"  --db PATH               database (default $DPO_DB, else ./dpo.db)\n"
		"  --split S               split to train on (default train)\n"
		"  --resolve POLICY        majority, humans-over-judges, unanimous, consistent-judge\n"
		"                          (default majority)\n"
		"  --min-annotations N     pairs decided by at least N comparisons (default 1)\n"
		"  --from-jsonl FILE       TRL-format pairs: {\"prompt\", \"chosen\", \"rejected\"} as strings\n"
		"                          or message lists, or prompt_ids/chosen_ids/rejected_ids\n"
		"  --eval-split S          evaluate on this split of the store\n"
		"  --eval-jsonl FILE       evaluate on these pairs\n"
		"  --eval-every N          evaluate every N steps (default: at the end only)\n"
		"  --max-length N          prompt + completion tokens at most (default 1024)\n"
		"  --max-prompt-length N   prompt tokens at most, keeping the end (default: no limit)\n"
		"  --no-append-eos         do not append EOS to completions\n"
		"  --add-bos               prepend BOS to prompts\n"
		"  --chat-format NAME      chat template family for conversational prompts\n"
		"                          (default: detected from the tokenizer)\n"
		"\n"
		"Models:\n"
		"  --model DIR             Hugging Face model directory of the policy to train\n"
		"  --ref-model DIR         reference model (default: the initial policy)\n"
		"\n"
		"Loss:\n"
		"  --loss LIST             sigmoid, robust, hinge, ipo, sft, simpo; a comma-separated\n"
		"                          list sums several (default sigmoid)\n"
		"  --loss-weights LIST     one weight per loss (default 1 each)\n"
		"  --beta B                DPO temperature (default 0.1)\n"
		"  --label-smoothing E     cDPO / robust label noise (default 0)\n"
		"  --simpo-gamma G         SimPO target margin (default 0.5)\n"
		"  --ipo-length-norm       IPO on per-token average log-probs\n"
		"\n"
		"Optimisation:\n"
		"  --lr LR                 peak learning rate (default 1e-6)\n"
		"  --schedule S            constant, linear or cosine (default linear)\n"
		"  --warmup-steps N        linear warmup steps (default 0)\n"
		"  --warmup-ratio R        warmup as a fraction of the steps\n"
		"  --weight-decay W        AdamW decoupled weight decay (default 0; never on biases\n"
		"                          and norm weights)\n"
		"  --adam-beta1 B, --adam-beta2 B, --adam-eps E   (default 0.9, 0.999, 1e-8)\n"
		"  --max-grad-norm N       global-norm gradient clipping (default 1.0; 0 disables)\n"
		"  --batch-size N          pairs per micro-batch (default 8)\n"
		"  --grad-accum N          micro-batches per optimizer step (default 1)\n"
		"  --epochs N              passes over the data (default 1)\n"
		"  --steps N               optimizer steps (overrides --epochs)\n"
		"  --seed N                shuffling seed (default 42)\n"
		"\n"
		"Output:\n"
		"  --out DIR               the trained model (config.json, model.safetensors, tokenizer\n"
		"                          files, dpo_run.json) and checkpoints\n"
		"  --save-every N          atomic checkpoint OUT/checkpoint-STEP every N steps\n"
		"  --resume DIR            continue from a checkpoint directory\n"
		"  --beta-sweep B1,B2,...  train one policy per beta into OUT/beta-B (each a full run\n"
		"                          with these options; finished ones are reused), e.g. for\n"
		"                          the reward-vs-KL frontier with dpo-eval and dpo-db report\n"
		"  --log-json FILE         one JSON line of metrics per step\n"
		"  --log-every N           progress line every N steps (default 1)\n"
		"  --threads N             worker threads (default: all cores)\n"
		"  --quiet                 no progress lines\n"
		"  -h, --help              this help\n"
		"  --version               print the version\n");
}

static void parse_nonneg(const char *name, const char *v, long *out, long min)
{
	util_parse_long(name, v, out);
	if (*out < min)
		util_usage_error("%s must be at least %ld", name, min);
}

/* ---- small file helpers ---- */

/* Remove a directory holding only plain files. */
static void remove_flat_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char *p = xasprintf("%s/%s", dir, e->d_name);
		unlink(p);
		free(p);
	}
	closedir(d);
	rmdir(dir);
}

static void copy_tokenizer_files(const char *from, const char *to)
{
	char *err = NULL;
	if (train_tokenizer_copy_files(from, to, &err) < 0) {
		util_warn("%s", err);
		free(err);
	}
}

/* ---- the run ---- */

typedef struct run {
	struct opts o;
	train_loss_cfg loss;
	train_tok_opts tokopt;
	train_tokenizer *tok;
	train_chat *chat;
	char tok_fp[65], data_fp[65];
	train_pair *pairs, *evals;
	size_t n, neval;
	long ntrunc, neval_trunc;
	train_model *m;
	train_engine *e;
	store *st;
	int64_t run_id;
	FILE *log;
	const char *tok_dir; /* where the tokenizer files come from */
	/* schedule and data position */
	long total_steps, step, epoch, pos;
	size_t *perm;
	char last_ckpt[4096];
	int keep_last;       /* last_ckpt is the one we resumed from */
	char *cmdline;
	char started[32];
	double last_metrics[STORE_METRIC_NTRAIN];
	int have_metrics;
} run;

/* The order of epoch ep: a Fisher-Yates shuffle seeded by (seed, epoch). */
static void epoch_perm(run *r, long ep)
{
	uint64_t s = (uint64_t)r->o.seed * 0x100000001b3ull + (uint64_t)ep;
	for (size_t i = 0; i < r->n; i++)
		r->perm[i] = i;
	for (size_t i = r->n; i > 1; i--) {
		size_t j = (size_t)(util_splitmix64(&s) % i);
		size_t t = r->perm[i - 1];
		r->perm[i - 1] = r->perm[j];
		r->perm[j] = t;
	}
}

/* Tokenizer and chat template of dir (failures tolerated until needed). */
static void load_tokenizer(run *r, const char *dir)
{
	char *err = NULL;
	r->tok = train_tokenizer_load(dir, &err);
	if (!r->tok) {
		if (r->o.from_db)
			util_die("%s", err);
		free(err);
		return;
	}
	if (r->o.chat_format || train_tokenizer_chat_template(r->tok)) {
		r->chat = train_chat_new(r->tok, r->o.chat_format, &err);
		if (!r->chat) {
			if (r->o.chat_format)
				util_die("%s", err);
			free(err); /* only conversational data needs it; that reports it */
		}
	}
}

struct db_ctx {
	run *r;
	train_pair *v;
	size_t n, cap;
	long trunc;
	int failed;
};

static int db_pair_cb(void *ud, const store_pair *p)
{
	struct db_ctx *c = ud;
	train_raw_pair raw = {0};
	char *err = NULL;
	if (p->prompt_messages_json) {
		if (train_msgs_parse(p->prompt_messages_json, &raw.pmsgs, &raw.npmsgs, &err)) {
			util_warn("prompt %lld: %s", (long long)p->prompt_id, err);
			free(err);
			c->failed = 1;
			return 1;
		}
	} else {
		raw.prompt = xstrdup(p->prompt_text ? p->prompt_text : "");
	}
	raw.chosen = xstrdup(p->chosen);
	raw.rejected = xstrdup(p->rejected);
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 64;
		c->v = xreallocarray(c->v, c->cap, sizeof(train_pair));
	}
	train_pair *tp = &c->v[c->n];
	if (train_raw_tokenize(&raw, c->r->tok, c->r->chat, &c->r->tokopt, tp, &err)) {
		util_warn("pair of prompt %lld (completions %lld/%lld): %s", (long long)p->prompt_id,
			  (long long)p->chosen_id, (long long)p->rejected_id, err);
		free(err);
		train_raw_free(&raw);
		c->failed = 1;
		return 1;
	}
	tp->prompt_id = p->prompt_id;
	tp->chosen_id = p->chosen_id;
	tp->rejected_id = p->rejected_id;
	c->trunc += tp->truncated;
	c->n++;
	train_raw_free(&raw);
	return 0;
}

static void load_db_pairs(run *r, const char *split, train_pair **out, size_t *n, long *trunc)
{
	struct db_ctx c = {.r = r};
	int rc = store_pairs_foreach(r->st, split, r->o.resolve, (int)r->o.min_annotations,
				     db_pair_cb, &c);
	if (c.failed || (rc != 0 && rc != 1))
		util_die("%s: cannot read the pairs of split \"%s\"%s%s", util_db_path(r->o.db),
			 split, c.failed ? "" : ": ", c.failed ? "" : store_errmsg(r->st));
	*out = c.v;
	*n = c.n;
	*trunc = c.trunc;
}

/* Reference log-probs of pairs[0..n): from the store's cache when there
 * is one, the misses computed with model ref in batches. */
static void reference_pass(run *r, train_model *ref, train_pair *pairs, size_t n,
			   const char *what)
{
	const char *fp = train_model_fingerprint(ref);
	size_t cached = 0;
	char *need = xcalloc(n ? n : 1, 1);
	size_t nmiss = 0;
	for (size_t i = 0; i < n; i++) {
		int hit = 0;
		if (r->st && pairs[i].prompt_id > 0) {
			double a, b;
			long ka, kb;
			store_reflogp_key kc = {fp, r->tok_fp, pairs[i].prompt_id, pairs[i].chosen_id};
			store_reflogp_key kr = {fp, r->tok_fp, pairs[i].prompt_id, pairs[i].rejected_id};
			if (store_reflogp_get(r->st, &kc, &a, &ka) == STORE_OK &&
			    store_reflogp_get(r->st, &kr, &b, &kb) == STORE_OK) {
				pairs[i].ref_c = a;
				pairs[i].ref_r = b;
				hit = 1;
				cached++;
			}
		}
		if (!hit) {
			need[i] = 1;
			nmiss++;
		}
	}
	if (nmiss) {
		train_engine *e = train_engine_new(ref);
		int bs = (int)r->o.batch_size;
		const train_pair **batch = xcalloc((size_t)bs, sizeof(*batch));
		size_t *idx = xcalloc((size_t)bs, sizeof(size_t));
		double *lc = xcalloc((size_t)bs, sizeof(double)), *lr = xcalloc((size_t)bs, sizeof(double));
		long *nc = xcalloc((size_t)bs, sizeof(long)), *nr = xcalloc((size_t)bs, sizeof(long));
		util_progress *pg = r->o.quiet ? NULL : util_progress_new(what, (double)nmiss, "pairs");
		size_t done = 0, i = 0;
		int inside = 0;
		if (r->st && store_begin(r->st) == STORE_OK)
			inside = 1;
		while (i < n) {
			int k = 0;
			while (i < n && k < bs) {
				if (need[i]) {
					idx[k] = i;
					batch[k++] = &pairs[i];
				}
				i++;
			}
			if (!k)
				break;
			if (train_engine_logps(e, batch, k, lc, lr, nc, nr))
				util_die("reference pass: %s", train_engine_errmsg(e));
			for (int j = 0; j < k; j++) {
				train_pair *p = &pairs[idx[j]];
				p->ref_c = lc[j];
				p->ref_r = lr[j];
				if (r->st && p->prompt_id > 0) {
					store_reflogp_key kc = {fp, r->tok_fp, p->prompt_id, p->chosen_id};
					store_reflogp_key kr = {fp, r->tok_fp, p->prompt_id, p->rejected_id};
					if (store_reflogp_put(r->st, &kc, lc[j], nc[j]) != STORE_OK ||
					    store_reflogp_put(r->st, &kr, lr[j], nr[j]) != STORE_OK)
						util_die("%s: %s", util_db_path(r->o.db), store_errmsg(r->st));
				}
			}
			done += (size_t)k;
			if (pg)
				util_progress_update(pg, (double)done, NULL);
			if (util_interrupted())
				break;
		}
		if (inside && store_commit(r->st) != STORE_OK)
			util_die("%s: %s", util_db_path(r->o.db), store_errmsg(r->st));
		if (pg) {
			util_progress_finish(pg);
			util_progress_free(pg);
		}
		if (util_interrupted()) {
			util_warn("interrupted during the reference pass (the log-probs computed so far are cached)");
			exit(UTIL_EXIT_INTERRUPTED);
		}
		free(batch);
		free(idx);
		free(lc);
		free(lr);
		free(nc);
		free(nr);
		train_engine_free(e);
	}
	if (!r->o.quiet)
		util_warn("%s: %zu pairs, %zu from the cache, %zu computed", what, n, cached, nmiss);
	free(need);
}

/* ---- checkpoints ---- */

#define OPT_MAGIC "DPOOPT1"

static int save_checkpoint(run *r, char **err)
{
	char *dir = xasprintf("%s/checkpoint-%ld", r->o.out, r->step);
	char *tmp = xasprintf("%s/.checkpoint-%ld.tmp", r->o.out, r->step);
	int rc = -1;
	remove_flat_dir(tmp);
	if (mkdir(r->o.out, 0755) != 0 && errno != EEXIST) {
		*err = xasprintf("%s: %s", r->o.out, strerror(errno));
		goto out;
	}
	if (mkdir(tmp, 0755) != 0) {
		*err = xasprintf("%s: %s", tmp, strerror(errno));
		goto out;
	}
	if (train_model_save(r->m, tmp, err) != 0)
		goto out;
	copy_tokenizer_files(r->tok_dir, tmp);
	/* optimizer: magic, nparams, t, m, v */
	size_t np = train_model_nparams(r->m);
	size_t len = 8 + 8 + 8 + 2 * np * sizeof(float);
	char *buf = xmalloc(len);
	memcpy(buf, OPT_MAGIC, 8);
	uint64_t n64 = np;
	int64_t t64 = train_engine_steps(r->e);
	memcpy(buf + 8, &n64, 8);
	memcpy(buf + 16, &t64, 8);
	memcpy(buf + 24, train_engine_moment1(r->e), np * sizeof(float));
	memcpy(buf + 24 + np * sizeof(float), train_engine_moment2(r->e), np * sizeof(float));
	char *p = xasprintf("%s/optimizer.bin", tmp);
	int wr = util_write_file_atomic(p, buf, len);
	free(p);
	free(buf);
	if (wr) {
		*err = xasprintf("%s/optimizer.bin: %s", tmp, strerror(errno));
		goto out;
	}
	/* reference log-probs, in data order */
	double *refs = xmalloc(sizeof(double) * 2 * (r->n + r->neval) + 1);
	for (size_t i = 0; i < r->n; i++) {
		refs[2 * i] = r->pairs[i].ref_c;
		refs[2 * i + 1] = r->pairs[i].ref_r;
	}
	for (size_t i = 0; i < r->neval; i++) {
		refs[2 * (r->n + i)] = r->evals[i].ref_c;
		refs[2 * (r->n + i) + 1] = r->evals[i].ref_r;
	}
	p = xasprintf("%s/ref_logps.bin", tmp);
	wr = util_write_file_atomic(p, refs, sizeof(double) * 2 * (r->n + r->neval));
	free(p);
	free(refs);
	if (wr) {
		*err = xasprintf("%s/ref_logps.bin: %s", tmp, strerror(errno));
		goto out;
	}
	char *state = xasprintf("{\"step\": %ld, \"epoch\": %ld, \"pos\": %ld, \"seed\": %ld, "
				"\"total_steps\": %ld, \"pairs\": %zu, \"eval_pairs\": %zu, "
				"\"data_fingerprint\": \"%s\", \"tokenization\": \"%s\"}\n",
				r->step, r->epoch, r->pos, r->o.seed, r->total_steps, r->n, r->neval,
				r->data_fp, r->tok_fp);
	p = xasprintf("%s/trainer_state.json", tmp);
	wr = util_write_file_atomic(p, state, strlen(state));
	free(p);
	free(state);
	if (wr) {
		*err = xasprintf("%s/trainer_state.json: %s", tmp, strerror(errno));
		goto out;
	}
	util_fsync_dir(tmp);
	remove_flat_dir(dir);
	if (rename(tmp, dir) != 0) {
		*err = xasprintf("rename %s to %s: %s", tmp, dir, strerror(errno));
		goto out;
	}
	util_fsync_dir(r->o.out);
	/* the previous checkpoint is superseded */
	if (r->last_ckpt[0] && strcmp(r->last_ckpt, dir) && !r->keep_last)
		remove_flat_dir(r->last_ckpt);
	r->keep_last = 0;
	snprintf(r->last_ckpt, sizeof r->last_ckpt, "%s", dir);
	rc = 0;
out:
	if (rc)
		remove_flat_dir(tmp);
	free(dir);
	free(tmp);
	return rc;
}

static long json_long(const cJSON *o, const char *k, int *ok)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!cJSON_IsNumber(v)) {
		*ok = 0;
		return 0;
	}
	return (long)v->valuedouble;
}

/* Restore optimizer moments, position and reference log-probs. */
static void load_checkpoint_state(run *r)
{
	const char *dir = r->o.resume;
	char *p = xasprintf("%s/trainer_state.json", dir);
	char *txt = util_read_file(p, NULL);
	if (!txt)
		util_die("%s: %s", p, strerror(errno));
	cJSON *o = cJSON_Parse(txt);
	free(txt);
	int ok = cJSON_IsObject(o);
	long step = json_long(o, "step", &ok), epoch = json_long(o, "epoch", &ok);
	long pos = json_long(o, "pos", &ok), seed = json_long(o, "seed", &ok);
	long total = json_long(o, "total_steps", &ok), np = json_long(o, "pairs", &ok);
	long ne = json_long(o, "eval_pairs", &ok);
	const cJSON *dfp = cJSON_GetObjectItemCaseSensitive(o, "data_fingerprint");
	if (!ok || !cJSON_IsString(dfp))
		util_die("%s: not a dpo-train checkpoint state (expected step, epoch, pos, seed, "
			 "total_steps, pairs, data_fingerprint)", p);
	if ((size_t)np != r->n || (size_t)ne != r->neval || strcmp(dfp->valuestring, r->data_fp))
		util_die("%s: the checkpoint was trained on other data (%ld pairs, fingerprint %.12s; "
			 "now %zu pairs, %.12s): give the same data options as the first run",
			 p, np, dfp->valuestring, r->n, r->data_fp);
	if (seed != r->o.seed)
		util_die("%s: the checkpoint used --seed %ld (now %ld)", p, seed, r->o.seed);
	if (total != r->total_steps)
		util_die("%s: the checkpoint belongs to a run of %ld steps (now %ld): give the same "
			 "--steps/--epochs/--batch-size/--grad-accum", p, total, r->total_steps);
	cJSON_Delete(o);
	free(p);
	r->step = step;
	r->epoch = epoch;
	r->pos = pos;

	p = xasprintf("%s/optimizer.bin", dir);
	FILE *f = fopen(p, "rb");
	size_t npar = train_model_nparams(r->m);
	char hdr[24];
	if (!f || fread(hdr, 1, 24, f) != 24 || memcmp(hdr, OPT_MAGIC, 8))
		util_die("%s: missing or not a dpo-train optimizer state", p);
	uint64_t n64;
	int64_t t64;
	memcpy(&n64, hdr + 8, 8);
	memcpy(&t64, hdr + 16, 8);
	if (n64 != npar ||
	    fread(train_engine_moment1(r->e), sizeof(float), npar, f) != npar ||
	    fread(train_engine_moment2(r->e), sizeof(float), npar, f) != npar)
		util_die("%s: truncated, or written for a model of another size", p);
	fclose(f);
	free(p);
	train_engine_set_steps(r->e, (long)t64);

	p = xasprintf("%s/ref_logps.bin", dir);
	f = fopen(p, "rb");
	size_t nref = 2 * (r->n + r->neval);
	double *refs = xmalloc(sizeof(double) * nref + 1);
	if (!f || fread(refs, sizeof(double), nref, f) != nref)
		util_die("%s: missing or truncated", p);
	fclose(f);
	free(p);
	for (size_t i = 0; i < r->n; i++) {
		r->pairs[i].ref_c = refs[2 * i];
		r->pairs[i].ref_r = refs[2 * i + 1];
	}
	for (size_t i = 0; i < r->neval; i++) {
		r->evals[i].ref_c = refs[2 * (r->n + i)];
		r->evals[i].ref_r = refs[2 * (r->n + i) + 1];
	}
	free(refs);
	snprintf(r->last_ckpt, sizeof r->last_ckpt, "%s", dir);
	r->keep_last = 1; /* never delete the checkpoint we resumed from */
}

/* ---- metrics ---- */

/* the metrics of a step, indexed by store/metrics.h's ids */
#define NMETRICS STORE_METRIC_NTRAIN
#define metric_names store_metric_train

static void emit_metrics(run *r, long step, const char *prefix, const double *v, int nm,
			 double extra_tokps)
{
	if (r->log) {
		fprintf(r->log, "{\"step\": %ld, \"epoch\": %.6f", step,
			r->n ? (double)r->epoch + (double)r->pos / (double)r->n : 0.0);
		for (int i = 0; i < nm; i++) {
			if (!prefix[0] && !store_metric_train_on_eval(i)) /* grad_norm, learning_rate */
				fprintf(r->log, ", \"%s\": %.17g", metric_names[i], v[i]);
			else if (prefix[0] && !store_metric_train_on_eval(i))
				continue;
			else
				fprintf(r->log, ", \"%s%s\": %.17g", prefix, metric_names[i], v[i]);
		}
		if (extra_tokps > 0)
			fprintf(r->log, ", \"tokens_per_s\": %.1f", extra_tokps);
		fprintf(r->log, "}\n");
		fflush(r->log);
	}
	if (r->st && r->run_id > 0)
		for (int i = 0; i < nm; i++) {
			if (prefix[0] && !store_metric_train_on_eval(i))
				continue;
			char name[64];
			snprintf(name, sizeof name, "%s%s", prefix, metric_names[i]);
			store_metric_add(r->st, r->run_id, step, name, v[i]);
		}
}

/* Loss and rewards over the eval pairs (forward only). */
static void evaluate(run *r)
{
	if (!r->neval)
		return;
	size_t n = r->neval;
	double *pc = xmalloc(sizeof(double) * n), *pr = xmalloc(sizeof(double) * n);
	double *rc = xmalloc(sizeof(double) * n), *rr = xmalloc(sizeof(double) * n);
	long *nc = xmalloc(sizeof(long) * n), *nr = xmalloc(sizeof(long) * n);
	int bs = (int)r->o.batch_size;
	const train_pair **b = xcalloc((size_t)bs, sizeof(*b));
	for (size_t i = 0; i < n; i += (size_t)bs) {
		int k = (int)(n - i < (size_t)bs ? n - i : (size_t)bs);
		for (int j = 0; j < k; j++)
			b[j] = &r->evals[i + j];
		if (train_engine_logps(r->e, b, k, pc + i, pr + i, nc + i, nr + i))
			util_die("evaluation: %s", train_engine_errmsg(r->e));
	}
	for (size_t i = 0; i < n; i++) {
		rc[i] = r->evals[i].ref_c;
		rr[i] = r->evals[i].ref_r;
	}
	train_loss_batch lb = {.B = (int)n, .pc = pc, .pr = pr, .rc = rc, .rr = rr, .nc = nc, .nr = nr};
	if (train_loss_compute(&r->loss, &lb) == 0) {
		double v[NMETRICS] = {
			[STORE_METRIC_LOSS] = lb.loss,
			[STORE_METRIC_REWARDS_CHOSEN] = lb.reward_chosen,
			[STORE_METRIC_REWARDS_REJECTED] = lb.reward_rejected,
			[STORE_METRIC_REWARDS_ACCURACIES] = lb.reward_accuracy,
			[STORE_METRIC_REWARDS_MARGINS] = lb.reward_margin,
			[STORE_METRIC_LOGPS_CHOSEN] = lb.logp_chosen,
			[STORE_METRIC_LOGPS_REJECTED] = lb.logp_rejected,
		};
		emit_metrics(r, r->step, STORE_METRIC_TRAIN_EVAL_PREFIX, v, NMETRICS, 0);
		if (!r->o.quiet)
			util_warn("step %ld: eval_loss %.6f, eval accuracy %.3f", r->step, lb.loss,
				  lb.reward_accuracy);
	}
	free(pc);
	free(pr);
	free(rc);
	free(rr);
	free(nc);
	free(nr);
	free(b);
}

/* The command line as the store records it (quoted, secrets masked). */
static char *join_args(int argc, char **argv)
{
	util_buf b = UTIL_BUF_INIT;
	util_cmdline_quote(argc, argv, &b);
	return util_buf_detach(&b);
}

static char *params_json(run *r)
{
	const struct opts *o = &r->o;
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "model", o->model ? o->model : o->resume);
	if (o->ref_model)
		cJSON_AddStringToObject(j, "ref_model", o->ref_model);
	cJSON_AddStringToObject(j, "data", o->from_db ? "db" : o->from_jsonl);
	if (o->from_db) {
		cJSON_AddStringToObject(j, "split", o->split);
		cJSON_AddStringToObject(j, "resolve", o->resolve);
	}
	cJSON_AddStringToObject(j, "loss", o->loss);
	if (o->loss_weights)
		cJSON_AddStringToObject(j, "loss_weights", o->loss_weights);
	cJSON_AddNumberToObject(j, "beta", o->beta);
	cJSON_AddNumberToObject(j, "label_smoothing", o->label_smoothing);
	cJSON_AddNumberToObject(j, "simpo_gamma", o->simpo_gamma);
	cJSON_AddBoolToObject(j, "ipo_length_norm", o->ipo_length_norm);
	cJSON_AddNumberToObject(j, "lr", o->lr);
	cJSON_AddStringToObject(j, "schedule", o->schedule);
	cJSON_AddNumberToObject(j, "warmup_steps", (double)o->warmup_steps);
	cJSON_AddNumberToObject(j, "warmup_ratio", o->warmup_ratio);
	cJSON_AddNumberToObject(j, "weight_decay", o->weight_decay);
	cJSON_AddNumberToObject(j, "adam_beta1", o->beta1);
	cJSON_AddNumberToObject(j, "adam_beta2", o->beta2);
	cJSON_AddNumberToObject(j, "adam_eps", o->adam_eps);
	cJSON_AddNumberToObject(j, "max_grad_norm", o->max_grad_norm);
	cJSON_AddNumberToObject(j, "batch_size", (double)o->batch_size);
	cJSON_AddNumberToObject(j, "grad_accum", (double)o->grad_accum);
	cJSON_AddNumberToObject(j, "epochs", (double)o->epochs);
	cJSON_AddNumberToObject(j, "steps", (double)r->total_steps);
	cJSON_AddNumberToObject(j, "seed", (double)o->seed);
	cJSON_AddNumberToObject(j, "max_length", (double)o->max_length);
	cJSON_AddNumberToObject(j, "max_prompt_length", (double)o->max_prompt_length);
	cJSON_AddBoolToObject(j, "append_eos", !o->no_append_eos);
	cJSON_AddBoolToObject(j, "add_bos", o->add_bos);
	char *s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	return s;
}

static void write_run_json(run *r, const char *status)
{
	cJSON *j = cJSON_CreateObject();
	char *pj = params_json(r);
	cJSON_AddItemToObject(j, "arguments", cJSON_Parse(pj));
	free(pj);
	cJSON_AddStringToObject(j, "command", r->cmdline);
	cJSON_AddStringToObject(j, "status", status);
	cJSON_AddStringToObject(j, "started_at", r->started);
	char now[32];
	util_utc_now(now, sizeof now);
	cJSON_AddStringToObject(j, "finished_at", now);
	cJSON *d = cJSON_AddObjectToObject(j, "data");
	cJSON_AddNumberToObject(d, "pairs", (double)r->n);
	cJSON_AddNumberToObject(d, "truncated", (double)r->ntrunc);
	cJSON_AddNumberToObject(d, "eval_pairs", (double)r->neval);
	cJSON_AddStringToObject(d, "fingerprint", r->data_fp);
	cJSON_AddStringToObject(d, "tokenization", r->tok_fp);
	cJSON_AddNumberToObject(j, "steps", (double)r->step);
	if (r->have_metrics) {
		cJSON *m = cJSON_AddObjectToObject(j, "final_metrics");
		for (int i = 0; i < NMETRICS; i++)
			cJSON_AddNumberToObject(m, metric_names[i], r->last_metrics[i]);
	}
	char *s = cJSON_Print(j);
	cJSON_Delete(j);
	char *p = xasprintf("%s/dpo_run.json", r->o.out);
	util_buf b = UTIL_BUF_INIT;
	util_buf_adds(&b, s);
	util_buf_addc(&b, '\n');
	if (util_write_file_atomic(p, b.data, b.len) != 0)
		util_die("%s: %s", p, strerror(errno));
	util_buf_free(&b);
	free(p);
	free(s);
}

static void end_run(run *r, const char *status)
{
	if (r->st && r->run_id > 0) {
		char *summary = xasprintf("{\"steps\": %ld, \"pairs\": %zu}", r->step, r->n);
		store_run_end(r->st, r->run_id, status, summary);
		free(summary);
	}
}

static void fail_run(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void fail_run(run *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	end_run(r, "failed");
	util_die("%s", msg);
}

/* --beta-sweep: run this program once per beta with the same arguments
 * plus --beta B --out OUT/beta-B (and --log-json FILE.beta-B), one after the
 * other; a policy already there is reused. Returns the exit status. */
static int beta_sweep(const struct opts *o, int argc, char **argv0)
{
	double betas[64];
	int nb = 0;
	const char *p = o->beta_sweep;
	while (*p) {
		char *end;
		double b = strtod(p, &end);
		if (end == p || !(b > 0) || !isfinite(b) || (*end && *end != ','))
			util_usage_error("--beta-sweep: expected positive numbers separated by commas, not \"%s\"",
					 o->beta_sweep);
		if (nb == 64)
			util_usage_error("--beta-sweep: at most 64 values");
		betas[nb++] = b;
		p = *end ? end + 1 : end;
	}
	if (nb == 0)
		util_usage_error("--beta-sweep: no values");
	if (mkdir(o->out, 0777) && errno != EEXIST)
		util_die("%s: %s", o->out, strerror(errno));
	setenv("DPO_SWEEP_CHILD", "1", 1);
	cJSON *sum = cJSON_CreateObject(), *pol = cJSON_AddArrayToObject(sum, "policies");
	int status = UTIL_EXIT_OK;
	for (int i = 0; i < nb; i++) {
		char bs[32];
		snprintf(bs, sizeof bs, "%g", betas[i]);
		char *dir = xasprintf("%s/beta-%s", o->out, bs);
		char *done = xasprintf("%s/model.safetensors", dir);
		char *logj = o->log_json ? xasprintf("%s.beta-%s", o->log_json, bs) : NULL;
		struct stat sb;
		if (stat(done, &sb) == 0) {
			if (!o->quiet)
				util_warn("beta %s: reusing %s", bs, dir);
		} else {
			if (!o->quiet)
				util_warn("beta %s (%d of %d): training into %s", bs, i + 1, nb, dir);
			char **av = xcalloc((size_t)argc + 7, sizeof *av);
			int n = 0;
			for (int k = 0; k < argc; k++)
				av[n++] = argv0[k];
			av[n++] = "--beta";
			av[n++] = bs;
			av[n++] = "--out";
			av[n++] = dir;
			if (logj) {
				av[n++] = "--log-json";
				av[n++] = logj;
			}
			av[n] = NULL;
			fflush(NULL);
			pid_t pid = fork();
			if (pid == 0) {
				execv("/proc/self/exe", av);
				execvp(argv0[0], av);
				_exit(127);
			}
			int st = 0;
			if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
				util_warn("beta %s: the training run failed (%s)", bs,
					  pid < 0 ? strerror(errno)
					  : WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "see above");
				status = UTIL_EXIT_FAIL;
			}
			free(av);
		}
		cJSON *e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "beta", betas[i]);
		cJSON_AddStringToObject(e, "dir", dir);
		cJSON_AddItemToArray(pol, e);
		free(dir);
		free(done);
		free(logj);
		if (status != UTIL_EXIT_OK || util_interrupted())
			break;
	}
	if (status == UTIL_EXIT_OK) {
		char *js = cJSON_Print(sum), *path = xasprintf("%s/sweep.json", o->out);
		size_t len = strlen(js);
		js = xrealloc(js, len + 2);
		js[len++] = '\n';
		js[len] = '\0';
		if (util_write_file_atomic(path, js, len))
			util_die("%s: %s", path, strerror(errno));
		if (!o->quiet)
			util_warn("%d policies in %s (listed in %s)", nb, o->out, path);
		free(path);
		free(js);
	}
	cJSON_Delete(sum);
	return status;
}

int main(int argc, char **argv)
{
	train_runtime_tune(argv);
	util_set_progname("dpo-train");
	run R;
	memset(&R, 0, sizeof R);
	run *r = &R;
	struct opts *o = &r->o;
	o->split = "train";
	o->resolve = "majority";
	o->min_annotations = 1;
	o->loss = "sigmoid";
	o->beta = 0.1;
	o->simpo_gamma = 0.5;
	o->lr = 1e-6;
	o->beta1 = 0.9;
	o->beta2 = 0.999;
	o->adam_eps = 1e-8;
	o->max_grad_norm = 1.0;
	o->schedule = "linear";
	o->batch_size = 8;
	o->grad_accum = 1;
	o->epochs = 1;
	o->seed = 42;
	o->max_length = 1024;
	o->log_every = 1;
	/* the arguments as given, before getopt permutes them (for --beta-sweep;
	 * static so that it stays reachable for as long as the process runs) */
	static char **argv0;
	argv0 = xcalloc((size_t)argc + 1, sizeof *argv0);
	memcpy(argv0, argv, sizeof *argv0 * (size_t)argc);
	int c;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case O_MODEL: o->model = optarg; break;
		case O_REF: o->ref_model = optarg; break;
		case O_JSONL: o->from_jsonl = optarg; break;
		case O_EVAL_JSONL: o->eval_jsonl = optarg; break;
		case O_FROM_DB: o->from_db = 1; break;
		case O_DB: o->db = optarg; break;
		case O_SPLIT: o->split = optarg; break;
		case O_EVAL_SPLIT: o->eval_split = optarg; break;
		case O_RESOLVE: o->resolve = optarg; break;
		case O_MIN_ANN: parse_nonneg("--min-annotations", optarg, &o->min_annotations, 0); break;
		case O_LOSS: o->loss = optarg; break;
		case O_LOSS_WEIGHTS: o->loss_weights = optarg; break;
		case O_BETA: util_parse_double("--beta", optarg, &o->beta); break;
		case O_LS: util_parse_double("--label-smoothing", optarg, &o->label_smoothing); break;
		case O_GAMMA: util_parse_double("--simpo-gamma", optarg, &o->simpo_gamma); break;
		case O_IPO_NORM: o->ipo_length_norm = 1; break;
		case O_LR: util_parse_double("--lr", optarg, &o->lr); break;
		case O_WD: util_parse_double("--weight-decay", optarg, &o->weight_decay); break;
		case O_B1: util_parse_double("--adam-beta1", optarg, &o->beta1); break;
		case O_B2: util_parse_double("--adam-beta2", optarg, &o->beta2); break;
		case O_EPS: util_parse_double("--adam-eps", optarg, &o->adam_eps); break;
		case O_MAXGN: util_parse_double("--max-grad-norm", optarg, &o->max_grad_norm); break;
		case O_WR: util_parse_double("--warmup-ratio", optarg, &o->warmup_ratio); break;
		case O_WS: parse_nonneg("--warmup-steps", optarg, &o->warmup_steps, 0); break;
		case O_SCHED: o->schedule = optarg; break;
		case O_BS: parse_nonneg("--batch-size", optarg, &o->batch_size, 1); break;
		case O_GA: parse_nonneg("--grad-accum", optarg, &o->grad_accum, 1); break;
		case O_EPOCHS: parse_nonneg("--epochs", optarg, &o->epochs, 1); break;
		case O_STEPS: parse_nonneg("--steps", optarg, &o->steps, 1); break;
		case O_SEED: parse_nonneg("--seed", optarg, &o->seed, 0); break;
		case O_MAXLEN: parse_nonneg("--max-length", optarg, &o->max_length, 0); break;
		case O_MAXPL: parse_nonneg("--max-prompt-length", optarg, &o->max_prompt_length, 0); break;
		case O_NOEOS: o->no_append_eos = 1; break;
		case O_BOS: o->add_bos = 1; break;
		case O_CHAT: o->chat_format = optarg; break;
		case O_LOGJSON: o->log_json = optarg; break;
		case O_LOGEVERY: parse_nonneg("--log-every", optarg, &o->log_every, 1); break;
		case O_SAVEEVERY: parse_nonneg("--save-every", optarg, &o->save_every, 0); break;
		case O_EVALEVERY: parse_nonneg("--eval-every", optarg, &o->eval_every, 0); break;
		case O_RESUME: o->resume = optarg; break;
		case O_OUT: o->out = optarg; break;
		case O_SWEEP:
			if (!getenv("DPO_SWEEP_CHILD")) /* a sweep's own runs ignore it */
				o->beta_sweep = optarg;
			break;
		case O_THREADS: parse_nonneg("--threads", optarg, &o->threads, 1); break;
		case O_QUIET: o->quiet = 1; break;
		case 'h': usage(stdout); return UTIL_EXIT_OK;
		case O_VERSION: util_print_version(); return UTIL_EXIT_OK;
		default: util_usage_error("unknown option");
		}
	}
	if (optind < argc)
		util_usage_error("unexpected argument \"%s\"", argv[optind]);
	if (!!o->from_db + !!o->from_jsonl != 1)
		util_usage_error("give exactly one of --from-db and --from-jsonl FILE");
	if (!o->model && !o->resume)
		util_usage_error("--model DIR is required");
	if (!o->out)
		util_usage_error("--out DIR is required");
	if (o->eval_split && !o->from_db)
		util_usage_error("--eval-split needs --from-db (use --eval-jsonl with --from-jsonl)");
	if (train_sched_parse(o->schedule) < 0)
		util_usage_error("--schedule must be constant, linear or cosine, not \"%s\"", o->schedule);
	train_loss_cfg_default(&r->loss);
	const char *bad = NULL;
	if (train_loss_parse_list(&r->loss, o->loss, &bad))
		util_usage_error("--loss: unknown loss \"%s\" (expected sigmoid, robust, hinge, ipo, "
				 "sft, simpo; at most %d)", bad ? bad : o->loss, TRAIN_LOSS_MAX);
	if (o->loss_weights && train_loss_parse_weights(&r->loss, o->loss_weights))
		util_usage_error("--loss-weights: expected %d comma-separated numbers", r->loss.n);
	r->loss.beta = o->beta;
	r->loss.label_smoothing = o->label_smoothing;
	r->loss.simpo_gamma = o->simpo_gamma;
	r->loss.ipo_length_norm = o->ipo_length_norm;
	if (!(o->beta > 0))
		util_usage_error("--beta must be positive");
	if (o->beta_sweep) {
		if (o->resume)
			util_usage_error("--beta-sweep and --resume do not go together");
		int src = beta_sweep(o, argc, argv0);
		free(argv0);
		return src;
	}
	if (!(o->label_smoothing >= 0 && o->label_smoothing < 0.5))
		util_usage_error("--label-smoothing must be in [0, 0.5)");
	if (!(o->lr >= 0) || !(o->weight_decay >= 0) || !(o->warmup_ratio >= 0 && o->warmup_ratio < 1))
		util_usage_error("--lr and --weight-decay must be >= 0, --warmup-ratio in [0, 1)");
#ifdef _OPENMP
	if (o->threads > 0)
		omp_set_num_threads((int)o->threads);
#endif
#ifdef HAVE_BLAS
	if (o->threads > 0)
		openblas_set_num_threads((int)o->threads);
#endif
	util_catch_interrupts();
	r->cmdline = join_args(argc, argv);
	util_utc_now(r->started, sizeof r->started);
	char *err = NULL;

	/* tokenizer and data */
	const char *model_dir = o->resume ? o->resume : o->model;
	r->tok_dir = model_dir;
	load_tokenizer(r, model_dir);
	train_model *m0 = train_model_load(model_dir, &err);
	if (!m0)
		util_die("%s", err);
	const train_config *cfg = train_model_config(m0);
	r->tokopt.append_eos = !o->no_append_eos;
	r->tokopt.add_bos = o->add_bos;
	/* never longer than the model's positions */
	r->tokopt.max_length = o->max_length > 0 && o->max_length < cfg->max_pos ? o->max_length :
			       cfg->max_pos;
	r->tokopt.max_prompt_length = o->max_prompt_length;
	r->tokopt.eos_id = r->tok && train_tokenizer_eos_id(r->tok) >= 0 ? train_tokenizer_eos_id(r->tok) :
			   cfg->n_eos > 0 ? cfg->eos[0] : -1;
	r->tokopt.bos_id = r->tok && train_tokenizer_bos_id(r->tok) >= 0 ? train_tokenizer_bos_id(r->tok) :
			   cfg->bos;
	train_tok_fingerprint(r->tok ? train_tokenizer_fingerprint(r->tok) : NULL,
			      r->chat ? train_chat_format_name(train_chat_get_format(r->chat)) : NULL,
			      &r->tokopt, r->tok_fp);
	if (o->from_db || o->db) {
		r->st = store_new();
		if (store_open(r->st, util_db_path(o->db)) != STORE_OK)
			util_die("%s: %s", util_db_path(o->db), store_errmsg(r->st));
	}
	if (o->from_db) {
		load_db_pairs(r, o->split, &r->pairs, &r->n, &r->ntrunc);
		if (!r->n)
			util_die("%s: no preference pairs in split \"%s\" under policy \"%s\"",
				 util_db_path(o->db), o->split, o->resolve);
		if (o->eval_split)
			load_db_pairs(r, o->eval_split, &r->evals, &r->neval, &r->neval_trunc);
	} else {
		if (train_read_jsonl(o->from_jsonl, r->tok, r->chat, &r->tokopt, &r->pairs, &r->n,
				     &r->ntrunc, &err))
			util_die("%s", err);
	}
	if (o->eval_jsonl &&
	    train_read_jsonl(o->eval_jsonl, r->tok, r->chat, &r->tokopt, &r->evals, &r->neval,
			     &r->neval_trunc, &err))
		util_die("%s", err);
	train_data_fingerprint(r->pairs, r->n, r->data_fp);
	if (!o->quiet) {
		util_warn("%zu training pairs%s%zu eval pairs; %ld truncated to --max-length %ld%s",
			  r->n, r->neval ? ", " : " (", r->neval, r->ntrunc + r->neval_trunc,
			  r->tokopt.max_length, r->neval ? "" : ")");
	}

	/* schedule */
	long per_step = o->batch_size * o->grad_accum;
	long steps_per_epoch = (long)((r->n + (size_t)per_step - 1) / (size_t)per_step);
	r->total_steps = o->steps > 0 ? o->steps : o->epochs * steps_per_epoch;
	train_sched sched = {.kind = train_sched_parse(o->schedule), .lr = o->lr,
			     .warmup_steps = o->warmup_steps ? o->warmup_steps :
					     train_warmup_from_ratio(o->warmup_ratio, r->total_steps),
			     .total_steps = r->total_steps};
	train_adamw opt = {.beta1 = o->beta1, .beta2 = o->beta2, .eps = o->adam_eps,
			   .weight_decay = o->weight_decay};

	/* the store run */
	if (r->st) {
		char *pj = params_json(r);
		if (store_run_start(r->st, "train", argc, argv, pj, &r->run_id) != STORE_OK)
			util_die("%s: %s", util_db_path(o->db), store_errmsg(r->st));
		free(pj);
	}

	/* reference log-probs (a first pass; the reference model is freed after) */
	if (o->resume) {
		r->m = m0;
		r->e = train_engine_new(r->m);
		load_checkpoint_state(r);
		if (!o->quiet)
			util_warn("resuming %s at step %ld of %ld", o->resume, r->step, r->total_steps);
	} else {
		if (train_loss_needs_ref(&r->loss)) {
			if (o->ref_model && strcmp(o->ref_model, o->model)) {
				train_model *ref = train_model_load(o->ref_model, &err);
				if (!ref)
					fail_run(r, "%s", err);
				if (train_model_config(ref)->vocab != cfg->vocab)
					fail_run(r, "%s: vocabulary of %d tokens, the policy has %d",
						 o->ref_model, train_model_config(ref)->vocab, cfg->vocab);
				reference_pass(r, ref, r->pairs, r->n, "reference log-probs");
				if (r->neval)
					reference_pass(r, ref, r->evals, r->neval, "reference log-probs (eval)");
				train_model_free(ref);
			} else {
				reference_pass(r, m0, r->pairs, r->n, "reference log-probs");
				if (r->neval)
					reference_pass(r, m0, r->evals, r->neval, "reference log-probs (eval)");
			}
		}
		r->m = m0;
		r->e = train_engine_new(r->m);
	}
	if (o->log_json) {
		r->log = fopen(o->log_json, o->resume ? "a" : "w");
		if (!r->log)
			fail_run(r, "%s: %s", o->log_json, strerror(errno));
	}
	if (mkdir(o->out, 0755) != 0 && errno != EEXIST)
		fail_run(r, "%s: %s", o->out, strerror(errno));

	/* training */
	r->perm = xmalloc(sizeof(size_t) * r->n);
	epoch_perm(r, r->epoch);
	int bs = (int)o->batch_size;
	const train_pair **batch = xcalloc((size_t)bs, sizeof(*batch));
	util_progress *pg = o->quiet || !isatty(2) ? NULL :
			    util_progress_new("train", (double)r->total_steps, "steps");
	long step0 = r->step;
	double t0 = util_now(), tokens_total = 0, flops_total = 0;
	while (r->step < r->total_steps) {
		if (r->pos >= (long)r->n) {
			r->epoch++;
			r->pos = 0;
			epoch_perm(r, r->epoch);
		}
		/* one optimizer step: up to grad_accum micro-batches from this epoch */
		long left = (long)r->n - r->pos;
		long take = left < per_step ? left : per_step;
		int nmb = (int)((take + bs - 1) / bs);
		double sums[NMETRICS] = {0};
		for (int mb = 0; mb < nmb; mb++) {
			int k = (int)(take - (long)mb * bs < bs ? take - (long)mb * bs : bs);
			for (int j = 0; j < k; j++)
				batch[j] = &r->pairs[r->perm[r->pos + (long)mb * bs + j]];
			train_loss_batch lb;
			if (train_engine_accumulate(r->e, &r->loss, batch, k, 1.0 / nmb, &lb))
				fail_run(r, "step %ld: %s", r->step + 1, train_engine_errmsg(r->e));
			if (!isfinite(lb.loss))
				fail_run(r, "step %ld: the loss is %g; stopping (%s%s)", r->step + 1, lb.loss,
					 r->last_ckpt[0] ? "last checkpoint: " : "no checkpoint was saved",
					 r->last_ckpt);
			sums[STORE_METRIC_LOSS] += lb.loss / nmb;
			sums[STORE_METRIC_REWARDS_CHOSEN] += lb.reward_chosen / nmb;
			sums[STORE_METRIC_REWARDS_REJECTED] += lb.reward_rejected / nmb;
			sums[STORE_METRIC_REWARDS_ACCURACIES] += lb.reward_accuracy / nmb;
			sums[STORE_METRIC_REWARDS_MARGINS] += lb.reward_margin / nmb;
			sums[STORE_METRIC_LOGPS_CHOSEN] += lb.logp_chosen / nmb;
			sums[STORE_METRIC_LOGPS_REJECTED] += lb.logp_rejected / nmb;
			tokens_total += (double)train_engine_last_tokens(r->e);
			flops_total += train_engine_last_flops(r->e);
		}
		double lr = train_sched_lr(&sched, r->step), gn;
		if (train_engine_step(r->e, &opt, lr, o->max_grad_norm, &gn))
			fail_run(r, "step %ld: %s (loss %g); stopping (%s%s)", r->step + 1,
				 train_engine_errmsg(r->e), sums[STORE_METRIC_LOSS],
				 r->last_ckpt[0] ? "last checkpoint: " : "no checkpoint was saved",
				 r->last_ckpt);
		r->pos += take;
		r->step++;
		sums[STORE_METRIC_GRAD_NORM] = gn;
		sums[STORE_METRIC_LEARNING_RATE] = lr;
		double el = util_now() - t0;
		emit_metrics(r, r->step, "", sums, NMETRICS, el > 0 ? tokens_total / el : 0);
		memcpy(r->last_metrics, sums, sizeof sums);
		r->have_metrics = 1;
		if (!o->quiet && (r->step % o->log_every == 0 || r->step == r->total_steps)) {
			char extra[160];
			snprintf(extra, sizeof extra, "loss %.4f, acc %.2f, %.0f tok/s, %.1f GFLOP/s",
				 sums[STORE_METRIC_LOSS], sums[STORE_METRIC_REWARDS_ACCURACIES], el > 0 ? tokens_total / el : 0,
				 el > 0 ? flops_total / el / 1e9 : 0);
			if (pg) {
				util_progress_update(pg, (double)r->step, extra);
			} else {
				/* not a terminal: one line per --log-every steps */
				char eta[32];
				double rate = (double)(r->step - step0) / (el > 0 ? el : 1);
				util_format_duration(rate > 0 ? (double)(r->total_steps - r->step) / rate : 0,
						     eta, sizeof eta);
				util_warn("step %ld/%ld, ETA %s, %s", r->step, r->total_steps, eta, extra);
			}
		}
		if (o->eval_every > 0 && r->step % o->eval_every == 0 && r->step < r->total_steps)
			evaluate(r);
		int interrupted = util_interrupted();
		if ((o->save_every > 0 && r->step % o->save_every == 0 && r->step < r->total_steps) ||
		    interrupted) {
			if (save_checkpoint(r, &err))
				fail_run(r, "cannot save a checkpoint: %s", err);
		}
		if (interrupted) {
			if (pg)
				util_progress_finish(pg);
			util_warn("interrupted at step %ld of %ld; resume with --resume %s", r->step,
				  r->total_steps, r->last_ckpt);
			end_run(r, "interrupted");
			return UTIL_EXIT_INTERRUPTED;
		}
	}
	if (pg) {
		util_progress_finish(pg);
		util_progress_free(pg);
	}
	evaluate(r);

	/* output: the model, tokenizer files, dpo_run.json */
	if (train_model_save(r->m, o->out, &err))
		fail_run(r, "%s", err);
	copy_tokenizer_files(r->tok_dir, o->out);
	write_run_json(r, "ok");
	end_run(r, "ok");
	if (!o->quiet)
		util_warn("saved the trained model to %s", o->out);

	free(batch);
	free(r->perm);
	for (size_t i = 0; i < r->n; i++)
		train_pair_free(&r->pairs[i]);
	for (size_t i = 0; i < r->neval; i++)
		train_pair_free(&r->evals[i]);
	free(r->pairs);
	free(r->evals);
	if (r->log)
		fclose(r->log);
	train_engine_free(r->e);
	train_model_free(r->m);
	train_chat_free(r->chat);
	train_tokenizer_free(r->tok);
	store_free(r->st);
	free(r->cmdline);
	free(err);
	return UTIL_EXIT_OK;
}

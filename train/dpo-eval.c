/* dpo-eval: compare a trained policy with its baseline on held-out prompts.
 *
 * Samples completions from both models for every prompt of a split (or a
 * JSONL file), then reports
 *   - the policy's win rate against the baseline as judged by dpo-judge
 *     (any provider; the flags after "--" are handed to it), with a 95%
 *     Wilson interval; ties count half;
 *   - the mean KL to the baseline, estimated by the sampled log-ratio
 *     log pi(y|x) - log pi_base(y|x) over samples y from the policy;
 *   - with --task-command, the exact-match accuracy of both models as
 *     decided by a checker program (JSON Lines {"prompt", "response"} in,
 *     one 1/0 line per input out), e.g. share/task/task.py check.
 * The judged pair of each prompt is the first sample of each model; the
 * samples go into the store as completions of generators
 * "dpo-eval:policy:NAME" and "dpo-eval:baseline:NAME" and the results as an
 * "eval" run with metrics. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/metrics.h"
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
#include "util/file.h"
#include "util/lineread.h"
#include "util/progress.h"
#include "util/utf8.h"
#include "util/xmalloc.h"

/* The command line: every option, its default and range, in one table. */
struct opts {
	const char *policy, *baseline, *db, *split, *prompts, *chat_format, *task, *judge;
	long limit, samples, threads;
	int chat, json, quiet;
	train_gen_cli gen;
};

static const util_opt opts_table[] = {
	{"policy", 0, UTIL_OPT_PATH, offsetof(struct opts, policy), .arg = "DIR",
	 .help = "the trained model (required)"},
	{"baseline", 0, UTIL_OPT_PATH, offsetof(struct opts, baseline), .arg = "DIR",
	 .help = "the model it started from, the DPO reference\n(required)"},
	{"samples", 0, UTIL_OPT_INT, offsetof(struct opts, samples), .def = "1", .range = "[1, 64]",
	 .arg = "K", .help = "samples per prompt and model"},
	UTIL_OPT_DB(struct opts, db),
	{"split", 0, UTIL_OPT_STRING, offsetof(struct opts, split), .def = "test", .arg = "S",
	 .help = "prompts of this split of the store"},
	{"prompts", 0, UTIL_OPT_PATH, offsetof(struct opts, prompts), .arg = "FILE",
	 .help = "JSON Lines {\"prompt\": TEXT or messages} instead of\n"
		 "the store (no judging: the judge works on the\nstore)"},
	{"limit", 0, UTIL_OPT_INT, offsetof(struct opts, limit), .def = "0", .range = "[0, inf)",
	 .help = "only the first N prompts, 0 for all"},
	{"chat", 0, UTIL_OPT_FLAG, offsetof(struct opts, chat),
	 .help = "render plain-text prompts as a user turn too\n"
		 "(conversations always use the chat template)"},
	TRAIN_GEN_OPT_CHAT_FORMAT(struct opts, chat_format,
				  "template family (default: detected from the\n"
				  "tokenizer's template):\n" TRAIN_GEN_CHAT_FORMAT_NAMES),
	UTIL_OPT_THREADS(struct opts, threads),
	UTIL_OPT_INCLUDE_TABLE(struct opts, gen, train_gen_cli_opts),
	UTIL_OPT_HEADING("Scoring:"),
	{"task-command", 0, UTIL_OPT_STRING, offsetof(struct opts, task), .arg = "CMD",
	 .help = "exact-match checker (sh -c): JSON Lines\n{\"prompt\", \"response\"} on stdin, "
		 "one line 1 or 0\nper input on stdout"},
	{"judge", 0, UTIL_OPT_PATH, offsetof(struct opts, judge), .arg = "PROGRAM",
	 .help = "the dpo-judge program (default: next to\ndpo-eval, else from PATH)"},
	UTIL_OPT_HEADING("Output:"),
	UTIL_OPT_JSON(struct opts, json),
	UTIL_OPT_QUIET(struct opts, quiet),
	UTIL_OPT_TABLE_END,
};

static util_cli cli = {
	.name = "dpo-eval",
	.synopsis = "--policy DIR --baseline DIR [--db PATH] [--split S] [OPTIONS]\n"
		    "                [-- DPO-JUDGE-OPTIONS...]",
	.summary = "Compare a policy with its baseline on held-out prompts: win rate (judged by\n"
		   "dpo-judge, 95% Wilson interval), mean KL to the baseline (sampled log-ratio),\n"
		   "and exact-match accuracy of both with --task-command.",
	.footer = "After --, options for dpo-judge (e.g. --provider exec --command CMD); without\n"
		  "them the win rate is not measured. Both models sample with the same seeds,\n"
		  "from --seed, the prompt's index and the sample's index. Defaults may be set\n"
		  "in the config file's section [dpo-eval] ($DPO_CONFIG, else\n"
		  "$XDG_CONFIG_HOME/dpo/config).\n"
		  "\n"
		  "Exit status: 0 success, 1 failure, 2 usage error.\n",
	.opts = opts_table,
	.max_args = -1, /* dpo-judge's options, after -- */
};

struct prompt {
	int64_t id;     /* store id, 0 for --prompts */
	char *text;     /* plain prompt, or the conversation's messages as JSON */
	int chat;       /* text is a conversation */
	int32_t *ids;   /* encoded (train_gen_encode_prompt) */
	int n;
	const int32_t *eos; /* the ids that end its completions (owned by the encoder) */
	int n_eos;
};

struct sample {
	char *text;
	int32_t *ids;   /* generated ids, the EOS that ended the row appended */
	int n;
	int correct;    /* -1 unknown */
};

struct prompts {
	struct prompt *v;
	size_t n, cap;
	long limit;
};

static void prompts_push(struct prompts *ps, int64_t id, const char *text, int chat)
{
	if (ps->n == ps->cap) {
		ps->cap = ps->cap ? 2 * ps->cap : 64;
		ps->v = xreallocarray(ps->v, ps->cap, sizeof *ps->v);
	}
	ps->v[ps->n++] = (struct prompt){.id = id, .text = xstrdup(text), .chat = chat};
}

static int collect_cb(void *ud, const store_prompt *p)
{
	struct prompts *ps = ud;
	if (p->text)
		prompts_push(ps, p->id, p->text, 0);
	else
		prompts_push(ps, p->id, p->messages_json, 1);
	return 0;
}

static void read_prompt_file(const char *path, struct prompts *ps)
{
	FILE *f = fopen(path, "r");
	if (!f)
		util_die("%s: %s", path, strerror(errno));
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	long lineno = 0;
	while ((len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (ps->limit > 0 && (long)ps->n >= ps->limit)
			break;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0)
			continue;
		cJSON *o = cJSON_ParseWithLength(line, (size_t)len);
		const cJSON *p = o ? cJSON_GetObjectItemCaseSensitive(o, "prompt") : NULL;
		if (!o || !cJSON_IsObject(o))
			util_die("%s:%ld: not a JSON object", path, lineno);
		if (!p)
			p = cJSON_GetObjectItemCaseSensitive(o, "messages");
		if (cJSON_IsString(p)) {
			prompts_push(ps, 0, p->valuestring, 0);
		} else if (cJSON_IsArray(p)) {
			char *js = cJSON_PrintUnformatted(p);
			prompts_push(ps, 0, js, 1);
			free(js);
		} else {
			util_die("%s:%ld: field \"prompt\" must be a string or a list of messages", path,
				 lineno);
		}
		cJSON_Delete(o);
	}
	free(line);
	fclose(f);
}

/* Sample K completions of every prompt from model m (seeds shared between
 * the models: seed, prompt index, sample index; each prompt ends at its own
 * EOS set; a text that met a stop string of gc is cut before it). */
static void sample_all(const train_model *m, train_tokenizer *tok, struct prompts *ps, int K,
		       const train_gen_opts *o, const train_gen_cli *gc, struct sample *out,
		       const char *what, int quiet)
{
	uint64_t seed = (uint64_t)gc->seed;
	util_progress *pr = quiet ? NULL : util_progress_new(what, (double)ps->n, "prompts");
	const int32_t **pp = xmalloc(sizeof(*pp) * K);
	int *pl = xmalloc(sizeof(int) * K);
	uint64_t *seeds = xmalloc(sizeof(uint64_t) * K);
	train_gen_result *res = xcalloc(K, sizeof *res);
	train_gen_opts go = *o;
	for (size_t i = 0; i < ps->n; i++) {
		struct prompt *p = &ps->v[i];
		go.eos = p->eos;
		go.n_eos = p->n_eos;
		for (int k = 0; k < K; k++) {
			pp[k] = p->ids;
			pl[k] = p->n;
			seeds[k] = seed * 0x9E3779B97F4A7C15ull + (uint64_t)i * 1000003u + (uint64_t)k;
		}
		char *err = NULL;
		if (train_generate(m, K, pp, pl, seeds, &go, res, &err))
			util_die("%s: prompt %zu: %s", what, i + 1, err);
		for (int k = 0; k < K; k++) {
			struct sample *s = &out[i * K + k];
			s->text = train_tokenizer_decode(tok, res[k].ids, (size_t)res[k].n);
			if (res[k].finish == TRAIN_FINISH_STOP)
				train_gen_cli_cut(gc, s->text);
			s->ids = xmalloc(sizeof(int32_t) * (res[k].n + 1));
			memcpy(s->ids, res[k].ids, sizeof(int32_t) * res[k].n);
			s->n = res[k].n;
			if (res[k].finish == TRAIN_FINISH_EOS)
				s->ids[s->n++] = res[k].end_id;
			s->correct = -1;
			free(res[k].ids);
			res[k].ids = NULL;
		}
		if (pr)
			util_progress_update(pr, (double)(i + 1), NULL);
	}
	if (pr)
		util_progress_finish(pr);
	util_progress_free(pr);
	free(res);
	free(seeds);
	free(pl);
	free(pp);
}

/* Summed log-prob of the completion ids given the prompt under m. */
static double seq_logp(const train_model *m, const struct prompt *p, const struct sample *s)
{
	if (s->n == 0)
		return 0;
	int T = p->n + s->n;
	int32_t *ids = xmalloc(sizeof(int32_t) * T);
	float *lp = xmalloc(sizeof(float) * T);
	memcpy(ids, p->ids, sizeof(int32_t) * p->n);
	memcpy(ids + p->n, s->ids, sizeof(int32_t) * s->n);
	char *err = NULL;
	if (train_model_logprobs(m, ids, T, lp, &err))
		util_die("log-probs: %s", err);
	double sum = 0;
	for (int t = p->n - 1; t < T - 1; t++)
		sum += lp[t];
	free(lp);
	free(ids);
	return sum;
}

/* Run the checker over every sample; fills s->correct. */
static void run_checker(const char *cmd, struct prompts *ps, struct sample *smp, size_t nsmp, int K)
{
	char tmpl[] = "/tmp/dpo-eval-XXXXXX";
	int fd = mkstemp(tmpl);
	if (fd < 0)
		util_die("temporary file: %s", strerror(errno));
	FILE *f = fdopen(fd, "w");
	util_buf b = UTIL_BUF_INIT;
	for (size_t i = 0; i < nsmp; i++) {
		util_buf_reset(&b);
		util_buf_adds(&b, "{\"prompt\":");
		const char *pt = ps->v[i / K].text;
		if (ps->v[i / K].chat)
			util_buf_adds(&b, pt); /* the conversation, as a JSON list of messages */
		else
			util_buf_add_json_string(&b, pt, strlen(pt));
		util_buf_adds(&b, ",\"response\":");
		util_buf_add_json_string(&b, smp[i].text, strlen(smp[i].text));
		util_buf_adds(&b, "}\n");
		fputs(util_buf_str(&b), f);
	}
	util_buf_free(&b);
	if (fclose(f))
		util_die("temporary file: %s", strerror(errno));
	char *full = xasprintf("(%s) < '%s'", cmd, tmpl);
	FILE *in = popen(full, "r");
	free(full);
	if (!in)
		util_die("--task-command: %s", strerror(errno));
	char *line = NULL;
	size_t cap = 0;
	size_t got = 0;
	while (getline(&line, &cap, in) >= 0) {
		if (got >= nsmp)
			break;
		char *e = line + strlen(line);
		while (e > line && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' '))
			*--e = '\0';
		if (!strcmp(line, "1") || !strcmp(line, "true"))
			smp[got].correct = 1;
		else if (!strcmp(line, "0") || !strcmp(line, "false"))
			smp[got].correct = 0;
		else {
			unlink(tmpl);
			util_die("--task-command: output line %zu: expected 1 or 0, got \"%.40s\"", got + 1,
				 line);
		}
		got++;
	}
	free(line);
	int st = pclose(in);
	unlink(tmpl);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		util_die("--task-command failed (status %d)", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	if (got != nsmp)
		util_die("--task-command: %zu output lines for %zu inputs", got, nsmp);
}

/* Locate dpo-judge: next to this program when argv0 has a directory part. */
static char *judge_path(const char *argv0)
{
	const char *slash = strrchr(argv0, '/');
	if (slash) {
		char *p = xasprintf("%.*s/dpo-judge", (int)(slash - argv0), argv0);
		if (access(p, X_OK) == 0)
			return p;
		free(p);
		/* a libtool-less build may put programs one folder up */
		p = xasprintf("%.*s/../dpo-judge", (int)(slash - argv0), argv0);
		if (access(p, X_OK) == 0)
			return p;
		free(p);
	}
	return xstrdup("dpo-judge");
}

static int run_judge(const char *prog, const char *db, const char *split, int nargs, char **args,
		     int quiet)
{
	int n = 0;
	char **av = xcalloc((size_t)nargs + 8, sizeof(char *));
	av[n++] = (char *)prog;
	av[n++] = "--db";
	av[n++] = (char *)db;
	av[n++] = "--split";
	av[n++] = (char *)split;
	if (quiet)
		av[n++] = "-q";
	for (int i = 0; i < nargs; i++)
		av[n++] = args[i];
	av[n] = NULL;
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		util_die("fork: %s", strerror(errno));
	if (pid == 0) {
		/* the judge's summary must not mix with our stdout */
		dup2(2, 1);
		execvp(prog, av);
		int err = errno;
		util_buf e = UTIL_BUF_INIT;
		fprintf(stderr, "dpo-eval: %s: %s\n", util_term_escape(prog, &e), strerror(err));
		util_buf_free(&e);
		_exit(127);
	}
	free(av);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			util_die("waitpid: %s", strerror(errno));
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

struct verdict_ctx {
	int64_t pol, base;
	int result; /* 1 policy wins, -1 baseline wins, 0 tie, -2 none */
};

static int verdict_cb(void *ud, const store_comparison *c)
{
	struct verdict_ctx *v = ud;
	if (!c->annotator_kind || strcmp(c->annotator_kind, "judge"))
		return 0;
	int64_t lo = v->pol < v->base ? v->pol : v->base;
	int64_t hi = v->pol < v->base ? v->base : v->pol;
	if (c->completion_a != lo || c->completion_b != hi)
		return 0;
	int64_t winner = 0;
	if (!strcmp(c->verdict, "a"))
		winner = c->completion_a;
	else if (!strcmp(c->verdict, "b"))
		winner = c->completion_b;
	else if (!strcmp(c->verdict, "skip"))
		return 0;
	v->result = winner == 0 ? 0 : winner == v->pol ? 1 : -1;
	return 0; /* the last judge comparison wins */
}

static void wilson(double p, double n, double *lo, double *hi)
{
	const double z = 1.959963984540054;
	if (n <= 0) {
		*lo = NAN;
		*hi = NAN;
		return;
	}
	double d = 1 + z * z / n;
	double c = (p + z * z / (2 * n)) / d;
	double h = z * sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d;
	*lo = c - h < 0 ? 0 : c - h;
	*hi = c + h > 1 ? 1 : c + h;
}

/* Best-of-N sampling from the baseline, the usual yardstick next to a
 * trained policy (the DPO paper's reward-vs-KL frontier): of N samples keep
 * a right one when there is one. For each prompt with c right of K
 * samples, its accuracy is the unbiased estimate 1 - C(K-c, N) / C(K, N);
 * its KL to the baseline, with p = c / K, is that of selecting by a 0/1
 * reward with ties broken at random: q log(q / p) + (1-p)^N log((1-p)^(N-1))
 * where q = 1 - (1-p)^N. Both averaged over prompts into acc and kl. */
static void best_of_n(const struct sample *smp, size_t nprompts, int K, int N, double *acc, double *kl)
{
	double a = 0, k = 0;
	for (size_t i = 0; i < nprompts; i++) {
		int c = 0;
		for (int j = 0; j < K; j++)
			c += smp[i * K + j].correct == 1;
		double miss = 1; /* C(K-c, N) / C(K, N) */
		for (int t = 0; t < N; t++)
			miss *= (double)(K - c - t) / (double)(K - t);
		if (miss < 0)
			miss = 0;
		a += 1 - miss;
		double p = (double)c / K, w = pow(1 - p, N), q = 1 - w;
		if (c > 0 && c < K)
			k += q * log(q / p) + w * (N - 1) * log(1 - p);
	}
	*acc = a / (double)nprompts;
	*kl = k / (double)nprompts;
}

/* The loss and beta a policy was trained with, from its dpo_run.json
 * (written by dpo-train); loss empty and beta NAN when unknown. */
static void policy_beta(const char *dir, char *loss, size_t losscap, double *beta)
{
	*beta = NAN;
	loss[0] = '\0';
	char *path = xasprintf("%s/dpo_run.json", dir);
	size_t len;
	char *text = util_read_file(path, &len);
	free(path);
	if (!text)
		return;
	cJSON *o = cJSON_ParseWithLength(text, len);
	const cJSON *a = o ? cJSON_GetObjectItemCaseSensitive(o, "arguments") : NULL;
	const cJSON *b = a ? cJSON_GetObjectItemCaseSensitive(a, "beta") : NULL;
	const cJSON *l = a ? cJSON_GetObjectItemCaseSensitive(a, "loss") : NULL;
	if (cJSON_IsString(l))
		snprintf(loss, losscap, "%s", l->valuestring);
	if (cJSON_IsNumber(b) && strcmp(loss, "sft"))
		*beta = b->valuedouble;
	cJSON_Delete(o);
	free(text);
}

static void json_num(util_buf *b, const char *name, double v)
{
	if (isfinite(v))
		util_buf_addf(b, ",\"%s\":%.6g", name, v);
	else
		util_buf_addf(b, ",\"%s\":null", name);
}

/* One dpo-eval run: what each phase makes for the next. */
struct eval {
	struct opts o;
	int njudge;            /* dpo-judge's options (after --) */
	char **judge_args;
	train_model *pm, *bm;  /* policy, baseline */
	train_tokenizer *tok;  /* the policy's (both share the vocabulary) */
	train_gen_encoder *enc;
	struct prompts ps;
	long max_new;          /* --max-new-tokens within every prompt's context */
	store *st;             /* NULL with --prompts */
	const char *dbpath;
	int64_t run_id;
	size_t ns;             /* samples per model: prompts x K */
	struct sample *psm, *bsm;
	/* the measures */
	double kl, kl_se, acc_p, acc_b, pbeta;
	char ploss[64];
	int bon_n[32], nbon;
	double bon_acc[32], bon_kl[32];
	long wins, losses, ties, unjudged;
	double wr, wlo, whi;
};

static void parse_options(struct eval *e, int argc, char **argv)
{
	struct opts *o = &e->o;
	util_cli_parse(&cli, o, argc, argv);
	if (!o->policy || !o->baseline)
		util_cli_usage_error(&cli, "--policy and --baseline are required");
	const char *bad = train_gen_cli_check(&o->gen);
	if (bad)
		util_cli_usage_error(&cli, "%s", bad);
	/* what follows "--" belongs to dpo-judge; other arguments are errors */
	e->njudge = cli.nargs;
	e->judge_args = cli.args;
	if (cli.nargs > 0 && cli.dashdash != 0)
		util_cli_usage_error(&cli, "unexpected argument '%s' (dpo-judge options go after --)", cli.args[0]);
	if (o->prompts && e->njudge > 0)
		util_cli_usage_error(&cli, "judging needs the store: drop --prompts or the dpo-judge options");
	train_set_threads(o->threads > 0 ? (int)o->threads : 0);
}

/* Both models and the policy's tokenizer; they must share the vocabulary. */
static void load_models(struct eval *e)
{
	const char *pdir = e->o.policy, *bdir = e->o.baseline;
	char *err = NULL;
	e->pm = train_lora_model_load_prec(pdir, e->o.gen.precision, &err); /* an adapter too */
	if (!e->pm)
		util_die("%s", err);
	e->bm = train_lora_model_load_prec(bdir, e->o.gen.precision, &err);
	if (!e->bm)
		util_die("%s", err);
	if (train_model_config(e->pm)->vocab != train_model_config(e->bm)->vocab)
		util_die("%s and %s have different vocabularies (%d and %d tokens)", pdir, bdir,
			 train_model_config(e->pm)->vocab, train_model_config(e->bm)->vocab);
	e->tok = train_tokenizer_load(pdir, &err);
	if (!e->tok)
		util_die("%s", err);
}

/* The prompts, from --prompts or the store's split, encoded as train/gen.h
 * does it with the policy's tokenizer and EOS ids for both models (the
 * chat template's BOS text included); --max-new-tokens shrinks to what
 * every prompt's context leaves. */
static void load_prompts(struct eval *e)
{
	const struct opts *o = &e->o;
	e->ps.limit = o->limit;
	if (o->prompts) {
		read_prompt_file(o->prompts, &e->ps);
	} else {
		e->dbpath = util_db_path(o->db);
		e->st = store_new();
		if (store_open_existing(e->st, e->dbpath))
			util_die("%s", store_errmsg(e->st));
		if (store_prompts_foreach(e->st, o->split, NULL, o->limit, collect_cb, &e->ps) < 0)
			util_die("%s: %s", e->dbpath, store_errmsg(e->st));
	}
	if (e->ps.n == 0)
		util_die("no prompts%s%s", o->prompts ? " in " : " in split ",
			 o->prompts ? o->prompts : o->split);
	char *err = NULL;
	e->enc = train_gen_encoder_new(e->pm, e->tok, o->chat_format, o->chat, &err);
	if (!e->enc)
		util_die("%s", err);
	train_gen_encoder_set_chat_vars(e->enc, o->gen.chat_vars.v, o->gen.chat_vars.n);
	const train_config *cfg = train_model_config(e->pm);
	e->max_new = o->gen.max_new;
	for (size_t i = 0; i < e->ps.n; i++) {
		struct prompt *p = &e->ps.v[i];
		train_gen_prompt gp;
		if (train_gen_encode_prompt(e->enc, p->chat ? NULL : p->text, p->chat ? p->text : NULL,
					    &gp, &err) ||
		    train_gen_prompt_fits(e->pm, gp.n, &err))
			util_die("prompt %zu: %s", i + 1, err);
		p->ids = gp.ids; /* the prompt owns them now */
		p->n = (int)gp.n;
		p->eos = gp.eos;
		p->n_eos = gp.n_eos;
		if (p->n + e->max_new > cfg->max_pos)
			e->max_new = cfg->max_pos - p->n; /* both models: same limit */
	}
}

/* K samples of every prompt from each model, with the same seeds. */
static void sample_both(struct eval *e)
{
	int K = (int)e->o.samples;
	e->o.gen.tok = e->tok; /* for --stop */
	train_gen_opts go = train_gen_cli_gen_opts(&e->o.gen, K);
	go.max_new = (int)e->max_new;
	e->ns = e->ps.n * (size_t)K;
	e->psm = xcalloc(e->ns, sizeof *e->psm);
	e->bsm = xcalloc(e->ns, sizeof *e->bsm);
	sample_all(e->pm, e->tok, &e->ps, K, &go, &e->o.gen, e->psm, "policy", e->o.quiet);
	sample_all(e->bm, e->tok, &e->ps, K, &go, &e->o.gen, e->bsm, "baseline", e->o.quiet);
}

/* KL(pi || pi_base) by the sampled log-ratio, accuracy through the
 * checker, best-of-N from the baseline's samples (N = 1, 2, 4, ... up to
 * K), and the loss and beta the policy was trained with. */
static void measure(struct eval *e)
{
	long K = e->o.samples;
	size_t ns = e->ns;
	double kl = 0, kl2 = 0;
	for (size_t i = 0; i < ns; i++) {
		struct prompt *p = &e->ps.v[i / K];
		double r = seq_logp(e->pm, p, &e->psm[i]) - seq_logp(e->bm, p, &e->psm[i]);
		kl += r;
		kl2 += r * r;
	}
	e->kl = kl / (double)ns;
	e->kl_se = ns > 1 ? sqrt(fmax(0, kl2 / ns - e->kl * e->kl) / (double)(ns - 1)) : NAN;
	e->acc_p = e->acc_b = NAN;
	e->nbon = 0;
	if (e->o.task) {
		run_checker(e->o.task, &e->ps, e->psm, ns, (int)K);
		run_checker(e->o.task, &e->ps, e->bsm, ns, (int)K);
		long cp = 0, cb = 0;
		for (size_t i = 0; i < ns; i++) {
			cp += e->psm[i].correct;
			cb += e->bsm[i].correct;
		}
		e->acc_p = (double)cp / (double)ns;
		e->acc_b = (double)cb / (double)ns;
		for (long n = 1; n <= K && e->nbon < 31; n *= 2)
			e->bon_n[e->nbon++] = (int)n;
		if (e->bon_n[e->nbon - 1] != K)
			e->bon_n[e->nbon++] = (int)K;
		for (int b = 0; b < e->nbon; b++)
			best_of_n(e->bsm, e->ps.n, (int)K, e->bon_n[b], &e->bon_acc[b], &e->bon_kl[b]);
	}
	policy_beta(e->o.policy, e->ploss, sizeof e->ploss, &e->pbeta);
}

/* Start the store's "eval" run: the options with the policy's loss. */
static void start_run(struct eval *e, int argc, char **argv)
{
	util_buf extra = UTIL_BUF_INIT, params = UTIL_BUF_INIT;
	if (e->ploss[0]) {
		util_buf_adds(&extra, "\"policy_loss\": ");
		util_buf_add_json_string(&extra, e->ploss, strlen(e->ploss));
	}
	train_gen_run_params(&cli, util_buf_str(&extra), &params);
	if (store_run_start(e->st, "eval", argc, argv, util_buf_str(&params), &e->run_id))
		util_die("%s: %s", e->dbpath, store_errmsg(e->st));
	util_buf_free(&extra);
	util_buf_free(&params);
}

/* Store the first sample of each model as completions of the generators
 * "dpo-eval:policy:DIR" and "dpo-eval:baseline:DIR" (each model's
 * fingerprint with the sampling parameters); their ids into cpol, cbas. */
static void store_pairs(struct eval *e, int64_t *cpol, int64_t *cbas)
{
	long K = e->o.samples;
	int64_t gp, gb;
	char *np = xasprintf("dpo-eval:policy:%s", e->o.policy);
	char *nb = xasprintf("dpo-eval:baseline:%s", e->o.baseline);
	train_gen_params gprm = train_gen_cli_params(&e->o.gen, e->o.chat, e->o.chat_format);
	gprm.max_new = e->max_new;
	util_buf gj = UTIL_BUF_INIT;
	train_gen_params_json(&gj, &gprm);
	store_generator g1 = {"model", np, train_model_fingerprint(e->pm), util_buf_str(&gj)};
	store_generator g2 = {"model", nb, train_model_fingerprint(e->bm), util_buf_str(&gj)};
	if (store_generator_id(e->st, &g1, &gp) || store_generator_id(e->st, &g2, &gb))
		util_die("%s: %s", e->dbpath, store_errmsg(e->st));
	util_buf_free(&gj);
	free(np);
	free(nb);
	if (store_begin(e->st))
		util_die("%s: %s", e->dbpath, store_errmsg(e->st));
	for (size_t i = 0; i < e->ps.n; i++)
		if (store_completion_add(e->st, e->ps.v[i].id, e->psm[i * K].text, gp, &cpol[i], NULL) ||
		    store_completion_add(e->st, e->ps.v[i].id, e->bsm[i * K].text, gb, &cbas[i], NULL))
			util_die("%s: %s", e->dbpath, store_errmsg(e->st));
	if (store_commit(e->st))
		util_die("%s: %s", e->dbpath, store_errmsg(e->st));
}

/* The win rate: dpo-judge labels each prompt's pair in the store, then the
 * judge's verdicts are counted (ties half) with a 95% Wilson interval. */
static void judge(struct eval *e, const char *argv0)
{
	int64_t *cpol = xcalloc(e->ps.n, sizeof(int64_t)), *cbas = xcalloc(e->ps.n, sizeof(int64_t));
	store_pairs(e, cpol, cbas);
	char *jp = e->o.judge ? xstrdup(e->o.judge) : judge_path(argv0);
	int jrc = run_judge(jp, e->dbpath, e->o.split, e->njudge, e->judge_args, e->o.quiet);
	if (jrc != 0)
		util_die("%s exited with status %d", jp, jrc);
	free(jp);
	for (size_t i = 0; i < e->ps.n; i++) {
		struct verdict_ctx v = {cpol[i], cbas[i], -2};
		if (cpol[i] == cbas[i])
			v.result = 0; /* the same text: a tie without asking */
		else if (store_comparisons_foreach(e->st, e->ps.v[i].id, verdict_cb, &v) < 0)
			util_die("%s: %s", e->dbpath, store_errmsg(e->st));
		if (v.result == 1)
			e->wins++;
		else if (v.result == -1)
			e->losses++;
		else if (v.result == 0)
			e->ties++;
		else
			e->unjudged++;
	}
	free(cpol);
	free(cbas);
	long n = e->wins + e->losses + e->ties;
	if (n > 0) {
		e->wr = (e->wins + 0.5 * e->ties) / (double)n;
		wilson(e->wr, (double)n, &e->wlo, &e->whi);
	}
}

/* The run's metrics (those measured) and best-of-N curve. */
static void record_metrics(struct eval *e)
{
	double mv[STORE_METRIC_NEVAL] = {
		[STORE_METRIC_EVAL_WIN_RATE] = e->wr, [STORE_METRIC_EVAL_WIN_RATE_LO] = e->wlo,
		[STORE_METRIC_EVAL_WIN_RATE_HI] = e->whi, [STORE_METRIC_EVAL_KL] = e->kl,
		[STORE_METRIC_EVAL_ACCURACY_POLICY] = e->acc_p,
		[STORE_METRIC_EVAL_ACCURACY_BASELINE] = e->acc_b, [STORE_METRIC_EVAL_BETA] = e->pbeta,
	};
	for (int i = 0; i < STORE_METRIC_NEVAL; i++)
		if (isfinite(mv[i]) && store_metric_add(e->st, e->run_id, -1, store_metric_eval[i], mv[i]))
			util_die("%s: %s", e->dbpath, store_errmsg(e->st));
	for (int b = 0; b < e->nbon; b++)
		if (store_metric_add(e->st, e->run_id, e->bon_n[b], STORE_METRIC_BON_ACCURACY, e->bon_acc[b]) ||
		    store_metric_add(e->st, e->run_id, e->bon_n[b], STORE_METRIC_BON_KL, e->bon_kl[b]))
			util_die("%s: %s", e->dbpath, store_errmsg(e->st));
}

static void print_json(const struct eval *e, util_buf *out)
{
	util_buf_addf(out, "{\"prompts\":%zu,\"samples\":%ld", e->ps.n, e->o.samples);
	json_num(out, "kl", e->kl);
	json_num(out, "kl_stderr", e->kl_se);
	json_num(out, "accuracy_policy", e->acc_p);
	json_num(out, "accuracy_baseline", e->acc_b);
	json_num(out, "win_rate", e->wr);
	json_num(out, "win_rate_ci_low", e->wlo);
	json_num(out, "win_rate_ci_high", e->whi);
	util_buf_addf(out, ",\"wins\":%ld,\"losses\":%ld,\"ties\":%ld,\"unjudged\":%ld", e->wins,
		      e->losses, e->ties, e->unjudged);
	json_num(out, "policy_beta", e->pbeta);
	util_buf_adds(out, ",\"best_of_n\":[");
	for (int b = 0; b < e->nbon; b++) {
		util_buf_addf(out, "%s{\"n\":%d", b ? "," : "", e->bon_n[b]);
		json_num(out, "accuracy", e->bon_acc[b]);
		json_num(out, "kl", e->bon_kl[b]);
		util_buf_addc(out, '}');
	}
	util_buf_addc(out, ']');
	util_buf_addf(out, ",\"run_id\":%lld}\n", (long long)e->run_id);
}

static void print_text(const struct eval *e, util_buf *out)
{
	util_buf_addf(out, "prompts:           %zu (%ld samples each)\n", e->ps.n, e->o.samples);
	if (e->o.task)
		util_buf_addf(out, "accuracy:          baseline %.1f%%, policy %.1f%% (%+.1f points)\n",
			      100 * e->acc_b, 100 * e->acc_p, 100 * (e->acc_p - e->acc_b));
	util_buf_addf(out, "KL to baseline:    %.4f nats (+- %.4f)\n", e->kl, e->kl_se);
	for (int b = 1; b < e->nbon; b++)
		util_buf_addf(out, "best-of-%-3d base: accuracy %.1f%% at KL %.4f nats\n", e->bon_n[b],
			      100 * e->bon_acc[b], e->bon_kl[b]);
	if (isfinite(e->wr))
		util_buf_addf(out, "win rate:          %.1f%% [95%% CI %.1f%%, %.1f%%] "
			      "(%ld wins, %ld losses, %ld ties%s)\n",
			      100 * e->wr, 100 * e->wlo, 100 * e->whi, e->wins, e->losses, e->ties,
			      e->unjudged ? ", some unjudged" : "");
	else if (e->njudge > 0)
		util_buf_adds(out, "win rate:          no pair was judged\n");
}

static void print_results(const struct eval *e)
{
	util_buf out = UTIL_BUF_INIT;
	if (e->o.json)
		print_json(e, &out);
	else
		print_text(e, &out);
	fputs(util_buf_str(&out), stdout);
	util_buf_free(&out);
}

static void eval_free(struct eval *e)
{
	for (size_t i = 0; i < e->ns; i++) {
		free(e->psm[i].text);
		free(e->psm[i].ids);
		free(e->bsm[i].text);
		free(e->bsm[i].ids);
	}
	free(e->psm);
	free(e->bsm);
	for (size_t i = 0; i < e->ps.n; i++) {
		free(e->ps.v[i].text);
		free(e->ps.v[i].ids);
	}
	free(e->ps.v);
	store_free(e->st);
	train_gen_encoder_free(e->enc);
	train_tokenizer_free(e->tok);
	train_model_free(e->pm);
	train_model_free(e->bm);
	util_cli_free(&cli);
}

int main(int argc, char **argv)
{
	struct eval e = {.wr = NAN, .wlo = NAN, .whi = NAN};
	util_set_progname("dpo-eval");
	parse_options(&e, argc, argv);
	load_models(&e);
	load_prompts(&e);
	sample_both(&e);
	measure(&e);
	if (e.st) {
		start_run(&e, argc, argv);
		if (e.njudge > 0)
			judge(&e, argv[0]);
		record_metrics(&e);
	}
	print_results(&e);
	if (e.st && store_run_end(e.st, e.run_id, "ok", NULL))
		util_warn("%s: %s", e.dbpath, store_errmsg(e.st));
	eval_free(&e);
	return fflush(stdout) ? 1 : 0;
}

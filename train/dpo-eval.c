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
#include <getopt.h>
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
#include "train/layers.h"
#include "train/model.h"
#include "train/sample.h"
#include "train/tokenizer.h"
#include "util/buf.h"
#include "util/cli.h"
#include "util/file.h"
#include "util/lineread.h"
#include "util/progress.h"
#include "util/xmalloc.h"

static void usage(void)
{
	printf("Usage: dpo-eval --policy DIR --baseline DIR [--db PATH] [--split S] [OPTIONS]\n"
	       "                [-- DPO-JUDGE-OPTIONS...]\n"
	       "Compare a policy with its baseline on held-out prompts: win rate (judged by\n"
	       "dpo-judge, 95%% Wilson interval), mean KL to the baseline (sampled log-ratio),\n"
	       "and exact-match accuracy of both with --task-command.\n"
	       "\n"
	       "Prompts:\n"
	       "  --db PATH            database (default $DPO_DB, else ./dpo.db)\n"
	       "  --split S            prompts of this split of the store (default test)\n"
	       "  --prompts FILE       JSON Lines {\"prompt\": TEXT or messages} instead of the\n"
	       "                       store (no judging: the judge works on the store)\n"
	       "  --limit N            only the first N prompts\n"
	       "Models and sampling:\n"
	       "  --policy DIR         the trained model\n"
	       "  --baseline DIR       the model it started from (the DPO reference)\n"
	       "  --samples K          samples per prompt and model (default 1)\n"
	       "  --greedy | --temperature T (default 1) | --top-k K | --top-p P\n"
	       "  --max-new-tokens N   (default 128)\n"
	       "  --chat               render plain-text prompts as a user turn too\n"
	       "                       (conversations always use the chat template)\n"
	       "  --chat-format NAME   template family (%s)\n"
	       "  --seed S             base seed (default 0); both models use the same seeds\n"
	       "  --threads N          compute threads (default: all cores)\n"
	       "Scoring:\n"
	       "  --task-command CMD   exact-match checker (sh -c): JSON Lines {\"prompt\",\n"
	       "                       \"response\"} on stdin, one line 1 or 0 per input on stdout\n"
	       "  --judge PROGRAM      the dpo-judge program (default: next to dpo-eval, else PATH)\n"
	       "  -- OPTIONS...        options for dpo-judge (e.g. --provider exec --command CMD);\n"
	       "                       without them the win rate is not measured\n"
	       "Output:\n"
	       "  --json               print the results as one JSON object\n"
	       "  -q, --quiet          no progress output\n"
	       "  -h, --help           this text      --version   print the version\n"
	       "Exit status: 0 success, 1 failure, 2 usage error.\n",
	       train_chat_format_names());
}

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
 * EOS set). */
static void sample_all(const train_model *m, train_tokenizer *tok, struct prompts *ps, int K,
		       const train_gen_opts *o, uint64_t seed, struct sample *out, const char *what,
		       int quiet)
{
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
		fprintf(stderr, "dpo-eval: %s: %s\n", prog, strerror(errno));
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

enum { O_POLICY = 256, O_BASELINE, O_DB, O_SPLIT, O_PROMPTS, O_LIMIT, O_SAMPLES, O_GREEDY,
       O_TEMP, O_TOPK, O_TOPP, O_MAXNEW, O_SEED, O_THREADS, O_TASK, O_JUDGE, O_JSON, O_VERSION,
       O_CHAT, O_FMT };

int main(int argc, char **argv)
{
	util_set_progname("dpo-eval");
	static const struct option opts[] = {
		{"policy", required_argument, NULL, O_POLICY},
		{"baseline", required_argument, NULL, O_BASELINE},
		{"db", required_argument, NULL, O_DB},
		{"split", required_argument, NULL, O_SPLIT},
		{"prompts", required_argument, NULL, O_PROMPTS},
		{"limit", required_argument, NULL, O_LIMIT},
		{"samples", required_argument, NULL, O_SAMPLES},
		{"greedy", no_argument, NULL, O_GREEDY},
		{"temperature", required_argument, NULL, O_TEMP},
		{"top-k", required_argument, NULL, O_TOPK},
		{"top-p", required_argument, NULL, O_TOPP},
		{"max-new-tokens", required_argument, NULL, O_MAXNEW},
		{"seed", required_argument, NULL, O_SEED},
		{"threads", required_argument, NULL, O_THREADS},
		{"task-command", required_argument, NULL, O_TASK},
		{"chat", no_argument, NULL, O_CHAT},
		{"chat-format", required_argument, NULL, O_FMT},
		{"judge", required_argument, NULL, O_JUDGE},
		{"json", no_argument, NULL, O_JSON},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, O_VERSION},
		{NULL, 0, NULL, 0},
	};
	const char *pdir = NULL, *bdir = NULL, *dbopt = NULL, *split = "test", *pfile = NULL;
	const char *task = NULL, *judgeprog = NULL, *chatfmt = NULL;
	int chat_plain = 0;
	long limit = 0, K = 1, maxnew = 128, seed = 0, threads = 0, topk = 0;
	int json = 0, quiet = 0;
	train_sampling s;
	train_sampling_default(&s);
	int c;
	while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		switch (c) {
		case O_POLICY: pdir = optarg; break;
		case O_BASELINE: bdir = optarg; break;
		case O_DB: dbopt = optarg; break;
		case O_SPLIT: split = optarg; break;
		case O_PROMPTS: pfile = optarg; break;
		case O_LIMIT: util_parse_long("--limit", optarg, &limit); break;
		case O_SAMPLES: util_parse_long("--samples", optarg, &K); break;
		case O_GREEDY: s.greedy = 1; break;
		case O_TEMP: util_parse_double("--temperature", optarg, &s.temperature); break;
		case O_TOPK: util_parse_long("--top-k", optarg, &topk); break;
		case O_TOPP: util_parse_double("--top-p", optarg, &s.top_p); break;
		case O_MAXNEW: util_parse_long("--max-new-tokens", optarg, &maxnew); break;
		case O_SEED: util_parse_long("--seed", optarg, &seed); break;
		case O_THREADS: util_parse_long("--threads", optarg, &threads); break;
		case O_TASK: task = optarg; break;
		case O_CHAT: chat_plain = 1; break;
		case O_FMT: chatfmt = optarg; break;
		case O_JUDGE: judgeprog = optarg; break;
		case O_JSON: json = 1; break;
		case 'q': quiet = 1; break;
		case 'h': usage(); return 0;
		case O_VERSION: util_print_version(); return 0;
		default: util_usage_error("try --help");
		}
	}
	/* getopt_long stops at "--": what follows belongs to dpo-judge */
	int nj = argc - optind;
	char **jargs = argv + optind;
	if (!pdir || !bdir)
		util_usage_error("--policy and --baseline are required");
	if (K < 1 || K > 64)
		util_usage_error("--samples must be in 1..64");
	if (limit < 0)
		util_usage_error("--limit must not be negative");
	if (maxnew < 1 || maxnew > 100000)
		util_usage_error("--max-new-tokens must be at least 1");
	if (topk < 0)
		util_usage_error("--top-k must not be negative");
	s.top_k = (int)topk;
	const char *bad = train_sampling_check(&s);
	if (bad)
		util_usage_error("%s", bad);
	if (pfile && nj > 0)
		util_usage_error("judging needs the store: drop --prompts or the dpo-judge options");
	if (nj > 0 && optind > 0 && strcmp(argv[optind - 1], "--"))
		util_usage_error("unexpected argument '%s' (dpo-judge options go after --)", jargs[0]);
	train_set_threads(threads > 0 && threads < 4096 ? (int)threads : 0);

	/* models and tokenizer (the policy's; both must share the vocabulary) */
	char *err = NULL;
	train_model *pm = train_model_load(pdir, &err);
	if (!pm)
		util_die("%s", err);
	train_model *bm = train_model_load(bdir, &err);
	if (!bm)
		util_die("%s", err);
	if (train_model_config(pm)->vocab != train_model_config(bm)->vocab)
		util_die("%s and %s have different vocabularies (%d and %d tokens)", pdir, bdir,
			 train_model_config(pm)->vocab, train_model_config(bm)->vocab);
	train_tokenizer *tok = train_tokenizer_load(pdir, &err);
	if (!tok)
		util_die("%s", err);

	/* prompts */
	struct prompts ps = {.limit = limit};
	store *st = NULL;
	const char *dbpath = NULL;
	if (pfile) {
		read_prompt_file(pfile, &ps);
	} else {
		dbpath = util_db_path(dbopt);
		st = store_new();
		if (store_open(st, dbpath))
			util_die("%s", store_errmsg(st));
		if (store_prompts_foreach(st, split, NULL, limit, collect_cb, &ps) < 0)
			util_die("%s: %s", dbpath, store_errmsg(st));
	}
	if (ps.n == 0)
		util_die("no prompts%s%s", pfile ? " in " : " in split ", pfile ? pfile : split);
	const train_config *cfg = train_model_config(pm);
	/* prompts as train/gen.h encodes them, with the policy's tokenizer and
	 * EOS ids for both models (the chat template's BOS text included) */
	train_gen_encoder *enc = train_gen_encoder_new(pm, tok, chatfmt, chat_plain, &err);
	if (!enc) {
		train_chat_format f;
		if (chatfmt && train_chat_format_parse(chatfmt, &f))
			util_usage_error("%s", err);
		util_die("%s", err);
	}
	for (size_t i = 0; i < ps.n; i++) {
		struct prompt *p = &ps.v[i];
		train_gen_prompt gp;
		if (train_gen_encode_prompt(enc, p->chat ? NULL : p->text, p->chat ? p->text : NULL,
					    &gp, &err) ||
		    train_gen_prompt_fits(pm, gp.n, &err))
			util_die("prompt %zu: %s", i + 1, err);
		p->ids = gp.ids; /* the prompt owns them now */
		p->n = (int)gp.n;
		p->eos = gp.eos;
		p->n_eos = gp.n_eos;
		if (p->n + maxnew > cfg->max_pos)
			maxnew = cfg->max_pos - p->n; /* both models: same limit */
	}

	train_gen_opts go = {.sampling = s, .max_new = (int)maxnew, .batch = (int)K};
	size_t ns = ps.n * (size_t)K;
	struct sample *psm = xcalloc(ns, sizeof *psm), *bsm = xcalloc(ns, sizeof *bsm);
	sample_all(pm, tok, &ps, (int)K, &go, (uint64_t)seed, psm, "policy", quiet);
	sample_all(bm, tok, &ps, (int)K, &go, (uint64_t)seed, bsm, "baseline", quiet);

	/* KL(pi || pi_base) by the sampled log-ratio */
	double kl = 0, kl2 = 0;
	for (size_t i = 0; i < ns; i++) {
		struct prompt *p = &ps.v[i / K];
		double r = seq_logp(pm, p, &psm[i]) - seq_logp(bm, p, &psm[i]);
		kl += r;
		kl2 += r * r;
	}
	kl /= (double)ns;
	double kl_se = ns > 1 ? sqrt(fmax(0, kl2 / ns - kl * kl) / (double)(ns - 1)) : NAN;

	/* accuracy */
	double acc_p = NAN, acc_b = NAN;
	if (task) {
		run_checker(task, &ps, psm, ns, (int)K);
		run_checker(task, &ps, bsm, ns, (int)K);
		long cp = 0, cb = 0;
		for (size_t i = 0; i < ns; i++) {
			cp += psm[i].correct;
			cb += bsm[i].correct;
		}
		acc_p = (double)cp / (double)ns;
		acc_b = (double)cb / (double)ns;
	}
	/* best-of-N from the baseline's samples: N = 1, 2, 4, ... up to K */
	int bon_n[32], nbon = 0;
	double bon_acc[32], bon_kl[32];
	if (task) {
		for (long n = 1; n <= K && nbon < 31; n *= 2)
			bon_n[nbon++] = (int)n;
		if (bon_n[nbon - 1] != K)
			bon_n[nbon++] = (int)K;
		for (int b = 0; b < nbon; b++)
			best_of_n(bsm, ps.n, (int)K, bon_n[b], &bon_acc[b], &bon_kl[b]);
	}
	char ploss[64];
	double pbeta;
	policy_beta(pdir, ploss, sizeof ploss, &pbeta);

	/* win rate through the judge */
	long wins = 0, losses = 0, ties = 0, unjudged = 0;
	double wr = NAN, wlo = NAN, whi = NAN;
	int64_t run_id = 0;
	if (st) {
		util_buf prm = UTIL_BUF_INIT;
		util_buf_adds(&prm, "{\"policy\":");
		util_buf_add_json_string(&prm, pdir, strlen(pdir));
		util_buf_adds(&prm, ",\"baseline\":");
		util_buf_add_json_string(&prm, bdir, strlen(bdir));
		util_buf_addf(&prm, ",\"samples\":%ld,\"seed\":%ld", K, seed);
		if (ploss[0]) {
			util_buf_adds(&prm, ",\"policy_loss\":");
			util_buf_add_json_string(&prm, ploss, strlen(ploss));
		}
		util_buf_addc(&prm, '}');
		if (store_run_start(st, "eval", argc, argv, util_buf_str(&prm), &run_id))
			util_die("%s: %s", dbpath, store_errmsg(st));
		util_buf_free(&prm);
	}
	if (st && nj > 0) {
		int64_t gp, gb;
		char *np = xasprintf("dpo-eval:policy:%s", pdir);
		char *nb = xasprintf("dpo-eval:baseline:%s", bdir);
		/* each model's fingerprint with the sampling parameters */
		train_gen_params gprm = {.sampling = s, .seed = seed, .max_new = maxnew,
					 .chat_plain = chat_plain, .chat_format = chatfmt};
		util_buf gj = UTIL_BUF_INIT;
		train_gen_params_json(&gj, &gprm);
		store_generator g1 = {"model", np, train_model_fingerprint(pm), util_buf_str(&gj)};
		store_generator g2 = {"model", nb, train_model_fingerprint(bm), util_buf_str(&gj)};
		if (store_generator_id(st, &g1, &gp) || store_generator_id(st, &g2, &gb))
			util_die("%s: %s", dbpath, store_errmsg(st));
		util_buf_free(&gj);
		free(np);
		free(nb);
		int64_t *cpol = xcalloc(ps.n, sizeof(int64_t)), *cbas = xcalloc(ps.n, sizeof(int64_t));
		if (store_begin(st))
			util_die("%s: %s", dbpath, store_errmsg(st));
		for (size_t i = 0; i < ps.n; i++)
			if (store_completion_add(st, ps.v[i].id, psm[i * K].text, gp, &cpol[i], NULL) ||
			    store_completion_add(st, ps.v[i].id, bsm[i * K].text, gb, &cbas[i], NULL))
				util_die("%s: %s", dbpath, store_errmsg(st));
		if (store_commit(st))
			util_die("%s: %s", dbpath, store_errmsg(st));
		char *jp = judgeprog ? xstrdup(judgeprog) : judge_path(argv[0]);
		int jrc = run_judge(jp, dbpath, split, nj, jargs, quiet);
		if (jrc != 0)
			util_die("%s exited with status %d", jp, jrc);
		free(jp);
		for (size_t i = 0; i < ps.n; i++) {
			struct verdict_ctx v = {cpol[i], cbas[i], -2};
			if (cpol[i] == cbas[i])
				v.result = 0; /* the same text: a tie without asking */
			else if (store_comparisons_foreach(st, ps.v[i].id, verdict_cb, &v) < 0)
				util_die("%s: %s", dbpath, store_errmsg(st));
			if (v.result == 1)
				wins++;
			else if (v.result == -1)
				losses++;
			else if (v.result == 0)
				ties++;
			else
				unjudged++;
		}
		free(cpol);
		free(cbas);
		long nj_ = wins + losses + ties;
		if (nj_ > 0) {
			wr = (wins + 0.5 * ties) / (double)nj_;
			wilson(wr, (double)nj_, &wlo, &whi);
		}
	}
	if (st) {
		double mv[STORE_METRIC_NEVAL] = {
			[STORE_METRIC_EVAL_WIN_RATE] = wr, [STORE_METRIC_EVAL_WIN_RATE_LO] = wlo,
			[STORE_METRIC_EVAL_WIN_RATE_HI] = whi, [STORE_METRIC_EVAL_KL] = kl,
			[STORE_METRIC_EVAL_ACCURACY_POLICY] = acc_p,
			[STORE_METRIC_EVAL_ACCURACY_BASELINE] = acc_b, [STORE_METRIC_EVAL_BETA] = pbeta,
		};
		for (int i = 0; i < STORE_METRIC_NEVAL; i++)
			if (isfinite(mv[i]) && store_metric_add(st, run_id, -1, store_metric_eval[i], mv[i]))
				util_die("%s: %s", dbpath, store_errmsg(st));
		for (int b = 0; b < nbon; b++)
			if (store_metric_add(st, run_id, bon_n[b], STORE_METRIC_BON_ACCURACY, bon_acc[b]) ||
			    store_metric_add(st, run_id, bon_n[b], STORE_METRIC_BON_KL, bon_kl[b]))
				util_die("%s: %s", dbpath, store_errmsg(st));
	}

	util_buf out = UTIL_BUF_INIT;
	if (json) {
		util_buf_addf(&out, "{\"prompts\":%zu,\"samples\":%ld", ps.n, K);
		json_num(&out, "kl", kl);
		json_num(&out, "kl_stderr", kl_se);
		json_num(&out, "accuracy_policy", acc_p);
		json_num(&out, "accuracy_baseline", acc_b);
		json_num(&out, "win_rate", wr);
		json_num(&out, "win_rate_ci_low", wlo);
		json_num(&out, "win_rate_ci_high", whi);
		util_buf_addf(&out, ",\"wins\":%ld,\"losses\":%ld,\"ties\":%ld,\"unjudged\":%ld", wins,
			      losses, ties, unjudged);
		json_num(&out, "policy_beta", pbeta);
		util_buf_adds(&out, ",\"best_of_n\":[");
		for (int b = 0; b < nbon; b++) {
			util_buf_addf(&out, "%s{\"n\":%d", b ? "," : "", bon_n[b]);
			json_num(&out, "accuracy", bon_acc[b]);
			json_num(&out, "kl", bon_kl[b]);
			util_buf_addc(&out, '}');
		}
		util_buf_addc(&out, ']');
		util_buf_addf(&out, ",\"run_id\":%lld}\n", (long long)run_id);
	} else {
		util_buf_addf(&out, "prompts:           %zu (%ld samples each)\n", ps.n, K);
		if (task)
			util_buf_addf(&out, "accuracy:          baseline %.1f%%, policy %.1f%% (%+.1f points)\n",
				      100 * acc_b, 100 * acc_p, 100 * (acc_p - acc_b));
		util_buf_addf(&out, "KL to baseline:    %.4f nats (+- %.4f)\n", kl, kl_se);
		for (int b = 1; b < nbon; b++)
			util_buf_addf(&out, "best-of-%-3d base: accuracy %.1f%% at KL %.4f nats\n", bon_n[b],
				      100 * bon_acc[b], bon_kl[b]);
		if (isfinite(wr))
			util_buf_addf(&out, "win rate:          %.1f%% [95%% CI %.1f%%, %.1f%%] "
				      "(%ld wins, %ld losses, %ld ties%s)\n",
				      100 * wr, 100 * wlo, 100 * whi, wins, losses, ties,
				      unjudged ? ", some unjudged" : "");
		else if (nj > 0)
			util_buf_adds(&out, "win rate:          no pair was judged\n");
	}
	fputs(util_buf_str(&out), stdout);
	util_buf_free(&out);
	if (st && store_run_end(st, run_id, "ok", NULL))
		util_warn("%s: %s", dbpath, store_errmsg(st));

	for (size_t i = 0; i < ns; i++) {
		free(psm[i].text);
		free(psm[i].ids);
		free(bsm[i].text);
		free(bsm[i].ids);
	}
	free(psm);
	free(bsm);
	for (size_t i = 0; i < ps.n; i++) {
		free(ps.v[i].text);
		free(ps.v[i].ids);
	}
	free(ps.v);
	store_free(st);
	train_gen_encoder_free(enc);
	train_tokenizer_free(tok);
	train_model_free(pm);
	train_model_free(bm);
	return fflush(stdout) ? 1 : 0;
}

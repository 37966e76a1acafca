/* dpo-model: inspect, tokenize, score, sample from and create Hugging Face
 * model directories with the dpo model engine. */
#include "config.h"
#include "train/chat.h"
#include "train/gen.h"
#include "train/gen_cli.h"
#include "train/layers.h"
#include "train/llama2c.h"
#include "train/model.h"
#include "train/sample.h"
#include "train/tokenizer.h"
#include "util/buf.h"
#include "util/cli.h"
#include "util/file.h"
#include "util/progress.h"
#include "util/xmalloc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(sizeof(int) == sizeof(int32_t), "token ids are passed as int32_t");

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: dpo-model COMMAND [OPTIONS] ...\n"
		"Inspect, tokenize, score, sample from and create Hugging Face model folders\n"
		"(gpt2, llama, mistral, qwen2, qwen3; safetensors F32/BF16/F16).\n"
		"\n"
		"Commands:\n"
		"  info DIR [--json]                 architecture, size, dtype, vocabulary, context\n"
		"  tokenize DIR (TEXT | --file F) [--json]\n"
		"                                    token ids of TEXT (no BOS added)\n"
		"  detokenize DIR IDS [--json]       text of IDS (\"1 2 3\", \"1,2,3\" or \"[1,2,3]\")\n"
		"  score DIR (--prompt TEXT --completion TEXT | --ids-json FILE)\n"
		"                                    JSON: summed and per-token log-probs of the\n"
		"                                    completion given the prompt\n"
		"  generate DIR (--prompt TEXT | --prompt-ids IDS) [--chat] [sampling] [--json]\n"
		"                                    sample a completion\n"
		"  init --config CONFIG.json --out DIR [--seed S] [--tokenizer TOKDIR]\n"
		"                                    write a randomly initialised model\n"
		"  import-llama2c CHECKPOINT.bin --out DIR\n"
		"                                    convert a llama2.c checkpoint to a Llama folder\n"
		"\n"
		"Options of score and generate:\n"
		"  --threads N          compute threads (default: all cores)\n"
		"Options of generate:\n"
		"  --chat               render the prompt as one user turn with the model's chat\n"
		"                       template (and stop at the end of the assistant turn)\n"
		"  --chat-format NAME   override the template family (%s)\n"
		"  --system TEXT        a system message for --chat\n"
		"  --greedy             argmax decoding\n"
		"  --temperature T      (default 1)   --top-k K (0 = off)   --top-p P (1 = off)\n"
		"  --min-p P            (0 = off)     --seed S (default 0; same seed, same output)\n"
		"  --max-new-tokens N   (default 128) --stop STR (repeatable)\n"
		"  --json               one JSON object with ids, text, finish reason, timing\n"
		"\n"
		"  -h, --help           this text      --version    print the version\n"
		"Exit status: 0 success, 1 failure, 2 usage error.\n",
		train_chat_format_names());
}

static void set_threads(long n)
{
	train_set_threads(n > 0 && n < 4096 ? (int)n : 0);
}

static train_model *load_model(const char *dir)
{
	char *err = NULL;
	train_model *m = train_model_load(dir, &err);
	if (!m)
		util_die("%s", err);
	return m;
}

static train_tokenizer *load_tok(const char *dir)
{
	char *err = NULL;
	train_tokenizer *t = train_tokenizer_load(dir, &err);
	if (!t)
		util_die("%s", err ? err : "cannot load the tokenizer");
	return t;
}

static char *slurp(const char *path, size_t *len)
{
	char *text = util_read_file(path, len);
	if (!text)
		util_die("%s: %s", path, strerror(errno));
	return text;
}

/* Parse "1 2 3", "1,2,3" or "[1, 2, 3]". Exits 2 on junk. */
static int32_t *parse_ids(const char *opt, const char *s, int *n)
{
	int32_t *ids = NULL;
	int cap = 0;
	*n = 0;
	const char *p = s;
	while (*p) {
		if (strchr(" \t\n,[]", *p)) {
			p++;
			continue;
		}
		char *end;
		errno = 0;
		long v = strtol(p, &end, 10);
		if (end == p || errno || v < 0 || v > 0x7fffffff)
			util_usage_error("%s: '%s' is not a list of token ids", opt, s);
		if (*n == cap)
			ids = xreallocarray(ids, cap = cap ? cap * 2 : 16, sizeof *ids);
		ids[(*n)++] = (int32_t)v;
		p = end;
	}
	return ids;
}

static void print_ids_json(util_buf *b, const int32_t *ids, int n)
{
	util_buf_addc(b, '[');
	for (int i = 0; i < n; i++)
		util_buf_addf(b, "%s%d", i ? "," : "", ids[i]);
	util_buf_addc(b, ']');
}

/* ---- info ---- */

static const char *arch_name(train_arch a)
{
	switch (a) {
	case TRAIN_ARCH_GPT2: return "gpt2";
	case TRAIN_ARCH_LLAMA: return "llama";
	case TRAIN_ARCH_MISTRAL: return "mistral";
	case TRAIN_ARCH_QWEN2: return "qwen2";
	case TRAIN_ARCH_QWEN3: return "qwen3";
	}
	return "?";
}

static int cmd_info(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {0}};
	int json = 0, c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'j')
			json = 1;
		else if (c == 'h') {
			usage(stdout);
			return 0;
		} else
			util_usage_error("info: bad option");
	}
	if (optind + 1 != argc)
		util_usage_error("info: expected one model folder");
	train_model *m = load_model(argv[optind]);
	const train_config *k = train_model_config(m);
	util_buf b = UTIL_BUF_INIT;
	if (json) {
		util_buf_adds(&b, "{\"dir\":");
		util_buf_add_json_string(&b, argv[optind], strlen(argv[optind]));
		util_buf_addf(&b, ",\"architecture\":\"%s\",\"parameters\":%zu,\"dtype\":\"%s\","
			      "\"vocab_size\":%d,\"context\":%d,\"layers\":%d,\"hidden_size\":%d,"
			      "\"heads\":%d,\"kv_heads\":%d,\"head_dim\":%d,\"intermediate_size\":%d,"
			      "\"tied_embeddings\":%s,\"rope_theta\":%.17g,\"norm_eps\":%.9g,"
			      "\"eos_token_ids\":",
			      arch_name(k->arch), train_model_param_count(m), train_model_dtype(m),
			      k->vocab, k->max_pos, k->n_layer, k->dim, k->n_head, k->n_kv_head,
			      k->head_dim, k->ffn, k->tied ? "true" : "false", k->rope_theta,
			      k->norm_eps);
		print_ids_json(&b, k->eos, k->n_eos);
		util_buf_addf(&b, ",\"fingerprint\":\"%s\"}\n", train_model_fingerprint(m));
	} else {
		util_buf_addf(&b, "architecture:      %s\n", arch_name(k->arch));
		util_buf_addf(&b, "parameters:        %zu\n", train_model_param_count(m));
		util_buf_addf(&b, "dtype:             %s\n", train_model_dtype(m));
		util_buf_addf(&b, "vocabulary:        %d\n", k->vocab);
		util_buf_addf(&b, "context:           %d\n", k->max_pos);
		util_buf_addf(&b, "layers:            %d\n", k->n_layer);
		util_buf_addf(&b, "hidden size:       %d\n", k->dim);
		util_buf_addf(&b, "heads:             %d (kv %d, head dim %d)\n", k->n_head,
			      k->n_kv_head, k->head_dim);
		util_buf_addf(&b, "intermediate size: %d\n", k->ffn);
		util_buf_addf(&b, "tied embeddings:   %s\n", k->tied ? "yes" : "no");
		if (k->rope_theta > 0)
			util_buf_addf(&b, "rope theta:        %g\n", k->rope_theta);
		util_buf_adds(&b, "eos token ids:     ");
		for (int i = 0; i < k->n_eos; i++)
			util_buf_addf(&b, "%s%d", i ? " " : "", k->eos[i]);
		util_buf_addf(&b, "\nfingerprint:       %s\n", train_model_fingerprint(m));
	}
	fputs(util_buf_str(&b), stdout);
	util_buf_free(&b);
	train_model_free(m);
	return 0;
}

/* ---- tokenize / detokenize ---- */

static int cmd_tokenize(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
					     {"file", required_argument, NULL, 'f'},
					     {"help", no_argument, NULL, 'h'}, {0}};
	int json = 0, c;
	const char *file = NULL;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'j')
			json = 1;
		else if (c == 'f')
			file = optarg;
		else if (c == 'h') {
			usage(stdout);
			return 0;
		} else
			util_usage_error("tokenize: bad option");
	}
	if (optind + (file ? 1 : 2) != argc)
		util_usage_error("tokenize: expected DIR and TEXT (or DIR --file F)");
	char *text;
	size_t len;
	if (file) {
		text = slurp(file, &len);
	} else {
		text = xstrdup(argv[optind + 1]);
		len = strlen(text);
	}
	train_tokenizer *tok = load_tok(argv[optind]);
	int32_t *ids = NULL;
	size_t n = 0;
	if (train_tokenizer_encode(tok, text, len, &ids, &n))
		util_die("%s: %s", file ? file : "TEXT", train_tokenizer_errmsg(tok));
	util_buf b = UTIL_BUF_INIT;
	if (json) {
		util_buf_adds(&b, "{\"ids\":");
		print_ids_json(&b, ids, (int)n);
		util_buf_adds(&b, ",\"tokens\":[");
		for (size_t i = 0; i < n; i++) {
			const char *t = train_tokenizer_token(tok, ids[i]);
			if (i)
				util_buf_addc(&b, ',');
			util_buf_add_json_string(&b, t ? t : "", t ? strlen(t) : 0);
		}
		util_buf_addf(&b, "],\"count\":%zu}\n", n);
	} else {
		for (size_t i = 0; i < n; i++)
			util_buf_addf(&b, "%s%d", i ? " " : "", ids[i]);
		util_buf_addc(&b, '\n');
	}
	fputs(util_buf_str(&b), stdout);
	util_buf_free(&b);
	free(ids);
	free(text);
	train_tokenizer_free(tok);
	return 0;
}

static int cmd_detokenize(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {0}};
	int json = 0, c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'j')
			json = 1;
		else if (c == 'h') {
			usage(stdout);
			return 0;
		} else
			util_usage_error("detokenize: bad option");
	}
	if (optind + 2 != argc)
		util_usage_error("detokenize: expected DIR and IDS");
	int n;
	int32_t *ids = parse_ids("IDS", argv[optind + 1], &n);
	train_tokenizer *tok = load_tok(argv[optind]);
	size_t vs = train_tokenizer_vocab_size(tok);
	for (int i = 0; i < n; i++)
		if ((size_t)ids[i] >= vs)
			util_die("token id %d out of range (vocabulary %zu)", ids[i], vs);
	char *text = train_tokenizer_decode(tok, ids, n);
	if (json) {
		util_buf b = UTIL_BUF_INIT;
		util_buf_adds(&b, "{\"text\":");
		util_buf_add_json_string(&b, text, strlen(text));
		util_buf_adds(&b, "}\n");
		fputs(util_buf_str(&b), stdout);
		util_buf_free(&b);
	} else {
		printf("%s\n", text);
	}
	free(text);
	free(ids);
	train_tokenizer_free(tok);
	return 0;
}

/* ---- score ---- */

static int32_t *json_ids(const cJSON *o, const char *key, const char *file, int *n)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsArray(a))
		util_die("%s: field \"%s\" must be a list of token ids", file, key);
	*n = cJSON_GetArraySize(a);
	int32_t *ids = xmalloc(sizeof(int32_t) * (*n ? *n : 1));
	int i = 0;
	for (const cJSON *e = a->child; e; e = e->next) {
		if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 2147483647.0 ||
		    (double)(int)e->valuedouble != e->valuedouble)
			util_die("%s: field \"%s\"[%d] must be a non-negative integer", file, key, i);
		ids[i++] = (int32_t)e->valuedouble;
	}
	return ids;
}

static int cmd_score(int argc, char **argv)
{
	static const struct option opts[] = {{"prompt", required_argument, NULL, 'p'},
					     {"completion", required_argument, NULL, 'c'},
					     {"ids-json", required_argument, NULL, 'i'},
					     {"threads", required_argument, NULL, 't'},
					     {"help", no_argument, NULL, 'h'}, {0}};
	const char *prompt = NULL, *completion = NULL, *idsfile = NULL;
	long threads = 0;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': prompt = optarg; break;
		case 'c': completion = optarg; break;
		case 'i': idsfile = optarg; break;
		case 't': util_parse_long("--threads", optarg, &threads); break;
		case 'h': usage(stdout); return 0;
		default: util_usage_error("score: bad option");
		}
	}
	if (optind + 1 != argc)
		util_usage_error("score: expected one model folder");
	if (!idsfile == !(prompt || completion) || (!idsfile && !(prompt && completion)))
		util_usage_error("score: give --prompt and --completion, or --ids-json");
	set_threads(threads);
	const char *dir = argv[optind];
	int32_t *p = NULL, *q = NULL;
	int np = 0, nq = 0;
	if (idsfile) {
		size_t len;
		char *text = slurp(idsfile, &len);
		cJSON *o = cJSON_ParseWithLength(text, len);
		if (!cJSON_IsObject(o))
			util_die("%s: expected a JSON object {\"prompt_ids\": [...], "
				 "\"completion_ids\": [...]}", idsfile);
		p = json_ids(o, "prompt_ids", idsfile, &np);
		q = json_ids(o, "completion_ids", idsfile, &nq);
		cJSON_Delete(o);
		free(text);
	} else {
		/* the prompt as generate encodes it (BOS once), the completion as is */
		train_tokenizer *tok = load_tok(dir);
		char *err = NULL;
		train_gen_encoder *enc = train_gen_encoder_new(NULL, tok, NULL, 0, &err);
		train_gen_prompt gp;
		if (!enc || train_gen_encode_prompt(enc, prompt, NULL, &gp, &err))
			util_die("--prompt: %s", err);
		p = gp.ids;
		np = (int)gp.n;
		size_t nb = 0;
		if (train_tokenizer_encode(tok, completion, strlen(completion), &q, &nb))
			util_die("--completion: %s", train_tokenizer_errmsg(tok));
		nq = (int)nb;
		train_gen_encoder_free(enc);
		train_tokenizer_free(tok);
	}
	if (np < 1)
		util_die("the prompt is empty: a first completion token needs at least one token "
			 "of context");
	if (nq < 1)
		util_die("the completion is empty");
	train_model *m = load_model(dir);
	int T = np + nq;
	int32_t *seq = xmalloc(sizeof(int32_t) * T);
	memcpy(seq, p, sizeof(int32_t) * np);
	memcpy(seq + np, q, sizeof(int32_t) * nq);
	float *lp = xmalloc(sizeof(float) * T);
	char *err = NULL;
	if (train_model_logprobs(m, seq, T, lp, &err))
		util_die("%s", err);
	double sum = 0.0;
	util_buf b = UTIL_BUF_INIT;
	util_buf_addf(&b, "{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"token_logps\":[", np,
		      nq);
	for (int t = np - 1; t < T - 1; t++) {
		sum += lp[t];
		util_buf_addf(&b, "%s%.9g", t > np - 1 ? "," : "", lp[t]);
	}
	util_buf_addf(&b, "],\"logp_sum\":%.17g,\"completion_ids\":", sum);
	print_ids_json(&b, q, nq);
	util_buf_adds(&b, "}\n");
	fputs(util_buf_str(&b), stdout);
	util_buf_free(&b);
	free(lp);
	free(seq);
	free(p);
	free(q);
	train_model_free(m);
	return 0;
}

/* ---- generate ---- */

static int cmd_generate(int argc, char **argv)
{
	enum { O_CHAT = 256, O_FMT, O_SYS, O_JSON, O_THREADS, O_PIDS };
	static const struct option opts[] = {
		{"prompt", required_argument, NULL, 'p'},
		{"prompt-ids", required_argument, NULL, O_PIDS},
		{"chat", no_argument, NULL, O_CHAT},
		{"chat-format", required_argument, NULL, O_FMT},
		{"system", required_argument, NULL, O_SYS},
		TRAIN_GEN_LONG_OPTIONS,
		{"json", no_argument, NULL, O_JSON},
		{"threads", required_argument, NULL, O_THREADS},
		{"help", no_argument, NULL, 'h'},
		{0}};
	const char *prompt = NULL, *pids = NULL, *fmt = NULL, *sys = NULL;
	int chat = 0, json = 0, c;
	long threads = 0;
	train_gen_cli gc;
	train_gen_cli_init(&gc, 128);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': prompt = optarg; break;
		case O_PIDS: pids = optarg; break;
		case O_CHAT: chat = 1; break;
		case O_FMT: fmt = optarg; chat = 1; break;
		case O_SYS: sys = optarg; break;
		case O_JSON: json = 1; break;
		case O_THREADS: util_parse_long("--threads", optarg, &threads); break;
		case 'h': usage(stdout); return 0;
		default:
			if (!train_gen_cli_option(&gc, c, optarg))
				util_usage_error("generate: bad option");
		}
	}
	if (optind + 1 != argc)
		util_usage_error("generate: expected one model folder");
	if (!prompt == !pids)
		util_usage_error("generate: give --prompt TEXT or --prompt-ids IDS");
	if (pids && chat)
		util_usage_error("generate: --chat needs --prompt TEXT");
	train_gen_cli_check(&gc);
	set_threads(threads);
	const char *dir = argv[optind];

	/* the tokenizer is needed for text in or out; --prompt-ids without
	 * --stop works without one (ids only) */
	train_tokenizer *tok = NULL;
	if (prompt || gc.nstops) {
		tok = load_tok(dir);
	} else {
		char *e = NULL;
		tok = train_tokenizer_load(dir, &e);
		free(e);
	}
	train_model *m = load_model(dir);
	/* the prompt's ids and the ids that end its completion (train/gen.h) */
	char *err = NULL;
	train_gen_encoder *enc = NULL;
	train_gen_prompt gp = {0};
	int32_t eos[TRAIN_GEN_MAX_EOS];
	if (pids) {
		int np = 0;
		gp.ids = parse_ids("--prompt-ids", pids, &np);
		gp.n = (size_t)np;
		size_t ne = 0;
		if (train_gen_eos_ids(m, tok, NULL, eos, TRAIN_GEN_MAX_EOS, &ne, &err))
			util_die("%s", err);
		gp.eos = eos;
		gp.n_eos = (int)ne;
	} else {
		enc = train_gen_encoder_new(m, tok, fmt, chat, &err);
		if (!enc)
			util_die("%s", err);
		int rc;
		if (chat) {
			store_msg msgs[2];
			size_t nm = 0;
			if (sys)
				msgs[nm++] = (store_msg){"system", sys};
			msgs[nm++] = (store_msg){"user", prompt};
			rc = train_gen_encode_messages(enc, msgs, nm, &gp, &err);
		} else {
			rc = train_gen_encode_prompt(enc, prompt, NULL, &gp, &err);
		}
		if (rc)
			util_die("--prompt: %s", err);
	}
	if (train_gen_prompt_fits(m, gp.n, &err))
		util_die("%s", err);
	int n = (int)gp.n;
	gc.tok = tok;
	train_gen_opts o = {.sampling = gc.sampling, .max_new = (int)gc.max_new, .eos = gp.eos,
			    .n_eos = gp.n_eos, .stop = gc.nstops ? train_gen_cli_stop : NULL,
			    .ctx = &gc, .batch = 1};
	train_gen_result res;
	const int32_t *pp = gp.ids;
	uint64_t sd = (uint64_t)gc.seed;
	double t0 = util_now();
	if (train_generate(m, 1, &pp, &n, &sd, &o, &res, &err))
		util_die("%s", err);
	double dt = util_now() - t0;
	char *text = NULL;
	if (tok) {
		text = train_tokenizer_decode(tok, res.ids, res.n);
		if (res.finish == TRAIN_FINISH_STOP)
			train_gen_cli_cut(&gc, text);
	}
	util_buf b = UTIL_BUF_INIT;
	if (json) {
		util_buf_addf(&b, "{\"prompt_tokens\":%d,\"ids\":", n);
		print_ids_json(&b, res.ids, res.n);
		util_buf_adds(&b, ",\"text\":");
		if (text)
			util_buf_add_json_string(&b, text, strlen(text));
		else
			util_buf_adds(&b, "null");
		util_buf_addf(&b, ",\"n_tokens\":%d,\"finish_reason\":\"%s\",\"seed\":%ld,"
			      "\"seconds\":%.3f,\"tokens_per_s\":%.2f}\n",
			      res.n, train_finish_name(res.finish), gc.seed, dt,
			      dt > 0 ? res.n / dt : 0.0);
	} else if (text) {
		util_buf_addf(&b, "%s\n", text);
	} else {
		for (int i = 0; i < res.n; i++)
			util_buf_addf(&b, "%s%d", i ? " " : "", res.ids[i]);
		util_buf_addc(&b, '\n');
	}
	fputs(util_buf_str(&b), stdout);
	util_buf_free(&b);
	free(text);
	free(res.ids);
	train_gen_prompt_free(&gp);
	train_gen_cli_free(&gc);
	train_gen_encoder_free(enc);
	train_tokenizer_free(tok);
	train_model_free(m);
	return 0;
}

/* ---- init ---- */

static int cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
					     {"out", required_argument, NULL, 'o'},
					     {"seed", required_argument, NULL, 's'},
					     {"tokenizer", required_argument, NULL, 't'},
					     {"help", no_argument, NULL, 'h'}, {0}};
	const char *cfg = NULL, *out = NULL, *tokdir = NULL;
	long seed = 0;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': cfg = optarg; break;
		case 'o': out = optarg; break;
		case 's': util_parse_long("--seed", optarg, &seed); break;
		case 't': tokdir = optarg; break;
		case 'h': usage(stdout); return 0;
		default: util_usage_error("init: bad option");
		}
	}
	if (optind != argc || !cfg || !out)
		util_usage_error("init: --config CONFIG.json and --out DIR are required");
	size_t len;
	char *text = slurp(cfg, &len);
	char *err = NULL;
	train_model *m = train_model_init(text, len, (uint64_t)seed, &err);
	if (!m) {
		/* messages start with "config.json:"; name the actual file */
		const char *e = err;
		if (!strncmp(e, "config.json: ", 13))
			e += 13;
		util_die("%s: %s", cfg, e);
	}
	if (train_model_save(m, out, &err))
		util_die("%s", err);
	if (tokdir) {
		int copied = train_tokenizer_copy_files(tokdir, out, &err);
		if (copied < 0)
			util_die("%s", err);
		if (!copied)
			util_die("%s: no tokenizer files (tokenizer.json or vocab.json + merges.txt)",
				 tokdir);
	}
	const train_config *k = train_model_config(m);
	fprintf(stderr, "%s: wrote %s (%s, %zu parameters, seed %ld)\n", util_progname(), out,
		arch_name(k->arch), train_model_param_count(m), seed);
	train_model_free(m);
	free(text);
	return 0;
}

static int cmd_import_llama2c(int argc, char **argv)
{
	static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
					     {"help", no_argument, NULL, 'h'}, {0}};
	const char *out = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'o')
			out = optarg;
		else if (c == 'h') {
			usage(stdout);
			return 0;
		} else
			util_usage_error("import-llama2c: bad option");
	}
	if (optind + 1 != argc || !out)
		util_usage_error("import-llama2c: expected CHECKPOINT.bin and --out DIR");
	char *err = NULL;
	train_model *m = train_llama2c_import(argv[optind], &err);
	if (!m)
		util_die("%s", err);
	if (train_model_save(m, out, &err))
		util_die("%s", err);
	fprintf(stderr, "%s: wrote %s (llama, %zu parameters; no tokenizer: llama2.c's "
		"tokenizer.bin is not converted)\n", util_progname(), out,
		train_model_param_count(m));
	train_model_free(m);
	return 0;
}

int main(int argc, char **argv)
{
	util_set_progname("dpo-model");
	if (argc < 2)
		util_usage_error("missing command");
	const char *cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version")) {
		util_print_version();
		return 0;
	}
	static const struct { const char *name; int (*fn)(int, char **); } cmds[] = {
		{"info", cmd_info}, {"tokenize", cmd_tokenize}, {"detokenize", cmd_detokenize},
		{"score", cmd_score}, {"generate", cmd_generate}, {"init", cmd_init},
		{"import-llama2c", cmd_import_llama2c},
	};
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		if (!strcmp(cmd, cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	util_usage_error("unknown command '%s'", cmd);
}

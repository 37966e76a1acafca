/* dpo-model: inspect, tokenize, score, sample from and create Hugging Face
 * model directories with the dpo model engine. */
#include "config.h"
#include "train/chat.h"
#include "train/dpo-model-lora.h"
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
#include "util/opt.h"
#include "util/progress.h"
#include "util/xmalloc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(sizeof(int) == sizeof(int32_t), "token ids are passed as int32_t");

/* ---- the command lines: one option table and util_cli per command ---- */

typedef struct json_opts {
	int json;
} json_opts;

static const util_opt json_table[] = {
	UTIL_OPT_JSON(json_opts, json),
	UTIL_OPT_TABLE_END,
};

static util_cli info_cli = {
	.name = "dpo-model info",
	.synopsis = "DIR [OPTIONS]",
	.summary = "Print a model folder's architecture, size, dtype, vocabulary, context, EOS ids\n"
		   "and fingerprint.",
	.opts = json_table,
	.min_args = 1,
	.max_args = 1,
};

typedef struct tokenize_opts {
	const char *file;
	int json;
} tokenize_opts;

static const util_opt tokenize_table[] = {
	{"file", 0, UTIL_OPT_PATH, offsetof(tokenize_opts, file), .arg = "FILE",
	 .help = "tokenize the text of FILE instead of TEXT"},
	UTIL_OPT_JSON(tokenize_opts, json),
	UTIL_OPT_TABLE_END,
};

static util_cli tokenize_cli = {
	.name = "dpo-model tokenize",
	.synopsis = "DIR (TEXT | --file F) [OPTIONS]",
	.summary = "Print the token ids of TEXT with the folder's tokenizer (no BOS added);\n"
		   "with --json, the ids, the token strings and their count.",
	.opts = tokenize_table,
	.min_args = 1,
	.max_args = 2,
};

static util_cli detokenize_cli = {
	.name = "dpo-model detokenize",
	.synopsis = "DIR IDS [OPTIONS]",
	.summary = "Print the text of the token ids IDS (\"1 2 3\", \"1,2,3\" or \"[1,2,3]\").",
	.opts = json_table,
	.min_args = 2,
	.max_args = 2,
};

typedef struct score_opts {
	const char *prompt, *completion, *ids_json, *adapter;
	long threads;
	train_precision precision;
} score_opts;

static const util_opt score_table[] = {
	{"prompt", 0, UTIL_OPT_STRING, offsetof(score_opts, prompt), .arg = "TEXT",
	 .help = "the prompt (encoded as generate does: BOS once)"},
	{"completion", 0, UTIL_OPT_STRING, offsetof(score_opts, completion), .arg = "TEXT",
	 .help = "the completion (encoded as is)"},
	{"ids-json", 0, UTIL_OPT_PATH, offsetof(score_opts, ids_json), .arg = "FILE",
	 .help = "{\"prompt_ids\": [...], \"completion_ids\": [...]}\n"
		 "instead of text (no tokenizer needed)"},
	{"adapter", 0, UTIL_OPT_PATH, offsetof(score_opts, adapter), .arg = "DIR",
	 .help = TRAIN_CLI_ADAPTER_HELP},
	UTIL_OPT_THREADS(score_opts, threads),
	TRAIN_GEN_OPT_PRECISION(score_opts, precision),
	UTIL_OPT_TABLE_END,
};

static util_cli score_cli = {
	.name = "dpo-model score",
	.synopsis = "DIR (--prompt TEXT --completion TEXT | --ids-json FILE) [OPTIONS]",
	.summary = "Print as JSON the summed and per-token log-probs of the completion given the\n"
		   "prompt.",
	.opts = score_table,
	.min_args = 1,
	.max_args = 1,
};

typedef struct generate_opts {
	const char *prompt, *prompt_ids, *chat_format, *system, *adapter;
	int chat, json;
	long threads;
	train_gen_cli gen;
} generate_opts;

static const util_opt generate_table[] = {
	{"prompt", 0, UTIL_OPT_STRING, offsetof(generate_opts, prompt), .arg = "TEXT",
	 .help = "the prompt (plain text: BOS once, then the text)"},
	{"prompt-ids", 0, UTIL_OPT_STRING, offsetof(generate_opts, prompt_ids), .arg = "IDS",
	 .help = "the prompt as token ids (\"1 2 3\", \"1,2,3\" or\n\"[1,2,3]\"); no tokenizer needed"},
	{"chat", 0, UTIL_OPT_FLAG, offsetof(generate_opts, chat),
	 .help = "render the prompt as one user turn with the\nmodel's chat template (and stop at the end of\n"
		 "the assistant turn)"},
	TRAIN_GEN_OPT_CHAT_FORMAT(generate_opts, chat_format,
				  "override the template family (implies --chat):\n"
				  TRAIN_GEN_CHAT_FORMAT_NAMES),
	{"system", 0, UTIL_OPT_STRING, offsetof(generate_opts, system), .arg = "TEXT",
	 .help = "a system message (with --chat)"},
	{"adapter", 0, UTIL_OPT_PATH, offsetof(generate_opts, adapter), .arg = "DIR",
	 .help = TRAIN_CLI_ADAPTER_HELP},
	UTIL_OPT_THREADS(generate_opts, threads),
	UTIL_OPT_JSON(generate_opts, json),
	UTIL_OPT_INCLUDE_TABLE(generate_opts, gen, train_gen_cli_opts),
	UTIL_OPT_TABLE_END,
};

static util_cli generate_cli = {
	.name = "dpo-model generate",
	.synopsis = "DIR (--prompt TEXT | --prompt-ids IDS) [OPTIONS]",
	.summary = "Sample one completion of the prompt and print its text (its ids without a\n"
		   "tokenizer); with --json, one object with the ids, the text, the finish reason\n"
		   "and the timing. The same seed gives the same output.",
	.footer = "Defaults may be set in the config file's section [dpo-model generate]\n"
		  "($DPO_CONFIG, else $XDG_CONFIG_HOME/dpo/config).\n"
		  "\n"
		  "Exit status: 0 success, 1 failure, 2 usage error.\n",
	.opts = generate_table,
	.min_args = 1,
	.max_args = 1,
};

typedef struct init_opts {
	const char *config, *out, *tokenizer;
	long seed;
} init_opts;

static const util_opt init_table[] = {
	{"config", 0, UTIL_OPT_PATH, offsetof(init_opts, config), .arg = "CONFIG.json",
	 .help = "the model's config.json (required)"},
	{"out", 0, UTIL_OPT_PATH, offsetof(init_opts, out), .arg = "DIR",
	 .help = "the folder to write (required)"},
	UTIL_OPT_SEED(init_opts, seed, "0"),
	{"tokenizer", 0, UTIL_OPT_PATH, offsetof(init_opts, tokenizer), .arg = "TOKDIR",
	 .help = "copy the tokenizer files of TOKDIR to DIR"},
	UTIL_OPT_TABLE_END,
};

static util_cli init_cli = {
	.name = "dpo-model init",
	.synopsis = "--config CONFIG.json --out DIR [OPTIONS]",
	.summary = "Write a randomly initialised model (for tests and training from scratch); the\n"
		   "same config and seed give the same weights.",
	.opts = init_table,
};

typedef struct import_opts {
	const char *out;
} import_opts;

static const util_opt import_table[] = {
	{"out", 0, UTIL_OPT_PATH, offsetof(import_opts, out), .arg = "DIR",
	 .help = "the folder to write (required)"},
	UTIL_OPT_TABLE_END,
};

static util_cli import_cli = {
	.name = "dpo-model import-llama2c",
	.synopsis = "CHECKPOINT.bin --out DIR",
	.summary = "Convert a llama2.c checkpoint to a Llama model folder (llama2.c's tokenizer.bin\n"
		   "is not converted).",
	.opts = import_table,
	.min_args = 1,
	.max_args = 1,
};

typedef struct render_opts {
	const char *messages, *chat_format;
	int gen, json;
	util_opt_list chat_vars;
} render_opts;

static const util_opt render_table[] = {
	{"messages", 0, UTIL_OPT_STRING, offsetof(render_opts, messages), .arg = "FILE",
	 .help = "the conversation: a JSON list of {\"role\",\n\"content\", ...} messages (- reads stdin)"},
	{"generation-prompt", 0, UTIL_OPT_FLAG, offsetof(render_opts, gen),
	 .help = "end with the opening of an assistant turn"},
	TRAIN_GEN_OPT_CHAT_FORMAT(render_opts, chat_format,
				  "render with this built-in format instead of\nthe tokenizer's chat "
				  "template: " TRAIN_GEN_CHAT_FORMAT_NAMES),
	TRAIN_GEN_OPT_CHAT_VAR(render_opts, chat_vars),
	UTIL_OPT_JSON(render_opts, json),
	UTIL_OPT_TABLE_END,
};

static util_cli render_cli = {
	.name = "dpo-model render",
	.synopsis = "DIR --messages FILE [OPTIONS]",
	.summary = "Print a conversation as the folder's chat template renders it; with --json,\n"
		   "also its token ids and which of them are the completion (the final assistant\n"
		   "turns, as dpo-train masks them).",
	.opts = render_table,
	.min_args = 1,
	.max_args = 1,
};

static void set_threads(long n)
{
	train_set_threads(n > 0 && n < 4096 ? (int)n : 0);
}

static train_model *load_model(const char *dir, train_precision prec)
{
	char *err = NULL;
	train_model *m = train_model_load_prec(dir, prec, &err);
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
	json_opts o = {0};
	util_cli_parse(&info_cli, &o, argc, argv);
	const char *dir = info_cli.args[0];
	int json = o.json;
	train_model *m = load_model(dir, TRAIN_PREC_F32);
	const train_config *k = train_model_config(m);
	util_buf b = UTIL_BUF_INIT;
	if (json) {
		util_buf_adds(&b, "{\"dir\":");
		util_buf_add_json_string(&b, dir, strlen(dir));
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
	tokenize_opts o = {0};
	util_cli_parse(&tokenize_cli, &o, argc, argv);
	const char *file = o.file;
	int json = o.json;
	if (tokenize_cli.nargs != (file ? 1 : 2))
		util_cli_usage_error(&tokenize_cli, "expected DIR and TEXT (or DIR --file F)");
	char **args = tokenize_cli.args;
	char *text;
	size_t len;
	if (file) {
		text = slurp(file, &len);
	} else {
		text = xstrdup(args[1]);
		len = strlen(text);
	}
	train_tokenizer *tok = load_tok(args[0]);
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
	json_opts o = {0};
	util_cli_parse(&detokenize_cli, &o, argc, argv);
	int json = o.json;
	char **args = detokenize_cli.args;
	int n;
	int32_t *ids = parse_ids("IDS", args[1], &n);
	train_tokenizer *tok = load_tok(args[0]);
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
	score_opts o = {0};
	util_cli_parse(&score_cli, &o, argc, argv);
	const char *prompt = o.prompt, *completion = o.completion, *idsfile = o.ids_json;
	if (!idsfile == !(prompt || completion) || (!idsfile && !(prompt && completion)))
		util_cli_usage_error(&score_cli, "give --prompt and --completion, or --ids-json");
	set_threads(o.threads);
	const char *dir = score_cli.args[0];
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
	train_model *m = load_model(dir, o.precision);
	train_lora *lo = train_cli_attach_adapter(m, o.adapter);
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
	train_lora_free(lo);
	return 0;
}

/* ---- generate ---- */

/* Encode the prompt of o into *gp: the ids given (--prompt-ids; the EOS set
 * then goes to eos, TRAIN_GEN_MAX_EOS of them), or the text, plain or as one
 * chat turn (the encoder made for it goes to *enc). Exits on an error. */
static void generate_prompt(const generate_opts *o, const train_model *m, train_tokenizer *tok,
			    train_gen_encoder **enc, int32_t *eos, train_gen_prompt *gp)
{
	char *err = NULL;
	*gp = (train_gen_prompt){0};
	if (o->prompt_ids) {
		int np = 0;
		gp->ids = parse_ids("--prompt-ids", o->prompt_ids, &np);
		gp->n = (size_t)np;
		size_t ne = 0;
		if (train_gen_eos_ids(m, tok, NULL, eos, TRAIN_GEN_MAX_EOS, &ne, &err))
			util_die("%s", err);
		gp->eos = eos;
		gp->n_eos = (int)ne;
	} else {
		*enc = train_gen_encoder_new(m, tok, o->chat_format, o->chat, &err);
		if (!*enc)
			util_die("%s", err);
		train_gen_encoder_set_chat_vars(*enc, o->gen.chat_vars.v, o->gen.chat_vars.n);
		int rc;
		if (o->chat) {
			store_msg msgs[2];
			size_t nm = 0;
			if (o->system)
				msgs[nm++] = (store_msg){"system", o->system};
			msgs[nm++] = (store_msg){"user", o->prompt};
			rc = train_gen_encode_messages(*enc, msgs, nm, gp, &err);
		} else {
			rc = train_gen_encode_prompt(*enc, o->prompt, NULL, gp, &err);
		}
		if (rc)
			util_die("--prompt: %s", err);
	}
	if (train_gen_prompt_fits(m, gp->n, &err))
		util_die("%s", err);
}

/* Print what generate made: text (or the ids without a tokenizer), or the
 * JSON object. */
static void print_generation(const generate_opts *o, int prompt_n, const train_gen_result *res,
			     const char *text, double dt)
{
	util_buf b = UTIL_BUF_INIT;
	if (o->json) {
		util_buf_addf(&b, "{\"prompt_tokens\":%d,\"ids\":", prompt_n);
		print_ids_json(&b, res->ids, res->n);
		util_buf_adds(&b, ",\"text\":");
		if (text)
			util_buf_add_json_string(&b, text, strlen(text));
		else
			util_buf_adds(&b, "null");
		util_buf_addf(&b, ",\"n_tokens\":%d,\"finish_reason\":\"%s\",\"seed\":%ld,"
			      "\"seconds\":%.3f,\"tokens_per_s\":%.2f}\n",
			      res->n, train_finish_name(res->finish), o->gen.seed, dt,
			      dt > 0 ? res->n / dt : 0.0);
	} else if (text) {
		util_buf_addf(&b, "%s\n", text);
	} else {
		for (int i = 0; i < res->n; i++)
			util_buf_addf(&b, "%s%d", i ? " " : "", res->ids[i]);
		util_buf_addc(&b, '\n');
	}
	fputs(util_buf_str(&b), stdout);
	util_buf_free(&b);
}

static int cmd_generate(int argc, char **argv)
{
	generate_opts o = {0};
	util_cli_parse(&generate_cli, &o, argc, argv);
	if (o.chat_format)
		o.chat = 1;
	if (!o.prompt == !o.prompt_ids)
		util_cli_usage_error(&generate_cli, "give --prompt TEXT or --prompt-ids IDS");
	if (o.prompt_ids && o.chat)
		util_cli_usage_error(&generate_cli, "--chat needs --prompt TEXT");
	const char *bad = train_gen_cli_check(&o.gen);
	if (bad)
		util_cli_usage_error(&generate_cli, "%s", bad);
	set_threads(o.threads);
	const char *dir = generate_cli.args[0];

	/* the tokenizer is needed for text in or out; --prompt-ids without
	 * --stop works without one (ids only) */
	train_tokenizer *tok = NULL;
	if (o.prompt || o.gen.stop.n) {
		tok = load_tok(dir);
	} else {
		char *e = NULL;
		tok = train_tokenizer_load(dir, &e);
		free(e);
	}
	train_model *m = load_model(dir, o.gen.precision);
	train_lora *lo = train_cli_attach_adapter(m, o.adapter);
	/* the prompt's ids and the ids that end its completion (train/gen.h) */
	train_gen_encoder *enc = NULL;
	train_gen_prompt gp;
	int32_t eos[TRAIN_GEN_MAX_EOS];
	generate_prompt(&o, m, tok, &enc, eos, &gp);
	int n = (int)gp.n;
	o.gen.tok = tok;
	train_gen_opts go = train_gen_cli_gen_opts(&o.gen, 1);
	go.eos = gp.eos;
	go.n_eos = gp.n_eos;
	train_gen_result res;
	const int32_t *pp = gp.ids;
	uint64_t sd = (uint64_t)o.gen.seed;
	char *err = NULL;
	double t0 = util_now();
	if (train_generate(m, 1, &pp, &n, &sd, &go, &res, &err))
		util_die("%s", err);
	double dt = util_now() - t0;
	char *text = NULL;
	if (tok) {
		text = train_tokenizer_decode(tok, res.ids, res.n);
		if (res.finish == TRAIN_FINISH_STOP)
			train_gen_cli_cut(&o.gen, text);
	}
	print_generation(&o, n, &res, text, dt);
	free(text);
	free(res.ids);
	train_gen_prompt_free(&gp);
	train_gen_encoder_free(enc);
	train_tokenizer_free(tok);
	train_model_free(m);
	train_lora_free(lo);
	util_cli_free(&generate_cli);
	return 0;
}

/* ---- init ---- */

static int cmd_init(int argc, char **argv)
{
	init_opts o = {0};
	util_cli_parse(&init_cli, &o, argc, argv);
	const char *cfg = o.config, *out = o.out, *tokdir = o.tokenizer;
	long seed = o.seed;
	if (!cfg || !out)
		util_cli_usage_error(&init_cli, "--config CONFIG.json and --out DIR are required");
	const char *inputs[] = {cfg, tokdir};
	char why[512], *outcfg = xasprintf("%s/config.json", out);
	if (util_check_output(out, NULL, inputs, 2, why, sizeof why))
		util_die("%s: %s", out, why);
	if (util_check_output(outcfg, NULL, inputs, 1, why, sizeof why))
		util_die("%s: %s", outcfg, why);
	free(outcfg);
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
	import_opts o = {0};
	util_cli_parse(&import_cli, &o, argc, argv);
	const char *out = o.out;
	if (!out)
		util_cli_usage_error(&import_cli, "--out DIR is required");
	const char *inputs[] = {import_cli.args[0]};
	char why[512];
	if (util_check_output(out, NULL, inputs, 1, why, sizeof why))
		util_die("%s: %s", out, why);
	char *err = NULL;
	train_model *m = train_llama2c_import(import_cli.args[0], &err);
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

/* ---- render ---- */

/* The ids of text appended to *ids (growing *n), with mask value m. */
static void render_encode(train_tokenizer *tok, const char *text, int m, int32_t **ids, int **mask,
			  size_t *n)
{
	int32_t *v = NULL;
	size_t k = 0;
	if (train_tokenizer_encode(tok, text, strlen(text), &v, &k))
		util_die("%s", train_tokenizer_errmsg(tok));
	*ids = xreallocarray(*ids, *n + k + 1, sizeof **ids);
	*mask = xreallocarray(*mask, *n + k + 1, sizeof **mask);
	for (size_t i = 0; i < k; i++) {
		(*ids)[*n + i] = v[i];
		(*mask)[*n + i] = m;
	}
	*n += k;
	free(v);
}

/* Render messages (a JSON list) with c; with split, where training splits it:
 * the prompt (up to the last message that is not the assistant's, with the
 * generation prompt) and the completion (the final assistant messages).
 * *prompt_len is the length of the prompt's text in *text. */
static char *render_split(train_chat *c, const cJSON *msgs, int gen, int split, size_t *prompt_len)
{
	int n = cJSON_GetArraySize(msgs), last = n - 1;
	while (last >= 0 && !gen && split) {
		const cJSON *r = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(msgs, last), "role");
		if (!cJSON_IsString(r) || strcmp(r->valuestring, "assistant"))
			break;
		last--;
	}
	char *all = cJSON_PrintUnformatted(msgs), *text = NULL;
	if (train_chat_render_json(c, all, gen, &text))
		util_die("%s", train_chat_errmsg(c));
	free(all);
	*prompt_len = strlen(text);
	if (gen || last == n - 1 || last < 0)
		return text;
	cJSON *pre = cJSON_CreateArray();
	for (int i = 0; i <= last; i++)
		cJSON_AddItemToArray(pre, cJSON_Duplicate(cJSON_GetArrayItem(msgs, i), 1));
	char *pj = cJSON_PrintUnformatted(pre), *ptext = NULL;
	cJSON_Delete(pre);
	if (train_chat_render_json(c, pj, 1, &ptext))
		util_die("%s", train_chat_errmsg(c));
	free(pj);
	*prompt_len = strlen(ptext);
	if (strncmp(text, ptext, *prompt_len))
		util_die("the chat template does not render the final assistant turn as a continuation "
			 "of the prompt (so it has no completion to mask)");
	free(ptext);
	return text;
}

static int cmd_render(int argc, char **argv)
{
	render_opts o = {0};
	util_cli_parse(&render_cli, &o, argc, argv);
	if (!o.messages)
		util_cli_usage_error(&render_cli, "--messages FILE is required (- reads stdin)");
	const char *bad = train_gen_cli_chat_var_check(o.chat_vars.v, o.chat_vars.n);
	if (bad)
		util_cli_usage_error(&render_cli, "%s", bad);
	size_t len;
	char *json = slurp(o.messages, &len);
	cJSON *msgs = cJSON_ParseWithLength(json, len);
	if (!cJSON_IsArray(msgs))
		util_die("%s: not a JSON list of messages", o.messages);
	train_tokenizer *tok = load_tok(render_cli.args[0]);
	char *err = NULL;
	train_chat *c = train_chat_new(tok, o.chat_format, &err);
	if (!c)
		util_die("%s", err);
	for (int i = 0; i < o.chat_vars.n; i++)
		train_chat_set_assignment(c, o.chat_vars.v[i]); /* checked above */
	size_t plen;
	char *text = render_split(c, msgs, o.gen, o.json, &plen);
	util_buf b = UTIL_BUF_INIT;
	if (o.json) {
		int32_t *ids = NULL;
		int *mask = NULL;
		size_t n = 0, nc;
		char *prompt = xstrndup(text, plen);
		render_encode(tok, prompt, 0, &ids, &mask, &n);
		nc = n;
		if (text[plen])
			render_encode(tok, text + plen, 1, &ids, &mask, &n);
		util_buf_adds(&b, "{\"text\":");
		util_buf_add_json_string(&b, text, strlen(text));
		util_buf_adds(&b, ",\"chat_template\":");
		util_buf_add_json_string(&b, train_chat_describe(c), strlen(train_chat_describe(c)));
		util_buf_adds(&b, ",\"ids\":");
		print_ids_json(&b, ids, (int)n);
		util_buf_adds(&b, ",\"completion_mask\":[");
		for (size_t i = 0; i < n; i++)
			util_buf_addf(&b, "%s%d", i ? "," : "", mask[i]);
		util_buf_addf(&b, "],\"prompt_tokens\":%zu,\"completion_tokens\":%zu}\n", nc, n - nc);
		free(prompt);
		free(ids);
		free(mask);
	} else {
		util_buf_adds(&b, text);
	}
	fwrite(b.data ? b.data : "", 1, b.len, stdout);
	util_buf_free(&b);
	free(text);
	train_chat_free(c);
	train_tokenizer_free(tok);
	cJSON_Delete(msgs);
	free(json);
	return 0;
}

/* ---- main ---- */

static const util_cmd commands[] = {
	{"info", cmd_info, "architecture, size, dtype, vocabulary, context"},
	{"tokenize", cmd_tokenize, "token ids of TEXT (no BOS added)"},
	{"detokenize", cmd_detokenize, "text of IDS (\"1 2 3\", \"1,2,3\" or \"[1,2,3]\")"},
	{"score", cmd_score, "JSON: summed and per-token log-probs of the\ncompletion given the prompt"},
	{"generate", cmd_generate, "sample a completion"},
	{"render", cmd_render, "a conversation as the chat template renders it"},
	{"init", cmd_init, "write a randomly initialised model"},
	{"import-llama2c", cmd_import_llama2c, "convert a llama2.c checkpoint to a Llama folder"},
	{"merge-lora", train_cli_merge_lora, "merge a LoRA adapter into its base model"},
	{NULL, NULL, NULL},
};

/* dpo-model's own options: --help and --version only. */
static const util_opt main_table[] = {
	UTIL_OPT_TABLE_END,
};

/* The command line of each command, in the order of commands[]. */
static const util_cli *const command_clis[] = {
	&info_cli, &tokenize_cli, &detokenize_cli, &score_cli, &generate_cli, &render_cli, &init_cli,
	&import_cli, &train_cli_merge_lora_cli,
};

/* The text after the (global) options: each command with its synopsis and
 * summary, from the tables. */
static char *main_footer(void)
{
	enum { COL = 36 };
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return NULL;
	fprintf(f, "Commands:\n");
	for (size_t i = 0; commands[i].name; i++) {
		int w = fprintf(f, "  %s %s", commands[i].name, command_clis[i]->synopsis);
		if (w >= COL - 1) {
			fputc('\n', f);
			w = 0;
		}
		fprintf(f, "%*s", COL - w, "");
		for (const char *p = commands[i].summary; *p; p++) {
			fputc(*p, f);
			if (*p == '\n' && p[1])
				fprintf(f, "%*s", COL, "");
		}
		fputc('\n', f);
	}
	fprintf(f, "\n"
		   "Each command has its own options and --help (dpo-model COMMAND --help). Their\n"
		   "defaults may be set in the config file ($DPO_CONFIG, else\n"
		   "$XDG_CONFIG_HOME/dpo/config), section [dpo-model COMMAND].\n"
		   "\n"
		   "Exit status: 0 success, 1 failure, 2 usage error.\n");
	fclose(f);
	return text;
}

int main(int argc, char **argv)
{
	static util_cli cli = {
		.name = "dpo-model",
		.synopsis = "COMMAND [OPTIONS] [ARGS]",
		.summary = "Inspect, tokenize, score, sample from and create Hugging Face model folders\n"
			   "(gpt2, llama, mistral, qwen2, qwen3; safetensors F32/BF16/F16).",
		.opts = main_table,
		.max_args = -1,
		.flags = UTIL_CLI_STOP_AT_ARG | UTIL_CLI_NO_CONFIG,
	};
	static char *footer;
	char none = 0; /* the target of no option */
	util_set_progname("dpo-model");
	cli.footer = footer = main_footer();
	util_cli_parse(&cli, &none, argc, argv);
	int first;
	const util_cmd *cmd = util_cmd_select(&cli, commands, argc, &first);
	return cmd->run(argc - first, argv + first);
}

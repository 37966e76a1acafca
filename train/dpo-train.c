/* dpo-train: train a policy with DPO (and related preference losses) on a
 * CPU, from the store's resolved pairs or a TRL-format JSONL file. See
 * man/dpo-train.1.
 *
 * main is the recipe: parse the options; load the tokenizer, the policy and
 * the pairs; open the store's run; compute the reference log-probs (or
 * resume from a checkpoint); run the training loop (train/trainer_loop.h)
 * with hooks that log and record each step's metrics, print progress and
 * write checkpoints; save the model with dpo_run.json; close the run. */
#include "config.h"
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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
#include "train/matmul_bf16.h"
#include "train/model.h"
#include "train/optim.h"
#include "train/tokenizer.h"
#include "train/lora.h"
#include "train/trainer.h"
#include "train/trainer_data.h"
#include "train/trainer_loop.h"
#include "train/trainer_mpi.h"
#include "util/buf.h"
#include "util/cli.h"
#include "util/cmdline.h"
#include "util/file.h"
#include "util/opt.h"
#include "util/progress.h"
#include "util/xmalloc.h"

/* ---- options ---- */

#define SWEEP_MAX 64

/* --beta-sweep's values. */
struct beta_list {
	double v[SWEEP_MAX];
	int n;
};

struct opts {
	const char *model, *ref_model, *from_jsonl, *eval_jsonl, *db, *split, *eval_split, *resolve;
	int from_db;
	long min_annotations;
	const char *loss, *loss_weights;
	double beta, label_smoothing, simpo_gamma;
	int ipo_length_norm, ipo_sum;
	double lr, weight_decay, beta1, beta2, adam_eps, max_grad_norm, warmup_ratio;
	long warmup_steps;
	const char *schedule;
	long batch_size, grad_accum, epochs, steps, seed;
	long max_length, max_prompt_length, max_completion_length;
	const char *truncation_mode;
	int append_eos, add_bos;
	const char *chat_format;
	util_opt_list chat_vars;
	int show_example;
	const char *log_json;
	long log_every, save_every, eval_every;
	const char *resume, *out;
	int force;
	long threads;
	int grad_ckpt;
	int quiet, json;
	struct beta_list beta_sweep;
	const char *precision; /* f32|bf16|auto; resolved to f32 or bf16 at start */
	long lora_r;
	double lora_alpha, lora_dropout;
	const char *lora_targets;
};

/* --loss: one loss or a comma-separated list of them. */
static int parse_loss(void *target, const char *value, char *err, size_t errlen)
{
	train_loss_cfg c;
	const char *bad = NULL;
	if (train_loss_parse_list(&c, value, &bad)) {
		snprintf(err, errlen,
			 "unknown loss \"%s\" (expected sigmoid, robust, hinge, ipo, sft, simpo; at most %d)",
			 bad ? bad : value, TRAIN_LOSS_MAX);
		return -1;
	}
	*(const char **)target = value;
	return 0;
}

/* --beta-sweep B1,B2,...: positive numbers. */
static int parse_beta_sweep(void *target, const char *value, char *err, size_t errlen)
{
	struct beta_list *l = target;
	const char *p = value;
	l->n = 0;
	while (*p) {
		char *end;
		double b = strtod(p, &end);
		if (end == p || !(b > 0) || !isfinite(b) || (*end && *end != ',')) {
			snprintf(err, errlen, "expected positive numbers separated by commas, not \"%s\"", value);
			return -1;
		}
		if (l->n == SWEEP_MAX) {
			snprintf(err, errlen, "at most %d values", SWEEP_MAX);
			return -1;
		}
		l->v[l->n++] = b;
		p = *end ? end + 1 : end;
	}
	if (l->n == 0) {
		snprintf(err, errlen, "no values");
		return -1;
	}
	return 0;
}

#define OPT(name, kind, field) name, 0, UTIL_OPT_##kind, offsetof(struct opts, field)

/* The defaults are these .def strings (train_loss_cfg_default and PyTorch's
 * AdamW constants agree with them; the program uses only the table). */
static const util_opt opts_table[] = {
	UTIL_OPT_HEADING("Data:"),
	{OPT("from-db", FLAG, from_db), .help = "the store's resolved pairs (--db, --split, --resolve)"},
	UTIL_OPT_DB(struct opts, db),
	{OPT("split", STRING, split), .def = "train", .arg = "S", .help = "split to train on"},
	{OPT("resolve", ENUM, resolve), .def = "majority",
	 .choices = "majority|humans-over-judges|unanimous|consistent-judge", .arg = "POLICY",
	 .help = "majority, humans-over-judges, unanimous,\nconsistent-judge"},
	{OPT("min-annotations", INT, min_annotations), .def = "1", .range = "[0, 1000000]",
	 .help = "pairs decided by at least N comparisons"},
	{OPT("from-jsonl", PATH, from_jsonl), .arg = "FILE",
	 .help = "TRL-format pairs: {\"prompt\", \"chosen\", \"rejected\"}\n"
		 "as strings or message lists, or\nprompt_ids/chosen_ids/rejected_ids"},
	{OPT("eval-split", STRING, eval_split), .arg = "S", .help = "evaluate on this split of the store"},
	{OPT("eval-jsonl", PATH, eval_jsonl), .arg = "FILE", .help = "evaluate on these pairs"},
	{OPT("eval-every", INT, eval_every), .range = "[0, inf)",
	 .help = "evaluate every N steps (default: at the end only)"},
	{OPT("max-length", INT, max_length), .def = "1024", .range = "[0, inf)",
	 .help = "prompt + completion tokens at most\n(0: the model's positions)"},
	{OPT("max-completion-length", INT, max_completion_length), .range = "[0, inf)",
	 .help = "completion tokens at most, keeping the start\n(default: no limit)"},
	{OPT("truncation-mode", ENUM, truncation_mode), .def = "keep_end", .choices = "keep_end|keep_start",
	 .arg = "MODE", .help = "over --max-length: the prompt keeps its end\n(keep_end) or its start (keep_start), as TRL"},
	{OPT("max-prompt-length", INT, max_prompt_length), .range = "[0, inf)",
	 .help = "prompt tokens at most, keeping the end\n(default: no limit)"},
	{OPT("no-append-eos", FLAG_OFF, append_eos), .def = "true",
	 .help = "do not append EOS to completions"},
	{OPT("add-bos", FLAG, add_bos), .help = "prepend BOS to prompts"},
	{OPT("chat-format", STRING, chat_format), .arg = "NAME",
	 .help = "render conversations with this built-in format\n(default: the tokenizer's own chat template)"},
	{OPT("chat-var", LIST, chat_vars), .arg = "NAME=VALUE", .help = TRAIN_CHAT_VAR_HELP},
	{OPT("show-example", FLAG, show_example), .flags = UTIL_OPT_NOPARAM,
	 .help = "print the first training pair as rendered\n(prompt and completions) before training"},

	UTIL_OPT_HEADING("Models:"),
	{OPT("model", PATH, model), .arg = "DIR",
	 .help = "Hugging Face model directory of the policy to train"},
	{OPT("ref-model", PATH, ref_model), .arg = "DIR",
	 .help = "reference model (default: the initial policy)"},

	UTIL_OPT_HEADING("LoRA (train an adapter of the frozen --model):"),
	{OPT("lora-r", INT, lora_r), .range = "[1, 65536]", .arg = "R",
	 .help = "train a LoRA adapter of rank R instead of every\nweight; OUT gets adapter_config.json and\n"
		 "adapter_model.safetensors (PEFT's format)"},
	{OPT("lora-alpha", FLOAT, lora_alpha), .def = "8", .range = "(0, inf)", .arg = "A",
	 .help = "the adapter's output is scaled by A / R"},
	{OPT("lora-dropout", FLOAT, lora_dropout), .def = "0", .range = "[0, 1)", .arg = "P",
	 .help = "dropout on the adapter's input while training"},
	{OPT("lora-targets", STRING, lora_targets), .arg = "M1,M2,...",
	 .help = "modules to adapt: Hugging Face names (q_proj,\nk_proj, v_proj, o_proj, gate_proj, up_proj,\n"
		 "down_proj; GPT-2 c_attn, c_proj, c_fc) or\nall-linear (default: q_proj,v_proj; GPT-2 c_attn)"},

	UTIL_OPT_HEADING("Loss:"),
	{OPT("loss", CALL, loss), .def = "sigmoid", .arg = "LIST", .call = parse_loss,
	 .help = "sigmoid, robust, hinge, ipo, sft, simpo; a\ncomma-separated list sums several"},
	{OPT("loss-weights", STRING, loss_weights), .arg = "LIST",
	 .help = "one weight per loss (default 1 each)"},
	{OPT("beta", FLOAT, beta), .def = "0.1", .range = "(0, inf)", .arg = "B", .help = "DPO temperature"},
	{OPT("label-smoothing", FLOAT, label_smoothing), .def = "0", .range = "[0, 0.5)", .arg = "E",
	 .help = "cDPO / robust label noise"},
	{OPT("simpo-gamma", FLOAT, simpo_gamma), .def = "0.5", .arg = "G", .help = "SimPO target margin"},
	{OPT("ipo-sum", FLAG, ipo_sum),
	 .help = "IPO on summed log-probs (the paper's form;\n"
		 "default: per-token averages, as TRL's ipo)"},
	{OPT("ipo-length-norm", FLAG, ipo_length_norm),
	 .help = "IPO on per-token average log-probs (the\ndefault; kept for old command lines)"},

	UTIL_OPT_HEADING("Optimisation:"),
	{OPT("lr", FLOAT, lr), .def = "1e-6", .range = "[0, inf)", .arg = "LR", .help = "peak learning rate"},
	{OPT("schedule", ENUM, schedule), .def = "linear", .choices = "constant|linear|cosine", .arg = "S",
	 .help = "constant, linear or cosine"},
	{OPT("warmup-steps", INT, warmup_steps), .def = "0", .range = "[0, inf)",
	 .help = "linear warmup steps"},
	{OPT("warmup-ratio", FLOAT, warmup_ratio), .range = "[0, 1)", .arg = "R",
	 .help = "warmup as a fraction of the steps\n(when --warmup-steps is 0)"},
	{OPT("weight-decay", FLOAT, weight_decay), .def = "0", .range = "[0, inf)", .arg = "W",
	 .help = "AdamW decoupled weight decay (never on\nbiases and norm weights)"},
	{OPT("adam-beta1", FLOAT, beta1), .def = "0.9", .range = "[0, 1)", .arg = "B",
	 .help = "AdamW's first-moment decay"},
	{OPT("adam-beta2", FLOAT, beta2), .def = "0.999", .range = "[0, 1)", .arg = "B",
	 .help = "AdamW's second-moment decay"},
	{OPT("adam-eps", FLOAT, adam_eps), .def = "1e-8", .range = "(0, inf)", .arg = "E",
	 .help = "AdamW's epsilon"},
	{OPT("max-grad-norm", FLOAT, max_grad_norm), .def = "1.0", .range = "[0, inf)", .arg = "N",
	 .help = "global-norm gradient clipping (0 disables)"},
	{OPT("batch-size", INT, batch_size), .def = "8", .range = "[1, 1000000]",
	 .help = "pairs per micro-batch"},
	{OPT("grad-accum", INT, grad_accum), .def = "1", .range = "[1, 1000000]",
	 .help = "micro-batches per optimizer step"},
	{OPT("epochs", INT, epochs), .def = "1", .range = "[1, inf)", .help = "passes over the data"},
	{OPT("steps", INT, steps), .range = "[1, inf)", .help = "optimizer steps (overrides --epochs)"},
	UTIL_OPT_SEED(struct opts, seed, "42"),
	{OPT("precision", ENUM, precision), .def = "f32", .choices = "f32|bf16|auto", .arg = "P",
	 .help = "matmul precision: f32, bf16 (bf16 inputs, float32\n"
		 "sums; the rest stays float32) or auto (bf16\nwhere the CPU has AVX512-BF16)"},

	UTIL_OPT_HEADING("Output:"),
	{OPT("out", PATH, out), .arg = "DIR",
	 .help = "the trained model (config.json, model.safetensors,\n"
		 "tokenizer files, dpo_run.json) and checkpoints"},
	{OPT("save-every", INT, save_every), .range = "[0, inf)",
	 .help = "atomic checkpoint OUT/checkpoint-STEP every N steps"},
	{OPT("resume", PATH, resume), .arg = "DIR", .flags = UTIL_OPT_NOCONFIG,
	 .help = "continue from a checkpoint directory"},
	{OPT("force", FLAG, force), .flags = UTIL_OPT_NOCONFIG,
	 .help = "with --resume: go on even where the options differ\nfrom the checkpoint's"},
	{OPT("beta-sweep", CALL, beta_sweep), .arg = "B1,B2,...", .call = parse_beta_sweep,
	 .flags = UTIL_OPT_NOCONFIG,
	 .help = "train one policy per beta into OUT/beta-B (each a\n"
		 "full run with these options; finished ones are\n"
		 "reused), e.g. for the reward-vs-KL frontier with\n"
		 "dpo-eval and dpo-db report"},
	{OPT("log-json", PATH, log_json), .arg = "FILE", .help = "one JSON line of metrics per step"},
	{OPT("log-every", INT, log_every), .def = "1", .range = "[1, inf)",
	 .help = "progress line every N steps"},
	{OPT("gradient-checkpointing", FLAG, grad_ckpt),
	 .help = "keep only each block's input and recompute the\n"
		 "block in backward: far less activation memory\n"
		 "for one more forward per step (same gradients)"},
	UTIL_OPT_THREADS(struct opts, threads),
	UTIL_OPT_QUIET(struct opts, quiet),
	UTIL_OPT_JSON(struct opts, json),
	UTIL_OPT_TABLE_END,
};

static util_cli cli = {
	.name = "dpo-train",
	.synopsis = "(--from-db | --from-jsonl FILE) --model DIR --out DIR [OPTIONS]\n"
		    "       dpo-train --resume CHECKPOINT --out DIR (same data options) [OPTIONS]",
	.summary = "Train a causal language model on preference pairs with DPO, on the CPU.",
	.footer = "Defaults may be set in the config file's section [dpo-train] ($DPO_CONFIG,\n"
		  "else $XDG_CONFIG_HOME/dpo/config); the command line overrides them.\n"
		  "Exit status: 0 success, 1 failure, 2 usage error, 130 interrupted (a checkpoint\n"
		  "is saved; continue with --resume).\n",
	.opts = opts_table,
};

/* Refuse (exit 1, before anything is written) an --out or --log-json that
 * names the store or an input (DESIGN.md: no command destroys data by
 * mistake). */
static void check_outputs(const struct opts *o)
{
	const char *db = o->from_db || o->db ? util_db_path(o->db) : NULL;
	const char *inputs[] = {o->from_jsonl, o->eval_jsonl, o->model, o->ref_model, o->resume};
	int n = (int)(sizeof inputs / sizeof *inputs);
	char why[512];
	if (util_check_output(o->out, db, inputs, n, why, sizeof why))
		util_die("%s: %s", o->out, why);
	if (o->log_json && util_check_output(o->log_json, db, inputs, n, why, sizeof why))
		util_die("%s: %s", o->log_json, why);
	if (o->log_json && util_same_file(o->log_json, o->out))
		util_die("%s: refusing to write the log over the output folder", o->log_json);
	/* a place the model cannot be written to is found now, not after
	 * every step has run; a new folder is made only when training starts,
	 * so that a run refused on the way (a --resume with other options, a
	 * bad data file) leaves nothing behind */
	struct stat sb;
	if (stat(o->out, &sb) == 0) {
		if (!S_ISDIR(sb.st_mode))
			util_die("%s: exists and is not a folder (--out names the folder the model is written "
				 "to)", o->out);
		if (access(o->out, W_OK | X_OK) != 0)
			util_die("%s: cannot write in the output folder: %s", o->out, strerror(errno));
		return;
	}
	if (errno != ENOENT)
		util_die("%s: cannot create the output folder: %s", o->out, strerror(errno));
	char *in = util_parent_dir(o->out);
	const char *bad = NULL;
	if (stat(in, &sb) != 0)
		bad = strerror(errno);
	else if (!S_ISDIR(sb.st_mode))
		bad = "the path to it is not a folder";
	else if (access(in, W_OK | X_OK) != 0)
		bad = strerror(errno);
	if (bad)
		util_die("%s: cannot create the output folder: %s", o->out, bad);
	free(in);
}

/* Parse the command line into o and check what the table cannot (exits 0
 * on --help/--version, 2 on a usage error). */
static void parse_options(struct opts *o, int argc, char **argv)
{
	util_cli_parse(&cli, o, argc, argv);
	if (!!o->from_db + !!o->from_jsonl != 1)
		util_cli_usage_error(&cli, "give exactly one of --from-db and --from-jsonl FILE");
	if (!o->model && !o->resume)
		util_cli_usage_error(&cli, "--model DIR is required");
	if (!o->out)
		util_cli_usage_error(&cli, "--out DIR is required");
	if (o->max_length == 1)
		util_cli_usage_error(&cli, "--max-length 1 leaves no room for a prompt and a completion token");
	if (o->max_length > 0 && o->max_prompt_length >= o->max_length)
		util_cli_usage_error(&cli, "--max-length %ld leaves no room for a completion after --max-prompt-length %ld",
				     o->max_length, o->max_prompt_length);
	if (o->ipo_sum && o->ipo_length_norm)
		util_cli_usage_error(&cli, "--ipo-sum and --ipo-length-norm contradict each other");
	static const char *const lora_opts[] = {"lora-alpha", "lora-dropout", "lora-targets"};
	for (int i = 0; i < 3 && !o->lora_r; i++)
		if (util_cli_source(&cli, lora_opts[i]) == UTIL_OPT_FROM_ARGS)
			util_cli_usage_error(&cli, "--%s needs --lora-r R", lora_opts[i]);
	if (o->eval_split && !o->from_db)
		util_cli_usage_error(&cli, "--eval-split needs --from-db (use --eval-jsonl with --from-jsonl)");
	if (getenv("DPO_SWEEP_CHILD"))
		o->beta_sweep.n = 0; /* a sweep's own runs ignore it */
	if (o->beta_sweep.n && o->resume)
		util_cli_usage_error(&cli, "--beta-sweep and --resume do not go together");
	for (int i = 0; i < o->chat_vars.n; i++) {
		const char *bad = train_chat_var_check(o->chat_vars.v[i]);
		if (bad)
			util_cli_usage_error(&cli, "%s (got \"%s\")", bad, o->chat_vars.v[i]);
	}
	if (train_mpi_rank() == 0) /* the only rank that writes */
		check_outputs(o);
}

/* The loss configuration of the options (--loss was checked by parse_loss). */
static void loss_config(const struct opts *o, train_loss_cfg *l)
{
	memset(l, 0, sizeof *l);
	train_loss_parse_list(l, o->loss, NULL);
	if (o->loss_weights && train_loss_parse_weights(l, o->loss_weights))
		util_cli_usage_error(&cli, "--loss-weights: expected %d comma-separated numbers", l->n);
	l->beta = o->beta;
	l->label_smoothing = o->label_smoothing;
	l->simpo_gamma = o->simpo_gamma;
	l->ipo_length_norm = !o->ipo_sum;
}

static void set_threads(long threads)
{
#ifdef _OPENMP
	if (threads > 0)
		omp_set_num_threads((int)threads);
#endif
#ifdef HAVE_BLAS
	if (threads > 0)
		openblas_set_num_threads((int)threads);
#endif
	(void)threads;
}

/* ---- small file helpers ---- */

static void copy_tokenizer_files(const char *from, const char *to)
{
	char *err = NULL;
	if (train_tokenizer_copy_files(from, to, &err) < 0) {
		util_warn("%s", err);
		free(err);
	}
}

/* ---- the run ---- */

/* the metrics of a step, indexed by store/metrics.h's ids */
#define NMETRICS STORE_METRIC_NTRAIN
#define metric_names store_metric_train

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
	train_lora *lora;    /* --lora-r: the adapter that trains (m frozen) */
	char *base_dir;      /* --lora-r --resume: the base model's directory */
	train_engine *e;
	train_loop loop;     /* the schedule, the data position and the hooks */
	store *st;
	int st_ro;           /* st cannot be written: nothing is recorded in it */
	char *db_real;       /* the store's resolved path (checkpoints name it) */
	int64_t run_id;
	int64_t resume_run_id; /* the store run the resumed checkpoint belongs to, or 0 */
	FILE *log;
	char *log_tmp;       /* a new run's log, written here until the run ends */
	const char *tok_dir; /* where the tokenizer files come from */
	char last_ckpt[4096];
	int keep_last;       /* last_ckpt is the one we resumed from */
	util_progress *pg;   /* the progress line, on a terminal */
	long step0;          /* the step the loop started at (for the ETA) */
	char *cmdline;
	char started[32];
	double last_metrics[NMETRICS];
	int have_metrics;
	double loop_seconds; /* the training loop's time so far */
	size_t ref_bytes;    /* a --ref-model's weight bytes (0: none loaded) */
	train_precision ref_prec; /* and the precision it was held in */
} run;

static void end_run(run *r, const char *status);

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

/* ---- load: tokenizer, policy, pairs ---- */

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
			/* only conversational data needs it (and says so), but a
			 * template that does not parse is worth knowing about */
			if (train_tokenizer_chat_template(r->tok) && !r->o.quiet)
				util_warn("%s", err);
			free(err);
		}
		for (int i = 0; r->chat && i < r->o.chat_vars.n; i++)
			train_chat_set_assignment(r->chat, r->o.chat_vars.v[i]); /* checked */
	}
}

/* Tokenization settings and their fingerprint, for the policy's config. */
static void tokenization(run *r, const train_config *cfg)
{
	const struct opts *o = &r->o;
	r->tokopt.append_eos = o->append_eos;
	r->tokopt.add_bos = o->add_bos;
	/* never longer than the model's positions */
	r->tokopt.max_length = o->max_length > 0 && o->max_length < cfg->max_pos ? o->max_length :
			       cfg->max_pos;
	r->tokopt.max_prompt_length = o->max_prompt_length;
	r->tokopt.max_completion_length = o->max_completion_length;
	r->tokopt.keep_start = !strcmp(o->truncation_mode, "keep_start");
	r->tokopt.eos_id = r->tok && train_tokenizer_eos_id(r->tok) >= 0 ? train_tokenizer_eos_id(r->tok) :
			   cfg->n_eos > 0 ? cfg->eos[0] : -1;
	r->tokopt.bos_id = r->tok && train_tokenizer_bos_id(r->tok) >= 0 ? train_tokenizer_bos_id(r->tok) :
			   cfg->bos;
	/* what renders conversations: the family, or the template and its
	 * --chat-var settings */
	util_buf chat = UTIL_BUF_INIT;
	if (r->chat) {
		util_buf_adds(&chat, train_chat_describe(r->chat));
		for (int i = 0; train_chat_uses_template(r->chat) && i < o->chat_vars.n; i++)
			util_buf_addf(&chat, ";%s", o->chat_vars.v[i]);
	}
	train_tok_fingerprint(r->tok ? train_tokenizer_fingerprint(r->tok) : NULL,
			      r->chat ? util_buf_str(&chat) : NULL, &r->tokopt, r->tok_fp);
	util_buf_free(&chat);
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

/* Open the --db store. One that cannot be written (read-only media or
 * folder) is read, and the run, its metrics and the reference log-probs
 * are then not recorded in it (r->st_ro). */
static void open_store(run *r)
{
	const char *path = util_db_path(r->o.db);
	r->st = store_new();
	int rc = store_open_existing(r->st, path);
	if (rc == STORE_ENOTFOUND)
		util_die("%s", store_errmsg(r->st));
	if (rc != STORE_OK && rc != STORE_ECORRUPT && rc != STORE_EVERSION) {
		char *first = xstrdup(store_errmsg(r->st));
		if (store_open_read(r->st, path) != STORE_OK || !store_readonly(r->st))
			util_die("%s: %s", path, first);
		free(first);
		rc = STORE_OK;
	}
	if (rc != STORE_OK)
		util_die("%s: %s", path, store_errmsg(r->st));
	r->db_real = realpath(path, NULL);
	r->st_ro = store_readonly(r->st);
	if (r->st_ro)
		util_warn("%s: read-only: this run, its metrics and the reference log-probs it computes are not "
			  "recorded in it", path);
}

/* The training and eval pairs, tokenized, from the store or JSONL files
 * (opening the store when --from-db or --db asks for it). */
static void load_pairs(run *r)
{
	const struct opts *o = &r->o;
	char *err = NULL;
	if (o->from_db || o->db) {
		open_store(r);
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
}

/* --show-example: the first training pair as the model sees it (decoded
 * ids; the completions are what the loss counts), on stderr. */
static void show_example(const run *r)
{
	if (!r->o.show_example || !r->n)
		return;
	const train_pair *p = &r->pairs[0];
	const struct {
		const char *what;
		const int *ids;
		int n;
	} part[] = {{"prompt", p->prompt, p->np}, {"chosen", p->chosen, p->nc}, {"rejected", p->rejected, p->nr}};
	fprintf(stderr, "dpo-train: the first training pair (chat template: %s):\n",
		r->chat ? train_chat_describe(r->chat) : "none");
	for (int k = 0; k < 3; k++) {
		fprintf(stderr, "--- %s (%d tokens) ---\n", part[k].what, part[k].n);
		if (r->tok) {
			int32_t *v = xmalloc(sizeof(int32_t) * ((size_t)part[k].n + 1));
			for (int i = 0; i < part[k].n; i++)
				v[i] = part[k].ids[i];
			size_t len = 0;
			char *t = train_tokenizer_decode_len(r->tok, v, (size_t)part[k].n, &len);
			fwrite(t, 1, len, stderr);
			free(t);
			free(v);
		} else {
			for (int i = 0; i < part[k].n; i++)
				fprintf(stderr, "%s%d", i ? " " : "", part[k].ids[i]);
		}
		fputc('\n', stderr);
	}
	fputs("---\n", stderr);
}

/* The directory of the weights to load: model_dir, except for a resumed
 * LoRA run, whose checkpoint holds the adapter only: --model, or the base
 * its adapter_config.json names. */
static const char *lora_model_dir(run *r, const char *model_dir)
{
	char *err = NULL;
	if (!r->o.lora_r || !r->o.resume)
		return model_dir;
	if (r->o.model)
		return r->o.model;
	r->base_dir = train_lora_dir_base(r->o.resume, &err);
	if (!r->base_dir)
		util_die("%s (give the base model with --model)", err);
	return r->base_dir;
}

/* --lora-r: the adapter, new (A seeded by --seed) or the checkpoint's. */
static void lora_setup(run *r)
{
	struct opts *o = &r->o;
	const train_config *c = train_model_config(r->m);
	char *err = NULL;
	if (!o->lora_r)
		return;
	if (!o->lora_targets)
		o->lora_targets = train_lora_default_targets(c);
	if (train_lora_check_targets(c, o->lora_targets, &err))
		util_cli_usage_error(&cli, "--lora-targets: %s", err);
	if (o->resume) {
		r->lora = train_lora_load(c, o->resume, &err);
		if (r->lora)
			train_lora_set_seed(r->lora, (uint64_t)o->seed); /* dropout, as the run began */
	} else {
		train_lora_cfg lc = {.r = (int)o->lora_r, .alpha = o->lora_alpha,
				     .dropout = o->lora_dropout, .targets = (char *)o->lora_targets};
		r->lora = train_lora_new(c, &lc, (uint64_t)o->seed, &err);
	}
	if (!r->lora)
		util_die("%s", err);
	if (!o->quiet)
		util_warn("LoRA: r=%ld alpha=%g on %d modules (%s): %zu trainable parameters",
			  o->lora_r, o->lora_alpha, train_lora_nmodules(r->lora),
			  train_lora_target_names(r->lora), train_lora_nparams(r->lora));
}

/* The weights of the output or a checkpoint: the model, or the adapter
 * (naming the resolved base model) with --lora-r. */
static int save_weights(run *r, const char *dir, char **err)
{
	if (!r->lora)
		return train_model_save(r->m, dir, err);
	const char *dirm = train_model_dir(r->m);
	char *base = dirm ? realpath(dirm, NULL) : NULL;
	int rc = train_lora_save(r->lora, dir, base ? base : dirm, err);
	free(base);
	return rc;
}

static train_engine *new_engine(run *r)
{
	return r->lora ? train_engine_new_lora(r->m, r->lora) : train_engine_new(r->m);
}

/* The tokenizer, the policy (or the checkpoint to resume) and the pairs. */
static void load_inputs(run *r)
{
	char *err = NULL;
	const char *model_dir = r->o.resume ? r->o.resume : r->o.model;
	r->tok_dir = model_dir;
	load_tokenizer(r, model_dir);
	/* a LoRA base is frozen: with --precision bf16 it is held in bf16 only
	 * (under mpirun rank 0 sends it to the other ranks as held) */
	int bf16_base = r->o.lora_r != 0;
	r->m = train_model_load_prec(lora_model_dir(r, model_dir),
				     bf16_base ? train_gemm_precision() : TRAIN_PREC_F32, &err);
	if (!r->m)
		util_die("%s", err);
	lora_setup(r);
	tokenization(r, train_model_config(r->m));
	load_pairs(r);
	show_example(r);
}

/* The loop's settings: steps, learning-rate schedule, AdamW. */
static void plan_schedule(run *r)
{
	const struct opts *o = &r->o;
	train_loop_cfg *c = &r->loop.cfg;
	c->batch_size = o->batch_size;
	c->grad_accum = o->grad_accum;
	c->total_steps = train_loop_total_steps(r->n, o->batch_size, o->grad_accum, o->epochs, o->steps);
	c->seed = o->seed;
	c->sched = (train_sched){.kind = train_sched_parse(o->schedule), .lr = o->lr,
				 .warmup_steps = o->warmup_steps ? o->warmup_steps :
						 train_warmup_from_ratio(o->warmup_ratio, c->total_steps),
				 .total_steps = c->total_steps};
	c->adamw = (train_adamw){.beta1 = o->beta1, .beta2 = o->beta2, .eps = o->adam_eps,
				 .weight_decay = o->weight_decay};
	c->max_grad_norm = o->max_grad_norm;
	c->eval_every = o->eval_every;
	c->save_every = o->save_every;
}

/* ---- reference log-probs ---- */

/* Fill pairs' reference log-probs from the store's cache (model fingerprint
 * fp); need[i] is set for the misses. Returns the number of hits. */
static size_t ref_from_cache(run *r, const char *fp, train_pair *pairs, size_t n, char *need)
{
	size_t cached = 0;
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
		if (!hit)
			need[i] = 1;
	}
	return cached;
}

/* Compute the reference log-probs of the nmiss pairs marked in need with
 * model ref, in batches of --batch-size, caching them in the store. */
static void ref_compute(run *r, train_model *ref, const char *fp, train_pair *pairs, size_t n,
			const char *need, size_t nmiss, const char *what, long *cnt)
{
	train_engine *e = train_engine_new_lora(ref, NULL); /* forward only: no gradient arenas */
	train_engine_set_checkpointing(e, r->o.grad_ckpt);
	int bs = (int)r->o.batch_size;
	const train_pair **batch = xcalloc((size_t)bs, sizeof(*batch));
	size_t *idx = xcalloc((size_t)bs, sizeof(size_t));
	double *lc = xcalloc((size_t)bs, sizeof(double)), *lr = xcalloc((size_t)bs, sizeof(double));
	long *nc = xcalloc((size_t)bs, sizeof(long)), *nr = xcalloc((size_t)bs, sizeof(long));
	util_progress *pg = r->o.quiet ? NULL : util_progress_new(what, (double)nmiss, "pairs");
	size_t done = 0, i = 0;
	int inside = 0;
	if (r->st && !r->st_ro && !cnt && store_begin(r->st) == STORE_OK)
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
			if (cnt) { /* split over MPI ranks: rank 0 caches them all after */
				cnt[2 * idx[j]] = nc[j];
				cnt[2 * idx[j] + 1] = nr[j];
			} else if (r->st && !r->st_ro && p->prompt_id > 0) {
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

/* The reference pass over MPI ranks (need: the same on every rank): each
 * computes its share, every rank gets them all, rank 0 caches them. */
static void ref_split(run *r, train_model *ref, const char *fp, train_pair *pairs, size_t n,
		      const char *need, const char *what)
{
	char *mine = xcalloc(n, 1);
	long *cnt = xcalloc(2 * n, sizeof(long));
	size_t k = 0;
	train_mpi_ref_split(need, n, mine);
	for (size_t i = 0; i < n; i++)
		k += mine[i] != 0;
	if (k)
		ref_compute(r, ref, fp, pairs, n, mine, k, what, cnt);
	train_mpi_ref_gather(pairs, n, need, mine, cnt);
	int inside = r->st && !r->st_ro && store_begin(r->st) == STORE_OK;
	for (size_t i = 0; inside && i < n; i++) {
		const train_pair *p = &pairs[i];
		if (!need[i] || p->prompt_id <= 0)
			continue;
		store_reflogp_key kc = {fp, r->tok_fp, p->prompt_id, p->chosen_id};
		store_reflogp_key kr = {fp, r->tok_fp, p->prompt_id, p->rejected_id};
		if (store_reflogp_put(r->st, &kc, p->ref_c, cnt[2 * i]) != STORE_OK ||
		    store_reflogp_put(r->st, &kr, p->ref_r, cnt[2 * i + 1]) != STORE_OK)
			util_die("%s: %s", util_db_path(r->o.db), store_errmsg(r->st));
	}
	if (inside && store_commit(r->st) != STORE_OK)
		util_die("%s: %s", util_db_path(r->o.db), store_errmsg(r->st));
	free(mine);
	free(cnt);
}

/* Reference log-probs of pairs[0..n): from the store's cache when there
 * is one, the misses computed with model ref in batches. */
static void reference_pass(run *r, train_model *ref, train_pair *pairs, size_t n,
			   const char *what)
{
	/* the cache key records the precision of the pass (f32: the bare
	 * fingerprint, as before; +bf16w: weights rounded to bf16 at load,
	 * embeddings included, so not the sums of the f32-held model) */
	char fp[256];
	int rounded = train_model_precision(ref) == TRAIN_PREC_BF16 &&
		      strcmp(train_model_dtype(ref), "BF16") != 0;
	snprintf(fp, sizeof fp, "%s%s", train_model_fingerprint(ref),
		 train_gemm_precision() != TRAIN_PREC_BF16 ? "" : rounded ? "+bf16w" : "+bf16");
	char *need = xcalloc(n ? n : 1, 1);
	size_t cached = ref_from_cache(r, fp, pairs, n, need);
	size_t nmiss = n - cached;
	train_mpi_bcast(need, n); /* rank 0 has the store */
	nmiss = 0;
	for (size_t i = 0; i < n; i++)
		nmiss += need[i] != 0;
	cached = n - nmiss;
	if (nmiss && train_mpi_size() > 1)
		ref_split(r, ref, fp, pairs, n, need, what);
	else if (nmiss)
		ref_compute(r, ref, fp, pairs, n, need, nmiss, what, NULL);
	if (!r->o.quiet)
		util_warn("%s: %zu pairs, %zu from the cache, %zu computed", what, n, cached, nmiss);
	free(need);
}

/* The reference log-probs of the training and eval pairs, with --ref-model
 * (loaded, used and freed) or the initial policy, when the loss needs them. */
static void reference_logps(run *r)
{
	const struct opts *o = &r->o;
	char *err = NULL;
	if (!train_loss_needs_ref(&r->loss))
		return;
	train_model *ref = r->m;
	if (o->ref_model && strcmp(o->ref_model, o->model)) {
		/* forward only: with --precision bf16 held in bf16 (the cache
		 * key says so), not as a second f32 model */
		ref = train_mpi_rank() == 0 ? train_model_load_prec(o->ref_model, train_gemm_precision(),
								    &err) : NULL;
		if (!ref && train_mpi_rank() == 0)
			fail_run(r, "%s", err);
		ref = train_mpi_share_model(ref);
		int vocab = train_model_config(r->m)->vocab;
		if (train_model_config(ref)->vocab != vocab)
			fail_run(r, "%s: vocabulary of %d tokens, the policy has %d", o->ref_model,
				 train_model_config(ref)->vocab, vocab);
		r->ref_prec = train_model_precision(ref);
		r->ref_bytes = train_model_weight_bytes(ref);
	}
	reference_pass(r, ref, r->pairs, r->n, "reference log-probs");
	if (r->neval)
		reference_pass(r, ref, r->evals, r->neval, "reference log-probs (eval)");
	if (ref != r->m)
		train_model_free(ref);
}

/* ---- the options a resumed run must keep ---- */

/* The hyperparameters of a run, recorded in every checkpoint
 * (trainer_state.json "options"): a --resume that changes one would
 * silently make another run, so it is refused (naming each) unless
 * --force. Kinds: 'f' double, 'i' long, 's' string (NULL: absent),
 * 'b' flag, 'p' path (compared resolved). The lora-* ones even --force
 * cannot change: a resumed adapter keeps the checkpoint's rank, alpha,
 * dropout and modules whatever the options say. */
static const struct resume_opt {
	const char *name;
	char kind;
	size_t off;
} RESUME_OPTS[] = {
	{"lr", 'f', offsetof(struct opts, lr)},
	{"beta", 'f', offsetof(struct opts, beta)},
	{"loss", 's', offsetof(struct opts, loss)},
	{"loss-weights", 's', offsetof(struct opts, loss_weights)},
	{"label-smoothing", 'f', offsetof(struct opts, label_smoothing)},
	{"simpo-gamma", 'f', offsetof(struct opts, simpo_gamma)},
	{"ipo-sum", 'b', offsetof(struct opts, ipo_sum)},
	{"schedule", 's', offsetof(struct opts, schedule)},
	{"warmup-steps", 'i', offsetof(struct opts, warmup_steps)},
	{"warmup-ratio", 'f', offsetof(struct opts, warmup_ratio)},
	{"weight-decay", 'f', offsetof(struct opts, weight_decay)},
	{"adam-beta1", 'f', offsetof(struct opts, beta1)},
	{"adam-beta2", 'f', offsetof(struct opts, beta2)},
	{"adam-eps", 'f', offsetof(struct opts, adam_eps)},
	{"max-grad-norm", 'f', offsetof(struct opts, max_grad_norm)},
	{"batch-size", 'i', offsetof(struct opts, batch_size)},
	{"grad-accum", 'i', offsetof(struct opts, grad_accum)},
	{"max-length", 'i', offsetof(struct opts, max_length)},
	{"max-prompt-length", 'i', offsetof(struct opts, max_prompt_length)},
	{"max-completion-length", 'i', offsetof(struct opts, max_completion_length)},
	{"truncation-mode", 's', offsetof(struct opts, truncation_mode)},
	{"model", 'p', offsetof(struct opts, model)},
	{"ref-model", 'p', offsetof(struct opts, ref_model)},
	{"precision", 's', offsetof(struct opts, precision)},
	{"lora-r", 'i', offsetof(struct opts, lora_r)},
	{"lora-alpha", 'f', offsetof(struct opts, lora_alpha)},
	{"lora-dropout", 'f', offsetof(struct opts, lora_dropout)},
	{"lora-targets", 's', offsetof(struct opts, lora_targets)},
};

/* An option's value as JSON (a path resolved where it exists). */
static cJSON *resume_opt_json(const struct opts *o, const struct resume_opt *d)
{
	const char *base = (const char *)o + d->off;
	const char *str;
	switch (d->kind) {
	case 'f':
		return cJSON_CreateNumber(*(const double *)base);
	case 'i':
		return cJSON_CreateNumber((double)*(const long *)base);
	case 'b':
		return cJSON_CreateBool(*(const int *)base);
	default:
		str = *(const char *const *)base;
		if (d->kind == 'p' && str) {
			char *real = realpath(str, NULL);
			cJSON *v = cJSON_CreateString(real ? real : str);
			free(real);
			return v;
		}
		return str ? cJSON_CreateString(str) : cJSON_CreateNull();
	}
}

static cJSON *resume_options_json(const run *r)
{
	struct opts o = r->o;
	if (!o.ref_model)
		o.ref_model = o.model; /* the reference is the initial policy */
	cJSON *j = cJSON_CreateObject();
	for (size_t i = 0; i < sizeof RESUME_OPTS / sizeof *RESUME_OPTS; i++)
		cJSON_AddItemToObject(j, RESUME_OPTS[i].name, resume_opt_json(&o, &RESUME_OPTS[i]));
	return j;
}

/* Refuse a --resume whose options differ from the checkpoint's (state:
 * its trainer_state.json, named path), naming each, unless --force. The
 * models count only when given again (a resumed run loads the checkpoint
 * and its reference log-probs). A checkpoint of an older dpo records none. */
static void check_resume_options(const run *r, const cJSON *state, const char *path)
{
	const cJSON *old = cJSON_GetObjectItemCaseSensitive(state, "options");
	if (!cJSON_IsObject(old)) {
		util_warn("%s: the checkpoint does not record its options; not checked", path);
		return;
	}
	util_buf diff = UTIL_BUF_INIT, fixed = UTIL_BUF_INIT;
	for (size_t i = 0; i < sizeof RESUME_OPTS / sizeof *RESUME_OPTS; i++) {
		const struct resume_opt *d = &RESUME_OPTS[i];
		if (d->kind == 'p' && !*(const char *const *)((const char *)&r->o + d->off))
			continue;
		cJSON *now = resume_opt_json(&r->o, d);
		const cJSON *was = cJSON_GetObjectItemCaseSensitive(old, d->name);
		if (!was) { /* an option newer than the checkpoint's dpo */
			cJSON_Delete(now);
			continue;
		}
		if (!cJSON_Compare(now, was, 1)) {
			char *a = cJSON_PrintUnformatted(now), *b = cJSON_PrintUnformatted(was);
			util_buf_addf(&diff, "%s--%s %s (checkpoint: %s)", diff.len ? ", " : "", d->name, a, b);
			if (!strncmp(d->name, "lora-", 5))
				util_buf_addf(&fixed, "%s--%s %s (checkpoint: %s)", fixed.len ? ", " : "",
					      d->name, a, b);
			free(a);
			free(b);
		}
		cJSON_Delete(now);
	}
	if (fixed.len)
		util_die("%s: the checkpoint was trained with other LoRA options: %s; a resumed adapter "
			 "keeps the checkpoint's rank, alpha, dropout and modules (--force cannot change "
			 "them): resume with the checkpoint's LoRA options, or train a new adapter",
			 path, util_buf_str(&fixed));
	util_buf_free(&fixed);
	if (diff.len && !r->o.force)
		util_die("%s: the checkpoint was trained with other options: %s; resume with the same options, "
			 "or add --force to go on with the new ones", path, util_buf_str(&diff));
	if (diff.len)
		util_warn("--force: going on with other options than the checkpoint's: %s", util_buf_str(&diff));
	util_buf_free(&diff);
}

/* ---- checkpoints ---- */

#define OPT_MAGIC "DPOOPT1"

/* Write name in dir from data[0..len) atomically; -1 with *err on failure. */
static int write_ckpt_file(const char *dir, const char *name, const void *data, size_t len,
			   char **err)
{
	char *p = xasprintf("%s/%s", dir, name);
	int wr = util_write_file_atomic(p, data, len);
	free(p);
	if (wr)
		*err = xasprintf("%s/%s: %s", dir, name, strerror(errno));
	return wr ? -1 : 0;
}

/* The checkpoint's files other than the model: optimizer.bin (magic,
 * nparams, t, m, v), ref_logps.bin (in data order) and trainer_state.json. */
static int write_ckpt_state(run *r, const char *tmp, char **err)
{
	const train_loop *L = &r->loop;
	size_t np = train_engine_nparams(r->e);
	size_t len = 8 + 8 + 8 + 2 * np * sizeof(float);
	char *buf = xmalloc(len);
	memcpy(buf, OPT_MAGIC, 8);
	uint64_t n64 = np;
	int64_t t64 = train_engine_steps(r->e);
	memcpy(buf + 8, &n64, 8);
	memcpy(buf + 16, &t64, 8);
	memcpy(buf + 24, train_engine_moment1(r->e), np * sizeof(float));
	memcpy(buf + 24 + np * sizeof(float), train_engine_moment2(r->e), np * sizeof(float));
	int rc = write_ckpt_file(tmp, "optimizer.bin", buf, len, err);
	free(buf);
	if (rc)
		return -1;
	double *refs = xmalloc(sizeof(double) * 2 * (r->n + r->neval) + 1);
	for (size_t i = 0; i < r->n; i++) {
		refs[2 * i] = r->pairs[i].ref_c;
		refs[2 * i + 1] = r->pairs[i].ref_r;
	}
	for (size_t i = 0; i < r->neval; i++) {
		refs[2 * (r->n + i)] = r->evals[i].ref_c;
		refs[2 * (r->n + i) + 1] = r->evals[i].ref_r;
	}
	rc = write_ckpt_file(tmp, "ref_logps.bin", refs, sizeof(double) * 2 * (r->n + r->neval), err);
	free(refs);
	if (rc)
		return -1;
	cJSON *oj = resume_options_json(r);
	char *opts = cJSON_PrintUnformatted(oj), *runref = xstrdup("");
	cJSON_Delete(oj);
	if (r->run_id > 0 && r->db_real) { /* the store's run, which a --resume continues */
		util_buf b = UTIL_BUF_INIT;
		util_buf_addf(&b, ", \"run_id\": %lld, \"run_store\": ", (long long)r->run_id);
		util_buf_add_json_string(&b, r->db_real, strlen(r->db_real));
		free(runref);
		runref = util_buf_detach(&b);
	}
	char *state = xasprintf("{\"step\": %ld, \"epoch\": %ld, \"pos\": %ld, \"seed\": %ld, "
				"\"total_steps\": %ld, \"pairs\": %zu, \"eval_pairs\": %zu, "
				"\"data_fingerprint\": \"%s\", \"tokenization\": \"%s\"%s, \"options\": %s}\n",
				L->step, L->epoch, L->pos, r->o.seed, L->cfg.total_steps, r->n, r->neval,
				r->data_fp, r->tok_fp, runref, opts);
	free(opts);
	free(runref);
	rc = write_ckpt_file(tmp, "trainer_state.json", state, strlen(state), err);
	free(state);
	return rc;
}

/* OUT/checkpoint-STEP, written to a temporary directory, synced and renamed
 * into place; the previous checkpoint (unless resumed from) is removed. */
static int save_checkpoint(run *r, char **err)
{
	const char *out = r->o.out;
	char *dir = xasprintf("%s/checkpoint-%ld", out, r->loop.step);
	char *tmp = xasprintf("%s/.checkpoint-%ld.tmp", out, r->loop.step);
	int rc = -1;
	util_remove_flat_dir(tmp);
	if (mkdir(out, 0755) != 0 && errno != EEXIST) {
		*err = xasprintf("%s: %s", out, strerror(errno));
		goto out;
	}
	if (mkdir(tmp, 0755) != 0) {
		*err = xasprintf("%s: %s", tmp, strerror(errno));
		goto out;
	}
	if (save_weights(r, tmp, err) != 0)
		goto out;
	/* --resume reads the tokenizer from the checkpoint: without it the
	 * checkpoint is no good, and must not replace the last one */
	if (train_tokenizer_copy_files(r->tok_dir, tmp, err) < 0)
		goto out;
	if (write_ckpt_state(r, tmp, err))
		goto out;
	util_fsync_dir(tmp);
	util_remove_flat_dir(dir);
	if (rename(tmp, dir) != 0) {
		*err = xasprintf("rename %s to %s: %s", tmp, dir, strerror(errno));
		goto out;
	}
	util_fsync_dir(out);
	/* the previous checkpoint is superseded */
	if (r->last_ckpt[0] && strcmp(r->last_ckpt, dir) && !r->keep_last)
		util_remove_flat_dir(r->last_ckpt);
	r->keep_last = 0;
	snprintf(r->last_ckpt, sizeof r->last_ckpt, "%s", dir);
	rc = 0;
out:
	if (rc)
		util_remove_flat_dir(tmp);
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

/* trainer_state.json: the position, after checking that the checkpoint
 * belongs to a run on the same data, seed and schedule. */
static void load_ckpt_position(run *r, const char *dir)
{
	train_loop *L = &r->loop;
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
	if (total != L->cfg.total_steps)
		util_die("%s: the checkpoint belongs to a run of %ld steps (now %ld): give the same "
			 "--steps/--epochs/--batch-size/--grad-accum", p, total, L->cfg.total_steps);
	check_resume_options(r, o, p);
	const cJSON *rid = cJSON_GetObjectItemCaseSensitive(o, "run_id");
	const cJSON *rst = cJSON_GetObjectItemCaseSensitive(o, "run_store");
	if (cJSON_IsNumber(rid) && cJSON_IsString(rst) && r->db_real && !strcmp(rst->valuestring, r->db_real))
		r->resume_run_id = (int64_t)rid->valuedouble;
	cJSON_Delete(o);
	free(p);
	L->step = step;
	L->epoch = epoch;
	L->pos = pos;
}

/* optimizer.bin: AdamW's moments and step count. */
static void load_ckpt_optimizer(run *r, const char *dir)
{
	char *p = xasprintf("%s/optimizer.bin", dir);
	FILE *f = fopen(p, "rb");
	size_t npar = train_engine_nparams(r->e);
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
}

/* ref_logps.bin: the reference log-probs of the training and eval pairs. */
static void load_ckpt_refs(run *r, const char *dir)
{
	char *p = xasprintf("%s/ref_logps.bin", dir);
	FILE *f = fopen(p, "rb");
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
}

/* Continue from --resume: position, optimizer state, reference log-probs. */
static void resume_checkpoint(run *r)
{
	const char *dir = r->o.resume;
	load_ckpt_position(r, dir);
	load_ckpt_optimizer(r, dir);
	load_ckpt_refs(r, dir);
	snprintf(r->last_ckpt, sizeof r->last_ckpt, "%s", dir);
	r->keep_last = 1; /* never delete the checkpoint we resumed from */
	if (!r->o.quiet)
		util_warn("resuming %s at step %ld of %ld", dir, r->loop.step, r->loop.cfg.total_steps);
}

/* ---- metrics, progress and the loop's hooks ---- */

/* One line of --log-json and the store's metrics: the step's (prefix "")
 * or the eval pairs' (STORE_METRIC_TRAIN_EVAL_PREFIX, without grad_norm
 * and learning_rate). */
static void emit_metrics(run *r, long step, const char *prefix, const double *v, int nm,
			 double extra_tokps)
{
	if (r->log) {
		fprintf(r->log, "{\"step\": %ld, \"epoch\": %.6f", step, train_loop_epoch(&r->loop));
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

/* The batch metrics in store/metrics.h's order (grad_norm and
 * learning_rate zero). */
static void metrics_of(const train_loss_batch *m, double v[NMETRICS])
{
	memset(v, 0, sizeof(double) * NMETRICS);
	v[STORE_METRIC_LOSS] = m->loss;
	v[STORE_METRIC_REWARDS_CHOSEN] = m->reward_chosen;
	v[STORE_METRIC_REWARDS_REJECTED] = m->reward_rejected;
	v[STORE_METRIC_REWARDS_ACCURACIES] = m->reward_accuracy;
	v[STORE_METRIC_REWARDS_MARGINS] = m->reward_margin;
	v[STORE_METRIC_LOGPS_CHOSEN] = m->logp_chosen;
	v[STORE_METRIC_LOGPS_REJECTED] = m->logp_rejected;
	v[STORE_METRIC_LOGITS_CHOSEN] = m->logits_chosen;
	v[STORE_METRIC_LOGITS_REJECTED] = m->logits_rejected;
}

/* The progress line (a terminal) or a line every --log-every steps. */
static void progress(run *r, const train_loop_stats *s, long step, long total)
{
	double el = s->seconds;
	char extra[160];
	snprintf(extra, sizeof extra, "loss %.4f, acc %.2f, %.0f tok/s, %.1f GFLOP/s", s->m.loss,
		 s->m.reward_accuracy, el > 0 ? s->tokens / el : 0, el > 0 ? s->flops / el / 1e9 : 0);
	if (r->pg) {
		util_progress_update(r->pg, (double)step, extra);
		if (step == total) {
			util_progress_finish(r->pg);
			util_progress_free(r->pg);
			r->pg = NULL;
		}
		return;
	}
	/* not a terminal: one line per --log-every steps */
	char eta[32];
	double rate = (double)(step - r->step0) / (el > 0 ? el : 1);
	util_format_duration(rate > 0 ? (double)(total - step) / rate : 0, eta, sizeof eta);
	util_warn("step %ld/%ld, ETA %s, %s", step, total, eta, extra);
}

/* After each optimizer step: log and record its metrics, show progress. */
static void on_step(void *ud, const train_loop *L, const train_loop_stats *s)
{
	run *r = ud;
	double v[NMETRICS];
	metrics_of(&s->m, v);
	v[STORE_METRIC_GRAD_NORM] = s->grad_norm;
	v[STORE_METRIC_LEARNING_RATE] = s->lr;
	emit_metrics(r, L->step, "", v, NMETRICS, s->seconds > 0 ? s->tokens / s->seconds : 0);
	memcpy(r->last_metrics, v, sizeof v);
	r->have_metrics = 1;
	r->loop_seconds = s->seconds;
	if (!r->o.quiet && (L->step % r->o.log_every == 0 || L->step == L->cfg.total_steps))
		progress(r, s, L->step, L->cfg.total_steps);
}

/* After an evaluation: log and record it, and say it. */
static void on_eval(void *ud, const train_loop *L, const train_loss_batch *m)
{
	run *r = ud;
	double v[NMETRICS];
	metrics_of(m, v);
	emit_metrics(r, L->step, STORE_METRIC_TRAIN_EVAL_PREFIX, v, NMETRICS, 0);
	if (!r->o.quiet)
		util_warn("step %ld: eval_loss %.6f, eval accuracy %.3f", L->step, m->loss,
			  m->reward_accuracy);
}

static int on_save(void *ud, const train_loop *L, char **err)
{
	(void)L;
	return save_checkpoint(ud, err);
}

static int on_stop(void *ud)
{
	(void)ud;
	return train_mpi_any(util_interrupted()); /* every rank stops at the same step */
}

/* --log-json, written under a temporary name beside PATH and renamed over
 * it when the run ends (done or interrupted, so that a --resume goes on
 * from it): a run that fails (its metrics are in the store) or dies never
 * replaces a good log with a half one. A resumed run starts its log with
 * the lines of PATH up to the checkpoint's step, so the steps it replays
 * are not there twice. */
static void drop_log(void *ctx);

/* Copy the lines of the log at path whose "step" is at most step to f
 * (none when there is no such file; a line cut short by a crash is left). */
static void copy_log_until(const char *path, long step, FILE *f)
{
	FILE *in = fopen(path, "r");
	if (!in)
		return;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, in)) > 0) {
		if (line[n - 1] != '\n')
			break;
		cJSON *j = cJSON_Parse(line);
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "step");
		if (cJSON_IsNumber(st) && st->valuedouble <= (double)step)
			fputs(line, f);
		cJSON_Delete(j);
	}
	free(line);
	fclose(in);
}

static void open_log(run *r)
{
	const char *path = r->o.log_json;
	int fd = util_atomic_open(path, &r->log_tmp);
	r->log = fd < 0 ? NULL : fdopen(fd, "w");
	if (fd >= 0 && !r->log)
		util_atomic_close(fd, r->log_tmp, path, 0);
	if (!r->log) {
		r->log_tmp = NULL;
		fail_run(r, "%s: %s", path, strerror(errno));
	}
	util_on_die(drop_log, r);
	if (r->o.resume)
		copy_log_until(path, r->loop.step, r->log);
}

/* Close the log; a new run's goes into place when keep, else is removed.
 * Returns 0, or -1 with errno when it could not be written. */
static int close_log(run *r, int keep)
{
	if (!r->log)
		return 0;
	int bad = fflush(r->log) != 0 || ferror(r->log), rc = 0;
	if (!r->log_tmp) {
		rc = fclose(r->log) != 0 || bad ? -1 : 0;
	} else {
		util_on_die_remove(drop_log, r);
		int fd = dup(fileno(r->log));
		fclose(r->log);
		if (fd < 0) {
			unlink(r->log_tmp);
			free(r->log_tmp);
			rc = -1;
		} else if (util_atomic_close(fd, r->log_tmp, r->o.log_json, keep && !bad) != 0 && keep) {
			rc = -1;
		}
		r->log_tmp = NULL;
	}
	r->log = NULL;
	return rc;
}

static void drop_log(void *ctx)
{
	close_log(ctx, 0);
}

/* The loop's data, engine and hooks; the log file, the output directory and
 * the progress line. */
static void prepare_loop(run *r)
{
	const struct opts *o = &r->o;
	train_loop *L = &r->loop;
	L->e = r->e;
	train_engine_set_checkpointing(r->e, o->grad_ckpt);
	L->loss = &r->loss;
	L->pairs = r->pairs;
	L->n = r->n;
	L->evals = r->evals;
	L->neval = r->neval;
	L->hooks = (train_loop_hooks){.ud = r, .step = on_step, .eval = on_eval, .save = on_save,
				      .stop = on_stop};
	train_mpi_attach(r->e, r->m, L);
	if (train_mpi_rank() > 0) { /* rank 0 writes and shows everything */
		L->hooks = (train_loop_hooks){.ud = r, .stop = on_stop};
		return;
	}
	if (o->log_json)
		open_log(r);
	if (mkdir(o->out, 0755) != 0 && errno != EEXIST)
		fail_run(r, "%s: %s", o->out, strerror(errno));
	r->pg = o->quiet || !isatty(2) ? NULL :
		util_progress_new("train", (double)L->cfg.total_steps, "steps");
	r->step0 = L->step;
}

/* After the loop: the progress line ends; a failure ends the run (exit 1);
 * an interruption ends it too (exit 130). */
static void loop_result(run *r, int rc)
{
	if (r->pg) {
		util_progress_finish(r->pg);
		util_progress_free(r->pg);
		r->pg = NULL;
	}
	if (rc == TRAIN_LOOP_EDIVERGED)
		fail_run(r, "%s; stopping (%s%s)", r->loop.err,
			 r->last_ckpt[0] ? "last checkpoint: " : "no checkpoint was saved", r->last_ckpt);
	if (rc < 0)
		fail_run(r, "%s", r->loop.err);
	if (rc == TRAIN_LOOP_STOPPED) {
		util_warn("interrupted at step %ld of %ld; resume with --resume %s", r->loop.step,
			  r->loop.cfg.total_steps, r->last_ckpt);
		end_run(r, "interrupted");
		exit(UTIL_EXIT_INTERRUPTED);
	}
}

/* ---- record: the store's run, dpo_run.json ---- */

/* The command line as the store records it (quoted, secrets masked). */
static char *join_args(int argc, char **argv)
{
	util_buf b = UTIL_BUF_INIT;
	util_cmdline_quote(argc, argv, &b);
	return util_buf_detach(&b);
}

/* The run's parameters, as the store's run row and dpo_run.json's
 * "arguments" hold them. Built here rather than by util_cli_params_json
 * because they are read back under these names: dpo-eval takes "beta" and
 * "loss" (a string) from dpo_run.json, and "steps" is the run's length,
 * whatever --epochs or --steps said. */
static char *params_json(const run *r)
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
	cJSON_AddStringToObject(j, "precision", o->precision);
	cJSON_AddBoolToObject(j, "gradient_checkpointing", o->grad_ckpt);
	if (o->loss_weights)
		cJSON_AddStringToObject(j, "loss_weights", o->loss_weights);
	cJSON_AddNumberToObject(j, "beta", o->beta);
	cJSON_AddNumberToObject(j, "label_smoothing", o->label_smoothing);
	cJSON_AddNumberToObject(j, "simpo_gamma", o->simpo_gamma);
	cJSON_AddBoolToObject(j, "ipo_length_norm", !o->ipo_sum);
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
	cJSON_AddNumberToObject(j, "steps", (double)r->loop.cfg.total_steps);
	cJSON_AddNumberToObject(j, "seed", (double)o->seed);
	cJSON_AddNumberToObject(j, "max_length", (double)o->max_length);
	cJSON_AddNumberToObject(j, "max_prompt_length", (double)o->max_prompt_length);
	cJSON_AddNumberToObject(j, "max_completion_length", (double)o->max_completion_length);
	cJSON_AddStringToObject(j, "truncation_mode", o->truncation_mode);
	cJSON_AddBoolToObject(j, "append_eos", o->append_eos);
	cJSON_AddBoolToObject(j, "add_bos", o->add_bos);
	if (o->lora_r) {
		cJSON_AddNumberToObject(j, "lora_r", (double)o->lora_r);
		cJSON_AddNumberToObject(j, "lora_alpha", o->lora_alpha);
		cJSON_AddNumberToObject(j, "lora_dropout", o->lora_dropout);
		cJSON_AddStringToObject(j, "lora_targets", o->lora_targets ? o->lora_targets : "");
	}
	char *s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	return s;
}

/* The store's run row (with --from-db or --db). */
static void start_run(run *r, int argc, char **argv)
{
	if (!r->st || r->st_ro)
		return;
	if (r->resume_run_id > 0) { /* the checkpoint's run goes on */
		int rc = store_run_continue(r->st, r->resume_run_id, "train");
		if (rc == STORE_OK) {
			r->run_id = r->resume_run_id;
			return;
		}
		if (rc != STORE_ENOTFOUND)
			util_die("%s: %s", util_db_path(r->o.db), store_errmsg(r->st));
	}
	char *pj = params_json(r);
	if (store_run_start(r->st, "train", argc, argv, pj, &r->run_id) != STORE_OK)
		util_die("%s: %s", util_db_path(r->o.db), store_errmsg(r->st));
	free(pj);
}

static void end_run(run *r, const char *status)
{
	if (close_log(r, strcmp(status, "failed") != 0) != 0)
		util_warn("%s: the log could not be written: %s", r->o.log_json, strerror(errno));
	if (r->st && r->run_id > 0) {
		char *summary = xasprintf("{\"steps\": %ld, \"pairs\": %zu}", r->loop.step, r->n);
		store_run_end(r->st, r->run_id, status, summary);
		free(summary);
	}
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
	cJSON_AddNumberToObject(j, "steps", (double)r->loop.step);
	if (r->m) { /* the policy's (LoRA: the frozen base's) weights as held, and the peak RSS */
		struct rusage ru;
		cJSON *mem = cJSON_AddObjectToObject(j, "memory");
		cJSON_AddStringToObject(mem, "weights", train_precision_name(train_model_precision(r->m)));
		cJSON_AddNumberToObject(mem, "weight_bytes", (double)train_model_weight_bytes(r->m));
		if (r->ref_bytes) { /* the --ref-model of the reference pass, freed since */
			cJSON_AddStringToObject(mem, "ref_weights", train_precision_name(r->ref_prec));
			cJSON_AddNumberToObject(mem, "ref_weight_bytes", (double)r->ref_bytes);
		}
		if (getrusage(RUSAGE_SELF, &ru) == 0)
			cJSON_AddNumberToObject(mem, "peak_rss_kb", (double)ru.ru_maxrss);
	}
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
	/* --json: the same document on stdout (a --beta-sweep's runs leave it to
	 * the sweep, which prints sweep.json) */
	if (r->o.json && !getenv("DPO_SWEEP_CHILD") && (fputs(b.data, stdout) == EOF || fflush(stdout)))
		util_die("writing the summary: %s", strerror(errno));
	util_buf_free(&b);
	free(p);
	free(s);
}

/* The output: the model, the tokenizer files, dpo_run.json. */
static void save_model(run *r)
{
	char *err = NULL;
	if (save_weights(r, r->o.out, &err))
		fail_run(r, "%s", err);
	copy_tokenizer_files(r->tok_dir, r->o.out);
	write_run_json(r, "ok");
}

static void free_run(run *r)
{
	for (size_t i = 0; i < r->n; i++)
		train_pair_free(&r->pairs[i]);
	for (size_t i = 0; i < r->neval; i++)
		train_pair_free(&r->evals[i]);
	free(r->pairs);
	free(r->evals);
	if (r->log)
		fclose(r->log);
	train_engine_free(r->e);
	train_lora_free(r->lora);
	free(r->base_dir);
	train_model_free(r->m);
	train_chat_free(r->chat);
	train_tokenizer_free(r->tok);
	store_free(r->st);
	free(r->db_real);
	free(r->cmdline);
}

/* ---- --beta-sweep ---- */

/* Run this program again with argv plus --beta bs --out dir (and
 * --log-json logj); returns 0 when it succeeded. */
static int train_one_beta(int argc, char **argv, const char *bs, const char *dir, const char *logj)
{
	char **av = xcalloc((size_t)argc + 7, sizeof *av);
	int n = 0;
	for (int k = 0; k < argc; k++)
		av[n++] = argv[k];
	av[n++] = "--beta";
	av[n++] = (char *)bs;
	av[n++] = "--out";
	av[n++] = (char *)dir;
	if (logj) {
		av[n++] = "--log-json";
		av[n++] = (char *)logj;
	}
	av[n] = NULL;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		execv("/proc/self/exe", av);
		execvp(argv[0], av);
		_exit(127);
	}
	int st = 0, rc = 0;
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		util_warn("beta %s: the training run failed (%s)", bs,
			  pid < 0 ? strerror(errno) : WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "see above");
		rc = -1;
	}
	free(av);
	return rc;
}

/* OUT/sweep.json: the policies of the sweep. */
static void write_sweep_json(const struct opts *o, cJSON *sum, int nb)
{
	char *js = cJSON_Print(sum), *path = xasprintf("%s/sweep.json", o->out);
	size_t len = strlen(js);
	js = xrealloc(js, len + 2);
	js[len++] = '\n';
	js[len] = '\0';
	if (util_write_file_atomic(path, js, len))
		util_die("%s: %s", path, strerror(errno));
	if (o->json && (fputs(js, stdout) == EOF || fflush(stdout)))
		util_die("writing the summary: %s", strerror(errno));
	if (!o->quiet)
		util_warn("%d policies in %s (listed in %s)", nb, o->out, path);
	free(path);
	free(js);
}

/* --beta-sweep: run this program once per beta with the same arguments
 * plus --beta B --out OUT/beta-B (and --log-json FILE.beta-B), one after the
 * other; a policy already there is reused. Returns the exit status. */
static int beta_sweep(const struct opts *o, int argc, char **argv)
{
	const struct beta_list *l = &o->beta_sweep;
	if (mkdir(o->out, 0777) && errno != EEXIST)
		util_die("%s: %s", o->out, strerror(errno));
	setenv("DPO_SWEEP_CHILD", "1", 1);
	cJSON *sum = cJSON_CreateObject(), *pol = cJSON_AddArrayToObject(sum, "policies");
	int status = UTIL_EXIT_OK;
	for (int i = 0; i < l->n; i++) {
		char bs[32];
		snprintf(bs, sizeof bs, "%g", l->v[i]);
		char *dir = xasprintf("%s/beta-%s", o->out, bs);
		char *done = xasprintf("%s/%s", dir,
				       o->lora_r ? "adapter_model.safetensors" : "model.safetensors");
		char *logj = o->log_json ? xasprintf("%s.beta-%s", o->log_json, bs) : NULL;
		struct stat sb;
		if (stat(done, &sb) == 0) {
			if (!o->quiet)
				util_warn("beta %s: reusing %s", bs, dir);
		} else {
			if (!o->quiet)
				util_warn("beta %s (%d of %d): training into %s", bs, i + 1, l->n, dir);
			if (train_one_beta(argc, argv, bs, dir, logj))
				status = UTIL_EXIT_FAIL;
		}
		cJSON *e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "beta", l->v[i]);
		cJSON_AddStringToObject(e, "dir", dir);
		cJSON_AddItemToArray(pol, e);
		free(dir);
		free(done);
		free(logj);
		if (status != UTIL_EXIT_OK || util_interrupted())
			break;
	}
	if (status == UTIL_EXIT_OK)
		write_sweep_json(o, sum, l->n);
	cJSON_Delete(sum);
	return status;
}

/* ---- data parallelism (trainer_mpi.h) ---- */

/* Rank 0's model (and adapter) and pairs to the other ranks (nothing in one process). */
static void share_inputs(run *r)
{
	r->m = train_mpi_share_model(r->m);
	if (r->o.lora_r) { /* and the adapter: rank 0's settings and weights */
		r->lora = train_mpi_share_lora(r->lora, train_model_config(r->m), (uint64_t)r->o.seed);
		if (!r->o.lora_targets) /* the default lora_setup chose on rank 0 */
			r->o.lora_targets = train_lora_default_targets(train_model_config(r->m));
	}
	train_mpi_share_pairs(&r->pairs, &r->n);
	train_mpi_share_pairs(&r->evals, &r->neval);
}

/* Under mpirun: refuse to go on when a rank has other settings than rank
 * 0 (its own config file): its loop would not match the others'. */
static void same_options(const run *r)
{
	char *pj = params_json(r), *all = xasprintf("%s eval-every %ld", pj, r->o.eval_every);
	train_mpi_check_same(all);
	free(pj);
	free(all);
}

/* After rank 0 resumed: its position, optimizer state and reference
 * log-probs to the other ranks. */
static void share_resumed(run *r)
{
	train_mpi_share_state(r->e, r->m, &r->loop);
	train_mpi_share_refs(r->pairs, r->n);
	train_mpi_share_refs(r->evals, r->neval);
}

/* A rank other than 0 after the loop: rank 0 says what happened. A failure
 * waits in MPI_Finalize for rank 0, whose exit ends the job. */
static int worker_end(run *r, int lrc)
{
	free_run(r);
	util_cli_free(&cli);
	train_mpi_finalize();
	return lrc == TRAIN_LOOP_STOPPED ? UTIL_EXIT_INTERRUPTED : lrc < 0 ? UTIL_EXIT_FAIL : UTIL_EXIT_OK;
}

/* Under mpirun: the ranks and the gradient allreduce's share of the time. */
static void mpi_report(const run *r)
{
	double all = r->loop_seconds, ar = train_mpi_allreduce_seconds();
	if (train_mpi_size() > 1 && !r->o.quiet)
		util_warn("%d MPI ranks; summing the gradients took %.2f s of %.2f s of training (%.1f%%)",
			  train_mpi_size(), ar, all, all > 0 ? 100 * ar / all : 0);
}

/* ---- the recipe ---- */

/* --precision: auto resolved (o->precision becomes "f32" or "bf16", the
 * value checkpoints record) and handed to the GEMMs. */
static void set_precision(struct opts *o)
{
	train_precision p = TRAIN_PREC_F32;
	train_precision_parse(o->precision, &p); /* one of the ENUM's choices */
	p = train_precision_resolve(p);
	if (p == TRAIN_PREC_BF16 && !train_cpu_has_avx512bf16())
		util_warn("--precision bf16: this CPU has no AVX512-BF16; the bf16 matmuls run on "
			  "the portable kernel (slow)");
	o->precision = train_precision_name(p);
	train_gemm_set_precision(p);
}

int main(int argc, char **argv)
{
	train_runtime_tune(argv);
	util_set_progname("dpo-train");
	static run R; /* zero: no checkpoint, the loop at step 0 */
	run *r = &R;
	int rank = train_mpi_init(&argc, &argv); /* 0 unless under mpirun */
	if (rank > 0) /* rank 0 alone prints --help, --version and usage errors */
		util_set_secondary(2.0);
	parse_options(&r->o, argc, argv);
	loss_config(&r->o, &r->loss);
	if (r->o.beta_sweep.n && train_mpi_started())
		util_cli_usage_error(&cli, "--beta-sweep runs one training after the other: not under mpirun");
	if (r->o.beta_sweep.n)
		return beta_sweep(&r->o, argc, argv);
	if (rank > 0)
		r->o.quiet = 1;
	set_threads(r->o.threads);
	set_precision(&r->o);
	util_catch_interrupts();
	r->cmdline = join_args(argc, argv);
	util_utc_now(r->started, sizeof r->started);

	if (rank == 0)
		load_inputs(r);     /* tokenizer, policy (or checkpoint), pairs */
	share_inputs(r);            /* under mpirun: rank 0's to the other ranks */
	plan_schedule(r);           /* steps, learning rate, AdamW */
	same_options(r);            /* every rank runs with rank 0's settings */
	if (r->o.resume) {          /* the position and state of the checkpoint */
		r->e = new_engine(r);
		if (rank == 0) {
			resume_checkpoint(r);
			start_run(r, argc, argv); /* the checkpoint's run row, continued */
		}
		share_resumed(r);
	} else {                    /* the reference log-probs, then the engine */
		start_run(r, argc, argv); /* the store's run row */
		reference_logps(r);  /* with --lora-r: of the base, the adapter off */
		r->e = new_engine(r);
	}
	prepare_loop(r);
	int lrc = train_loop_run(&r->loop);
	if (rank > 0)               /* rank 0 reports and saves */
		return worker_end(r, lrc);
	loop_result(r, lrc);
	save_model(r);              /* model, tokenizer files, dpo_run.json */
	mpi_report(r);
	end_run(r, "ok");
	if (!r->o.quiet)
		util_warn("saved the trained model to %s", r->o.out);
	free_run(r);
	util_cli_free(&cli);
	train_mpi_finalize();
	return UTIL_EXIT_OK;
}

/* gen_cli.h: the sampling options that `dpo-model generate`, dpo-generate
 * and dpo-eval share (--greedy, --temperature, --top-k, --top-p, --min-p,
 * --seed, --max-new-tokens, --stop, and --precision) as one block of their option tables
 * (util/opt.h), with the one default and range of each; the check of their
 * combination; the generation options and generator identity made from
 * them; and the stop-string handling during and after generation.
 *
 * A program puts the block in its table at its train_gen_cli member:
 *   struct opts { const char *model; train_gen_cli gen; ... };
 *   static const util_opt table[] = {
 *       ...,
 *       UTIL_OPT_INCLUDE_TABLE(struct opts, gen, train_gen_cli_opts),
 *       UTIL_OPT_TABLE_END,
 *   };
 * and after util_cli_parse checks it with train_gen_cli_check. */
#ifndef DPO_TRAIN_GEN_CLI_H
#define DPO_TRAIN_GEN_CLI_H
#include <stddef.h>

#include "train/gen.h"
#include "train/precision.h"
#include "train/sample.h"
#include "train/tokenizer.h"
#include "util/buf.h"
#include "util/opt.h"

/* The default of --max-new-tokens in every program (the table's .def, as a
 * string). 256: dpo-generate's since its first version, so that the
 * generators it stored with the default keep their identity (and a rerun
 * resumes them). */
#define TRAIN_GEN_MAX_NEW_DEFAULT "256"

typedef struct train_gen_cli {
	/* the options (train_gen_cli_opts) */
	int greedy;              /* --greedy */
	double temperature;      /* --temperature, (0, inf), default 1 */
	long top_k;              /* --top-k, [0, inf), 0 = off */
	double top_p;            /* --top-p, (0, 1], 1 = off */
	double min_p;            /* --min-p, [0, 1), 0 = off */
	long seed;               /* --seed, [0, inf), default 0 */
	long max_new;            /* --max-new-tokens, [1, 1048576], default 256 */
	util_opt_list stop;      /* --stop STR (repeatable); strings owned by argv or the cli */
	util_opt_list chat_vars; /* --chat-var NAME=VALUE (repeatable; train/chat.h) */
	train_precision precision; /* --precision f32|bf16|auto, default f32 */
	/* set by the program before generating */
	train_tokenizer *tok;    /* decodes for the stop-string check */
	int (*interrupted)(void); /* optional: when it returns nonzero every row ends */
} train_gen_cli;

/* The sampling options as a block for UTIL_OPT_INCLUDE_TABLE (a heading
 * "Sampling:" first), then --chat-var under "Chat template:", then
 * --precision under "Precision:". */
extern const util_opt train_gen_cli_opts[];

/* What the table cannot check: a combination of the options, an empty
 * --stop string (it would end every completion at once), or a --chat-var
 * that is not NAME=VALUE (train_gen_cli_chat_var_check). Returns NULL when
 * g is usable, else a static message for util_cli_usage_error. */
const char *train_gen_cli_check(const train_gen_cli *g);

/* The sampling parameters of g (top-k above INT_MAX reads as INT_MAX, i.e.
 * off). */
train_sampling train_gen_cli_sampling(const train_gen_cli *g);

/* The generation options of g: sampling, max_new, rows decoded together
 * (batch), and the stop callback (train_gen_cli_stop with ctx g) when there
 * are stop strings or an interruption check. The EOS ids are the caller's
 * (train_gen_prompt.eos). g must outlive the options. */
train_gen_opts train_gen_cli_gen_opts(train_gen_cli *g, int batch);

/* The generator identity's fields from g (train_gen_params_json):
 * chat_plain and chat_format as the program has them. The stop strings are
 * g's. */
train_gen_params train_gen_cli_params(const train_gen_cli *g, int chat_plain,
				      const char *chat_format);

/* A train_gen_opts stop callback (ctx is the train_gen_cli): ends a row
 * whose decoded text contains a stop string, or every row once
 * g->interrupted() is nonzero. */
int train_gen_cli_stop(void *ctx, int row, const int32_t *ids, int n);

/* Cut text (modified in place) at its earliest stop string; returns text. */
char *train_gen_cli_cut(const train_gen_cli *g, char *text);

/* NULL when every one of the n settings v is a usable --chat-var
 * NAME=VALUE (NAME an identifier other than messages and
 * add_generation_prompt), else a static message for util_cli_usage_error. */
const char *train_gen_cli_chat_var_check(const char *const *v, int n);

/* The --chat-var option over a util_opt_list field of type: */
#define TRAIN_GEN_OPT_CHAT_VAR(type, field)                                                     \
	{"chat-var", 0, UTIL_OPT_LIST, offsetof(type, field), .arg = "NAME=VALUE",              \
	 .help = TRAIN_CHAT_VAR_HELP}

/* --chat-format NAME, a CALL option over a const char * (the name as
 * given): accepts the names of train_chat_format_parse, else fails with
 * "expected one of ...". Its help text lists the names: */
int train_gen_cli_chat_format(void *target, const char *value, char *err, size_t errlen);
#define TRAIN_GEN_CHAT_FORMAT_NAMES "chatml (or qwen), llama3, zephyr, llama2, mistral"
#define TRAIN_GEN_OPT_CHAT_FORMAT(type, field, helptext)                                        \
	{"chat-format", 0, UTIL_OPT_CALL, offsetof(type, field), .arg = "NAME",                 \
	 .call = train_gen_cli_chat_format, .help = helptext}

/* --precision P, a CALL option over a train_precision: f32 (also fp32,
 * float32), bf16 (also bfloat16) or auto (train/precision.h), default f32.
 * The program loads its models with train_model_load_prec. */
int train_gen_cli_precision(void *target, const char *value, char *err, size_t errlen);
#define TRAIN_GEN_PRECISION_HELP                                                                \
	"f32, bf16 (weights held in bfloat16: half the\nmemory, faster decoding; float32 "      \
	"arithmetic)\nor auto (bf16 where the CPU has AVX512-BF16)"
#define TRAIN_GEN_OPT_PRECISION(type, field)                                                    \
	{"precision", 0, UTIL_OPT_CALL, offsetof(type, field), .arg = "P", .def = "f32",        \
	 .call = train_gen_cli_precision, .help = TRAIN_GEN_PRECISION_HELP}

/* A run's parameters: the options cli parsed (util_cli_params_json) with
 * extra, members of a JSON object ("\"key\":value,...", or NULL),
 * appended inside the object. Appends to b. */
void train_gen_run_params(const util_cli *cli, const char *extra, util_buf *b);

#endif

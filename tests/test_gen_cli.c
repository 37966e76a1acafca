/* test_gen_cli.c: the shared block of sampling options (train/gen_cli.h):
 * its defaults agree with train_sampling_default and give dpo-generate's
 * generator identity of old, its ranges and checks, the generation options
 * and identity made from it, stop strings, --chat-format, run params. */
#include "tests/tap.h"
#include "train/chat.h"
#include "train/gen_cli.h"
#include "util/opt.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

struct prog {
	const char *fmt;
	int json;
	train_gen_cli gen;
};

static const util_opt table[] = {
	TRAIN_GEN_OPT_CHAT_FORMAT(struct prog, fmt, "template family"),
	UTIL_OPT_JSON(struct prog, json),
	UTIL_OPT_INCLUDE_TABLE(struct prog, gen, train_gen_cli_opts),
	UTIL_OPT_TABLE_END,
};

static util_cli cli = {.name = "dpo-t", .opts = table};

/* Parse a space-separated command line into p; the message goes to err. */
static int run(struct prog *p, const char *line, char *err, size_t n)
{
	static char *argv[64];
	int argc = tap_split_args(line, argv, 64);
	memset(p, 0, sizeof *p);
	err[0] = 0;
	FILE *devnull = fopen("/dev/null", "w");
	int rc = util_cli_parse_r(&cli, p, argc, argv, devnull, err, n);
	fclose(devnull);
	return rc;
}

static void defaults(void)
{
	struct prog p;
	char err[512];
	TAP_IS_INT(run(&p, "", err, sizeof err), 0, "no options: parses");
	train_sampling s = train_gen_cli_sampling(&p.gen), d;
	train_sampling_default(&d);
	TAP_OK(s.greedy == d.greedy && s.temperature == d.temperature && s.top_k == d.top_k &&
		       s.top_p == d.top_p && s.min_p == d.min_p,
	       "the table's sampling defaults are train_sampling_default's");
	TAP_IS_INT(p.gen.max_new, 256, "--max-new-tokens defaults to 256");
	TAP_IS_INT(p.gen.seed, 0, "--seed defaults to 0");
	TAP_IS_INT(p.gen.stop.n, 0, "no stop strings");
	TAP_OK(train_gen_cli_check(&p.gen) == NULL, "the defaults pass the check");
	util_buf b = UTIL_BUF_INIT;
	train_gen_params gp = train_gen_cli_params(&p.gen, 0, NULL);
	train_gen_params_json(&b, &gp);
	TAP_IS_STR(util_buf_str(&b),
		   "{\"greedy\":false,\"max_new_tokens\":256,\"min_p\":0,\"seed\":0,\"stop\":[],"
		   "\"temperature\":1,\"top_k\":0,\"top_p\":1}",
		   "the defaults give dpo-generate's identity of old");
	util_buf_free(&b);
}

static void values_and_ranges(void)
{
	struct prog p;
	char err[512];
	TAP_IS_INT(run(&p, "--greedy --temperature 0.5 --top-k 7 --top-p 0.9 --min-p 0.1 --seed 3 "
			   "--max-new-tokens 9 --stop x --stop y,z",
		       err, sizeof err),
		   0, "every option of the block");
	train_sampling s = train_gen_cli_sampling(&p.gen);
	TAP_OK(s.greedy && s.temperature == 0.5 && s.top_k == 7 && s.top_p == 0.9 && s.min_p == 0.1,
	       "they reach the sampling parameters");
	TAP_IS_INT(p.gen.stop.n, 2, "--stop twice: two strings");
	TAP_IS_STR(p.gen.stop.v[1], "y,z", "a stop string keeps its commas");
	train_gen_opts go = train_gen_cli_gen_opts(&p.gen, 3);
	TAP_OK(go.max_new == 9 && go.batch == 3 && go.stop == train_gen_cli_stop && go.ctx == &p.gen,
	       "generation options: max_new, batch, the stop callback");
	util_buf b = UTIL_BUF_INIT;
	train_gen_params gp = train_gen_cli_params(&p.gen, 1, "qwen");
	train_gen_params_json(&b, &gp);
	TAP_IS_STR(util_buf_str(&b),
		   "{\"chat\":true,\"chat_format\":\"chatml\",\"greedy\":true,\"max_new_tokens\":9,"
		   "\"min_p\":0.10000000000000001,\"seed\":3,\"stop\":[\"x\",\"y,z\"],\"temperature\":0.5,"
		   "\"top_k\":7,\"top_p\":0.90000000000000002}",
		   "identity from the options");
	util_buf_free(&b);

	TAP_IS_INT(run(&p, "", err, sizeof err), 0, "no options again");
	go = train_gen_cli_gen_opts(&p.gen, 1);
	TAP_OK(go.stop == NULL, "no stop strings, no interruption check: no callback");

	static const struct {
		const char *line, *msg;
	} bad[] = {
		{"--temperature -1", "--temperature: expected a number in (0, inf), got \"-1\""},
		{"--temperature 0", "--temperature: expected a number in (0, inf), got \"0\""},
		{"--top-k -1", "--top-k: expected an integer in [0, inf), got \"-1\""},
		{"--top-p 0", "--top-p: expected a number in (0, 1], got \"0\""},
		{"--top-p 1.5", "--top-p: expected a number in (0, 1], got \"1.5\""},
		{"--min-p 1", "--min-p: expected a number in [0, 1), got \"1\""},
		{"--seed -2", "--seed: expected an integer in [0, inf), got \"-2\""},
		{"--max-new-tokens 0", "--max-new-tokens: expected an integer in [1, 1048576], got \"0\""},
		{"--chat-format vicuna", "--chat-format: expected one of chatml (or qwen), llama3, zephyr, "
					 "llama2, mistral, got \"vicuna\""},
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		int rc = run(&p, bad[i].line, err, sizeof err);
		TAP_OK(rc == 2 && !strcmp(err, bad[i].msg), "%s: %s", bad[i].line, err);
	}
	TAP_IS_INT(run(&p, "--chat-format QWEN", err, sizeof err), 0, "--chat-format: any case");
	TAP_IS_STR(p.fmt, "QWEN", "--chat-format keeps the name as given");
	TAP_IS_STR(TRAIN_GEN_CHAT_FORMAT_NAMES, train_chat_format_names(),
		   "the names in --help are train/chat's");
}

static void checks(void)
{
	struct prog p;
	char err[512];
	char *argv[] = {"dpo-t", "--stop", "", NULL};
	memset(&p, 0, sizeof p);
	FILE *devnull = fopen("/dev/null", "w");
	TAP_IS_INT(util_cli_parse_r(&cli, &p, 3, argv, devnull, err, sizeof err), 0, "--stop ''");
	fclose(devnull);
	const char *m = train_gen_cli_check(&p.gen);
	TAP_OK(m && strstr(m, "--stop"), "an empty stop string is refused: %s", m ? m : "(none)");
	/* a caller that fills the struct itself still gets the sampler's check */
	train_gen_cli g = {.temperature = 0, .top_p = 1, .max_new = 1};
	m = train_gen_cli_check(&g);
	TAP_OK(m && strstr(m, "temperature"), "temperature 0 set by hand: %s", m ? m : "(none)");
	g.temperature = 1;
	g.max_new = 0;
	TAP_OK(train_gen_cli_check(&g) != NULL, "max_new 0 set by hand is refused");
	g.max_new = 1;
	g.greedy = 1;
	g.temperature = 0;
	TAP_OK(train_gen_cli_check(&g) == NULL, "greedy set by hand: the sampling fields are not checked");
}

static void stops(void)
{
	struct prog p;
	char err[512];
	TAP_IS_INT(run(&p, "--stop lo --stop he", err, sizeof err), 0, "two stop strings");
	char t1[] = "hello world", t2[] = "no match";
	TAP_IS_STR(train_gen_cli_cut(&p.gen, t1), "", "cut at the earliest stop string (he)");
	TAP_IS_STR(train_gen_cli_cut(&p.gen, t2), "no match", "no stop string: unchanged");
	TAP_IS_INT(train_gen_cli_stop(&p.gen, 0, NULL, 0), 0, "without a tokenizer no row stops");
}

static int stop_now(void)
{
	return 1;
}

static void interruption(void)
{
	struct prog p;
	char err[512];
	TAP_IS_INT(run(&p, "", err, sizeof err), 0, "no options");
	p.gen.interrupted = stop_now;
	train_gen_opts go = train_gen_cli_gen_opts(&p.gen, 1);
	TAP_OK(go.stop == train_gen_cli_stop, "an interruption check installs the callback");
	TAP_IS_INT(go.stop(go.ctx, 0, NULL, 0), 1, "interrupted: every row ends");
}

static void run_params(void)
{
	struct prog p;
	char err[512];
	util_buf b = UTIL_BUF_INIT;
	TAP_IS_INT(run(&p, "--json --top-k 2 --stop x", err, sizeof err), 0, "options for the params");
	train_gen_run_params(&cli, "\"fingerprint\": \"ab\"", &b);
	TAP_IS_STR(util_buf_str(&b),
		   "{\"temperature\": 1, \"top-k\": 2, \"top-p\": 1, \"min-p\": 0, \"seed\": 0, "
		   "\"max-new-tokens\": 256, \"stop\": [\"x\"], \"precision\": \"f32\", "
		   "\"fingerprint\": \"ab\"}",
		   "run params: the options (not --json) and the extra member");
	util_buf_reset(&b);
	train_gen_run_params(&cli, NULL, &b);
	TAP_OK(b.len > 2 && b.data[b.len - 1] == '}' && !strstr(b.data, "fingerprint"),
	       "run params without extra members");
	util_buf_free(&b);
	static const util_opt empty_table[] = {UTIL_OPT_TABLE_END};
	util_cli empty = {.name = "dpo-e", .opts = empty_table};
	char *argv[] = {"dpo-e", NULL};
	char none = 0;
	TAP_IS_INT(util_cli_parse_r(&empty, &none, 1, argv, stdout, err, sizeof err), 0, "no table");
	train_gen_run_params(&empty, "\"a\": 1", &b);
	TAP_IS_STR(util_buf_str(&b), "{\"a\": 1}", "run params of no options: the extra member alone");
	util_buf_free(&b);
	util_cli_free(&empty);
}

int main(void)
{
	defaults();
	values_and_ranges();
	checks();
	stops();
	interruption();
	run_params();
	util_cli_free(&cli);
	return tap_done();
}

/* test_opt.c: the option-table parser (util/opt.h): kinds, ranges, error
 * wording, defaults < config < command line, includes, usage text, params. */
#include "tests/tap.h"
#include "util/opt.h"
#include "util/buf.h"
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

struct samp {
	double temperature;
	long top_k;
};

static const util_opt samp_opts[] = {
	{"temperature", 0, UTIL_OPT_FLOAT, offsetof(struct samp, temperature), .def = "1", .range = "[0, inf)",
	 .arg = "T", .help = "sampling temperature"},
	{"top-k", 0, UTIL_OPT_INT, offsetof(struct samp, top_k), .def = "0", .range = "[0, inf)", .help = "top-k"},
	UTIL_OPT_TABLE_END,
};

static int parse_pair(void *target, const char *v, char *err, size_t n)
{
	int a, b, used = 0;
	if (sscanf(v, "%d:%d%n", &a, &b, &used) != 2 || v[used]) {
		snprintf(err, n, "expected A:B, got \"%s\"", v);
		return -1;
	}
	((int *)target)[0] = a;
	((int *)target)[1] = b;
	return 0;
}

struct o {
	const char *db;
	int json, quiet, swap;
	long steps, seed;
	double beta;
	const char *loss, *out, *name;
	util_opt_list stops, sweep;
	int pair[2];
	const char *key;
	struct samp s;
};

static const util_opt table[] = {
	UTIL_OPT_DB(struct o, db),
	{"steps", 'n', UTIL_OPT_INT, offsetof(struct o, steps), .def = "10", .range = "[1, 1000]",
	 .help = "training steps"},
	{"beta", 0, UTIL_OPT_FLOAT, offsetof(struct o, beta), .def = "0.1", .range = "(0, inf)", .arg = "B",
	 .help = "DPO beta"},
	{"loss", 0, UTIL_OPT_ENUM, offsetof(struct o, loss), .def = "sigmoid", .choices = "sigmoid|ipo|hinge",
	 .help = "loss"},
	{"out", 'o', UTIL_OPT_PATH, offsetof(struct o, out), .help = "output folder"},
	{"name", 0, UTIL_OPT_STRING, offsetof(struct o, name), .help = "a name"},
	{"no-swap", 0, UTIL_OPT_FLAG_OFF, offsetof(struct o, swap), .def = "true", .help = "one order only"},
	{"stop", 0, UTIL_OPT_LIST, offsetof(struct o, stops), .help = "stop string (repeatable)"},
	{"sweep", 0, UTIL_OPT_LIST, offsetof(struct o, sweep), .def = "a,b", .flags = UTIL_OPT_COMMAS,
	 .help = "values"},
	{"pair", 0, UTIL_OPT_CALL, offsetof(struct o, pair), .arg = "A:B", .call = parse_pair, .help = "a pair"},
	{"api-key", 0, UTIL_OPT_STRING, offsetof(struct o, key), .flags = UTIL_OPT_SECRET, .help = "key"},
	UTIL_OPT_SEED(struct o, seed, "0"),
	UTIL_OPT_JSON(struct o, json),
	UTIL_OPT_QUIET(struct o, quiet),
	UTIL_OPT_HEADING("Sampling:"),
	UTIL_OPT_INCLUDE_TABLE(struct o, s, samp_opts),
	UTIL_OPT_TABLE_END,
};

static util_cli cli = {.name = "dpo-t", .synopsis = "[OPTIONS] FILE...", .summary = "A test program.",
		       .opts = table, .min_args = 0, .max_args = 2};

/* Parse a space-separated command line; returns the code, err holds the message. */
static int run(struct o *o, const char *line, char *err, size_t n)
{
	static char *argv[64];
	int argc = tap_split_args(line, argv, 64);
	memset(o, 0, sizeof *o);
	err[0] = 0;
	FILE *devnull = fopen("/dev/null", "w");
	int rc = util_cli_parse_r(&cli, o, argc, argv, devnull, err, n);
	fclose(devnull);
	return rc;
}

static void defaults_and_values(void)
{
	struct o o;
	char err[512];
	TAP_IS_INT(run(&o, "", err, sizeof err), 0, "empty command line parses");
	TAP_IS_INT(o.steps, 10, "int default");
	TAP_NEAR(o.beta, 0.1, 0, "float default");
	TAP_IS_STR(o.loss, "sigmoid", "enum default");
	TAP_IS_INT(o.swap, 1, "flag-off: initial value from .def");
	TAP_NEAR(o.s.temperature, 1, 0, "included table's default");
	TAP_IS_INT(o.sweep.n, 2, "comma list default: two values");
	TAP_IS_INT(util_cli_source(&cli, "steps"), UTIL_OPT_FROM_DEFAULT, "source: default");
	TAP_IS_INT(util_cli_source(&cli, "out"), UTIL_OPT_UNSET, "source: unset");

	TAP_IS_INT(run(&o, "--steps 5 --beta=0.5 --loss ipo -o dir --no-swap -q --json a b", err, sizeof err), 0,
		   "long, --x=y, short, flags, positionals");
	TAP_IS_INT(o.steps, 5, "--steps 5");
	TAP_NEAR(o.beta, 0.5, 0, "--beta=0.5");
	TAP_IS_STR(o.loss, "ipo", "--loss ipo");
	TAP_IS_STR(o.out, "dir", "-o dir");
	TAP_IS_INT(o.swap, 0, "--no-swap");
	TAP_IS_INT(o.quiet && o.json, 1, "-q --json");
	TAP_IS_INT(cli.nargs, 2, "two positionals");
	TAP_IS_STR(cli.args[1], "b", "positional order kept");
	TAP_IS_INT(util_cli_source(&cli, "steps"), UTIL_OPT_FROM_ARGS, "source: command line");

	TAP_IS_INT(run(&o, "-qn7 --temp 0.7 --top-k 3", err, sizeof err), 0, "cluster -qn7, unique prefix");
	TAP_IS_INT(o.steps, 7, "-n7 inside a cluster");
	TAP_NEAR(o.s.temperature, 0.7, 0, "--temp prefix of --temperature");
	TAP_IS_INT(o.s.top_k, 3, "included int");

	TAP_IS_INT(run(&o, "--stop x --stop y --sweep c,d,e --pair 3:4 a -- --steps", err, sizeof err), 0,
		   "lists, callback, --");
	TAP_IS_INT(o.stops.n, 2, "repeatable list");
	TAP_IS_STR(o.stops.v[1], "y", "list order");
	TAP_IS_INT(o.sweep.n, 3, "command line replaces the default list");
	TAP_IS_STR(o.sweep.v[2], "e", "comma split");
	TAP_IS_INT(o.pair[0] * 10 + o.pair[1], 34, "callback parsed");
	TAP_IS_STR(cli.args[1], "--steps", "after --, options are arguments");
	TAP_IS_INT(cli.dashdash, 1, "one argument came before --");
	TAP_IS_INT(run(&o, "a", err, sizeof err) || cli.dashdash != -1, 0, "no --: dashdash is -1");
	TAP_IS_INT(run(&o, "--steps 1 --steps 2", err, sizeof err), 0, "repeated option");
	TAP_IS_INT(o.steps, 2, "last one wins");
	TAP_IS_INT(run(&o, "--beta -1e-3", err, sizeof err), 2, "a value may start with '-'");
}

static void errors(void)
{
	static const struct {
		const char *line, *msg;
	} cases[] = {
		{"--beta abc", "--beta: expected a number in (0, inf), got \"abc\""},
		{"--beta 0", "--beta: expected a number in (0, inf), got \"0\""},
		{"--beta inf", "--beta: expected a number in (0, inf), got \"inf\""},
		{"--steps 0", "--steps: expected an integer in [1, 1000], got \"0\""},
		{"--steps 1001", "--steps: expected an integer in [1, 1000], got \"1001\""},
		{"--steps 2.5", "--steps: expected an integer in [1, 1000], got \"2.5\""},
		{"-n x", "-n: expected an integer in [1, 1000], got \"x\""},
		{"--seed -1", "--seed: expected an integer in [0, inf), got \"-1\""},
		{"--loss dpo", "--loss: expected one of sigmoid, ipo, hinge, got \"dpo\""},
		{"--out=", "--out: expected a path, got \"\""},
		{"--frob", "unknown option --frob"},
		{"-x", "unknown option -x"},
		{"--s 1", "option --s is ambiguous"},
		{"--steps", "--steps: missing value"},
		{"--json=1", "--json: takes no value"},
		{"--pair 3", "--pair: expected A:B, got \"3\""},
		{"--sweep a,,b", "--sweep: expected values separated by commas, got \"a,,b\""},
		{"a b c", "unexpected argument 'c'"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct o o;
		char err[512];
		int rc = run(&o, cases[i].line, err, sizeof err);
		TAP_IS_INT(rc, 2, "'%s' is a usage error", cases[i].line);
		TAP_IS_STR(err, cases[i].msg, "'%s': message", cases[i].line);
	}
}

static void help_and_params(void)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	struct o o = {0};
	char *argv[] = {"dpo-t", "--help", NULL};
	char err[256];
	TAP_IS_INT(util_cli_parse_r(&cli, &o, 2, argv, f, err, sizeof err), 1, "--help is handled");
	fclose(f);
	TAP_OK(strstr(text, "Usage: dpo-t [OPTIONS] FILE...\nA test program.\n"), "usage line and summary");
	TAP_OK(strstr(text, "  -n, --steps N") && strstr(text, "training steps (default 10)"), "short+long, default shown");
	TAP_OK(strstr(text, "      --beta B"), "the arg name from the table");
	TAP_OK(strstr(text, "--loss sigmoid|ipo|hinge"), "enum choices as the arg");
	TAP_OK(strstr(text, "\nSampling:\n      --temperature T"), "heading, then the included block");
	TAP_OK(strstr(text, "--db PATH") && strstr(text, "database (default $DPO_DB, else ./dpo.db)"), "common --db");
	TAP_OK(strstr(text, "  -h, --help") && strstr(text, "--version"), "--help and --version listed");
	free(text);

	char e2[256];
	TAP_IS_INT(run(&o, "--beta 0.25 --stop x --api-key sk-secret --db d.db --json --pair 1:2", e2, sizeof e2), 0,
		   "parse for params");
	util_buf b = UTIL_BUF_INIT;
	util_cli_params_json(&cli, &b);
	const char *p = util_buf_str(&b);
	TAP_OK(strstr(p, "\"beta\": 0.25"), "params: float");
	TAP_OK(strstr(p, "\"steps\": 10"), "params: defaults included");
	TAP_OK(strstr(p, "\"stop\": [\"x\"]"), "params: list");
	TAP_OK(strstr(p, "\"pair\": \"1:2\""), "params: callback value as given");
	TAP_OK(strstr(p, "\"temperature\": 1"), "params: included block");
	TAP_OK(!strstr(p, "sk-secret") && !strstr(p, "api-key"), "params: secrets left out");
	TAP_OK(!strstr(p, "d.db") && !strstr(p, "json"), "params: --db and --json left out");
	TAP_OK(!strstr(p, "\"out\""), "params: unset options left out");
	util_buf_free(&b);
}

static void config_file(void)
{
	char dir[] = "/tmp/test_opt.XXXXXX";
	TAP_OK(mkdtemp(dir) != NULL, "temp dir");
	char path[256];
	snprintf(path, sizeof path, "%s/config", dir);
	FILE *f = fopen(path, "w");
	fprintf(f, "# defaults\n[dpo]\nthreads = 3\nbeta = 0.3\n\n[other]\nsteps = 99\n[dpo-t]\n"
		   "steps = 20\nloss = \"hinge\"\nno-swap = true\nsweep = x,y,z\n");
	fclose(f);
	setenv("DPO_CONFIG", path, 1);
	struct o o;
	char err[512];
	TAP_IS_INT(run(&o, "", err, sizeof err), 0, "config read");
	TAP_IS_INT(o.steps, 20, "config's own section sets a default");
	TAP_NEAR(o.beta, 0.3, 0, "[dpo] section applies to options the program has");
	TAP_IS_STR(o.loss, "hinge", "quoted value");
	TAP_IS_INT(o.swap, 0, "flag from config");
	TAP_IS_INT(o.sweep.n, 3, "config list replaces the default");
	TAP_IS_INT(util_cli_source(&cli, "steps"), UTIL_OPT_FROM_CONFIG, "source: config");
	TAP_IS_INT(run(&o, "--steps 4 --sweep q", err, sizeof err), 0, "command line over config");
	TAP_IS_INT(o.steps, 4, "command line wins");
	TAP_IS_INT(o.sweep.n, 1, "command line list replaces config's");

	char *text = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&text, &len);
	char *argv[] = {"dpo-t", "--help", NULL};
	util_cli_parse_r(&cli, &o, 2, argv, m, err, sizeof err);
	fclose(m);
	char want[400];
	snprintf(want, sizeof want, "(default 20, from %s)", path);
	TAP_OK(strstr(text, want), "--help says where a default came from");
	free(text);

	f = fopen(path, "w");
	fprintf(f, "[dpo-t]\nsteps = 5000\n");
	fclose(f);
	TAP_IS_INT(run(&o, "", err, sizeof err), 2, "bad config value is a usage error");
	char w2[400];
	snprintf(w2, sizeof w2, "%s:2: steps: expected an integer in [1, 1000], got \"5000\"", path);
	TAP_IS_STR(err, w2, "names the file, line and option");
	f = fopen(path, "w");
	fprintf(f, "[dpo-t]\nfrobs = 1\n");
	fclose(f);
	TAP_IS_INT(run(&o, "", err, sizeof err), 2, "unknown key in the program's section");
	TAP_OK(strstr(err, ":2: dpo-t has no option 'frobs'") != NULL, "names the key");
	f = fopen(path, "w");
	fprintf(f, "[dpo-t]\ndb = x.db\n");
	fclose(f);
	TAP_IS_INT(run(&o, "", err, sizeof err), 2, "--db may not come from the config file");
	unlink(path);
	TAP_IS_INT(run(&o, "", err, sizeof err), 0, "a missing config file is fine");
	setenv("DPO_CONFIG", "", 1);
	TAP_IS_INT(run(&o, "", err, sizeof err), 0, "DPO_CONFIG empty: none");
	rmdir(dir);
	util_cli_free(&cli);
	util_cli_free(&cli);
	TAP_OK(cli.st == NULL && cli.args == NULL && cli.nargs == 0, "util_cli_free forgets the parse (twice is safe)");
}

static int cmd_a(int argc, char **argv) { return argc; }

static void commands(void)
{
	static const util_cmd cmds[] = {{"init", cmd_a, "create"}, {"stats", cmd_a, "count"}, {NULL, NULL, NULL}};
	TAP_OK(util_cmd_find(cmds, "stats") == &cmds[1], "find a command");
	TAP_OK(util_cmd_find(cmds, "stat") == NULL, "no prefix match for commands");
	util_buf b = UTIL_BUF_INIT;
	util_cmd_names(cmds, &b);
	TAP_IS_STR(util_buf_str(&b), "init, stats", "command names");
	util_buf_free(&b);
}

int main(void)
{
	setenv("DPO_CONFIG", "", 1);
	defaults_and_values();
	errors();
	help_and_params();
	config_file();
	commands();
	return tap_done();
}

/* fuzz_opt.c: libFuzzer target for the option parser (util/opt.h): the
 * input up to the first "\n--\n" is a config file, the rest a command line
 * (one argument per line). Every kind of option is in the table; --help
 * output goes to /dev/null. */
#include "config.h"
#include "util/opt.h"
#include "util/xmalloc.h"
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct inner {
	double x;
	const char *kind;
};

struct fo {
	const char *db, *name, *out;
	int json, quiet, swap;
	long n, threads, seed;
	struct inner in;
	util_opt_list list, commas;
	int pair[2];
};

static int parse_pair(void *target, const char *v, char *err, size_t n)
{
	int used = 0;
	if (sscanf(v, "%d:%d%n", (int *)target, (int *)target + 1, &used) != 2 || v[used]) {
		snprintf(err, n, "expected A:B");
		return -1;
	}
	return 0;
}

static const util_opt inner[] = {
	{"x", 'x', UTIL_OPT_FLOAT, offsetof(struct inner, x), .def = "0.5", .range = "(0, 1]", .help = "x"},
	{"kind", 'k', UTIL_OPT_ENUM, offsetof(struct inner, kind), .def = "a", .choices = "a|bb|ccc", .help = "k"},
	UTIL_OPT_TABLE_END,
};

static const util_opt table[] = {
	UTIL_OPT_DB(struct fo, db),
	UTIL_OPT_JSON(struct fo, json),
	UTIL_OPT_QUIET(struct fo, quiet),
	UTIL_OPT_THREADS(struct fo, threads),
	UTIL_OPT_SEED(struct fo, seed, "0"),
	{"n", 'n', UTIL_OPT_INT, offsetof(struct fo, n), .def = "3", .range = "[1, 100]", .help = "n"},
	{"name", 0, UTIL_OPT_STRING, offsetof(struct fo, name), .help = "name"},
	{"out", 'o', UTIL_OPT_PATH, offsetof(struct fo, out), .help = "out"},
	{"no-swap", 0, UTIL_OPT_FLAG_OFF, offsetof(struct fo, swap), .def = "true", .help = "swap"},
	{"stop", 0, UTIL_OPT_LIST, offsetof(struct fo, list), .help = "stop"},
	{"sweep", 0, UTIL_OPT_LIST, offsetof(struct fo, commas), .def = "1,2", .flags = UTIL_OPT_COMMAS,
	 .help = "sweep"},
	{"pair", 0, UTIL_OPT_CALL, offsetof(struct fo, pair), .call = parse_pair, .help = "pair"},
	UTIL_OPT_HEADING("More:"),
	UTIL_OPT_INCLUDE_TABLE(struct fo, in, inner),
	UTIL_OPT_TABLE_END,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	if (!path[0]) {
		snprintf(path, sizeof path, "/tmp/fuzz_opt.%ld.config", (long)getpid());
		setenv("DPO_CONFIG", path, 1);
	}
	char *text = xstrndup((const char *)data, size);
	char *sep = strstr(text, "\n--\n");
	char *args = sep ? sep + 4 : text + strlen(text);
	FILE *f = fopen(path, "w");
	if (f) {
		fwrite(text, 1, sep ? (size_t)(sep - text) : 0, f);
		fclose(f);
	}
	char *argv[64];
	int argc = 0;
	argv[argc++] = "fuzz";
	for (char *p = args; *p && argc < 63;) {
		char *nl = strchr(p, '\n');
		if (nl)
			*nl = 0;
		argv[argc++] = p;
		if (!nl)
			break;
		p = nl + 1;
	}
	argv[argc] = NULL;
	static util_cli cli = {.name = "fuzz", .synopsis = "[OPTIONS] [ARG]", .opts = table, .max_args = 1};
	struct fo o;
	memset(&o, 0, sizeof o);
	char err[512];
	FILE *devnull = fopen("/dev/null", "w");
	if (util_cli_parse_r(&cli, &o, argc, argv, devnull, err, sizeof err) == 0) {
		util_buf b = UTIL_BUF_INIT;
		util_cli_params_json(&cli, &b);
		util_buf_free(&b);
		util_cli_usage(&cli, devnull);
	}
	fclose(devnull);
	util_cli_free(&cli);
	unlink(path);
	free(text);
	return 0;
}

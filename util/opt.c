/* opt.c: the option-table parser (see opt.h). */
#include "config.h"
#include "util/opt.h"
#include "util/cli.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* One table entry with its target resolved (tables flattened, includes
 * expanded), and where its value came from. */
struct entry {
	const util_opt *o;
	char *target;
	int source;
	const char *raw; /* the last value given (CALL options are serialised from it) */
};

struct util_cli_state {
	struct entry *e;
	size_t n, cap;
	char **owned; /* strings and arrays this parse allocated */
	size_t nowned, capowned;
	const char *config; /* the config file that set something, for --help */
};

static void *own(struct util_cli_state *st, void *p)
{
	if (st->nowned == st->capowned)
		st->owned = xreallocarray(st->owned, st->capowned = st->capowned ? 2 * st->capowned : 16,
					  sizeof *st->owned);
	st->owned[st->nowned++] = p;
	return p;
}

static void flatten(struct util_cli_state *st, const util_opt *t, char *base)
{
	for (; t && t->kind != UTIL_OPT_END; t++) {
		if (t->kind == UTIL_OPT_INCLUDE) {
			flatten(st, t->sub, base + t->off);
			continue;
		}
		if (st->n == st->cap)
			st->e = xreallocarray(st->e, st->cap = st->cap ? 2 * st->cap : 32, sizeof *st->e);
		st->e[st->n++] = (struct entry){t, base + t->off, UTIL_OPT_UNSET, NULL};
	}
}

static int takes_value(const util_opt *o)
{
	switch (o->kind) {
	case UTIL_OPT_FLAG:
	case UTIL_OPT_FLAG_OFF:
		return 0;
	case UTIL_OPT_CALL:
		return !(o->flags & UTIL_OPT_NOARG);
	default:
		return 1;
	}
}

static const char *arg_name(const util_opt *o)
{
	if (o->arg)
		return o->arg;
	switch (o->kind) {
	case UTIL_OPT_INT: return "N";
	case UTIL_OPT_FLOAT: return "X";
	case UTIL_OPT_PATH: return "PATH";
	case UTIL_OPT_ENUM: return o->choices;
	case UTIL_OPT_LIST: return "LIST";
	default: return "VALUE";
	}
}

/* A range "[a, b]" / "(a, b)" / "[a, inf)": parsed each time it is checked
 * (tables stay plain strings that --help and errors print as written). */
static int in_range(const char *range, double v)
{
	if (!range)
		return 1;
	const char *p = range;
	int lo_open = *p == '(';
	if (*p == '(' || *p == '[')
		p++;
	char *end;
	double lo = strtod(p, &end);
	if (end == p)
		return 1; /* a malformed range admits everything (assert would be nicer for tables) */
	p = end;
	while (*p == ',' || *p == ' ')
		p++;
	double hi = strtod(p, &end);
	if (end == p)
		return 1;
	p = end;
	int hi_open = *p == ')';
	if (lo_open ? !(v > lo) : !(v >= lo))
		return 0;
	if (hi_open ? !(v < hi) : !(v <= hi))
		return 0;
	return 1;
}

static void list_clear(util_opt_list *l)
{
	l->v = NULL;
	l->n = 0;
}

static void list_add(struct util_cli_state *st, util_opt_list *l, const char *s)
{
	/* arrays are never freed one by one: each growth is a new owned block */
	const char **v = own(st, xmalloc(sizeof *v * (size_t)(l->n + 1)));
	if (l->n)
		memcpy(v, l->v, sizeof *v * (size_t)l->n);
	v[l->n++] = s;
	l->v = v;
}

/* Store value (NULL for flags) into entry e. Returns 0, or -1 with the
 * reason (without the option's name) in err. */
static int set_value(struct util_cli_state *st, struct entry *e, const char *value, int source, char *err,
		     size_t errlen)
{
	const util_opt *o = e->o;
	char *end;
	switch (o->kind) {
	case UTIL_OPT_FLAG:
		*(int *)e->target = 1;
		break;
	case UTIL_OPT_FLAG_OFF:
		*(int *)e->target = 0;
		break;
	case UTIL_OPT_INT: {
		errno = 0;
		long v = strtol(value, &end, 10);
		if (errno || end == value || *end || !in_range(o->range, (double)v)) {
			snprintf(err, errlen, "expected an integer%s%s, got \"%s\"", o->range ? " in " : "",
				 o->range ? o->range : "", value);
			return -1;
		}
		*(long *)e->target = v;
		break;
	}
	case UTIL_OPT_FLOAT: {
		errno = 0;
		double v = strtod(value, &end);
		if (errno || end == value || *end || !isfinite(v) || !in_range(o->range, v)) {
			snprintf(err, errlen, "expected a number%s%s, got \"%s\"", o->range ? " in " : "",
				 o->range ? o->range : "", value);
			return -1;
		}
		*(double *)e->target = v;
		break;
	}
	case UTIL_OPT_PATH:
		if (!*value) {
			snprintf(err, errlen, "expected a path, got \"\"");
			return -1;
		}
		/* fall through */
	case UTIL_OPT_STRING:
		*(const char **)e->target = value;
		break;
	case UTIL_OPT_ENUM: {
		size_t n = strlen(value);
		const char *c = o->choices;
		int ok = 0;
		while (c && *c) {
			const char *bar = strchr(c, '|');
			size_t len = bar ? (size_t)(bar - c) : strlen(c);
			if (len == n && !memcmp(c, value, n))
				ok = 1;
			c = bar ? bar + 1 : NULL;
		}
		if (!ok) {
			util_buf b = UTIL_BUF_INIT;
			for (c = o->choices; *c; c++)
				if (*c == '|')
					util_buf_adds(&b, ", ");
				else
					util_buf_addc(&b, *c);
			snprintf(err, errlen, "expected one of %s, got \"%s\"", util_buf_str(&b), value);
			util_buf_free(&b);
			return -1;
		}
		*(const char **)e->target = value;
		break;
	}
	case UTIL_OPT_LIST: {
		util_opt_list *l = (util_opt_list *)e->target;
		if (e->source < source)
			list_clear(l); /* a config or command-line value replaces the default list */
		if (o->flags & UTIL_OPT_COMMAS) {
			const char *p = value;
			for (;;) {
				const char *comma = strchr(p, ',');
				size_t len = comma ? (size_t)(comma - p) : strlen(p);
				if (!len) {
					snprintf(err, errlen, "expected values separated by commas, got \"%s\"", value);
					return -1;
				}
				list_add(st, l, own(st, xstrndup(p, len)));
				if (!comma)
					break;
				p = comma + 1;
			}
		} else {
			list_add(st, l, value);
		}
		break;
	}
	case UTIL_OPT_CALL: {
		err[0] = 0;
		if (o->call(e->target, value, err, errlen)) {
			if (!err[0])
				snprintf(err, errlen, "bad value \"%s\"", value ? value : "");
			return -1;
		}
		break;
	}
	default:
		break;
	}
	e->source = source;
	e->raw = value;
	return 0;
}

static struct entry *find_long(struct util_cli_state *st, const char *name, size_t len, int *ambiguous)
{
	struct entry *hit = NULL;
	int nhit = 0;
	*ambiguous = 0;
	for (size_t i = 0; i < st->n; i++) {
		const util_opt *o = st->e[i].o;
		if (o->kind == UTIL_OPT_GROUP)
			continue;
		if (strlen(o->name) == len && !memcmp(o->name, name, len))
			return &st->e[i];
		if (!strncmp(o->name, name, len)) {
			hit = &st->e[i];
			nhit++;
		}
	}
	if (nhit > 1) {
		*ambiguous = 1;
		return NULL;
	}
	return hit;
}

static struct entry *find_short(struct util_cli_state *st, int key)
{
	for (size_t i = 0; i < st->n; i++)
		if (st->e[i].o->key == key && st->e[i].o->kind != UTIL_OPT_GROUP)
			return &st->e[i];
	return NULL;
}

static void trim(char **s)
{
	char *p = *s;
	while (*p == ' ' || *p == '\t')
		p++;
	char *end = p + strlen(p);
	while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
		*--end = 0;
	*s = p;
}

static int parse_bool(const char *v, int *out)
{
	static const char *const yes[] = {"1", "true", "yes", "on"}, *const no[] = {"0", "false", "no", "off"};
	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(v, yes[i])) {
			*out = 1;
			return 0;
		}
		if (!strcasecmp(v, no[i])) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

/* Apply the config file's [dpo] section (only the options this command has)
 * and its [cli->name] section (every key must be one of its options).
 * Returns 0, or -1 with "PATH:LINE: reason" in err. */
static int read_config(util_cli *cli, char *err, size_t errlen)
{
	const char *path = util_cli_config_path();
	if (!path || (cli->flags & UTIL_CLI_NO_CONFIG))
		return 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return 0; /* no config file is the usual case */
	struct util_cli_state *st = cli->st;
	char *line = NULL;
	size_t cap = 0;
	long lineno = 0;
	int section = 0; /* 0: another program's, 1: [dpo], 2: ours */
	int rc = 0;
	while (getline(&line, &cap, f) != -1) {
		lineno++;
		char *s = line;
		trim(&s);
		if (!*s || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			char *close = strchr(s, ']');
			if (!close || close[1]) {
				snprintf(err, errlen, "%s:%ld: expected [section]", path, lineno);
				rc = -1;
				break;
			}
			*close = 0;
			s++;
			trim(&s);
			section = !strcmp(s, "dpo") ? 1 : !strcmp(s, cli->name) ? 2 : 0;
			continue;
		}
		char *eq = strchr(s, '=');
		if (!eq) {
			snprintf(err, errlen, "%s:%ld: expected 'name = value'", path, lineno);
			rc = -1;
			break;
		}
		if (!section)
			continue;
		*eq = 0;
		char *key = s, *val = eq + 1;
		trim(&key);
		trim(&val);
		size_t vl = strlen(val);
		if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
			val[vl - 1] = 0;
			val++;
		}
		struct entry *e = NULL;
		for (size_t i = 0; i < st->n && !e; i++)
			if (st->e[i].o->kind != UTIL_OPT_GROUP && !strcmp(st->e[i].o->name, key))
				e = &st->e[i];
		if (!e || (e->o->flags & UTIL_OPT_NOCONFIG)) {
			if (section == 1)
				continue; /* [dpo] holds options of several programs */
			snprintf(err, errlen, "%s:%ld: %s has no option '%s' that a config file may set", path,
				 lineno, cli->name, key);
			rc = -1;
			break;
		}
		char why[256];
		if (!takes_value(e->o)) {
			int on;
			if (parse_bool(val, &on)) {
				snprintf(err, errlen, "%s:%ld: %s: expected true or false, got \"%s\"", path, lineno,
					 key, val);
				rc = -1;
				break;
			}
			if (on && set_value(st, e, NULL, UTIL_OPT_FROM_CONFIG, why, sizeof why))
				goto bad;
			if (!on && (e->o->kind == UTIL_OPT_FLAG || e->o->kind == UTIL_OPT_FLAG_OFF)) {
				*(int *)e->target = e->o->kind == UTIL_OPT_FLAG_OFF;
				e->source = UTIL_OPT_FROM_CONFIG;
			}
			st->config = path;
			continue;
		}
		if (set_value(st, e, own(st, xstrdup(val)), UTIL_OPT_FROM_CONFIG, why, sizeof why) == 0) {
			st->config = path;
			continue;
		}
	bad:
		snprintf(err, errlen, "%s:%ld: %s: %s", path, lineno, key, why);
		rc = -1;
		break;
	}
	free(line);
	fclose(f);
	return rc;
}

const char *util_cli_config_path(void)
{
	static char buf[4096];
	const char *p = getenv("DPO_CONFIG");
	if (p)
		return *p ? p : NULL;
	const char *x = getenv("XDG_CONFIG_HOME");
	if (x && *x) {
		snprintf(buf, sizeof buf, "%s/dpo/config", x);
		return buf;
	}
	const char *h = getenv("HOME");
	if (h && *h) {
		snprintf(buf, sizeof buf, "%s/.config/dpo/config", h);
		return buf;
	}
	return NULL;
}

enum { DONE = 0, HANDLED = 1, USAGE = 2 };

static int parse_args(util_cli *cli, int argc, char **argv, FILE *out, char *err, size_t errlen)
{
	struct util_cli_state *st = cli->st;
	cli->args = own(st, xcalloc((size_t)argc + 1, sizeof *cli->args));
	cli->nargs = 0;
	cli->dashdash = -1;
	int only_args = 0;
	for (int i = 1; i < argc; i++) {
		char *a = argv[i];
		if (only_args || a[0] != '-' || !a[1]) {
			cli->args[cli->nargs++] = a;
			if (cli->flags & UTIL_CLI_STOP_AT_ARG)
				only_args = 1;
			continue;
		}
		if (!strcmp(a, "--")) {
			only_args = 1;
			if (cli->dashdash < 0)
				cli->dashdash = cli->nargs;
			continue;
		}
		struct entry *e = NULL;
		const char *value = NULL;
		char shown[128];
		if (a[1] == '-') {
			const char *name = a + 2, *eq = strchr(name, '=');
			size_t len = eq ? (size_t)(eq - name) : strlen(name);
			int amb = 0;
			e = (len == 4 && !strncmp(name, "help", 4)) || (len == 7 && !strncmp(name, "version", 7))
				    ? NULL
				    : find_long(st, name, len, &amb);
			if (!e && !amb && len && !eq && !strncmp(name, "help", len)) {
				util_cli_usage(cli, out);
				return HANDLED;
			}
			if (!e && !amb && len >= 2 && !eq && !strncmp(name, "version", len)) {
				fprintf(out, "%s (dpo) %s\n", util_progname(), PACKAGE_VERSION);
				return HANDLED;
			}
			if (!e) {
				snprintf(err, errlen, amb ? "option --%.*s is ambiguous" : "unknown option --%.*s",
					 (int)len, name);
				return USAGE;
			}
			snprintf(shown, sizeof shown, "--%s", e->o->name);
			if (eq) {
				if (!takes_value(e->o)) {
					snprintf(err, errlen, "%s: takes no value", shown);
					return USAGE;
				}
				value = eq + 1;
			}
		} else {
			/* a cluster of short options: -qv, -n5, -n 5 */
			for (const char *p = a + 1; *p; p++) {
				if (*p == 'h') {
					util_cli_usage(cli, out);
					return HANDLED;
				}
				e = find_short(st, (unsigned char)*p);
				if (!e) {
					snprintf(err, errlen, "unknown option -%c", *p);
					return USAGE;
				}
				snprintf(shown, sizeof shown, "-%c", *p);
				if (takes_value(e->o)) {
					if (p[1])
						value = p + 1;
					break;
				}
				char why[256];
				if (set_value(st, e, NULL, UTIL_OPT_FROM_ARGS, why, sizeof why)) {
					snprintf(err, errlen, "%s: %s", shown, why);
					return USAGE;
				}
				e = NULL;
			}
			if (!e)
				continue;
		}
		if (takes_value(e->o) && !value) {
			if (i + 1 >= argc) {
				snprintf(err, errlen, "%s: missing value", shown);
				return USAGE;
			}
			value = argv[++i];
		}
		char why[512];
		if (set_value(st, e, value, UTIL_OPT_FROM_ARGS, why, sizeof why)) {
			snprintf(err, errlen, "%s: %s", shown, why);
			return USAGE;
		}
	}
	if (cli->nargs < cli->min_args) {
		snprintf(err, errlen, cli->nargs ? "too few arguments" : "missing argument (usage: %s %s)",
			 cli->name, cli->synopsis ? cli->synopsis : "");
		return USAGE;
	}
	if (cli->max_args >= 0 && cli->nargs > cli->max_args) {
		snprintf(err, errlen, "unexpected argument '%s'", cli->args[cli->max_args]);
		return USAGE;
	}
	return DONE;
}

int util_cli_parse_r(util_cli *cli, void *base, int argc, char **argv, FILE *out, char *err, size_t errlen)
{
	util_cli_free(cli);
	cli->st = xcalloc(1, sizeof *cli->st);
	cli->argc = argc;
	cli->argv = argv;
	struct util_cli_state *st = cli->st;
	flatten(st, cli->opts, base);
	char why[512];
	for (size_t i = 0; i < st->n; i++) {
		struct entry *e = &st->e[i];
		if (!e->o->def)
			continue;
		if (!takes_value(e->o)) {
			/* a flag's default is its initial value: "true" or "false" */
			int on;
			if (parse_bool(e->o->def, &on)) {
				snprintf(err, errlen, "internal: default of --%s is not true or false", e->o->name);
				return USAGE;
			}
			if (e->o->kind == UTIL_OPT_FLAG || e->o->kind == UTIL_OPT_FLAG_OFF)
				*(int *)e->target = on;
			e->source = UTIL_OPT_FROM_DEFAULT;
			continue;
		}
		if (set_value(st, e, e->o->def, UTIL_OPT_FROM_DEFAULT, why, sizeof why)) {
			/* a table error: say so loudly rather than run with garbage */
			snprintf(err, errlen, "internal: default of --%s: %s", e->o->name, why);
			return USAGE;
		}
	}
	if (read_config(cli, err, errlen))
		return USAGE;
	return parse_args(cli, argc, argv, out, err, errlen);
}

void util_cli_parse(util_cli *cli, void *base, int argc, char **argv)
{
	char err[1024];
	/* a secondary process's --help and --version go nowhere (util_set_secondary) */
	FILE *out = util_secondary() ? fopen("/dev/null", "w") : NULL;
	int rc = util_cli_parse_r(cli, base, argc, argv, out ? out : stdout, err, sizeof err);
	if (out)
		fclose(out);
	if (rc == HANDLED)
		exit(UTIL_EXIT_OK);
	if (rc == USAGE)
		util_cli_usage_error(cli, "%s", err);
}

void util_cli_usage_error(const util_cli *cli, const char *fmt, ...)
{
	util_secondary_pause();
	va_list ap;
	fprintf(stderr, "%s: ", cli->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help' for more information.\n", cli->name);
	exit(UTIL_EXIT_USAGE);
}

/* Print one option line: the names padded to a column, then the help text
 * (continuation lines indented to the same column). */
static void usage_line(FILE *f, const char *left, const char *help)
{
	enum { COL = 28 };
	int w = fprintf(f, "%s", left);
	if (w >= COL - 1) {
		fputc('\n', f);
		w = 0;
	}
	fprintf(f, "%*s", COL - w, "");
	for (const char *p = help; *p; p++) {
		fputc(*p, f);
		if (*p == '\n' && p[1])
			fprintf(f, "%*s", COL, "");
	}
	fputc('\n', f);
}

void util_cli_usage(const util_cli *cli, FILE *f)
{
	fprintf(f, "Usage: %s %s\n", cli->name, cli->synopsis ? cli->synopsis : "[OPTIONS]");
	if (cli->summary)
		fprintf(f, "%s%s", cli->summary, cli->summary[strlen(cli->summary) - 1] == '\n' ? "" : "\n");
	/* a table that starts with a heading has no "Options:" line */
	struct util_cli_state *st = cli->st;
	size_t n = st ? st->n : 0;
	int listed = 0;
	for (size_t i = 0; i < n; i++) {
		const struct entry *e = &st->e[i];
		const util_opt *o = e->o;
		if (o->flags & UTIL_OPT_HIDDEN)
			continue;
		if (o->kind == UTIL_OPT_GROUP) {
			fprintf(f, "\n%s\n", o->help);
			listed = 1;
			continue;
		}
		if (!listed++)
			fprintf(f, "\nOptions:\n");
		char left[160];
		int k = o->key ? snprintf(left, sizeof left, "  -%c, --%s", o->key, o->name)
			       : snprintf(left, sizeof left, "      --%s", o->name);
		if (takes_value(o) && k > 0 && (size_t)k < sizeof left)
			snprintf(left + k, sizeof left - (size_t)k, " %s", arg_name(o));
		/* the help text, with the default it names replaced by the config
		 * file's when that set it */
		util_buf h = UTIL_BUF_INIT;
		const char *help = o->help ? o->help : "", *said = strstr(help, "(default");
		const char *said_end = said ? strchr(said, ')') : NULL;
		char *from = NULL;
		if (e->source == UTIL_OPT_FROM_CONFIG && st->config)
			from = e->raw ? xasprintf("(default %s, from %s)", e->raw, st->config)
				      : xasprintf("(set in %s)", st->config);
		if (from && said_end) {
			util_buf_add(&h, help, (size_t)(said - help));
			util_buf_adds(&h, from);
			util_buf_adds(&h, said_end + 1);
		} else {
			util_buf_adds(&h, help);
			if (from)
				util_buf_addf(&h, " %s", from);
			else if (o->def && takes_value(o) && !said)
				util_buf_addf(&h, " (default %s)", o->def);
		}
		free(from);
		usage_line(f, left, util_buf_str(&h));
		util_buf_free(&h);
	}
	if (!listed)
		fprintf(f, "\nOptions:\n");
	usage_line(f, "  -h, --help", "show this help and exit");
	usage_line(f, "      --version", "print the version and exit");
	if (cli->footer)
		fprintf(f, "\n%s%s", cli->footer, cli->footer[strlen(cli->footer) - 1] == '\n' ? "" : "\n");
	else
		fprintf(f, "\nExit status: 0 success, 1 failure, 2 usage error.\n");
}

int util_cli_source(const util_cli *cli, const char *name)
{
	if (!cli->st)
		return UTIL_OPT_UNSET;
	for (size_t i = 0; i < cli->st->n; i++)
		if (cli->st->e[i].o->kind != UTIL_OPT_GROUP && !strcmp(cli->st->e[i].o->name, name))
			return cli->st->e[i].source;
	return UTIL_OPT_UNSET;
}

void util_cli_params_json(const util_cli *cli, util_buf *b)
{
	util_buf_addc(b, '{');
	int first = 1;
	size_t n = cli->st ? cli->st->n : 0;
	for (size_t i = 0; i < n; i++) {
		const struct entry *e = &cli->st->e[i];
		const util_opt *o = e->o;
		if (o->kind == UTIL_OPT_GROUP || e->source == UTIL_OPT_UNSET ||
		    (o->flags & (UTIL_OPT_NOPARAM | UTIL_OPT_SECRET)))
			continue;
		if (!first)
			util_buf_adds(b, ", ");
		first = 0;
		util_buf_add_json_string(b, o->name, strlen(o->name));
		util_buf_adds(b, ": ");
		switch (o->kind) {
		case UTIL_OPT_FLAG:
		case UTIL_OPT_FLAG_OFF:
			util_buf_adds(b, *(const int *)e->target ? "true" : "false");
			break;
		case UTIL_OPT_INT:
			util_buf_addf(b, "%ld", *(const long *)e->target);
			break;
		case UTIL_OPT_FLOAT:
			util_buf_addf(b, "%.17g", *(const double *)e->target);
			break;
		case UTIL_OPT_LIST: {
			const util_opt_list *l = (const util_opt_list *)e->target;
			util_buf_addc(b, '[');
			for (int j = 0; j < l->n; j++) {
				if (j)
					util_buf_adds(b, ", ");
				util_buf_add_json_string(b, l->v[j], strlen(l->v[j]));
			}
			util_buf_addc(b, ']');
			break;
		}
		case UTIL_OPT_CALL:
			if (e->raw)
				util_buf_add_json_string(b, e->raw, strlen(e->raw));
			else
				util_buf_adds(b, "true");
			break;
		default: {
			const char *s = *(const char *const *)e->target;
			if (s)
				util_buf_add_json_string(b, s, strlen(s));
			else
				util_buf_adds(b, "null");
		}
		}
	}
	util_buf_addc(b, '}');
}

void util_cli_free(util_cli *cli)
{
	struct util_cli_state *st = cli->st;
	if (!st)
		return;
	for (size_t i = 0; i < st->nowned; i++)
		free(st->owned[i]);
	free(st->owned);
	free(st->e);
	free(st);
	cli->st = NULL;
	cli->args = NULL;
	cli->nargs = 0;
}

const util_cmd *util_cmd_find(const util_cmd *cmds, const char *name)
{
	for (; cmds->name; cmds++)
		if (!strcmp(cmds->name, name))
			return cmds;
	return NULL;
}

void util_cmd_list(const util_cmd *cmds, FILE *f)
{
	for (; cmds->name; cmds++) {
		char left[64];
		snprintf(left, sizeof left, "  %s", cmds->name);
		usage_line(f, left, cmds->summary ? cmds->summary : "");
	}
}

void util_cmd_names(const util_cmd *cmds, util_buf *b)
{
	for (const util_cmd *c = cmds; c->name; c++) {
		if (c != cmds)
			util_buf_adds(b, ", ");
		util_buf_adds(b, c->name);
	}
}

const util_cmd *util_cmd_select(const util_cli *cli, const util_cmd *cmds, int argc, int *first)
{
	util_buf names = UTIL_BUF_INIT;
	util_cmd_names(cmds, &names);
	if (!cli->nargs)
		util_cli_usage_error(cli, "no command given (%s)", util_buf_str(&names));
	const util_cmd *cmd = util_cmd_find(cmds, cli->args[0]);
	if (!cmd)
		util_cli_usage_error(cli, "unknown command '%s' (%s)", cli->args[0], util_buf_str(&names));
	util_buf_free(&names);
	/* options stop at the command: it and everything after it are its arguments */
	*first = argc - cli->nargs;
	return cmd;
}

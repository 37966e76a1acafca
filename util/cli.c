/* cli.c: shared command-line conventions. */
#include "config.h"
#include "util/cli.h"
#include "util/buf.h"
#include "util/utf8.h"
#include "util/xmalloc.h"
#include <stdio.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *progname = "dpo";
static volatile sig_atomic_t got_signal;

void util_set_progname(const char *name)
{
	progname = name;
}

const char *util_progname(void)
{
	return progname;
}

const char *util_db_path(const char *opt)
{
	if (opt && *opt)
		return opt;
	const char *env = getenv("DPO_DB");
	if (env && *env)
		return env;
	return "./dpo.db";
}

#define MAX_DIE_HOOKS 8
static struct {
	void (*fn)(void *);
	void *ctx;
} die_hooks[MAX_DIE_HOOKS];
static int ndie_hooks;

int util_on_die(void (*fn)(void *), void *ctx)
{
	if (!fn || ndie_hooks == MAX_DIE_HOOKS)
		return -1;
	die_hooks[ndie_hooks].fn = fn;
	die_hooks[ndie_hooks].ctx = ctx;
	ndie_hooks++;
	return 0;
}

void util_on_die_remove(void (*fn)(void *), void *ctx)
{
	for (int i = ndie_hooks - 1; i >= 0; i--)
		if (die_hooks[i].fn == fn && die_hooks[i].ctx == ctx) {
			memmove(&die_hooks[i], &die_hooks[i + 1], sizeof die_hooks[0] * (size_t)(ndie_hooks - i - 1));
			ndie_hooks--;
			return;
		}
}

/* Run the hooks, latest first, each removed before it runs. */
static void run_die_hooks(void)
{
	while (ndie_hooks > 0) {
		ndie_hooks--;
		void (*fn)(void *) = die_hooks[ndie_hooks].fn;
		void *ctx = die_hooks[ndie_hooks].ctx;
		fn(ctx);
	}
}

/* The message, its control characters escaped (util_term_escape: a name
 * from the user or a file never drives the terminal), newlines and tabs kept. */
static void vmsg(const char *fmt, va_list ap)
{
	util_buf m = UTIL_BUF_INIT, e = UTIL_BUF_INIT;
	va_list aq;
	va_copy(aq, ap);
	int n = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	if (n > 0) {
		util_buf_grow(&m, (size_t)n + 1);
		vsnprintf(m.data, (size_t)n + 1, fmt, ap);
		m.len = (size_t)n;
	}
	for (const char *p = util_buf_str(&m); *p;) {
		size_t k = strcspn(p, "\n\t");
		char *seg = xmalloc(k + 1);
		memcpy(seg, p, k);
		seg[k] = 0;
		util_term_escape(seg, &e);
		free(seg);
		p += k;
		if (*p)
			util_buf_addc(&e, *p++);
	}
	fprintf(stderr, "%s: %s\n", progname, util_buf_str(&e));
	util_buf_free(&m);
	util_buf_free(&e);
}

void util_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
}

void util_die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
	run_die_hooks();
	exit(UTIL_EXIT_FAIL);
}

static double secondary_wait = -1;

void util_set_secondary(double wait_s)
{
	secondary_wait = wait_s > 0 ? wait_s : 0;
}

int util_secondary(void)
{
	return secondary_wait >= 0;
}

void util_secondary_pause(void)
{
	if (secondary_wait <= 0)
		return;
	struct timespec t = {(time_t)secondary_wait,
			     (long)((secondary_wait - (double)(time_t)secondary_wait) * 1e9)};
	while (nanosleep(&t, &t) != 0 && errno == EINTR)
		;
}

void util_usage_error(const char *fmt, ...)
{
	util_secondary_pause();
	va_list ap;
	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try '%s --help' for more information.\n", progname);
	run_die_hooks();
	exit(UTIL_EXIT_USAGE);
}

void util_print_version(void)
{
	printf("%s (dpo) %s\n", progname, PACKAGE_VERSION);
}

void util_utc_now(char *out, unsigned long n)
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

const char *util_datadir(void)
{
	const char *d = getenv("DPO_DATADIR");
	return d && *d ? d : PKGDATADIR;
}

static void on_signal(int sig)
{
	(void)sig;
	got_signal = 1;
}

void util_catch_interrupts(void)
{
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int util_interrupted(void)
{
	return got_signal != 0;
}

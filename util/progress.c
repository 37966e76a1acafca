/* progress.c: progress line with ETA. */
#include "util/progress.h"
#include "util/buf.h"
#include "util/utf8.h"
#include "util/xmalloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct util_progress {
	char *label, *unit;
	double total, done, start, last_draw;
	int tty, drawn;
};

double util_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void util_format_duration(double s, char *out, unsigned long n)
{
	if (s < 0 || s != s)
		s = 0;
	long t = (long)(s + 0.5);
	if (t >= 3600)
		snprintf(out, n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
	else if (t >= 60)
		snprintf(out, n, "%ldm%02lds", t / 60, t % 60);
	else
		snprintf(out, n, "%lds", t);
}

util_progress *util_progress_new(const char *label, double total, const char *unit)
{
	util_progress *p = xcalloc(1, sizeof *p);
	util_buf e = UTIL_BUF_INIT; /* a file name in the label never drives the terminal */
	util_term_escape(label, &e);
	p->label = util_buf_detach(&e);
	p->unit = xstrdup(unit ? unit : "");
	p->total = total;
	p->start = util_now();
	p->tty = isatty(2);
	return p;
}

static void draw(util_progress *p, const char *extra, int final)
{
	double el = util_now() - p->start;
	double rate = el > 0 ? p->done / el : 0;
	char eta[32] = "", elapsed[32];
	util_format_duration(el, elapsed, sizeof elapsed);
	if (p->total > 0 && rate > 0 && !final)
		util_format_duration((p->total - p->done) / rate, eta, sizeof eta);
	char line[512];
	int n;
	if (p->total > 0) {
		double frac = p->done / p->total;
		if (frac > 1)
			frac = 1;
		char bar[21];
		int fill = (int)(frac * 20);
		for (int i = 0; i < 20; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[20] = '\0';
		n = snprintf(line, sizeof line, "%s [%s] %3.0f%% %.0f/%.0f %s, %.1f %s/s, %s%s%s",
			     p->label, bar, frac * 100, p->done, p->total, p->unit, rate, p->unit,
			     final ? "took " : "", final ? elapsed : "ETA ", final ? "" : eta);
	} else {
		n = snprintf(line, sizeof line, "%s %.0f %s, %.1f %s/s, %s", p->label, p->done, p->unit,
			     rate, p->unit, elapsed);
	}
	if (extra && n > 0 && (size_t)n < sizeof line)
		snprintf(line + n, sizeof line - (size_t)n, ", %s", extra);
	if (p->tty)
		fprintf(stderr, "\r\033[K%s%s", line, final ? "\n" : "");
	else
		fprintf(stderr, "%s\n", line);
	fflush(stderr);
	p->drawn = 1;
}

void util_progress_update(util_progress *p, double done, const char *extra)
{
	if (!p)
		return;
	p->done = done;
	double now = util_now();
	double every = p->tty ? 0.1 : 5.0;
	if (now - p->last_draw < every)
		return;
	if (!p->tty && now - p->start < every)
		return;
	p->last_draw = now;
	draw(p, extra, 0);
}

void util_progress_finish(util_progress *p)
{
	if (!p)
		return;
	if (p->tty || p->drawn)
		draw(p, NULL, 1);
}

void util_progress_free(util_progress *p)
{
	if (!p)
		return;
	free(p->label);
	free(p->unit);
	free(p);
}

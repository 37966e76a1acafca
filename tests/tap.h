/* tap.h: a tiny TAP producer for dpo's unit tests (header only).
 *
 *   TAP_OK(cond, "name %d", i);      one case
 *   TAP_IS_INT(got, want, "name");   integer equality, prints both on failure
 *   TAP_IS_STR(got, want, "name");   string equality (NULL-safe)
 *   TAP_NEAR(got, want, tol, "name") |got-want| <= tol
 *   TAP_SKIP(n, "reason");           n cases skipped
 *   tap_skip_all("reason");          whole program skipped (exits 0)
 *   return tap_done();               prints the plan, returns the exit status
 *   tap_tmpdir("dpo-x") / tap_rmtree(d) a scratch folder (flat) and its removal
 *   tap_split_args("--a 1", argv, n)  a command line split at spaces into argv
 */
#ifndef DPO_TAP_H
#define DPO_TAP_H
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static int tap_n, tap_failed;

static inline int tap_report(int ok, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	tap_n++;
	printf("%sok %d - ", ok ? "" : "not ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!ok) {
		tap_failed++;
		printf("#   failed at %s:%d\n", file, line);
	}
	fflush(stdout);
	return ok;
}

#define TAP_OK(cond, ...) tap_report(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define TAP_IS_INT(got, want, ...)                                                          \
	do {                                                                                \
		long long tap_g_ = (long long)(got), tap_w_ = (long long)(want);            \
		if (!tap_report(tap_g_ == tap_w_, __FILE__, __LINE__, __VA_ARGS__))         \
			printf("#   got %lld, want %lld\n", tap_g_, tap_w_);                   \
	} while (0)
#define TAP_IS_STR(got, want, ...)                                                          \
	do {                                                                                \
		const char *tap_g_ = (got), *tap_w_ = (want);                               \
		int tap_e_ = (!tap_g_ && !tap_w_) || (tap_g_ && tap_w_ && !strcmp(tap_g_, tap_w_)); \
		if (!tap_report(tap_e_, __FILE__, __LINE__, __VA_ARGS__))                   \
			printf("#   got  \"%s\"\n#   want \"%s\"\n", tap_g_ ? tap_g_ : "(null)", \
			       tap_w_ ? tap_w_ : "(null)");                                 \
	} while (0)
#define TAP_NEAR(got, want, tol, ...)                                                       \
	do {                                                                                \
		double tap_g_ = (got), tap_w_ = (want);                                     \
		if (!tap_report(fabs(tap_g_ - tap_w_) <= (tol), __FILE__, __LINE__, __VA_ARGS__)) \
			printf("#   got %.17g, want %.17g (tolerance %g)\n", tap_g_, tap_w_,    \
			       (double)(tol));                                                \
	} while (0)

static inline void tap_diag(const char *fmt, ...)
{
	va_list ap;
	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* Report n cases as skipped, with the reason. */
static inline void tap_skip(int n, const char *reason)
{
	for (int i = 0; i < n; i++)
		printf("ok %d # SKIP %s\n", ++tap_n, reason);
	fflush(stdout);
}
#define TAP_SKIP(n, reason) tap_skip((n), (reason))

/* Skip the whole program: prints "1..0 # SKIP reason" and exits 0. */
static inline void tap_skip_all(const char *reason)
{
	printf("1..0 # SKIP %s\n", reason);
	exit(0);
}

/* Print the plan; returns 0 when every case passed, 1 otherwise. */
static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

/* Path of the shared fixtures folder ($DPO_SHARED), or NULL when absent. */
static inline const char *tap_shared_dir(void)
{
	const char *d = getenv("DPO_SHARED");
	struct stat st;
	if (!d || stat(d, &st) != 0 || !S_ISDIR(st.st_mode))
		return NULL;
	return d;
}

/* A new empty folder /tmp/PREFIX-XXXXXX; the caller frees the path. Aborts
 * when it cannot be made. */
static inline char *tap_tmpdir(const char *prefix)
{
	size_t n = strlen(prefix) + 16;
	char *d = malloc(n);
	if (!d)
		abort();
	snprintf(d, n, "/tmp/%s-XXXXXX", prefix);
	if (!mkdtemp(d))
		abort();
	return d;
}

/* Remove a folder made by tap_tmpdir and the files in it (not subfolders). */
static inline void tap_rmtree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4096];
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

/* Split line at spaces into argv[1..] after argv[0] = "prog" (at most max-1
 * entries, NULL-terminated); returns argc. The strings live in a static
 * buffer until the next call. */
static inline int tap_split_args(const char *line, char **argv, int max)
{
	static char copy[1024];
	int argc = 0;
	snprintf(copy, sizeof copy, "%s", line);
	argv[argc++] = "prog";
	for (char *t = strtok(copy, " "); t && argc < max - 1; t = strtok(NULL, " "))
		argv[argc++] = t;
	argv[argc] = NULL;
	return argc;
}

#endif

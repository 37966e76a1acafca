/* tap.h: a tiny TAP producer for dpo's unit tests (header only).
 *
 *   TAP_OK(cond, "name %d", i);      one case
 *   TAP_IS_INT(got, want, "name");   integer equality, prints both on failure
 *   TAP_IS_STR(got, want, "name");   string equality (NULL-safe)
 *   TAP_NEAR(got, want, tol, "name") |got-want| <= tol
 *   TAP_SKIP(n, "reason");           n cases skipped
 *   tap_skip_all("reason");          whole program skipped (exits 0)
 *   return tap_done();               prints the plan, returns the exit status
 */
#ifndef DPO_TAP_H
#define DPO_TAP_H
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

#endif

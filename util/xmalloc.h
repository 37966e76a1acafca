/* xmalloc.h: the one allocation family of dpo. Out of memory aborts with a
 * message; callers never check for NULL. */
#ifndef DPO_XMALLOC_H
#define DPO_XMALLOC_H
#include <stddef.h>
#include <stdarg.h>

/* Allocate n bytes (n == 0 allowed). Never returns NULL; caller frees. */
void *xmalloc(size_t n);
/* Allocate and zero nmemb*size bytes, checking the product for overflow. */
void *xcalloc(size_t nmemb, size_t size);
/* Allocate and zero nmemb*size bytes for a large array that is read from
 * end to end again and again (a model's weights): from 2 MiB up, aligned
 * to 2 MiB and advised to use transparent huge pages where the system has
 * them (Linux, "madvise" mode included), so that streaming it costs a page
 * walk per 2 MiB rather than per 4 KiB. Never returns NULL; free() frees. */
void *xcalloc_huge(size_t nmemb, size_t size);
/* Resize p to n bytes (p may be NULL). Never returns NULL. */
void *xrealloc(void *p, size_t n);
/* Resize p to nmemb*size bytes, checking the product for overflow. */
void *xreallocarray(void *p, size_t nmemb, size_t size);
/* Duplicate a NUL-terminated string (NULL gives NULL). Caller frees. */
char *xstrdup(const char *s);
/* Duplicate the first n bytes of s and NUL-terminate. Caller frees. */
char *xstrndup(const char *s, size_t n);
/* printf into a new string. Caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* vprintf into a new string. Caller frees. */
char *xvasprintf(const char *fmt, va_list ap);

#endif

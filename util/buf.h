/* buf.h: a growable byte buffer, always NUL-terminated. */
#ifndef DPO_BUF_H
#define DPO_BUF_H
#include <stddef.h>
#include <stdarg.h>

typedef struct util_buf {
	char *data;   /* NUL-terminated; NULL until the first append */
	size_t len;   /* bytes used, excluding the NUL */
	size_t cap;   /* bytes allocated */
} util_buf;

#define UTIL_BUF_INIT {NULL, 0, 0}

/* Make room for n more bytes. */
void util_buf_grow(util_buf *b, size_t n);
/* Append n bytes. */
void util_buf_add(util_buf *b, const void *p, size_t n);
/* Append a NUL-terminated string. */
void util_buf_adds(util_buf *b, const char *s);
/* Append one byte. */
void util_buf_addc(util_buf *b, char c);
/* Append printf-formatted text. */
void util_buf_addf(util_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s as a JSON string literal, quotes included. */
void util_buf_add_json_string(util_buf *b, const char *s, size_t n);
/* Forget the contents but keep the memory. */
void util_buf_reset(util_buf *b);
/* Return the contents as a string (never NULL); the buffer is emptied and the
 * caller owns the result. */
char *util_buf_detach(util_buf *b);
/* The contents as a string, "" when empty. Owned by the buffer. */
const char *util_buf_str(const util_buf *b);
/* Free the memory. */
void util_buf_free(util_buf *b);

#endif

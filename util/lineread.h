/* lineread.h: read a text file line by line, gzip-compressed or not, with
 * line numbers and no limit on line length. Memory is bounded by the longest
 * line, not by the file. */
#ifndef DPO_LINEREAD_H
#define DPO_LINEREAD_H
#include <stddef.h>

typedef struct util_lineread util_lineread;

/* Open path ("-" is standard input); .gz content is detected by its magic
 * bytes and decompressed transparently. Returns NULL and sets errno on error. */
util_lineread *util_lineread_open(const char *path);
/* Read the next line into *line (without the trailing "\n" or "\r\n"; owned
 * by the reader, valid until the next call) and its length into *len.
 * Returns 1 for a line, 0 at end of file, -1 on a read error. */
int util_lineread_next(util_lineread *r, const char **line, size_t *len);
/* The next raw bytes of the (decompressed) input, newlines and all, in
 * *data (owned by the reader, valid until the next call) and *len: whatever
 * is buffered, else a fresh read. For callers that split the input
 * themselves (a JSON array on one line); lines read this way are not
 * counted by util_lineread_lineno. Returns 1 with bytes, 0 at end of file,
 * -1 on a read error. */
int util_lineread_chunk(util_lineread *r, const char **data, size_t *len);
/* The first byte of the input that is not white space (a UTF-8 byte order
 * mark is skipped too), without consuming anything; -1 for an input of
 * white space only, -2 on a read error (see util_lineread_error). */
int util_lineread_peek(util_lineread *r);
/* The 1-based number of the line last returned. */
long util_lineread_lineno(const util_lineread *r);
/* Bytes of (decompressed) input consumed so far. */
unsigned long long util_lineread_offset(const util_lineread *r);
/* A message for the last read error. Owned by the reader. */
const char *util_lineread_error(const util_lineread *r);
/* Close the file and free the reader. NULL is allowed. */
void util_lineread_close(util_lineread *r);

#endif

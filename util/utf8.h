/* utf8.h: UTF-8 decoding, validation and encoding. */
#ifndef DPO_UTF8_H
#define DPO_UTF8_H
#include <stddef.h>
#include <stdint.h>
#include "util/buf.h"

/* Decode the UTF-8 sequence at the start of s (n bytes available).
 * Well-formed means Unicode's table 3-7: no overlong forms, no surrogates
 * (U+D800..U+DFFF), nothing past U+10FFFF. Returns:
 *   > 0  the length (1 to 4) of a well-formed sequence; its code point goes
 *        to *cp;
 *   < 0  -k for an ill-formed one, k >= 1 being the length of its maximal
 *        subpart (Unicode's "U+FFFD substitution of maximal subparts": the
 *        bytes one U+FFFD replaces); a sequence cut short by the end of s is
 *        such a subpart; *cp is left as it was;
 *   0    when n is 0.
 * A caller that replaces each bad byte on its own advances by 1 on < 0. */
int util_utf8_decode(const char *s, size_t n, uint32_t *cp);

/* Nonzero when the n bytes at s are well-formed UTF-8 (as above; NUL bytes
 * count as valid). When they are not and bad_at is not NULL, the offset of
 * the first byte of the first ill-formed sequence goes to *bad_at. */
int util_utf8_valid(const char *s, size_t n, size_t *bad_at);

/* Write the UTF-8 encoding of cp (at most U+10FFFF; not checked) to out and
 * return its length, 1 to 4. */
size_t util_utf8_encode(uint32_t cp, char out[4]);

/* Append s to out made safe to print on a terminal, and return out's
 * contents: ESC and every other C0 control (tab and newline too), DEL, the C1
 * controls (U+0080..U+009F) and each byte of ill-formed UTF-8 are written as
 * \xNN (ESC as \x1b, U+009B as \x9b); well-formed printable text is kept as
 * it is. For names (sources, annotators, splits, files) printed as text; JSON
 * output escapes by itself. s NULL appends "(null)". */
const char *util_term_escape(const char *s, util_buf *out);

#endif

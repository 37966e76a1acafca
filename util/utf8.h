/* utf8.h: UTF-8 decoding, validation and encoding. */
#ifndef DPO_UTF8_H
#define DPO_UTF8_H
#include <stddef.h>
#include <stdint.h>

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

#endif

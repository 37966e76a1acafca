/* sha256.h: SHA-256 (FIPS 180-4), used for content hashes and fingerprints. */
#ifndef DPO_SHA256_H
#define DPO_SHA256_H
#include <stddef.h>
#include <stdint.h>

typedef struct util_sha256 {
	uint32_t h[8];
	uint64_t nbytes;
	unsigned char block[64];
	size_t fill;
} util_sha256;

/* Start a new hash. */
void util_sha256_init(util_sha256 *c);
/* Feed n bytes. */
void util_sha256_update(util_sha256 *c, const void *p, size_t n);
/* Finish and write the 32-byte digest. */
void util_sha256_final(util_sha256 *c, unsigned char out[32]);
/* Hash a buffer and write 64 lowercase hex digits plus NUL into hex. */
void util_sha256_hex(const void *p, size_t n, char hex[65]);
/* Choose the compression function for the whole process: the SHA-NI one when
 * enable is non-zero and the CPU has it (x86-64), else the portable one.
 * Returns 1 when SHA-NI is in use. Called by itself on first use with
 * enable = 1; tests call it to compare the two. Not thread-safe against
 * hashing running at the same time. */
int util_sha256_accel(int enable);
/* Write the digest of c as 64 hex digits plus NUL (finishes c). */
void util_sha256_final_hex(util_sha256 *c, char hex[65]);

#endif

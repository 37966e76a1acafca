/* rand.h: splitmix64, the small seeding and mixing generator (header only). */
#ifndef DPO_RAND_H
#define DPO_RAND_H
#include <stdint.h>

/* Advance the state *s by the golden-ratio increment and return the next
 * splitmix64 output (Steele, Lea and Flood 2014; Vigna's splitmix64.c). */
static inline uint64_t util_splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The splitmix64 output for state x without keeping the state: a 64-bit
 * mixing (hash) function, util_splitmix64 of a copy of x. */
static inline uint64_t util_mix64(uint64_t x)
{
	return util_splitmix64(&x);
}

#endif

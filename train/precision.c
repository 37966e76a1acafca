/* precision.c: --precision parsing, the AVX512-BF16 CPU check and the bulk
 * float32 <-> bfloat16 conversions (see precision.h). */
#include "config.h"
#include "precision.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

int train_precision_parse(const char *s, train_precision *p)
{
	static const struct { const char *name; train_precision p; } names[] = {
		{ "f32", TRAIN_PREC_F32 },   { "fp32", TRAIN_PREC_F32 },
		{ "float32", TRAIN_PREC_F32 }, { "bf16", TRAIN_PREC_BF16 },
		{ "bfloat16", TRAIN_PREC_BF16 }, { "auto", TRAIN_PREC_AUTO },
	};
	if (!s)
		return -1;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!strcasecmp(s, names[i].name)) {
			*p = names[i].p;
			return 0;
		}
	return -1;
}

const char *train_precision_name(train_precision p)
{
	switch (p) {
	case TRAIN_PREC_F32: return "f32";
	case TRAIN_PREC_BF16: return "bf16";
	case TRAIN_PREC_AUTO: return "auto";
	}
	return "?";
}

/* The CPUID/XGETBV probe behind train_cpu_has_avx512bf16. */
static int probe_avx512bf16(void)
{
#if defined(__x86_64__) || defined(__i386__)
	unsigned a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) /* OSXSAVE */
		return 0;
	if (__get_cpuid_max(0, NULL) < 7)
		return 0;
	__cpuid_count(7, 0, a, b, c, d);
	/* AVX-512 F (ebx 16), BW (30), VL (31) */
	unsigned need = (1u << 16) | (1u << 30) | (1u << 31);
	if ((b & need) != need)
		return 0;
	__cpuid_count(7, 1, a, b, c, d);
	if (!(a & (1u << 5))) /* AVX512_BF16 */
		return 0;
	unsigned lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	(void)hi;
	return (lo & 0xe6) == 0xe6; /* XMM, YMM, opmask, ZMM state saved */
#else
	return 0;
#endif
}

int train_cpu_has_avx512bf16(void)
{
	static int have = -1;
	if (have < 0)
		have = getenv("DPO_NO_AVX512BF16") ? 0 : probe_avx512bf16();
	return have;
}

train_precision train_precision_resolve(train_precision p)
{
	if (p == TRAIN_PREC_AUTO)
		return train_cpu_has_avx512bf16() ? TRAIN_PREC_BF16 : TRAIN_PREC_F32;
	return p;
}

void train_f32_to_bf16_n(uint16_t *dst, const float *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = train_f32_to_bf16(src[i]);
}

void train_bf16_to_f32_n(float *dst, const uint16_t *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = train_bf16_to_f32(src[i]);
}

/* precision.h: the arithmetic precision a model runs in, and what the CPU
 * offers for it.
 *
 * --precision f32|bf16|auto is one option shared by dpo-train, dpo-model,
 * dpo-generate and dpo-eval. f32 runs every kernel in float32. bf16 runs the
 * matmuls on bfloat16 inputs with float32 accumulation (mixed precision:
 * master weights, norms, softmax, losses and optimizer state stay float32).
 * auto picks bf16 where the CPU has AVX512-BF16 and f32 elsewhere. */
#ifndef DPO_TRAIN_PRECISION_H
#define DPO_TRAIN_PRECISION_H
#include <stddef.h>
#include <stdint.h>

typedef enum {
	TRAIN_PREC_F32 = 0,
	TRAIN_PREC_BF16 = 1,
	TRAIN_PREC_AUTO = 2,
} train_precision;

/* Parse "f32" (also "fp32", "float32"), "bf16" (also "bfloat16") or "auto"
 * into *p. Returns 0, or -1 (and leaves *p alone) for anything else. */
int train_precision_parse(const char *s, train_precision *p);

/* "f32", "bf16" or "auto": a static string. */
const char *train_precision_name(train_precision p);

/* Nonzero when this CPU and OS can run AVX512-BF16 instructions
 * (vdpbf16ps, vcvtne2ps2bf16): CPUID leaf 7 sub-leaf 1 EAX bit 5 plus
 * AVX-512 F/BW/VL and the OS saving ZMM state. Checked once; 0 on other
 * architectures. DPO_NO_AVX512BF16 set in the environment forces 0 (for
 * tests of the fallback path). */
int train_cpu_has_avx512bf16(void);

/* p with auto resolved: bf16 when train_cpu_has_avx512bf16(), else f32.
 * f32 and bf16 are returned as they are (bf16 also runs without the
 * instructions, through the plain kernels, only slower). */
train_precision train_precision_resolve(train_precision p);

/* float32 -> bfloat16, round to nearest even (NaN stays a quiet NaN). */
static inline uint16_t train_f32_to_bf16(float f)
{
	union { float f; uint32_t u; } v = { f };
	if ((v.u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((v.u >> 16) | 0x40);
	v.u += 0x7fffu + ((v.u >> 16) & 1u);
	return (uint16_t)(v.u >> 16);
}

/* bfloat16 -> float32 (exact). */
static inline float train_bf16_to_f32(uint16_t h)
{
	union { uint32_t u; float f; } v = { (uint32_t)h << 16 };
	return v.f;
}

/* dst[i] = bf16(src[i]) for i < n, rounded to nearest even (the same
 * values as train_f32_to_bf16, element by element). */
void train_f32_to_bf16_n(uint16_t *dst, const float *src, size_t n);

/* dst[i] = float(src[i]) for i < n. */
void train_bf16_to_f32_n(float *dst, const uint16_t *src, size_t n);

#endif

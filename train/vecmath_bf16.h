/* vecmath_bf16.h: AVX-512 exp and GELU loops for the bf16 training path
 * and for models held in bf16 (part of the model engine's library).
 *
 * In --precision bf16 the trainer's elementwise work around the matmuls (the
 * log-softmax over the vocabulary, GELU forward and backward) would take a
 * fifth of a step through the C library's scalar expf. These loops compute
 * the same formulas 16 lanes at a time with an exp of about 1 ulp (see
 * train_vexp_ref); the float32 path keeps its scalar loops, bit for bit.
 * Each function has a plain scalar version (the _ref ones) with the same
 * arithmetic, which tests/test_vecmath_bf16 checks it against. */
#ifndef DPO_TRAIN_VECMATH_BF16_H
#define DPO_TRAIN_VECMATH_BF16_H
#include <stddef.h>

/* Whether the trainer uses these loops: train_vecmath_on in
 * train/matmul_bf16.h (it reads the trainer's GEMM precision). */

/* exp(x) by the vector algorithm, one value (the reference of the loops):
 * relative error within 2^-22 for x in [-87, 88]; 0 below -103.9, +inf
 * above 88.8, NaN stays NaN. */
float train_vexp_ref(float x);

/* the largest of m and r[j], j < n (exact; NaNs are skipped as by the
 * scalar r[j] > m ? r[j] : m). */
float train_vmax(const float *r, int n, float m);
float train_vmax_ref(const float *r, int n, float m);

/* sum over j < n of exp(r[j] - m); *lsum gets the sum of r[j]. */
float train_vexp_sum(const float *r, int n, float m, float *lsum);
float train_vexp_sum_ref(const float *r, int n, float m, float *lsum);

/* r[j] = mul * exp(r[j] - sub) for j < n, in place. */
void train_vexp_scale(float *r, int n, float sub, float mul);
void train_vexp_scale_ref(float *r, int n, float sub, float mul);

/* GELU (tanh form): out[i] = gelu(inp[i]); backward: dinp[i] += dout[i] *
 * gelu'(inp[i]); threads over i (OpenMP) when n is large. */
void train_vgelu_forward(float *out, const float *inp, size_t n);
void train_vgelu_forward_ref(float *out, const float *inp, size_t n);
void train_vgelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
void train_vgelu_backward_ref(float *dinp, const float *inp, const float *dout, size_t n);

/* GELU in a model held in bf16 (scoring and generation): out[i] =
 * gelu(inp[i]) by train_vgelu_forward's loop where the CPU runs it
 * (AVX512-BF16), else by train_gelu_forward's expression. Serial set: in
 * the calling thread alone (inside a parallel region), else threads over i
 * when n is large. Each value depends on its input only, so the decode
 * step's slices and the forward's whole rows give the same bits. */
void train_gelu_bf16w_forward(float *out, const float *inp, size_t n, int serial);

#endif

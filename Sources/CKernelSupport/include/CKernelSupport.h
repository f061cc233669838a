#ifndef CKERNELSUPPORT_H
#define CKERNELSUPPORT_H
// Small C helpers for the Kernels layer: things Swift cannot do well when it is
// compiled for generic x86-64 (F16C conversions) or cannot do at all (choosing
// OpenBLAS's kernels after the library has loaded). No stable Swift API: the
// Kernels target wraps these once.
#include <stddef.h>
#include <stdint.h>
#include "AdamW.h"
#include "HalfGemm.h"

#ifdef __cplusplus
extern "C" {
#endif

/// Makes OpenBLAS use the best kernels for this CPU, even where the library did not
/// recognise the CPU at load time (Debian's 0.3.21 reports `Prescott` on some AVX-512
/// parts) or where OPENBLAS_CORETYPE names a slower core than the CPU supports.
/// `forced` (may be NULL) names a core to use whatever the CPU says.
/// Returns the name of the core in use afterwards. Idempotent; call before BLAS work.
const char *dpo_blas_select_core(const char *forced);

/// The core OpenBLAS uses now (`openblas_get_corename()`).
const char *dpo_blas_corename(void);

/// Best OpenBLAS core name for this CPU from CPUID ("SkylakeX", "Haswell",
/// "Sandybridge", or NULL when nothing better than the library's own choice is known).
const char *dpo_cpu_best_blas_core(void);

void dpo_blas_set_threads(int threads);
int dpo_blas_get_threads(void);

/// 1 when the F16C instructions are used for half<->float conversion.
int dpo_cpu_has_f16c(void);

/// IEEE binary16 <-> binary32, round to nearest even; F16C/AVX-512 where present.
void dpo_f16_to_f32(const uint16_t *src, float *dst, size_t count);
void dpo_f32_to_f16(const float *src, uint16_t *dst, size_t count);

/// 1 when `dpo_f16_linear` runs its AVX-512 loop (else a portable one).
int dpo_cpu_has_avx512_half_linear(void);
/// y[t, o] = sum_i x[t, i] * w[o, i] + beta * y[t, o] for t < tokens, o < out, i < in, with `w`
/// binary16 rows `ldw` apart, converted in registers (no float32 copy); HalfLinear.c.
/// beta == 0 overwrites y. Meant for a few tokens (decoding): the weight is read once per token.
void dpo_f16_linear(const float *x, size_t ldx, const uint16_t *w, size_t ldw, float *y, size_t ldy,
                    size_t tokens, size_t out, size_t in, float beta);

/// bfloat16 <-> binary32 (round to nearest even, NaN kept quiet).
void dpo_bf16_to_f32(const uint16_t *src, float *dst, size_t count);
void dpo_f32_to_bf16(const float *src, uint16_t *dst, size_t count);

// Vectorised exp loops (AVX-512 where present, portable expf otherwise); VectorMath.c.

/// 1 when the AVX-512 exp is used.
int dpo_cpu_has_avx512_exp(void);
/// y[i] = exp(x[i]) (relative error ~2 ulp; 0 below ~-103, +inf above ~88.7).
void dpo_vexp(const float *x, float *y, size_t n);
/// Largest of x[0..<n] (-inf when n == 0).
float dpo_row_max(const float *x, size_t n);
/// y[i] = scale * exp(x[i] - shift) when y is not NULL (y may equal x); returns sum exp(x[i] - shift).
float dpo_shifted_exp(const float *x, float *y, size_t n, float shift, float scale);
/// In-place max-subtracted softmax of one row.
void dpo_softmax_row(float *row, size_t n);
/// log(sum exp(row[i])), max-subtracted.
float dpo_logsumexp(const float *row, size_t n);
/// out = silu(gate) * up.
void dpo_swiglu_forward(const float *gate, const float *up, float *out, size_t n);
/// dup = dout * silu(gate); dgate = dout * up * s * (1 + gate * (1 - s)), s = sigmoid(gate).
void dpo_swiglu_backward(const float *gate, const float *up, const float *dout, float *dgate, float *dup, size_t n);

/// A new file in shared memory without a name (memfd_create, close-on-exec; `label` shows in
/// /proc/PID/fd): another process of the host opens it as /proc/PID/fd/N while this one holds
/// it, and it goes with the last descriptor or mapping. -1 with errno on failure.
int dpo_anonymous_shared_file(const char *label);

#ifdef __cplusplus
}
#endif
#endif

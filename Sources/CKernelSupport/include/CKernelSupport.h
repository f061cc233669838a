#ifndef CKERNELSUPPORT_H
#define CKERNELSUPPORT_H
// Small C helpers for the Kernels layer: things Swift cannot do well when it is
// compiled for generic x86-64 (F16C conversions) or cannot do at all (choosing
// OpenBLAS's kernels after the library has loaded). No stable Swift API: the
// Kernels target wraps these once.
#include <stddef.h>
#include <stdint.h>

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

/// bfloat16 <-> binary32 (round to nearest even, NaN kept quiet).
void dpo_bf16_to_f32(const uint16_t *src, float *dst, size_t count);
void dpo_f32_to_bf16(const float *src, uint16_t *dst, size_t count);

#ifdef __cplusplus
}
#endif
#endif

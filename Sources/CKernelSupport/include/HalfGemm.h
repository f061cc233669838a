#ifndef DPO_HALF_GEMM_H
#define DPO_HALF_GEMM_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when `dpo_f16_gemm` can run here (AVX-512 F, BW and VL, and F16C).
int dpo_cpu_has_f16_gemm(void);

/// c[m, n] = a[m, k] op(b) + beta c, row-major with leading dimensions lda, ldb, ldc; `b` holds
/// binary16 bit patterns, [n, k] when trans_b (op(b) = b^T, a linear layer's forward) and
/// [k, n] otherwise (its input gradient). beta == 0 overwrites c without reading it.
/// Single-threaded; its packing buffers belong to the calling thread. Each c element is
/// summed in k order within blocks of at most 1536 k, the blocks in order: the same result
/// however m and n are split between calls. HalfGemm.c.
void dpo_f16_gemm(int trans_b, size_t m, size_t n, size_t k, const float *a, size_t lda, const uint16_t *b,
                  size_t ldb, float beta, float *c, size_t ldc);

#ifdef __cplusplus
}
#endif
#endif

// A linear layer over binary16 weights for a few tokens at a time (decoding), without a
// float32 copy of the weight.
//
// With one token per call the product is a matrix-vector one, bound by reading the weight:
// converting the whole matrix to float32 first adds a write and a read of 4 bytes per weight
// (in cache) to the 2-byte read from memory. Measured on an AVX-512 AMD EPYC (loaded host),
// one decoding step's matmuls on the smollm2-135m shape, weights in one huge-page buffer:
// 25.9 ms against 27.8 ms per token on 1 thread; on 2 threads 25-28 ms against 30-104 ms.
// Each output is one dot product accumulated in 16 float32 lanes over the row, then summed
// across lanes: a different order from sgemm's, within float32 rounding of it.
#include "CKernelSupport.h"
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static int linear_level = -1;  // 0 portable, 1 avx512f+bw+vl

static int level(void) {
    if (linear_level < 0) {
        int l = 0;
#if defined(__x86_64__)
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) l = 1;
#endif
        linear_level = l;
    }
    return linear_level;
}

int dpo_cpu_has_avx512_half_linear(void) { return level() > 0; }

static inline float finish(float sum, const float *y, float beta) { return beta == 0 ? sum : sum + beta * *y; }

// MARK: - portable

/// One output at a time: the row converted in blocks of 64 through `dpo_f16_to_f32`.
static void linear_portable(const float *x, const uint16_t *w, size_t ldw, float *y, size_t rows, size_t in, float beta) {
    float block[64];
    for (size_t r = 0; r < rows; r++) {
        float sum = 0;
        for (size_t i = 0; i < in; i += 64) {
            size_t n = in - i < 64 ? in - i : 64;
            dpo_f16_to_f32(w + r * ldw + i, block, n);
            for (size_t j = 0; j < n; j++) sum += x[i + j] * block[j];
        }
        y[r] = finish(sum, y + r, beta);
    }
}

// MARK: - AVX-512

#if defined(__x86_64__)
/// Eight weight rows against one token: eight accumulators, the token's 16 values loaded once
/// per step. Rows past `rows` re-read row 0 (their sums are dropped).
__attribute__((target("avx512f,avx512bw,avx512vl,f16c")))
static void linear_rows8(const float *x, const uint16_t *w, size_t ldw, float *y, size_t rows, size_t in, float beta) {
    const uint16_t *row[8];
    for (size_t r = 0; r < 8; r++) row[r] = w + (r < rows ? r : 0) * ldw;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (size_t i = 0; i < in; i += 16) {
        __mmask16 m = in - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (in - i)) - 1);
        __m512 xv = _mm512_maskz_loadu_ps(m, x + i);
#define DPO_ROW(a, r) a = _mm512_fmadd_ps(xv, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row[r] + i)), a)
        DPO_ROW(a0, 0); DPO_ROW(a1, 1); DPO_ROW(a2, 2); DPO_ROW(a3, 3);
        DPO_ROW(a4, 4); DPO_ROW(a5, 5); DPO_ROW(a6, 6); DPO_ROW(a7, 7);
#undef DPO_ROW
    }
    float sums[8] = {_mm512_reduce_add_ps(a0), _mm512_reduce_add_ps(a1), _mm512_reduce_add_ps(a2), _mm512_reduce_add_ps(a3),
                     _mm512_reduce_add_ps(a4), _mm512_reduce_add_ps(a5), _mm512_reduce_add_ps(a6), _mm512_reduce_add_ps(a7)};
    for (size_t r = 0; r < rows; r++) y[r] = finish(sums[r], y + r, beta);
}
#endif

void dpo_f16_linear(const float *x, size_t ldx, const uint16_t *w, size_t ldw, float *y, size_t ldy,
                    size_t tokens, size_t out, size_t in, float beta) {
    for (size_t t = 0; t < tokens; t++) {
        const float *xt = x + t * ldx;
        float *yt = y + t * ldy;
#if defined(__x86_64__)
        if (level() > 0) {
            for (size_t o = 0; o < out; o += 8) linear_rows8(xt, w + o * ldw, ldw, yt + o, out - o < 8 ? out - o : 8, in, beta);
            continue;
        }
#endif
        linear_portable(xt, w, ldw, yt, out, in, beta);
    }
}

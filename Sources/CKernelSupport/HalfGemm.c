// A GEMM over binary16 weights: c = a op(b) + beta c with `a` float32 and `b` binary16, the
// weights converted to float32 while they are packed for the kernel, so fp16 storage pays no
// separate conversion pass (nor its 4-byte write and re-read) before each product.
//
// The classic blocked GEMM (Goto/BLIS loop order jc, pc, ic, jr, ir): a KC x NC block of B is
// converted and packed into NR-column float32 panels, an MC x KC block of A is packed into
// MR-row panels (16 x 16 in-register transposes), and an MR x NR = 14 x 32 kernel keeps 28 zmm
// accumulators (2 B vectors and 14 broadcasts of A per k). Every c element is summed in k order
// within a K block, the blocks in order, whatever m and n are. Where OpenBLAS blocks K otherwise
// the order differs from sgemm's, within float32 rounding of it.
//
// Measured against OpenBLAS (SkylakeX kernels) on the weight-bearing GEMMs of a smollm2-135m
// step, one thread, AMD EPYC (Zen 5): launch/gemm-f16.sh; the figures are in the README.
#include "CKernelSupport.h"
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>

// Block sizes (floats): MR x NR is the kernel's tile (28 zmm accumulators); a KC x NC block of
// B (at most 9.4 MB packed) is reused across all of m; an MC x KC block of A (258 KB) across the
// block's NC columns. KC and MC were the best of 256-1536 and 28-336 on the smollm2-135m shapes
// (AMD EPYC, Zen 5): a K split into 256-wide blocks re-reads and re-writes C every block, which
// cost up to 20%.
enum { MR = 14, NR = 32, KC = 1536, MC = 42, NC = 1536 };
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,f16c")))

/// Transposes 16 rows of 16 floats in registers: r[i][j] becomes r[j][i].
AVX512 static inline void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
        __m512d c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    // Each 128-bit lane now holds a 4 x 4 block; gather the lanes.
    for (int i = 0; i < 4; i++) {
        __m512 a = r[i], b = r[4 + i], c = r[8 + i], d = r[12 + i];
        __m512 ab0 = _mm512_shuffle_f32x4(a, b, 0x88), ab1 = _mm512_shuffle_f32x4(a, b, 0xdd);
        __m512 cd0 = _mm512_shuffle_f32x4(c, d, 0x88), cd1 = _mm512_shuffle_f32x4(c, d, 0xdd);
        t[i] = _mm512_shuffle_f32x4(ab0, cd0, 0x88);
        t[8 + i] = _mm512_shuffle_f32x4(ab0, cd0, 0xdd);
        t[4 + i] = _mm512_shuffle_f32x4(ab1, cd1, 0x88);
        t[12 + i] = _mm512_shuffle_f32x4(ab1, cd1, 0xdd);
    }
    memcpy(r, t, sizeof t);
}

static inline __mmask16 firstLanes(size_t n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1); }

/// B [k, n] binary16 (op(B) = B): panels bp[j / NR][p][NR] of rows p < kc, columns j < nc.
AVX512 static void packB(const uint16_t *b, size_t ldb, size_t kc, size_t nc, float *bp) {
    for (size_t j0 = 0; j0 < nc; j0 += NR, bp += kc * NR) {
        size_t w = nc - j0;
        __mmask16 m0 = firstLanes(w), m1 = w > 16 ? firstLanes(w - 16) : 0;
        for (size_t p = 0; p < kc; p++) {
            const uint16_t *row = b + p * ldb + j0;
            _mm512_store_ps(bp + p * NR, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m0, row)));
            _mm512_store_ps(bp + p * NR + 16, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m1, row + 16)));
        }
    }
}

/// B [n, k] binary16 (op(B) = B^T): the same panels, each 16 x 16 block converted and transposed.
AVX512 static void packBTransposed(const uint16_t *b, size_t ldb, size_t kc, size_t nc, float *bp) {
    for (size_t j0 = 0; j0 < nc; j0 += NR, bp += kc * NR) {
        size_t w = nc - j0 < NR ? nc - j0 : NR;
        for (size_t p0 = 0; p0 < kc; p0 += 16) {
            size_t depth = kc - p0 < 16 ? kc - p0 : 16;
            for (size_t half = 0; half < NR / 16; half++) {
                __m512 r[16];
                for (size_t j = 0; j < 16; j++) {
                    size_t column = half * 16 + j;
                    r[j] = column < w ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(firstLanes(depth), b + (j0 + column) * ldb + p0))
                                      : _mm512_setzero_ps();
                }
                transpose16(r);
                for (size_t p = 0; p < depth; p++) _mm512_store_ps(bp + (p0 + p) * NR + half * 16, r[p]);
            }
        }
    }
}

/// A [m, k] float32: panels ap[i / MR][p][MR] of rows i < mc (zero past mc), columns p < kc.
AVX512 static void packA(const float *a, size_t lda, size_t mc, size_t kc, float *ap) {
    for (size_t i0 = 0; i0 < mc; i0 += MR, ap += kc * MR) {
        size_t h = mc - i0 < MR ? mc - i0 : MR;
        for (size_t p0 = 0; p0 < kc; p0 += 16) {
            size_t depth = kc - p0 < 16 ? kc - p0 : 16;
            __m512 r[16];
            for (size_t i = 0; i < 16; i++)
                r[i] = i < h ? _mm512_maskz_loadu_ps(firstLanes(depth), a + (i0 + i) * lda + p0) : _mm512_setzero_ps();
            transpose16(r);
            for (size_t p = 0; p < depth; p++) _mm512_mask_storeu_ps(ap + (p0 + p) * MR, firstLanes(MR), r[p]);
        }
    }
}

/// C[h, w] tile (h <= MR, w <= NR) = beta C + ap bp over kc. C's rows are prefetched first:
/// they are read and written once per call, and a miss at the end stalls the whole tile.
AVX512 static void kernel(size_t kc, const float *restrict ap, const float *restrict bp, float *c, size_t ldc,
                          float beta, size_t h, size_t w) {
    for (size_t i = 0; i < h; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 16), _MM_HINT_T0);
    }
    __m512 acc[MR][2];
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (size_t p = 0; p < kc; p++, ap += MR, bp += NR) {
        __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) {
            __m512 a = _mm512_set1_ps(ap[i]);
            acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
        }
    }
    __mmask16 m0 = firstLanes(w), m1 = w > 16 ? firstLanes(w - 16) : 0;
    __m512 scale = _mm512_set1_ps(beta);
    for (size_t i = 0; i < h; i++) {
        float *row = c + i * ldc;
        if (beta != 0) {
            acc[i][0] = _mm512_fmadd_ps(scale, _mm512_maskz_loadu_ps(m0, row), acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(scale, _mm512_maskz_loadu_ps(m1, row + 16), acc[i][1]);
        }
        _mm512_mask_storeu_ps(row, m0, acc[i][0]);
        _mm512_mask_storeu_ps(row + 16, m1, acc[i][1]);
    }
}

/// This thread's packing buffer of at least `count` floats, 64-byte aligned (kept for the
/// thread's next calls; the pool's threads live as long as the process).
static float *threadBuffer(float **buffer, size_t *capacity, size_t count) {
    if (*capacity < count) {
        free(*buffer);
        *buffer = aligned_alloc(64, (count * sizeof(float) + 63) / 64 * 64);
        *capacity = *buffer ? count : 0;
    }
    return *buffer;
}

AVX512 static void gemmAVX512(int transB, size_t m, size_t n, size_t k, const float *a, size_t lda, const uint16_t *b,
                              size_t ldb, float beta, float *c, size_t ldc) {
    static __thread float *packedB, *packedA;
    static __thread size_t capacityB, capacityA;
    // K in equal blocks of at most KC: a short last block would re-read C for little work.
    size_t blocks = (k + KC - 1) / KC, kcMax = (k + blocks - 1) / blocks;
    size_t ncMax = n < NC ? n : NC;
    float *bp = threadBuffer(&packedB, &capacityB, kcMax * ((ncMax + NR - 1) / NR * NR));
    float *ap = threadBuffer(&packedA, &capacityA, kcMax * (MC + MR));
    if (!bp || !ap) abort();  // a few MB per thread; nothing sensible to do without them
    for (size_t jc = 0; jc < n; jc += NC) {
        size_t nc = n - jc < NC ? n - jc : NC;
        for (size_t pc = 0; pc < k; pc += kcMax) {
            size_t kc = k - pc < kcMax ? k - pc : kcMax;
            if (transB) packBTransposed(b + jc * ldb + pc, ldb, kc, nc, bp);
            else packB(b + pc * ldb + jc, ldb, kc, nc, bp);
            float blockBeta = pc == 0 ? beta : 1;
            for (size_t ic = 0; ic < m; ic += MC) {
                size_t mc = m - ic < MC ? m - ic : MC;
                packA(a + ic * lda + pc, lda, mc, kc, ap);
                for (size_t jr = 0; jr < nc; jr += NR)
                    for (size_t ir = 0; ir < mc; ir += MR)
                        kernel(kc, ap + ir * kc, bp + jr * kc, c + (ic + ir) * ldc + jc + jr, ldc, blockBeta,
                               mc - ir < MR ? mc - ir : MR, nc - jr < NR ? nc - jr : NR);
            }
        }
    }
}
#endif

// MARK: - Portable

/// The same product one row of op(b) at a time (CPUs without AVX-512; never the fast path).
static void gemmPortable(int transB, size_t m, size_t n, size_t k, const float *a, size_t lda, const uint16_t *b,
                         size_t ldb, float beta, float *c, size_t ldc) {
    float *column = malloc((k ? k : 1) * sizeof(float));
    if (!column) abort();
    for (size_t j = 0; j < n; j++) {
        if (transB) dpo_f16_to_f32(b + j * ldb, column, k);
        else for (size_t p = 0; p < k; p++) dpo_f16_to_f32(b + p * ldb + j, column + p, 1);
        for (size_t i = 0; i < m; i++) {
            float sum = 0;
            for (size_t p = 0; p < k; p++) sum += a[i * lda + p] * column[p];
            c[i * ldc + j] = beta == 0 ? sum : sum + beta * c[i * ldc + j];
        }
    }
    free(column);
}

int dpo_cpu_has_f16_gemm(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("f16c");
#else
    return 0;
#endif
}

void dpo_f16_gemm(int trans_b, size_t m, size_t n, size_t k, const float *a, size_t lda, const uint16_t *b,
                  size_t ldb, float beta, float *c, size_t ldc) {
    if (m == 0 || n == 0) return;
#if defined(__x86_64__)
    static int available = -1;
    if (available < 0) available = dpo_cpu_has_f16_gemm();
    if (available && k > 0) {
        gemmAVX512(trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
        return;
    }
#endif
    gemmPortable(trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
}

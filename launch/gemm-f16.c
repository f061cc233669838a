// Would a GEMM that reads binary16 weights while it packs them make fp16 storage faster than
// what the trainer does, converting each layer's weights to float32 and calling OpenBLAS's
// sgemm (issue 17, "fp16 >= fp32")? Built and run by launch/gemm-f16.sh; prints JSON lines.
//
// Three ways to compute each weight-bearing GEMM of a plain smollm2-135m step (4 pairs x 256
// tokens: N = 2048 tokens; LM-head panels of 512 vocabulary rows x 256 positions), all row-major:
//   sgemm32      cblas_sgemm on float32 weights                        (the fp32 path)
//   convert      binary16 -> float32 into a scratch, then cblas_sgemm  (the fp16 path today)
//   packed16     dpo_f16_gemm (Sources/CKernelSupport/HalfGemm.c): B converted while packed
// on the shapes (calls per step as in launch/gemm-compare.c):
//   linear forward NT  y[N, out] = x[N, in] W[out, in]^T   2 per layer (reference + policy)
//   linear dx      NN  dx[N, in] = dy[N, out] W[out, in]   1 per layer
//   LM head        NT  [256, 512] panels x3 (two forwards + the backward's recompute), NN dx x1
// The weight-gradient GEMMs (TN) read no weights and are the same in both precisions: left out.
//
// Method: the three alternate trial by trial (a trial = every shape once, each timed for
// >= 20 ms of repeats, the starting contender rotating); best and median CPU time per call.
#define _GNU_SOURCE
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "CKernelSupport.h"

// MARK: - Shapes and contenders

typedef struct {
    const char *name;
    int transB, m, n, k;
    float beta;
    double calls;  // per training step
} Shape;

enum { N = 2048, LAYERS = 30, HIDDEN = 576, INTER = 1536, QKV = 576 + 2 * 192, VOCAB = 49152, PANEL = 512, CHUNK = 256,
       LABELLED = 1536 };

static const Shape shapes[] = {
    {"qkv.fwd", 1, N, QKV, HIDDEN, 0, 2 * LAYERS},
    {"o.fwd", 1, N, HIDDEN, HIDDEN, 1, 2 * LAYERS},
    {"gateup.fwd", 1, N, 2 * INTER, HIDDEN, 0, 2 * LAYERS},
    {"down.fwd", 1, N, HIDDEN, INTER, 1, 2 * LAYERS},
    {"qkv.dx", 0, N, HIDDEN, QKV, 0, LAYERS},
    {"o.dx", 0, N, HIDDEN, HIDDEN, 0, LAYERS},
    {"gateup.dx", 0, N, HIDDEN, 2 * INTER, 0, LAYERS},
    {"down.dx", 0, N, INTER, HIDDEN, 0, LAYERS},
    {"head.fwd", 1, CHUNK, PANEL, HIDDEN, 0, 3.0 * (VOCAB / PANEL) * (LABELLED / CHUNK)},
    {"head.dx", 0, CHUNK, HIDDEN, PANEL, 1, 1.0 * (VOCAB / PANEL) * (LABELLED / CHUNK)},
};
enum { SHAPES = sizeof shapes / sizeof *shapes, CONTENDERS = 3, MAXTRIALS = 64 };
static const char *contenderName[CONTENDERS] = {"sgemm32", "convert", "packed16"};

typedef struct {
    float *a, *b32, *scratch, *c;
    uint16_t *b16;
    size_t countB;
} Operands;

static Operands makeOperands(const Shape *s, unsigned seed) {
    Operands o;
    size_t countA = (size_t)s->m * s->k, countC = (size_t)s->m * s->n;
    o.countB = (size_t)s->n * s->k;
    o.a = aligned_alloc(64, countA * 4 + 64);
    o.c = aligned_alloc(64, countC * 4 + 64);
    o.b32 = aligned_alloc(64, o.countB * 4 + 64);
    o.scratch = aligned_alloc(64, o.countB * 4 + 64);
    o.b16 = aligned_alloc(64, o.countB * 2 + 64);
    for (size_t i = 0; i < countA; i++) o.a[i] = (float)((double)rand_r(&seed) / RAND_MAX * 2 - 1);
    for (size_t i = 0; i < countC; i++) o.c[i] = (float)((double)rand_r(&seed) / RAND_MAX * 2 - 1);
    // Weights of a trained layer's scale, stored as binary16; the fp32 path holds the same values.
    for (size_t i = 0; i < o.countB; i++) o.b32[i] = (((float)((double)rand_r(&seed) / RAND_MAX * 2 - 1)) * 0.05f);
    dpo_f32_to_f16(o.b32, o.b16, o.countB);
    dpo_f16_to_f32(o.b16, o.b32, o.countB);
    return o;
}

static void freeOperands(Operands *o) { free(o->a); free(o->c); free(o->b32); free(o->scratch); free(o->b16); }

static void run(int contender, const Shape *s, Operands *o, float *c) {
    int ldb = s->transB ? s->k : s->n;
    const float *b = o->b32;
    if (contender == 2) {
        dpo_f16_gemm(s->transB, s->m, s->n, s->k, o->a, s->k, o->b16, ldb, s->beta, c, s->n);
        return;
    }
    if (contender == 1) {
        dpo_f16_to_f32(o->b16, o->scratch, o->countB);
        b = o->scratch;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, s->transB ? CblasTrans : CblasNoTrans, s->m, s->n, s->k, 1, o->a, s->k, b,
                ldb, s->beta, c, s->n);
}

/// Largest |packed16 - sgemm32| / max(1, |sgemm32|) from the same C.
static double disagreement(const Shape *s, Operands *o) {
    size_t count = (size_t)s->m * s->n;
    float *reference = malloc(count * 4), *ours = malloc(count * 4);
    memcpy(reference, o->c, count * 4);
    memcpy(ours, o->c, count * 4);
    run(0, s, o, reference);
    run(2, s, o, ours);
    double worst = 0;
    for (size_t i = 0; i < count; i++) worst = fmax(worst, fabs(ours[i] - reference[i]) / fmax(1.0, fabs(reference[i])));
    free(reference);
    free(ours);
    return worst;
}

static double cpuSeconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static double timeCall(int contender, const Shape *s, Operands *o, double minimum) {
    int reps = 0;
    double start = cpuSeconds(), now;
    do {
        run(contender, s, o, o->c);
        reps++;
        now = cpuSeconds();
    } while (now - start < minimum);
    return (now - start) / reps;
}

static int compareDouble(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

int main(int argc, char **argv) {
    int trials = argc > 1 ? atoi(argv[1]) : 7;
    if (trials < 1 || trials > MAXTRIALS) { fprintf(stderr, "usage: gemm-f16 [trials 1...%d]\n", MAXTRIALS); return 2; }
    if (!dpo_cpu_has_f16_gemm()) {
        fprintf(stderr, "gemm-f16: dpo_f16_gemm's fast path needs AVX-512 (F, BW, VL) and F16C; this CPU has not\n");
        return 1;
    }
    // OpenBLAS chose its kernels at load time (OPENBLAS_CORETYPE may say Haswell): choose again.
    dpo_blas_select_core("SkylakeX");
    dpo_blas_set_threads(1);
    static double seconds[SHAPES][CONTENDERS][MAXTRIALS];
    Operands operands[SHAPES];
    double worst[SHAPES];
    for (int i = 0; i < SHAPES; i++) {
        operands[i] = makeOperands(&shapes[i], 1234u + i);
        worst[i] = disagreement(&shapes[i], &operands[i]);
    }
    for (int t = 0; t < trials; t++)
        for (int turn = 0; turn < CONTENDERS; turn++) {
            int contender = (t + turn) % CONTENDERS;
            for (int i = 0; i < SHAPES; i++) seconds[i][contender][t] = timeCall(contender, &shapes[i], &operands[i], 0.02);
        }
    double step[CONTENDERS][2] = {{0}}, gflop = 0;
    for (int i = 0; i < SHAPES; i++) {
        const Shape *s = &shapes[i];
        double f = 2e-9 * s->m * s->n * s->k, best[CONTENDERS], middle[CONTENDERS];
        for (int c = 0; c < CONTENDERS; c++) {
            qsort(seconds[i][c], trials, sizeof(double), compareDouble);
            best[c] = seconds[i][c][0];
            middle[c] = trials % 2 ? seconds[i][c][trials / 2] : 0.5 * (seconds[i][c][trials / 2 - 1] + seconds[i][c][trials / 2]);
            step[c][0] += s->calls * best[c];
            step[c][1] += s->calls * middle[c];
        }
        gflop += s->calls * f;
        printf("{\"kind\":\"shape\",\"name\":\"%s\",\"op\":\"N%c\",\"m\":%d,\"n\":%d,\"k\":%d,\"calls_per_step\":%g,"
               "\"sgemm32_gflops\":%.1f,\"convert_gflops\":%.1f,\"packed16_gflops\":%.1f,"
               "\"packed16_over_convert\":%.3f,\"packed16_over_sgemm32\":%.3f,\"max_rel_diff\":%.2e}\n",
               s->name, s->transB ? 'T' : 'N', s->m, s->n, s->k, s->calls, f / best[0], f / best[1], f / best[2],
               best[1] / best[2], best[0] / best[2], worst[i]);
        freeOperands(&operands[i]);
    }
    printf("{\"kind\":\"total\",\"openblas_core\":\"%s\",\"trials\":%d,\"step_gflop\":%.1f,", dpo_blas_corename(),
           trials, gflop);
    for (int c = 0; c < CONTENDERS; c++)
        printf("\"%s_step_cpu_s_best\":%.3f,\"%s_step_cpu_s_median\":%.3f,", contenderName[c], step[c][0], contenderName[c], step[c][1]);
    printf("\"packed16_over_convert_best\":%.3f,\"packed16_over_convert_median\":%.3f,\"convert_over_sgemm32_best\":%.3f}\n",
           step[1][0] / step[2][0], step[1][1] / step[2][1], step[0][0] / step[1][0]);
    return 0;
}

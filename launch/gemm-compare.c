// OpenBLAS `cblas_sgemm` against oneDNN `dnnl_sgemm` on the GEMM shapes of one DPO step
// (issue 17, item 6). Built and run by launch/gemm-compare.sh; prints JSON lines.
//
// The shapes are those the trainer issues for a plain step of `dpo bench dpo` (4 pairs x 256
// tokens: 8 rows, N = 2048 tokens, the first quarter of each row unlabelled, so 1536 labelled
// positions), read from Sources/Llama/LlamaModel+Forward/Backward.swift, Kernels/Matmul.swift
// (Linear), Kernels/LabelLogProbs.swift (LM-head panels) and Kernels/Attention.swift (query
// blocks), all row-major:
//   linear forward   NT  [N, out] = x[N, in] W[out, in]^T       ref + policy forward: 2 per layer
//   linear dx        NN  [N, in]  = dy[N, out] W[out, in]       backward: 1 per layer
//   linear dW        TN  [out, in] += dy[N, out]^T x[N, in]     backward: 1 per layer
//   LM head          NT [256, 512] panels (x3: two forwards + the backward's recompute), NN dx, TN dW
//   attention        per (row, head), 64-query blocks against 64..256 keys, strided views of the
//                    fused q|k|v rows; single-threaded calls inside our own thread pool.
//
// Method: the two libraries alternate trial by trial (a trial = every shape once, each timed
// for >= 20 ms of repeats), with a pause between libraries so the other one's spinning worker
// threads have gone to sleep; best and median of the trials. Timing is CPU time of the process
// (robust to the host's other load; at 2 threads it also charges spinning) and wall time.
#define _GNU_SOURCE
#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern void gotoblas_dynamic_init(void);
extern void gotoblas_dynamic_quit(void);
extern char *openblas_get_corename(void);
extern void openblas_set_num_threads(int);

// MARK: - Shapes

typedef struct {
    char name[24];
    int ta, tb, m, n, k, lda, ldb, ldc;
    float alpha, beta;
    double count;  // calls per training step
    int pooled;    // 1 = issued single-threaded from each worker of our pool (attention)
} Shape;

typedef struct {
    const char *name;
    int hidden, inter, heads, kvHeads, headDim, vocab, layers;
} Preset;

static const Preset presets[] = {
    {"smollm2-135m", 576, 1536, 9, 3, 64, 49152, 30},
    {"minimind", 512, 1408, 8, 2, 64, 6400, 8},
};

enum { ROWS = 8, SEQ = 256, TOKENS = ROWS * SEQ, LABELLED = ROWS * (SEQ - SEQ / 4) };
enum { PANEL = 512, CHUNK = 256, QBLOCK = 64, MAXSHAPES = 64 };

/// Appends a shape named `name` (a format with one integer, e.g. the key count).
static int add(Shape *s, int i, const char *name, int number, Shape x) {
    s[i] = x;
    snprintf(s[i].name, sizeof s[i].name, name, number);
    return i + 1;
}

/// Fills `s` with the step's shapes for preset `p`; returns how many.
static int stepShapes(const Preset *p, Shape *s) {
    int h = p->hidden, f = p->inter, qw = p->heads * p->headDim, kw = p->kvHeads * p->headDim;
    int qkv = qw + 2 * kw, L = p->layers, n = 0, N = TOKENS;
    struct { const char *fwd, *dx, *dw; int in, out; float beta; } lin[] = {
        {"qkv.fwd", "qkv.dx", "qkv.dW", h, qkv, 0},
        {"o.fwd", "o.dx", "o.dW", qw, h, 1},
        {"gateup.fwd", "gateup.dx", "gateup.dW", h, 2 * f, 0},
        {"down.fwd", "down.dx", "down.dW", f, h, 1},
    };
    for (int i = 0; i < 4; i++) {
        int in = lin[i].in, out = lin[i].out;
        n = add(s, n, lin[i].fwd, 0, (Shape){"", 0, 1, N, out, in, in, in, out, 1, lin[i].beta, 2.0 * L, 0});
        n = add(s, n, lin[i].dx, 0, (Shape){"", 0, 0, N, in, out, out, in, in, 1, 0, 1.0 * L, 0});
        n = add(s, n, lin[i].dw, 0, (Shape){"", 1, 0, out, in, N, out, in, in, 1, 1, 1.0 * L, 0});
    }
    // LM head: vocabulary panels of 512 rows (a last narrower one), position chunks of 256.
    int chunks = (LABELLED + CHUNK - 1) / CHUNK, full = p->vocab / PANEL, rest = p->vocab % PANEL;
    for (int part = 0; part < 2; part++) {
        int w = part == 0 ? PANEL : rest;
        double panels = part == 0 ? full : (rest ? 1 : 0);
        if (panels == 0) continue;
        double calls = panels * chunks;
        n = add(s, n, "head%d.fwd", w, (Shape){"", 0, 1, CHUNK, w, h, h, h, w, 1, 0, 3 * calls, 0});
        n = add(s, n, "head%d.dx", w, (Shape){"", 0, 0, CHUNK, h, w, w, h, h, 1, 1, calls, 0});
        n = add(s, n, "head%d.dW", w, (Shape){"", 1, 0, w, h, CHUNK, w, h, h, 1, 1, calls, 0});
    }
    // Attention: per (row, head) and per 64-query block b, keys bk = 64 (b + 1).
    // attendHead x3 (two forwards + the backward's recompute), backwardHead x1.
    double heads = (double)ROWS * p->heads * L;
    float scale = 1.0f / sqrtf((float)p->headDim);
    int hd = p->headDim;
    for (int b = 0; b < SEQ / QBLOCK; b++) {
        int bk = QBLOCK * (b + 1);
        // attendHead: scores = scale q k^T [64, bk]; out = P v [64, 64]
        n = add(s, n, "att.qk%d", bk, (Shape){"", 0, 1, QBLOCK, bk, hd, qkv, qkv, SEQ, scale, 0, 3 * heads, 1});
        n = add(s, n, "att.pv%d", bk, (Shape){"", 0, 0, QBLOCK, hd, bk, SEQ, qkv, qw, 1, 0, 3 * heads, 1});
        // backwardHead: dP = dO v^T; dv += P^T dO; dq = dS k; dk += dS^T q
        n = add(s, n, "att.dp%d", bk, (Shape){"", 0, 1, QBLOCK, bk, hd, qw, qkv, SEQ, 1, 0, heads, 1});
        n = add(s, n, "att.dv%d", bk, (Shape){"", 1, 0, bk, hd, QBLOCK, SEQ, qw, qkv, 1, 1, heads, 1});
        n = add(s, n, "att.dq%d", bk, (Shape){"", 0, 0, QBLOCK, hd, bk, SEQ, qkv, qkv, 1, 0, heads, 1});
        n = add(s, n, "att.dk%d", bk, (Shape){"", 1, 0, bk, hd, QBLOCK, SEQ, qkv, qkv, 1, 1, heads, 1});
    }
    return n;
}

// MARK: - Buffers and the two libraries

typedef struct { float *a, *b, *c, *c2; size_t ca, cb, cc; } Buffers;

static float *randomBuffer(size_t count, unsigned *seed) {
    float *x = aligned_alloc(64, ((count * sizeof(float) + 63) / 64) * 64);
    for (size_t i = 0; i < count; i++) x[i] = (float)rand_r(seed) / (float)RAND_MAX * 2 - 1;
    return x;
}

static Buffers makeBuffers(const Shape *s, unsigned seed) {
    Buffers b;
    b.ca = (size_t)(s->ta ? s->k : s->m) * s->lda;
    b.cb = (size_t)(s->tb ? s->n : s->k) * s->ldb;
    b.cc = (size_t)s->m * s->ldc;
    b.a = randomBuffer(b.ca, &seed);
    b.b = randomBuffer(b.cb, &seed);
    b.c = randomBuffer(b.cc, &seed);
    b.c2 = malloc(b.cc * sizeof(float));
    return b;
}

static void freeBuffers(Buffers *b) { free(b->a); free(b->b); free(b->c); free(b->c2); }

enum { OPENBLAS = 0, ONEDNN = 1 };
static const char *libName[2] = {"openblas", "onednn"};

static void gemm(int lib, const Shape *s, const Buffers *b, float *c) {
    if (lib == OPENBLAS) {
        cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans,
                    s->m, s->n, s->k, s->alpha, b->a, s->lda, b->b, s->ldb, s->beta, c, s->ldc);
    } else {
        dnnl_status_t st = dnnl_sgemm(s->ta ? 'T' : 'N', s->tb ? 'T' : 'N', s->m, s->n, s->k, s->alpha,
                                      b->a, s->lda, b->b, s->ldb, s->beta, c, s->ldc);
        if (st != dnnl_success) { fprintf(stderr, "dnnl_sgemm failed (%d) on %s\n", (int)st, s->name); exit(1); }
    }
}

static void setThreads(int lib, int threads) {
    if (lib == OPENBLAS) openblas_set_num_threads(threads);
    else omp_set_num_threads(threads);
}

static double seconds(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/// Times repeats of one call until >= `minimum` seconds of CPU time; per-call cpu and wall seconds.
static void timeShape(int lib, const Shape *s, const Buffers *b, double minimum, double *cpu, double *wall) {
    int reps = 0;
    double c0 = seconds(CLOCK_PROCESS_CPUTIME_ID), w0 = seconds(CLOCK_MONOTONIC), c1;
    do {
        gemm(lib, s, b, b->c);
        reps++;
        c1 = seconds(CLOCK_PROCESS_CPUTIME_ID);
    } while (c1 - c0 < minimum);
    *wall = (seconds(CLOCK_MONOTONIC) - w0) / reps;
    *cpu = (c1 - c0) / reps;
}

/// Largest |x - y| / max(1, |y|) after one call of each library from the same C (beta honoured).
static double agreement(const Shape *s, Buffers *b) {
    memcpy(b->c2, b->c, b->cc * sizeof(float));
    gemm(OPENBLAS, s, b, b->c);
    gemm(ONEDNN, s, b, b->c2);
    double worst = 0;
    for (int i = 0; i < s->m; i++)
        for (int j = 0; j < s->n; j++) {
            double x = b->c[(size_t)i * s->ldc + j], y = b->c2[(size_t)i * s->ldc + j];
            double d = fabs(x - y) / fmax(1.0, fabs(x));
            if (d > worst) worst = d;
        }
    memcpy(b->c2, b->c, b->cc * sizeof(float));
    return worst;
}

static int compareDouble(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static double median(double *x, int n) {
    qsort(x, n, sizeof *x, compareDouble);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

static double flops(const Shape *s) { return 2.0 * s->m * s->n * s->k; }

// MARK: - Run

enum { MAXTRIALS = 64, CLASSES = 6 };
static const char *className[CLASSES] = {"linear.fwd", "linear.dx", "linear.dW", "lm_head", "attention", "step"};

/// Summary class of a shape (index into className; the last, "step", is every shape).
static int shapeClass(const Shape *s) {
    if (s->pooled) return 4;
    if (!strncmp(s->name, "head", 4)) return 3;
    const char *dot = strchr(s->name, '.');
    return !strcmp(dot, ".fwd") ? 0 : !strcmp(dot, ".dx") ? 1 : 2;
}

/// Seconds per step of one library: each shape's best (or median) trial times its calls per step.
/// Wall seconds of pooled calls are divided by the thread count (they run that many at a time).
typedef struct { double cpuBest, cpuMedian, wallBest; } StepSeconds;

typedef struct { double cpu[2][MAXSHAPES][MAXTRIALS], wall[2][MAXSHAPES][MAXTRIALS]; } Trials;

/// Every shape for one library, then every shape for the other, `trials` times (which library
/// goes first alternates), after a pause that lets the other library's threads fall asleep.
static void measure(const Shape *shapes, int count, const Buffers *bufs, int threads, int trials,
                    double minimum, double pause, Trials *out) {
    for (int t = 0; t < trials; t++)
        for (int turn = 0; turn < 2; turn++) {
            int lib = (t + turn) % 2;
            usleep((useconds_t)(pause * 1e6));
            for (int i = 0; i < count; i++) {
                setThreads(lib, shapes[i].pooled ? 1 : threads);
                timeShape(lib, &shapes[i], &bufs[i], minimum, &out->cpu[lib][i][t], &out->wall[lib][i][t]);
            }
        }
}

/// One shape's step seconds per library (best and median trial), from the raw trials.
static void shapeSeconds(const Trials *tr, int i, int trials, int pooledDivisor, StepSeconds out[2]) {
    for (int lib = 0; lib < 2; lib++) {
        double c[MAXTRIALS], w[MAXTRIALS];
        memcpy(c, tr->cpu[lib][i], trials * sizeof(double));
        memcpy(w, tr->wall[lib][i], trials * sizeof(double));
        out[lib].cpuMedian = median(c, trials);  // sorts c: c[0] is the best
        out[lib].cpuBest = c[0];
        qsort(w, trials, sizeof *w, compareDouble);
        out[lib].wallBest = w[0] / pooledDivisor;
    }
}

/// A shape's line: GFLOP/s per CPU-second (best, median) and by wall time, both libraries.
static void printShape(const char *preset, int threads, const Shape *s, const StepSeconds t[2], double worst) {
    double f = flops(s) * 1e-9;
    printf("{\"kind\":\"shape\",\"preset\":\"%s\",\"threads\":%d,\"call_threads\":%d,\"name\":\"%s\","
           "\"op\":\"%c%c\",\"m\":%d,\"n\":%d,\"k\":%d,\"lda\":%d,\"ldb\":%d,\"ldc\":%d,\"beta\":%g,"
           "\"calls_per_step\":%g,\"step_gflop\":%.2f,", preset, threads, s->pooled ? 1 : threads, s->name,
           s->ta ? 'T' : 'N', s->tb ? 'T' : 'N', s->m, s->n, s->k, s->lda, s->ldb, s->ldc, s->beta, s->count, s->count * f);
    for (int lib = 0; lib < 2; lib++)
        printf("\"%s_gflops_per_cpu_s_best\":%.1f,\"%s_gflops_per_cpu_s_median\":%.1f,", libName[lib],
               f / t[lib].cpuBest, libName[lib], f / t[lib].cpuMedian);
    printf("\"onednn_over_openblas_cpu_best\":%.3f,\"max_rel_diff\":%.2e}\n", t[0].cpuBest / t[1].cpuBest, worst);
}

/// A class's (or the whole step's, kind "total") FLOP-weighted line.
static void printSum(const char *preset, int threads, int trials, int cls, double gflop, const StepSeconds t[2]) {
    printf("{\"kind\":\"%s\",\"preset\":\"%s\",\"threads\":%d,\"trials\":%d,\"class\":\"%s\",\"step_gflop\":%.1f,",
           cls == CLASSES - 1 ? "total" : "class", preset, threads, trials, className[cls], gflop);
    for (int lib = 0; lib < 2; lib++)
        printf("\"%s_step_cpu_s\":%.3f,\"%s_gflops_per_cpu_s_best\":%.1f,\"%s_gflops_per_cpu_s_median\":%.1f,"
               "\"%s_gflops_wall_best\":%.1f,", libName[lib], t[lib].cpuBest, libName[lib], gflop / t[lib].cpuBest,
               libName[lib], gflop / t[lib].cpuMedian, libName[lib], gflop / t[lib].wallBest);
    printf("\"onednn_over_openblas_cpu_best\":%.3f,\"onednn_over_openblas_cpu_median\":%.3f,"
           "\"onednn_over_openblas_wall_best\":%.3f}\n", t[0].cpuBest / t[1].cpuBest,
           t[0].cpuMedian / t[1].cpuMedian, t[0].wallBest / t[1].wallBest);
}

/// One preset at one thread count: a line per shape, per class, and the FLOP-weighted step total.
static void runPreset(const Preset *p, int threads, int trials, double minimum, double pause) {
    Shape shapes[MAXSHAPES];
    Buffers bufs[MAXSHAPES];
    double worst[MAXSHAPES];
    static Trials tr;
    int count = stepShapes(p, shapes);
    for (int i = 0; i < count; i++) {
        bufs[i] = makeBuffers(&shapes[i], 1234u + i);
        for (int lib = 0; lib < 2; lib++) setThreads(lib, shapes[i].pooled ? 1 : threads);
        worst[i] = agreement(&shapes[i], &bufs[i]);  // also the warm-up (oneDNN JIT) of both
    }
    measure(shapes, count, bufs, threads, trials, minimum, pause, &tr);
    StepSeconds sum[CLASSES][2] = {{{0}}};
    double gflop[CLASSES] = {0};
    for (int i = 0; i < count; i++) {
        const Shape *s = &shapes[i];
        StepSeconds t[2];
        shapeSeconds(&tr, i, trials, s->pooled ? threads : 1, t);
        printShape(p->name, threads, s, t, worst[i]);
        int classes[2] = {shapeClass(s), CLASSES - 1};
        for (int c = 0; c < 2; c++) {
            gflop[classes[c]] += s->count * flops(s) * 1e-9;
            for (int lib = 0; lib < 2; lib++) {
                sum[classes[c]][lib].cpuBest += s->count * t[lib].cpuBest;
                sum[classes[c]][lib].cpuMedian += s->count * t[lib].cpuMedian;
                sum[classes[c]][lib].wallBest += s->count * t[lib].wallBest;
            }
        }
        freeBuffers(&bufs[i]);
    }
    for (int c = 0; c < CLASSES; c++)
        if (gflop[c] > 0) printSum(p->name, threads, trials, c, gflop[c], sum[c]);
    fflush(stdout);
}

/// The same re-selection as Sources/CKernelSupport/BLASCore.c: OpenBLAS chose its kernels in its
/// constructor (from OPENBLAS_CORETYPE, which this environment may set to Haswell); choose again.
static void selectCore(const char *core) {
    setenv("OPENBLAS_CORETYPE", core, 1);
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
}

static void cpuModel(char *out, size_t size) {
    snprintf(out, size, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *v = strchr(line, ':');
            if (v) { v += 2; v[strcspn(v, "\n")] = 0; snprintf(out, size, "%s", v); }
            break;
        }
    }
    fclose(f);
}

/// The widest instruction set oneDNN's JIT uses here (AVX-512 on this AMD host, if it is recognised).
static const char *isaName(dnnl_cpu_isa_t isa) {
    switch (isa) {
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx: return "avx";
    default: return "other";
    }
}

static void usage(void) {
    fprintf(stderr, "usage: gemm-compare [--preset smollm2-135m|minimind|all] [--threads 1,2] [--trials N]\n"
                    "                    [--min-seconds S] [--pause S] [--core SkylakeX]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *preset = "all", *threadList = "1,2", *core = "SkylakeX";
    int trials = 5;
    double minimum = 0.02, pause = 0.3;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage();
        if (!strcmp(argv[i], "--preset")) preset = argv[++i];
        else if (!strcmp(argv[i], "--threads")) threadList = argv[++i];
        else if (!strcmp(argv[i], "--trials")) trials = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--min-seconds")) minimum = atof(argv[++i]);
        else if (!strcmp(argv[i], "--pause")) pause = atof(argv[++i]);
        else if (!strcmp(argv[i], "--core")) core = argv[++i];
        else usage();
    }
    if (trials < 1 || trials > MAXTRIALS) { fprintf(stderr, "--trials must be in 1...%d\n", MAXTRIALS); return 2; }
    selectCore(core);
    char model[256];
    cpuModel(model, sizeof model);
    const dnnl_version_t *v = dnnl_version();
    printf("{\"kind\":\"host\",\"cpu\":\"%s\",\"online_cpus\":%ld,\"openblas_core\":\"%s\",\"onednn\":\"%d.%d.%d\","
           "\"onednn_cpu_runtime\":\"%s\",\"onednn_isa\":\"%s\",\"omp_wait_policy\":\"%s\",\"tokens\":%d,\"labelled_positions\":%d}\n",
           model, sysconf(_SC_NPROCESSORS_ONLN), openblas_get_corename(), v->major, v->minor, v->patch,
           v->cpu_runtime == DNNL_RUNTIME_OMP ? "omp" : v->cpu_runtime == DNNL_RUNTIME_SEQ ? "seq" : "other",
           isaName(dnnl_get_effective_cpu_isa()), getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "default", TOKENS, LABELLED);
    fflush(stdout);
    char list[64];
    snprintf(list, sizeof list, "%s", threadList);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int threads = atoi(tok);
        if (threads < 1) usage();
        for (size_t p = 0; p < sizeof presets / sizeof *presets; p++)
            if (!strcmp(preset, "all") || !strcmp(preset, presets[p].name)) runPreset(&presets[p], threads, trials, minimum, pause);
    }
    return 0;
}

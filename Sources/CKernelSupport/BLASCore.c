// Choosing OpenBLAS's kernels at run time.
//
// OpenBLAS (DYNAMIC_ARCH build, as Debian ships it) picks its kernel table once, in its
// library constructor, from CPUID or from OPENBLAS_CORETYPE. Debian's 0.3.21 predates
// some CPUs and then falls back to `Prescott`, about 6x slower than the hardware.
// Setting the environment variable from inside a running process is too late, so we
// re-run the library's own selection: `gotoblas_dynamic_quit` forgets the table and
// `gotoblas_dynamic_init` chooses again, honouring OPENBLAS_CORETYPE set just before.
// Both are exported by libopenblas; the memory pool and thread server are unaffected.
#include "CKernelSupport.h"
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

extern void gotoblas_dynamic_init(void);
extern void gotoblas_dynamic_quit(void);
extern char *openblas_get_corename(void);
extern void openblas_set_num_threads(int);
extern int openblas_get_num_threads(void);

const char *dpo_cpu_best_blas_core(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    if (__builtin_cpu_supports("avx")) return "Sandybridge";
#endif
    return NULL;
}

/// Rank of a core name by the width of its sgemm kernels; unknown names rank 0.
static int core_rank(const char *name) {
    if (name == NULL) return 0;
    static const char *avx512[] = {"skylakex", "cooperlake", "sapphirerapids", NULL};
    static const char *avx2[] = {"haswell", "zen", "skylake", NULL};
    static const char *avx[] = {"sandybridge", "bulldozer", "piledriver", "steamroller", "excavator", NULL};
    char lower[64];
    size_t n = strlen(name);
    if (n >= sizeof lower) n = sizeof lower - 1;
    for (size_t i = 0; i < n; i++) lower[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    lower[n] = 0;
    for (int i = 0; avx512[i]; i++) if (strcmp(lower, avx512[i]) == 0) return 3;
    for (int i = 0; avx2[i]; i++) if (strcmp(lower, avx2[i]) == 0) return 2;
    for (int i = 0; avx[i]; i++) if (strcmp(lower, avx[i]) == 0) return 1;
    return 0;
}

static pthread_mutex_t select_lock = PTHREAD_MUTEX_INITIALIZER;
static int selected = 0;

const char *dpo_blas_select_core(const char *forced) {
    pthread_mutex_lock(&select_lock);
    if (!selected || forced != NULL) {
        const char *want = forced;
        if (want == NULL) {
            const char *best = dpo_cpu_best_blas_core();
            if (best != NULL && core_rank(best) > core_rank(openblas_get_corename())) want = best;
        }
        if (want != NULL) {
            setenv("OPENBLAS_CORETYPE", want, 1);
            gotoblas_dynamic_quit();
            gotoblas_dynamic_init();
        }
        selected = 1;
    }
    pthread_mutex_unlock(&select_lock);
    return openblas_get_corename();
}

const char *dpo_blas_corename(void) { return openblas_get_corename(); }
void dpo_blas_set_threads(int threads) { openblas_set_num_threads(threads); }
int dpo_blas_get_threads(void) { return openblas_get_num_threads(); }

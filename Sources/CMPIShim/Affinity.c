// How many processors this process may run on (Linux affinity mask), for thread shares.
#define _GNU_SOURCE
#include "CMPIShim.h"
#include <sched.h>

int dpo_affinity_core_count(void) {
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
#endif
    return 0;
}

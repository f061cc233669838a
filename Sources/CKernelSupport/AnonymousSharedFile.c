// memfd_create(2), which Swift's Glibc module does not expose (it is declared under
// _GNU_SOURCE only): a file in shared memory that has no name anywhere, for SharedWeights.
#define _GNU_SOURCE
#include "CKernelSupport.h"
#include <sys/mman.h>

int dpo_anonymous_shared_file(const char *label) { return memfd_create(label, MFD_CLOEXEC); }

// OpenBLAS from Debian's libopenblas-dev (headers found through pkg-config `openblas`).
#include <cblas.h>

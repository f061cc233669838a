// Open MPI from Debian's libopenmpi-dev (headers found through pkg-config `ompi-c`).
#include <mpi.h>

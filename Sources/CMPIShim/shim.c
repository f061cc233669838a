#include "CMPIShim.h"
#include <mpi.h>
int dpo_mpi_placeholder(void) { return MPI_VERSION; }

#ifndef CMPISHIM_H
#define CMPISHIM_H
// The only code that touches MPI. Filled in by the Distributed work.
int dpo_mpi_placeholder(void);
#endif

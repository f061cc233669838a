#!/usr/bin/env bash
# Measures OpenBLAS (SkylakeX kernels where the CPU has AVX-512) against oneDNN's dnnl_sgemm on
# the GEMM shapes of one DPO step (issue 17, item 6): builds launch/gemm-compare.c and runs it,
# one JSON line per shape and a FLOP-weighted `total` line per preset and thread count.
#   ./launch/gemm-compare.sh [--preset smollm2-135m|minimind|all] [--threads 1,2] [--trials N]
#                            [--min-seconds S] [--pause S] [--core SkylakeX]
# Needs libdnnl-dev (oneDNN; not a build dependency of the trainer): as root it is installed
# with apt-get, otherwise the command to install it is printed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
DPO_SYSTEM_PACKAGES=(libopenblas-dev libdnnl-dev pkg-config)
dpo_install_system_packages

binary="${TMPDIR:-/tmp}/dpo-gemm-compare-$$"
trap 'rm -f "$binary"' EXIT
cc -O2 -std=c11 -o "$binary" "$DPO_ROOT/launch/gemm-compare.c" \
    $(pkg-config --cflags --libs openblas) -ldnnl -fopenmp -lm
# oneDNN (Debian's build) threads with GNU OpenMP. Its default wait policy spins between
# parallel regions, which on a shared host (or beside our own thread pool) burns the other
# core: at 2 threads that measured 0.40x of OpenBLAS per CPU-second. Passive waiting is what a
# trainer sharing its cores would have to use, so it is the default here (override by setting it).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}" OMP_MAX_ACTIVE_LEVELS=1
"$binary" "$@"

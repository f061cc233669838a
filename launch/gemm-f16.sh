#!/usr/bin/env bash
# Measures a GEMM that reads binary16 weights while packing them against what the fp16 path
# does today (convert the weights to float32, then OpenBLAS sgemm) and against the fp32 path
# (sgemm on float32 weights), on the weight-bearing GEMMs of a smollm2-135m step, 1 thread
# (issue 17, "fp16 >= fp32"): builds launch/gemm-f16.c and runs it; JSON lines.
#   ./launch/gemm-f16.sh [trials]      (default 7; needs an x86-64 CPU with AVX-512)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
DPO_SYSTEM_PACKAGES=(libopenblas-dev pkg-config)
dpo_install_system_packages

binary="${TMPDIR:-/tmp}/dpo-gemm-f16-$$"
trap 'rm -f "$binary"' EXIT
# clang (it comes with Swift) honours the kernel's unroll pragma; any C compiler builds it.
compiler="${CC:-$(command -v clang || command -v cc)}"
kernels="$DPO_ROOT/Sources/CKernelSupport"
"$compiler" -O3 -std=gnu11 -I "$kernels/include" -o "$binary" "$DPO_ROOT/launch/gemm-f16.c" "$kernels/HalfGemm.c" \
    "$kernels/HalfConversion.c" "$kernels/BLASCore.c" $(pkg-config --cflags --libs openblas) -lm
model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
printf '{"kind":"host","cpu":"%s","online_cpus":%s,"compiler":"%s"}\n' "$model" "$(nproc)" "$(basename "$compiler")"
"$binary" "$@"

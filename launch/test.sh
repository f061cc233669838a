#!/usr/bin/env bash
# Runs every test, the 2-rank MPI tests included (and the multi-host ones when root, see
# launch/test-multihost.sh), on a fresh Debian machine:
# installs the system packages that are missing, builds in release mode (numeric
# tests are too slow in debug), runs the suite.
#   ./launch/test.sh [extra `swift test` arguments, e.g. --filter LlamaTests]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$DPO_ROOT"
dpo_require_swift
dpo_install_system_packages
dpo_mpi_environment

echo "== build (release)" >&2
swift build -c release -Xswiftc -enable-testing --build-tests
echo "== tests" >&2
swift test -c release -Xswiftc -enable-testing --skip-build "$@"

# Multi-host (network namespaces, root only; exit 77 = skipped, said in the summary), the
# Slurm script check (sbatch --test-only; skipped without Slurm's tools), and the shortened
# demo through the user's own entry point on 2 MPI ranks: it must show DPO improving the
# task score (not only the loss). All skipped when a filter was given.
if [ $# -eq 0 ]; then
    multihost="passed"
    ./launch/test-multihost.sh --skip-build || {
        status=$?
        [ "$status" -eq 77 ] || exit "$status"
        multihost="SKIPPED (see the reason above; needs root and network namespaces)"
    }
    slurm="passed"
    ./launch/slurm-check.sh || {
        status=$?
        [ "$status" -eq 77 ] || exit "$status"
        slurm="SKIPPED (Slurm's tools not installable here)"
    }
    echo "== launch/demo.sh --quick (2 ranks)" >&2
    demo_out="$(mktemp -d)/demo"
    ./launch/demo.sh --quick --out "$demo_out" --require-improvement
    rm -rf "$(dirname "$demo_out")"
    echo "== summary: unit and 2-rank tests passed; multi-host tests $multihost; slurm.sbatch check $slurm; demo passed" >&2
fi

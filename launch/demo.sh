#!/usr/bin/env bash
# The built-in demo on a fresh Debian machine: installs what is missing, builds `dpo` in
# release mode, and runs `dpo demo` on 2 MPI ranks (SFT a small model from scratch on
# arithmetic answers of mixed quality, DPO it against the SFT model, print the task
# accuracy before and after, write plots):
#
#   ./launch/demo.sh [--quick] [--out DIR] [--ranks N] [other dpo demo options]
#
# Defaults: --out runs/demo, --ranks 2. Results: DIR/demo_report.md, DIR/plots/demo.png.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$DPO_ROOT"

ranks=2
demo_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --ranks) ranks="${2:-}"; shift 2 ;;
        --ranks=*) ranks="${1#--ranks=}"; shift ;;
        -h|--help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) demo_args+=("$1"); shift ;;
    esac
done
[[ "$ranks" =~ ^[1-9][0-9]*$ ]] || { echo "error: --ranks needs a positive number, got '$ranks'" >&2; exit 2; }

dpo_require_swift
dpo_install_system_packages
dpo_mpi_environment

start=$(date +%s)
echo "== building dpo (release)" >&2
# The same flags as launch/test.sh, so running one after the other builds once.
swift build -c release -Xswiftc -enable-testing --product dpo >&2
echo "== built in $(( $(date +%s) - start )) s; running the demo on $ranks rank(s)" >&2
DPO_BIN="$DPO_ROOT/.build/release/dpo" "$DPO_ROOT/launch/local.sh" -n "$ranks" -- demo --ranks "$ranks" "${demo_args[@]}"
echo "== demo.sh finished in $(( $(date +%s) - start )) s (build included)" >&2

#!/usr/bin/env bash
# The multi-host tests: dpo on 2 and 3 "hosts" made of Linux network namespaces on this
# machine (launch/netns.sh), started through launch/cluster.sh over TCP only. Needs root and
# `ip netns`; exits 77 (skipped) saying why when this machine cannot make namespaces.
#
#   ./launch/test-multihost.sh [--skip-build]
#
# Runs the Swift tests MultiHostTrainingTests (equivalence with one process, start-up checks
# across hosts, stop/resume through cluster.sh, lost/stalled hosts), each with hosts of
# its own, and removes every namespace it made (also when interrupted).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$DPO_ROOT"

build=1
for arg in "$@"; do
    case "$arg" in
        --skip-build) build=0 ;;
        -h|--help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown option '$arg'" >&2; exit 2 ;;
    esac
done

if ! reason="$("$DPO_ROOT/launch/netns.sh" check 2>&1)"; then
    echo "multi-host tests skipped: ${reason#cannot make namespace hosts: }" >&2
    exit 77
fi
command -v iptables >/dev/null 2>&1 || DPO_SYSTEM_PACKAGES+=(iptables)  # the stalled-host test drops packets with it
dpo_require_swift
dpo_install_system_packages
dpo_mpi_environment

if [ "$build" -eq 1 ]; then
    echo "== build (release)" >&2
    swift build -c release -Xswiftc -enable-testing --build-tests
fi
start=$(date +%s)
echo "== multi-host tests (network namespaces, TCP between hosts)" >&2
DPO_MULTIHOST=1 swift test -c release -Xswiftc -enable-testing --skip-build --filter MultiHostTrainingTests
echo "== multi-host tests passed in $(( $(date +%s) - start )) s" >&2

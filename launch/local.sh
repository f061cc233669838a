#!/usr/bin/env bash
# Runs the release `dpo` on N MPI ranks on this host (or, from cluster.sh, on the hosts of
# a hostfile), with the flags Open MPI needs here, so nobody has to remember them:
#
#   launch/local.sh -n 2 -- train --model runs/sft --data prefs.jsonl --out runs/dpo
#   launch/local.sh -n 2 --threads 1 -- bench allreduce
#
# Options (before --):
#   -n, --ranks N     number of ranks (default: one per core of this host, 1 thread each:
#                     on the 2-core test machine 2 ranks x 1 thread did 619-773 tokens/s
#                     against 173-568 for 1 rank x 2 threads on the minimind DPO step)
#   --threads T       BLAS threads per rank (default: this host's cores / N, at least 1)
#   --bind none|core  rank binding (default none: ranks may use several threads and
#                     share a machine with other work; core pins one core per rank).
#                     Measured 2026-12-03 on the 2-core AMD EPYC (AVX-512) host, shared
#                     (load 8-13), 2 ranks x 1 thread, alternating, `-- bench dpo --preset
#                     minimind --steps 3 --threads 1`: core 278 and 459 tokens/s, none 309
#                     and 833; a pinned rank cannot leave a core another process is using,
#                     so none stays the default even with one thread per rank; on a
#                     quiet host (smollm2-135m, 4x256) the two were within the noise
#                     (none 12.48/12.85 s/step, core 12.37/13.28; README "Pinning")
#   --hostfile FILE   run on the hosts of FILE (what cluster.sh passes)
#   --net NET         with --hostfile: the network between hosts, a subnet (10.1.0.0/16) or
#                     interface name (eth1), for both MPI traffic and Open MPI's daemons
#   --btl LIST        with --hostfile: Open MPI transports (default self,vader,tcp)
# Environment: DPO_BIN (binary to run, default .build/release/dpo, built when missing),
#   DPO_SINGLE_COPY=none when shared-memory single copy (CMA) is not permitted
#   (containers without CAP_SYS_PTRACE), DPO_MPIRUN_ARGS (extra mpirun arguments).
#
# Stopping: SIGINT (Ctrl-C) or SIGTERM to this script is passed to the ranks as SIGUSR1,
# which mpirun forwards as is; the ranks finish the step in progress, rank 0 saves, and
# the job exits 75 (stopped with a checkpoint; `--resume auto` continues). A SIGTERM
# straight to Open MPI 4.1's mpirun would be followed by SIGKILL one second later, before
# a step can finish. A second Ctrl-C/SIGTERM stops the ranks at once. A rank that dies or
# fails ends the whole job with a non-zero status.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() { sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; }

ranks="" threads="" bind="none" hostfile="" net="" btl="self,vader,tcp"
while [ $# -gt 0 ]; do
    case "$1" in
        -n|--ranks) ranks="${2:-}"; shift 2 ;;
        --threads) threads="${2:-}"; shift 2 ;;
        --bind) bind="${2:-}"; shift 2 ;;
        --hostfile) hostfile="${2:-}"; shift 2 ;;
        --net) net="${2:-}"; shift 2 ;;
        --btl) btl="${2:-}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        *) echo "error: unknown option '$1' (dpo's own arguments go after --)" >&2; usage; exit 2 ;;
    esac
done
[ $# -gt 0 ] || { echo "error: no dpo command given after --" >&2; usage; exit 2; }
# One rank per core is the faster arrangement here (see -n above); with a hostfile,
# Open MPI's default is one rank per slot.
if [ -z "$ranks" ]; then
    if [ -n "$hostfile" ]; then
        [ -r "$hostfile" ] || { echo "error: cannot read hostfile '$hostfile'" >&2; exit 2; }
        ranks=$(awk '!/^[[:space:]]*(#|$)/ { n = 1; for (i = 2; i <= NF; i++) if ($i ~ /^slots=/) { split($i, a, "="); n = a[2] } total += n } END { print total + 0 }' "$hostfile")
        [ "$ranks" -gt 0 ] || { echo "error: hostfile '$hostfile' lists no hosts" >&2; exit 2; }
    else
        ranks="$(nproc)"
    fi
fi
[[ "$ranks" =~ ^[1-9][0-9]*$ ]] || { echo "error: -n needs a positive number of ranks, got '$ranks'" >&2; exit 2; }
[ -z "$threads" ] || [[ "$threads" =~ ^[1-9][0-9]*$ ]] ||
    { echo "error: --threads needs a positive number, got '$threads'" >&2; exit 2; }
[[ "$bind" =~ ^(none|core)$ ]] || { echo "error: --bind is none or core, got '$bind'" >&2; exit 2; }
[ -z "$hostfile" ] || [ -r "$hostfile" ] || { echo "error: cannot read hostfile '$hostfile'" >&2; exit 2; }

binary="${DPO_BIN:-$DPO_ROOT/.build/release/dpo}"
if ! command -v mpirun >/dev/null 2>&1; then dpo_install_system_packages; fi
if [ ! -x "$binary" ]; then
    dpo_require_swift
    dpo_install_system_packages
    echo "== building $binary (release)" >&2
    (cd "$DPO_ROOT" && swift build -c release --product dpo >&2)
fi
dpo_mpi_environment

args=(-np "$ranks" --bind-to "$bind")
[ "$(id -u)" -eq 0 ] && args+=(--allow-run-as-root)
if [ -n "$hostfile" ]; then
    # Shared memory within a host, TCP between hosts (Open MPI picks faster networks such
    # as InfiniBand through its own components when they are installed).
    args+=(--hostfile "$hostfile" --mca btl "$btl")
    [ -z "$net" ] || args+=(--mca btl_tcp_if_include "$net" --mca oob_tcp_if_include "$net")
    # A host that vanishes (power, cable, kernel panic) sends nothing: without keepalives
    # Open MPI's daemons would notice only after 300 + 9 x 20 s. Probing an idle connection
    # after 10 s, every 2 s, 3 times, ends the job about 16 s after a host is lost.
    # (OMPI_MCA_oob_tcp_keepalive_* in the environment set other values.)
    [ -n "${OMPI_MCA_oob_tcp_keepalive_time:-}" ] ||
        args+=(--mca oob_tcp_keepalive_time 10 --mca oob_tcp_keepalive_intvl 2 --mca oob_tcp_keepalive_probes 3)
    [ -z "$threads" ] || args+=(-x DPO_THREADS="$threads" -x OPENBLAS_NUM_THREADS="$threads" -x OMP_NUM_THREADS="$threads")
    # Remote ranks start from a fresh ssh environment: pass on dpo's own variables (fault
    # injection, thread counts, ...) and the BLAS/OpenMP thread settings set here.
    for name in $(compgen -e); do
        case "$name" in
            DPO_BIN|DPO_MPIRUN_ARGS|DPO_SINGLE_COPY) ;;
            DPO_THREADS|OPENBLAS_NUM_THREADS|OMP_NUM_THREADS) [ -n "$threads" ] || args+=(-x "$name") ;;
            DPO_*) args+=(-x "$name") ;;
        esac
    done
else
    cores="$(nproc)"
    [ "$ranks" -gt "$cores" ] && args+=(--oversubscribe)
    [ -n "$threads" ] || threads=$(( cores / ranks > 0 ? cores / ranks : 1 ))
    args+=(--mca btl self,vader -x DPO_THREADS="$threads" -x OPENBLAS_NUM_THREADS="$threads" -x OMP_NUM_THREADS="$threads")
fi
[ -z "${DPO_SINGLE_COPY:-}" ] || args+=(--mca btl_vader_single_copy_mechanism "$DPO_SINGLE_COPY")
# shellcheck disable=SC2206
[ -z "${DPO_MPIRUN_ARGS:-}" ] || args+=(${DPO_MPIRUN_ARGS})

# mpirun runs in its own process group (job control) so a terminal's Ctrl-C reaches only
# this script, which turns it into SIGUSR1 for the ranks.
set -m
mpirun "${args[@]}" "$binary" "$@" </dev/null &
launcher=$!
set +m
stops=0
forward_stop() {
    stops=$((stops + 1))
    if [ "$stops" -eq 1 ]; then
        echo "launch: stop requested; the ranks finish the current step (signal again to stop at once)" >&2
        kill -USR1 "$launcher" 2>/dev/null || true
    else
        kill -TERM "$launcher" 2>/dev/null || true
    fi
}
trap forward_stop INT TERM
# `wait` also returns when a trapped signal arrives: keep waiting while mpirun runs, then
# collect its exit status.
while kill -0 "$launcher" 2>/dev/null; do wait "$launcher" || true; done
status=0
wait "$launcher" || status=$?
exit "$status"

#!/usr/bin/env bash
# Runs `dpo` on the hosts of an Open MPI hostfile (`host slots=N` lines):
#
#   launch/cluster.sh hostfiles/mycluster -- train --model runs/sft --data prefs.jsonl --out runs/dpo
#   launch/cluster.sh hostfiles/mycluster -n 8 --threads 4 --net 10.1.0.0/16 -- train ...
#
# -n defaults to the sum of the hostfile's slots; --threads, --net (the subnet or interface
# between hosts), --btl and --bind are launch/local.sh's options. Every host needs the same
# dpo binary at the same path (a shared file system, or copy .build/release/dpo to each host
# and set DPO_BIN), password-less ssh from this host (or Open MPI's plm_rsh_agent, as the
# namespace test uses), and the same Open MPI version. Ranks check at start that they run
# the same binary, configuration and data. Each rank takes its share of its own host's cores
# unless --threads is given. DPO_* variables set here are passed to every rank (-x).
# Stopping works as in local.sh (SIGINT/SIGTERM: checkpoint, then exit). A lost host ends
# the job in about 16 s (Open MPI daemon keepalives); a collective that does not complete
# within `dpo train --collective-timeout` seconds ends it with exit status 76.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
hostfile="$1"; shift
[ -r "$hostfile" ] || { echo "error: cannot read hostfile '$hostfile' (lines like 'node01 slots=16')" >&2; exit 2; }

slots=0
while read -r host rest; do
    case "$host" in ''|\#*) continue ;; esac
    n="$(sed -n 's/.*slots=\([0-9][0-9]*\).*/\1/p' <<<"$rest")"
    slots=$((slots + ${n:-1}))
done <"$hostfile"
[ "$slots" -gt 0 ] || { echo "error: hostfile '$hostfile' names no hosts" >&2; exit 2; }

ranks=""
passthrough=()
while [ $# -gt 0 ]; do
    case "$1" in
        -n|--ranks) ranks="${2:-}"; shift 2 ;;
        --) passthrough+=("$@"); break ;;
        *) passthrough+=("$1"); shift ;;
    esac
done
exec "$here/local.sh" --hostfile "$hostfile" -n "${ranks:-$slots}" "${passthrough[@]}"

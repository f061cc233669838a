#!/usr/bin/env bash
# Checks launch/slurm.sbatch against a real Slurm controller without a cluster: a throwaway
# slurmctld (its own config, port and state in a temporary directory, four configured
# nodes that never run anything) answers `sbatch --test-only` for the shapes the README
# shows, and must refuse a copy of the script with a broken #SBATCH line. Exits 77 (skipped,
# saying why) when Slurm's tools are missing and cannot be installed (root + apt-get:
# slurmctld and slurm-client from Debian).
#
#   ./launch/slurm-check.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$DPO_ROOT"
script=launch/slurm.sbatch

bash -n "$script" || { echo "error: $script is not valid bash" >&2; exit 1; }
if ! command -v sbatch >/dev/null 2>&1 || ! command -v slurmctld >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing slurmctld and slurm-client (for sbatch --test-only)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurmctld slurm-client >/dev/null 2>&1 || true
    fi
    command -v sbatch >/dev/null 2>&1 && command -v slurmctld >/dev/null 2>&1 || {
        echo "slurm check skipped: sbatch/slurmctld are not installed (Debian: apt-get install slurmctld slurm-client, as root)" >&2
        exit 77
    }
fi

work="$(mktemp -d /tmp/dpo-slurm.XXXXXX)"
controller=""
cleanup() {
    [ -z "$controller" ] || kill "$controller" 2>/dev/null || true
    [ -z "$controller" ] || wait "$controller" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
port=$(( 20000 + RANDOM % 20000 ))
mkdir -p "$work/state" "$work/spool"
# CLOUD nodes count as available (powered down until a job needs them), so the controller
# can plan jobs without any slurmd; auth/none needs no munge daemon.
cat >"$work/slurm.conf" <<CONF
ClusterName=dpocheck
SlurmctldHost=$(hostname -s)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=$(id -un)
AuthType=auth/none
CredType=cred/none
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmctldLogFile=$work/slurmctld.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
ResumeProgram=/bin/true
SuspendProgram=/bin/true
SuspendTime=600
NodeName=node[01-04] NodeAddr=127.0.0.1 CPUs=16 State=CLOUD
PartitionName=batch Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$work/slurm.conf"
slurmctld -D -f "$SLURM_CONF" >"$work/slurmctld.out" 2>&1 &
controller=$!
for _ in $(seq 50); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
scontrol ping 2>/dev/null | grep -q UP || { echo "error: the throwaway slurmctld did not start:" >&2; cat "$work/slurmctld.out" >&2; exit 1; }

failures=0
# accept EXPECTED OPTIONS...: sbatch --test-only plans the job, on the nodes EXPECTED names.
accept() {
    local expected="$1" output; shift
    if output="$(sbatch --test-only "$@" "$script" train --model runs/sft --data prefs.jsonl --out runs/dpo 2>&1)" &&
       [[ "$output" == *"to start at"*"on nodes $expected in partition"* && "$output" != *Warning* ]]; then
        echo "ok  sbatch --test-only $* $script: ${output#sbatch: }"
    else
        echo "FAIL sbatch --test-only $* $script (expected nodes $expected, no warning): $output"; failures=$((failures + 1))
    fi
}
accept "node[01-02]"                                         # the script's own default: 2 hosts x 1 rank
accept "node[01-02]" --nodes 2 --ntasks-per-node 4 --cpus-per-task 2
accept "node[01-04]" --nodes 4 --ntasks-per-node 1 --cpus-per-task 16
# The check must be able to fail: a broken directive in a copy of the script is refused.
sed 's/^#SBATCH --signal=.*/#SBATCH --signal=NOT-A-SIGNAL@x/' "$script" >"$work/broken.sbatch"
if sbatch --test-only "$work/broken.sbatch" >"$work/broken.out" 2>&1; then
    echo "FAIL a broken #SBATCH --signal line was accepted: $(cat "$work/broken.out")"; failures=$((failures + 1))
else
    echo "ok  a broken #SBATCH --signal line is refused: $(head -1 "$work/broken.out")"
fi
[ "$failures" -eq 0 ] || exit 1
echo "slurm check passed (Slurm $(sbatch --version | awk '{ print $2 }'))"

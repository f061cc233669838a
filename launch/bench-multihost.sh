#!/usr/bin/env bash
# One host against two namespace hosts (launch/netns.sh) on an unlimited, 1 Gbit and
# 100 Mbit link (tc tbf on every veth): what fp16 gradients on the wire and overlapping the
# all-reduce with backward buy. Root only. Prints a Markdown table (README "Running on a cluster").
#
#   ./launch/bench-multihost.sh [--preset small] [--steps 5] [--rounds 3]
#
# Every figure is the median of --rounds runs (each a fresh job), because a machine shared
# with other work moves single runs by tens of percent.
# Per setting, 1 rank x 1 BLAS thread per host (2 ranks on the one host, shared memory):
#   dpo bench dpo --preset P --batch-pairs 2 --seq 64 --bucket-mb 1 --allreduce-dtype fp32|fp16
#       -> tokens/s and the step's wait for the all-reduce after backward
#   dpo bench allreduce --preset P --bucket-mb 1 --allreduce-dtype fp32|fp16
#       -> hidden fraction: the share of the all-reduce time hidden behind backward
#   dpo bench allreduce --megabytes 25 --allreduce-dtype fp32|fp16
#       -> fp32 gradient averaged per second (fp16 moves half the bytes for the same gradient), Gbit/s
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$DPO_ROOT"
preset=small steps=5 rounds=3
while [ $# -gt 0 ]; do
    case "$1" in
        --preset) preset="${2:-}"; shift 2 ;;
        --steps) steps="${2:-}"; shift 2 ;;
        --rounds) rounds="${2:-}"; shift 2 ;;
        -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown option '$1'" >&2; exit 2 ;;
    esac
done
reason="$(launch/netns.sh check 2>&1)" || { echo "skipped: ${reason}" >&2; exit 77; }
dpo_mpi_environment
export DPO_BIN="${DPO_BIN:-$DPO_ROOT/.build/release/dpo}"
[ -x "$DPO_BIN" ] || { echo "error: build dpo first: swift build -c release --product dpo" >&2; exit 2; }

# bench SETTING DPO-ARGS...: one JSON line. SETTING: local, or a tc rate (none = unlimited).
bench() {
    local setting="$1"; shift
    if [ "$setting" = local ]; then
        launch/local.sh -n 2 --threads 1 -- "$@" 2>/dev/null | grep '^{'
    else
        local rate=()
        [ "$setting" = none ] || rate=(--rate "$setting")
        launch/netns.sh run 2 "${rate[@]}" -- bash -c 'exec ip netns exec "$DPO_NETNS_LAUNCHER" launch/cluster.sh "$DPO_NETNS_HOSTFILE" --net "$DPO_NETNS_SUBNET" --btl tcp,self --threads 1 -- "$@"' bench "$@" 2>/dev/null | grep '^{'
    fi
}
field() { sed -n "s/.*\"$1\": \"\{0,1\}\([^,\"}]*\).*/\1/p"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "| setting | wire | tokens/s | all-reduce wait after backward (s) | hidden behind backward | 25 MB fp32 gradient averaged, Gbit/s |"
echo "|---|---|---|---|---|---|"
for setting in local none 1gbit 100mbit; do
    case "$setting" in
        local) label="one host, 2 ranks (shared memory)" ;;
        none) label="two hosts, veth unlimited (TCP)" ;;
        *) label="two hosts, $setting (TCP)" ;;
    esac
    for wire in fp32 fp16; do
        tokens=() waits=() hidden=() gbps=()
        for _ in $(seq "$rounds"); do
            step="$(bench "$setting" bench dpo --preset "$preset" --batch-pairs 2 --seq 64 --steps "$steps" --bucket-mb 1 --allreduce-dtype "$wire")"
            overlap="$(bench "$setting" bench allreduce --preset "$preset" --bucket-mb 1 --allreduce-dtype "$wire")"
            plain="$(bench "$setting" bench allreduce --megabytes 25 --repeats 3 --allreduce-dtype "$wire")"
            tokens+=("$(field tokens_per_s <<<"$step")")
            waits+=("$(sed -n 's/.*"allreduce_wait": \([^,}]*\).*/\1/p' <<<"$step")")
            hidden+=("$(field hidden_fraction <<<"$overlap")")
            gbps+=("$(awk -v g="$(field gradient_gbps <<<"$plain")" 'BEGIN { printf "%.2f", g * 8 }')")
        done
        printf '| %s | %s | %s | %s | %s | %s |\n' "$label" "$wire" "$(median "${tokens[@]}")" "$(median "${waits[@]}")" \
            "$(median "${hidden[@]}")" "$(median "${gbps[@]}")"
    done
done
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"

#!/usr/bin/env bash
# Several "hosts" on this machine for testing multi-host runs: Linux network namespaces
# joined by a bridge with veth pairs, each with its own link-local address (root only).
#
#   launch/netns.sh run N [--rate RATE] -- COMMAND...   N hosts for the time of COMMAND
#   launch/netns.sh check                               can this machine make them? (exit 77 if not)
#   launch/netns.sh destroy ID                          remove what a killed `run` left behind
#
# `run` creates namespaces ID-h0 (the launcher, where mpirun runs, like a login node) and
# ID-h1..ID-hN (the compute hosts), a bridge ID-br in this namespace (no address: the
# 169.254.S.0/24 addresses exist only inside the namespaces made here), then runs COMMAND
# with these variables set, and removes everything when COMMAND ends or on any signal:
#   DPO_NETNS_ID        the run's id (a prefix unique per run, so parallel runs do not collide)
#   DPO_NETNS_HOSTS     the compute hosts' namespace names, space-separated (= host names)
#   DPO_NETNS_LAUNCHER  the launcher namespace: run mpirun with `ip netns exec $DPO_NETNS_LAUNCHER`
#   DPO_NETNS_HOSTFILE  an Open MPI hostfile naming the N hosts, slots=$DPO_NETNS_SLOTS each (default 1)
#   DPO_NETNS_SUBNET    169.254.S.0/24, for btl_tcp_if_include / oob_tcp_if_include
#   DPO_NETNS_LINKS     the bridge-side veth of each compute host (delete one to lose that host)
#   OMPI_MCA_plm_rsh_agent  launch/netns-rsh.sh, which starts Open MPI's daemons inside a host
# --rate limits every host's link in both directions with a token bucket (tc tbf), e.g. 1gbit
# or 100mbit (tc's netem would add delay too, but it is missing from some kernels).
# SIGINT/SIGTERM to `run` are passed to COMMAND, whose exit status `run` returns.
# DPO_NETNS_HOSTNAME, if set, is the host name of every host (machines that report one name).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() { sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; }

# Prints why this machine cannot make namespace hosts and returns 1, or returns 0.
netns_check() {
    if [ "$(id -u)" -ne 0 ]; then echo "network namespaces need root (running as uid $(id -u))"; return 1; fi
    command -v ip >/dev/null 2>&1 || { echo "the ip command is missing (Debian: apt-get install iproute2)"; return 1; }
    local probe="dpoprobe$$"
    if ! ip netns add "$probe" 2>/dev/null; then echo "'ip netns add' failed (no CAP_SYS_ADMIN, or namespaces disabled in this container)"; return 1; fi
    local ok=0
    ip link add "${probe}a" type veth peer name "${probe}b" 2>/dev/null || ok=1
    ip link del "${probe}a" 2>/dev/null || true
    ip netns del "$probe" 2>/dev/null || true
    [ "$ok" -eq 0 ] || { echo "'ip link add ... type veth' failed (veth support missing in this kernel)"; return 1; }
    command -v unshare >/dev/null 2>&1 || { echo "unshare is missing (Debian: util-linux)"; return 1; }
    return 0
}

# Removes the namespaces, bridge and veths of run ID; kills what runs inside its namespaces.
netns_destroy() {
    local id="$1" ns pid
    for ns in $(ip netns list 2>/dev/null | awk -v p="$id-h" 'index($1, p) == 1 { print $1 }'); do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    # Deleting a namespace deletes its veth end, and with it the pair; the bridge stays.
    for link in $(ip -o link show 2>/dev/null | awk -F': ' '{ print $2 }' | sed 's/@.*//' | grep "^$id-" || true); do
        ip link del "$link" 2>/dev/null || true
    done
}

# Creates run $id with $1 compute hosts (plus the launcher h0); sets DPO_NETNS_*.
netns_create() {
    local count="$1" rate="$2"
    local octet=$(( (RANDOM % 250) + 2 ))
    DPO_NETNS_SUBNET="169.254.$octet.0/24"
    ip link add "$id-br" type bridge
    ip link set "$id-br" up
    DPO_NETNS_HOSTS="" DPO_NETNS_LINKS=""
    local i ns
    for i in $(seq 0 "$count"); do
        ns="$id-h$i"
        ip netns add "$ns"
        ip link add "$id-v$i" type veth peer name "$id-p$i"
        ip link set "$id-p$i" netns "$ns"
        ip link set "$id-v$i" master "$id-br" up
        ip -n "$ns" link set "$id-p$i" name dpo0
        ip -n "$ns" addr add "169.254.$octet.$((i + 1))/24" dev dpo0
        ip -n "$ns" link set dpo0 up
        ip -n "$ns" link set lo up
        if [ -n "$rate" ]; then
            # Egress of both ends: into the host (bridge side) and out of it (namespace side).
            tc qdisc add dev "$id-v$i" root tbf rate "$rate" burst 256kb latency 50ms
            tc -n "$ns" qdisc add dev dpo0 root tbf rate "$rate" burst 256kb latency 50ms
        fi
        [ "$i" -eq 0 ] && continue
        DPO_NETNS_HOSTS="$DPO_NETNS_HOSTS${DPO_NETNS_HOSTS:+ }$ns"
        DPO_NETNS_LINKS="$DPO_NETNS_LINKS${DPO_NETNS_LINKS:+ }$id-v$i"
    done
    DPO_NETNS_LAUNCHER="$id-h0"
    # A firewall that drops bridged traffic (bridge-nf-call-iptables with a FORWARD policy
    # of DROP, as Docker sets) would make every job hang: check the path before use. A TCP
    # connection to a closed port is refused at once when the host is reachable.
    local last="169.254.$octet.$((count + 1))"
    # (A new bridge port may take a moment to forward: up to 10 tries.)
    local try
    for try in $(seq 10); do
        [[ "$(ip netns exec "$DPO_NETNS_LAUNCHER" timeout 1 bash -c "exec 3<>/dev/tcp/$last/9" 2>&1 || true)" == *refused* ]] && break
        sleep 0.5
    done
    if [ "$try" -eq 10 ]; then
        echo "netns: the namespaces cannot reach each other over bridge $id-br; a firewall may drop bridged traffic" \
            "(cat /proc/sys/net/bridge/bridge-nf-call-iptables; iptables -S FORWARD)" >&2
        return 1
    fi
    DPO_NETNS_HOSTFILE="$workdir/hostfile"
    {
        echo "# $count namespace hosts of run $id (launch/netns.sh), subnet $DPO_NETNS_SUBNET"
        for ns in $DPO_NETNS_HOSTS; do echo "$ns slots=${DPO_NETNS_SLOTS:-1}"; done
    } >"$DPO_NETNS_HOSTFILE"
}

command="${1:-}"
case "$command" in
    check)
        reason="$(netns_check)" && { echo "namespace hosts can be made here"; exit 0; }
        echo "cannot make namespace hosts: $reason" >&2
        exit 77 ;;
    destroy)
        [ $# -eq 2 ] || { usage; exit 2; }
        netns_destroy "$2"
        exit 0 ;;
    run) shift ;;
    -h|--help|"") usage; exit 2 ;;
    *) echo "error: unknown command '$command'" >&2; usage; exit 2 ;;
esac

count="${1:-}"; shift || true
[[ "$count" =~ ^[1-9][0-9]?$ ]] || { echo "error: run needs a number of hosts (1-99), got '$count'" >&2; exit 2; }
rate=""
while [ $# -gt 0 ]; do
    case "$1" in
        --rate) rate="${2:-}"; shift 2 ;;
        --) shift; break ;;
        *) echo "error: unknown option '$1' (the command goes after --)" >&2; exit 2 ;;
    esac
done
[ $# -gt 0 ] || { echo "error: no command after --" >&2; exit 2; }
reason="$(netns_check)" || { echo "cannot make namespace hosts: $reason" >&2; exit 77; }

# An id short enough for interface names (15 characters: "<id>-br", "<id>-v12"), unique
# per run: the pid and random bits.
id="dn$(printf '%x' $$)$(printf '%02x' $((RANDOM % 256)))"
workdir="$(mktemp -d "/tmp/$id.XXXXXX")"
child=""
cleanup() {
    trap - EXIT INT TERM HUP
    if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then kill -TERM "$child" 2>/dev/null || true; fi
    netns_destroy "$id"
    rm -rf "$workdir"
}
trap cleanup EXIT
forward() { if [ -n "$child" ]; then kill "-$1" "$child" 2>/dev/null || true; else exit 130; fi; }
# The launch scripts stop the same way on INT and TERM; a background child of a script
# ignores SIGINT, so both go on as TERM.
trap 'forward TERM' TERM INT
trap 'forward HUP' HUP

netns_create "$count" "$rate"
export DPO_NETNS_ID="$id" DPO_NETNS_HOSTS DPO_NETNS_LAUNCHER DPO_NETNS_HOSTFILE DPO_NETNS_SUBNET DPO_NETNS_LINKS
export OMPI_MCA_plm_rsh_agent="$here/netns-rsh.sh"
echo "netns: run $id: hosts $DPO_NETNS_HOSTS on $DPO_NETNS_SUBNET (launcher $DPO_NETNS_LAUNCHER)${rate:+, links limited to $rate}" >&2

# Its own process group (job control), like launch/local.sh's mpirun, so that signals are
# not ignored in it and reach it only through this script.
set -m
"$@" &
child=$!
set +m
status=0
# `wait` returns early when a trapped signal arrives: keep waiting while the command runs.
while kill -0 "$child" 2>/dev/null; do wait "$child" || true; done
wait "$child" || status=$?
child=""
exit "$status"

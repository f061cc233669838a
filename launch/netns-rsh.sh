#!/bin/sh
# Open MPI's remote agent (plm_rsh_agent) for the namespace hosts of launch/netns.sh: where
# mpirun would run `ssh HOST COMMAND`, this runs COMMAND inside the network namespace named
# HOST, with its own host name (a UTS namespace) and, as over ssh, a fresh environment, so
# only what mpirun passes on (-x, MCA parameters) reaches the ranks.
# With DPO_NETNS_HOSTNAME set, every host takes that name instead (machines that report one
# name); Open MPI names its session directory and shared-memory segments after the host name,
# so each host then also gets its own /dev/shm (a tmpfs of its mount namespace) as TMPDIR, as
# separate machines would.
host="$1"; shift
[ -e "/run/netns/$host" ] || { echo "netns-rsh: no network namespace named '$host' (launch/netns.sh makes them)" >&2; exit 255; }
if [ -n "${DPO_NETNS_HOSTNAME:-}" ]; then
    exec ip netns exec "$host" unshare --uts --mount env -i PATH="$PATH" HOME="${HOME:-/root}" TMPDIR=/dev/shm \
        sh -c 'mount -t tmpfs tmpfs /dev/shm && hostname "$0" && exec sh -c "$*"' "$DPO_NETNS_HOSTNAME" "$@"
fi
exec ip netns exec "$host" unshare --uts env -i PATH="$PATH" HOME="${HOME:-/root}" \
    sh -c 'hostname "$0" && exec sh -c "$*"' "$host" "$@"

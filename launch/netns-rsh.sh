#!/bin/sh
# Open MPI's remote agent (plm_rsh_agent) for the namespace hosts of launch/netns.sh: where
# mpirun would run `ssh HOST COMMAND`, this runs COMMAND inside the network namespace named
# HOST, with its own host name (a UTS namespace) and, as over ssh, a fresh environment, so
# only what mpirun passes on (-x, MCA parameters) reaches the ranks.
host="$1"; shift
[ -e "/run/netns/$host" ] || { echo "netns-rsh: no network namespace named '$host' (launch/netns.sh makes them)" >&2; exit 255; }
exec ip netns exec "$host" unshare --uts env -i PATH="$PATH" HOME="${HOME:-/root}" \
    sh -c 'hostname "$0" && exec sh -c "$*"' "$host" "$@"

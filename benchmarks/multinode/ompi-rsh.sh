#!/bin/bash
# ompi-rsh.sh NODE COMMAND... — Open MPI's rsh agent (--mca plm_rsh_agent)
# for the emulated cluster of scripts/slurm-multi.sh: it runs COMMAND (one
# string, as ssh would) inside node NODE's namespaces (network, UTS, mount
# and PID: the node's address, host name and /dev/shm), entered through
# the node's PID 1, the shell slurm-multi.sh started under unshare.
# Open MPI may put options before the node (as for ssh); they are skipped.
set -euo pipefail
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done
node=${1:?usage: ompi-rsh.sh NODE COMMAND...}
shift
run=/run/slurm-multi
[ -s "$run/node-$node.pid" ] || { echo "ompi-rsh.sh: node $node is not up ($run/node-$node.pid missing)" >&2; exit 1; }
outer=$(cat "$run/node-$node.pid")
init=$(pgrep -P "$outer" | head -n1)
[ -n "$init" ] || { echo "ompi-rsh.sh: node $node: no process under unshare pid $outer" >&2; exit 1; }
exec nsenter -t "$init" --net --uts --mount --pid -- /bin/sh -c "$*"

#!/bin/bash
# slurm-multi.sh up [N] | down | status | node-kill NODE | node-start NODE
#
# An emulated SLURM cluster of N nodes (default 3) on this machine, for
# rankhub's multi-node tests. It coexists with the one-node cluster of
# slurm-local.sh: its own configuration (/etc/slurm-multi/slurm.conf; point
# SLURM_CONF at it to use this cluster), its own slurmctld on other ports,
# its own state, spool, pid and log files.
#
# Each node nX is a network namespace (rhm-nX, address 10.231.0.1X on eth0)
# joined by a veth pair to a bridge in its own namespace (rhm-br); the host
# joins the bridge as 10.231.0.254, where this cluster's slurmctld listens.
# A node's slurmd runs under `nsenter --net=` (not `ip netns exec`, which
# remounts /sys and hides the cgroup tree) inside
# `unshare --uts --mount --pid --fork --mount-proc` with the node's
# hostname, a fresh tmpfs on /dev/shm and its own /etc/hosts, Debian-style
# (the node's own name maps to 127.0.1.1). Node n1 is multi-homed: a second
# interface, eth1 (10.232.0.11, a network no other node reaches), comes
# before eth0. munge's socket is shared through the file system. Addresses
# are in 10.231.0.0/24 and 10.232.0.0/24 only; nothing is routed elsewhere.
#
# node-kill NODE kills the node at once (its slurmd and every rank on it:
# the PID namespace ends), as a crash would; node-start NODE starts it again
# and returns it to service. down removes the namespaces, the host's veth,
# the daemons and every file this script wrote.
#
# Environment:
#   SLURM_MULTI_WAIT   seconds to wait for the nodes to become idle (default 60)
set -euo pipefail
# shellcheck source=slurm-conf.sh
. "$(dirname "$0")/slurm-conf.sh"

NAME=slurm-multi
CONF_DIR=/etc/$NAME
CONF=$CONF_DIR/slurm.conf
STATE_DIR=/var/spool/slurmctld-multi
SPOOL_DIR=/var/spool/$NAME
LOG_DIR=/var/log/$NAME
RUN_DIR=/run/$NAME
CTL_PORT=6917
NODE_PORT=6918
NET=10.231.0
NET2=10.232.0
HOST_IP=$NET.254
WAIT=${SLURM_MULTI_WAIT:-60}
HERE=$(cd "$(dirname "$0")" && pwd)

log() { printf '%s: %s\n' "$NAME" "$*" >&2; }
die() { log "error: $*"; exit 1; }

need_root() {
	[ "$(id -u)" -eq 0 ] || die "must run as root (it creates network namespaces and starts daemons)"
}

node_ip() { echo "$NET.$((10 + ${1#n}))"; }

nodes_up() { # the node names of the running cluster
	[ -s "$RUN_DIR/nodes" ] && cat "$RUN_DIR/nodes"
}

write_conf() { # nodes
	local n=$1 i host mem
	host=$(hostname -s)
	install -d -m 0755 "$CONF_DIR" "$STATE_DIR" "$SPOOL_DIR" "$LOG_DIR" "$RUN_DIR"
	for i in $(seq 1 "$n"); do
		install -d -m 0755 "$SPOOL_DIR/n$i"
	done
	mem=2000
	{
		cat <<EOF
# Written by rankhub scripts/slurm-multi.sh: an emulated $n-node cluster.
ClusterName=rankhub-multi
SlurmctldHost=$host($HOST_IP)
SlurmctldPort=$CTL_PORT
SlurmdPort=$NODE_PORT
$(slurm_conf_daemons)
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR/%n
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd-%n.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
$(slurm_conf_limits)
SlurmdTimeout=10
SlurmctldTimeout=10
MessageTimeout=5
EOF
		for i in $(seq 1 "$n"); do
			echo "NodeName=n$i NodeAddr=$(node_ip "n$i") NodeHostname=n$i CPUs=2 RealMemory=$mem State=UNKNOWN"
		done
		echo "PartitionName=multi Nodes=n[1-$n] Default=YES MaxTime=INFINITE OverSubscribe=YES State=UP"
	} >"$CONF"
	seq 1 "$n" | sed 's/^/n/' >"$RUN_DIR/nodes"
}

ip_br() { ip netns exec rhm-br ip "$@"; }
ip_in() { local ns=$1; shift; ip netns exec "$ns" ip "$@"; }

net_up() { # nodes
	local n=$1 i ns
	ip netns add rhm-br
	ip_br link set lo up
	ip_br link add br0 type bridge
	ip_br link set br0 up
	# The host's leg: the controller and the test's sbatch talk to the nodes
	# through it.
	ip link add rhm-h type veth peer name rhm-hb
	ip link set rhm-hb netns rhm-br
	ip_br link set rhm-hb master br0 up
	ip addr add "$HOST_IP/24" dev rhm-h
	ip link set rhm-h up
	# n1's second network: a bridge of its own nobody else is on.
	ip_br link add br1 type bridge
	ip_br link set br1 up
	for i in $(seq 1 "$n"); do
		ns=rhm-n$i
		ip netns add "$ns"
		ip_in "$ns" link set lo up
		if [ "$i" = 1 ]; then
			# Created first: eth1 has the lower interface index, so a naive
			# "first non-loopback address" picks it.
			ip link add rhm-x$i type veth peer name rhm-x${i}b
			ip link set rhm-x$i netns "$ns"
			ip_in "$ns" link set rhm-x$i name eth1
			ip link set rhm-x${i}b netns rhm-br
			ip_br link set rhm-x${i}b master br1 up
			ip_in "$ns" addr add "$NET2.1$i/24" dev eth1
			ip_in "$ns" link set eth1 up
		fi
		ip link add rhm-n$i type veth peer name rhm-n${i}b
		ip link set rhm-n$i netns "$ns"
		ip_in "$ns" link set rhm-n$i name eth0
		ip link set rhm-n${i}b netns rhm-br
		ip_br link set rhm-n${i}b master br0 up
		ip_in "$ns" addr add "$(node_ip "n$i")/24" dev eth0
		ip_in "$ns" link set eth0 up
	done
}

net_down() {
	local ns
	for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^rhm-/ { print $1 }'); do
		ip netns del "$ns" 2>/dev/null || true
	done
	ip link del rhm-h 2>/dev/null || true
}

write_hosts() { # node: its /etc/hosts, Debian-style
	local me=$1 i
	{
		echo "127.0.0.1 localhost"
		echo "127.0.1.1 $me"
		for i in $(nodes_up); do
			[ "$i" = "$me" ] || echo "$(node_ip "$i") $i"
		done
		echo "$HOST_IP $(hostname -s)"
	} >"$RUN_DIR/hosts-$me"
}

start_node() { # node
	local node=$1 pidf=$RUN_DIR/node-$1.pid
	if [ -s "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
		return
	fi
	write_hosts "$node"
	rm -f "$RUN_DIR/slurmd-$node.pid"
	# PID 1 of the node's PID namespace is a shell that reaps orphans; when
	# unshare dies (node-kill, down) --kill-child kills it, and with it
	# every process of the node.
	nsenter --net="/run/netns/rhm-$node" \
		unshare --uts --mount --pid --fork --kill-child=SIGKILL --mount-proc --propagation private \
		/bin/sh -c '
			hostname "$1"
			mount -t tmpfs -o mode=1777,size=2g tmpfs /dev/shm
			mount --bind "$2" /etc/hosts
			/usr/sbin/slurmd -D -N "$1" -f "$3" &
			wait
		' node "$node" "$RUN_DIR/hosts-$node" "$CONF" \
		</dev/null >>"$LOG_DIR/node-$node.out" 2>&1 &
	echo $! >"$pidf"
}

kill_node() { # node
	local pidf=$RUN_DIR/node-$1.pid pid
	[ -s "$pidf" ] || return 0
	pid=$(cat "$pidf")
	kill -9 "$pid" 2>/dev/null || true
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	rm -f "$pidf"
}

start_ctld() {
	if [ -s "$RUN_DIR/slurmctld.pid" ] && kill -0 "$(cat "$RUN_DIR/slurmctld.pid")" 2>/dev/null; then
		return
	fi
	log "starting slurmctld (port $CTL_PORT)"
	/usr/sbin/slurmctld -f "$CONF" || die "slurmctld did not start (see $LOG_DIR/slurmctld.log)"
}

stop_ctld() {
	local pidf=$RUN_DIR/slurmctld.pid pid
	[ -s "$pidf" ] || return 0
	pid=$(cat "$pidf")
	kill "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
}

wait_idle() { # nodes...
	local deadline=$((SECONDS + WAIT)) node state pending
	while [ "$SECONDS" -lt "$deadline" ]; do
		pending=0
		for node in "$@"; do
			state=$(SLURM_CONF=$CONF sinfo -h -N -n "$node" -o '%T' 2>/dev/null | head -n1 || true)
			case "$state" in
			idle | mixed | allocated) ;;
			down* | drain* | fail*)
				SLURM_CONF=$CONF scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true
				pending=1
				;;
			*) pending=1 ;;
			esac
		done
		[ "$pending" = 0 ] && return 0
		sleep 1
	done
	SLURM_CONF=$CONF sinfo >&2 || true
	die "nodes $* not idle after ${WAIT}s (see $LOG_DIR/)"
}

down() {
	local node
	if [ -d "$RUN_DIR" ]; then
		for node in $(nodes_up || true); do
			kill_node "$node"
		done
		for f in "$RUN_DIR"/node-*.pid; do
			[ -e "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
		done
		stop_ctld
	fi
	net_down
	rm -rf "$RUN_DIR" "$CONF_DIR" "$STATE_DIR" "$SPOOL_DIR" "$LOG_DIR"
}

case "${1:-}" in
up)
	need_root
	n=${2:-3}
	case "$n" in '' | *[!0-9]*) die "node count $n is not a number" ;; esac
	[ "$n" -ge 2 ] && [ "$n" -le 9 ] || die "node count $n: want 2 to 9"
	bash "$HERE/slurm-local.sh" deps
	# up is idempotent only for the same size: anything else starts afresh.
	if [ "$(nodes_up 2>/dev/null | wc -l)" != "$n" ] || ! ip netns list | grep -q '^rhm-br'; then
		down
		write_conf "$n"
		net_up "$n"
	fi
	start_ctld
	for node in $(nodes_up); do
		start_node "$node"
	done
	# shellcheck disable=SC2046
	wait_idle $(nodes_up)
	SLURM_CONF=$CONF sinfo -N
	log "up: export SLURM_CONF=$CONF to use it"
	;;
down)
	need_root
	down
	;;
node-kill)
	need_root
	[ -n "${2:-}" ] || die "node-kill NODE"
	log "killing node $2"
	kill_node "$2"
	;;
node-start)
	need_root
	[ -n "${2:-}" ] || die "node-start NODE"
	start_node "$2"
	wait_idle "$2"
	;;
status)
	if [ ! -s "$CONF" ]; then
		echo "$NAME: not up (run: $0 up)"
		exit 1
	fi
	echo "SLURM_CONF=$CONF"
	SLURM_CONF=$CONF sinfo -N
	;;
*)
	echo "usage: $0 up [N] | down | status | node-kill NODE | node-start NODE" >&2
	exit 2
	;;
esac

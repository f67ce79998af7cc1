#!/bin/bash
# slurm-local.sh up [--nodes N] | down [--nodes N] | status | deps
#
# With --nodes N (N >= 2), up, down and status act on the emulated N-node
# cluster of slurm-multi.sh instead, which runs beside the one-node cluster
# (SLURM_CONF=/etc/slurm-multi/slurm.conf selects it). deps installs the
# packages and starts munged, nothing else.
#
# A single-node SLURM on this machine for rankhub's integration tests, from
# Debian's slurm-wlm, munge and slurm-wlm-torque (the qsub/qstat wrappers).
# Idempotent: "up" twice leaves one running cluster; "down" twice is fine.
# No systemd is assumed: the daemons are started directly.
#
# Environment:
#   SLURM_LOCAL_CPUS   CPUs the node declares (default 8, more than the VM has:
#                      SlurmdParameters=config_overrides allows it)
#   SLURM_LOCAL_WAIT   seconds to wait for the node to become idle (default 60)
set -euo pipefail
# shellcheck source=slurm-conf.sh
. "$(dirname "$0")/slurm-conf.sh"

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd
LOG_DIR=/var/log/slurm
RUN_DIR=/run/slurm
CPUS=${SLURM_LOCAL_CPUS:-8}
WAIT=${SLURM_LOCAL_WAIT:-60}
PACKAGES=(slurm-wlm munge slurm-wlm-torque)

log() { printf 'slurm-local: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

need_root() {
	[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts daemons)"
}

install_packages() {
	local missing=() p
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if [ "${#missing[@]}" -eq 0 ]; then
		return
	fi
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

start_munge() {
	install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
	install -d -o munge -g munge -m 0755 /run/munge
	if [ ! -s /etc/munge/munge.key ]; then
		log "creating /etc/munge/munge.key"
		if command -v mungekey >/dev/null 2>&1; then
			mungekey --create --keyfile=/etc/munge/munge.key
		else
			dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
		fi
	fi
	chown munge:munge /etc/munge/munge.key
	chmod 0400 /etc/munge/munge.key
	if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
		return
	fi
	log "starting munged"
	# A stale pid or socket from an unclean stop makes munged refuse to start.
	rm -f /run/munge/munged.pid /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
	runuser -u munge -- /usr/sbin/munged
	local i
	for i in $(seq 1 50); do
		munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return
		sleep 0.1
	done
	die "munged did not answer (see /var/log/munge/munged.log)"
}

write_conf() {
	local host mem
	host=$(hostname -s)
	# RealMemory in MiB, a little below what the kernel reports.
	mem=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
	install -d -m 0755 "$CONF_DIR" "$STATE_DIR" "$SPOOL_DIR" "$LOG_DIR" "$RUN_DIR"
	local tmp
	tmp=$(mktemp)
	cat >"$tmp" <<EOF
# Written by rankhub scripts/slurm-local.sh: a single-node cluster for tests.
ClusterName=rankhub
SlurmctldHost=$host
$(slurm_conf_daemons)
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
$(slurm_conf_limits)
NodeName=$host CPUs=$CPUS RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE OverSubscribe=YES State=UP
EOF
	if ! cmp -s "$tmp" "$CONF"; then
		log "writing $CONF"
		install -m 0644 "$tmp" "$CONF"
		CONF_CHANGED=1
	fi
	rm -f "$tmp"
}

pid_alive() { # pidfile
	[ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

start_daemons() {
	if [ "${CONF_CHANGED:-0}" = 1 ]; then
		stop_daemons
	fi
	if ! pid_alive "$RUN_DIR/slurmctld.pid"; then
		log "starting slurmctld"
		/usr/sbin/slurmctld || die "slurmctld did not start (see $LOG_DIR/slurmctld.log)"
	fi
	if ! pid_alive "$RUN_DIR/slurmd.pid"; then
		log "starting slurmd"
		/usr/sbin/slurmd || die "slurmd did not start (see $LOG_DIR/slurmd.log)"
	fi
}

wait_idle() {
	local host deadline state
	host=$(hostname -s)
	deadline=$((SECONDS + WAIT))
	while [ "$SECONDS" -lt "$deadline" ]; do
		state=$(sinfo -h -N -n "$host" -o '%T' 2>/dev/null | head -n1 || true)
		case "$state" in
		idle | mixed | allocated)
			log "node $host is $state"
			return 0
			;;
		down* | drain* | fail*)
			scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true
			;;
		esac
		sleep 1
	done
	sinfo >&2 || true
	die "node $host not idle after ${WAIT}s (see $LOG_DIR/slurmctld.log and $LOG_DIR/slurmd.log)"
}

stop_one() { # name pidfile
	local pidf=$2 pid i
	if ! pid_alive "$pidf"; then
		rm -f "$pidf"
		return
	fi
	pid=$(cat "$pidf")
	log "stopping $1 (pid $pid)"
	kill "$pid" 2>/dev/null || true
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "$1 did not stop on TERM; killing"
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$pidf"
}

stop_daemons() {
	stop_one slurmd "$RUN_DIR/slurmd.pid"
	stop_one slurmctld "$RUN_DIR/slurmctld.pid"
}

if [ "${2:-}" = --nodes ]; then
	[ -n "${3:-}" ] || { echo "usage: $0 up|down|status --nodes N" >&2; exit 2; }
	exec bash "$(dirname "$0")/slurm-multi.sh" "$1" "$3"
fi

case "${1:-}" in
deps)
	need_root
	install_packages
	start_munge
	;;
up)
	need_root
	install_packages
	start_munge
	write_conf
	start_daemons
	wait_idle
	sinfo
	;;
down)
	need_root
	stop_daemons
	;;
status)
	if ! command -v sinfo >/dev/null 2>&1; then
		echo "slurm-local: sinfo not installed (run: $0 up)"
		exit 1
	fi
	for d in slurmctld slurmd; do
		if pid_alive "$RUN_DIR/$d.pid"; then
			echo "$d: running (pid $(cat "$RUN_DIR/$d.pid"))"
		else
			echo "$d: stopped"
		fi
	done
	sinfo
	;;
*)
	echo "usage: $0 up [--nodes N] | down [--nodes N] | status [--nodes N] | deps" >&2
	exit 2
	;;
esac

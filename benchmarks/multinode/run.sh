#!/bin/bash
# rankhub across nodes, side by side with the raw wire and Open MPI, in one
# run on the emulated 3-node cluster of scripts/slurm-multi.sh (nodes n1..n3
# are network namespaces rhm-n1..rhm-n3, 10.231.0.11..13 on one bridge):
#   1. raw limit: one TCP stream n1 -> n2 (tcpstream.c, sockbw's stream
#      between two node namespaces), and three at once (n1->n2, n2->n3,
#      n3->n1): their sum, the bridge's aggregate;
#   2. Open MPI 4.1 (mpi_multinode.py, mpi4py buffer calls) started by
#      mpirun.openmpi on the host, its daemons in the nodes' namespaces through
#      the rsh agent ompi-rsh.sh, BTLs tcp,self,vader on 10.231.0.0/24;
#   3. rankhub: bin/mnbench submitted with `rankhub submit` to the cluster
#      (rank 0, the driver, on n1): the collectives, point to point, and the
#      driver's Push/Pull/Scatter/Gather through views;
# for every layout NxK (N nodes, K ranks each), then prints one table with
# the issue's targets (issue 15) and saves it to benchmarks/results/.
# Needs the cluster up (make slurm-multi-up), root (nsenter), Debian's
# openmpi-bin, python3-mpi4py, python3-numpy and gcc.
#
# Environment (to re-run one row):
#   SIZES_MIB   total array sizes (default 8,64,512)
#   LAYOUTS     NxK layouts (default 3x1,3x2)
#   OPS         operations, comma-separated (default all): Bcast, Scatter,
#               Gather, Reduce, Allreduce, Allgather, SendRecv_p2p (both
#               sides), ViewPush, ViewPull, ViewScatter, ViewGather,
#               ViewPushOne, ViewPullOne (rankhub only; ViewPull, ViewGather
#               and ViewPullOne need ViewPush, ViewScatter, ViewPushOne
#               before them); the raw streams
#               always run (the ratios need them) unless SKIP has raw
#   REPS        repetitions under 512 MiB (default 9: on this noisy 2-core
#               host single 8 and 64 MiB repetitions vary 2x, and the median
#               of 5 moved 15-20% between runs); REPS_LARGE at 512 MiB and
#               more (default 3); the table shows median and minimum
#   RAW_MIB     bytes of each raw stream (default 2048)
#   SKIP        any of raw,mpi,rankhub: leave that column out
#   HEARTBEAT   the rankhub job's heartbeat interval (default 5s: a peer is
#               dead after 5 silent intervals; with the default 1s a rank
#               of a 512 MiB Allreduce on 3x2 was declared dead while the
#               machine's load was 12 on its 2 cores)
#   OUT         directory for the logs (default a fresh temporary one)
#   TABLE_ONLY  an all.log of an earlier run: only print its table
#   SAVE        where the table goes (default
#               benchmarks/results/multinode-<date>.txt; SAVE=- only prints)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
HERE=$ROOT/benchmarks/multinode
CONF=/etc/slurm-multi/slurm.conf
SIZES_MIB=${SIZES_MIB:-8,64,512}
LAYOUTS=${LAYOUTS:-3x1,3x2}
OPS=${OPS:-}
REPS=${REPS:-9}
REPS_LARGE=${REPS_LARGE:-3}
RAW_MIB=${RAW_MIB:-2048}
SKIP=${SKIP:-}
OUT=${OUT:-$(mktemp -d /tmp/rankhub-mnbench.XXXXXX)}
SAVE=${SAVE:-$ROOT/benchmarks/results/multinode-$(date -u +%F).txt}
HEARTBEAT=${HEARTBEAT:-5s}
TABLE_ONLY=${TABLE_ONLY:-}
PY=/usr/bin/python3
AGENT=$HERE/ompi-rsh.sh
NET=10.231.0
export SIZES_MIB OPS LAYOUTS
mkdir -p "$OUT"
LOG=$OUT/all.log

die() { echo "run.sh: $*" >&2; exit 1; }
skip() { [[ ",$SKIP," == *",$1,"* ]]; }
node_ip() { echo "$NET.$((10 + ${1#n}))"; }

# table prints the side-by-side table of the log $LOG.
table() {
	$PY - "$LOG" <<'EOF'
import os, re, statistics, sys
reps, raw, loads, heads = {}, {}, [], []
for line in open(sys.argv[1]):
    m = re.match(r'RESULT (\S+) (\S+) (\S+)', line)
    if m:
        (reps if m.group(3) == 'ms_rep' else raw).setdefault(m.group(1), []).append(float(m.group(2)))
    elif line.startswith('LOAD '):
        loads.append(line[5:].strip())
    elif line.startswith('# '):
        heads.append(line.strip())
fails = [l.strip() for l in open(sys.argv[1]) if l.startswith('FAILED ')]
keys = [re.match(r'(?:rankhub|mpi)_(\d+x\d+)_\w+?_(\d+)MiB$', k) for k in reps]
sizes = sorted({int(m.group(2)) for m in keys if m})
layouts = sorted({m.group(1) for m in keys if m})
stream = statistics.median(raw['raw_stream']) if 'raw_stream' in raw else None
agg = statistics.median(raw['raw_aggregate']) if 'raw_aggregate' in raw else None
def med(k): return statistics.median(reps[k]) if k in reps else None
def mn(k): return min(reps[k]) if k in reps else None
def f(x, w, p):
    return f"{x:>{w}{p}}" if x is not None else f"{'-':>{w}}"
# Cross-node bytes the operation must move at least, in units of S (N nodes,
# p ranks): what the wire bound column divides by the raw aggregate.
def wire(op, N, p, k):
    return {'Bcast': N - 1, 'Scatter': (p - k) / p, 'Gather': (p - k) / p, 'Allgather': (N - 1),
            'Reduce': N - 1, 'Allreduce': 2 * (N - 1), 'SendRecv_p2p': 1, 'ViewPush': N - 1,
            'ViewPull': p - k, 'ViewScatter': (p - k) / (p - 1), 'ViewGather': (p - k) / (p - 1),
            'ViewPushOne': 1, 'ViewPullOne': 1}[op]
mpi_peer = {'ViewScatter': 'Scatter', 'ViewGather': 'Gather', 'ViewPush': 'Bcast'}
for h in heads:
    print(h)
print(f"raw TCP stream n1->n2: {f(stream, 0, '.3g')} GB/s; three streams at once (n1->n2, n2->n3, n3->n1), sum: {f(agg, 0, '.3g')} GB/s")
print("time: median (min) of the repetitions in ms; GB/s = S / median; xMPI = rankhub / Open MPI time (View rows: beside")
print("MPI's Bcast/Scatter/Gather); xraw = rankhub GB/s / raw stream; wire = ms for the op's fewest cross-node bytes at the")
print("raw aggregate. Targets (issue 15): p2p, PushOne, PullOne xraw >= 0.8; collectives xMPI <= 0.8; Push <= Bcast +10%.")
hdr = f"{'layout':<6} {'op':<13} {'MiB':>4} {'OpenMPI':>16} {'rankhub':>16} {'GB/s':>6} {'xMPI':>6} {'xraw':>6} {'wire':>7} {'target':<16} {'met':<3}"
print(hdr); print('-' * len(hdr))
ops = ['Bcast', 'Scatter', 'Gather', 'Reduce', 'Allreduce', 'Allgather', 'SendRecv_p2p',
       'ViewPush', 'ViewPull', 'ViewScatter', 'ViewGather', 'ViewPushOne', 'ViewPullOne']
met_all = []
for l in layouts:
    N, k = (int(x) for x in l.split('x'))
    p = N * k
    for op in ops:
        for mib in sizes:
            rk, mk = f'rankhub_{l}_{op}_{mib}MiB', f'mpi_{l}_{mpi_peer.get(op, op)}_{mib}MiB'
            if rk not in reps and mk not in reps:
                continue
            S = mib << 20
            r, m = med(rk), med(mk)
            gbs = S / (r / 1e3) / 1e9 if r else None
            xm = r / m if r and m else None
            xr = gbs / stream if gbs and stream else None
            w = wire(op, N, p, k) * S / (agg * 1e9) * 1e3 if agg else None
            target, ok = '', None
            if op in ('SendRecv_p2p', 'ViewPushOne', 'ViewPullOne'):
                target = 'xraw >= 0.8'
                ok = xr >= 0.8 if xr else None
            elif not op.startswith('View'):
                target = 'xMPI <= 0.8'
                ok = xm <= 0.8 if xm else None
            elif op == 'ViewPush':
                b = med(f'rankhub_{l}_Bcast_{mib}MiB')
                target = f"<= Bcast+10% {f(b * 1.1 if b else None, 0, '.4g')}"
                ok = r <= 1.1 * b if r and b else None
            met = '-' if ok is None else ('yes' if ok else 'NO')
            if ok is not None:
                met_all.append(ok)
            mt = f"{f(m, 7, '.4g')} ({f(mn(mk), 6, '.4g')})" if m else f"{'-':>16}"
            rt = f"{f(r, 7, '.4g')} ({f(mn(rk), 6, '.4g')})" if r else f"{'-':>16}"
            print(f"{l:<6} {op:<13} {mib:>4} {mt} {rt} {f(gbs, 6, '.3g')} {f(xm, 6, '.2f')} {f(xr, 6, '.2f')} {f(w, 7, '.4g')} {target:<16} {met:<3}")
print()
print(f"targets met: {sum(met_all)} of {len(met_all)}")
for x in fails:
    print(x)
print("machine during each phase (every core, every process on it; busy = non-idle CPU time):")
for x in loads:
    print("  " + x)
EOF
}
if [ -n "$TABLE_ONLY" ]; then
	LOG=$TABLE_ONLY
	table
	exit
fi

[ "$(id -u)" -eq 0 ] || die "must run as root (nsenter into the node namespaces)"
[ -s "$CONF" ] || die "the emulated cluster is not up ($CONF missing): make slurm-multi-up"
# Nodes in use by other jobs still run ours (the partition oversubscribes),
# but their load is in our numbers: wait a minute for idle nodes, then go
# on with the nodes that are up and say so in the log.
nodes_in() { SLURM_CONF=$CONF sinfo -h -N -o '%N %T' | awk -v s="$1" '$2 ~ s' | wc -l; }
for _ in $(seq 30); do
	[ "$(nodes_in '^idle$')" -ge 3 ] && break
	sleep 2
done
idle=$(nodes_in '^(idle|mixed|allocated)$')
[ "$idle" -ge 3 ] || die "fewer than 3 nodes up in the emulated cluster: $(SLURM_CONF=$CONF sinfo -h -N -o '%N %T' | tr '\n' ' ')"
busy_nodes=$(SLURM_CONF=$CONF sinfo -h -N -o '%N %T' | awk '$2 != "idle"' | tr '\n' ' ')
for tool in gcc nsenter; do
	command -v $tool >/dev/null || die "$tool is missing (apt-get install -y gcc util-linux)"
done
if ! skip mpi; then
	command -v mpirun.openmpi >/dev/null || die "mpirun.openmpi is missing (apt-get install -y openmpi-bin python3-mpi4py python3-numpy)"
	$PY -c 'import mpi4py, numpy' 2>/dev/null || die "$PY lacks mpi4py/numpy (apt-get install -y python3-mpi4py python3-numpy)"
fi
for l in ${LAYOUTS//,/ }; do
	[[ $l =~ ^([1-9])x([1-9])$ ]] || die "LAYOUTS: bad layout $l (want NxK: N nodes, K ranks each)"
	[ "${BASH_REMATCH[1]}" -ge 2 ] && [ "${BASH_REMATCH[1]}" -le "$idle" ] || die "layout $l: want 2 to $idle nodes"
done

go build -o bin/rankhub ./cmd/rankhub
go build -o bin/mnbench ./benchmarks/multinode/mnbench
gcc -O2 -o "$OUT/tcpstream" "$HERE/tcpstream.c"

# CPU time of the whole machine (every core, every engineer) during a
# phase, from /proc/stat: what the cores had to give.
cpu() { awk '/^cpu / { print $2 + $3 + $4 + $6 + $7 + $8, $5 }' /proc/stat; }
phase() { # name command...: runs it, logs the machine's load around it
	local name=$1 b e t0 t1 rc=0
	shift
	echo "== $name" >&2
	b=$(cpu)
	t0=$(date +%s.%N)
	"$@" || rc=$?
	t1=$(date +%s.%N)
	e=$(cpu)
	echo "LOAD $name $(awk -v b="$b" -v e="$e" -v t0="$t0" -v t1="$t1" 'BEGIN {
		split(b, x, " "); split(e, y, " "); busy = y[1] - x[1]; idle = y[2] - x[2]
		printf "busy=%.0f%% wall=%.1fs", 100 * busy / (busy + idle), t1 - t0 }') loadavg=$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$LOG" >&2
	return "$rc"
}

: >"$LOG"
echo "# $(date -u -Is) $(uname -r) $(nproc) cores, load: $(cat /proc/loadavg)" | tee -a "$LOG"
[ -z "$busy_nodes" ] || echo "# nodes running other jobs at the start: $busy_nodes" | tee -a "$LOG"
echo "# sizes ${SIZES_MIB} MiB, layouts ${LAYOUTS}, reps ${REPS} (${REPS_LARGE} at 512 MiB and more)${OPS:+, ops $OPS}" | tee -a "$LOG"

# 1. The raw limit: tcpstream receivers first, then the senders.
stream() { # from to port label
	local rx
	"$AGENT" "$2" "$OUT/tcpstream recv $3 $4" >>"$LOG" &
	rx=$!
	"$AGENT" "$1" "$OUT/tcpstream send $(node_ip "$2") $3 $RAW_MIB"
	wait "$rx"
}
raw() {
	local i k t0 t1
	for i in 1 2 3; do
		stream n1 n2 $((5300 + i)) raw_stream
	done
	for i in 1 2 3; do
		t0=$(date +%s%N)
		for k in 1 2 3; do
			stream "n$k" "n$((k % 3 + 1))" $((5310 + 3 * i + k)) raw_stream_of3 &
		done
		wait
		t1=$(date +%s%N)
		echo "RESULT raw_aggregate $(awk -v b=$((3 * RAW_MIB)) -v ns=$((t1 - t0)) 'BEGIN { printf "%.4g", b * 1048576 / (ns / 1e9) / 1e9 }') GB/s" >>"$LOG"
	done
}
skip raw || phase raw raw

waitjob() { # jobdir out: rankhub wait, again while the scheduler is too busy to answer
	local i
	for i in 1 2 3 4 5; do
		SLURM_CONF=$CONF "$ROOT/bin/rankhub" wait "$1" >"$2" 2>&1 && return 0
		grep -q 'context deadline exceeded' "$2" || return 1
		sleep 5
	done
	return 1
}
for l in ${LAYOUTS//,/ }; do
	nodes=${l%x*}
	per=${l#*x}
	np=$((nodes * per))
	hosts=$(seq 1 "$nodes" | sed "s/^/n/; s/\$/:$per/" | paste -sd,)
	# 2. Open MPI: ranks in blocks of K per node (as SLURM places rankhub's),
	# yielding when idle (6 busy-polling ranks on 2 cores would measure the
	# scheduler; --oversubscribe on one node sets the same).
	if ! skip mpi; then
		phase "mpi $l" bash -c '
			timeout 1800 mpirun.openmpi --allow-run-as-root --host "$1" -n "$2" --map-by slot \
				--mca plm_rsh_agent "$3" --mca plm_rsh_no_tree_spawn 1 \
				--mca oob_tcp_if_include 10.231.0.0/24 --mca btl tcp,self,vader \
				--mca btl_tcp_if_include 10.231.0.0/24 --mca mpi_yield_when_idle 1 \
				-x SIZES_MIB -x OPS /usr/bin/python3 "$4/mpi_multinode.py" "$5" "$6" "$7" >>"$8" 2>>"$9"
		' mpi "$hosts" "$np" "$AGENT" "$HERE" "$l" "$REPS" "$REPS_LARGE" "$LOG" "$OUT/mpi.err" ||
			die "Open MPI $l failed: $(tail -n 20 "$OUT/mpi.err")"
	fi
	# 3. rankhub: a real job on the cluster.
	if ! skip rankhub; then
		d=$OUT/rankhub-$l
		mkdir -p "$d"
		cat >"$d/mnbench.toml" <<EOF
[job]
name = "mnbench-$l"
scheduler = "slurm"
ranks = $np
ranks_per_node = $per
walltime = "30m"
heartbeat = "$HEARTBEAT"
network = "$NET.0/24"
program = ["$ROOT/bin/mnbench", "-layout", "$l", "-sizes", "$SIZES_MIB", "-reps", "$REPS", "-reps-large", "$REPS_LARGE", "-ops", "$OPS"]
EOF
		sub=$(cd "$d" && SLURM_CONF=$CONF "$ROOT/bin/rankhub" submit mnbench.toml 2>&1) || die "rankhub submit $l: $sub"
		[[ $sub =~ slurm\ job\ ([0-9]+),\ job\ directory\ ([^[:space:]]+) ]] || die "rankhub submit $l: $sub"
		id=${BASH_REMATCH[1]}
		jd=${BASH_REMATCH[2]}
		if ! phase "rankhub $l" waitjob "$jd" "$d/wait.out"; then
			# The rows it finished still count; the table names the failure.
			echo "FAILED rankhub $l (job $id, $jd): $(head -n 3 "$d/wait.out" | tr '\n' ' ')" | tee -a "$LOG" >&2
			failed=1
		fi
		grep '^RESULT \|^# ' "$jd/slurm-$id.out" >>"$LOG" || true
	fi
done

table | tee "$OUT/table.txt"
if [ "$SAVE" != "-" ]; then
	mkdir -p "$(dirname "$SAVE")"
	cp "$OUT/table.txt" "$SAVE"
	# Every repetition beside the table: TABLE_ONLY=<this .log> reprints it.
	grep -E '^(RESULT |LOAD |FAILED |# )' "$LOG" >"${SAVE%.txt}.log" || true
	echo "saved: $SAVE (repetitions: ${SAVE%.txt}.log)"
fi
echo "logs: $OUT"
[ -z "${failed:-}" ] || die "some rankhub jobs failed (see FAILED above); their finished rows are in the table"

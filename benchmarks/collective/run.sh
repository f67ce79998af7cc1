#!/bin/bash
# rankhub collectives side by side with OpenMPI (mpi4py buffer calls) and the
# raw loopback socket limit, in one run on this machine:
#   1. bin/collbench at 2 and 4 ranks (shared memory and forced sockets),
#      and the node memory of a 512 MiB bcast to 4 ranks;
#   2. ../shared/anchors/mpi_bench.py under mpirun.openmpi at 2 and 4 ranks;
#      and again over TCP only (--mca btl tcp,self), the peer of our socket path;
#   3. ../shared/anchors/sockbw (loopback TCP stream), and 1-4 streams at once
#      (the node's aggregate loopback capacity);
# then prints a table with the ratios against the targets.
# Needs Debian's openmpi-bin, python3-mpi4py, python3-numpy and gcc
# (apt-get install -y openmpi-bin python3-mpi4py python3-numpy gcc).
# Environment: REPS (default 5; REPS_SMALL, default 21, for sizes under
# 64 MiB), SIZES_MIB (default 8,64,512), OUT (a
# directory for the logs; default a fresh temporary one).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
ANCHORS=${ANCHORS:-$ROOT/../shared/anchors}
REPS=${REPS:-5}
REPS_SMALL=${REPS_SMALL:-21}
export SIZES_MIB=${SIZES_MIB:-8,64,512}
OUT=${OUT:-$(mktemp -d /tmp/rankhub-collbench.XXXXXX)}
export ANCHORS_OUT=$OUT ANCHORS_BIN=$OUT # shared/ is read-only
mkdir -p "$OUT"
PY=/usr/bin/python3

for tool in mpirun.openmpi gcc; do
  command -v $tool >/dev/null || { echo "run.sh: $tool is missing (apt-get install -y openmpi-bin python3-mpi4py python3-numpy gcc)" >&2; exit 1; }
done
$PY -c 'import mpi4py, numpy' 2>/dev/null || { echo "run.sh: $PY lacks mpi4py/numpy (apt-get install -y python3-mpi4py python3-numpy)" >&2; exit 1; }

make -s build
go build -o bin/collbench ./benchmarks/collective
gcc -O2 -o "$OUT/sockbw" "$ANCHORS/sockbw.c"

LOG=$OUT/all.log
: > "$LOG"
echo "# $(date -Is) $(uname -r) load: $(cat /proc/loadavg)" | tee -a "$LOG"
# Every size its own run, so the millisecond rows get more repetitions
# (their medians swing most between runs); both sides get the same count.
reps_for() { if [ "$1" -lt 64 ]; then echo "$REPS_SMALL"; else echo "$REPS"; fi; }
for np in 2 4; do
  for mib in ${SIZES_MIB//,/ }; do
    r=$(reps_for "$mib")
    echo "== rankhub np=$np $mib MiB reps=$r" >&2
    bin/rankhub run -n $np -- bin/collbench -reps "$r" -sizes "$mib" >> "$LOG" 2>> "$OUT/collbench.err"
    echo "== OpenMPI np=$np $mib MiB reps=$r" >&2
    SIZES_MIB=$mib mpirun.openmpi --allow-run-as-root --oversubscribe -n $np $PY "$ANCHORS/mpi_bench.py" "$r" >> "$LOG" 2>> "$OUT/mpi.err"
    # Open MPI's own socket path (no shared memory), the peer of ours.
    echo "== OpenMPI over TCP np=$np $mib MiB reps=$r" >&2
    SIZES_MIB=$mib mpirun.openmpi --allow-run-as-root --oversubscribe --mca btl tcp,self --mca btl_tcp_if_include lo \
      -n $np $PY "$ANCHORS/mpi_bench.py" "$r" 2>> "$OUT/mpi.err" | sed 's/^RESULT mpi_/RESULT mpitcp_/' >> "$LOG"
  done
done
# The forced socket path inside TLS 1.3 ([job] tls = "all"), np=2, beside
# the plain one: what encryption costs on the wire.
for mib in ${SIZES_MIB//,/ }; do
  r=$(reps_for "$mib")
  echo "== rankhub np=2 tls $mib MiB reps=$r" >&2
  bin/rankhub run -n 2 -- bin/collbench -reps "$r" -sizes "$mib" -modes tcp,tls -ops Bcast,Allreduce,SendRecv_p2p >> "$LOG" 2>> "$OUT/collbench.err"
done
echo "== rankhub memory np=4" >&2
bin/rankhub run -n 4 -- bin/collbench -mem >> "$LOG" 2>> "$OUT/collbench.err"
echo "== sockbw" >&2
for i in 1 2 3; do "$OUT/sockbw" tcp bw 4096 >> "$LOG"; done
# The node's aggregate loopback capacity: k sockbw streams at once (k
# senders and k receivers share the cores); bytes of all streams / wall.
# A collective over sockets cannot beat (bytes it must move) / capacity.
for k in 1 2 3 4; do
  t0=$(date +%s%N)
  for i in $(seq "$k"); do "$OUT/sockbw" tcp bw 2048 > "$OUT/sockbw.k$k.$i" & done
  wait
  t1=$(date +%s%N)
  echo "RESULT sockbw_tcp_aggregate_k$k $(awk -v k="$k" -v ns=$((t1 - t0)) 'BEGIN { printf "%.4g", k * 2048 * 1048576 / (ns / 1e9) / 1e9 }') GB/s" >> "$LOG"
done

$PY - "$LOG" <<'EOF'
import re, sys, statistics
vals = {}
for line in open(sys.argv[1]):
    m = re.search(r'RESULT (\S+) (\S+) (\S+)', line)
    if m:
        vals.setdefault(m.group(1), []).append(float(m.group(2)))
med = {k: statistics.median(v) for k, v in vals.items()}
sock = med.get('tcp_stream_1024KiBwrites_pinnone')
sizes = [int(s) for s in __import__('os').environ.get('SIZES_MIB', '8,64,512').split(',')]
targets = {'Scatter': 0.1, 'Gather': 0.1, 'Bcast': 0.1, 'Reduce': 1.0, 'Allreduce': 0.5}
print()
print('time in ms (median); ratio = rankhub / OpenMPI; +sum: every rank sums what it received (target <= 0.6x)')
agg = max((v for k, v in med.items() if k.startswith('sockbw_tcp_aggregate_k')), default=None)
# The fewest bytes any algorithm moves between ranks, in units of S: every
# rank but one receives S/p (scatter, gather) or S (bcast); every rank but
# the root sends S (reduce); 2(p-1)/p S per rank for allreduce (Patarasuk &
# Yuan's bound for bandwidth-optimal allreduce); S for p2p.
def moved(op, p):
    return {'Scatter': (p - 1) / p, 'Gather': (p - 1) / p, 'Bcast': p - 1, 'Reduce': p - 1,
            'Allreduce': 2 * (p - 1), 'SendRecv_p2p': 1}[op]
hdr = f"{'np':>2} {'op':<10} {'MiB':>4} {'OpenMPI':>9} {'shm':>9} {'ratio':>7} {'target':>6} {'shm+sum':>9} {'ratio':>7} {'tcp':>9} {'tcp GB/s':>8} {'/sockbw':>7} {'/bound':>6} {'MPI tcp':>9} {'/bound':>6}"
print(hdr); print('-' * len(hdr))
def f(x, w=9, p='.3g'):
    return f"{x:>{w}{p}}" if x is not None else f"{'-':>{w}}"
for np_ in (2, 4):
    for op in ['Scatter', 'Gather', 'Bcast', 'Reduce', 'Allreduce', 'SendRecv_p2p']:
        for mib in sizes:
            mpi = med.get(f'mpi_np{np_}_{op}_{mib}MiB_time')
            shm = med.get(f'rankhub_np{np_}_shm_{op}_{mib}MiB_time')
            shs = med.get(f'rankhub_np{np_}_shm_{op}+sum_{mib}MiB_time')
            tcp = med.get(f'rankhub_np{np_}_tcp_{op}_{mib}MiB_time')
            if shm is None and mpi is None:
                continue
            r1 = shm / mpi if shm and mpi else None
            r2 = shs / mpi if shs and mpi else None
            gbs = (mib << 20) / (tcp / 1e3) / 1e9 if tcp else None
            rs = gbs / sock if gbs and sock else None
            t = targets.get(op)
            bound = moved(op, np_) * (mib << 20) / (agg * 1e9) * 1e3 if agg else None
            eff = bound / tcp if bound and tcp else None
            mtcp = med.get(f'mpitcp_np{np_}_{op}_{mib}MiB_time')
            meff = bound / mtcp if bound and mtcp else None
            print(f"{np_:>2} {op:<10.10} {mib:>4} {f(mpi)} {f(shm)} {f(r1, 7, '.3f')} {f(t, 6, '.1f')} {f(shs)} {f(r2, 7, '.3f')} {f(tcp)} {f(gbs, 8, '.2f')} {f(rs, 7, '.2f')} {f(eff, 6, '.2f')} {f(mtcp)} {f(meff, 6, '.2f')}")
print()
print(f"sockbw loopback TCP: {sock:.3g} GB/s (target for the forced socket path: >= 0.8x)" if sock else "sockbw: no result")
for np_ in (2, 4):
    rt = [med.get(k) for k in (f'rankhub_np{np_}_shm_pingpong_8B_rtt', f'mpi_np{np_}_pingpong_8B_rtt',
                                f'rankhub_np{np_}_tcp_pingpong_8B_rtt', f'mpitcp_np{np_}_pingpong_8B_rtt')]
    if any(rt):
        print(f"np={np_} 8-byte ping-pong RTT (us), the latency floor: rankhub shm {f(rt[0], 1)}, OpenMPI shm {f(rt[1], 1)}, "
              f"rankhub tcp {f(rt[2], 1)}, OpenMPI tcp {f(rt[3], 1)}")
    ls = [(mib, med.get(f'rankhub_np{np_}_shm_LocalSum_{mib}MiB_time')) for mib in sizes]
    if any(v for _, v in ls):
        print(f"np={np_} every rank summing its own S bytes (the +sum rows' baseline, ms): " +
              ', '.join(f"{mib} MiB {f(v, 1)}" for mib, v in ls))
if agg:
    ks = ', '.join(f"{k[-2:]} {v:.3g}" for k, v in sorted(med.items()) if k.startswith('sockbw_tcp_aggregate_k'))
    print(f"aggregate loopback capacity (concurrent sockbw streams, GB/s): {ks}; /bound = the time of the op's fewest")
    print(f"  socket bytes at the best aggregate ({agg:.3g} GB/s) / the tcp time: 1.0 is the machine's limit")
tl = [(op, mib, med.get(f'rankhub_np2_tcp_{op}_{mib}MiB_time'), med.get(f'rankhub_np2_tls_{op}_{mib}MiB_time'))
      for op in ('Bcast', 'Allreduce', 'SendRecv_p2p') for mib in sizes]
if any(t for *_, t in tl):
    print("np=2 forced sockets, plain vs TLS 1.3 ([job] tls = \"all\"), ms and TLS/plain:")
    for op, mib, a, b in tl:
        print(f"   {op:<12} {mib:>4} MiB  plain {f(a)}  tls {f(b)}  x{f(b / a if a and b else None, 5, '.2f')}")
for k in ('rankhub_np4_shm_bcast_512MiB_node_memory', 'rankhub_np4_shm_bcast_512MiB_pss', 'rankhub_np4_shm_bcast_512MiB_sum_rss'):
    if k in med:
        print(f"{k}: {med[k]:.3f} x payload" + (" (target <= 1.1x; OpenMPI holds 4x)" if k.endswith('node_memory') else ''))
EOF
grep '^\[rank 0\] # memory' "$LOG" || true
echo "logs: $OUT"

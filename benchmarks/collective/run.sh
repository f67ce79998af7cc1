#!/bin/bash
# rankhub collectives side by side with OpenMPI (mpi4py buffer calls) and the
# raw loopback socket limit, in one run on this machine:
#   1. bin/collbench at 2 and 4 ranks (shared memory and forced sockets),
#      and the node memory of a 512 MiB bcast to 4 ranks;
#   2. ../shared/anchors/mpi_bench.py under mpirun.openmpi at 2 and 4 ranks;
#   3. ../shared/anchors/sockbw (loopback TCP stream);
# then prints a table with the ratios against the targets.
# Needs Debian's openmpi-bin, python3-mpi4py, python3-numpy and gcc
# (apt-get install -y openmpi-bin python3-mpi4py python3-numpy gcc).
# Environment: REPS (default 5), SIZES_MIB (default 8,64,512), OUT (a
# directory for the logs; default a fresh temporary one).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
ANCHORS=${ANCHORS:-$ROOT/../shared/anchors}
REPS=${REPS:-5}
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
for np in 2 4; do
  echo "== rankhub np=$np" >&2
  bin/rankhub run -n $np -- bin/collbench -reps "$REPS" -sizes "$SIZES_MIB" >> "$LOG" 2>> "$OUT/collbench.err"
  echo "== OpenMPI np=$np" >&2
  mpirun.openmpi --allow-run-as-root --oversubscribe -n $np $PY "$ANCHORS/mpi_bench.py" "$REPS" >> "$LOG" 2>> "$OUT/mpi.err"
done
echo "== rankhub memory np=4" >&2
bin/rankhub run -n 4 -- bin/collbench -mem >> "$LOG" 2>> "$OUT/collbench.err"
echo "== sockbw" >&2
for i in 1 2 3; do "$OUT/sockbw" tcp bw 4096 >> "$LOG"; done

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
hdr = f"{'np':>2} {'op':<10} {'MiB':>4} {'OpenMPI':>9} {'shm':>9} {'ratio':>7} {'target':>6} {'shm+sum':>9} {'ratio':>7} {'tcp':>9} {'tcp GB/s':>8} {'/sockbw':>7}"
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
            print(f"{np_:>2} {op:<10.10} {mib:>4} {f(mpi)} {f(shm)} {f(r1, 7, '.3f')} {f(t, 6, '.1f')} {f(shs)} {f(r2, 7, '.3f')} {f(tcp)} {f(gbs, 8, '.2f')} {f(rs, 7, '.2f')}")
print()
print(f"sockbw loopback TCP: {sock:.3g} GB/s (target for the forced socket path: >= 0.8x)" if sock else "sockbw: no result")
for k in ('rankhub_np4_shm_bcast_512MiB_node_memory', 'rankhub_np4_shm_bcast_512MiB_pss', 'rankhub_np4_shm_bcast_512MiB_sum_rss'):
    if k in med:
        print(f"{k}: {med[k]:.3f} x payload" + (" (target <= 1.1x; OpenMPI holds 4x)" if k.endswith('node_memory') else ''))
EOF
grep '^\[rank 0\] # memory' "$LOG" || true
echo "logs: $OUT"

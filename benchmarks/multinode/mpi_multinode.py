#!/usr/bin/python3
"""Open MPI (mpi4py buffer calls) across the nodes of the emulated cluster,
with the definitions of ../shared/anchors/mpi_bench.py plus Allgather:
S is the TOTAL float64 array size (env SIZES_MIB, default 8,64,512).
  Scatter : root holds S, each rank receives S/n      Gather : each sends S/n, root receives S
  Bcast   : S from root to all                        Reduce/Allreduce(SUM): every rank contributes S
  Allgather: each rank sends S/n, every rank receives S
  SendRecv_p2p: rank 0 -> the first rank on another node, S (+ 8-byte ack)
Time = max over ranks of the op's wall time after a Barrier. Prints every
repetition as RESULT <label> <ms> ms_rep (the caller takes median and min);
first the host of every rank (it must be 3 nodes) and the BTLs in use.
Run: mpirun.openmpi ... /usr/bin/python3 mpi_multinode.py LAYOUT REPS REPS_LARGE
"""
import os, socket, sys, time
import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
def abort(kind, value, tb):  # a failed rank ends the job instead of hanging the others
    sys.__excepthook__(kind, value, tb)
    sys.stderr.flush()
    comm.Abort(1)
sys.excepthook = abort
rank, size = comm.Get_rank(), comm.Get_size()
LAYOUT = sys.argv[1]
REPS = int(sys.argv[2])
REPS_LARGE = int(sys.argv[3])
SIZES_MIB = [int(x) for x in os.environ.get("SIZES_MIB", "8,64,512").split(",")]
OPS = [x for x in os.environ.get("OPS", "").split(",") if x]
hosts = comm.allgather(socket.gethostname())
peer = next((r for r, h in enumerate(hosts) if h != hosts[0]), None)
if rank == 0:
    libver = MPI.Get_library_version().replace(chr(0), "").splitlines()[0]
    print(f"# mpi {LAYOUT} np={size} hosts={','.join(hosts)} p2p peer={peer} {libver}", flush=True)
    if peer is None:
        sys.exit("mpi_multinode.py: every rank is on one host; want several nodes")

def timed(fn):
    comm.Barrier()
    t = time.perf_counter(); fn(); dt = time.perf_counter() - t
    return comm.allreduce(dt, op=MPI.MAX)

for mib in SIZES_MIB:
    S = mib << 20
    n = S // 8
    chunk = n // size
    a = np.full(n, rank + 1.0)
    b = np.zeros(n)
    ack = np.zeros(1)
    def p2p():
        if rank == 0:
            comm.Send([a, MPI.DOUBLE], dest=peer, tag=7); comm.Recv([ack, MPI.DOUBLE], source=peer, tag=8)
        elif rank == peer:
            comm.Recv([b, MPI.DOUBLE], source=0, tag=7); comm.Send([ack, MPI.DOUBLE], dest=0, tag=8)
    ops = {
        "Bcast": lambda: comm.Bcast([a, MPI.DOUBLE], root=0),
        "Scatter": lambda: comm.Scatter([a[:chunk * size], MPI.DOUBLE] if rank == 0 else None, [b[:chunk], MPI.DOUBLE], root=0),
        "Gather": lambda: comm.Gather([a[:chunk], MPI.DOUBLE], [b[:chunk * size], MPI.DOUBLE] if rank == 0 else None, root=0),
        "Reduce": lambda: comm.Reduce([a, MPI.DOUBLE], [b, MPI.DOUBLE] if rank == 0 else None, op=MPI.SUM, root=0),
        "Allreduce": lambda: comm.Allreduce([a, MPI.DOUBLE], [b, MPI.DOUBLE], op=MPI.SUM),
        "Allgather": lambda: comm.Allgather([a[:chunk], MPI.DOUBLE], [b[:chunk * size], MPI.DOUBLE]),
        "SendRecv_p2p": p2p,
    }
    reps = REPS_LARGE if mib >= 512 else REPS
    for name, fn in ops.items():
        if OPS and name not in OPS:
            continue
        fn()  # warm-up
        a[:] = rank + 1.0
        for r in range(reps):
            dt = timed(fn)
            if rank == 0:
                print(f"RESULT mpi_{LAYOUT}_{name}_{mib}MiB {dt * 1e3:.4g} ms_rep", flush=True)
        if name == "Allreduce":
            assert b[0] == size * (size + 1) / 2, b[0]
        if name == "Allgather":
            assert b[chunk * (size - 1)] == size, b[chunk * (size - 1)]
    del a, b

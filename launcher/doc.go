// Package launcher turns a job into running ranks.
//
// The local backend (RunLocal, the embedded default) starts N processes on
// this machine as mpirun -n N would: each gets its identity in RANKHUB_*
// variables, its stdout and stderr go to the console with a "[rank N] "
// prefix and to rank-N.out / rank-N.err in the job directory, one failing
// rank stops the others (unless the job says abort_on_error = false), and
// Ctrl-C stops every rank (SIGTERM, then SIGKILL after a grace period).
//
// Batch schedulers are Backends (slurm, pbs) registered by name.
//
// In-job bootstrap: IdentityFromEnv reads the rank from rankhub's variables,
// SLURM (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NODEID), Open MPI
// (OMPI_COMM_WORLD_*), PMI (PMI_RANK, PMI_SIZE) or pbsdsh (PBS_VNODENUM with
// RANKHUB_SIZE). Rank 0 calls ListenHub, which writes the connection file
// hub.json (mode 0600) into the job directory; the other ranks WaitConnInfo
// and DialHub (Unix socket on the hub's host, TCP otherwise).
//
// Usage:
//
//	err := launcher.RunLocal(ctx, launcher.LocalConfig{
//		Ranks: 4, Command: []string{"./bin/hello"}, JobDir: dir, AbortOnError: true,
//	})
package launcher

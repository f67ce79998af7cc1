package launcher

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/rankhub/rankhub/comm"
)

// Environment variables that rankhub sets for the ranks it starts itself,
// and exports from scheduler scripts.
const (
	EnvRank      = "RANKHUB_RANK"
	EnvSize      = "RANKHUB_SIZE"
	EnvLocalRank = "RANKHUB_LOCAL_RANK"
	EnvNode      = "RANKHUB_NODE"
	EnvJobDir    = "RANKHUB_JOBDIR"
	EnvJobID     = "RANKHUB_JOB_ID"
	EnvTransport = "RANKHUB_TRANSPORT" // "auto" or "tcp"
	EnvHeartbeat = "RANKHUB_HEARTBEAT" // Go duration
	EnvJobFile   = "RANKHUB_JOBFILE"   // the job file inside the job directory
	EnvListen    = "RANKHUB_LISTEN"    // rank 0's TCP listen address (rankhub start --listen, --interface)
	EnvJoin      = "RANKHUB_JOIN"      // a running hub's connection file: this process is an engine joining it (rankhub engines)
	EnvLabels    = "RANKHUB_LABELS"    // an engine's labels, comma-separated (TaskOptions.Require)
)

// Identity is who this rank is, from the environment.
type Identity struct {
	Rank      int
	Size      int
	LocalRank int
	Node      int
	JobDir    string
	JobID     string
	Source    string // which variables it came from: "rankhub", "slurm", "openmpi", "pmi", "pbs"
}

// IdentityFromEnv reads the rank's identity. rankhub's own variables win;
// then Open MPI (mpiexec), PMI (MPICH, Intel MPI, PBS Pro's mpiexec), SLURM
// (srun) and PBS's pbsdsh (PBS_VNODENUM with RANKHUB_SIZE from the script).
func IdentityFromEnv(getenv func(string) string) (Identity, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	id := Identity{JobDir: getenv(EnvJobDir), JobID: getenv(EnvJobID)}
	type src struct {
		name              string
		rank, size, local string
		node              string
	}
	// An MPI launcher's variables come before SLURM's: Open MPI or Hydra
	// inside a SLURM allocation start their daemons with srun, and the
	// ranks inherit the daemon step's SLURM_PROCID and SLURM_NTASKS (or the
	// batch step's). srun sets no OMPI_* variables, and PMI_RANK only
	// equal to SLURM_PROCID.
	sources := []src{
		{"rankhub", EnvRank, EnvSize, EnvLocalRank, EnvNode},
		{"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_NODE_RANK"},
		{"pmi", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", ""},
		{"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NODEID"},
		{"pbs", "PBS_VNODENUM", EnvSize, "", ""},
	}
	for _, s := range sources {
		rs := getenv(s.rank)
		if rs == "" {
			continue
		}
		rank, err := strconv.Atoi(strings.TrimSpace(rs))
		if err != nil || rank < 0 {
			return id, fmt.Errorf("launcher: %s=%q is not a rank", s.rank, rs)
		}
		ss := getenv(s.size)
		if ss == "" {
			return id, fmt.Errorf("launcher: %s is set but %s is not", s.rank, s.size)
		}
		size, err := strconv.Atoi(strings.TrimSpace(ss))
		if err != nil || size < 1 {
			return id, fmt.Errorf("launcher: %s=%q is not a rank count", s.size, ss)
		}
		if rank >= size {
			return id, fmt.Errorf("launcher: rank %d (%s) is not below the rank count %d (%s)", rank, s.rank, size, s.size)
		}
		id.Rank, id.Size, id.Source = rank, size, s.name
		id.LocalRank = atoiOr(getenv(s.local), -1)
		id.Node = atoiOr(getenv(s.node), -1)
		if id.JobID == "" {
			id.JobID = firstNonEmpty(getenv("SLURM_JOB_ID"), getenv("PBS_JOBID"))
		}
		if id.JobDir == "" {
			return id, fmt.Errorf("launcher: %s is not set: rank %d does not know its job directory (start ranks with rankhub run, or export %s in the batch script)", EnvJobDir, rank, EnvJobDir)
		}
		return id, nil
	}
	return id, fmt.Errorf("launcher: no rank identity in the environment (none of %s, SLURM_PROCID, OMPI_COMM_WORLD_RANK, PMI_RANK, PBS_VNODENUM is set): start this program with `rankhub run`", EnvRank)
}

func atoiOr(s string, def int) int {
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return def
	}
	return v
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// RankGOMAXPROCS is the GOMAXPROCS the local launcher gives each of ranks
// ranks on a node with cpus usable cores: the user's setting when there is
// one, else an equal share of the cores (at least 1). Go ranks otherwise
// each start a scheduler as wide as the node; when ranks outnumber the
// cores those schedulers' idle threads spin against each other and every
// wakeup costs more. A share per rank is what MPI's binding gives C ranks
// (Open MPI binds each rank to its cores). On the project machine (2
// cores), 4 ranks with a share of 1 halved the time of an 8 MiB gather and
// cut an 8 MiB reduce by a fifth against the default of 2 each. Batch
// schedulers bind ranks themselves (srun's CPU binding, which Go reads),
// so only the local launcher sets it.
func RankGOMAXPROCS(user string, ranks, cpus int) string {
	if user != "" {
		return user
	}
	return strconv.Itoa(max(1, cpus/max(1, ranks)))
}

// RankGODEBUG is the GODEBUG the launchers give every rank: the user's
// setting plus madvdontneed=0 unless the user chose it. With it, the Go
// runtime returns freed heap pages lazily (MADV_FREE), so the next large
// frame reuses them instead of faulting fresh pages in: 64 MiB push/pull went
// from 0.27 to 1.0-1.7 GB/s on the project machine.
func RankGODEBUG(user string) string {
	if strings.Contains(user, "madvdontneed=") {
		return user
	}
	if user == "" {
		return "madvdontneed=0"
	}
	return user + ",madvdontneed=0"
}

// StopOwnStep kills every task of this rank's SLURM job step (scancel
// --signal=KILL <job>.<step>), this rank included: what rank 0 does when
// the job is over but ranks the hub declared dead may live on (a hung
// engine keeps srun, and so the allocation, waiting until the walltime).
// It reports false when the rank is not in a SLURM step. Call it only when
// the ranks are that step's tasks (Identity.Source "slurm").
func StopOwnStep() (bool, error) {
	job, step := os.Getenv("SLURM_JOB_ID"), os.Getenv("SLURM_STEP_ID")
	if job == "" || step == "" {
		return false, nil
	}
	out, err := exec.Command("scancel", "--signal=KILL", job+"."+step).CombinedOutput()
	if err != nil {
		return true, fmt.Errorf("launcher: scancel --signal=KILL %s.%s: %v %s", job, step, err, strings.TrimSpace(string(out)))
	}
	return true, nil
}

// Oversubscribed adapts the options of the hub's and the engines'
// connections in a job of size ranks to the cores they share, so that a
// job with more ranks than cores degrades instead of collapsing:
//
//   - (Spinning is the caller's: RankSettings.ViewsSpinFor turns it off
//     when the ranks outnumber the cores twice; 513 ranks on 2 cores
//     failed with spinning on.)
//   - More missed heartbeats before a peer is declared dead when there are
//     8 ranks per core or more: 5 per 8 ranks per core, at most 60. While
//     1024 ranks start on 2 cores, the hub waits seconds for a time slice
//     and every engine declared it dead after 5 s. A dead process is still
//     seen at once (its connection closes); only a silent one takes longer.
//     The handshake may take as long (10 s per 8 ranks per core, at most
//     2 minutes): an engine whose handshake timed out used to exit, and
//     with it the job.
func Oversubscribed(opts comm.Options, size int) comm.Options {
	threads := size * max(runtime.GOMAXPROCS(0), 1)
	cores := max(runtime.NumCPU(), 1)
	if perCore := threads / cores; perCore >= 8 {
		misses := opts.HeartbeatMisses
		if misses <= 0 {
			misses = 5
		}
		opts.HeartbeatMisses = min(max(misses, 5*(perCore/8)), 60)
		opts.HandshakeTimeout = min(max(opts.HandshakeTimeout, time.Duration(perCore/8)*10*time.Second), 2*time.Minute)
	}
	return opts
}

package launcher

import (
	"fmt"
	"os"
	"strconv"
	"strings"
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
// then SLURM (srun), Open MPI (mpiexec), PMI (MPICH, Intel MPI, PBS Pro's
// mpiexec) and PBS's pbsdsh (PBS_VNODENUM with RANKHUB_SIZE from the script).
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
	sources := []src{
		{"rankhub", EnvRank, EnvSize, EnvLocalRank, EnvNode},
		{"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NODEID"},
		{"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_NODE_RANK"},
		{"pmi", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", ""},
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

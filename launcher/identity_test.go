package launcher

import (
	"strings"
	"testing"
)

func TestIdentityFromEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want Identity
		err  string
	}{
		{"rankhub", map[string]string{EnvRank: "2", EnvSize: "4", EnvLocalRank: "2", EnvNode: "0", EnvJobDir: "/j", EnvJobID: "x"},
			Identity{Rank: 2, Size: 4, LocalRank: 2, Node: 0, JobDir: "/j", JobID: "x", Source: "rankhub"}, ""},
		{"slurm srun", map[string]string{"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NODEID": "1", "SLURM_JOB_ID": "77", EnvJobDir: "/j"},
			Identity{Rank: 5, Size: 8, LocalRank: 1, Node: 1, JobDir: "/j", JobID: "77", Source: "slurm"}, ""},
		{"open mpi mpiexec", map[string]string{"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "3", "PBS_JOBID": "9.pbs", EnvJobDir: "/j"},
			Identity{Rank: 3, Size: 4, LocalRank: 3, Node: -1, JobDir: "/j", JobID: "9.pbs", Source: "openmpi"}, ""},
		{"pmi (mpich, pbs pro mpiexec)", map[string]string{"PMI_RANK": "0", "PMI_SIZE": "2", EnvJobDir: "/j"},
			Identity{Rank: 0, Size: 2, LocalRank: -1, Node: -1, JobDir: "/j", Source: "pmi"}, ""},
		{"pbsdsh", map[string]string{"PBS_VNODENUM": "1", EnvSize: "3", EnvJobDir: "/j"},
			Identity{Rank: 1, Size: 3, LocalRank: -1, Node: -1, JobDir: "/j", Source: "pbs"}, ""},
		{"rankhub wins over slurm", map[string]string{EnvRank: "1", EnvSize: "2", "SLURM_PROCID": "0", "SLURM_NTASKS": "9", EnvJobDir: "/j"},
			Identity{Rank: 1, Size: 2, LocalRank: -1, Node: -1, JobDir: "/j", Source: "rankhub"}, ""},
		// Open MPI inside a SLURM allocation (PBS through Slurm's Torque
		// wrappers) starts its daemons with srun: the ranks inherit the
		// daemon step's SLURM_PROCID and SLURM_NTASKS, which are not theirs.
		{"open mpi under slurm", map[string]string{"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_JOB_ID": "13", "OMPI_COMM_WORLD_RANK": "4", "OMPI_COMM_WORLD_SIZE": "6", "OMPI_COMM_WORLD_LOCAL_RANK": "0", EnvJobDir: "/j"},
			Identity{Rank: 4, Size: 6, LocalRank: 0, Node: -1, JobDir: "/j", JobID: "13", Source: "openmpi"}, ""},
		{"pmi under slurm", map[string]string{"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "PMI_RANK": "3", "PMI_SIZE": "4", EnvJobDir: "/j"},
			Identity{Rank: 3, Size: 4, LocalRank: -1, Node: -1, JobDir: "/j", Source: "pmi"}, ""},
		{"nothing", map[string]string{}, Identity{}, "no rank identity in the environment"},
		{"bad rank", map[string]string{"SLURM_PROCID": "x", "SLURM_NTASKS": "2", EnvJobDir: "/j"}, Identity{}, `SLURM_PROCID="x" is not a rank`},
		{"rank beyond size", map[string]string{"PMI_RANK": "2", "PMI_SIZE": "2", EnvJobDir: "/j"}, Identity{}, "rank 2 (PMI_RANK) is not below the rank count 2"},
		{"size missing", map[string]string{"PBS_VNODENUM": "0", EnvJobDir: "/j"}, Identity{}, "PBS_VNODENUM is set but RANKHUB_SIZE is not"},
		{"no job directory", map[string]string{"SLURM_PROCID": "0", "SLURM_NTASKS": "2"}, Identity{}, "RANKHUB_JOBDIR is not set"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := IdentityFromEnv(func(k string) string { return tc.env[k] })
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestRankGODEBUG(t *testing.T) {
	for in, want := range map[string]string{"": "madvdontneed=0", "gctrace=1": "gctrace=1,madvdontneed=0", "madvdontneed=1": "madvdontneed=1"} {
		if got := RankGODEBUG(in); got != want {
			t.Errorf("RankGODEBUG(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRankGOMAXPROCS(t *testing.T) {
	for _, tc := range []struct {
		user        string
		ranks, cpus int
		want        string
	}{{"", 4, 2, "1"}, {"", 2, 2, "1"}, {"", 3, 16, "5"}, {"", 1, 8, "8"}, {"", 0, 8, "8"}, {"3", 4, 2, "3"}} {
		if got := RankGOMAXPROCS(tc.user, tc.ranks, tc.cpus); got != tc.want {
			t.Errorf("RankGOMAXPROCS(%q, %d, %d) = %q, want %q", tc.user, tc.ranks, tc.cpus, got, tc.want)
		}
	}
}

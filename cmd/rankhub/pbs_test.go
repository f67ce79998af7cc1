package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPBSScriptRunsRealRanks renders a PBS Pro job with `submit --dry-run`
// and runs the script with bash and the environment PBS sets (PBS_JOBID,
// PBS_NODEFILE, PBS_O_WORKDIR, PBS_JOBNAME), starting the ranks with Open
// MPI's mpiexec: every rank must find its identity (OMPI_COMM_WORLD_RANK)
// and the hello driver must reach every engine.
func TestPBSScriptRunsRealRanks(t *testing.T) {
	mpi := needOpenMPI(t)
	dir := t.TempDir()
	job := fmt.Sprintf("[job]\nname = \"pbshello\"\nscheduler = \"pbs\"\nranks = 3\nwalltime = \"0:05:00\"\nstarter = \"mpiexec\"\nprogram = [%q]\n", filepath.Join(bin, "hello"))
	os.WriteFile(filepath.Join(dir, "pbshello.toml"), []byte(job), 0o644)
	r := rh(t, dir, "submit", "--dry-run", "pbshello.toml")
	if r.code != 0 {
		t.Fatalf("dry run: %+v", r)
	}
	jobDir := strings.TrimSpace(r.stdout)
	script := filepath.Join(jobDir, "job.pbs")
	text, _ := os.ReadFile(script)
	for _, want := range []string{"#PBS -l select=1:ncpus=3:mpiprocs=3", "#PBS -l walltime=00:05:00", "#PBS -N pbshello", `cd "${PBS_O_WORKDIR`} {
		if !strings.Contains(string(text), want) {
			t.Errorf("script lacks %q:\n%s", want, text)
		}
	}
	cmd := pbsCommand(t, mpi, dir, jobDir, "4242.pbsserver", "pbshello", 3)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the PBS script did not finish")
	}
	if err != nil {
		t.Fatalf("script: %v\n%s", err, out)
	}
	for _, want := range []string{"engine ids: [0 1]", "[stdout:0] hello from", "[stdout:1] hello from"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if s := endStatus(jobDir); !strings.Contains(s, `"completed"`) {
		t.Errorf("end status %q", s)
	}
}

// needOpenMPI returns Open MPI's mpirun, or skips loudly without it (fails
// when CI requires the scheduler tier, RANKHUB_REQUIRE_SLURM=1).
func needOpenMPI(t *testing.T) string {
	t.Helper()
	mpi, err := exec.LookPath("mpirun.openmpi")
	if err != nil {
		msg := "OPEN MPI NOT INSTALLED (mpirun.openmpi): apt-get install openmpi-bin"
		if os.Getenv("RANKHUB_REQUIRE_SLURM") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return mpi
}

// pbsCommand runs the job's job.pbs as PBS would: bash in the job
// directory with PBS_* set, a node file of slots lines of localhost, the
// ranks started by Open MPI's mpirun.
func pbsCommand(t *testing.T, mpi, dir, jobDir, jobID, name string, slots int) *exec.Cmd {
	t.Helper()
	nodefile := filepath.Join(dir, "nodefile")
	os.WriteFile(nodefile, []byte(strings.Repeat("localhost\n", slots)), 0o644)
	cmd := exec.Command("bash", filepath.Join(jobDir, "job.pbs"))
	cmd.Dir = jobDir
	cmd.Env = append(os.Environ(), "PBS_JOBID="+jobID, "PBS_JOBNAME="+name, "PBS_NODEFILE="+nodefile,
		"PBS_O_WORKDIR="+jobDir, "PBS_ENVIRONMENT=PBS_BATCH",
		"RANKHUB_MPIEXEC="+mpi+" --allow-run-as-root --oversubscribe", "OMPI_MCA_plm_rsh_agent=false")
	return cmd
}

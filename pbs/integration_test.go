package pbs

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rankhub/rankhub/internal/batch/batchtest"
	"github.com/rankhub/rankhub/jobs"
)

// These tests need a real scheduler or MPI on this machine
// (scripts/slurm-local.sh up installs and starts a single-node SLURM with
// Slurm's Torque wrappers; `apt-get install openmpi-bin` gives Open MPI).
// Without them they skip loudly; with RANKHUB_REQUIRE_SLURM=1 they fail.

const slurmHint = "see scripts/slurm-local.sh"

// rankJob writes a rank program that records its rank (from the variable
// named by rankVar) into <out>/rank-<n> and returns a job running it.
func rankJob(t *testing.T, ranks int, rankVar string) (*jobs.Job, jobs.Launch, string) {
	t.Helper()
	base := filepath.Join(t.TempDir(), "work dir")
	out := filepath.Join(base, "out")
	jobDir := filepath.Join(base, ".rankhub", "job 1")
	for _, d := range []string{out, jobDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// No blank in the program's own name: SLURM's proctrack/linuxproc
	// cannot signal processes whose command name has one.
	prog := filepath.Join(base, "rank-prog.sh")
	body := "#!/bin/bash\nr=${" + rankVar + ":?rank variable " + rankVar + " not set}\n" +
		`printf '%s %s %s\n' "$r" "$PWD" "$RANKHUB_TEST_GREETING" > "$RANKHUB_TEST_OUT/rank-$r"` + "\n"
	if err := os.WriteFile(prog, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	job := &jobs.Job{
		File: filepath.Join(base, "job.toml"),
		Job: jobs.JobSpec{
			Name: `pbs "quoted" test`, Scheduler: jobs.SchedPBS, Ranks: ranks, RanksPerNode: ranks,
			Walltime: jobs.Duration{Duration: 10 * time.Minute},
			Env:      map[string]string{"RANKHUB_TEST_GREETING": `it's "quoted"`, "RANKHUB_TEST_OUT": out},
		},
	}
	return job, jobs.Launch{JobDir: jobDir, RankCommand: []string{prog}}, out
}

func checkRanks(t *testing.T, out string, ranks int, workdir string) {
	t.Helper()
	for i := range ranks {
		b, err := os.ReadFile(filepath.Join(out, "rank-"+strconv.Itoa(i)))
		if err != nil {
			t.Errorf("rank %d did not run: %v", i, err)
			continue
		}
		want := strconv.Itoa(i) + " " + workdir + ` it's "quoted"` + "\n"
		if string(b) != want {
			t.Errorf("rank %d wrote %q, want %q", i, b, want)
		}
	}
	files, _ := filepath.Glob(filepath.Join(out, "rank-*"))
	sort.Strings(files)
	if len(files) != ranks {
		t.Errorf("%d rank files, want %d: %v", len(files), ranks, files)
	}
}

// TestIntegrationTorqueWrapper submits the rendered Torque script through
// Slurm's qsub wrapper (which hands the #PBS directives to sbatch) and
// follows it with qstat until it completes. The mpiexec starter is pointed
// at srun, the launcher SLURM provides inside the job.
func TestIntegrationTorqueWrapper(t *testing.T) {
	batchtest.Require(t, "SLURM", slurmHint, "sinfo", "-h")
	batchtest.Require(t, "SLURM TORQUE WRAPPERS", slurmHint, "sh", "-c", "command -v qsub && command -v qstat")
	job, l, out := rankJob(t, 4, "SLURM_PROCID")
	job.Job.PBSDialect = DialectTorque
	job.Job.Starter = StarterMpiexec
	t.Setenv("RANKHUB_MPIEXEC", "srun --kill-on-bad-exit=1")
	st, log := torqueRun(t, job, l, "")
	id := st.ID
	if st.State != StateCompleted {
		t.Fatalf("job %s: %+v; output:\n%s", id, st, log)
	}
	checkRanks(t, out, 4, filepath.Dir(job.File))
	rec, _ := os.ReadFile(filepath.Join(l.JobDir, "scheduler-id"))
	if strings.TrimSpace(string(rec)) != id {
		t.Errorf("scheduler-id holds %q, want %s", rec, id)
	}
	show, _ := exec.Command("scontrol", "show", "job", id).Output()
	for _, want := range []string{"JobName=" + JobName(job.Job.Name, DialectTorque) + "\n", "NumTasks=4", "TimeLimit=00:10:00"} {
		if !strings.Contains(string(show), want) {
			t.Errorf("#PBS directives not applied (%s missing):\n%s", want, show)
		}
	}
}

// TestIntegrationOpenMPI runs the rendered PBS Pro script with bash and the
// environment a PBS MoM sets, starting the ranks with Debian's Open MPI
// through RANKHUB_MPIEXEC.
func TestIntegrationOpenMPI(t *testing.T) {
	batchtest.Require(t, "OPEN MPI", slurmHint, "sh", "-c", "command -v mpirun.openmpi")
	job, l, out := rankJob(t, 4, "OMPI_COMM_WORLD_RANK")
	script, err := Script(job, l)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(l.JobDir, "job.pbs")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	nodefile := filepath.Join(l.JobDir, "nodefile")
	if err := os.WriteFile(nodefile, []byte(strings.Repeat("localhost\n", 4)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/bash", path)
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(),
		"PBS_JOBID=4242.pbs01", "PBS_NODEFILE="+nodefile, "PBS_O_WORKDIR="+filepath.Dir(l.JobDir),
		"PBS_JOBNAME="+JobName(job.Job.Name, DialectPro),
		"RANKHUB_MPIEXEC=mpirun.openmpi --allow-run-as-root --oversubscribe",
		"OMPI_MCA_plm_rsh_agent=false", // one node: never ssh
	)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("script failed: %v\n%s", err, b)
	}
	checkRanks(t, out, 4, filepath.Dir(job.File))
	rec, _ := os.ReadFile(filepath.Join(l.JobDir, "scheduler-id"))
	if string(rec) != "4242.pbs01\n" {
		t.Errorf("scheduler-id holds %q", rec)
	}
}

// torqueRun submits job through Slurm's qsub wrapper, with PATH starting
// with pathDir when it is not "" (so that its mpiexec is the one the script
// finds), follows it with qstat, and returns how it ended and its output.
func torqueRun(t *testing.T, job *jobs.Job, l jobs.Launch, pathDir string) (jobs.SchedState, string) {
	t.Helper()
	if pathDir != "" {
		t.Setenv("PATH", pathDir+":"+os.Getenv("PATH"))
	}
	b := New(WithCacheTTL(200 * time.Millisecond))
	script, err := b.Script(job, l)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(l.JobDir, "job.pbs")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	id, err := b.Submit(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("qdel", id).Run() })
	var st jobs.SchedState
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		got, err := b.Status(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if st = got[id]; st.State == StateCompleted || st.State == StateFailed || st.State == StateCancelled {
			break
		}
	}
	// Slurm's qsub wrapper writes job.pbs.o<id> and job.pbs.e<id>.
	log, _ := os.ReadFile(filepath.Join(l.JobDir, "job.pbs.o"+id))
	elog, _ := os.ReadFile(filepath.Join(l.JobDir, "job.pbs.e"+id))
	return st, string(log) + string(elog)
}

// torqueMpiexec runs a 4-rank Torque job with the mpiexec starter through
// Slurm's wrappers, with dir first on PATH and no RANKHUB_MPIEXEC: the
// script finds its mpiexec itself.
func torqueMpiexec(t *testing.T, dir string) (*jobs.Job, string, jobs.SchedState, string) {
	t.Helper()
	t.Setenv("RANKHUB_MPIEXEC", "")
	job, l, out := rankJob(t, 4, "SLURM_PROCID")
	job.Job.PBSDialect = DialectTorque
	job.Job.Starter = StarterMpiexec
	st, log := torqueRun(t, job, l, dir)
	return job, out, st, log
}

// TestIntegrationTorqueSlurmMpiexec: through Debian's Torque wrappers the
// default mpiexec is Slurm's mpiexec.slurm, which re-splits its arguments
// in a shell: the rank wrapper broke ("shift: can't shift that many"), no
// rank ran, and the job was COMPLETED. The script must recognise it and
// start the ranks with srun.
func TestIntegrationTorqueSlurmMpiexec(t *testing.T) {
	batchtest.Require(t, "SLURM", slurmHint, "sinfo", "-h")
	batchtest.Require(t, "SLURM TORQUE WRAPPERS", slurmHint, "sh", "-c", "command -v qsub && command -v mpiexec.slurm")
	dir := t.TempDir()
	slurmExec, _ := exec.LookPath("mpiexec.slurm")
	if err := os.Symlink(slurmExec, filepath.Join(dir, "mpiexec")); err != nil {
		t.Fatal(err)
	}
	job, out, st, log := torqueMpiexec(t, dir)
	if st.State != StateCompleted {
		t.Fatalf("job: %+v; output:\n%s", st, log)
	}
	checkRanks(t, out, 4, filepath.Dir(job.File))
	if !strings.Contains(log, "mpiexec is Slurm's mpiexec.slurm") {
		t.Errorf("the output does not say which starter ran:\n%s", log)
	}
}

// TestIntegrationTorqueStarterRunsNothing: a starter that exits 0 without
// starting any rank must not leave the job COMPLETED: the job fails with a
// message naming the starter and the missing ranks.
func TestIntegrationTorqueStarterRunsNothing(t *testing.T) {
	batchtest.Require(t, "SLURM", slurmHint, "sinfo", "-h")
	batchtest.Require(t, "SLURM TORQUE WRAPPERS", slurmHint, "sh", "-c", "command -v qsub")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mpiexec"), []byte("#!/bin/sh\necho 'a broken mpiexec: runs nothing'\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, _, st, log := torqueMpiexec(t, dir)
	// Slurm's qstat wrapper reports no exit status (C is all it says); SLURM
	// itself knows how the script ended.
	show, _ := exec.Command("scontrol", "show", "job", st.ID).Output()
	if !strings.Contains(string(show), "JobState=FAILED") || !strings.Contains(string(show), "ExitCode=1:0") {
		t.Fatalf("job %s: %+v, want FAILED with exit code 1; scontrol:\n%s\noutput:\n%s", st.ID, st, show, log)
	}
	want := "rankhub: the starter (mpiexec " + filepath.Join(dir, "mpiexec") + ") started 0 of 4 ranks; missing: 0 1 2 3"
	if !strings.Contains(log, want) {
		t.Errorf("output lacks %q:\n%s", want, log)
	}
}

package slurm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rankhub/rankhub/internal/batch/batchtest"
	"github.com/rankhub/rankhub/jobs"
)

// These tests talk to a real SLURM (scripts/slurm-local.sh up starts one on
// this machine). Without one they skip loudly; with RANKHUB_REQUIRE_SLURM=1
// they fail instead. The walltime test takes over a minute and runs only
// with RANKHUB_SLOW_TESTS=1.

func requireSlurm(t *testing.T) {
	t.Helper()
	batchtest.Require(t, "SLURM", "start one with scripts/slurm-local.sh up", "sinfo", "-h")
}

// realJob prepares a job whose ranks run the bash program body, in a job
// directory whose path has a blank in it.
func realJob(t *testing.T, name string, ranks int, body string) (*jobs.Job, jobs.Launch, string) {
	t.Helper()
	base := filepath.Join(t.TempDir(), "work dir")
	jobDir := filepath.Join(base, ".rankhub", "job 1")
	if err := os.MkdirAll(jobDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// No blank in the program name itself: proctrack/linuxproc misreads
	// /proc/PID/stat when the command name has one and cannot signal the
	// ranks (scancel would leave them running).
	prog := filepath.Join(base, "rank-prog.sh")
	if err := os.WriteFile(prog, []byte("#!/bin/bash\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	job := &jobs.Job{
		File: filepath.Join(base, "job.toml"),
		Job: jobs.JobSpec{
			Name: name, Scheduler: jobs.SchedSLURM, Ranks: ranks,
			Env: map[string]string{"RANKHUB_TEST_GREETING": `it's "quoted" $NOT_EXPANDED`},
		},
	}
	l := jobs.Launch{JobDir: jobDir, RankCommand: []string{prog, "arg with space"}}
	return job, l, jobDir
}

func submit(t *testing.T, b *Backend, job *jobs.Job, l jobs.Launch) string {
	t.Helper()
	s, err := b.Script(job, l)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(l.JobDir, "job.sbatch")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	id, err := b.Submit(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("scancel", id).Run() })
	return id
}

// waitState polls until the job reaches one of states or the timeout.
func waitState(t *testing.T, b *Backend, id string, timeout time.Duration, states ...string) jobs.SchedState {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last jobs.SchedState
	for time.Now().Before(deadline) {
		got, err := b.Status(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		last = got[id]
		for _, s := range states {
			if last.State == s {
				return last
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("job %s: still %+v after %v, want one of %v", id, last, timeout, states)
	return last
}

func TestIntegrationComplete(t *testing.T) {
	requireSlurm(t)
	job, l, jobDir := realJob(t, `it's a "rank" test`, 4,
		`echo "rank $SLURM_PROCID of $SLURM_NTASKS on $(hostname) arg=[$1] greeting=[$RANKHUB_TEST_GREETING] pwd=[$PWD]"`)
	b := New(WithCacheTTL(200 * time.Millisecond))
	id := submit(t, b, job, l)
	st := waitState(t, b, id, 60*time.Second, StateCompleted, StateFailed, StateCancelled, StateTimeout)
	if st.State != StateCompleted || st.ExitCode != 0 {
		t.Fatalf("job %s ended %+v", id, st)
	}
	out, err := os.ReadFile(filepath.Join(jobDir, "slurm-"+id+".out"))
	if err != nil {
		t.Fatal(err)
	}
	var ranks []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !strings.HasPrefix(line, "rank ") {
			continue
		}
		ranks = append(ranks, strings.Fields(line)[1])
		wantTail := `arg=[arg with space] greeting=[it's "quoted" $NOT_EXPANDED] pwd=[` + filepath.Dir(job.File) + `]`
		if !strings.HasSuffix(line, wantTail) || !strings.Contains(line, " of 4 on ") {
			t.Errorf("rank line %q, want it to end with %q", line, wantTail)
		}
	}
	sort.Strings(ranks)
	if strings.Join(ranks, ",") != "0,1,2,3" {
		t.Errorf("ranks that ran: %v, want 0..3; output:\n%s", ranks, out)
	}
	rec, err := os.ReadFile(filepath.Join(jobDir, "scheduler-id"))
	if err != nil || strings.TrimSpace(string(rec)) != id {
		t.Errorf("scheduler-id file holds %q (%v), want %s", rec, err, id)
	}
	show, _ := exec.Command("scontrol", "show", "job", id).Output()
	if !strings.Contains(string(show), `JobName=it's a "rank" test`) {
		t.Errorf("job name not passed intact through #SBATCH:\n%s", show)
	}
}

func TestIntegrationCancel(t *testing.T) {
	requireSlurm(t)
	// Rank 0's TERM trap does a second of "flushing" before it records the
	// stop, as a hub writing its results does; the other ranks exit only
	// after it, as engines the hub shuts down do (an earlier non-zero exit
	// would have srun --kill-on-bad-exit kill rank 0). A SIGKILL during the
	// flush leaves no term-0.
	job, l, jobDir := realJob(t, "cancel me", 2, `d="$RANKHUB_JOBDIR"
if [ "$SLURM_PROCID" = 0 ]; then
	trap 'sleep 1; echo TERM > "$d/term-0"; exit 143' TERM
else
	trap 'echo TERM > "$d/term-$SLURM_PROCID"; for i in $(seq 50); do [ -e "$d/term-0" ] && break; sleep 0.1; done; exit 143' TERM
fi
echo started > "$d/started-$SLURM_PROCID"
# Not "sleep 300 & wait": SLURM signals every process of the step, the
# sleep first at times, and wait then returns 0 and the script ends before
# bash takes its own SIGTERM.
while :; do sleep 0.2; done`)
	l.Env = map[string]string{"RANKHUB_JOBDIR": l.JobDir}
	b := New(WithCacheTTL(200 * time.Millisecond))
	id := submit(t, b, job, l)
	waitState(t, b, id, 60*time.Second, StateRunning)
	// Wait until both ranks run (their TERM trap is set before they write
	// started-N), so the cancel hits the step. Going on without them would
	// turn a slow start into "no rank saw SIGTERM".
	var started []string
	for end := time.Now().Add(90 * time.Second); len(started) < 2 && time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		started, _ = filepath.Glob(filepath.Join(jobDir, "started-*"))
	}
	if len(started) < 2 {
		t.Fatalf("only %d of 2 ranks started within 90s of the job running (%v); cannot test scancel", len(started), started)
	}
	if err := b.Cancel(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, b, id, 60*time.Second, StateCancelled, StateCompleted, StateFailed)
	if st.State != StateCancelled {
		t.Fatalf("after scancel: %+v", st)
	}
	// SLURM reports CANCELLED as soon as it signals the step; the ranks'
	// trap may still be writing. Give them a moment.
	var term []string
	for end := time.Now().Add(10 * time.Second); len(term) < 2 && time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		term, _ = filepath.Glob(filepath.Join(jobDir, "term-*"))
	}
	if len(term) < 2 {
		out, _ := os.ReadFile(filepath.Join(jobDir, "slurm-"+id+".out"))
		t.Errorf("%d of 2 ranks finished their SIGTERM handler after the cancel (%v); output:\n%s", len(term), term, out)
	}
}

func TestIntegrationTimeout(t *testing.T) {
	requireSlurm(t)
	if os.Getenv("RANKHUB_SLOW_TESTS") != "1" {
		t.Skip("walltime test takes 60-120 s; set RANKHUB_SLOW_TESTS=1")
	}
	job, l, jobDir := realJob(t, "timeout", 2,
		`trap 'echo USR1 >> "$RANKHUB_JOBDIR/sig-$SLURM_PROCID"' USR1
trap 'echo TERM >> "$RANKHUB_JOBDIR/sig-$SLURM_PROCID"; exit 143' TERM
while :; do sleep 1; done`)
	l.Env = map[string]string{"RANKHUB_JOBDIR": l.JobDir}
	job.Job.Walltime = jobs.Duration{Duration: time.Minute}
	job.Job.SignalLead = jobs.Duration{Duration: 30 * time.Second}
	b := New(WithCacheTTL(time.Second))
	id := submit(t, b, job, l)
	st := waitState(t, b, id, 150*time.Second, StateTimeout, StateCompleted, StateFailed, StateCancelled)
	if st.State != StateTimeout {
		t.Fatalf("job %s ended %+v, want TIMEOUT", id, st)
	}
	out, _ := os.ReadFile(filepath.Join(jobDir, "slurm-"+id+".out"))
	if !strings.Contains(string(out), "batch shell got SIGUSR1, forwarding it to the ranks") {
		t.Errorf("batch shell trap did not see USR1; output:\n%s", out)
	}
	for _, r := range []string{"0", "1"} {
		sig, err := os.ReadFile(filepath.Join(jobDir, "sig-"+r))
		if err != nil || !strings.Contains(string(sig), "USR1") || !strings.Contains(string(sig), "TERM") {
			t.Errorf("rank %s saw signals %q (%v), want USR1 then TERM", r, sig, err)
		}
	}
}

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rankhub/rankhub/jobdir"
	"github.com/rankhub/rankhub/jobs"
)

// syncBuffer is a bytes.Buffer a running process writes while the test
// reads it.
// syncBuffer: engines_test.go.

// startRun starts `rankhub run job.toml` in dir and returns it running.
func startRun(t *testing.T, dir string, args ...string) (*exec.Cmd, *syncBuffer, chan struct{}) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "rankhub"), append([]string{"run"}, args...)...)
	cmd.Dir = dir
	se := &syncBuffer{}
	cmd.Stderr = se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			for _, p := range children(cmd.Process.Pid) {
				syscall.Kill(-p, syscall.SIGKILL)
				syscall.Kill(p, syscall.SIGCONT)
			}
			<-done
		}
	})
	return cmd, se, done
}

// children lists the child processes of pid (the ranks of `rankhub run`).
func children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, w := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(w); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// waitProgress waits until the sweep of the only job directory under dir
// has done at least n tasks and returns that directory.
func waitProgress(t *testing.T, dir string, n int, d time.Duration) jobdir.Dir {
	t.Helper()
	return waitProgressOr(t, dir, n, d, nil)
}

// waitProgressOr is waitProgress showing the run's stderr when it fails.
func waitProgressOr(t *testing.T, dir string, n int, d time.Duration, stderr *syncBuffer) jobdir.Dir {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if jds, _ := filepath.Glob(filepath.Join(dir, ".rankhub", "*")); len(jds) == 1 {
			jd, _ := jobdir.Open(jds[0])
			if p, err := jd.ReadProgress(); err == nil && p.Done >= n {
				return jd
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the sweep did not reach %d tasks within %v; stderr:\n%v", n, d, stderr)
	return jobdir.Dir{}
}

func waitExit(t *testing.T, cmd *exec.Cmd, done chan struct{}, se *syncBuffer, d time.Duration) int {
	t.Helper()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("rankhub run did not return within %v; stderr:\n%s", d, se)
	}
	return cmd.ProcessState.ExitCode()
}

const slowSweep = `[job]
name = "slow"
ranks = 3

[task]
command = "sleep 0.05; echo {i}"
outputs = ["v"]

[sweep]
i = { start = 0, stop = 399, step = 1 }

[results]
path = "slow.arrow"
flush_rows = 8
`

// Issue 13 point 4: a signal to the ranks (what scancel and the walltime
// warning do) ends `rankhub run` with the signal's own exit status and
// status.json reason; SIGTERM used to give exit 0 with 159 of 400 rows.
func TestSignalledRanksExitStatusTellsTheTruth(t *testing.T) {
	for _, tc := range []struct {
		sig     syscall.Signal
		outcome jobdir.Outcome
		code    int
	}{
		{syscall.SIGTERM, jobdir.Terminated, 143},
		{syscall.SIGUSR1, jobdir.Walltime, 7},
	} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "slow.toml"), []byte(slowSweep), 0o644)
			cmd, se, done := startRun(t, dir, "slow.toml")
			jd := waitProgress(t, dir, 10, 30*time.Second)
			ranks := children(cmd.Process.Pid)
			if len(ranks) != 3 {
				t.Fatalf("ranks %v", ranks)
			}
			for _, p := range ranks {
				syscall.Kill(p, tc.sig)
			}
			if code := waitExit(t, cmd, done, se, 20*time.Second); code != tc.code {
				t.Fatalf("exit status %d, want %d; stderr:\n%s", code, tc.code, se)
			}
			st, err := jd.ReadStatus()
			if err != nil || len(st.Attempts) != 1 || st.Outcome != tc.outcome || !strings.Contains(st.Reason, "SIG") {
				t.Fatalf("status.json: %+v %v", st, err)
			}
			if !strings.Contains(se.String(), string(tc.outcome)) {
				t.Fatalf("stderr does not say %s:\n%s", tc.outcome, se)
			}
		})
	}
}

// A SIGTERM to `rankhub run` itself stops the ranks and ends 143.
func TestSIGTERMToRunExits143(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "slow.toml"), []byte(slowSweep), 0o644)
	cmd, se, done := startRun(t, dir, "slow.toml")
	jd := waitProgress(t, dir, 10, 30*time.Second)
	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, cmd, done, se, 20*time.Second); code != 143 {
		t.Fatalf("exit status %d, want 143; stderr:\n%s", code, se)
	}
	if st, err := jd.ReadStatus(); err != nil || st.Outcome != jobdir.Terminated {
		t.Fatalf("status.json: %+v %v", st, err)
	}
}

// endStatus is the text of a job directory's status.json ("" when none).
func endStatus(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, jobdir.StatusFile))
	return strings.TrimSpace(string(b))
}

// rankhub wait's exit status: status.json's outcome when rank 0 recorded
// one, the scheduler's state otherwise (a job stopped by its walltime
// warning ended COMPLETED and wait exited 0).
func TestWaitOutcome(t *testing.T) {
	rec := func(o jobdir.Outcome) jobdir.Status {
		return jobdir.Status{Attempts: []jobdir.Attempt{{Outcome: jobdir.Completed}, {Outcome: o, Reason: "r"}}}
	}
	none := jobdir.ErrNoStatus
	for _, tc := range []struct {
		state string
		exit  int
		st    jobdir.Status
		err   error
		want  int
	}{
		{"COMPLETED", 0, rec(jobdir.Completed), nil, 0},
		{"COMPLETED", 0, rec(jobdir.Walltime), nil, 7},
		{"FAILED", 7, rec(jobdir.Walltime), nil, 7},
		{"COMPLETED", 0, rec(jobdir.Incomplete), nil, 4},
		{"COMPLETED", 0, rec(jobdir.NodeLost), nil, 6},
		{"CANCELLED", 0, rec(jobdir.Terminated), nil, 143},
		{"CANCELLED", 0, jobdir.Status{}, none, 143},
		{"CANCELLED", 0, rec(jobdir.Completed), nil, 143},
		{"TIMEOUT", 0, jobdir.Status{}, none, 7},
		{"NODE_FAIL", 0, jobdir.Status{}, none, 6},
		{"FAILED", 1, rec(jobdir.Completed), nil, 5},
		{"FAILED", 143, jobdir.Status{}, none, 143},
		{"FAILED", 1, jobdir.Status{}, none, 5},
		{"COMPLETED", 0, jobdir.Status{}, none, 0},
	} {
		o, reason := waitOutcome(jobs.SchedState{State: tc.state, ExitCode: tc.exit}, tc.st, tc.err)
		if o.ExitCode() != tc.want {
			t.Errorf("%s exit %d, recorded %q: %s (%s), exit %d, want %d", tc.state, tc.exit, tc.st.Last().Outcome, o, reason, o.ExitCode(), tc.want)
		}
	}
}

// Issue 13 point 4 on a real SLURM: a job stopped by its walltime warning
// is no success; `rankhub wait` exits with the walltime status (it was
// COMPLETED with exit 0).
func TestWaitWalltimeWarningOnSLURM(t *testing.T) {
	needSLURM(t)
	dir := t.TempDir()
	// No program and no task: the hub serves clients until stopped.
	job := "[job]\nname = \"idlewt\"\nscheduler = \"slurm\"\npartition = \"debug\"\nranks = 2\nwalltime = \"1m\"\nsignal_lead = \"50s\"\n"
	os.WriteFile(filepath.Join(dir, "idlewt.toml"), []byte(job), 0o644)
	r := rh(t, dir, "submit", "idlewt.toml")
	if r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	id := strings.TrimSpace(r.stdout)
	r = rh(t, dir, "wait", "--timeout", "55s", id)
	if r.code != jobdir.Walltime.ExitCode() || !strings.Contains(r.stderr, "walltime") {
		t.Fatalf("wait: exit %d, want %d\n%s%s", r.code, jobdir.Walltime.ExitCode(), r.stdout, r.stderr)
	}
	if r := rh(t, dir, "status", id); !strings.Contains(r.stdout, "signalled (walltime, exit 7)") {
		t.Fatalf("status:\n%s", r.stdout)
	}
}

// A RANKHUB_* setting a rank cannot use is bad input named by the rank,
// not silently replaced by a default (RANKHUB_SPIN had two parsers that
// both fell back quietly).
func TestBadRankSettingIsBadInput(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(filepath.Join(bin, "rankhub"), "run", "-n", "2", "--", filepath.Join(bin, "hello"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RANKHUB_SPIN=fast")
	out, _ := cmd.CombinedOutput()
	// Bad input when rank 0's exit is seen; a rank failure when the
	// launcher stopped rank 0 before it exited on its own.
	code := cmd.ProcessState.ExitCode()
	if code != jobdir.BadInput.ExitCode() && code != jobdir.RankFailed.ExitCode() || !strings.Contains(string(out), `RANKHUB_SPIN="fast" is not a duration`) {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

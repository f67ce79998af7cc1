package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rankhub/rankhub/jobdir"
)

// stopSweep is slowSweep with 20 tasks that sleep while the file "slow"
// exists (the first run) and answer at once when it is gone (the resume):
// one job text for both.
var stopSweep = strings.NewReplacer(`name = "slow"`, `name = "stopsafe"`, `slow.arrow`, `stop.arrow`, `stop = 399`, `stop = 19`,
	`flush_rows = 8`, `flush_rows = 1`,
	`command = "sleep 0.05; echo {i}"`, `command = 'if [ -e slow ]; then echo $$ >> pids; sleep 30; fi; echo {i}'`).Replace(slowSweep)

// A stop (scancel, a requeue, the walltime warning) signals every process
// of the job, and a task's command may die of it before its engine and the
// driver have handled theirs: such a task used to become a failed row
// ("signal: terminated") that --resume never ran again. Here the commands'
// process groups get SIGTERM first, the ranks' 300 ms later: no row
// records a failure, progress.json counts none, and --resume then gives
// every task exactly once with none failed.
func TestStopMidTaskLeavesNoFailedRows(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "stop.toml"), []byte(stopSweep), 0o644)
	os.WriteFile(filepath.Join(dir, "slow"), nil, 0o644)
	cmd, se, done := startRun(t, dir, "stop.toml")
	pids := filepath.Join(dir, "pids")
	var groups []int
	deadline := time.Now().Add(30 * time.Second)
	for len(groups) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("two tasks did not start; stderr:\n%s", se)
		}
		time.Sleep(20 * time.Millisecond)
		b, _ := os.ReadFile(pids)
		groups = groups[:0]
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				groups = append(groups, pid)
			}
		}
	}
	ranks := children(cmd.Process.Pid)
	if len(ranks) != 3 {
		t.Fatalf("ranks %v", ranks)
	}
	for _, g := range groups {
		syscall.Kill(-g, syscall.SIGTERM)
	}
	time.Sleep(300 * time.Millisecond)
	for _, p := range ranks {
		syscall.Kill(-p, syscall.SIGTERM)
	}
	if code := waitExit(t, cmd, done, se, 30*time.Second); code != jobdir.Terminated.ExitCode() {
		t.Fatalf("exit status %d, want %d; stderr:\n%s", code, jobdir.Terminated.ExitCode(), se)
	}
	jd := onlyJobDir(t, dir)
	if p, err := jd.ReadProgress(); err != nil || p.Failed != 0 {
		t.Errorf("progress.json: %+v %v, want no failed task", p, err)
	}
	if st, err := jd.ReadStatus(); err != nil || st.Outcome != jobdir.Terminated {
		t.Errorf("status.json: %+v %v", st, err)
	}
	for _, row := range fileRows(t, filepath.Join(dir, "stop.arrow")) {
		if row.Failed() {
			t.Errorf("task %d: a failed row after the stop: exit %d, %q", row.Task, row.ExitStatus, row.Err)
		}
	}
	os.Remove(filepath.Join(dir, "slow"))
	r := rh(t, dir, "run", "--resume", "stop.toml")
	if r.code != 0 {
		t.Fatalf("resume: %+v", r)
	}
	seen := map[int]int{}
	for _, row := range fileRows(t, filepath.Join(dir, "stop.arrow")) {
		seen[row.Task]++
		if row.Failed() {
			t.Errorf("task %d failed: exit %d, %q", row.Task, row.ExitStatus, row.Err)
		}
	}
	for i := range 20 {
		if seen[i] != 1 {
			t.Errorf("task %d has %d rows, want 1", i, seen[i])
		}
	}
	if r := rh(t, dir, "peek", "stop.arrow", "--format", "json"); r.code != 0 || !strings.Contains(r.stdout, `"failed": 0,`) {
		t.Errorf("peek: %+v", r)
	}
}

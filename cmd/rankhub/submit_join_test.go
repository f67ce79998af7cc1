package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rankhub/rankhub/launcher"
	"github.com/rankhub/rankhub/views"
)

// enginesJob writes an engines job file: ranks engines, scheduler sched,
// with extra lines in [job].
func enginesJob(t *testing.T, dir, sched string, ranks int, extra string) string {
	t.Helper()
	job := fmt.Sprintf("[job]\nname = \"engines\"\nscheduler = %q\nranks = %d\nwalltime = \"5m\"\n%s", sched, ranks, extra)
	p := filepath.Join(dir, "engines.toml")
	if err := os.WriteFile(p, []byte(job), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestScriptJoin: `script|submit engines.toml --join JOBDIR` renders a
// SLURM or PBS job whose ranks all join the running hub, and refuses what
// cannot work before anything is queued: a hub on 127.0.0.1 for a job that
// may span nodes, a hub that does not answer, a job with work of its own.
func TestScriptJoin(t *testing.T) {
	dir := t.TempDir()
	jobDir, _ := startHub(t, dir, "-n", "2")
	hubFile := filepath.Join(jobDir, launcher.ConnFile)
	for _, c := range []struct{ sched, extra string }{
		{"slurm", "nodes = 1\npartition = \"debug\"\n"},
		{"pbs", "nodes = 1\nstarter = \"mpiexec\"\n"},
	} {
		p := enginesJob(t, dir, c.sched, 3, c.extra)
		r := rh(t, dir, "script", p, "--join", jobDir)
		if r.code != 0 {
			t.Fatalf("%s script --join: %d\n%s", c.sched, r.code, r.stderr)
		}
		for _, want := range []string{"export RANKHUB_JOIN=" + hubFile, "RANKHUB_SIZE=3"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("%s script lacks %q:\n%s", c.sched, want, r.stdout)
			}
		}
		if !strings.Contains(r.stderr, "127.0.0.1") {
			t.Errorf("%s: no warning that the hub listens on 127.0.0.1 only:\n%s", c.sched, r.stderr)
		}
	}
	// The same job on any number of nodes: the hub cannot be reached.
	p := enginesJob(t, dir, "slurm", 3, "partition = \"debug\"\n")
	r := rh(t, dir, "submit", p, "--join", jobDir)
	if r.code == 0 || !strings.Contains(r.stderr, hubFile) || !strings.Contains(r.stderr, "127.0.0.1") || !strings.Contains(r.stderr, "--listen") {
		t.Fatalf("a multi-node join to a hub on 127.0.0.1: %d\n%s", r.code, r.stderr)
	}
	if dirs, _ := filepath.Glob(filepath.Join(dir, ".rankhub", "engines-*")); len(dirs) != 0 {
		t.Errorf("a refused join left job directories %v", dirs)
	}
	// A job with a task of its own.
	p = enginesJob(t, dir, "slurm", 2, "nodes = 1\n[task]\ncommand = \"true\"\n")
	if r := rh(t, dir, "script", p, "--join", jobDir); r.code == 0 || !strings.Contains(r.stderr, "[task]") {
		t.Fatalf("a join job with a [task]: %d\n%s", r.code, r.stderr)
	}
	// No hub there.
	p = enginesJob(t, dir, "slurm", 2, "nodes = 1\n")
	if r := rh(t, dir, "script", p, "--join", dir); r.code == 0 || !strings.Contains(r.stderr, filepath.Join(dir, launcher.ConnFile)) {
		t.Fatalf("a join without a hub: %d\n%s", r.code, r.stderr)
	}
}

// TestSubmitJoin: on the one-node SLURM, `submit engines.toml --join` adds
// the job's ranks as engines of a `rankhub start` hub: new ids, reached by
// a load-balanced map; scancel takes them away, the hub serves on with its
// own engine, and the job's status.json says it was terminated.
func TestSubmitJoin(t *testing.T) {
	needSLURM(t)
	dir := t.TempDir()
	prog := filepath.Join(bin, "userprog")
	jobDir, _ := startHub(t, dir, "-n", "2", "--", prog)
	hubFile := filepath.Join(jobDir, launcher.ConnFile)
	c, err := views.Connect(hubFile)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := enginesJob(t, dir, "slurm", 2, fmt.Sprintf("nodes = 1\npartition = \"debug\"\nprogram = [%q]\n", prog))
	r := rh(t, dir, "submit", p, "--join", jobDir)
	if r.code != 0 {
		t.Fatalf("submit --join: %d\n%s", r.code, r.stderr)
	}
	id := strings.TrimSpace(r.stdout)
	t.Cleanup(func() { rh(t, dir, "cancel", id) })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.WaitForEngines(ctx, 3); err != nil {
		t.Fatalf("the job's engines did not join: %v\n%s", err, rh(t, dir, "status", id).stdout)
	}
	if ids := c.IDs(); !slices.Equal(ids, []int{0, 1, 2}) {
		t.Fatalf("engine ids %v, want [0 1 2]", ids)
	}
	byID := map[int]int{}
	for _, e := range c.Engines() {
		byID[e.ID] = e.PID
	}
	pids := lbPids(t, c, 200)
	for _, e := range []int{1, 2} {
		if !pids[byID[e]] {
			t.Errorf("a load-balanced map of 200 tasks never reached joined engine %d (pid %d): %v", e, byID[e], pids)
		}
	}
	if r := rh(t, dir, "cancel", id); r.code != 0 {
		t.Fatalf("cancel: %+v", r)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !slices.Equal(c.IDs(), []int{0}) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if ids := c.IDs(); !slices.Equal(ids, []int{0}) {
		t.Fatalf("after scancel: engines %v, want [0]", ids)
	}
	if pids := lbPids(t, c, 10); len(pids) != 1 || !pids[byID[0]] {
		t.Fatalf("after scancel the hub's own engine does not serve: %v", pids)
	}
	r = rh(t, dir, "wait", "--timeout", "40s", id)
	if !strings.Contains(r.stdout, "CANCELLED") {
		t.Fatalf("wait after cancel: %+v", r)
	}
	dirs, _ := filepath.Glob(filepath.Join(dir, ".rankhub", "engines-*"))
	if len(dirs) != 1 {
		t.Fatalf("job directories %v", dirs)
	}
	deadline = time.Now().Add(10 * time.Second)
	for endStatus(dirs[0]) == "" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if s := endStatus(dirs[0]); !strings.Contains(s, `"terminated"`) || !strings.Contains(s, hubFile) {
		t.Fatalf("status.json of the engines job: %q", s)
	}
}

// TestPBSJoinScriptRunsEngines renders a PBS engines job with `submit
// --dry-run --join` and runs the script as PBS would (bash, PBS_* set, Open
// MPI's mpiexec): its ranks join the running hub as new engines, and when
// the hub stops, or dies, they end, the script exits 0 and status.json says
// which.
func TestPBSJoinScriptRunsEngines(t *testing.T) {
	mpi := needOpenMPI(t)
	for _, end := range []string{"stop", "kill"} {
		t.Run(end, func(t *testing.T) { pbsJoin(t, mpi, end) })
	}
}

func pbsJoin(t *testing.T, mpi, end string) {
	dir := t.TempDir()
	prog := filepath.Join(bin, "userprog")
	hubDir, ci := startHub(t, dir, "-n", "2", "--", prog)
	hubFile := filepath.Join(hubDir, launcher.ConnFile)
	p := enginesJob(t, dir, "pbs", 2, fmt.Sprintf("nodes = 1\nstarter = \"mpiexec\"\nprogram = [%q]\n", prog))
	r := rh(t, dir, "submit", "--dry-run", "--join", hubDir, p)
	if r.code != 0 {
		t.Fatalf("dry run: %+v", r)
	}
	jobDir := strings.TrimSpace(r.stdout)
	script := filepath.Join(jobDir, "job.pbs")
	text, _ := os.ReadFile(script)
	for _, want := range []string{"#PBS -l select=1:ncpus=2:mpiprocs=2", "export RANKHUB_JOIN=" + hubFile} {
		if !strings.Contains(string(text), want) {
			t.Errorf("script lacks %q:\n%s", want, text)
		}
	}
	cmd := pbsCommand(t, mpi, dir, jobDir, "4343.pbsserver", "engines", 2)
	cmd.Env = append(cmd.Env, "RANKHUB_HEARTBEAT=200ms") // a dead hub is noticed within a second
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	c, err := views.Connect(hubFile)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.WaitForEngines(ctx, 3); err != nil {
		t.Fatalf("the PBS job's engines did not join: %v\n%s", err, out.String())
	}
	dv, _ := c.View(2)
	if v, err := dv.ApplySync("add_ab", 2, 3); err != nil || v != 5 {
		t.Fatalf("add_ab on a joined engine: %v %v", v, err)
	}
	want := "shut its engines down"
	if end == "stop" {
		if r := rh(t, dir, "stop", hubDir); r.code != 0 {
			t.Fatalf("stop: %+v", r)
		}
	} else {
		syscall.Kill(ci.PID, syscall.SIGKILL)
		want = "went away"
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the PBS script: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the PBS engines job did not end when the hub ended (%s)\n%s", end, out.String())
	}
	if s := endStatus(jobDir); !strings.Contains(s, `"completed"`) || !strings.Contains(s, want) {
		t.Errorf("status.json of the engines job: %q", s)
	}
}

// An engines job (--join) has no hub of its own: every rank is an engine,
// so one rank is a valid job, and the job directory of such a job serves
// `status`. The same file without --join is a normal job, whose rank 0 is
// the hub: 1 rank is too few, and the message says why.
func TestJoinJobOfOneRank(t *testing.T) {
	dir := t.TempDir()
	jobDir, _ := startHub(t, dir, "-n", "2")
	p := enginesJob(t, dir, "slurm", 1, "nodes = 1\npartition = \"debug\"\n")
	r := rh(t, dir, "script", p, "--join", jobDir)
	if r.code != 0 || !strings.Contains(r.stdout, "RANKHUB_SIZE=1") {
		t.Fatalf("script --join of 1 rank: %d\n%s\n%s", r.code, r.stderr, r.stdout)
	}
	r = rh(t, dir, "submit", p, "--dry-run", "--join", jobDir)
	if r.code != 0 {
		t.Fatalf("submit --dry-run --join of 1 rank: %d\n%s", r.code, r.stderr)
	}
	if s := rh(t, dir, "status", strings.TrimSpace(r.stdout)); s.code != 0 || strings.Contains(s.stderr, "too few") {
		t.Fatalf("status of the engines job: %+v", s)
	}
	for _, args := range [][]string{{"script", p}, {"validate", p}} {
		if r := rh(t, dir, args...); r.code == 0 || !strings.Contains(r.stderr, "1 is too few: a job needs at least 2 ranks (rank 0 is the hub)") {
			t.Errorf("%s of 1 rank without --join: %d\n%s", args[0], r.code, r.stderr)
		}
	}
	p = enginesJob(t, dir, "slurm", 0, "nodes = 1\n")
	if r := rh(t, dir, "script", p, "--join", jobDir); r.code == 0 || !strings.Contains(r.stderr, "0 is too few: an engines job (--join) needs at least 1 rank") {
		t.Errorf("script --join of 0 ranks: %d\n%s", r.code, r.stderr)
	}
}

package rankhub_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rankhub/rankhub"
	"github.com/rankhub/rankhub/jobdir"
	"github.com/rankhub/rankhub/launcher"
	"github.com/rankhub/rankhub/results"
)

// tiny is a sweep function whose outputs depend only on its parameters and
// seed; it sleeps "ms" milliseconds and records its pid for kill tests.
func tiny(p rankhub.Params) (map[string]float64, error) {
	if ms := p.Int("ms"); ms > 0 {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	if dir := os.Getenv(launcher.EnvJobDir); dir != "" {
		os.WriteFile(filepath.Join(dir, "pid-"+strconv.Itoa(os.Getpid())), nil, 0o644)
	}
	x := p.Float("x")
	if x < 0 {
		return nil, fmt.Errorf("negative x %v", x)
	}
	u := float64(p.Seed()>>11) / (1 << 53)
	return map[string]float64{"y": x * u, "u": u}, nil
}

func sweepJob(n, ms, flushRows int, extra string) string {
	return fmt.Sprintf(`[job]
name = "tinysweep"
ranks = 4
seed = 99
%s
[task]
function = "tiny"
outputs = ["y", "u"]

[sweep]
x = { start = 0, stop = %d, step = 1 }
ms = [%d]
replicates = 1

[results]
path = "out.arrow"
flush_rows = %d
flush_interval = "100ms"
`, extra, n-1, ms, flushRows)
}

// runSweep starts the ranks of this test binary on a sweep job in dir.
func runSweepRanks(t *testing.T, ctx context.Context, dir, job string, ranks int, env map[string]string) chan error {
	t.Helper()
	os.WriteFile(filepath.Join(dir, "job.toml"), []byte(job), 0o644)
	self, _ := os.Executable()
	e := map[string]string{roleEnv: "sweep", "RANKHUB_START_TIMEOUT": "30s"}
	for k, v := range env {
		e[k] = v
	}
	done := make(chan error, 1)
	go func() {
		done <- launcher.RunLocal(ctx, launcher.LocalConfig{
			Ranks: ranks, Command: []string{self, "-test.run=^$"}, JobDir: dir, Workdir: dir, JobID: "t",
			Env: e, AbortOnError: false, Heartbeat: 200 * time.Millisecond, Grace: 3 * time.Second,
			Stdout: testWriter{t}, Stderr: testWriter{t},
		})
	}()
	return done
}

func init() { drivers["sweep"] = nil } // the default driver: the job's sweep

// checkRows opens the result file and checks every task 0..n-1 is there once.
func checkRows(t *testing.T, path string, n int) *results.Reader {
	t.Helper()
	r, err := results.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	for _, row := range r.Rows() {
		seen[row.Task]++
		if row.Err != "" {
			t.Errorf("task %d failed: %s", row.Task, row.Err)
		}
	}
	for i := 0; i < n; i++ {
		if seen[i] != 1 {
			t.Errorf("task %d appears %d times", i, seen[i])
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct tasks, want %d", len(seen), n)
	}
	return r
}

func waitRows(t *testing.T, dir string, atLeast int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(filepath.Join(dir, rankhub.ProgressFile))
		if i := strings.Index(string(b), `"done":`); i >= 0 {
			n, _ := strconv.Atoi(strings.SplitN(string(b[i+7:]), ",", 2)[0])
			if n >= atLeast {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("fewer than %d rows after %v", atLeast, timeout)
}

func TestSweepCompletesAndSeedsIgnoreRankCount(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var prev map[int][2]float64
	for _, ranks := range []int{2, 4} {
		dir := t.TempDir()
		if err := <-runSweepRanks(t, ctx, dir, sweepJob(300, 0, 64, ""), ranks, nil); err != nil {
			t.Fatalf("%d ranks: %v", ranks, err)
		}
		r := checkRows(t, filepath.Join(dir, "out.arrow"), 300)
		if !r.Complete() {
			t.Fatal("file not complete")
		}
		st, _ := r.Status()
		if st.State != "completed" || st.Rows != 300 {
			t.Fatalf("status %+v", st)
		}
		got := map[int][2]float64{}
		for _, row := range r.Rows() {
			got[row.Task] = [2]float64{row.Outputs[0], row.Outputs[1]}
		}
		if prev != nil {
			for k, v := range got {
				if math.Float64bits(v[0]) != math.Float64bits(prev[k][0]) || math.Float64bits(v[1]) != math.Float64bits(prev[k][1]) {
					t.Fatalf("task %d: %v with 4 ranks, %v with 2", k, v, prev[k])
				}
			}
		}
		prev = got
		if p := r.Provenance(); !strings.Contains(p.JobText, `function = "tiny"`) || p.ProgramSHA256 == "" || p.Seed != 99 {
			t.Fatalf("provenance %+v", p)
		}
	}
}

func TestSweepSurvivesKilledEngine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	const n = 400
	done := runSweepRanks(t, ctx, dir, sweepJob(n, 5, 16, ""), 4, nil)
	waitRows(t, dir, 60, 30*time.Second)
	ci, _ := os.ReadFile(filepath.Join(dir, launcher.ConnFile))
	pids, _ := filepath.Glob(filepath.Join(dir, "pid-*"))
	var victim int
	for _, p := range pids {
		pid, _ := strconv.Atoi(strings.TrimPrefix(filepath.Base(p), "pid-"))
		if !strings.Contains(string(ci), fmt.Sprintf(`"pid": %d`, pid)) {
			victim = pid
			break
		}
	}
	if victim == 0 {
		t.Fatal("no engine pid recorded")
	}
	syscall.Kill(victim, syscall.SIGKILL)
	err := <-done
	var re *launcher.RunError
	if err != nil && (!errors.As(err, &re) || re.First.Signal != "SIGKILL") {
		t.Fatalf("run: %v", err)
	}
	// The hub completes the sweep and ends node-lost (jobdir's table): an
	// engine was lost and its tasks re-run.
	for _, e := range re.All {
		if e.Rank == 0 && (e.Status != jobdir.NodeLost.ExitCode() || e.Signal != "") {
			t.Fatalf("the hub failed: %+v", e)
		}
	}
	checkRows(t, filepath.Join(dir, "out.arrow"), n)
}

func TestSweepKilledHubRecoversAndResumes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	const n = 400
	job := sweepJob(n, 5, 8, "")
	done := runSweepRanks(t, ctx, dir, job, 4, nil)
	waitRows(t, dir, 100, 30*time.Second)
	ci, err := os.ReadFile(filepath.Join(dir, launcher.ConnFile))
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(ci), `"pid": `)
	hub, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(ci[i+7:]), ",", 2)[0]))
	syscall.Kill(hub, syscall.SIGKILL)
	<-done
	path := filepath.Join(dir, "out.arrow")
	r, err := results.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	before := r.NumRows()
	r.Close()
	if before == 0 || before >= n {
		t.Fatalf("%d rows before the resume", before)
	}
	if _, err := results.Recover(path); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, launcher.ConnFile))
	if err := <-runSweepRanks(t, ctx, dir, job, 3, map[string]string{rankhub.EnvResume: "1"}); err != nil {
		t.Fatalf("resume: %v", err)
	}
	r = checkRows(t, path, n)
	t.Logf("%d rows survived the killed hub; the resume ran the other %d", before, n-before)
	if p := r.Provenance(); len(p.Resumes) != 1 {
		t.Fatalf("resumes recorded: %+v", p.Resumes)
	}
	// A changed job file is refused unless forced.
	changed := strings.Replace(job, `seed = 99`, `seed = 100`, 1)
	err = <-runSweepRanks(t, ctx, dir, changed, 2, map[string]string{rankhub.EnvResume: "1"})
	if err == nil {
		t.Fatal("resume with a different job was accepted")
	}
	b, _ := os.ReadFile(filepath.Join(dir, "rank-0.err"))
	if !strings.Contains(string(b), "changed what the tasks already in the file mean") || !strings.Contains(string(b), `job.seed: "99" → "100"`) {
		t.Fatalf("refusal does not say why:\n%s", b)
	}
}

func TestSweepSIGTERMClosesFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	rctx, stop := context.WithCancel(ctx)
	done := runSweepRanks(t, rctx, dir, sweepJob(2000, 5, 1024, ""), 3, nil)
	waitRows(t, dir, 50, 30*time.Second)
	stop() // SIGTERM to every rank, as scancel does
	<-done
	r, err := results.Open(filepath.Join(dir, "out.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	st, ok := r.Status()
	if !r.Complete() || !ok || st.State != "interrupted" || st.Rows < 50 || st.Rows != r.NumRows() {
		t.Fatalf("complete %v, status %+v (ok %v), rows %d", r.Complete(), st, ok, r.NumRows())
	}
	end, _ := os.ReadFile(filepath.Join(dir, launcher.EndStatusFile))
	if !strings.Contains(string(end), `"signalled"`) {
		t.Fatalf("end status %s", end)
	}
}

func TestSweepFailsClearlyWhenEveryEngineDies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	done := runSweepRanks(t, ctx, dir, sweepJob(2000, 5, 8, ""), 3, nil)
	waitRows(t, dir, 40, 30*time.Second)
	ci, _ := os.ReadFile(filepath.Join(dir, launcher.ConnFile))
	pids, _ := filepath.Glob(filepath.Join(dir, "pid-*"))
	for _, p := range pids {
		pid, _ := strconv.Atoi(strings.TrimPrefix(filepath.Base(p), "pid-"))
		if !strings.Contains(string(ci), fmt.Sprintf(`"pid": %d`, pid)) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the hub kept waiting with no engine left")
	}
	end, _ := os.ReadFile(filepath.Join(dir, launcher.EndStatusFile))
	if !strings.Contains(string(end), `"failed"`) || !strings.Contains(string(end), "every engine died") {
		t.Fatalf("end status %s", end)
	}
	// Fewer tasks ran than asked: the outcome is incomplete (exit 4).
	if st, err := (jobdir.Dir{Path: dir}).ReadStatus(); err != nil || st.Outcome != jobdir.Incomplete {
		t.Fatalf("status.json: %+v %v", st, err)
	}
	r, err := results.Open(filepath.Join(dir, "out.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	st, _ := r.Status()
	if !r.Complete() || st.State != "failed" || r.NumRows() < 40 {
		t.Fatalf("results: complete %v, status %+v, %d rows", r.Complete(), st, r.NumRows())
	}
}

// One engine rank is stopped (its command's process group gets SIGTERM
// first, the rank 300 ms later) while the hub and the other engine go on:
// the interrupted task reaches a driver that is not stopping. It must not
// become a failed row (the engine's tasks stop at its signal, not when the
// lingering engine is shut down seconds later); its chunk runs again on the
// other engine, and every task has its row: the job ends completed, or
// node-lost when the engine left before the end.
func TestSweepStoppedEngineTaskRunsElsewhere(t *testing.T) { stopEngineMidSweep(t, 20, 0, 1) }

// One engine rank is stopped part way through a chunk (its command's
// process group gets SIGTERM first, the rank 300 ms later) while the hub and
// the other engine go on: the chunk's answer comes back with the tasks the
// stop interrupted, and those run on the other engine in the same run.
// Every task has its row once, none failed, and the job completes (or is
// node-lost: the engine left before the end), not incomplete.
func TestSweepEngineStoppedMidChunkRerunsItsTasks(t *testing.T) { stopEngineMidSweep(t, 400, 250, 50) }

// stopEngineMidSweep runs a sweep of n shell tasks on 2 engines; task
// stall's command waits, and gets SIGTERM, its engine rank 300 ms later,
// while the hub and the other engine go on. Every task must have its row
// once, none failed or left interrupted, and the job complete (or be
// node-lost: the engine left before the end).
func stopEngineMidSweep(t *testing.T, n, stall, flushRows int) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	job := strings.NewReplacer(`function = "tiny"`, fmt.Sprintf(`command = 'if [ {x} -eq %d ] && [ ! -e pid ]; then echo $$ > pid; sleep 30; fi; echo {x} 1'`, stall),
		"ranks = 4", "ranks = 3").Replace(sweepJob(n, 0, flushRows, ""))
	done := runSweepRanks(t, ctx, dir, job, 3, nil)
	sh, engine := waitStalledTask(t, filepath.Join(dir, "pid"))
	syscall.Kill(-sh, syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	syscall.Kill(engine, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the run did not end")
	}
	checkRows(t, filepath.Join(dir, "out.arrow"), n).Close()
	if st, err := (jobdir.Dir{Path: dir}).ReadStatus(); err != nil || st.Outcome != jobdir.Completed && st.Outcome != jobdir.NodeLost {
		t.Fatalf("status.json: %+v %v", st, err)
	}
	if p, err := (jobdir.Dir{Path: dir}).ReadProgress(); err != nil || p.Failed != 0 || p.Interrupted != 0 {
		t.Fatalf("progress.json: %+v %v", p, err)
	}
}

// waitStalledTask waits for the shell of a task to write its pid to path,
// and returns it and its engine rank's pid.
func waitStalledTask(t *testing.T, path string) (sh, engine int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); sh == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the task did not start")
		}
		b, _ := os.ReadFile(path)
		sh, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", sh))
	if err != nil {
		t.Fatal(err)
	}
	engine, _ = strconv.Atoi(strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))[1])
	return sh, engine
}

package sweep

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/results"
	"github.com/rankhub/rankhub/views"
)

// waitPid waits until the command of a running task wrote its pid (its
// process group: the engine starts each command in its own) to path.
func waitPid(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(path)
		if f := strings.Fields(string(b)); len(f) > 0 {
			if pid, err := strconv.Atoi(f[len(f)-1]); err == nil {
				return pid
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no pid in %s", path)
	return 0
}

// stopMidTask runs pairs of job on an engine whose stop comes as a
// scheduler's does: once the first command wrote its pid to pids, its
// process group gets SIGTERM (SLURM's signal reaches every process of the
// step before the engine's handler has run), the engine 300 ms later.
func stopMidTask(t *testing.T, job *jobs.Job, pids string, pairs []int64) ChunkResult {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan ChunkResult, 1)
	go func() { got <- ExecChunk(&views.Context{Context: ctx}, job, pairs) }()
	pid := waitPid(t, pids)
	syscall.Kill(-pid, syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	cancel()
	select {
	case res := <-got:
		return res
	case <-time.After(10 * time.Second):
		t.Fatal("the chunk did not return after the engine stopped")
	}
	return ChunkResult{}
}

// A scheduler's stop (scancel, a requeue, the walltime warning) signals
// every process of the step: a task's command may die of the SIGTERM
// before the engine's own context ends. Those tasks, and the ones after
// them in the chunk, are interrupted (no row, run again on --resume), never
// failed rows, and they are not retried while the engine stops.
func TestStoppedEngineInterruptsTasks(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	job := engineJob(t, "command = \"echo $$ >> "+pids+"; sleep 5; echo {x}\"\nretries = 2")
	res := stopMidTask(t, job, pids, []int64{0, 0, 1, 0, 1, 1})
	for i := range res.Index {
		if !res.Interrupted(i) {
			t.Errorf("task %d: not interrupted: exit %d, error %q", i, res.Exit[i], res.Err[i])
		}
	}
	// The first attempt dies of the SIGTERM; a retry may start before the
	// engine's stop (the engine does not wait per task), none after it.
	if b, _ := os.ReadFile(pids); len(strings.Fields(string(b))) > 2 {
		t.Errorf("the task ran %d times while the engine stopped (retries = 2): pids %q", len(strings.Fields(string(b))), b)
	}
	// Such a chunk writes no row, and as an engine's answer it is an
	// error, so that the hub runs it on another engine while the job
	// goes on.
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := RunChunk(&views.Context{Context: stopped}, job, []int64{0, 0, 1, 0}); err == nil || !strings.Contains(err.Error(), "is stopping") {
		t.Errorf("RunChunk on a stopped engine: %v", err)
	}
	w := newTestWriter(t, job)
	if err := WriteChunk(w, job, res, 0); err != nil {
		t.Fatal(err)
	}
	if n := closeTestWriter(t, w); n != 0 {
		t.Fatalf("%d rows written for interrupted tasks", n)
	}
}

// A simulation that crashes (SIGSEGV), is killed by the OOM killer
// (SIGKILL) or kills itself (kill -TERM $$) while the engine is not
// stopping fails its row, with a message that names the signal.
func TestCrashWhileNotStoppingIsAFailedRow(t *testing.T) {
	for sig, want := range map[string]string{"SEGV": "segmentation fault", "KILL": "killed", "TERM": "terminated"} {
		t.Run(sig, func(t *testing.T) {
			t.Parallel()
			job := engineJob(t, `command = "kill -`+sig+` $$; echo {x}"`)
			res := ExecChunk(&views.Context{Context: context.Background()}, job, []int64{0, 0})
			if res.Interrupted(0) {
				t.Fatalf("interrupted while the engine was not stopping: %q", res.Err[0])
			}
			if !strings.Contains(res.Err[0], want) || !strings.Contains(res.Err[0], "SIG"+sig) || !strings.Contains(res.Err[0], "not sent by rankhub") {
				t.Fatalf("error %q, want the signal named (%s, SIG%s) and that rankhub did not send it", res.Err[0], want, sig)
			}
		})
	}
}

// Crashes while the engine runs on cost the chunk one wait for the
// engine's stop (stopGrace), not one per task: 5 tasks that die of SIGSEGV
// take about 2 s, not 10 s. An exit status of 129-192 is not a signal:
// the message may guess one, never assert it.
func TestCrashesWaitOncePerChunk(t *testing.T) {
	job, err := jobs.Parse("e.toml", []byte("[job]\nranks = 2\nseed = 5\n[task]\n"+
		"command = \"if [ {x} = 1.5 ]; then exit 143; fi; kill -SEGV $$; echo {x}\"\noutputs = [\"y\"]\n[sweep]\nx = [1.5, 2.5]\nreplicates = 5\n"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background()) // an engine that can stop, and does not
	defer cancel()
	start := time.Now()
	res := ExecChunk(&views.Context{Context: ctx}, job, []int64{1, 0, 1, 1, 1, 2, 1, 3, 1, 4})
	took := time.Since(start)
	if took > 6*time.Second {
		t.Errorf("5 crashing tasks took %v: the engine waited for its stop per task", took)
	}
	for i := range res.Index {
		if res.Interrupted(i) || !strings.Contains(res.Err[i], "SIGSEGV") {
			t.Errorf("task %d: exit %d, error %q, want a failed row naming SIGSEGV", i, res.Exit[i], res.Err[i])
		}
	}
	res = ExecChunk(nil, job, []int64{0, 0})
	if res.Exit[0] != 143 || strings.Contains(res.Err[0], "signal:") || !strings.Contains(res.Err[0], "128+SIGTERM?") {
		t.Errorf("exit 143 of a shell: exit %d, error %q; want it reported as an exit status (a signal only guessed)", res.Exit[0], res.Err[0])
	}
	t.Logf("5 crashing tasks in one chunk: %v", took)
}

// A command that handles the scheduler's SIGTERM and exits 1 (a trap, a
// Python handler calling sys.exit(1), an mpirun wrapper) before the
// engine's own stop is interrupted, not a failed row (failed rows are never
// rerun by --resume).
func TestTrappedStopIsInterrupted(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	job := engineJob(t, "command = \"trap 'exit 1' TERM; echo $$ >> "+pids+"; sleep 5 & wait\"\nretries = 0")
	res := stopMidTask(t, job, pids, []int64{0, 0})
	if !res.Interrupted(0) || !strings.HasPrefix(res.Err[0], "interrupted:") {
		t.Fatalf("exit %d, error %q: want interrupted", res.Exit[0], res.Err[0])
	}
}

// waitStarted hears from sweep_test.wait when it waits for its Context.
var waitStarted = make(chan struct{}, 1)

func init() {
	views.MustRegister("sweep_test.wait", func(c *views.Context, p map[string]any) (map[string]float64, error) {
		if p["x"].(float64) > 2 {
			return nil, errors.New("x too large")
		}
		waitStarted <- struct{}{}
		<-c.Done()
		return nil, c.Err()
	})
}

// A function that watches its Context and returns when the engine stops
// is interrupted, not failed; one that ends with an error while the engine
// runs on is a failed row.
func TestStoppedFunctionTaskIsInterrupted(t *testing.T) {
	job := engineJob(t, `function = "sweep_test.wait"`)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan ChunkResult, 1)
	go func() { got <- ExecChunk(&views.Context{Context: ctx}, job, []int64{0, 0, 0, 1}) }()
	<-waitStarted
	cancel()
	res := <-got
	if !res.Interrupted(0) || !res.Interrupted(1) {
		t.Fatalf("exit %v, errors %q", res.Exit, res.Err)
	}
	res = ExecChunk(&views.Context{Context: context.Background()}, job, []int64{1, 0})
	if res.Interrupted(0) || res.Err[0] != "x too large" {
		t.Fatalf("exit %v, error %q", res.Exit, res.Err)
	}
}

// newTestWriter is a result file for job in a temporary directory.
func newTestWriter(t *testing.T, job *jobs.Job) *results.Writer {
	t.Helper()
	w, err := results.Create(filepath.Join(t.TempDir(), "t.arrow"), job, results.Provenance{})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// closeTestWriter closes w and returns how many rows its file holds.
func closeTestWriter(t *testing.T, w *results.Writer) int {
	t.Helper()
	return len(closeTestRows(t, w))
}

// closeTestRows closes w and returns its file's rows.
func closeTestRows(t *testing.T, w *results.Writer) []results.Row {
	t.Helper()
	if err := w.Close("completed"); err != nil {
		t.Fatal(err)
	}
	r, err := results.Open(w.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return r.Rows()
}

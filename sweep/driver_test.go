package sweep

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/views"
	"github.com/rs/zerolog"
)

// driverJob is the job the engines of driverCluster run chunks of. The
// first chunk of at least 3 tasks runs on an engine that stops (its
// Context ends) while its first task runs: that task answers, the rest of
// the chunk is interrupted (counted in interrupted).
var driverJob struct {
	job         *jobs.Job
	stopped     atomic.Bool
	fromRank    atomic.Int64 // ranks from this one on (when > 0) are stopping: they run nothing
	stopping    atomic.Pointer[stoppingChunk]
	interrupted atomic.Int64
	chunks      atomic.Int64 // chunks the engines ran
}

type stoppingChunk struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func init() {
	views.MustRegister("sweep_test.x", func(c *views.Context, p map[string]any) (map[string]float64, error) {
		if s := driverJob.stopping.Load(); s != nil && c.Context == s.ctx {
			s.cancel() // the engine's SIGTERM, while this task runs
		}
		return map[string]float64{"y": float64(p["x"].(int64))}, nil
	})
	views.MustRegister(BuiltinName, func(c *views.Context, pairs []int64) (ChunkResult, error) {
		if r := driverJob.fromRank.Load(); r > 0 && int64(c.Rank) >= r {
			stopping, cancel := withStop(c)
			cancel()
			return RunChunk(stopping, driverJob.job, pairs)
		}
		if len(pairs) >= 6 && driverJob.stopped.CompareAndSwap(false, true) {
			stopping, cancel := withStop(c)
			defer cancel()
			c = stopping
			driverJob.stopping.Store(&stoppingChunk{c.Context, cancel})
		}
		// An engine's answer with interrupted tasks (RunChunk would
		// turn a chunk with no answer at all into an error).
		driverJob.chunks.Add(1)
		res := ExecChunk(c, driverJob.job, pairs)
		driverJob.interrupted.Add(int64(len(res.Index) - res.Ran()))
		return res, nil
	})
	views.MustRegister("sweep_test.stopped_answer", func(c *views.Context) (ChunkResult, error) {
		stopping, cancel := withStop(c)
		cancel()
		return ExecChunk(stopping, driverJob.job, []int64{0, 0, 1, 0}), nil
	})
}

// withStop is c with a Context that cancel ends: the engine's stop.
func withStop(c *views.Context) (*views.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(c.Context)
	stopping := *c
	stopping.Context = ctx
	return &stopping, cancel
}

// driverCluster is an in-process hub with n engines over a Unix socket.
func driverCluster(t *testing.T, n int) *views.Client {
	cl, _ := driverEngines(t, n)
	return cl
}

// driverEngines is driverCluster with a function per engine that makes it
// leave (engine i is rank i+1).
func driverEngines(t *testing.T, n int) (*views.Client, []context.CancelFunc) {
	t.Helper()
	key, _ := comm.NewKey()
	ln, err := comm.Listen(comm.ListenConfig{Unix: fmt.Sprintf("@rankhub-sweep-test-%d", time.Now().UnixNano()), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	h := views.NewHub(views.HubConfig{Host: "testhost"})
	go h.Serve(ln)
	ctx, cancel := context.WithCancel(context.Background())
	leave := make([]context.CancelFunc, n)
	for i := range n {
		c, err := comm.Dial(ctx, "unix", ln.UnixAddr(), key, comm.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ectx, ecancel := context.WithCancel(ctx)
		leave[i] = ecancel
		go views.ServeEngine(ectx, c, views.EngineConfig{Rank: i + 1, Host: fmt.Sprintf("node%d", i+1)})
	}
	cl := views.NewClient(h)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := cl.WaitForEngines(wctx, n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Shutdown(2 * time.Second)
		ln.Close()
		cancel()
	})
	return cl, leave
}

func driverTestJob(t *testing.T) *jobs.Job {
	t.Helper()
	job, err := jobs.Parse("d.toml", []byte("[job]\nranks = 4\nseed = 5\n[task]\nfunction = \"sweep_test.x\"\noutputs = [\"y\"]\n"+
		"[sweep]\nx = { start = 0, stop = 39, step = 1 }\n[results]\npath = \"d.arrow\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	return job
}

// One engine of several stops part way through a chunk while the driver
// goes on (a joined engine's Ctrl-C, one node's stop): the tasks it
// interrupted run again on the other engines in the same run. The job
// completes with every task's row exactly once and none failed.
func TestDriveRerunsTasksOfAStoppedEngine(t *testing.T) {
	job := driverTestJob(t)
	driverJob.job = job
	driverJob.stopped.Store(false)
	driverJob.stopping.Store(nil)
	driverJob.interrupted.Store(0)
	driverJob.fromRank.Store(0)
	cl := driverCluster(t, 3)
	w := newTestWriter(t, job)
	var last Progress
	err := Drive(context.Background(), cl, job, w, NewPlanner(job, nil), 0, func(p Progress) error { last = p; return nil }, zerolog.Nop())
	if err != nil {
		t.Fatalf("Drive: %v (%T), want every task done", err, err)
	}
	if driverJob.interrupted.Load() == 0 {
		t.Fatal("no task was interrupted: the test stopped no engine mid-chunk")
	}
	seen := map[int]int{}
	for _, row := range closeTestRows(t, w) {
		seen[row.Task]++
		if row.Err != "" {
			t.Errorf("task %d: failed row %q", row.Task, row.Err)
		}
	}
	for task := range 40 {
		if seen[task] != 1 {
			t.Errorf("task %d has %d rows, want 1", task, seen[task])
		}
	}
	if last.Failed != 0 || last.Done != 40 || last.Interrupted != 0 {
		t.Fatalf("progress %+v, want 40 done, none failed or interrupted", last)
	}
	t.Logf("%d task(s) interrupted and run again", driverJob.interrupted.Load())
}

// Several engines stop while the hub and another engine go on: they are
// idle (they run nothing) and answer at once, so the hub's scheduler gives
// them chunk after chunk, whose retries burn in milliseconds. Those chunks
// run again once the stopping engines have left: every task gets its row
// in the same run.
func TestDriveOutlivesEnginesThatStop(t *testing.T) {
	job := driverTestJob(t)
	driverJob.job = job
	driverJob.stopped.Store(true) // no stop mid-chunk
	driverJob.fromRank.Store(2)
	defer driverJob.fromRank.Store(0)
	cl, leave := driverEngines(t, 6) // ranks 2-6 stop: more than the 3 retries + 1
	go func() {
		// They leave as a stopping engine does (lingerOnSignal), later.
		time.Sleep(time.Second)
		for _, f := range leave[1:] {
			f()
		}
	}()
	w := newTestWriter(t, job)
	var last Progress
	err := Drive(context.Background(), cl, job, w, NewPlanner(job, nil), 0, func(p Progress) error { last = p; return nil }, zerolog.Nop())
	if err != nil {
		t.Fatalf("Drive: %v (%T), want every task done", err, err)
	}
	seen := map[int]int{}
	for _, row := range closeTestRows(t, w) {
		seen[row.Task]++
	}
	for task := range 40 {
		if seen[task] != 1 {
			t.Errorf("task %d has %d rows, want 1", task, seen[task])
		}
	}
	if last.Failed != 0 || last.Done != 40 {
		t.Fatalf("progress %+v, want 40 done, none failed", last)
	}
}

// A failing region of the grid: every chunk with a recent failure waits
// for its engine's stop (stopGrace) once, and the chunks queued behind it
// as long. That wait is no cost of the tasks: chunks must still grow, not
// stay at one task per stopGrace (200 failing tasks took 200 s so).
func TestDriveFailingTasksStillGetLargeChunks(t *testing.T) {
	grace := stopGrace
	stopGrace = 100 * time.Millisecond // before the engines start
	t.Cleanup(func() { stopGrace = grace })
	job, err := jobs.Parse("d.toml", []byte("[job]\nranks = 3\nseed = 5\n[task]\ncommand = \"exit 3\"\noutputs = [\"y\"]\n"+
		"[sweep]\nx = { start = 0, stop = 199, step = 1 }\n[results]\npath = \"d.arrow\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	driverJob.job = job
	driverJob.stopped.Store(true)
	driverJob.fromRank.Store(0)
	driverJob.chunks.Store(0)
	cl := driverCluster(t, 2)
	w := newTestWriter(t, job)
	start := time.Now()
	err = Drive(context.Background(), cl, job, w, NewPlanner(job, nil), 0, nil, zerolog.Nop())
	var tf *TasksFailedError
	if !errors.As(err, &tf) || tf.Failed != 200 {
		t.Fatalf("Drive: %v, want 200 failed rows", err)
	}
	if n := closeTestWriter(t, w); n != 200 {
		t.Fatalf("%d rows", n)
	}
	if c := driverJob.chunks.Load(); c > 100 {
		t.Errorf("200 failing tasks went out in %d chunks: the engines' stop grace was counted as the tasks' cost", c)
	}
	t.Logf("200 failing tasks: %d chunks, %v", driverJob.chunks.Load(), time.Since(start))
}

// chunkResultV1 is ChunkResult as a driver of rankhub before the stop work
// knows it (its codec refuses fields it does not have).
type chunkResultV1 struct {
	Index                    []int64
	Seed                     []uint64
	Started                  []int64
	Finished                 []int64
	Attempt                  []int64
	Exit                     []int64
	Err                      []string
	Out                      []float64
	Rank                     int
	Host                     string
	Stdout, Stderr           []string
	StdoutBytes, StderrBytes []int64
	Table                    []float64
	TableLen                 []int64
}

// An engine of this rankhub may answer a driver of the previous one (engines
// join a running hub): its answer, interrupted tasks included, decodes into
// the previous ChunkResult through the wire, and those tasks read as failed
// rows saying they were interrupted (what that driver wrote before).
func TestChunkResultDecodesInThePreviousDriver(t *testing.T) {
	driverJob.job = driverTestJob(t)
	cl := driverCluster(t, 1)
	lb, err := cl.LoadBalancedView()
	if err != nil {
		t.Fatal(err)
	}
	ar, err := lb.Apply("sweep_test.stopped_answer")
	if err != nil {
		t.Fatal(err)
	}
	v, err := ar.Get(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	old, err := views.As[chunkResultV1](v)
	if err != nil {
		t.Fatalf("the previous driver cannot read the answer: %v", err)
	}
	for i := range old.Index {
		if old.Exit[i] != ExitInterrupted || !strings.HasPrefix(old.Err[i], "interrupted:") {
			t.Errorf("task %d: exit %d, error %q", i, old.Exit[i], old.Err[i])
		}
	}
	cur, err := views.As[ChunkResult](v)
	if err != nil || cur.Ran() != 0 || !cur.Interrupted(0) {
		t.Fatalf("this driver: %+v, %v", cur, err)
	}
}

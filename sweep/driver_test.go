package sweep

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/views"
	"github.com/rs/zerolog"
)

// driverJob is the job the engines of driverCluster run chunks of; the
// chunks with a task of point stopAt run on an engine that is stopping.
var driverJob struct {
	job    *jobs.Job
	stopAt int64
}

func init() {
	views.MustRegister("sweep_test.x", func(p map[string]any) (map[string]float64, error) {
		return map[string]float64{"y": float64(p["x"].(int64))}, nil
	})
	views.MustRegister(BuiltinName, func(c *views.Context, pairs []int64) (ChunkResult, error) {
		for i := 0; i < len(pairs); i += 2 {
			if pairs[i] == driverJob.stopAt {
				// This engine stops (SIGTERM) while the chunk runs;
				// its answer still reaches the driver.
				ctx, cancel := context.WithCancel(c.Context)
				cancel()
				stopping := *c
				stopping.Context = ctx
				c = &stopping
			}
		}
		// An engine's answer with interrupted tasks (RunChunk would
		// turn a chunk with no answer at all into an error).
		return ExecChunk(c, driverJob.job, pairs), nil
	})
}

// driverCluster is an in-process hub with n engines over a Unix socket.
func driverCluster(t *testing.T, n int) *views.Client {
	t.Helper()
	key, _ := comm.NewKey()
	ln, err := comm.Listen(comm.ListenConfig{Unix: fmt.Sprintf("@rankhub-sweep-test-%d", time.Now().UnixNano()), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	h := views.NewHub(views.HubConfig{Host: "testhost"})
	go h.Serve(ln)
	ctx, cancel := context.WithCancel(context.Background())
	for i := range n {
		c, err := comm.Dial(ctx, "unix", ln.UnixAddr(), key, comm.Options{})
		if err != nil {
			t.Fatal(err)
		}
		go views.ServeEngine(ctx, c, views.EngineConfig{Rank: i + 1, Host: fmt.Sprintf("node%d", i+1)})
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
	return cl
}

// A chunk whose engine was stopping reaches the driver before the driver's
// own stop: the tasks that ran get their rows, the interrupted ones none
// (they stay for --resume), and Drive says incomplete, not tasks failed.
func TestDriveLeavesInterruptedTasksForResume(t *testing.T) {
	job, err := jobs.Parse("d.toml", []byte("[job]\nranks = 3\nseed = 5\n[task]\nfunction = \"sweep_test.x\"\noutputs = [\"y\"]\n"+
		"[sweep]\nx = { start = 0, stop = 39, step = 1 }\n[results]\npath = \"d.arrow\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	driverJob.job, driverJob.stopAt = job, 17
	cl := driverCluster(t, 2)
	w := newTestWriter(t, job)
	var last Progress
	err = Drive(context.Background(), cl, job, w, NewPlanner(job, nil), 0, func(p Progress) error { last = p; return nil }, zerolog.Nop())
	var ic *IncompleteError
	if !errors.As(err, &ic) || ic.Done >= 40 || ic.Wanted != 40 {
		t.Fatalf("Drive: %v (%T), want an IncompleteError with fewer than 40 of 40 done", err, err)
	}
	n := closeTestWriter(t, w)
	if n != ic.Done || n == 0 {
		t.Fatalf("%d rows, Drive says %d done", n, ic.Done)
	}
	if last.Failed != 0 || last.Done != n {
		t.Fatalf("progress %+v, want %d done and none failed", last, n)
	}
	t.Logf("%v", err)
}

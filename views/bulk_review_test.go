package views

import (
	"runtime"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
)

// Regression tests from a review of the bulk path (the scenarios that broke
// its first two versions).

func init() {
	MustRegister("bulk_sum", func(a *array.Float64) float64 {
		s := 0.0
		for _, x := range a.Float64Values() {
			s += x
		}
		return s
	})
}

// A pulled array (aliasing the engine's arena) passed to a load-balanced
// task that waits in the hub: the task's payload points into the arena, so
// the task must keep the array reachable until it is sent, even when the
// caller dropped it and purged the pull.
// A pulled array (aliasing the engine's arena) passed to a load-balanced
// task that waits in the hub: the task's payload points into the arena, so
// the task must keep the array reachable until it is sent, even when the
// caller dropped it and purged the pull.
func TestBulkReviewLBTaskPayloadOutlivesPulledArray(t *testing.T) {
	cl, as := meshCluster(t, 1)
	dv, _ := cl.View(0)
	const n = 1 << 18
	if err := dv.Set("x", constArray(n, 1)); err != nil {
		t.Fatal(err)
	}
	if err := dv.Set("y", constArray(n, -7)); err != nil {
		t.Fatal(err)
	}
	x, err := dv.Get("x")
	if err != nil {
		t.Fatal(err)
	}
	if as[1].InUse() == 0 {
		t.Fatal("the pull did not use the engine's arena")
	}
	slow, _ := dv.Apply("bulk_sleep", 300)
	lb, _ := cl.LoadBalancedView()
	ar, err := lb.With(TaskOptions{After: Dependency{MsgIDs: slow.MsgIDs()}}).Apply("bulk_sum", x)
	if err != nil {
		t.Fatal(err)
	}
	x = nil
	if _, err := cl.PurgeAll(); err != nil { // the pull is done: purged; slow and ar are kept
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := dv.Get("y"); err != nil { // the engine stages y: on x's old range
		t.Fatal(err)
	}
	v, err := ar.Get(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if v.(float64) != n {
		t.Fatalf("sum over x (all 1) = %v, want %d", v, n)
	}
	runtime.KeepAlive(slow)
}

// While the engine's queue never empties (results flushed by the timer),
// rebound arrays must still go back between tasks.
func TestBulkReviewDroppedGrowsWhileQueueBusy(t *testing.T) {
	cl, as := meshCluster(t, 1)
	dv, _ := cl.View(0)
	const n = 1 << 18 // 2 MiB
	before := as[0].InUse()
	const steps = 20
	dv.Apply("bulk_sleep", 500) // everything below queues behind it
	for i := 0; i < steps; i++ {
		if _, err := dv.Push(map[string]any{"x": constArray(n, float64(i))}); err != nil {
			t.Fatal(err)
		}
		dv.Apply("bulk_sleep", 20)
	}
	last, _ := dv.Apply("bulk_sleep", 1500)
	dv.Apply("bulk_sleep", 1) // keeps the queue non-empty behind the long task
	for i := 0; i < 200; i++ {
		time.Sleep(10 * time.Millisecond)
		if eng, _, _ := cl.QueueStatus(); eng[0].Queued <= 2 {
			break
		}
	}
	for i := 0; i < 5; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	held := as[0].InUse() - before
	t.Logf("hub arena: %d MiB held for one live 2 MiB value (bulkLive %d MiB)", held>>20, bulkLive.Load()>>20)
	if held > 3*n*8 {
		t.Errorf("the engine pins %d MiB of rebound arrays while its queue is busy", held>>20)
	}
	last.Get(10 * time.Second)
}

// A scatter whose later part cannot be encoded fails without leaving the
// earlier parts' arrays queued at engines that will never ask for them.
func TestBulkReviewScatterLaterPartFailsLeaksEarlierParts(t *testing.T) {
	cl, as := meshCluster(t, 2)
	dv, _ := cl.DirectView()
	before := as[0].InUse()
	seq := []any{constArray(1<<18, 1), constArray(1<<18, 2), make(chan int)} // parts [0,2) and [2,3)
	if _, err := dv.Scatter("v", seq); err == nil {
		t.Fatal("a scatter of a channel succeeded")
	}
	seq = nil
	dv.ApplySync("bulk_sleep", 1)
	for i := 0; i < 20; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if u := as[0].InUse() - before; u != 0 {
		t.Errorf("after a failed scatter the hub's arena holds %d MiB for good", u>>20)
	}
}

// A stray Release of a received array that the hub's history still holds
// must not give its memory back.
func TestBulkReviewReleaseDetachesReceivedArray(t *testing.T) {
	cl, as := meshCluster(t, 1)
	defer func() {
		if as[1].InUse() == 0 {
			t.Error("the pulls did not go through the engine's arena")
		}
	}()
	dv, _ := cl.View(0)
	const n = 1 << 18
	dv.Set("x", constArray(n, 1))
	dv.Set("y", constArray(n, -7))
	ar, _ := dv.Pull("x")
	v, err := ar.Get(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	x := v.(*array.Float64)
	x.Release() // a caller's mistake
	for i := 0; i < 5; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	dv.Get("y") // staged on x's old range
	again, _ := cl.Result(ar.MsgIDs()...)
	v, _ = again.Get(5 * time.Second)
	if got := v.([]any)[0].(*array.Float64).Value(0); got != 1 {
		t.Fatalf("the history's x[0] = %v, want 1", got)
	}
}

// A dropped value holding bulk arrays inside a list also starts the
// collection that returns them.
func TestBulkReviewNoNudgeForNestedArrays(t *testing.T) {
	cl, as := meshCluster(t, 1)
	dv, _ := cl.View(0)
	const n = 1 << 18
	waitNoGC := func(what string) time.Duration {
		t0 := time.Now()
		for as[0].InUse() != 0 && time.Since(t0) < 3*time.Second {
			time.Sleep(10 * time.Millisecond)
		}
		if as[0].InUse() != 0 {
			t.Errorf("%s: hub arena still holds %d MiB after %v", what, as[0].InUse()>>20, time.Since(t0))
		}
		return time.Since(t0)
	}
	dv.Set("x", constArray(n, 1))
	ar, _ := dv.Delete("x")
	ar.Get(5 * time.Second)
	t.Logf("top-level array dropped: back in %v", waitNoGC("top-level"))
	dv.Set("x", []any{constArray(n, 1)})
	ar, _ = dv.Delete("x")
	ar.Get(5 * time.Second)
	t.Logf("array inside []any dropped: back in %v", waitNoGC("nested"))
}

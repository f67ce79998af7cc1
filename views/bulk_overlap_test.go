package views

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/rankhub/rankhub/collective"
	"github.com/rankhub/rankhub/views/internal/codec"
)

// TestSubmitDirectThenBeforeFramesNeverOnFailure: the hub calls a direct
// submission's accepted hook once the tasks exist and before it writes
// their frames (none of them is sent yet), so that a push's arrays go down
// the mesh beside the task frames instead of after them (issue 15: on
// 3 x 2 the five task frames took 1-10 ms of the driver's goroutine before
// the array could start); a submission that fails never calls it, so that
// nothing is sent for tasks that do not exist (bulk.Sender's rule).
func TestSubmitDirectThenBeforeFramesNeverOnFailure(t *testing.T) {
	cl, _ := cluster(t, 2)
	h := cl.b.(localBackend).h
	ctrl, bufs, err := codec.EncodeBulk(nil, kindApply, "noop1", []any{1})
	if err != nil {
		t.Fatal(err)
	}
	p := []payload{{Ctrl: ctrl, Bufs: bufs}}
	calls, sentBefore := 0, 0
	accepted := func() {
		calls++
		ts, err := h.Fetch(h.History())
		if err != nil {
			t.Errorf("fetch in accepted: %v", err)
			return
		}
		if len(ts) != 2 {
			t.Errorf("accepted sees %d tasks, want 2 (it runs once they exist)", len(ts))
		}
		for _, tk := range ts {
			select {
			case <-tk.Sent:
				sentBefore++
			default:
			}
		}
	}
	ts, err := h.SubmitDirectThen(kindApply, "noop1", []int{0, 1}, p, accepted)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("accepted called %d times before SubmitDirectThen returned, want 1", calls)
	}
	if sentBefore != 0 {
		t.Errorf("%d of 2 task frames were written before accepted ran, want none", sentBefore)
	}
	ar := &AsyncResult{b: cl.b, tasks: ts}
	if _, err := ar.Get(10 * time.Second); err != nil {
		t.Errorf("the tasks: %v", err)
	}

	calls = 0
	if _, err := h.SubmitDirectThen(kindApply, "noop1", []int{0, 7}, p, accepted); err == nil {
		t.Error("a submission to engine 7 (no such engine) succeeded")
	}
	if calls != 0 {
		t.Errorf("a failed submission called accepted %d times, want 0", calls)
	}
}

// TestPushFailedSubmitSendsNoArray: a push whose submission fails after
// its arrays were encoded for the bulk path (an engine of the view left in
// between) sends none of them: the flusher starts only once the tasks
// exist, so nothing waits in the hub's arena (staged for engines that
// will never ask for it).
func TestPushFailedSubmitSendsNoArray(t *testing.T) {
	cl, as := meshCluster(t, 2)
	send := cl.b.bulkFor([]int{0, 1})
	if send == nil {
		t.Fatal("no bulk sender for two live engines on the mesh")
	}
	gone, err := cl.View(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := gone.Shutdown(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(cl.IDs()) != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if len(cl.IDs()) != 1 {
		t.Fatalf("engine 1 still live after its shutdown: %v", cl.IDs())
	}
	before := as[0].InUse()
	args := []any{map[string]any{"x": constArray(1<<18, 1)}}
	ctrl, bufs, err := codec.EncodeBulk(bulkOut(send), kindPush, "", args)
	if err != nil {
		t.Fatal(err)
	}
	fl := flushOnAccept(send)
	if _, err := cl.submitDirect(kindPush, "", []int{0, 1}, []payload{{Ctrl: ctrl, Bufs: bufs, Keep: args}}, fl.startFunc()); err == nil {
		t.Fatal("a push to a departed engine was accepted")
	}
	fl.wait()
	if u := as[0].InUse() - before; u != 0 {
		t.Errorf("after a failed push the hub's arena holds %d bytes (its array was sent)", u)
	}
}

// TestPushEngineLinkGoneOthersGetArray: a push to the 5 engines of 3
// nodes x 2 whose chain leader on the second node lost its mesh link
// (its hub connection lives on): the array starts beside the task
// frames, the chain goes around that engine, every other engine binds the
// exact array, and the call's result names the engine that failed.
func TestPushEngineLinkGoneOthersGetArray(t *testing.T) {
	ts, cs, _ := nodesWorld(t, []int{0, 0, 1, 1, 2, 2})
	cl, _ := clusterWith(t, 5, func(i int) func(context.Context) (*collective.Comm, error) {
		return func(context.Context) (*collective.Comm, error) { return cs[i], nil }
	})
	dv, err := cl.DirectView()
	if err != nil {
		t.Fatal(err)
	}
	ts[2].Close() // engine 1, world rank 2: the leader of node 1
	const n = 1 << 19
	ar, err := dv.Push(map[string]any{"x": float64Ramp(memory.DefaultAllocator, n)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ar.Get(60 * time.Second)
	if err == nil {
		t.Fatal("the push succeeded on an engine without its mesh link")
	}
	if !strings.Contains(err.Error(), "engine 1") {
		t.Errorf("the push's error does not name engine 1: %v", err)
	}
	t.Logf("push error: %v", err)
	for _, id := range []int{0, 2, 3, 4} {
		one, err := cl.View(id)
		if err != nil {
			t.Fatal(err)
		}
		got, err := one.ApplySync("bulk_sum", Ref{Name: "x"})
		if err != nil {
			t.Errorf("engine %d: %v", id, err)
			continue
		}
		if want := float64(n) * float64(n-1) / 2; got != want {
			t.Errorf("engine %d: sum of x is %v, want %v", id, got, want)
		}
	}
}

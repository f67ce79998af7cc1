package views

import (
	"context"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/rankhub/rankhub/collective"
)

// TestBulkPullFromOtherNodeReleasedAfterPurge: arrays the driver pulls from
// an engine on another node go back to the hub's receive memory once the
// results are purged and the driver dropped them. On the emulated 3-node
// cluster the hub kept every pulled array until the job ended (6 pulls of
// 64 MiB: 402 MiB live), so each pull faulted in a fresh receive buffer and
// the 512 MiB rows were OOM-killed.
func TestBulkPullFromOtherNodeReleasedAfterPurge(t *testing.T) {
	_, cs, _ := nodesWorld(t, []int{0, 1})
	cl, _ := clusterWith(t, 1, func(i int) func(context.Context) (*collective.Comm, error) {
		return func(context.Context) (*collective.Comm, error) { return cs[i], nil }
	})
	one, err := cl.View(0)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1 << 18 // 2 MiB: the bulk path
	x := float64Ramp(memory.DefaultAllocator, n)
	defer x.Release()
	if err := one.Set("y", x); err != nil {
		t.Fatal(err)
	}
	before := bulkLive.Load() // the engine's y
	for rep := 0; rep < 4; rep++ {
		got, err := one.Get("y")
		if err != nil {
			t.Fatal(err)
		}
		if f, ok := got.(*array.Float64); !ok || f.Len() != n || f.Value(n-1) != n-1 {
			t.Fatalf("rep %d: pulled %T", rep, got)
		}
		got = nil
		if _, err := cl.PurgeAll(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for bulkLive.Load() > before {
		if time.Now().After(deadline) {
			t.Fatalf("after 4 pulls of %d bytes, purged: %d bytes of received bulk arrays live, want %d (the engine's y)", n*8, bulkLive.Load(), before)
		}
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
	runtime.KeepAlive(cl) // the driver's client lives on
}

// TestBulkPullLoopReusesReceiveBuffer: a driver that pulls an array from an
// engine on another node, uses it and drops it, in a loop, receives every
// pull into buffers of the ones before: from collective.AsyncBelow up the
// hub's receive pool maps no fresh memory after the first pull; below it
// (where the pool collects ahead instead of waiting) the loop holds two
// buffers, never more. On the emulated cluster a pulled array went back to
// the pool only after a collection (at most one per 100 ms), so the first
// ~18 pulls of a loop each mapped fresh huge pages (35-55 ms for 8 MiB on
// that VM instead of 5-10 ms).
func TestBulkPullLoopReusesReceiveBuffer(t *testing.T) {
	for _, n := range []int{1 << 19, collective.AsyncBelow / 8} { // 4 MiB, 32 MiB: the bulk path
		t.Run(strconv.Itoa(n*8>>20)+"MiB", func(t *testing.T) { pullLoopReuses(t, n) })
	}
}

func pullLoopReuses(t *testing.T, n int) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // only the pool's own collections
	cl, ms := tcpMeshClusterMeshes(t, 1)
	one := must[*DirectView](t)(cl.View(0))
	x := float64Ramp(memory.DefaultAllocator, n)
	err := one.Set("y", x)
	x.Release()
	if err != nil {
		t.Fatal(err)
	}
	pool := ms[0].Pool()
	var first int64
	for rep := range 10 {
		got, err := one.Get("y")
		if err != nil {
			t.Fatal(err)
		}
		if f, ok := got.(*array.Float64); !ok || f.Len() != n || f.Value(1) != 1 || f.Value(n-1) != float64(n-1) {
			t.Fatalf("pull %d: %T", rep, got)
		}
		got = nil
		if n*8 < collective.AsyncBelow {
			// whole buffers of the pull's size, handed out or idle
			if bufs := pool.Live() + int(pool.Idle()/int64(n*8)); bufs > collective.AheadTurns {
				t.Fatalf("pull %d of a loop that drops its arrays of %d bytes: the hub's receive pool holds %d buffers, want at most %d", rep, n*8, bufs, collective.AheadTurns)
			}
		} else if rep == 0 {
			first = pool.Mapped()
		} else if m := pool.Mapped(); m != first {
			t.Fatalf("pull %d of a loop that drops its arrays: the hub's receive pool mapped fresh memory %d times since the first pull, want 0", rep, m-first)
		}
		if _, err := cl.PurgeAll(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBulkPullKeptArrayNeverReused: an array the driver pulled and keeps
// reads what was pulled after many later pulls of other values into the
// same pool (which reclaims dropped arrays' buffers, never a kept one's).
func TestBulkPullKeptArrayNeverReused(t *testing.T) {
	cl, _ := tcpMeshClusterMeshes(t, 1)
	one := must[*DirectView](t)(cl.View(0))
	const n = 1 << 19
	set := func(v float64) {
		t.Helper()
		x := constFloat64(n, v)
		err := one.Set("y", x)
		x.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	set(1)
	keep := must[any](t)(one.Get("y")).(*array.Float64)
	if _, err := cl.PurgeAll(); err != nil {
		t.Fatal(err)
	}
	for rep := range 8 {
		set(float64(rep + 2))
		got := must[any](t)(one.Get("y")).(*array.Float64)
		if got.Value(0) != float64(rep+2) || got.Value(n-1) != float64(rep+2) {
			t.Fatalf("pull %d: [0] = %v, [n-1] = %v, want %d", rep, got.Value(0), got.Value(n-1), rep+2)
		}
		if _, err := cl.PurgeAll(); err != nil {
			t.Fatal(err)
		}
		runtime.GC()
	}
	for i, v := range keep.Float64Values() {
		if v != 1 {
			t.Fatalf("the kept pulled array's element %d is %v after 8 later pulls, want 1", i, v)
		}
	}
	runtime.KeepAlive(keep)
}

package views

import (
	"context"
	"runtime"
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

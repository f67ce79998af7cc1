package views

import (
	"reflect"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/rankhub/rankhub/views/internal/hub"
)

// TestArrowZeroCopyAndTracking sends an array to an engine process and back:
// the buffers handed to comm are the array's own memory (pointer identity),
// Sent closes once the send returned, and what comes back is equal and
// read-only (an Arrow array, built on the received frame).
func TestArrowZeroCopyAndTracking(t *testing.T) {
	pc := startProcs(t, 2, HubConfig{})
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := array.NewFloat64Builder(mem)
	for i := 0; i < 1<<16; i++ {
		b.Append(float64(i))
	}
	a := b.NewFloat64Array()
	b.Release()
	defer a.Release()
	sl := array.NewSlice(a, 1024, 1<<15).(*array.Float64)
	defer sl.Release()

	for _, cl := range []*Client{pc.cl, pc.connect(t)} {
		one := must[*DirectView](t)(cl.View(0))
		var mu sync.Mutex
		var seen [][]byte
		hook := func(bufs [][]byte) { mu.Lock(); seen = append(seen, bufs...); mu.Unlock() }
		hub.SendHook.Store(&hook)
		ar, err := one.Push(map[string]any{"a": sl})
		hub.SendHook.Store(nil)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-ar.Sent():
		case <-time.After(5 * time.Second):
			t.Fatal("Sent never closed")
		}
		must[any](t)(ar.Get(5 * time.Second))
		if cl == pc.cl {
			// In process, the hub hands the caller's memory to comm.
			want := unsafe.Pointer(&sl.Float64Values()[0])
			found := false
			mu.Lock()
			for _, b := range seen {
				if len(b) > 0 && unsafe.Pointer(&b[0]) == want && len(b) == sl.Len()*8 {
					found = true
				}
			}
			mu.Unlock()
			if !found {
				t.Fatalf("no send buffer aliases the array's values (%d buffers)", len(seen))
			}
		}
		back := must[any](t)(one.Get("a")).(arrow.Array)
		if !array.Equal(back, sl) {
			t.Fatal("pulled array differs")
		}
		back.Release()
	}
	// Scatter and gather an Arrow array by rows: a chunked array, no copy.
	dv := must[*DirectView](t)(pc.cl.DirectView())
	must[any](t)(must[*AsyncResult](t)(dv.Scatter("part", sl)).Get(5 * time.Second))
	g := must[any](t)(must[*AsyncResult](t)(dv.Gather("part")).Get(5 * time.Second)).(*arrow.Chunked)
	if g.Len() != sl.Len() || len(g.Chunks()) != 2 || g.Chunk(0).Len() != sl.Len()/2 {
		t.Fatalf("gathered %d rows in %d chunks", g.Len(), len(g.Chunks()))
	}
	cat, err := array.Concatenate(g.Chunks(), mem)
	if err != nil {
		t.Fatal(err)
	}
	if !array.Equal(cat, sl) {
		t.Fatal("gathered array differs")
	}
	cat.Release()
	g.Release()
	if !reflect.DeepEqual(dv.Targets(), []int{0, 1}) {
		t.Fatal(dv.Targets())
	}
}

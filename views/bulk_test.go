package views

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/rankhub/rankhub/collective"
)

// bulkPair is two ranks on one node with arenas, in process.
func bulkPair(t *testing.T) ([]*collective.Comm, []*collective.Arena) {
	t.Helper()
	ts := collective.NewLocalNetwork(2, collective.LocalOptions{SameNode: true})
	var cs []*collective.Comm
	var as []*collective.Arena
	for i, tr := range ts {
		a, err := collective.NewArena(t.TempDir(), "bulk"+string(rune('a'+i)), 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		c, err := collective.New(tr, collective.WithArena(a))
		if err != nil {
			t.Fatal(err)
		}
		cs, as = append(cs, c), append(as, a)
	}
	t.Cleanup(func() {
		for i := range cs {
			cs[i].Close()
			as[i].Close()
		}
	})
	return cs, as
}

func float64Ramp(mem memory.Allocator, n int) arrow.Array {
	b := array.NewFloat64Builder(mem)
	defer b.Release()
	for i := 0; i < n; i++ {
		b.Append(float64(i))
	}
	return b.NewArray()
}

func waitInUse(t *testing.T, a *collective.Arena, want int64, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for a.InUse() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: arena holds %d bytes, want %d", what, a.InUse(), want)
		}
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBulkRoundTripThroughArena(t *testing.T) {
	cs, as := bulkPair(t)
	ctx := context.Background()
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	big := float64Ramp(mem, 1<<18) // 2 MiB: bulk
	small := float64Ramp(mem, 10)  // frames
	flags := array.NewBooleanBuilder(mem)
	for i := 0; i < 1<<21; i++ {
		flags.Append(i%3 == 0)
	}
	bools := flags.NewArray() // 256 KiB of bits, but boolean: frames
	flags.Release()
	send := &bulkSender{ctx: ctx, world: cs[0], to: []int{1}, tags: &bulkTags{}}
	ctrl, bufs, err := encodeBulk(send, map[string]any{"big": big, "small": small, "bools": bools})
	big.Release()
	small.Release()
	bools.Release()
	if err != nil {
		t.Fatal(err)
	}
	if as[0].InUse() < 2<<20 {
		t.Fatalf("the big array was not staged in the sender's arena (%d bytes in use)", as[0].InUse())
	}
	for _, b := range bufs {
		if len(b) >= 2<<20 {
			t.Fatalf("a %d-byte buffer travels in the frame", len(b))
		}
	}
	// Without a mesh the reference is refused, not followed (and the
	// message stays queued).
	if _, err := decodeValues(ctrl, bufs, 1); err == nil {
		t.Fatal("a bulk reference decoded without a mesh")
	}
	recv := &bulkReceiver{ctx: ctx, world: func(context.Context) (*collective.Comm, error) { return cs[1], nil }}
	vals, err := decodeBulk(ctrl, bufs, 1, recv)
	if err != nil {
		t.Fatal(err)
	}
	m := vals[0].(map[string]any)
	if s := m["small"].(*array.Float64); s.Len() != 10 || s.Value(9) != 9 {
		t.Fatalf("small: %v", s)
	}
	if b := m["bools"].(*array.Boolean); b.Len() != 1<<21 || !b.Value(3) || b.Value(4) {
		t.Fatal("bools differ")
	}
	got := m["big"].(*array.Float64)
	if got.Len() != 1<<18 || got.Value(12345) != 12345 {
		t.Fatalf("received %d values, [12345] = %v", got.Len(), got.Value(12345))
	}
	held := as[0].InUse()
	if held < 2<<20 {
		t.Fatalf("the sender's arena holds %d bytes while the receiver uses the array", held)
	}
	// Release returns the memory at once; dropping it lets the garbage
	// collector do the same.
	got.Release()
	waitInUse(t, as[0], 0, "after Release")
	ctrl, bufs, err = encodeBulk(send, float64Ramp(memory.DefaultAllocator, 1<<18))
	if err != nil {
		t.Fatal(err)
	}
	if _, err = decodeBulk(ctrl, bufs, 1, recv); err != nil {
		t.Fatal(err)
	}
	if as[0].InUse() < 2<<20 {
		t.Fatal("second array not held")
	}
	vals, m, got = nil, nil, nil
	waitInUse(t, as[0], 0, "after the receiver dropped the array")
}

func TestNamespaceReleasesPushedArrays(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	ns := newNamespace()
	ns.setOwned("a", float64Ramp(mem, 100))
	first := mem.CurrentAlloc()
	second := float64Ramp(mem, 200)
	both := mem.CurrentAlloc()
	ns.setOwned("a", second) // rebinding releases the first
	if got := mem.CurrentAlloc(); got != both-first {
		t.Fatalf("after rebinding: %d bytes allocated, want %d", got, both-first)
	}
	v, ok, release := ns.retained("a")
	ns.Delete("a") // the retained reference keeps it alive
	if !ok || v.(*array.Float64).Value(199) != 199 {
		t.Fatal("retained value lost")
	}
	release()
	ns.setOwned("b", float64Ramp(mem, 10))
	ns.Clear()
	if mem.CurrentAlloc() != 0 {
		t.Fatalf("after Clear: %d bytes still allocated", mem.CurrentAlloc())
	}
	mine := float64Ramp(mem, 10)
	ns.Set("c", mine) // the caller's: never released by the namespace
	ns.Delete("c")
	if mine.(*array.Float64).Value(9) != 9 || mem.CurrentAlloc() == 0 {
		t.Fatal("the namespace released a value it did not own")
	}
	mine.Release()
}

// A failed bulk send (here: the sender's mesh is closed) falls back to
// frames: the payload still arrives whole.
func TestBulkFallsBackToFrames(t *testing.T) {
	cs, _ := bulkPair(t)
	cs[0].Close()
	big := float64Ramp(memory.DefaultAllocator, 1<<18)
	defer big.Release()
	send := &bulkSender{ctx: context.Background(), world: cs[0], to: []int{1}, tags: &bulkTags{}}
	ctrl, bufs, err := encodeBulk(send, big)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := decodeValues(ctrl, bufs, 1) // no mesh needed
	if err != nil {
		t.Fatal(err)
	}
	if got := vals[0].(*array.Float64); got.Len() != 1<<18 || got.Value(1000) != 1000 {
		t.Fatalf("fallback delivered %d values", got.Len())
	}
}

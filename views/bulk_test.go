package views

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/rankhub/rankhub/collective"
	"github.com/rankhub/rankhub/views/internal/bulk"
)

// localWorld is n ranks on one node with arenas, in process.
func localWorld(t *testing.T, n int) ([]*collective.LocalTransport, []*collective.Comm, []*collective.Arena) {
	t.Helper()
	return arenaWorld(t, collective.LocalOptions{SameNode: true}, n, 256<<20)
}

// arenaWorld is n ranks of a local network with opts, each with an arena
// of arenaSize and the extra options.
func arenaWorld(t *testing.T, opts collective.LocalOptions, n int, arenaSize int64, extra ...collective.Option) ([]*collective.LocalTransport, []*collective.Comm, []*collective.Arena) {
	t.Helper()
	ts := collective.NewLocalNetwork(n, opts)
	var cs []*collective.Comm
	var as []*collective.Arena
	for i, tr := range ts {
		a, err := collective.NewArena(t.TempDir(), fmt.Sprintf("bulk%d", i), arenaSize)
		if err != nil {
			t.Fatal(err)
		}
		c, err := collective.New(tr, append([]collective.Option{collective.WithArena(a)}, extra...)...)
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
	return ts, cs, as
}

func float64Ramp(mem memory.Allocator, n int) arrow.Array {
	b := array.NewFloat64Builder(mem)
	defer b.Release()
	for i := 0; i < n; i++ {
		b.Append(float64(i))
	}
	return b.NewArray()
}

func constArray(n int, v float64) arrow.Array {
	b := array.NewFloat64Builder(memory.DefaultAllocator)
	defer b.Release()
	for i := 0; i < n; i++ {
		b.Append(v)
	}
	return b.NewArray()
}

// waitInUse collects garbage until the arena holds want bytes.
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

func receiverOf(c *collective.Comm, from int) *bulkReceiver {
	return bulk.NewReceiver(context.Background(), func(context.Context) (*collective.Comm, error) { return c, nil }, from)
}

func TestBulkRoundTripThroughArena(t *testing.T) {
	_, cs, as := localWorld(t, 2)
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
	send := bulk.NewSender(context.Background(), cs[0], []int{1}, &bulkTags{})
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
	// Without a mesh, or from another rank than the expected one, the
	// reference is refused, not followed (and the message stays queued).
	if _, err := decodeValues(ctrl, bufs, 1); err == nil {
		t.Fatal("a bulk reference decoded without a mesh")
	}
	if _, err := decodeBulk(ctrl, bufs, 1, receiverOf(cs[1], 1)); err == nil {
		t.Fatal("a bulk reference from rank 0 accepted by a receiver that expects rank 1")
	}
	vals, err := decodeBulk(ctrl, bufs, 1, receiverOf(cs[1], 0))
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
	// The array keeps the sender's range while reachable.
	runtime.GC()
	if got.Value(12345) != 12345 || as[0].InUse() < 2<<20 {
		t.Fatalf("[12345] = %v, sender's arena %d bytes", got.Value(12345), as[0].InUse())
	}
	s := array.NewSlice(got, 10, 20) // slices keep the memory too
	vals, m, got = nil, nil, nil
	runtime.GC()
	if s.(*array.Float64).Value(0) != 10 || as[0].InUse() < 2<<20 {
		t.Fatal("a slice of the received array lost its memory")
	}
	runtime.KeepAlive(s)
	s = nil
	waitInUse(t, as[0], 0, "after the receiver dropped the array and its slice")
}

// A send nobody got falls back to the frame; one that reached some
// receivers keeps the reference (the others are dead or cut off), and the
// sender's arena comes back once the live receiver drops its array.
func TestBulkSendFailures(t *testing.T) {
	ts, cs, as := localWorld(t, 3)
	big := float64Ramp(memory.DefaultAllocator, 1<<18)
	defer big.Release()
	ts[2].Close() // rank 2 is gone
	tags := &bulkTags{}
	send := bulk.NewSender(context.Background(), cs[0], []int{2}, tags)
	ctrl, bufs, err := encodeBulk(send, big)
	if err != nil {
		t.Fatal(err)
	}
	if vals, err := decodeValues(ctrl, bufs, 1); err != nil || vals[0].(*array.Float64).Value(1000) != 1000 {
		t.Fatalf("nobody reached: the frame should carry the array: %v", err)
	}
	waitInUse(t, as[0], 0, "after a send that reached nobody")
	send = bulk.NewSender(context.Background(), cs[0], []int{1, 2}, tags)
	ctrl, bufs, err = encodeBulk(send, big)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := decodeBulk(ctrl, bufs, 1, receiverOf(cs[1], 0))
	if err != nil || vals[0].(*array.Float64).Value(1000) != 1000 {
		t.Fatalf("the live receiver: %v", err)
	}
	vals = nil
	waitInUse(t, as[0], 0, "after the live receiver dropped the array (the dead one held nothing)")
}

var (
	slowStarted = make(chan struct{}, 1)
	slowGo      = make(chan struct{})
	// bulk_hold's gate: it holds the engine until the test closes it
	// (never longer than 10 s, so a failing test cannot hang the engine).
	holdStarted = make(chan struct{}, 1)
	holdGo      = make(chan struct{})
)

func init() {
	// bulk_slowsum takes the values slice of a namespace array (not the
	// array), waits for the test, then sums it.
	MustRegister("bulk_slowsum", func(c *Context, name string) (float64, error) {
		v, _ := c.NS.Get(name)
		xs := v.(*array.Float64).Float64Values()
		v = nil
		slowStarted <- struct{}{}
		<-slowGo
		runtime.GC()
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s, nil
	})
	MustRegister("bulk_sleep", func(ms int) int { time.Sleep(time.Duration(ms) * time.Millisecond); return ms })
	MustRegister("bulk_hold", func() error {
		holdStarted <- struct{}{}
		select {
		case <-holdGo:
			return nil
		case <-time.After(10 * time.Second):
			return fmt.Errorf("bulk_hold: the test never released the engine")
		}
	})
}

// meshCluster is a hub and n engines in process over a collective world
// with arenas: rank 0 is the hub, ranks 1..n the engines.
func meshCluster(t *testing.T, n int) (*Client, []*collective.Arena) {
	t.Helper()
	_, cs, as := localWorld(t, n+1)
	cl, _ := clusterWith(t, n, func(i int) func(context.Context) (*collective.Comm, error) {
		return func(context.Context) (*collective.Comm, error) { return cs[i], nil }
	})
	return cl, as
}

func firstValue(v any) any {
	for {
		l, ok := v.([]any)
		if !ok {
			return v
		}
		v = l[0]
	}
}

// A Clear while a task reads a pushed array through its values slice does
// not give the array's memory back under it.
func TestBulkClearDuringRunningTask(t *testing.T) {
	cl, as := meshCluster(t, 1)
	dv, _ := cl.DirectView()
	const n = 1 << 18
	before := as[0].InUse()
	if err := dv.Set("x", constArray(n, 1)); err != nil {
		t.Fatal(err)
	}
	if as[0].InUse() <= before {
		t.Fatal("x did not go through the hub's arena")
	}
	ar, err := dv.Apply("bulk_slowsum", "x")
	if err != nil {
		t.Fatal(err)
	}
	<-slowStarted
	if err := dv.Clear(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := dv.Push(map[string]any{"y": constArray(n, -7)}); err != nil { // would reuse a freed range
		t.Fatal(err)
	}
	close(slowGo)
	got, err := ar.Get(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if firstValue(got).(float64) != n {
		t.Fatalf("sum over x (all 1) = %v, want %d: x's memory went back during the task", firstValue(got), n)
	}
	if _, err := dv.ApplySync("bulk_sleep", 1); err != nil { // the worker buries x now
		t.Fatal(err)
	}
	ar, _ = dv.Delete("y")
	ar.Get(5 * time.Second)
	dv.ApplySync("bulk_sleep", 1)
	waitInUse(t, as[0], before, "after x and y were dropped")
}

// An aborted push that never ran still hands the hub its arena range back.
func TestBulkAbortedPushReturnsHubArena(t *testing.T) {
	cl, as := meshCluster(t, 1)
	dv, _ := cl.DirectView()
	before := as[0].InUse()
	// The engine runs bulk_hold until the abort has been answered: the push
	// waits in its queue however slow the machine (no timing window).
	busy, err := dv.Apply("bulk_hold")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-holdStarted:
	case <-time.After(5 * time.Second):
		t.Fatal("bulk_hold did not start")
	}
	released := false
	release := func() {
		if !released {
			released = true
			select {
			case holdGo <- struct{}{}:
			case <-time.After(10 * time.Second): // bulk_hold gave up already
			}
		}
	}
	defer release()
	ar, err := dv.Push(map[string]any{"x": constArray(1<<18, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if as[0].InUse() <= before {
		t.Fatal("the push did not go through the hub's arena")
	}
	if err := ar.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := ar.Get(5 * time.Second); !errors.Is(err, ErrAborted) {
		t.Fatalf("the aborted push: %v, want %v", err, ErrAborted)
	}
	release()
	if _, err := busy.Get(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitInUse(t, as[0], before, "after an aborted push")
}

// Arrays pulled from an engine live in the hub's history until purged,
// whatever the caller dropped; then the engine's arena gets them back.
func TestBulkPulledArraysLiveUntilPurged(t *testing.T) {
	cl, as := meshCluster(t, 1)
	dv, _ := cl.DirectView()
	const n = 1 << 18
	if err := dv.Set("x", constArray(n, 1)); err != nil {
		t.Fatal(err)
	}
	if err := dv.Set("y", constArray(n, -7)); err != nil {
		t.Fatal(err)
	}
	ar, err := dv.Pull("x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.Get(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if as[1].InUse() == 0 {
		t.Fatal("the pull did not go through the engine's arena")
	}
	ids := ar.MsgIDs()
	ar = nil
	runtime.GC()
	if _, err := dv.Get("y"); err != nil { // the engine stages y: must not land on x
		t.Fatal(err)
	}
	again, err := cl.Result(ids...)
	if err != nil {
		t.Fatal(err)
	}
	v, err := again.Get(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if f := firstValue(v).(*array.Float64); f.Value(0) != 1 || f.Value(n-1) != 1 {
		t.Fatalf("the history's x: [0] = %v, want 1", f.Value(0))
	}
	v, again = nil, nil
	if _, err := cl.PurgeAll(); err != nil {
		t.Fatal(err)
	}
	waitInUse(t, as[1], 0, "after the pulled arrays were purged")
}

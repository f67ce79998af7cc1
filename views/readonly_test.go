package views

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/rankhub/rankhub/internal/faulttest"
)

// tryWrite writes v into xs[0] and reports whether the write faulted (the
// memory is read-only).
func tryWrite(xs []float64, v float64) bool { return faulttest.Faults(func() { xs[0] = v }) }

func init() {
	// ro_write writes into the values of the namespace array name and says
	// whether that faulted, and what the array holds afterwards.
	MustRegister("ro_write", func(c *Context, name string) (string, error) {
		v, ok := c.NS.Get(name)
		if !ok {
			return "", fmt.Errorf("no %q", name)
		}
		a, ok := v.(*array.Float64)
		if !ok {
			return "", fmt.Errorf("%q is a %T", name, v)
		}
		if tryWrite(a.Float64Values(), -1) {
			return fmt.Sprintf("fault %g", a.Value(0)), nil
		}
		return fmt.Sprintf("wrote %g", a.Value(0)), nil
	})
}

// roRamp is an array of n float64 1, 2, ..., n.
func roRamp(n int) *array.Float64 {
	b := array.NewFloat64Builder(memory.DefaultAllocator)
	defer b.Release()
	for i := 0; i < n; i++ {
		b.Append(float64(i + 1))
	}
	return b.NewFloat64Array()
}

// TestReceivedArraysReadOnly: an Arrow array of at least a page that
// arrives through a frame is read-only wherever it arrives: pushed to an
// engine over a Unix socket and over TCP (from the in-process driver and
// from an outside client), pulled by an outside client, returned to the
// in-process driver by Get. A write faults, and no other client sees it.
// A smaller array the in-process driver receives is its own copy.
func TestReceivedArraysReadOnly(t *testing.T) {
	pc := startProcsNet(t, []string{"unix", "tcp"})
	outside := pc.connect(t)
	big := roRamp(4096 / 8) // one page of values
	defer big.Release()
	for _, cl := range []*Client{pc.cl, outside} {
		dv := must[*DirectView](t)(cl.DirectView())
		if err := dv.Set("x", big); err != nil {
			t.Fatal(err)
		}
		got := must[any](t)(dv.ApplySync("ro_write", "x")).([]any)
		for i, g := range got {
			if g != "fault 1" {
				t.Errorf("engine %d (over %s) writing into a pushed array of 4 KiB: %v, want a fault", i, []string{"unix", "tcp"}[i], g)
			}
		}
	}
	// The hub checks an outside client's payload without copying its arrays.
	copied := roCopied.Load()
	must[any](t)(must[*AsyncResult](t)(must[*DirectView](t)(outside.View(0)).Push(map[string]any{"y": big})).Get(5 * time.Second))
	if n := roCopied.Load() - copied; n != 0 {
		t.Errorf("the hub copied %d bytes of an outside client's push", n)
	}
	for _, cl := range []*Client{pc.cl, outside} {
		name := map[*Client]string{pc.cl: "in-process driver", outside: "outside client"}[cl]
		one := must[*DirectView](t)(cl.View(1))
		ar := must[*AsyncResult](t)(one.Pull("x"))
		a := must[any](t)(ar.Get(5 * time.Second)).(*array.Float64)
		if !tryWrite(a.Float64Values(), -2) {
			t.Errorf("%s: a write into a pulled array of 4 KiB did not fault", name)
		}
		for _, other := range []*Client{NewClient(pc.hub), pc.connect(t)} {
			r := must[*AsyncResult](t)(other.Result(ar.MsgIDs()...))
			if v := firstValue(must[any](t)(r.Get(5 * time.Second))).(*array.Float64); v.Value(0) != 1 {
				t.Errorf("%s wrote -2: another client fetches x[0] = %g", name, v.Value(0))
			}
		}
	}
	// Below a page, the in-process driver gets its own copy.
	small := roRamp(16)
	defer small.Release()
	one := must[*DirectView](t)(pc.cl.View(0))
	if err := one.Set("s", small); err != nil {
		t.Fatal(err)
	}
	ar := must[*AsyncResult](t)(one.Pull("s"))
	a := must[any](t)(ar.Get(5 * time.Second)).(*array.Float64)
	a.Float64Values()[0] = -3
	for _, other := range []*Client{NewClient(pc.hub), pc.connect(t)} {
		r := must[*AsyncResult](t)(other.Result(ar.MsgIDs()...))
		if v := firstValue(must[any](t)(r.Get(5 * time.Second))).(*array.Float64); v.Value(0) != 1 {
			t.Errorf("the in-process driver wrote -3 into a small pulled array: another client fetches s[0] = %g", v.Value(0))
		}
	}
}

// TestReadOnlyDecode: every kind of array of at least a page decodes into
// read-only memory equal to what was sent (nulls, a slice with a bit
// offset, strings with their offsets, record columns, chunks), a smaller
// one stays in the frame, and the mappings go away once the arrays are
// unreachable, whether or not anyone called Release.
func TestReadOnlyDecode(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	runtime.GC() // what earlier tests left unreachable goes first
	runtime.GC()
	time.Sleep(10 * time.Millisecond)
	base := bulkLive.Load()
	nulls := float64s(mem, 4096, 3)
	defer nulls.Release()
	sl := array.NewSlice(nulls, 5, 4000).(*array.Float64)
	defer sl.Release()
	sb := array.NewStringBuilder(mem)
	for i := 0; i < 1000; i++ {
		sb.Append(fmt.Sprintf("value %d", i))
	}
	strs := sb.NewStringArray()
	sb.Release()
	defer strs.Release()
	for _, a := range []arrow.Array{nulls, sl, strs} {
		got := roundTrip(t, a).(arrow.Array)
		if !array.Equal(got, a) {
			t.Fatalf("%s: decoded array differs", a.DataType())
		}
		for i, b := range got.Data().Buffers() {
			if b != nil && b.Len() > 0 && !tryWriteByte(b.Bytes()) {
				t.Errorf("%s: buffer %d is writable", a.DataType(), i)
			}
		}
		got.Release() // a stray Release does not unmap: the collector does
		if !array.Equal(got, a) {
			t.Fatalf("%s: differs after Release", a.DataType())
		}
	}
	small := float64s(mem, 16, 3)
	defer small.Release()
	got := roundTrip(t, small).(*array.Float64)
	if tryWrite(got.Float64Values(), 7) || got.Float64Values()[0] != 7 {
		t.Error("an array of 128 bytes left its frame")
	}
	rec := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "x", Type: nulls.DataType(), Nullable: true}}, nil), []arrow.Array{nulls}, int64(nulls.Len()))
	defer rec.Release()
	r := roundTrip(t, rec).(arrow.RecordBatch)
	if !tryWrite(r.Column(0).(*array.Float64).Float64Values(), 1) {
		t.Error("a record column of 32 KiB is writable")
	}
	ch := arrow.NewChunked(nulls.DataType(), []arrow.Array{nulls, sl})
	defer ch.Release()
	c := roundTrip(t, ch).(*arrow.Chunked)
	if !tryWrite(c.Chunk(1).(*array.Float64).Float64Values(), 1) {
		t.Error("a chunk of 32 KiB is writable")
	}
	got, r, c = nil, nil, nil
	deadline := time.Now().Add(5 * time.Second)
	for bulkLive.Load() > base {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes of read-only arrays still mapped once unreachable", bulkLive.Load()-base)
		}
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
}

// tryWriteByte is tryWrite for a byte (it writes back what was there).
func tryWriteByte(b []byte) bool {
	return faulttest.Faults(func() { v := b[0]; b[0] = v })
}

// TestReadOnlyReuse: read-only memory is reused only once no array uses
// it. Arrays of 4 KiB to 1.6 MiB (shared chunks and memory of their own) are
// decoded while some are kept and others dropped and collected; every kept
// one still holds what was sent.
func TestReadOnlyReuse(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	type kept struct {
		a    *array.Float64
		base float64
	}
	var live []kept
	for i := 0; i < 120; i++ {
		n := 512 + r.IntN(200000)
		if i%2 == 0 {
			n = 512 + r.IntN(8000)
		}
		b := array.NewFloat64Builder(memory.DefaultAllocator)
		base := float64(i) * 1e6
		for k := 0; k < n; k++ {
			b.Append(base + float64(k))
		}
		x := b.NewFloat64Array()
		b.Release()
		a := roundTrip(t, x).(*array.Float64)
		x.Release()
		if r.IntN(4) == 0 {
			live = append(live, kept{a, base})
		}
		if len(live) > 20 {
			live = live[1+r.IntN(5):]
		}
		if i%20 == 0 {
			runtime.GC()
		}
		for _, k := range live {
			v := k.a.Float64Values()
			if v[0] != k.base || v[len(v)-1] != k.base+float64(len(v)-1) {
				t.Fatalf("round %d: the array sent from %g now holds %g..%g", i, k.base, v[0], v[len(v)-1])
			}
		}
	}
}

// TestClientKeepsNoFinishedResults: a client that waits for each pull
// before the next and purges keeps none of the pulled arrays (the
// in-process client's list of outstanding tasks held every finished task,
// value and all, until 1024 had piled up: a GiB for pulls of 1 MiB).
func TestClientKeepsNoFinishedResults(t *testing.T) {
	pc := startProcsWith(t, 1, HubConfig{}, time.Second, 0)
	x := roRamp(1 << 20 / 8)
	defer x.Release()
	if err := must[*DirectView](t)(pc.cl.View(0)).Set("x", x); err != nil {
		t.Fatal(err)
	}
	for ci, cl := range []*Client{pc.cl, pc.connect(t)} {
		one := must[*DirectView](t)(cl.View(0))
		runtime.GC()
		base := bulkLive.Load()
		for i := 0; i < 40; i++ {
			must[any](t)(one.Get("x"))
			cl.PurgeAll()
		}
		deadline := time.Now().Add(5 * time.Second)
		for bulkLive.Load()-base > 4<<20 {
			if time.Now().After(deadline) {
				t.Fatalf("client %d: %d MiB of the 40 arrays of 1 MiB pulled and purged are still held", ci, (bulkLive.Load()-base)>>20)
			}
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
		}
	}
}

package codec

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
	base := BulkLive.Load()
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
	for BulkLive.Load() > base {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes of read-only arrays still mapped once unreachable", BulkLive.Load()-base)
		}
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
}

// tryWriteByte is tryWrite for a byte (it writes back what was there).
func tryWriteByte(b []byte) bool { return faulttest.RewriteFaults(b) }

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

package views

import (
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func float64s(mem memory.Allocator, n int, nullEvery int) *array.Float64 {
	b := array.NewFloat64Builder(mem)
	defer b.Release()
	for i := 0; i < n; i++ {
		if nullEvery > 0 && i%nullEvery == 0 {
			b.AppendNull()
		} else {
			b.Append(float64(i))
		}
	}
	return b.NewFloat64Array()
}

// roundTrip encodes and decodes through the codec, with the out-of-band
// buffers copied into fresh memory as a receiver would have them.
func roundTrip(t *testing.T, v any) any {
	t.Helper()
	ctrl, bufs, err := encodeValues(v)
	if err != nil {
		t.Fatal(err)
	}
	recv := make([][]byte, len(bufs))
	for i, b := range bufs {
		recv[i] = append(make([]byte, 0, len(b)+64), b...)
	}
	out, err := decodeValues(ctrl, recv, 1)
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

func TestArrowCodec(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	f := float64s(mem, 100, 7)
	defer f.Release()
	for _, bounds := range [][2]int64{{0, 100}, {3, 50}, {13, 14}, {9, 9}} {
		sl := array.NewSlice(f, bounds[0], bounds[1])
		got := roundTrip(t, sl).(arrow.Array)
		if !array.Equal(sl, got) {
			t.Errorf("slice %v: got %v want %v", bounds, got, sl)
		}
		got.Release()
		sl.Release()
	}
	bb := array.NewBooleanBuilder(mem)
	bb.AppendValues([]bool{true, false, true, true, false, false, true, false, true, true, true}, nil)
	bb.AppendNull()
	bools := bb.NewBooleanArray()
	bb.Release()
	sb := array.NewStringBuilder(mem)
	sb.AppendValues([]string{"a", "héllo", "", "zz", "last"}, []bool{true, true, false, true, true})
	strs := sb.NewStringArray()
	sb.Release()
	for _, a := range []arrow.Array{bools, array.NewSlice(bools, 5, 12), strs, array.NewSlice(strs, 1, 4)} {
		got := roundTrip(t, a).(arrow.Array)
		if !array.Equal(a, got) {
			t.Errorf("%s: got %v want %v", a.DataType(), got, a)
		}
		got.Release()
		if a != bools && a != strs {
			a.Release()
		}
	}
	ib := array.NewInt32Builder(mem)
	ib.AppendValues([]int32{1, 2, 3, 4, 5}, nil)
	ints := ib.NewInt32Array()
	ib.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "i", Type: arrow.PrimitiveTypes.Int32}, {Name: "s", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{ints, strs}, 5)
	got := roundTrip(t, rec).(arrow.RecordBatch)
	if !array.RecordEqual(rec, got) || !got.Schema().Equal(schema) {
		t.Errorf("record: got %v want %v", got, rec)
	}
	got.Release()
	half := rec.NewSlice(2, 5)
	got = roundTrip(t, half).(arrow.RecordBatch)
	if !array.RecordEqual(half, got) {
		t.Errorf("record slice: got %v want %v", got, half)
	}
	got.Release()
	half.Release()
	ch := arrow.NewChunked(arrow.PrimitiveTypes.Int32, []arrow.Array{ints, ints})
	gc := roundTrip(t, ch).(*arrow.Chunked)
	if gc.Len() != 10 || !array.Equal(gc.Chunk(1), ints) {
		t.Errorf("chunked: %v", gc)
	}
	gc.Release()
	ch.Release()
	rec.Release()
	ints.Release()
	bools.Release()
	strs.Release()

	// Unsupported Arrow types are refused before anything is sent.
	lb := array.NewListBuilder(mem, arrow.PrimitiveTypes.Int8)
	lst := lb.NewListArray()
	lb.Release()
	if _, _, err := encodeValues(map[string]any{"l": lst}); !errors.Is(err, ErrNotSendable) {
		t.Errorf("list array: %v", err)
	}
	lst.Release()
}

// TestArrowZeroCopyAndTracking sends an array to an engine process and back:
// the buffers handed to comm are the array's own memory (pointer identity),
// Sent closes once the send returned, and what comes back is equal and
// read-only (an Arrow array, built on the received frame).
func TestArrowZeroCopyAndTracking(t *testing.T) {
	pc := startProcs(t, 2, HubConfig{})
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	a := float64s(mem, 1<<16, 0)
	defer a.Release()
	sl := array.NewSlice(a, 1024, 1<<15).(*array.Float64)
	defer sl.Release()

	for _, cl := range []*Client{pc.cl, pc.connect(t)} {
		one := must[*DirectView](t)(cl.View(0))
		var mu sync.Mutex
		var seen [][]byte
		hook := func(bufs [][]byte) { mu.Lock(); seen = append(seen, bufs...); mu.Unlock() }
		sendHook.Store(&hook)
		ar, err := one.Push(map[string]any{"a": sl})
		sendHook.Store(nil)
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

func FuzzDecodeArrow(f *testing.F) {
	for _, s := range arrowFuzzSeeds(f) {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, ctrl, b0, b1, b2 []byte) {
		v, err := decodeValues(ctrl, [][]byte{b0, b1, b2}, 1)
		if err != nil {
			return
		}
		// Whatever decodes must be readable without a panic.
		switch a := v[0].(type) {
		case arrow.Array:
			_ = a.String()
			a.Release()
		case arrow.RecordBatch:
			for _, c := range a.Columns() {
				_ = c.String()
			}
			a.Release()
		case *arrow.Chunked:
			for _, c := range a.Chunks() {
				_ = c.String()
			}
			a.Release()
		}
	})
}

package codec

import (
	"errors"
	"testing"

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
	ctrl, bufs, err := EncodeValues(v)
	if err != nil {
		t.Fatal(err)
	}
	recv := make([][]byte, len(bufs))
	for i, b := range bufs {
		recv[i] = append(make([]byte, 0, len(b)+64), b...)
	}
	out, err := DecodeValues(ctrl, recv, 1)
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
	if _, _, err := EncodeValues(map[string]any{"l": lst}); !errors.Is(err, ErrNotSendable) {
		t.Errorf("list array: %v", err)
	}
	lst.Release()
}

func FuzzDecodeArrow(f *testing.F) {
	for _, s := range ArrowFuzzSeeds() {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, ctrl, b0, b1, b2 []byte) {
		v, err := DecodeValues(ctrl, [][]byte{b0, b1, b2}, 1)
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

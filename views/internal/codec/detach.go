package codec

import (
	"reflect"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Received values are read-only in the sense that matters: the hub keeps
// each result as it arrived (its arrays in the result's frame, or on the
// bulk path in read-only memory), and a driver in the hub's process reads
// it through detach, so a write into a received slice or map changes only
// the writer's copy, never what the hub stores, what a later Get returns or
// what another client fetches by message id. Outside clients and engines
// decode their own copies from frames. Arrow arrays have no setters, but
// their values can be written through Float64Values and the like: arrays
// of at least a page are received into read-only memory (readOnlyArray, a
// peer's arena mapped read-only or a receive buffer protected in place on
// the bulk path), so such a write faults. The hub's arrays in a frame are
// copied here, at Get, into read-only memory when of a page or more (so
// the hub pays no copy for results that only outside clients fetch);
// smaller ones onto the Go heap.

// Detach returns a copy of v that shares no mutable memory with it: slices,
// maps and pointers are copied, deeply; scalars and strings are returned as
// they are, Arrow arrays as detachArray says. frame holds the buffers of
// the frame v was decoded from (the hub's record): arrays in them are
// copied.
func Detach(v any, frame [][]byte) any {
	return detacher{frame}.any(v)
}

// detacher copies values out of a result frame.
type detacher struct{ frame [][]byte }

func (dt detacher) any(v any) any {
	switch x := v.(type) {
	case nil, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64, string:
		return v
	case arrow.Array:
		return dt.array(x)
	case arrow.RecordBatch:
		cols := make([]arrow.Array, x.NumCols())
		for i := range cols {
			cols[i] = dt.array(x.Column(i))
		}
		return array.NewRecordBatch(x.Schema(), cols, x.NumRows())
	case *arrow.Chunked:
		if x == nil {
			return v
		}
		chunks := make([]arrow.Array, len(x.Chunks()))
		for i, c := range x.Chunks() {
			chunks[i] = dt.array(c)
		}
		return arrow.NewChunked(x.DataType(), chunks)
	case []float64:
		return append([]float64(nil), x...)
	case []int64:
		return append([]int64(nil), x...)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = dt.any(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = dt.any(e)
		}
		return out
	}
	rv := reflect.ValueOf(v)
	out := dt.value(rv)
	if !out.IsValid() {
		return v
	}
	return out.Interface()
}

// array returns a itself when its buffers hold at least readOnlyMin bytes
// outside the frame (received read-only), a read-only copy when they are
// in the frame, else a copy on the Go heap.
func (dt detacher) array(a arrow.Array) arrow.Array {
	size := 0
	framed := false
	for _, b := range a.Data().Buffers() {
		if b != nil {
			size += b.Len()
			framed = framed || dt.inFrame(b.Bytes())
		}
	}
	if size >= readOnlyMin && !framed {
		return a
	}
	if size >= readOnlyMin {
		if ro := ReadOnlyOf(a); ro != nil {
			return ro
		}
	}
	c, err := array.Concatenate([]arrow.Array{a}, memory.DefaultAllocator)
	if err != nil {
		return a // a type Concatenate cannot copy: none the codec decodes
	}
	return c
}

// inFrame reports whether b lies in one of the frame's buffers.
func (dt detacher) inFrame(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	for _, f := range dt.frame {
		if len(f) == 0 {
			continue
		}
		s := uintptr(unsafe.Pointer(unsafe.SliceData(f)))
		if p >= s && p+uintptr(len(b)) <= s+uintptr(len(f)) {
			return true
		}
	}
	return false
}

// value copies slices, maps, pointers and arrays deeply; other values are
// returned as they are (structs by value: their slice and map fields are
// copied when settable), Arrow arrays as array says.
func (dt detacher) value(rv reflect.Value) reflect.Value {
	switch rv.Kind() {
	case reflect.Interface:
		if rv.IsNil() {
			return rv
		}
		if a, ok := rv.Interface().(arrow.Array); ok {
			out := reflect.New(rv.Type()).Elem()
			out.Set(reflect.ValueOf(dt.array(a)))
			return out
		}
		out := reflect.New(rv.Type()).Elem()
		out.Set(dt.value(rv.Elem()))
		return out
	case reflect.Slice:
		if rv.IsNil() {
			return rv
		}
		out := reflect.MakeSlice(rv.Type(), rv.Len(), rv.Len())
		if plain(rv.Type().Elem()) {
			reflect.Copy(out, rv)
			return out
		}
		for i := 0; i < rv.Len(); i++ {
			out.Index(i).Set(dt.value(rv.Index(i)))
		}
		return out
	case reflect.Array:
		out := reflect.New(rv.Type()).Elem()
		for i := 0; i < rv.Len(); i++ {
			out.Index(i).Set(dt.value(rv.Index(i)))
		}
		return out
	case reflect.Map:
		if rv.IsNil() {
			return rv
		}
		out := reflect.MakeMapWithSize(rv.Type(), rv.Len())
		it := rv.MapRange()
		for it.Next() {
			out.SetMapIndex(it.Key(), dt.value(it.Value()))
		}
		return out
	case reflect.Pointer:
		if rv.IsNil() || rv.Type().Elem().Kind() != reflect.Struct && !plain(rv.Type().Elem()) {
			return rv
		}
		if _, ok := rv.Interface().(*arrow.Chunked); ok {
			return rv
		}
		out := reflect.New(rv.Type().Elem())
		out.Elem().Set(dt.value(rv.Elem()))
		return out
	case reflect.Struct:
		out := reflect.New(rv.Type()).Elem()
		out.Set(rv)
		for i := 0; i < out.NumField(); i++ {
			if f := out.Field(i); f.CanSet() {
				f.Set(dt.value(f))
			}
		}
		return out
	}
	return rv
}

// plain says whether values of t hold no references (copying them copies
// everything).
func plain(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128, reflect.String:
		return true
	}
	return false
}

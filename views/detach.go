package views

import (
	"reflect"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Received values are read-only in the sense that matters: the hub keeps
// each result as it arrived, and a driver in the hub's process reads it
// through detach, so a write into a received slice or map changes only
// the writer's copy, never what the hub stores, what a later Get returns or
// what another client fetches by message id. Outside clients and engines
// decode their own copies from frames. Arrow arrays have no setters, but
// their values can be written through Float64Values and the like: arrays
// of at least a page are received into read-only memory (readOnlyArray, or
// a peer's arena mapped read-only on the bulk path), so such a write
// faults; smaller ones are copied here.

// detach returns a copy of v that shares no mutable memory with it: slices,
// maps and pointers are copied, deeply; scalars, strings and Arrow values
// are returned as they are.
func detach(v any) any {
	switch x := v.(type) {
	case nil, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64, string:
		return v
	case arrow.Array:
		return detachArray(x)
	case arrow.RecordBatch:
		cols := make([]arrow.Array, x.NumCols())
		for i := range cols {
			cols[i] = detachArray(x.Column(i))
		}
		return array.NewRecordBatch(x.Schema(), cols, x.NumRows())
	case *arrow.Chunked:
		if x == nil {
			return v
		}
		chunks := make([]arrow.Array, len(x.Chunks()))
		for i, c := range x.Chunks() {
			chunks[i] = detachArray(c)
		}
		return arrow.NewChunked(x.DataType(), chunks)
	case []float64:
		return append([]float64(nil), x...)
	case []int64:
		return append([]int64(nil), x...)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = detach(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = detach(e)
		}
		return out
	}
	rv := reflect.ValueOf(v)
	out := detachValue(rv)
	if !out.IsValid() {
		return v
	}
	return out.Interface()
}

// detachArray returns a itself when its buffers hold at least readOnlyMin
// bytes (received read-only), else a copy on the Go heap.
func detachArray(a arrow.Array) arrow.Array {
	size := 0
	for _, b := range a.Data().Buffers() {
		if b != nil {
			size += b.Len()
		}
	}
	if size >= readOnlyMin {
		return a
	}
	c, err := array.Concatenate([]arrow.Array{a}, memory.DefaultAllocator)
	if err != nil {
		return a // a type Concatenate cannot copy: none the codec decodes
	}
	return c
}

// detachValue copies slices, maps, pointers and arrays deeply; other
// values are returned as they are (structs by value: their slice and map
// fields are copied when settable).
func detachValue(rv reflect.Value) reflect.Value {
	switch rv.Kind() {
	case reflect.Interface:
		if rv.IsNil() {
			return rv
		}
		if _, ok := rv.Interface().(arrow.Array); ok {
			return rv
		}
		out := reflect.New(rv.Type()).Elem()
		out.Set(detachValue(rv.Elem()))
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
			out.Index(i).Set(detachValue(rv.Index(i)))
		}
		return out
	case reflect.Array:
		out := reflect.New(rv.Type()).Elem()
		for i := 0; i < rv.Len(); i++ {
			out.Index(i).Set(detachValue(rv.Index(i)))
		}
		return out
	case reflect.Map:
		if rv.IsNil() {
			return rv
		}
		out := reflect.MakeMapWithSize(rv.Type(), rv.Len())
		it := rv.MapRange()
		for it.Next() {
			out.SetMapIndex(it.Key(), detachValue(it.Value()))
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
		out.Elem().Set(detachValue(rv.Elem()))
		return out
	case reflect.Struct:
		out := reflect.New(rv.Type()).Elem()
		out.Set(rv)
		for i := 0; i < out.NumField(); i++ {
			if f := out.Field(i); f.CanSet() {
				f.Set(detachValue(f))
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

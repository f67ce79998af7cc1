package codec

import (
	"fmt"
	"math"
	"reflect"

	"github.com/apache/arrow-go/v18/arrow"
)

// Ref names a value in an engine's namespace. Passed as an argument, the
// engine substitutes the named value without moving it.
type Ref struct{ Name string }

// encodeHook and decodeHook let other files add value kinds (Arrow arrays).
var (
	encodeHooks []func(e *Encoder, v any) (bool, error)
	decodeHooks = map[byte]func(d *Decoder) (any, error){}
)

func (e *Encoder) encodeHook(v any) (bool, error) {
	for _, h := range encodeHooks {
		if ok, err := h(e, v); ok {
			return true, err
		}
	}
	return false, nil
}

func (d *Decoder) decodeHook(tag byte) (any, bool, error) {
	h, ok := decodeHooks[tag]
	if !ok {
		return nil, false, nil
	}
	v, err := h(d)
	return v, true, err
}

var typeOfAny = reflect.TypeOf((*any)(nil)).Elem()

// Convert turns a decoded value into a value of type t: numeric conversions
// that lose nothing, []any to typed slices, maps to structs or typed maps.
func Convert(v any, t reflect.Type) (reflect.Value, error) {
	if t == typeOfAny {
		if v == nil {
			return reflect.Zero(t), nil
		}
		return reflect.ValueOf(v), nil
	}
	if v == nil {
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
			return reflect.Zero(t), nil
		}
		return reflect.Value{}, fmt.Errorf("cannot use nil as %s", t)
	}
	rv := reflect.ValueOf(v)
	if rv.Type() == t {
		return rv, nil
	}
	if rv.Type().AssignableTo(t) {
		out := reflect.New(t).Elem()
		out.Set(rv)
		return out, nil
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, ok := asInt(rv)
		if !ok {
			break
		}
		out := reflect.New(t).Elem()
		if out.OverflowInt(i) {
			return reflect.Value{}, fmt.Errorf("%d overflows %s", i, t)
		}
		out.SetInt(i)
		return out, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		i, ok := asInt(rv)
		if !ok || i < 0 {
			if u, isU := asUint(rv); isU {
				out := reflect.New(t).Elem()
				if out.OverflowUint(u) {
					return reflect.Value{}, fmt.Errorf("%d overflows %s", u, t)
				}
				out.SetUint(u)
				return out, nil
			}
			break
		}
		out := reflect.New(t).Elem()
		if out.OverflowUint(uint64(i)) {
			return reflect.Value{}, fmt.Errorf("%d overflows %s", i, t)
		}
		out.SetUint(uint64(i))
		return out, nil
	case reflect.Float32, reflect.Float64:
		out := reflect.New(t).Elem()
		switch rv.Kind() {
		case reflect.Float32, reflect.Float64:
			out.SetFloat(rv.Float())
			return out, nil
		}
		if i, ok := asInt(rv); ok && math.Abs(float64(i)) <= 1<<53 {
			out.SetFloat(float64(i))
			return out, nil
		}
		if u, ok := asUint(rv); ok && u <= 1<<53 {
			out.SetFloat(float64(u))
			return out, nil
		}
	case reflect.Pointer:
		inner, err := Convert(v, t.Elem())
		if err != nil {
			return reflect.Value{}, err
		}
		p := reflect.New(t.Elem())
		p.Elem().Set(inner)
		return p, nil
	case reflect.Slice, reflect.Array:
		if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
			break
		}
		n := rv.Len()
		var out reflect.Value
		if t.Kind() == reflect.Slice {
			out = reflect.MakeSlice(t, n, n)
		} else {
			if n != t.Len() {
				return reflect.Value{}, fmt.Errorf("cannot use %d elements as %s", n, t)
			}
			out = reflect.New(t).Elem()
		}
		for i := 0; i < n; i++ {
			el, err := Convert(rv.Index(i).Interface(), t.Elem())
			if err != nil {
				return reflect.Value{}, fmt.Errorf("[%d]: %w", i, err)
			}
			out.Index(i).Set(el)
		}
		return out, nil
	case reflect.Map:
		if rv.Kind() != reflect.Map {
			break
		}
		out := reflect.MakeMapWithSize(t, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			k, err := Convert(it.Key().Interface(), t.Key())
			if err != nil {
				return reflect.Value{}, fmt.Errorf("key %v: %w", it.Key(), err)
			}
			el, err := Convert(it.Value().Interface(), t.Elem())
			if err != nil {
				return reflect.Value{}, fmt.Errorf("[%v]: %w", it.Key(), err)
			}
			out.SetMapIndex(k, el)
		}
		return out, nil
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			break
		}
		out := reflect.New(t).Elem()
		for name, fv := range m {
			f, ok := t.FieldByName(name)
			if !ok || !f.IsExported() {
				return reflect.Value{}, fmt.Errorf("%s has no field %s", t, name)
			}
			el, err := Convert(fv, f.Type)
			if err != nil {
				return reflect.Value{}, fmt.Errorf(".%s: %w", name, err)
			}
			out.FieldByIndex(f.Index).Set(el)
		}
		return out, nil
	}
	return reflect.Value{}, fmt.Errorf("cannot use %T as %s", v, t)
}

func asInt(rv reflect.Value) (int64, bool) {
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if rv.Uint() <= math.MaxInt64 {
			return int64(rv.Uint()), true
		}
	case reflect.Float32, reflect.Float64:
		f := rv.Float()
		if f == math.Trunc(f) && math.Abs(f) < 1<<63 {
			return int64(f), true
		}
	}
	return 0, false
}

func asUint(rv reflect.Value) (uint64, bool) {
	switch rv.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return rv.Uint(), true
	}
	return 0, false
}

// As converts a value received from an engine to T (for example a decoded
// map[string]any to a struct, or []any to []float64).
func As[T any](v any) (T, error) {
	var zero T
	rv, err := Convert(v, reflect.TypeOf((*T)(nil)).Elem())
	if err != nil {
		return zero, fmt.Errorf("views: %w", err)
	}
	return rv.Interface().(T), nil
}

// RowsOf is the number of rows of a sequence, or false if v is not one.
func RowsOf(v any) (int, bool) {
	switch x := v.(type) {
	case arrow.Array:
		return x.Len(), true
	case arrow.RecordBatch:
		return int(x.NumRows()), true
	case *arrow.Chunked:
		return x.Len(), true
	case arrow.Table:
		return int(x.NumRows()), true
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array {
		return rv.Len(), true
	}
	return 0, false
}

package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"time"
	"unsafe"
)

// The codec turns Go values into a compact tagged binary form (the control
// payload of a frame) plus out-of-band buffers that travel as raw frame
// buffers without a copy: large numeric slices and []byte.
//
// Sendable: nil, bool, all sized and unsized ints and uints, float32/64,
// string, []byte, slices and arrays of any sendable type (numeric slices
// travel as raw little-endian memory), maps with string or numeric keys,
// structs (exported fields, by name), pointers (followed), time.Time,
// time.Duration, Ref, and values implementing the Sendable hooks added by
// other files (Arrow arrays). Functions, channels, complex numbers and unsafe
// pointers are refused before anything is sent.
//
// Decoding without a target yields natural Go values: the same scalar kinds,
// typed numeric slices, []string, []any, map[string]any (also for structs),
// map[any]any for other keys. decodeInto converts such values to a target type.

// ErrNotSendable is returned (wrapped) when a value cannot be sent.
var ErrNotSendable = errors.New("views: value cannot be sent")

const (
	tNil byte = iota
	tFalse
	tTrue
	tInt
	tInt8
	tInt16
	tInt32
	tInt64
	tUint
	tUint8
	tUint16
	tUint32
	tUint64
	tFloat32
	tFloat64
	tString
	tBytes      // inline
	tBytesOOB   // out of band: buffer index
	tNumSlice   // elem kind byte, count, inline raw bytes
	tNumOOB     // elem kind byte, count, buffer index
	tStrings    // count, strings
	tList       // count, values
	tMapStr     // count, (string, value)...
	tMapAny     // count, (value, value)...
	tStruct     // name, count, (string, value)...
	tTime       // unix seconds (varint), nanos (uvarint), location name
	tDuration   // varint
	tRef        // string
	tArrow      // see arrow.go
	tTaggedLast // sentinel
)

// oobThreshold is the size from which []byte and numeric slices travel as
// raw frame buffers instead of inside the control payload.
const oobThreshold = 4096

type Encoder struct {
	b    []byte
	bufs [][]byte
	// path describes where in the value the encoder is, for error
	// messages; formatted only when one is made (pathStep.String), so
	// encoding a value allocates nothing for it.
	path []pathStep
	// bulk, when set, takes large numeric Arrow arrays (views/internal/bulk).
	bulk BulkSender
}

func (e *Encoder) byte1(c byte)     { e.b = append(e.b, c) }
func (e *Encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *Encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *Encoder) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *Encoder) oob(b []byte) int { e.bufs = append(e.bufs, b); return len(e.bufs) - 1 }

func (e *Encoder) fail(t reflect.Type, why string) error {
	where := ""
	if len(e.path) > 0 {
		where = " at " + joinPath(e.path)
	}
	return fmt.Errorf("%w: %s%s: %s", ErrNotSendable, t, where, why)
}

// pathStep is one step into a value: the i-th top-level value, the i-th
// element of a list, a string key, another key, or a struct field.
type pathStep struct {
	kind byte // 'v' value i, 'c' chunk i, 'i' [i], 's' [%q s], 'k' [%v key], 'f' .s, 'w' s
	i    int
	s    string
	key  reflect.Value
}

func (p pathStep) String() string {
	switch p.kind {
	case 'v':
		return fmt.Sprintf("value %d", p.i)
	case 'c':
		return fmt.Sprintf("chunk %d", p.i)
	case 'w':
		return p.s
	case 'i':
		return fmt.Sprintf("[%d]", p.i)
	case 's':
		return fmt.Sprintf("[%q]", p.s)
	case 'k':
		return fmt.Sprintf("[%v]", p.key)
	}
	return "." + p.s
}

func joinPath(p []pathStep) string {
	var b strings.Builder
	for _, x := range p {
		b.WriteString(x.String())
	}
	return b.String()
}

// encode appends v. Fast paths for the common dynamic types avoid reflection.
func (e *Encoder) encode(v any) error {
	switch x := v.(type) {
	case nil:
		e.byte1(tNil)
	case bool:
		if x {
			e.byte1(tTrue)
		} else {
			e.byte1(tFalse)
		}
	case int:
		e.byte1(tInt)
		e.varint(int64(x))
	case int64:
		e.byte1(tInt64)
		e.varint(x)
	case int32:
		e.byte1(tInt32)
		e.varint(int64(x))
	case uint64:
		e.byte1(tUint64)
		e.uvarint(x)
	case float64:
		e.byte1(tFloat64)
		e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(x))
	case string:
		e.byte1(tString)
		e.str(x)
	case []byte:
		e.bytes(x)
	case []any:
		e.byte1(tList)
		e.uvarint(uint64(len(x)))
		for i, el := range x {
			e.path = append(e.path, pathStep{kind: 'i', i: i})
			if err := e.encode(el); err != nil {
				return err
			}
			e.path = e.path[:len(e.path)-1]
		}
	case map[string]any:
		e.byte1(tMapStr)
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		e.uvarint(uint64(len(keys)))
		for _, k := range keys {
			e.str(k)
			e.path = append(e.path, pathStep{kind: 's', s: k})
			if err := e.encode(x[k]); err != nil {
				return err
			}
			e.path = e.path[:len(e.path)-1]
		}
	case time.Time:
		e.byte1(tTime)
		e.varint(x.Unix())
		e.uvarint(uint64(x.Nanosecond()))
		e.str(x.Location().String())
	case time.Duration:
		e.byte1(tDuration)
		e.varint(int64(x))
	case Ref:
		e.byte1(tRef)
		e.str(x.Name)
	default:
		if ok, err := e.encodeHook(v); ok {
			return err
		}
		return e.reflectValue(reflect.ValueOf(v))
	}
	return nil
}

func (e *Encoder) bytes(x []byte) {
	if len(x) >= oobThreshold {
		e.byte1(tBytesOOB)
		e.uvarint(uint64(e.oob(x)))
		return
	}
	e.byte1(tBytes)
	e.uvarint(uint64(len(x)))
	e.b = append(e.b, x...)
}

// numKind maps numeric element kinds to the scalar tag used in slices.
func numTag(k reflect.Kind) (byte, int) {
	switch k {
	case reflect.Int:
		return tInt, 8
	case reflect.Int8:
		return tInt8, 1
	case reflect.Int16:
		return tInt16, 2
	case reflect.Int32:
		return tInt32, 4
	case reflect.Int64:
		return tInt64, 8
	case reflect.Uint:
		return tUint, 8
	case reflect.Uint16:
		return tUint16, 2
	case reflect.Uint32:
		return tUint32, 4
	case reflect.Uint64:
		return tUint64, 8
	case reflect.Float32:
		return tFloat32, 4
	case reflect.Float64:
		return tFloat64, 8
	}
	return 0, 0
}

var typeOfTime = reflect.TypeOf(time.Time{})

func (e *Encoder) reflectValue(rv reflect.Value) error {
	if !rv.IsValid() {
		e.byte1(tNil)
		return nil
	}
	t := rv.Type()
	switch t.Kind() {
	case reflect.Bool:
		if rv.Bool() {
			e.byte1(tTrue)
		} else {
			e.byte1(tFalse)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		tag, _ := numTag(t.Kind())
		e.byte1(tag)
		e.varint(rv.Int())
	case reflect.Uint8:
		e.byte1(tUint8)
		e.uvarint(rv.Uint())
	case reflect.Uint, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		tag, _ := numTag(t.Kind())
		e.byte1(tag)
		e.uvarint(rv.Uint())
	case reflect.Float32:
		e.byte1(tFloat32)
		e.b = binary.LittleEndian.AppendUint32(e.b, math.Float32bits(float32(rv.Float())))
	case reflect.Float64:
		e.byte1(tFloat64)
		e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(rv.Float()))
	case reflect.String:
		e.byte1(tString)
		e.str(rv.String())
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			e.byte1(tNil)
			return nil
		}
		return e.encode(rv.Elem().Interface())
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice && rv.IsNil() {
			e.byte1(tNil)
			return nil
		}
		et := t.Elem()
		n := rv.Len()
		if et.Kind() == reflect.Uint8 {
			if t.Kind() == reflect.Slice {
				e.bytes(rv.Bytes())
			} else {
				b := make([]byte, n)
				reflect.Copy(reflect.ValueOf(b), rv)
				e.bytes(b)
			}
			return nil
		}
		if tag, size := numTag(et.Kind()); tag != 0 {
			var raw []byte
			if n > 0 {
				if t.Kind() == reflect.Slice {
					raw = unsafe.Slice((*byte)(rv.UnsafePointer()), n*size)
				} else {
					cp := reflect.New(t).Elem()
					cp.Set(rv)
					raw = unsafe.Slice((*byte)(cp.Addr().UnsafePointer()), n*size)
				}
			}
			if len(raw) >= oobThreshold {
				e.byte1(tNumOOB)
				e.byte1(tag)
				e.uvarint(uint64(n))
				e.uvarint(uint64(e.oob(raw)))
			} else {
				e.byte1(tNumSlice)
				e.byte1(tag)
				e.uvarint(uint64(n))
				e.b = append(e.b, raw...)
			}
			return nil
		}
		if et.Kind() == reflect.String {
			e.byte1(tStrings)
			e.uvarint(uint64(n))
			for i := 0; i < n; i++ {
				e.str(rv.Index(i).String())
			}
			return nil
		}
		e.byte1(tList)
		e.uvarint(uint64(n))
		for i := 0; i < n; i++ {
			e.path = append(e.path, pathStep{kind: 'i', i: i})
			if err := e.reflectValue(rv.Index(i)); err != nil {
				return err
			}
			e.path = e.path[:len(e.path)-1]
		}
	case reflect.Map:
		if rv.IsNil() {
			e.byte1(tNil)
			return nil
		}
		keys := rv.MapKeys()
		if t.Key().Kind() == reflect.String {
			sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
			e.byte1(tMapStr)
			e.uvarint(uint64(len(keys)))
			for _, k := range keys {
				e.str(k.String())
				e.path = append(e.path, pathStep{kind: 's', s: k.String()})
				if err := e.reflectValue(rv.MapIndex(k)); err != nil {
					return err
				}
				e.path = e.path[:len(e.path)-1]
			}
			return nil
		}
		e.byte1(tMapAny)
		e.uvarint(uint64(len(keys)))
		for _, k := range keys {
			if err := e.reflectValue(k); err != nil {
				return err
			}
			e.path = append(e.path, pathStep{kind: 'k', key: k})
			if err := e.reflectValue(rv.MapIndex(k)); err != nil {
				return err
			}
			e.path = e.path[:len(e.path)-1]
		}
	case reflect.Struct:
		if t == typeOfTime {
			return e.encode(rv.Interface())
		}
		e.byte1(tStruct)
		e.str(t.Name())
		var idx []int
		for i := 0; i < t.NumField(); i++ {
			if t.Field(i).IsExported() {
				idx = append(idx, i)
			}
		}
		e.uvarint(uint64(len(idx)))
		for _, i := range idx {
			f := t.Field(i)
			e.str(f.Name)
			e.path = append(e.path, pathStep{kind: 'f', s: f.Name})
			if err := e.reflectValue(rv.Field(i)); err != nil {
				return err
			}
			e.path = e.path[:len(e.path)-1]
		}
	case reflect.Func:
		return e.fail(t, "functions cannot be sent; register them on every rank with views.Register and call them by name")
	case reflect.Chan:
		return e.fail(t, "channels cannot be sent")
	case reflect.Complex64, reflect.Complex128:
		return e.fail(t, "complex numbers cannot be sent; send real and imaginary parts")
	default:
		return e.fail(t, "unsupported kind "+t.Kind().String())
	}
	return nil
}

// Encode encodes values into a control payload and out-of-band buffers.
func EncodeValues(vals ...any) (ctrl []byte, bufs [][]byte, err error) {
	return EncodeBulk(nil, vals...)
}

// EncodeBulk is encodeValues with large numeric Arrow arrays sent through
// b (nil: none). The values are checked first, so that nothing is sent
// for a payload that cannot be encoded.
func EncodeBulk(b BulkSender, vals ...any) (ctrl []byte, bufs [][]byte, err error) {
	if b != nil {
		if _, _, err := EncodeBulk(nil, vals...); err != nil {
			return nil, nil, err
		}
	}
	e := &Encoder{b: make([]byte, 0, 64), bulk: b}
	for i, v := range vals {
		e.path = append(e.path[:0], pathStep{kind: 'v', i: i})
		if err := e.encode(v); err != nil {
			return nil, nil, err
		}
	}
	return e.b, e.bufs, nil
}

// ----- decoding -----

// ErrCorrupt is returned for malformed payloads (never a panic).
var ErrCorrupt = errors.New("views: corrupt payload")

type Decoder struct {
	b     []byte
	pos   int
	bufs  [][]byte
	depth int
	bulk  BulkReceiver // nil: bulk references are refused
	// bulkBytes counts the data received on the bulk path.
	bulkBytes int64
	// check: the values are only checked and dropped; arrays stay in the
	// frame instead of being copied into read-only memory (arrow.go).
	check bool
	// inFrame: arrays stay in the frame as well (the hub's results: a
	// driver in the hub's process gets read-only copies at Get, detach).
	inFrame bool
	// frame, when set, owns the out-of-band buffers: read-only memory
	// protected in place (an outside client's large frames). Arrays stay
	// in it and hold it (frameOwner); slices and byte strings are copied
	// out, being the receiver's to modify.
	frame *FrameOwner
}

func (d *Decoder) corrupt(what string) error {
	return fmt.Errorf("%w: %s at byte %d", ErrCorrupt, what, d.pos)
}

func (d *Decoder) byte1() (byte, error) {
	if d.pos >= len(d.b) {
		return 0, d.corrupt("truncated")
	}
	c := d.b[d.pos]
	d.pos++
	return c, nil
}

func (d *Decoder) uvarint() (uint64, error) {
	if d.pos >= len(d.b) {
		return 0, d.corrupt("truncated")
	}
	v, n := binary.Uvarint(d.b[d.pos:])
	if n <= 0 {
		return 0, d.corrupt("bad uvarint")
	}
	d.pos += n
	return v, nil
}

func (d *Decoder) varint() (int64, error) {
	if d.pos >= len(d.b) {
		return 0, d.corrupt("truncated")
	}
	v, n := binary.Varint(d.b[d.pos:])
	if n <= 0 {
		return 0, d.corrupt("bad varint")
	}
	d.pos += n
	return v, nil
}

func (d *Decoder) count() (int, error) {
	v, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	// Every element takes at least one byte: bound counts by what is left.
	if v > uint64(len(d.b)-d.pos) {
		return 0, d.corrupt("count beyond payload")
	}
	return int(v), nil
}

func (d *Decoder) raw(n int) ([]byte, error) {
	if n < 0 || n > len(d.b)-d.pos {
		return nil, d.corrupt("length beyond payload")
	}
	b := d.b[d.pos : d.pos+n]
	d.pos += n
	return b, nil
}

func (d *Decoder) str() (string, error) {
	n, err := d.uvarint()
	if err != nil {
		return "", err
	}
	if n > uint64(len(d.b)-d.pos) {
		return "", d.corrupt("string beyond payload")
	}
	b, _ := d.raw(int(n))
	return string(b), nil
}

func (d *Decoder) buf() ([]byte, error) {
	i, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	if i >= uint64(len(d.bufs)) {
		return nil, d.corrupt(fmt.Sprintf("buffer %d of %d", i, len(d.bufs)))
	}
	return d.bufs[i], nil
}

const maxDepth = 512

// maxHint caps a preallocation sized by a count from the wire. Counts are
// already bounded by the bytes left in the payload, but a list of n nils
// takes n bytes on the wire and 16n in memory, and a map hint of 60 M takes
// gigabytes before its first entry: containers start at most this large and
// grow as their elements actually decode, so memory follows the bytes
// received, not the bytes announced.
const maxHint = 1024

func hint(n int) int { return min(n, maxHint) }

func (d *Decoder) decode() (any, error) {
	tag, err := d.byte1()
	if err != nil {
		return nil, err
	}
	return d.decodeTag(tag)
}

func (d *Decoder) decodeTag(tag byte) (any, error) {
	switch tag {
	case tNil:
		return nil, nil
	case tFalse:
		return false, nil
	case tTrue:
		return true, nil
	case tInt, tInt8, tInt16, tInt32, tInt64:
		v, err := d.varint()
		if err != nil {
			return nil, err
		}
		switch tag {
		case tInt:
			return int(v), nil
		case tInt8:
			return int8(v), nil
		case tInt16:
			return int16(v), nil
		case tInt32:
			return int32(v), nil
		}
		return v, nil
	case tUint, tUint8, tUint16, tUint32, tUint64:
		v, err := d.uvarint()
		if err != nil {
			return nil, err
		}
		switch tag {
		case tUint:
			return uint(v), nil
		case tUint8:
			return uint8(v), nil
		case tUint16:
			return uint16(v), nil
		case tUint32:
			return uint32(v), nil
		}
		return v, nil
	case tFloat32:
		b, err := d.raw(4)
		if err != nil {
			return nil, err
		}
		return math.Float32frombits(binary.LittleEndian.Uint32(b)), nil
	case tFloat64:
		b, err := d.raw(8)
		if err != nil {
			return nil, err
		}
		return math.Float64frombits(binary.LittleEndian.Uint64(b)), nil
	case tString:
		return d.str()
	case tBytes:
		n, err := d.count()
		if err != nil {
			return nil, err
		}
		b, err := d.raw(n)
		if err != nil {
			return nil, err
		}
		return append([]byte(nil), b...), nil
	case tBytesOOB:
		if d.frame != nil {
			b, err := d.buf()
			return append([]byte(nil), b...), err
		}
		return d.buf()
	case tNumSlice, tNumOOB:
		et, err := d.byte1()
		if err != nil {
			return nil, err
		}
		n, err := d.uvarint()
		if err != nil {
			return nil, err
		}
		size := tagSize(et)
		if size == 0 {
			return nil, d.corrupt("bad numeric element tag")
		}
		if n > math.MaxInt64/uint64(size) {
			return nil, d.corrupt("numeric slice too long")
		}
		var raw []byte
		if tag == tNumOOB {
			raw, err = d.buf()
			if err != nil {
				return nil, err
			}
			if uint64(len(raw)) != n*uint64(size) {
				return nil, d.corrupt("numeric buffer length mismatch")
			}
		} else {
			if n*uint64(size) > uint64(len(d.b)-d.pos) {
				return nil, d.corrupt("numeric slice beyond payload")
			}
			raw, _ = d.raw(int(n) * size)
		}
		return numSlice(et, raw, int(n), tag == tNumSlice || d.frame != nil), nil
	case tStrings:
		n, err := d.count()
		if err != nil {
			return nil, err
		}
		out := make([]string, 0, hint(n))
		for i := 0; i < n; i++ {
			s, err := d.str()
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	case tList, tMapStr, tMapAny, tStruct:
		d.depth++
		defer func() { d.depth-- }()
		if d.depth > maxDepth {
			return nil, d.corrupt("nesting too deep")
		}
		return d.decodeContainer(tag)
	case tTime:
		sec, err := d.varint()
		if err != nil {
			return nil, err
		}
		ns, err := d.uvarint()
		if err != nil {
			return nil, err
		}
		loc, err := d.str()
		if err != nil {
			return nil, err
		}
		t := time.Unix(sec, int64(ns%1e9))
		if loc == "UTC" {
			t = t.UTC()
		}
		return t, nil
	case tDuration:
		v, err := d.varint()
		return time.Duration(v), err
	case tRef:
		s, err := d.str()
		return Ref{Name: s}, err
	default:
		if v, ok, err := d.decodeHook(tag); ok {
			return v, err
		}
		return nil, d.corrupt(fmt.Sprintf("unknown tag %d", tag))
	}
}

func (d *Decoder) decodeContainer(tag byte) (any, error) {
	switch tag {
	case tList:
		n, err := d.count()
		if err != nil {
			return nil, err
		}
		out := make([]any, 0, hint(n))
		for i := 0; i < n; i++ {
			v, err := d.decode()
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case tMapStr, tStruct:
		if tag == tStruct {
			if _, err := d.str(); err != nil { // type name, informative only
				return nil, err
			}
		}
		n, err := d.count()
		if err != nil {
			return nil, err
		}
		out := make(map[string]any, hint(n))
		for i := 0; i < n; i++ {
			k, err := d.str()
			if err != nil {
				return nil, err
			}
			if out[k], err = d.decode(); err != nil {
				return nil, err
			}
		}
		return out, nil
	default: // tMapAny
		n, err := d.count()
		if err != nil {
			return nil, err
		}
		out := make(map[any]any, hint(n))
		for i := 0; i < n; i++ {
			k, err := d.decode()
			if err != nil {
				return nil, err
			}
			if k != nil && !reflect.TypeOf(k).Comparable() {
				return nil, d.corrupt("map key not comparable")
			}
			if out[k], err = d.decode(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
}

func tagSize(t byte) int {
	switch t {
	case tInt8:
		return 1
	case tInt16, tUint16:
		return 2
	case tInt32, tUint32, tFloat32:
		return 4
	case tInt, tInt64, tUint, tUint64, tFloat64:
		return 8
	}
	return 0
}

// numSlice makes a typed slice over raw little-endian bytes. Out-of-band
// buffers are aligned and owned by the receiver, so they are aliased;
// inline bytes are copied (they may be unaligned).
func numSlice(t byte, raw []byte, n int, inline bool) any {
	if inline || uintptr(unsafe.Pointer(unsafe.SliceData(raw)))%8 != 0 {
		raw = append(make([]byte, 0, len(raw)+8)[:0], raw...)
		if uintptr(unsafe.Pointer(unsafe.SliceData(raw)))%8 != 0 {
			// make() of >= 8 bytes is 8-aligned in Go's allocator; keep a guard anyway.
			al := make([]uint64, (len(raw)+7)/8)
			b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(al))), len(raw))
			copy(b, raw)
			raw = b
		}
	}
	p := unsafe.Pointer(unsafe.SliceData(raw))
	if n == 0 {
		p = nil
	}
	switch t {
	case tInt:
		return unsafe.Slice((*int)(p), n)
	case tInt8:
		return unsafe.Slice((*int8)(p), n)
	case tInt16:
		return unsafe.Slice((*int16)(p), n)
	case tInt32:
		return unsafe.Slice((*int32)(p), n)
	case tInt64:
		return unsafe.Slice((*int64)(p), n)
	case tUint:
		return unsafe.Slice((*uint)(p), n)
	case tUint16:
		return unsafe.Slice((*uint16)(p), n)
	case tUint32:
		return unsafe.Slice((*uint32)(p), n)
	case tUint64:
		return unsafe.Slice((*uint64)(p), n)
	case tFloat32:
		return unsafe.Slice((*float32)(p), n)
	default:
		return unsafe.Slice((*float64)(p), n)
	}
}

// DecodeValues decodes exactly n values from a payload.
func DecodeValues(ctrl []byte, bufs [][]byte, n int) ([]any, error) {
	return DecodeBulk(ctrl, bufs, n, nil)
}

// DecodeBulk is decodeValues receiving the arrays the payload refers to
// through r.
func DecodeBulk(ctrl []byte, bufs [][]byte, n int, r BulkReceiver) ([]any, error) {
	d := &Decoder{b: ctrl, bufs: bufs, bulk: r}
	return d.values(n)
}

// CheckValues reports whether a payload decodes as exactly n values, as
// DecodeValues, without keeping them (no copy of their arrays).
func CheckValues(ctrl []byte, bufs [][]byte, n int) error {
	d := &Decoder{b: ctrl, bufs: bufs, check: true}
	_, err := d.values(n)
	return err
}

// values decodes exactly n values, the whole payload.
func (d *Decoder) values(n int) ([]any, error) {
	ctrl := d.b
	out := make([]any, n)
	for i := range out {
		v, err := d.decode()
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	if d.pos != len(ctrl) {
		return nil, d.corrupt("trailing bytes")
	}
	return out, nil
}

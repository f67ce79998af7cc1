package collective

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
)

// Number is the set of element types reductions work on.
type Number interface {
	int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64 | float32 | float64
}

// Op names a reduction. Built-in ops have kernels for every Number type;
// RegisterOp adds user ops, one kernel per type.
type Op struct{ name string }

// Built-in element-wise reductions. Integer Sum and Prod wrap around on
// overflow as Go arithmetic does. Min and Max on floats follow Go's min and
// max builtins: a NaN on any rank gives NaN.
var (
	Sum  = Op{"sum"}
	Prod = Op{"prod"}
	Min  = Op{"min"}
	Max  = Op{"max"}
)

// Name returns the op's registered name.
func (o Op) Name() string { return o.name }

func (o Op) String() string { return o.name }

// kernel computes dst[i] = f(a[i], b[i]) for n elements; dst may alias a or
// b. All three slices start at element 0.
type kernel func(dst, a, b []byte, n int64)

var (
	opsMu sync.RWMutex
	ops   = map[string]map[arrow.Type]kernel{}
)

// RegisterOp registers fn as the kernel of the reduction `name` for element
// type T and returns the Op. fn must compute dst[i] = f(a[i], b[i]) for every
// i, where a holds the lower ranks' partial result; dst may alias a or b.
// Register the same name once per element type it should support. An op need
// not be commutative but must be associative up to the documented order.
// Registering a built-in name or a (name, type) pair twice is an error.
func RegisterOp[T Number](name string, fn func(dst, a, b []T)) (Op, error) {
	if name == "" || fn == nil {
		return Op{}, fmt.Errorf("%w: RegisterOp needs a name and a kernel", ErrArgument)
	}
	switch name {
	case Sum.name, Prod.name, Min.name, Max.name:
		return Op{}, fmt.Errorf("%w: op %q is built in", ErrArgument, name)
	}
	id := typeID[T]()
	opsMu.Lock()
	defer opsMu.Unlock()
	if ops[name] == nil {
		ops[name] = map[arrow.Type]kernel{}
	}
	if ops[name][id] != nil {
		return Op{}, fmt.Errorf("%w: op %q already has a %s kernel", ErrArgument, name, typeOf(id))
	}
	ops[name][id] = wrap(fn)
	return Op{name}, nil
}

// Elementwise turns a scalar function into a kernel for RegisterOp. The
// call through f costs more than a built-in loop; write a slice kernel for
// hot paths.
func Elementwise[T Number](f func(a, b T) T) func(dst, a, b []T) {
	return func(dst, a, b []T) {
		a, b = a[:len(dst)], b[:len(dst)]
		for i := range dst {
			dst[i] = f(a[i], b[i])
		}
	}
}

// LookupOp returns the registered op with this name.
func LookupOp(name string) (Op, error) {
	opsMu.RLock()
	defer opsMu.RUnlock()
	if ops[name] == nil {
		names := make([]string, 0, len(ops))
		for n := range ops {
			names = append(names, n)
		}
		sort.Strings(names)
		return Op{}, fmt.Errorf("%w: %q (registered: %s)", ErrUnknownOp, name, strings.Join(names, ", "))
	}
	return Op{name}, nil
}

func lookupKernel(o Op, dt arrow.DataType) (kernel, error) {
	opsMu.RLock()
	k := ops[o.name][dt.ID()]
	opsMu.RUnlock()
	if k == nil {
		return nil, fmt.Errorf("%w: op %q has no kernel for %s", ErrUnknownOp, o.name, dt)
	}
	return k, nil
}

func typeID[T Number]() arrow.Type {
	var z T
	switch any(z).(type) {
	case int8:
		return arrow.INT8
	case int16:
		return arrow.INT16
	case int32:
		return arrow.INT32
	case int64:
		return arrow.INT64
	case uint8:
		return arrow.UINT8
	case uint16:
		return arrow.UINT16
	case uint32:
		return arrow.UINT32
	case uint64:
		return arrow.UINT64
	case float32:
		return arrow.FLOAT32
	default:
		return arrow.FLOAT64
	}
}

// view reinterprets the first n elements of b as []T. b must be aligned for
// T (receive buffers and arena ranges are 64-byte aligned; Arrow buffers
// are allocated aligned).
func view[T Number](b []byte, n int64) []T {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

func wrap[T Number](fn func(dst, a, b []T)) kernel {
	return func(dst, a, b []byte, n int64) {
		if n == 0 {
			return
		}
		fn(view[T](dst, n), view[T](a, n), view[T](b, n))
	}
}

func sumK[T Number](dst, a, b []T) {
	a, b = a[:len(dst)], b[:len(dst)]
	for i := range dst {
		dst[i] = a[i] + b[i]
	}
}

func prodK[T Number](dst, a, b []T) {
	a, b = a[:len(dst)], b[:len(dst)]
	for i := range dst {
		dst[i] = a[i] * b[i]
	}
}

func minK[T Number](dst, a, b []T) {
	a, b = a[:len(dst)], b[:len(dst)]
	for i := range dst {
		dst[i] = min(a[i], b[i])
	}
}

func maxK[T Number](dst, a, b []T) {
	a, b = a[:len(dst)], b[:len(dst)]
	for i := range dst {
		dst[i] = max(a[i], b[i])
	}
}

func registerBuiltin[T Number]() {
	id := typeID[T]()
	for name, k := range map[string]kernel{
		Sum.name: wrap(sumK[T]), Prod.name: wrap(prodK[T]), Min.name: wrap(minK[T]), Max.name: wrap(maxK[T]),
	} {
		if ops[name] == nil {
			ops[name] = map[arrow.Type]kernel{}
		}
		ops[name][id] = k
	}
}

func init() {
	registerBuiltin[int8]()
	registerBuiltin[int16]()
	registerBuiltin[int32]()
	registerBuiltin[int64]()
	registerBuiltin[uint8]()
	registerBuiltin[uint16]()
	registerBuiltin[uint32]()
	registerBuiltin[uint64]()
	registerBuiltin[float32]()
	registerBuiltin[float64]()
	registerSIMD()
}

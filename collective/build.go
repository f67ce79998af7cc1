package collective

import (
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// msgOwner is the memory.Allocator behind every buffer that aliases one
// received message: each buffer's last Release calls Free, and the last Free
// of the message runs done (release the message, tell the arena owner).
type msgOwner struct {
	n    atomic.Int64
	done func()
}

// Allocate is never used: aliasing buffers are immutable.
func (o *msgOwner) Allocate(size int) []byte { return make([]byte, size) }

// Reallocate is never used: aliasing buffers are immutable.
func (o *msgOwner) Reallocate(size int, b []byte) []byte {
	nb := make([]byte, size)
	copy(nb, b)
	return nb
}

// Free drops one buffer of the message.
func (o *msgOwner) Free([]byte) {
	if o.n.Add(-1) == 0 && o.done != nil {
		o.done()
	}
}

// buffer wraps b as an immutable Arrow buffer owned by o.
func (o *msgOwner) buffer(b []byte) *memory.Buffer {
	o.n.Add(1)
	return memory.NewBufferWithAllocator(b, o)
}

// arrayFrom builds an array over c's bytes. With o non-nil the buffers are
// owned by o; the caller keeps no reference.
func arrayFrom(c column, o *msgOwner) arrow.Array {
	mk := func(b []byte) *memory.Buffer {
		if o != nil {
			return o.buffer(b)
		}
		return memory.NewBufferBytes(b)
	}
	var valid *memory.Buffer
	if c.valid != nil {
		valid = mk(c.valid)
	}
	data := mk(c.data)
	d := array.NewData(c.dt, int(c.n), []*memory.Buffer{valid, data}, nil, int(c.nulls), int(c.off))
	if valid != nil {
		valid.Release()
	}
	data.Release()
	a := array.MakeFromData(d)
	d.Release()
	return a
}

// assembler builds one contiguous array from pieces put at element
// positions: the gather-contiguous, van de Geijn bcast and large reduce
// paths. Each piece is copied once.
type assembler struct {
	dt    arrow.DataType
	n     int64
	w     int64
	mem   memory.Allocator
	data  *memory.Buffer
	valid *memory.Buffer // nil until a piece has nulls
}

func newAssembler(dt arrow.DataType, n int64, mem memory.Allocator) *assembler {
	a := &assembler{dt: dt, n: n, w: width(dt), mem: mem}
	if am, ok := mem.(arenaAllocator); ok && n > 0 {
		// every byte is written by put or a reduction: skip the clear
		if b, err := am.a.Alloc(n * a.w); err == nil {
			a.data = memory.NewBufferWithAllocator(b, mem)
			return a
		}
	}
	a.data = memory.NewResizableBuffer(mem)
	a.data.Resize(int(n * a.w))
	return a
}

// put copies c to elements [at, at+c.n).
func (a *assembler) put(at int64, c column) {
	copyLarge(a.data.Bytes()[at*a.w:], c.data[c.off*a.w:(c.off+c.n)*a.w])
	if c.valid == nil {
		if a.valid != nil {
			bitutil.SetBitsTo(a.valid.Bytes(), at, c.n, true)
		}
		return
	}
	if a.valid == nil {
		a.valid = memory.NewResizableBuffer(a.mem)
		a.valid.Resize(int((a.n + 7) / 8))
		bitutil.SetBitsTo(a.valid.Bytes(), 0, a.n, true)
	}
	bitutil.CopyBitmap(c.valid, int(c.off), int(c.n), a.valid.Bytes(), int(at))
}

// putPlaced is put for a piece that may lie in place already (a segment
// the transport read straight into the assembly): then only its validity
// is recorded. It reports whether it copied.
func (a *assembler) putPlaced(at int64, c column) bool {
	if c.valid != nil || c.n == 0 || at < 0 || (at+c.n)*a.w > int64(a.data.Len()) || &c.data[c.off*a.w] != &a.data.Bytes()[at*a.w] {
		a.put(at, c)
		return c.n > 0
	}
	if a.valid != nil {
		bitutil.SetBitsTo(a.valid.Bytes(), at, c.n, true)
	}
	return false
}

// column views the assembled bytes.
func (a *assembler) column() column {
	c := column{dt: a.dt, n: a.n, data: a.data.Bytes()}
	if a.valid != nil {
		c.valid = a.valid.Bytes()
		c.nulls = a.n - int64(bitutil.CountSetBits(c.valid, 0, int(a.n)))
		if c.nulls == 0 {
			c.valid = nil
		}
	}
	return c
}

// finish returns the array and gives up the assembler's references.
func (a *assembler) finish() arrow.Array {
	c := a.column()
	var valid *memory.Buffer
	if c.valid != nil {
		valid = a.valid
	}
	d := array.NewData(a.dt, int(a.n), []*memory.Buffer{valid, a.data}, nil, int(c.nulls), 0)
	a.release()
	arr := array.MakeFromData(d)
	d.Release()
	return arr
}

// release frees the assembler's buffers (on error paths, or after finish
// handed them to an array).
func (a *assembler) release() {
	if a.data != nil {
		a.data.Release()
		a.data = nil
	}
	if a.valid != nil {
		a.valid.Release()
		a.valid = nil
	}
}

// arrayFromInt64 builds an int64 array on the Go heap (control values).
func arrayFromInt64(v []int64) arrow.Array {
	b := array.NewInt64Builder(memory.DefaultAllocator)
	defer b.Release()
	b.AppendValues(v, nil)
	return b.NewArray()
}

// copyLarge is copy in 8 MiB steps: runtime.memmove cannot be preempted, and
// one multi-gigabyte copy would hold up a stop-the-world GC, and with it
// every goroutine of the rank (heartbeats included), for seconds.
func copyLarge(dst, src []byte) int {
	const step = 8 << 20
	n := min(len(dst), len(src))
	for i := 0; i < n; i += step {
		copy(dst[i:min(i+step, n)], src[i:min(i+step, n)])
	}
	return n
}

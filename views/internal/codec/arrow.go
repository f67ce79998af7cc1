package codec

import (
	"fmt"
	"os"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/rankhub/rankhub/collective"
)

// Arrow values travel with their buffers as out-of-band frame buffers: the
// frame points at the arrays' own memory (no copy on send), and received
// arrays are built on the frame's memory (no copy on receive), except
// arrays of at least a page (readOnlyMin), which are copied once into
// read-only memory (readOnlyArray). Received arrays are read-only, as all
// Arrow arrays are: to change values, copy them into a builder.
//
// Supported: arrays of int8..int64, uint8..uint64, float32, float64,
// boolean and utf8 strings (nulls included, slices included), records of
// such columns, and chunked arrays. Field metadata is not sent.
//
// Encoding after tArrow: a kind byte (array, record, chunked), then
//
//	array:   type byte, length, null count, bit offset (0..7), validity buffer
//	         index+1 (0: none), data buffer index, [utf8: offsets index]
//	record:  rows, fields, per field (name, nullable, array)
//	chunked: type byte, chunks, arrays
//
// A sliced array sends only the bytes its rows use (from the byte holding
// its first row), so scattering a large array sends each engine its part.
// On the bulk path (views/internal/bulk) an array is replaced by arrowBulk, its type
// byte, the sending world rank and the tag it travels with on the mesh.
const (
	arrowArray   byte = 1
	arrowRecord  byte = 2
	arrowChunked byte = 3
)

// maxArrowRows bounds the rows of a received array or record.
const maxArrowRows = 1 << 40

// arrowBulk, in place of an array's type byte, says the array travels on
// the bulk path: type byte, source world rank, tag follow (views/internal/bulk).
const arrowBulk byte = 0xfe

var arrowTypes = map[arrow.Type]arrow.DataType{
	arrow.INT8: arrow.PrimitiveTypes.Int8, arrow.INT16: arrow.PrimitiveTypes.Int16,
	arrow.INT32: arrow.PrimitiveTypes.Int32, arrow.INT64: arrow.PrimitiveTypes.Int64,
	arrow.UINT8: arrow.PrimitiveTypes.Uint8, arrow.UINT16: arrow.PrimitiveTypes.Uint16,
	arrow.UINT32: arrow.PrimitiveTypes.Uint32, arrow.UINT64: arrow.PrimitiveTypes.Uint64,
	arrow.FLOAT32: arrow.PrimitiveTypes.Float32, arrow.FLOAT64: arrow.PrimitiveTypes.Float64,
	arrow.BOOL: arrow.FixedWidthTypes.Boolean, arrow.STRING: arrow.BinaryTypes.String,
}

func init() {
	encodeHooks = append(encodeHooks, encodeArrow)
	decodeHooks[tArrow] = decodeArrow
}

func encodeArrow(e *Encoder, v any) (bool, error) {
	switch x := v.(type) {
	case arrow.Array:
		e.byte1(tArrow)
		e.byte1(arrowArray)
		return true, e.arrowArray(x)
	case arrow.RecordBatch:
		e.byte1(tArrow)
		e.byte1(arrowRecord)
		e.uvarint(uint64(x.NumRows()))
		sc := x.Schema()
		e.uvarint(uint64(x.NumCols()))
		for i := 0; i < int(x.NumCols()); i++ {
			f := sc.Field(i)
			e.str(f.Name)
			if f.Nullable {
				e.byte1(1)
			} else {
				e.byte1(0)
			}
			e.path = append(e.path, pathStep{kind: 'f', s: f.Name})
			if err := e.arrowArray(x.Column(i)); err != nil {
				return true, err
			}
			e.path = e.path[:len(e.path)-1]
		}
		return true, nil
	case *arrow.Chunked:
		if x == nil {
			e.byte1(tNil)
			return true, nil
		}
		e.byte1(tArrow)
		e.byte1(arrowChunked)
		if _, ok := arrowTypes[x.DataType().ID()]; !ok {
			return true, e.fail(nil, "Arrow type "+x.DataType().String()+" is not supported")
		}
		e.byte1(byte(x.DataType().ID()))
		e.uvarint(uint64(len(x.Chunks())))
		for i, c := range x.Chunks() {
			e.path = append(e.path, pathStep{kind: 'c', i: i})
			if err := e.arrowArray(c); err != nil {
				return true, err
			}
			e.path = e.path[:len(e.path)-1]
		}
		return true, nil
	}
	return false, nil
}

func (e *Encoder) arrowArray(a arrow.Array) error {
	dt := a.DataType()
	if _, ok := arrowTypes[dt.ID()]; !ok {
		return e.fail(nil, "Arrow type "+dt.String()+" is not supported (numeric, boolean and utf8 arrays are)")
	}
	if e.bulk != nil {
		if tag, ok := e.bulk.Send(a); ok {
			e.byte1(arrowBulk)
			e.byte1(byte(dt.ID()))
			e.uvarint(uint64(e.bulk.Rank()))
			e.uvarint(tag)
			return nil
		} // nobody got it: it goes in the frame
	}
	d := a.Data()
	bufs := d.Buffers()
	off, n := d.Offset(), d.Len()
	bit := off % 8
	first := off - bit // first row sent
	e.byte1(byte(dt.ID()))
	e.uvarint(uint64(n))
	e.uvarint(uint64(a.NullN()))
	e.uvarint(uint64(bit))
	slice := func(b *memory.Buffer, from, to int, what string) ([]byte, error) {
		if b == nil {
			if to == from {
				return nil, nil
			}
			return nil, e.fail(nil, "Arrow "+what+" buffer is missing")
		}
		bs := b.Bytes()
		if to > len(bs) {
			return nil, e.fail(nil, fmt.Sprintf("Arrow %s buffer holds %d bytes, the array needs %d", what, len(bs), to))
		}
		return bs[from:to:to], nil
	}
	bitBytes := func(rows int) int { return (rows + 7) / 8 }
	if a.NullN() > 0 && len(bufs) > 0 && bufs[0] != nil {
		vb, err := slice(bufs[0], first/8, first/8+bitBytes(bit+n), "validity")
		if err != nil {
			return err
		}
		e.uvarint(uint64(e.oob(vb)) + 1)
	} else {
		e.uvarint(0)
	}
	var data []byte
	var err error
	switch dt.ID() {
	case arrow.BOOL:
		data, err = slice(bufs[1], first/8, first/8+bitBytes(bit+n), "data")
	case arrow.STRING:
		offs, err := slice(bufs[1], first*4, (off+n+1)*4, "offsets")
		if err != nil {
			return err
		}
		e.uvarint(uint64(e.oob(offs)))
		// Offsets are absolute positions in the values buffer: send it whole.
		if len(bufs) > 2 && bufs[2] != nil {
			data = bufs[2].Bytes()
		}
	default:
		w := dt.(arrow.FixedWidthDataType).BitWidth() / 8
		data, err = slice(bufs[1], first*w, (off+n)*w, "data")
	}
	if err != nil {
		return err
	}
	e.uvarint(uint64(e.oob(data)))
	return nil
}

func decodeArrow(d *Decoder) (any, error) {
	kind, err := d.byte1()
	if err != nil {
		return nil, err
	}
	switch kind {
	case arrowArray:
		return d.arrowArray(0)
	case arrowRecord:
		rows, err := d.uvarint()
		if err != nil {
			return nil, err
		}
		if rows > maxArrowRows {
			return nil, d.corrupt(fmt.Sprintf("Arrow record of %d rows", rows))
		}
		nf, err := d.count()
		if err != nil {
			return nil, err
		}
		fields := make([]arrow.Field, 0, hint(nf))
		cols := make([]arrow.Array, 0, hint(nf))
		release := func() {
			for _, c := range cols {
				c.Release()
			}
		}
		for i := 0; i < nf; i++ {
			name, err := d.str()
			if err != nil {
				release()
				return nil, err
			}
			nb, err := d.byte1()
			if err != nil {
				release()
				return nil, err
			}
			a, err := d.arrowArray(0)
			if err != nil {
				release()
				return nil, err
			}
			if n := a.Len(); uint64(n) != rows {
				a.Release()
				release()
				return nil, d.corrupt(fmt.Sprintf("record column %q has %d rows, want %d", name, n, rows))
			}
			fields = append(fields, arrow.Field{Name: name, Type: a.DataType(), Nullable: nb == 1})
			cols = append(cols, a)
		}
		rec := array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, int64(rows))
		release()
		return rec, nil
	case arrowChunked:
		tb, err := d.byte1()
		if err != nil {
			return nil, err
		}
		dt, ok := arrowTypes[arrow.Type(tb)]
		if !ok {
			return nil, d.corrupt(fmt.Sprintf("unsupported Arrow type %d", tb))
		}
		n, err := d.count()
		if err != nil {
			return nil, err
		}
		chunks := make([]arrow.Array, 0, hint(n))
		for i := 0; i < n; i++ {
			a, err := d.arrowArray(arrow.Type(tb))
			if err != nil {
				for _, c := range chunks {
					c.Release()
				}
				return nil, err
			}
			chunks = append(chunks, a)
		}
		ch := arrow.NewChunked(dt, chunks)
		for _, c := range chunks {
			c.Release()
		}
		return ch, nil
	}
	return nil, d.corrupt(fmt.Sprintf("unknown Arrow kind %d", kind))
}

// arrowArray decodes one array whose buffers alias the frame's memory. want,
// if not zero, is the type the array must have.
func (d *Decoder) arrowArray(want arrow.Type) (arrow.Array, error) {
	tb, err := d.byte1()
	if err != nil {
		return nil, err
	}
	if tb == arrowBulk {
		return d.bulkArray(want)
	}
	dt, ok := arrowTypes[arrow.Type(tb)]
	if !ok || (want != 0 && arrow.Type(tb) != want) {
		return nil, d.corrupt(fmt.Sprintf("unsupported or unexpected Arrow type %d", tb))
	}
	var hdr [3]uint64
	for i := range hdr {
		if hdr[i], err = d.uvarint(); err != nil {
			return nil, err
		}
	}
	n, nulls, bit := hdr[0], hdr[1], hdr[2]
	if bit > 7 || n > maxArrowRows || nulls > n {
		return nil, d.corrupt("bad Arrow array header")
	}
	rows := int(n) + int(bit)
	vi, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	var validity []byte
	if vi > 0 {
		if vi-1 >= uint64(len(d.bufs)) {
			return nil, d.corrupt("Arrow validity buffer index")
		}
		validity = d.bufs[vi-1]
		if len(validity) < (rows+7)/8 {
			return nil, d.corrupt("Arrow validity buffer too short")
		}
		// Readers trust the null count (a zero skips the bitmap): it must
		// be the bitmap's.
		if set := bitutil.CountSetBits(validity, int(bit), int(n)); uint64(set)+nulls != n {
			return nil, d.corrupt(fmt.Sprintf("Arrow null count %d, the validity bitmap has %d", nulls, int(n)-set))
		}
	} else if nulls > 0 {
		return nil, d.corrupt("Arrow nulls without a validity buffer")
	}
	var offsets []byte
	if dt.ID() == arrow.STRING {
		if offsets, err = d.buf(); err != nil {
			return nil, err
		}
		if len(offsets) < (rows+1)*4 {
			return nil, d.corrupt("Arrow offsets buffer too short")
		}
	}
	data, err := d.buf()
	if err != nil {
		return nil, err
	}
	switch dt.ID() {
	case arrow.BOOL:
		if len(data) < (rows+7)/8 {
			return nil, d.corrupt("Arrow boolean buffer too short")
		}
	case arrow.STRING:
		if err := checkOffsets(offsets, rows, len(data)); err != nil {
			return nil, d.corrupt(err.Error())
		}
	default:
		if len(data) < rows*(dt.(arrow.FixedWidthDataType).BitWidth()/8) {
			return nil, d.corrupt("Arrow data buffer too short")
		}
	}
	if len(validity)+len(offsets)+len(data) >= readOnlyMin && !d.check && !d.inFrame && d.frame == nil {
		if a := readOnlyArray(dt, int(n), int(nulls), int(bit), validity, offsets, data); a != nil {
			return a, nil
		}
	}
	newBuf := memory.NewBufferBytes
	if d.frame != nil {
		newBuf = d.frame.buffer
	}
	bufs := []*memory.Buffer{nil, newBuf(data)}
	if validity != nil {
		bufs[0] = newBuf(validity)
	}
	if offsets != nil {
		bufs = []*memory.Buffer{bufs[0], newBuf(offsets), newBuf(data)}
	}
	ad := array.NewData(dt, int(n), bufs, nil, int(nulls), int(bit))
	a := array.MakeFromData(ad)
	ad.Release()
	if d.frame != nil {
		for _, b := range bufs {
			if b != nil {
				b.Release() // the array holds them
			}
		}
		return GCOwned(a), nil
	}
	return a, nil
}

// FrameOwner is a received frame whose memory is protected in place:
// the arrays decoded from it hold it, and its memory goes back once the
// last of them was released (collected, GCOwned) and the decoder let go.
type FrameOwner struct {
	n       atomic.Int64
	release func()
}

// NewFrameOwner returns an owner held once by the decoder (drop it).
func NewFrameOwner(release func()) *FrameOwner {
	o := &FrameOwner{release: release}
	o.n.Add(1)
	return o
}

// buffer returns a buffer over b that holds the frame until released.
func (o *FrameOwner) buffer(b []byte) *memory.Buffer {
	o.n.Add(1)
	return memory.NewBufferWithAllocator(b, o)
}

func (o *FrameOwner) drop() {
	if o.n.Add(-1) == 0 {
		o.release()
	}
}

// Allocate and Reallocate are never called: the buffers are not resized.
func (o *FrameOwner) Allocate(int) []byte           { return nil }
func (o *FrameOwner) Reallocate(int, []byte) []byte { return nil }
func (o *FrameOwner) Free([]byte)                   { o.drop() }

// readOnlyMin is the size from which a received array's buffers (validity,
// offsets and data together) are copied out of the frame into memory that
// faults on write: a page, the unit of protection. Smaller arrays stay in
// the frame (their copy and collection would cost more than their
// transfer); detach copies them for a driver in the hub's process.
var readOnlyMin = os.Getpagesize()

// readOnlyArray builds an array over read-only copies of its buffers
// (collective.ReadOnlyCopy): a write through Float64Values or the like
// faults instead of changing what the sender, the hub or another client
// holds. The copies' lifetime is the garbage collector's, as for bulk
// arrays (GCOwned): they are freed once neither the array nor any Arrow
// object built on its buffers is reachable. nil when no read-only memory
// could be had (the caller keeps the frame's bytes).
func readOnlyArray(dt arrow.DataType, n, nulls, offset int, validity, offsets, data []byte) arrow.Array {
	a, _ := readOnlyArrayHold(dt, n, nulls, offset, validity, offsets, data)
	return a
}

// readOnlyArrayHold is readOnlyArray that also returns the copies' hold
// (gcOwnedHold).
func readOnlyArrayHold(dt arrow.DataType, n, nulls, offset int, validity, offsets, data []byte) (arrow.Array, *GCHold) {
	bufs, err := collective.ReadOnlyBuffers(validity, data, offsets)
	if err != nil {
		return nil, nil
	}
	if offsets != nil {
		bufs = []*memory.Buffer{bufs[0], bufs[2], bufs[1]}
	} else {
		bufs = bufs[:2]
	}
	ad := array.NewData(dt, n, bufs, nil, nulls, offset)
	for _, b := range bufs {
		if b != nil {
			b.Release()
		}
	}
	a := array.MakeFromData(ad)
	ad.Release()
	out, h := GCOwnedHold(a)
	total := ROCopied.Add(int64(len(validity) + len(offsets) + len(data)))
	if at := roGCAt.Load(); total-at >= readOnlyGCBytes && roGCAt.CompareAndSwap(at, total) {
		CollectBulk() // the bulk path's collection, sooner: see readOnlyGCBytes
	}
	return out, h
}

// ReadOnlyOf is readOnlyArray of a's buffers (a primitive, boolean or
// string array, as the codec decodes): nil for another layout or when no
// read-only memory could be had. a is not released.
func ReadOnlyOf(a arrow.Array) arrow.Array {
	ro, _ := ReadOnlyOfHold(a)
	return ro
}

// ReadOnlyOfHold is ReadOnlyOf that also returns the copy's hold.
func ReadOnlyOfHold(a arrow.Array) (arrow.Array, *GCHold) {
	d := a.Data()
	bytesOf := func(b *memory.Buffer) []byte {
		if b == nil {
			return nil
		}
		return b.Bytes()
	}
	bufs := d.Buffers()
	switch {
	case len(bufs) == 2 && len(d.Children()) == 0:
		return readOnlyArrayHold(d.DataType(), d.Len(), d.NullN(), d.Offset(), bytesOf(bufs[0]), nil, bytesOf(bufs[1]))
	case len(bufs) == 3 && d.DataType().ID() == arrow.STRING:
		return readOnlyArrayHold(d.DataType(), d.Len(), d.NullN(), d.Offset(), bytesOf(bufs[0]), bytesOf(bufs[1]), bytesOf(bufs[2]))
	}
	return nil, nil
}

// readOnlyGCBytes is how much may be copied into read-only memory between
// collections started for it: its memory is reused (already faulted in)
// only once the arrays in it were collected, and the collector does not
// count it.
const readOnlyGCBytes = 32 << 20

var (
	ROCopied atomic.Int64 // bytes copied into read-only memory, ever
	roGCAt   atomic.Int64 // ROCopied when the last collection for them started
)

// bulkArray receives an array sent on the bulk path (after its marker).
func (d *Decoder) bulkArray(want arrow.Type) (arrow.Array, error) {
	tb, err := d.byte1()
	if err != nil {
		return nil, err
	}
	if _, ok := arrowTypes[arrow.Type(tb)]; !ok || (want != 0 && arrow.Type(tb) != want) {
		return nil, d.corrupt(fmt.Sprintf("unsupported or unexpected Arrow type %d", tb))
	}
	from, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	tag, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	if d.bulk == nil {
		return nil, d.corrupt("a bulk array reference, but this side has no collective mesh")
	}
	if from > 1<<31 || tag > collective.MaxTag {
		return nil, d.corrupt("bad bulk array reference")
	}
	a, err := d.bulk.Recv(int(from), tag)
	if err != nil {
		return nil, err
	}
	fw, ok := a.DataType().(arrow.FixedWidthDataType)
	if a.DataType().ID() != arrow.Type(tb) || !ok {
		a.Release()
		return nil, d.corrupt(fmt.Sprintf("bulk array of type %s, the reference says %d", a.DataType(), tb))
	}
	d.bulkBytes += int64(a.Len()) * int64(fw.BitWidth()/8)
	return a, nil
}

// checkOffsets verifies that utf8 offsets are non-decreasing and inside the
// values buffer, so a hostile frame cannot make an array read out of bounds.
func checkOffsets(b []byte, rows, size int) error {
	prev := int32(-1)
	for i := 0; i <= rows; i++ {
		o := int32(uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24)
		if o < prev || int(o) > size || o < 0 {
			return fmt.Errorf("bad Arrow string offset %d at row %d", o, i)
		}
		prev = o
	}
	return nil
}

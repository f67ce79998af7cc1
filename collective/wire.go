package collective

import (
	"encoding/binary"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
)

// Payload kinds carried in a header.
const (
	kindNone    byte = 0 // control message, no columns (barrier)
	kindArray   byte = 1 // one column
	kindRecord  byte = 2 // columns of a record, with field names
	kindChunked byte = 3 // chunks of one chunked array
)

const (
	wireMagic0  = 'R'
	wireMagic1  = 'C'
	wireVersion = 1
	// maxWireCols bounds the columns of one message so a corrupt header
	// cannot make the decoder allocate without limit.
	maxWireCols = 1 << 20
)

// column is a numeric array reduced to what crosses the wire: elements
// [off, off+n) of data (and of the validity bitmap, when present).
type column struct {
	dt    arrow.DataType
	n     int64
	off   int64 // element offset into valid and data, 0..7 when valid != nil
	nulls int64
	valid []byte // nil: no nulls
	data  []byte
}

// width returns the element size in bytes of a supported type, or 0.
func width(dt arrow.DataType) int64 {
	if t, ok := typeOf(dt.ID()).(arrow.FixedWidthDataType); ok {
		return int64(t.Bytes())
	}
	return 0
}

// numeric holds the supported types by id.
var numeric = [...]arrow.DataType{
	arrow.INT8:    arrow.PrimitiveTypes.Int8,
	arrow.INT16:   arrow.PrimitiveTypes.Int16,
	arrow.INT32:   arrow.PrimitiveTypes.Int32,
	arrow.INT64:   arrow.PrimitiveTypes.Int64,
	arrow.UINT8:   arrow.PrimitiveTypes.Uint8,
	arrow.UINT16:  arrow.PrimitiveTypes.Uint16,
	arrow.UINT32:  arrow.PrimitiveTypes.Uint32,
	arrow.UINT64:  arrow.PrimitiveTypes.Uint64,
	arrow.FLOAT32: arrow.PrimitiveTypes.Float32,
	arrow.FLOAT64: arrow.PrimitiveTypes.Float64,
}

// typeOf returns the supported type with the given id, or nil.
func typeOf(id arrow.Type) arrow.DataType {
	if id < 0 || int(id) >= len(numeric) {
		return nil
	}
	return numeric[id]
}

// columnOf views a numeric array as a column without copying. Slices
// (offset != 0) keep their bytes in place: the bitmap is cut at the byte
// holding the first element and the remaining bit offset travels along.
func columnOf(a arrow.Array) (column, error) {
	if a == nil {
		return column{}, fmt.Errorf("%w: nil array", ErrArgument)
	}
	dt := a.DataType()
	w := width(dt)
	if w == 0 {
		return column{}, fmt.Errorf("%w: %s (want int8..int64, uint8..uint64, float32, float64)", ErrType, dt)
	}
	d := a.Data()
	bufs := d.Buffers()
	n, off := int64(d.Len()), int64(d.Offset())
	var data []byte
	if len(bufs) > 1 && bufs[1] != nil {
		data = bufs[1].Bytes()
	}
	c := column{dt: dt, n: n, nulls: int64(a.NullN())}
	if c.nulls > 0 && len(bufs) > 0 && bufs[0] != nil {
		r := off % 8
		base := off - r
		c.valid = bufs[0].Bytes()[base/8 : (off+n+7)/8]
		c.data = data[base*w : (off+n)*w]
		c.off = r
		return c, nil
	}
	c.nulls = 0
	c.data = data[off*w : (off+n)*w]
	return c, nil
}

// slice returns elements [i, j) of c without copying.
func (c column) slice(i, j int64) column {
	w := width(c.dt)
	o := c.off + i
	n := j - i
	s := column{dt: c.dt, n: n}
	if c.valid == nil {
		s.data = c.data[o*w : (o+n)*w]
		return s
	}
	r := o % 8
	base := o - r
	s.valid = c.valid[base/8 : (o+n+7)/8]
	s.data = c.data[base*w : (o+n)*w]
	s.off = r
	s.nulls = n - int64(bitutil.CountSetBits(s.valid, int(r), int(n)))
	if s.nulls == 0 {
		s.valid, s.off = nil, 0
		s.data = c.data[o*w : (o+n)*w]
	}
	return s
}

// bytes returns the buffers c puts on the wire: validity (if any), data.
func (c column) bytes() [][]byte {
	if c.valid != nil {
		return [][]byte{c.valid, c.data}
	}
	return [][]byte{c.data}
}

// fieldMeta is the part of a record's schema that crosses the wire.
type fieldMeta struct {
	name     string
	nullable bool
}

// colMeta describes one column in a header.
type colMeta struct {
	typ      arrow.Type
	n, off   int64
	nulls    int64
	hasValid bool
}

// bufRef locates one buffer: inline (the next entry of Message.Bufs) or a
// range of the sender's arena.
type bufRef struct {
	arena  bool
	off, n int64
}

// header is the decoded form of a message header.
type header struct {
	kind   byte
	arena  string // sender's arena name when any bufRef is in an arena
	aux    int64
	aux2   uint64 // arena release token
	fields []fieldMeta
	cols   []colMeta
	refs   []bufRef
}

func (h *header) marshal() []byte {
	b := make([]byte, 0, 32+len(h.cols)*16+len(h.refs)*12)
	b = append(b, wireMagic0, wireMagic1, wireVersion, h.kind)
	b = binary.AppendVarint(b, h.aux)
	b = binary.AppendUvarint(b, h.aux2)
	b = appendString(b, h.arena)
	b = binary.AppendUvarint(b, uint64(len(h.fields)))
	for _, f := range h.fields {
		b = appendString(b, f.name)
		b = appendBool(b, f.nullable)
	}
	b = binary.AppendUvarint(b, uint64(len(h.cols)))
	for _, c := range h.cols {
		b = append(b, byte(c.typ))
		b = binary.AppendUvarint(b, uint64(c.n))
		b = binary.AppendUvarint(b, uint64(c.off))
		b = binary.AppendUvarint(b, uint64(c.nulls))
		b = appendBool(b, c.hasValid)
	}
	for _, r := range h.refs {
		b = appendBool(b, r.arena)
		b = binary.AppendUvarint(b, uint64(r.off))
		b = binary.AppendUvarint(b, uint64(r.n))
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// reader decodes a header; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: header truncated or corrupt at %s", ErrProtocol, what)
	}
}

func (r *reader) byte1(what string) byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail(what)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uvarint(what string, max uint64) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > max {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return int64(v)
}

func (r *reader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) str(what string) string {
	n := r.uvarint(what, uint64(len(r.b)))
	if r.err != nil {
		return ""
	}
	if n > int64(len(r.b)) { // the bound above counted the length's own bytes
		r.fail(what)
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) bool1(what string) bool {
	v := r.byte1(what)
	if v > 1 {
		r.fail(what)
	}
	return v == 1
}

const maxInt63 = 1<<63 - 1

// parseHeader decodes and checks a header. It never panics on bad input.
func parseHeader(b []byte) (*header, error) {
	if len(b) < 4 || b[0] != wireMagic0 || b[1] != wireMagic1 {
		return nil, fmt.Errorf("%w: bad header magic", ErrProtocol)
	}
	if b[2] != wireVersion {
		return nil, fmt.Errorf("%w: header version %d, want %d", ErrProtocol, b[2], wireVersion)
	}
	h := &header{kind: b[3]}
	if h.kind > kindChunked {
		return nil, fmt.Errorf("%w: unknown payload kind %d", ErrProtocol, h.kind)
	}
	r := &reader{b: b[4:]}
	h.aux = r.varint("aux")
	h.aux2 = uint64(r.uvarint("token", maxInt63))
	h.arena = r.str("arena name")
	nf := r.uvarint("field count", maxWireCols)
	for i := int64(0); i < nf && r.err == nil; i++ {
		h.fields = append(h.fields, fieldMeta{name: r.str("field name"), nullable: r.bool1("nullable")})
	}
	nc := r.uvarint("column count", maxWireCols)
	nbuf := int64(0)
	for i := int64(0); i < nc && r.err == nil; i++ {
		c := colMeta{typ: arrow.Type(r.byte1("column type"))}
		c.n = r.uvarint("column length", maxInt63)
		c.off = r.uvarint("column offset", 7)
		c.nulls = r.uvarint("column nulls", maxInt63)
		c.hasValid = r.bool1("column validity flag")
		if r.err != nil {
			break
		}
		dt := typeOf(c.typ)
		if dt == nil {
			return nil, fmt.Errorf("%w: column %d has type id %d", ErrType, i, c.typ)
		}
		if c.nulls > c.n || (c.nulls > 0) != c.hasValid {
			return nil, fmt.Errorf("%w: column %d: %d nulls in %d elements (validity %v)", ErrProtocol, i, c.nulls, c.n, c.hasValid)
		}
		if c.n > maxInt63/8-8 {
			return nil, fmt.Errorf("%w: column %d: length %d too large", ErrProtocol, i, c.n)
		}
		h.cols = append(h.cols, c)
		nbuf++
		if c.hasValid {
			nbuf++
		}
	}
	for i := int64(0); i < nbuf && r.err == nil; i++ {
		ref := bufRef{arena: r.bool1("buffer location")}
		ref.off = r.uvarint("buffer offset", maxInt63)
		ref.n = r.uvarint("buffer length", maxInt63)
		h.refs = append(h.refs, ref)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing header bytes", ErrProtocol, len(r.b))
	}
	if h.kind == kindArray && len(h.cols) != 1 {
		return nil, fmt.Errorf("%w: array message with %d columns", ErrProtocol, len(h.cols))
	}
	if h.kind == kindRecord && len(h.fields) != len(h.cols) {
		return nil, fmt.Errorf("%w: record message with %d fields and %d columns", ErrProtocol, len(h.fields), len(h.cols))
	}
	return h, nil
}

// checkBuffers verifies that the buffers of column i are large enough for
// its length and offset.
func checkBuffers(i int, c colMeta, valid, data []byte) error {
	w := width(typeOf(c.typ))
	if need := (c.off + c.n) * w; int64(len(data)) < need {
		return fmt.Errorf("%w: column %d: data buffer has %d bytes, need %d", ErrProtocol, i, len(data), need)
	}
	if c.hasValid {
		if need := (c.off + c.n + 7) / 8; int64(len(valid)) < need {
			return fmt.Errorf("%w: column %d: validity buffer has %d bytes, need %d", ErrProtocol, i, len(valid), need)
		}
	}
	return nil
}

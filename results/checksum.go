package results

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
)

// batchChecksum returns the CRC32C of a record batch's content: its
// schema (names, types, nullability and metadata, so that a damaged schema
// fails every batch); its row count; per column its length, null count, validity bits (when it has
// nulls) and values (the bytes of fixed-width values, the bits of booleans,
// the offsets relative to the first and the bytes of strings, the offsets
// and child of lists); then the metadata pairs keys[i], vals[i]. It depends
// only on what a reader decodes, not on buffer padding or slicing, so the
// writer computes it before encoding and a reader after decoding.
func batchChecksum(rec arrow.RecordBatch, keys, vals []string) uint32 {
	h := crcHash{}
	sc := rec.Schema()
	for _, f := range sc.Fields() {
		h.str(f.Name)
		h.str(f.Type.String())
		if f.Nullable {
			h.u64(1)
		} else {
			h.u64(0)
		}
	}
	md := sc.Metadata()
	for i, k := range md.Keys() {
		h.str(k)
		h.str(md.Values()[i])
	}
	h.u64(uint64(rec.NumRows()))
	for _, col := range rec.Columns() {
		h.data(col.Data())
	}
	for i, k := range keys {
		h.str(k)
		h.str(vals[i])
	}
	return h.c
}

// checksummable reports whether batchChecksum covers columns of type dt.
func checksummable(dt arrow.DataType) error {
	switch dt.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT32, arrow.FLOAT64, arrow.TIMESTAMP, arrow.DATE32, arrow.DATE64, arrow.DURATION,
		arrow.BOOL, arrow.STRING, arrow.BINARY:
		return nil
	case arrow.LIST:
		return checksummable(dt.(*arrow.ListType).Elem())
	}
	return fmt.Errorf("type %s is not supported in result files", dt)
}

// verifyChecksum checks rec against its KeyChecksum metadata. A batch
// decoded from damaged bytes may have buffers that do not fit its lengths;
// hashing it then fails, and that is reported as an error too.
func verifyChecksum(rec arrow.RecordBatch) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed batch: %v", p)
		}
	}()
	rm, ok := rec.(arrow.RecordBatchWithMetadata)
	if !ok {
		return fmt.Errorf("no %s metadata", KeyChecksum)
	}
	md := rm.Metadata()
	var keys, vals []string
	want := ""
	found := false
	for i, k := range md.Keys() {
		if k == KeyChecksum {
			want, found = md.Values()[i], true
		} else {
			keys, vals = append(keys, k), append(vals, md.Values()[i])
		}
	}
	if !found {
		return fmt.Errorf("no %s metadata", KeyChecksum)
	}
	for _, f := range rec.Schema().Fields() {
		if err := checksummable(f.Type); err != nil {
			return fmt.Errorf("column %q: %w", f.Name, err)
		}
	}
	w, err := strconv.ParseUint(want, 16, 32)
	if err != nil {
		return fmt.Errorf("%s %q is not a CRC32C", KeyChecksum, want)
	}
	if got := batchChecksum(rec, keys, vals); got != uint32(w) {
		return fmt.Errorf("checksum mismatch (CRC32C %08x, recorded %08x)", got, w)
	}
	return nil
}

type crcHash struct {
	c   uint32
	buf [8]byte
}

func (h *crcHash) bytes(b []byte) { h.c = crc32.Update(h.c, castagnoli, b) }

func (h *crcHash) str(s string) {
	h.u64(uint64(len(s)))
	h.bytes([]byte(s))
}

func (h *crcHash) u64(v uint64) {
	binary.LittleEndian.PutUint64(h.buf[:], v)
	h.bytes(h.buf[:])
}

// bits hashes n bits of b from bit off, the bits past n cleared.
func (h *crcHash) bits(b []byte, off, n int) {
	if n == 0 {
		return
	}
	nb := (n + 7) / 8
	if off%8 == 0 && n%8 == 0 {
		h.bytes(b[off/8 : off/8+nb])
		return
	}
	tmp := make([]byte, nb)
	bitutil.CopyBitmap(b, off, n, tmp, 0)
	h.bytes(tmp)
}

func (h *crcHash) data(d arrow.ArrayData) {
	n, off := d.Len(), d.Offset()
	h.u64(uint64(n))
	h.u64(uint64(d.NullN()))
	if n == 0 {
		return
	}
	bufs := d.Buffers()
	if d.NullN() > 0 && bufs[0] != nil {
		h.bits(bufs[0].Bytes(), off, n)
	}
	switch dt := d.DataType().(type) {
	case *arrow.BooleanType:
		h.bits(bufs[1].Bytes(), off, n)
	case arrow.FixedWidthDataType:
		w := dt.BitWidth() / 8
		h.bytes(bufs[1].Bytes()[off*w : (off+n)*w])
	case *arrow.StringType, *arrow.BinaryType:
		o := h.offsets(bufs[1].Bytes(), off, n)
		h.bytes(bufs[2].Bytes()[o[0]:o[n]])
	case *arrow.ListType:
		o := h.offsets(bufs[1].Bytes(), off, n)
		child := d.Children()[0]
		sub := array.NewSliceData(child, int64(o[0]), int64(o[n]))
		h.data(sub)
		sub.Release()
	default:
		panic(fmt.Sprintf("results: batchChecksum: type %s", dt)) // newIPCFile refuses such schemas
	}
}

// offsets hashes n+1 int32 offsets from off, relative to the first, and
// returns them.
func (h *crcHash) offsets(b []byte, off, n int) []int32 {
	o := arrow.Int32Traits.CastFromBytes(b)[off : off+n+1]
	if o[0] == 0 {
		h.bytes(arrow.Int32Traits.CastToBytes(o))
		return o
	}
	rel := make([]int32, len(o))
	for i, v := range o {
		rel[i] = v - o[0]
	}
	h.bytes(arrow.Int32Traits.CastToBytes(rel))
	return o
}

package results

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// The file layout (results_version 2). arrow-go's FileWriter writes the
// footer only when it is closed, so a growing file would not be an Arrow
// file until then. Here every flush appends one unit to the file:
//
//	[record batch messages, 8-byte aligned]
//	[guard: an end-of-stream marker, the CRC32C of the schema message and of
//	 the footer, "RHCRC32C"]
//	[Arrow footer listing every batch so far][footer length]["ARROW1"]
//
// so after each flush the file is a complete Arrow IPC file that any Arrow
// reader opens. Bytes once written are never rewritten: a reader that
// opened the file at an earlier size reads the earlier complete file, and a
// writer killed in the middle of a flush leaves the previous footer intact
// (Open finds it by scanning back from the end). The footers of earlier
// flushes stay between the batches, where Arrow readers, which reach
// batches through the last footer's offsets, never look; when they take
// more room than the batches, the Writer compacts the file (a copy without
// them, renamed over it, so a reader never sees a partial file).
//
// Each record batch carries the CRC32C of its content and metadata under
// the batch metadata key rankhub.crc32c (see batchChecksum), so every batch
// is checked wherever it is found. The guard lets Open trust the footer
// (offsets, schema); other readers ignore it.

// guardMagic ends the guard, just before a footer.
const guardMagic = "RHCRC32C"

// guardLen is the guard's length: EOS marker, two CRCs, magic.
const guardLen = 8 + 4 + 4 + len(guardMagic)

// KeyChecksum is the record batch metadata key holding the batch's CRC32C
// (8 hex digits), written on every batch of a results_version 2 file.
const KeyChecksum = "rankhub.crc32c"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// block locates one record batch message, as in the Arrow footer.
type block struct {
	off  int64 // file offset of the message
	meta int32 // bytes of the message's prefix and metadata
	body int64 // bytes of its body
}

func (b block) end() int64 { return b.off + int64(b.meta) + b.body }

// ipcFile writes an Arrow IPC file as described above, through arrow-go's
// stream encoder. Write buffers a batch's message, with its checksum added
// to its metadata; Commit appends the buffered messages, the guard and the
// footer. Not safe for concurrent use.
type ipcFile struct {
	f         *os.File
	enc       *ipc.Writer
	schema    *arrow.Schema
	end       int64  // file size after the last commit
	pending   []byte // messages not yet committed; they start at end
	blocks    []block
	schemaEnd int64 // end of the schema message
	schemaCRC uint32
	template  []byte // a footer without batches, holding the schema
	schemaPos int    // offset of the Schema table in template
	trailer   int64  // bytes of the last commit's guard and footer
	dead      int64  // bytes of earlier commits' guards and footers
}

// newIPCFile prepares to write an Arrow file with schema to f, which must be
// empty. Nothing is written before the first Commit.
func newIPCFile(f *os.File, schema *arrow.Schema, mem memory.Allocator) (*ipcFile, error) {
	for _, fd := range schema.Fields() {
		if err := checksummable(fd.Type); err != nil {
			return nil, fmt.Errorf("column %q: %w", fd.Name, err)
		}
	}
	tpl, pos, err := footerTemplate(schema, mem)
	if err != nil {
		return nil, err
	}
	x := &ipcFile{f: f, schema: schema, template: tpl, schemaPos: pos}
	x.enc = ipc.NewWriterWithPayloadWriter((*payloadSink)(x), ipc.WithSchema(schema), ipc.WithAllocator(mem))
	return x, nil
}

// Write encodes rec, with its checksum added to its metadata, and buffers
// its message until Commit.
func (x *ipcFile) Write(rec arrow.RecordBatch) error {
	var keys, vals []string
	if rm, ok := rec.(arrow.RecordBatchWithMetadata); ok {
		md := rm.Metadata()
		for i, k := range md.Keys() {
			if k != KeyChecksum {
				keys, vals = append(keys, k), append(vals, md.Values()[i])
			}
		}
	}
	sum := batchChecksum(rec, keys, vals)
	keys, vals = append(keys, KeyChecksum), append(vals, fmt.Sprintf("%08x", sum))
	out := array.NewRecordBatchWithMetadata(x.schema, rec.Columns(), rec.NumRows(), arrow.NewMetadata(keys, vals))
	defer out.Release()
	return x.enc.Write(out)
}

// Commit appends the buffered messages, the guard and a footer listing
// every batch so far, in one write. The caller fsyncs.
func (x *ipcFile) Commit() error {
	if len(x.pending) == 0 {
		return errors.New("results: internal error: commit without a batch")
	}
	x.pad()
	msgs := len(x.pending)
	x.pending = x.appendTrailer(x.pending)
	if _, err := x.f.WriteAt(x.pending, x.end); err != nil {
		return err
	}
	x.end += int64(len(x.pending))
	x.dead += x.trailer
	x.trailer = int64(len(x.pending) - msgs)
	x.pending = x.pending[:0]
	return nil
}

// Pending reports whether messages wait for a Commit.
func (x *ipcFile) Pending() bool { return len(x.pending) > 0 }

// CommitIfLarge commits when the buffered messages exceed 8 MiB, so that
// copying a large file (Recover, Append) holds a bounded part of it in
// memory.
func (x *ipcFile) CommitIfLarge() error {
	if len(x.pending) < 8<<20 {
		return nil
	}
	return x.Commit()
}

// appendTrailer appends the guard, the footer, its length and the magic.
func (x *ipcFile) appendTrailer(b []byte) []byte {
	footer := buildFooter(x.template, x.schemaPos, x.blocks)
	b = binary.LittleEndian.AppendUint32(b, 0xFFFFFFFF)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint32(b, x.schemaCRC)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(footer, castagnoli))
	b = append(b, guardMagic...)
	b = append(b, footer...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(footer)))
	return append(b, arrowMagic...)
}

// Dead returns the bytes taken by the guards and footers of earlier
// commits, and the bytes of everything else.
func (x *ipcFile) Dead() (dead, live int64) { return x.dead, x.end - x.dead }

// CompactTo copies the committed file without its dead footers to dst,
// empty, with one write per batch and one footer, and continues there: x
// writes to dst from now on. The caller fsyncs dst and renames it.
func (x *ipcFile) CompactTo(dst *os.File) error {
	if len(x.pending) != 0 {
		return errors.New("results: internal error: compact with uncommitted batches")
	}
	head := make([]byte, x.schemaEnd)
	if _, err := x.f.ReadAt(head, 0); err != nil {
		return err
	}
	if _, err := dst.WriteAt(head, 0); err != nil {
		return err
	}
	pos := x.schemaEnd
	blocks := make([]block, len(x.blocks))
	var buf []byte
	for i, b := range x.blocks {
		pos += (8 - pos%8) % 8
		n := b.end() - b.off
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := x.f.ReadAt(buf, b.off); err != nil {
			return err
		}
		if _, err := dst.WriteAt(buf, pos); err != nil {
			return err
		}
		blocks[i] = block{off: pos, meta: b.meta, body: b.body}
		pos += n
	}
	x.blocks = blocks
	tr := x.appendTrailer(nil)
	if _, err := dst.WriteAt(tr, pos); err != nil {
		return err
	}
	x.f, x.end, x.dead, x.trailer = dst, pos+int64(len(tr)), 0, int64(len(tr))
	return nil
}

// pad aligns the next message to 8 bytes in the file.
func (x *ipcFile) pad() {
	for (x.end+int64(len(x.pending)))%8 != 0 {
		x.pending = append(x.pending, 0)
	}
}

// Close releases the encoder.
func (x *ipcFile) Close() error { return x.enc.Close() }

// payloadSink is the ipc.PayloadWriter behind an ipcFile: it appends each
// message to pending and records its block.
type payloadSink ipcFile

// Start is not called by ipc.Writer; WritePayload writes the magic.
func (s *payloadSink) Start() error { return nil }

func (s *payloadSink) Write(p []byte) (int, error) {
	s.pending = append(s.pending, p...)
	return len(p), nil
}

func (s *payloadSink) WritePayload(p ipc.Payload) error {
	x := (*ipcFile)(s)
	first := x.end == 0 && len(x.pending) == 0
	if first {
		x.pending = append(x.pending, arrowMagic...)
	}
	x.pad()
	start := len(x.pending)
	meta := p.Meta()
	kind := -1
	if meta != nil {
		kind = messageHeaderType(meta.Bytes())
		meta.Release()
	}
	n, err := p.WritePayload(s)
	if err != nil {
		return err
	}
	msg := x.pending[start:]
	switch {
	case kind == msgSchema && first:
		x.schemaCRC = crc32.Checksum(msg, castagnoli)
		x.schemaEnd = int64(start + len(msg))
	case kind == msgRecordBatch && !first:
		x.blocks = append(x.blocks, block{off: x.end + int64(start), meta: int32(n), body: int64(len(msg) - n)})
	default:
		return fmt.Errorf("results: internal error: IPC message of type %d", kind)
	}
	return nil
}

func (s *payloadSink) Close() error { return nil }

// Flatbuffer message header types (Arrow's Message.fbs).
const (
	msgSchema      = 1
	msgRecordBatch = 3
)

// messageHeaderType returns the header type of an IPC Message flatbuffer,
// -1 when it cannot be read.
func messageHeaderType(b []byte) int {
	t, err := fbRoot(b)
	if err != nil {
		return -1
	}
	pos, ok := t.field(1)
	if !ok || pos >= len(b) {
		return -1
	}
	return int(b[pos])
}

// footerTemplate returns the footer arrow-go writes for a file of schema
// without batches, and the offset of its Schema table.
func footerTemplate(schema *arrow.Schema, mem memory.Allocator) ([]byte, int, error) {
	var buf bytes.Buffer
	fw, err := ipc.NewFileWriter(&buf, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	if err != nil {
		return nil, 0, err
	}
	if err := fw.Close(); err != nil {
		return nil, 0, err
	}
	b := buf.Bytes()
	n := int(binary.LittleEndian.Uint32(b[len(b)-10:]))
	tpl := bytes.Clone(b[len(b)-10-n : len(b)-10])
	t, err := fbRoot(tpl)
	if err != nil {
		return nil, 0, err
	}
	pos, ok := t.offsetField(1)
	if !ok {
		return nil, 0, errors.New("results: arrow footer without a schema")
	}
	return tpl, pos, nil
}

// buildFooter writes an Arrow Footer flatbuffer (version V5, the schema of
// tpl, no dictionaries, blocks as record batches). The new tables come
// first and refer forward into a verbatim copy of tpl, whose offsets are
// relative and stay valid at an 8-aligned position.
func buildFooter(tpl []byte, schemaPos int, blocks []block) []byte {
	le := binary.LittleEndian
	q := 48 + 24*len(blocks)
	size := q + len(tpl)
	size += (8 - size%8) % 8
	b := make([]byte, size)
	le.PutUint32(b[0:], 16) // root table
	// vtable at 4: its size, the table's size, four field offsets
	for i, v := range []uint16{12, 20, 4, 8, 12, 16} {
		le.PutUint16(b[4+2*i:], v)
	}
	le.PutUint32(b[16:], 12)                     // table → vtable at 16-12
	le.PutUint16(b[20:], 4)                      // version: MetadataVersion V5
	le.PutUint32(b[24:], uint32(q+schemaPos-24)) // schema
	le.PutUint32(b[28:], 36-28)                  // dictionaries: empty vector at 36
	le.PutUint32(b[32:], 44-32)                  // recordBatches: vector at 44
	le.PutUint32(b[44:], uint32(len(blocks)))
	for i, bl := range blocks {
		p := 48 + 24*i
		le.PutUint64(b[p:], uint64(bl.off))
		le.PutUint32(b[p+8:], uint32(bl.meta))
		le.PutUint64(b[p+16:], uint64(bl.body))
	}
	copy(b[q:], tpl)
	return b
}

// fbTable reads a flatbuffer table with bounds checks.
type fbTable struct {
	b   []byte
	pos int // table start
	vt  int // vtable start
	vn  int // vtable length in bytes
}

var errFlatbuffer = errors.New("malformed flatbuffer")

func fbRoot(b []byte) (fbTable, error) {
	if len(b) < 4 {
		return fbTable{}, errFlatbuffer
	}
	return fbAt(b, int(binary.LittleEndian.Uint32(b)))
}

func fbAt(b []byte, pos int) (fbTable, error) {
	if pos < 0 || pos+4 > len(b) {
		return fbTable{}, errFlatbuffer
	}
	vt := pos - int(int32(binary.LittleEndian.Uint32(b[pos:])))
	if vt < 0 || vt+4 > len(b) {
		return fbTable{}, errFlatbuffer
	}
	vn := int(binary.LittleEndian.Uint16(b[vt:]))
	if vn < 4 || vt+vn > len(b) {
		return fbTable{}, errFlatbuffer
	}
	return fbTable{b: b, pos: pos, vt: vt, vn: vn}, nil
}

// field returns the position of field i, false when it is absent.
func (t fbTable) field(i int) (int, bool) {
	at := 4 + 2*i
	if at+2 > t.vn {
		return 0, false
	}
	o := int(binary.LittleEndian.Uint16(t.b[t.vt+at:]))
	if o == 0 || t.pos+o >= len(t.b) {
		return 0, false
	}
	return t.pos + o, true
}

// offsetField returns where the offset in field i points.
func (t fbTable) offsetField(i int) (int, bool) {
	p, ok := t.field(i)
	if !ok || p+4 > len(t.b) {
		return 0, false
	}
	q := p + int(binary.LittleEndian.Uint32(t.b[p:]))
	if q < p || q >= len(t.b) {
		return 0, false
	}
	return q, true
}

// footerBlocks returns the record batch blocks of an Arrow footer.
func footerBlocks(footer []byte) ([]block, error) {
	t, err := fbRoot(footer)
	if err != nil {
		return nil, err
	}
	v, ok := t.offsetField(3)
	if !ok {
		return nil, nil
	}
	if v+4 > len(footer) {
		return nil, errFlatbuffer
	}
	n := int(binary.LittleEndian.Uint32(footer[v:]))
	if n < 0 || n > (len(footer)-v-4)/24 {
		return nil, errFlatbuffer
	}
	start := v + 4
	out := make([]block, n)
	for i := range out {
		p := start + 24*i
		out[i] = block{
			off:  int64(binary.LittleEndian.Uint64(footer[p:])),
			meta: int32(binary.LittleEndian.Uint32(footer[p+8:])),
			body: int64(binary.LittleEndian.Uint64(footer[p+16:])),
		}
	}
	return out, nil
}

// trailer is the guard and footer that end a file.
type trailer struct {
	end       int64 // where it ends: the size of the file it closes
	footerPos int64 // where the footer starts
	guarded   bool  // the guard is there and its footer checksum holds
	schemaCRC uint32
	blocks    []block
}

var (
	errNoTrailer = errors.New("no footer at the end")
	errNoGuard   = errors.New("no checksum guard before the footer")
)

// readTrailer reads the footer that ends a file of size bytes, and its
// guard when there is one.
func readTrailer(ra io.ReaderAt, size int64) (*trailer, error) {
	le := binary.LittleEndian
	if size < 2*headerLen+10 {
		return nil, errNoTrailer
	}
	var tail [10]byte
	if _, err := ra.ReadAt(tail[:], size-10); err != nil {
		return nil, err
	}
	if !bytes.Equal(tail[4:], arrowMagic) {
		return nil, errNoTrailer
	}
	flen := int64(le.Uint32(tail[:]))
	fpos := size - 10 - flen
	if fpos < headerLen {
		return nil, errors.New("footer length out of range")
	}
	footer := make([]byte, flen)
	if _, err := ra.ReadAt(footer, fpos); err != nil {
		return nil, err
	}
	blocks, err := footerBlocks(footer)
	if err != nil {
		return nil, fmt.Errorf("footer: %w", err)
	}
	tr := &trailer{end: size, footerPos: fpos, blocks: blocks}
	if fpos >= headerLen+int64(guardLen) {
		var g [guardLen]byte
		if _, err := ra.ReadAt(g[:], fpos-int64(guardLen)); err != nil {
			return nil, err
		}
		if string(g[16:]) == guardMagic {
			if crc32.Checksum(footer, castagnoli) != le.Uint32(g[12:]) {
				return nil, errors.New("footer checksum mismatch")
			}
			tr.guarded, tr.schemaCRC = true, le.Uint32(g[8:])
		}
	}
	return tr, nil
}

// lastTrailer finds the last guarded footer before the end of the file that
// follows its last batch, for a file whose end is torn or damaged; nil when
// there is none.
func lastTrailer(ra io.ReaderAt, size int64) *trailer {
	const chunk = 1 << 20
	buf := make([]byte, chunk+len(arrowMagic))
	// Each round looks at [lo, hi+5): a magic that starts before hi.
	for hi := size; hi > headerLen; {
		lo := max(hi-chunk, int64(headerLen))
		b := buf[:min(hi+int64(len(arrowMagic))-1, size)-lo]
		if _, err := ra.ReadAt(b, lo); err != nil && !errors.Is(err, io.EOF) {
			return nil
		}
		for j := len(b); ; {
			i := bytes.LastIndex(b[:j], arrowMagic)
			if i < 0 {
				break
			}
			if end := lo + int64(i+len(arrowMagic)); end < size {
				if tr, err := readTrailer(ra, end); err == nil && tr.follows() == nil {
					return tr
				}
			}
			j = i
		}
		hi = lo
	}
	return nil
}

// follows checks that a guarded footer comes right after its last batch,
// as written: a copy of a footer elsewhere does not count.
func (tr *trailer) follows() error {
	if !tr.guarded {
		return errNoGuard
	}
	if n := len(tr.blocks); n == 0 || tr.blocks[n-1].end() != tr.footerPos-int64(guardLen) {
		return errors.New("the footer does not follow its last batch")
	}
	return nil
}

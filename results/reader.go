package results

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/rankhub/rankhub/jobs"
)

// arrowMagic starts and ends every Arrow IPC file.
var arrowMagic = []byte("ARROW1")

// headerLen is the magic plus padding before the IPC message stream.
const headerLen = 8

// Reader holds the rows of a result file read by Open. Its record batches
// are owned by the Reader and valid until Close.
type Reader struct {
	path     string
	schema   *arrow.Schema
	prov     Provenance
	recs     []arrow.RecordBatch // data batches only, in file order
	rows     int
	status   *Status
	complete bool
	tail     error // why the stream read stopped, for an incomplete file
	verified bool  // every batch was checked against its checksum
	corrupt  []CorruptBatch
	mode     int // readGuardedFooter, readPlainFooter or readStream

	params  []column // sweep parameter columns
	outputs []column // output columns
	fixed   map[string]int
	hasSeg  bool // the file has the segment column (version 2 on)
}

type column struct {
	name string
	idx  int
	kind jobs.Kind // parameters only
	list bool      // outputs: list<float64> (parse = "table")
}

// Open reads the result file at path through its last footer whose
// checksum guard holds: the one at the end of the file, or, when the end is
// torn (a writer killed in the middle of a flush) or damaged, the last one
// before. Every batch is checked against its CRC32C; a batch that fails is
// left out and reported by Corrupt, bytes after the footer used are
// reported by TailError. Files of results_version 1 (no checksums) are read
// as before: through their footer, or as the message stream up to the last
// complete batch. Open fails only when the file cannot be read, is not an
// Arrow file, holds no complete schema (ErrNoSchema), or the schema is not
// a rankhub result schema. Only Allocator among the options matters here.
func Open(path string, opt ...Option) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("results: open: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("results: open: %w", err)
	}
	o := newOptions(nil, opt)
	return openReaderAt(path, f, st.Size(), o.mem)
}

// openReaderAt reads size bytes of ra; name is used in errors.
func openReaderAt(name string, ra io.ReaderAt, size int64, mem memory.Allocator) (*Reader, error) {
	var head [headerLen]byte
	n, err := ra.ReadAt(head[:], 0)
	if n < len(arrowMagic) {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("results: %s: %d bytes: %w", name, size, ErrNoSchema)
		}
		return nil, fmt.Errorf("results: %s: %w", name, err)
	}
	if !bytes.Equal(head[:len(arrowMagic)], arrowMagic) {
		return nil, fmt.Errorf("results: %s: not an Arrow IPC file (no ARROW1 magic at the start)", name)
	}
	r, err := readFile(name, ra, size, mem, true)
	if err != nil {
		return nil, err
	}
	if r.mode == readPlainFooter && r.prov.ResultsVersion != "1" {
		// A checksummed file whose last guard is damaged: its footer
		// cannot be trusted.
		r.Close()
		return readFile(name, ra, size, mem, false)
	}
	return r, nil
}

// How a Reader read its file.
const (
	readGuardedFooter = iota + 1 // through a footer whose guard holds
	readPlainFooter              // through a footer without guard (results_version 1)
	readStream                   // through the message stream: no usable footer
)

// readFile reads the file through the footer at its end; through the last
// complete flush's footer when the end is torn or damaged; else through the
// message stream. A footer without a guard (results_version 1) is used only
// when plainFooter.
func readFile(name string, ra io.ReaderAt, size int64, mem memory.Allocator, plainFooter bool) (*Reader, error) {
	r := &Reader{path: name}
	var cands []candidate
	var ferr error
	tr, ferr := readTrailer(ra, size)
	if ferr == nil && (tr.guarded || !plainFooter) {
		ferr = tr.follows()
	}
	if ferr != nil {
		// A torn or damaged end: read up to the last complete flush.
		if prev := lastTrailer(ra, size); prev != nil {
			r.tail = fmt.Errorf("the end of the file is torn (a flush in progress, or a writer killed in one) or damaged (%v): %d bytes after byte %d, where the last complete flush ends, are left out", ferr, size-prev.end, prev.end)
			tr, ferr = prev, nil
		}
	}
	if ferr == nil {
		cands, ferr = r.readFooter(ra, tr, mem)
	}
	if ferr != nil {
		var err error
		if cands, err = r.readStream(ra, size, mem, ferr); err != nil {
			return nil, err
		}
	}
	if err := r.index(); err != nil {
		releaseAll(cands)
		r.Close()
		return nil, fmt.Errorf("results: %s: %w", name, err)
	}
	r.accept(cands)
	if r.verified && r.mode == readStream && len(cands) > 0 && !anyAccepted(cands, r.corrupt) {
		// Every batch hashes the schema: with none verified, nothing
		// vouches for the schema and its provenance either.
		problems := r.Problems()
		r.Close()
		return nil, fmt.Errorf("results: %s: no intact footer and no batch whose checksum holds: the schema and provenance cannot be trusted (%s)", name, strings.Join(problems, "; "))
	}
	r.complete = r.mode != readStream && r.status != nil && len(r.corrupt) == 0 && r.tail == nil
	return r, nil
}

// anyAccepted reports whether some candidate is not among the corrupt.
func anyAccepted(cands []candidate, corrupt []CorruptBatch) bool {
	return len(cands) > len(corrupt)
}

// candidate is a record batch as decoded, before its checksum is checked.
type candidate struct {
	rec      arrow.RecordBatch // nil when it could not be decoded
	batch    int               // index among the file's record batches
	off, end int64             // its bytes
	err      error             // why it could not be decoded
}

func releaseAll(cs []candidate) {
	for _, c := range cs {
		if c.rec != nil {
			c.rec.Release()
		}
	}
}

// CorruptBatch is a record batch whose content does not match the checksum
// recorded with it, or that cannot be decoded. Its rows are left out.
type CorruptBatch struct {
	Batch  int   // index among the file's record batches (empty opening and closing batches count), from 0; -1 for the schema message
	Offset int64 // byte offset of its message in the file
	Length int64 // bytes of the message
	Reason string
}

func (c CorruptBatch) String() string {
	if c.Batch < 0 {
		return fmt.Sprintf("bytes %d-%d: %s", c.Offset, c.Offset+c.Length, c.Reason)
	}
	return fmt.Sprintf("record batch %d at bytes %d-%d: %s", c.Batch, c.Offset, c.Offset+c.Length, c.Reason)
}

// accept checks each candidate's checksum (files of results_version 1
// have none) and keeps the good ones.
func (r *Reader) accept(cands []candidate) {
	check := r.prov.ResultsVersion != "1"
	r.verified = check
	for _, c := range cands {
		err := c.err
		if err == nil && check {
			err = verifyChecksum(c.rec)
		}
		if err != nil {
			r.corrupt = append(r.corrupt, CorruptBatch{Batch: c.batch, Offset: c.off, Length: c.end - c.off, Reason: err.Error()})
			if c.rec != nil {
				c.rec.Release()
			}
			continue
		}
		r.add(c.rec)
	}
}

func sizeLimits(size int64) []ipc.Option {
	return []ipc.Option{ipc.WithMetadataSizeLimit(size), ipc.WithBodySizeLimit(size)}
}

// readFooter decodes the batches listed by the footer tr at the end of the
// file. An error means the footer is not usable; the caller then reads the
// stream.
func (r *Reader) readFooter(ra io.ReaderAt, tr *trailer, mem memory.Allocator) (cands []candidate, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("reading footer: %v", p)
		}
		if err != nil {
			releaseAll(cands)
			cands = nil
		}
	}()
	r.mode = readPlainFooter
	if tr.guarded {
		r.mode = readGuardedFooter
		var pre [8]byte
		if _, err := ra.ReadAt(pre[:], headerLen); err != nil {
			return nil, err
		}
		schemaEnd := headerLen + 8 + int64(binary.LittleEndian.Uint32(pre[4:]))
		if binary.LittleEndian.Uint32(pre[:]) != 0xFFFFFFFF || schemaEnd > tr.blocks[0].off {
			return nil, errors.New("no schema message before the first batch")
		}
		msg := make([]byte, schemaEnd-headerLen)
		if _, err := ra.ReadAt(msg, headerLen); err != nil {
			return nil, err
		}
		if crc32.Checksum(msg, castagnoli) != tr.schemaCRC {
			// The footer's copy of the schema, which the guard verified,
			// is the one used.
			r.corrupt = append(r.corrupt, CorruptBatch{Batch: -1, Offset: headerLen, Length: int64(len(msg)),
				Reason: "schema message: checksum mismatch (the footer's copy of the schema is used)"})
		}
	}
	opts := append(sizeLimits(tr.end), ipc.WithAllocator(mem))
	fr, err := ipc.NewFileReader(io.NewSectionReader(ra, 0, tr.end), opts...)
	if err != nil {
		return nil, err
	}
	defer fr.Close()
	if fr.NumRecords() != len(tr.blocks) {
		return nil, fmt.Errorf("footer lists %d batches, arrow reads %d", len(tr.blocks), fr.NumRecords())
	}
	r.schema = fr.Schema()
	for i, b := range tr.blocks {
		c := candidate{batch: i, off: b.off, end: b.end()}
		if b.off < headerLen || b.end() > tr.footerPos || b.meta <= 0 || b.body < 0 {
			c.err = errors.New("the footer gives it an impossible position")
		} else {
			c.rec, c.err = batchAt(fr, i)
		}
		cands = append(cands, c)
	}
	return cands, nil
}

// batchAt decodes batch i, turning a decoder panic into an error.
func batchAt(fr *ipc.FileReader, i int) (rec arrow.RecordBatch, err error) {
	defer func() {
		if p := recover(); p != nil {
			rec, err = nil, fmt.Errorf("decoding: %v", p)
		}
	}()
	return fr.RecordBatchAt(i)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// readStream reads the message stream up to the last complete batch;
// noFooter says why the footer was not used.
func (r *Reader) readStream(ra io.ReaderAt, size int64, mem memory.Allocator, noFooter error) (cands []candidate, err error) {
	r.mode = readStream
	if size <= headerLen {
		return nil, fmt.Errorf("results: %s: %d bytes: %w", r.path, size, ErrNoSchema)
	}
	cr := &countingReader{r: io.NewSectionReader(ra, headerLen, size-headerLen)}
	stopped := func(why any) {
		pos := headerLen + cr.n
		r.tail = fmt.Errorf("no usable footer (%v): read as a message stream, which stops at byte %d (%v); %d bytes after it are left out", noFooter, pos, why, size-pos)
	}
	defer func() {
		if p := recover(); p != nil {
			stopped(p)
			if r.schema == nil {
				err = fmt.Errorf("results: %s: %w (%v)", r.path, ErrNoSchema, p)
			}
		}
	}()
	opts := append(sizeLimits(size), ipc.WithAllocator(mem))
	sr, err := ipc.NewReader(cr, opts...)
	if err != nil {
		return nil, fmt.Errorf("results: %s: %w (%v)", r.path, ErrNoSchema, err)
	}
	defer sr.Release()
	r.schema = sr.Schema()
	start := headerLen + cr.n
	for i := 0; sr.Next(); i++ {
		rec := sr.RecordBatch()
		rec.Retain()
		end := headerLen + cr.n
		cands = append(cands, candidate{rec: rec, batch: i, off: start, end: end})
		start = end
	}
	if err := sr.Err(); err != nil {
		stopped(err)
	} else {
		stopped("end-of-stream marker")
	}
	return cands, nil
}

// add takes ownership of rec: data batches are kept, a closing batch sets
// the status, an opening batch is dropped.
func (r *Reader) add(rec arrow.RecordBatch) {
	if rec.NumRows() == 0 {
		if rm, ok := rec.(arrow.RecordBatchWithMetadata); ok {
			if s, ok := statusFrom(rm.Metadata()); ok {
				r.status = &s
			}
		}
		rec.Release()
		return
	}
	r.status = nil // data after a closing batch: the file was continued
	r.recs = append(r.recs, rec)
	r.rows += int(rec.NumRows())
}

// index decodes the provenance and locates the columns.
func (r *Reader) index() error {
	md := r.schema.Metadata()
	prov, err := provenanceFrom(md)
	if err != nil {
		return err
	}
	r.prov = prov
	fields := r.schema.Fields()
	r.fixed = map[string]int{}
	fixed := fixedAfterParams
	if !hasSegmentColumn(prov.ResultsVersion) {
		fixed = fixed[:len(fixed)-1] // version 1: no segment column
	}
	if len(fields) < 1+len(fixed) || fields[0].Name != ColTask || fields[0].Type.ID() != arrow.INT64 {
		return fmt.Errorf("schema does not start with the %q column", ColTask)
	}
	r.fixed[ColTask] = 0
	rep := -1
	for i, f := range fields {
		if f.Name == ColReplicate && i > 0 {
			rep = i
			break
		}
	}
	if rep < 0 || rep+len(fixed) > len(fields) {
		return fmt.Errorf("schema has no %q column after the parameters", ColReplicate)
	}
	for i := 1; i < rep; i++ {
		k, err := typeKind(fields[i].Type)
		if err != nil {
			return fmt.Errorf("parameter column %q: %w", fields[i].Name, err)
		}
		r.params = append(r.params, column{name: fields[i].Name, idx: i, kind: k})
	}
	want := Schema(nil).Fields()[1:] // the fixed columns after the parameters
	for j, name := range fixed {
		f := fields[rep+j]
		if f.Name != name || !arrow.TypeEqual(f.Type, want[j].Type) {
			return fmt.Errorf("column %d is %q %s, want %q %s", rep+j, f.Name, f.Type, name, want[j].Type)
		}
		r.fixed[name] = rep + j
	}
	_, r.hasSeg = r.fixed[ColSegment]
	first := rep + len(fixed)
	for _, name := range textColumns { // absent in files of older rankhubs
		if first < len(fields) && fields[first].Name == name && fields[first].Type.ID() == arrow.STRING {
			r.fixed[name] = first
			first++
		}
	}
	for i := first; i < len(fields); i++ {
		list := arrow.TypeEqual(fields[i].Type, listFloat64)
		if fields[i].Type.ID() != arrow.FLOAT64 && !list {
			return fmt.Errorf("output column %q is %s, want float64 or list<float64>", fields[i].Name, fields[i].Type)
		}
		r.outputs = append(r.outputs, column{name: fields[i].Name, idx: i, list: list})
	}
	return nil
}

func typeKind(dt arrow.DataType) (jobs.Kind, error) {
	switch dt.ID() {
	case arrow.INT64:
		return jobs.KindInt, nil
	case arrow.FLOAT64:
		return jobs.KindFloat, nil
	case arrow.STRING:
		return jobs.KindString, nil
	case arrow.BOOL:
		return jobs.KindBool, nil
	}
	return 0, fmt.Errorf("type %s is not a parameter type", dt)
}

// Path returns the file name given to Open.
func (r *Reader) Path() string { return r.path }

// Schema returns the file's schema with its provenance metadata.
func (r *Reader) Schema() *arrow.Schema { return r.schema }

// Provenance returns the provenance recorded in the schema metadata.
func (r *Reader) Provenance() Provenance { return r.prov }

// Complete reports whether the file's writer closed it and nothing in it
// is damaged: its last footer ends the file, a closing batch is there, and
// every batch holds its checksum (for a results_version 1 file: it was
// read through a valid footer).
func (r *Reader) Complete() bool { return r.complete }

// Status returns the closing batch's status; ok is false for a file whose
// writer is still running or was killed (and not recovered).
func (r *Reader) Status() (s Status, ok bool) {
	if r.status == nil {
		return Status{}, false
	}
	return *r.status, true
}

// TailError returns why reading stopped before the end of an incomplete
// file (a torn last flush, or bytes after it that are not one), or nil.
func (r *Reader) TailError() error { return r.tail }

// Corrupt returns the batches left out because their bytes do not match
// their checksum, in file order.
func (r *Reader) Corrupt() []CorruptBatch { return r.corrupt }

// Verified reports whether every batch read was checked against a
// checksum (false for files of results_version 1).
func (r *Reader) Verified() bool { return r.verified }

// Problems describes, one line each, what Open left out: corrupt batches
// and a torn or damaged tail. Commands print them.
func (r *Reader) Problems() []string {
	var out []string
	for _, c := range r.corrupt {
		out = append(out, fmt.Sprintf("%s: %v; its rows are left out", r.path, c))
	}
	if r.tail != nil && r.verified {
		out = append(out, fmt.Sprintf("%s: %v", r.path, r.tail))
	}
	return out
}

// Records returns the data record batches in file order. They are owned by
// the Reader: Retain one to keep it past Close.
func (r *Reader) Records() []arrow.RecordBatch { return r.recs }

// NumRows returns the number of rows in the data batches.
func (r *Reader) NumRows() int { return r.rows }

// Params returns the names of the sweep parameter columns in order.
func (r *Reader) Params() []string { return names(r.params) }

// ParamKinds returns the kinds of the sweep parameter columns in order.
func (r *Reader) ParamKinds() []jobs.Kind {
	out := make([]jobs.Kind, len(r.params))
	for i, c := range r.params {
		out[i] = c.kind
	}
	return out
}

// RunOf returns the run that wrote row i (0-based, in file order): the
// resume that appended it, or ok false for the run that created the file.
func (r *Reader) RunOf(i int) (run Resume, ok bool) {
	for _, res := range r.prov.Resumes {
		if res.RowsBefore <= i {
			run, ok = res, true
		}
	}
	return run, ok
}

// Outputs returns the names of the output columns in order.
func (r *Reader) Outputs() []string { return names(r.outputs) }

func names(cs []column) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.name
	}
	return out
}

// Rows returns all rows as Row values; a null output reads as NaN, a null
// error, stdout or stderr as "".
func (r *Reader) Rows() []Row {
	out := make([]Row, 0, r.rows)
	for _, rec := range r.recs {
		out = r.appendRows(out, rec)
	}
	return out
}

func (r *Reader) appendRows(out []Row, rec arrow.RecordBatch) []Row {
	col := func(name string) arrow.Array { return rec.Column(r.fixed[name]) }
	task := rec.Column(0).(*array.Int64)
	rep := col(ColReplicate).(*array.Int64)
	seed := col(ColSeed).(*array.Uint64)
	rank := col(ColRank).(*array.Int32)
	host := col(ColHost).(*array.String)
	started := col(ColStarted).(*array.Timestamp)
	finished := col(ColFinished).(*array.Timestamp)
	attempt := col(ColAttempt).(*array.Int32)
	exit := col(ColExitStatus).(*array.Int32)
	errc := col(ColError).(*array.String)
	var stdout, stderr *array.String
	if _, ok := r.fixed[ColStdout]; ok {
		stdout = col(ColStdout).(*array.String)
	}
	if _, ok := r.fixed[ColStderr]; ok {
		stderr = col(ColStderr).(*array.String)
	}
	segc, _ := col(ColSegment).(*array.Int32) // nil in version 1 files
	for i := 0; i < int(rec.NumRows()); i++ {
		row := Row{
			Task:       int(task.Value(i)),
			Values:     make([]jobs.Value, len(r.params)),
			Replicate:  int(rep.Value(i)),
			Seed:       seed.Value(i),
			Rank:       int(rank.Value(i)),
			Host:       host.Value(i),
			Started:    time.UnixMicro(int64(started.Value(i))).UTC(),
			Finished:   time.UnixMicro(int64(finished.Value(i))).UTC(),
			Attempt:    int(attempt.Value(i)),
			ExitStatus: int(exit.Value(i)),
			Outputs:    make([]float64, len(r.outputs)),
		}
		if errc.IsValid(i) {
			row.Err = errc.Value(i)
		}
		if stdout != nil && stdout.IsValid(i) {
			row.Stdout = stdout.Value(i)
		}
		if stderr != nil && stderr.IsValid(i) {
			row.Stderr = stderr.Value(i)
		}
		if segc != nil && r.hasSeg {
			row.Segment = int(segc.Value(i))
		}
		for k, p := range r.params {
			row.Values[k] = paramValue(rec.Column(p.idx), p.kind, i)
		}
		for k, o := range r.outputs {
			if o.list {
				row.Outputs[k] = math.NaN()
				if row.Lists == nil {
					row.Lists = make([][]float64, len(r.outputs))
				}
				row.Lists[k] = listAt(rec.Column(o.idx).(*array.List), i)
				continue
			}
			a := rec.Column(o.idx).(*array.Float64)
			if a.IsValid(i) {
				row.Outputs[k] = a.Value(i)
			} else {
				row.Outputs[k] = math.NaN()
			}
		}
		out = append(out, row)
	}
	return out
}

func paramValue(a arrow.Array, k jobs.Kind, i int) jobs.Value {
	switch k {
	case jobs.KindInt:
		return jobs.Value{Int: a.(*array.Int64).Value(i)}
	case jobs.KindFloat:
		return jobs.Value{Float: a.(*array.Float64).Value(i)}
	case jobs.KindString:
		return jobs.Value{Str: a.(*array.String).Value(i)}
	case jobs.KindBool:
		return jobs.Value{Bool: a.(*array.Boolean).Value(i)}
	}
	return jobs.Value{}
}

// Close releases the record batches.
func (r *Reader) Close() error {
	r.release()
	return nil
}

func (r *Reader) release() {
	for _, rec := range r.recs {
		rec.Release()
	}
	r.recs, r.rows, r.status = nil, 0, nil
}

// listAt is row i of a list<float64> column, nil for a null, NaN for a
// null element.
func listAt(a *array.List, i int) []float64 {
	if !a.IsValid(i) {
		return nil
	}
	vals := a.ListValues().(*array.Float64)
	start, end := a.ValueOffsets(i)
	out := make([]float64, 0, end-start)
	for k := start; k < end; k++ {
		if vals.IsValid(int(k)) {
			out = append(out, vals.Value(int(k)))
		} else {
			out = append(out, math.NaN())
		}
	}
	return out
}

// ListOutputs tells, per output column, whether it is a list (parse =
// "table").
func (r *Reader) ListOutputs() []bool {
	out := make([]bool, len(r.outputs))
	for k, o := range r.outputs {
		out[k] = o.list
	}
	return out
}

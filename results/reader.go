package results

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
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

	params  []column // sweep parameter columns
	outputs []column // output columns
	fixed   map[string]int
	hasSeg  bool // the file has the segment column (version 2 on)
}

type column struct {
	name string
	idx  int
	kind jobs.Kind // parameters only
}

// Open reads the result file at path. A complete file is read through its
// footer. A file still being written, or whose writer was killed, is read as
// the message stream after the 8-byte prefix up to the last complete record
// batch; a torn tail is ignored. Open fails only when the file cannot be
// read, is not an Arrow file, holds no complete schema (ErrNoSchema), or the
// schema is not a rankhub result schema. Only Allocator among the options
// matters here.
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
	r := &Reader{path: name}
	if size >= int64(2*headerLen+len(arrowMagic)) && r.readFooter(ra, size, mem) == nil {
		r.complete = true
	} else if err := r.readStream(ra, size, mem); err != nil {
		return nil, err
	}
	if err := r.index(); err != nil {
		r.Close()
		return nil, fmt.Errorf("results: %s: %w", name, err)
	}
	return r, nil
}

func sizeLimits(size int64) []ipc.Option {
	return []ipc.Option{ipc.WithMetadataSizeLimit(size), ipc.WithBodySizeLimit(size)}
}

// readFooter reads a complete file; on any failure it leaves r empty.
func (r *Reader) readFooter(ra io.ReaderAt, size int64, mem memory.Allocator) (err error) {
	var tail [len("ARROW1")]byte
	if _, err := ra.ReadAt(tail[:], size-int64(len(tail))); err != nil {
		return err
	}
	if !bytes.Equal(tail[:], arrowMagic) {
		return errors.New("no trailing magic")
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("reading footer: %v", p)
		}
		if err != nil {
			r.release()
		}
	}()
	opts := append(sizeLimits(size), ipc.WithAllocator(mem))
	fr, err := ipc.NewFileReader(io.NewSectionReader(ra, 0, size), opts...)
	if err != nil {
		return err
	}
	defer fr.Close()
	r.schema = fr.Schema()
	for i := 0; i < fr.NumRecords(); i++ {
		rec, err := fr.RecordBatchAt(i)
		if err != nil {
			return err
		}
		r.add(rec)
	}
	return nil
}

// readStream reads the message stream up to the last complete batch.
func (r *Reader) readStream(ra io.ReaderAt, size int64, mem memory.Allocator) (err error) {
	if size <= headerLen {
		return fmt.Errorf("results: %s: %d bytes: %w", r.path, size, ErrNoSchema)
	}
	defer func() {
		if p := recover(); p != nil {
			r.tail = fmt.Errorf("reading stream: %v", p)
			if r.schema == nil {
				err = fmt.Errorf("results: %s: %w (%v)", r.path, ErrNoSchema, p)
			}
		}
	}()
	opts := append(sizeLimits(size), ipc.WithAllocator(mem))
	sr, err := ipc.NewReader(io.NewSectionReader(ra, headerLen, size-headerLen), opts...)
	if err != nil {
		return fmt.Errorf("results: %s: %w (%v)", r.path, ErrNoSchema, err)
	}
	defer sr.Release()
	r.schema = sr.Schema()
	for sr.Next() {
		rec := sr.RecordBatch()
		rec.Retain()
		r.add(rec)
	}
	r.tail = sr.Err()
	return nil
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
	for i := rep + len(fixed); i < len(fields); i++ {
		if fields[i].Type.ID() != arrow.FLOAT64 {
			return fmt.Errorf("output column %q is %s, want float64", fields[i].Name, fields[i].Type)
		}
		r.outputs = append(r.outputs, column{name: fields[i].Name, idx: i})
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

// Complete reports whether the file was read through a valid footer, that
// is whether its writer closed it.
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
// file (a torn last message), or nil.
func (r *Reader) TailError() error { return r.tail }

// Records returns the data record batches in file order. They are owned by
// the Reader: Retain one to keep it past Close.
func (r *Reader) Records() []arrow.RecordBatch { return r.recs }

// NumRows returns the number of rows in the data batches.
func (r *Reader) NumRows() int { return r.rows }

// Params returns the names of the sweep parameter columns in order.
func (r *Reader) Params() []string { return names(r.params) }

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
// error as "".
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
		if segc != nil && r.hasSeg {
			row.Segment = int(segc.Value(i))
		}
		for k, p := range r.params {
			row.Values[k] = paramValue(rec.Column(p.idx), p.kind, i)
		}
		for k, o := range r.outputs {
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

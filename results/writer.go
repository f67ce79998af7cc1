package results

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/rankhub/rankhub/jobs"
)

// Defaults when neither the job's [results] table nor an Option sets them.
const (
	DefaultFlushRows     = 1024
	DefaultFlushInterval = 2 * time.Second
	DefaultTextLimit     = 32 << 10 // bytes of stdout, and of stderr, kept per row
)

// Errors. Each says which calls return it.
var (
	// ErrClosed is returned by Write, Flush and Close on a closed Writer.
	ErrClosed = errors.New("results: writer closed")
	// ErrLocked is returned by Create, Append and Recover when another
	// process (or Writer) holds the file open for writing.
	ErrLocked = errors.New("results: file is being written by another writer")
	// ErrMismatch is returned by Append when the file was made by a
	// different job text or program, and Force was not given.
	ErrMismatch = errors.New("results: file was written by a different job or program")
	// ErrNoSchema is returned by Open, Recover and Append when the file is
	// too short to hold its schema (a writer killed while creating it).
	ErrNoSchema = errors.New("results: file has no complete schema")
)

// Row is one finished task. Values holds one value per sweep parameter in
// the job's order; Outputs one number per job output in the job's order,
// where NaN means missing (written as null). A failed task (ExitStatus != 0
// or Err != "") has all outputs written as null, whatever Outputs holds;
// Outputs may then be nil.
type Row struct {
	Task       int
	Values     []jobs.Value
	Replicate  int
	Seed       uint64
	Rank       int
	Host       string
	Started    time.Time
	Finished   time.Time
	Attempt    int
	ExitStatus int
	Err        string // "" is written as null
	Outputs    []float64
	Segment    int // the file's segment (run) that wrote the row
	// Stdout and Stderr hold what the task printed, as text; "" is
	// written as null. The Writer bounds each to its TextLimit, keeping the
	// head and the tail around a marked cut (Truncate).
	Stdout, Stderr string
	// Lists holds a table job's outputs (parse = "table": list<float64>
	// columns), one list per output; Outputs is then ignored. A nil list
	// is written as null.
	Lists [][]float64
}

// Failed reports whether the row records a failed task.
func (r Row) Failed() bool { return r.ExitStatus != 0 || r.Err != "" }

// Option changes how a Writer (or Append) works.
type Option func(*options)

type options struct {
	flushRows     int
	flushInterval time.Duration
	textLimit     int
	mem           memory.Allocator
	force         bool
	segment       *Segment // Append: record this run as a new segment (segment.go)
	mode          fs.FileMode
}

// FlushRows flushes a batch whenever n rows are buffered (n >= 1).
func FlushRows(n int) Option { return func(o *options) { o.flushRows = n } }

// FlushInterval flushes buffered rows at the latest d after the last flush.
func FlushInterval(d time.Duration) Option { return func(o *options) { o.flushInterval = d } }

// TextLimit bounds the stdout and the stderr stored per row to n bytes
// each (n >= 64); longer text keeps its head and tail (Truncate).
func TextLimit(n int) Option { return func(o *options) { o.textLimit = max(n, 64) } }

// Mode sets the result file's mode, whatever the umask: a job's file
// follows its job directory's modes (0600, or 0640 group-readable), which
// the caller passes (jobdir.PermOf). Without it Create makes 0644 and
// Append keeps the file's mode.
func Mode(m fs.FileMode) Option { return func(o *options) { o.mode = m.Perm() } }

// Allocator sets the Arrow allocator used for batches.
func Allocator(mem memory.Allocator) Option { return func(o *options) { o.mem = mem } }

// Force lets Append continue a file written by a different job text or
// program; the resume is recorded as forced in the provenance.
func Force() Option { return func(o *options) { o.force = true } }

func newOptions(job *jobs.Job, opt []Option) options {
	o := options{flushRows: DefaultFlushRows, flushInterval: DefaultFlushInterval, textLimit: DefaultTextLimit, mem: memory.DefaultAllocator}
	if job != nil && job.Results != nil {
		if job.Results.FlushRows > 0 {
			o.flushRows = job.Results.FlushRows
		}
		if job.Results.FlushInterval.Duration > 0 {
			o.flushInterval = job.Results.FlushInterval.Duration
		}
		if job.Results.TextLimit > 0 {
			o.textLimit = max(job.Results.TextLimit, 64)
		}
	}
	for _, f := range opt {
		f(&o)
	}
	if o.flushRows < 1 {
		o.flushRows = 1
	}
	if o.flushInterval <= 0 {
		o.flushInterval = DefaultFlushInterval
	}
	if o.mem == nil {
		o.mem = memory.DefaultAllocator
	}
	return o
}

// Writer appends rows to a result file. It is safe for concurrent use.
//
// Lock order: mu, then io. mu guards the builders and the writer state; io
// guards the file and the Arrow file writer. A flush takes the built batch
// under mu, takes io, then lets mu go, so writers keep buffering rows while
// a batch is written and fsynced, and batches reach the file in order.
type Writer struct {
	path     string
	schema   *arrow.Schema
	kinds    []jobs.Kind
	nOutputs int
	table    bool // parse = "table": list<float64> output columns
	opt      options

	mu        sync.Mutex
	bld       *array.RecordBuilder
	buffered  int
	lastFlush time.Time
	err       error // sticky write error
	closed    bool

	io     sync.Mutex
	f      *os.File
	x      *ipcFile
	rows   int // rows written to the file
	unlock func()

	done chan struct{}
	wg   sync.WaitGroup
}

// Create makes a new result file at path for job and writes its schema with
// prov as metadata, fsynced, so the file is readable at once. It refuses to
// overwrite an existing file (use Append to continue one).
func Create(path string, job *jobs.Job, prov Provenance, opt ...Option) (*Writer, error) {
	if err := checkJob(job); err != nil {
		return nil, err
	}
	o := newOptions(job, opt)
	if o.mode == 0 {
		o.mode = 0o644
		opt = append(opt[:len(opt):len(opt)], Mode(o.mode))
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, o.mode)
	if err != nil {
		return nil, fmt.Errorf("results: create: %w", err)
	}
	if err := f.Chmod(o.mode); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("results: create: %w", err)
	}
	unlock, err := lockFile(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("results: create %s: %w", path, err)
	}
	w, err := newWriter(path, f, unlock, job, prov, opt)
	if err != nil {
		unlock()
		f.Close()
		os.Remove(path)
		return nil, err
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		w.abort()
		os.Remove(path)
		return nil, fmt.Errorf("results: create %s: %w", path, err)
	}
	w.start()
	return w, nil
}

// newWriter writes the schema to f and returns a Writer that is not yet
// flushing on a timer (start does that).
func newWriter(path string, f *os.File, unlock func(), job *jobs.Job, prov Provenance, opt []Option) (*Writer, error) {
	o := newOptions(job, opt)
	md := prov.metadata()
	schema := schemaWith(job, &md)
	x, err := newIPCFile(f, schema, o.mem)
	if err != nil {
		return nil, fmt.Errorf("results: %s: %w", path, err)
	}
	w := &Writer{
		path:     path,
		schema:   schema,
		nOutputs: len(outputs(job)),
		table:    job.Task.Table(),
		opt:      o,
		bld:      array.NewRecordBuilder(o.mem, schema),
		f:        f,
		x:        x,
		unlock:   unlock,
		done:     make(chan struct{}),
	}
	for _, p := range params(job) {
		w.kinds = append(w.kinds, p.Kind)
	}
	if err := w.writeHeader(); err != nil {
		w.bld.Release()
		return nil, fmt.Errorf("results: %s: write schema: %w", path, err)
	}
	w.lastFlush = time.Now()
	return w, nil
}

// writeHeader puts magic, schema and a footer on disk at once, with a
// zero-row batch whose metadata (rankhub.opened) marks the start of a
// writing session; readers skip it.
func (w *Writer) writeHeader() error {
	rec := w.bld.NewRecordBatch()
	defer rec.Release()
	open := array.NewRecordBatchWithMetadata(w.schema, rec.Columns(), 0,
		arrow.NewMetadata([]string{keyOpened}, []string{formatTime(time.Now())}))
	defer open.Release()
	if err := w.x.Write(open); err != nil {
		return err
	}
	if err := w.x.Commit(); err != nil {
		return err
	}
	return w.f.Sync()
}

// keyOpened marks the zero-row batch that opens each writing session.
const keyOpened = "rankhub.opened"

func (w *Writer) start() {
	w.wg.Add(1)
	go w.flushLoop()
}

// flushLoop flushes buffered rows FlushInterval after the last flush, so a
// slow sweep still reaches the disk.
func (w *Writer) flushLoop() {
	defer w.wg.Done()
	t := time.NewTimer(w.opt.flushInterval)
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
		}
		w.mu.Lock()
		wait := w.opt.flushInterval - time.Since(w.lastFlush)
		if w.closed {
			w.mu.Unlock()
			return
		}
		if wait <= 0 && w.buffered > 0 {
			w.flushAndUnlock() // a failure is sticky and returned by the next call
			wait = w.opt.flushInterval
		} else {
			w.mu.Unlock()
			if wait <= 0 {
				wait = w.opt.flushInterval
			}
		}
		t.Reset(wait)
	}
}

// Path returns the file the Writer writes.
func (w *Writer) Path() string { return w.path }

// Schema returns the file's schema, provenance metadata included.
func (w *Writer) Schema() *arrow.Schema { return w.schema }

// Write buffers one row; it flushes when FlushRows rows are buffered. It
// returns an error for a row that does not fit the job (the row is not
// written) and the first write error of the file, after which the Writer
// accepts nothing more.
func (w *Writer) Write(r Row) error {
	if len(r.Values) != len(w.kinds) {
		return fmt.Errorf("results: %s: task %d: %d parameter values, the job has %d", w.path, r.Task, len(r.Values), len(w.kinds))
	}
	if w.table {
		if !r.Failed() && len(r.Lists) != w.nOutputs {
			return fmt.Errorf("results: %s: task %d: %d output lists, the job has %d", w.path, r.Task, len(r.Lists), w.nOutputs)
		}
	} else if !r.Failed() && len(r.Outputs) != w.nOutputs {
		return fmt.Errorf("results: %s: task %d: %d outputs, the job has %d", w.path, r.Task, len(r.Outputs), w.nOutputs)
	}
	if len(r.Outputs) > w.nOutputs {
		return fmt.Errorf("results: %s: task %d: %d outputs, the job has %d", w.path, r.Task, len(r.Outputs), w.nOutputs)
	}
	for _, c := range [...]struct {
		name string
		v    int
	}{{ColRank, r.Rank}, {ColAttempt, r.Attempt}, {ColExitStatus, r.ExitStatus}, {ColSegment, r.Segment}} {
		if c.v < math.MinInt32 || c.v > math.MaxInt32 {
			return fmt.Errorf("results: %s: task %d: %s %d out of int32 range", w.path, r.Task, c.name, c.v)
		}
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	w.append(r)
	w.buffered++
	if w.buffered >= w.opt.flushRows {
		return w.flushAndUnlock()
	}
	w.mu.Unlock()
	return nil
}

// append adds r to the builders; w.mu is held and r is checked.
func (w *Writer) append(r Row) {
	b := w.bld
	i := 0
	b.Field(i).(*array.Int64Builder).Append(int64(r.Task))
	i++
	for k, kind := range w.kinds {
		v := r.Values[k]
		switch kind {
		case jobs.KindInt:
			b.Field(i).(*array.Int64Builder).Append(v.Int)
		case jobs.KindFloat:
			b.Field(i).(*array.Float64Builder).Append(v.Float)
		case jobs.KindString:
			b.Field(i).(*array.StringBuilder).Append(v.Str)
		case jobs.KindBool:
			b.Field(i).(*array.BooleanBuilder).Append(v.Bool)
		}
		i++
	}
	b.Field(i).(*array.Int64Builder).Append(int64(r.Replicate))
	b.Field(i + 1).(*array.Uint64Builder).Append(r.Seed)
	b.Field(i + 2).(*array.Int32Builder).Append(int32(r.Rank))
	b.Field(i + 3).(*array.StringBuilder).Append(r.Host)
	b.Field(i + 4).(*array.TimestampBuilder).Append(arrow.Timestamp(r.Started.UnixMicro()))
	b.Field(i + 5).(*array.TimestampBuilder).Append(arrow.Timestamp(r.Finished.UnixMicro()))
	b.Field(i + 6).(*array.Int32Builder).Append(int32(r.Attempt))
	b.Field(i + 7).(*array.Int32Builder).Append(int32(r.ExitStatus))
	appendText(b.Field(i+8).(*array.StringBuilder), r.Err)
	b.Field(i + 9).(*array.Int32Builder).Append(int32(r.Segment))
	appendText(b.Field(i+10).(*array.StringBuilder), Truncate(r.Stdout, w.opt.textLimit))
	appendText(b.Field(i+11).(*array.StringBuilder), Truncate(r.Stderr, w.opt.textLimit))
	i += 12
	failed := r.Failed()
	for k := 0; k < w.nOutputs && w.table; k++ {
		lb := b.Field(i + k).(*array.ListBuilder)
		if failed || k >= len(r.Lists) || r.Lists[k] == nil {
			lb.AppendNull()
			continue
		}
		lb.Append(true)
		vb := lb.ValueBuilder().(*array.Float64Builder)
		for _, v := range r.Lists[k] {
			if math.IsNaN(v) {
				vb.AppendNull()
			} else {
				vb.Append(v)
			}
		}
	}
	for k := 0; k < w.nOutputs && !w.table; k++ {
		ob := b.Field(i + k).(*array.Float64Builder)
		if failed || k >= len(r.Outputs) || math.IsNaN(r.Outputs[k]) {
			ob.AppendNull()
		} else {
			ob.Append(r.Outputs[k])
		}
	}
}

// appendText appends s, or null for "".
func appendText(b *array.StringBuilder, s string) {
	if s == "" {
		b.AppendNull()
	} else {
		b.Append(s)
	}
}

// Truncate returns s when it has at most limit bytes, else its head and
// tail (about limit bytes in all, cut at UTF-8 boundaries) around a line
// "[rankhub: N bytes cut]": a simulation's comment header and its last
// result lines both survive.
func Truncate(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	marker := fmt.Sprintf("\n[rankhub: %d bytes cut]\n", len(s)-limit)
	keep := max(limit-len(marker), 0)
	head, tail := keep/2, keep-keep/2
	for head > 0 && !utf8.RuneStart(s[head]) {
		head--
	}
	t := len(s) - tail
	for t < len(s) && !utf8.RuneStart(s[t]) {
		t++
	}
	return s[:head] + fmt.Sprintf("\n[rankhub: %d bytes cut]\n", t-head) + s[t:]
}

// Flush writes the buffered rows as one record batch, with its checksum
// and a new footer, and fsyncs the file.
func (w *Writer) Flush() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	return w.flushAndUnlock()
}

// flushAndUnlock is called with w.mu held and releases it (see the lock
// order on Writer).
func (w *Writer) flushAndUnlock() error {
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	w.lastFlush = time.Now()
	if w.buffered == 0 {
		w.mu.Unlock()
		return nil
	}
	rec := w.bld.NewRecordBatch()
	n := w.buffered
	w.buffered = 0
	w.io.Lock()
	w.mu.Unlock()
	err := w.x.Write(rec)
	rec.Release()
	if err == nil {
		err = w.x.Commit()
	}
	if err == nil {
		err = w.f.Sync()
	}
	if dead, live := w.x.Dead(); err == nil && dead > compactMin && dead > live {
		err = w.compact()
	}
	if err == nil {
		w.rows += n
	}
	w.io.Unlock()
	if err != nil {
		err = fmt.Errorf("results: %s: writing %d rows: %w", w.path, n, err)
		w.mu.Lock()
		if w.err == nil {
			w.err = err
		}
		w.mu.Unlock()
	}
	return err
}

// Close flushes the buffered rows, writes a closing zero-row batch whose
// metadata holds status, the end time and the row count with its footer,
// fsyncs and closes the file. A second Close returns ErrClosed.
func (w *Writer) Close(status string) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	err := w.flushAndUnlock()
	w.mu.Lock()
	w.closed = true
	if err == nil {
		err = w.err
	}
	w.mu.Unlock()
	close(w.done)
	w.wg.Wait()

	w.io.Lock()
	defer w.io.Unlock()
	if err == nil {
		err = w.writeStatus(Status{State: status, Ended: time.Now().UTC(), Rows: w.rows})
	}
	if err == nil {
		err = w.x.Commit()
	}
	if cerr := w.x.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = w.f.Sync()
	}
	w.bld.Release()
	w.unlock()
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("results: close %s: %w", w.path, err)
	}
	return nil
}

// writeStatus writes the closing batch; w.io is held.
func (w *Writer) writeStatus(s Status) error {
	w.mu.Lock()
	rec := w.bld.NewRecordBatch() // no rows are buffered after the last flush
	w.mu.Unlock()
	defer rec.Release()
	st := array.NewRecordBatchWithMetadata(w.schema, rec.Columns(), 0, statusMetadata(s))
	defer st.Release()
	return w.x.Write(st)
}

// abort closes the file without a footer, for set-up failures.
func (w *Writer) abort() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.bld.Release()
	w.unlock()
	w.f.Close()
}

// Rows returns the number of rows written to the file so far (not counting
// buffered ones).
func (w *Writer) Rows() int {
	w.io.Lock()
	defer w.io.Unlock()
	return w.rows
}

// compactMin is how many bytes of dead footers a file may hold before the
// Writer compacts it (when they also outweigh everything else).
var compactMin int64 = 16 << 20

// compact replaces the file by a copy without the footers of earlier
// flushes, renamed over it, and continues writing the copy; w.io is held.
// A reader that has the old file open keeps reading it.
func (w *Writer) compact() error {
	tmp, err := os.CreateTemp(filepath.Dir(w.path), "."+filepath.Base(w.path)+".compact-*")
	if err != nil {
		return err
	}
	unlock, err := lockFile(tmp)
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	old, oldUnlock := w.f, w.unlock
	if err := w.x.CompactTo(tmp); err != nil {
		unlock()
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("compacting: %w", err)
	}
	// From here on the Writer writes tmp. The old file stays locked until
	// tmp has replaced it, so that Recover and Append never take it.
	w.f, w.unlock = tmp, unlock
	defer func() {
		oldUnlock()
		old.Close()
	}()
	if err := tmp.Chmod(w.opt.mode); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), w.path); err != nil {
		return fmt.Errorf("compacting: %w", err)
	}
	return syncDir(filepath.Dir(w.path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

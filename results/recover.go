package results

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/rankhub/rankhub/jobs"
)

// StatusInterrupted is the status Recover writes into a torn file it repairs.
const StatusInterrupted = "interrupted"

// Recover closes the result file at path after its writer was killed, or
// repairs a damaged one: it writes the schema, every record batch whose
// checksum holds and a closing batch with status "interrupted" to a
// temporary file in the same directory, fsyncs it and renames it over path.
// Corrupt batches and a torn or damaged tail are dropped (Open's Problems
// lists them beforehand). kept is the number of rows in the result. A
// complete file (see Reader.Complete) is left as it is. Recover refuses
// (ErrLocked) while a writer holds the file.
func Recover(path string, opt ...Option) (kept int, err error) {
	o := newOptions(nil, opt)
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("results: recover: %w", err)
	}
	defer f.Close()
	unlock, err := lockCurrent(f, path)
	if err != nil {
		return 0, fmt.Errorf("results: recover %s: %w", path, err)
	}
	defer unlock()
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("results: recover: %w", err)
	}
	r, err := openReaderAt(path, f, st.Size(), o.mem)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	if r.Complete() {
		return r.NumRows(), nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".recover-*")
	if err != nil {
		return 0, fmt.Errorf("results: recover %s: %w", path, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	x, err := newIPCFile(tmp, r.Schema(), o.mem)
	if err != nil {
		return 0, fmt.Errorf("results: recover %s: %w", path, err)
	}
	defer x.Close()
	for _, rec := range r.Records() {
		err := x.Write(rec)
		if err == nil {
			err = x.CommitIfLarge()
		}
		if err != nil {
			return 0, fmt.Errorf("results: recover %s: write %s: %w", path, tmp.Name(), err)
		}
	}
	if err := writeClosing(x, r.Schema(), o, Status{State: StatusInterrupted, Ended: time.Now().UTC(), Rows: r.NumRows()}); err != nil {
		return 0, fmt.Errorf("results: recover %s: write %s: %w", path, tmp.Name(), err)
	}
	if err := x.Commit(); err != nil {
		return 0, fmt.Errorf("results: recover %s: write %s: %w", path, tmp.Name(), err)
	}
	if err := replace(tmp, path, st.Mode().Perm()); err != nil {
		return 0, fmt.Errorf("results: recover %s: %w", path, err)
	}
	done = true
	return r.NumRows(), nil
}

// lockCurrent locks f, opened from path, and checks that path still names
// f: another Recover or Append may have replaced the file between the open
// and the lock, and then f is a stale copy.
func lockCurrent(f *os.File, path string) (unlock func(), err error) {
	unlock, err = lockFile(f)
	if err != nil {
		return nil, err
	}
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	if err1 != nil || err2 != nil || !os.SameFile(a, b) {
		unlock()
		return nil, ErrLocked
	}
	return unlock, nil
}

// writeClosing writes a zero-row batch carrying s as metadata.
func writeClosing(fw *ipcFile, schema *arrow.Schema, o options, s Status) error {
	b := array.NewRecordBuilder(o.mem, schema)
	defer b.Release()
	empty := b.NewRecordBatch()
	defer empty.Release()
	rec := array.NewRecordBatchWithMetadata(schema, empty.Columns(), 0, statusMetadata(s))
	defer rec.Release()
	return fw.Write(rec)
}

// replace fsyncs and closes tmp, renames it to path (keeping the file's
// mode) and fsyncs the directory.
func replace(tmp *os.File, path string, mode fs.FileMode) error {
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// Append continues the result file at path, so that it ends as one valid
// file holding the old rows and the new ones. It returns the Writer and the
// task indices already present with a successful row; the caller runs only
// the others. A missing file is created as by Create (and the map is empty).
//
// The old file must have the columns of job, and unless Force is given its
// job text and program SHA-256 must equal those in prov (ErrMismatch). The
// file's original provenance is kept; this run is added to its Resumes.
//
// Only rows whose batch checksum holds count: corrupt batches and a torn
// or damaged tail of the old file are dropped, so their tasks run again.
//
// How: the schema and every verified batch of the old file (torn or not)
// are written to a temporary file in the same directory, which is fsynced
// and renamed over path; new rows are then appended to it. A crash before
// the rename leaves the old file untouched, a crash after it leaves a torn
// file holding every old row, which Open, Recover and Append read again.
func Append(path string, job *jobs.Job, prov Provenance, opt ...Option) (*Writer, map[int]bool, error) {
	if err := checkJob(job); err != nil {
		return nil, nil, err
	}
	o := newOptions(job, opt)
	old, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		w, err := Create(path, job, prov, opt...)
		return w, map[int]bool{}, err
	}
	if err != nil {
		return nil, nil, fmt.Errorf("results: append: %w", err)
	}
	defer old.Close()
	unlockOld, err := lockCurrent(old, path)
	if err != nil {
		return nil, nil, fmt.Errorf("results: append %s: %w", path, err)
	}
	defer unlockOld()
	st, err := old.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("results: append: %w", err)
	}
	if o.mode == 0 {
		o.mode = st.Mode().Perm()
		opt = append(opt[:len(opt):len(opt)], Mode(o.mode))
	}
	r, err := openReaderAt(path, old, st.Size(), o.mem)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()

	if o.segment != nil {
		if err := canGrow(r.Schema(), job, o.mem); err != nil {
			return nil, nil, fmt.Errorf("results: append %s: the file does not fit the job: %v", path, err)
		}
	} else if err := sameColumns(r.Schema(), Schema(job)); err != nil {
		return nil, nil, fmt.Errorf("results: append %s: the file does not fit the job: %v", path, err)
	}
	fp := r.Provenance()
	var diff []string
	if fp.JobText != prov.JobText {
		diff = append(diff, "job text")
	}
	if fp.ProgramSHA256 != prov.ProgramSHA256 {
		diff = append(diff, fmt.Sprintf("program SHA-256 (file %.12s…, now %.12s…)", fp.ProgramSHA256, prov.ProgramSHA256))
	}
	// Input files and the script are the engines' business: a change there
	// alters what done tasks mean, segment or not.
	var inputDiff []string
	if fp.ScriptSHA256 != prov.ScriptSHA256 {
		inputDiff = append(inputDiff, fmt.Sprintf("script %s SHA-256 (file %.12s…, now %.12s…)", prov.Script, fp.ScriptSHA256, prov.ScriptSHA256))
	}
	if ch := ChangedInputs(fp.Inputs, prov.Inputs); len(ch) > 0 {
		inputDiff = append(inputDiff, "input files "+strings.Join(ch, ", "))
	}
	if o.segment != nil {
		// The caller compared this run with the file's segments (segment.go).
		diff = nil
		if o.segment.Forced {
			diff = o.segment.Changes
		}
	}
	if o.segment != nil {
		// The caller compared the files with the last segment's (the
		// file-level record is the first run's).
		inputDiff = nil
	}
	if len(inputDiff) > 0 && !o.force {
		return nil, nil, fmt.Errorf("results: append %s: %w: %v differ; rerun with force to continue anyway, or write a new file", path, ErrMismatch, inputDiff)
	}
	diff = append(diff, inputDiff...)
	if len(diff) > 0 && !o.force && o.segment == nil {
		return nil, nil, fmt.Errorf("results: append %s: %w: %v differ; rerun with force to continue anyway, or write a new file", path, ErrMismatch, diff)
	}
	prevStatus := ""
	if s, ok := r.Status(); ok {
		prevStatus = s.State
	}
	np := fp
	np.Resumes = append(append([]Resume(nil), fp.Resumes...), Resume{
		Started:        prov.Started.UTC(),
		JobID:          prov.JobID,
		Scheduler:      prov.Scheduler,
		Hosts:          prov.Hosts,
		Version:        prov.Version,
		Revision:       prov.Revision,
		ProgramSHA256:  prov.ProgramSHA256,
		PreviousStatus: prevStatus,
		RowsBefore:     r.NumRows(),
		Forced:         len(diff) > 0,
	})
	if len(diff) > 0 {
		last := &np.Resumes[len(np.Resumes)-1]
		last.Inputs, last.ScriptSHA256 = prov.Inputs, prov.ScriptSHA256
	}
	if o.segment != nil {
		np = addSegment(np, *o.segment, r.NumRows())
	}

	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".append-*")
	if err != nil {
		return nil, nil, fmt.Errorf("results: append %s: %w", path, err)
	}
	unlockTmp, err := lockFile(tmp)
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, nil, fmt.Errorf("results: append %s: %w", path, err)
	}
	w, err := newWriter(path, tmp, unlockTmp, job, np, opt)
	if err != nil {
		unlockTmp()
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, nil, err
	}
	fail := func(err error) (*Writer, map[int]bool, error) {
		w.abort()
		os.Remove(tmp.Name())
		return nil, nil, fmt.Errorf("results: append %s: %w", path, err)
	}
	for _, rec := range r.Records() {
		// The old batches have the old schema object; give them the new one
		// (same columns, new metadata, new columns filled) so the writer
		// accepts them.
		re, err := grow(rec, w.schema, job, o.mem)
		if err != nil {
			return fail(err)
		}
		err = w.x.Write(re)
		re.Release()
		if err == nil {
			err = w.x.CommitIfLarge()
		}
		if err != nil {
			return fail(err)
		}
	}
	if w.x.Pending() {
		if err := w.x.Commit(); err != nil {
			return fail(err)
		}
	}
	w.rows = r.NumRows()
	if err := tmp.Chmod(o.mode); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fail(err)
	}
	// The rename happened. Should the directory fsync fail and the rename
	// be lost in a crash, the old file is still there: nothing is lost.
	_ = syncDir(filepath.Dir(path))
	present := map[int]bool{}
	for _, row := range r.Rows() {
		if !row.Failed() {
			present[row.Task] = true
		}
	}
	w.start()
	return w, present, nil
}

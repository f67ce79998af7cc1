package results

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestSegmentsRecordEachRun: the creating run is segment 0, each Append
// with NewSegment adds the next with its own job text, and every row keeps
// the segment that wrote it.
func TestSegmentsRecordEachRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.arrow")
	prov := testProv()
	prov.Segments = []Segment{SegmentOf(prov)}
	w, err := Create(path, testJob(), prov)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := w.Write(testRow(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close("completed"); err != nil {
		t.Fatal(err)
	}
	grown := testProv()
	grown.JobText += "# grown\n"
	seg := SegmentOf(grown)
	seg.Changes = []string{"nothing that matters"}
	w, _, err = Append(path, testJob(), grown, NewSegment(seg))
	if err != nil {
		t.Fatalf("append of a new segment with another job text: %v", err)
	}
	for i := 3; i < 5; i++ {
		row := testRow(i)
		row.Segment = 1
		if err := w.Write(row); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close("completed"); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := r.Provenance()
	if len(p.Segments) != 2 || p.Segments[1].Index != 1 || p.Segments[1].RowsBefore != 3 || p.Segments[1].JobText != grown.JobText ||
		p.Segments[0].JobText != prov.JobText {
		t.Fatalf("segments %+v", p.Segments)
	}
	if s, err := p.Segment(1); err != nil || s.JobText != grown.JobText {
		t.Fatalf("Segment(1) = %+v, %v", s, err)
	}
	if _, err := p.Segment(2); err == nil {
		t.Fatal("Segment(2) of a two-segment file")
	}
	for i, row := range r.Rows() {
		want := 0
		if i >= 3 {
			want = 1
		}
		if row.Segment != want || row.Task != i {
			t.Fatalf("row %d: task %d segment %d, want segment %d", i, row.Task, row.Segment, want)
		}
	}
}

// TestModeOption: Create and Append give the file the mode asked for,
// whatever the umask; Append without Mode keeps the file's mode (a private
// file never becomes world-readable by being continued).
func TestModeOption(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "out.arrow")
	mode := func() os.FileMode {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	w, err := Create(path, testJob(), testProv(), Mode(0o600))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(testRow(0))
	if err := w.Close("completed"); err != nil {
		t.Fatal(err)
	}
	if m := mode(); m != 0o600 {
		t.Fatalf("created %o, want 600", m)
	}
	for _, tc := range []struct {
		opt  []Option
		want os.FileMode
	}{{nil, 0o600}, {[]Option{Mode(0o640)}, 0o640}, {nil, 0o640}} {
		w, _, err := Append(path, testJob(), testProv(), tc.opt...)
		if err != nil {
			t.Fatal(err)
		}
		if m := mode(); m != tc.want {
			t.Fatalf("appending with %d options: %o, want %o", len(tc.opt), m, tc.want)
		}
		if err := w.Close("completed"); err != nil {
			t.Fatal(err)
		}
	}
}

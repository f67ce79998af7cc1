package results

import (
	"path/filepath"
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

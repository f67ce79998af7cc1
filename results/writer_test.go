package results

import (
	"errors"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rankhub/rankhub/jobs"
)

func TestSchemaColumns(t *testing.T) {
	s := Schema(testJob())
	var got []string
	for _, f := range s.Fields() {
		got = append(got, f.Name+":"+f.Type.String())
	}
	want := []string{
		"task:int64", "L:int64", "T:float64", "model:utf8", "fast:bool",
		"replicate:int64", "seed:uint64", "rank:int32", "host:utf8",
		"started:timestamp[us, tz=UTC]", "finished:timestamp[us, tz=UTC]",
		"attempt:int32", "exit_status:int32", "error:utf8", "segment:int32", "stdout:utf8", "stderr:utf8", "energy:float64", "mag:float64",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("columns\n got %v\nwant %v", got, want)
	}
	for _, name := range []string{"error", "stdout", "stderr", "energy", "mag"} {
		if f, _ := s.FieldsByName(name); !f[0].Nullable {
			t.Errorf("%s not nullable", name)
		}
	}
	if f, _ := s.FieldsByName("task"); f[0].Nullable {
		t.Error("task nullable")
	}
	if n := Schema(nil).NumFields(); n != 13 {
		t.Errorf("schema of a job without sweep: %d fields, want 13", n)
	}
}

func TestCreateRejectsClashingNames(t *testing.T) {
	job := testJob()
	job.Sweep.Params[1].Name = "seed"
	job.Task.Outputs = []string{"energy", "L"}
	_, err := Create(filepath.Join(t.TempDir(), "x.arrow"), job, testProv())
	if err == nil || !strings.Contains(err.Error(), `"seed" clashes`) || !strings.Contains(err.Error(), `output "L" clashes`) {
		t.Fatalf("err = %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	mem := checkedMem(t)
	path := filepath.Join(dir, "res.arrow")
	w, err := Create(path, testJob(), testProv(), FlushRows(5), FlushInterval(time.Hour), Allocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(path, testJob(), testProv()); err == nil {
		t.Fatal("second Create of the same path succeeded")
	}
	const n = 48
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 4 {
				if err := w.Write(testRow(i)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if err := w.Close("completed"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close("completed"); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if err := w.Write(testRow(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}

	r, err := Open(path, Allocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.Complete() {
		t.Fatal("closed file not complete")
	}
	st, ok := r.Status()
	if !ok || st.State != "completed" || st.Rows != n || time.Since(st.Ended) > time.Minute {
		t.Fatalf("status %+v %v", st, ok)
	}
	rows := r.Rows()
	if len(rows) != n || r.NumRows() != n {
		t.Fatalf("%d rows, want %d", len(rows), n)
	}
	seen := map[int]bool{}
	for _, got := range rows {
		if seen[got.Task] {
			t.Fatalf("task %d twice", got.Task)
		}
		seen[got.Task] = true
		if want := testRow(got.Task); !sameRow(got, want) {
			t.Fatalf("row\n got %+v\nwant %+v", got, want)
		}
		if got.Failed() && !math.IsNaN(got.Outputs[0]) {
			t.Fatalf("failed task %d has output %v", got.Task, got.Outputs)
		}
	}
	if len(r.Records()) != n/5+1 {
		t.Errorf("%d batches, want %d (5 rows each)", len(r.Records()), n/5+1)
	}
	// The error column is null exactly for the successful rows.
	var nulls int
	for _, rec := range r.Records() {
		nulls += rec.Column(r.fixed[ColError]).NullN()
	}
	if want := n - n/7; nulls != want {
		t.Errorf("%d null errors, want %d", nulls, want)
	}

	p := r.Provenance()
	want := testProv()
	want.ResultsVersion = ResultsVersion
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("provenance\n got %+v\nwant %+v", p, want)
	}
	md := r.Schema().Metadata()
	for _, k := range md.Keys() {
		if !strings.HasPrefix(k, "rankhub.") {
			t.Errorf("metadata key %q without rankhub. prefix", k)
		}
	}
	if p2, err := ReadProvenance(path); err != nil || p2.JobID != "4242" {
		t.Fatalf("ReadProvenance: %+v %v", p2, err)
	}
}

func TestWriteRejectsBadRows(t *testing.T) {
	mem := checkedMem(t)
	path := filepath.Join(t.TempDir(), "res.arrow")
	w, err := Create(path, testJob(), testProv(), Allocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		mod  func(*Row)
		want string
	}{
		{func(r *Row) { r.Values = r.Values[:2] }, "2 parameter values, the job has 4"},
		{func(r *Row) { r.Outputs = []float64{1} }, "1 outputs, the job has 2"},
		{func(r *Row) { r.Rank = 1 << 40 }, "rank 1099511627776 out of int32 range"},
	}
	for _, b := range bad {
		r := testRow(0)
		b.mod(&r)
		if err := w.Write(r); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("err = %v, want %q", err, b.want)
		}
	}
	if err := w.Write(testRow(0)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close("completed"); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path, Allocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.NumRows() != 1 {
		t.Fatalf("%d rows, want 1", r.NumRows())
	}
}

// A slow sweep: rows reach the disk by the flush timer alone, and a reader
// sees them while the writer is open.
func TestFlushInterval(t *testing.T) {
	mem := checkedMem(t)
	path := filepath.Join(t.TempDir(), "res.arrow")
	w, err := Create(path, testJob(), testProv(), FlushRows(1000), FlushInterval(30*time.Millisecond), Allocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(path, Allocator(mem))
	if err != nil {
		t.Fatalf("open right after Create: %v", err)
	}
	if r.NumRows() != 0 || r.Complete() {
		t.Fatalf("fresh file: %d rows, complete %v", r.NumRows(), r.Complete())
	}
	r.Close()
	for i := 0; i < 3; i++ {
		if err := w.Write(testRow(i)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := Open(path, Allocator(mem))
		if err != nil {
			t.Fatal(err)
		}
		n, complete := r.NumRows(), r.Complete()
		_, hasStatus := r.Status()
		r.Close()
		if complete || hasStatus {
			t.Fatal("open file reads as complete")
		}
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rows not flushed by the timer: %d on disk", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := w.Close("completed"); err != nil {
		t.Fatal(err)
	}
}

func TestNewProvenance(t *testing.T) {
	p, err := NewProvenance(testJob())
	if err != nil {
		t.Fatal(err)
	}
	if p.Tasks != 24 || p.Seed != 7 || p.Scheduler != jobs.SchedLocal || p.JobText != testJobText ||
		len(p.ProgramSHA256) != 64 || p.Program == "" || p.GoVersion == "" || len(p.Hosts) != 1 {
		t.Fatalf("%+v", p)
	}
	sum, err := FileSHA256(p.Program)
	if err != nil || sum != p.ProgramSHA256 {
		t.Fatalf("sha %s %v", sum, err)
	}
	if p.Order != ExpansionOrder {
		t.Fatalf("order %q", p.Order)
	}
}

func TestOpenRejectsForeignFiles(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"empty":   "",
		"magic":   "ARROW1",
		"text":    "hello, this is not arrow at all",
		"garbage": "ARROW1\x00\x00\xff\xff\xff\xff\x10\x00\x00\x00garbagegarbage!!",
	} {
		path := filepath.Join(dir, name)
		if err := writeBytes(path, []byte(content)); err != nil {
			t.Fatal(err)
		}
		if r, err := Open(path); err == nil {
			r.Close()
			t.Errorf("%s: opened", name)
		}
	}
}

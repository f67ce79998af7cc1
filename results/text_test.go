package results

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/rankhub/rankhub/internal/buildinfo"
)

// A task's stdout and stderr are kept with its row, bounded with a marked
// cut that keeps head and tail; "" is null.
func TestStdoutStderr(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.arrow")
	w, err := Create(path, testJob(), testProv(), TextLimit(1000), FlushInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	header := "# sim 1.3.0\n# params L=16 T=2\n# seed 1000000000000000000\n"
	long := header + strings.Repeat("0.1 0.2 0.3 ünïcödé\n", 5000) + "-1.5 0.25\n# wall time 3.2s\n"
	rows := []Row{testRow(0), testRow(1), testRow(2)}
	rows[0].Stdout, rows[0].Stderr = header+"-1.5 0.25\n", "warning: slow\n"
	rows[1].Stdout = long
	for _, r := range rows {
		if err := w.Write(r); err != nil {
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
	got := r.Rows()
	if got[0].Stdout != rows[0].Stdout || got[0].Stderr != "warning: slow\n" || got[2].Stdout != "" || got[2].Stderr != "" {
		t.Fatalf("rows: %q %q / %q %q", got[0].Stdout, got[0].Stderr, got[2].Stdout, got[2].Stderr)
	}
	s := got[1].Stdout
	if len(s) > 1000+8 || !strings.HasPrefix(s, header) || !strings.HasSuffix(s, "-1.5 0.25\n# wall time 3.2s\n") || !strings.Contains(s, "bytes cut]") {
		t.Fatalf("truncated stdout (%d bytes): %q", len(s), s)
	}
	if !strings.Contains(s, "[rankhub: ") || strings.ToValidUTF8(s, "?") != s {
		t.Fatalf("cut marker or UTF-8 broken: %q", s)
	}
	stdout := r.Records()[0].Column(r.Schema().FieldIndices(ColStdout)[0]).(*array.String)
	if !stdout.IsNull(2) {
		t.Fatal("empty stdout is not null")
	}
}

// Files written before the stdout and stderr columns still open.
func TestReadsFileWithoutTextColumns(t *testing.T) {
	dir := t.TempDir()
	r, err := Open(writeFile(t, dir, 30, 7))
	if err != nil {
		t.Fatal(err)
	}
	want := r.Rows()
	var fields []arrow.Field
	var keep []int
	for i, f := range r.Schema().Fields() {
		if f.Name != ColStdout && f.Name != ColStderr {
			fields, keep = append(fields, f), append(keep, i)
		}
	}
	md := r.Schema().Metadata()
	old := arrow.NewSchema(fields, &md)
	path := filepath.Join(dir, "old.arrow")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	x, err := newIPCFile(f, old, checkedMem(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range r.Records() {
		cols := make([]arrow.Array, len(keep))
		for i, k := range keep {
			cols[i] = rec.Column(k)
		}
		o := array.NewRecordBatch(old, cols, rec.NumRows())
		if err := x.Write(o); err != nil {
			t.Fatal(err)
		}
		o.Release()
	}
	if err := x.Commit(); err != nil {
		t.Fatal(err)
	}
	x.Close()
	f.Close()
	r.Close()
	r2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	got := r2.Rows()
	if len(got) != len(want) || len(r2.Outputs()) != 2 {
		t.Fatalf("%d rows, outputs %v", len(got), r2.Outputs())
	}
	for i := range got {
		if !sameRow(got[i], want[i]) {
			t.Fatalf("row %d differs", i)
		}
	}
}

// Input and script hashes are recorded; a resume with a changed input is
// refused naming the file, and recorded when forced.
func TestProvenanceInputsAndScript(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "tables"), 0o755)
	for name, text := range map[string]string{"input.txt": "L 16\n", "tables/a.dat": "1 2\n", "tables/b.dat": "3 4\n", "sim.sh": "echo 1\n"} {
		os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644)
	}
	in, err := HashInputs(dir, []string{"input.txt", "tables/*.dat"})
	if err != nil {
		t.Fatal(err)
	}
	if len(in) != 3 || len(in["tables/b.dat"]) != 64 || len(in["input.txt"]) != 64 {
		t.Fatalf("inputs %v", in)
	}
	if _, err := HashInputs(dir, []string{"nope/*.dat"}); err == nil || !strings.Contains(err.Error(), `"nope/*.dat": no file matches`) {
		t.Fatalf("missing input: %v", err)
	}
	prov := testProv()
	prov.Inputs = in
	prov.Script, _ = filepath.Abs(filepath.Join(dir, "sim.sh"))
	prov.ScriptSHA256, _ = FileSHA256(prov.Script)
	path := filepath.Join(dir, "res.arrow")
	w, err := Create(path, testJob(), prov)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(testRow(0))
	w.Close("completed")
	got, err := ReadProvenance(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Inputs) != 3 || got.Inputs["input.txt"] != in["input.txt"] || got.Script != prov.Script || got.ScriptSHA256 != prov.ScriptSHA256 {
		t.Fatalf("provenance read back: %+v", got)
	}

	os.WriteFile(filepath.Join(dir, "tables/a.dat"), []byte("1 2.5\n"), 0o644)
	prov.Inputs, _ = HashInputs(dir, []string{"input.txt", "tables/*.dat"})
	_, _, err = Append(path, testJob(), prov)
	if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "input files tables/a.dat") {
		t.Fatalf("Append with a changed input: %v", err)
	}
	w, _, err = Append(path, testJob(), prov, Force())
	if err != nil {
		t.Fatal(err)
	}
	w.Close("completed")
	got, _ = ReadProvenance(path)
	if len(got.Resumes) != 1 || !got.Resumes[0].Forced || got.Resumes[0].Inputs["tables/a.dat"] != prov.Inputs["tables/a.dat"] || got.Inputs["tables/a.dat"] != in["tables/a.dat"] {
		t.Fatalf("forced resume: %+v", got)
	}
}

// The revision the Makefile stamps into internal/buildinfo is the one a
// result file records, whatever the Go build information says.
func TestProvenanceRevisionStamped(t *testing.T) {
	buildinfo.Revision = "0123456789abcdef"
	defer func() { buildinfo.Revision = "" }()
	p, err := NewProvenance(testJob())
	if err != nil {
		t.Fatal(err)
	}
	if p.Revision != "0123456789abcdef" || p.Version != buildinfo.Version {
		t.Fatalf("version %q revision %q", p.Version, p.Revision)
	}
}

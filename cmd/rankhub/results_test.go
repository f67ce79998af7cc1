package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/results"
)

const isingJob = `[job]
name = "ising"
ranks = 3
seed = 3

[task]
command = "./ising --L {L} --T {T} --seed {seed}"
outputs = ["energy", "mag"]

[sweep]
L = [8, 16]
T = [1.5, 2.0, 2.5]
replicates = 4

[results]
path = "ising.arrow"
group_by = ["L", "T"]
`

// energyOf is the energy written for task i: a known value per row.
func energyOf(i int) float64 { return -2 + float64(i)/1000 }

// writeResults writes tasks [from, to) of job (isingJob when "") to
// dir/name, flushing every flush rows, and closes it with status (or
// leaves it as a killed writer would when status is "").
func writeResults(t *testing.T, dir, name, jobText string, from, to, flush int, status string) string {
	t.Helper()
	if jobText == "" {
		jobText = isingJob
	}
	job, err := jobs.Parse(name+".toml", []byte(jobText))
	if err != nil {
		t.Fatal(err)
	}
	prov, err := results.NewProvenance(job)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	w, err := results.Create(path, job, prov, results.FlushRows(flush), results.FlushInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for i := from; i < to; i++ {
		task := job.TaskAt(i)
		row := results.Row{Task: i, Values: task.Values, Replicate: task.Replicate, Seed: task.Seed,
			Rank: 1, Host: "n1", Started: time.Unix(1700000000+int64(i), 0), Finished: time.Unix(1700000001+int64(i), 0),
			Attempt: 1, Outputs: []float64{energyOf(i), float64(i % 3)}}
		if i%10 == 9 {
			row.Outputs[1] = math.NaN()
		}
		if i >= 20 { // the group L=16, T=2.5 has failures only
			row.ExitStatus, row.Err, row.Outputs = 1, "diverged", nil
		}
		row.Stdout = fmt.Sprintf("# sim 1.3.0\n# params L=%s\n%v %v\n", task.Values[0].Format(jobs.KindInt), energyOf(i), i%3)
		if err := w.Write(row); err != nil {
			t.Fatal(err)
		}
	}
	if status == "" {
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		// Copy the file as it is now, as if the writer had been killed.
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		w.Close("completed")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	if err := w.Close(status); err != nil {
		t.Fatal(err)
	}
	return path
}

// peek and results recover name a corrupt batch and leave its rows out.
func TestPeekAndRecoverReportCorruption(t *testing.T) {
	dir := t.TempDir()
	path := writeResults(t, dir, "c.arrow", "", 0, 24, 4, "completed")
	b, _ := os.ReadFile(path)
	v := binary.LittleEndian.AppendUint64(nil, math.Float64bits(energyOf(13)))
	i := bytes.Index(b, v)
	if i < 0 {
		t.Fatal("energy of task 13 not found in the file")
	}
	b[i+3] ^= 0x10
	os.WriteFile(path, b, 0o644)

	r := rh(t, dir, "peek", "c.arrow", "--by", "L")
	if r.code != 0 || !strings.Contains(r.stderr, "record batch") || !strings.Contains(r.stderr, "checksum mismatch") {
		t.Fatalf("peek: %+v", r)
	}
	r = rh(t, dir, "results", "recover", "c.arrow")
	if r.code != 0 || !strings.Contains(r.stderr, "dropping") || !strings.Contains(r.stdout, "20 rows kept") {
		t.Fatalf("recover: %+v", r)
	}
	f, err := results.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.NumRows() != 20 || len(f.Problems()) != 0 {
		t.Fatalf("after recover: %d rows, problems %v", f.NumRows(), f.Problems())
	}
	for _, row := range f.Rows() {
		if !row.Failed() && row.Outputs[0] != energyOf(row.Task) {
			t.Fatalf("task %d: energy %v", row.Task, row.Outputs[0])
		}
	}
}

// peek --format tsv: a # header, mean and sem apart, the same number of
// fields on every line, NaN where a value is undefined.
func TestPeekTSV(t *testing.T) {
	dir := t.TempDir()
	writeResults(t, dir, "a.arrow", "", 0, 24, 5, "completed")
	r := rh(t, dir, "peek", "a.arrow", "--format", "tsv")
	if r.code != 0 {
		t.Fatalf("peek: %+v", r)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	want := "# L\tT\trows\tfailed\tenergy_n\tenergy_mean\tenergy_sem\tenergy_min\tenergy_max\tmag_n\tmag_mean\tmag_sem\tmag_min\tmag_max"
	if lines[0] != want || len(lines) != 7 {
		t.Fatalf("peek tsv:\n%s", r.stdout)
	}
	for _, l := range lines[1:] {
		if n := len(strings.Split(l, "\t")); n != 14 {
			t.Fatalf("%d fields in %q", n, l)
		}
	}
	// L=8, T=1.5 holds tasks 0-3; L=16, T=2.5 only failures.
	if !strings.HasPrefix(lines[1], "8\t1.5\t4\t0\t4\t-1.9985") || lines[6] != "16\t2.5\t4\t4\t0\tNaN\tNaN\tNaN\tNaN\t0\tNaN\tNaN\tNaN\tNaN" {
		t.Fatalf("peek tsv:\n%s", r.stdout)
	}
}

// peek of several files merges those of one job and refuses others.
func TestPeekSeveralFiles(t *testing.T) {
	dir := t.TempDir()
	writeResults(t, dir, "a.arrow", "", 0, 12, 5, "completed")
	writeResults(t, dir, "b.arrow", "", 12, 24, 5, "")
	writeResults(t, dir, "c.arrow", "", 6, 18, 5, "completed")
	writeResults(t, dir, "p.arrow", strings.Replace(isingJob, `name = "ising"`, `name = "potts"`, 1), 0, 12, 5, "completed")
	r := rh(t, dir, "peek", "a.arrow", "b.arrow", "--by", "L", "--format", "tsv")
	if r.code != 0 || !strings.Contains(r.stdout, "\n8\t12\t0\t") || !strings.Contains(r.stdout, "\n16\t12\t4\t") {
		t.Fatalf("peek a b: %+v", r)
	}
	r = rh(t, dir, "peek", "a.arrow", "p.arrow")
	if r.code == 0 || !strings.Contains(r.stderr, `a.arrow is job "ising"`) || !strings.Contains(r.stderr, `p.arrow is job "potts"`) {
		t.Fatalf("peek a p: %+v", r)
	}
	r = rh(t, dir, "peek", "a.arrow", "c.arrow")
	if r.code == 0 || !strings.Contains(r.stderr, "task 6") || !strings.Contains(r.stderr, "count twice") {
		t.Fatalf("peek a c: %+v", r)
	}
}

// results export through the CLI, to a file; results show prints a row in
// full with its run's provenance.
func TestResultsExportAndShow(t *testing.T) {
	dir := t.TempDir()
	writeResults(t, dir, "a.arrow", "", 0, 24, 5, "completed")
	r := rh(t, dir, "results", "export", "a.arrow", "--columns", "L,T,energy", "-o", "a.tsv")
	if r.code != 0 {
		t.Fatalf("export: %+v", r)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "a.tsv"))
	if lines := strings.Split(string(b), "\n"); lines[0] != "# L\tT\tenergy" || lines[1] != "8\t1.5\t-2" || len(lines) != 26 {
		t.Fatalf("a.tsv:\n%s", b)
	}
	if r := rh(t, dir, "results", "export", "a.arrow", "--format", "xml"); r.code != 2 || !strings.Contains(r.stderr, "parquet") {
		t.Fatalf("export --format xml: %+v", r)
	}
	r = rh(t, dir, "results", "show", "a.arrow", "--row", "21")
	for _, want := range []string{"row 21 of a.arrow", "stdout\n    # sim 1.3.0\n    # params L=16\n", "task         21", "L            16", "T            2.5", "seed", "exit status  1", "error        diverged",
		"energy       missing", "rankhub", "revision", "job text", `name = "ising"`} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("show: no %q in\n%s\n%s", want, r.stdout, r.stderr)
		}
	}
	if r := rh(t, dir, "results", "show", "a.arrow", "--row", "99"); r.code == 0 || !strings.Contains(r.stderr, "24 rows") {
		t.Fatalf("show --row 99: %+v", r)
	}
}

// A result file records the revision the Makefile stamps, also when Go's
// build information has none (GOFLAGS=-buildvcs=false), and it is the one
// `rankhub version` prints.
func TestResultFileRecordsStampedRevision(t *testing.T) {
	if testing.Short() {
		t.Skip("builds rankhub")
	}
	mk, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	var ldflags string
	for _, l := range strings.Split(string(mk), "\n") {
		if v, ok := strings.CutPrefix(l, "LDFLAGS := "); ok {
			ldflags = strings.ReplaceAll(v, "$(REV)", "feedc0ffee")
		}
	}
	if !strings.Contains(ldflags, "feedc0ffee") {
		t.Fatalf("no LDFLAGS stamping $(REV) in the Makefile")
	}
	dir := t.TempDir()
	exe := filepath.Join(dir, "rankhub")
	build := exec.Command("go", "build", "-ldflags", ldflags, "-o", exe, ".")
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	job := "[job]\nname = \"rev\"\nranks = 2\n[task]\ncommand = \"echo {x}\"\noutputs = [\"y\"]\n[sweep]\nx = [1, 2]\n[results]\npath = \"rev.arrow\"\n"
	os.WriteFile(filepath.Join(dir, "rev.toml"), []byte(job), 0o644)
	run := exec.Command(exe, "run", "rev.toml")
	run.Dir = dir
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("rankhub run: %v\n%s", err, out)
	}
	p, err := results.ReadProvenance(filepath.Join(dir, "rev.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(exe, "version").Output()
	if p.Revision != "feedc0ffee" || !strings.Contains(string(out), "revision feedc0ffee") {
		t.Fatalf("result file revision %q; rankhub version:\n%s", p.Revision, out)
	}
}

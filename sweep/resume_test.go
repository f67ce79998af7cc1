package sweep

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/results"
)

const resumeHead = "[job]\nranks = 2\nseed = 3\nprogram = [\"./p\"]\n[task]\nfunction = \"f\"\noutputs = [\"y\"]\n[sweep]\n"

// fileOf writes a result file holding every task of body's job.
func fileOf(t *testing.T, body string, segments bool) (string, *jobs.Job) {
	t.Helper()
	job, err := jobs.Parse("t.toml", []byte(resumeHead+body))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "out.arrow")
	prov := results.Provenance{JobText: string(job.Source), JobFile: job.File, ProgramSHA256: "abc", Seed: 3, Started: time.Now()}
	if segments {
		prov.Segments = []results.Segment{results.SegmentOf(prov)}
	}
	w, err := results.Create(path, job, prov)
	if err != nil {
		t.Fatal(err)
	}
	for i := range job.NumTasks() {
		task := job.TaskAt(i)
		if err := w.Write(results.Row{Task: i, Values: task.Values, Replicate: task.Replicate, Seed: task.Seed, Outputs: []float64{1}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close("completed"); err != nil {
		t.Fatal(err)
	}
	return path, job
}

func provOf(t *testing.T, body string) (*jobs.Job, results.Provenance) {
	job, err := jobs.Parse("t.toml", []byte(resumeHead+body))
	if err != nil {
		t.Fatal(err)
	}
	return job, results.Provenance{JobText: string(job.Source), ProgramSHA256: "abc", Seed: 3}
}

func TestResumeGrowthAndChanges(t *testing.T) {
	path, _ := fileOf(t, "x = [1, 2]\nreplicates = 2\n", true)

	job, prov := provOf(t, "x = [3, 1, 2]\nk = { values = [\"a\", \"b\"], default = \"a\" }\nreplicates = 3\n")
	c, err := Resume(path, job, prov, false)
	if err != nil {
		t.Fatalf("growth refused: %v", err)
	}
	if pl := NewPlanner(job, c.Done); c.Segment.Forced || c.Segment.Index != 1 || pl.Present() != 4 || pl.Todo() != 14 {
		t.Fatalf("segment %+v, present %d, todo %d", c.Segment, pl.Present(), pl.Todo())
	}

	changed := strings.Replace(resumeHead, `function = "f"`, `function = "g"`, 1) + "x = [1, 2]\nreplicates = 2\n"
	cj, err := jobs.Parse("t.toml", []byte(strings.Replace(changed, "seed = 3", "seed = 4", 1)))
	if err != nil {
		t.Fatal(err)
	}
	cprov := results.Provenance{JobText: string(cj.Source), ProgramSHA256: "def"}
	_, err = Resume(path, cj, cprov, false)
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("a changed function was accepted: %v", err)
	}
	for _, want := range []string{`task.function: "f" → "g"`, `job.seed: "3" → "4"`, "program SHA-256 abc"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	c, err = Resume(path, cj, cprov, true)
	if err != nil || !c.Segment.Forced || len(c.Segment.Changes) != 3 || len(c.Done) != 4 {
		t.Fatalf("forced: %+v, %v", c, err)
	}
}

func TestResumeRefusesAnotherJobsFile(t *testing.T) {
	path, _ := fileOf(t, "x = [1, 2]\n", true)
	job, err := jobs.Parse("other.toml", []byte(strings.Replace(resumeHead, "[job]\n", "[job]\nname = \"other\"\n", 1)+"x = [1, 2]\n[results]\npath = \"out.arrow\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = Precheck(path, job, false, "")
	if err == nil || !strings.Contains(err.Error(), `other.toml:12:1: results.path: `) || !strings.Contains(err.Error(), `holds the results of job "t"`) {
		t.Fatalf("another job's file: %v", err)
	}
}

func TestResumeRefusals(t *testing.T) {
	old, _ := fileOf(t, "x = [1, 2]\n", false)
	job, prov := provOf(t, "x = [1, 2]\n")
	if _, err := Resume(old, job, prov, true); err == nil || !strings.Contains(err.Error(), "seeds follow the task's position") {
		t.Fatalf("a file without segments: %v", err)
	}
	path, _ := fileOf(t, "x = [1, 2]\n", true)
	job, prov = provOf(t, "x = [1, 2]\nz = [5, 6]\n")
	_, err := Resume(path, job, prov, true)
	if err == nil || !strings.Contains(err.Error(), "t.toml:10:1: sweep.z: new parameter without a default") {
		t.Fatalf("a new parameter without a default: %v", err)
	}
}

// TestResumeRefusesVersion1File: testdata/v1.arrow was written by rankhub at
// 03780cb (seeds by position). It still reads, as segment 0, but a resume
// is refused even with force: its seeds have another meaning.
func TestResumeRefusesVersion1File(t *testing.T) {
	b, err := os.ReadFile("testdata/v1.arrow")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "v1.arrow")
	os.WriteFile(path, b, 0o644)
	job, err := jobs.Load("testdata/v1.toml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := results.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	rows := r.Rows()
	r.Close()
	if len(rows) != 6 || rows[5].Segment != 0 || r.Provenance().ResultsVersion != "1" {
		t.Fatalf("%d rows, version %q", len(rows), r.Provenance().ResultsVersion)
	}
	for _, force := range []bool{false, true} {
		err := Precheck(path, job, force, "")
		if err == nil || !strings.Contains(err.Error(), "results version 1") || !strings.Contains(err.Error(), "seeds follow the task's position") {
			t.Fatalf("force %v: %v", force, err)
		}
	}
}

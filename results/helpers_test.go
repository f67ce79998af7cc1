package results

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/rankhub/rankhub/jobs"
)

const testJobText = `[job]
name = "ising"
seed = 7
[task]
command = "./ising --L {L} --T {T} --model {model} --fast {fast} --seed {seed}"
outputs = ["energy", "mag"]
[sweep]
L = [16, 32]
T = [2.0, 2.5, 3.0]
model = ["ising"]
fast = [true]
replicates = 4
`

// testJob builds a job with one parameter of every kind and two outputs.
func testJob() *jobs.Job {
	ints := func(v ...int64) []jobs.Value {
		out := make([]jobs.Value, len(v))
		for i, x := range v {
			out[i] = jobs.Value{Int: x}
		}
		return out
	}
	floats := func(v ...float64) []jobs.Value {
		out := make([]jobs.Value, len(v))
		for i, x := range v {
			out[i] = jobs.Value{Float: x}
		}
		return out
	}
	return &jobs.Job{
		File:   "ising.toml",
		Source: []byte(testJobText),
		Job:    jobs.JobSpec{Name: "ising", Seed: 7},
		Task:   &jobs.TaskSpec{Outputs: []string{"energy", "mag"}},
		Sweep: &jobs.SweepSpec{
			Params: []jobs.Param{
				{Name: "L", Kind: jobs.KindInt, Values: ints(16, 32)},
				{Name: "T", Kind: jobs.KindFloat, Values: floats(2.0, 2.5, 3.0)},
				{Name: "model", Kind: jobs.KindString, Values: []jobs.Value{{Str: "ising"}}},
				{Name: "fast", Kind: jobs.KindBool, Values: []jobs.Value{{Bool: true}}},
			},
			Replicates: 4,
		},
	}
}

func testProv() Provenance {
	return Provenance{
		JobText:       testJobText,
		JobFile:       "ising.toml",
		Version:       "v0.1.0",
		Revision:      "0123abcd",
		GoVersion:     "go1.26.0",
		Program:       "/usr/local/bin/rankhub",
		ProgramSHA256: "aa11",
		Hosts:         []string{"n001", "n002"},
		JobID:         "4242",
		Scheduler:     "slurm",
		Started:       time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC),
		Seed:          7,
		Tasks:         24,
		Order:         "params in file order, last fastest; replicate innermost",
	}
}

// testRow makes the row of task i of testJob's expansion (L, T, replicate),
// with deterministic outputs; every 7th task fails.
func testRow(i int) Row {
	job := testJob()
	rep := i % 4
	ti := (i / 4) % 3
	li := (i / 12) % 2
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
	r := Row{
		Task: i,
		Values: []jobs.Value{
			job.Sweep.Params[0].Values[li], job.Sweep.Params[1].Values[ti],
			{Str: "ising"}, {Bool: true},
		},
		Replicate: rep,
		Seed:      uint64(1e18) + uint64(i),
		Rank:      1 + i%3,
		Host:      fmt.Sprintf("n%03d", 1+i%2),
		Started:   t0,
		Finished:  t0.Add(1500 * time.Microsecond),
		Attempt:   1,
		Outputs:   []float64{-float64(li+1) * float64(ti+1) * (1 + 0.1*float64(rep)), float64(i) / 10},
	}
	if i%7 == 6 {
		r.ExitStatus = 3
		r.Err = fmt.Sprintf("task %d: segfault", i)
		r.Outputs = nil
	}
	if i%11 == 10 && !r.Failed() {
		r.Outputs[1] = math.NaN() // missing output
	}
	return r
}

// checkedMem returns an allocator whose balance is checked at cleanup.
func checkedMem(t *testing.T) *memory.CheckedAllocator {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

// writeFile writes rows 0..n-1 with flushes every flushRows and closes.
func writeFile(t *testing.T, dir string, n, flushRows int) string {
	t.Helper()
	mem := checkedMem(t)
	path := filepath.Join(dir, "res.arrow")
	w, err := Create(path, testJob(), testProv(), FlushRows(flushRows), FlushInterval(time.Hour), Allocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := w.Write(testRow(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close("completed"); err != nil {
		t.Fatal(err)
	}
	return path
}

// sameRow compares rows, NaN equal to NaN, failed rows' outputs ignored.
func sameRow(a, b Row) bool {
	if a.Task != b.Task || a.Replicate != b.Replicate || a.Seed != b.Seed || a.Rank != b.Rank ||
		a.Host != b.Host || !a.Started.Equal(b.Started) || !a.Finished.Equal(b.Finished) ||
		a.Attempt != b.Attempt || a.ExitStatus != b.ExitStatus || a.Err != b.Err || len(a.Values) != len(b.Values) {
		return false
	}
	for i := range a.Values {
		if a.Values[i] != b.Values[i] {
			return false
		}
	}
	if a.Failed() {
		return true
	}
	if len(a.Outputs) != len(b.Outputs) {
		return false
	}
	for i := range a.Outputs {
		x, y := a.Outputs[i], b.Outputs[i]
		if x != y && !(math.IsNaN(x) && math.IsNaN(y)) {
			return false
		}
	}
	return true
}

func readAll(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeBytes(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }

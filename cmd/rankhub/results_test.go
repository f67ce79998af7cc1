package main

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
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
		if row.Outputs[0] != energyOf(row.Task) {
			t.Fatalf("task %d: energy %v", row.Task, row.Outputs[0])
		}
	}
}

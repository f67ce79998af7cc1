package rankhub_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rankhub/rankhub"
	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/results"
)

func growJob(xs string, reps int, extra string) string {
	return fmt.Sprintf(`[job]
name = "grow"
ranks = 3
seed = 2024

[task]
function = "tiny"
outputs = ["y", "u"]

[sweep]
x = %s
ms = [0]
%s
replicates = %d

[results]
path = "out.arrow"
flush_interval = "100ms"
`, xs, extra, reps)
}

// rowsByID reads a result file into its rows by task identity under job.
func rowsByID(t *testing.T, path, jobText string) (map[jobs.TaskID]results.Row, *results.Reader) {
	t.Helper()
	job, err := jobs.Parse("job.toml", []byte(jobText))
	if err != nil {
		t.Fatal(err)
	}
	r, err := results.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	out := map[jobs.TaskID]results.Row{}
	for i, row := range r.Rows() {
		key, err := job.KeyOfColumns(r.Params(), r.ParamKinds(), row.Values)
		if err != nil {
			t.Fatal(err)
		}
		id := jobs.KeyID(key, row.Replicate)
		if prev, dup := out[id]; dup {
			t.Fatalf("row %d duplicates task %q r%d (rows of segments %d and %d)", i, key, row.Replicate, prev.Segment, row.Segment)
		}
		if row.Err != "" {
			t.Fatalf("row %d failed: %s", i, row.Err)
		}
		out[id] = row
	}
	return out, r
}

// TestSweepGrowsByReplicatesValuesAndDefaultedParameter: a sweep grown by
// replicates, then by values (added first, keys reordered) and a new
// parameter with a default, runs exactly the missing tasks with --resume
// and no --force; every row keeps its seed, and the grown file equals a
// fresh run of the final job bit for bit.
func TestSweepGrowsByReplicatesValuesAndDefaultedParameter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	dir := t.TempDir()
	path := filepath.Join(dir, "out.arrow")
	steps := []struct {
		job  string
		want int
	}{
		{growJob("[1, 2, 3]", 4, ""), 12},
		{growJob("[1, 2, 3]", 12, ""), 36},
		{growJob("[4, 1, 2, 3]", 12, `k = { values = [0, 1], default = 0 }`), 96},
	}
	var before map[jobs.TaskID]results.Row
	for i, st := range steps {
		env := map[string]string{}
		if i > 0 {
			env[rankhub.EnvResume] = "1"
		}
		if err := <-runSweepRanks(t, ctx, dir, st.job, 3, env); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		rows, r := rowsByID(t, path, st.job)
		if len(rows) != st.want || r.NumRows() != st.want {
			t.Fatalf("step %d: %d rows (%d distinct tasks), want %d", i, r.NumRows(), len(rows), st.want)
		}
		segs := r.Provenance().Segments
		if len(segs) != i+1 || segs[i].JobText != st.job || segs[i].Forced {
			t.Fatalf("step %d: segments %+v", i, segs)
		}
		for id, old := range before {
			now, ok := rows[id]
			if !ok {
				t.Fatalf("step %d: task %+v of the earlier run is gone", i, id)
			}
			if now.Seed != old.Seed || now.Segment != old.Segment || math.Float64bits(now.Outputs[0]) != math.Float64bits(old.Outputs[0]) {
				t.Fatalf("step %d: task %+v changed: %+v, was %+v", i, id, now, old)
			}
		}
		for id, row := range rows {
			if _, old := before[id]; !old && row.Segment != i {
				t.Fatalf("step %d: new row %+v names segment %d", i, id, row.Segment)
			}
		}
		before = rows
	}
	// A fresh run of the final job: the same tasks, seeds and outputs.
	fresh := t.TempDir()
	last := steps[len(steps)-1].job
	if err := <-runSweepRanks(t, ctx, fresh, last, 3, nil); err != nil {
		t.Fatal(err)
	}
	rows, _ := rowsByID(t, filepath.Join(fresh, "out.arrow"), last)
	if len(rows) != len(before) {
		t.Fatalf("fresh run: %d tasks, grown file %d", len(rows), len(before))
	}
	for id, row := range rows {
		g, ok := before[id]
		if !ok || g.Seed != row.Seed || math.Float64bits(g.Outputs[0]) != math.Float64bits(row.Outputs[0]) ||
			math.Float64bits(g.Outputs[1]) != math.Float64bits(row.Outputs[1]) {
			t.Fatalf("task %+v: fresh %+v, grown %+v", id, row, g)
		}
	}
	// A new parameter without a default is refused before anything runs.
	bad := growJob("[4, 1, 2, 3]", 12, "k = { values = [0, 1], default = 0 }\nq = [5]")
	if err := <-runSweepRanks(t, ctx, dir, bad, 2, map[string]string{rankhub.EnvResume: "1"}); err == nil {
		t.Fatal("a new parameter without a default was accepted")
	}
	if b := readFile(t, filepath.Join(dir, "rank-0.err")); !strings.Contains(b, "job.toml:14:1: sweep.q: new parameter without a default") {
		t.Fatalf("refusal:\n%s", b)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSweepFillsGroupsEvenly: 6 groups × 20 replicates on 3 ranks, rows in
// finish order: at 10%, 25% and 50% every group has rows and the smallest
// group has at least half the rows of the largest.
func TestSweepFillsGroupsEvenly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	job := strings.Replace(growJob("[0, 1, 2, 3, 4, 5]", 20, ""), "ms = [0]", "ms = [4]", 1)
	if err := <-runSweepRanks(t, ctx, dir, job, 3, nil); err != nil {
		t.Fatal(err)
	}
	r, err := results.Open(filepath.Join(dir, "out.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rows := r.Rows()
	if len(rows) != 120 {
		t.Fatalf("%d rows", len(rows))
	}
	// Two engines run neighbouring tasks of the replicate-major order side
	// by side, so the first k rows to finish may hold one task of the next
	// round before the last of this one (a row of group 0 for round 3 can
	// finish 0.3 ms before group 1's row of round 2 on the other engine):
	// every group is within one row of the even share k/6, never further.
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Finished.Before(rows[j].Finished) })
	for _, frac := range []float64{0.10, 0.25, 0.50} {
		k := int(frac * 120)
		n := map[int64]int{}
		for _, row := range rows[:k] {
			n[row.Values[0].Int]++
		}
		lo, hi := math.MaxInt, 0
		for x := int64(0); x < 6; x++ {
			lo, hi = min(lo, n[x]), max(hi, n[x])
		}
		if lo < k/6-1 || hi > (k+5)/6+1 {
			t.Errorf("at %.0f%% (%d rows): rows per group %v (min %d, max %d; want %d to %d)",
				100*frac, k, n, lo, hi, k/6-1, (k+5)/6+1)
		}
	}
}

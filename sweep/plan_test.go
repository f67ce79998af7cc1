package sweep

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/rankhub/rankhub/jobs"
)

func parse(t testing.TB, body string) *jobs.Job {
	t.Helper()
	j, err := jobs.Parse("t.toml", []byte("[job]\nranks = 2\nseed = 3\nprogram = [\"./p\"]\n[task]\nfunction = \"f\"\noutputs = [\"y\"]\n[sweep]\n"+body))
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func drain(pl *Planner, chunk func() int) []Ref {
	var all []Ref
	for {
		refs := pl.Next(chunk())
		if refs == nil {
			return all
		}
		all = append(all, refs...)
	}
}

func TestPlannerOrder(t *testing.T) {
	for _, tc := range []struct {
		order string
		want  string
	}{
		{"", "0/0 1/0 2/0 2/1 1/1 0/1"},
		{`order = "replicates"`, "0/0 1/0 2/0 2/1 1/1 0/1"},
		{`order = "grid"`, "0/0 0/1 1/0 1/1 2/0 2/1"},
	} {
		pl := NewPlanner(parse(t, "x = [1, 2, 3]\nreplicates = 2\n"+tc.order+"\n"), nil)
		var got []string
		for _, r := range drain(pl, func() int { return 4 }) {
			got = append(got, fmt.Sprintf("%d/%d", r.Point, r.Replicate))
		}
		if strings.Join(got, " ") != tc.want || pl.Left() != 0 || pl.Todo() != 6 {
			t.Errorf("%s: %s (left %d), want %s", tc.order, strings.Join(got, " "), pl.Left(), tc.want)
		}
	}
}

func TestPlannerChunksStayInTheirRound(t *testing.T) {
	pl := NewPlanner(parse(t, "x = [1, 2, 3, 4, 5]\nreplicates = 3\n"), nil)
	var got []int
	for refs := pl.Next(1); refs != nil; refs = pl.Next(3) {
		got = append(got, len(refs))
	}
	if fmt.Sprint(got) != "[1 2 2 3 2 3 2]" {
		t.Fatalf("chunk sizes %v", got)
	}
}

// TestPlannerPropertyEveryTaskOnce: over random sweeps, random done sets
// and random chunk sizes, every wanted task that is not done is handed out
// exactly once, and no done task is.
func TestPlannerPropertyEveryTaskOnce(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for trial := 0; trial < 200; trial++ {
		order := []string{"", `order = "grid"`}[r.IntN(2)]
		job := parse(t, fmt.Sprintf("a = %s\nb = [\"u\", \"v\"]\nreplicates = %d\n%s\n",
			[]string{"[1]", "[1, 2, 3]", "{ start = 0, stop = 1, num = 5 }"}[r.IntN(3)], 1+r.IntN(5), order))
		done := Done{}
		for i := range job.NumTasks() {
			if r.IntN(3) == 0 {
				done[job.ID(job.TaskAt(i))] = struct{}{}
			}
		}
		pl := NewPlanner(job, done)
		if pl.Present() != len(done) || pl.Todo() != job.NumTasks()-len(done) {
			t.Fatalf("trial %d: present %d todo %d, done %d of %d", trial, pl.Present(), pl.Todo(), len(done), job.NumTasks())
		}
		seen := map[jobs.TaskID]bool{}
		for _, ref := range drain(pl, func() int { return 1 + r.IntN(7) }) {
			id := job.ID(job.PointTask(ref.Point, ref.Replicate))
			if seen[id] {
				t.Fatalf("trial %d: %+v handed out twice", trial, ref)
			}
			if _, d := done[id]; d {
				t.Fatalf("trial %d: done task %+v handed out", trial, ref)
			}
			seen[id] = true
		}
		if len(seen) != pl.Todo() || pl.Left() != 0 {
			t.Fatalf("trial %d: %d handed out, todo %d, left %d", trial, len(seen), pl.Todo(), pl.Left())
		}
	}
}

// TestPlannerGrowth: the plan of a grown job holds exactly the new tasks.
func TestPlannerGrowth(t *testing.T) {
	old := parse(t, "L = [8, 16]\nT = [1.5, 2.5]\nreplicates = 3\n")
	done := Done{}
	for i := range old.NumTasks() {
		done[old.ID(old.TaskAt(i))] = struct{}{}
	}
	for _, tc := range []struct {
		body string
		want int
	}{
		{"L = [8, 16]\nT = [1.5, 2.5]\nreplicates = 3\n", 0},
		{"T = [2.5, 1.5]\nL = [16, 8]\nreplicates = 3\n", 0},
		{"L = [8, 16]\nT = [1.5, 2.5]\nreplicates = 5\n", 8},
		{"L = [8, 16, 32]\nT = [1.5, 2.0, 2.5]\nreplicates = 3\n", 15},
		{"L = [8, 16]\nT = [1.5, 2.5]\nh = { values = [0.0, 0.1], default = 0.0 }\nreplicates = 3\n", 12},
	} {
		pl := NewPlanner(parse(t, tc.body), done)
		if got := len(drain(pl, func() int { return 5 })); got != tc.want || pl.Todo() != tc.want {
			t.Errorf("%q: %d tasks planned (todo %d), want %d", tc.body, got, pl.Todo(), tc.want)
		}
	}
}

func TestChunkSize(t *testing.T) {
	for _, tc := range []struct {
		cost          time.Duration
		left, engines int
		want          int
		points        int
	}{
		{0, 100, 2, 1, 10},
		{time.Millisecond, 1000, 2, 50, 1000},
		{time.Millisecond, 1000, 2, 3, 6},
		{time.Microsecond, 1_000_000, 2, 4096, 6},
		{time.Microsecond, 100, 2, 25, 6},
		{time.Second, 100, 2, 1, 10},
		{time.Millisecond, 0, 2, 0, 10},
	} {
		if got := ChunkSize(tc.cost, tc.cost, tc.left, tc.engines, tc.points); got != tc.want {
			t.Errorf("ChunkSize(%v, %d, %d, %d) = %d, want %d", tc.cost, tc.left, tc.engines, tc.points, got, tc.want)
		}
	}
}

// TestPlannerStreams: planning 10^7 tasks holds no task list: the first
// chunk comes at once and the heap does not grow with the sweep.
func TestPlannerStreams(t *testing.T) {
	job := parse(t, "a = { start = 0, stop = 9999, step = 1 }\nreplicates = 1000\n")
	start := time.Now()
	pl := NewPlanner(job, nil)
	refs := pl.Next(4096)
	if len(refs) < 3000 || pl.Total() != 10_000_000 || time.Since(start) > time.Second {
		t.Fatalf("%d refs of %d in %v", len(refs), pl.Total(), time.Since(start))
	}
	if refs[1] != (Ref{Point: 1}) {
		t.Fatalf("second task %+v: replicate-major order wants point 1 replicate 0", refs[1])
	}
}

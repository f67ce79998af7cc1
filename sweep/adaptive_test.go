package sweep

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/rankhub/rankhub/jobs"
)

// noisy is a synthetic task: group p's output has standard deviation
// sigma[p] around 10, drawn from the task's own seed.
func noisy(job *jobs.Job, sigma []float64, ref Ref) []float64 {
	seed := job.PointTask(ref.Point, ref.Replicate).Seed
	r := rand.New(rand.NewPCG(seed, 1))
	return []float64{10 + sigma[ref.Point]*r.NormFloat64()}
}

// runSynthetic drives a planner with results arriving lag tasks late (as
// with chunks in flight) and returns the replicates each group ran.
func runSynthetic(t *testing.T, pl *Planner, job *jobs.Job, sigma []float64, chunk, lag int) map[int][]int {
	ran := map[int][]int{}
	var pending []Ref
	for steps := 0; ; steps++ {
		if steps > 1_000_000 {
			t.Fatal("the planner does not stop")
		}
		refs := pl.Next(chunk)
		pending = append(pending, refs...)
		for len(pending) > lag || (len(refs) == 0 && len(pending) > 0) {
			ref := pending[0]
			pending = pending[1:]
			ran[ref.Point] = append(ran[ref.Point], ref.Replicate)
			pl.Observe(ref, noisy(job, sigma, ref), false, time.Millisecond)
		}
		if len(refs) == 0 && len(pending) == 0 {
			return ran
		}
	}
}

func TestAdaptiveStopsPerGroup(t *testing.T) {
	job := parse(t, "x = [0, 1, 2]\nreplicates = { min = 8, max = 300, sem = { y = 0.05 } }\n")
	pl := NewPlanner(job, nil)
	sigma := []float64{0.1, 0.5, 5} // needs ~8, ~100, ~10000 replicates
	ran := runSynthetic(t, pl, job, sigma, 4, 6)
	for p, reps := range ran {
		for i, r := range reps {
			if r != i {
				t.Fatalf("group %d ran replicates %v: not 0..n-1 in order", p, reps)
			}
		}
	}
	st := []GroupStatus{pl.Status(0), pl.Status(1), pl.Status(2)}
	if st[0].Stop != StopConverged || st[0].N > 8+6 || st[1].Stop != StopConverged || st[1].N < 50 || st[1].N > 200 ||
		st[2].Stop != StopMax || st[2].N != 300 {
		t.Fatalf("status %+v", st)
	}
	for _, s := range st[:2] {
		if s.SEM[0] > 0.05 {
			t.Errorf("group %d converged with SEM %v", s.Point, s.SEM[0])
		}
	}
	if pl.Active() != 0 || pl.Left() != 0 || pl.Next(10) != nil {
		t.Fatalf("active %d, left %d after every group stopped", pl.Active(), pl.Left())
	}
}

func TestAdaptiveRelativeTargetAndResume(t *testing.T) {
	job := parse(t, "x = [0, 1]\nreplicates = { min = 4, sem = { y = \"1%\" } }\n")
	sigma := []float64{0.2, 2} // 1% of 10 = 0.1: ~4 and ~400 replicates
	pl := NewPlanner(job, nil)
	ran := runSynthetic(t, pl, job, sigma, 2, 0)
	if pl.Status(0).Stop != StopConverged || pl.Status(1).Stop != StopConverged || len(ran[1]) < 200 {
		t.Fatalf("status %+v %+v, group 1 ran %d", pl.Status(0), pl.Status(1), len(ran[1]))
	}
	// Resume with every row of group 0 and the first 100 of group 1:
	// group 0 gets nothing more, group 1 continues at replicate 100.
	done, stats := Done{}, map[string]*Stats{}
	for p, reps := range ran {
		key := job.PointKey(job.PointAt(p))
		stats[key] = &Stats{}
		for _, r := range reps {
			if p == 1 && r >= 100 {
				break
			}
			done[jobs.KeyID(key, r)] = struct{}{}
			stats[key].Add(noisy(job, sigma, Ref{p, r}), false, time.Millisecond)
		}
	}
	pl2 := NewPlanner(job, done)
	pl2.Prior(stats)
	refs := pl2.Next(5)
	if pl2.Status(0).Stop != StopConverged || len(refs) == 0 || refs[0] != (Ref{1, 100}) {
		t.Fatalf("resumed plan starts %v; group 0 %+v", refs, pl2.Status(0))
	}
	for _, r := range refs {
		if r.Point != 1 {
			t.Fatalf("converged group 0 got %v", r)
		}
	}
	if e := pl2.Estimate(); e <= 0 || e > 1000 {
		t.Fatalf("estimate %d", e)
	}
	if math.IsNaN(pl2.Status(1).SEM[0]) {
		t.Fatal("no SEM after resume")
	}
}

// TestETAUsesCostPerGroup: with one group ten times slower than the other,
// the ETA weighs each group's remaining tasks by its own cost, not by a
// global rate of what ran so far (here mostly the fast group).
func TestETAUsesCostPerGroup(t *testing.T) {
	job := parse(t, "x = [0, 1]\nreplicates = 10\norder = \"grid\"\n")
	pl := NewPlanner(job, nil)
	for _, ref := range pl.Next(12) { // all of group 0, two of group 1
		cost := time.Millisecond
		if ref.Point == 1 {
			cost = 10 * time.Millisecond
		}
		pl.Observe(ref, []float64{1}, false, cost)
	}
	// Left: 8 tasks of group 1 at 10 ms on 2 engines = 40 ms; a global
	// rate (30 ms / 12 tasks) would say 10 ms.
	if eta := pl.ETA(2); eta < 39*time.Millisecond || eta > 41*time.Millisecond {
		t.Fatalf("ETA %v, want 40ms", eta)
	}
	if pl.Estimate() != 8 {
		t.Fatalf("estimate %d, want 8", pl.Estimate())
	}
}

// TestAdaptiveTinyTargetDoesNotThrottle: a target so small that n·(sem/target)²
// overflows an int still lets every group run to max without waiting for
// results between tasks.
func TestAdaptiveTinyTargetDoesNotThrottle(t *testing.T) {
	job := parse(t, "x = [0, 1]\nreplicates = { min = 2, max = 1000, sem = { y = 1e-300 } }\n")
	pl := NewPlanner(job, nil)
	for _, ref := range pl.Next(8) {
		pl.Observe(ref, noisy(job, []float64{1, 1}, ref), false, time.Millisecond)
	}
	if refs := pl.Next(500); len(refs) != 500 {
		t.Fatalf("%d tasks handed out of 500 asked: the planner throttles a group that needs max", len(refs))
	}
}

// Tasks given back (Again: their engine stopped) are handed out again,
// first, each once more: a fixed sweep still runs every task exactly once,
// and an adaptive group gets its replicates 0..n-1, none twice, and still
// stops.
func TestPlannerAgainRunsGivenBackTasksOnce(t *testing.T) {
	for _, sw := range []string{"x = [0, 1, 2]\nreplicates = 7\n", "x = [0, 1, 2]\nreplicates = { min = 8, max = 60, sem = { y = 0.05 } }\n"} {
		job := parse(t, sw)
		pl := NewPlanner(job, nil)
		sigma := []float64{0.1, 0.3, 5}
		ran := map[Ref]int{}
		for steps := 0; ; steps++ {
			if steps > 100_000 {
				t.Fatal("the planner does not stop")
			}
			refs := pl.Next(4)
			if len(refs) == 0 {
				break
			}
			if steps%3 == 1 && len(refs) > 1 {
				// The engine ran the first task and stopped.
				pl.Again(refs[1:])
				refs = refs[:1]
			}
			for _, ref := range refs {
				ran[ref]++
				pl.Observe(ref, noisy(job, sigma, ref), false, time.Millisecond)
			}
		}
		per := map[int]int{}
		for ref, n := range ran {
			if n != 1 {
				t.Errorf("%s: task %+v ran %d times", sw, ref, n)
			}
			per[ref.Point]++
		}
		for p, n := range per {
			for r := range n {
				if ran[Ref{Point: p, Replicate: r}] != 1 {
					t.Errorf("%s: group %d ran %d tasks but not replicate %d", sw, p, n, r)
				}
			}
		}
		if job.Sweep.Adaptive == nil && len(ran) != 21 {
			t.Errorf("%s: %d tasks ran, want 21", sw, len(ran))
		}
		if pl.Left() != 0 {
			t.Errorf("%s: %d left at the end", sw, pl.Left())
		}
	}
}

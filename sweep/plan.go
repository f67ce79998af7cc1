package sweep

import (
	"slices"
	"time"

	"github.com/rankhub/rankhub/jobs"
)

// Ref names one task of a job by its grid point (jobs.Job.PointAt) and its
// replicate. It is how the planner and the engines speak of tasks; the
// task's identity and seed follow from its values and replicate alone.
type Ref struct {
	Point, Replicate int
}

// Done is the set of tasks that have a row in the result file.
type Done map[jobs.TaskID]struct{}

// Planner answers what to run next for a job, given the tasks already done.
// It is pure: no IO, no clock, no goroutines. It streams the expansion: it
// holds a cursor, never the list of tasks, so a sweep of 10^7 tasks costs
// no more memory than one of ten (the Done set aside).
//
// Order. With jobs.OrderReplicates (the default) tasks go out replicate by
// replicate: replicate 0 of every point in grid order, then replicate 1 of
// every point in reverse grid order, replicate 2 forwards again, ...: at any
// moment every group has about the same number of rows. With jobs.OrderGrid each point's replicates go out together, points
// in grid order (the order of result files version 1).
type Planner struct {
	job          *jobs.Job
	done         Done
	points, reps int
	grid         bool
	p, r         int // cursor: the next candidate
	total        int // tasks the job wants
	present      int // of those, already done
	issued       int
	again        []Ref // handed out, not run (their engine stopped): handed out first

	// Per group (point) state, for adaptive replicates and the ETA; nil
	// for fixed sweeps of more than maxTracked points.
	groups      []group
	ad          *jobs.Adaptive
	semOut      []int     // output index of each SEM target
	mean, m2    []float64 // adaptive: Welford mean and sum of squares, points × SEM targets
	active      int       // adaptive: groups that may get more replicates
	observed    int       // tasks observed (this run and the file's)
	observedRun int       // tasks of this run observed
	cost        float64
	costN       int
	cur         int // adaptive: the group the next pass starts at
}

// NewPlanner plans job's sweep; done may be nil. When done is not empty the
// planner counts which wanted tasks it holds (one pass over the tasks).
func NewPlanner(job *jobs.Job, done Done) *Planner {
	pl := &Planner{job: job, done: done, points: job.NumPoints(), reps: 1}
	if job.Sweep != nil {
		pl.reps = max(job.Sweep.Replicates, 1)
		pl.grid = job.Sweep.Order == jobs.OrderGrid
	}
	pl.total = pl.points * pl.reps
	if job.Sweep != nil && job.Sweep.Adaptive != nil {
		pl.ad = job.Sweep.Adaptive
		for _, t := range pl.ad.SEM {
			pl.semOut = append(pl.semOut, slices.Index(job.Task.Outputs, t.Output))
		}
		pl.active = pl.points
	}
	if pl.ad != nil || pl.points <= maxTracked {
		pl.groups = make([]group, pl.points)
		if pl.ad != nil {
			pl.mean = make([]float64, pl.points*len(pl.semOut))
			pl.m2 = make([]float64, pl.points*len(pl.semOut))
		}
	}
	if len(done) > 0 && pl.ad == nil {
		// Adaptive sweeps learn what is done from Prior instead: their
		// replicate count is open.
		for p := 0; p < pl.points; p++ {
			key := job.PointKey(job.PointAt(p))
			for r := 0; r < pl.reps; r++ {
				if _, ok := done[jobs.KeyID(key, r)]; ok {
					pl.present++
					if pl.groups != nil {
						pl.groups[p].present++
					}
				}
			}
		}
	}
	return pl
}

// Total is the number of tasks the job wants; Present how many of them are
// done already; Todo how many the planner will hand out in all.
func (pl *Planner) Total() int   { return pl.total }
func (pl *Planner) Present() int { return pl.present }
func (pl *Planner) Todo() int    { return pl.total - pl.present }

// Left is the number of tasks not yet handed out; for adaptive replicates
// an estimate (see Estimate) that is 0 only when every group stopped.
func (pl *Planner) Left() int {
	if pl.ad != nil {
		if pl.active == 0 {
			return 0
		}
		return max(pl.Estimate()-(pl.issued-pl.observedRun), pl.active)
	}
	return pl.Todo() - pl.issued
}

// Next hands out up to n tasks that are not done, in the planner's order,
// each once; nil when none is left. In replicate-major order a chunk
// smaller than a round (n < points) ends at the end of its round, and the
// rest of a round is split into chunks of equal size, so that engines
// working side by side stay in one round.
func (pl *Planner) Next(n int) []Ref {
	if pl.points <= 0 || n <= 0 {
		return nil
	}
	if len(pl.again) > 0 {
		if out := pl.nextAgain(n); len(out) > 0 {
			return out
		}
	}
	if pl.ad != nil {
		return pl.nextAdaptive(n)
	}
	if !pl.grid && n > 0 && n < pl.points {
		// Split the rest of the round into equal chunks.
		rem := pl.points - pl.p
		k := (rem + n - 1) / n
		n = (rem + k - 1) / k
	}
	var out []Ref
	for len(out) < n {
		if pl.grid && pl.p >= pl.points || !pl.grid && pl.r >= pl.reps {
			break
		}
		if !pl.grid && n < pl.points && pl.p == 0 && len(out) > 0 {
			break
		}
		ref := Ref{Point: pl.p, Replicate: pl.r}
		if !pl.grid && pl.r%2 == 1 {
			// Odd rounds run backwards: engines a task or two apart at a
			// round's end then differ on the same group, not on two.
			ref.Point = pl.points - 1 - pl.p
		}
		if pl.grid {
			if pl.r++; pl.r == pl.reps {
				pl.r, pl.p = 0, pl.p+1
			}
		} else {
			if pl.p++; pl.p == pl.points {
				pl.p, pl.r = 0, pl.r+1
			}
		}
		if len(pl.done) > 0 {
			if _, ok := pl.done[pl.job.ID(jobs.Task{Values: pl.job.PointAt(ref.Point), Replicate: ref.Replicate})]; ok {
				continue
			}
		}
		out = append(out, ref)
	}
	pl.issued += len(out)
	return out
}

// Again gives back tasks Next handed out that did not run (their engine
// stopped before they answered): Next hands them out again before any
// other, each once more. An adaptive group that has stopped meanwhile does
// not get them.
func (pl *Planner) Again(refs []Ref) {
	for _, r := range refs {
		if r.Point < 0 || r.Point >= pl.points {
			continue
		}
		pl.issued--
		if pl.ad != nil {
			pl.groups[r.Point].dispatched--
		}
		pl.again = append(pl.again, r)
	}
}

func (pl *Planner) nextAgain(n int) []Ref {
	var out []Ref
	for len(pl.again) > 0 && len(out) < n {
		r := pl.again[0]
		pl.again = pl.again[1:]
		if pl.ad != nil {
			g := &pl.groups[r.Point]
			if g.stop != stopRunning {
				continue
			}
			g.dispatched++
		}
		out = append(out, r)
	}
	pl.issued += len(out)
	return out
}

// ChunkSize is how many tasks the next chunk gets: about 50 ms of work at
// perTask, a task's share of a chunk's round trip (one task while nothing
// is measured), at most 4096, and no more than left/(2·engines) so that the
// tail stays balanced. Tasks for which the engine itself spends (exec) 1 ms
// and more, where a chunk's round trip costs a few percent at most, go in
// chunks of at most ⌈points/engines⌉: the engines then work side by side on
// one replicate round, and groups fill evenly even early in a short sweep.
func ChunkSize(perTask, exec time.Duration, left, engines, points int) int {
	if left <= 0 {
		return 0
	}
	engines = max(engines, 1)
	n := 1
	if perTask > 0 {
		n = int(50 * time.Millisecond / perTask)
	}
	if exec >= time.Millisecond {
		n = min(n, (max(points, 1)+engines-1)/engines)
	}
	return max(1, min(n, 4096, (left+2*engines-1)/(2*engines)))
}

// ChunkSize is the package function for this planner's sweep.
func (pl *Planner) ChunkSize(perTask, exec time.Duration, engines int) int {
	return ChunkSize(perTask, exec, pl.Left(), engines, pl.points)
}

// Window is how many chunks to keep in flight: four per engine hide the
// round trip of cheap tasks; for tasks of 1 ms and more of the engine's time
// (exec) two per engine keep every engine busy, and fewer chunks queued
// ahead keep the groups even.
func Window(exec time.Duration, engines int) int {
	if exec >= time.Millisecond {
		return 2 * max(engines, 1)
	}
	return 4 * max(engines, 1)
}

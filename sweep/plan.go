package sweep

import (
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
// every point, ...: at any moment every group has about the same number of
// rows. With jobs.OrderGrid each point's replicates go out together, points
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
	if len(done) > 0 {
		for p := 0; p < pl.points; p++ {
			key := job.PointKey(job.PointAt(p))
			for r := 0; r < pl.reps; r++ {
				if _, ok := done[jobs.KeyID(key, r)]; ok {
					pl.present++
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

// Left is the number of tasks not yet handed out.
func (pl *Planner) Left() int { return pl.Todo() - pl.issued }

// Next hands out up to n tasks that are not done, in the planner's order,
// each once; nil when none is left.
func (pl *Planner) Next(n int) []Ref {
	var out []Ref
	for len(out) < n {
		if pl.grid && pl.p >= pl.points || !pl.grid && pl.r >= pl.reps {
			break
		}
		ref := Ref{Point: pl.p, Replicate: pl.r}
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

// ChunkSize is how many tasks the next chunk gets: about 50 ms of work at
// the measured cost per task (one task while nothing is measured), at most
// 4096, and no more than left/(2·engines) so that the tail stays balanced.
func ChunkSize(perTask time.Duration, left, engines int) int {
	if left <= 0 {
		return 0
	}
	n := 1
	if perTask > 0 {
		n = int(50 * time.Millisecond / perTask)
	}
	engines = max(engines, 1)
	return max(1, min(n, 4096, (left+2*engines-1)/(2*engines)))
}

package sweep

import (
	"math"
	"time"

	"github.com/rankhub/rankhub/jobs"
)

// maxTracked is the most points of a fixed sweep the planner keeps per
// group state for (the ETA by group); beyond it the ETA uses one rate.
const maxTracked = 1 << 20

// Why a group of an adaptive sweep gets no more replicates.
const (
	StopConverged = "converged" // every SEM target met with at least min replicates
	StopMax       = "max"       // max replicates
)

// group is one parameter point's running statistics.
type group struct {
	n, failed int       // rows observed, of which failed
	present   int       // fixed sweeps: tasks of the group already in the file
	mean, m2  []float64 // Welford's running mean and sum of squares, per SEM target
	cost      float64   // seconds spent on its tasks
	stop      string    // "" while more replicates may come
	// Adaptive: the next replicate to hand out, and how many were handed
	// out or found in the file.
	next, dispatched int
}

func (g *group) init(k int) {
	g.mean, g.m2 = make([]float64, k), make([]float64, k)
}

// Stats is what is known of one group from rows: the observations of each
// output of the job (NaN for a failed row), in the order of its outputs.
type Stats struct {
	rows [][]float64
	cost []float64
}

// Add records one row of the group.
func (s *Stats) Add(outputs []float64, failed bool, took time.Duration) {
	o := append([]float64(nil), outputs...)
	if failed {
		for i := range o {
			o[i] = math.NaN()
		}
	}
	s.rows = append(s.rows, o)
	s.cost = append(s.cost, took.Seconds())
}

// Prior feeds the planner the rows already in the file (by point key, see
// Continuation.Stats): an adaptive sweep resumes where it stopped, groups
// that converged stay stopped.
func (pl *Planner) Prior(stats map[string]*Stats) {
	if pl.groups == nil || len(stats) == 0 {
		return
	}
	for p := range pl.points {
		s, ok := stats[pl.job.PointKey(pl.job.PointAt(p))]
		if !ok {
			continue
		}
		for i, o := range s.rows {
			pl.observe(p, o, math.IsNaN(firstOr(o)), s.cost[i])
		}
		pl.groups[p].dispatched = pl.groups[p].n
	}
}

// nextAdaptive hands out up to n tasks of an adaptive sweep: passes over
// the groups, one replicate of each group per pass, each group's
// replicates in order 0, 1, 2, ... (skipping those in the file). A group
// gets none once it stopped, and none beyond what its SEM says it needs
// (Estimate) while results are on their way, so a converged group does not
// run far past its target.
func (pl *Planner) nextAdaptive(n int) []Ref {
	var out []Ref
	maxReps := pl.ad.MaxReplicates()
	for idle := 0; len(out) < n && idle < pl.points; {
		p := pl.cur
		pl.cur = (pl.cur + 1) % pl.points
		g := &pl.groups[p]
		if g.stop != "" || g.dispatched >= max(pl.groupNeed(g)+g.n, g.n+1) {
			idle++
			continue
		}
		if len(pl.done) > 0 {
			key := pl.job.PointKey(pl.job.PointAt(p))
			for g.next < maxReps {
				if _, ok := pl.done[jobs.KeyID(key, g.next)]; !ok {
					break
				}
				g.next++
			}
		}
		if g.next >= maxReps {
			idle++
			continue
		}
		out = append(out, Ref{Point: p, Replicate: g.next})
		g.next++
		g.dispatched++
		idle = 0
	}
	pl.issued += len(out)
	return out
}

func firstOr(o []float64) float64 {
	if len(o) == 0 {
		return 0
	}
	return o[0]
}

// Observe records a finished task of this run: its outputs (in the job's
// order), whether it failed, and how long it took.
func (pl *Planner) Observe(ref Ref, outputs []float64, failed bool, took time.Duration) {
	pl.observedRun++
	if ref.Point < 0 || ref.Point >= pl.points {
		return
	}
	pl.observe(ref.Point, outputs, failed, took.Seconds())
}

func (pl *Planner) observe(p int, outputs []float64, failed bool, took float64) {
	pl.observed++
	pl.cost += took
	pl.costN++
	if pl.groups == nil {
		return
	}
	g := &pl.groups[p]
	g.n++
	g.cost += took
	if failed {
		g.failed++
	} else {
		k := float64(g.n - g.failed)
		for i, oi := range pl.semOut {
			if oi < 0 || oi >= len(outputs) {
				continue
			}
			x := outputs[oi]
			d := x - g.mean[i]
			g.mean[i] += d / k
			g.m2[i] += d * (x - g.mean[i])
		}
	}
	if pl.ad == nil || g.stop != "" {
		return
	}
	switch {
	case pl.converged(g):
		g.stop = StopConverged
	case g.n >= pl.ad.MaxReplicates():
		g.stop = StopMax
	default:
		return
	}
	pl.active--
}

// sem is the standard error of the mean of target i of g (NaN below 2 rows).
func (g *group) sem(i int) float64 {
	k := float64(g.n - g.failed)
	if k < 2 {
		return math.NaN()
	}
	return math.Sqrt(g.m2[i] / (k - 1) / k)
}

func (pl *Planner) converged(g *group) bool {
	if g.n-g.failed < pl.ad.Min {
		return false
	}
	for i, t := range pl.ad.SEM {
		if !t.Met(g.sem(i), g.mean[i]) {
			return false
		}
	}
	return true
}

// GroupStatus is one group's state in an adaptive sweep.
type GroupStatus struct {
	Point, N, Failed int
	Stop             string    // StopConverged, StopMax, or "" (still running)
	SEM, Limit       []float64 // per SEM target: now, and what the target asks
}

// Status reports group p of an adaptive sweep.
func (pl *Planner) Status(p int) GroupStatus {
	g := pl.groups[p]
	st := GroupStatus{Point: p, N: g.n, Failed: g.failed, Stop: g.stop}
	for i, t := range pl.ad.SEM {
		st.SEM = append(st.SEM, g.sem(i))
		st.Limit = append(st.Limit, t.Limit(g.mean[i]))
	}
	return st
}

// Observed is the number of rows the planner has seen (Prior and Observe).
func (pl *Planner) Observed() int { return pl.observed }

// Active is the number of groups of an adaptive sweep that may get more
// replicates.
func (pl *Planner) Active() int { return pl.active }

// Estimate is how many more tasks the sweep needs. For a fixed sweep it is
// exact (tasks not observed). For adaptive replicates, per active group:
// the replicates its SEM says it needs (n·(sem/target)², at least min, at
// most max) minus those it has; a group with fewer than 2 good rows counts
// min.
func (pl *Planner) Estimate() int {
	if pl.ad == nil {
		return pl.Todo() - pl.observedRun
	}
	left := 0
	for p := range pl.groups {
		if g := &pl.groups[p]; g.stop == "" {
			left += pl.groupNeed(g)
		}
	}
	return left
}

// ETA is the time the remaining work takes on engines: per group, its
// remaining tasks times its measured cost per task (the mean over measured
// groups for a group not yet measured), shared by the engines.
func (pl *Planner) ETA(engines int) time.Duration {
	if pl.costN == 0 {
		return 0
	}
	mean := pl.cost / float64(pl.costN)
	var secs float64
	switch {
	case pl.groups == nil:
		secs = float64(pl.Estimate()) * mean
	case pl.ad != nil:
		// Estimate by group, weighted by the group's own cost.
		for p := range pl.groups {
			g := &pl.groups[p]
			if g.stop != "" {
				continue
			}
			c := mean
			if g.n > 0 {
				c = g.cost / float64(g.n)
			}
			secs += float64(pl.groupNeed(g)) * c
		}
	default:
		for p := range pl.groups {
			g := &pl.groups[p]
			c := mean
			if g.n > 0 {
				c = g.cost / float64(g.n)
			}
			secs += float64(max(pl.reps-g.n-g.present, 0)) * c
		}
	}
	return time.Duration(secs / float64(max(engines, 1)) * float64(time.Second))
}

func (pl *Planner) groupNeed(g *group) int {
	need := pl.ad.Min
	if g.n-g.failed >= 2 {
		for i, t := range pl.ad.SEM {
			sem, lim := g.sem(i), t.Limit(g.mean[i])
			if lim > 0 && sem > 0 {
				need = max(need, int(math.Ceil(float64(g.n)*(sem/lim)*(sem/lim))))
			}
		}
	}
	return max(min(need, pl.ad.MaxReplicates())-g.n, 0)
}
